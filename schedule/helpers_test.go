package schedule_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/schedule"
	"github.com/jackc/pgx/v5"
)

var quiet = slog.New(slog.DiscardHandler)

// Report is the test workflow's input.
type Report struct {
	To string `json:"to"`
}

// Sent is the test workflow's data.
type Sent struct {
	Sent bool `json:"sent"`
}

// reportFlow returns a workflow named name that does nothing much.
func reportFlow(name string) *flux.Workflow[Report, Sent] {
	return flux.New[Report, Sent](name).
		Commit("send", func(c *flux.Ctx[Report, Sent]) error { c.Data.Sent = true; return nil })
}

// memStore returns a new memory store.
func memStore(testing.TB) flux.Storage { return flux.NewMemoryStorage() }

// pgStore opens a PostgreSQL store on a fresh schema, dropped when the
// test ends, or skips the test when FLUX_POSTGRES_URL is unset.
func pgStore(t testing.TB) flux.Storage {
	t.Helper()
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
			t.Errorf("dropping test schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping test schema %s: %v", schema, err)
		}
	})
	s, err := postgres.Open(t.Context(), url, postgres.Schema(schema))
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// newScheduler returns an engine that only stores runs (Workers -1) on
// store and a scheduler on it, with the clock c.
func newScheduler(t testing.TB, store flux.Storage, c *clock, opts ...func(*schedule.Options)) (*flux.Engine, *schedule.Scheduler) {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Storage: store, Workers: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	o := schedule.Options{Logger: quiet, Now: c.Now}
	for _, f := range opts {
		f(&o)
	}
	s, err := schedule.New(e, o)
	if err != nil {
		t.Fatal(err)
	}
	return e, s
}

// runIDs returns the IDs of the stored runs of workflow, sorted.
func runIDs(t testing.TB, store flux.Storage, workflow string) []string {
	t.Helper()
	var ids []string
	f := flux.Filter{Workflow: workflow, Limit: 1000}
	for {
		page, err := store.List(t.Context(), f)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, r := range page.Runs {
			ids = append(ids, r.ID)
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	slices.Sort(ids)
	return ids
}

// tickIDs returns the run IDs of schedule name's ticks, sorted.
func tickIDs(name string, ticks []time.Time) []string {
	ids := make([]string, len(ticks))
	for i, t := range ticks {
		ids[i] = schedule.RunID(name, t)
	}
	slices.Sort(ids)
	return ids
}

// sameIDs fails the test unless got and want (sorted) are equal, naming
// the first difference.
func sameIDs(t testing.TB, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := 0; i < max(len(got), len(want)); i++ {
		g, w := "(none)", "(none)"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("%d runs, want %d: first difference at %d: %s, want %s", len(got), len(want), i, g, w)
		}
	}
}
