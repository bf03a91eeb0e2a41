package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

func TestConditional(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	results, n, err := run(t.Context(), &out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}

	disabled, enabled := results[0], results[1]
	if s := disabled.Steps[0]; disabled.Status != flux.StatusCompleted || s.Status != flux.StatusSkipped || len(s.Attempts) != 0 {
		t.Errorf("disabled: run %s, send %s with %d attempts; want completed, skipped with 0", disabled.Status, s.Status, len(s.Attempts))
	}
	if disabled.Data.Sent {
		t.Error("disabled: Data.Sent is true")
	}
	if s := enabled.Steps[0]; enabled.Status != flux.StatusCompleted || s.Status != flux.StatusCompleted || len(s.Attempts) != 1 {
		t.Errorf("enabled: run %s, send %s with %d attempts; want completed, completed with 1", enabled.Status, s.Status, len(s.Attempts))
	}
	if !enabled.Data.Sent {
		t.Error("enabled: Data.Sent is false")
	}
	if got := n.Sent(); !slices.Equal(got, []string{"u_2"}) {
		t.Errorf("notified %v, want [u_2]", got)
	}
	if !strings.Contains(out.String(), "send skipped") {
		t.Errorf("output does not show the skipped send:\n%s", out.String())
	}
}
