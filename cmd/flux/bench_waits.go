package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/trigger"
)

// Workload "waits": durable sleeps. N runs are started and park in a sleep
// until a time of their own — all at one instant, or spread at an even
// rate — then the engine wakes them. It prints the goroutines the parked
// runs hold (none), and how late each run woke: the time from the end of
// its sleep to the start of the step after it.

type waitInput struct {
	N  int       `json:"n"`
	At time.Time `json:"at"`
}

// woke holds, by run number, when the step after the sleep started.
var woke struct {
	sync.Mutex
	at []time.Time
}

var napping = flux.New[waitInput, struct{}]("bench-waits").
	SleepUntil("nap", func(c *flux.Ctx[waitInput, struct{}]) time.Time { return c.Input.At }).
	Step("woke", func(c *flux.Ctx[waitInput, struct{}]) error {
		now := time.Now()
		woke.Lock()
		if c.Input.N < len(woke.at) && woke.at[c.Input.N].IsZero() {
			woke.at[c.Input.N] = now
		}
		woke.Unlock()
		return nil
	})

// waitsResult holds the figures of the waits workload.
type waitsResult struct {
	Storage             string
	Runs, Workers       int
	Spread              time.Duration // over which the wake times are spread
	Park                time.Duration // starting the runs until all wait
	GoroutinesIdle      int           // with the engine idle, before the runs
	GoroutinesParked    int           // with every run waiting
	LateP50, LateP99    time.Duration
	LateMax             time.Duration
	WithinOneSecond     float64 // fraction of runs woken within 1s of their time
	WakeElapsed         time.Duration
	WakesPerSecond      float64
	ParkedRunsPerSecond float64
	ParkBudgetOverrunBy time.Duration // > 0: parking ended after the first wake time: figures invalid
}

func (r waitsResult) String() string {
	s := fmt.Sprintf("waits %s: %d runs parked in %.2fs (%.0f runs/s); goroutines idle %d, with all waiting %d; "+
		"wake times spread over %s; woke p50 %.1f ms p99 %.1f ms max %.1f ms late, %.2f%% within 1s; "+
		"all woken in %.2fs (%.0f wakes/s) with %d workers",
		r.Storage, r.Runs, r.Park.Seconds(), r.ParkedRunsPerSecond, r.GoroutinesIdle, r.GoroutinesParked, r.Spread,
		ms(r.LateP50), ms(r.LateP99), ms(r.LateMax), 100*r.WithinOneSecond, r.WakeElapsed.Seconds(), r.WakesPerSecond, r.Workers)
	if r.ParkBudgetOverrunBy > 0 {
		s += fmt.Sprintf(" — INVALID: parking ended %s after the first wake time; raise --park", r.ParkBudgetOverrunBy)
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchWaits runs the waits workload: n runs whose sleeps end park after
// the start, spread evenly over spread.
func benchWaits(ctx context.Context, so *storeOptions, n, workers int, park, spread time.Duration) (waitsResult, error) {
	res := waitsResult{Storage: so.kind(), Runs: n, Workers: workers, Spread: spread}
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	store, err := so.open(ctx)
	if err != nil {
		return res, err
	}
	defer store.Close()
	e, err := flux.NewEngine(flux.Config{Storage: store, Logger: quiet, Workers: workers})
	if err != nil {
		return res, err
	}
	defer e.Close()
	if err := e.Register(napping); err != nil {
		return res, err
	}
	woke.Lock()
	woke.at = make([]time.Time, n)
	woke.Unlock()
	res.GoroutinesIdle = runtime.NumGoroutine()

	start := time.Now()
	first := start.Add(park)
	at := func(i int) time.Time {
		if n == 1 {
			return first
		}
		return first.Add(time.Duration(int64(spread) * int64(i) / int64(n-1)))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if _, err := flux.Start(ctx, e, napping, waitInput{N: i, At: at(i)}); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	// Parked once every run waits: none pending or running.
	for {
		page, err := store.List(ctx, flux.Filter{Workflow: napping.Name(), Status: []flux.Status{flux.StatusPending, flux.StatusRunning}, Limit: 1})
		if err != nil {
			return res, err
		}
		if len(page.Runs) == 0 {
			break
		}
		if err := trigger.Sleep(ctx, 20*time.Millisecond); err != nil {
			return res, err
		}
	}
	res.Park = time.Since(start)
	res.ParkedRunsPerSecond = float64(n) / res.Park.Seconds()
	if over := time.Since(first); over > 0 {
		res.ParkBudgetOverrunBy = over
	}
	runtime.GC()
	res.GoroutinesParked = runtime.NumGoroutine()

	// Wait until every run woke.
	for {
		woke.Lock()
		done := !slices.ContainsFunc(woke.at, time.Time.IsZero)
		woke.Unlock()
		if done {
			break
		}
		if err := trigger.Sleep(ctx, 20*time.Millisecond); err != nil {
			return res, err
		}
	}
	woke.Lock()
	late := make([]time.Duration, n)
	var last time.Time
	within := 0
	for i, t := range woke.at {
		late[i] = t.Sub(at(i))
		if late[i] <= time.Second {
			within++
		}
		if t.After(last) {
			last = t
		}
	}
	woke.Unlock()
	slices.Sort(late)
	res.LateP50, res.LateP99, res.LateMax = late[n/2], late[min(n-1, n*99/100)], late[n-1]
	res.WithinOneSecond = float64(within) / float64(n)
	res.WakeElapsed = last.Sub(first)
	res.WakesPerSecond = float64(n) / max(res.WakeElapsed.Seconds(), 1e-9)
	return res, nil
}
