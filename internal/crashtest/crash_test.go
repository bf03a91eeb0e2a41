package crashtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

const (
	crashRuns        = 16
	crashConcurrency = 4
	// crashLease is short so that recovery starts soon after the kill; the
	// heartbeat renews it every third of it while the child lives.
	crashLease = 400 * time.Millisecond
)

var (
	killPoints = []string{inPrepare, inPrice, afterPrice, chargeBefore, chargeAfter, afterCharge}
	killAt     = []int64{1, 6, 12} // the K-th run to reach the point
)

func TestCrashRecoveryPostgres(t *testing.T) {
	t.Parallel()
	dbURL(t)
	crashMatrix(t, func(t *testing.T, _ string) storeConfig { return pgStore(t) })
}

func TestCrashRecoverySQLite(t *testing.T) {
	t.Parallel()
	crashMatrix(t, func(_ *testing.T, dir string) storeConfig { return sqliteStore(dir) })
}

// TestBackgroundWorkerKilled: a process whose background workers execute
// started runs is killed mid-run; another engine takes the runs over and
// completes them, no completed commit running again.
func TestBackgroundWorkerKilledSQLite(t *testing.T) {
	t.Parallel()
	for _, p := range []string{inPrice, chargeAfter, afterCharge} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			crashCaseMode(t, "start", sqliteStore(dir), dir, p, 6, false)
		})
	}
}

func TestBackgroundWorkerKilledPostgres(t *testing.T) {
	t.Parallel()
	dbURL(t)
	for _, p := range []string{inPrice, chargeAfter, afterCharge} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			crashCaseMode(t, "start", pgStore(t), t.TempDir(), p, 6, false)
		})
	}
}

func TestCrashAtMostOncePostgres(t *testing.T) {
	t.Parallel()
	dbURL(t)
	for _, k := range []int64{1, 6} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			t.Parallel()
			crashCase(t, pgStore(t), t.TempDir(), chargeAfter, k, true)
		})
	}
}

func TestCrashAtMostOnceSQLite(t *testing.T) {
	t.Parallel()
	for _, k := range []int64{1, 6} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			crashCase(t, sqliteStore(dir), dir, chargeAfter, k, true)
		})
	}
}

func crashMatrix(t *testing.T, store func(t *testing.T, dir string) storeConfig) {
	for _, p := range killPoints {
		for _, k := range killAt {
			t.Run(fmt.Sprintf("%s/K=%d", p, k), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				crashCase(t, store(t, dir), dir, p, k, false)
			})
		}
	}
}

// crashCase runs crashRuns runs in a child process that kills itself with
// SIGKILL the k-th time a run reaches point, recovers them in a new engine,
// and checks what happened.
func crashCase(t *testing.T, sc storeConfig, dir, point string, k int64, atMostOnce bool) {
	crashCaseMode(t, "crash", sc, dir, point, k, atMostOnce)
}

// crashCaseMode is crashCase with the child's mode: "crash" executes the
// runs with Execute, "start" starts them for its background workers.
func crashCaseMode(t *testing.T, mode string, sc storeConfig, dir, point string, k int64, atMostOnce bool) {
	ctx := t.Context()
	ids := runIDs(crashRuns)
	killed := crashChild(t, childConfig{
		Mode: mode, Store: sc, Dir: dir, Who: "child", Point: point, K: k,
		Runs: crashRuns, Concurrency: crashConcurrency, Lease: crashLease, AtMostOnce: atMostOnce,
	})

	// A new engine recovers the runs the child left behind.
	store, closeStore, err := openStore(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	before, err := store.List(ctx, flux.Filter{Workflow: flowName, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Runs) == 0 {
		t.Fatal("the child stored no run")
	}
	a, err := newActor(dir, "recoverer")
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	flow := newFlow(a, atMostOnce)
	eng, err := flux.NewEngine(flux.Config{
		Storage: store, ID: "recoverer", LeaseDuration: crashLease, RecoveryInterval: 50 * time.Millisecond,
		Hooks: a.hooks(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Register(flow); err != nil {
		t.Fatal(err)
	}
	// The recovery loop alone must finish every run the child created.
	err = pollUntil(ctx, 30*time.Second, func() (bool, error) {
		for _, r := range before.Runs {
			run, err := store.Get(ctx, r.ID)
			if err != nil || !run.Status.Final() {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("recovery did not finish the %d runs the child created: %v", len(before.Runs), err)
	}
	// Starting every run again is idempotent: it returns the finished ones
	// and runs those the child never created.
	execErrs := map[string]error{}
	for _, id := range ids {
		err := pollUntil(ctx, 30*time.Second, func() (bool, error) {
			res, err := flux.Execute(ctx, eng, flow, inputOf(id), flux.RunID(id))
			if errors.Is(err, flux.ErrRunActive) {
				return false, nil
			}
			if err == nil && res.Data != expected(id, inputOf(id).N) {
				t.Errorf("run %s: Execute returned data %+v, want %+v", id, res.Data, expected(id, inputOf(id).N))
			}
			execErrs[id] = err
			return true, nil
		})
		if err != nil {
			t.Fatalf("Execute(%s): %v", id, err)
		}
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	check := newCrashCheck(t, store, dir, ids)
	for _, id := range ids {
		if atMostOnce && check.runs[id].Status == flux.StatusFailed {
			check.outcomeUnknown(id, execErrs[id])
			continue
		}
		if execErrs[id] != nil {
			t.Errorf("run %s: Execute after recovery: %v", id, execErrs[id])
		}
		check.completed(id, atMostOnce)
	}
	check.killedRun(killed, point, atMostOnce)
}

// crashChild runs a child process that must kill itself with SIGKILL at
// cfg.Point, and returns the ID of the run it was in.
func crashChild(t *testing.T, cfg childConfig) string {
	t.Helper()
	c := spawn(t, cfg)
	ws := c.wait(t, time.Minute)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL (wait status %v); its output:\n%s", ws, c.output())
	}
	killedLines := readLines(t, filepath.Join(cfg.Dir, killedFile))
	if len(killedLines) != 1 {
		t.Fatalf("kill file: want 1 line, got %q", killedLines)
	}
	killed, gotPoint, _ := strings.Cut(killedLines[0], " ")
	if gotPoint != cfg.Point {
		t.Fatalf("the child was killed at %q, want %q", gotPoint, cfg.Point)
	}
	return killed
}

// crashCheck holds what a crash test checks: the stored runs, the handler
// calls of the child and of the recovering engine, and the ledger.
type crashCheck struct {
	t        *testing.T
	runs     map[string]*flux.Run
	starts   map[string]map[string]map[string]int // run → step → who → handler calls
	recorded map[string]map[string]bool           // run → step → StepComplete fired in the child
	ledger   map[string]int                       // run → raw ledger lines
}

func newCrashCheck(t *testing.T, store flux.Storage, dir string, ids []string) *crashCheck {
	c := &crashCheck{t: t, runs: map[string]*flux.Run{}, starts: map[string]map[string]map[string]int{},
		recorded: map[string]map[string]bool{}, ledger: ledgerByRun(t, dir, ids)}
	for _, id := range ids {
		run, err := store.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("run %s after recovery: %v", id, err)
		}
		c.runs[id] = run
		c.starts[id] = map[string]map[string]int{}
		c.recorded[id] = map[string]bool{}
	}
	for _, cl := range readCalls(t, dir) {
		switch {
		case c.starts[cl.run] == nil:
			t.Errorf("a call of unknown run %q", cl.run)
		case cl.event == "start":
			if c.starts[cl.run][cl.step] == nil {
				c.starts[cl.run][cl.step] = map[string]int{}
			}
			c.starts[cl.run][cl.step][cl.who]++
		case cl.event == "recorded" && cl.who == "child":
			c.recorded[cl.run][cl.step] = true
		}
	}
	return c
}

// calls returns how often who called the handler of step for run id.
func (c *crashCheck) calls(id, step, who string) int { return c.starts[id][step][who] }

// completed checks a run that must have completed.
func (c *crashCheck) completed(id string, atMostOnce bool) {
	t, run := c.t, c.runs[id]
	if run.Status != flux.StatusCompleted {
		t.Errorf("run %s is %s (%s), want completed", id, run.Status, run.Error)
		return
	}
	var d Data
	if err := json.Unmarshal(run.Data, &d); err != nil {
		t.Errorf("run %s: stored data %s: %v", id, run.Data, err)
	} else if want := expected(id, inputOf(id).N); d != want {
		t.Errorf("run %s: stored data %+v, want %+v", id, d, want)
	}
	for _, s := range run.Steps {
		if s.Status != flux.StatusCompleted {
			t.Errorf("run %s: node %s is %s, want completed", id, s.Name, s.Status)
		}
	}
	maxLines := 2 // a charge cut off after its effect runs again
	if atMostOnce {
		maxLines = 1
	}
	if n := c.ledger[id]; n < 1 || n > maxLines {
		t.Errorf("run %s: %d ledger lines, want 1 to %d", id, n, maxLines)
	}
	for _, step := range []string{"prepare", "price", "charge", "finish"} {
		child, rec := c.calls(id, step, "child"), c.calls(id, step, "recoverer")
		if child > 1 || rec > 1 || child+rec == 0 {
			t.Errorf("run %s: %s ran %d times in the child and %d times in recovery, want at most once each and at least once", id, step, child, rec)
		}
		// What the child recorded is never executed again.
		if c.recorded[id][step] && rec > 0 {
			t.Errorf("run %s: %s was recorded complete before the crash but ran again in recovery", id, step)
		}
	}
}

// outcomeUnknown checks a run that failed because its AtMostOnce charge was
// interrupted.
func (c *crashCheck) outcomeUnknown(id string, execErr error) {
	t, run := c.t, c.runs[id]
	if !strings.Contains(run.Error, flux.ErrCommitOutcomeUnknown.Error()) {
		t.Errorf("run %s failed with %q, want an error mentioning %q", id, run.Error, flux.ErrCommitOutcomeUnknown)
	}
	if execErr == nil || !strings.Contains(execErr.Error(), flux.ErrCommitOutcomeUnknown.Error()) {
		t.Errorf("run %s: Execute returned %v, want an error mentioning %q", id, execErr, flux.ErrCommitOutcomeUnknown)
	}
	// Its start was recorded in the child; the handler may or may not have
	// been called before the kill.
	if c.calls(id, "charge", "child") > 1 || c.recorded[id]["charge"] {
		t.Errorf("run %s failed as outcome unknown, but its charge was recorded complete in the child or ran more than once there", id)
	}
	if n := c.calls(id, "charge", "recoverer"); n != 0 {
		t.Errorf("run %s: the AtMostOnce charge ran %d times in recovery, want 0", id, n)
	}
	if n := c.calls(id, "finish", "recoverer") + c.calls(id, "finish", "child"); n != 0 {
		t.Errorf("run %s: finish ran %d times after an outcome-unknown charge, want 0", id, n)
	}
	if n := c.ledger[id]; n > 1 {
		t.Errorf("run %s: %d ledger lines, want at most 1", id, n)
	}
}

// killedRun checks what the kill point implies for the run that was killed.
func (c *crashCheck) killedRun(id, point string, atMostOnce bool) {
	t := c.t
	run := c.runs[id]
	if run == nil {
		t.Fatalf("the killed run %q is not one of the test's runs", id)
	}
	step := func(name string) flux.StepState {
		for _, s := range run.Steps {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("run %s has no node %s", id, name)
		return flux.StepState{}
	}
	// want asserts the calls of one handler in the child and in recovery.
	want := func(name string, child, rec int) {
		t.Helper()
		if gc, gr := c.calls(id, name, "child"), c.calls(id, name, "recoverer"); gc != child || gr != rec {
			t.Errorf("killed run %s (%s): %s ran %d times in the child and %d in recovery, want %d and %d",
				id, point, name, gc, gr, child, rec)
		}
	}
	// wantHistory asserts the recorded attempts of a node: "ok",
	// "interrupted" (cut off by the kill), or "failed".
	wantHistory := func(name string, outcomes ...string) {
		t.Helper()
		var got []string
		for _, a := range step(name).Attempts {
			switch {
			case a.Interrupted:
				got = append(got, "interrupted")
			case a.Error != "":
				got = append(got, "failed")
			default:
				got = append(got, "ok")
			}
		}
		if strings.Join(got, " ") != strings.Join(outcomes, " ") {
			t.Errorf("killed run %s (%s): %s has attempts %v recorded, want %v", id, point, name, got, outcomes)
		}
	}
	wantLedger := func(n int) {
		t.Helper()
		if got := c.ledger[id]; got != n {
			t.Errorf("killed run %s (%s): %d raw ledger lines, want %d", id, point, got, n)
		}
	}
	if atMostOnce {
		if run.Status != flux.StatusFailed {
			t.Fatalf("killed run %s: an AtMostOnce charge cut off at %s left the run %s, want failed with %v",
				id, point, run.Status, flux.ErrCommitOutcomeUnknown)
		}
		want("charge", 1, 0)
		wantLedger(1)
		wantHistory("charge", "interrupted", "failed")
		return
	}
	// Every attempt stays in the record, the one the kill cut off marked
	// interrupted. A node whose start was recorded counts as cut off even
	// if the kill came just before its handler (afterPrice: in the hook
	// after the write that started charge).
	switch point {
	case inPrepare: // an interrupted step runs again
		want("prepare", 1, 1)
		want("price", 0, 1)
		wantHistory("prepare", "interrupted", "ok")
	case inPrice:
		want("prepare", 1, 0)
		want("price", 1, 1)
		wantHistory("price", "interrupted", "ok")
	case afterPrice: // a checkpointed step does not
		want("price", 1, 0)
		wantHistory("price", "ok")
		want("charge", 0, 1)
		wantHistory("charge", "interrupted", "ok")
	case chargeBefore: // a started commit runs again with the same key
		want("charge", 1, 1)
		wantLedger(1)
		wantHistory("charge", "interrupted", "ok")
	case chargeAfter: // ... even after its effect: the key deduplicates it
		want("charge", 1, 1)
		wantLedger(2)
		wantHistory("charge", "interrupted", "ok")
	case afterCharge: // a recorded commit never runs again
		want("charge", 1, 0)
		want("finish", 0, 1)
		wantLedger(1)
		wantHistory("charge", "ok")
		wantHistory("finish", "ok")
	}
}

func TestRestartWithSameIDSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	restartCase(t, sqliteStore(dir), dir)
}

func TestRestartWithSameIDPostgres(t *testing.T) {
	t.Parallel()
	dbURL(t)
	restartCase(t, pgStore(t), t.TempDir())
}

// restartCase kills a child process holding runs on hour-long leases, then
// checks that an engine with another ID leaves them alone and one with the
// child's ID continues them at once, and reports how long that took.
func restartCase(t *testing.T, sc storeConfig, dir string) {
	ctx := t.Context()
	killed := crashChild(t, childConfig{
		Mode: "crash", Store: sc, Dir: dir, Who: "svc", Point: inPrice, K: 6,
		Runs: crashRuns, Concurrency: crashConcurrency, Lease: time.Hour,
	})
	store, closeStore, err := openStore(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	left, err := unfinishedRuns(ctx, store)
	if err != nil || len(left) == 0 {
		t.Fatalf("the child left %v unfinished (%v), want some", left, err)
	}
	a, err := newActor(dir, "recoverer")
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	flow := newFlow(a, false)
	cfg := flux.Config{Storage: store, LeaseDuration: time.Hour, RecoveryInterval: time.Hour, Logger: testLogger(t)}

	// Another ID must wait out the child's leases: it claims nothing.
	cfg.ID = "other"
	other, err := flux.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Register(flow); err != nil {
		t.Fatal(err)
	}
	if n := other.RecoverNow(); n != 0 {
		t.Fatalf("an engine with another ID claimed %d of the crashed engine's runs before their leases expired", n)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range left {
		if run, err := store.Get(ctx, id); err != nil || driver.OwnerEngine(run.Owner) != "svc" {
			t.Fatalf("run %s after the other engine: %v, owner %q; want it still leased by svc", id, err, run.Owner)
		}
	}

	// The child's ID continues them at its first recovery pass.
	cfg.ID = "svc"
	start := time.Now()
	eng, err := flux.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Register(flow); err != nil {
		t.Fatal(err)
	}
	err = pollUntil(ctx, 30*time.Second, func() (bool, error) {
		left, err := unfinishedRuns(ctx, store)
		return len(left) == 0, err
	})
	if err != nil {
		t.Fatalf("the restarted engine did not finish the crashed runs (leases of an hour left): %v", err)
	}
	t.Logf("restart with the same ID: %d crashed runs continued and finished %s after NewEngine", len(left), time.Since(start))
	run, err := store.Get(ctx, killed)
	if err != nil {
		t.Fatal(err)
	}
	if a := run.Steps[1].Attempts; run.Status != flux.StatusCompleted || len(a) != 2 || !a[0].Interrupted || a[1].Interrupted {
		t.Fatalf("killed run %s: %s, price attempts %+v; want completed, attempt 1 interrupted and 2 done", killed, run.Status, a)
	}
}

// unfinishedRuns returns the IDs of the stored runs not in a final state.
func unfinishedRuns(ctx context.Context, store flux.Storage) ([]string, error) {
	page, err := store.List(ctx, flux.Filter{Workflow: flowName, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var left []string
	for _, r := range page.Runs {
		if !r.Status.Final() {
			left = append(left, r.ID)
		}
	}
	return left, nil
}
