package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// scribble changes every part of r a caller could change in place: the
// bytes of its JSON, its steps and their attempts.
func scribble(r *flux.Run) {
	for _, b := range [][]byte{r.Input, r.Data} {
		for i := range b {
			b[i] = 'X'
		}
	}
	r.Status, r.Error, r.Workflow = flux.StatusFailed, "scribbled", "scribbled"
	for i := range r.Steps {
		s := &r.Steps[i]
		s.Status, s.Name, s.InFlight = flux.StatusSkipped, "scribbled", baseTime.Add(time.Hour)
		for j := range s.Data {
			s.Data[j] = 'X'
		}
		for j := range s.Attempts {
			a := &s.Attempts[j]
			a.Number, a.Error, a.Duration, a.Interrupted = 99, "scribbled", time.Hour, !a.Interrupted
		}
		s.Attempts = append(s.Attempts, flux.Attempt{Number: 100})
	}
	r.Steps = append(r.Steps, flux.StepState{Name: "extra"})
}

// sharingTests check that a store keeps no reference to what callers give
// it or get from it, down to the bytes of the JSON.
var sharingTests = []testCase{
	{"AfterCreate", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		want := r.Clone()
		scribble(r)
		wantSameRun(t, "Get after the caller changed the run it created", want, mustGet(t, h.Store, "r1"))
	}},
	{"AfterUpdate", func(t *testing.T, h Harness) {
		r := mustCreate(t, h.Store, fullRun("r1"), 0)
		r.Steps[1].Attempts = append(r.Steps[1].Attempts, flux.Attempt{Number: 2, StartedAt: baseTime, Error: "second"})
		mustUpdate(t, h.Store, r, 0)
		want := r.Clone()
		scribble(r)
		wantSameRun(t, "Get after the caller changed the run it updated", want, mustGet(t, h.Store, "r1"))
		// The next Update of the same run must not bring the changes back
		// either, nor reuse memory the caller holds.
		again := mustGet(t, h.Store, "r1")
		mustUpdate(t, h.Store, again, 0)
		want = again.Clone()
		scribble(again)
		wantSameRun(t, "Get after a second Update", want, mustGet(t, h.Store, "r1"))
	}},
	{"AfterGet", func(t *testing.T, h Harness) {
		mustCreate(t, h.Store, fullRun("r1"), 0)
		got := mustGet(t, h.Store, "r1")
		want := got.Clone()
		scribble(got)
		wantSameRun(t, "Get after the caller changed a Get's run", want, mustGet(t, h.Store, "r1"))
	}},
	{"AfterClaimAndList", func(t *testing.T, h Harness) {
		mustCreate(t, h.Store, fullRun("r1"), 0)
		claimed := mustClaim(t, h.Store, flux.ClaimParams{ID: "r1", Owner: "engine-a", Lease: hour})
		want := claimed.Clone()
		scribble(claimed)
		wantSameRun(t, "Get after the caller changed a Claim's run", want, mustGet(t, h.Store, "r1"))
		page := mustList(t, h.Store, flux.Filter{})
		scribble(page.Runs[0])
		wantSameRun(t, "Get after the caller changed a List's run", want, mustGet(t, h.Store, "r1"))
	}},
	{"Clone", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		c := r.Clone()
		scribble(c)
		wantSameRun(t, "a run after its Clone was changed", fullRun("r1"), r)
	}},
}

// closedTests check that every method of a closed store fails with an error
// wrapping flux.ErrClosed, and that Close may be called again.
var closedTests = []testCase{
	{"EveryMethodFails", func(t *testing.T, h Harness) {
		s := h.Store
		r := mustCreate(t, s, fullRun("r1"), 0)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, getErr := s.Get(ctx(t), "r1")
		_, listErr := s.List(ctx(t), flux.Filter{})
		_, claimErr := s.Claim(ctx(t), flux.ClaimParams{ID: "r1", Owner: "a", Lease: hour})
		_, expiredErr := s.ClaimExpired(ctx(t), flux.ClaimExpiredParams{Owner: "a", Workflows: []string{"orders"}, Lease: hour, Limit: 1})
		_, noWorkflowsErr := s.ClaimExpired(ctx(t), flux.ClaimExpiredParams{Owner: "a", Lease: hour})
		_, extendErr := s.Extend(ctx(t), flux.ExtendParams{Owner: "a", IDs: []string{"r1"}, Lease: hour})
		_, noIDsErr := s.Extend(ctx(t), flux.ExtendParams{Owner: "a", Lease: hour})
		for what, err := range map[string]error{
			"Create":                         s.Create(ctx(t), fullRun("r2"), 0),
			"Update":                         s.Update(ctx(t), r, 0),
			"Get":                            getErr,
			"List":                           listErr,
			"Claim":                          claimErr,
			"ClaimExpired":                   expiredErr,
			"ClaimExpired without workflows": noWorkflowsErr,
			"Extend":                         extendErr,
			"Extend of no runs":              noIDsErr,
		} {
			if !errors.Is(err, flux.ErrClosed) {
				t.Errorf("%s on a closed store: %v, want an error wrapping flux.ErrClosed", what, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v, want nil", err)
		}
	}},
}
