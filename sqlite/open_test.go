package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/sqlite"
)

func TestOpenNotADatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notes.db")
	garbage := bytes.Repeat([]byte("these are someone's notes, not a database\n"), 200)
	if err := os.WriteFile(path, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a text file succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "not a SQLite database") || !strings.Contains(msg, path) {
		t.Fatalf("Open of a text file: error %q does not say that %s is not a SQLite database", msg, path)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, garbage) {
		t.Fatal("Open of a text file changed the file")
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "data", "nested", "workflows.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("Open did not create the database file %s: %v", path, err)
	}
}

func TestOpenBadArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		path string
		opts []sqlite.Option
		want string
	}{
		{"", nil, "empty path"},
		{":memory:", nil, "NewMemoryStorage"},
		{dir, nil, "directory"},
		{filepath.Join(dir, "a.db"), []sqlite.Option{sqlite.Synchronous("fast")}, "FULL, NORMAL"},
		{filepath.Join(dir, "b.db"), []sqlite.Option{sqlite.BusyTimeout(-time.Second)}, "BusyTimeout"},
		{filepath.Join(dir, "c.db"), []sqlite.Option{sqlite.MaxReaders(0)}, "MaxReaders"},
	} {
		s, err := sqlite.Open(c.path, c.opts...)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", c.path)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Fatalf("Open(%q): error %q does not mention %q", c.path, err, c.want)
		}
	}
}

func TestReopenKeepsRunsAndMigratesOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "flux.db")
	ctx := t.Context()
	for i := range 3 {
		s, err := sqlite.Open(path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate of a migrated database: %v", err)
		}
		if i == 0 {
			if err := create(ctx, s, benchRun("kept"), 0); err != nil {
				t.Fatal(err)
			}
		} else if r, err := s.Get(ctx, "kept"); err != nil || r.Steps[2].Name != "charge" {
			t.Fatalf("Get after reopening: %+v, %v", r, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := rawDB(t, path)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != sqlite.Version() {
		t.Fatalf("schema_migrations has %d rows (%v), want one per migration, %d", n, err, sqlite.Version())
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	_, path := open(t)
	if _, err := rawDB(t, path).Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer Flux succeeded")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a database from a newer Flux: %v", err)
	}
}

// create creates run r with an owner's lease.
func create(ctx context.Context, s flux.Storage, r *flux.Run, lease time.Duration) error {
	_, err := s.Create(ctx, driver.CreateParams{Run: r, Lease: lease})
	return err
}

// rawDB opens path as an application other than Flux would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestNew(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "flux.db")
	db := rawDB(t, path)
	s, err := sqlite.New(db, sqlite.Synchronous("NORMAL"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r := benchRun("r1")
	if err := create(ctx, s, r, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Checkpoint(ctx, driver.CheckpointParams{ID: "r1", Owner: r.Owner, Version: 1, Lease: driver.ReleaseLease,
		Header: &driver.Header{Status: flux.StatusCompleted, Nodes: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := db.QueryRow("SELECT status FROM runs WHERE id = 'r1'").Scan(&status); err != nil || status != "completed" {
		t.Fatalf("after Close the caller's db reads status %q (%v), want completed", status, err)
	}

	one := rawDB(t, filepath.Join(t.TempDir(), "one.db"))
	one.SetMaxOpenConns(1)
	if s, err := sqlite.New(one); err == nil {
		s.Close()
		t.Fatal("New on a db of one connection succeeded; its reads would wait for ever")
	}
	if _, err := sqlite.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

func TestCancelledContextWritesNothing(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := create(ctx, s, benchRun("r1"), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context: %v", err)
	}
	if _, err := s.Get(t.Context(), "r1"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Fatalf("Get after a cancelled Create: %v, want ErrRunNotFound", err)
	}
}

// TestTwoStoresOneFile is two processes on one database: each has its own
// writer, SQLite serialises them, and compare-and-set holds across them.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	a, path := open(t)
	b, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	const n = 20
	for i := range n {
		if err := create(ctx, a, benchRun(string(rune('a'+i))), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Both claim every run at once: each run gets exactly one owner.
	won := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, st := range []struct {
		s     *sqlite.Store
		owner string
	}{{a, "engine-a"}, {b, "engine-b"}} {
		for i := range n {
			wg.Go(func() {
				id := string(rune('a' + i))
				r, err := st.s.Claim(ctx, driver.ClaimParams{ID: id, Owner: st.owner, Lease: time.Hour})
				if errors.Is(err, flux.ErrRunActive) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, ok := won[id]; ok {
					t.Errorf("run %s claimed by %s and %s", id, prev, r.Owner)
				}
				won[id] = r.Owner
			})
		}
	}
	wg.Wait()
	if len(won) != n {
		t.Fatalf("%d of %d runs were claimed", len(won), n)
	}
	for id, owner := range won {
		r, err := b.Get(ctx, id)
		if err != nil || r.Owner != owner || r.Version != 2 {
			t.Fatalf("run %s: stored %+v (%v), want owner %s at version 2", id, r, err, owner)
		}
	}
}
