package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/schedule"
	"github.com/flux-go/flux/sqlite"
	"github.com/jackc/pgx/v5"
)

type reportIn struct {
	To string `json:"to"`
}

// addSchedules stores two schedules in store, as an application would:
// "nightly" (02:00 in Paris, catch-up latest) and "every-5" (UTC, the
// default catch-up), added at 2026-12-03 10:00 UTC.
func addSchedules(t *testing.T, store flux.Storage) {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Storage: store, Workers: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	added := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s, err := schedule.New(e, schedule.Options{Now: func() time.Time { return added }})
	if err != nil {
		t.Fatal(err)
	}
	w := flux.New[reportIn, struct{}]("report").Step("render", func(*flux.Ctx[reportIn, struct{}]) error { return nil })
	for _, sc := range []schedule.Schedule{
		{Name: "nightly", Spec: "0 2 * * *", TimeZone: "Europe/Paris", CatchUp: schedule.Latest},
		{Name: "every-5", Spec: "*/5 * * * *"},
	} {
		if err := schedule.Add(t.Context(), s, w, sc, reportIn{To: "ops@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
}

// scheduleRows runs flux schedules list with args and returns its rows by
// name, each by column name (cut at the header's columns: a spec has
// spaces).
func scheduleRows(t *testing.T, args ...string) map[string]map[string]string {
	t.Helper()
	var out strings.Builder
	if err := schedulesCmd(t.Context(), &out, append([]string{"list"}, args...)); err != nil {
		t.Fatalf("schedules list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	cols := strings.Fields(lines[0])
	if want := "NAME WORKFLOW SPEC TIMEZONE CATCHUP PAUSED LAST-TICK NEXT-TICK"; strings.Join(cols, " ") != want {
		t.Fatalf("header %q, want %q", lines[0], want)
	}
	starts := make([]int, len(cols))
	for i, c := range cols {
		starts[i] = strings.Index(lines[0], c)
	}
	rows := map[string]map[string]string{}
	for _, l := range lines[1:] {
		row := map[string]string{}
		for i, c := range cols {
			end := len(l)
			if i+1 < len(cols) {
				end = min(starts[i+1], len(l))
			}
			row[c] = strings.TrimSpace(l[min(starts[i], len(l)):end])
		}
		rows[row["NAME"]] = row
	}
	return rows
}

// TestSchedulesSQLite lists, pauses and resumes schedules stored in a
// SQLite file.
func TestSchedulesSQLite(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "flux.db")
	store, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	addSchedules(t, store)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	checkSchedulesCmd(t, "--db", db)

	var out strings.Builder
	if err := schedulesCmd(t.Context(), &out, []string{"list", "--db", filepath.Join(t.TempDir(), "none.db")}); err == nil || !strings.Contains(err.Error(), "no SQLite database") {
		t.Errorf("list of a missing file: %v", err)
	}
	for _, args := range [][]string{nil, {"show"}, {"pause"}, {"pause", "a", "b", "--db", db}, {"list", "x", "--db", db}} {
		if err := schedulesCmd(t.Context(), &out, args); err == nil || !strings.Contains(err.Error(), "usage") && !strings.Contains(err.Error(), "unexpected argument") {
			t.Errorf("schedules %q: %v, want a usage error", args, err)
		}
	}
	if err := schedulesCmd(t.Context(), &out, []string{"list", "--db", db, "--schema", "x"}); err == nil || !strings.Contains(err.Error(), "--schema x is for PostgreSQL") {
		t.Errorf("--schema with --db: %v", err)
	}
}

// TestSchedulesPostgres is TestSchedulesSQLite on PostgreSQL, in a schema
// of its own (--schema).
func TestSchedulesPostgres(t *testing.T) {
	t.Parallel()
	url := os.Getenv("FLUX_POSTGRES_URL")
	if url == "" {
		t.Skip("FLUX_POSTGRES_URL is unset: set it to a PostgreSQL server, such as " +
			"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, to run the PostgreSQL tests")
	}
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
	addSchedules(t, store)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	checkSchedulesCmd(t, "--postgres", url, "--schema", schema)
}

// checkSchedulesCmd checks list, pause, resume and delete on the store
// the flags name, which holds the schedules of addSchedules.
func checkSchedulesCmd(t *testing.T, flags ...string) {
	t.Helper()
	rows := scheduleRows(t, flags...)
	if len(rows) != 2 {
		t.Fatalf("%d schedules listed, want 2: %v", len(rows), rows)
	}
	row := func(r map[string]string) string {
		return strings.Join([]string{r["WORKFLOW"], r["SPEC"], r["TIMEZONE"], r["CATCHUP"], r["PAUSED"], r["LAST-TICK"]}, "|")
	}
	nightly := rows["nightly"]
	if got := row(nightly); got != "report|0 2 * * *|Europe/Paris|latest|no|2026-12-03T11:00:00+01:00" {
		t.Errorf("nightly row %q", got)
	}
	if next, err := time.Parse(time.RFC3339, nightly["NEXT-TICK"]); err != nil || next.Hour() != 2 || !next.After(time.Now()) {
		t.Errorf("nightly next tick %q, want a coming 02:00 in Paris (%v)", nightly["NEXT-TICK"], err)
	}
	if got := row(rows["every-5"]); got != "report|*/5 * * * *|UTC|skip|no|2026-12-03T10:00:00Z" {
		t.Errorf("every-5 row %q", got)
	}

	var out strings.Builder
	if err := schedulesCmd(t.Context(), &out, append([]string{"pause", "nightly"}, flags...)); err != nil || !strings.Contains(out.String(), "nightly: paused") {
		t.Fatalf("pause: %v %q", err, out.String())
	}
	if r := scheduleRows(t, flags...)["nightly"]; r["PAUSED"] != "yes" || r["NEXT-TICK"] != "-" {
		t.Errorf("paused nightly listed paused %s, next tick %s; want yes, -", r["PAUSED"], r["NEXT-TICK"])
	}
	before := time.Now().Add(-time.Second)
	if err := schedulesCmd(t.Context(), &out, append([]string{"resume", "nightly"}, flags...)); err != nil || !strings.Contains(out.String(), "nightly: resumed") {
		t.Fatalf("resume: %v %q", err, out.String())
	}
	r := scheduleRows(t, flags...)["nightly"]
	// Resume moves the last tick to now: the paused ticks are not caught up.
	if last, err := time.Parse(time.RFC3339, r["LAST-TICK"]); r["PAUSED"] != "no" || err != nil || last.Before(before) {
		t.Errorf("resumed nightly listed paused %s, last tick %s; want no, now", r["PAUSED"], r["LAST-TICK"])
	}
	if err := schedulesCmd(t.Context(), &out, append([]string{"pause", "weekly"}, flags...)); !errors.Is(err, flux.ErrScheduleNotFound) {
		t.Errorf("pause of an unknown schedule: %v, want ErrScheduleNotFound", err)
	}
	if err := schedulesCmd(t.Context(), &out, append([]string{"delete", "every-5"}, flags...)); err != nil {
		t.Fatal(err)
	}
	var js strings.Builder
	if err := schedulesCmd(t.Context(), &js, append([]string{"list", "--json"}, flags...)); err != nil {
		t.Fatal(err)
	}
	var got []scheduleJSON
	if err := json.Unmarshal([]byte(js.String()), &got); err != nil {
		t.Fatalf("list --json: %v\n%s", err, js.String())
	}
	if len(got) != 1 || got[0].Name != "nightly" || got[0].NextTick.IsZero() {
		t.Fatalf("list --json after deleting every-5 = %s", js.String())
	}
	var in reportIn
	if err := json.Unmarshal(got[0].Input, &in); err != nil || in.To != "ops@example.com" {
		t.Errorf("list --json: input %s, want the schedule's", got[0].Input)
	}
}
