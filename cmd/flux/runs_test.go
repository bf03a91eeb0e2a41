package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

// TestDemoPersistsToSQLite runs flux demo on a SQLite file, then reads the
// run back with flux runs list and flux runs show.
func TestDemoPersistsToSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "data", "workflows.db")
	var out strings.Builder
	if err := demo(ctx, &out, []string{"--db", db, "-failures", "0"}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("demo did not create %s: %v", db, err)
	}

	var list strings.Builder
	if err := runsCmd(ctx, &list, []string{"list", "--db", db, "--json"}); err != nil {
		t.Fatal(err)
	}
	var page flux.RunPage
	if err := json.Unmarshal([]byte(list.String()), &page); err != nil {
		t.Fatalf("runs list --json: %v\n%s", err, list.String())
	}
	if len(page.Runs) != 1 || page.Runs[0].Workflow != "order-fulfillment" || page.Runs[0].Status != flux.StatusCompleted {
		t.Fatalf("runs list = %+v, want one completed order-fulfillment run", page.Runs)
	}
	id := page.Runs[0].ID
	if !strings.Contains(out.String(), id) {
		t.Errorf("demo printed another run ID than the stored %s:\n%s", id, out.String())
	}

	var show strings.Builder
	if err := runsCmd(ctx, &show, []string{"show", "--db", db, id}); err != nil {
		t.Fatal(err)
	}
	rows := parseTable(t, show.String())
	for _, step := range []string{"validate", "charge", "reserve", "notify"} {
		if rows[step].status != "completed" || rows[step].attempts != 1 {
			t.Errorf("runs show: %s = %+v, want completed in 1 attempt", step, rows[step])
		}
	}

	var table strings.Builder
	if err := runsCmd(ctx, &table, []string{"list", "--db", db, "--status", "failed"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "no runs") {
		t.Errorf("runs list --status failed shows runs:\n%s", table.String())
	}

	var mig strings.Builder
	if err := migrateCmd(ctx, &mig, []string{"--db", db}); err != nil || !strings.Contains(mig.String(), "migrations applied") {
		t.Errorf("migrate: %v %q", err, mig.String())
	}
}

func TestRunsErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "w.db")
	var out strings.Builder
	for _, args := range [][]string{nil, {"bogus"}, {"show", "--db", db}, {"list", "--db", db, "extra"}} {
		if err := runsCmd(ctx, &out, args); err == nil {
			t.Errorf("runs %q: no error", args)
		}
	}
	err := runsCmd(ctx, &out, []string{"show", "--db", db, "no-such-run"})
	if err == nil || !strings.Contains(err.Error(), "no-such-run") {
		t.Errorf("runs show of an unknown run: %v, want an error naming it", err)
	}
	notDB := filepath.Join(t.TempDir(), "not.db")
	if err := os.WriteFile(notDB, []byte("this is not a database, just text, long enough to be read as a header"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runsCmd(ctx, &out, []string{"list", "--db", notDB}); err == nil {
		t.Errorf("runs list on a file that is not SQLite: no error")
	}
}
