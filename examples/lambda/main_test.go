package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"
	"go.uber.org/goleak"

	"github.com/flux-go/flux"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// notifications counts the calls of the notify commit, by order.
type notifications struct {
	mu    sync.Mutex
	calls map[string]int
	fail  error
}

func (n *notifications) notify(_ context.Context, orderID, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.calls == nil {
		n.calls = map[string]int{}
	}
	n.calls[orderID]++
	return n.fail
}

// total returns the calls for every order.
func (n *notifications) total() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	sum := 0
	for _, c := range n.calls {
		sum += c
	}
	return sum
}

func (n *notifications) count(orderID string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[orderID]
}

// coldStart makes an app on storageURL, as main does, and closes it at the
// end of the test.
func coldStart(t *testing.T, storageURL string, n *notifications) *app {
	t.Helper()
	a, err := newApp(t.Context(), storageURL, slog.New(slog.DiscardHandler), n.notify)
	if err != nil {
		t.Fatalf("newApp(%q): %v", storageURL, err)
	}
	t.Cleanup(a.close)
	return a
}

// invoke calls the handler as the Lambda runtime does: JSON bytes in, JSON
// bytes out.
func invoke(t *testing.T, a *app, payload string) (string, error) {
	t.Helper()
	out, err := lambda.NewHandler(a.handle).Invoke(t.Context(), []byte(payload))
	return string(out), err
}

func TestInvoke(t *testing.T) {
	t.Parallel()
	var n notifications
	a := coldStart(t, "", &n) // FLUX_STORAGE_URL unset: memory:

	const want = `{"status":"completed","id":"lambda-flow:o-1"}`
	got, err := invoke(t, a, `{"orderId":"o-1"}`)
	if err != nil || got != want {
		t.Fatalf("first invoke = %s, %v; want %s", got, err, want)
	}
	// Lambda retries, or the event is delivered twice.
	got, err = invoke(t, a, `{"orderId":"o-1"}`)
	if err != nil || got != want {
		t.Fatalf("second invoke = %s, %v; want %s", got, err, want)
	}
	if c := n.count("o-1"); c != 1 {
		t.Errorf("notify ran %d times for o-1, want 1", c)
	}

	got, err = invoke(t, a, `{"orderId":"o-2"}`)
	if want := `{"status":"completed","id":"lambda-flow:o-2"}`; err != nil || got != want {
		t.Fatalf("other order = %s, %v; want %s", got, err, want)
	}

	run, err := a.engine.Get(t.Context(), "lambda-flow:o-1")
	if err != nil {
		t.Fatal(err)
	}
	var d Data
	if err := json.Unmarshal(run.Data, &d); err != nil || !d.Ready || !d.Notified {
		t.Errorf("stored data %s (%v), want ready and notified", run.Data, err)
	}
}

func TestInvokeBadEvent(t *testing.T) {
	t.Parallel()
	var n notifications
	a := coldStart(t, "memory:", &n)
	for _, payload := range []string{`{}`, `{"orderId":""}`} {
		got, err := invoke(t, a, payload)
		if !errors.Is(err, flux.ErrInvalidInput) || !strings.Contains(err.Error(), "orderId is empty") {
			t.Errorf("invoke %s = %s, %v; want ErrInvalidInput naming orderId", payload, got, err)
		}
	}
	if got, err := invoke(t, a, `{"orderId":`); err == nil {
		t.Errorf("invoke with broken JSON = %s, want an error", got)
	}
	if c := n.total(); c != 0 {
		t.Errorf("notify ran %d times, want no run", c)
	}
}

// TestFailedRunIsAnswered shows that a run that failed is reported, not
// retried: its notify commit ran out of attempts.
func TestFailedRunIsAnswered(t *testing.T) {
	t.Parallel()
	n := notifications{fail: flux.Permanent(errors.New("mail server says no"))}
	a := coldStart(t, "memory:", &n)
	const want = `{"status":"failed","id":"lambda-flow:o-3"}`
	for range 2 {
		got, err := invoke(t, a, `{"orderId":"o-3"}`)
		if err != nil || got != want {
			t.Fatalf("invoke = %s, %v; want %s", got, err, want)
		}
	}
	if c := n.count("o-3"); c != 1 {
		t.Errorf("notify ran %d times, want 1 (a failed run is returned as it ended)", c)
	}
}

// TestColdStartsShareStorage invokes two instances in turn, as two cold
// starts on one SQLite file: the second finds the run of the first.
func TestColdStartsShareStorage(t *testing.T) {
	t.Parallel()
	url := "sqlite:" + filepath.Join(t.TempDir(), "flux.db")
	var n notifications
	const want = `{"status":"completed","id":"lambda-flow:o-4"}`

	first, err := newApp(t.Context(), url, slog.New(slog.DiscardHandler), n.notify)
	if err != nil {
		t.Fatal(err)
	}
	got, err := invoke(t, first, `{"orderId":"o-4"}`)
	first.close()
	if err != nil || got != want {
		t.Fatalf("first instance = %s, %v; want %s", got, err, want)
	}

	second := coldStart(t, url, &n)
	got, err = invoke(t, second, `{"orderId":"o-4"}`)
	if err != nil || got != want {
		t.Fatalf("second instance = %s, %v; want %s", got, err, want)
	}
	if c := n.count("o-4"); c != 1 {
		t.Errorf("notify ran %d times, want 1", c)
	}
}

func TestColdStartBadStorage(t *testing.T) {
	t.Parallel()
	_, err := newApp(t.Context(), "redis://cache:6379", slog.New(slog.DiscardHandler), (&notifications{}).notify)
	if err == nil || !strings.Contains(err.Error(), `unknown scheme "redis"`) {
		t.Fatalf("newApp(redis://) = %v, want the unknown scheme named", err)
	}
}

// TestCutOffRun ends the invocation's context while notify runs, as the
// function's timeout does: the handler returns an error, so Lambda
// retries, and the retry continues the run.
func TestCutOffRun(t *testing.T) {
	t.Parallel()
	var n notifications
	started := make(chan struct{})
	var once sync.Once
	a, err := newApp(t.Context(), "memory:", slog.New(slog.DiscardHandler), func(ctx context.Context, orderID, key string) error {
		first := false
		once.Do(func() { first = true })
		if first {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}
		return n.notify(ctx, orderID, key)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)

	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := lambda.NewHandler(a.handle).Invoke(ctx, []byte(`{"orderId":"o-5"}`))
		done <- result{out, err}
	}()
	<-started
	cancel()
	r := <-done
	if r.err == nil || !strings.Contains(r.err.Error(), "lambda-flow:o-5") {
		t.Fatalf("cut-off invoke = %s, %v; want an error naming the run, for Lambda to retry", r.out, r.err)
	}
	const want = `{"status":"completed","id":"lambda-flow:o-5"}`
	if got, err := invoke(t, a, `{"orderId":"o-5"}`); err != nil || got != want {
		t.Fatalf("retry = %s, %v; want %s", got, err, want)
	}
	if c := n.count("o-5"); c != 1 {
		t.Errorf("notify completed %d times, want 1", c)
	}
}
