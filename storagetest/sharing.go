package storagetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
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
	r.Summary.Node = "scribbled"
	for i := range r.Steps {
		s := &r.Steps[i]
		s.Status, s.Name, s.InFlight = flux.StatusSkipped, "scribbled", baseTime.Add(time.Hour)
		for j := range s.Attempts {
			a := &s.Attempts[j]
			a.Number, a.Error, a.Duration, a.Interrupted = 99, "scribbled", time.Hour, !a.Interrupted
		}
		s.Attempts = append(s.Attempts, flux.Attempt{Number: 100})
	}
	r.Steps = append(r.Steps, flux.StepState{Name: "extra"})
}

// scribbleData changes the bytes of node data records in place.
func scribbleData(ds []driver.NodeData) {
	for _, d := range ds {
		for i := range d.Snapshot {
			d.Snapshot[i] = 'X'
		}
		if d.Patch != nil {
			d.Patch.Offset++
			for i := range d.Patch.Insert {
				d.Patch.Insert[i] = 'X'
			}
		}
	}
}

// sharingTests check that a store keeps no reference to what callers give
// it or get from it, down to the bytes of the JSON.
var sharingTests = []testCase{
	{"AfterCreate", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		p := createParams(r, hour)
		w, err := h.Store.Create(ctx(t), p)
		if err != nil {
			t.Fatal(err)
		}
		r.Version, r.LeaseUntil = w.Version, w.LeaseUntil
		want := r.Clone()
		scribble(p.Run)
		scribbleData(p.Data)
		scribble(r)
		wantSameRun(t, "Get after the caller changed what it created", want, mustGet(t, h.Store, "r1"))
	}},
	{"AfterCheckpoint", func(t *testing.T, h Harness) {
		r := dataRun("r1")
		mustCreate(t, h.Store, r, 0)
		p := complete(r, 0, nil, json.RawMessage(`{"items":["a"]}`))
		mustWrite(t, h.Store, r, p)
		p2 := complete(r, 1, r.Data, json.RawMessage(`{"items":["a","b"]}`))
		mustWrite(t, h.Store, r, p2)
		want := r.Clone()
		for _, q := range []driver.CheckpointParams{p, p2} {
			q.Header.Status, q.Header.Summary.Node = flux.StatusFailed, "scribbled"
			for k := range q.Nodes {
				n := &q.Nodes[k]
				for j := range n.Attempts {
					n.Attempts[j].Error, n.Attempts[j].Number = "scribbled", 99
				}
				scribbleData([]driver.NodeData{*n.Data})
			}
		}
		scribble(r)
		wantSameRun(t, "Get after the caller changed its checkpoints", want, mustGet(t, h.Store, "r1"))
		if d := mustNodeData(t, h.Store, "r1", 0); string(d) != `{"items":["a"]}` {
			t.Fatalf("NodeData(r1, 0) after the caller changed its checkpoint: %s", d)
		}
	}},
	{"AfterGet", func(t *testing.T, h Harness) {
		mustCreate(t, h.Store, fullRun("r1"), 0)
		got := mustGet(t, h.Store, "r1")
		want := got.Clone()
		scribble(got)
		wantSameRun(t, "Get after the caller changed a Get's run", want, mustGet(t, h.Store, "r1"))
		d := mustNodeData(t, h.Store, "r1", 0)
		before := string(d)
		for i := range d {
			d[i] = 'X'
		}
		if again := mustNodeData(t, h.Store, "r1", 0); string(again) != before {
			t.Fatalf("NodeData after the caller changed the previous one's bytes: %s, want %s", again, before)
		}
	}},
	{"AfterClaimAndList", func(t *testing.T, h Harness) {
		mustCreate(t, h.Store, fullRun("r1"), 0)
		claimed := mustClaim(t, h.Store, driver.ClaimParams{ID: "r1", Owner: "engine-a", Lease: hour})
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
		_, createErr := s.Create(ctx(t), createParams(fullRun("r2"), 0))
		_, checkpointErr := s.Checkpoint(ctx(t), checkpoint(r, 0, counts(r)))
		_, getErr := s.Get(ctx(t), "r1")
		_, nodeDataErr := s.NodeData(ctx(t), driver.NodeDataParams{ID: "r1", Index: 0})
		_, listErr := s.List(ctx(t), flux.Filter{})
		_, claimErr := s.Claim(ctx(t), driver.ClaimParams{ID: "r1", Owner: "a", Lease: hour})
		_, expiredErr := s.ClaimExpired(ctx(t), driver.ClaimExpiredParams{Owner: "a", Workflows: []string{"orders"}, Lease: hour, Limit: 1})
		_, noWorkflowsErr := s.ClaimExpired(ctx(t), driver.ClaimExpiredParams{Owner: "a", Lease: hour})
		_, extendErr := s.Extend(ctx(t), driver.ExtendParams{Owner: "a", IDs: []string{"r1"}, Lease: hour})
		_, noIDsErr := s.Extend(ctx(t), driver.ExtendParams{Owner: "a", Lease: hour})
		_, pruneErr := s.Prune(ctx(t), driver.PruneParams{Status: flux.StatusCompleted, FinishedBefore: baseTime})
		for what, err := range map[string]error{
			"Create":                         createErr,
			"Checkpoint":                     checkpointErr,
			"Get":                            getErr,
			"NodeData":                       nodeDataErr,
			"List":                           listErr,
			"Claim":                          claimErr,
			"ClaimExpired":                   expiredErr,
			"ClaimExpired without workflows": noWorkflowsErr,
			"Extend":                         extendErr,
			"Extend of no runs":              noIDsErr,
			"Release":                        s.Release(ctx(t), driver.ReleaseParams{ID: "r1", Owner: "a"}),
			"Cancel":                         s.Cancel(ctx(t), driver.CancelParams{ID: "r1", At: baseTime}),
			"Prune":                          pruneErr,
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
