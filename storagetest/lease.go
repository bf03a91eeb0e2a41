package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// ownedRun creates run id (a full run of workflow "orders") leased to owner.
func ownedRun(t *testing.T, s flux.Storage, id, owner string, lease time.Duration) *flux.Run {
	t.Helper()
	r := fullRun(id)
	r.Owner = owner
	return mustCreate(t, s, r, lease)
}

// claimExpired calls ClaimExpired and fails if it reports corrupt runs,
// which the stores of these tests do not have.
func claimExpired(s flux.Storage, t *testing.T, p driver.ClaimExpiredParams) ([]*flux.Run, error) {
	t.Helper()
	c, err := s.ClaimExpired(ctx(t), p)
	if err != nil {
		return nil, err
	}
	if len(c.Corrupt) > 0 {
		t.Fatalf("ClaimExpired reported corrupt runs in a store with none: %v", c.Corrupt)
	}
	return c.Runs, nil
}

// wantClaimed fails unless got is stored as want after a claim by owner with
// the given lease: the same run, owner and lease changed, version one up.
func wantClaimed(t *testing.T, s flux.Storage, what string, before, got *flux.Run, owner string, lease time.Duration) {
	t.Helper()
	if got.Owner != owner || got.Version != before.Version+1 {
		t.Fatalf("%s: run %s has owner %q and version %d, want %s and %d", what, got.ID, got.Owner, got.Version, owner, before.Version+1)
	}
	wantLeaseAbout(t, what, got.LeaseUntil, lease)
	want := before.Clone()
	want.Owner, want.Version, want.LeaseUntil = owner, before.Version+1, got.LeaseUntil
	wantSameRun(t, what+": returned run", want, got)
	wantSameRun(t, what+": stored run", want, mustGet(t, s, got.ID))
}

var claimTests = []testCase{
	{"Free", func(t *testing.T, h Harness) {
		before := mustCreate(t, h.Store, fullRun("r1"), 0)
		got := mustClaim(t, h.Store, driver.ClaimParams{ID: "r1", Owner: "engine-a", Lease: hour})
		wantClaimed(t, h.Store, "Claim of a run no one holds", before, got, "engine-a", hour)
	}},
	{"Own", func(t *testing.T, h Harness) {
		before := ownedRun(t, h.Store, "r1", "engine-a", hour)
		got := mustClaim(t, h.Store, driver.ClaimParams{ID: "r1", Owner: "engine-a", Lease: 2 * hour})
		wantClaimed(t, h.Store, "Claim of a run the owner holds", before, got, "engine-a", 2*hour)
	}},
	{"ExpiredTakeover", func(t *testing.T, h Harness) {
		before := ownedRun(t, h.Store, "r1", "engine-a", time.Nanosecond)
		got := claimAfterExpiry(t, h.Store, "r1", "engine-b", hour)
		wantClaimed(t, h.Store, "Claim of a run whose lease expired", before, got, "engine-b", hour)
	}},
	{"LiveLeaseActive", func(t *testing.T, h Harness) {
		before := ownedRun(t, h.Store, "r1", "engine-a", hour)
		r, err := h.Store.Claim(ctx(t), driver.ClaimParams{ID: "r1", Owner: "engine-b", Lease: hour})
		wantErr(t, "Claim of a run under another owner's live lease", err, flux.ErrRunActive)
		if r != nil {
			t.Fatalf("a refused Claim returned a run: %+v", r)
		}
		wantSameRun(t, "Get after the refused Claim", before, mustGet(t, h.Store, "r1"))
	}},
	{"NotFound", func(t *testing.T, h Harness) {
		_, err := h.Store.Claim(ctx(t), driver.ClaimParams{ID: "missing", Owner: "engine-a", Lease: hour})
		wantErr(t, "Claim of an unknown run", err, flux.ErrRunNotFound)
	}},
	{"FinishedRun", func(t *testing.T, h Harness) {
		// RetryStep and Resume claim failed and completed runs.
		for _, st := range []flux.Status{flux.StatusCompleted, flux.StatusFailed, flux.StatusCancelled} {
			r := fullRun("r-" + string(st))
			r.Status, r.FinishedAt = st, baseTime.Add(time.Second)
			before := mustCreate(t, h.Store, r, 0)
			got := mustClaim(t, h.Store, driver.ClaimParams{ID: r.ID, Owner: "engine-a", Lease: hour})
			wantClaimed(t, h.Store, "Claim of a "+string(st)+" run", before, got, "engine-a", hour)
		}
	}},
	{"StaleOwnerRefused", func(t *testing.T, h Harness) {
		// engine-a's lease expires, engine-b takes the run over: every
		// later write of engine-a, the zombie, is refused as a lost lease.
		zombie := ownedRun(t, h.Store, "r1", "engine-a", time.Nanosecond)
		b := claimAfterExpiry(t, h.Store, "r1", "engine-b", hour)

		z := zombie.Clone()
		z.Status = flux.StatusCompleted
		_, err := h.Store.Checkpoint(ctx(t), checkpoint(z, hour, counts(z)))
		wantErr(t, "the old owner's Checkpoint after a takeover", err, flux.ErrLeaseLost)
		z = zombie.Clone()
		z.Version = b.Version // even at the current version
		_, err = h.Store.Checkpoint(ctx(t), checkpoint(z, hour, counts(z)))
		wantErr(t, "the old owner's Checkpoint at the new version", err, flux.ErrLeaseLost)
		lost, err := h.Store.Extend(ctx(t), driver.ExtendParams{Owner: "engine-a", IDs: []string{"r1"}, Lease: hour})
		if err != nil {
			t.Fatalf("Extend: %v", err)
		}
		wantIDs(t, "Extend by the old owner: lost", []string{"r1"}, lost)
		wantErr(t, "the old owner's Release", h.Store.Release(ctx(t), driver.ReleaseParams{ID: "r1", Owner: "engine-a"}), flux.ErrLeaseLost)
		_, err = h.Store.Claim(ctx(t), driver.ClaimParams{ID: "r1", Owner: "engine-a", Lease: hour})
		wantErr(t, "the old owner's Claim of the run taken over", err, flux.ErrRunActive)
		wantSameRun(t, "Get after the old owner's attempts", b, mustGet(t, h.Store, "r1"))

		b.Status = flux.StatusCompleted
		mustCheckpoint(t, h.Store, b, driver.ReleaseLease, counts(b))
		wantSameRun(t, "Get after the new owner's Checkpoint", b, mustGet(t, h.Store, "r1"))
	}},
}

var claimExpiredTests = []testCase{
	{"OnlyEligible", func(t *testing.T, h Harness) {
		s := h.Store
		mk := func(id, wf string, st flux.Status, owner string, lease time.Duration) {
			r := smallRun(id, wf, st, listBase)
			r.Owner = owner
			mustCreate(t, s, r, lease)
		}
		// Eligible: pending or running, of a listed workflow, with no
		// owner or an expired lease.
		mk("pending-free", "orders", flux.StatusPending, "", 0)
		mk("running-free", "refunds", flux.StatusRunning, "", 0)
		mk("running-expired", "orders", flux.StatusRunning, "dead", time.Nanosecond)
		mk("pending-expired", "refunds", flux.StatusPending, "dead", time.Nanosecond)
		released := smallRun("running-released", "orders", flux.StatusRunning, listBase)
		released.Owner = "engine-x"
		mustCreate(t, s, released, hour)
		if err := s.Release(ctx(t), driver.ReleaseParams{ID: released.ID, Owner: "engine-x"}); err != nil {
			t.Fatal(err)
		}
		eligible := []string{"pending-free", "running-free", "running-expired", "pending-expired", "running-released"}
		// Not eligible.
		mk("running-live", "orders", flux.StatusRunning, "alive", hour)
		mk("other-workflow", "billing", flux.StatusRunning, "", 0)
		for _, st := range []flux.Status{flux.StatusWaiting, flux.StatusCompleted, flux.StatusFailed, flux.StatusCancelled} {
			mk(string(st), "orders", st, "", 0)
			mk(string(st)+"-expired", "orders", st, "dead", time.Nanosecond)
		}
		befores := map[string]*flux.Run{}
		for _, id := range eligible {
			befores[id] = mustGet(t, s, id)
		}

		var claimed []string
		eventually(t, "claiming the expired runs", func() (bool, error) {
			runs, err := claimExpired(s, t, driver.ClaimExpiredParams{Owner: "engine-a", Workflows: []string{"orders", "refunds"}, Lease: hour, Limit: 100})
			for _, r := range runs {
				if !slices.Contains(eligible, r.ID) {
					return false, fmt.Errorf("ClaimExpired claimed %s (status %s, workflow %s), which it must not", r.ID, r.Status, r.Workflow)
				}
				if slices.Contains(claimed, r.ID) {
					return false, fmt.Errorf("ClaimExpired claimed %s twice though engine-a's lease of an hour is live", r.ID)
				}
				claimed = append(claimed, r.ID)
				wantClaimed(t, s, "ClaimExpired", befores[r.ID], r, "engine-a", hour)
			}
			return len(claimed) == len(eligible), err
		})
		wantSameSet(t, "runs ClaimExpired claimed", eligible, claimed)
		for _, id := range []string{"running-live", "other-workflow", "waiting", "completed-expired"} {
			if r := mustGet(t, s, id); r.Owner == "engine-a" {
				t.Fatalf("run %s is owned by engine-a though ClaimExpired must not claim it", id)
			}
		}
	}},
	{"Limit", func(t *testing.T, h Harness) {
		var all []string
		for i := range 5 {
			id := fmt.Sprintf("r%d", i)
			mustCreate(t, h.Store, smallRun(id, "w", flux.StatusPending, listBase), 0)
			all = append(all, id)
		}
		var claimed []string
		for _, want := range []int{2, 2, 1, 0} {
			runs, err := claimExpired(h.Store, t, driver.ClaimExpiredParams{Owner: "engine-a", Workflows: []string{"w"}, Lease: hour, Limit: 2})
			if err != nil {
				t.Fatalf("ClaimExpired: %v", err)
			}
			if len(runs) != want {
				t.Fatalf("ClaimExpired with Limit 2 and %d runs left claimed %v, want %d of them", 5-len(claimed), ids(runs), want)
			}
			for _, r := range runs {
				if slices.Contains(claimed, r.ID) {
					t.Fatalf("ClaimExpired claimed %s twice", r.ID)
				}
				claimed = append(claimed, r.ID)
				if got := mustGet(t, h.Store, r.ID); got.Owner != "engine-a" || got.Version != 2 {
					t.Fatalf("run %s claimed by ClaimExpired is stored with owner %q version %d, want engine-a and 2", r.ID, got.Owner, got.Version)
				}
			}
		}
		wantSameSet(t, "runs claimed by the four calls", all, claimed)
	}},
	{"NeverItsOwn", func(t *testing.T, h Harness) {
		// Runs p.Owner holds execute there, even if their lease lapsed
		// before its heartbeat renewed it.
		ownedRun(t, h.Store, "mine-live", "svc#1", hour)
		ownedRun(t, h.Store, "mine-expired", "svc#1", time.Nanosecond)
		ownedRun(t, h.Store, "free", "", 0)
		var got []string
		eventually(t, "claiming the free run", func() (bool, error) {
			runs, err := claimExpired(h.Store, t, driver.ClaimExpiredParams{Owner: "svc#1", Workflows: []string{"orders"}, Lease: hour, Limit: 10})
			got = append(got, ids(runs)...)
			return slices.Contains(got, "free"), err
		})
		wantSameSet(t, "runs ClaimExpired claimed for their own owner", []string{"free"}, got)
		for _, id := range []string{"mine-live", "mine-expired"} {
			if r := mustGet(t, h.Store, id); r.Owner != "svc#1" || r.Version != 1 {
				t.Fatalf("ClaimExpired changed %s, held by the claimant: owner %q version %d", id, r.Owner, r.Version)
			}
		}
	}},
	{"EarlierStartOfSameEngine", func(t *testing.T, h Harness) {
		// svc#2 is a new start of engine svc: the leases of svc#1 and of
		// "svc" (an owner without nonce, as older versions wrote) are its
		// own crashed predecessor's, taken over at once.
		ownedRun(t, h.Store, "predecessor", "svc#1", hour)
		ownedRun(t, h.Store, "old-format", "svc", hour)
		ownedRun(t, h.Store, "other-engine", "svc2#1", hour)
		ownedRun(t, h.Store, "prefix-only", "svcx", hour)
		ownedRun(t, h.Store, "own", "svc#2", hour)
		runs, err := claimExpired(h.Store, t, driver.ClaimExpiredParams{Owner: "svc#2", Workflows: []string{"orders"}, Lease: hour, Limit: 10})
		if err != nil {
			t.Fatalf("ClaimExpired: %v", err)
		}
		wantSameSet(t, "runs a new start of svc took over", []string{"predecessor", "old-format"}, ids(runs))
		for _, r := range runs {
			if r.Owner != "svc#2" || r.Version != 2 {
				t.Fatalf("taken-over run %s: owner %q version %d, want svc#2 and 2", r.ID, r.Owner, r.Version)
			}
		}
		for _, id := range []string{"other-engine", "prefix-only"} {
			_, err := h.Store.Claim(ctx(t), driver.ClaimParams{ID: id, Owner: "svc#3", Lease: hour})
			wantErr(t, "Claim by svc#3 of "+id+", held by another engine", err, flux.ErrRunActive)
		}
		r := mustClaim(t, h.Store, driver.ClaimParams{ID: "own", Owner: "svc#3", Lease: hour})
		if r.Owner != "svc#3" {
			t.Fatalf("Claim by svc#3 of a run svc#2 held: owner %q", r.Owner)
		}
	}},
	{"NoWorkflows", func(t *testing.T, h Harness) {
		mustCreate(t, h.Store, smallRun("r1", "w", flux.StatusPending, listBase), 0)
		runs, err := claimExpired(h.Store, t, driver.ClaimExpiredParams{Owner: "engine-a", Lease: hour, Limit: 10})
		if err != nil || len(runs) != 0 {
			t.Fatalf("ClaimExpired without workflows gave %v, %v; want nothing", ids(runs), err)
		}
		if r := mustGet(t, h.Store, "r1"); r.Owner != "" || r.Version != 1 {
			t.Fatalf("ClaimExpired without workflows changed run r1: owner %q version %d", r.Owner, r.Version)
		}
	}},
}

var extendTests = []testCase{
	{"RenewsOwn", func(t *testing.T, h Harness) {
		r1 := ownedRun(t, h.Store, "r1", "engine-a", hour)
		r2 := ownedRun(t, h.Store, "r2", "engine-a", time.Nanosecond) // expired, not taken over
		lost, err := h.Store.Extend(ctx(t), driver.ExtendParams{Owner: "engine-a", IDs: []string{"r1", "r2"}, Lease: 3 * hour})
		if err != nil || len(lost) != 0 {
			t.Fatalf("Extend of engine-a's own runs gave lost %v, error %v; want neither", lost, err)
		}
		for _, before := range []*flux.Run{r1, r2} {
			got := mustGet(t, h.Store, before.ID)
			wantLeaseAbout(t, "lease of "+before.ID+" after Extend", got.LeaseUntil, 3*hour)
			want := before.Clone()
			want.LeaseUntil = got.LeaseUntil
			wantSameRun(t, "Get after Extend (version unchanged)", want, got)
		}
		// The renewed lease is live: no one else can claim the run.
		_, err = h.Store.Claim(ctx(t), driver.ClaimParams{ID: "r2", Owner: "engine-b", Lease: hour})
		wantErr(t, "Claim of a run whose lease Extend renewed", err, flux.ErrRunActive)
	}},
	{"ReportsLost", func(t *testing.T, h Harness) {
		ownedRun(t, h.Store, "mine", "engine-a", hour)
		theirs := ownedRun(t, h.Store, "theirs", "engine-b", hour)
		released := ownedRun(t, h.Store, "released", "engine-a", hour)
		if err := h.Store.Release(ctx(t), driver.ReleaseParams{ID: "released", Owner: "engine-a"}); err != nil {
			t.Fatal(err)
		}
		released.Owner, released.LeaseUntil, released.Version = "", time.Time{}, 2
		lost, err := h.Store.Extend(ctx(t), driver.ExtendParams{Owner: "engine-a", IDs: []string{"mine", "theirs", "released", "missing"}, Lease: 3 * hour})
		if err != nil {
			t.Fatalf("Extend: %v", err)
		}
		wantSameSet(t, "runs Extend reports lost", []string{"theirs", "released", "missing"}, lost)
		wantSameRun(t, "another owner's run after Extend", theirs, mustGet(t, h.Store, "theirs"))
		wantSameRun(t, "a released run after Extend", released, mustGet(t, h.Store, "released"))
		wantLeaseAbout(t, "lease of the owner's run", mustGet(t, h.Store, "mine").LeaseUntil, 3*hour)
	}},
	{"Empty", func(t *testing.T, h Harness) {
		lost, err := h.Store.Extend(ctx(t), driver.ExtendParams{Owner: "engine-a", Lease: hour})
		if err != nil || len(lost) != 0 {
			t.Fatalf("Extend of no runs gave lost %v, error %v; want neither", lost, err)
		}
	}},
}

var releaseTests = []testCase{
	{"GivesBackTheLease", func(t *testing.T, h Harness) {
		r := ownedRun(t, h.Store, "r1", "engine-a", hour)
		if err := h.Store.Release(ctx(t), driver.ReleaseParams{ID: "r1", Owner: "engine-a"}); err != nil {
			t.Fatalf("Release by the owner: %v", err)
		}
		r.Owner, r.LeaseUntil, r.Version = "", time.Time{}, 2
		wantSameRun(t, "Get after Release", r, mustGet(t, h.Store, "r1"))
		c := mustClaim(t, h.Store, driver.ClaimParams{ID: "r1", Owner: "engine-b", Lease: hour})
		if c.Owner != "engine-b" {
			t.Fatalf("Claim after Release gave owner %q", c.Owner)
		}
	}},
	{"NotTheOwner", func(t *testing.T, h Harness) {
		r := ownedRun(t, h.Store, "r1", "engine-a", hour)
		for _, owner := range []string{"engine-b", ""} {
			err := h.Store.Release(ctx(t), driver.ReleaseParams{ID: "r1", Owner: owner})
			wantErr(t, "Release by "+quote(owner)+" of engine-a's run", err, flux.ErrLeaseLost)
		}
		wantSameRun(t, "Get after the refused Releases", r, mustGet(t, h.Store, "r1"))
		wantErr(t, "Release of an unknown run", h.Store.Release(ctx(t), driver.ReleaseParams{ID: "missing", Owner: "engine-a"}), flux.ErrRunNotFound)
	}},
}

var cancelTests = []testCase{
	{"UnfinishedRun", func(t *testing.T, h Harness) {
		r := ownedRun(t, h.Store, "r1", "engine-a", hour)
		at := baseTime.Add(time.Minute)
		if err := h.Store.Cancel(ctx(t), driver.CancelParams{ID: "r1", Error: "flux: run cancelled", At: at}); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		r.Status, r.Error, r.UpdatedAt, r.FinishedAt = flux.StatusCancelled, "flux: run cancelled", at, at
		r.Owner, r.LeaseUntil, r.Version = "", time.Time{}, 2
		r.Steps[1].InFlight = time.Time{}
		got := mustGet(t, h.Store, "r1")
		r.Summary = got.Summary // what node the summary names is the store's to say
		wantSameRun(t, "Get after Cancel", r, got)
		// The owner's next checkpoint fails.
		_, err := h.Store.Checkpoint(ctx(t), checkpoint(ownedCopy(r, "engine-a", 1), hour, counts(r)))
		wantErr(t, "the owner's Checkpoint after Cancel", err, flux.ErrConflict)
		if err := h.Store.Cancel(ctx(t), driver.CancelParams{ID: "r1", Error: "again", At: at.Add(time.Hour)}); err != nil {
			t.Fatalf("Cancel of a cancelled run: %v, want nil", err)
		}
		wantSameRun(t, "Get after a second Cancel", r, mustGet(t, h.Store, "r1"))
	}},
	{"FinishedRun", func(t *testing.T, h Harness) {
		for _, st := range []flux.Status{flux.StatusCompleted, flux.StatusFailed} {
			r := smallRun("r-"+string(st), "w", st, baseTime)
			mustCreate(t, h.Store, r, 0)
			err := h.Store.Cancel(ctx(t), driver.CancelParams{ID: r.ID, Error: "x", At: baseTime})
			wantErr(t, "Cancel of a "+string(st)+" run", err, flux.ErrRunFinished)
			wantSameRun(t, "Get after the refused Cancel", r, mustGet(t, h.Store, r.ID))
		}
		wantErr(t, "Cancel of an unknown run", h.Store.Cancel(ctx(t), driver.CancelParams{ID: "missing", At: baseTime}), flux.ErrRunNotFound)
	}},
}

// ownedCopy returns a copy of r as owner held it at version.
func ownedCopy(r *flux.Run, owner string, version int64) *flux.Run {
	c := r.Clone()
	c.Owner, c.Version = owner, version
	return c
}

var pruneTests = []testCase{
	{"OldFinishedRuns", func(t *testing.T, h Harness) {
		cut := baseTime.Add(24 * time.Hour)
		mk := func(id, wf string, st flux.Status, finished time.Time) {
			r := smallRun(id, wf, st, finished.Add(-time.Second))
			r.FinishedAt = finished
			if !st.Final() {
				r.FinishedAt = time.Time{}
			}
			mustCreate(t, h.Store, r, 0)
		}
		for i := range 5 {
			mk(fmt.Sprintf("old-done-%d", i), "w", flux.StatusCompleted, cut.Add(-time.Duration(5-i)*time.Hour))
		}
		mk("young-done", "w", flux.StatusCompleted, cut.Add(time.Hour))
		mk("old-failed", "w", flux.StatusFailed, cut.Add(-time.Hour))
		mk("old-other-workflow", "v", flux.StatusCompleted, cut.Add(-time.Hour))
		mk("running", "w", flux.StatusRunning, cut.Add(-time.Hour))
		n, err := h.Store.Prune(ctx(t), driver.PruneParams{Status: flux.StatusCompleted, Workflow: "w", FinishedBefore: cut, Limit: 3})
		if err != nil || n != 3 {
			t.Fatalf("Prune with Limit 3: %d, %v; want 3", n, err)
		}
		// Oldest first: 0, 1 and 2 are gone, 3 and 4 not yet.
		for i := range 5 {
			_, err := h.Store.Get(ctx(t), fmt.Sprintf("old-done-%d", i))
			if gone := errors.Is(err, flux.ErrRunNotFound); gone != (i < 3) {
				t.Fatalf("old-done-%d after Prune of the 3 oldest: Get gives %v", i, err)
			}
		}
		n, err = h.Store.Prune(ctx(t), driver.PruneParams{Status: flux.StatusCompleted, Except: []string{"v"}, FinishedBefore: cut})
		if err != nil || n != 2 {
			t.Fatalf("second Prune: %d, %v; want the 2 old completed runs of w left", n, err)
		}
		for _, id := range []string{"young-done", "old-failed", "old-other-workflow", "running"} {
			mustGet(t, h.Store, id)
		}
		n, err = h.Store.Prune(ctx(t), driver.PruneParams{Status: flux.StatusFailed, FinishedBefore: cut})
		if err != nil || n != 1 {
			t.Fatalf("Prune of failed runs: %d, %v; want 1", n, err)
		}
		page := mustList(t, h.Store, flux.Filter{})
		wantSameSet(t, "runs left", []string{"young-done", "old-other-workflow", "running"}, ids(page.Runs))
	}},
}
