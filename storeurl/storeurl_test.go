package storeurl_test

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

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/storeurl"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type in struct {
	N int `json:"n"`
}

type data struct {
	Double int `json:"double"`
}

var double = flux.New[in, data]("double").
	Step("double", func(c *flux.Ctx[in, data]) error {
		c.Data.Double = 2 * c.Input.N
		return nil
	})

// open opens url and closes the store at the end of the test.
func open(t *testing.T, url string) flux.Storage {
	t.Helper()
	s, err := storeurl.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// roundTrip executes a run on s and reads it back through s.
func roundTrip(t *testing.T, s flux.Storage) {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Storage: s, Logger: slog.New(slog.DiscardHandler), Workers: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := flux.Execute(t.Context(), e, double, in{N: 21}, flux.RunID("rt-1"))
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if res.Status != flux.StatusCompleted || res.Data.Double != 42 {
		t.Fatalf("result %s %+v, want completed {Double:42}", res.Status, res.Data)
	}
	run, err := s.Get(t.Context(), "rt-1")
	if err != nil {
		t.Fatalf("Get from the store: %v", err)
	}
	if run.Status != flux.StatusCompleted || string(run.Data) != `{"double":42}` {
		t.Fatalf("stored run %s %s, want completed {\"double\":42}", run.Status, run.Data)
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	s := open(t, "memory:")
	if _, ok := s.(*flux.MemoryStorage); !ok {
		t.Fatalf("memory: opened %T, want *flux.MemoryStorage", s)
	}
	roundTrip(t, s)
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rel, err := filepath.Rel(mustGetwd(t), filepath.Join(dir, "rel", "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, file string }{
		{"sqlite:" + filepath.Join(dir, "a", "workflows.db"), filepath.Join(dir, "a", "workflows.db")},
		{"sqlite://" + filepath.Join(dir, "b.db"), filepath.Join(dir, "b.db")},
		{"file://" + filepath.Join(dir, "c.db") + "?synchronous=NORMAL&busy_timeout=2s&max_readers=2", filepath.Join(dir, "c.db")},
		{"sqlite:" + filepath.Join(dir, "with%20space.db"), filepath.Join(dir, "with space.db")},
		{"SQLite:" + rel, filepath.Join(dir, "rel", "w.db")},
	} {
		t.Run(tc.url, func(t *testing.T) {
			s := open(t, tc.url)
			if _, ok := s.(*sqlite.Store); !ok {
				t.Fatalf("opened %T, want *sqlite.Store", s)
			}
			roundTrip(t, s)
			if _, err := os.Stat(tc.file); err != nil {
				t.Fatalf("the database file: %v", err)
			}
		})
	}
}

// TestSQLiteReopen shows the point of a file: a second open (a second cold
// start) finds the run of the first.
func TestSQLiteReopen(t *testing.T) {
	t.Parallel()
	url := "sqlite:" + filepath.Join(t.TempDir(), "workflows.db")
	s, err := storeurl.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	run, err := open(t, url).Get(t.Context(), "rt-1")
	if err != nil || run.Status != flux.StatusCompleted {
		t.Fatalf("after reopening: %v, %v; want the completed run", run, err)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	base := os.Getenv("FLUX_POSTGRES_URL")
	if base == "" {
		t.Skip("FLUX_POSTGRES_URL is not set; set it (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) to test postgres:// URLs")
	}
	schema := "storeurl_" + randomHex(t)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	// pool_max_conns is pgx's; flux_schema and flux_writers are Flux's and
	// must not reach the server, which would refuse them as unknown
	// parameters.
	url := base + sep + "pool_max_conns=2&default_query_exec_mode=exec&flux_writers=1&flux_schema=" + schema
	if strings.HasPrefix(url, "postgres://") {
		url = "postgresql://" + strings.TrimPrefix(url, "postgres://")
	}
	s := open(t, url)
	ps, ok := s.(*postgres.Store)
	if !ok {
		t.Fatalf("opened %T, want *postgres.Store", s)
	}
	t.Cleanup(func() {
		// Runs after Close of the store (cleanups run last first), so it
		// uses a pool of its own.
		drop, err := storeurl.Open(context.Background(), base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer drop.Close()
		if _, err := drop.(*postgres.Store).Pool().Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	if got := ps.Pool().Config().MaxConns; got != 2 {
		t.Errorf("pool MaxConns = %d, want 2 from pool_max_conns", got)
	}
	if got := ps.Pool().Config().ConnConfig.DefaultQueryExecMode; got != pgx.QueryExecModeExec {
		t.Errorf("query exec mode = %v, want exec from default_query_exec_mode", got)
	}
	if got := ps.SchemaName(); got != schema {
		t.Errorf("schema = %q, want %q from flux_schema", got, schema)
	}
	roundTrip(t, s)
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want []string // in the error
		not  string   // not in the error
	}{
		{"", []string{"empty", "memory:", "sqlite:", "postgres://"}, ""},
		{"   ", []string{"empty"}, ""},
		{"workflows.db", []string{"no scheme", "sqlite:PATH"}, ""},
		{"mysql://root:hunter2@db/app", []string{`unknown scheme "mysql"`, "memory:", "sqlite:", "file:", "postgres://", "postgresql://"}, "hunter2"},
		{"memory:foo", []string{"memory: takes nothing"}, ""},
		{"sqlite:", []string{"needs a file path"}, ""},
		{"sqlite://", []string{"needs a file path"}, ""},
		{"sqlite::memory:", []string{"use memory:"}, ""},
		{"sqlite:x.db?journal=wal", []string{`unknown setting "journal"`, "synchronous"}, ""},
		{"sqlite:x.db?busy_timeout=10", []string{"busy_timeout", "duration"}, ""},
		{"sqlite:x.db?max_readers=many", []string{"max_readers", "number"}, ""},
		{"sqlite:bad%zz.db", []string{"percent-encoding"}, ""},
		{"postgres://u@127.0.0.1:1/db?flux_writers=two", []string{"flux_writers", "number"}, ""},
		{"postgres://u@127.0.0.1:1/db?a=%zz", []string{"query of the postgres URL"}, ""},
	} {
		s, err := storeurl.Open(t.Context(), tc.url)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", tc.url)
			continue
		}
		if !errors.Is(err, storeurl.ErrInvalidURL) {
			t.Errorf("Open(%q) = %v, want an error wrapping ErrInvalidURL", tc.url, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Open(%q) = %q, want it to mention %q", tc.url, err, w)
			}
		}
		if tc.not != "" && strings.Contains(err.Error(), tc.not) {
			t.Errorf("Open(%q) = %q, which shows %q", tc.url, err, tc.not)
		}
	}
}

// TestStoreErrors checks that the stores' own errors come through.
func TestStoreErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := storeurl.Open(t.Context(), "sqlite:"+dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("sqlite: on a directory: %v, want sqlite's error naming the directory", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := storeurl.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"); err == nil || !strings.Contains(err.Error(), "postgres:") {
		t.Errorf("postgres:// to a closed port: %v, want postgres's connection error", err)
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
