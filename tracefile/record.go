package tracefile

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flux-go/flux"
)

// Record is one line of a trace file. Its JSON field names are the original
// engine's (SPEC §6), plus Flux's attempt and stack.
//
// Marshalling a Record (with encoding/json or [Record.AppendJSON]) writes
// commit on every step record, true or false, as the original engine did,
// and omits it on workflow records unless it is true. Input, Data and Meta
// are written compacted; one that is not valid JSON is written as a JSON
// string of its bytes, so a line is always valid JSON.
type Record struct {
	Type         string `json:"type"`
	Timestamp    int64  `json:"timestamp"` // Unix epoch milliseconds
	WorkflowID   string `json:"workflowId"`
	WorkflowName string `json:"workflowName"`
	StepName     string `json:"stepName,omitempty"`
	StepIndex    *int   `json:"stepIndex,omitempty"`
	Commit       bool   `json:"commit,omitempty"`
	// Retries is the number of retries so far: on step:retry the number of
	// the attempt that failed, otherwise the attempt's number minus one.
	Retries    *int            `json:"retries,omitempty"`
	MaxRetries *int            `json:"maxRetries,omitempty"`
	Attempt    int             `json:"attempt,omitempty"`  // 1-based; Flux only
	Duration   *float64        `json:"duration,omitempty"` // milliseconds
	Error      string          `json:"error,omitempty"`
	Stack      string          `json:"stack,omitempty"` // Flux only
	Status     string          `json:"status,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Meta       json.RawMessage `json:"meta,omitempty"`
}

// eventNums backs the pointer fields of a Record made from an event, so
// that one allocation (or none, with a pooled one) serves them all.
type eventNums struct {
	index, retries, maxRetries int
	duration                   float64
}

// FromEvent converts an engine trace event to its trace-file record. The
// record shares ev's Input and Data. A zero ev.Time is taken as now.
//
// Step events get stepIndex, commit, retries (see [Record.Retries]) and
// maxRetries; workflow events get none of them. Every event but
// workflow:start and step:start gets a duration, in milliseconds with
// microsecond precision.
func FromEvent(ev flux.TraceEvent) Record {
	return fromEvent(&ev, new(eventNums))
}

func fromEvent(ev *flux.TraceEvent, n *eventNums) Record {
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	r := Record{
		Type:         string(ev.Type),
		Timestamp:    t.UnixMilli(),
		WorkflowID:   ev.RunID,
		WorkflowName: ev.Workflow,
		StepName:     ev.Step,
		Commit:       ev.Commit,
		Attempt:      ev.Attempt,
		Error:        ev.Err,
		Stack:        ev.Stack,
		Status:       string(ev.Status),
		Input:        ev.Input,
		Data:         ev.Data,
	}
	if ev.Step != "" || strings.HasPrefix(r.Type, "step:") {
		if ev.Index >= 0 {
			n.index = ev.Index
			r.StepIndex = &n.index
		}
		n.retries = max(ev.Attempt-1, 0)
		if ev.Type == flux.EventStepRetry {
			n.retries = ev.Attempt
		}
		r.Retries = &n.retries
		n.maxRetries = ev.MaxRetries
		r.MaxRetries = &n.maxRetries
	}
	if ev.Type != flux.EventWorkflowStart && ev.Type != flux.EventStepStart {
		n.duration = float64(ev.Duration.Microseconds()) / 1000
		r.Duration = &n.duration
	}
	return r
}

// isStep reports whether r is about a step rather than a whole run.
func (r *Record) isStep() bool {
	return r.StepName != "" || r.StepIndex != nil || strings.HasPrefix(r.Type, "step:")
}

// MarshalJSON encodes r as one line of a trace file, without the newline.
func (r Record) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(nil), nil
}

// AppendJSON appends r, encoded as one line of a trace file without the
// newline, to b and returns the extended buffer.
func (r Record) AppendJSON(b []byte) []byte {
	step := r.isStep()
	b = append(b, `{"type":`...)
	b = appendString(b, r.Type)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Timestamp, 10)
	b = append(b, `,"workflowId":`...)
	b = appendString(b, r.WorkflowID)
	b = append(b, `,"workflowName":`...)
	b = appendString(b, r.WorkflowName)
	if r.StepName != "" {
		b = append(b, `,"stepName":`...)
		b = appendString(b, r.StepName)
	}
	if r.StepIndex != nil {
		b = append(b, `,"stepIndex":`...)
		b = strconv.AppendInt(b, int64(*r.StepIndex), 10)
	}
	if r.Commit || step {
		b = append(b, `,"commit":`...)
		b = strconv.AppendBool(b, r.Commit)
	}
	if r.Retries != nil {
		b = append(b, `,"retries":`...)
		b = strconv.AppendInt(b, int64(*r.Retries), 10)
	}
	if r.MaxRetries != nil {
		b = append(b, `,"maxRetries":`...)
		b = strconv.AppendInt(b, int64(*r.MaxRetries), 10)
	}
	if r.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(r.Attempt), 10)
	}
	// The original engine put a step's status last and a run's before its
	// duration; keeping its order makes its traces round-trip byte for byte.
	if !step && r.Status != "" {
		b = append(b, `,"status":`...)
		b = appendString(b, r.Status)
	}
	if r.Duration != nil && !math.IsNaN(*r.Duration) && !math.IsInf(*r.Duration, 0) {
		b = append(b, `,"duration":`...)
		b = appendFloat(b, *r.Duration)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if step && r.Status != "" {
		b = append(b, `,"status":`...)
		b = appendString(b, r.Status)
	}
	if len(r.Input) > 0 {
		b = append(b, `,"input":`...)
		b = appendRaw(b, r.Input)
	}
	if len(r.Data) > 0 {
		b = append(b, `,"data":`...)
		b = appendRaw(b, r.Data)
	}
	if len(r.Meta) > 0 {
		b = append(b, `,"meta":`...)
		b = appendRaw(b, r.Meta)
	}
	if r.Stack != "" {
		b = append(b, `,"stack":`...)
		b = appendString(b, r.Stack)
	}
	return append(b, '}')
}

// appendFloat formats f as encoding/json does.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// appendRaw appends the JSON value raw compacted to one line, or, if raw is
// not one valid JSON value, raw's bytes as a JSON string.
func appendRaw(b []byte, raw []byte) []byte {
	n := len(b)
	end, err := scanValue(raw, skipWS(raw, 0), 1, &b)
	if err == nil && skipWS(raw, end) == len(raw) {
		return b
	}
	return appendString(b[:n], string(raw))
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// U+2028 and U+2029 are escaped for JavaScript readers.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
