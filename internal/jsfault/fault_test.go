package jsfault

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// In and Data are W1's: two steps and a commit, trivial work.
type In struct {
	N int `json:"n"`
}

type Data struct {
	Validated, Reserved, Charged bool
}

// ledger records, per run, when its commit was called and when its
// completion was acknowledged (the StepComplete hook fires once the store
// took the checkpoint), and when each run completed.
type ledger struct {
	mu        sync.Mutex
	charges   map[string][]time.Time
	acked     map[string]map[string]time.Time // run → node → acknowledged at
	completed []time.Time
	done      map[string]bool
}

func newLedger() *ledger {
	return &ledger{charges: map[string][]time.Time{}, acked: map[string]map[string]time.Time{}, done: map[string]bool{}}
}

func (l *ledger) charge(run string) {
	l.mu.Lock()
	l.charges[run] = append(l.charges[run], time.Now())
	l.mu.Unlock()
}

func (l *ledger) hooks() flux.Hooks {
	return flux.Hooks{
		StepComplete: func(ev flux.StepEvent) {
			l.mu.Lock()
			if l.acked[ev.RunID] == nil {
				l.acked[ev.RunID] = map[string]time.Time{}
			}
			if _, ok := l.acked[ev.RunID][ev.Step]; !ok {
				l.acked[ev.RunID][ev.Step] = time.Now()
			}
			l.mu.Unlock()
		},
		WorkflowComplete: func(ev flux.RunEvent) {
			l.mu.Lock()
			if !l.done[ev.RunID] {
				l.done[ev.RunID] = true
				l.completed = append(l.completed, time.Now())
			}
			l.mu.Unlock()
		},
	}
}

func (l *ledger) doneCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.done)
}

// w1 is the workflow, its commit recorded in l.
func w1(l *ledger) *flux.Workflow[In, Data] {
	return flux.New[In, Data]("w1").
		Step("validate", func(c *flux.Ctx[In, Data]) error { c.Data.Validated = true; return nil }).
		Step("reserve", func(c *flux.Ctx[In, Data]) error { c.Data.Reserved = true; return nil }).
		Commit("charge", func(c *flux.Ctx[In, Data]) error { l.charge(c.RunID()); c.Data.Charged = true; return nil })
}

// connect connects to the first of urls, failing over to the others in
// order for ever. (nats.go shuffles the URLs unless told not to: then two
// engines meant for two nodes could both sit on the node the test cuts
// off, and nothing would go on.)
func connect(t *testing.T, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// recentLogs keeps the engines' last warnings and errors, for the message
// of a test that stalls.
type recentLogs struct {
	mu    sync.Mutex
	lines []string
}

func (r *recentLogs) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, string(p))
	if len(r.lines) > 400 {
		r.lines = slices.Delete(r.lines, 0, 200)
	}
	return len(p), nil
}

// last returns the last n lines.
func (r *recentLogs) last(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines[max(0, len(r.lines)-n):], "")
}

var engineLogs = new(recentLogs)

// newEngine returns an engine with the given workers over store, closed
// when the test ends (before the store). Its warnings go to engineLogs.
func newEngine(t *testing.T, store flux.Storage, id string, workers int, hooks flux.Hooks) *flux.Engine {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Storage: store, ID: id, Workers: workers, Hooks: hooks,
		LeaseDuration: 3 * time.Second, RecoveryInterval: 200 * time.Millisecond, PruneInterval: -1,
		Logger: slog.New(slog.NewTextHandler(engineLogs, &slog.HandlerOptions{Level: slog.LevelWarn})).With("engine", id)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// startAll stores runs run-0000… pending, retrying a Start that failed
// (it is idempotent by run ID).
func startAll(t *testing.T, e *flux.Engine, w *flux.Workflow[In, Data], n int) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("run-%05d", i)
		for try := 0; ; try++ {
			_, err := flux.Start(ctx, e, w, In{N: i}, flux.RunID(ids[i]))
			if err == nil {
				break
			}
			if try == 50 {
				t.Fatalf("Start %s: %v", ids[i], err)
			}
			time.Sleep(100 * time.Millisecond) // the cluster is electing a leader
		}
	}
	return ids
}

// waitUntil polls cond every 20ms until it holds, failing after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what())
		}
		time.Sleep(20 * time.Millisecond) // waiting on other goroutines' progress through servers
	}
}

// busiestLeader returns the node leading the most of the account's streams.
func busiestLeader(t *testing.T, c *natstest.Cluster, nc *nats.Conn) int {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	count := make([]int, c.N())
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		if l := c.StreamLeader(name); l >= 0 {
			count[l]++
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	best := slices.Index(count, slices.Max(count))
	if count[best] == 0 {
		t.Fatal("no node leads a stream")
	}
	return best
}

func TestLeaderStoppedMidLoad(t *testing.T) { faultTest(t, "stop") }

// TestLeaderPartitionedMidLoad cuts the busiest leader's routes instead:
// its clients stay connected to it, as in a network partition.
func TestLeaderPartitionedMidLoad(t *testing.T) { faultTest(t, "isolate") }

// faultTest runs W1 from two engines, each connected to its own node of a
// three-node cluster with replicas=3, and mid-load stops (or cuts off) the
// node leading most streams, then brings it back: no acknowledged
// checkpoint is lost, no commit runs again after its completion was
// acknowledged, every run completes; it reports the pause.
func faultTest(t *testing.T, mode string) {
	const runs = 1200
	c := natstest.NewCluster(t, 3)
	l := newLedger()
	w := w1(l)
	storeA := open(t, connect(t, c.URLs(0)))
	storeB := open(t, connect(t, c.URLs(1)))
	producer := newEngine(t, storeA, "producer", -1, flux.Hooks{})
	ids := startAll(t, producer, w, runs)
	start := time.Now()
	for i, s := range []flux.Storage{storeA, storeB} {
		e := newEngine(t, s, fmt.Sprintf("engine-%d", i), 16, l.hooks())
		if err := e.Register(w); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 2*time.Minute, func() string { return fmt.Sprintf("%d of %d runs completed before the fault", l.doneCount(), runs) },
		func() bool { return l.doneCount() >= runs/3 })
	leader := busiestLeader(t, c, connect(t, c.URLs(2)))
	faultAt := time.Now()
	doneAtFault := l.doneCount()
	switch mode {
	case "stop":
		c.Stop(leader)
	case "isolate":
		c.Isolate(leader)
	}
	// Progress resumes on the two others.
	waitUntil(t, 2*time.Minute, func() string {
		if path := os.Getenv("FLUX_JSFAULT_GOROUTINES"); path != "" {
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("goroutine").WriteTo(f, 2)
				f.Close()
			}
		}
		return fmt.Sprintf("no run completed in 2 minutes after the %s of n%d; cluster: %s; engines' last warnings:\n%s\n%s", mode, leader,
			c.Describe("KV_flux_runs_0", "$KV.flux_runs_0.w.barrier"), engineLogs.last(30),
			stuck(t, openRetrying(t, connect(t, c.URL((leader+1)%3))), l, ids))
	},
		func() bool { return l.doneCount() >= doneAtFault+100 })
	switch mode {
	case "stop":
		c.Start(leader)
	case "isolate":
		c.Heal(leader)
	}
	// Done when every run is stored completed. (A write that timed out
	// while the cluster elected a leader may still have landed: its
	// engine was not told, so the hooks may miss a completion.)
	ctx := context.Background()
	check := openRetrying(t, connect(t, c.URLs(2)))
	waitUntil(t, 3*time.Minute, func() string { return stuck(t, check, l, ids) },
		func() bool { return storedCompleted(ctx, check) == runs })
	elapsed := time.Since(start)

	// Every run is stored completed, with every acknowledged node.
	l.mu.Lock()
	defer l.mu.Unlock()
	again, unacked := 0, 0
	for _, id := range ids {
		run, err := check.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get %s: %v", id, err)
		}
		if run.Status != flux.StatusCompleted {
			t.Fatalf("run %s is %s, want completed", id, run.Status)
		}
		for _, st := range run.Steps {
			if _, ok := l.acked[id][st.Name]; ok && st.Status != flux.StatusCompleted {
				t.Fatalf("run %s: node %s was acknowledged completed, is stored %s", id, st.Name, st.Status)
			}
		}
		calls := l.charges[id]
		if len(calls) == 0 {
			t.Fatalf("run %s completed without its commit being called", id)
		}
		ack, ok := l.acked[id]["charge"]
		if !ok {
			// Its last write timed out yet landed: no engine was told.
			unacked++
			continue
		}
		for _, at := range calls {
			if at.After(ack) {
				t.Fatalf("run %s: its commit ran again at %s, after its completion was acknowledged at %s", id, at.Format(time.RFC3339Nano), ack.Format(time.RFC3339Nano))
			}
		}
		if len(calls) > 1 {
			again++ // a commit whose recording was not acknowledged runs again: at least once
		}
	}
	// The pause: the longest time without a run completing, from the fault on.
	completed := slices.Clone(l.completed)
	slices.SortFunc(completed, time.Time.Compare)
	pause, prev := time.Duration(0), faultAt
	for _, at := range completed {
		if at.Before(faultAt) {
			continue
		}
		pause = max(pause, at.Sub(prev))
		prev = at
	}
	t.Logf("%s of the node leading most streams (n%d) after %d of %d runs: longest pause without a completion %s; "+
		"%d commits called twice (their first recording unacknowledged); %d runs stored completed by a write that timed out; "+
		"all %d runs completed in %s (%.0f runs/s)",
		mode, leader, doneAtFault, runs, pause.Round(time.Millisecond), again, unacked, runs, elapsed.Round(time.Millisecond), float64(runs)/elapsed.Seconds())
}

// storedCompleted counts the runs stored completed (-1 if the store
// cannot be read now).
func storedCompleted(ctx context.Context, s flux.Storage) int {
	n := 0
	f := flux.Filter{Status: []flux.Status{flux.StatusCompleted}, Limit: 1000}
	for {
		page, err := s.List(ctx, f)
		if err != nil {
			return -1
		}
		n += len(page.Runs)
		if page.Next == "" {
			return n
		}
		f.Cursor = page.Next
	}
}

// openRetrying opens the store over nc, retrying while the cluster is
// electing leaders after a fault.
func openRetrying(t *testing.T, nc *nats.Conn) flux.Storage {
	t.Helper()
	var s flux.Storage
	var err error
	waitUntil(t, time.Minute, func() string { return fmt.Sprintf("opening the store: %v", err) }, func() bool {
		s, err = openStore(nc)
		return err == nil
	})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// stuck describes the runs not stored completed yet.
func stuck(t *testing.T, check flux.Storage, l *ledger, ids []string) string {
	s := fmt.Sprintf("%d of %d runs stored completed; not completed:", storedCompleted(context.Background(), check), len(ids))
	n := 0
	for _, id := range ids {
		r, err := check.Get(context.Background(), id)
		if err == nil && r.Status == flux.StatusCompleted {
			continue
		}
		if n++; n > 10 {
			break
		}
		if err != nil {
			s += fmt.Sprintf("\n  %s: %v", id, err)
			continue
		}
		s += fmt.Sprintf("\n  %s: %s owner %q lease %s version %d summary %+v", id, r.Status, r.Owner, r.LeaseUntil.Format(time.RFC3339Nano), r.Version, r.Summary)
	}
	return s + "\n  now " + time.Now().Format(time.RFC3339Nano)
}
