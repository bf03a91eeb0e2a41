package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/trigger"
)

// flux runs show tells what a waiting run waits for, and its signals.
func TestShowWaitingRun(t *testing.T) {
	ctx := context.Background()
	e, err := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	w := flux.New[string, struct{ Got []string }]("approve").
		WaitSignal("first", "ok", 0, func(c *flux.Ctx[string, struct{ Got []string }], r flux.Received) error {
			c.Data.Got = append(c.Data.Got, string(r.Payload))
			return nil
		}).
		WaitSignal("second", "ok", time.Hour, func(c *flux.Ctx[string, struct{ Got []string }], r flux.Received) error {
			return nil
		})
	res, err := flux.Execute(ctx, e, w, "x", flux.RunID("show-1"))
	if !errors.Is(err, flux.ErrWaiting) {
		t.Fatal(err)
	}
	if err := e.Signal(ctx, res.ID, "ok", "from-ana"); err != nil {
		t.Fatal(err)
	}
	// The first wait takes the signal; the run then waits at the second.
	var run *flux.Run
	for deadline := time.Now().Add(10 * time.Second); ; {
		if run, err = e.Get(ctx, res.ID); err != nil {
			t.Fatal(err)
		}
		if run.Status == flux.StatusWaiting && run.Summary.Node == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not reach the second wait: %s at %s", run.Status, run.Summary.Node)
		}
		if err := trigger.Sleep(ctx, 5*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := writeRunTable(&out, run); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`waiting for signal "ok" at "second" until `, "SIGNAL", `ok`, `first`, `"from-ana"`} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("flux runs show output lacks %q:\n%s", want, out.String())
		}
	}
}
