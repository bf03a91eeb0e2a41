package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/jackc/pgx/v5"
)

// flux bench without --db measures on a temporary SQLite file: it never
// writes its runs into ./data/workflows.db, the default store of the other
// commands (and of the user's application).
func TestBenchSQLiteLeavesTheDefaultDatabaseAlone(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"--storage", "sqlite", "--workflows", "50", "--sequential", "0"},
		{"--baseline", "--storage", "sqlite", "--workflows", "50"},
	} {
		if err := runBench(t.Context(), args); err != nil {
			t.Fatalf("flux bench %v: %v", args, err)
		}
		if _, err := os.Stat(filepath.Join("data", "workflows.db")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("flux bench %v wrote ./data/workflows.db (stat: %v)", args, err)
		}
	}
}

// pgURL returns the PostgreSQL URL of the tests, or skips.
func pgURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("FLUX_POSTGRES_URL")
	if url == "" {
		t.Skip("FLUX_POSTGRES_URL is unset: set it to a PostgreSQL server, such as " +
			"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, to run the PostgreSQL tests")
	}
	return url
}

// countRuns returns the runs of workflow in schema's runs table, 0 if the
// schema has none.
func countRuns(t *testing.T, conn *pgx.Conn, schema, workflow string) int {
	t.Helper()
	var exists bool
	if err := conn.QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", schema+".runs").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		return 0
	}
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+pgx.Identifier{schema, "runs"}.Sanitize()+" WHERE workflow = $1",
		workflow).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// flux bench on PostgreSQL measures in a schema of its own, emptied first,
// and leaves the default schema (the application's) alone.
func TestBenchPostgresUsesItsOwnSchema(t *testing.T) {
	url := pgURL(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	before := countRuns(t, conn, "flux", "bench-w1")
	for range 2 {
		if err := runBench(t.Context(), []string{"--postgres", url, "--workflows", "40", "--sequential", "5"}); err != nil {
			t.Fatal(err)
		}
		// Emptied before each measurement: 45 runs, not 90 the second time.
		if n := countRuns(t, conn, benchSchema, "bench-w1"); n != 45 {
			t.Fatalf("%d runs in schema %s after a bench of 45 runs, want 45", n, benchSchema)
		}
	}
	if after := countRuns(t, conn, "flux", "bench-w1"); after != before {
		t.Fatalf("flux bench wrote %d runs into the schema flux", after-before)
	}
}

// --schema names the PostgreSQL schema of every command's store, as
// postgres.Schema does for an application's.
func TestRunsListInASchema(t *testing.T) {
	t.Parallel()
	url := pgURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "flux_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	store, err := postgres.Open(t.Context(), url, postgres.Schema(schema))
	if err != nil {
		t.Fatal(err)
	}
	e, err := flux.NewEngine(flux.Config{Storage: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := flux.Execute(t.Context(), e, w1, w1Input{OrderID: "o_schema"})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(e.Close(), store.Close()); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	if err := runsCmd(t.Context(), &out, []string{"list", "--postgres", url, "--schema", schema}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), res.ID) {
		t.Fatalf("flux runs list --schema %s does not list run %s:\n%s", schema, res.ID, out.String())
	}
	err = runsCmd(t.Context(), &out, []string{"list", "--db", filepath.Join(t.TempDir(), "x.db"), "--schema", schema})
	if err == nil || !strings.Contains(err.Error(), "is for PostgreSQL") {
		t.Fatalf("runs list --db --schema: %v, want an error saying --schema is for PostgreSQL", err)
	}
}
