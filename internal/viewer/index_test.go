package viewer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

const (
	seedManual = "21fba1e4-6c24-44aa-9002-b4613f11ff33"
	seedAuto   = "4b8147ad-e36b-43df-a8fe-c00f9d52b6b4"
	seedOrder  = "d2b004bb-5489-4fcb-bfc4-243db1e692b1"
	seedImage  = "3ef975b6-db30-458f-8bb3-8d2047bb3941"
)

func ids(p *Page) []string {
	var out []string
	for _, r := range p.Runs {
		out = append(out, r.ID)
	}
	return out
}

func nodeByName(t *testing.T, d *RunDetail, name string) Node {
	t.Helper()
	for _, n := range d.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("run %s has no node %q; nodes: %+v", d.ID, name, d.Nodes)
	return Node{}
}

func TestSeedTraceRuns(t *testing.T) {
	t.Parallel()
	src := openTrace(t, seedTrace(t), TraceOptions{})
	ready(t, src)
	ctx := context.Background()
	p, err := src.Runs(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(p), []string{seedImage, seedOrder, seedAuto, seedManual}; !slices.Equal(got, want) {
		t.Fatalf("runs newest first = %v, want %v", got, want)
	}
	if p.Total != 4 || p.Counts[flux.StatusCompleted] != 3 || p.Counts[flux.StatusFailed] != 1 {
		t.Errorf("total %d, counts %v; want 4 runs, 3 completed, 1 failed", p.Total, p.Counts)
	}
	img := p.Runs[0]
	if img.Status != flux.StatusFailed || img.FailedStep != "validate" || img.Error != "File too large" || img.Workflow != "image-processing" {
		t.Errorf("image run = %+v, want failed at validate with File too large", img)
	}
	if want := []string{"event-routing", "image-processing", "order-fulfillment"}; !slices.Equal(p.Workflows, want) {
		t.Errorf("workflows = %v, want %v", p.Workflows, want)
	}
	if p.Runs[1].Retries != 2 || p.Runs[1].Attempts != 6 {
		t.Errorf("order run: %d retries, %d attempts; want 2 retries of charge and 6 finished attempts", p.Runs[1].Retries, p.Runs[1].Attempts)
	}
	st := src.State(ctx)
	if st.Lines != 39 || st.Runs != 4 || st.ProblemCount != 0 {
		t.Errorf("state = %+v, want 39 lines, 4 runs, no problems", st)
	}
}

func TestSeedTraceOrderAttempts(t *testing.T) {
	t.Parallel()
	src := openTrace(t, seedTrace(t), TraceOptions{})
	ready(t, src)
	d, err := src.Run(context.Background(), seedOrder)
	if err != nil {
		t.Fatal(err)
	}
	charge := nodeByName(t, d, "charge")
	if len(charge.Attempts) != 3 {
		t.Fatalf("charge has %d attempts, want 3: %+v", len(charge.Attempts), charge.Attempts)
	}
	for i, want := range []flux.Status{flux.StatusFailed, flux.StatusFailed, flux.StatusCompleted} {
		a := charge.Attempts[i]
		if a.Number != i+1 || a.Status != want {
			t.Errorf("attempt %d = #%d %s, want #%d %s", i, a.Number, a.Status, i+1, want)
		}
		if want == flux.StatusFailed && a.Error != "payment gateway timeout" {
			t.Errorf("attempt %d error = %q", i+1, a.Error)
		}
	}
	// The original engine traces one step:start per node: attempts 2 and 3
	// are drawn from the end of the one before.
	if charge.Attempts[0].Estimated || !charge.Attempts[1].Estimated || !charge.Attempts[2].Estimated {
		t.Errorf("estimated flags = %v %v %v, want false true true", charge.Attempts[0].Estimated, charge.Attempts[1].Estimated, charge.Attempts[2].Estimated)
	}
	if a := charge.Attempts[2]; a.StartMs != 1795610936540 || a.EndMs != 1795610938543 || a.DurationMs != 2003 {
		t.Errorf("attempt 3 spans %d..%d (%v ms), want 1795610936540..1795610938543 (2003 ms)", a.StartMs, a.EndMs, a.DurationMs)
	}
	if charge.Status != flux.StatusCompleted || d.Status != flux.StatusCompleted {
		t.Errorf("charge %s, run %s; want both completed", charge.Status, d.Status)
	}
	if reserve := nodeByName(t, d, "reserve"); reserve.Kind != flux.KindCommit {
		t.Errorf("reserve kind = %s, want commit", reserve.Kind)
	}
	if len(d.Events) != 12 || d.Events[0].Line != 25 || d.Events[11].Line != 36 {
		t.Errorf("events: %d, lines %d..%d; want 12 from line 25 to 36", len(d.Events), d.Events[0].Line, d.Events[len(d.Events)-1].Line)
	}
	var in map[string]any
	if err := json.Unmarshal(d.Input, &in); err != nil || in["orderId"] != "ORD-001" {
		t.Errorf("input = %s (%v), want the order", d.Input, err)
	}
	if !bytes.Contains(d.Data, []byte(`"paymentId":"P-9"`)) {
		t.Errorf("data = %s, want the final data", d.Data)
	}
}

func TestSeedTraceRoutingSkips(t *testing.T) {
	t.Parallel()
	src := openTrace(t, seedTrace(t), TraceOptions{})
	ready(t, src)
	for id, taken := range map[string]string{seedManual: "manual-review", seedAuto: "auto-handle"} {
		d, err := src.Run(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, route := range []string{"auto-handle", "manual-review", "risk-audit"} {
			n := nodeByName(t, d, route)
			want := flux.StatusSkipped
			if route == taken {
				want = flux.StatusCompleted
			}
			if n.Status != want || !n.Conditional {
				t.Errorf("run %s: %s is %s (conditional %v), want %s and conditional", id, route, n.Status, n.Conditional, want)
			}
			if want == flux.StatusSkipped && len(n.Attempts) != 0 {
				t.Errorf("run %s: skipped %s has attempts %+v", id, route, n.Attempts)
			}
		}
		if n := nodeByName(t, d, "classify"); n.Conditional {
			t.Errorf("classify marked conditional")
		}
		if n := nodeByName(t, d, "notify"); n.Kind != flux.KindCommit || n.Status != flux.StatusCompleted {
			t.Errorf("notify = %s %s, want a completed commit", n.Kind, n.Status)
		}
	}
	d, err := src.Run(context.Background(), seedImage)
	if err != nil {
		t.Fatal(err)
	}
	v := nodeByName(t, d, "validate")
	if d.Status != flux.StatusFailed || v.Status != flux.StatusFailed || len(v.Attempts) != 1 || v.Attempts[0].Error != "File too large" {
		t.Errorf("image run %s, validate %s %+v; want failed with File too large", d.Status, v.Status, v.Attempts)
	}
	if _, err := src.Run(context.Background(), "nope"); !errors.Is(err, flux.ErrRunNotFound) {
		t.Errorf("unknown run: %v, want ErrRunNotFound", err)
	}
}

// TestSplitIndexMatchesWhole indexes one file with every split between a
// tail read first and a head read in batches, and wants the same answers
// as from reading it whole.
func TestSplitIndexMatchesWhole(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := genTrace(f, 40, 7); err != nil {
		t.Fatal(err)
	}
	// Malformed lines in the middle, so problems are numbered across the split.
	f.WriteString("not json\n{\"type\":\"step:start\",\"timestamp\":1,\"workflowName\":\"x\"}\n")
	if _, _, err := genTrace(f, 20, 8); err != nil {
		t.Fatal(err)
	}
	f.Close()
	size := fileSize(t, path)
	snapshot := func(src *TraceSource) string {
		ready(t, src)
		ctx := context.Background()
		var b strings.Builder
		p, err := src.Runs(ctx, Query{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		p.Partial = false
		j, _ := json.Marshal(p)
		b.Write(j)
		for _, id := range ids(p) {
			d, err := src.Run(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			j, _ := json.Marshal(d)
			b.Write(j)
		}
		st := src.State(ctx)
		j, _ = json.Marshal(st.Problems)
		fmt.Fprintf(&b, "%s lines=%d runs=%d", j, st.Lines, st.Runs)
		return b.String()
	}
	whole := snapshot(openTrace(t, path, TraceOptions{TailWindow: size + 1}))
	if !strings.Contains(whole, `"line":`) || strings.Count(whole, `"reason"`) != 2 {
		t.Fatalf("the whole-file index should report 2 problems with line numbers: %s", whole[len(whole)-400:])
	}
	for _, window := range []int64{1, 300, size / 3, size / 2, size - 10} {
		for _, batch := range []int{1, 7, 1000} {
			got := snapshot(openTrace(t, path, TraceOptions{TailWindow: window, BatchLines: batch}))
			if got != whole {
				t.Errorf("tail window %d, batch %d: the index differs from the whole-file one", window, batch)
			}
		}
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestMalformedLinesReported(t *testing.T) {
	t.Parallel()
	seed, err := os.ReadFile(seedTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(seed), "\n")
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(l)
		switch i {
		case 0:
			b.WriteString("this is not JSON\n") // line 2
		case 5:
			b.WriteString(`{"type":"step:start","timestamp":1795610935531,"workflowId":"` + seedManual + `","workflowName":"event-routing","stepName":"x` + "\xff" + `","stepIndex":9}` + "\n") // line 8: invalid UTF-8, kept
		case 10:
			b.WriteString(`{"type":"step:teleport","timestamp":1795610935533,"workflowId":"` + seedManual + `","workflowName":"event-routing"}` + "\n") // line 14: unknown type, kept
		case 20:
			b.WriteString(`{"type":"step:start","timestamp":` + "\n")                                                  // line 25: cut short
			b.WriteString(`{"type":"step:start","timestamp":1,"data":"` + strings.Repeat("a", 1<<20+10) + `"}` + "\n") // line 26: too long
		}
	}
	path := filepath.Join(t.TempDir(), "bad.ndjson")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{TailWindow: 2000})
	ready(t, src)
	ctx := context.Background()
	st := src.State(ctx)
	got := map[int]string{}
	for _, p := range st.Problems {
		got[p.Line] = p.Reason
	}
	for line, want := range map[int]string{2: "invalid JSON", 8: "UTF-8", 14: "unknown event type", 25: "invalid JSON", 26: "too long"} {
		if !strings.Contains(got[line], want) {
			t.Errorf("line %d: problem %q, want one mentioning %q (all: %v)", line, got[line], want, got)
		}
	}
	if st.ProblemCount != 5 {
		t.Errorf("%d problems, want 5: %v", st.ProblemCount, st.Problems)
	}
	p, err := src.Runs(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Runs) != 4 {
		t.Fatalf("%d runs, want the seed's 4 despite the bad lines", len(p.Runs))
	}
	d, err := src.Run(ctx, seedManual)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range d.Events {
		types = append(types, e.Type)
	}
	if !slices.Contains(types, "step:teleport") || len(d.Events) != 14 {
		t.Errorf("run events %v: want the seed's 12 plus the two usable warned lines", types)
	}
	if n := nodeByName(t, d, "manual-review"); n.Status != flux.StatusCompleted {
		t.Errorf("manual-review %s, want completed", n.Status)
	}
}

func TestPaginationFiltersSearch(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := genTrace(f, 130, 3)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	ctx := context.Background()
	var all []string
	q := Query{Limit: 50}
	for range 10 {
		p, err := src.Runs(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 130 {
			t.Fatalf("total %d, want 130", p.Total)
		}
		for i := 1; i < len(p.Runs); i++ {
			if p.Runs[i].StartedAt > p.Runs[i-1].StartedAt {
				t.Fatalf("page not newest first at %d: %d after %d", i, p.Runs[i].StartedAt, p.Runs[i-1].StartedAt)
			}
		}
		all = append(all, ids(p)...)
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if len(all) != 130 || len(want) != 130 {
		t.Fatalf("paged through %d runs, want 130", len(all))
	}
	seen := map[string]bool{}
	for _, id := range all {
		if seen[id] {
			t.Fatalf("run %s on two pages", id)
		}
		seen[id] = true
		if _, ok := want[id]; !ok {
			t.Fatalf("unknown run %s", id)
		}
	}

	failed, err := src.Runs(ctx, Query{Status: []flux.Status{flux.StatusFailed}, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	nFailed := 0
	for _, s := range want {
		if s == flux.StatusFailed {
			nFailed++
		}
	}
	if len(failed.Runs) != nFailed || failed.Counts[flux.StatusFailed] != nFailed || failed.Counts[flux.StatusCompleted] != 130-nFailed {
		t.Errorf("failed filter: %d runs, counts %v; want %d failed", len(failed.Runs), failed.Counts, nFailed)
	}
	for _, r := range failed.Runs {
		if want[r.ID] != flux.StatusFailed {
			t.Errorf("run %s in the failed filter is %s", r.ID, want[r.ID])
		}
	}
	wf, _ := src.Runs(ctx, Query{Workflow: "order-fulfillment", Limit: 500})
	for _, r := range wf.Runs {
		if r.Workflow != "order-fulfillment" {
			t.Errorf("workflow filter returned %s", r.Workflow)
		}
	}
	if wf.Total == 0 || wf.Total >= 130 {
		t.Errorf("workflow filter total %d", wf.Total)
	}
	one := all[77]
	s, _ := src.Runs(ctx, Query{Search: strings.ToUpper(one)})
	if len(s.Runs) != 1 || s.Runs[0].ID != one {
		t.Errorf("search by ID %s = %v", one, ids(s))
	}
	s, _ = src.Runs(ctx, Query{Search: "OUT OF MEMORY"})
	if s.Total != nFailed {
		t.Errorf("search by error: %d runs, want %d", s.Total, nFailed)
	}
	if _, err := src.Runs(ctx, Query{Cursor: "garbage"}); !errors.Is(err, errBadQuery) {
		t.Errorf("bad cursor: %v, want errBadQuery", err)
	}
	if d, err := src.Run(ctx, all[0]); err != nil || reflect.DeepEqual(d.Nodes, []Node{}) {
		t.Errorf("run %s: %v", all[0], err)
	}
}
