package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// racers is how many goroutines race for one run.
const racers = 16

// race runs f in racers goroutines started together and returns their errors.
func race(f func(i int) error) []error {
	errs := make([]error, racers)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range racers {
		done.Go(func() {
			start.Wait()
			errs[i] = f(i)
		})
	}
	start.Done()
	done.Wait()
	return errs
}

// oneWinner fails unless exactly one of errs is nil and the others wrap lose,
// and returns the winner.
func oneWinner(t *testing.T, what string, errs []error, lose error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s: racers %d and %d both won", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, lose):
			t.Fatalf("%s: racer %d failed with %v, want an error wrapping %q", what, i, err, lose)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no racer won", what)
	}
	return winner
}

var concurrencyTests = []testCase{
	{"CompareAndSet", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		for round := range 5 {
			base := mustGet(t, h.Store, "r1")
			copies := make([]*flux.Run, racers)
			for i := range copies {
				copies[i] = base.Clone()
				copies[i].Error = fmt.Sprintf("writer %d round %d", i, round)
			}
			errs := race(func(i int) error {
				_, err := h.Store.Checkpoint(ctx(t), checkpoint(copies[i], hour, counts(copies[i])))
				return err
			})
			w := oneWinner(t, fmt.Sprintf("round %d: %d Checkpoints of version %d", round, racers, base.Version), errs, flux.ErrConflict)
			got := mustGet(t, h.Store, "r1")
			if got.Version != base.Version+1 {
				t.Fatalf("round %d: version %d after one winning Checkpoint of version %d", round, got.Version, base.Version)
			}
			want := copies[w]
			want.Version, want.LeaseUntil = got.Version, got.LeaseUntil
			wantSameRun(t, fmt.Sprintf("round %d: the winner's run", round), want, got)
		}
	}},
	{"Claim", func(t *testing.T, h Harness) {
		before := mustCreate(t, h.Store, fullRun("r1"), 0)
		runs := make([]*flux.Run, racers)
		errs := race(func(i int) (err error) {
			runs[i], err = h.Store.Claim(ctx(t), driver.ClaimParams{ID: "r1", Owner: fmt.Sprintf("engine-%d", i), Lease: hour})
			return err
		})
		w := oneWinner(t, fmt.Sprintf("%d owners claiming one free run", racers), errs, flux.ErrRunActive)
		wantClaimed(t, h.Store, "the winning Claim", before, runs[w], fmt.Sprintf("engine-%d", w), hour)
	}},
	{"ClaimExpired", func(t *testing.T, h Harness) {
		const n = 40
		for i := range n {
			mustCreate(t, h.Store, smallRun(fmt.Sprintf("r%02d", i), "w", flux.StatusRunning, listBase), 0)
		}
		claimed := make([][]*flux.Run, racers)
		errs := race(func(i int) (err error) {
			claimed[i], err = claimExpired(h.Store, t, driver.ClaimExpiredParams{
				Owner: fmt.Sprintf("engine-%d", i), Workflows: []string{"w"}, Lease: hour, Limit: 5})
			return err
		})
		var all []string
		for i, err := range errs {
			if err != nil {
				t.Fatalf("ClaimExpired of engine-%d: %v", i, err)
			}
			for _, r := range claimed[i] {
				if slices.Contains(all, r.ID) {
					t.Fatalf("run %s was claimed by two owners at once", r.ID)
				}
				all = append(all, r.ID)
				if got := mustGet(t, h.Store, r.ID); got.Owner != r.Owner || r.Owner != fmt.Sprintf("engine-%d", i) {
					t.Fatalf("run %s claimed by engine-%d is returned with owner %q and stored with %q", r.ID, i, r.Owner, got.Owner)
				}
			}
		}
		if len(all) != n {
			t.Fatalf("%d racers claiming up to 5 of %d free runs each claimed %d in all, want %d", racers, n, len(all), n)
		}
	}},
}
