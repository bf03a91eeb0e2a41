package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/sqlite"
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
	if err := migrateCmd(ctx, &out, []string{"--db", db}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{nil, {"bogus"}, {"show", "--db", db}, {"show", "a", "b", "--db", db}, {"list", "--db", db, "extra"}} {
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

// storeRuns writes runs into a new SQLite database at path, as an engine
// would have, and closes it.
func storeRuns(t *testing.T, path string, runs ...*flux.Run) {
	t.Helper()
	store, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, r := range runs {
		if _, err := store.Create(context.Background(), driver.CreateParams{Run: r}); err != nil {
			t.Fatal(err)
		}
	}
}

// testRun is a completed one-step run of workflow wf created at at.
func testRun(id, wf string, at time.Time) *flux.Run {
	return &flux.Run{
		ID: id, Workflow: wf, Status: flux.StatusCompleted, Input: []byte(`{}`), Data: []byte(`{}`),
		CreatedAt: at, UpdatedAt: at.Add(time.Second), FinishedAt: at.Add(time.Second),
		Steps: []flux.StepState{{Name: "only", Kind: flux.KindStep, Status: flux.StatusCompleted,
			StartedAt: at, FinishedAt: at.Add(time.Second),
			Attempts: []flux.Attempt{{Number: 1, StartedAt: at, Duration: time.Second}}}},
	}
}

// TestRunsFlagsAnyOrder checks that flags may come before or after the
// run ID of runs show, and anywhere for runs list, and that an unknown flag
// is an error wherever it stands.
func TestRunsFlagsAnyOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "w.db")
	storeRuns(t, db, testRun("run-1", "shop", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))

	show := func(args ...string) string {
		t.Helper()
		var out strings.Builder
		if err := runsCmd(ctx, &out, append([]string{"show"}, args...)); err != nil {
			t.Fatalf("runs show %q: %v", args, err)
		}
		return out.String()
	}
	before := show("--db", db, "run-1")
	after := show("run-1", "--db", db) // as the README writes it
	if before != after || !strings.Contains(before, "run run-1") {
		t.Errorf("runs show --db PATH ID printed\n%s\nand runs show ID --db PATH printed\n%s\nwant both to show run-1", before, after)
	}
	var r flux.Run
	if err := json.Unmarshal([]byte(show("run-1", "--json", "--db", db)), &r); err != nil || r.ID != "run-1" {
		t.Errorf("runs show ID --json --db PATH: %v, run %q; want run-1 as JSON", err, r.ID)
	}

	var list strings.Builder
	if err := runsCmd(ctx, &list, []string{"list", "--json", "--workflow", "shop", "--db", db}); err != nil {
		t.Fatal(err)
	}
	var page flux.RunPage
	if err := json.Unmarshal([]byte(list.String()), &page); err != nil || len(page.Runs) != 1 || page.Runs[0].ID != "run-1" {
		t.Errorf("runs list with flags in any order: %v %s, want run-1", err, list.String())
	}

	for _, args := range [][]string{
		{"show", "run-1", "--db", db, "--bogus"},
		{"show", "--bogus", "run-1", "--db", db},
		{"list", "--db", db, "--bogus"},
	} {
		var out strings.Builder
		err := runsCmd(ctx, &out, args)
		if err == nil || !strings.Contains(err.Error(), "-bogus") {
			t.Errorf("runs %q: %v, want an error naming -bogus", args, err)
		}
		if out.Len() != 0 {
			t.Errorf("runs %q printed %q before rejecting its arguments", args, out.String())
		}
	}
	var out strings.Builder
	if err := migrateCmd(ctx, &out, []string{"extra", "--db", db}); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("migrate extra --db PATH: %v, want an error naming the argument", err)
	}
	if err := migrateCmd(ctx, &out, []string{"--db", db, "--bogus"}); err == nil || !strings.Contains(err.Error(), "-bogus") {
		t.Errorf("migrate --db PATH --bogus: %v, want an error naming the flag", err)
	}
	if _, err := parseDev([]string{"--port", "0", "--db", db, "extra"}, io.Discard); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("dev --port 0 --db PATH extra: %v, want an error naming the argument", err)
	}
	if err := demo(ctx, &out, []string{"--storage", "memory", "extra", "-failures", "0"}); err == nil || !strings.Contains(err.Error(), "extra") {
		t.Errorf("demo with an argument between its flags: %v, want an error naming it", err)
	}
}

// TestRunsListBadStatus checks that an unknown --status is an error naming
// it and the valid statuses, not an empty list.
func TestRunsListBadStatus(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "w.db")
	storeRuns(t, db, testRun("run-1", "shop", time.Now()))
	for _, status := range []string{"bogus", "failed,bogus", "skipped"} {
		var out strings.Builder
		err := runsCmd(context.Background(), &out, []string{"list", "--db", db, "--status", status})
		if err == nil {
			t.Errorf("runs list --status %s: no error, printed %q", status, out.String())
			continue
		}
		bad := status[strings.LastIndex(status, ",")+1:]
		if !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("runs list --status %s: %q does not name %q", status, err, bad)
		}
		for _, s := range []string{"pending", "running", "waiting", "completed", "failed", "cancelled"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("runs list --status %s: %q does not list the valid status %s", status, err, s)
			}
		}
		if out.Len() != 0 {
			t.Errorf("runs list --status %s printed %q", status, out.String())
		}
	}
	var out strings.Builder
	if err := runsCmd(context.Background(), &out, []string{"list", "--db", db, "--status", " Completed, failed "}); err != nil || !strings.Contains(out.String(), "run-1") {
		t.Errorf("runs list --status ' Completed, failed ': %v\n%s\nwant run-1", err, out.String())
	}
}

// TestReadCommandsRefuseMissingDatabase checks that runs list, runs show and
// dev fail on a --db file that does not exist, say how to create one, and
// create nothing, while migrate creates it.
func TestReadCommandsRefuseMissingDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	db := filepath.Join(dir, "typo.db")
	checkErr := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s on a missing database: no error", what)
			return
		}
		for _, s := range []string{db, "does not exist", "flux migrate --db " + db, "flux demo --db " + db} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s on a missing database: %q does not say %q", what, err, s)
			}
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s created %s (stat: %v)", what, dir, err)
		}
	}
	var out strings.Builder
	checkErr("runs list", runsCmd(ctx, &out, []string{"list", "--db", db}))
	checkErr("runs show", runsCmd(ctx, &out, []string{"show", "run-1", "--db", db}))
	c, err := parseDev([]string{"--db", db}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = openSource(ctx, c)
	checkErr("dev", err)
	if out.Len() != 0 {
		t.Errorf("the failing commands printed %q", out.String())
	}

	if err := migrateCmd(ctx, &out, []string{"--db", db}); err != nil {
		t.Fatalf("migrate on a missing database: %v", err)
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("migrate did not create %s: %v", db, err)
	}
	out.Reset()
	if err := runsCmd(ctx, &out, []string{"list", "--db", db}); err != nil || !strings.Contains(out.String(), "no runs") {
		t.Errorf("runs list on the migrated database: %v %q, want no runs", err, out.String())
	}
}

// shellWords splits a command line of plain and single-quoted words, as
// shellQuote writes them.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case strings.ContainsRune(`"\$;&|<>*?()`+"`", r):
			t.Fatalf("%q has an unquoted %q", line, r)
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("%q has an unterminated quote", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// TestRunsListPagingHint lists a store holding more runs than --limit and
// follows the "more:" lines as printed, checking they repeat the flags
// given and lead through every matching run once.
func TestRunsListPagingHint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "my runs", "w.db") // a space, to be quoted
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var runs []*flux.Run
	for i := range 5 {
		runs = append(runs, testRun(fmt.Sprintf("shop-%d", i), "shop", base.Add(time.Duration(i)*time.Minute)))
	}
	runs = append(runs, testRun("other-0", "other", base)) // filtered out by --workflow
	failed := testRun("shop-failed", "shop", base)         // filtered out by --status
	failed.Status = flux.StatusFailed
	storeRuns(t, db, append(runs, failed)...)

	args := []string{"list", "--workflow", "shop", "--db", db, "--status", "completed", "--limit", "2"}
	seen := map[string]int{}
	for pages := 1; ; pages++ {
		var out strings.Builder
		if err := runsCmd(ctx, &out, args); err != nil {
			t.Fatalf("runs %q: %v", args, err)
		}
		var hint string
		rows := 0
		for _, l := range strings.Split(out.String(), "\n") {
			if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "shop-") {
				seen[f[0]]++
				rows++
			}
			if s, ok := strings.CutPrefix(l, "more: "); ok {
				hint = s
			}
		}
		if rows > 2 {
			t.Errorf("page %d has %d runs, want at most --limit 2:\n%s", pages, rows, out.String())
		}
		if hint == "" {
			if pages != 3 {
				t.Errorf("the listing ended after %d pages, want 3 of 2, 2 and 1 runs", pages)
			}
			break
		}
		for _, s := range []string{"--db '" + db + "'", "--workflow shop", "--status completed", "--limit 2", "--cursor "} {
			if !strings.Contains(hint, s) {
				t.Errorf("hint %q does not repeat %q", hint, s)
			}
		}
		words := shellWords(t, hint)
		if len(words) < 3 || words[0] != "flux" || words[1] != "runs" {
			t.Fatalf("hint %q is not a flux runs command", hint)
		}
		if pages > 5 {
			t.Fatalf("still paging after %d pages", pages)
		}
		args = words[2:]
	}
	for i := range 5 {
		if id := fmt.Sprintf("shop-%d", i); seen[id] != 1 {
			t.Errorf("%s listed %d times, want once", id, seen[id])
		}
	}
	if len(seen) != 5 {
		t.Errorf("listed %v, want shop-0 to shop-4 only", seen)
	}
}

// TestNextPageCommand checks the hint for a PostgreSQL store: the URL given
// is repeated and quoted, flags not given are left out.
func TestNextPageCommand(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("runs list", flag.ContinueOnError)
	addStoreFlags(fs, "sqlite")
	fs.String("workflow", "", "")
	fs.Bool("json", false, "")
	url := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if _, err := parseArgs(fs, []string{"--postgres", url}); err != nil {
		t.Fatal(err)
	}
	want := "flux runs list --postgres '" + url + "' --cursor abc="
	if got := nextPageCommand(fs, "abc="); got != want {
		t.Errorf("nextPageCommand = %s, want %s", got, want)
	}
}

// TestRunsShowAttempts shows a stored run whose nodes have a failed, an
// interrupted (Interrupted set, Duration unknown) and a successful attempt,
// an interrupted attempt of an older record (marked by the error's prefix
// only) and an attempt in flight.
func TestRunsShowAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	inFlight := at(9 * time.Second)
	run := &flux.Run{
		ID: "run-attempts", Workflow: "shop", Status: flux.StatusRunning, Input: []byte(`{}`), Data: []byte(`{}`),
		CreatedAt: base, UpdatedAt: inFlight,
		Steps: []flux.StepState{
			{Name: "charge", Kind: flux.KindStep, Status: flux.StatusCompleted, StartedAt: base, FinishedAt: at(5 * time.Second),
				Attempts: []flux.Attempt{
					{Number: 1, StartedAt: base, Duration: 100 * time.Millisecond, Error: "gateway timeout"},
					{Number: 2, StartedAt: at(time.Second), Error: "the engine running it stopped", Interrupted: true},
					{Number: 3, StartedAt: at(5 * time.Second), Duration: 5 * time.Millisecond},
				}},
			{Name: "ship", Kind: flux.KindCommit, Status: flux.StatusRunning, StartedAt: at(6 * time.Second), InFlight: inFlight,
				Attempts: []flux.Attempt{
					{Number: 1, StartedAt: at(6 * time.Second), Duration: 20 * time.Millisecond, Error: "interrupted: context canceled"},
				}},
			{Name: "notify", Kind: flux.KindCommit, Status: flux.StatusPending},
		},
	}
	db := filepath.Join(t.TempDir(), "w.db")
	storeRuns(t, db, run)

	var out strings.Builder
	if err := runsCmd(ctx, &out, []string{"show", run.ID, "--db", db}); err != nil {
		t.Fatal(err)
	}
	rows := parseTable(t, out.String())
	if rows["charge"].attempts != 3 || rows["ship"].attempts != 1 || rows["notify"].status != "pending" {
		t.Errorf("step table = %+v, want charge with 3 attempts, ship with 1, notify pending", rows)
	}
	ts := func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05.000") }
	want := []string{
		"charge #1 " + ts(base) + " 100ms failed: gateway timeout",
		"charge #2 " + ts(at(time.Second)) + " unknown interrupted: the engine running it stopped",
		"charge #3 " + ts(at(5*time.Second)) + " 5ms ok",
		"ship #1 " + ts(at(6*time.Second)) + " 20ms interrupted: context canceled",
		"ship #2 " + ts(inFlight) + " - in flight",
	}
	var got []string
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], "#") {
			got = append(got, strings.Join(f, " "))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("attempt lines:\n%s\nwant:\n%s\nwhole output:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out.String())
	}

	out.Reset()
	if err := runsCmd(ctx, &out, []string{"show", "--json", run.ID, "--db", db}); err != nil {
		t.Fatal(err)
	}
	var stored flux.Run
	if err := json.Unmarshal([]byte(out.String()), &stored); err != nil {
		t.Fatalf("runs show --json: %v\n%s", err, out.String())
	}
	if len(stored.Steps) != 3 || len(stored.Steps[0].Attempts) != 3 || !stored.Steps[0].Attempts[1].Interrupted ||
		stored.Steps[0].Attempts[1].Duration != 0 || !stored.Steps[1].InFlight.Equal(inFlight) || stored.Steps[1].Attempts[0].Interrupted {
		t.Errorf("runs show --json = %+v, want the run as stored", stored.Steps)
	}
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a    flux.Attempt
		want string
	}{
		{flux.Attempt{}, "ok"},
		{flux.Attempt{Error: "boom"}, "failed: boom"},
		{flux.Attempt{Error: "boom", Stack: "goroutine 1"}, "failed: boom (panicked; --json shows the stack)"},
		{flux.Attempt{Error: "line one\nline two"}, `failed: "line one\nline two"`},
		{flux.Attempt{Interrupted: true}, "interrupted"},
		{flux.Attempt{Interrupted: true, Error: "interrupted: engine closed"}, "interrupted: engine closed"},
		{flux.Attempt{Error: "interrupted: engine\tclosed"}, `interrupted: "engine\tclosed"`},
	} {
		if got := outcome(tc.a); got != tc.want {
			t.Errorf("outcome(%+v) = %s, want %s", tc.a, got, tc.want)
		}
	}
}
