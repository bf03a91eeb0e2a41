package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
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
		if id := driver.CorruptRunID(err); id != bad {
			t.Fatalf("ErrCorrupt error %q names run %q, want a *driver.CorruptError for %s", err, id, bad)
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
			wantSameRun(t, "run from List beside a corrupt one", header(g), p.Runs[i])
		}
		if len(p.Corrupt) != 1 {
			t.Fatalf("List reported %d corrupt runs (%v), want 1", len(p.Corrupt), p.Corrupt)
		}
		if err := p.Corrupt[0]; !errors.Is(err, flux.ErrCorrupt) || driver.CorruptRunID(err) != bad {
			t.Fatalf("List reported the corrupt run as %q, want an error wrapping %q that names %s", err, flux.ErrCorrupt, bad)
		}
	}},
	{"ClaimExpired", func(t *testing.T, h Harness) {
		// Recovery of a corrupt run among many good ones: the good ones are
		// claimed, the corrupt one reported by ID and left alone.
		if h.Corrupt == nil {
			t.Skip("storagetest: this store cannot corrupt a stored run (Harness.Corrupt is nil)")
		}
		var good []string
		for i := range 60 {
			id := fmt.Sprintf("r%02d", i)
			mustCreate(t, h.Store, smallRun(id, "w", flux.StatusRunning, listBase.Add(time.Duration(i)*time.Second)), 0)
			if i != 17 {
				good = append(good, id)
			}
		}
		h.Corrupt(t, "r17")
		var claimed []string
		var corrupt []error
		for range 10 {
			c, err := h.Store.ClaimExpired(ctx(t), driver.ClaimExpiredParams{Owner: "engine-a", Workflows: []string{"w"}, Lease: hour, Limit: 25})
			if err != nil {
				t.Fatalf("ClaimExpired beside a corrupt run: %v", err)
			}
			claimed = append(claimed, ids(c.Runs)...)
			corrupt = append(corrupt, c.Corrupt...)
			if len(c.Runs) == 0 {
				break
			}
		}
		wantSameSet(t, "runs claimed beside a corrupt one", good, claimed)
		if len(corrupt) == 0 {
			t.Fatal("ClaimExpired did not report the corrupt run")
		}
		for _, err := range corrupt {
			if !errors.Is(err, flux.ErrCorrupt) || driver.CorruptRunID(err) != "r17" {
				t.Fatalf("ClaimExpired reported %v, want an error wrapping ErrCorrupt naming r17", err)
			}
		}
		if r, err := h.Store.Claim(ctx(t), driver.ClaimParams{ID: "r17", Owner: "engine-b", Lease: hour}); err == nil {
			t.Fatalf("Claim of the corrupt run succeeded: %+v", r)
		}
	}},
}
