package flux

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestChangesListWhatEachWriteChanges checks the runner's list of changes
// against what each of its writes actually changed: every node that differs
// from the run's previous write is in the list, and so is the header if it
// differs. A store that writes only what changed will rely on it.
func TestChangesListWhatEachWriteChanges(t *testing.T) {
	type write struct {
		run *Run
		ch  changes
	}
	var mu sync.Mutex
	writes := map[string][]write{}
	e, err := NewEngine(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.checkpointHook = func(run *Run, ch *changes) {
		mu.Lock()
		defer mu.Unlock()
		c := *ch
		c.nodes = slices.Clone(ch.nodes)
		writes[run.ID] = append(writes[run.ID], write{run.Clone(), c})
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
	if _, err := Execute(ctx, e, w, in{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writes) != 2 || len(writes["explicit"]) < 6 {
		t.Fatalf("recorded writes of %d runs, %d of the first; want 2 runs and many writes", len(writes), len(writes["explicit"]))
	}
	for id, ws := range writes {
		if !ws[0].ch.every {
			t.Errorf("run %s: the first write does not record the whole run", id)
		}
		for k := 1; k < len(ws); k++ {
			prev, cur, ch := ws[k-1].run, ws[k].run, ws[k].ch
			if ch.every {
				continue
			}
			where := fmt.Sprintf("run %s write %d", id, k)
			if header(prev) != header(cur) && !ch.header {
				t.Errorf("%s: the header changed (%s → %s) but is not listed", where, header(prev), header(cur))
			}
			for i := range cur.Steps {
				if !sameNode(prev.Steps[i], cur.Steps[i]) && !slices.Contains(ch.nodes, i) {
					t.Errorf("%s: node %s changed but is not listed (%v):\n%+v\n%+v", where, cur.Steps[i].Name, ch.nodes, prev.Steps[i], cur.Steps[i])
				}
			}
		}
	}
}

// sameNode compares node records as stored: as JSON.
func sameNode(a, b StepState) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// header is a run's fields other than its nodes that a write changes.
func header(r *Run) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s|%s|%s|%s|%s", r.Status, r.Error, r.Data, r.FinishedAt, r.Fingerprint)
	return b.String()
}
