package jsstore

import (
	"context"
	"encoding/json"
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

// record is what the key r.<id> holds: a whole run. JSON bytes of the
// run (input, data, payloads) are kept as []byte (base64 in the record),
// so that they come back byte for byte.
type record struct {
	Head     driver.Run         `json:"head"` // without Input, Data, Steps, Signals
	Input    []byte             `json:"input"`
	Initial  []byte             `json:"initial"` // the data before the first node
	Steps    []driver.StepState `json:"steps"`
	Data     []nodeData         `json:"data"`              // by node index
	Signals  []driver.Signal    `json:"signals,omitempty"` // without Payload
	Payloads [][]byte           `json:"payloads,omitempty"`
	// Never: the run waits for a signal only (Head.WakeAt is zero).
	Never bool `json:"never,omitempty"`
}

// nodeData is the data a node left: a snapshot, or a patch; none when
// !Set.
type nodeData struct {
	Set    bool   `json:"set,omitempty"`
	Patch  bool   `json:"patch,omitempty"`
	Offset int    `json:"offset,omitempty"`
	Delete int    `json:"delete,omitempty"`
	Bytes  []byte `json:"bytes,omitempty"`
}

func keepData(d *driver.NodeData) nodeData {
	if d.Patch != nil {
		return nodeData{Set: true, Patch: true, Offset: d.Patch.Offset, Delete: d.Patch.Delete, Bytes: clone(d.Patch.Insert)}
	}
	return nodeData{Set: true, Bytes: clone(d.Snapshot)}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// decode decodes the record of run id.
func decode(id string, b []byte) (*record, error) {
	r := new(record)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, driver.Corrupt(id, "its record in JetStream (%d bytes) does not decode: %v", len(b), err)
	}
	if r.Head.ID != id {
		return nil, driver.Corrupt(id, "its record in JetStream names run %q", r.Head.ID)
	}
	if len(r.Data) != len(r.Steps) || len(r.Payloads) != len(r.Signals) {
		return nil, driver.Corrupt(id, "its record in JetStream has %d nodes and data of %d, %d signals and %d payloads",
			len(r.Steps), len(r.Data), len(r.Signals), len(r.Payloads))
	}
	r.Head.Input, r.Head.Data, r.Head.Steps, r.Head.Signals = nil, nil, nil, nil
	return r, nil
}

// datas returns the node data up to node last, in order.
func (r *record) datas(last int) []driver.NodeData {
	var out []driver.NodeData
	for i, d := range r.Data[:min(last+1, len(r.Data))] {
		switch {
		case !d.Set:
		case d.Patch:
			out = append(out, driver.NodeData{Index: i, Patch: &driver.Patch{Offset: d.Offset, Delete: d.Delete, Insert: d.Bytes}})
		default:
			out = append(out, driver.NodeData{Index: i, Snapshot: d.Bytes})
		}
	}
	return out
}

// header returns the run's header, as List returns it. It shares nothing
// with r.
func (r *record) header() *driver.Run {
	h := r.Head
	h.Input = clone(r.Input)
	h.Data, h.Steps, h.Signals = nil, nil, nil
	return &h
}

// whole returns the run with its nodes, signals and current data. It
// shares nothing with r.
func (r *record) whole() (*driver.Run, error) {
	w := r.header()
	data, err := driver.Rebuild(r.Initial, r.datas(len(r.Data)-1))
	if err != nil {
		return nil, driver.Corrupt(r.Head.ID, "%v", err)
	}
	w.Data = data
	w.Steps = make([]driver.StepState, len(r.Steps))
	for i, s := range r.Steps {
		s.Attempts = slices.Clone(s.Attempts)
		w.Steps[i] = s
	}
	if len(r.Signals) > 0 {
		w.Signals = slices.Clone(r.Signals)
		for i := range w.Signals {
			w.Signals[i].Payload = clone(r.Payloads[i])
		}
	}
	return w, nil
}

// setWake records the wake time of a run written with status and header
// wake time at, when the writer had seen seen signals.
func (r *record) setWake(status driver.Status, at time.Time, seen int64) {
	switch {
	case status != driver.StatusWaiting:
		r.Head.WakeAt, r.Never = time.Time{}, false
	case r.Head.SignalSeq > seen: // a signal the writer has not seen: due now
		r.Head.WakeAt, r.Never = time.Time{}, false
	case at.IsZero():
		r.Head.WakeAt, r.Never = time.Time{}, true
	default:
		r.Head.WakeAt, r.Never = at, false
	}
}

// due reports whether waiting run r is due at now.
func (r *record) due(now time.Time) bool {
	return r.Head.Status == driver.StatusWaiting && !r.Never && !now.Before(r.Head.WakeAt)
}

// waitKey is the wait key the run is indexed under: its WaitKey while it
// is unfinished.
func (r *record) waitKey() string {
	if r.Head.Status.Final() {
		return ""
	}
	return r.Head.WaitKey
}

// claimable reports whether owner may take the lease of run h at now.
func claimable(h *driver.Run, owner string, now time.Time) bool {
	return h.Owner == "" || h.Owner == owner || !now.Before(h.LeaseUntil) || driver.Supersedes(owner, h.Owner)
}

// changeHeader names the header that the writes that are not changes
// (leases, signals) carry: the position and time of the run's last
// change, "<revision>:<unix nanoseconds>". A write without it is a change
// (see Changes).
const changeHeader = "Flux-Change"

// stored is what a read of a run's key found.
type stored struct {
	rec *record // nil: no run (err nil) or a corrupt one (err set)
	err error   // the *driver.CorruptError of an undecodable record
	rev uint64  // the key's last revision, 0 if it never had one
	// change is the Flux-Change header that a write that is no change
	// carries after this one.
	change string
}

// read reads run id from partition p, from the stream's leader.
func (s *Store) read(ctx context.Context, p *partition, id string) (*stored, error) {
	m, err := p.stream.GetLastMsgForSubject(ctx, p.subj+runKey(id))
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return &stored{}, nil
	case err != nil:
		return nil, fmt.Errorf("jsstore: reading run %s from bucket %s: %w", id, p.bucket, err)
	}
	st := &stored{rev: m.Sequence}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		return st, nil
	}
	if c := m.Header.Get(changeHeader); c != "" {
		st.change = c
	} else {
		st.change = strconv.FormatUint(m.Sequence, 10) + ":" + strconv.FormatInt(m.Time.UnixNano(), 10)
	}
	st.rec, st.err = decode(id, m.Data)
	return st, nil
}

// parseChange parses a Flux-Change header.
func parseChange(v string) (uint64, time.Time, bool) {
	seq, ns, ok := strings.Cut(v, ":")
	if !ok {
		return 0, time.Time{}, false
	}
	n, err1 := strconv.ParseUint(seq, 10, 64)
	t, err2 := strconv.ParseInt(ns, 10, 64)
	return n, time.Unix(0, t), err1 == nil && err2 == nil
}

// writeBytes writes rec as run id if the key's last revision is rev (0:
// the key has none), and returns the bytes written and the new revision.
// change is "" for a write that Changes reports, or the Flux-Change
// header to carry.
func (s *Store) writeBytes(ctx context.Context, p *partition, id string, rec *record, rev uint64, change string) ([]byte, uint64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, 0, fmt.Errorf("jsstore: encoding run %s: %w", id, err)
	}
	m := &nats.Msg{Subject: p.subj + runKey(id), Header: nats.Header{}, Data: b}
	if change != "" {
		m.Header.Set(changeHeader, change)
	}
	ack, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev))
	if err != nil {
		if isConflict(err) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("jsstore: writing run %s (%d bytes) to bucket %s: %w", id, len(b), p.bucket, err)
	}
	return b, ack.Sequence, nil
}

// lastWrite is the record a Store wrote last for a run, and its revision:
// the next write of the run by this Store starts from it rather than from
// a read. If another write came between, the compare-and-set fails and
// the write starts again from a read.
type lastWrite struct {
	rev    uint64
	data   []byte
	change string // the Flux-Change header of a write that is no change
}

// maxLastWrites bounds the runs whose last write a Store keeps.
const maxLastWrites = 1 << 14

// forgetLastData drops the record kept of run id's last write, so that
// the next write reads the run, but keeps its revision: a read that finds
// an older one is not believed.
func (s *Store) forgetLastData(id string) {
	s.lastWrites.update(id, func(lw lastWrite) lastWrite { return lastWrite{rev: lw.rev} })
}

// errNoWrite, returned by the function of a mutate, ends it without a
// write and without an error.
var errNoWrite = errors.New("jsstore: nothing to write")

// maxAttempts bounds the rounds of a read-modify-write that keeps losing
// to concurrent writes of the same key.
const maxAttempts = 100

// staleReadPause waits before reading again a run that a lagging leader
// answered: a little longer each attempt, at most 100ms.
func staleReadPause(ctx context.Context, attempt int) error {
	t := time.NewTimer(min(time.Duration(attempt+1)*5*time.Millisecond, 100*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// mutation tells mutateWith what a write is.
type mutation struct {
	change bool // a write that Changes reports
	// seed is the revision of the run's hint key as read before the run,
	// zero if unknown; seen is the hint read then. When the write is
	// not made and the hint differs from the run, it is repaired.
	seed uint64
	seen *hint
}

// mutate is mutateWith with no seed: change says whether the write is one
// that Changes reports.
func (s *Store) mutate(ctx context.Context, id string, change bool, fn func(r *record, now time.Time) error) (*record, error) {
	return s.mutateWith(ctx, id, mutation{change: change}, fn)
}

// mutateWith reads run id, lets fn change it, writes it back if its
// revision is still the one read, and updates the run's index entries; it
// starts again when another write came between. It returns the record
// written, or nil if fn returned errNoWrite.
func (s *Store) mutateWith(ctx context.Context, id string, m mutation, fn func(r *record, now time.Time) error) (*record, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	// One write of a run at a time from this Store: a lease renewal racing
	// a checkpoint of the same run would otherwise both be proposed to a
	// replicated stream, and the expected-revision check of the one
	// proposed second was seen to pass against the state before the first
	// was applied (W1, four partitions, three replicas: "run is at
	// version 1, not 2"), losing the first write.
	mu := s.runLock(id)
	mu.Lock()
	defer mu.Unlock()
	p := s.part(id)
	// known is the latest revision of the run this Store wrote: a read
	// that finds an older one was answered by a stream leader newly
	// elected that has not applied the latest writes yet, and is made
	// again rather than believed.
	var known uint64
	for attempt := range maxAttempts {
		var st *stored
		cached := false
		if lw, ok := s.lastWrites.get(id); ok && attempt == 0 {
			known = lw.rev
			if lw.data != nil {
				if rec, err := decode(id, lw.data); err == nil {
					st, cached = &stored{rec: rec, rev: lw.rev, change: lw.change}, true
				}
			}
		}
		if !cached {
			var err error
			st, err = s.read(ctx, p, id)
			switch {
			case err != nil:
				return nil, err
			case st.rev < known:
				if err := staleReadPause(ctx, attempt); err != nil {
					return nil, fmt.Errorf("jsstore: run %s: the stream's leader answers revision %d, older than %d written: %w", id, st.rev, known, err)
				}
				continue
			case st.err != nil:
				return nil, st.err
			case st.rec == nil:
				return nil, fmt.Errorf("%w: %q", driver.ErrRunNotFound, id)
			}
		}
		rec := st.rec
		before := hintOf(rec)
		oldKey := rec.waitKey()
		now := s.now(ctx)
		if err := fn(rec, now); err != nil {
			if cached {
				// The run may have changed since this Store wrote it:
				// only the run as read decides a refusal.
				s.forgetLastData(id)
				continue
			}
			if errors.Is(err, errNoWrite) {
				if m.seen != nil {
					if h := hintOf(rec); h == nil || !h.same(m.seen) || !h.Lease.Equal(m.seen.Lease) {
						s.reindex(ctx, p, rec, m.seed)
					}
				}
				return nil, nil
			}
			return nil, err
		}
		newKey := rec.waitKey()
		if newKey != "" && newKey != oldKey {
			// Indexed before the write, so that a signal by key never
			// misses a run that has the key.
			if _, err := p.kv.Put(ctx, waitKeyKey(newKey, id), nil); err != nil {
				return nil, fmt.Errorf("jsstore: indexing run %s under wait key %q: %w", id, newKey, err)
			}
		}
		hdr := ""
		if !m.change {
			hdr = st.change
		}
		b, rev, err := s.writeBytes(ctx, p, id, rec, st.rev, hdr)
		if err != nil {
			s.forgetLastData(id)
			if isConflict(err) {
				continue
			}
			return nil, err
		}
		if hdr == "" { // a change: the next write that is none carries it
			hdr = strconv.FormatUint(rev, 10) + ":" + strconv.FormatInt(now.UnixNano(), 10)
		}
		s.lastWrites.set(id, lastWrite{rev: rev, data: b, change: hdr}, !rec.Head.Status.Final())
		if oldKey != "" && oldKey != newKey {
			_ = p.kv.Delete(ctx, waitKeyKey(oldKey, id))
		}
		if after := hintOf(rec); !before.same(after) {
			s.reindex(ctx, p, rec, m.seed)
		}
		return rec, nil
	}
	return nil, fmt.Errorf("%w: run %s: %d writes in a row lost to concurrent ones", driver.ErrConflict, id, maxAttempts)
}
