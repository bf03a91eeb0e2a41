package main

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/flux-go/flux"
)

// TestNotify runs the example in a synctest bubble, so the backoff between
// attempts takes no real time.
func TestNotify(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var out strings.Builder
		o, err := run(t.Context(), &out)
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}

		send := o.Flaky.Steps[0]
		if o.Flaky.Status != flux.StatusCompleted || send.Status != flux.StatusCompleted || len(send.Attempts) != 3 {
			t.Errorf("flaky: run %s, send %s after %d attempts; want completed, completed after 3", o.Flaky.Status, send.Status, len(send.Attempts))
		}
		for i, a := range send.Attempts {
			if failed := a.Error != ""; failed != (i < 2) {
				t.Errorf("flaky: attempt %d error %q; want the first two to fail and the third to succeed", a.Number, a.Error)
			}
		}
		if o.Flaky.Data.MessageID == "" || o.Notifier.Delivered() != 1 {
			t.Errorf("flaky: message %q, %d delivered; want an ID and 1", o.Flaky.Data.MessageID, o.Notifier.Delivered())
		}

		send = o.Down.Steps[0]
		if o.Down.Status != flux.StatusFailed || send.Status != flux.StatusFailed || len(send.Attempts) != 6 {
			t.Errorf("down: run %s, send %s after %d attempts; want failed, failed after 6 (1 + Retries(5))", o.Down.Status, send.Status, len(send.Attempts))
		}
		var se *flux.StepError
		if !errors.As(o.DownErr, &se) || se.Step != "send" || se.Attempt != 6 || !errors.Is(o.DownErr, errUnavailable) {
			t.Errorf("down: err = %v, want a *flux.StepError for send, attempt 6, wrapping errUnavailable", o.DownErr)
		}
		if o.Down.Data.MessageID != "" {
			t.Errorf("down: Data.MessageID = %q, want empty", o.Down.Data.MessageID)
		}
		if n := strings.Count(out.String(), "retrying in"); n != 2+5 {
			t.Errorf("output shows %d retries, want 7:\n%s", n, out.String())
		}
	})
}
