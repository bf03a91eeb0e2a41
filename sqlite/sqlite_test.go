package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/storagetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// open opens a store in a new file of t's temporary directory.
func open(t testing.TB, opts ...sqlite.Option) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flux.db")
	s, err := sqlite.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func TestEngineConformance(t *testing.T) {
	storagetest.RunEngine(t, func(t *testing.T) storagetest.Harness {
		s, path := open(t)
		return storagetest.Harness{Store: s, Corrupt: corrupter(path)}
	})
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Harness {
		s, path := open(t)
		return storagetest.Harness{Store: s, Corrupt: corrupter(path)}
	})
}

// corrupter returns a Harness.Corrupt for the database at path: it
// truncates a run's stored input through another connection, as a damaged
// disk or a careless person would; the store must notice on its next read.
func corrupter(path string) func(t *testing.T, id string) {
	return func(t *testing.T, id string) {
		t.Helper()
		db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		res, err := db.Exec("UPDATE runs SET input = CAST('{\"steps\": [truncated' AS BLOB) WHERE id = ?", id)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("corrupting run %s changed %d rows", id, n)
		}
	}
}
