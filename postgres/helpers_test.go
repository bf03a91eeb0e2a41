package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dbURL returns FLUX_POSTGRES_URL, or skips the test when it is unset.
func dbURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("FLUX_POSTGRES_URL")
	if u == "" {
		t.Skip("FLUX_POSTGRES_URL is unset: set it to a PostgreSQL server, such as " +
			"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, to run the PostgreSQL tests")
	}
	return u
}

// freshSchema returns the name of a schema no one uses yet, dropped with
// everything in it when the test ends.
func freshSchema(t testing.TB) string {
	t.Helper()
	url := dbURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "flux_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sqlExec(ctx, url, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping test schema %s: %v", name, err)
		}
	})
	return name
}

// sqlExec runs one statement on a connection of its own.
func sqlExec(ctx context.Context, url, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// openStore opens a store on a fresh schema, closed when the test ends.
func openStore(t testing.TB, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	schema := freshSchema(t)
	s, err := postgres.Open(context.Background(), dbURL(t)+"&pool_max_conns=8", append([]postgres.Option{postgres.Schema(schema)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// corrupter returns a function that makes the stored input of a run
// undecodable.
func corrupter(s *postgres.Store) func(t *testing.T, id string) {
	return func(t *testing.T, id string) {
		t.Helper()
		tag, err := s.Pool().Exec(t.Context(),
			"UPDATE "+pgx.Identifier{s.SchemaName(), "runs"}.Sanitize()+" SET input = '{broken'::bytea WHERE id = $1", id)
		if err != nil {
			t.Fatalf("corrupting run %s: %v", id, err)
		}
		if tag.RowsAffected() != 1 {
			t.Fatalf("corrupting run %s: no such row", id)
		}
	}
}

// expireLease moves a run's lease into the past on the database clock.
func expireLease(t *testing.T, s *postgres.Store, id string) {
	t.Helper()
	_, err := s.Pool().Exec(t.Context(),
		"UPDATE "+pgx.Identifier{s.SchemaName(), "runs"}.Sanitize()+" SET lease_until = 1 WHERE id = $1", id)
	if err != nil {
		t.Fatalf("expiring lease of %s: %v", id, err)
	}
}

// create creates run r with an owner's lease.
func create(ctx context.Context, s flux.Storage, r *flux.Run, lease time.Duration) error {
	_, err := s.Create(ctx, driver.CreateParams{Run: r, Lease: lease})
	return err
}

// update checkpoints r's header and nodes at r.Version.
func update(ctx context.Context, s flux.Storage, r *flux.Run, lease time.Duration) error {
	p := driver.CheckpointParams{ID: r.ID, Owner: r.Owner, Version: r.Version, Lease: lease,
		Header: &driver.Header{Status: r.Status, Error: r.Error, Fingerprint: r.Fingerprint, UpdatedAt: r.UpdatedAt, Nodes: len(r.Steps),
			Summary: driver.Summarize(r.Steps)}}
	for i, st := range r.Steps {
		p.Nodes = append(p.Nodes, driver.NodeChange{Index: i, Name: st.Name, Kind: st.Kind, Status: st.Status})
	}
	_, err := s.Checkpoint(ctx, p)
	return err
}

// dbNow is the database clock.
func dbNow(t *testing.T, s *postgres.Store) time.Time {
	t.Helper()
	var now time.Time
	if err := s.Pool().QueryRow(t.Context(), "SELECT now()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

var created = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

func newRun(id, workflow string, status flux.Status, at time.Time) *flux.Run {
	return &flux.Run{
		ID: id, Workflow: workflow, Fingerprint: "fp1", Status: status,
		Input: json.RawMessage(`{"n":1}`), Data: json.RawMessage(`{"total":0}`),
		Steps:     []flux.StepState{{Name: "a", Kind: flux.KindStep, Status: flux.StatusPending}},
		CreatedAt: at, UpdatedAt: at,
	}
}
