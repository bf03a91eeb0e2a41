package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
)

// TestLimitAcrossProcesses: engines of two processes (two stores, each its
// own pool, on one schema) claiming a limited workflow at once never exceed
// its limit, however their claims interleave.
func TestLimitAcrossProcesses(t *testing.T) {
	t.Parallel()
	a := openStore(t)
	b, err := postgres.Open(context.Background(), dbURL(t)+"&pool_max_conns=8", postgres.Schema(a.SchemaName()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	const n = 60
	for i := range n {
		r := newRun(fmt.Sprintf("p%02d", i), "lim", flux.StatusPending, created.Add(time.Duration(i)*time.Millisecond))
		r.ConcurrencyKey = fmt.Sprint("k", i%4)
		if err := create(ctx, a, r, 0); err != nil {
			t.Fatal(err)
		}
	}
	lim := []driver.Limit{{Workflow: "lim", Max: 6, PerKey: 2}}
	stores := []*postgres.Store{a, b, a, b, a, b}
	claimed := make([][]*flux.Run, len(stores))
	errs := make([]error, len(stores))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			<-start
			// Each engine claims one run at a time, as many times as it can.
			for {
				c, err := s.ClaimExpired(ctx, driver.ClaimExpiredParams{Owner: fmt.Sprint("engine-", i), Workflows: []string{"lim"},
					Lease: time.Hour, Limit: 1, Limits: lim})
				if err != nil {
					errs[i] = err
					return
				}
				if len(c.Runs) == 0 {
					return
				}
				claimed[i] = append(claimed[i], c.Runs...)
			}
		})
	}
	close(start)
	wg.Wait()
	total, perKey := 0, map[string]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("engine-%d: %v", i, err)
		}
		for _, r := range claimed[i] {
			total++
			perKey[r.ConcurrencyKey]++
		}
	}
	if total != 6 {
		t.Errorf("claimed %d runs, by key %v; want 6, at most 2 of a key", total, perKey)
	}
	for k, c := range perKey {
		if c > 2 {
			t.Errorf("claimed %d runs of key %s, want at most 2", c, k)
		}
	}
}

// TestConsumeInGroupCommit: checkpoints that consume signals and ordinary
// ones, meeting in one group commit, each write what they should; a
// consuming checkpoint that loses its compare-and-set consumes nothing.
func TestConsumeInGroupCommit(t *testing.T) {
	t.Parallel()
	s := openStore(t, postgres.Writers(1))
	ctx := t.Context()
	const n = 40
	runs := make([]*flux.Run, n)
	for i := range runs {
		r := newRun(fmt.Sprintf("c%02d", i), "w", flux.StatusRunning, created)
		r.Owner = "me"
		if err := create(ctx, s, r, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Signal(ctx, driver.SignalParams{RunID: r.ID, Name: "go", At: created}); err != nil {
			t.Fatal(err)
		}
		r.Version = 1
		runs[i] = r
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, r := range runs {
		p := driver.CheckpointParams{ID: r.ID, Owner: r.Owner, Version: r.Version, Lease: time.Hour,
			Header: &driver.Header{Status: flux.StatusRunning, Error: fmt.Sprint("write ", i), Nodes: 1, Summary: driver.Summarize(r.Steps), SignalSeq: 1}}
		switch i % 4 {
		case 0, 1:
			p.Consume = []driver.Consumed{{Seq: 1, Node: 0}}
		}
		if i%4 == 1 {
			p.Version = 7 // stale: fails, consumes nothing
		}
		wg.Go(func() { _, errs[i] = s.Checkpoint(ctx, p) })
	}
	wg.Wait()
	for i, err := range errs {
		if i%4 == 1 {
			if !errors.Is(err, flux.ErrConflict) {
				t.Errorf("stale checkpoint %d: %v, want ErrConflict", i, err)
			}
		} else if err != nil {
			t.Errorf("checkpoint %d: %v", i, err)
		}
		got, err := s.Get(ctx, runs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		wantNode, wantVersion := -1, int64(2)
		switch i % 4 {
		case 0:
			wantNode = 0
		case 1:
			wantVersion = 1
		}
		if len(got.Signals) != 1 || got.Signals[0].Node != wantNode || got.Version != wantVersion {
			t.Errorf("run %d: version %d, signals %+v; want version %d, signal 1 consumed by node %d", i, got.Version, got.Signals, wantVersion, wantNode)
		}
	}
	batches, writes := postgres.BatchStats(s)
	t.Logf("%d writes in %d commits", writes, batches)
}

// TestSignalBadInput: a signal with nowhere to go, or a payload that is not
// JSON, is refused with an error saying so, and stores nothing.
func TestSignalBadInput(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := t.Context()
	r := newRun("r1", "w", flux.StatusRunning, created)
	if err := create(ctx, s, r, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    driver.SignalParams
		want string
	}{
		{driver.SignalParams{Name: "go", At: created}, "RunID"},
		{driver.SignalParams{RunID: "r1", Name: "go", Payload: []byte("{not json"), At: created}, "not valid JSON"},
		{driver.SignalParams{RunID: "r1", Name: "go", At: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, "years"},
	} {
		if n, err := s.Signal(ctx, c.p); err == nil || !strings.Contains(err.Error(), c.want) || n != 0 {
			t.Errorf("Signal(%+v) = %d, %v; want an error mentioning %s", c.p, n, err, c.want)
		}
	}
	got, err := s.Get(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.SignalSeq != 0 || len(got.Signals) != 0 {
		t.Errorf("refused signals were stored: SignalSeq %d, %d signals", got.SignalSeq, len(got.Signals))
	}
}
