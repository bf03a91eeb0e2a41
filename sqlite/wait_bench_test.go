package sqlite_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/sqlite"
)

// createWaiting creates n free runs of workflow w1, waiting until wake
// (zero: for a signal only), with C goroutines, and returns their IDs.
func createWaiting(b *testing.B, s flux.Storage, n int, wake time.Time) []string {
	b.Helper()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				r := benchRun(fmt.Sprintf("wait-%06d", i))
				r.Status, r.Owner, r.WakeAt = flux.StatusWaiting, "", wake
				if !wake.IsZero() {
					// Spread over the next hour, as sleeps of many runs are.
					r.WakeAt = wake.Add(time.Duration(i) * time.Hour / time.Duration(n))
				}
				if _, err := s.Create(context.Background(), driver.CreateParams{Run: r}); err != nil {
					b.Error(err)
					return
				}
				ids[i] = r.ID
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return ids
}

// BenchmarkClaimExpiredWaiting measures a ClaimExpired that finds nothing
// to claim, in a store with no waiting run and in one with 100,000 waiting
// runs none of which is due: runs_waiting keeps it as cheap (it reads the
// index's first entry after now, for NextWake).
//
//	go test ./sqlite -run '^$' -bench ClaimExpiredWaiting
func BenchmarkClaimExpiredWaiting(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("waiting=%d", n), func(b *testing.B) {
			s, _ := open(b, sqlite.Synchronous("OFF"))
			wake := time.Now().Add(time.Hour)
			createWaiting(b, s, n, wake)
			p := driver.ClaimExpiredParams{Owner: "engine-1#1", Workflows: []string{"w1", "w2"}, Lease: time.Minute, Limit: 100}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c, err := s.ClaimExpired(ctx, p)
				if err != nil {
					b.Fatal(err)
				}
				if len(c.Runs) != 0 || (n > 0) == c.NextWake.IsZero() {
					b.Fatalf("ClaimExpired claimed %d runs, NextWake %s; want none, and a NextWake if runs wait", len(c.Runs), c.NextWake)
				}
			}
		})
	}
}

// BenchmarkSignal measures Signal throughput with the default
// synchronous=FULL: C goroutines, each signalling its own waiting run by ID
// (group commit puts concurrent signals in one transaction), or with a
// deduplication key each.
func BenchmarkSignal(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		for _, c := range []int{1, 32} {
			b.Run(fmt.Sprintf("keyed=%v/C=%d", keyed, c), func(b *testing.B) {
				s, _ := open(b)
				ids := createWaiting(b, s, c, time.Time{})
				ctx := context.Background()
				var n atomic.Int64
				var wg sync.WaitGroup
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for _, id := range ids {
					wg.Go(func() {
						for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
							p := driver.SignalParams{RunID: id, Name: "approval", Payload: []byte(`{"approved":true}`), At: time.Now()}
							if keyed {
								p.Key = fmt.Sprintf("k-%d", i)
							}
							if k, err := s.Signal(ctx, p); err != nil || k != 1 {
								b.Errorf("Signal: %d, %v; want 1", k, err)
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
}

// BenchmarkClaimExpiredLimitFull measures a ClaimExpired that finds nothing
// to claim because a limit of the workflow is full (one run executing, of
// key "hot"), with no pending run and with 100,000 of key "hot" held back:
// by Max 1 (they are left out by runs_counted, never read), and by PerKey 1
// (they are passed over in runs_unfinished, index entries only).
func BenchmarkClaimExpiredLimitFull(b *testing.B) {
	for _, lim := range []driver.Limit{{Workflow: "w1", Max: 1}, {Workflow: "w1", PerKey: 1}} {
		for _, n := range []int{0, 100_000} {
			b.Run(fmt.Sprintf("max=%d/perKey=%d/pending=%d", lim.Max, lim.PerKey, n), func(b *testing.B) {
				s, _ := open(b, sqlite.Synchronous("OFF"))
				ctx := context.Background()
				busy := benchRun("busy")
				busy.ConcurrencyKey = "hot"
				if _, err := s.Create(ctx, driver.CreateParams{Run: busy, Lease: time.Hour}); err != nil {
					b.Fatal(err)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				for range 32 {
					wg.Go(func() {
						for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
							r := benchRun(fmt.Sprintf("pending-%06d", i))
							r.Status, r.Owner, r.ConcurrencyKey = flux.StatusPending, "", "hot"
							if _, err := s.Create(ctx, driver.CreateParams{Run: r}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				p := driver.ClaimExpiredParams{Owner: "engine-2#1", Workflows: []string{"w1"}, Lease: time.Minute, Limit: 100,
					Limits: []driver.Limit{lim}}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					c, err := s.ClaimExpired(ctx, p)
					if err != nil || len(c.Runs) != 0 {
						b.Fatalf("ClaimExpired: %d runs, %v; want none", len(c.Runs), err)
					}
				}
			})
		}
	}
}
