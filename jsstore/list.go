package jsstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// List implements [driver.Store]. This first version reads every run of
// every partition and filters them here: its cost grows with the runs
// kept, finished ones included (see Prune and flux.Retention). Search is
// answered the same way, by reading every run.
func (s *Store) List(ctx context.Context, f driver.Filter) (*driver.RunPage, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	after, err := driver.ParseCursor(f.Cursor)
	if err != nil {
		return nil, err
	}
	page := &driver.RunPage{}
	var match []*driver.Run
	for _, part := range s.parts {
		err := s.scan(ctx, part.kv, "r.>", func(e jetstream.KeyValueEntry) bool {
			id, err := lastToken(e.Key())
			if err != nil {
				return true
			}
			r, err := decode(id, e.Value())
			if err != nil {
				page.Corrupt = append(page.Corrupt, err)
				return true
			}
			if f.Matches(&r.Head) && (after == nil || after.Before(&r.Head)) {
				match = append(match, r.header())
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(match, driver.CompareNewestFirst)
	n := min(f.PageSize(), len(match))
	page.Runs = match[:n:n]
	if n < len(match) {
		page.Next = driver.MakeCursor(page.Runs[n-1])
	}
	return page, nil
}

// Changes implements [driver.Store].
//
// Every write of a run is a message of its partition's stream, which
// keeps the last one of each key; the writes that are not changes (leases
// taken, renewed or given back, signals) carry the revision and time of
// the run's last change in a header. Changes reads the headers of the
// messages after the position, one partition at a time, and keeps the
// runs whose last change is after it. A position is the revision reached
// in each partition, "<r0>,<r1>,...". Runs of several partitions are
// ordered by the servers' times of their changes.
func (s *Store) Changes(ctx context.Context, p driver.ChangesParams) (*driver.ChangesPage, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	n := len(s.parts)
	if p.After == "" {
		pos := make([]uint64, n)
		for i, part := range s.parts {
			info, err := part.stream.Info(ctx)
			if err != nil {
				return nil, fmt.Errorf("jsstore: reading the position of bucket %s: %w", part.bucket, err)
			}
			pos[i] = info.State.LastSeq
		}
		return &driver.ChangesPage{Runs: []*driver.Run{}, Position: formatPos(pos)}, nil
	}
	after, err := parsePos(p.After, n)
	if err != nil {
		return nil, err
	}
	type hit struct {
		part int
		id   string
		seq  uint64 // of its last change
		at   time.Time
	}
	var hits []hit
	end := slices.Clone(after)
	for i, part := range s.parts {
		found := make(map[string]hit)
		last, err := s.follow(ctx, part, after[i], func(subject string, seq uint64, at time.Time, change string) {
			id, err := lastToken(subject)
			if err != nil {
				return
			}
			if change != "" {
				cs, ct, ok := parseChange(change)
				if !ok {
					return
				}
				seq, at = cs, ct
			}
			if seq > after[i] {
				if h, ok := found[id]; !ok || h.seq < seq {
					found[id] = hit{i, id, seq, at}
				}
			}
		})
		if err != nil {
			return nil, err
		}
		end[i] = max(end[i], last)
		for _, h := range found {
			hits = append(hits, h)
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if c := cmp.Compare(a.part, b.part); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	if limit := p.ChangesLimit(); len(hits) > limit {
		// Each partition goes on after the last change taken from it.
		next := slices.Clone(after)
		for _, h := range hits[:limit] {
			next[h.part] = max(next[h.part], h.seq)
		}
		for _, h := range hits[limit:] {
			end[h.part] = min(end[h.part], next[h.part])
		}
		hits = hits[:limit]
	}
	page := &driver.ChangesPage{Runs: []*driver.Run{}, Position: formatPos(end)}
	for _, h := range hits {
		st, err := s.read(ctx, s.parts[h.part], h.id)
		switch {
		case err != nil:
			return nil, err
		case st.err != nil:
			page.Corrupt = append(page.Corrupt, st.err)
		case st.rec != nil:
			page.Runs = append(page.Runs, st.rec.header())
		}
	}
	return page, nil
}

// follow calls fn with the subject, revision, time and Flux-Change header
// of each run message of partition p after revision after, up to the end
// of the stream, and returns the last revision it saw; fn may see a
// message twice.
//
// It reads through an ephemeral consumer. In a cluster, the server the
// client is connected to may not yet know of the new consumer's interest
// when the first fetch is sent, and answers "no responders" (seen in CI
// under load): follow then starts again, a few times.
func (s *Store) follow(ctx context.Context, p *partition, after uint64, fn func(subject string, seq uint64, at time.Time, change string)) (uint64, error) {
	for attempt := 0; ; attempt++ {
		last, err := s.followOnce(ctx, p, after, fn)
		if !errors.Is(err, nats.ErrNoResponders) || attempt == followAttempts-1 {
			return last, err
		}
		if staleReadPause(ctx, attempt) != nil {
			return 0, err
		}
	}
}

// followAttempts bounds the tries of follow: about two seconds of pauses.
const followAttempts = 25

// followOnce is one try of follow. A partition whose stream has nothing
// after the position is not read: a viewer polling an idle store creates
// no consumer (each creation and deletion is an operation of the cluster's
// meta leader).
func (s *Store) followOnce(ctx context.Context, p *partition, after uint64, fn func(subject string, seq uint64, at time.Time, change string)) (uint64, error) {
	info, err := p.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("jsstore: reading the position of bucket %s: %w", p.bucket, err)
	}
	if info.State.LastSeq <= after {
		return after, nil
	}
	cons, err := s.js.CreateConsumer(ctx, "KV_"+p.bucket, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     p.subj + "r.>",
		HeadersOnly:       true,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return 0, fmt.Errorf("jsstore: reading the changes of bucket %s: %w", p.bucket, err)
	}
	defer func() {
		_ = s.js.DeleteConsumer(context.WithoutCancel(ctx), "KV_"+p.bucket, cons.CachedInfo().Name)
	}()
	last := after
	if cons.CachedInfo().NumPending == 0 {
		return last, nil
	}
	for {
		batch, err := cons.FetchNoWait(512)
		if err != nil {
			return 0, fmt.Errorf("jsstore: reading the changes of bucket %s: %w", p.bucket, err)
		}
		got, done := 0, false
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			last = max(last, md.Sequence.Stream)
			h := m.Headers()
			if op := h.Get("KV-Operation"); op == "" && h.Get(jetstream.MarkerReasonHeader) == "" {
				fn(strings.TrimPrefix(m.Subject(), p.subj), md.Sequence.Stream, md.Timestamp, h.Get(changeHeader))
			}
			if md.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return 0, fmt.Errorf("jsstore: reading the changes of bucket %s: %w", p.bucket, err)
		}
		if done || got == 0 {
			return last, nil
		}
	}
}

func formatPos(pos []uint64) string {
	parts := make([]string, len(pos))
	for i, p := range pos {
		parts[i] = strconv.FormatUint(p, 10)
	}
	return strings.Join(parts, ",")
}

func parsePos(s string, n int) ([]uint64, error) {
	parts := strings.Split(s, ",")
	bad := fmt.Errorf("jsstore: change position %q is not one of this store's (%d partitions): pass the Position a Changes returned, or \"\"", s, n)
	if len(parts) != n {
		return nil, bad
	}
	pos := make([]uint64, n)
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return nil, bad
		}
		pos[i] = v
	}
	return pos, nil
}
