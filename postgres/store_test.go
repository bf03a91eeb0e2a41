package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestSchemasAreIndependent(t *testing.T) {
	t.Parallel()
	a, b := openStore(t), openStore(t)
	if err := create(t.Context(), a, newRun("x", "w", flux.StatusRunning, created), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), "x"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Errorf("run of schema %s seen in schema %s: %v", a.SchemaName(), b.SchemaName(), err)
	}
}

// TestMigrateConcurrently starts two stores, each with its own pool like two
// processes, on one fresh schema at the same moment: both succeed and each
// migration is applied once.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := dbURL(t)
	schema := freshSchema(t)
	start := make(chan struct{})
	stores := make([]*postgres.Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = postgres.Open(context.Background(), url, postgres.Schema(schema))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("store %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	if err := stores[0].Migrate(t.Context()); err != nil {
		t.Errorf("Migrate again: %v", err)
	}
	var count, maxVersion int
	err := stores[0].Pool().QueryRow(t.Context(),
		"SELECT count(*), max(version) FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&count, &maxVersion)
	if err != nil {
		t.Fatal(err)
	}
	if maxVersion != postgres.Version() || count != postgres.Version() {
		t.Errorf("schema_migrations: %d rows up to version %d, want each of 1..%d once", count, maxVersion, postgres.Version())
	}
	// Every store works on the shared schema.
	for i, s := range stores {
		if err := create(t.Context(), s, newRun(fmt.Sprint("m", i), "w", flux.StatusRunning, created), 0); err != nil {
			t.Errorf("store %d Create: %v", i, err)
		}
	}
}

func TestOpenBadInput(t *testing.T) {
	t.Parallel()
	url := dbURL(t)
	ctx := t.Context()
	cases := []struct {
		name, url, want string
	}{
		{"unreachable", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable", "cannot connect"},
		{"no such database", strings.Replace(url, "/postgres?", "/flux_no_such_db?", 1), `"flux_no_such_db"`},
		{"not a URL", "postgres://host:notaport/db", "invalid database URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := postgres.Open(ctx, c.url)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", c.url)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open(%q) = %v, want an error mentioning %s", c.url, err, c.want)
			}
		})
	}
	if _, err := postgres.New(ctx, nil); err == nil {
		t.Error("New(nil pool) succeeded")
	}
	if _, err := postgres.Open(ctx, url, postgres.Schema("")); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("Open with an empty schema name: %v, want an error about the schema", err)
	}
}

// TestGroupCommitIsolatesRejectedWrite: a write the server rejects (a NUL
// byte in a text column) fails alone; the writes committed with it succeed.
func TestGroupCommitIsolatesRejectedWrite(t *testing.T) {
	t.Parallel()
	s := openStore(t, postgres.Writers(1))
	ctx := t.Context()
	const n = 40
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wf := "w"
		if i == n/2 {
			wf = "bad\x00name"
		}
		wg.Go(func() {
			errs[i] = create(ctx, s, newRun(fmt.Sprintf("i%02d", i), wf, flux.StatusRunning, created), time.Minute)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == n/2 {
			if err == nil {
				t.Errorf("Create with a NUL byte in the workflow name succeeded")
			}
			if _, gerr := s.Get(ctx, fmt.Sprintf("i%02d", i)); !errors.Is(gerr, flux.ErrRunNotFound) {
				t.Errorf("rejected run was stored: %v", gerr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Create %d: %v", i, err)
		}
	}
	batches, writes := postgres.BatchStats(s)
	t.Logf("%d writes in %d commits", writes, batches)
}

// TestAnalyzesGrowingTable: once a store has created enough runs it
// analyzes the table, so that plans cached while it was empty are made anew.
func TestAnalyzesGrowingTable(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := t.Context()
	const n = 600
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := create(ctx, s, newRun(fmt.Sprint("a", i), "w", flux.StatusRunning, created), 0); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Close waits for the writers and the ANALYZE they started.
	s.Close()
	conn, err := pgx.Connect(ctx, dbURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tuples float64
	table := pgx.Identifier{s.SchemaName(), "runs"}.Sanitize()
	if err := conn.QueryRow(ctx, "SELECT reltuples FROM pg_class WHERE oid = $1::regclass", table).Scan(&tuples); err != nil {
		t.Fatal(err)
	}
	if tuples < 512 {
		t.Errorf("runs table not analyzed after %d creates: reltuples %v", n, tuples)
	}
}

// TestNewKeepsCallersPool: a store made by New from the caller's pool
// leaves the pool open on Close, and refuses a schema migrated by a newer
// flux.
func TestNewKeepsCallersPool(t *testing.T) {
	t.Parallel()
	schema := freshSchema(t)
	pool, err := pgxpool.New(t.Context(), dbURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := postgres.New(t.Context(), pool, postgres.Schema(schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := create(t.Context(), s, newRun("k", "w", flux.StatusRunning, created), 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := pool.Ping(t.Context()); err != nil {
		t.Fatalf("the caller's pool was closed with the store: %v", err)
	}
	_, err = pool.Exec(t.Context(), "INSERT INTO "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+" (version, name) VALUES (9999, 'future')")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := postgres.New(t.Context(), pool, postgres.Schema(schema)); err == nil {
		s.Close()
		t.Fatal("New on a schema from a newer flux succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("New on a schema from a newer flux: %v, want an error saying it is newer", err)
	}
}

// TestGroupCommitIsolatesFailures sends many concurrent writes, a third of
// them doomed, through the group commit: each gets its own result.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	t.Parallel()
	s := openStore(t, postgres.Writers(1)) // one writer: the largest batches
	ctx := t.Context()
	const n = 60
	runs := make([]*flux.Run, n)
	for i := range runs {
		runs[i] = newRun(fmt.Sprintf("g%02d", i), "w", flux.StatusRunning, created)
		runs[i].Owner = "me"
		if err := create(ctx, s, runs[i], time.Minute); err != nil {
			t.Fatal(err)
		}
		runs[i].Version = 1
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, r := range runs {
		switch i % 3 {
		case 1:
			r.Version = 99 // stale
		case 2:
			r.Owner = "thief"
		}
		wg.Go(func() { errs[i] = update(ctx, s, r, time.Minute) })
	}
	wg.Wait()
	for i, err := range errs {
		want := []error{nil, flux.ErrConflict, flux.ErrLeaseLost}[i%3]
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("Checkpoint %d: %v, want %v", i, err, want)
		}
		got, err := s.Get(ctx, runs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		wantVersion := int64(1)
		if i%3 == 0 {
			wantVersion = 2
		}
		if got.Version != wantVersion {
			t.Errorf("run %d stored version %d, want %d", i, got.Version, wantVersion)
		}
	}
}

// TestConcurrentCheckpointsOfOneRun: writes to one run that meet in a group
// commit apply in turn, so exactly one of those from the same version wins.
func TestConcurrentCheckpointsOfOneRun(t *testing.T) {
	t.Parallel()
	s := openStore(t, postgres.Writers(1))
	ctx := t.Context()
	run := newRun("one", "w", flux.StatusRunning, created)
	run.Owner = "me"
	if err := create(ctx, s, run, time.Minute); err != nil {
		t.Fatal(err)
	}
	run.Version = 1
	const n = 24
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := run.Clone()
		c.Error = fmt.Sprintf("writer %d", i)
		wg.Go(func() { errs[i] = update(ctx, s, c, time.Minute) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, flux.ErrConflict):
			t.Errorf("writer %d: %v, want ErrConflict", i, err)
		}
	}
	got, err := s.Get(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	if winner < 0 || got.Version != 2 || got.Error != fmt.Sprintf("writer %d", winner) {
		t.Errorf("stored version %d error %q; want version 2 written by the one winner (%d)", got.Version, got.Error, winner)
	}
}

// TestLeaseUsesDatabaseClock: leases are the database's now() + lease, not
// the process clock's.
func TestLeaseUsesDatabaseClock(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	run := newRun("r1", "orders", flux.StatusRunning, created)
	run.Owner = "engine-a"
	before := dbNow(t, s)
	w, err := s.Create(t.Context(), driver.CreateParams{Run: run, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if w.LeaseUntil.Before(before.Add(time.Minute-time.Millisecond)) || w.LeaseUntil.After(dbNow(t, s).Add(time.Minute)) {
		t.Errorf("LeaseUntil = %v, want database now (%v) + 1m", w.LeaseUntil, before)
	}
}

// TestCheckpointBatchesCarryRows: concurrent checkpoints that meet in one
// group commit each write their own nodes, attempts and data, and a
// replacing checkpoint (its own transaction) drops the old node's rows.
func TestCheckpointBatchesCarryRows(t *testing.T) {
	t.Parallel()
	s := openStore(t, postgres.Writers(1))
	ctx := t.Context()
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			run := newRun(fmt.Sprintf("b%02d", i), "w", flux.StatusRunning, created)
			if err := create(ctx, s, run, 0); err != nil {
				t.Error(err)
				return
			}
			data := json.RawMessage(fmt.Sprintf(`{"total":%d}`, i))
			p := driver.Diff([]byte(`{"total":0}`), data)
			_, err := s.Checkpoint(ctx, driver.CheckpointParams{ID: run.ID, Version: 1,
				Header: &driver.Header{Status: flux.StatusCompleted, Nodes: 1, Summary: flux.Summary{Nodes: 1, Done: 1, Attempts: 1}},
				Nodes: []driver.NodeChange{{Index: 0, Name: "a", Kind: flux.KindStep, Status: flux.StatusCompleted,
					Attempts: []flux.Attempt{{Number: 1, StartedAt: created, Error: fmt.Sprint("note ", i)}},
					Data:     &driver.NodeData{Index: 0, Patch: &p}}}})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		got, err := s.Get(ctx, fmt.Sprintf("b%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Data) != fmt.Sprintf(`{"total":%d}`, i) || len(got.Steps[0].Attempts) != 1 ||
			got.Steps[0].Attempts[0].Error != fmt.Sprint("note ", i) || got.Status != flux.StatusCompleted {
			t.Errorf("run %d: %+v", i, got)
		}
	}
	_, err := s.Checkpoint(ctx, driver.CheckpointParams{ID: "b00", Version: 2,
		Header: &driver.Header{Status: flux.StatusRunning, Nodes: 1, Summary: flux.Summary{Nodes: 1}},
		Nodes:  []driver.NodeChange{{Index: 0, Name: "a2", Kind: flux.KindCommit, Status: flux.StatusPending, Replace: true}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "b00")
	if err != nil {
		t.Fatal(err)
	}
	if got.Steps[0].Name != "a2" || len(got.Steps[0].Attempts) != 0 || string(got.Data) != `{"total":0}` || got.Version != 3 {
		t.Errorf("after replacing node a: %+v", got)
	}
}
