package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

func openT(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "flux.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testRun(id string) *flux.Run {
	now := time.Now()
	return &flux.Run{ID: id, Workflow: "w", Status: flux.StatusRunning, CreatedAt: now, UpdatedAt: now,
		Input: []byte("{}"), Data: []byte("{}")}
}

func TestSynchronousPragma(t *testing.T) {
	t.Parallel()
	for opt, want := range map[string]int{"": 2, "full": 2, "NORMAL": 1, "Extra": 3, "OFF": 0} {
		var opts []Option
		if opt != "" {
			opts = append(opts, Synchronous(opt))
		}
		s := openT(t, opts...)
		var got int
		err := s.submit(t.Context(), func(t *txn) error {
			return t.conn.QueryRowContext(bg, "PRAGMA synchronous").Scan(&got)
		})
		if err != nil || got != want {
			t.Fatalf("Synchronous(%q): the writer has synchronous=%d (%v), want %d", opt, got, err, want)
		}
	}
}

// enqueue puts ops in the writer's queue at once, so that they form one
// batch, and returns their requests.
func enqueue(s *Store, ops ...func(t *txn) error) []*request {
	var reqs []*request
	s.mu.Lock()
	for _, op := range ops {
		r := &request{op: op, done: make(chan struct{})}
		reqs = append(reqs, r)
		s.queue = append(s.queue, r)
	}
	s.mu.Unlock()
	s.signal()
	for _, r := range reqs {
		<-r.done
	}
	return reqs
}

// TestBatchFailuresStayPrivate checks that one write of a batch failing, by
// compare-and-set or by a database error, fails that write alone.
func TestBatchFailuresStayPrivate(t *testing.T) {
	t.Parallel()
	s := openT(t)
	ctx := t.Context()
	stale := testRun("stale")
	if _, err := s.Create(ctx, driver.CreateParams{Run: stale}); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, driver.ReleaseParams{ID: "stale", Owner: "x"}); !errors.Is(err, flux.ErrLeaseLost) {
		t.Fatal(err)
	}
	if _, err := s.Checkpoint(ctx, driver.CheckpointParams{ID: "stale", Version: 1, Header: &driver.Header{Status: flux.StatusRunning}}); err != nil {
		t.Fatal(err)
	}
	stale.Version = 1
	insert := func(id string) func(t *txn) error {
		return func(t *txn) error {
			h := sqlstore.HeaderOf(testRun(id))
			_, err := t.insertRun.ExecContext(bg, headerArgs(&h)...)
			return err
		}
	}
	boom := errors.New("boom")
	reqs := enqueue(s,
		insert("a"),
		func(t *txn) error { return t.whyNot("stale", stale.Version, "") }, // a lost compare-and-set
		insert("b"),
		func(t *txn) error {
			_, err := t.conn.ExecContext(bg, "INSERT INTO no_such_table VALUES (1)")
			return err
		},
		insert("c"),
		func(t *txn) error { return boom },
		insert("d"),
	)
	for i, want := range []error{nil, flux.ErrConflict, nil, nil, nil, boom, nil} {
		if err := reqs[i].err; i != 3 && ((want == nil) != (err == nil) || !errors.Is(err, want)) {
			t.Errorf("write %d of the batch: error %v, want %v", i, err, want)
		}
	}
	if reqs[3].err == nil {
		t.Error("the write into a missing table succeeded")
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("run %s, written in a batch with failures: %v", id, err)
		}
	}
}

// TestAbandonedWriteNeverRuns checks that a caller who gives up before the
// writer took its write is right to think it did not happen.
func TestAbandonedWriteNeverRuns(t *testing.T) {
	t.Parallel()
	s := openT(t)
	started, release := make(chan struct{}), make(chan struct{})
	blocked := make(chan error)
	go func() {
		blocked <- s.submit(context.Background(), func(*txn) error { close(started); <-release; return nil })
	}()
	<-started // the writer is busy
	inner, cancel := context.WithCancel(t.Context())
	ctx := &watchedCtx{Context: inner, waiting: make(chan struct{})}
	created := make(chan error)
	go func() {
		_, err := s.Create(ctx, driver.CreateParams{Run: testRun("r1")})
		created <- err
	}()
	<-ctx.waiting // the Create is queued behind the busy writer
	cancel()
	if err := <-created; !errors.Is(err, context.Canceled) {
		t.Fatalf("Create abandoned while queued: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), "r1"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Fatalf("Get of the abandoned Create's run: %v, want ErrRunNotFound", err)
	}
}

// watchedCtx tells when someone starts waiting for it to be done.
type watchedCtx struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func (c *watchedCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}
