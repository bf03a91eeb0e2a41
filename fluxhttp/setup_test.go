package fluxhttp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxhttp"
)

type greetIn struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags,omitempty"`
}

type greetData struct {
	Greeting string `json:"greeting"`
}

type payData struct {
	Charged  int  `json:"charged"`
	Notified bool `json:"notified"`
}

// bundle is what a test of the handler needs.
type bundle struct {
	engine  *flux.Engine
	handler *fluxhttp.Handler
	// release unblocks the "block" workflow's step.
	release chan struct{}
	// started receives when the "block" workflow's step starts.
	started chan string
	// failNotify makes the "pay" workflow's last step fail.
	failNotify atomic.Bool
}

// quiet discards the logs of tests.
var quiet = slog.New(slog.DiscardHandler)

func allow(*http.Request) error { return nil }

// setup returns an engine on memory storage serving the workflows
// "greet", "block" and "pay", with Authorize allowing everything unless
// change says otherwise.
func setup(t testing.TB, change ...func(*fluxhttp.Config)) *bundle {
	t.Helper()
	b := &bundle{release: make(chan struct{}), started: make(chan string, 8)}
	e, err := flux.NewEngine(flux.Config{
		DefaultStepOptions: []flux.StepOption{flux.Retries(0), flux.NoBackoff()},
		MaxPayloadBytes:    1024,
		Logger:             quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	b.engine = e
	greet := flux.New[greetIn, greetData]("greet").
		Validate(func(in greetIn) error {
			if in.Name == "" {
				return errors.New("name is required")
			}
			return nil
		}).
		Step("hello", func(c *flux.Ctx[greetIn, greetData]) error {
			c.Data.Greeting = "hello " + c.Input.Name
			return nil
		})
	block := flux.New[greetIn, greetData]("block").
		Step("wait", func(c *flux.Ctx[greetIn, greetData]) error {
			b.started <- c.RunID()
			select {
			case <-b.release:
				c.Data.Greeting = "released"
				return nil
			case <-c.Done():
				return c.Err()
			}
		})
	pay := flux.New[greetIn, payData]("pay").
		Step("prepare", func(c *flux.Ctx[greetIn, payData]) error { return nil }).
		Commit("charge", func(c *flux.Ctx[greetIn, payData]) error {
			c.Data.Charged++
			return nil
		}).
		Step("notify", func(c *flux.Ctx[greetIn, payData]) error {
			if b.failNotify.Load() {
				return flux.Permanent(errors.New("mail server down"))
			}
			c.Data.Notified = true
			return nil
		})
	cfg := fluxhttp.Config{Engine: e, Authorize: allow, MaxBodyBytes: 4096, Logger: quiet}
	for _, c := range change {
		c(&cfg)
	}
	h, err := fluxhttp.New(cfg, fluxhttp.Workflow(greet), fluxhttp.Workflow(block), fluxhttp.Workflow(pay))
	if err != nil {
		t.Fatal(err)
	}
	b.handler = h
	return b
}

// response is a recorded answer with its JSON body decoded.
type response struct {
	*httptest.ResponseRecorder
	body map[string]any
}

// do sends a request to h; headers are name, value pairs.
func do(t *testing.T, h http.Handler, method, target, body string, headers ...string) response {
	t.Helper()
	var rd *bytes.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	var req *http.Request
	if rd != nil {
		req = httptest.NewRequest(method, target, rd)
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{ResponseRecorder: rec}
	if rec.Body.Len() > 0 && (rec.Header().Get("Content-Type") == "application/json" ||
		rec.Header().Get("Content-Type") == "application/problem+json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", method, target, err, rec.Body)
		}
	}
	return res
}

// expect fails t unless r has status code.
func (r response) expect(t *testing.T, code int) response {
	t.Helper()
	if r.Code != code {
		t.Fatalf("status %d, want %d; body %s", r.Code, code, r.Body)
	}
	return r
}

// problem fails t unless r is a problem of status code and type typ.
func (r response) problem(t *testing.T, code int, typ string) response {
	t.Helper()
	r.expect(t, code)
	if ct := r.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	if r.body["type"] != "urn:flux:problem:"+typ || r.body["status"] != float64(code) || r.body["title"] == "" {
		t.Fatalf("problem %v, want type %s and status %d", r.body, typ, code)
	}
	return r
}

// str returns the string at the path of keys in r's body.
func (r response) str(keys ...string) string {
	var v any = r.body
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}
