package crashtest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// TestTwoEnginesPostgres runs two engines in two processes on one
// PostgreSQL schema. Both start every run, in different orders, and recover
// what the other leaves; every run must complete once, and no node may be
// executed by both engines at the same time.
func TestTwoEnginesPostgres(t *testing.T) {
	t.Parallel()
	sc := pgStore(t)
	dir := t.TempDir()
	const runs = 100
	engines := []string{"engine-a", "engine-b"}
	var children []*child
	for i, who := range engines {
		children = append(children, spawn(t, childConfig{
			Mode: "worker", Store: sc, Dir: dir, Who: who, Runs: runs, Concurrency: 4,
			Lease: 2 * time.Second, Shuffle: uint64(i + 1),
		}))
	}
	for i, c := range children {
		if ws := c.wait(t, 2*time.Minute); ws.ExitStatus() != 0 {
			t.Fatalf("%s exited with %v; its output:\n%s", engines[i], ws, c.output())
		}
	}

	ctx := t.Context()
	store, closeStore, err := openStore(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	ids := runIDs(runs)
	for _, id := range ids {
		run, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var d Data
		if run.Status != flux.StatusCompleted {
			t.Errorf("run %s is %s (%s), want completed", id, run.Status, run.Error)
		} else if err := json.Unmarshal(run.Data, &d); err != nil || d != expected(id, inputOf(id).N) {
			t.Errorf("run %s: data %s (%v), want %+v", id, run.Data, err, expected(id, inputOf(id).N))
		}
	}
	ledger := ledgerByRun(t, dir, ids)
	for _, id := range ids {
		if ledger[id] != 1 {
			t.Errorf("run %s: %d ledger lines, want exactly 1", id, ledger[id])
		}
	}

	// Each node's execution as an interval, from the engines' logs.
	type interval struct {
		step, who  string
		start, end int64
	}
	byRun := map[string][]*interval{}
	open := map[string]*interval{} // run/step/who → started, not ended
	perEngine := map[string]int{}
	for _, c := range readCalls(t, dir) {
		key := c.run + "/" + c.step + "/" + c.who
		switch c.event {
		case "start":
			if open[key] != nil {
				t.Errorf("%s started twice without ending", key)
			}
			iv := &interval{step: c.step, who: c.who, start: c.at}
			open[key] = iv
			byRun[c.run] = append(byRun[c.run], iv)
			perEngine[c.who]++
		case "end":
			if open[key] == nil {
				t.Errorf("%s ended without starting", key)
				continue
			}
			open[key].end = c.at
			delete(open, key)
		}
	}
	for key := range open {
		t.Errorf("%s started and never ended, though no process crashed", key)
	}
	t.Logf("node executions per engine: %v", perEngine)
	steps := []string{"prepare", "price", "charge", "finish"}
	for _, id := range ids {
		ivs := byRun[id]
		slices.SortFunc(ivs, func(a, b *interval) int { return int(a.start - b.start) })
		var names []string
		for i, a := range ivs {
			names = append(names, a.step+"@"+a.who)
			for _, b := range ivs[i+1:] {
				if a.who != b.who && a.start < b.end && b.start < a.end {
					t.Errorf("run %s: %s by %s and %s by %s ran at overlapping times", id, a.step, a.who, b.step, b.who)
				}
			}
			if i > 0 && ivs[i-1].end > a.start {
				t.Errorf("run %s: %s started before %s ended", id, a.step, ivs[i-1].step)
			}
		}
		// Nothing crashed, so each node ran exactly once, in order.
		var got []string
		for _, a := range ivs {
			got = append(got, a.step)
		}
		if !slices.Equal(got, steps) {
			t.Errorf("run %s: nodes ran as %v, want %v once each", id, names, steps)
		}
	}
	if len(perEngine) != len(engines) {
		t.Logf("note: only %v executed nodes; the other engine found every run taken", perEngine)
	}
}
