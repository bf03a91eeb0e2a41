package trigger_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/trigger"
)

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

type shipped struct{ Done bool }

// flaky is a store whose Create fails while down is set: storage that is
// unreachable for a while.
type flaky struct {
	flux.Storage
	down atomic.Bool
}

var errDown = errors.New("storage unreachable")

func (f *flaky) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	if f.down.Load() {
		return driver.Written{}, errDown
	}
	return f.Storage.Create(ctx, p)
}

func setup(t *testing.T, workers int, fail bool) (*flux.Engine, *flux.Workflow[order, shipped], *flaky, *atomic.Int64) {
	t.Helper()
	store := &flaky{Storage: flux.NewMemoryStorage()}
	e, err := flux.NewEngine(flux.Config{Storage: store, Workers: workers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	var commits atomic.Int64
	w := flux.New[order, shipped]("ship").
		Validate(func(o order) error {
			if o.Total < 0 {
				return errors.New("negative total")
			}
			return nil
		}).
		Commit("ship", func(c *flux.Ctx[order, shipped]) error {
			commits.Add(1)
			if fail {
				return errors.New("carrier down")
			}
			c.Data.Done = true
			return nil
		}, flux.Retries(0))
	return e, w, store, &commits
}

func TestHandOffStoresOneRunPerMessage(t *testing.T) {
	ctx := context.Background()
	e, w, _, commits := setup(t, 4, false)
	tr, err := trigger.New(e, w, trigger.Options[order]{})
	if err != nil {
		t.Fatal(err)
	}
	m := trigger.Message{Value: []byte(`{"id":"o-1","total":5}`), ID: "orders/0/17", Position: "orders[0]@17"}
	for i := range 3 { // a delivery and two redeliveries
		out := tr.Handle(ctx, m)
		if out.Action != trigger.Ack || out.RunID != "orders/0/17" || out.Err != nil {
			t.Fatalf("delivery %d: %+v, want ack of run orders/0/17", i, out)
		}
	}
	res, err := flux.Wait(ctx, e, w, "orders/0/17")
	if err != nil || !res.Data.Done {
		t.Fatalf("Wait: %+v, %v", res, err)
	}
	page, err := e.Storage().List(ctx, flux.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 1 || commits.Load() != 1 {
		t.Fatalf("%d runs and %d commits for one message delivered three times, want 1 and 1", len(page.Runs), commits.Load())
	}
}

func TestRunIDFromBusinessKey(t *testing.T) {
	ctx := context.Background()
	e, w, _, _ := setup(t, 1, false)
	tr, err := trigger.New(e, w, trigger.Options[order]{RunID: func(_ trigger.Message, o order) string { return "order-" + o.ID }})
	if err != nil {
		t.Fatal(err)
	}
	// The producer sent the same event twice: two positions, one order.
	a := tr.Handle(ctx, trigger.Message{Value: []byte(`{"id":"7","total":1}`), ID: "p/0/1"})
	b := tr.Handle(ctx, trigger.Message{Value: []byte(`{"id":"7","total":1}`), ID: "p/0/2"})
	if a.RunID != "order-7" || b.RunID != "order-7" || a.Action != trigger.Ack || b.Action != trigger.Ack {
		t.Fatalf("outcomes %+v and %+v, want both acks of run order-7", a, b)
	}
	page, err := e.Storage().List(ctx, flux.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(page.Runs))
	}
}

func TestPoisonIsRejected(t *testing.T) {
	ctx := context.Background()
	e, w, _, _ := setup(t, 1, false)
	other := flux.New[order, shipped]("other").Step("x", func(*flux.Ctx[order, shipped]) error { return nil })
	if _, err := flux.Start(ctx, e, other, order{ID: "x"}, flux.RunID("taken")); err != nil {
		t.Fatal(err)
	}
	tr, err := trigger.New(e, w, trigger.Options[order]{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		m    trigger.Message
		want error
	}{
		{"not JSON", trigger.Message{Value: []byte(`{"id":`), ID: "a"}, nil},
		{"empty", trigger.Message{ID: "b"}, nil},
		{"refused by Validate", trigger.Message{Value: []byte(`{"id":"1","total":-1}`), ID: "c"}, flux.ErrInvalidInput},
		{"ID of another workflow's run", trigger.Message{Value: []byte(`{"id":"1"}`), ID: "taken"}, flux.ErrWrongWorkflow},
		{"no ID", trigger.Message{Value: []byte(`{"id":"1"}`)}, nil},
	}
	for _, c := range cases {
		out := tr.Handle(ctx, c.m)
		if out.Action != trigger.Reject || out.Err == nil {
			t.Errorf("%s: %+v, want a reject with its reason", c.name, out)
		}
		if c.want != nil && !errors.Is(out.Err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, out.Err, c.want)
		}
	}
	page, err := e.Storage().List(ctx, flux.Filter{Workflow: "ship"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 0 {
		t.Fatalf("poison stored %d runs", len(page.Runs))
	}
}

func TestStorageDownIsRetriedNotLost(t *testing.T) {
	ctx := context.Background()
	e, w, store, _ := setup(t, 1, false)
	tr, err := trigger.New(e, w, trigger.Options[order]{MinBackoff: 1, MaxBackoff: 4})
	if err != nil {
		t.Fatal(err)
	}
	m := trigger.Message{Value: []byte(`{"id":"9","total":1}`), ID: "q/9"}
	store.down.Store(true)
	out := tr.Handle(ctx, m)
	if out.Action != trigger.Retry || !errors.Is(out.Err, errDown) {
		t.Fatalf("with storage down: %+v, want retry wrapping %v", out, errDown)
	}
	if _, err := e.Get(ctx, "q/9"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Fatalf("a run was stored while storage was down: %v", err)
	}
	// Process holds the message and tries again until storage is back.
	var tries atomic.Int64
	hooked, err := trigger.New(e, w, trigger.Options[order]{MinBackoff: 1, MaxBackoff: 4,
		RunID: func(m trigger.Message, _ order) string {
			if tries.Add(1) == 3 {
				store.down.Store(false)
			}
			return m.ID
		}})
	if err != nil {
		t.Fatal(err)
	}
	out, err = hooked.Process(ctx, m)
	if err != nil || out.Action != trigger.Ack || tries.Load() != 3 {
		t.Fatalf("Process: %+v, %v after %d tries; want ack on the third", out, err, tries.Load())
	}
	if _, err := flux.Wait(ctx, e, w, "q/9"); err != nil {
		t.Fatal(err)
	}
	// A cancelled Process acknowledges nothing.
	store.down.Store(true)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if out, err := tr.Process(cctx, trigger.Message{Value: []byte(`{"id":"10"}`), ID: "q/10"}); err == nil || out.Action != trigger.Retry {
		t.Fatalf("cancelled Process: %+v, %v; want retry and the context's error", out, err)
	}
}

func TestInlineExecutesBeforeAck(t *testing.T) {
	ctx := context.Background()
	e, w, _, commits := setup(t, -1, true)
	tr, err := trigger.New(e, w, trigger.Options[order]{Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	m := trigger.Message{Value: []byte(`{"id":"3","total":1}`), ID: "orders/0/3"}
	out := tr.Handle(ctx, m)
	// The run failed, but it is stored: Flux retries it, not the broker.
	var se *flux.StepError
	if out.Action != trigger.Ack || !errors.As(out.Err, &se) || se.Step != "ship" {
		t.Fatalf("inline failing run: %+v, want ack carrying the StepError", out)
	}
	run, err := e.Get(ctx, "orders/0/3")
	if err != nil || run.Status != flux.StatusFailed {
		t.Fatalf("stored run: %v, %v; want failed", run, err)
	}
	again := tr.Handle(ctx, m)
	if again.Action != trigger.Ack || commits.Load() != 1 {
		t.Fatalf("redelivery: %+v with %d commits; want ack and no second commit", again, commits.Load())
	}
}

func TestBackoff(t *testing.T) {
	e, w, _, _ := setup(t, 1, false)
	tr, err := trigger.New(e, w, trigger.Options[order]{MinBackoff: 10, MaxBackoff: 50})
	if err != nil {
		t.Fatal(err)
	}
	want := []int{10, 20, 40, 50, 50}
	for i, d := range want {
		if got := tr.Backoff(i + 1); int(got) != d {
			t.Errorf("Backoff(%d) = %d, want %d", i+1, got, d)
		}
	}
	if _, err := trigger.New[order, shipped](nil, w, trigger.Options[order]{}); err == nil {
		t.Error("New with a nil engine: no error")
	}
}
