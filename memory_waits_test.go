package flux

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/flux-go/flux/driver"
)

// memWaiting creates n runs of workflow wf in m, waiting free until wake
// (zero: for a signal only).
func memWaiting(tb testing.TB, m *MemoryStorage, wf string, n int, wake time.Time) {
	tb.Helper()
	ctx := context.Background()
	for i := range n {
		r := &Run{ID: fmt.Sprintf("%s-%d", wf, i), Workflow: wf, Status: StatusRunning, Owner: "engine-a",
			Input: json.RawMessage(`{}`), CreatedAt: time.Now()}
		w, err := m.Create(ctx, driver.CreateParams{Run: r, Lease: time.Hour})
		if err != nil {
			tb.Fatal(err)
		}
		_, err = m.Checkpoint(ctx, driver.CheckpointParams{ID: r.ID, Owner: "engine-a", Version: w.Version, Lease: driver.ReleaseLease,
			Header: &driver.Header{Status: StatusWaiting, WakeAt: wake}})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func (m *MemoryStorage) queued(wf string) int {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if q := m.waits[wf]; q != nil {
		return q.Len()
	}
	return 0
}

func (m *MemoryStorage) scanned() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.unfinished)
}

// TestMemoryWaitingRunsAreQueued: free waiting runs are in the wake queue
// of their workflow, not among the runs ClaimExpired scans; claimed, they
// are scanned again (their lease may expire), and leave the queue.
func TestMemoryWaitingRunsAreQueued(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStorage()
	memWaiting(t, m, "sleepy", 1000, time.Now().Add(time.Hour))
	memWaiting(t, m, "signals", 10, time.Time{})
	if n := m.scanned(); n != 0 {
		t.Fatalf("%d runs scanned by ClaimExpired with 1010 free waiting ones, want 0", n)
	}
	if n := m.queued("sleepy"); n != 1000 {
		t.Fatalf("%d runs queued by wake time, want 1000", n)
	}
	if n := m.queued("signals"); n != 0 {
		t.Fatalf("%d runs waiting for a signal only are queued by wake time, want 0", n)
	}
	if _, err := m.Signal(ctx, driver.SignalParams{RunID: "signals-3", Name: "go"}); err != nil {
		t.Fatal(err)
	}
	c, err := m.ClaimExpired(ctx, driver.ClaimExpiredParams{Owner: "engine-b", Workflows: []string{"sleepy", "signals"}, Lease: time.Hour, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Runs) != 1 || c.Runs[0].ID != "signals-3" {
		t.Fatalf("ClaimExpired claimed %d runs, want signals-3 only", len(c.Runs))
	}
	if n, q := m.scanned(), m.queued("signals"); n != 1 || q != 0 {
		t.Fatalf("after the claim of signals-3: %d runs scanned and %d queued, want 1 and 0", n, q)
	}
}

// TestMemoryWakeQueueStaysSmall: a run whose wait changes again and again
// leaves stale entries in the queue, which are dropped once they are half
// of it.
func TestMemoryWakeQueueStaysSmall(t *testing.T) {
	ctx := context.Background()
	m := NewMemoryStorage()
	memWaiting(t, m, "w", 1, time.Now().Add(time.Hour))
	for i := range 1000 {
		r, err := m.Claim(ctx, driver.ClaimParams{ID: "w-0", Owner: "engine-b", Lease: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Checkpoint(ctx, driver.CheckpointParams{ID: r.ID, Owner: "engine-b", Version: r.Version, Lease: driver.ReleaseLease,
			Header: &driver.Header{Status: StatusWaiting, WakeAt: time.Now().Add(time.Duration(i+2) * time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := m.queued("w"); n > 130 {
		t.Fatalf("%d entries queued for one waiting run after 1000 waits, want at most 130", n)
	}
	c, err := m.ClaimExpired(ctx, driver.ClaimExpiredParams{Owner: "engine-c", Workflows: []string{"w"}, Lease: time.Hour, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Now().Add(1001 * time.Hour); len(c.Runs) != 0 || c.NextWake.Sub(want).Abs() > time.Minute {
		t.Fatalf("ClaimExpired gave %d runs, NextWake %s; want none, about %s", len(c.Runs), c.NextWake, want)
	}
}

// BenchmarkMemoryClaimExpiredWaiting is the cost of a ClaimExpired that
// finds nothing to claim beside 100,000 runs sleeping.
func BenchmarkMemoryClaimExpiredWaiting(b *testing.B) {
	ctx := context.Background()
	m := NewMemoryStorage()
	memWaiting(b, m, "w", 100_000, time.Now().Add(time.Hour))
	p := driver.ClaimExpiredParams{Owner: "engine-b", Workflows: []string{"w"}, Lease: time.Hour, Limit: 100}
	b.ResetTimer()
	for b.Loop() {
		c, err := m.ClaimExpired(ctx, p)
		if err != nil || len(c.Runs) != 0 || c.NextWake.IsZero() {
			b.Fatalf("ClaimExpired: %d runs, NextWake %s, %v", len(c.Runs), c.NextWake, err)
		}
	}
}
