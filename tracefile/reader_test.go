package tracefile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

// item is what one call of Next gave.
type item struct {
	rec  Record
	err  error
	line int
}

// readAll calls Next until io.EOF.
func readAll(t *testing.T, r *Reader) []item {
	t.Helper()
	var items []item
	for range 1 << 20 {
		rec, err := r.Next()
		if err == io.EOF {
			return items
		}
		var le *LineError
		if err != nil && !errors.As(err, &le) {
			t.Fatalf("Next: %v", err)
		}
		items = append(items, item{rec, err, r.Line()})
	}
	t.Fatal("Next never returned io.EOF")
	return nil
}

func TestReadSeedTrace(t *testing.T) {
	t.Parallel()
	f, err := os.Open(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	items := readAll(t, NewReader(f))
	runs := map[string]string{} // workflowId -> workflow name and last event type
	var chargeStarts, chargeRetries, skipped int
	for i, it := range items {
		if it.err != nil {
			t.Fatalf("seed line %d: %v", it.line, it.err)
		}
		if it.line != i+1 {
			t.Errorf("record %d reported as line %d", i, it.line)
		}
		rec := it.rec
		runs[rec.WorkflowID] = rec.WorkflowName + " " + rec.Type
		switch {
		case rec.StepName == "charge" && rec.Type == "step:start":
			chargeStarts++
		case rec.StepName == "charge" && rec.Type == "step:retry":
			chargeRetries++
			if rec.Retries == nil || *rec.Retries != chargeRetries || rec.MaxRetries == nil || *rec.MaxRetries != 3 {
				t.Errorf("charge retry %d: retries %v, maxRetries %v", chargeRetries, rec.Retries, rec.MaxRetries)
			}
		case rec.Type == "step:skipped":
			skipped++
		}
	}
	want := map[string]string{
		"21fba1e4-6c24-44aa-9002-b4613f11ff33": "event-routing workflow:complete",
		"4b8147ad-e36b-43df-a8fe-c00f9d52b6b4": "event-routing workflow:complete",
		"d2b004bb-5489-4fcb-bfc4-243db1e692b1": "order-fulfillment workflow:complete",
		// The original engine ended the failed run's trace at its step:error.
		"3ef975b6-db30-458f-8bb3-8d2047bb3941": "image-processing step:error",
	}
	if len(runs) != len(want) {
		t.Errorf("%d runs, want 4: %v", len(runs), runs)
	}
	for id, w := range want {
		if runs[id] != w {
			t.Errorf("run %s: %q, want %q", id, runs[id], w)
		}
	}
	// The seed writes one step:start per node and one step:retry per failed
	// attempt: charge ran three times.
	if chargeStarts != 1 || chargeRetries != 2 {
		t.Errorf("charge: %d starts, %d retries; want 1 and 2", chargeStarts, chargeRetries)
	}
	if skipped != 4 {
		t.Errorf("%d skipped steps, want 4", skipped)
	}
}

// lineErr asserts that it is a *LineError for line n with err wrapping want.
func lineErr(t *testing.T, it item, n int, want error) *LineError {
	t.Helper()
	var le *LineError
	if !errors.As(it.err, &le) {
		t.Fatalf("line %d: got %v, want a *LineError", n, it.err)
	}
	if le.Line != n || it.line != n {
		t.Errorf("error for line %d reports line %d (Reader.Line %d)", n, le.Line, it.line)
	}
	if !errors.Is(le, want) {
		t.Errorf("line %d: %v, want %v", n, le, want)
	}
	if !strings.Contains(le.Error(), "line "+itoa(n)) {
		t.Errorf("error %q does not name line %d", le, n)
	}
	return le
}

func itoa(n int) string { return strconv.Itoa(n) }

const good = `{"type":"step:start","timestamp":1,"workflowId":"r","workflowName":"w","stepName":"s","stepIndex":0,"commit":false,"retries":0,"status":"pending"}`

func TestReaderReportsEveryBadLineAndGoesOn(t *testing.T) {
	t.Parallel()
	long := `{"type":"step:start","workflowId":"r","input":"` + strings.Repeat("x", MaxLineSize) + `"}`
	input := strings.Join([]string{
		good,                    // 1
		`{"type":"step:start",`, // 2 invalid JSON
		"",                      // 3 blank: skipped
		long,                    // 4 too long
		"{\"type\":\"step:start\",\"workflowId\":\"r\",\"stepName\":\"\xff\"}", // 5 invalid UTF-8 (warning)
		`{"type":"step:paused","workflowId":"r"}`,                              // 6 unknown type (warning)
		`{"workflowId":"r"}`, // 7 not a record
		good + "\r",          // 8 CRLF
		`{"type":"step:complete","workflowId":"r","stat`, // 9 truncated
	}, "\n")
	r := NewReader(strings.NewReader(input))
	items := readAll(t, r)
	if len(items) != 8 {
		t.Fatalf("%d items, want 8 (blank line skipped): %+v", len(items), items)
	}
	if items[0].err != nil || items[0].rec.StepName != "s" || items[0].line != 1 {
		t.Errorf("line 1: %+v", items[0])
	}
	lineErr(t, items[1], 2, ErrInvalidJSON)
	if le := lineErr(t, items[2], 4, ErrLineTooLong); !le.TooLong || le.Truncated {
		t.Errorf("line 4: TooLong %v Truncated %v", le.TooLong, le.Truncated)
	} else if le.Offset != int64(len(good)+1+len(`{"type":"step:start",`)+1+1) {
		t.Errorf("line 4 offset %d", le.Offset)
	}
	lineErr(t, items[3], 5, ErrInvalidUTF8)
	if items[3].rec.StepName != "\uFFFD" {
		t.Errorf("line 5 record not returned with its warning: %+v", items[3].rec)
	}
	lineErr(t, items[4], 6, ErrUnknownType)
	if items[4].rec.Type != "step:paused" {
		t.Errorf("line 6 record not returned with its warning: %+v", items[4].rec)
	}
	lineErr(t, items[5], 7, ErrInvalidRecord)
	if items[6].err != nil || items[6].rec.Type != "step:start" || items[6].line != 8 {
		t.Errorf("line 8 (CRLF): %+v", items[6])
	}
	if le := lineErr(t, items[7], 9, ErrTruncated); !le.Truncated || !errors.Is(le, ErrInvalidJSON) {
		t.Errorf("line 9: Truncated %v, %v", le.Truncated, le)
	}
	if want := int64(len(input) - len(`{"type":"step:complete","workflowId":"r","stat`)); r.Offset() != want {
		t.Errorf("Offset %d, want %d (through the last newline)", r.Offset(), want)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next after the end: %v", err)
	}
}

func TestReaderLastLineWithoutNewline(t *testing.T) {
	t.Parallel()
	r := NewReader(strings.NewReader(good + "\n" + good))
	items := readAll(t, r)
	if len(items) != 2 || items[1].err != nil || items[1].line != 2 {
		t.Fatalf("a complete last line without newline should be returned: %+v", items)
	}
	if r.Offset() != int64(len(good)+1) {
		t.Errorf("Offset %d counts the unterminated line", r.Offset())
	}
}

// A huge line is skipped without being held: the reader's buffer stays near
// MaxLineSize however long the line is, and the lines after it are read.
func TestReaderSkipsHugeLineInBoundedMemory(t *testing.T) {
	t.Parallel()
	huge := 64 << 20
	src := io.MultiReader(strings.NewReader(good+"\n"+`{"type":"step:start","input":"`),
		io.LimitReader(repeatReader('x'), int64(huge)), strings.NewReader("\"}\n"+good+"\n"))
	r := NewReader(src)
	var maxPending int
	var items []item
	for {
		rec, err := r.Next()
		maxPending = max(maxPending, cap(r.pending))
		if err == io.EOF {
			break
		}
		items = append(items, item{rec, err, r.Line()})
	}
	if len(items) != 3 || items[0].err != nil || items[2].err != nil || items[2].line != 3 {
		t.Fatalf("items: %+v", items)
	}
	le := lineErr(t, items[1], 2, ErrLineTooLong)
	if !strings.Contains(le.Error(), "67108896 bytes") {
		t.Errorf("error does not give the line's size: %v", le)
	}
	if maxPending > 2*MaxLineSize {
		t.Errorf("reader held %d bytes for a %d-byte line", maxPending, huge)
	}
}

func TestReaderTruncatedHugeLastLine(t *testing.T) {
	t.Parallel()
	r := NewReader(strings.NewReader(good + "\n" + strings.Repeat("y", MaxLineSize+10)))
	items := readAll(t, r)
	if len(items) != 2 {
		t.Fatalf("items: %+v", items)
	}
	if le := lineErr(t, items[1], 2, ErrLineTooLong); !le.Truncated || !le.TooLong {
		t.Errorf("Truncated %v TooLong %v", le.Truncated, le.TooLong)
	}
}

type repeatReader byte

func (b repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// In follow mode a partial last line waits for the rest of it.
func TestReaderFollow(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := NewReader(&buf)
	r.Follow(true)
	buf.WriteString(good + "\n" + good[:30])
	if rec, err := r.Next(); err != nil || rec.Type != "step:start" {
		t.Fatalf("first line: %v %v", rec, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("partial line: %v, want io.EOF", err)
	}
	if r.Offset() != int64(len(good)+1) {
		t.Errorf("Offset %d", r.Offset())
	}
	buf.WriteString(good[30:] + "\n")
	if rec, err := r.Next(); err != nil || rec.StepName != "s" || r.Line() != 2 {
		t.Fatalf("completed line: %+v %v line %d", rec, err, r.Line())
	}
	if r.Offset() != int64(2*(len(good)+1)) {
		t.Errorf("Offset %d", r.Offset())
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	buf.WriteString(`{"type":"workflow:complete","workflowId":"r"}` + "\n")
	if rec, err := r.Next(); err != nil || rec.Type != "workflow:complete" || r.Line() != 3 {
		t.Fatalf("appended line: %+v %v", rec, err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestReaderPassesOnReadErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	_, err := NewReader(failingReader{boom}).Next()
	var le *LineError
	if !errors.Is(err, boom) || errors.As(err, &le) || errors.Is(err, flux.ErrCorrupt) {
		t.Errorf("read error: %v", err)
	}
}
