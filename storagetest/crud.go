package storagetest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// header returns r as List returns it: without its nodes and data.
func header(r *flux.Run) *flux.Run {
	c := r.Clone()
	c.Steps, c.Data = nil, nil
	return c
}

var createTests = []testCase{
	{"SetsVersionAndLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Version, r.Owner = 7, "engine-a"
		mustCreate(t, h.Store, r, hour)
		wantLeaseAbout(t, "lease after Create", r.LeaseUntil, hour)
		wantSameRun(t, "Get after Create", r, mustGet(t, h.Store, "r1"))
	}},
	{"WithoutOwnerHasNoLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		mustCreate(t, h.Store, r, hour)
		if !r.LeaseUntil.IsZero() {
			t.Fatalf("Create without owner reported lease %s, want none", fmtTime(r.LeaseUntil))
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
		_, err := h.Store.Create(ctx(t), createParams(dup, hour))
		wantErr(t, "Create with a taken ID", err, flux.ErrRunExists)
		if !strings.Contains(err.Error(), "r1") {
			t.Fatalf("ErrRunExists error %q does not name the run r1", err)
		}
		wantSameRun(t, "Get after the duplicate Create", orig, mustGet(t, h.Store, "r1"))
		page := mustList(t, h.Store, flux.Filter{})
		wantIDs(t, "List after the duplicate Create", []string{"r1"}, ids(page.Runs))
	}},
	{"NodeDataOfEveryNode", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		mustCreate(t, h.Store, r, 0)
		// Before the first node, after reserve (the data it left), and
		// after the nodes that did not complete: reserve's still.
		for i, want := range []json.RawMessage{initialData, r.Data, r.Data, r.Data} {
			if got := mustNodeData(t, h.Store, "r1", i-1); !sameJSON(want, got) {
				t.Fatalf("NodeData(r1, %d) = %s, want %s", i-1, got, want)
			}
		}
		_, err := h.Store.NodeData(ctx(t), driver.NodeDataParams{ID: "missing", Index: 0})
		wantErr(t, "NodeData of an unknown run", err, flux.ErrRunNotFound)
		if _, err := h.Store.NodeData(ctx(t), driver.NodeDataParams{ID: "r1", Index: 3}); err == nil {
			t.Fatal("NodeData of node 3 of a run of 3 nodes gave no error")
		}
	}},
}

var getTests = []testCase{
	{"RoundTrip", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		wantSameRun(t, "Get after Create", r, mustGet(t, h.Store, "r1"))

		// A finished run: every optional field set.
		n := counts(r)
		r.Status = flux.StatusFailed
		r.Error = "flux: workflow \"orders\" run r1: step \"charge\" failed on attempt 2: card declined ✗"
		r.Steps[1].Status, r.Steps[1].InFlight = flux.StatusFailed, time.Time{}
		r.Steps[1].Attempts = append(r.Steps[1].Attempts, flux.Attempt{Number: 2, StartedAt: baseTime.Add(10 * time.Millisecond),
			Duration: 42 * time.Millisecond, Error: "card declined ✗"})
		r.Steps[1].FinishedAt = baseTime.Add(50 * time.Millisecond)
		r.UpdatedAt = baseTime.Add(51 * time.Millisecond)
		r.FinishedAt = baseTime.Add(51 * time.Millisecond)
		r.Summary = driver.Summarize(r.Steps)
		mustCheckpoint(t, h.Store, r, driver.ReleaseLease, n)
		wantSameRun(t, "Get after Checkpoint", r, mustGet(t, h.Store, "r1"))
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
}

// dataRun returns a run of five step nodes, all pending, whose data starts
// as {"items":[]}.
func dataRun(id string) *flux.Run {
	r := smallRun(id, "w", flux.StatusRunning, baseTime)
	r.Data = json.RawMessage(`{"items":[]}`)
	r.Steps = nil
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		r.Steps = append(r.Steps, flux.StepState{Name: n, Kind: flux.KindStep, Status: flux.StatusPending})
	}
	r.Summary = driver.Summarize(r.Steps)
	return r
}

// complete returns the Checkpoint of node i of r completing with an attempt,
// leaving data as a patch from before (or whole, when before is nil).
func complete(r *flux.Run, i int, before, after json.RawMessage) driver.CheckpointParams {
	st := &r.Steps[i]
	st.Status, st.StartedAt, st.FinishedAt = flux.StatusCompleted, baseTime.Add(time.Duration(i)*time.Second), baseTime.Add(time.Duration(i)*time.Second+time.Millisecond)
	a := flux.Attempt{Number: len(st.Attempts) + 1, StartedAt: st.StartedAt, Duration: time.Millisecond}
	st.Attempts = append(st.Attempts, a)
	r.Summary = driver.Summarize(r.Steps)
	r.Data, r.UpdatedAt = after, st.FinishedAt
	d := &driver.NodeData{Index: i, Snapshot: after}
	if before != nil {
		p := driver.Diff(before, after)
		d = &driver.NodeData{Index: i, Patch: &p}
	}
	return driver.CheckpointParams{ID: r.ID, Owner: r.Owner, Version: r.Version,
		Header: &driver.Header{Status: r.Status, Fingerprint: r.Fingerprint, UpdatedAt: st.FinishedAt, Summary: r.Summary, Nodes: len(r.Steps)},
		Nodes: []driver.NodeChange{{Index: i, Name: st.Name, Kind: st.Kind, Status: st.Status, StartedAt: st.StartedAt,
			FinishedAt: st.FinishedAt, Attempts: []flux.Attempt{a}, Data: d}}}
}

func mustWrite(t *testing.T, s flux.Storage, r *flux.Run, p driver.CheckpointParams) {
	t.Helper()
	w, err := s.Checkpoint(ctx(t), p)
	if err != nil {
		t.Fatalf("Checkpoint of run %s: %v", r.ID, err)
	}
	if w.Version != r.Version+1 {
		t.Fatalf("Checkpoint of run %s at version %d reported version %d", r.ID, r.Version, w.Version)
	}
	r.Version, r.LeaseUntil = w.Version, w.LeaseUntil
}

var checkpointTests = []testCase{
	{"IncrementsVersionAndAppendsAttempts", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		for want := int64(2); want <= 4; want++ {
			n := counts(r)
			r.Steps[2].Attempts = append(r.Steps[2].Attempts, flux.Attempt{Number: len(r.Steps[2].Attempts) + 1,
				StartedAt: baseTime.Add(time.Second), Error: "try again"})
			r.Summary = driver.Summarize(r.Steps)
			r.UpdatedAt = r.UpdatedAt.Add(time.Second)
			mustCheckpoint(t, h.Store, r, hour, n)
			if r.Version != want {
				t.Fatalf("after Checkpoint run.Version = %d, want %d", r.Version, want)
			}
			wantSameRun(t, "Get after Checkpoint", r, mustGet(t, h.Store, "r1"))
		}
	}},
	{"OnlyTheNodesGiven", func(t *testing.T, h Harness) {
		// A checkpoint that names one node leaves the others as they are.
		r := fullRun("r1")
		mustCreate(t, h.Store, r, 0)
		r.Steps[2].Status, r.Steps[2].InFlight = flux.StatusRunning, baseTime.Add(time.Minute)
		r.Summary = driver.Summarize(r.Steps)
		p := checkpoint(r, 0, counts(r))
		p.Nodes = p.Nodes[2:]
		mustWrite(t, h.Store, r, p)
		wantSameRun(t, "Get after a checkpoint of node notify", r, mustGet(t, h.Store, "r1"))
	}},
	{"DataAsPatchesAndSnapshots", func(t *testing.T, h Harness) {
		r := dataRun("r1")
		mustCreate(t, h.Store, r, 0)
		datas := []json.RawMessage{json.RawMessage(`{"items":[]}`)}
		for i, item := range []string{"one", "two", "three", "four", "five"} {
			before := datas[len(datas)-1]
			after := json.RawMessage(strings.Replace(string(before), "]", map[bool]string{true: `"` + item + `"]`, false: `,"` + item + `"]`}[i == 0], 1))
			if i == 2 {
				before = nil // a snapshot among the patches
			}
			mustWrite(t, h.Store, r, complete(r, i, before, after))
			datas = append(datas, after)
			got := mustGet(t, h.Store, "r1")
			wantSameRun(t, "Get after node "+r.Steps[i].Name, r, got)
			if string(got.Data) != string(after) {
				t.Fatalf("data after node %d: %s, want exactly %s", i, got.Data, after)
			}
		}
		for i, want := range datas {
			if got := mustNodeData(t, h.Store, "r1", i-1); string(got) != string(want) {
				t.Fatalf("NodeData(r1, %d) = %s, want %s", i-1, got, want)
			}
		}
	}},
	{"ResetDropsData", func(t *testing.T, h Harness) {
		// RetryStep from node c: c, d and e go back to pending, their data
		// is dropped, their attempts stay; then c completes anew.
		r := dataRun("r1")
		mustCreate(t, h.Store, r, 0)
		var datas []json.RawMessage
		for i := range 5 {
			after := json.RawMessage(`{"items":["` + strings.Repeat("x", i+1) + `"]}`)
			mustWrite(t, h.Store, r, complete(r, i, nil, after))
			datas = append(datas, after)
		}
		p := checkpoint(r, 0, counts(r))
		p.Nodes = p.Nodes[2:]
		for k := range p.Nodes {
			i := p.Nodes[k].Index
			r.Steps[i].Status, r.Steps[i].StartedAt, r.Steps[i].FinishedAt = flux.StatusPending, time.Time{}, time.Time{}
			p.Nodes[k] = driver.NodeChange{Index: i, Name: r.Steps[i].Name, Kind: flux.KindStep, Status: flux.StatusPending, Reset: true}
		}
		r.Summary = driver.Summarize(r.Steps)
		p.Header.Summary = r.Summary
		r.Data = datas[1]
		mustWrite(t, h.Store, r, p)
		wantSameRun(t, "Get after a reset from node c", r, mustGet(t, h.Store, "r1"))
		if got := mustNodeData(t, h.Store, "r1", 4); string(got) != string(datas[1]) {
			t.Fatalf("NodeData(r1, 4) after the reset = %s, want node b's %s", got, datas[1])
		}
		again := json.RawMessage(`{"items":["again"]}`)
		mustWrite(t, h.Store, r, complete(r, 2, datas[1], again))
		wantSameRun(t, "Get after node c completed again", r, mustGet(t, h.Store, "r1"))
		if n := len(mustGet(t, h.Store, "r1").Steps[2].Attempts); n != 2 {
			t.Fatalf("node c has %d attempts after the reset and its new one, want 2", n)
		}
	}},
	{"ReplaceAndResize", func(t *testing.T, h Harness) {
		// The definition changed before a resume: node d is new at its
		// place, e is gone.
		r := dataRun("r1")
		mustCreate(t, h.Store, r, 0)
		for i := range 4 {
			mustWrite(t, h.Store, r, complete(r, i, nil, json.RawMessage(`{"n":`+string(rune('1'+i))+`}`)))
		}
		r.Steps = r.Steps[:4]
		r.Steps[3] = flux.StepState{Name: "d2", Kind: flux.KindCommit, Status: flux.StatusPending}
		r.Summary = driver.Summarize(r.Steps)
		r.Data = json.RawMessage(`{"n":3}`)
		p := checkpoint(r, 0, counts(r))
		p.Nodes[3].Replace = true
		mustWrite(t, h.Store, r, p)
		got := mustGet(t, h.Store, "r1")
		wantSameRun(t, "Get after replacing node d and dropping e", r, got)
	}},
	{"StaleVersionConflicts", func(t *testing.T, h Harness) {
		r := mustCreate(t, h.Store, fullRun("r1"), 0)
		stale := r.Clone()
		r.Status = flux.StatusCompleted
		mustCheckpoint(t, h.Store, r, 0, counts(r))
		stale.Status = flux.StatusFailed
		_, err := h.Store.Checkpoint(ctx(t), checkpoint(stale, 0, counts(stale)))
		wantErr(t, "Checkpoint of version 1 after version 2 was written", err, flux.ErrConflict)
		wantSameRun(t, "Get after the conflicting Checkpoint", r, mustGet(t, h.Store, "r1"))
	}},
	{"NewerVersionConflicts", func(t *testing.T, h Harness) {
		r := mustCreate(t, h.Store, fullRun("r1"), 0)
		want := r.Clone()
		r.Version = 5
		_, err := h.Store.Checkpoint(ctx(t), checkpoint(r, 0, counts(r)))
		wantErr(t, "Checkpoint of a version the store does not have", err, flux.ErrConflict)
		wantSameRun(t, "Get after the conflicting Checkpoint", want, mustGet(t, h.Store, "r1"))
	}},
	{"OtherOwnerLeaseLost", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		want := r.Clone()
		for _, owner := range []string{"engine-b", ""} {
			w := want.Clone()
			w.Owner, w.Status = owner, flux.StatusCancelled
			_, err := h.Store.Checkpoint(ctx(t), checkpoint(w, hour, counts(w)))
			wantErr(t, "Checkpoint by owner "+quote(owner)+" of a run engine-a holds", err, flux.ErrLeaseLost)
		}
		wantSameRun(t, "Get after the refused Checkpoints", want, mustGet(t, h.Store, "r1"))
	}},
	{"UnknownRunNotFound", func(t *testing.T, h Harness) {
		r := fullRun("missing")
		_, err := h.Store.Checkpoint(ctx(t), checkpoint(r, 0, nil))
		wantErr(t, "Checkpoint of an unknown run", err, flux.ErrRunNotFound)
		_, err = h.Store.Get(ctx(t), "missing")
		wantErr(t, "Get after Checkpoint of an unknown run", err, flux.ErrRunNotFound)
	}},
	{"ExtendsLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		mustCheckpoint(t, h.Store, r, 3*hour, counts(r))
		wantLeaseAbout(t, "lease after Checkpoint with a 3h lease", r.LeaseUntil, 3*hour)
		wantSameRun(t, "Get after Checkpoint", r, mustGet(t, h.Store, "r1"))
	}},
	{"KeepsLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		lease := r.LeaseUntil
		mustCheckpoint(t, h.Store, r, 0, counts(r))
		if !sameTime(r.LeaseUntil, lease) {
			t.Fatalf("after Checkpoint with lease 0 the lease is %s, want the stored %s", fmtTime(r.LeaseUntil), fmtTime(lease))
		}
		got := mustGet(t, h.Store, "r1")
		if got.Owner != "engine-a" || !sameTime(got.LeaseUntil, lease) {
			t.Fatalf("after Checkpoint with lease 0 the stored lease is %q until %s, want engine-a until %s", got.Owner, fmtTime(got.LeaseUntil), fmtTime(lease))
		}
	}},
	{"ReleasesLease", func(t *testing.T, h Harness) {
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, hour)
		r.Status = flux.StatusCompleted
		mustCheckpoint(t, h.Store, r, driver.ReleaseLease, counts(r))
		if r.Owner != "" || !r.LeaseUntil.IsZero() || r.Version != 2 {
			t.Fatalf("after Checkpoint with ReleaseLease: Owner %q, LeaseUntil %s, Version %d; want none, zero time, 2", r.Owner, fmtTime(r.LeaseUntil), r.Version)
		}
		wantSameRun(t, "Get after releasing the lease", r, mustGet(t, h.Store, "r1"))
		c := mustClaim(t, h.Store, driver.ClaimParams{ID: "r1", Owner: "engine-b", Lease: hour})
		if c.Owner != "engine-b" {
			t.Fatalf("Claim of a released run gave owner %q, want engine-b", c.Owner)
		}
	}},
	{"UnownedAcceptsWrite", func(t *testing.T, h Harness) {
		r := mustCreate(t, h.Store, fullRun("r1"), 0)
		r.Status = flux.StatusCancelled
		mustCheckpoint(t, h.Store, r, 0, counts(r)) // "" writes to ""
		wantSameRun(t, "Get after an unowned Checkpoint", r, mustGet(t, h.Store, "r1"))

		r.Owner = "engine-a"
		r.Status = flux.StatusRunning
		w, err := h.Store.Checkpoint(ctx(t), checkpoint(r, hour, counts(r))) // an owner writes to ""
		if err != nil {
			t.Fatal(err)
		}
		r.Version, r.LeaseUntil = w.Version, w.LeaseUntil
		if r.Version != 3 {
			t.Fatalf("version %d after two Checkpoints, want 3", r.Version)
		}
		// The owner that wrote takes no lease: only a claim does.
		r.Owner, r.LeaseUntil = "", time.Time{}
		wantSameRun(t, "Get after an owner's Checkpoint of an unowned run", r, mustGet(t, h.Store, "r1"))
	}},
	{"ExpiredOwnerMayWrite", func(t *testing.T, h Harness) {
		// An expired lease no one took over still lets its owner write:
		// only another owner's claim takes a run away.
		r := fullRun("r1")
		r.Owner = "engine-a"
		mustCreate(t, h.Store, r, time.Nanosecond)
		r.Status = flux.StatusCompleted
		mustCheckpoint(t, h.Store, r, hour, counts(r))
		wantSameRun(t, "Get after the expired owner's Checkpoint", r, mustGet(t, h.Store, "r1"))
	}},
}

func quote(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
