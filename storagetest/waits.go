package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// Waiting runs: a Checkpoint to status waiting that gives the lease up
// parks the run until its WakeAt (or a signal, see signals.go).

// sameMicro reports whether a and b are the same instant to the
// microsecond, the precision of the times a store keeps (PostgreSQL keeps
// microseconds); a zero time must stay zero.
func sameMicro(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	return a.Sub(b).Abs() <= time.Microsecond
}

// wantMicro fails unless got is want to the microsecond.
func wantMicro(t *testing.T, what string, want, got time.Time) {
	t.Helper()
	if !sameMicro(want, got) {
		t.Fatalf("%s: got %s, want %s (to the microsecond)", what, fmtTime(got), fmtTime(want))
	}
}

// leasedRun creates run id of workflow wf, created at created, running and
// leased to engine-a for an hour.
func leasedRun(t *testing.T, s flux.Storage, id, wf string, created time.Time) *flux.Run {
	t.Helper()
	r := smallRun(id, wf, flux.StatusRunning, created)
	r.Owner = "engine-a"
	return mustCreate(t, s, r, hour)
}

// waitParams returns the Checkpoint by r's owner that makes r wait: status
// waiting, lease given up, waking at wake (zero: by a signal only), for
// events of key, having seen seen signals. It sets r.Status.
func waitParams(r *flux.Run, wake time.Time, key string, seen int64) driver.CheckpointParams {
	r.Status = flux.StatusWaiting
	p := checkpoint(r, driver.ReleaseLease, counts(r))
	p.Nodes = nil
	p.Header.WakeAt, p.Header.WaitKey, p.Header.SignalSeq = wake, key, seen
	return p
}

// mustWait writes waitParams and records in r what it left: the new
// version, no owner or lease, WakeAt and WaitKey.
func mustWait(t *testing.T, s flux.Storage, r *flux.Run, wake time.Time, key string, seen int64) {
	t.Helper()
	mustWrite(t, s, r, waitParams(r, wake, key, seen))
	r.Owner, r.LeaseUntil, r.WakeAt, r.WaitKey = "", time.Time{}, wake, key
}

// waitState is what the tests of waiting runs check of a stored run.
type waitState struct {
	Status    flux.Status
	Owner     string
	Version   int64
	WakeAt    time.Time
	WaitKey   string
	SignalSeq int64
}

// wantWait fails unless got's status, owner, version, WakeAt (to the
// microsecond), WaitKey and SignalSeq are want's.
func wantWait(t *testing.T, what string, got *flux.Run, want waitState) {
	t.Helper()
	have := waitState{got.Status, got.Owner, got.Version, got.WakeAt, got.WaitKey, got.SignalSeq}
	if !sameMicro(want.WakeAt, have.WakeAt) || (want.Status != have.Status || want.Owner != have.Owner ||
		want.Version != have.Version || want.WaitKey != have.WaitKey || want.SignalSeq != have.SignalSeq) {
		t.Fatalf("%s: run %s has %s, want %s", what, got.ID, fmtWait(have), fmtWait(want))
	}
}

func fmtWait(w waitState) string {
	return fmt.Sprintf("status %s, owner %q, version %d, WakeAt %s, WaitKey %q, SignalSeq %d",
		w.Status, w.Owner, w.Version, fmtTime(w.WakeAt), w.WaitKey, w.SignalSeq)
}

// claimWorkflows claims every claimable run of workflows for owner with an
// hour's lease; it fails on an error or a corrupt run.
func claimWorkflows(t *testing.T, s flux.Storage, owner string, workflows ...string) *driver.ClaimedRuns {
	t.Helper()
	c, err := s.ClaimExpired(ctx(t), driver.ClaimExpiredParams{Owner: owner, Workflows: workflows, Lease: hour, Limit: 100})
	if err != nil {
		t.Fatalf("ClaimExpired for %s of %v: %v", owner, workflows, err)
	}
	if c == nil {
		t.Fatalf("ClaimExpired for %s of %v returned nil and no error", owner, workflows)
	}
	if len(c.Corrupt) > 0 {
		t.Fatalf("ClaimExpired reported corrupt runs in a store with none: %v", c.Corrupt)
	}
	return c
}

var waitTests = []testCase{
	{"WakeInTheFuture", func(t *testing.T, h Harness) {
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		wake := time.Now().Add(hour)
		mustWait(t, s, r, wake, "", 0)
		got := mustGet(t, s, "r1")
		want := waitState{Status: flux.StatusWaiting, Version: 2, WakeAt: wake}
		wantWait(t, "Get of a run waiting for an hour", got, want)
		if !got.LeaseUntil.IsZero() {
			t.Fatalf("a waiting run has a lease until %s, want none", fmtTime(got.LeaseUntil))
		}
		wantSameRun(t, "Get of a waiting run", r, got)
		c := claimWorkflows(t, s, "engine-b", "w")
		if len(c.Runs) != 0 {
			t.Fatalf("ClaimExpired claimed %v, waiting for an hour; want none", ids(c.Runs))
		}
		wantMicro(t, "ClaimedRuns.NextWake with one run waiting for an hour", wake, c.NextWake)
		wantWait(t, "Get after ClaimExpired", mustGet(t, s, "r1"), want)
	}},
	{"WakeInThePast", func(t *testing.T, h Harness) {
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		payload := []byte(`{"n":1}`)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "note", Payload: payload, At: baseTime}, 1)
		wake := time.Now().Add(-hour)
		mustWait(t, s, r, wake, "order-1", 1)
		c := claimWorkflows(t, s, "engine-b", "w")
		wantIDs(t, "ClaimExpired of a run whose wake time passed", []string{"r1"}, ids(c.Runs))
		got := c.Runs[0]
		want := waitState{Status: flux.StatusWaiting, Owner: "engine-b", Version: 3, WakeAt: wake, WaitKey: "order-1", SignalSeq: 1}
		wantWait(t, "the run ClaimExpired returned", got, want)
		wantLeaseAbout(t, "lease of the woken run", got.LeaseUntil, hour)
		r.Owner, r.Version, r.LeaseUntil = "engine-b", 3, got.LeaseUntil
		wantSameRun(t, "the run ClaimExpired returned", r, got)
		sig := []driver.Signal{{Seq: 1, Name: "note", Payload: payload, SentAt: baseTime, Node: -1}}
		wantSignals(t, "Signals of the run ClaimExpired returned", sig, got.Signals)
		if !c.NextWake.IsZero() {
			t.Fatalf("ClaimedRuns.NextWake = %s with no run left waiting, want zero", fmtTime(c.NextWake))
		}
		stored := mustGet(t, s, "r1")
		wantWait(t, "Get of the woken run", stored, want)
		wantSignals(t, "Get of the woken run", sig, stored.Signals)
		if c := claimWorkflows(t, s, "engine-c", "w"); len(c.Runs) != 0 {
			t.Fatalf("a second ClaimExpired claimed %v, which engine-b holds for an hour", ids(c.Runs))
		}
	}},
	{"WakeNever", func(t *testing.T, h Harness) {
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		mustWait(t, s, r, time.Time{}, "", 0)
		want := waitState{Status: flux.StatusWaiting, Version: 2}
		wantWait(t, "Get of a run waiting for a signal only", mustGet(t, s, "r1"), want)
		c := claimWorkflows(t, s, "engine-b", "w")
		if len(c.Runs) != 0 || !c.NextWake.IsZero() {
			t.Fatalf("ClaimExpired with a run waiting for a signal only claimed %v, NextWake %s; want none, zero", ids(c.Runs), fmtTime(c.NextWake))
		}
		wantWait(t, "Get after ClaimExpired", mustGet(t, s, "r1"), want)
	}},
	{"NextWakeIsTheEarliestOfTheWorkflows", func(t *testing.T, h Harness) {
		s := h.Store
		now := time.Now()
		for _, w := range []struct {
			id, wf string
			wake   time.Time
		}{
			{"late", "w", now.Add(2 * hour)},
			{"soon", "w", now.Add(hour)},
			{"signal-only", "w", time.Time{}},
			{"due", "w", now.Add(-hour)},
			{"other", "v", now.Add(hour / 2)},
		} {
			mustWait(t, s, leasedRun(t, s, w.id, w.wf, listBase), w.wake, "", 0)
		}
		leasedRun(t, s, "running", "w", listBase)
		c := claimWorkflows(t, s, "engine-b", "w")
		wantIDs(t, "ClaimExpired of w", []string{"due"}, ids(c.Runs))
		wantMicro(t, "NextWake of w", now.Add(hour), c.NextWake)
		c = claimWorkflows(t, s, "engine-b", "w", "v")
		wantIDs(t, "ClaimExpired of w and v", nil, ids(c.Runs))
		wantMicro(t, "NextWake of w and v", now.Add(hour/2), c.NextWake)
	}},
	{"WakeAtOnlyWhileWaiting", func(t *testing.T, h Harness) {
		// A WakeAt written with another status is not kept: stored 0.
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		p := checkpoint(r, hour, counts(r))
		p.Header.WakeAt = time.Now().Add(-hour)
		mustWrite(t, s, r, p)
		wantWait(t, "Get of a running run written with a WakeAt", mustGet(t, s, "r1"),
			waitState{Status: flux.StatusRunning, Owner: "engine-a", Version: 2})

		// Woken and running again, a run has no WakeAt.
		mustWait(t, s, r, time.Now().Add(-hour), "", 0)
		c := claimWorkflows(t, s, "engine-b", "w")
		wantIDs(t, "ClaimExpired of the due run", []string{"r1"}, ids(c.Runs))
		b := c.Runs[0]
		b.Status = flux.StatusRunning
		mustCheckpoint(t, s, b, hour, counts(b))
		wantWait(t, "Get of the woken run running again", mustGet(t, s, "r1"),
			waitState{Status: flux.StatusRunning, Owner: "engine-b", Version: 5})
		if c := claimWorkflows(t, s, "engine-c", "w"); len(c.Runs) != 0 || !c.NextWake.IsZero() {
			t.Fatalf("ClaimExpired of a running run under a live lease gave %v, NextWake %s; want none, zero", ids(c.Runs), fmtTime(c.NextWake))
		}
	}},
	{"WokenRunWhoseLeaseExpired", func(t *testing.T, h Harness) {
		// A due run claimed by an engine that dies is claimed again once
		// the lease expires.
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		mustWait(t, s, r, time.Now().Add(-hour), "", 0)
		runs, err := claimExpired(s, t, driver.ClaimExpiredParams{Owner: "engine-b", Workflows: []string{"w"}, Lease: time.Nanosecond, Limit: 10})
		if err != nil {
			t.Fatalf("ClaimExpired: %v", err)
		}
		wantIDs(t, "ClaimExpired of the due run", []string{"r1"}, ids(runs))
		eventually(t, "claiming the woken run after its 1ns lease", func() (bool, error) {
			runs, err := claimExpired(s, t, driver.ClaimExpiredParams{Owner: "engine-c", Workflows: []string{"w"}, Lease: hour, Limit: 10})
			return len(runs) == 1 && runs[0].ID == "r1" && runs[0].Owner == "engine-c", err
		})
		wantWait(t, "Get of the run taken over", mustGet(t, s, "r1"),
			waitState{Status: flux.StatusWaiting, Owner: "engine-c", Version: 4, WakeAt: r.WakeAt})
	}},
	{"OldestFirst", func(t *testing.T, h Harness) {
		s := h.Store
		mustCreate(t, s, smallRun("pending", "w", flux.StatusPending, listBase.Add(2*time.Second)), 0)
		mustWait(t, s, leasedRun(t, s, "waiting", "w", listBase), time.Now().Add(-hour), "", 0)
		mustCreate(t, s, smallRun("running", "w", flux.StatusRunning, listBase.Add(time.Second)), 0)
		mustWait(t, s, leasedRun(t, s, "signalled", "w", listBase.Add(3*time.Second)), time.Time{}, "", 0)
		mustSignal(t, s, driver.SignalParams{RunID: "signalled", Name: "go", At: baseTime}, 1)
		c := claimWorkflows(t, s, "engine-b", "w")
		wantIDs(t, "ClaimExpired: oldest first", []string{"waiting", "running", "pending", "signalled"}, ids(c.Runs))
	}},
	{"ListReturnsTheHeader", func(t *testing.T, h Harness) {
		s := h.Store
		r := smallRun("r1", "w", flux.StatusRunning, listBase)
		r.Owner, r.ConcurrencyKey = "engine-a", "tenant-7"
		mustCreate(t, s, r, hour)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "note", At: baseTime}, 1)
		wake := time.Now().Add(hour)
		mustWait(t, s, r, wake, "order-1", 1)
		page := mustList(t, s, flux.Filter{})
		wantIDs(t, "List", []string{"r1"}, ids(page.Runs))
		got := page.Runs[0]
		wantWait(t, "List of a waiting run", got,
			waitState{Status: flux.StatusWaiting, Version: 2, WakeAt: wake, WaitKey: "order-1", SignalSeq: 1})
		if got.ConcurrencyKey != "tenant-7" {
			t.Fatalf("List gives ConcurrencyKey %q, want tenant-7", got.ConcurrencyKey)
		}
		if len(got.Signals) != 0 {
			t.Fatalf("List gives %d signals, want none: it returns headers", len(got.Signals))
		}
	}},
	{"Cancel", func(t *testing.T, h Harness) {
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		mustWait(t, s, r, time.Now().Add(-hour), "order-1", 0)
		at := baseTime.Add(time.Minute)
		if err := s.Cancel(ctx(t), driver.CancelParams{ID: "r1", Error: "flux: run cancelled", At: at}); err != nil {
			t.Fatalf("Cancel of a waiting run: %v", err)
		}
		got := mustGet(t, s, "r1")
		if got.Status != flux.StatusCancelled || got.Owner != "" || got.Version != 3 || !sameTime(got.FinishedAt, at) {
			t.Fatalf("Get after Cancel of a waiting run: status %s, owner %q, version %d, finished %s; want cancelled, none, 3, %s",
				got.Status, got.Owner, got.Version, fmtTime(got.FinishedAt), fmtTime(at))
		}
		if c := claimWorkflows(t, s, "engine-b", "w"); len(c.Runs) != 0 || !c.NextWake.IsZero() {
			t.Fatalf("ClaimExpired after Cancel of a due waiting run gave %v, NextWake %s; want none, zero", ids(c.Runs), fmtTime(c.NextWake))
		}
		_, err := signaler(t, s).Signal(ctx(t), driver.SignalParams{RunID: "r1", Name: "late", At: baseTime})
		wantErr(t, "Signal of a cancelled waiting run", err, flux.ErrRunFinished)
		n, err := signaler(t, s).Signal(ctx(t), driver.SignalParams{WaitKey: "order-1", Name: "late", At: baseTime})
		if err != nil || n != 0 {
			t.Fatalf("Signal by WaitKey of a cancelled run's key: %d, %v; want 0, nil", n, err)
		}
	}},
}
