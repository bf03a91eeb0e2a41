package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// Concurrency limits: ClaimExpiredParams.Limits bound how many runs of a
// workflow execute at once, in all and per concurrency key.

// pendingRun creates a free pending run of workflow wf with concurrency
// key key, created i seconds after listBase.
func pendingRun(t *testing.T, s flux.Storage, id, wf, key string, i int) *flux.Run {
	t.Helper()
	r := smallRun(id, wf, flux.StatusPending, listBase.Add(time.Duration(i)*time.Second))
	r.ConcurrencyKey = key
	return mustCreate(t, s, r, 0)
}

// claimLimited claims for owner the runs of workflows lim and free, with
// the given limits.
func claimLimited(t *testing.T, s flux.Storage, owner string, limits ...driver.Limit) []*flux.Run {
	t.Helper()
	c, err := s.ClaimExpired(ctx(t), driver.ClaimExpiredParams{Owner: owner, Workflows: []string{"lim", "free"},
		Lease: hour, Limit: 100, Limits: limits})
	if err != nil {
		t.Fatalf("ClaimExpired for %s with limits %+v: %v", owner, limits, err)
	}
	if len(c.Corrupt) > 0 {
		t.Fatalf("ClaimExpired reported corrupt runs in a store with none: %v", c.Corrupt)
	}
	return c.Runs
}

// finish completes claimed run r, by its owner.
func finish(t *testing.T, s flux.Storage, r *flux.Run) {
	t.Helper()
	r.Status, r.FinishedAt = flux.StatusCompleted, baseTime
	mustCheckpoint(t, s, r, driver.ReleaseLease, counts(r))
}

// byID returns the run of runs with the given ID, failing if there is none.
func byID(t *testing.T, runs []*flux.Run, id string) *flux.Run {
	t.Helper()
	for _, r := range runs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("run %s is not among %v", id, ids(runs))
	return nil
}

var limitTests = []testCase{
	{"PerKey", func(t *testing.T, h Harness) {
		s := h.Store
		pendingRun(t, s, "a1", "lim", "a", 0)
		pendingRun(t, s, "a2", "lim", "a", 1)
		pendingRun(t, s, "b1", "lim", "b", 2)
		lim := driver.Limit{Workflow: "lim", PerKey: 1}
		runs := claimLimited(t, s, "engine-a", lim)
		wantSameSet(t, "ClaimExpired with PerKey 1", []string{"a1", "b1"}, ids(runs))
		if again := claimLimited(t, s, "engine-b", lim); len(again) != 0 {
			t.Fatalf("ClaimExpired with PerKey 1 and a1, b1 executing claimed %v", ids(again))
		}
		if r := mustGet(t, s, "a2"); r.Owner != "" || r.Version != 1 {
			t.Fatalf("run a2, over the limit, was changed: owner %q version %d", r.Owner, r.Version)
		}
		finish(t, s, byID(t, runs, "a1"))
		wantIDs(t, "ClaimExpired with PerKey 1 after a1 completed", []string{"a2"}, ids(claimLimited(t, s, "engine-b", lim)))
	}},
	{"Max", func(t *testing.T, h Harness) {
		s := h.Store
		for i, id := range []string{"x1", "y1", "z1"} {
			pendingRun(t, s, id, "lim", id[:1], i)
		}
		lim := driver.Limit{Workflow: "lim", Max: 2}
		runs := claimLimited(t, s, "engine-a", lim)
		wantSameSet(t, "ClaimExpired with Max 2 (the oldest two)", []string{"x1", "y1"}, ids(runs))
		if again := claimLimited(t, s, "engine-b", lim); len(again) != 0 {
			t.Fatalf("ClaimExpired with Max 2 and two executing claimed %v", ids(again))
		}
		finish(t, s, byID(t, runs, "y1"))
		wantIDs(t, "ClaimExpired with Max 2 after y1 completed", []string{"z1"}, ids(claimLimited(t, s, "engine-b", lim)))
	}},
	{"MaxAndPerKey", func(t *testing.T, h Harness) {
		s := h.Store
		for i, id := range []string{"a1", "a2", "a3", "b1", "c1", "d1"} {
			pendingRun(t, s, id, "lim", id[:1], i)
		}
		runs := claimLimited(t, s, "engine-a", driver.Limit{Workflow: "lim", Max: 3, PerKey: 2})
		wantSameSet(t, "ClaimExpired with Max 3 and PerKey 2", []string{"a1", "a2", "b1"}, ids(runs))
	}},
	{"ExpiredLeaseReclaimedWhenFull", func(t *testing.T, h Harness) {
		// A running run whose owner died counts, and is claimed again
		// though the limit is full.
		s := h.Store
		dead := smallRun("dead", "lim", flux.StatusRunning, listBase)
		dead.Owner, dead.ConcurrencyKey = "engine-x", "a"
		mustCreate(t, s, dead, time.Nanosecond)
		pendingRun(t, s, "p1", "lim", "b", 1)
		lim := driver.Limit{Workflow: "lim", Max: 1}
		var claimed []string
		eventually(t, "claiming the run whose lease expired", func() (bool, error) {
			claimed = append(claimed, ids(claimLimited(t, s, "engine-b", lim))...)
			return slices.Contains(claimed, "dead"), nil
		})
		wantIDs(t, "ClaimExpired with Max 1 and a running run whose lease expired", []string{"dead"}, claimed)
		if again := claimLimited(t, s, "engine-c", lim); len(again) != 0 {
			t.Fatalf("ClaimExpired with Max 1 and a run executing claimed %v", ids(again))
		}
	}},
	{"WaitingRuns", func(t *testing.T, h Harness) {
		// A free waiting run does not count, a due one is claimed whatever
		// the count, and then counts.
		s := h.Store
		mustWait(t, s, leasedRun(t, s, "asleep", "lim", listBase), time.Time{}, "", 0)
		lim := driver.Limit{Workflow: "lim", Max: 1}
		pendingRun(t, s, "p1", "lim", "", 1)
		wantIDs(t, "ClaimExpired with Max 1 and a free waiting run", []string{"p1"}, ids(claimLimited(t, s, "engine-b", lim)))
		mustSignal(t, s, driver.SignalParams{RunID: "asleep", Name: "go", At: baseTime}, 1)
		pendingRun(t, s, "p2", "lim", "", 2)
		wantIDs(t, "ClaimExpired with Max 1 full, a woken run and a pending one", []string{"asleep"}, ids(claimLimited(t, s, "engine-b", lim)))
		// asleep, now leased, counts: p1 completing leaves the limit full.
		finish(t, s, mustGet(t, s, "p1"))
		if again := claimLimited(t, s, "engine-b", lim); len(again) != 0 {
			t.Fatalf("ClaimExpired with Max 1 and a woken run leased claimed %v", ids(again))
		}
	}},
	{"LeasedPendingCounts", func(t *testing.T, h Harness) {
		s := h.Store
		r := smallRun("p0", "lim", flux.StatusPending, listBase)
		r.Owner = "engine-a"
		mustCreate(t, s, r, hour)
		pendingRun(t, s, "p1", "lim", "", 1)
		if runs := claimLimited(t, s, "engine-b", driver.Limit{Workflow: "lim", Max: 1}); len(runs) != 0 {
			t.Fatalf("ClaimExpired with Max 1 and a leased pending run claimed %v", ids(runs))
		}
	}},
	{"OtherWorkflowsUnaffected", func(t *testing.T, h Harness) {
		s := h.Store
		for i := range 3 {
			pendingRun(t, s, fmt.Sprintf("l%d", i), "lim", "", i)
			pendingRun(t, s, fmt.Sprintf("f%d", i), "free", "", i)
		}
		runs := claimLimited(t, s, "engine-a", driver.Limit{Workflow: "lim", Max: 1})
		wantSameSet(t, "ClaimExpired with Max 1 on lim", []string{"l0", "f0", "f1", "f2"}, ids(runs))
	}},
	{"Race", func(t *testing.T, h Harness) {
		// Engines claiming at once never exceed a limit: five rounds, each
		// of a workflow of its own.
		s := h.Store
		for round := range 5 {
			wf := fmt.Sprintf("lim%d", round)
			for i := range 12 {
				pendingRun(t, s, fmt.Sprintf("%s-p%02d", wf, i), wf, fmt.Sprintf("k%d", i%3), i)
			}
			lims := []driver.Limit{{Workflow: wf, Max: 5, PerKey: 2}}
			claimed := make([][]*flux.Run, racers)
			errs := race(func(i int) (err error) {
				claimed[i], err = claimExpired(s, t, driver.ClaimExpiredParams{Owner: fmt.Sprintf("engine-%d", i),
					Workflows: []string{wf}, Lease: hour, Limit: 3, Limits: lims})
				return err
			})
			perKey := map[string]int{}
			total := 0
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d: ClaimExpired of engine-%d: %v", round, i, err)
				}
				for _, r := range claimed[i] {
					perKey[r.ConcurrencyKey]++
					total++
				}
			}
			if total != 5 || perKey["k0"] > 2 || perKey["k1"] > 2 || perKey["k2"] > 2 {
				t.Fatalf("round %d: %d engines claiming at once with Max 5, PerKey 2 claimed %d runs, by key %v; want 5, at most 2 a key",
					round, racers, total, perKey)
			}
		}
	}},
	{"ConcurrencyKeyStored", func(t *testing.T, h Harness) {
		s := h.Store
		r := smallRun("r1", "lim", flux.StatusRunning, listBase)
		r.Owner, r.ConcurrencyKey = "engine-a", "tenant-7"
		mustCreate(t, s, r, hour)
		r.Error = "written again"
		mustCheckpoint(t, s, r, hour, counts(r))
		if got := mustGet(t, s, "r1"); got.ConcurrencyKey != "tenant-7" {
			t.Fatalf("Get gives ConcurrencyKey %q, want tenant-7", got.ConcurrencyKey)
		}
		page := mustList(t, s, flux.Filter{})
		if len(page.Runs) != 1 || page.Runs[0].ConcurrencyKey != "tenant-7" {
			t.Fatalf("List gives %v, want r1 with ConcurrencyKey tenant-7", page.Runs)
		}
	}},
}
