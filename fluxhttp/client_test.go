package fluxhttp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxhttp"
)

func TestClient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)
	c := &fluxhttp.Client{BaseURL: srv.URL, HTTP: srv.Client()}
	ctx := t.Context()

	id, err := c.Start(ctx, "greet", greetIn{Name: "gil"}, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := fluxhttp.Wait[greetData](ctx, c, id, 10*time.Second)
	if err != nil || res.Data.Greeting != "hello gil" || res.Run.ID != id {
		t.Fatalf("Wait: %+v, %v", res, err)
	}
	run, err := c.Get(ctx, id)
	if err != nil || run.Status != flux.StatusCompleted || len(run.Steps) != 1 {
		t.Fatalf("Get: %+v, %v", run, err)
	}

	// Problems come back as *Problem, matching flux's sentinels.
	_, err = c.Get(ctx, "nope")
	var p *fluxhttp.Problem
	if !errors.As(err, &p) || p.Status != http.StatusNotFound || !errors.Is(err, flux.ErrRunNotFound) {
		t.Fatalf("Get of an unknown run: %v", err)
	}
	_, err = c.Start(ctx, "greet", map[string]any{"name": "a", "count": "x"}, "")
	if !errors.As(err, &p) || p.Status != http.StatusBadRequest || p.Field != "count" || !errors.Is(err, flux.ErrInvalidInput) {
		t.Fatalf("Start with bad input: %v", err)
	}

	// A run that does not end in time, then is cancelled.
	id, err = c.Start(ctx, "block", greetIn{Name: "h"}, "block-1")
	if err != nil {
		t.Fatal(err)
	}
	<-b.started
	res, err = fluxhttp.Wait[greetData](ctx, c, id, 10*time.Millisecond)
	if !errors.Is(err, fluxhttp.ErrNotEnded) || res.Run.Status != flux.StatusRunning {
		t.Fatalf("Wait of a blocked run: %+v, %v", res, err)
	}
	cres, err := c.Cancel(ctx, id)
	if err != nil || cres.Run.Status != flux.StatusCancelled {
		t.Fatalf("Cancel: %+v, %v", cres, err)
	}
	_, err = fluxhttp.Wait[greetData](ctx, c, id, time.Second)
	var re *fluxhttp.RunError
	if !errors.As(err, &re) || !errors.Is(err, flux.ErrCancelled) || re.ID != id {
		t.Fatalf("Wait of a cancelled run: %v", err)
	}
	if _, err := c.Cancel(ctx, id+"x"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Fatalf("Cancel of an unknown run: %v", err)
	}
}
