package flux

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/flux-go/flux/driver"
)

// shadow is a memory store that, after every write, compares what it holds
// with what the engine held when it wrote: if a checkpoint left out a
// change, the two differ.
type shadow struct {
	*MemoryStorage
	t      *testing.T
	mu     sync.Mutex
	want   map[string]*Run
	writes int
}

func (s *shadow) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	w, err := s.MemoryStorage.Create(ctx, p)
	if err == nil {
		s.compare(p.Run.ID)
	}
	return w, err
}

func (s *shadow) Checkpoint(ctx context.Context, p driver.CheckpointParams) (driver.Written, error) {
	w, err := s.MemoryStorage.Checkpoint(ctx, p)
	if err == nil {
		s.compare(p.ID)
	}
	return w, err
}

func (s *shadow) compare(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	want := s.want[id]
	got, err := s.MemoryStorage.Get(context.Background(), id)
	if err != nil {
		s.t.Errorf("write %d of run %s: Get: %v", s.writes, id, err)
		return
	}
	for _, d := range diffRuns(want, got) {
		s.t.Errorf("write %d of run %s: the store has %s", s.writes, id, d)
	}
}

// diffRuns lists what a stored run has that differs from the engine's.
func diffRuns(want, got *Run) []string {
	var d []string
	if got.Status != want.Status || got.Error != want.Error || got.Summary != want.Summary ||
		!got.FinishedAt.Equal(want.FinishedAt) || got.Fingerprint != want.Fingerprint {
		d = append(d, fmt.Sprintf("header %s %q %+v %v, the engine %s %q %+v %v", got.Status, got.Error, got.Summary, got.FinishedAt,
			want.Status, want.Error, want.Summary, want.FinishedAt))
	}
	if !bytes.Equal(got.Data, want.Data) {
		d = append(d, fmt.Sprintf("data %s, the engine %s", got.Data, want.Data))
	}
	if len(got.Steps) != len(want.Steps) {
		return append(d, fmt.Sprintf("%d nodes, the engine %d", len(got.Steps), len(want.Steps)))
	}
	for i := range want.Steps {
		g, _ := json.Marshal(got.Steps[i])
		w, _ := json.Marshal(want.Steps[i])
		if !bytes.Equal(g, w) {
			d = append(d, fmt.Sprintf("node %d %s, the engine %s", i, g, w))
		}
	}
	return d
}

// TestCheckpointsWriteEveryChange runs workflows through retries, skips, a
// commit, a failure, Resume and RetryStep, on a store that compares itself
// with the engine after each write: each checkpoint, which writes only what
// the runner's list of changes names, must leave the store holding the
// run exactly as the engine has it.
func TestCheckpointsWriteEveryChange(t *testing.T) {
	s := &shadow{MemoryStorage: NewMemoryStorage(), t: t, want: map[string]*Run{}}
	e, err := NewEngine(Config{Storage: s})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.checkpointHook = func(run *Run, _ *changes) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.want[run.ID] = run.Clone()
	}
	type in struct{ N int }
	type data struct{ Trail []string }
	var fail bool
	mark := func(c *Ctx[in, data]) error { c.Data.Trail = append(c.Data.Trail, c.Step()); return nil }
	w := New[in, data]("changes").
		Step("a", mark).
		Step("flaky", func(c *Ctx[in, data]) error {
			if c.Attempt() == 1 {
				return errors.New("first try fails")
			}
			return mark(c)
		}, NoBackoff()).
		Step("skipped", mark, When(func(c *Ctx[in, data]) bool { return false })).
		Commit("c", mark).
		Step("maybe", func(c *Ctx[in, data]) error {
			if fail {
				return Permanent(errors.New("broken"))
			}
			return mark(c)
		}).
		Step("last", mark)
	ctx := context.Background()
	fail = true
	res, _ := Execute(ctx, e, w, in{}, RunID("explicit"))
	fail = false
	if _, err := Resume(ctx, e, w, res.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := RetryStep(ctx, e, w, res.ID, "maybe"); err != nil {
		t.Fatal(err)
	}
	if _, err := RetryStep(ctx, e, w, res.ID, "a", Force()); err != nil {
		t.Fatal(err)
	}
	if _, err := Execute(ctx, e, w, in{}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writes < 15 {
		t.Fatalf("%d writes compared, want the many of five executions", s.writes)
	}
}
