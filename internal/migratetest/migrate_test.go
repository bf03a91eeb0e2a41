// Package migratetest tests that stores written by earlier releases open,
// migrated, with every run intact, on SQLite and PostgreSQL, from the
// fixtures in testdata, also when a migration is cut off half-way by a
// kill -9.
package migratetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/tracefile"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

// childEnv makes the test binary a child that opens a store and kills itself
// in the middle of its migration: "sqlite:PATH" or "postgres:SCHEMA".
const childEnv = "FLUX_MIGRATE_CHILD"

func TestMain(m *testing.M) {
	if target := os.Getenv(childEnv); target != "" {
		os.Exit(child(target))
	}
	goleak.VerifyTestMain(m)
}

// child opens the store target and kills itself with SIGKILL once the
// migration converted two runs, before it could commit.
func child(target string) int {
	sqlstore.MigrationHook = func(converted int) {
		if converted == 2 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	kind, where, _ := strings.Cut(target, ":")
	var err error
	switch kind {
	case "sqlite":
		var s *sqlite.Store
		if s, err = sqlite.Open(where); err == nil {
			s.Close()
		}
	case "postgres":
		var s *postgres.Store
		if s, err = postgres.Open(context.Background(), os.Getenv("FLUX_POSTGRES_URL"), postgres.Schema(where)); err == nil {
			s.Close()
		}
	}
	fmt.Fprintln(os.Stderr, "the migration was not interrupted:", err)
	return 3
}

// In and Data are those of the fixtures' workflow.
type In struct {
	Order string `json:"order"`
	Cents int    `json:"cents"`
}

type Data struct {
	Checked  bool     `json:"checked"`
	ChargeID string   `json:"chargeId,omitempty"`
	Shipped  bool     `json:"shipped"`
	Notes    []string `json:"notes,omitempty"`
}

// order is the fixtures' workflow as the new release defines it: the same
// nodes, handlers that do what the old ones did.
func order(charges *int) *flux.Workflow[In, Data] {
	return flux.New[In, Data]("fixture-order").
		Step("check", func(c *flux.Ctx[In, Data]) error {
			c.Data.Checked = true
			c.Data.Notes = append(c.Data.Notes, "checked "+c.Input.Order)
			return nil
		}).
		Step("charge", func(c *flux.Ctx[In, Data]) error {
			c.Data.ChargeID = "ch-" + c.Input.Order
			return nil
		}, flux.Retries(2), flux.NoBackoff()).
		Commit("ship", func(c *flux.Ctx[In, Data]) error {
			*charges++
			c.Data.Shipped = true
			return nil
		}).
		Step("notify", func(c *flux.Ctx[In, Data]) error {
			c.Data.Notes = append(c.Data.Notes, "notified")
			return nil
		})
}

// sqliteFixture returns a copy of the SQLite fixture in a directory of the
// test's.
func sqliteFixture(t *testing.T, version string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + version + ".db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "workflows.db")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// postgresFixture loads the PostgreSQL fixture into a schema of its own,
// dropped when the test ends, and returns the schema's name.
func postgresFixture(t *testing.T, version string) (url, schema string) {
	t.Helper()
	url = os.Getenv("FLUX_POSTGRES_URL")
	if url == "" {
		t.Skip("FLUX_POSTGRES_URL is unset: set it to a PostgreSQL server, such as " +
			"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, to run the PostgreSQL migration tests")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema = "flux_migrate_" + hex.EncodeToString(b[:])
	dump, err := os.ReadFile("testdata/postgres-" + version + ".sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The dump sets search_path to ''; pgx sends it through the simple
	// protocol whole, as psql would, without psql's own \ commands.
	var lines []string
	for _, l := range strings.Split(string(dump), "\n") {
		if !strings.HasPrefix(l, `\`) {
			lines = append(lines, l)
		}
	}
	sql := strings.ReplaceAll(strings.Join(lines, "\n"), "fixture"+version, schema)
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("loading the PostgreSQL fixture: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	return url, schema
}

func TestSQLiteFrom0001(t *testing.T) { testSQLiteFrom(t, "0001") }

// TestSQLiteFrom0002: a file written by the release with schema 0002 (the
// run log, after issue 9) opens with the current schema, its runs intact.
func TestSQLiteFrom0002(t *testing.T) { testSQLiteFrom(t, "0002") }

func testSQLiteFrom(t *testing.T, version string) {
	t.Parallel()
	s, err := sqlite.Open(sqliteFixture(t, version))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkMigrated(t, s)
	checkTraceTable(t, s)
}

func TestPostgresFrom0001(t *testing.T) { testPostgresFrom(t, "0001") }

// TestPostgresFrom0002 is TestSQLiteFrom0002 for PostgreSQL.
func TestPostgresFrom0002(t *testing.T) { testPostgresFrom(t, "0002") }

func testPostgresFrom(t *testing.T, version string) {
	t.Parallel()
	url, schema := postgresFixture(t, version)
	s, err := postgres.Open(context.Background(), url, postgres.Schema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkMigrated(t, s)
	checkTraceTable(t, s)
}

func TestSQLiteInterruptedMigration(t *testing.T) {
	t.Parallel()
	path := sqliteFixture(t, "0001")
	interrupt(t, "sqlite:"+path)
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open after a migration cut off half-way: %v", err)
	}
	defer s.Close()
	checkMigrated(t, s)
	checkTraceTable(t, s)
}

func TestPostgresInterruptedMigration(t *testing.T) {
	t.Parallel()
	url, schema := postgresFixture(t, "0001")
	interrupt(t, "postgres:"+schema)
	s, err := postgres.Open(context.Background(), url, postgres.Schema(schema))
	if err != nil {
		t.Fatalf("Open after a migration cut off half-way: %v", err)
	}
	defer s.Close()
	checkMigrated(t, s)
	checkTraceTable(t, s)
}

// interrupt runs a child that opens target and is killed in the middle of
// the migration.
func interrupt(t *testing.T, target string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+target)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("the child was not killed in the migration: %v\n%s", err, out)
	}
}

// checkMigrated checks every run of the fixture on store s, migrated: the
// completed run reads back with its data and attempts, the failed one is
// retried from a step, the cancelled one stays cancelled, and the
// unfinished one, whose owner died, is recovered and completes.
func checkMigrated(t *testing.T, s flux.Storage) {
	t.Helper()
	ctx := context.Background()
	var charges int
	w := order(&charges)
	var d Data

	done, err := s.Get(ctx, "run-completed")
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != flux.StatusCompleted || len(done.Steps) != 4 || done.Summary.Done != 4 {
		t.Fatalf("run-completed: %s, %d nodes, summary %+v", done.Status, len(done.Steps), done.Summary)
	}
	if err := json.Unmarshal(done.Data, &d); err != nil || d.ChargeID != "ch-o-completed" || !d.Shipped ||
		strings.Join(d.Notes, ",") != "checked o-completed,notified" {
		t.Fatalf("run-completed data %s (%v)", done.Data, err)
	}
	if a := done.Steps[1].Attempts; len(a) != 2 || a[0].Error != "gateway timeout" || a[1].Error != "" {
		t.Fatalf("run-completed charge attempts %+v, want the timeout then a success", a)
	}
	afterCheck, err := s.NodeData(ctx, driver.NodeDataParams{ID: "run-completed", Index: 0})
	if err != nil || !strings.Contains(string(afterCheck), `"checked":true`) || strings.Contains(string(afterCheck), "chargeId") {
		t.Fatalf("data after check: %s, %v", afterCheck, err)
	}

	cancelled, err := s.Get(ctx, "run-cancelled")
	if err != nil || cancelled.Status != flux.StatusCancelled {
		t.Fatalf("run-cancelled: %+v, %v", cancelled, err)
	}

	completed := make(chan string, 8)
	e, err := flux.NewEngine(flux.Config{Storage: s, ID: "new-release", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RecoveryInterval: time.Hour, Hooks: flux.Hooks{WorkflowComplete: func(ev flux.RunEvent) { completed <- ev.RunID }}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := flux.RetryStep(ctx, e, w, "run-failed", "charge")
	if err != nil {
		t.Fatalf("RetryStep of the migrated failed run: %v", err)
	}
	if res.Status != flux.StatusCompleted || res.Data.ChargeID != "ch-o-failed" || !res.Data.Shipped || charges != 1 {
		t.Fatalf("retried run: %s %+v, ship ran %d times", res.Status, res.Data, charges)
	}
	failed, err := s.Get(ctx, "run-failed")
	if err != nil {
		t.Fatal(err)
	}
	if a := failed.Steps[1].Attempts; len(a) != 3 || a[1].Error != "card declined" {
		t.Fatalf("retried run's charge attempts %+v, want the two old ones (timeout, declined) and the new one", a)
	}

	if err := e.Register(w); err != nil { // its first recovery pass takes the run: its lease expired long ago
		t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for id := ""; id != "run-unfinished"; {
		select {
		case id = <-completed:
		case <-timeout:
			t.Fatal("the migrated unfinished run was not recovered within 30s")
		}
	}
	run, err := s.Get(ctx, "run-unfinished")
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != flux.StatusCompleted || charges != 2 {
		t.Fatalf("run-unfinished after recovery: %s (%s), ship ran %d times in all", run.Status, run.Error, charges)
	}
	if a := run.Steps[1].Attempts; len(a) < 3 || !a[len(a)-2].Interrupted {
		t.Fatalf("recovered run's charge attempts %+v, want the old failed one, the one its dead owner left in flight, and the new one", a)
	}
}

// checkTraceTable checks that the migrated store has the trace table of
// schema 0004, empty.
func checkTraceTable(t *testing.T, s interface {
	TraceEvents(ctx context.Context, runID string, afterSeq int64, limit int) ([]tracefile.Stored, int64, error)
}) {
	t.Helper()
	got, next, err := s.TraceEvents(context.Background(), "", 0, 10)
	if err != nil || len(got) != 0 || next != 0 {
		t.Errorf("TraceEvents after migrating: %d events, next %d, %v", len(got), next, err)
	}
}
