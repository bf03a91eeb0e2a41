package storagetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// hour is the lease of runs that must stay leased for the whole test.
const hour = time.Hour

// clockSkew is how far the store's clock (a database server's, say) may be
// from the test's when a lease is checked.
const clockSkew = time.Minute

// zone makes fixture times carry a zone other than UTC and Local, so that a
// store comparing or ordering times by their text would be caught.
var zone = time.FixedZone("UTC+5:30", 5*3600+1800)

// baseTime is a fixed creation time with a sub-millisecond part.
var baseTime = time.Date(2025, 3, 14, 15, 9, 26, 535897932, zone)

// fullRun returns a run with every field of flux.Run set, the way the engine
// fills it in the middle of a run: node reserve completed (after a failed
// attempt), commit charge in flight after an interrupted attempt, notify
// pending. Its Data is the data after reserve; see createParams.
func fullRun(id string) *flux.Run {
	t0 := baseTime
	r := &flux.Run{
		ID:          id,
		Workflow:    "orders",
		Fingerprint: "sha256:5f2b7c",
		Status:      flux.StatusRunning,
		Input:       json.RawMessage(`{"orderId":"o-1","qty":3,"tags":["a","b"],"note":"caf\u00e9 \"quoted\"\n"}`),
		Data:        json.RawMessage(`{"charged":true,"amount":12.5,"big":9007199254740993,"nested":{"k":[1,2,3]}}`),
		Steps: []flux.StepState{
			{
				Name: "reserve", Kind: flux.KindStep, Status: flux.StatusCompleted,
				Attempts: []flux.Attempt{
					{Number: 1, StartedAt: t0.Add(time.Millisecond), Duration: 1500 * time.Microsecond, Error: "stock service: 503 — retry", Stack: "goroutine 7 [running]:\nmain.reserve()\n\t/src/x.go:12"},
					{Number: 2, StartedAt: t0.Add(5 * time.Millisecond), Duration: 2 * time.Millisecond},
				},
				StartedAt:  t0.Add(time.Millisecond),
				FinishedAt: t0.Add(7 * time.Millisecond),
			},
			{
				Name: "charge", Kind: flux.KindCommit, Status: flux.StatusRunning,
				Attempts: []flux.Attempt{{Number: 1, StartedAt: t0.Add(8 * time.Millisecond), Interrupted: true,
					Error: "interrupted: the engine executing the run stopped"}},
				StartedAt: t0.Add(8 * time.Millisecond),
				InFlight:  t0.Add(9 * time.Millisecond),
			},
			{Name: "notify", Kind: flux.KindStep, Status: flux.StatusPending},
		},
		CreatedAt: t0,
		UpdatedAt: t0.Add(8 * time.Millisecond),
	}
	r.Summary = driver.Summarize(r.Steps)
	return r
}

// initialData is the data before the first node of the fixture runs.
var initialData = json.RawMessage(`{"charged":false}`)

// smallRun returns a minimal run of workflow wf created at created, its one
// node pending.
func smallRun(id, wf string, status flux.Status, created time.Time) *flux.Run {
	r := &flux.Run{
		ID: id, Workflow: wf, Fingerprint: "fp", Status: status,
		Input: json.RawMessage(`{}`), Data: bytes.Clone(initialData),
		Steps:     []flux.StepState{{Name: "only", Kind: flux.KindStep, Status: flux.StatusPending}},
		CreatedAt: created, UpdatedAt: created,
	}
	if status.Final() {
		r.FinishedAt = created.Add(time.Second)
	}
	r.Summary = driver.Summarize(r.Steps)
	return r
}

func ctx(t *testing.T) context.Context { return t.Context() }

// createParams returns the Create of r as Get should return it: the data
// before its first node is initialData, and its last completed node, if it
// has one, left r.Data (as a snapshot; the nodes completed before it, a
// data of their own).
func createParams(r *flux.Run, lease time.Duration) driver.CreateParams {
	head := *r
	head.Data = bytes.Clone(initialData)
	last := -1
	for i, s := range r.Steps {
		if s.Status == flux.StatusCompleted {
			last = i
		}
	}
	var data []driver.NodeData
	for i, s := range r.Steps {
		switch {
		case i == last:
			data = append(data, driver.NodeData{Index: i, Snapshot: bytes.Clone(r.Data)})
		case s.Status == flux.StatusCompleted:
			data = append(data, driver.NodeData{Index: i, Snapshot: json.RawMessage(fmt.Sprintf(`{"after":%d}`, i))})
		}
	}
	if last < 0 {
		head.Data = r.Data
	}
	return driver.CreateParams{Run: &head, Data: data, Lease: lease}
}

// mustCreate creates r (see createParams) and sets its version and lease
// as the store reports them.
func mustCreate(t *testing.T, s flux.Storage, r *flux.Run, lease time.Duration) *flux.Run {
	t.Helper()
	w, err := s.Create(ctx(t), createParams(r, lease))
	if err != nil {
		t.Fatalf("Create(%s): %v", r.ID, err)
	}
	if w.Version != 1 {
		t.Fatalf("Create(%s) reported version %d, want 1", r.ID, w.Version)
	}
	r.Version, r.LeaseUntil = w.Version, w.LeaseUntil
	return r
}

func mustGet(t *testing.T, s flux.Storage, id string) *flux.Run {
	t.Helper()
	r, err := s.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	if r == nil {
		t.Fatalf("Get(%s) returned nil and no error", id)
	}
	return r
}

// checkpoint returns the Checkpoint that writes r's header and every node of
// it, with the attempts of each past the first skip.
func checkpoint(r *flux.Run, lease time.Duration, skip map[int]int) driver.CheckpointParams {
	p := driver.CheckpointParams{ID: r.ID, Owner: r.Owner, Version: r.Version, Lease: lease,
		Header: &driver.Header{Status: r.Status, Error: r.Error, Fingerprint: r.Fingerprint, UpdatedAt: r.UpdatedAt,
			FinishedAt: r.FinishedAt, Summary: r.Summary, Nodes: len(r.Steps)}}
	for i, s := range r.Steps {
		p.Nodes = append(p.Nodes, driver.NodeChange{Index: i, Name: s.Name, Kind: s.Kind, Status: s.Status,
			StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, InFlight: s.InFlight, Attempts: s.Attempts[min(skip[i], len(s.Attempts)):]})
	}
	return p
}

// mustCheckpoint writes r's header and nodes, none of its recorded attempts
// again (n, how many each node had when last written), and records the new
// version, owner and lease in r.
func mustCheckpoint(t *testing.T, s flux.Storage, r *flux.Run, lease time.Duration, n map[int]int) {
	t.Helper()
	w, err := s.Checkpoint(ctx(t), checkpoint(r, lease, n))
	if err != nil {
		t.Fatalf("Checkpoint(%s, version %d, owner %q): %v", r.ID, r.Version, r.Owner, err)
	}
	r.Version, r.LeaseUntil = w.Version, w.LeaseUntil
	if lease < 0 {
		r.Owner = ""
	}
}

// counts returns how many attempts each node of r has.
func counts(r *flux.Run) map[int]int {
	n := map[int]int{}
	for i, s := range r.Steps {
		n[i] = len(s.Attempts)
	}
	return n
}

func mustClaim(t *testing.T, s flux.Storage, p driver.ClaimParams) *flux.Run {
	t.Helper()
	r, err := s.Claim(ctx(t), p)
	if err != nil {
		t.Fatalf("Claim(%s, owner %q): %v", p.ID, p.Owner, err)
	}
	if r == nil {
		t.Fatalf("Claim(%s) returned nil and no error", p.ID)
	}
	return r
}

func mustList(t *testing.T, s flux.Storage, f flux.Filter) *flux.RunPage {
	t.Helper()
	p, err := s.List(ctx(t), f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	if p == nil {
		t.Fatalf("List(%+v) returned nil and no error", f)
	}
	if len(p.Corrupt) > 0 {
		t.Fatalf("List(%+v) reported corrupt runs in a store with none: %v", f, p.Corrupt)
	}
	return p
}

func mustNodeData(t *testing.T, s flux.Storage, id string, i int) json.RawMessage {
	t.Helper()
	d, err := s.NodeData(ctx(t), driver.NodeDataParams{ID: id, Index: i})
	if err != nil {
		t.Fatalf("NodeData(%s, %d): %v", id, i, err)
	}
	return d
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

// eventually calls f until it reports done, failing the test after a
// deadline. It is for lease expiry, which a store may judge by a clock
// coarser than the one-nanosecond leases the tests use.
func eventually(t *testing.T, what string, f func() (done bool, err error)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		done, err := f()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not done after 10s", what)
		}
		runtime.Gosched()
	}
}

// claimAfterExpiry claims run id for owner once the current lease, of one
// nanosecond, has expired.
func claimAfterExpiry(t *testing.T, s flux.Storage, id, owner string, lease time.Duration) *flux.Run {
	t.Helper()
	var got *flux.Run
	eventually(t, fmt.Sprintf("claiming %s for %s after its 1ns lease", id, owner), func() (bool, error) {
		r, err := s.Claim(ctx(t), driver.ClaimParams{ID: id, Owner: owner, Lease: lease})
		if errors.Is(err, flux.ErrRunActive) {
			return false, nil
		}
		got = r
		return err == nil, err
	})
	return got
}

// wantLeaseAbout fails unless until is about now + d by the store's clock.
func wantLeaseAbout(t *testing.T, what string, until time.Time, d time.Duration) {
	t.Helper()
	now := time.Now()
	if until.Before(now.Add(d-clockSkew)) || until.After(now.Add(d+clockSkew)) {
		t.Fatalf("%s: lease until %s, want about now + %s = %s", what, fmtTime(until), d, fmtTime(now.Add(d)))
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero time"
	}
	return t.Format(time.RFC3339Nano)
}

// wantSameRun fails unless got is want as stored: every field equal, times
// to the millisecond, JSON by value.
func wantSameRun(t *testing.T, what string, want, got *flux.Run) {
	t.Helper()
	if d := diffRun(want, got); len(d) > 0 {
		t.Fatalf("%s: stored run differs from the one written:\n  %s", what, strings.Join(d, "\n  "))
	}
}

func diffRun(want, got *flux.Run) []string {
	if got == nil {
		return []string{"got nil run"}
	}
	var d []string
	add := func(field string, w, g any) { d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w)) }
	eq := func(field string, w, g any) {
		if !reflect.DeepEqual(w, g) {
			add(field, w, g)
		}
	}
	tm := func(field string, w, g time.Time) {
		if !sameTime(w, g) {
			add(field, fmtTime(w), fmtTime(g))
		}
	}
	js := func(field string, w, g json.RawMessage) {
		if !sameJSON(w, g) {
			add(field, string(w), string(g))
		}
	}
	eq("ID", want.ID, got.ID)
	eq("Workflow", want.Workflow, got.Workflow)
	eq("Fingerprint", want.Fingerprint, got.Fingerprint)
	eq("Status", want.Status, got.Status)
	js("Input", want.Input, got.Input)
	js("Data", want.Data, got.Data)
	eq("Error", want.Error, got.Error)
	tm("CreatedAt", want.CreatedAt, got.CreatedAt)
	tm("UpdatedAt", want.UpdatedAt, got.UpdatedAt)
	tm("FinishedAt", want.FinishedAt, got.FinishedAt)
	eq("Summary", want.Summary, got.Summary)
	eq("Version", want.Version, got.Version)
	eq("Owner", want.Owner, got.Owner)
	tm("LeaseUntil", want.LeaseUntil, got.LeaseUntil)
	if len(want.Steps) != len(got.Steps) {
		add("len(Steps)", len(want.Steps), len(got.Steps))
		return d
	}
	for i, ws := range want.Steps {
		gs := got.Steps[i]
		p := fmt.Sprintf("Steps[%d].", i)
		eq(p+"Name", ws.Name, gs.Name)
		eq(p+"Kind", ws.Kind, gs.Kind)
		eq(p+"Status", ws.Status, gs.Status)
		tm(p+"StartedAt", ws.StartedAt, gs.StartedAt)
		tm(p+"FinishedAt", ws.FinishedAt, gs.FinishedAt)
		tm(p+"InFlight", ws.InFlight, gs.InFlight)
		if len(ws.Attempts) != len(gs.Attempts) {
			add(p+"len(Attempts)", len(ws.Attempts), len(gs.Attempts))
			continue
		}
		for j, wa := range ws.Attempts {
			ga := gs.Attempts[j]
			q := fmt.Sprintf("%sAttempts[%d].", p, j)
			eq(q+"Number", wa.Number, ga.Number)
			tm(q+"StartedAt", wa.StartedAt, ga.StartedAt)
			eq(q+"Duration", wa.Duration, ga.Duration)
			eq(q+"Error", wa.Error, ga.Error)
			eq(q+"Stack", wa.Stack, ga.Stack)
			eq(q+"Interrupted", wa.Interrupted, ga.Interrupted)
		}
	}
	return d
}

// sameTime reports whether a and b are the same instant to the millisecond;
// a zero time must stay zero.
func sameTime(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	return a.Sub(b).Abs() < time.Millisecond
}

// sameJSON reports whether a and b hold the same JSON value; absent and null
// are the same.
func sameJSON(a, b json.RawMessage) bool {
	va, oka := decodeJSON(a)
	vb, okb := decodeJSON(b)
	if !oka || !okb {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(va, vb)
}

func decodeJSON(m json.RawMessage) (any, bool) {
	if len(bytes.TrimSpace(m)) == 0 {
		return nil, true
	}
	dec := json.NewDecoder(bytes.NewReader(m))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	return v, true
}

func ids(runs []*flux.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

func wantIDs(t *testing.T, what string, want, got []string) {
	t.Helper()
	if !slices.Equal(want, got) {
		t.Fatalf("%s: got runs %v, want %v", what, got, want)
	}
}

// wantSameSet fails unless want and got hold the same IDs in any order.
func wantSameSet(t *testing.T, what string, want, got []string) {
	t.Helper()
	w, g := slices.Clone(want), slices.Clone(got)
	slices.Sort(w)
	slices.Sort(g)
	if !slices.Equal(w, g) {
		t.Fatalf("%s: got %v, want %v (in any order)", what, g, w)
	}
}
