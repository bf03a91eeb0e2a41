package postgres_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
	"github.com/jackc/pgx/v5"
)

// BenchmarkClaimExpiredWaiting measures a ClaimExpired that finds nothing
// to claim, as every engine makes one each RecoveryInterval and at each
// wake-up: with no waiting run, and with 100,000 runs waiting, none due. The
// second must cost about what the first does: waiting runs not due are not
// read.
//
//	go test ./postgres -run '^$' -bench ClaimExpiredWaiting
func BenchmarkClaimExpiredWaiting(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("waiting=%d", n), func(b *testing.B) {
			s := openStore(b)
			fillWaiting(b, s, n)
			// Running runs under live leases, as an engine has: read, not
			// claimed.
			for i := range 20 {
				r := newRun(fmt.Sprint("live-", i), "w", flux.StatusRunning, time.Now())
				r.Owner = "other#1"
				if err := create(b.Context(), s, r, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := s.Pool().Exec(b.Context(), "ANALYZE "+pgx.Identifier{s.SchemaName(), "runs"}.Sanitize()); err != nil {
				b.Fatal(err)
			}
			p := driver.ClaimExpiredParams{Owner: "bench#1", Workflows: []string{"w"}, Lease: time.Minute, Limit: 100}
			for b.Loop() {
				c, err := s.ClaimExpired(b.Context(), p)
				if err != nil {
					b.Fatal(err)
				}
				if len(c.Runs) != 0 || (n > 0) == c.NextWake.IsZero() {
					b.Fatalf("ClaimExpired claimed %d runs, NextWake %v", len(c.Runs), c.NextWake)
				}
			}
		})
	}
}

// fillWaiting stores n runs of workflow w waiting for up to a day, through
// 64 concurrent Creates.
func fillWaiting(b *testing.B, s *postgres.Store, n int) {
	b.Helper()
	now := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				r := newRun(fmt.Sprintf("wait-%06d", i), "w", flux.StatusWaiting, now)
				r.WakeAt = now.Add(time.Hour + time.Duration(i)*time.Second/2)
				if err := create(b.Context(), s, r, 0); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}

// BenchmarkSignal measures signals to runs by ID: C goroutines, each
// signalling a run of its own (a running run, leased), one signal after
// another.
func BenchmarkSignal(b *testing.B) {
	for _, c := range []int{1, 32} {
		b.Run(fmt.Sprintf("C=%d", c), func(b *testing.B) {
			s := openStore(b)
			ctx := b.Context()
			ids := make([]string, c)
			for i := range ids {
				r := newRun(fmt.Sprint("sig-", i), "w", flux.StatusRunning, time.Now())
				r.Owner = "bench"
				if err := create(ctx, s, r, time.Hour); err != nil {
					b.Fatal(err)
				}
				ids[i] = r.ID
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			payload := []byte(`{"approved":true}`)
			b.ResetTimer()
			start := time.Now()
			for _, id := range ids {
				wg.Go(func() {
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						k, err := s.Signal(ctx, driver.SignalParams{RunID: id, Name: "approval", Payload: payload, At: time.Now()})
						if err != nil || k != 1 {
							b.Errorf("Signal: %d, %v", k, err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "signals/s")
		})
	}
}
