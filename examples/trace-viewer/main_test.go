package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flux-go/flux/tracefile"
)

func TestTraceViewer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	var out bytes.Buffer
	if err := run(context.Background(), path, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "flux dev --trace "+path) {
		t.Errorf("output does not tell the flux dev command:\n%s", out.String())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Per run: the last status of each step.
	status := map[string]map[string]string{}
	workflows := map[string]string{}
	retries := 0
	r := tracefile.NewReader(f)
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("line %d: %v", r.Line(), err)
		}
		workflows[rec.WorkflowID] = rec.WorkflowName
		if rec.StepName == "" {
			continue
		}
		if status[rec.WorkflowID] == nil {
			status[rec.WorkflowID] = map[string]string{}
		}
		switch rec.Type {
		case "step:complete":
			status[rec.WorkflowID][rec.StepName] = "completed"
		case "step:skipped":
			status[rec.WorkflowID][rec.StepName] = "skipped"
		case "step:retry":
			retries++
		}
	}
	if len(workflows) != 4 {
		t.Fatalf("trace has %d runs, want 4", len(workflows))
	}
	taken := map[string]int{}
	for id, steps := range status {
		if workflows[id] != "event-routing" {
			continue
		}
		done := 0
		for _, route := range []string{"auto-handle", "manual-review", "risk-audit"} {
			switch steps[route] {
			case "completed":
				done++
				taken[route]++
			case "skipped":
			default:
				t.Errorf("run %s: route %s is %q, want completed or skipped", id, route, steps[route])
			}
		}
		if done != 1 || steps["notify"] != "completed" {
			t.Errorf("run %s: %d routes completed and notify %q; want exactly one and completed", id, done, steps["notify"])
		}
	}
	if len(taken) != 3 {
		t.Errorf("routes taken %v, want each of the three once", taken)
	}
	if retries != 2 {
		t.Errorf("trace has %d step:retry events, want 2 (charge failed twice)", retries)
	}
}
