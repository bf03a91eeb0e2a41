package tracefile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flux-go/flux"
)

// seedPath is the trace the original TypeScript engine wrote (a copy of
// shared/testdata/seed-trace.ndjson).
const seedPath = "../testdata/seed-trace.ndjson"

func seedLines(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(seedPath)
	if err != nil {
		t.Fatalf("reading the seed trace: %v", err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if len(lines) == 0 {
		t.Fatal("the seed trace is empty")
	}
	return lines
}

// The original engine's lines decode and encode back byte for byte: same
// field names, order, commit:false on steps, integer milliseconds.
func TestSeedLinesRoundTripExactly(t *testing.T) {
	t.Parallel()
	for i, line := range seedLines(t) {
		rec, err := ParseLine(line)
		if err != nil {
			t.Fatalf("seed line %d: %v", i+1, err)
		}
		if got := rec.AppendJSON(nil); !bytes.Equal(got, line) {
			t.Errorf("seed line %d re-encoded differently:\n got %s\nwant %s", i+1, got, line)
		}
		viaStd, err := json.Marshal(rec)
		if err != nil || !bytes.Equal(viaStd, line) {
			t.Errorf("seed line %d through encoding/json: %s, %v", i+1, viaStd, err)
		}
	}
}

func intp(n int) *int           { return &n }
func floatp(f float64) *float64 { return &f }

func TestFromEvent(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1795610935537).Add(400 * time.Microsecond)
	base := flux.TraceEvent{Time: at, RunID: "r1", Workflow: "order", Index: -1}
	step := base
	step.Step, step.Index, step.MaxRetries, step.Status = "charge", 1, 3, flux.StatusRunning
	tests := []struct {
		name string
		ev   func(flux.TraceEvent) flux.TraceEvent
		from flux.TraceEvent
		want Record
	}{
		{"workflow start", func(e flux.TraceEvent) flux.TraceEvent {
			e.Type, e.Status, e.Input = flux.EventWorkflowStart, flux.StatusRunning, json.RawMessage(`{"orderId":"A"}`)
			return e
		}, base, Record{Type: "workflow:start", Status: "running", Input: json.RawMessage(`{"orderId":"A"}`)}},
		{"workflow error", func(e flux.TraceEvent) flux.TraceEvent {
			e.Type, e.Status, e.Duration, e.Err, e.Stack = flux.EventWorkflowError, flux.StatusFailed, 3007*time.Millisecond, "boom", "goroutine 1"
			e.Data = json.RawMessage(`{}`)
			return e
		}, base, Record{Type: "workflow:error", Status: "failed", Duration: floatp(3007), Error: "boom", Stack: "goroutine 1", Data: json.RawMessage(`{}`)}},
		{"step start", func(e flux.TraceEvent) flux.TraceEvent {
			e.Type, e.Attempt = flux.EventStepStart, 1
			return e
		}, step, Record{Type: "step:start", StepName: "charge", StepIndex: intp(1), Retries: intp(0), MaxRetries: intp(3), Attempt: 1, Status: "running"}},
		{"step retry counts the failed attempt", func(e flux.TraceEvent) flux.TraceEvent {
			e.Type, e.Attempt, e.Duration, e.Err = flux.EventStepRetry, 2, 1500*time.Microsecond, "timeout"
			return e
		}, step, Record{Type: "step:retry", StepName: "charge", StepIndex: intp(1), Retries: intp(2), MaxRetries: intp(3), Attempt: 2, Duration: floatp(1.5), Error: "timeout", Status: "running"}},
		{"step complete after two retries", func(e flux.TraceEvent) flux.TraceEvent {
			e.Type, e.Attempt, e.Duration, e.Commit = flux.EventStepComplete, 3, 3*time.Second, true
			return e
		}, step, Record{Type: "step:complete", StepName: "charge", StepIndex: intp(1), Commit: true, Retries: intp(2), MaxRetries: intp(3), Attempt: 3, Duration: floatp(3000), Status: "running"}},
		{"skipped step has no attempt", func(e flux.TraceEvent) flux.TraceEvent {
			e.Type, e.Status = flux.EventStepSkipped, flux.StatusSkipped
			return e
		}, step, Record{Type: "step:skipped", StepName: "charge", StepIndex: intp(1), Retries: intp(0), MaxRetries: intp(3), Duration: floatp(0), Status: "skipped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FromEvent(tt.ev(tt.from))
			want := tt.want
			want.Timestamp, want.WorkflowID, want.WorkflowName = 1795610935537, "r1", "order"
			if g, w := got.AppendJSON(nil), want.AppendJSON(nil); !bytes.Equal(g, w) {
				t.Errorf("FromEvent:\n got %s\nwant %s", g, w)
			}
		})
	}
}

// A step event encodes commit even when false, as the seed does; a
// workflow event has no step fields.
func TestEncodedFieldPresence(t *testing.T) {
	t.Parallel()
	st := string(FromEvent(flux.TraceEvent{Type: flux.EventStepStart, RunID: "r", Workflow: "w", Step: "s", Index: 0, Attempt: 1}).AppendJSON(nil))
	for _, want := range []string{`"stepName":"s"`, `"stepIndex":0`, `"commit":false`, `"retries":0`, `"attempt":1`} {
		if !strings.Contains(st, want) {
			t.Errorf("step:start line %s lacks %s", st, want)
		}
	}
	if strings.Contains(st, `"duration"`) {
		t.Errorf("step:start line %s has a duration", st)
	}
	wf := string(FromEvent(flux.TraceEvent{Type: flux.EventWorkflowComplete, RunID: "r", Workflow: "w", Index: -1, Status: flux.StatusCompleted}).AppendJSON(nil))
	for _, bad := range []string{"stepName", "stepIndex", "commit", "retries", "maxRetries", "attempt"} {
		if strings.Contains(wf, `"`+bad+`"`) {
			t.Errorf("workflow:complete line %s has %s", wf, bad)
		}
	}
	if !strings.Contains(wf, `"duration":0`) {
		t.Errorf("workflow:complete line %s lacks its duration", wf)
	}
}

func TestFromEventZeroTimeIsNow(t *testing.T) {
	t.Parallel()
	before := time.Now().UnixMilli()
	rec := FromEvent(flux.TraceEvent{Type: flux.EventStepStart, RunID: "r", Step: "s"})
	if after := time.Now().UnixMilli(); rec.Timestamp < before || rec.Timestamp > after {
		t.Errorf("timestamp %d, want between %d and %d", rec.Timestamp, before, after)
	}
}

// Hostile strings and payloads still give one valid JSON line that decodes
// to what was written.
func TestEncodeHostileValues(t *testing.T) {
	t.Parallel()
	name := "<img src=x onerror=alert(1)>\n\"quoted\"\\ \x00\x1f\t\r \u2028\u2029 é 😀"
	rec := Record{Type: "step:error", WorkflowID: "r\nx", WorkflowName: "w", StepName: name, StepIndex: intp(2),
		Error: "bad \xff byte", Stack: "line1\nline2",
		Input: json.RawMessage("{\n  \"a\": [1, 2],\n  \"s\": \"x\xffy\"\n}"),
		Data:  json.RawMessage(`{"unterminated": `),
		Meta:  json.RawMessage(`  "spaced"  `)}
	line := rec.AppendJSON(nil)
	if bytes.ContainsAny(line, "\n\r") || !json.Valid(line) || !utf8.Valid(line) {
		t.Fatalf("not one valid UTF-8 JSON line: %q", line)
	}
	got, err := ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	if got.StepName != name || got.WorkflowID != "r\nx" || got.Stack != "line1\nline2" {
		t.Errorf("strings changed: %q %q %q", got.StepName, got.WorkflowID, got.Stack)
	}
	if got.Error != "bad \uFFFD byte" {
		t.Errorf("invalid UTF-8 in error became %q, want U+FFFD in its place", got.Error)
	}
	if string(got.Input) != `{"a":[1,2],"s":"x`+"\uFFFD"+`y"}` {
		t.Errorf("input not compacted and repaired: %s", got.Input)
	}
	var s string
	if err := json.Unmarshal(got.Data, &s); err != nil || s != `{"unterminated": ` {
		t.Errorf("invalid data should be kept as a string, got %s (%v)", got.Data, err)
	}
	if string(got.Meta) != `"spaced"` {
		t.Errorf("meta = %s", got.Meta)
	}
	if bytes.Contains(line, []byte("\u2028")) {
		t.Errorf("U+2028 not escaped in %s", line)
	}
}

func TestEncodeNonFiniteDurationOmitted(t *testing.T) {
	t.Parallel()
	for _, d := range []float64{0, 1e-7, 1e21} {
		line := (&Record{Type: "step:complete", WorkflowID: "r", Duration: &d}).AppendJSON(nil)
		rec, err := ParseLine(line)
		if err != nil || rec.Duration == nil || *rec.Duration != d {
			t.Errorf("duration %g: line %s gives %v, %v", d, line, rec.Duration, err)
		}
	}
	inf := 1 / zero()
	line := (&Record{Type: "step:complete", WorkflowID: "r", Duration: &inf}).AppendJSON(nil)
	if !json.Valid(line) || bytes.Contains(line, []byte("duration")) {
		t.Errorf("infinite duration: %s", line)
	}
}

func zero() float64 { return 0 }

func TestErrorsAreClassified(t *testing.T) {
	t.Parallel()
	for _, err := range []error{ErrInvalidJSON, ErrInvalidRecord, ErrLineTooLong, ErrTruncated} {
		if !errors.Is(err, flux.ErrCorrupt) {
			t.Errorf("%v does not wrap flux.ErrCorrupt", err)
		}
	}
	for _, err := range []error{ErrUnknownType, ErrInvalidUTF8} {
		if errors.Is(err, flux.ErrCorrupt) {
			t.Errorf("warning %v wraps flux.ErrCorrupt", err)
		}
	}
}
