package flux_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

// A run started in the background that fails is logged once, at error, as
// every failed run is; the worker that executed it does not add a warning
// that a "recovered run did not complete".
func TestBackgroundFailureIsLoggedOnce(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	e := openEngine(t, flux.Config{
		Logger:             slog.New(slog.NewTextHandler(logs, nil)),
		DefaultStepOptions: []flux.StepOption{flux.NoBackoff()},
	})
	w := flux.New[tIn, tData]("declined").
		Step("charge", func(c *tCtx) error { return flux.Permanent(errors.New("card declined")) })
	ctx := context.Background()
	id, err := flux.Start(ctx, e, w, tIn{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := flux.Wait(ctx, e, w, id)
	if err == nil || res == nil || res.Status != flux.StatusFailed {
		t.Fatalf("Wait = %+v, %v; want a failed run", res, err)
	}
	// Close waits for the worker, and so for anything it logs.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "card declined") {
		t.Fatalf("the failure is not logged at error:\n%s", out)
	}
	if strings.Contains(out, "level=WARN") {
		t.Fatalf("a failed run is warned about too:\n%s", out)
	}
}
