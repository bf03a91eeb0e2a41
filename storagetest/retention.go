package storagetest

import (
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// retentionTest: Engine.Prune, given the time, deletes the finished runs
// past their retention (failed ones kept for their own period, a workflow's
// own retention over the engine's) and nothing else: not younger runs, not
// unfinished ones.
func retentionTest(t *testing.T, h Harness) {
	e, err := flux.NewEngine(flux.Config{
		Storage: h.Store, ID: "pruner", Logger: slog.New(slog.DiscardHandler),
		LeaseDuration: time.Hour, RecoveryInterval: time.Hour,
		Retention:         flux.Retention{Completed: time.Hour, Failed: 48 * time.Hour},
		WorkflowRetention: map[string]flux.Retention{"audit": {Completed: 240 * time.Hour}},
		PruneInterval:     -1, // only the calls below
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	c := &calls{}
	declined := false
	w := order(c, func() bool { return declined })
	audit := flux.New[In, Data]("audit").Step("x", c.mark())
	started, release := make(chan string, 2), make(chan struct{})
	slow := flux.New[In, Data]("slow").
		Step("wait", func(x *ctxT) error {
			started <- x.RunID()
			select {
			case <-release:
				return nil
			case <-x.Done():
				return x.Err()
			}
		})
	finish := func(id string) time.Time {
		t.Helper()
		return mustGet(t, h.Store, id).FinishedAt
	}
	run := func(wf *flux.Workflow[In, Data], id string) time.Time {
		t.Helper()
		_, err := flux.Execute(ctx(t), e, wf, In{}, flux.RunID(id))
		if declined != errors.Is(err, errDeclined) {
			t.Fatalf("Execute %s: %v", id, err)
		}
		return finish(id)
	}

	// An unfinished run, executing the whole time.
	unfinished := make(chan error, 1)
	go func() { _, err := flux.Execute(ctx(t), e, slow, In{}, flux.RunID("unfinished")); unfinished <- err }()
	<-started
	var releaseOnce sync.Once
	stop := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(stop) // when the test fails half way

	oldDone := run(w, "old-done")
	// A cancelled run counts as completed.
	cancelled := make(chan error, 1)
	go func() { _, err := flux.Execute(ctx(t), e, slow, In{}, flux.RunID("old-cancelled")); cancelled <- err }()
	<-started
	if err := e.Cancel(ctx(t), "old-cancelled"); err != nil {
		t.Fatal(err)
	}
	if err := <-cancelled; !errors.Is(err, flux.ErrCancelled) {
		t.Fatalf("Execute of the cancelled run: %v", err)
	}
	oldCancelled := finish("old-cancelled")
	auditDone := run(audit, "audit-done")
	youngDone := run(w, "young-done")
	declined = true
	failed := run(w, "failed")
	declined = false
	if !oldDone.Before(oldCancelled) || !oldCancelled.Before(youngDone) || !youngDone.Before(failed) {
		t.Fatalf("finish times out of order: %v %v %v %v", oldDone, oldCancelled, youngDone, failed)
	}

	present := func(when string, want map[string]bool) {
		t.Helper()
		for id, kept := range want {
			_, err := h.Store.Get(ctx(t), id)
			switch {
			case kept && err != nil:
				t.Errorf("%s: run %s is gone (%v), want it kept", when, id, err)
			case !kept && !errors.Is(err, flux.ErrRunNotFound):
				t.Errorf("%s: Get of run %s gives %v, want ErrRunNotFound", when, id, err)
			}
		}
	}
	prune := func(when string, now time.Time, want int) {
		t.Helper()
		n, err := e.Prune(ctx(t), now)
		if err != nil || n != want {
			t.Fatalf("%s: Prune deleted %d runs (%v), want %d", when, n, err, want)
		}
	}

	// An hour after a moment between the old and the young completed runs.
	cut := oldCancelled.Add(youngDone.Sub(oldCancelled) / 2).Add(time.Hour)
	prune("an hour after the old runs", cut, 2)
	present("an hour after the old runs", map[string]bool{
		"old-done": false, "old-cancelled": false, "young-done": true, "audit-done": true, "failed": true, "unfinished": true})
	prune("again at the same time", cut, 0)

	prune("two hours later", failed.Add(2*time.Hour), 1)
	present("two hours later", map[string]bool{"young-done": false, "audit-done": true, "failed": true, "unfinished": true})

	prune("49 hours later", failed.Add(49*time.Hour), 1)
	present("49 hours later", map[string]bool{"audit-done": true, "failed": false, "unfinished": true})

	prune("11 days later", auditDone.Add(11*24*time.Hour), 1)
	present("11 days later", map[string]bool{"audit-done": false, "unfinished": true})
	if got := mustGet(t, h.Store, "unfinished").Status; got != flux.StatusRunning {
		t.Fatalf("the unfinished run is %s after pruning, want running", got)
	}
	stop()
	if err := <-unfinished; err != nil {
		t.Fatalf("the unfinished run, released after pruning: %v", err)
	}
}
