package migratetest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
	"github.com/jackc/pgx/v5"
)

// fixtureRuns are the IDs of the runs of every fixture.
var fixtureRuns = []string{"run-completed", "run-failed", "run-cancelled", "run-unfinished"}

// TestPostgresFrom0004: a schema written by the release with schema 0004
// (before waiting runs, signals, concurrency limits and schedules) opens
// with schema 0005: its runs have no wait, key or signal, take signals and
// schedules, and are all intact (checkMigrated).
func TestPostgresFrom0004(t *testing.T) {
	t.Parallel()
	url, schema := postgresFixture(t, "0004")
	s, err := postgres.Open(context.Background(), url, postgres.Schema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkFrom0004(t, s)
	checkMigrated(t, s)
	checkTraceTable(t, s)
}

// TestPostgresInterruptedMigrationFrom0004: a process killed while it
// migrates a schema 0004 leaves it at 0004, and the next Open migrates it.
// The child is held inside the migration by a lock this test keeps on the
// runs table, and killed there.
func TestPostgresInterruptedMigrationFrom0004(t *testing.T) {
	t.Parallel()
	url, schema := postgresFixture(t, "0004")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	runs := pgx.Identifier{schema, "runs"}.Sanitize()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE "+runs+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=postgres:"+schema)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	// The child's backend waits for the lock: it is in the migration.
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	var pid int32
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := watch.QueryRow(ctx, "SELECT pid FROM pg_locks WHERE relation = $1::regclass AND NOT granted LIMIT 1", runs).Scan(&pid)
		if err == nil {
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			killed = true
			t.Fatalf("the child exited before it reached the migration of the runs table: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not reach the migration of the runs table within 30s")
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed = true
	if err := <-exited; err == nil {
		t.Fatal("the child exited normally; it was to be killed")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// The child's backend goes on with the migration, finds its client
	// gone, and rolls it back.
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n int
		if err := watch.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend %d of the killed child still runs after 30s", pid)
		}
		time.Sleep(20 * time.Millisecond) // polling the server, with a deadline
	}
	var version int
	if err := watch.QueryRow(ctx, "SELECT max(version) FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != 4 {
		t.Fatalf("schema at version %d after the migration was killed, want 4: the migration is one transaction", version)
	}

	s, err := postgres.Open(ctx, url, postgres.Schema(schema))
	if err != nil {
		t.Fatalf("Open after a migration cut off half-way: %v", err)
	}
	defer s.Close()
	if err := watch.QueryRow(ctx, "SELECT max(version) FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != postgres.Version() {
		t.Fatalf("schema at version %d after Open, want %d", version, postgres.Version())
	}
	checkFrom0004(t, s)
	checkMigrated(t, s)
	checkTraceTable(t, s)
}

// checkFrom0004 checks what schema 0005 adds on a store migrated from
// 0004: the runs have no wake time, wait key, concurrency key or signal;
// a finished run refuses a signal and an unfinished one takes it; there
// are no schedules, and one can be saved. It leaves run-unfinished with a
// signal, which its recovery (checkMigrated) must not mind.
func checkFrom0004(t *testing.T, s *postgres.Store) {
	t.Helper()
	ctx := context.Background()
	for _, id := range fixtureRuns {
		r, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !r.WakeAt.IsZero() || r.WaitKey != "" || r.ConcurrencyKey != "" || r.SignalSeq != 0 || len(r.Signals) != 0 {
			t.Fatalf("migrated run %s: WakeAt %v, WaitKey %q, ConcurrencyKey %q, SignalSeq %d, %d signals; want none of them",
				id, r.WakeAt, r.WaitKey, r.ConcurrencyKey, r.SignalSeq, len(r.Signals))
		}
	}
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if _, err := s.Signal(ctx, driver.SignalParams{RunID: "run-completed", Name: "late", At: at}); !errors.Is(err, flux.ErrRunFinished) {
		t.Fatalf("Signal to the migrated completed run: %v, want ErrRunFinished", err)
	}
	n, err := s.Signal(ctx, driver.SignalParams{RunID: "run-unfinished", Name: "note", Key: "k", Payload: []byte(`"hi"`), At: at})
	if err != nil || n != 1 {
		t.Fatalf("Signal to the migrated unfinished run: %d, %v; want 1, nil", n, err)
	}
	r, err := s.Get(ctx, "run-unfinished")
	if err != nil {
		t.Fatal(err)
	}
	if r.SignalSeq != 1 || len(r.Signals) != 1 || r.Signals[0].Name != "note" || r.Signals[0].Node != -1 || r.Version != 3 {
		t.Fatalf("run-unfinished after a Signal: version %d, SignalSeq %d, signals %+v; want version 3 and the one signal",
			r.Version, r.SignalSeq, r.Signals)
	}
	if got, err := s.Schedules(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Schedules of a migrated store: %v, %v; want none", got, err)
	}
	sc := driver.Schedule{Name: "nightly", Workflow: "fixture-order", Spec: "0 3 * * *", Input: []byte(`{"order":"o-n"}`), UpdatedAt: at}
	if err := s.SaveSchedule(ctx, driver.SaveScheduleParams{Schedule: sc}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Schedules(ctx); err != nil || len(got) != 1 || got[0].Name != "nightly" || got[0].Spec != sc.Spec {
		t.Fatalf("Schedules after SaveSchedule on a migrated store: %+v, %v", got, err)
	}
}
