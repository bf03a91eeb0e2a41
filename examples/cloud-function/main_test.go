package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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

// setup makes an app on storageURL, closed at the end of the test.
func setup(t *testing.T, storageURL string, n *notifications) *app {
	t.Helper()
	a, err := newApp(t.Context(), storageURL, slog.New(slog.DiscardHandler), n.notify)
	if err != nil {
		t.Fatalf("newApp(%q): %v", storageURL, err)
	}
	t.Cleanup(a.close)
	return a
}

// do serves one request and returns the recorded response.
func do(h http.Handler, method, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestOrder(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"memory:", "sqlite:" + filepath.Join(t.TempDir(), "flux.db")} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			var n notifications
			a := setup(t, url, &n)
			const want = `{"status":"completed","id":"order-flow:o-1"}` + "\n"
			for i := range 2 { // the second is a client's retry
				rec := do(a, http.MethodPost, `{"orderId":"o-1"}`)
				if rec.Code != http.StatusOK || rec.Body.String() != want || rec.Header().Get("Content-Type") != "application/json" {
					t.Fatalf("request %d: %d %s %q, want 200 application/json %s", i+1, rec.Code, rec.Header().Get("Content-Type"), rec.Body, want)
				}
			}
			if c := n.count("o-1"); c != 1 {
				t.Errorf("notify ran %d times, want 1", c)
			}
			rec := do(a, http.MethodPost, `{"orderId":"o-2"}`)
			if want := `{"status":"completed","id":"order-flow:o-2"}` + "\n"; rec.Code != http.StatusOK || rec.Body.String() != want {
				t.Fatalf("other order: %d %q, want 200 %s", rec.Code, rec.Body, want)
			}
		})
	}
}

func TestFailedRun(t *testing.T) {
	t.Parallel()
	n := notifications{fail: flux.Permanent(errors.New("mail server says no"))}
	a := setup(t, "memory:", &n)
	const want = `{"status":"failed","id":"order-flow:o-3"}` + "\n"
	for range 2 {
		if rec := do(a, http.MethodPost, `{"orderId":"o-3"}`); rec.Code != http.StatusOK || rec.Body.String() != want {
			t.Fatalf("%d %q, want 200 %s", rec.Code, rec.Body, want)
		}
	}
	if c := n.count("o-3"); c != 1 {
		t.Errorf("notify ran %d times, want 1", c)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	var n notifications
	a := setup(t, "memory:", &n)
	for _, tc := range []struct {
		name, method, body string
		status             int
		typ, detail        string
	}{
		{"get", http.MethodGet, "", 405, "method-not-allowed", "POST"},
		{"not json", http.MethodPost, `orderId=o-1`, 400, "bad-json", "invalid character"},
		{"empty body", http.MethodPost, ``, 400, "bad-json", "EOF"},
		{"wrong type", http.MethodPost, `{"orderId":7}`, 400, "bad-json", "cannot unmarshal number"},
		{"unknown field", http.MethodPost, `{"order_id":"o-1"}`, 400, "bad-json", `unknown field "order_id"`},
		{"two values", http.MethodPost, `{"orderId":"a"}{"orderId":"b"}`, 400, "bad-json", "more than one"},
		{"no orderId", http.MethodPost, `{}`, 400, "invalid-input", "orderId is empty"},
		{"too large", http.MethodPost, `{"orderId":"` + strings.Repeat("x", maxBody) + `"}`, 413, "payload-too-large", "larger than"},
	} {
		rec := do(a, tc.method, tc.body)
		var p Problem
		err := json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != tc.status || err != nil || p.Status != tc.status || p.Type != "urn:flux:problem:"+tc.typ ||
			!strings.Contains(p.Detail, tc.detail) || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %q (%v), want %d problem %s mentioning %q",
				tc.name, rec.Code, rec.Header().Get("Content-Type"), rec.Body, err, tc.status, tc.typ, tc.detail)
		}
	}
	if rec := do(a, http.MethodGet, ""); rec.Header().Get("Allow") != http.MethodPost {
		t.Errorf("405 Allow = %q, want POST", rec.Header().Get("Allow"))
	}
	if c := n.total(); c != 0 {
		t.Errorf("notify ran %d times for bad requests, want 0", c)
	}
}

// TestCutOffRun cancels the request while notify runs: the run is
// interrupted, answered 503, and the next request continues it.
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
			<-ctx.Done() // the client went away
			return ctx.Err()
		}
		return n.notify(ctx, orderID, key)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)

	ctx, cancel := context.WithCancel(t.Context())
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(`{"orderId":"o-5"}`))
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.ServeHTTP(rec, req)
	}()
	<-started
	cancel()
	<-done
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "retry the request") {
		t.Fatalf("cut-off request: %d %q, want 503 with Retry-After", rec.Code, rec.Body)
	}
	rec = do(a, http.MethodPost, `{"orderId":"o-5"}`)
	if want := `{"status":"completed","id":"order-flow:o-5"}` + "\n"; rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Fatalf("retry: %d %q, want 200 %s", rec.Code, rec.Body, want)
	}
	if c := n.count("o-5"); c != 1 {
		t.Errorf("notify completed %d times, want 1", c)
	}
}

// TestOrderFlow calls the exported function as a platform does; with
// FLUX_STORAGE_URL unset in the test's environment it runs on memory:.
func TestOrderFlow(t *testing.T) {
	t.Setenv("FLUX_STORAGE_URL", "")
	t.Cleanup(func() {
		if a, err := instance(); err == nil {
			a.close()
		}
	})
	h := http.HandlerFunc(OrderFlow)
	rec := do(h, http.MethodPost, `{"orderId":"o-6"}`)
	if want := `{"status":"completed","id":"order-flow:o-6"}` + "\n"; rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Fatalf("%d %q, want 200 %s", rec.Code, rec.Body, want)
	}
	if rec := do(h, http.MethodPost, `{`); rec.Code != http.StatusBadRequest {
		t.Fatalf("bad JSON: %d %q, want 400", rec.Code, rec.Body)
	}
}

func TestListenAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "7071", "PORT": "9000"}, ":7071"},
		{map[string]string{"PORT": "9000"}, ":9000"},
		{nil, ":8080"},
	} {
		if got := listenAddr(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("listenAddr(%v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestColdStartBadStorage(t *testing.T) {
	t.Parallel()
	_, err := newApp(t.Context(), "redis://cache:6379", slog.New(slog.DiscardHandler), (&notifications{}).notify)
	if err == nil || !strings.Contains(err.Error(), `unknown scheme "redis"`) {
		t.Fatalf("newApp(redis://) = %v, want the unknown scheme named", err)
	}
}
