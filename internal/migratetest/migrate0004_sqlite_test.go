package migratetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/sqlite"
	sqlite3 "modernc.org/sqlite"
)

// child0005Env makes the test binary a child that opens the SQLite file at
// its value and is killed as the migration to schema 0005 commits.
const child0005Env = "FLUX_MIGRATE_CHILD_0005"

// init runs before TestMain: a child of TestSQLiteInterruptedMigration0004
// does its part and never runs the tests.
func init() {
	if path := os.Getenv(child0005Env); path != "" {
		os.Exit(child0005(path))
	}
}

// child0005 opens the SQLite file at path and kills itself with SIGKILL
// when the writer's connection commits its first write: the migration's
// transaction, after its statements ran (migration 0005 is SQL only, with
// no Go step to hook as the conversion of schema 0001 is). A small page
// cache makes SQLite spill the migration's pages into the WAL before the
// commit, so that the file is left with a transaction cut off half-way.
func child0005(path string) int {
	sqlite3.RegisterConnectionHook(func(conn sqlite3.ExecQuerierContext, _ string) error {
		if _, err := conn.ExecContext(context.Background(), "PRAGMA cache_size = 1", nil); err != nil {
			return err
		}
		if h, ok := conn.(sqlite3.HookRegisterer); ok {
			h.RegisterCommitHook(func() int32 {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			})
		}
		return nil
	})
	s, err := sqlite.Open(path)
	if err == nil {
		s.Close()
	}
	fmt.Fprintln(os.Stderr, "the migration was not interrupted:", err)
	return 3
}

// TestSQLiteFrom0004: a file written by the release with schema 0004 (the
// trace table; commit b3e9447) opens with schema 0005 (waiting runs,
// signals, limits, schedules), its runs intact and working.
func TestSQLiteFrom0004(t *testing.T) {
	t.Parallel()
	path := sqliteFixture(t, "0004")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check0005(t, s, path)
	checkMigrated(t, s)
	checkTraceTable(t, s)
}

// TestSQLiteInterruptedMigration0004: a process killed while it migrated a
// schema-0004 file to 0005 leaves it at 0004; the next Open migrates it
// whole.
func TestSQLiteInterruptedMigration0004(t *testing.T) {
	t.Parallel()
	path := sqliteFixture(t, "0004")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), child0005Env+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("the child was not killed in the migration: %v\n%s", err, out)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() <= 32 {
		t.Fatalf("the killed migration left no frames in the WAL (%v): the test would not test recovery", err)
	}
	if v := schemaVersion(t, path); v != 4 {
		t.Fatalf("after the kill the file has schema version %d, want 4: the cut-off migration must not count", v)
	}
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open after a migration cut off half-way: %v", err)
	}
	defer s.Close()
	check0005(t, s, path)
	checkMigrated(t, s)
	checkTraceTable(t, s)
}

// schemaVersion returns the latest version in schema_migrations of the
// SQLite file at path, read through a connection of its own.
func schemaVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("SELECT max(version) FROM schema_migrations").Scan(&v); err != nil {
		t.Fatalf("reading schema_migrations: %v", err)
	}
	return v
}

// check0005 checks what schema 0005 brought to the migrated store s of
// the file at path, before checkMigrated runs its runs: the version, the
// headers' new fields at their defaults, signals and schedules.
func check0005(t *testing.T, s *sqlite.Store, path string) {
	t.Helper()
	ctx := context.Background()
	if v := schemaVersion(t, path); v != 5 {
		t.Fatalf("the migrated file has schema version %d, want 5", v)
	}
	page, err := s.List(ctx, flux.Filter{})
	if err != nil || len(page.Runs) != 4 {
		t.Fatalf("List of the migrated runs: %d runs, %v; want 4", len(page.Runs), err)
	}
	for _, r := range page.Runs {
		if !r.WakeAt.IsZero() || r.WaitKey != "" || r.ConcurrencyKey != "" || r.SignalSeq != 0 {
			t.Fatalf("migrated run %s: WakeAt %s, WaitKey %q, ConcurrencyKey %q, SignalSeq %d; want none",
				r.ID, r.WakeAt, r.WaitKey, r.ConcurrencyKey, r.SignalSeq)
		}
	}
	// A finished run refuses signals; the unfinished one is left to
	// checkMigrated's engine.
	if _, err := s.Signal(ctx, driver.SignalParams{RunID: "run-completed", Name: "late", At: time.Now()}); !errors.Is(err, flux.ErrRunFinished) {
		t.Fatalf("Signal to the migrated completed run: %v, want ErrRunFinished", err)
	}
	if n, err := s.Signal(ctx, driver.SignalParams{WaitKey: "order-1", Name: "paid", At: time.Now()}); err != nil || n != 0 {
		t.Fatalf("Signal by wait key in the migrated store: %d, %v; want 0, nil", n, err)
	}
	// The unfinished run, whose owner died, counts for a limit: with Max 1
	// ClaimExpired recovers it (limits hold pending runs only) and nothing
	// else. It is released for checkMigrated's engine.
	c, err := s.ClaimExpired(ctx, driver.ClaimExpiredParams{Owner: "check#1", Workflows: []string{"fixture-order"},
		Lease: time.Minute, Limit: 10, Limits: []driver.Limit{{Workflow: "fixture-order", Max: 1}}})
	if err != nil || len(c.Runs) != 1 || c.Runs[0].ID != "run-unfinished" || !c.NextWake.IsZero() {
		t.Fatalf("ClaimExpired in the migrated store: %+v, %v; want run-unfinished", c, err)
	}
	if err := s.Release(ctx, driver.ReleaseParams{ID: "run-unfinished", Owner: "check#1"}); err != nil {
		t.Fatal(err)
	}
	sched := driver.Schedule{Name: "nightly", Workflow: "fixture-order", Spec: "0 3 * * *", UpdatedAt: time.Now()}
	if err := s.SaveSchedule(ctx, driver.SaveScheduleParams{Schedule: sched}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Schedules(ctx); err != nil || len(got) != 1 || got[0].Name != "nightly" {
		t.Fatalf("Schedules of the migrated store: %+v, %v; want nightly", got, err)
	}
}
