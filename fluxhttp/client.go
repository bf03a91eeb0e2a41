package fluxhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/flux-go/flux"
)

// Client calls a [Handler] from another service.
type Client struct {
	// BaseURL is where the handler is mounted, such as
	// "https://orders.internal/flux/".
	BaseURL string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Header is added to every request, such as an Authorization.
	Header http.Header
}

// ErrNotEnded reports a run that had not ended when [Wait] gave up.
var ErrNotEnded = errors.New("fluxhttp: run has not ended")

// RunError is the error of a run that ended without completing.
type RunError struct {
	ID      string
	Status  flux.Status
	Message string
}

// Error names the run, its status and its error.
func (e *RunError) Error() string {
	return fmt.Sprintf("fluxhttp: run %s %s: %s", e.ID, e.Status, e.Message)
}

// Is matches flux.ErrCancelled for a cancelled run.
func (e *RunError) Is(target error) bool {
	return target == flux.ErrCancelled && e.Status == flux.StatusCancelled
}

// Result is a run read by [Wait], with its data decoded.
type Result[Data any] struct {
	Run  *flux.Run
	Data Data
}

// Start starts a run of workflow with input in (encoded as JSON) and
// returns its ID. A non-empty key is the run's ID (the Idempotency-Key
// header): starting again with the same key returns the same run.
func (c *Client) Start(ctx context.Context, workflow string, in any, key string) (string, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("fluxhttp: encoding the input: %w", err)
	}
	h := http.Header{}
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "workflows/"+url.PathEscape(workflow)+"/runs", h, body, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// Get returns run id.
func (c *Client) Get(ctx context.Context, id string) (*flux.Run, error) {
	run := new(flux.Run)
	if err := c.do(ctx, http.MethodGet, "runs/"+url.PathEscape(id), nil, nil, run); err != nil {
		return nil, err
	}
	return run, nil
}

// Cancel cancels run id and says what happened.
func (c *Client) Cancel(ctx context.Context, id string) (*Cancelled, error) {
	out := new(Cancelled)
	if err := c.do(ctx, http.MethodPost, "runs/"+url.PathEscape(id)+"/cancel", nil, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Wait waits up to timeout for run id to end and returns it with its data
// decoded into a Data. err is nil exactly when the run completed: a
// *RunError when it failed or was cancelled, an error wrapping ErrNotEnded
// when timeout passed first, a *Problem when the server refused.
func Wait[Data any](ctx context.Context, c *Client, id string, timeout time.Duration) (*Result[Data], error) {
	deadline := time.Now().Add(timeout)
	for {
		left := max(time.Until(deadline), 0)
		run := new(flux.Run)
		path := "runs/" + url.PathEscape(id) + "?wait=" + left.Round(time.Millisecond).String()
		if err := c.do(ctx, http.MethodGet, path, nil, nil, run); err != nil {
			return nil, err
		}
		res := &Result[Data]{Run: run}
		if len(run.Data) > 0 {
			if err := json.Unmarshal(run.Data, &res.Data); err != nil {
				return res, fmt.Errorf("fluxhttp: decoding the data of run %s: %w", id, err)
			}
		}
		switch {
		case run.Status == flux.StatusCompleted:
			return res, nil
		case run.Status.Final():
			return res, &RunError{ID: run.ID, Status: run.Status, Message: run.Error}
		case left == 0:
			return res, fmt.Errorf("%w: run %s is %s after %v", ErrNotEnded, id, run.Status, timeout)
		}
	}
}

// do sends a request to path below BaseURL and decodes a 2xx answer's
// JSON into out, or returns the problem of another.
func (c *Client) do(ctx context.Context, method, path string, h http.Header, body []byte, out any) error {
	u := strings.TrimSuffix(c.BaseURL, "/") + "/" + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	for k, vs := range c.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("fluxhttp: reading the answer to %s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		p := new(Problem)
		if json.Unmarshal(b, p) != nil || p.Status == 0 {
			p = &Problem{Type: "about:blank", Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode,
				Detail: strings.TrimSpace(string(b[:min(len(b), 200)]))}
		}
		return p
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("fluxhttp: decoding the answer to %s %s: %w", method, u, err)
	}
	return nil
}
