package viewer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/tracefile"
)

// checkSamples checks what a source shows of the runs of runSamples.
func checkSamples(t *testing.T, src Source, ids map[string]string) {
	t.Helper()
	ctx := context.Background()
	for kind, taken := range map[string]string{"route-auto": "auto-handle", "route-manual": "manual-review", "route-risk": "risk-audit"} {
		d, err := src.Run(ctx, ids[kind])
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != flux.StatusCompleted || d.Workflow != "event-routing" {
			t.Errorf("%s: %s %s, want a completed event-routing run", kind, d.Workflow, d.Status)
		}
		for _, route := range []string{"auto-handle", "manual-review", "risk-audit"} {
			n := nodeByName(t, d, route)
			want := flux.StatusSkipped
			if route == taken {
				want = flux.StatusCompleted
			}
			if n.Status != want {
				t.Errorf("%s: %s is %s, want %s", kind, route, n.Status, want)
			}
			if !n.Conditional {
				t.Errorf("%s: %s is not marked conditional", kind, route)
			}
		}
		if n := nodeByName(t, d, "notify"); n.Kind != flux.KindCommit {
			t.Errorf("notify is a %s, want a commit", n.Kind)
		}
	}
	d, err := src.Run(ctx, ids["order"])
	if err != nil {
		t.Fatal(err)
	}
	charge := nodeByName(t, d, "charge")
	if len(charge.Attempts) != 3 {
		t.Fatalf("charge has %d attempts, want 3", len(charge.Attempts))
	}
	for i, a := range charge.Attempts {
		want := flux.StatusFailed
		if i == 2 {
			want = flux.StatusCompleted
		}
		if a.Number != i+1 || a.Status != want || a.Estimated || a.StartMs == 0 {
			t.Errorf("charge attempt %d = %+v, want #%d %s with a traced start", i, a, i+1, want)
		}
		if want == flux.StatusFailed && a.Error != "payment gateway timeout" {
			t.Errorf("attempt %d error %q", i+1, a.Error)
		}
	}
	if d.Retries != 2 {
		t.Errorf("order retries = %d, want 2", d.Retries)
	}
	h, err := src.Run(ctx, ids["hostile"])
	if err != nil {
		t.Fatal(err)
	}
	if h.Workflow != hostile || h.Status != flux.StatusFailed || h.Nodes[0].Name != hostile {
		t.Errorf("hostile run = %s %s, first node %q", h.Workflow, h.Status, h.Nodes[0].Name)
	}
	p, err := src.Runs(ctx, Query{Status: []flux.Status{flux.StatusFailed}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Runs) != 1 || p.Runs[0].ID != ids["hostile"] {
		t.Errorf("failed runs = %v, want the hostile one", ids)
	}
	p, err = src.Runs(ctx, Query{Search: "ONMOUSEOVER"})
	if err != nil || len(p.Runs) != 1 || p.Runs[0].ID != ids["hostile"] {
		t.Errorf("search by error: %v %v, want the hostile run", p, err)
	}
	p, err = src.Runs(ctx, Query{Search: ids["order"][:30]})
	if err != nil || len(p.Runs) != 1 || p.Runs[0].ID != ids["order"] {
		t.Errorf("search by ID prefix: %v %v", p, err)
	}
	p, err = src.Runs(ctx, Query{Workflow: "event-routing", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Runs) != 2 || p.Next == "" {
		t.Errorf("first page of routing runs: %d runs, next %q; want 2 and a cursor", len(p.Runs), p.Next)
	}
	p, err = src.Runs(ctx, Query{Workflow: "event-routing", Limit: 2, Cursor: p.Next})
	if err != nil || len(p.Runs) != 1 {
		t.Errorf("second page: %v %v, want the third routing run", p, err)
	}
	if _, err := src.Run(ctx, "missing"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Errorf("missing run: %v, want ErrRunNotFound", err)
	}
}

func TestStorageSourceMemory(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	ids := runSamples(t, newEngine(t, flux.Config{Storage: store}))
	checkSamples(t, NewStorageSource(store, "memory", StorageOptions{}), ids)
}

func TestStorageSourcePostgres(t *testing.T) {
	url := os.Getenv("FLUX_POSTGRES_URL")
	if url == "" {
		t.Skip("FLUX_POSTGRES_URL is not set; set it to a PostgreSQL URL to test the viewer on a postgres store")
	}
	t.Parallel()
	ctx := context.Background()
	// A schema of its own, so that parallel tests and other runs on the
	// same server never see these runs.
	schema := fmt.Sprintf("flux_viewer_test_%d", time.Now().UnixNano())
	store, err := postgres.Open(ctx, url, postgres.Schema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := store.Pool().Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
		store.Close()
	}()
	ids := runSamples(t, newEngine(t, flux.Config{Storage: store}))
	src := NewStorageSource(store, "postgres", StorageOptions{})
	ctx2 := context.Background()
	for _, id := range ids {
		if _, err := src.Run(ctx2, id); err != nil {
			t.Fatalf("run %s: %v", id, err)
		}
	}
	d, err := src.Run(ctx2, ids["order"])
	if err != nil {
		t.Fatal(err)
	}
	if n := nodeByName(t, d, "charge"); len(n.Attempts) != 3 {
		t.Errorf("charge has %d attempts in postgres, want 3", len(n.Attempts))
	}
	d, err = src.Run(ctx2, ids["route-risk"])
	if err != nil {
		t.Fatal(err)
	}
	if n := nodeByName(t, d, "auto-handle"); n.Status != flux.StatusSkipped {
		t.Errorf("auto-handle %s in postgres, want skipped", n.Status)
	}
}

func TestStorageSourceWatch(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	e := newEngine(t, flux.Config{Storage: store})
	src := NewStorageSource(store, "memory", StorageOptions{PollInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Change, 16)
	polled := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.watch(ctx, func(c Change) {
			select {
			case got <- c:
			default:
			}
		}, func() {
			select {
			case polled <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	<-polled // the first poll saw no run
	var in routeIn
	in.Payload.Kind = "risk"
	res, err := flux.Execute(context.Background(), e, routingFlow, in)
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c := <-got:
			for _, id := range c.Runs {
				if id == res.ID {
					return
				}
			}
		case <-timeout:
			t.Fatal("no change named the new run")
		}
	}
}

// TestEngineTraceFile runs the samples with the tracefile sink and checks
// the trace source shows them as the storage does.
func TestEngineTraceFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".flux", "trace.ndjson")
	sink, err := tracefile.New(path, tracefile.Reset(true))
	if err != nil {
		t.Fatal(err)
	}
	ids := runSamples(t, newEngine(t, flux.Config{Trace: sink}))
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	checkSamples(t, src, ids)
	d, err := src.Run(context.Background(), ids["hostile"])
	if err != nil {
		t.Fatal(err)
	}
	if d.Error == "" || d.FailedStep != "fail "+hostile {
		t.Errorf("hostile run error %q at %q", d.Error, d.FailedStep)
	}
}

// TestStorageSourceInterruptedAndInFlight stores a running run by hand: its
// charge node has a failed attempt, an interrupted one (Interrupted set,
// Duration unknown), an interrupted one of an older record (marked only by
// the "interrupted: " prefix) and an attempt in flight; its ship node was
// interrupted once and then completed. It checks the attempts the run page
// shows and that the summary counts interrupted attempts neither as
// finished nor as retries.
func TestStorageSourceInterruptedAndInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	inFlight := base.Add(10 * time.Second)
	run := &flux.Run{
		ID: "run-interrupted", Workflow: "shop", Status: flux.StatusRunning,
		Input: []byte(`{}`), Data: []byte(`{}`), CreatedAt: base, UpdatedAt: inFlight,
		Steps: []flux.StepState{
			{Name: "charge", Kind: flux.KindStep, Status: flux.StatusRunning, StartedAt: base, InFlight: inFlight,
				Attempts: []flux.Attempt{
					{Number: 1, StartedAt: base, Duration: 100 * time.Millisecond, Error: "gateway timeout"},
					{Number: 2, StartedAt: base.Add(time.Second), Error: "the engine running it stopped", Interrupted: true},
					{Number: 3, StartedAt: base.Add(2 * time.Second), Duration: 50 * time.Millisecond, Error: "interrupted: context canceled"},
				}},
			{Name: "ship", Kind: flux.KindCommit, Status: flux.StatusCompleted, StartedAt: base, FinishedAt: base.Add(3 * time.Second),
				Attempts: []flux.Attempt{
					{Number: 1, StartedAt: base, Duration: 20 * time.Millisecond, Error: "run cancelled", Interrupted: true},
					{Number: 2, StartedAt: base.Add(3 * time.Second), Duration: 5 * time.Millisecond},
				}},
			{Name: "notify", Kind: flux.KindCommit, Status: flux.StatusPending},
		},
	}
	store := flux.NewMemoryStorage()
	if _, err := store.Create(ctx, driver.CreateParams{Run: run}); err != nil {
		t.Fatal(err)
	}
	src := NewStorageSource(store, "memory", StorageOptions{})
	d, err := src.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}

	type want struct {
		number  int
		status  flux.Status
		startMs int64
		endMs   int64
	}
	check := func(node string, wants []want) {
		t.Helper()
		n := nodeByName(t, d, node)
		if len(n.Attempts) != len(wants) {
			t.Fatalf("%s has %d attempts %+v, want %d", node, len(n.Attempts), n.Attempts, len(wants))
		}
		for i, w := range wants {
			a := n.Attempts[i]
			if a.Number != w.number || a.Status != w.status || a.StartMs != w.startMs || a.EndMs != w.endMs {
				t.Errorf("%s attempt %d = #%d %s %d–%d, want #%d %s %d–%d",
					node, i, a.Number, a.Status, a.StartMs, a.EndMs, w.number, w.status, w.startMs, w.endMs)
			}
		}
	}
	ms := func(d time.Duration) int64 { return base.Add(d).UnixMilli() }
	check("charge", []want{
		{1, flux.StatusFailed, ms(0), ms(100 * time.Millisecond)},
		{2, statusInterrupted, ms(time.Second), ms(time.Second)}, // Duration unknown: it ends where it starts
		{3, statusInterrupted, ms(2 * time.Second), ms(2*time.Second + 50*time.Millisecond)},
		{4, flux.StatusRunning, inFlight.UnixMilli(), 0}, // from InFlight, not from the end of #3
	})
	check("ship", []want{
		{1, statusInterrupted, ms(0), ms(20 * time.Millisecond)},
		{2, flux.StatusCompleted, ms(3 * time.Second), ms(3*time.Second + 5*time.Millisecond)},
	})
	check("notify", nil)

	// Only charge #1 failed and was retried; charge #1 and ship #2 finished.
	if d.Retries != 1 || d.Attempts != 2 {
		t.Errorf("run detail counts %d retries and %d attempts, want 1 retry (charge #1) and 2 finished attempts", d.Retries, d.Attempts)
	}
	p, err := src.Runs(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Runs) != 1 || p.Runs[0].Retries != 1 || p.Runs[0].Attempts != 2 {
		t.Errorf("runs list = %+v, want the run with 1 retry and 2 finished attempts", p.Runs)
	}

	// Once the run is no longer running, nothing is shown in flight.
	if err := store.Cancel(ctx, driver.CancelParams{ID: run.ID, Error: "cancelled", At: inFlight}); err != nil {
		t.Fatal(err)
	}
	if d, err = src.Run(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if n := nodeByName(t, d, "charge"); len(n.Attempts) != 3 {
		t.Errorf("charge of the cancelled run has %d attempts %+v, want the 3 recorded ones", len(n.Attempts), n.Attempts)
	}
}

// TestStorageSourceWatchOldRun: the live view follows the store's change
// feed, so a change to a run behind hundreds of newer ones is seen.
func TestStorageSourceWatchOldRun(t *testing.T) {
	t.Parallel()
	store := flux.NewMemoryStorage()
	e := newEngine(t, flux.Config{Storage: store})
	var fail atomic.Bool
	fail.Store(true)
	w := flux.New[struct{}, struct{}]("flaky").Step("s", func(*flux.Ctx[struct{}, struct{}]) error {
		if fail.Load() {
			return flux.Permanent(errors.New("down"))
		}
		return nil
	})
	old, _ := flux.Execute(context.Background(), e, w, struct{}{})
	fail.Store(false)
	for range 300 {
		if _, err := flux.Execute(context.Background(), e, w, struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	src := NewStorageSource(store, "memory", StorageOptions{PollInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Change, 16)
	polled := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.watch(ctx, func(c Change) { got <- c }, func() {
			select {
			case polled <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	<-polled // the first poll took the feed's position
	if _, err := flux.Resume(context.Background(), e, w, old.ID); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case c := <-got:
			for _, id := range c.Runs {
				if id == old.ID {
					return
				}
			}
		case <-timeout:
			t.Fatal("no change named the old run resumed")
		}
	}
}
