package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// corruptSink is a trace sink that records the corrupt runs reported to it.
type corruptSink struct {
	mu      sync.Mutex
	reports []flux.CorruptRun
}

func (s *corruptSink) Emit(flux.TraceEvent) {}

func (s *corruptSink) RunCorrupt(c flux.CorruptRun) {
	s.mu.Lock()
	s.reports = append(s.reports, c)
	s.mu.Unlock()
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// recoveryCorruptTest: 1,000 runs are interrupted, one of them is then
// corrupted; recovery by another engine completes the 999 others, and
// reports the bad one by ID, once, in its log and to its trace sink.
func recoveryCorruptTest(t *testing.T, h Harness) {
	if h.Corrupt == nil {
		t.Skip("storagetest: this store cannot corrupt a stored run (Harness.Corrupt is nil)")
	}
	const total, bad = 1000, "run-0517"
	var block atomic.Bool
	block.Store(true)
	started := make(chan struct{}, total)
	w := flux.New[In, Data]("bulk").
		Step("wait", func(x *ctxT) error {
			if block.Load() {
				started <- struct{}{}
				<-x.Done()
				return x.Err()
			}
			return nil
		}).
		Step("after", func(x *ctxT) error { x.Data.Trail = append(x.Data.Trail, "after"); return nil })

	// Engine a starts every run and closes while they wait: they stay
	// resumable, their leases given back.
	a, err := flux.NewEngine(flux.Config{Storage: h.Store, ID: "a", Logger: slog.New(slog.DiscardHandler),
		LeaseDuration: time.Hour, RecoveryInterval: time.Hour, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range total {
		wg.Go(func() {
			_, err := flux.Execute(ctx(t), a, w, In{N: i}, flux.RunID(fmt.Sprintf("run-%04d", i)))
			if !errors.Is(err, flux.ErrClosed) {
				t.Errorf("run-%04d on the engine that closed: %v, want ErrClosed", i, err)
			}
		})
	}
	for range total {
		<-started
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	block.Store(false)
	h.Corrupt(t, bad)

	done, hooks := finished()
	var logs syncBuffer
	sink := &corruptSink{}
	b, err := flux.NewEngine(flux.Config{Storage: h.Store, ID: "b", Hooks: hooks, Trace: sink,
		Logger:        slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError})),
		LeaseDuration: time.Hour, RecoveryInterval: time.Hour, PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	b.Register(w)
	completed := map[string]bool{}
	timeout := time.After(2 * time.Minute)
	for len(completed) < total-1 {
		if b.RecoverNow() > 0 {
			continue // claim the next page at once
		}
		select {
		case id := <-done:
			completed[id] = true
		case <-timeout:
			t.Fatalf("%d of %d good runs completed after recovery", len(completed), total-1)
		}
	}
	if completed[bad] {
		t.Fatalf("the corrupt run %s completed", bad)
	}
	for i := 0; i < total; i += 111 {
		if id := fmt.Sprintf("run-%04d", i); id != bad {
			r := mustGet(t, h.Store, id)
			if r.Status != flux.StatusCompleted || !strings.Contains(string(r.Data), `"after"`) {
				t.Fatalf("recovered run %s: status %s, data %s", id, r.Status, r.Data)
			}
		}
	}
	b.RecoverNow() // another pass: the corrupt run is still there, not reported again
	sink.mu.Lock()
	reports := sink.reports
	sink.mu.Unlock()
	if len(reports) != 1 || reports[0].RunID != bad || !errors.Is(reports[0].Err, flux.ErrCorrupt) {
		t.Fatalf("corrupt runs reported to the trace sink: %+v, want %s once, wrapping ErrCorrupt", reports, bad)
	}
	if got := logs.String(); strings.Count(got, "run_id="+bad) != 1 {
		t.Fatalf("error log %q, want one line naming run_id=%s", got, bad)
	}
}
