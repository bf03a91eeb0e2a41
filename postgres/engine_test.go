package postgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
)

type orderIn struct {
	OrderID string `json:"orderId"`
}

type orderData struct {
	Validated bool   `json:"validated"`
	Reserved  bool   `json:"reserved"`
	Note      string `json:"note"`
}

// w1 is workload W1: two steps and one commit, trivial work, small data.
var w1 = flux.New[orderIn, orderData]("w1").
	Step("validate", func(c *flux.Ctx[orderIn, orderData]) error { c.Data.Validated = true; return nil }).
	Step("reserve", func(c *flux.Ctx[orderIn, orderData]) error { c.Data.Reserved = true; return nil }).
	Commit("notify", func(c *flux.Ctx[orderIn, orderData]) error { c.Data.Note = "sent " + c.Input.OrderID; return nil })

var quiet = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))

func newEngine(t testing.TB, s *postgres.Store) *flux.Engine {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Storage: s, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// TestEngineRunsOnPostgres executes runs concurrently through an engine and
// reads them back from the store.
func TestEngineRunsOnPostgres(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	e := newEngine(t, s)
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := flux.Execute(t.Context(), e, w1, orderIn{OrderID: fmt.Sprint("o", i)})
			if err != nil {
				t.Errorf("Execute %d: %v", i, err)
				return
			}
			if res.Status != flux.StatusCompleted || res.Data.Note != fmt.Sprint("sent o", i) {
				t.Errorf("run %d: status %s data %+v", i, res.Status, res.Data)
			}
			ids[i] = res.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" {
			continue
		}
		r, err := s.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != flux.StatusCompleted || r.Owner != "" || len(r.Steps) != 3 || r.Steps[2].Status != flux.StatusCompleted {
			t.Errorf("stored run %s: status %s owner %q steps %+v", id, r.Status, r.Owner, r.Steps)
		}
	}
	page, err := s.List(t.Context(), flux.Filter{Workflow: "w1", Status: []flux.Status{flux.StatusCompleted}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != n {
		t.Errorf("List found %d completed runs, want %d", len(page.Runs), n)
	}
}

// TestEngineRecoversExpiredRun: a run left by a dead engine is continued by
// another engine that has the workflow registered, once its lease expires
// on the database clock.
func TestEngineRecoversExpiredRun(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := t.Context()
	run := &flux.Run{
		ID: "orphan", Workflow: "w1", Status: flux.StatusRunning, Owner: "dead-engine",
		Input: []byte(`{"orderId":"o9"}`), Data: []byte(`{}`),
		Steps: []flux.StepState{
			{Name: "validate", Kind: flux.KindStep, Status: flux.StatusCompleted},
			{Name: "reserve", Kind: flux.KindStep, Status: flux.StatusPending},
			{Name: "notify", Kind: flux.KindCommit, Status: flux.StatusPending},
		},
		CreatedAt: time.Now(), UpdatedAt: time.Now(),
	}
	// The fingerprint of the current definition, taken from a run of it.
	done := make(chan flux.RunEvent, 1)
	e, err := flux.NewEngine(flux.Config{Storage: s, Logger: quiet, Hooks: flux.Hooks{
		WorkflowComplete: func(ev flux.RunEvent) {
			if ev.RunID == "orphan" {
				done <- ev
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	probe, err := flux.Execute(ctx, e, w1, orderIn{OrderID: "probe"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.Get(ctx, probe.ID)
	if err != nil {
		t.Fatal(err)
	}
	run.Fingerprint = stored.Fingerprint
	if _, err := s.Create(ctx, driver.CreateParams{Run: run, Lease: time.Hour,
		Data: []driver.NodeData{{Index: 0, Snapshot: []byte(`{"validated":true}`)}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Register(w1); err != nil {
		t.Fatal(err)
	}
	if got := e.RecoverNow(); got != 0 {
		t.Fatalf("RecoverNow claimed %d runs under a live lease", got)
	}
	expireLease(t, s, "orphan")
	// Register started the recovery loop, which may claim it first.
	e.RecoverNow()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the recovered run did not complete within 30s")
	}
	r, err := s.Get(ctx, "orphan")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != flux.StatusCompleted || string(r.Data) != `{"validated":true,"reserved":true,"note":"sent o9"}` {
		t.Errorf("recovered run: status %s data %s", r.Status, r.Data)
	}
}

// BenchmarkExecute runs workload W1 through an engine on PostgreSQL,
// sequentially and at concurrency 32, and reports steps/s.
func BenchmarkExecute(b *testing.B) {
	for _, c := range []int{1, 32} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			s := openStore(b)
			e := newEngine(b, s)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range c {
				wg.Go(func() {
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						if _, err := flux.Execute(ctx, e, w1, orderIn{OrderID: "o"}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(3*b.N)/el.Seconds(), "steps/s")
			b.ReportMetric(float64(el.Microseconds())/1000*float64(c)/float64(b.N), "ms/run")
			if batches, writes := postgres.BatchStats(s); batches > 0 {
				b.ReportMetric(float64(writes)/float64(batches), "writes/commit")
				b.ReportMetric(float64(writes)/float64(b.N), "writes/run")
			}
		})
	}
}
