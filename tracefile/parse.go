package tracefile

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/flux-go/flux"
)

// Errors about a trace line. Those that wrap [flux.ErrCorrupt] mean the line
// was lost; the others are warnings that come with a usable Record.
var (
	// ErrInvalidJSON reports a line that is not valid JSON. The error says
	// at which byte of the line and why.
	ErrInvalidJSON = fmt.Errorf("%w: invalid JSON", flux.ErrCorrupt)
	// ErrInvalidRecord reports valid JSON that is not a trace record: not an
	// object, no type or workflowId, or a field of the wrong type.
	ErrInvalidRecord = fmt.Errorf("%w: not a trace record", flux.ErrCorrupt)
	// ErrLineTooLong reports a line longer than [MaxLineSize]; the reader
	// skips it.
	ErrLineTooLong = fmt.Errorf("%w: line too long", flux.ErrCorrupt)
	// ErrTruncated reports a last line without a newline that does not
	// parse, as left by a writer that was killed mid-line.
	ErrTruncated = fmt.Errorf("%w: truncated last line", flux.ErrCorrupt)

	// ErrUnknownType is a warning: the record's type is none of the event
	// types this version knows (perhaps a newer writer's). The Record is
	// returned with it and is usable.
	ErrUnknownType = errors.New("tracefile: unknown event type")
	// ErrInvalidUTF8 is a warning: the line has bytes that are not UTF-8.
	// The Record is returned with each such byte replaced by U+FFFD.
	ErrInvalidUTF8 = errors.New("tracefile: invalid UTF-8")
)

// eventTypes are the known event types, mapped to themselves so that
// parsing a known type allocates nothing.
var eventTypes = map[string]string{}

// statuses likewise.
var statuses = map[string]string{}

func init() {
	for _, t := range []flux.EventType{
		flux.EventWorkflowStart, flux.EventWorkflowComplete, flux.EventWorkflowError,
		flux.EventWorkflowCancelled, flux.EventStepStart, flux.EventStepComplete,
		flux.EventStepSkipped, flux.EventStepRetry, flux.EventStepError,
	} {
		eventTypes[string(t)] = string(t)
	}
	for _, s := range []flux.Status{
		flux.StatusPending, flux.StatusRunning, flux.StatusWaiting, flux.StatusCompleted,
		flux.StatusFailed, flux.StatusCancelled, flux.StatusSkipped,
	} {
		statuses[string(s)] = string(s)
	}
}

// ParseLine decodes one line of a trace file (with or without its newline).
//
// On success it returns the record and nil. A line that is not a record
// gives a zero Record and an error wrapping [ErrInvalidJSON] or
// [ErrInvalidRecord] (and so [flux.ErrCorrupt]) that says what is wrong and
// where. A record with a warning — [ErrUnknownType], [ErrInvalidUTF8] — is
// returned together with the warning: check errors.Is(err, flux.ErrCorrupt)
// to tell a lost line from a usable one.
//
// Fields other than those of [Record] are ignored; null counts as absent; a
// field given twice takes its last value. Numbers for the integer fields
// must be integral (1e3 is 1000); a fractional timestamp is truncated.
func ParseLine(line []byte) (Record, error) {
	var p parser
	return p.parse(line)
}

// parser decodes lines. Its intern table, when not nil, makes repeated
// workflow and step names share one string.
type parser struct {
	intern map[string]string
}

// maxInterned bounds the parser's intern table.
const maxInterned = 1 << 14

func (p *parser) parse(s []byte) (Record, error) {
	var rec Record
	var nums *recordNums
	validUTF8 := utf8.Valid(s)
	i := skipWS(s, 0)
	if i == len(s) {
		return Record{}, fmt.Errorf("%w: the line is empty", ErrInvalidJSON)
	}
	if s[i] != '{' {
		end, err := scanValue(s, i, 0, nil)
		if err != nil {
			return Record{}, fmt.Errorf("%w %w", ErrInvalidJSON, err)
		}
		if end = skipWS(s, end); end != len(s) {
			return Record{}, fmt.Errorf("%w %w", ErrInvalidJSON, errAt(end, "unexpected %s after the value", describe(s, end)))
		}
		return Record{}, fmt.Errorf("%w: the line is %s, not a JSON object", ErrInvalidRecord, kindOf(s[i]))
	}
	var fieldErr error
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		i++
	} else {
		for {
			if i >= len(s) || s[i] != '"' {
				return Record{}, fmt.Errorf("%w %w", ErrInvalidJSON, errAt(i, "unexpected %s: want an object key (a string)", describe(s, i)))
			}
			kstart := i
			var info strInfo
			var err error
			i, info, err = scanString(s, i, nil)
			if err != nil {
				return Record{}, fmt.Errorf("%w %w", ErrInvalidJSON, err)
			}
			key := s[kstart+1 : i-1]
			if info.escaped {
				key = []byte(unquote(key))
			}
			i = skipWS(s, i)
			if i >= len(s) || s[i] != ':' {
				return Record{}, fmt.Errorf("%w %w", ErrInvalidJSON, errAt(i, "unexpected %s after object key: want ':'", describe(s, i)))
			}
			i = skipWS(s, i+1)
			i, err = p.field(&rec, &nums, fieldName(key), s, i, validUTF8, &fieldErr)
			if err != nil {
				return Record{}, fmt.Errorf("%w %w", ErrInvalidJSON, err)
			}
			i = skipWS(s, i)
			if i < len(s) && s[i] == ',' {
				i = skipWS(s, i+1)
				continue
			}
			if i < len(s) && s[i] == '}' {
				i++
				break
			}
			return Record{}, fmt.Errorf("%w %w", ErrInvalidJSON, errAt(i, "unexpected %s: want ',' or '}'", describe(s, i)))
		}
	}
	if i = skipWS(s, i); i != len(s) {
		return Record{}, fmt.Errorf("%w %w", ErrInvalidJSON, errAt(i, "unexpected %s after the object", describe(s, i)))
	}
	if fieldErr != nil {
		return Record{}, fieldErr
	}
	switch {
	case rec.Type == "":
		return Record{}, fmt.Errorf("%w: it has no \"type\"", ErrInvalidRecord)
	case rec.WorkflowID == "":
		return Record{}, fmt.Errorf("%w: %s event has no \"workflowId\"", ErrInvalidRecord, strconv.Quote(rec.Type))
	}
	var warn error
	if !validUTF8 {
		at := 0
		for at < len(s) {
			r, size := utf8.DecodeRune(s[at:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			at += size
		}
		warn = fmt.Errorf("%w at byte %d: each invalid byte was replaced by U+FFFD", ErrInvalidUTF8, at)
	}
	if _, ok := eventTypes[rec.Type]; !ok {
		w := fmt.Errorf("%w %s: the record is kept as it is", ErrUnknownType, strconv.Quote(rec.Type))
		if warn == nil {
			warn = w
		} else {
			warn = errors.Join(warn, w)
		}
	}
	return rec, warn
}

func kindOf(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// field decodes the value of the field named key at s[i] into rec and
// returns the index after it. A syntax error is returned; a value of the
// wrong type is stored in *fieldErr (the first one wins) so that a syntax
// error later in the line is still reported as such.
func (p *parser) field(rec *Record, nums **recordNums, key string, s []byte, i int, validUTF8 bool, fieldErr *error) (int, error) {
	if key == "" {
		return scanValue(s, i, 1, nil)
	}
	wrongType := func(want string) (int, error) {
		end, err := scanValue(s, i, 1, nil)
		if err == nil && *fieldErr == nil {
			got := "a number"
			if i < len(s) {
				got = kindOf(s[i])
				if s[i] == '{' {
					got = "an object"
				}
			}
			*fieldErr = fmt.Errorf("%w: field %q is %s, want %s", ErrInvalidRecord, key, got, want)
		}
		return end, err
	}
	isNull := i+4 <= len(s) && string(s[i:i+4]) == "null"
	switch key {
	case "type", "workflowId", "workflowName", "stepName", "error", "stack", "status":
		var str string
		if isNull {
			i += 4
		} else if i < len(s) && s[i] == '"' {
			end, info, err := scanString(s, i, nil)
			if err != nil {
				return 0, err
			}
			str = p.str(key, s[i+1:end-1], info, validUTF8)
			i = end
		} else {
			return wrongType("a string")
		}
		switch key {
		case "type":
			rec.Type = str
		case "workflowId":
			rec.WorkflowID = str
		case "workflowName":
			rec.WorkflowName = str
		case "stepName":
			rec.StepName = str
		case "error":
			rec.Error = str
		case "stack":
			rec.Stack = str
		case "status":
			rec.Status = str
		}
		return i, nil
	case "timestamp", "stepIndex", "retries", "maxRetries", "attempt", "duration":
		if isNull {
			switch key {
			case "timestamp":
				rec.Timestamp = 0
			case "stepIndex":
				rec.StepIndex = nil
			case "retries":
				rec.Retries = nil
			case "maxRetries":
				rec.MaxRetries = nil
			case "attempt":
				rec.Attempt = 0
			case "duration":
				rec.Duration = nil
			}
			return i + 4, nil
		}
		if i >= len(s) || (s[i] != '-' && (s[i] < '0' || s[i] > '9')) {
			return wrongType("a number")
		}
		end, err := scanNumber(s, i)
		if err != nil {
			return 0, err
		}
		num := s[i:end]
		if key == "duration" {
			f, ok := parseFloat(num)
			if !ok {
				p.setErr(fieldErr, fmt.Errorf("%w: field \"duration\": number %s is out of range", ErrInvalidRecord, num))
				return end, nil
			}
			n := numsOf(nums)
			n.duration = f
			rec.Duration = &n.duration
			return end, nil
		}
		n, ok := parseInt(num, key == "timestamp")
		if key != "timestamp" && int64(int(n)) != n {
			ok = false
		}
		if !ok {
			want := "an integer"
			if key == "timestamp" {
				want = "a number"
			}
			p.setErr(fieldErr, fmt.Errorf("%w: field %q: %s is not %s in range", ErrInvalidRecord, key, num, want))
			return end, nil
		}
		switch key {
		case "timestamp":
			rec.Timestamp = n
		case "stepIndex":
			v := numsOf(nums)
			v.index = int(n)
			rec.StepIndex = &v.index
		case "retries":
			v := numsOf(nums)
			v.retries = int(n)
			rec.Retries = &v.retries
		case "maxRetries":
			v := numsOf(nums)
			v.maxRetries = int(n)
			rec.MaxRetries = &v.maxRetries
		case "attempt":
			rec.Attempt = int(n)
		}
		return end, nil
	case "commit":
		switch {
		case isNull:
			rec.Commit = false
			return i + 4, nil
		case i < len(s) && s[i] == 't':
			rec.Commit = true
			return scanLiteral(s, i, "true")
		case i < len(s) && s[i] == 'f':
			rec.Commit = false
			return scanLiteral(s, i, "false")
		}
		return wrongType("a boolean")
	case "input", "data", "meta":
		var raw []byte
		var end int
		if isNull {
			end = i + 4
		} else {
			var err error
			if end, err = scanValue(s, i, 1, nil); err != nil {
				return 0, err
			}
			raw = make([]byte, 0, end-i)
			if _, err := scanValue(s, i, 1, &raw); err != nil {
				return 0, err
			}
		}
		switch key {
		case "input":
			rec.Input = raw
		case "data":
			rec.Data = raw
		case "meta":
			rec.Meta = raw
		}
		return end, nil
	}
	return scanValue(s, i, 1, nil)
}

// recordNums backs a parsed Record's pointer fields: one allocation for all
// of them.
type recordNums = eventNums

// numsOf returns *n, allocating it on first use.
func numsOf(n **recordNums) *recordNums {
	if *n == nil {
		*n = new(recordNums)
	}
	return *n
}

// fieldName returns the Record field name that key is, or "".
func fieldName(key []byte) string {
	switch string(key) {
	case "type":
		return "type"
	case "timestamp":
		return "timestamp"
	case "workflowId":
		return "workflowId"
	case "workflowName":
		return "workflowName"
	case "stepName":
		return "stepName"
	case "stepIndex":
		return "stepIndex"
	case "commit":
		return "commit"
	case "retries":
		return "retries"
	case "maxRetries":
		return "maxRetries"
	case "attempt":
		return "attempt"
	case "duration":
		return "duration"
	case "error":
		return "error"
	case "stack":
		return "stack"
	case "status":
		return "status"
	case "input":
		return "input"
	case "data":
		return "data"
	case "meta":
		return "meta"
	}
	return ""
}

// parseFloat parses a valid JSON number; false if it is out of range.
func parseFloat(b []byte) (float64, bool) {
	if len(b) > 0 && len(b) <= 15 {
		var n int64
		plain := true
		for _, c := range b {
			if c < '0' || c > '9' {
				plain = false
				break
			}
			n = n*10 + int64(c-'0')
		}
		if plain {
			return float64(n), true
		}
	}
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil
}

func (p *parser) setErr(fieldErr *error, err error) {
	if *fieldErr == nil {
		*fieldErr = err
	}
}

// str decodes the body b of a JSON string that is the value of key.
func (p *parser) str(key string, b []byte, info strInfo, validUTF8 bool) string {
	if info.escaped || (info.nonASCII && !validUTF8) {
		return p.interned(key, unquote(b))
	}
	switch key {
	case "type":
		if t, ok := eventTypes[string(b)]; ok {
			return t
		}
	case "status":
		if t, ok := statuses[string(b)]; ok {
			return t
		}
	case "workflowName", "stepName":
		if p.intern != nil {
			if t, ok := p.intern[string(b)]; ok {
				return t
			}
			return p.interned(key, string(b))
		}
	}
	return string(b)
}

func (p *parser) interned(key, s string) string {
	if p.intern != nil && (key == "workflowName" || key == "stepName") && len(p.intern) < maxInterned {
		if t, ok := p.intern[s]; ok {
			return t
		}
		p.intern[s] = s
	}
	return s
}

// parseInt parses a valid JSON number as an int64. It must be integral and
// in range, unless trunc is set: then a fraction is dropped.
func parseInt(b []byte, trunc bool) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) > 0 && len(digits) <= 18 {
		var n int64
		plain := true
		for _, c := range digits {
			if c < '0' || c > '9' {
				plain = false
				break
			}
			n = n*10 + int64(c-'0')
		}
		if plain {
			if neg {
				n = -n
			}
			return n, true
		}
	}
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	if trunc {
		f = math.Trunc(f)
	}
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}
