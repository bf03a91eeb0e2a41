package tracefile_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

// tee keeps every event it passes on to the file sink.
type tee struct {
	mu     sync.Mutex
	events []flux.TraceEvent
	next   flux.TraceSink
}

func (t *tee) Emit(ev flux.TraceEvent) {
	t.mu.Lock()
	t.events = append(t.events, ev)
	t.mu.Unlock()
	t.next.Emit(ev)
}

type order struct {
	ID string `json:"id"`
}

type state struct {
	Paid  bool `json:"paid"`
	Tries int  `json:"tries"`
}

// A real engine's runs — a retried step, a skipped one, a commit, a failed
// run, a panic and a cancelled run — written by the sink and read back give
// every event, with the values the engine reported.
func TestEngineEventsRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".flux", "trace.ndjson")
	sink, err := tracefile.New(path, tracefile.Reset(true))
	if err != nil {
		t.Fatal(err)
	}
	rec := &tee{next: sink}
	e, err := flux.NewEngine(flux.Config{Trace: rec, DefaultStepOptions: []flux.StepOption{flux.NoBackoff()},
		Logger: slogDiscard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errGateway := errors.New("payment gateway timeout")

	var charges int
	ok := flux.New[order, state]("order-fulfillment").
		Step("charge", func(c *flux.Ctx[order, state]) error {
			charges++
			if charges < 3 {
				return errGateway
			}
			c.Data.Paid = true
			return nil
		}, flux.Retries(3)).
		Step("refund", func(c *flux.Ctx[order, state]) error { return nil },
			flux.When(func(c *flux.Ctx[order, state]) bool { return !c.Data.Paid })).
		Commit("reserve", func(c *flux.Ctx[order, state]) error { return nil })
	okRes, err := flux.Execute(ctx, e, ok, order{ID: "ORD-1"})
	if err != nil {
		t.Fatal(err)
	}

	failing := flux.New[order, state]("image-processing").
		Step("validate", func(c *flux.Ctx[order, state]) error {
			return flux.Permanent(errors.New("File too large"))
		})
	failRes, err := flux.Execute(ctx, e, failing, order{ID: "big.png"})
	if err == nil {
		t.Fatal("the failing workflow completed")
	}

	panicking := flux.New[order, state]("panics").
		Step("explode", func(c *flux.Ctx[order, state]) error { panic("kaboom") }, flux.Retries(0))
	panicRes, _ := flux.Execute(ctx, e, panicking, order{})

	started := make(chan string)
	blocking := flux.New[order, state]("long").
		Step("wait", func(c *flux.Ctx[order, state]) error {
			started <- c.RunID()
			<-c.Done()
			return c.Err()
		})
	var wg sync.WaitGroup
	var cancelRes *flux.Result[state]
	wg.Go(func() { cancelRes, _ = flux.Execute(ctx, e, blocking, order{}) })
	if err := e.Cancel(ctx, <-started); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if sink.Dropped() != 0 {
		t.Fatalf("dropped %d events", sink.Dropped())
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := tracefile.NewReader(f)
	var got []tracefile.Record
	for {
		line, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("line %d: %v", r.Line(), err)
		}
		got = append(got, line)
	}
	if len(got) != len(rec.events) {
		t.Fatalf("file has %d records, the engine emitted %d events", len(got), len(rec.events))
	}
	types := map[string]bool{}
	for i, ev := range rec.events {
		want := tracefile.FromEvent(ev)
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("record %d:\n got %s\nwant %s", i, got[i].AppendJSON(nil), want.AppendJSON(nil))
		}
		types[got[i].Type] = true
	}
	for _, typ := range []flux.EventType{flux.EventWorkflowStart, flux.EventWorkflowComplete, flux.EventWorkflowError,
		flux.EventWorkflowCancelled, flux.EventStepStart, flux.EventStepComplete, flux.EventStepSkipped,
		flux.EventStepRetry, flux.EventStepError} {
		if !types[string(typ)] {
			t.Errorf("no %s event in the trace", typ)
		}
	}

	// The records say what the engine's results say.
	byRun := func(id string) []tracefile.Record {
		var out []tracefile.Record
		for _, g := range got {
			if g.WorkflowID == id {
				out = append(out, g)
			}
			if g.Timestamp < okRes.StartedAt.UnixMilli() {
				t.Errorf("timestamp %d before the first run started", g.Timestamp)
			}
		}
		return out
	}
	var kinds []string
	for _, g := range byRun(okRes.ID) {
		kinds = append(kinds, g.Type+" "+g.StepName)
		if g.WorkflowName != "order-fulfillment" {
			t.Errorf("workflowName %q", g.WorkflowName)
		}
		switch {
		case g.Type == "workflow:start":
			var in order
			if json.Unmarshal(g.Input, &in) != nil || in.ID != "ORD-1" || g.StepIndex != nil || g.Retries != nil {
				t.Errorf("workflow:start: %s", g.AppendJSON(nil))
			}
		case g.Type == "workflow:complete":
			var data state
			if json.Unmarshal(g.Data, &data) != nil || !data.Paid || g.Status != "completed" || g.Duration == nil {
				t.Errorf("workflow:complete: %s", g.AppendJSON(nil))
			}
		case g.Type == "step:retry":
			if g.Error != errGateway.Error() || *g.Retries != g.Attempt || *g.MaxRetries != 3 || *g.StepIndex != 0 || g.Duration == nil {
				t.Errorf("step:retry: %s", g.AppendJSON(nil))
			}
		case g.Type == "step:complete" && g.StepName == "charge":
			if g.Attempt != 3 || *g.Retries != 2 || g.Commit {
				t.Errorf("charge complete: %s", g.AppendJSON(nil))
			}
			if n := len(okRes.Steps[0].Attempts); n != g.Attempt {
				t.Errorf("the run's result has %d attempts, the trace %d", n, g.Attempt)
			}
		case g.Type == "step:skipped":
			if g.StepName != "refund" || g.Status != "skipped" || *g.StepIndex != 1 {
				t.Errorf("step:skipped: %s", g.AppendJSON(nil))
			}
		case g.StepName == "reserve":
			if !g.Commit || *g.StepIndex != 2 {
				t.Errorf("commit: %s", g.AppendJSON(nil))
			}
		case g.Type == "step:start":
			if g.Duration != nil {
				t.Errorf("step:start has a duration: %s", g.AppendJSON(nil))
			}
		}
	}
	wantKinds := []string{"workflow:start ", "step:start charge", "step:retry charge", "step:start charge",
		"step:retry charge", "step:start charge", "step:complete charge", "step:skipped refund",
		"step:start reserve", "step:complete reserve", "workflow:complete "}
	if !slices.Equal(kinds, wantKinds) {
		t.Errorf("events of the successful run:\n got %q\nwant %q", kinds, wantKinds)
	}

	fr := byRun(failRes.ID)
	if last := fr[len(fr)-1]; last.Type != "workflow:error" || last.Status != "failed" || last.Error == "" {
		t.Errorf("failed run ends with %s", last.AppendJSON(nil))
	}
	if se := fr[len(fr)-2]; se.Type != "step:error" || se.Error != "File too large" || *se.Retries != 0 {
		t.Errorf("failed step: %s", se.AppendJSON(nil))
	}
	for _, g := range byRun(panicRes.ID) {
		if g.Type == "step:error" && (g.Stack == "" || g.Error != "panic: kaboom") {
			t.Errorf("panicking step has no stack: %s", g.AppendJSON(nil))
		}
	}
	cr := byRun(cancelRes.ID)
	if last := cr[len(cr)-1]; last.Type != "workflow:cancelled" || last.Status != "cancelled" {
		t.Errorf("cancelled run ends with %s", last.AppendJSON(nil))
	}
}
