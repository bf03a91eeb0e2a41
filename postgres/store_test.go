package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestCreateGetRoundTrip(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	run := newRun("r1", "orders", flux.StatusRunning, created)
	run.Owner = "engine-a"
	run.Steps[0].Attempts = []flux.Attempt{{Number: 1, StartedAt: created, Duration: time.Millisecond, Error: "boom"}}
	before := dbNow(t, s)
	if err := s.Create(t.Context(), run, time.Minute); err != nil {
		t.Fatal(err)
	}
	if run.Version != 1 {
		t.Errorf("Version after Create = %d, want 1", run.Version)
	}
	// The lease is the database's now() + lease, not the process clock's.
	if run.LeaseUntil.Before(before.Add(time.Minute)) || run.LeaseUntil.After(dbNow(t, s).Add(time.Minute)) {
		t.Errorf("LeaseUntil = %v, want database now (%v) + 1m", run.LeaseUntil, before)
	}
	got, err := s.Get(t.Context(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.Owner != "engine-a" || !got.LeaseUntil.Equal(run.LeaseUntil) {
		t.Errorf("Get: version %d owner %q lease %v; want 1, engine-a, %v", got.Version, got.Owner, got.LeaseUntil, run.LeaseUntil)
	}
	if !got.CreatedAt.Equal(created) || got.Workflow != "orders" || got.Status != flux.StatusRunning ||
		string(got.Data) != `{"total":0}` || len(got.Steps) != 1 || got.Steps[0].Attempts[0].Error != "boom" {
		t.Errorf("Get returned %+v, want the run as created", got)
	}
}

func TestCreateDuplicateKeepsFirst(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	if err := s.Create(t.Context(), newRun("dup", "w1", flux.StatusRunning, created), 0); err != nil {
		t.Fatal(err)
	}
	err := s.Create(t.Context(), newRun("dup", "w2", flux.StatusPending, created), 0)
	if !errors.Is(err, flux.ErrRunExists) || !strings.Contains(err.Error(), "dup") {
		t.Fatalf("second Create: %v, want ErrRunExists naming the run", err)
	}
	got, err := s.Get(t.Context(), "dup")
	if err != nil || got.Workflow != "w1" {
		t.Fatalf("Get after duplicate: %v, %v; want the first run", got, err)
	}
}

func TestUpdateCompareAndSet(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := t.Context()
	run := newRun("cas", "w", flux.StatusRunning, created)
	run.Owner = "a"
	if err := s.Create(ctx, run, time.Minute); err != nil {
		t.Fatal(err)
	}
	stale := run.Clone()
	run.Data = json.RawMessage(`{"total":1}`)
	if err := s.Update(ctx, run, 0); err != nil {
		t.Fatal(err)
	}
	if run.Version != 2 {
		t.Errorf("Version = %d, want 2", run.Version)
	}
	if err := s.Update(ctx, stale, 0); !errors.Is(err, flux.ErrConflict) {
		t.Errorf("stale Update: %v, want ErrConflict", err)
	}
	other := run.Clone()
	other.Owner = "b"
	if err := s.Update(ctx, other, 0); !errors.Is(err, flux.ErrLeaseLost) {
		t.Errorf("Update by another owner: %v, want ErrLeaseLost", err)
	}
	missing := newRun("nope", "w", flux.StatusRunning, created)
	if err := s.Update(ctx, missing, 0); !errors.Is(err, flux.ErrRunNotFound) {
		t.Errorf("Update of unknown run: %v, want ErrRunNotFound", err)
	}
	if err := s.Update(ctx, run, flux.ReleaseLease); err != nil {
		t.Fatal(err)
	}
	if run.Owner != "" || !run.LeaseUntil.IsZero() || run.Version != 3 {
		t.Errorf("after release: owner %q lease %v version %d; want \"\", zero, 3", run.Owner, run.LeaseUntil, run.Version)
	}
	got, err := s.Get(ctx, "cas")
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != "" || got.Version != 3 || string(got.Data) != `{"total":1}` {
		t.Errorf("stored after release: owner %q version %d data %s", got.Owner, got.Version, got.Data)
	}
	// A released run accepts any owner's write.
	other = got.Clone()
	other.Owner = "b"
	if err := s.Update(ctx, other, time.Minute); err != nil {
		t.Errorf("Update of a released run by a new owner: %v", err)
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
		if err := s.Create(ctx, runs[i], time.Minute); err != nil {
			t.Fatal(err)
		}
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
		wg.Go(func() { errs[i] = s.Update(ctx, r, time.Minute) })
	}
	wg.Wait()
	for i, err := range errs {
		want := []error{nil, flux.ErrConflict, flux.ErrLeaseLost}[i%3]
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("Update %d: %v, want %v", i, err, want)
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

func TestConcurrentCreatesOfOneID(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Create(t.Context(), newRun("same", fmt.Sprint(i), flux.StatusRunning, created), 0) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, flux.ErrRunExists):
			t.Errorf("Create: %v, want nil or ErrRunExists", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d creates of one ID succeeded, want 1", ok)
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := t.Context()
	run := newRun("c", "w", flux.StatusRunning, created)
	run.Owner = "a"
	if err := s.Create(ctx, run, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, flux.ClaimParams{ID: "c", Owner: "b", Lease: time.Minute}); !errors.Is(err, flux.ErrRunActive) {
		t.Fatalf("Claim of a live lease: %v, want ErrRunActive", err)
	}
	if _, err := s.Claim(ctx, flux.ClaimParams{ID: "zz", Owner: "b", Lease: time.Minute}); !errors.Is(err, flux.ErrRunNotFound) {
		t.Fatalf("Claim of unknown run: %v, want ErrRunNotFound", err)
	}
	again, err := s.Claim(ctx, flux.ClaimParams{ID: "c", Owner: "a", Lease: time.Minute})
	if err != nil || again.Version != 2 {
		t.Fatalf("Claim by the holder: %v, version %v; want version 2", err, again)
	}
	expireLease(t, s, "c")
	got, err := s.Claim(ctx, flux.ClaimParams{ID: "c", Owner: "b", Lease: time.Minute})
	if err != nil {
		t.Fatalf("Claim of an expired lease: %v", err)
	}
	if got.Owner != "b" || got.Version != 3 || !got.LeaseUntil.After(dbNow(t, s)) {
		t.Errorf("claimed run: owner %q version %d lease %v", got.Owner, got.Version, got.LeaseUntil)
	}
	// The old owner's late write is refused.
	run.Version = 3
	if err := s.Update(ctx, run, 0); !errors.Is(err, flux.ErrLeaseLost) {
		t.Errorf("zombie Update: %v, want ErrLeaseLost", err)
	}
}

func TestClaimExpired(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := t.Context()
	mk := func(id, wf string, st flux.Status, owner string, i int) {
		r := newRun(id, wf, st, created.Add(time.Duration(i)*time.Second))
		r.Owner = owner
		if err := s.Create(ctx, r, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	mk("expired1", "w", flux.StatusRunning, "dead", 1)
	mk("expired2", "w", flux.StatusPending, "dead", 2)
	mk("released", "w", flux.StatusRunning, "", 3)
	mk("live", "w", flux.StatusRunning, "alive", 4)
	mk("done", "w", flux.StatusCompleted, "dead", 5)
	mk("otherwf", "x", flux.StatusRunning, "dead", 6)
	mk("corrupt", "w", flux.StatusRunning, "dead", 0)
	for _, id := range []string{"expired1", "expired2", "done", "otherwf", "corrupt"} {
		expireLease(t, s, id)
	}
	corrupter(s)(t, "corrupt")

	got, err := s.ClaimExpired(ctx, flux.ClaimExpiredParams{Owner: "new", Workflows: []string{"w"}, Lease: time.Minute, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
		if r.Owner != "new" || r.Version != 2 || r.LeaseUntil.IsZero() {
			t.Errorf("claimed %s: owner %q version %d lease %v", r.ID, r.Owner, r.Version, r.LeaseUntil)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"expired1", "expired2"}) {
		t.Errorf("first ClaimExpired (limit 2, oldest first, corrupt skipped) = %v, want [expired1 expired2]", ids)
	}
	got, err = s.ClaimExpired(ctx, flux.ClaimExpiredParams{Owner: "new", Workflows: []string{"w"}, Lease: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "released" {
		t.Errorf("second ClaimExpired = %v, want [released]", got)
	}
	c, err := s.Get(ctx, "live")
	if err != nil || c.Owner != "alive" {
		t.Errorf("live run: %v %v, want untouched", c, err)
	}
}

func TestExtend(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := t.Context()
	for _, id := range []string{"mine1", "mine2", "theirs"} {
		r := newRun(id, "w", flux.StatusRunning, created)
		r.Owner = "me"
		if id == "theirs" {
			r.Owner = "them"
		}
		if err := s.Create(ctx, r, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	lost, err := s.Extend(ctx, flux.ExtendParams{Owner: "me", IDs: []string{"mine1", "theirs", "gone", "mine2"}, Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lost, []string{"theirs", "gone"}) {
		t.Errorf("lost = %v, want [theirs gone]", lost)
	}
	r, err := s.Get(ctx, "mine2")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || r.LeaseUntil.Before(dbNow(t, s).Add(50*time.Minute)) {
		t.Errorf("extended run: version %d lease %v, want version 1 and about an hour from now", r.Version, r.LeaseUntil)
	}
}

func TestListFiltersPagesAndCorrupt(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := t.Context()
	const n = 25
	for i := range n {
		st := flux.StatusRunning
		if i%2 == 0 {
			st = flux.StatusCompleted
		}
		// Nanoseconds apart: order must follow CreatedAt exactly.
		if err := s.Create(ctx, newRun(fmt.Sprintf("l%02d", i), "w", st, created.Add(time.Duration(i))), 0); err != nil {
			t.Fatal(err)
		}
	}
	corrupter(s)(t, "l10")
	var all []string
	var corrupt []error
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := s.List(ctx, flux.Filter{Limit: 4, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Runs) > 4 {
			t.Fatalf("page of %d runs, limit 4", len(p.Runs))
		}
		for _, r := range p.Runs {
			all = append(all, r.ID)
		}
		corrupt = append(corrupt, p.Corrupt...)
		if cursor = p.Next; cursor == "" || pages > n {
			break
		}
	}
	var want []string
	for i := n - 1; i >= 0; i-- {
		if i != 10 {
			want = append(want, fmt.Sprintf("l%02d", i))
		}
	}
	if !slices.Equal(all, want) {
		t.Errorf("paged List = %v, want %v", all, want)
	}
	if len(corrupt) != 1 || !errors.Is(corrupt[0], flux.ErrCorrupt) || !strings.Contains(corrupt[0].Error(), "l10") {
		t.Errorf("Corrupt = %v, want one ErrCorrupt naming l10", corrupt)
	}
	p, err := s.List(ctx, flux.Filter{Status: []flux.Status{flux.StatusRunning}, Since: created.Add(5), Until: created.Add(20)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.Runs {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, []string{"l19", "l17", "l15", "l13", "l11", "l09", "l07", "l05"}) || p.Next != "" {
		t.Errorf("filtered List = %v next %q", got, p.Next)
	}
	// A status flux does not define matches nothing, alone or with others.
	for _, st := range [][]flux.Status{{"no-such"}, {"no-such", flux.StatusRunning}} {
		p, err := s.List(ctx, flux.Filter{Status: st, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if len(st) == 2 {
			want = 12
		}
		if len(p.Runs) != want {
			t.Errorf("List(status %v) = %d runs, want %d", st, len(p.Runs), want)
		}
	}
	if _, err := s.Get(ctx, "l10"); !errors.Is(err, flux.ErrCorrupt) || !strings.Contains(err.Error(), "l10") {
		t.Errorf("Get of corrupt run: %v, want ErrCorrupt naming l10", err)
	}
	if _, err := s.Claim(ctx, flux.ClaimParams{ID: "l10", Owner: "x", Lease: time.Minute}); !errors.Is(err, flux.ErrCorrupt) {
		t.Errorf("Claim of corrupt run: %v, want ErrCorrupt", err)
	}
	if _, err := s.List(ctx, flux.Filter{Cursor: "not a cursor"}); err == nil {
		t.Error("List with a bad cursor: no error")
	}
}

func TestSchemasAreIndependent(t *testing.T) {
	t.Parallel()
	a, b := openStore(t), openStore(t)
	if err := a.Create(t.Context(), newRun("x", "w", flux.StatusRunning, created), 0); err != nil {
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
		if err := s.Create(t.Context(), newRun(fmt.Sprint("m", i), "w", flux.StatusRunning, created), 0); err != nil {
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

func TestClosedStoreRefusesWrites(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	s.Close()
	s.Close() // twice is fine
	err := s.Update(t.Context(), newRun("x", "w", flux.StatusRunning, created), 0)
	if !errors.Is(err, flux.ErrClosed) {
		t.Errorf("Update after Close: %v, want ErrClosed", err)
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
			errs[i] = s.Create(ctx, newRun(fmt.Sprintf("i%02d", i), wf, flux.StatusRunning, created), time.Minute)
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
				if err := s.Create(ctx, newRun(fmt.Sprint("a", i), "w", flux.StatusRunning, created), 0); err != nil {
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
	if err := s.Create(t.Context(), newRun("k", "w", flux.StatusRunning, created), 0); err != nil {
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

// TestConcurrentUpdatesOfOneRun: writes to one run that meet in a group
// commit apply in turn, so exactly one of those from the same version wins.
func TestConcurrentUpdatesOfOneRun(t *testing.T) {
	t.Parallel()
	s := openStore(t, postgres.Writers(1))
	ctx := t.Context()
	run := newRun("one", "w", flux.StatusRunning, created)
	run.Owner = "me"
	if err := s.Create(ctx, run, time.Minute); err != nil {
		t.Fatal(err)
	}
	const n = 24
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := run.Clone()
		c.Data = json.RawMessage(fmt.Sprintf(`{"writer":%d}`, i))
		wg.Go(func() { errs[i] = s.Update(ctx, c, time.Minute) })
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
	if winner < 0 || got.Version != 2 || string(got.Data) != fmt.Sprintf(`{"writer":%d}`, winner) {
		t.Errorf("stored version %d data %s; want version 2 written by the one winner (%d)", got.Version, got.Data, winner)
	}
}
