package crashtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// TestZombieOwnerPostgres stops an owner (SIGSTOP) in the middle of a step
// until its lease expired and another engine recovered and completed the
// run, then continues it: its late checkpoint must be refused with
// ErrLeaseLost, it must stop, and the run must stay as the other engine
// completed it.
//
// There is no SQLite variant: a process stopped at an arbitrary moment may
// hold SQLite's one write lock (its heartbeat writes three times a lease),
// and then the other engine cannot write until it is continued.
func TestZombieOwnerPostgres(t *testing.T) {
	t.Parallel()
	sc := pgStore(t)
	dir := t.TempDir()
	ctx := t.Context()
	const lease = 600 * time.Millisecond
	const runID = "zombie-1"
	z := spawn(t, childConfig{Mode: "zombie", Store: sc, Dir: dir, Who: "zombie", Lease: lease})
	err := pollUntil(ctx, time.Minute, func() (bool, error) {
		_, err := os.Stat(filepath.Join(dir, readyFile))
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("the zombie child never blocked in its step: %v; its output:\n%s", err, z.output())
	}
	pid := z.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	// Engine B takes the run over once the stopped owner's lease expired.
	store, closeStore, err := openStore(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	a, err := newActor(dir, "recoverer")
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	eng, err := flux.NewEngine(flux.Config{
		Storage: store, ID: "recoverer", LeaseDuration: lease, RecoveryInterval: 50 * time.Millisecond,
		Hooks: a.hooks(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Register(newFlow(a, false)); err != nil {
		t.Fatal(err)
	}
	err = pollUntil(ctx, 30*time.Second, func() (bool, error) {
		run, err := store.Get(ctx, runID)
		return err == nil && run.Status == flux.StatusCompleted, err
	})
	if err != nil {
		t.Fatalf("engine B did not complete the stopped owner's run: %v", err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	done, err := store.Get(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}

	// The zombie wakes up and tries to checkpoint its step.
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if ws := z.wait(t, time.Minute); ws.ExitStatus() != 0 {
		t.Fatalf("the zombie child exited with %v; its output:\n%s", ws, z.output())
	}
	b, err := os.ReadFile(filepath.Join(dir, resultFile))
	if err != nil {
		t.Fatal(err)
	}
	var res childResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("the zombie's Execute returned: %s", res.Err)
	if !res.LeaseLost {
		t.Errorf("the zombie's Execute returned %q, want an error wrapping %v", res.Err, flux.ErrLeaseLost)
	}
	if !strings.Contains(res.Err, flux.ErrLeaseLost.Error()) {
		t.Errorf("the zombie's error %q does not name the lost lease", res.Err)
	}

	after, err := store.Get(ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != done.Version || after.Status != flux.StatusCompleted || string(after.Data) != string(done.Data) {
		t.Errorf("the zombie changed the run: version %d → %d, status %s, data %s → %s",
			done.Version, after.Version, after.Status, done.Data, after.Data)
	}
	var d Data
	if err := json.Unmarshal(after.Data, &d); err != nil || d != expected(runID, 7) {
		t.Errorf("run data %s (%v), want %+v", after.Data, err, expected(runID, 7))
	}
	// The zombie stopped: it ran nothing after the step it was stopped in.
	for _, c := range readCalls(t, dir) {
		if c.who == "zombie" && c.step != "prepare" {
			t.Errorf("the zombie went on to %s %s after losing its lease", c.step, c.event)
		}
	}
	if lines := readLines(t, filepath.Join(dir, ledgerFile)); len(lines) != 1 {
		t.Errorf("ledger %q, want the one charge of engine B", lines)
	}
}
