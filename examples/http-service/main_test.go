package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the service on a free port until the test ends.
func start(t *testing.T, token string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg := config{addr: "127.0.0.1:0", storage: "sqlite:" + filepath.Join(t.TempDir(), "flux.db"), token: token, grace: 5e9}
	go func() { done <- serve(ctx, cfg, &out, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if !strings.Contains(out.String(), "stopped") {
			t.Errorf("no graceful stop in the output:\n%s", out.String())
		}
	})
	return "http://" + addr
}

func do(t *testing.T, method, url, body string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp, v
}

func TestOrdersThroughTheService(t *testing.T) {
	base := start(t, "")
	resp, v := do(t, "POST", base+"/orders", `{"orderId":"o-1"}`)
	if resp.StatusCode != http.StatusAccepted || v["id"] != "order-o-1" || resp.Header.Get("Location") != "/flux/runs/order-o-1" {
		t.Fatalf("POST /orders: %d %v %q", resp.StatusCode, v, resp.Header.Get("Location"))
	}
	resp, v = do(t, "GET", base+"/flux/runs/order-o-1?wait=20s", "")
	if resp.StatusCode != http.StatusOK || v["status"] != "completed" {
		t.Fatalf("GET the run: %d %v, want 200 completed", resp.StatusCode, v)
	}
	if data, _ := v["data"].(map[string]any); data["notified"] != true {
		t.Errorf("run data %v, want notified", v["data"])
	}
	resp, v = do(t, "GET", base+"/flux/openapi.json", "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(v["openapi"].(string), "3.1") {
		t.Fatalf("openapi.json: %d %v", resp.StatusCode, v["openapi"])
	}
	// fluxhttp's own start, from loopback, with an idempotency key.
	resp, v = do(t, "POST", base+"/flux/workflows/order-flow/runs?wait=20s", `{"orderId":"o-2"}`, "Idempotency-Key", "k-2")
	if resp.StatusCode != http.StatusOK || v["status"] != "completed" {
		t.Fatalf("POST through /flux/: %d %v, want 200 completed", resp.StatusCode, v)
	}
	resp, _ = do(t, "POST", base+"/orders", `{"orderId":""}`)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an order without orderId: %d, want 400", resp.StatusCode)
	}
	page, err := http.Get(base + "/flux/ui/")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(string(html), "<html") {
		t.Errorf("the viewer at /flux/ui/: %d, %.80q", page.StatusCode, html)
	}
	resp, _ = do(t, "GET", base+"/healthz", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
}

func TestTokenGuardsMutations(t *testing.T) {
	base := start(t, "s3cret")
	resp, v := do(t, "POST", base+"/flux/workflows/order-flow/runs", `{"orderId":"o-3"}`)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
		t.Fatalf("start without the token: %d %v, want 403 problem", resp.StatusCode, v)
	}
	resp, v = do(t, "POST", base+"/flux/workflows/order-flow/runs", `{"orderId":"o-3"}`, "Authorization", "Bearer s3cret")
	if resp.StatusCode != http.StatusAccepted || v["id"] == nil {
		t.Fatalf("start with the token: %d %v, want 202 with an id", resp.StatusCode, v)
	}
	resp, _ = do(t, "GET", base+"/flux/runs", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("reads stay open: %d", resp.StatusCode)
	}
}
