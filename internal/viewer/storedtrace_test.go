package viewer

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/tracefile"
)

// TestStorageSourceStoredTrace: a store that keeps trace events (its
// TraceSink) shows them as a run's raw events.
func TestStorageSourceStoredTrace(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "flux.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ids := runSamples(t, newEngine(t, flux.Config{Storage: store, Trace: store.TraceSink()}))
	if err := store.FlushTrace(); err != nil {
		t.Fatal(err)
	}
	d, err := NewStorageSource(store, "sqlite", StorageOptions{}).Run(context.Background(), ids["order"])
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) < 2 || d.Events[0].Type != string(flux.EventWorkflowStart) ||
		d.Events[len(d.Events)-1].Type != string(flux.EventWorkflowComplete) {
		t.Fatalf("stored events of run %s: %+v", ids["order"], d.Events)
	}
	for i, e := range d.Events {
		rec, err := tracefile.ParseLine([]byte(e.Raw))
		if err != nil || rec.WorkflowID != ids["order"] || rec.Type != e.Type {
			t.Errorf("event %d: %q: %+v, %v", i, e.Raw, rec, err)
		}
		if i > 0 && e.Offset <= d.Events[i-1].Offset {
			t.Errorf("event %d: seq %d after %d", i, e.Offset, d.Events[i-1].Offset)
		}
	}
}
