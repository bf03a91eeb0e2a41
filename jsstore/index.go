package jsstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/nats-io/nats.go/jetstream"
)

// The claim index.
//
// Each unfinished run has a key w.<workflow>.<id> in its partition's
// bucket whose value, a hint, repeats what ClaimExpired needs of the run:
// its status, owner, lease, wake time, creation time and concurrency key.
// Finished runs have none. ClaimExpired reads the hints of the workflows
// it is asked for (never the runs themselves, nor finished runs), and
// reads and claims only the runs whose hint says they may be claimable.
//
// JetStream has no transaction over two keys, so the run's record is the
// truth and the hint follows it: a writer writes the run, then the hint,
// compare-and-set on the hint's revision; a writer that loses reads the
// hint's revision, then the run, and writes the hint of what it read, so
// that the last hint written describes the last run written. A hint that
// says a run may be claimable when it is not costs one read of the run,
// after which ClaimExpired repairs it; if the run was found taken, it
// counts against its workflow's limits all the same (candidates are read
// oldest first, so before the younger runs of its key). A lease renewed
// (Extend) does not rewrite the hint: ClaimExpired sees its lease expire,
// reads the run, finds the lease live and rewrites the hint, at most once
// per lease.
//
// A process that dies between the write of a run and that of its hint
// leaves the hint behind by one write: a hint with an owner heals when
// its lease expires, but a hint of a run waiting for a signal only, or a
// run created but never indexed, is not read again until the run is
// written again (a signal, a Claim or a Cancel by ID).

// hint is the value of a claim index key.
type hint struct {
	Status  driver.Status `json:"s"`
	Owner   string        `json:"o,omitempty"`
	Lease   time.Time     `json:"l,omitzero"`
	WakeAt  time.Time     `json:"w,omitzero"`
	Never   bool          `json:"n,omitempty"`
	Created time.Time     `json:"c"`
	Key     string        `json:"k,omitempty"` // concurrency key
}

// hintOf returns the hint of rec, nil if it has none (it is finished).
func hintOf(rec *record) *hint {
	if rec == nil || rec.Head.Status.Final() {
		return nil
	}
	h := &rec.Head
	return &hint{Status: h.Status, Owner: h.Owner, Lease: h.LeaseUntil, WakeAt: h.WakeAt, Never: rec.Never,
		Created: h.CreatedAt, Key: h.ConcurrencyKey}
}

// same reports whether h and o say the same, their leases aside: whether
// a write that changed the one into the other need not rewrite the hint.
func (h *hint) same(o *hint) bool {
	if h == nil || o == nil {
		return h == nil && o == nil
	}
	return h.Status == o.Status && h.Owner == o.Owner && h.WakeAt.Equal(o.WakeAt) && h.Never == o.Never
}

// run returns the fields of h as a run header, for claimable.
func (h *hint) run() *driver.Run {
	return &driver.Run{Status: h.Status, Owner: h.Owner, LeaseUntil: h.Lease, WakeAt: h.WakeAt, ConcurrencyKey: h.Key, CreatedAt: h.Created}
}

// due reports whether the hint is of a waiting run that is due at now.
func (h *hint) due(now time.Time) bool {
	return h.Status == driver.StatusWaiting && !h.Never && !now.Before(h.WakeAt)
}

// claimableBy reports whether the hint says owner may claim the run now.
func (h *hint) claimableBy(owner string, now time.Time) bool {
	return h.Owner != owner && claimable(h.run(), owner, now) &&
		(h.Status == driver.StatusPending || h.Status == driver.StatusRunning || h.due(now))
}

// counted reports whether run h counts against a Limit: unfinished and
// started or leased.
func counted(h *driver.Run) bool {
	return !h.Status.Final() && (h.Status == driver.StatusRunning || h.Owner != "")
}

// maxCachedHints bounds the revisions of hint keys a Store remembers.
const maxCachedHints = 1 << 17

// hintAttempts bounds the tries of reindex; hintTimeout bounds their
// time, which does not end with the caller's context: a hint left behind
// its run makes ClaimExpired miscount the runs of a limited workflow until
// the hint is repaired.
const (
	hintAttempts = 5
	hintTimeout  = 10 * time.Second
)

// reindex writes the hint of rec, which this Store has just written (or
// read), to partition p. seed, when not zero, is the revision of the hint
// key as read before rec was; otherwise the revision is the one this Store
// wrote last, if it remembers one, or read anew. A write that fails is
// tried again, from the hint's and the run's latest revisions. See the
// comment at the top of this file.
func (s *Store) reindex(ctx context.Context, p *partition, rec *record, seed uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hintTimeout)
	defer cancel()
	for attempt := range hintAttempts {
		if s.reindexOnce(ctx, p, rec, seed) == nil || staleReadPause(ctx, attempt) != nil {
			return
		}
		seed = 0
	}
}

// reindexOnce is one try of reindex.
func (s *Store) reindexOnce(ctx context.Context, p *partition, rec *record, seed uint64) error {
	id, wf := rec.Head.ID, rec.Head.Workflow
	key := hintKey(wf, id)
	ck := p.bucket + "/" + key
	rev, known := seed, seed != 0
	if !known {
		rev, known = s.hintRevs.get(ck)
	}
	for range maxAttempts {
		if !known {
			// The hint's revision first, then the run: a hint written
			// after both describes a run at least as new as any whose
			// hint it replaces.
			e, err := p.kv.Get(ctx, key)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				rev = 0
			case err != nil:
				return err
			default:
				rev = e.Revision()
			}
			st, err := s.read(ctx, p, id)
			switch {
			case err != nil:
				return err
			case st.err != nil:
				return nil // corrupt: the run's readers report it
			}
			rec, known = st.rec, true
		}
		h := hintOf(rec)
		var err error
		var nrev uint64
		switch {
		case h == nil && rev == 0:
			s.hintRevs.set(ck, 0, false)
			return nil
		case h == nil:
			err = p.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		default:
			b, _ := json.Marshal(h)
			if rev == 0 {
				nrev, err = p.kv.Create(ctx, key, b)
			} else {
				nrev, err = p.kv.Update(ctx, key, b, rev)
			}
		}
		switch {
		case err == nil:
			s.hintRevs.set(ck, nrev, h != nil)
			return nil
		case !isConflict(err):
			s.hintRevs.set(ck, 0, false)
			return err
		}
		known = false
	}
	return fmt.Errorf("jsstore: the hint of run %s lost %d writes in a row to concurrent ones", id, maxAttempts)
}

// scan calls fn with the latest entry of each key of kv matching filter,
// deleted ones aside, until fn returns false.
//
// It reads through an ephemeral consumer, which JetStream may place on
// any replica of the bucket, one that may not have applied the latest
// writes yet. So with replicas, scan first writes a barrier key matching
// the filter, and reads until the consumer has delivered the barrier at
// or after the revision written: by then it has delivered every key as
// it was at least when scan began.
func (s *Store) scan(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry) bool) error {
	return s.scanMode(ctx, kv, filter, false, fn)
}

// scanStream is scan for callers that check each entry against the run and
// may stop early: with replicas, fn is called as entries come rather than
// once the barrier is read, so it may see a key twice (as it was, then as
// it is), or see a key deleted since.
func (s *Store) scanStream(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry) bool) error {
	return s.scanMode(ctx, kv, filter, true, fn)
}

func (s *Store) scanMode(ctx context.Context, kv jetstream.KeyValue, filter string, streaming bool, fn func(jetstream.KeyValueEntry) bool) error {
	var barrier uint64
	bkey := strings.TrimSuffix(filter, ">") + barrierToken
	if s.cfg.replicas > 1 {
		rev, err := kv.Put(ctx, bkey, nil)
		if err != nil {
			return fmt.Errorf("jsstore: writing the read barrier of bucket %s: %w", kv.Bucket(), err)
		}
		barrier = rev
	}
	opts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if barrier > 0 {
		opts = nil // a key deleted after it was delivered must be seen
	}
	w, err := kv.Watch(ctx, filter, opts...)
	if err != nil {
		return fmt.Errorf("jsstore: reading keys %s of bucket %s: %w", filter, kv.Bucket(), err)
	}
	defer func() {
		_ = w.Stop()
		for range w.Updates() { // the watcher's callback may be blocked on a send
		}
	}()
	var got map[string]jetstream.KeyValueEntry // with a barrier: the latest entry of each key
	var late <-chan time.Time
	if barrier > 0 {
		got = make(map[string]jetstream.KeyValueEntry)
		t := time.NewTimer(barrierWait)
		defer t.Stop()
		late = t.C
	}
	for {
		select {
		case <-late:
			return fmt.Errorf("jsstore: reading keys %s of bucket %s: the replica serving the read did not catch up in %v", filter, kv.Bucket(), barrierWait)
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return fmt.Errorf("jsstore: reading keys %s of bucket %s: the watch ended early", filter, kv.Bucket())
			case barrier == 0 && e == nil:
				return nil
			case barrier == 0:
				if e.Key() != bkey && !fn(e) {
					return nil
				}
			case e == nil:
			case streaming && e.Key() == bkey:
				if e.Revision() >= barrier {
					return nil
				}
			case streaming:
				if e.Operation() == jetstream.KeyValuePut && !fn(e) {
					return nil
				}
			case e.Key() == bkey:
				if e.Revision() >= barrier {
					entries := slices.Collect(maps.Values(got))
					slices.SortFunc(entries, func(a, b jetstream.KeyValueEntry) int { return cmp.Compare(a.Revision(), b.Revision()) })
					for _, e := range entries {
						if e.Operation() == jetstream.KeyValuePut && !fn(e) {
							break
						}
					}
					return nil
				}
			default:
				if old, ok := got[e.Key()]; !ok || old.Revision() < e.Revision() {
					got[e.Key()] = e
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// barrierWait bounds the wait of a scan for its barrier.
const barrierWait = 30 * time.Second

// barrierToken is the last token of the barrier keys of scan; other
// keys' tokens start with "x" (see enc).
const barrierToken = "barrier"

// lastToken returns the run ID that the last token of an index key
// encodes.
func lastToken(key string) (string, error) {
	return dec(key[strings.LastIndexByte(key, '.')+1:])
}

// limitCount is how many runs of a limited workflow count, in all and by
// concurrency key.
type limitCount struct {
	total int
	keys  map[string]int
}

func (c *limitCount) add(key string) {
	c.total++
	c.keys[key]++
}

// admits reports whether pending run h may be claimed under l.
func (c *limitCount) admits(l driver.Limit, h *driver.Run) bool {
	total, perKey := c.total, c.keys[h.ConcurrencyKey]
	if counted(h) { // counted already: claiming it adds nothing
		total, perKey = total-1, perKey-1
	}
	return (l.Max <= 0 || total < l.Max) && (l.PerKey <= 0 || perKey < l.PerKey)
}

// candidate is a run whose hint says it may be claimable.
type candidate struct {
	p       *partition
	id, wf  string
	created time.Time
	rev     uint64 // of its hint
	hint    hint
}

// earliest returns the earlier of a and b, ignoring zero times.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// ClaimExpired implements [driver.Store]. It reads the claim index of
// p.Workflows in every partition (see the package documentation), then
// reads and claims the runs whose hint says they are claimable, in random
// order so that engines asking at once rarely want the same runs, or
// oldest first for workflows with limits. Without limits it stops reading
// the index once it has four candidates for each run it may claim.
//
// Limits are enforced across processes by a lock key per limited
// workflow (l.<workflow> in the first partition), held while the call
// counts and claims; a lock left by a process that died expires after 30
// seconds.
func (s *Store) ClaimExpired(ctx context.Context, p driver.ClaimExpiredParams) (*driver.ClaimedRuns, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	out := &driver.ClaimedRuns{}
	if len(p.Workflows) == 0 {
		return out, nil
	}
	wfs := slices.Clone(p.Workflows)
	slices.Sort(wfs)
	wfs = slices.Compact(wfs)
	limits := make(map[string]driver.Limit)
	counts := make(map[string]*limitCount)
	var locked []string
	for _, l := range p.Limits {
		if slices.Contains(wfs, l.Workflow) && (l.Max > 0 || l.PerKey > 0) {
			if _, dup := limits[l.Workflow]; !dup {
				locked = append(locked, l.Workflow)
			}
			limits[l.Workflow] = l
			counts[l.Workflow] = &limitCount{keys: make(map[string]int)}
		}
	}
	if len(limits) > 0 {
		s.limitMu.Lock()
		defer s.limitMu.Unlock()
		slices.Sort(locked)
		unlock, err := s.lockLimits(ctx, locked)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	now := s.now(ctx)
	budget := p.Limit // runs left to claim; < 0: no bound
	if budget <= 0 {
		budget = -1
	}
	var cands []candidate // read from the index, not yet tried
	var next time.Time
	// sleepers are the wake times of the waiting runs read that are not
	// due, by index key; zero for the other runs read.
	type sleeper struct {
		rev uint64
		at  time.Time
	}
	sleepers := make(map[string]sleeper)
	early := false
	var failed error
	// claim tries the candidates read so far, in random order, or oldest
	// first under limits, until the budget is spent.
	claim := func() {
		if len(limits) > 0 {
			slices.SortFunc(cands, func(a, b candidate) int {
				if c := a.created.Compare(b.created); c != 0 {
					return c
				}
				return strings.Compare(a.id, b.id)
			})
		} else {
			rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		}
		for i, c := range cands {
			if budget == 0 || failed != nil {
				for _, rest := range cands[i:] {
					if rest.hint.Status == driver.StatusWaiting {
						next = earliest(next, now)
					}
				}
				break
			}
			if lim, ok := limits[c.wf]; ok && c.hint.Status == driver.StatusPending && !counts[c.wf].admits(lim, c.hint.run()) {
				continue // over the limit by its hint: not worth reading the run
			}
			run, err := s.claimCandidate(ctx, p, c, limits, counts)
			switch {
			case driver.CorruptRunID(err) != "":
				out.Corrupt = append(out.Corrupt, err)
			case errors.Is(err, driver.ErrRunNotFound):
			case err != nil:
				failed = err
			case run != nil:
				out.Runs = append(out.Runs, run)
				if budget > 0 {
					budget--
				}
			}
		}
		cands = cands[:0]
	}
	start := rand.IntN(len(s.parts))
scanning:
	for _, wf := range wfs {
		c := counts[wf]
		for i := range s.parts {
			part := s.parts[(start+i)%len(s.parts)]
			read := s.scanStream
			if len(limits) > 0 {
				read = s.scan // counts each run once
			}
			err := read(ctx, part.kv, hintPrefix(wf), func(e jetstream.KeyValueEntry) bool {
				id, err := lastToken(e.Key())
				if err != nil {
					return true
				}
				var h hint
				if json.Unmarshal(e.Value(), &h) != nil {
					h = hint{Status: driver.StatusPending} // unreadable: let the run tell
				}
				if c != nil && counted(h.run()) {
					c.add(h.Key)
				}
				// A key read twice (see scanStream) counts as last read.
				wk := sleeper{rev: e.Revision()}
				switch {
				case h.claimableBy(p.Owner, now):
					cands = append(cands, candidate{part, id, wf, h.Created, e.Revision(), h})
				case h.Status == driver.StatusWaiting && !h.Never && h.Owner != p.Owner && claimable(h.run(), p.Owner, now):
					wk.at = h.WakeAt
				}
				if old, ok := sleepers[e.Key()]; !ok || old.rev < wk.rev {
					sleepers[e.Key()] = wk
				}
				// Without limits, claim as the index is read, a few
				// candidates per run wanted at a time, and stop once
				// enough are claimed.
				if len(limits) == 0 && budget > 0 && len(cands) >= 4*budget {
					claim()
					if budget == 0 || failed != nil {
						early = true
						return false
					}
				}
				return true
			})
			if err != nil && failed == nil {
				failed = err
			}
			if early || failed != nil {
				break scanning
			}
		}
	}
	if failed == nil {
		claim()
	}
	if failed != nil && len(out.Runs) == 0 && len(out.Corrupt) == 0 {
		return nil, failed
	}
	// Otherwise keep what was claimed: the caller looks again.
	for _, sl := range sleepers {
		next = earliest(next, sl.at)
	}
	if early {
		next = earliest(next, now)
	}
	slices.SortFunc(out.Runs, func(a, b *driver.Run) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	out.NextWake = next
	return out, nil
}

// claimCandidate claims candidate c for p.Owner if the run is claimable,
// within the limits; it returns nil and no error if it is not.
func (s *Store) claimCandidate(ctx context.Context, p driver.ClaimExpiredParams, c candidate,
	limits map[string]driver.Limit, counts map[string]*limitCount) (*driver.Run, error) {
	var claimed *driver.Run
	busy, key := false, c.hint.Key // whether the run counts against its limit, as read, and its key
	lim, limited := limits[c.wf]
	_, err := s.mutateWith(ctx, c.id, mutation{seed: c.rev, seen: &c.hint}, func(r *record, now time.Time) error {
		claimed, busy = nil, false // from an attempt that lost
		h := &r.Head
		if h.Workflow != c.wf {
			return errNoWrite
		}
		busy, key = counted(h), h.ConcurrencyKey
		if h.Owner == p.Owner || !claimable(h, p.Owner, now) ||
			(h.Status != driver.StatusPending && h.Status != driver.StatusRunning && !r.due(now)) {
			return errNoWrite
		}
		if limited && h.Status == driver.StatusPending && !counts[c.wf].admits(lim, h) {
			return errNoWrite
		}
		whole, err := r.whole()
		if err != nil {
			return err
		}
		h.Owner, h.LeaseUntil = p.Owner, now.Add(p.Lease)
		h.Version++
		whole.Owner, whole.LeaseUntil, whole.Version = h.Owner, h.LeaseUntil, h.Version
		claimed = whole
		return nil
	})
	// A run its hint did not count counts now if it was claimed, or if it
	// was found taken: its hint was left behind (a hint write that failed),
	// and the runs of its key after it must wait for it all the same.
	if limited && !counted(c.hint.run()) && (claimed != nil || busy) {
		counts[c.wf].add(key)
	}
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// lockTTL is how long a limit lock lasts if its holder never gives it
// back.
const lockTTL = 30 * time.Second

// lockLimits takes the limit locks of workflows wfs, in order, and returns
// the function that gives them back.
func (s *Store) lockLimits(ctx context.Context, wfs []string) (func(), error) {
	p := s.parts[0]
	type held struct {
		key string
		rev uint64
	}
	var locks []held
	unlock := func() {
		ctx := context.WithoutCancel(ctx)
		for _, l := range locks {
			_ = p.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
		}
	}
	for _, wf := range wfs {
		key := limitLockKey(wf)
		deadline := time.Now().Add(2 * lockTTL)
		wait := time.Millisecond
		for {
			now := s.now(ctx)
			val := []byte(strconv.FormatInt(now.Add(lockTTL).UnixNano(), 10))
			rev, err := p.kv.Create(ctx, key, val)
			if err != nil && isConflict(err) {
				if e, gerr := p.kv.Get(ctx, key); gerr == nil {
					if until, perr := strconv.ParseInt(string(e.Value()), 10, 64); perr != nil || now.UnixNano() >= until {
						rev, err = p.kv.Update(ctx, key, val, e.Revision())
					}
				}
			}
			if err == nil {
				locks = append(locks, held{key, rev})
				break
			}
			if !isConflict(err) && !errors.Is(err, jetstream.ErrKeyNotFound) {
				unlock()
				return nil, fmt.Errorf("jsstore: taking the concurrency limit lock of workflow %q: %w", wf, err)
			}
			if time.Now().After(deadline) {
				unlock()
				return nil, fmt.Errorf("jsstore: the concurrency limit lock of workflow %q stayed taken for %v", wf, 2*lockTTL)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				unlock()
				return nil, ctx.Err()
			case <-t.C:
			}
			wait = min(2*wait, 50*time.Millisecond)
		}
	}
	return unlock, nil
}
