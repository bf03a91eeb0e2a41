package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// Workload "start": background execution. Runs of W1's shape are stored
// pending with flux.Start, then worker processes drain them; then the
// latency from Start to the first step's start, and what idle workers cost.

// startData is the data of the drained workflow.
type startData struct {
	Done bool `json:"done"`
}

// commits counts the commits this process executed.
var commits atomic.Int64

// firstStep, when set, is told of each first step's start (latency phase).
var firstStep atomic.Pointer[func(runID string)]

// drained is W1's shape: two steps and a commit that is counted.
var drained = flux.New[w1Input, startData]("bench-start").
	Step("validate", func(c *flux.Ctx[w1Input, startData]) error {
		if f := firstStep.Load(); f != nil && c.Attempt() == 1 {
			(*f)(c.RunID())
		}
		return nil
	}).
	Step("reserve", func(*flux.Ctx[w1Input, startData]) error { return nil }).
	Commit("notify", func(c *flux.Ctx[w1Input, startData]) error {
		commits.Add(1)
		c.Data.Done = true
		return nil
	})

// startResult holds the figures of the start workload.
type startResult struct {
	Storage            string
	Runs, Processes    int
	StartElapsed       time.Duration // storing the runs
	DrainElapsed       time.Duration // executing them
	Commits            int64         // over every process: Runs when each ran once
	LatencyP50, P99    time.Duration // Start to the first step's start
	LatencyRuns        int
	IdleCallsPerEngine float64 // store calls per second of an idle engine
}

func (r startResult) String() string {
	return fmt.Sprintf("start %s: %d runs stored in %.2fs (%.0f runs/s); drained by %d process(es) in %.2fs (%.0f runs/s); "+
		"commits %d (once each: %v); Start to first step p50 %.2f ms p99 %.2f ms (%d runs); idle engine %.2f store calls/s",
		r.Storage, r.Runs, r.StartElapsed.Seconds(), float64(r.Runs)/r.StartElapsed.Seconds(), r.Processes,
		r.DrainElapsed.Seconds(), float64(r.Runs)/r.DrainElapsed.Seconds(), r.Commits, r.Commits == int64(r.Runs),
		float64(r.LatencyP50.Microseconds())/1000, float64(r.P99.Microseconds())/1000, r.LatencyRuns, r.IdleCallsPerEngine)
}

// benchStart runs the start workload: n runs, drained by processes worker
// processes (this one and processes-1 children) of concurrency workers each.
func benchStart(ctx context.Context, so *storeOptions, n, processes, concurrency int) (startResult, error) {
	res := startResult{Storage: so.kind(), Runs: n, Processes: processes}
	if processes > 1 && so.kind() != "postgres" {
		return res, fmt.Errorf("--processes %d needs --storage postgres: only PostgreSQL is shared by processes", processes)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	store, err := so.open(ctx)
	if err != nil {
		return res, err
	}
	defer store.Close()

	// Store the runs, with a producer that executes none.
	producer, err := flux.NewEngine(flux.Config{Storage: store, Logger: quiet, Workers: -1})
	if err != nil {
		return res, err
	}
	defer producer.Close()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if _, err := flux.Start(ctx, producer, drained, w1Input{OrderID: fmt.Sprint(i)}); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	res.StartElapsed = time.Since(start)
	if firstErr != nil {
		return res, firstErr
	}

	// Drain them: children first, then this process's engine.
	var children []*exec.Cmd
	var outs []io.ReadCloser
	var ins []io.WriteCloser
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	for range processes - 1 {
		args := []string{"bench", "--workload", "start-worker", "--postgres", so.postgres, "--concurrency", fmt.Sprint(concurrency)}
		if so.schema != "" {
			args = append(args, "--schema", so.schema)
		}
		cmd := exec.CommandContext(ctx, self, args...)
		in, err := cmd.StdinPipe()
		if err != nil {
			return res, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return res, err
		}
		cmd.Stderr = os.Stderr
		children, ins, outs = append(children, cmd), append(ins, in), append(outs, out)
	}
	drainStart := time.Now()
	for _, c := range children {
		if err := c.Start(); err != nil {
			return res, err
		}
	}
	worker, err := flux.NewEngine(flux.Config{Storage: store, Logger: quiet, Workers: concurrency})
	if err != nil {
		return res, err
	}
	if err := worker.Register(drained); err != nil {
		return res, err
	}
	for {
		if processes == 1 {
			if commits.Load() >= int64(n) {
				break // one process: its own count says when
			}
		} else {
			page, err := store.List(ctx, flux.Filter{Workflow: drained.Name(), Status: []flux.Status{flux.StatusPending, flux.StatusRunning}, Limit: 1})
			if err != nil {
				return res, err
			}
			if len(page.Runs) == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	res.DrainElapsed = time.Since(drainStart)
	if err := worker.Shutdown(ctx); err != nil {
		return res, err
	}
	res.Commits = commits.Load()
	for i, c := range children {
		ins[i].Close() // the child shuts down and prints its commits
		var got struct{ Commits int64 }
		if err := json.NewDecoder(bufio.NewReader(outs[i])).Decode(&got); err != nil {
			return res, fmt.Errorf("reading a worker process's commits: %w", err)
		}
		res.Commits += got.Commits
		if err := c.Wait(); err != nil {
			return res, fmt.Errorf("a worker process: %w", err)
		}
	}

	// Latency: a producer and a worker on stores of their own (for
	// PostgreSQL, two pools: the worker hears of each run by NOTIFY).
	workerStore := store // memory and SQLite: one store per process
	if so.kind() == "postgres" {
		if workerStore, err = so.open(ctx); err != nil {
			return res, err
		}
		defer workerStore.Close()
	}
	var calls atomic.Int64
	counted := &countingStore{Store: workerStore, calls: &calls}
	latWorker, err := flux.NewEngine(flux.Config{Storage: counted, Logger: quiet, Workers: concurrency, RecoveryInterval: time.Second})
	if err != nil {
		return res, err
	}
	defer latWorker.Close()
	if err := latWorker.Register(drained); err != nil {
		return res, err
	}
	began := make(chan string, 1)
	f := func(id string) { began <- id }
	firstStep.Store(&f)
	defer firstStep.Store(nil)
	const latencyRuns = 300
	lat := make([]time.Duration, 0, latencyRuns)
	for i := range latencyRuns {
		t0 := time.Now()
		id, err := flux.Start(ctx, producer, drained, w1Input{OrderID: fmt.Sprintf("lat-%d", i)})
		if err != nil {
			return res, err
		}
		for got := <-began; got != id; got = <-began {
		}
		lat = append(lat, time.Since(t0))
		if _, err := flux.Wait(ctx, producer, drained, id); err != nil {
			return res, err
		}
	}
	slices.Sort(lat)
	res.LatencyRuns, res.LatencyP50, res.P99 = len(lat), lat[len(lat)/2], lat[len(lat)*99/100]

	// Idle: the store calls an engine with nothing to do makes.
	calls.Store(0)
	idle := 5 * time.Second
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(idle):
	}
	res.IdleCallsPerEngine = float64(calls.Load()) / idle.Seconds()
	return res, nil
}

// countingStore counts the calls made to a store.
type countingStore struct {
	driver.Store
	calls *atomic.Int64
}

func (s *countingStore) ClaimExpired(ctx context.Context, p driver.ClaimExpiredParams) (*driver.ClaimedRuns, error) {
	s.calls.Add(1)
	return s.Store.ClaimExpired(ctx, p)
}

func (s *countingStore) Extend(ctx context.Context, p driver.ExtendParams) ([]string, error) {
	s.calls.Add(1)
	return s.Store.Extend(ctx, p)
}

func (s *countingStore) Prune(ctx context.Context, p driver.PruneParams) (int, error) {
	s.calls.Add(1)
	return s.Store.Prune(ctx, p)
}

func (s *countingStore) Wakeups() (<-chan struct{}, func()) {
	if w, ok := s.Store.(driver.Waker); ok {
		return w.Wakeups()
	}
	return nil, func() {}
}

// startWorker is a worker process of the start workload: it executes
// started runs until its standard input closes, then shuts down and prints
// how many commits it executed.
func startWorker(ctx context.Context, so *storeOptions, concurrency int) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	store, err := so.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	e, err := flux.NewEngine(flux.Config{Storage: store, Logger: quiet, Workers: concurrency})
	if err != nil {
		return err
	}
	if err := e.Register(drained); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := e.Shutdown(ctx); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(struct{ Commits int64 }{commits.Load()})
}
