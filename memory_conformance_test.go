package flux_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/storagetest"
)

func TestMemoryStorageConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Harness {
		return storagetest.Harness{Store: flux.NewMemoryStorage()}
	})
}

func TestMemoryStorageEngine(t *testing.T) {
	storagetest.RunEngine(t, func(t *testing.T) storagetest.Harness {
		return storagetest.Harness{Store: flux.NewMemoryStorage()}
	})
}

// TestMemoryStorageKeepsTheNewestFinished: with MemoryKeepFinished(2) the
// store forgets the oldest finished runs of each outcome beyond two, and
// not a failed run resumed since it was queued as failed.
func TestMemoryStorageKeepsTheNewestFinished(t *testing.T) {
	ctx := context.Background()
	m := flux.NewMemoryStorage(flux.MemoryKeepFinished(2))
	e, err := flux.NewEngine(flux.Config{Storage: m, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fail := true
	w := flux.New[tIn, tData]("keep").Step("s", func(c *tCtx) error {
		if c.Input.N < 0 && fail {
			return flux.Permanent(errTransient)
		}
		return nil
	})
	execute := func(id string, n int) {
		t.Helper()
		_, err := flux.Execute(ctx, e, w, tIn{N: n}, flux.RunID(id))
		if (n < 0 && fail) != errors.Is(err, errTransient) {
			t.Fatalf("Execute %s: %v", id, err)
		}
	}
	kept := func(when string, want map[string]bool) {
		t.Helper()
		for id, want := range want {
			_, err := m.Get(ctx, id)
			if err != nil && !errors.Is(err, flux.ErrRunNotFound) {
				t.Fatalf("Get %s: %v", id, err)
			}
			if got := err == nil; got != want {
				t.Errorf("%s: %s kept: %v, want %v", when, id, got, want)
			}
		}
	}
	execute("failed-0", -1)
	execute("failed-1", -1)
	// failed-0 completes when resumed: its place in the failed queue is
	// stale, and must not forget it.
	fail = false
	if _, err := flux.Resume(ctx, e, w, "failed-0"); err != nil {
		t.Fatal(err)
	}
	fail = true
	execute("failed-2", -1)
	execute("failed-3", -1)
	kept("after four failures", map[string]bool{"failed-0": true, "failed-1": false, "failed-2": true, "failed-3": true})
	// Completed runs have a queue of their own, which failed-0 is first in.
	for i := range 3 {
		execute(fmt.Sprintf("done-%d", i), i)
	}
	kept("after three completions", map[string]bool{"failed-0": false, "done-0": false, "done-1": true, "done-2": true,
		"failed-2": true, "failed-3": true})
	page, err := m.List(ctx, flux.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 4 {
		t.Errorf("%d runs kept, want 4", len(page.Runs))
	}
}
