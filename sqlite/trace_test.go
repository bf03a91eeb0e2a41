package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/tracefile"
)

type traceIn struct{}

type traceData struct{}

// flaky fails its first attempt.
var flaky = flux.New[traceIn, traceData]("traced").
	Step("first", func(c *flux.Ctx[traceIn, traceData]) error { return nil }).
	Step("flaky", func(c *flux.Ctx[traceIn, traceData]) error {
		if c.Attempt() == 1 {
			return errors.New("try again")
		}
		return nil
	}, flux.Retries(2), flux.NoBackoff())

// TestTraceSink runs a workflow with a retried step through an engine that
// traces into the store, and reads the events back: in order, by run, by
// page, around a corrupt row; pruning the run removes them.
func TestTraceSink(t *testing.T) {
	s, path := open(t)
	e, err := flux.NewEngine(flux.Config{Storage: s, Trace: s.TraceSink()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := flux.Execute(t.Context(), e, flaky, traceIn{})
	if err != nil || res.Status != flux.StatusCompleted {
		t.Fatalf("Execute: %v, %+v", err, res)
	}
	other, err := flux.Execute(t.Context(), e, flaky, traceIn{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FlushTrace(); err != nil {
		t.Fatal(err)
	}

	got, next, err := s.TraceEvents(t.Context(), res.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ     flux.EventType
		step    string
		attempt int
	}{
		{flux.EventWorkflowStart, "", 0},
		{flux.EventStepStart, "first", 1},
		{flux.EventStepComplete, "first", 1},
		{flux.EventStepStart, "flaky", 1},
		{flux.EventStepRetry, "flaky", 1},
		{flux.EventStepStart, "flaky", 2},
		{flux.EventStepComplete, "flaky", 2},
		{flux.EventWorkflowComplete, "", 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Record.Type != string(w.typ) || g.Record.StepName != w.step || g.Record.Attempt != w.attempt ||
			g.RunID != res.ID || g.Record.WorkflowID != res.ID || g.Record.WorkflowName != "traced" {
			t.Errorf("event %d: %s %q attempt %d of run %s, want %s %q attempt %d of run %s",
				i, g.Record.Type, g.Record.StepName, g.Record.Attempt, g.RunID, w.typ, w.step, w.attempt, res.ID)
		}
		if i > 0 && g.Seq <= got[i-1].Seq {
			t.Errorf("event %d: seq %d after %d", i, g.Seq, got[i-1].Seq)
		}
	}
	if next != got[len(got)-1].Seq {
		t.Errorf("next = %d, want %d", next, got[len(got)-1].Seq)
	}

	// All runs, in pages of 3: both runs' events, once each, in order.
	var all []tracefile.Stored
	after := int64(0)
	for {
		page, n, err := s.TraceEvents(t.Context(), "", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("page of %d events, limit 3", len(page))
		}
		if len(page) == 0 {
			if n != after {
				t.Errorf("empty page: next %d, want %d", n, after)
			}
			break
		}
		all = append(all, page...)
		after = n
	}
	if len(all) != 2*len(want) {
		t.Fatalf("paged %d events, want %d", len(all), 2*len(want))
	}
	for i := range all {
		if i > 0 && all[i].Seq <= all[i-1].Seq {
			t.Errorf("paged event %d: seq %d after %d", i, all[i].Seq, all[i-1].Seq)
		}
	}

	// A corrupt row among the good ones.
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := got[3].Seq
	if _, err := db.Exec("UPDATE trace_events SET line = '{\"type\": \"step:start\", trunc' WHERE seq = ?", bad); err != nil {
		t.Fatal(err)
	}
	page, _, err := s.TraceEvents(t.Context(), res.ID, 0, 100)
	var se *tracefile.SeqError
	if !errors.As(err, &se) || se.Seq != bad || se.RunID != res.ID || !errors.Is(err, flux.ErrCorrupt) {
		t.Errorf("TraceEvents with row %d corrupt: error %v", bad, err)
	}
	if len(page) != len(want)-1 {
		t.Errorf("got %d good events around the corrupt one, want %d", len(page), len(want)-1)
	}
	for _, ev := range page {
		if ev.Seq == bad {
			t.Errorf("the corrupt event %d was returned: %+v", bad, ev)
		}
	}

	// Pruning a run removes its trace; the other run's stays.
	n, err := s.Prune(t.Context(), driver.PruneParams{Status: flux.StatusCompleted, Workflow: "traced",
		FinishedBefore: time.Now().Add(time.Hour), Limit: 1})
	if err != nil || n != 1 {
		t.Fatalf("Prune: %d, %v", n, err)
	}
	left, _, err := s.TraceEvents(t.Context(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(want) || left[0].RunID != other.ID {
		t.Errorf("after pruning run %s: %d events left, of run %s", res.ID, len(left), left[0].RunID)
	}
}

// TestTraceFlushedOnClose: Close writes what the sink buffered.
func TestTraceFlushedOnClose(t *testing.T) {
	s, path := open(t)
	sink := s.TraceSink()
	sink.Emit(flux.TraceEvent{Type: flux.EventWorkflowStart, RunID: "r1", Workflow: "w", Index: -1})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sink.Emit(flux.TraceEvent{Type: flux.EventWorkflowStart, RunID: "r2", Workflow: "w", Index: -1}) // dropped
	s2, err := sqliteOpen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, _, err := s2.TraceEvents(t.Context(), "", 0, 0)
	if err != nil || len(got) != 1 || got[0].RunID != "r1" {
		t.Fatalf("after Close: %+v, %v", got, err)
	}
}

var sqliteOpen = func(path string) (interface {
	TraceEvents(ctx context.Context, runID string, afterSeq int64, limit int) ([]tracefile.Stored, int64, error)
	Close() error
}, error) {
	return sqlite.Open(path)
}
