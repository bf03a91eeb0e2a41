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
// fills it in the middle of a run.
func fullRun(id string) *flux.Run {
	t0 := baseTime
	return &flux.Run{
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
				Data:       json.RawMessage(`{"reserved":3}`),
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
}

// smallRun returns a minimal run of workflow wf created at created.
func smallRun(id, wf string, status flux.Status, created time.Time) *flux.Run {
	return &flux.Run{
		ID: id, Workflow: wf, Fingerprint: "fp", Status: status,
		Input: json.RawMessage(`{}`), Data: json.RawMessage(`{"n":1}`),
		Steps:     []flux.StepState{{Name: "only", Kind: flux.KindStep, Status: flux.StatusPending}},
		CreatedAt: created, UpdatedAt: created,
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

func mustCreate(t *testing.T, s flux.Storage, r *flux.Run, lease time.Duration) *flux.Run {
	t.Helper()
	if err := s.Create(ctx(t), r, lease); err != nil {
		t.Fatalf("Create(%s): %v", r.ID, err)
	}
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

func mustUpdate(t *testing.T, s flux.Storage, r *flux.Run, lease time.Duration) {
	t.Helper()
	if err := s.Update(ctx(t), r, lease); err != nil {
		t.Fatalf("Update(%s, version %d, owner %q): %v", r.ID, r.Version, r.Owner, err)
	}
}

func mustClaim(t *testing.T, s flux.Storage, p flux.ClaimParams) *flux.Run {
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
		r, err := s.Claim(ctx(t), flux.ClaimParams{ID: id, Owner: owner, Lease: lease})
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
		js(p+"Data", ws.Data, gs.Data)
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
