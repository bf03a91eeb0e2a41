package crashtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// In-process regression tests, on memory storage with injected pauses and
// failures, for the engine bugs the crash tests above found by chance: each
// fails deterministically without its fix.

// faultStore is a real storage with pauses and failures injected at chosen
// points.
type faultStore struct {
	flux.Storage
	beforeCreate func(id string) // called before Create reaches the storage
	afterGet     func(id string) // called after Get read the run, before it returns
	failExtend   atomic.Bool     // Extend fails, as when the database is too slow
	errExtend    error           // what it fails with
}

func (s *faultStore) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	if s.beforeCreate != nil {
		s.beforeCreate(p.Run.ID)
	}
	return s.Storage.Create(ctx, p)
}

func (s *faultStore) Get(ctx context.Context, id string) (*flux.Run, error) {
	run, err := s.Storage.Get(ctx, id)
	if s.afterGet != nil {
		s.afterGet(id)
	}
	return run, err
}

func (s *faultStore) Extend(ctx context.Context, p driver.ExtendParams) ([]string, error) {
	if s.failExtend.Load() {
		return nil, s.errExtend
	}
	return s.Storage.Extend(ctx, p)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// oneStep is a workflow of one step that calls fn.
func oneStep(fn func(c *flux.Ctx[Input, Data]) error) *flux.Workflow[Input, Data] {
	return flux.New[Input, Data]("one-step").Step("only", fn)
}

// A run registered as executing but not yet created (or claimed) must not be
// taken for a lost lease by the heartbeat. Before the fix, a heartbeat tick
// in that window cancelled the new run with ErrLeaseLost and left it running.
func TestHeartbeatSparesRunBeforeItHoldsItsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		store := &faultStore{Storage: flux.NewMemoryStorage(), beforeCreate: func(string) { <-gate }}
		eng, err := flux.NewEngine(flux.Config{Storage: store, LeaseDuration: 300 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		var calls atomic.Int32
		flow := oneStep(func(c *flux.Ctx[Input, Data]) error { calls.Add(1); return nil })
		done := make(chan error, 1)
		go func() {
			_, err := flux.Execute(t.Context(), eng, flow, Input{N: 1}, flux.RunID("r"))
			done <- err
		}()
		synctest.Wait()         // Execute waits in Create
		time.Sleep(time.Second) // several heartbeats tick meanwhile (fake time)
		close(gate)
		if err := <-done; err != nil {
			t.Fatalf("Execute: %v", err)
		}
		run, err := store.Get(t.Context(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != flux.StatusCompleted || calls.Load() != 1 {
			t.Errorf("run is %s after %d calls, want completed after 1", run.Status, calls.Load())
		}
	})
}

// When an engine's lease renewals fail long enough for the lease to lapse,
// its own recovery loop must leave the run it is executing alone (its claim
// skips the runs its owner holds). A claim there once made the running
// one's next checkpoint fail with ErrConflict, stopping the run.
func TestOwnRecoveryLoopDoesNotStopARunWhoseLeaseLapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &faultStore{Storage: flux.NewMemoryStorage(), errExtend: errors.New("injected: lease renewal failed")}
		eng, err := flux.NewEngine(flux.Config{
			Storage: store, LeaseDuration: 300 * time.Millisecond, RecoveryInterval: 50 * time.Millisecond, Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		started, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		flow := oneStep(func(c *flux.Ctx[Input, Data]) error {
			if calls.Add(1) == 1 {
				close(started)
				<-release
			}
			return nil
		})
		if err := eng.Register(flow); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := flux.Execute(t.Context(), eng, flow, Input{N: 1}, flux.RunID("r"))
			done <- err
		}()
		<-started
		store.failExtend.Store(true)
		before, err := store.Get(t.Context(), "r")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the lease lapses and the recovery loop claims the run (fake time)
		lapsed, err := store.Get(t.Context(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if !lapsed.LeaseUntil.Before(time.Now()) {
			t.Fatal("the lease did not lapse: the test does not exercise the lapse")
		}
		if lapsed.Version != before.Version || lapsed.Owner != eng.Owner() {
			t.Fatalf("the engine's own recovery loop claimed the run it executes (version %d→%d, owner %q)",
				before.Version, lapsed.Version, lapsed.Owner)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Execute: %v", err)
		}
		run, err := store.Get(t.Context(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != flux.StatusCompleted || calls.Load() != 1 {
			t.Errorf("run is %s after %d calls, want completed after 1", run.Status, calls.Load())
		}
	})
}

// A start with a RunID whose run another engine finishes between the read
// and the claim returns the finished run. Before the fix it failed with an
// illegal completed → running transition and kept the lease.
func TestExecuteOfRunFinishedDuringTheClaim(t *testing.T) {
	mem := flux.NewMemoryStorage()
	engA, err := flux.NewEngine(flux.Config{Storage: mem, ID: "a", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer engA.Close()
	read, resume := make(chan struct{}), make(chan struct{})
	var paused atomic.Bool
	storeB := &faultStore{Storage: mem, afterGet: func(string) {
		if paused.CompareAndSwap(false, true) {
			close(read)
			<-resume
		}
	}}
	engB, err := flux.NewEngine(flux.Config{Storage: storeB, ID: "b", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer engB.Close()

	started, finish := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	flow := oneStep(func(c *flux.Ctx[Input, Data]) error {
		calls.Add(1)
		close(started)
		<-finish
		c.Data.Done = true
		return nil
	})
	doneA := make(chan error, 1)
	go func() {
		_, err := flux.Execute(t.Context(), engA, flow, Input{N: 1}, flux.RunID("r"))
		doneA <- err
	}()
	<-started
	type outcome struct {
		res *flux.Result[Data]
		err error
	}
	doneB := make(chan outcome, 1)
	go func() {
		res, err := flux.Execute(t.Context(), engB, flow, Input{N: 1}, flux.RunID("r"))
		doneB <- outcome{res, err}
	}()
	<-read // B read the run while A runs it
	close(finish)
	if err := <-doneA; err != nil {
		t.Fatalf("engine A: %v", err)
	}
	close(resume) // B now claims a run that completed
	b := <-doneB
	if b.err != nil {
		t.Fatalf("engine B's Execute of the finished run: %v", b.err)
	}
	if b.res.Status != flux.StatusCompleted || !b.res.Data.Done || calls.Load() != 1 {
		t.Errorf("engine B got status %s, data %+v, after %d calls; want completed, Done, 1 call", b.res.Status, b.res.Data, calls.Load())
	}
	run, err := mem.Get(t.Context(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if run.Owner != "" || run.Status != flux.StatusCompleted {
		t.Errorf("stored run is %s and owned by %q, want completed with its lease released", run.Status, run.Owner)
	}
}

// A zombie owner whose run another engine took over, finished and released
// must have its late checkpoint refused with ErrLeaseLost. Before the fix it
// got ErrConflict, since the stored run no longer had an owner.
func TestZombieLateCheckpointIsLeaseLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := flux.NewMemoryStorage()
		storeA := &faultStore{Storage: mem, errExtend: errors.New("injected: lease renewal failed")}
		const lease = 300 * time.Millisecond
		engA, err := flux.NewEngine(flux.Config{Storage: storeA, ID: "a", LeaseDuration: lease, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer engA.Close()
		engB, err := flux.NewEngine(flux.Config{Storage: mem, ID: "b", LeaseDuration: lease, RecoveryInterval: 50 * time.Millisecond, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer engB.Close()
		started, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		flow := oneStep(func(c *flux.Ctx[Input, Data]) error {
			if calls.Add(1) == 1 { // engine A's call
				close(started)
				<-release
			}
			c.Data.Done = true
			return nil
		})
		done := make(chan error, 1)
		go func() {
			_, err := flux.Execute(t.Context(), engA, flow, Input{N: 1}, flux.RunID("r"))
			done <- err
		}()
		<-started
		storeA.failExtend.Store(true) // A goes silent
		if err := engB.Register(flow); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // A's lease expires; B recovers and completes the run (fake time)
		finished, err := mem.Get(t.Context(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if finished.Status != flux.StatusCompleted {
			t.Fatalf("engine B left the run %s, want completed", finished.Status)
		}
		close(release) // A wakes up and checkpoints its step
		err = <-done
		if !errors.Is(err, flux.ErrLeaseLost) {
			t.Errorf("the zombie's Execute returned %v, want an error wrapping ErrLeaseLost", err)
		}
		after, err := mem.Get(t.Context(), "r")
		if err != nil {
			t.Fatal(err)
		}
		if after.Version != finished.Version || after.Status != flux.StatusCompleted {
			t.Errorf("the zombie changed the run: version %d → %d, status %s", finished.Version, after.Version, after.Status)
		}
	})
}
