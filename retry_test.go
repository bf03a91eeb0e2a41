package flux_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flux-go/flux"
)

// alwaysFailing returns a one-step workflow whose step fails every attempt
// with errTransient, counting its attempts in calls.
func alwaysFailing(calls *atomic.Int32, opts ...flux.StepOption) *flux.Workflow[tIn, tData] {
	return flux.New[tIn, tData]("failing").
		Step("flaky", func(c *tCtx) error {
			calls.Add(1)
			return fmt.Errorf("attempt %d: %w", c.Attempt(), errTransient)
		}, opts...)
}

// checkAttempts checks that a run failed in step flaky after exactly n
// attempts: handler calls, recorded attempts and the StepError agree.
func checkAttempts(t *testing.T, res *flux.Result[tData], err error, calls *atomic.Int32, n int) {
	t.Helper()
	if got := int(calls.Load()); got != n {
		t.Errorf("handler ran %d times, want %d", got, n)
	}
	if !errors.Is(err, errTransient) {
		t.Fatalf("err = %v, want errTransient inside", err)
	}
	var se *flux.StepError
	if !errors.As(err, &se) || se.Step != "flaky" || se.Attempt != n || se.Index != 0 || se.RunID != res.ID {
		t.Errorf("StepError = %+v, want step flaky, attempt %d, run %s", se, n, res.ID)
	}
	if res.Status != flux.StatusFailed || res.Steps[0].Status != flux.StatusFailed {
		t.Errorf("run %s, node %s; want both failed", res.Status, res.Steps[0].Status)
	}
	atts := res.Steps[0].Attempts
	if len(atts) != n {
		t.Fatalf("%d attempts recorded, want %d", len(atts), n)
	}
	for i, a := range atts {
		if a.Number != i+1 || a.Error != fmt.Sprintf("attempt %d: %v", i+1, errTransient) {
			t.Errorf("attempt record %d = %+v", i, a)
		}
	}
}

func TestAttemptsAreRetriesPlusOne(t *testing.T) {
	t.Parallel()
	for _, retries := range []int{0, 1, 2, 5} {
		t.Run(fmt.Sprintf("Retries(%d)", retries), func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, flux.Config{})
			var calls atomic.Int32
			res, err := flux.Execute(context.Background(), e, alwaysFailing(&calls, flux.Retries(retries), flux.NoBackoff()), tIn{})
			checkAttempts(t, res, err, &calls, retries+1)
		})
	}
}

func TestDefaultRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		defaults []flux.StepOption
		node     []flux.StepOption
		attempts int
	}{
		{"Flux default of 3", []flux.StepOption{flux.NoBackoff()}, nil, 4},
		{"Config default Retries(1)", []flux.StepOption{flux.Retries(1), flux.NoBackoff()}, nil, 2},
		{"Config default Retries(0)", []flux.StepOption{flux.Retries(0)}, nil, 1},
		{"node overrides Config", []flux.StepOption{flux.Retries(1), flux.NoBackoff()}, []flux.StepOption{flux.Retries(4)}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t, flux.Config{DefaultStepOptions: tt.defaults})
			var calls atomic.Int32
			res, err := flux.Execute(context.Background(), e, alwaysFailing(&calls, tt.node...), tIn{})
			checkAttempts(t, res, err, &calls, tt.attempts)
		})
	}
}

func TestBadDefaultStepOptions(t *testing.T) {
	t.Parallel()
	for _, opt := range []flux.StepOption{
		flux.Retries(-1),
		flux.When(func(*tCtx) bool { return true }),
		flux.AtMostOnce(),
	} {
		if e, err := flux.NewEngine(flux.Config{DefaultStepOptions: []flux.StepOption{opt}}); err == nil {
			_ = e.Close()
			t.Error("NewEngine accepted a bad default step option")
		}
	}
}

func TestSucceedsWithinRetries(t *testing.T) {
	t.Parallel()
	e := newEngine(t, flux.Config{})
	var calls atomic.Int32
	w := flux.New[tIn, tData]("eventually").Step("flaky", func(c *tCtx) error {
		calls.Add(1)
		if c.Attempt() < 4 {
			return errTransient
		}
		return nil
	}, flux.Retries(3), flux.NoBackoff())
	res, err := flux.Execute(context.Background(), e, w, tIn{})
	if err != nil {
		t.Fatalf("success on the last allowed attempt: %v", err)
	}
	if calls.Load() != 4 || len(res.Steps[0].Attempts) != 4 || res.Steps[0].Attempts[3].Error != "" {
		t.Errorf("%d calls, attempts %+v; want 4 with the last successful", calls.Load(), res.Steps[0].Attempts)
	}
}

// stockError is a handler's own error type that wraps a cause.
type stockError struct{ error }

func (e stockError) Unwrap() error { return e.error }

func TestPermanentStopsRetrying(t *testing.T) {
	t.Parallel()
	errOutOfStock := errors.New("out of stock")
	e := newEngine(t, flux.Config{})
	var calls atomic.Int32
	w := flux.New[tIn, tData]("permanent").
		Step("validate", func(c *tCtx) error {
			calls.Add(1)
			return flux.Permanent(stockError{fmt.Errorf("sku-1: %w", errOutOfStock)})
		}, flux.Retries(5), flux.NoBackoff())
	res, err := flux.Execute(context.Background(), e, w, tIn{})
	if calls.Load() != 1 || len(res.Steps[0].Attempts) != 1 {
		t.Errorf("Permanent error: %d calls, %d attempts; want 1", calls.Load(), len(res.Steps[0].Attempts))
	}
	if !errors.Is(err, errOutOfStock) {
		t.Errorf("errors.Is(err, errOutOfStock) is false for %v", err)
	}
	var se *flux.StepError
	if !errors.As(err, &se) || se.Step != "validate" || se.Attempt != 1 {
		t.Errorf("StepError = %+v, want step validate attempt 1", se)
	}
	var stock stockError
	if !errors.As(err, &stock) {
		t.Errorf("errors.As cannot find the handler's error type in %v", err)
	}
	if !flux.IsPermanent(err) || flux.IsPermanent(errOutOfStock) {
		t.Error("IsPermanent is wrong")
	}
	if flux.Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if res.Status != flux.StatusFailed {
		t.Errorf("status %s, want failed", res.Status)
	}
}

// retryGaps runs w in the bubble and returns, for each retry, the time from
// StepRetry to the next StepStart and the Delay StepRetry announced.
func retryGaps(t *testing.T, e *flux.Engine, rec *recorder, w *flux.Workflow[tIn, tData]) (gaps, delays []time.Duration) {
	t.Helper()
	res, _ := flux.Execute(context.Background(), e, w, tIn{})
	evs := rec.forRun(res.ID)
	for i, ev := range evs {
		if ev.Hook != "StepRetry" {
			continue
		}
		if i+1 >= len(evs) || evs[i+1].Hook != "StepStart" || evs[i+1].Attempt != ev.Attempt+1 {
			t.Fatalf("StepRetry of attempt %d is not followed by the next StepStart: %v", ev.Attempt, evs)
		}
		gaps = append(gaps, evs[i+1].At.Sub(ev.At))
		delays = append(delays, ev.Delay)
	}
	return gaps, delays
}

// checkBackoff checks each gap against its nominal delay d: jittered into
// [d/2, d], and equal to the Delay announced by StepRetry.
func checkBackoff(t *testing.T, gaps, delays, nominal []time.Duration) {
	t.Helper()
	if len(gaps) != len(nominal) {
		t.Fatalf("%d retries, want %d", len(gaps), len(nominal))
	}
	for k, d := range nominal {
		if gaps[k] < d/2 || gaps[k] > d {
			t.Errorf("retry %d waited %s, want within [%s, %s]", k+1, gaps[k], d/2, d)
		}
		if gaps[k] != delays[k] {
			t.Errorf("retry %d waited %s but StepRetry announced %s", k+1, gaps[k], delays[k])
		}
	}
}

func TestBackoffDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := openEngine(t, flux.Config{Hooks: rec.hooks()})
		defer e.Close()
		var calls atomic.Int32
		gaps, delays := retryGaps(t, e, rec, alwaysFailing(&calls, flux.Retries(6)))
		s := time.Second
		checkBackoff(t, gaps, delays, []time.Duration{s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s})
	})
}

func TestBackoffCustom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := openEngine(t, flux.Config{Hooks: rec.hooks()})
		defer e.Close()
		var calls atomic.Int32
		ms := time.Millisecond
		gaps, delays := retryGaps(t, e, rec, alwaysFailing(&calls, flux.Retries(5), flux.Backoff(100*ms, 300*ms)))
		checkBackoff(t, gaps, delays, []time.Duration{100 * ms, 200 * ms, 300 * ms, 300 * ms, 300 * ms})
	})
}

func TestBackoffFromConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := openEngine(t, flux.Config{Hooks: rec.hooks(),
			DefaultStepOptions: []flux.StepOption{flux.Retries(2), flux.Backoff(time.Minute, time.Hour)}})
		defer e.Close()
		var calls atomic.Int32
		gaps, delays := retryGaps(t, e, rec, alwaysFailing(&calls))
		checkBackoff(t, gaps, delays, []time.Duration{time.Minute, 2 * time.Minute})
	})
}

func TestNoBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := openEngine(t, flux.Config{Hooks: rec.hooks()})
		defer e.Close()
		var calls atomic.Int32
		start := time.Now()
		gaps, delays := retryGaps(t, e, rec, alwaysFailing(&calls, flux.Retries(4), flux.NoBackoff()))
		if len(gaps) != 4 {
			t.Fatalf("%d retries, want 4", len(gaps))
		}
		for k := range gaps {
			if gaps[k] != 0 || delays[k] != 0 {
				t.Errorf("retry %d: waited %s, announced %s; want no delay", k+1, gaps[k], delays[k])
			}
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("run took %s of (fake) time with NoBackoff", d)
		}
	})
}

// TestBackoffJitter checks that delays are random: the first delay of many
// runs is not always the same value.
func TestBackoffJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := openEngine(t, flux.Config{Hooks: rec.hooks()})
		defer e.Close()
		seen := make(map[time.Duration]bool)
		for range 20 {
			var calls atomic.Int32
			gaps, delays := retryGaps(t, e, rec, alwaysFailing(&calls, flux.Retries(1)))
			checkBackoff(t, gaps, delays, []time.Duration{time.Second})
			seen[gaps[0]] = true
		}
		if len(seen) < 2 {
			t.Errorf("20 runs all waited exactly %v: no jitter", seen)
		}
	})
}

// TestInterruptDuringBackoff interrupts a run while it waits out a backoff:
// Cancel marks it cancelled, while Close or the caller's context leave it
// running and resumable; either way Resume completes it and continues the
// attempt count.
func TestInterruptDuringBackoff(t *testing.T) {
	for _, how := range []string{"Cancel", "Close", "caller context"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := flux.NewMemoryStorage()
				e := openEngine(t, flux.Config{Storage: store})
				defer e.Close()
				var calls atomic.Int32
				w := flux.New[tIn, tData]("backoff-interrupt").
					Step("flaky", func(c *tCtx) error {
						if calls.Add(1) == 1 {
							return errTransient
						}
						c.Data.Sum = 1
						return nil
					}, flux.Retries(1), flux.Backoff(time.Minute, time.Minute))
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				done := make(chan outcome, 1)
				go func() {
					res, err := flux.Execute(ctx, e, w, tIn{}, flux.RunID("r"))
					done <- outcome{res, err}
				}()
				synctest.Wait() // the run is waiting out its backoff
				start := time.Now()
				var wantErr error
				wantStatus := flux.StatusRunning
				switch how {
				case "Cancel":
					if err := e.Cancel(context.Background(), "r"); err != nil {
						t.Fatalf("Cancel: %v", err)
					}
					wantErr, wantStatus = flux.ErrCancelled, flux.StatusCancelled
				case "Close":
					_ = e.Close()
					wantErr = flux.ErrClosed
				default:
					cancel()
					wantErr = context.Canceled
				}
				out := <-done
				if !errors.Is(out.err, wantErr) {
					t.Errorf("Execute err = %v, want %v", out.err, wantErr)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("interruption took %s: the backoff was not cut short", d)
				}
				run, err := store.Get(context.Background(), "r")
				if err != nil {
					t.Fatal(err)
				}
				if run.Status != wantStatus || run.Steps[0].Status != flux.StatusPending || len(run.Steps[0].Attempts) != 1 {
					t.Fatalf("stored run %s, node %s with %d attempts; want %s, pending with 1",
						run.Status, run.Steps[0].Status, len(run.Steps[0].Attempts), wantStatus)
				}
				e2 := openEngine(t, flux.Config{Storage: store})
				defer e2.Close()
				res, err := flux.Resume(context.Background(), e2, w, "r")
				if err != nil {
					t.Fatalf("Resume: %v", err)
				}
				atts := res.Steps[0].Attempts
				if res.Status != flux.StatusCompleted || res.Data.Sum != 1 || len(atts) != 2 || atts[1].Number != 2 {
					t.Errorf("resumed run %s, data %+v, attempts %+v; want completed after attempt 2", res.Status, res.Data, atts)
				}
			})
		})
	}
}
