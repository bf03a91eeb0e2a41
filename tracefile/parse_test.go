package tracefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flux-go/flux"
)

func TestParseLineRejects(t *testing.T) {
	t.Parallel()
	deep := `{"type":"step:start","workflowId":"r","meta":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`
	tests := []struct {
		line    string
		want    error
		mention string // the error must say this
	}{
		{``, ErrInvalidJSON, "empty"},
		{`   `, ErrInvalidJSON, "empty"},
		{`{"type":"step:start"`, ErrInvalidJSON, "at byte 20"},
		{`{"type":"step:start","workflowId":"r"`, ErrInvalidJSON, "want ',' or '}'"},
		{`{"type":"step:start","workflowId":"r"} {}`, ErrInvalidJSON, "after the object"},
		{`{"type":"step:start","workflowId":"r",}`, ErrInvalidJSON, "want an object key"},
		{`{"type":"step:start" "workflowId":"r"}`, ErrInvalidJSON, "at byte 21"},
		{`{"type" "step:start"}`, ErrInvalidJSON, "want ':'"},
		{`{'type':"step:start"}`, ErrInvalidJSON, "at byte 1"},
		{`{"type":"step:start","workflowId":"r","stepIndex":01}`, ErrInvalidJSON, "want ',' or '}'"},
		{`{"type":"step:start","workflowId":"r","duration":1.}`, ErrInvalidJSON, "after '.'"},
		{`{"type":"step:start","workflowId":"r","duration":-}`, ErrInvalidJSON, "want a digit"},
		{`{"type":"step:start","workflowId":"r","commit":tru}`, ErrInvalidJSON, `want "true"`},
		{`{"type":"step:start","workflowId":"r","error":"a\qb"}`, ErrInvalidJSON, "escape"},
		{`{"type":"step:start","workflowId":"r","error":"\u12"}`, ErrInvalidJSON, `\u escape`},
		{"{\"type\":\"step:start\",\"workflowId\":\"r\",\"error\":\"a\tb\"}", ErrInvalidJSON, "control character"},
		{`{"type":"step:start","workflowId":"r","input":{"a":[1,2}}`, ErrInvalidJSON, "want ',' or ']'"},
		{`{"type":"step:start","workflowId":"r","x":[1,2,]}`, ErrInvalidJSON, "want a value"},
		{"{\"type\":\"step:start\",\"workflowId\":\"r\"}\xff", ErrInvalidJSON, "byte 0xff"},
		{deep, ErrInvalidJSON, "nesting deeper"},
		{`[{"type":"step:start"}]`, ErrInvalidRecord, "an array, not a JSON object"},
		{`"step:start"`, ErrInvalidRecord, "a string"},
		{`{}`, ErrInvalidRecord, `no "type"`},
		{`{"type":"","workflowId":"r"}`, ErrInvalidRecord, `no "type"`},
		{`{"type":"step:start"}`, ErrInvalidRecord, `no "workflowId"`},
		{`{"type":7,"workflowId":"r"}`, ErrInvalidRecord, `"type" is a number, want a string`},
		{`{"type":"step:start","workflowId":{"id":1}}`, ErrInvalidRecord, `"workflowId" is an object`},
		{`{"type":"step:start","workflowId":"r","stepIndex":"1"}`, ErrInvalidRecord, `"stepIndex" is a string, want a number`},
		{`{"type":"step:start","workflowId":"r","stepIndex":1.5}`, ErrInvalidRecord, "not an integer"},
		{`{"type":"step:start","workflowId":"r","retries":1e300}`, ErrInvalidRecord, "not an integer in range"},
		{`{"type":"step:start","workflowId":"r","timestamp":1e300}`, ErrInvalidRecord, "timestamp"},
		{`{"type":"step:start","workflowId":"r","duration":1e400}`, ErrInvalidRecord, "out of range"},
		{`{"type":"step:start","workflowId":"r","commit":"yes"}`, ErrInvalidRecord, "want a boolean"},
		// A syntax error anywhere wins over a field of the wrong type.
		{`{"type":7,"workflowId":"r",]`, ErrInvalidJSON, "at byte 27"},
	}
	for _, tt := range tests {
		rec, err := ParseLine([]byte(tt.line))
		if !errors.Is(err, tt.want) || !errors.Is(err, flux.ErrCorrupt) {
			t.Errorf("ParseLine(%.80q) error = %v, want %v", tt.line, err, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("ParseLine(%.80q) error %q does not mention %q", tt.line, err, tt.mention)
		}
		if !reflect.DeepEqual(rec, Record{}) {
			t.Errorf("ParseLine(%.80q) returned a record with its error: %+v", tt.line, rec)
		}
	}
}

func TestParseLineWarnings(t *testing.T) {
	t.Parallel()
	rec, err := ParseLine([]byte(`{"type":"step:paused","workflowId":"r","stepName":"s"}`))
	if !errors.Is(err, ErrUnknownType) || errors.Is(err, flux.ErrCorrupt) {
		t.Fatalf("unknown type: error %v, want ErrUnknownType only", err)
	}
	if rec.Type != "step:paused" || rec.StepName != "s" {
		t.Errorf("unknown type: record %+v not kept", rec)
	}
	rec, err = ParseLine([]byte("{\"type\":\"step:start\",\"workflowId\":\"r\",\"stepName\":\"a\xffb\xc3\",\"input\":{\"k\":\"\xfe\"}}"))
	if !errors.Is(err, ErrInvalidUTF8) || errors.Is(err, flux.ErrCorrupt) || !strings.Contains(err.Error(), "at byte 51") {
		t.Fatalf("invalid UTF-8: error %v, want ErrInvalidUTF8 at byte 51", err)
	}
	if rec.StepName != "a\uFFFDb\uFFFD" || string(rec.Input) != "{\"k\":\"\uFFFD\"}" {
		t.Errorf("invalid UTF-8 not replaced: %q %q", rec.StepName, rec.Input)
	}
	_, err = ParseLine([]byte("{\"type\":\"new\xff\",\"workflowId\":\"r\"}"))
	if !errors.Is(err, ErrInvalidUTF8) || !errors.Is(err, ErrUnknownType) {
		t.Errorf("both warnings: %v", err)
	}
}

func TestParseLineLenient(t *testing.T) {
	t.Parallel()
	line := ` {"typ\u0065":"step:retry", "workflowId":"r", "stepIndex":1e0, "retries":2.0, "timestamp":1795610935537.9,` +
		`"unknown":{"deep":[null,true,-0.5e-3]}, "error":"first", "error":"\ud83d\ude00 \ud800", "stack":null,` +
		`"input":null, "commit":null, "data" : [ 1 , { "a" : "b" } ] }` + "\r\n"
	rec, err := ParseLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Record{Type: "step:retry", WorkflowID: "r", StepIndex: intp(1), Retries: intp(2), Timestamp: 1795610935537,
		Error: "😀 \uFFFD", Data: json.RawMessage(`[1,{"a":"b"}]`)}
	if !reflect.DeepEqual(rec, want) {
		t.Errorf("got  %+v\nwant %+v", rec, want)
	}
}

// checkParseLine checks ParseLine's result for line against encoding/json,
// which serves as the oracle, and checks that a usable record survives
// being written and read again.
func checkParseLine(t *testing.T, line []byte) {
	rec, err := ParseLine(line)
	if valid := json.Valid(line); valid == errors.Is(err, ErrInvalidJSON) {
		t.Fatalf("json.Valid = %v but ParseLine error = %v for %q", valid, err, line)
	}
	if err != nil && !strings.Contains(err.Error(), ": ") {
		t.Fatalf("error without detail: %v", err)
	}
	if errors.Is(err, flux.ErrCorrupt) {
		if !reflect.DeepEqual(rec, Record{}) {
			t.Fatalf("record returned with %v: %+v", err, rec)
		}
		return
	}
	if rec.Type == "" || rec.WorkflowID == "" {
		t.Fatalf("usable record without type or workflowId: %+v (err %v)", rec, err)
	}
	if errors.Is(err, ErrInvalidUTF8) == utf8.Valid(line) {
		t.Fatalf("ErrInvalidUTF8 = %v but utf8.Valid = %v", errors.Is(err, ErrInvalidUTF8), utf8.Valid(line))
	}
	if errors.Is(err, ErrUnknownType) == isKnownType(rec.Type) {
		t.Fatalf("ErrUnknownType = %v for type %q", errors.Is(err, ErrUnknownType), rec.Type)
	}

	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("encoding/json cannot decode a line ParseLine accepted: %v", err)
	}
	str := func(key, got string) {
		want, _ := m[key].(string)
		if got != want {
			t.Fatalf("%s = %q, encoding/json says %q", key, got, want)
		}
	}
	str("type", rec.Type)
	str("workflowId", rec.WorkflowID)
	str("workflowName", rec.WorkflowName)
	str("stepName", rec.StepName)
	str("error", rec.Error)
	str("stack", rec.Stack)
	str("status", rec.Status)
	num := func(key string, got *float64, trunc bool) {
		n, ok := m[key].(json.Number)
		if !ok {
			if got != nil && *got != 0 {
				t.Fatalf("%s = %v, encoding/json says %v", key, *got, m[key])
			}
			return
		}
		want, _ := strconv.ParseFloat(string(n), 64)
		if trunc {
			want = math.Trunc(want)
		}
		if got == nil || *got != want {
			t.Fatalf("%s = %v, encoding/json says %s", key, got, n)
		}
	}
	f := func(p *int) *float64 {
		if p == nil {
			return nil
		}
		v := float64(*p)
		return &v
	}
	ts, attempt := float64(rec.Timestamp), float64(rec.Attempt)
	num("timestamp", &ts, true)
	num("attempt", &attempt, false)
	num("stepIndex", f(rec.StepIndex), false)
	num("retries", f(rec.Retries), false)
	num("maxRetries", f(rec.MaxRetries), false)
	num("duration", rec.Duration, false)
	if commit, _ := m["commit"].(bool); commit != rec.Commit {
		t.Fatalf("commit = %v, encoding/json says %v", rec.Commit, m["commit"])
	}
	raw := func(key string, got json.RawMessage) {
		if m[key] == nil {
			if got != nil {
				t.Fatalf("%s = %s, encoding/json says null or absent", key, got)
			}
			return
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(got))
		d.UseNumber()
		if err := d.Decode(&v); err != nil || !reflect.DeepEqual(v, m[key]) {
			t.Fatalf("%s = %s (%v), encoding/json says %#v", key, got, err, m[key])
		}
	}
	raw("input", rec.Input)
	raw("data", rec.Data)
	raw("meta", rec.Meta)

	out := rec.AppendJSON(nil)
	if !json.Valid(out) || !utf8.Valid(out) || bytes.ContainsAny(out, "\r\n") {
		t.Fatalf("re-encoded record is not one valid line: %q", out)
	}
	again, err := ParseLine(out)
	if err != nil && !errors.Is(err, ErrUnknownType) {
		t.Fatalf("re-encoded record %s does not parse: %v", out, err)
	}
	if !reflect.DeepEqual(again, rec) {
		t.Fatalf("round trip changed the record:\n was %+v\n now %+v\nline %s", rec, again, out)
	}
}

func isKnownType(t string) bool {
	_, ok := eventTypes[t]
	return ok
}

func TestParseLineAgainstEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, line := range seedLines(t) {
		checkParseLine(t, line)
	}
	for _, line := range fuzzSeeds {
		checkParseLine(t, []byte(line))
	}
}

var fuzzSeeds = []string{
	``,
	`{}`,
	`[]`,
	`null`,
	`{"type":"step:start","workflowId":"r"}`,
	`{"type":"x","workflowId":"r","meta":{"a":[1,{"b":null}],"c":"\u00e9\ud83d\ude00"}}`,
	`{"type":"step:retry","workflowId":"r","stepIndex":-0,"retries":1e2,"duration":-1.5E-9,"timestamp":12.9}`,
	`{"typ\u0065":"step:start","workflowId":"r","workflowId":null,"workflowId":"s"}`,
	"{\"type\":\"step:start\",\"workflowId\":\"r\xff\",\"input\":\"\xc3\"}",
	`{"type":"step:start","workflowId":"r","stepIndex":"1"}`,
	`{"type":"step:start","workflowId":"r","commit":true,"stack":"a\nb"}`,
	`{"type":"step:start","workflowId":"r","input":[[[[[]]]]],"data":{"":""}}`,
	`{"type":"step:start","workflowId":"r"`,
	"{\"type\":\"\u2028\",\"workflowId\":\"\\u2029\"}",
}

// FuzzParseLine checks that ParseLine never panics, agrees with
// encoding/json on what is valid JSON and on every field's value, and that
// what it accepts round-trips through AppendJSON.
func FuzzParseLine(f *testing.F) {
	for _, line := range seedLines(f) {
		f.Add(line)
	}
	for _, line := range fuzzSeeds {
		f.Add([]byte(line))
	}
	f.Fuzz(checkParseLine)
}
