package viewer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/tracefile"
)

// Waiting runs, signals and compensations, run by a real engine. The
// engines have no workers: a run goes on only when the test says so.

type approvalData struct {
	Approved bool   `json:"approved"`
	By       string `json:"by,omitempty"`
	Signed   bool   `json:"signed"`
}

// approvalFlow waits for a review (signal approve), sleeps not at all, and
// waits two days for a sign-off (signal sign).
var approvalFlow = flux.New[string, approvalData]("approval").
	Step("prepare", func(c *flux.Ctx[string, approvalData]) error { return nil }).
	WaitSignal("review", "approve", 72*time.Hour, func(c *flux.Ctx[string, approvalData], r flux.Received) error {
		c.Data.Approved = !r.TimedOut
		return r.Decode(&c.Data)
	}).
	Sleep("cool-off", 0).
	WaitSignal("sign-off", "sign", 48*time.Hour, func(c *flux.Ctx[string, approvalData], r flux.Received) error {
		c.Data.Signed = !r.TimedOut
		return nil
	})

// bigComment is a signal payload larger than the run page receives.
var bigComment = map[string]string{"text": strings.Repeat("é", maxSignalPayload)}

// waitingRun runs approvalFlow to its sign-off: its review consumed signal
// approve; signal comment waits in its inbox, consumed by no node.
func waitingRun(t testing.TB, e *flux.Engine, id string) *flux.Run {
	t.Helper()
	ctx := context.Background()
	res, err := flux.Execute(ctx, e, approvalFlow, "expense-7", flux.RunID(id))
	if !errors.Is(err, flux.ErrWaiting) || res.Status != flux.StatusWaiting {
		t.Fatalf("Execute = %v, %v; want waiting at review", res.Status, err)
	}
	if err := e.Signal(ctx, id, "approve", map[string]string{"by": "ana"}, flux.SignalKey("click-1")); err != nil {
		t.Fatal(err)
	}
	if err := e.Signal(ctx, id, "comment", bigComment); err != nil {
		t.Fatal(err)
	}
	if _, err := flux.Resume(ctx, e, approvalFlow, id); !errors.Is(err, flux.ErrWaiting) {
		t.Fatalf("Resume = %v; want waiting at sign-off", err)
	}
	run, err := e.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if wi, ok := flux.Waiting(run); !ok || wi.Node != "sign-off" {
		t.Fatalf("the run waits at %+v, %v; want sign-off", wi, ok)
	}
	return run
}

var napFlow = flux.New[string, struct{}]("nap").
	Step("tired", func(c *flux.Ctx[string, struct{}]) error { return nil }).
	Sleep("nap", 2*time.Hour)

type paidData struct {
	Paid bool `json:"paid"`
}

// paymentFlow waits, with no timeout, for event order.paid whose key is
// the order's ID.
var paymentFlow = flux.New[string, paidData]("payment").
	WaitEvent("paid", "order.paid", func(c *flux.Ctx[string, paidData]) string { return c.Input }, 0,
		func(c *flux.Ctx[string, paidData], r flux.Received) error {
			c.Data.Paid = !r.TimedOut
			return nil
		})

// tripFlow books a flight and a hotel, each with an undo, then fails for
// good to book a car unless carOK. undoHotel replaces the hotel's undo when
// not nil.
func tripFlow(carOK bool, undoHotel flux.Handler[string, struct{}]) *flux.Workflow[string, struct{}] {
	ok := func(*flux.Ctx[string, struct{}]) error { return nil }
	if undoHotel == nil {
		undoHotel = ok
	}
	return flux.New[string, struct{}]("trip").
		Commit("flight", ok, flux.Undo(ok)).
		Commit("hotel", ok, flux.Undo(undoHotel), flux.Retries(0)).
		Commit("car", func(*flux.Ctx[string, struct{}]) error {
			if carOK {
				return nil
			}
			return flux.Permanent(errors.New("no car available"))
		})
}

func getRun(t *testing.T, ts *httptest.Server, id string) RunDetail {
	t.Helper()
	var d RunDetail
	res, err := ts.Client().Get(ts.URL + "/api/run?id=" + url.QueryEscape(id))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /api/run?id=%s: %d", id, res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func nodeAt(t *testing.T, d *RunDetail, i int) Node {
	t.Helper()
	if i >= len(d.Nodes) {
		t.Fatalf("run %s has %d nodes, no node %d", d.ID, len(d.Nodes), i)
	}
	return d.Nodes[i]
}

// TestStorageWaitingRunAPI: a waiting run's page tells what it waits
// for, until when, and its signals, over memory and SQLite storage.
func TestStorageWaitingRunAPI(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		testWaitingRunAPI(t, flux.NewMemoryStorage())
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		store, err := sqlite.Open(filepath.Join(t.TempDir(), "runs.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		testWaitingRunAPI(t, store)
	})
}

func testWaitingRunAPI(t *testing.T, store flux.Storage) {
	ctx := context.Background()
	e := newEngine(t, flux.Config{Storage: store, Workers: -1})
	run := waitingRun(t, e, "approval-1")
	if _, err := flux.Execute(ctx, e, napFlow, "x", flux.RunID("nap-1")); !errors.Is(err, flux.ErrWaiting) {
		t.Fatalf("nap: %v", err)
	}
	if _, err := flux.Execute(ctx, e, paymentFlow, "ORD-7", flux.RunID("pay-1")); !errors.Is(err, flux.ErrWaiting) {
		t.Fatalf("payment: %v", err)
	}
	if _, err := flux.Execute(ctx, e, orderFlow, orderIn{OrderID: "O-1"}, flux.RunID("done-1")); err != nil {
		t.Fatal(err)
	}
	ts := serve(t, NewStorageSource(store, "memory", StorageOptions{}))

	d := getRun(t, ts, "approval-1")
	if d.Status != flux.StatusWaiting || d.DurationMs != nil {
		t.Errorf("status %s, duration %v; want waiting with no duration", d.Status, d.DurationMs)
	}
	signOff := run.Steps[3]
	want := Wait{Node: "sign-off", Index: 3, Kind: flux.KindWait, Signal: "sign",
		SinceMs: signOff.StartedAt.UnixMilli(), UntilMs: run.WakeAt.UnixMilli()}
	if d.Wait == nil || *d.Wait != want {
		t.Errorf("wait = %+v, want %+v", d.Wait, want)
	}
	if got := nodeAt(t, &d, 3); got.Status != flux.StatusWaiting || got.Kind != flux.KindWait || got.UntilMs != want.UntilMs ||
		got.WaitMs == nil || *got.WaitMs != float64(want.UntilMs-want.SinceMs) ||
		len(got.Attempts) != 1 || got.Attempts[0].Status != flux.StatusWaiting || got.Attempts[0].StartMs != want.SinceMs || got.Attempts[0].EndMs != 0 {
		t.Errorf("the node waited at: %+v", got)
	}
	if w := nodeAt(t, &d, 3).WaitMs; w != nil && *w != float64(48*time.Hour/time.Millisecond) {
		t.Errorf("sign-off waits %v ms, want its 48h timeout", *w)
	}
	review := nodeAt(t, &d, 1)
	if review.Kind != flux.KindWait || review.Status != flux.StatusCompleted || review.WaitMs == nil || *review.WaitMs <= 0 || review.UntilMs != 0 {
		t.Errorf("review, a wait that ended: %+v", review)
	}
	if cool := nodeAt(t, &d, 2); cool.Kind != flux.KindSleep || cool.WaitMs == nil || cool.UntilMs != 0 {
		t.Errorf("cool-off, a sleep that ended: %+v", cool)
	}
	if prep := nodeAt(t, &d, 0); prep.WaitMs != nil || prep.Undoes != "" {
		t.Errorf("a step has a wait or an undo: %+v", prep)
	}

	// Its signals: one consumed by review, one in the inbox, cut.
	if len(d.Signals) != 2 {
		t.Fatalf("signals %+v, want 2", d.Signals)
	}
	s1, s2 := d.Signals[0], d.Signals[1]
	if s1.Seq != 1 || s1.Name != "approve" || s1.Key != "click-1" || s1.Payload != `{"by":"ana"}` || s1.PayloadCut ||
		s1.PayloadBytes != len(`{"by":"ana"}`) || s1.Node != 1 || s1.NodeName != "review" || s1.SentAt != run.Signals[0].SentAt.UnixMilli() {
		t.Errorf("signal 1 = %+v", s1)
	}
	full, _ := json.Marshal(bigComment)
	if s2.Seq != 2 || s2.Name != "comment" || s2.Key != "" || s2.Node != -1 || s2.NodeName != "" || !s2.PayloadCut ||
		s2.PayloadBytes != len(full) || len(s2.Payload) > maxSignalPayload || len(s2.Payload) < maxSignalPayload-1 ||
		!strings.HasPrefix(string(full), s2.Payload) || !json.Valid(full) {
		t.Errorf("signal 2: %d bytes shown of %d, cut %v, node %d %q", len(s2.Payload), s2.PayloadBytes, s2.PayloadCut, s2.Node, s2.NodeName)
	}
	if d.Compensation != "" || len(d.Marks) != 0 {
		t.Errorf("a waiting run compensates: %q %v", d.Compensation, d.Marks)
	}

	// A sleep, and a wait for an event with no timeout.
	nap := getRun(t, ts, "nap-1")
	napRun, _ := e.Get(ctx, "nap-1")
	if w := nap.Wait; w == nil || w.Node != "nap" || w.Kind != flux.KindSleep || w.Signal != "" || w.Event ||
		w.UntilMs != napRun.WakeAt.UnixMilli() || w.UntilMs-w.SinceMs != int64(2*time.Hour/time.Millisecond) {
		t.Errorf("the sleep: %+v", w)
	}
	if n := nodeAt(t, &nap, 1); n.Kind != flux.KindSleep || n.Status != flux.StatusWaiting || n.WaitMs == nil || *n.WaitMs != float64(2*time.Hour/time.Millisecond) {
		t.Errorf("the sleeping node: %+v", n)
	}
	if len(nap.Signals) != 0 {
		t.Errorf("the sleep has signals %v", nap.Signals)
	}
	pay := getRun(t, ts, "pay-1")
	if w := pay.Wait; w == nil || w.Node != "paid" || w.Kind != flux.KindWait || !w.Event || w.Signal != "order.paid" || w.Key != "ORD-7" || w.UntilMs != 0 {
		t.Errorf("the event wait: %+v", w)
	}
	if n := nodeAt(t, &pay, 0); n.Status != flux.StatusWaiting || n.WaitMs != nil || n.UntilMs != 0 || len(n.Attempts) != 1 {
		t.Errorf("a wait with no timeout: %+v", n)
	}
	// The event comes: the run completes, its signal consumed by the wait.
	if n, err := flux.Send(ctx, e, "order.paid", "ORD-7", map[string]int{"cents": 1200}); err != nil || n != 1 {
		t.Fatalf("Send = %d, %v", n, err)
	}
	if res, err := flux.Resume(ctx, e, paymentFlow, "pay-1"); err != nil || !res.Data.Paid {
		t.Fatalf("Resume after the event = %v", err)
	}
	pay = getRun(t, ts, "pay-1")
	if pay.Status != flux.StatusCompleted || pay.Wait != nil || len(pay.Signals) != 1 || pay.Signals[0].NodeName != "paid" || pay.Signals[0].Payload != `{"cents":1200}` {
		t.Errorf("after the event: %s, wait %+v, signals %+v", pay.Status, pay.Wait, pay.Signals)
	}
	if n := nodeAt(t, &pay, 0); n.Status != flux.StatusCompleted || n.WaitMs == nil || len(n.Attempts) != 1 || n.Attempts[0].Status != flux.StatusCompleted {
		t.Errorf("the wait that ended: %+v", n)
	}

	// The list: a waiting row says what it waits for.
	var p Page
	if res := get(t, ts, "/api/runs?status=waiting", &p); res.StatusCode != 200 {
		t.Fatalf("status=waiting: %d", res.StatusCode)
	}
	rows := map[string]RunSummary{}
	for _, r := range p.Runs {
		rows[r.ID] = r
	}
	if len(p.Runs) != 2 || rows["approval-1"].Status != flux.StatusWaiting || rows["nap-1"].Status != flux.StatusWaiting {
		t.Fatalf("waiting runs %v, want approval-1 and nap-1", ids(&p))
	}
	if w := rows["approval-1"].Wait; w == nil || w.Node != "sign-off" || w.Signal != "sign" || w.UntilMs != want.UntilMs || w.Index != -1 {
		t.Errorf("the waiting row's wait: %+v", w)
	}
	var all Page
	get(t, ts, "/api/runs", &all)
	for _, r := range all.Runs {
		if (r.Wait != nil) != (r.Status == flux.StatusWaiting) {
			t.Errorf("run %s, %s, has wait %+v", r.ID, r.Status, r.Wait)
		}
	}

	var e404 struct{ Error string }
	if res := get(t, ts, "/api/run?id=approval-2", &e404); res.StatusCode != 404 || e404.Error == "" {
		t.Errorf("unknown run: %d %q", res.StatusCode, e404.Error)
	}
}

func TestStorageCompensationAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := flux.NewMemoryStorage()
	e := newEngine(t, flux.Config{Storage: store, Workers: -1})
	if _, err := flux.Execute(ctx, e, tripFlow(false, nil), "lisbon", flux.RunID("trip-undone")); err == nil {
		t.Fatal("the trip did not fail")
	}
	if _, err := flux.Execute(ctx, e, tripFlow(true, nil), "porto", flux.RunID("trip-ok")); err != nil {
		t.Fatal(err)
	}
	badUndo := func(*flux.Ctx[string, struct{}]) error {
		return flux.Permanent(errors.New("the hotel keeps the money"))
	}
	if _, err := flux.Execute(ctx, e, tripFlow(false, badUndo), "faro", flux.RunID("trip-stuck")); err == nil {
		t.Fatal("the trip did not fail")
	}
	// A compensation in progress: the hotel's undo blocks.
	started, release := make(chan struct{}), make(chan struct{})
	slowUndo := func(c *flux.Ctx[string, struct{}]) error {
		close(started)
		select {
		case <-release:
			return nil
		case <-c.Done():
			return c.Err()
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := flux.Execute(ctx, e, tripFlow(false, slowUndo), "braga", flux.RunID("trip-undoing"))
		done <- err
	}()
	<-started
	ts := serve(t, NewStorageSource(store, "memory", StorageOptions{}))

	undoing := getRun(t, ts, "trip-undoing")
	close(release)
	if err := <-done; err == nil {
		t.Error("the trip being undone did not fail")
	}
	if undoing.Compensation != compensating || undoing.Status != flux.StatusRunning {
		t.Errorf("while the hotel's undo runs: %s, compensation %q", undoing.Status, undoing.Compensation)
	}

	d := getRun(t, ts, "trip-undone")
	stored, _ := e.Get(ctx, "trip-undone")
	if d.Status != flux.StatusFailed || d.Compensation != compensated || d.FailedStep != "car" {
		t.Errorf("the undone trip: %s, compensation %q, failed at %q", d.Status, d.Compensation, d.FailedStep)
	}
	kinds := []string{}
	for _, n := range d.Nodes {
		kinds = append(kinds, n.Name+":"+string(n.Kind)+":"+string(n.Status)+":"+n.Undoes)
	}
	if want := []string{"flight:commit:completed:", "hotel:commit:completed:", "car:commit:failed:",
		"undo:hotel:undo:completed:hotel", "undo:flight:undo:completed:flight"}; !slices.Equal(kinds, want) {
		t.Errorf("nodes %q, want %q", kinds, want)
	}
	if len(d.Marks) != 1 || d.Marks[0].Type != "workflow:compensating" || d.Marks[0].At != stored.Steps[3].StartedAt.UnixMilli() {
		t.Errorf("marks %+v, want the compensation at the first undo's start", d.Marks)
	}

	ok := getRun(t, ts, "trip-ok")
	if ok.Compensation != "" || len(ok.Marks) != 0 {
		t.Errorf("the completed trip: compensation %q, marks %v", ok.Compensation, ok.Marks)
	}
	for _, n := range ok.Nodes[3:] {
		if n.Kind != flux.KindUndo || n.Status != flux.StatusSkipped || n.Conditional {
			t.Errorf("the undo of a completed run: %+v; want skipped, not a branch", n)
		}
	}
	if stuck := getRun(t, ts, "trip-stuck"); stuck.Compensation != compensationFailed {
		t.Errorf("a failed undo: compensation %q", stuck.Compensation)
	}

	// The list: a compensated run's row does not blame its last undo.
	var p Page
	get(t, ts, "/api/runs?status=failed", &p)
	for _, r := range p.Runs {
		if strings.HasPrefix(r.FailedStep, "undo:") && r.ID != "trip-stuck" {
			t.Errorf("row %s failed at %q", r.ID, r.FailedStep)
		}
	}
	if len(p.Runs) != 3 {
		t.Errorf("failed runs %v, want 3 trips", ids(&p))
	}
}

// TestTraceWaitsAndCompensations: over a trace, workflow:waiting makes a
// run waiting, workflow:compensating is a mark on the timeline, and the
// undo nodes are told from their names.
func TestTraceWaitsAndCompensations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	sink, err := tracefile.New(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, flux.Config{Trace: sink, Workers: -1})
	waitingRun(t, e, "approval-1")
	if _, err := flux.Execute(ctx, e, tripFlow(false, nil), "lisbon", flux.RunID("trip-undone")); err == nil {
		t.Fatal("the trip did not fail")
	}
	if _, err := flux.Execute(ctx, e, tripFlow(true, nil), "porto", flux.RunID("trip-ok")); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	ts := serve(t, src)

	var p Page
	get(t, ts, "/api/runs?status=waiting", &p)
	if got := ids(&p); len(got) != 1 || got[0] != "approval-1" || p.Counts[flux.StatusWaiting] != 1 || p.Counts[flux.StatusFailed] != 1 {
		t.Errorf("waiting runs %v, counts %v", got, p.Counts)
	}
	d := getRun(t, ts, "approval-1")
	if d.Status != flux.StatusWaiting || d.Wait != nil || d.EndedAt != 0 {
		t.Errorf("the waiting run: %s, wait %+v, ended %d", d.Status, d.Wait, d.EndedAt)
	}
	if len(d.Marks) != 2 || d.Marks[0].Type != "workflow:waiting" || d.Marks[1].Type != "workflow:waiting" {
		t.Errorf("marks %+v, want the two waits", d.Marks)
	}

	trip := getRun(t, ts, "trip-undone")
	if trip.Status != flux.StatusFailed || trip.Compensation != compensated || trip.FailedStep != "car" {
		t.Errorf("the undone trip: %s, compensation %q, failed at %q", trip.Status, trip.Compensation, trip.FailedStep)
	}
	if len(trip.Marks) != 1 || trip.Marks[0].Type != "workflow:compensating" || trip.Marks[0].At == 0 {
		t.Errorf("marks %+v, want the compensation", trip.Marks)
	}
	var undos []string
	for _, n := range trip.Nodes {
		if n.Kind == flux.KindUndo {
			undos = append(undos, n.Name+"→"+n.Undoes)
		}
	}
	if !slices.Equal(undos, []string{"undo:hotel→hotel", "undo:flight→flight"}) {
		t.Errorf("undo nodes %q", undos)
	}
	// The completed trip skipped its undos: not branches, not compensated.
	ok := getRun(t, ts, "trip-ok")
	if ok.Compensation != "" || ok.Status != flux.StatusCompleted {
		t.Errorf("the completed trip: %s, compensation %q", ok.Status, ok.Compensation)
	}
	for _, n := range ok.Nodes {
		if strings.HasPrefix(n.Name, "undo:") && (n.Kind != flux.KindUndo || n.Conditional) {
			t.Errorf("%s of the completed trip: kind %s, conditional %v", n.Name, n.Kind, n.Conditional)
		}
	}
}

// TestTraceCompensatingRun: a trace that stops during a compensation
// shows the run compensating, not failed.
func TestTraceCompensatingRun(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	ip := func(i int) *int { return &i }
	var b []byte
	for _, r := range []tracefile.Record{
		{Type: "workflow:start", Status: "running"},
		{Type: "step:start", StepName: "flight", StepIndex: ip(0), Commit: true, Attempt: 1},
		{Type: "step:complete", StepName: "flight", StepIndex: ip(0), Commit: true, Attempt: 1},
		{Type: "step:start", StepName: "car", StepIndex: ip(1), Commit: true, Attempt: 1},
		{Type: "step:error", StepName: "car", StepIndex: ip(1), Commit: true, Attempt: 1, Error: "no car"},
		{Type: "workflow:compensating", Status: "running", Error: "no car"},
		{Type: "step:start", StepName: "undo:flight", StepIndex: ip(2), Attempt: 1},
	} {
		r.Timestamp, r.WorkflowID, r.WorkflowName = 1795610935000+int64(len(b)), "t-1", "trip"
		b = append(r.AppendJSON(b), '\n')
	}
	if err := writeFile(path, string(b)); err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	ts := serve(t, src)
	var p Page
	get(t, ts, "/api/runs", &p)
	if len(p.Runs) != 1 || p.Runs[0].Status != flux.StatusRunning {
		t.Fatalf("runs %+v, want t-1 running", p.Runs)
	}
	d := getRun(t, ts, "t-1")
	if d.Status != flux.StatusRunning || d.Compensation != compensating || d.EndedAt != 0 || d.FailedStep != "car" {
		t.Errorf("compensating run: %s, %q, ended %d, failed at %q", d.Status, d.Compensation, d.EndedAt, d.FailedStep)
	}
	if n := nodeAt(t, &d, 2); n.Kind != flux.KindUndo || n.Undoes != "flight" || n.Status != flux.StatusRunning {
		t.Errorf("the undo: %+v", n)
	}
}
