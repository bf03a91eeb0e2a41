package storagetest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

var createTests = []testCase{
	{"SetsVersionAndLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Version, r.Owner = 7, "engine-a"
		mustCreate(t, h.Store, r, hour)
		if r.Version != 1 {
			t.Fatalf("after Create run.Version = %d, want 1", r.Version)
		}
		wantLeaseAbout(t, "run.LeaseUntil after Create", r.LeaseUntil, hour)
		wantSameRun(t, "Get after Create", r, mustGet(t, h.Store, "r1"))
	}},
	{"WithoutOwnerHasNoLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.LeaseUntil = baseTime // ignored: no owner, no lease
		mustCreate(t, h.Store, r, hour)
		if !r.LeaseUntil.IsZero() || r.Version != 1 {
			t.Fatalf("after Create without owner: LeaseUntil %s, Version %d; want zero time and 1", fmtTime(r.LeaseUntil), r.Version)
		}
		got := mustGet(t, h.Store, "r1")
		if got.Owner != "" || !got.LeaseUntil.IsZero() {
			t.Fatalf("stored run without owner has Owner %q, LeaseUntil %s; want none", got.Owner, fmtTime(got.LeaseUntil))
		}
		wantSameRun(t, "Get after Create", r, got)
	}},
	{"DuplicateID", func(t *testing.T, h Harness) {
		orig := mustCreate(t, h.Store, fullRun("r1"), 0)
		dup := smallRun("r1", "other", flux.StatusPending, baseTime.Add(time.Hour))
		dup.Owner = "engine-b"
		err := h.Store.Create(ctx(t), dup, hour)
		wantErr(t, "Create with a taken ID", err, flux.ErrRunExists)
		if !strings.Contains(err.Error(), "r1") {
			t.Fatalf("ErrRunExists error %q does not name the run r1", err)
		}
		wantSameRun(t, "Get after the duplicate Create", orig, mustGet(t, h.Store, "r1"))
		page := mustList(t, h.Store, flux.Filter{})
		wantIDs(t, "List after the duplicate Create", []string{"r1"}, ids(page.Runs))
	}},
	{"KeepsNoReferenceToCaller", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		mustCreate(t, h.Store, r, 0)
		want := r.Clone()
		r.Status = flux.StatusFailed
		r.Steps[0].Status = flux.StatusPending
		r.Steps[2].Attempts = append(r.Steps[2].Attempts, flux.Attempt{Number: 1})
		wantSameRun(t, "Get after the caller changed its run", want, mustGet(t, h.Store, "r1"))
	}},
}

var getTests = []testCase{
	{"RoundTrip", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		wantSameRun(t, "Get after Create", r, mustGet(t, h.Store, "r1"))

		// A finished run: every optional field set.
		r.Status = flux.StatusFailed
		r.Error = "flux: workflow \"orders\" run r1: step \"charge\" failed on attempt 1: card declined ✗"
		r.Steps[1].Status = flux.StatusFailed
		r.Steps[1].Attempts[0].Duration = 42 * time.Millisecond
		r.Steps[1].Attempts[0].Error = "card declined ✗"
		r.Steps[1].FinishedAt = baseTime.Add(50 * time.Millisecond)
		r.Steps[1].Data = json.RawMessage(`{"charged":false}`)
		r.Data = json.RawMessage(`{"charged":false,"amount":0,"list":[],"obj":{},"nil":null,"s":"\u2028<>&"}`)
		r.UpdatedAt = baseTime.Add(51 * time.Millisecond)
		r.FinishedAt = baseTime.Add(51 * time.Millisecond)
		mustUpdate(t, h.Store, r, hour)
		wantSameRun(t, "Get after Update", r, mustGet(t, h.Store, "r1"))
	}},
	{"ZeroFields", func(t *testing.T, h Harness) {
		// The fewest fields a run can have: no steps, attempts, error,
		// finish time or lease. Zero times must come back zero.
		r := &flux.Run{ID: "r1", Workflow: "w", Status: flux.StatusPending,
			Input: json.RawMessage(`null`), Data: json.RawMessage(`{}`), CreatedAt: baseTime, UpdatedAt: baseTime}
		mustCreate(t, h.Store, r, 0)
		got := mustGet(t, h.Store, "r1")
		wantSameRun(t, "Get of a minimal run", r, got)
		if len(got.Steps) != 0 {
			t.Fatalf("Get of a run without steps gave %d steps", len(got.Steps))
		}
	}},
	{"NotFound", func(t *testing.T, h Harness) {
		mustCreate(t, h.Store, fullRun("r1"), 0)
		_, err := h.Store.Get(ctx(t), "missing-7")
		wantErr(t, "Get of an unknown ID", err, flux.ErrRunNotFound)
		if !strings.Contains(err.Error(), "missing-7") {
			t.Fatalf("ErrRunNotFound error %q does not name the run", err)
		}
	}},
	{"ReturnsCopy", func(t *testing.T, h Harness) {
		mustCreate(t, h.Store, fullRun("r1"), 0)
		got := mustGet(t, h.Store, "r1")
		want := got.Clone()
		got.Status = flux.StatusCompleted
		got.Steps[0].Attempts[0].Number = 99
		got.Steps[2].Status = flux.StatusCompleted
		wantSameRun(t, "Get after the caller changed the previous Get's run", want, mustGet(t, h.Store, "r1"))
	}},
}

var updateTests = []testCase{
	{"IncrementsVersion", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		for want := int64(2); want <= 4; want++ {
			r.Steps[2].Attempts = append(r.Steps[2].Attempts, flux.Attempt{Number: int(want), StartedAt: baseTime.Add(time.Second)})
			r.UpdatedAt = r.UpdatedAt.Add(time.Second)
			mustUpdate(t, h.Store, r, hour)
			if r.Version != want {
				t.Fatalf("after Update run.Version = %d, want %d", r.Version, want)
			}
			wantSameRun(t, "Get after Update", r, mustGet(t, h.Store, "r1"))
		}
	}},
	{"StaleVersionConflicts", func(t *testing.T, h Harness) {
		r := mustCreate(t, h.Store, fullRun("r1"), 0)
		stale := r.Clone()
		r.Status = flux.StatusCompleted
		mustUpdate(t, h.Store, r, 0)
		stale.Status = flux.StatusFailed
		err := h.Store.Update(ctx(t), stale, 0)
		wantErr(t, "Update of version 1 after version 2 was written", err, flux.ErrConflict)
		if stale.Version != 1 {
			t.Fatalf("a failed Update changed run.Version to %d; want it left at 1", stale.Version)
		}
		wantSameRun(t, "Get after the conflicting Update", r, mustGet(t, h.Store, "r1"))
	}},
	{"NewerVersionConflicts", func(t *testing.T, h Harness) {
		r := mustCreate(t, h.Store, fullRun("r1"), 0)
		want := r.Clone()
		r.Version = 5
		wantErr(t, "Update of a version the store does not have", h.Store.Update(ctx(t), r, 0), flux.ErrConflict)
		wantSameRun(t, "Get after the conflicting Update", want, mustGet(t, h.Store, "r1"))
	}},
	{"OtherOwnerLeaseLost", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		want := r.Clone()
		for _, owner := range []string{"engine-b", ""} {
			w := want.Clone()
			w.Owner, w.Status = owner, flux.StatusCancelled
			err := h.Store.Update(ctx(t), w, hour)
			wantErr(t, "Update by owner "+quote(owner)+" of a run engine-a holds", err, flux.ErrLeaseLost)
		}
		wantSameRun(t, "Get after the refused Updates", want, mustGet(t, h.Store, "r1"))
	}},
	{"UnknownRunNotFound", func(t *testing.T, h Harness) {
		err := h.Store.Update(ctx(t), fullRun("missing"), 0)
		wantErr(t, "Update of an unknown run", err, flux.ErrRunNotFound)
		_, err = h.Store.Get(ctx(t), "missing")
		wantErr(t, "Get after Update of an unknown run", err, flux.ErrRunNotFound)
	}},
	{"ExtendsLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		mustUpdate(t, h.Store, r, 3*hour)
		wantLeaseAbout(t, "run.LeaseUntil after Update with a 3h lease", r.LeaseUntil, 3*hour)
		got := mustGet(t, h.Store, "r1")
		wantSameRun(t, "Get after Update", r, got)
	}},
	{"KeepsLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		lease := r.LeaseUntil
		r.LeaseUntil = baseTime // not what is stored: Update must ignore it
		mustUpdate(t, h.Store, r, 0)
		if !sameTime(r.LeaseUntil, lease) {
			t.Fatalf("after Update with lease 0 run.LeaseUntil = %s, want the stored %s", fmtTime(r.LeaseUntil), fmtTime(lease))
		}
		got := mustGet(t, h.Store, "r1")
		if got.Owner != "engine-a" || !sameTime(got.LeaseUntil, lease) {
			t.Fatalf("after Update with lease 0 the stored lease is %q until %s, want engine-a until %s", got.Owner, fmtTime(got.LeaseUntil), fmtTime(lease))
		}
	}},
	{"ReleasesLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		r.Status = flux.StatusCompleted
		mustUpdate(t, h.Store, r, flux.ReleaseLease)
		if r.Owner != "" || !r.LeaseUntil.IsZero() || r.Version != 2 {
			t.Fatalf("after Update with ReleaseLease: Owner %q, LeaseUntil %s, Version %d; want none, zero time, 2", r.Owner, fmtTime(r.LeaseUntil), r.Version)
		}
		wantSameRun(t, "Get after releasing the lease", r, mustGet(t, h.Store, "r1"))
		// Released, the run is free for anyone.
		c := mustClaim(t, h.Store, flux.ClaimParams{ID: "r1", Owner: "engine-b", Lease: hour})
		if c.Owner != "engine-b" {
			t.Fatalf("Claim of a released run gave owner %q, want engine-b", c.Owner)
		}
	}},
	{"UnownedAcceptsWrite", func(t *testing.T, h Harness) {
		r := mustCreate(t, h.Store, fullRun("r1"), 0)
		r.Status = flux.StatusCancelled
		mustUpdate(t, h.Store, r, 0) // "" writes to ""
		wantSameRun(t, "Get after an unowned Update", r, mustGet(t, h.Store, "r1"))

		r.Owner = "engine-a"
		r.Status = flux.StatusRunning
		mustUpdate(t, h.Store, r, hour) // an owner writes to ""
		if r.Version != 3 {
			t.Fatalf("run.Version = %d after two Updates, want 3", r.Version)
		}
		wantLeaseAbout(t, "run.LeaseUntil after an owner's Update of an unowned run", r.LeaseUntil, hour)
		wantSameRun(t, "Get after an owner's Update of an unowned run", r, mustGet(t, h.Store, "r1"))
	}},
	{"ExpiredOwnerMayWrite", func(t *testing.T, h Harness) {
		// An expired lease no one took over still lets its owner write:
		// only another owner's claim takes a run away.
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, time.Nanosecond)
		r.Status = flux.StatusCompleted
		mustUpdate(t, h.Store, r, hour)
		wantSameRun(t, "Get after the expired owner's Update", r, mustGet(t, h.Store, "r1"))
	}},
	{"KeepsNoReferenceToCaller", func(t *testing.T, h Harness) {
		r := mustCreate(t, h.Store, fullRun("r1"), 0)
		r.Status = flux.StatusCompleted
		mustUpdate(t, h.Store, r, 0)
		want := r.Clone()
		r.Status = flux.StatusFailed
		r.Steps[2].Status = flux.StatusFailed
		r.Steps[1].Attempts = append(r.Steps[1].Attempts, flux.Attempt{Number: 2})
		r.Data = json.RawMessage(`{"replaced":true}`)
		wantSameRun(t, "Get after the caller changed its run", want, mustGet(t, h.Store, "r1"))
	}},
}

func quote(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
