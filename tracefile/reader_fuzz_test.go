package tracefile

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/flux-go/flux"
)

// want is what the reader should give for one line, by the simple model in
// modelRead.
type want struct {
	rec       Record
	line      int
	offset    int64
	msg       string // the LineError's Err message, "" if none
	tooLong   bool
	truncated bool
}

// modelRead says what a Reader with line limit maxLine gives for data,
// line by line, with nothing but bytes.Split and ParseLine. In follow
// mode an unterminated last line is not read.
func modelRead(data []byte, maxLine int, follow bool) (wants []want, end int64) {
	lines := bytes.Split(data, []byte{'\n'})
	var off int64
	for k, raw := range lines {
		last := k == len(lines)-1
		if last && (follow || len(raw) == 0) {
			break
		}
		w := want{line: k + 1, offset: off}
		body := raw
		if !last {
			body = bytes.TrimSuffix(raw, []byte{'\r'})
			off += int64(len(raw)) + 1
			end = off
		}
		switch rec, err := ParseLine(body); {
		case len(body) > maxLine:
			w.tooLong, w.truncated = true, last
		case len(bytes.TrimSpace(body)) == 0:
			continue
		case last && errors.Is(err, flux.ErrCorrupt):
			w.truncated = true
		default:
			w.rec = rec
			if err != nil {
				w.msg = err.Error()
			}
		}
		wants = append(wants, w)
	}
	return wants, end
}

func checkReader(t *testing.T, r *Reader, wants []want) {
	t.Helper()
	for i := 0; ; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			if i != len(wants) {
				t.Fatalf("io.EOF after %d items, want %d: next would be %+v", i, len(wants), wants[i])
			}
			return
		}
		if i >= len(wants) {
			t.Fatalf("item %d beyond the %d expected: %+v, %v", i, len(wants), rec, err)
		}
		w := wants[i]
		if r.Line() != w.line {
			t.Fatalf("item %d: Line() = %d, want %d", i, r.Line(), w.line)
		}
		if !reflect.DeepEqual(rec, w.rec) {
			t.Fatalf("line %d: record %+v, want %+v", w.line, rec, w.rec)
		}
		var le *LineError
		if err != nil && !errors.As(err, &le) {
			t.Fatalf("line %d: %v is not a *LineError", w.line, err)
		}
		wantErr := w.msg != "" || w.tooLong || w.truncated
		if (le != nil) != wantErr {
			t.Fatalf("line %d: error %v, want one: %v", w.line, err, wantErr)
		}
		if le == nil {
			continue
		}
		if le.Line != w.line || le.Offset != w.offset || le.TooLong != w.tooLong || le.Truncated != w.truncated {
			t.Fatalf("line %d: %+v, want line %d offset %d tooLong %v truncated %v", w.line, le, w.line, w.offset, w.tooLong, w.truncated)
		}
		if w.msg != "" && le.Err.Error() != w.msg {
			t.Fatalf("line %d: %q, want %q", w.line, le.Err, w.msg)
		}
		if w.truncated && !w.tooLong && !errors.Is(le, ErrTruncated) {
			t.Fatalf("line %d: %v is not ErrTruncated", w.line, le)
		}
	}
}

// FuzzReader checks the Reader, with small buffers and a small line limit,
// against a model built from bytes.Split and ParseLine, both reading at once
// and following a stream that grows in two parts.
func FuzzReader(f *testing.F) {
	f.Add([]byte(good+"\n"+good), uint8(0), uint8(200), uint16(10))
	f.Add([]byte("\n\r\n"+good+"\r\n{\"type\":\n[1]\n"+good[:40]), uint8(3), uint8(40), uint16(60))
	f.Add([]byte(`{"type":"x","workflowId":"r"}`+"\n\xff\n"), uint8(0), uint8(0), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, buf, max uint8, split uint16) {
		bufSize, maxLine := 16+int(buf), 8+int(max)*2
		wants, end := modelRead(data, maxLine, false)
		r := newReader(bytes.NewReader(data), bufSize, maxLine)
		checkReader(t, r, wants)
		if r.Offset() != end {
			t.Fatalf("Offset() = %d, want %d", r.Offset(), end)
		}

		cut := int(split) % (len(data) + 1)
		wants, end = modelRead(data, maxLine, true)
		var stream bytes.Buffer
		stream.Write(data[:cut])
		r = newReader(&stream, bufSize, maxLine)
		r.Follow(true)
		// The lines that end within the first part read the same before the
		// rest arrives; then the reader waits (io.EOF) for the rest.
		first, _ := modelRead(data[:cut], maxLine, true)
		if len(first) > len(wants) || len(first) > 0 && !reflect.DeepEqual(first, wants[:len(first)]) {
			t.Fatalf("model: the lines of a prefix differ")
		}
		checkReader(t, r, first)
		stream.Write(data[cut:])
		checkReader(t, r, wants[len(first):])
		if r.Offset() != end {
			t.Fatalf("follow: Offset() = %d, want %d", r.Offset(), end)
		}
	})
}
