package storagetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// corruptSetup creates three runs and corrupts the middle one.
func corruptSetup(t *testing.T, h Harness) (good []*flux.Run, bad string) {
	t.Helper()
	if h.Corrupt == nil {
		t.Skip("storagetest: this store cannot corrupt a stored run (Harness.Corrupt is nil)")
	}
	for i, id := range []string{"run-a", "run-b-corrupt", "run-c"} {
		r := smallRun(id, "w", flux.StatusCompleted, listBase.Add(-10*time.Second*time.Duration(i)))
		mustCreate(t, h.Store, r, 0)
		if i != 1 {
			good = append(good, r)
		}
	}
	h.Corrupt(t, "run-b-corrupt")
	return good, "run-b-corrupt"
}

var corruptTests = []testCase{
	{"Get", func(t *testing.T, h Harness) {
		good, bad := corruptSetup(t, h)
		r, err := h.Store.Get(ctx(t), bad)
		wantErr(t, "Get of a corrupt run", err, flux.ErrCorrupt)
		if !strings.Contains(err.Error(), bad) {
			t.Fatalf("ErrCorrupt error %q does not name the run %s", err, bad)
		}
		if r != nil {
			t.Fatalf("Get of a corrupt run returned a run: %+v", r)
		}
		for _, g := range good {
			wantSameRun(t, "Get of a run beside a corrupt one", g, mustGet(t, h.Store, g.ID))
		}
	}},
	{"List", func(t *testing.T, h Harness) {
		good, bad := corruptSetup(t, h)
		p, err := h.Store.List(ctx(t), flux.Filter{})
		if err != nil {
			t.Fatalf("List of a store with a corrupt run: %v", err)
		}
		wantIDs(t, "List of a store with a corrupt run", ids(good), ids(p.Runs))
		for i, g := range good {
			wantSameRun(t, "run from List beside a corrupt one", g, p.Runs[i])
		}
		if len(p.Corrupt) != 1 {
			t.Fatalf("List reported %d corrupt runs (%v), want 1", len(p.Corrupt), p.Corrupt)
		}
		if err := p.Corrupt[0]; !errors.Is(err, flux.ErrCorrupt) || !strings.Contains(err.Error(), bad) {
			t.Fatalf("List reported the corrupt run as %q, want an error wrapping %q that names %s", err, flux.ErrCorrupt, bad)
		}
	}},
}
