package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/flux-go/flux"
)

// row is one node's line of the demo's table.
type row struct {
	kind, status string
	attempts     int
}

// parseTable reads the rows after the STEP header of the demo's output.
func parseTable(t *testing.T, out string) map[string]row {
	t.Helper()
	rows := make(map[string]row)
	lines := strings.Split(out, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "STEP ") })
	if i < 0 {
		t.Fatalf("no table header in output:\n%s", out)
	}
	for _, l := range lines[i+1:] {
		f := strings.Fields(l)
		if len(f) != 5 {
			break
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			t.Fatalf("attempts column of %q: %v", l, err)
		}
		rows[f[0]] = row{kind: f[1], status: f[2], attempts: n}
	}
	return rows
}

// TestDemo runs `flux demo` in a synctest bubble, so the backoff between
// charge attempts takes no real time.
func TestDemo(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var out strings.Builder
		if err := demo(t.Context(), &out, []string{"--storage", "memory"}); err != nil {
			t.Fatalf("demo: %v\n%s", err, out.String())
		}
		got := parseTable(t, out.String())
		want := map[string]string{"validate": "step", "charge": "step", "reserve": "commit", "notify": "commit"}
		if len(got) != len(want) {
			t.Errorf("table has %d rows, want %d:\n%s", len(got), len(want), out.String())
		}
		for name, kind := range want {
			r, ok := got[name]
			if !ok || r.kind != kind || r.status != string(flux.StatusCompleted) || r.attempts < 1 {
				t.Errorf("row %s = %+v (present %t), want %s completed", name, r, ok, kind)
			}
		}
		if a := got["charge"].attempts; a != 3 {
			t.Errorf("charge shows %d attempts, want 3 (2 gateway failures + 1)", a)
		}
		if !strings.Contains(out.String(), "status completed") || !strings.Contains(out.String(), "workflow order-fulfillment") {
			t.Errorf("run line missing or not completed:\n%s", out.String())
		}
		if !strings.Contains(out.String(), "3 gateway calls, 1 charge") {
			t.Errorf("output does not show one charge for three calls:\n%s", out.String())
		}
	})
}

// TestDemoChargeFails checks that a gateway failing more often than charge
// retries fails the run, prints the failed table and returns an error.
func TestDemoChargeFails(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var out strings.Builder
		err := demo(t.Context(), &out, []string{"--storage", "memory", "-failures", "4"})
		if err == nil || !strings.Contains(err.Error(), "failed") {
			t.Fatalf("demo -failures 4: err = %v, want the run failed", err)
		}
		got := parseTable(t, out.String())
		if r := got["charge"]; r.status != string(flux.StatusFailed) || r.attempts != 4 {
			t.Errorf("charge row = %+v, want failed after 4 attempts", r)
		}
		for _, name := range []string{"reserve", "notify"} {
			if r := got[name]; r.status != string(flux.StatusPending) || r.attempts != 0 {
				t.Errorf("%s row = %+v, want pending with 0 attempts", name, r)
			}
		}
		if !strings.Contains(out.String(), "error: ") {
			t.Errorf("output does not show the run's error:\n%s", out.String())
		}
	})
}

func TestDemoBadArguments(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-failures", "-1"}, {"extra"}} {
		var out strings.Builder
		if err := demo(t.Context(), &out, args); err == nil {
			t.Errorf("demo %q: no error", args)
		}
		if out.Len() != 0 {
			t.Errorf("demo %q printed %q before rejecting its arguments", args, out.String())
		}
	}
}

func TestDemoRegistered(t *testing.T) {
	t.Parallel()
	if !slices.ContainsFunc(commands, func(c command) bool { return c.name == "demo" && c.summary != "" }) {
		t.Error("demo is not registered")
	}
}
