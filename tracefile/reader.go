package tracefile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// MaxLineSize is the longest line, in bytes without its newline, that a
// [Reader] decodes. Longer lines are skipped, without being held in memory,
// and reported with [ErrLineTooLong].
const MaxLineSize = 1 << 20

// LineError reports a problem with one line of a trace file. If Err wraps
// [flux.ErrCorrupt] the line was lost; otherwise (ErrUnknownType,
// ErrInvalidUTF8) it is a warning and the Record returned with it is usable.
type LineError struct {
	Line      int   // 1-based line number
	Offset    int64 // byte offset of the line's start in the stream
	Truncated bool  // the last line, without its newline
	TooLong   bool  // longer than MaxLineSize; skipped
	Err       error
}

// Error names the line, its byte offset and what is wrong with it.
func (e *LineError) Error() string {
	return fmt.Sprintf("tracefile: line %d (byte %d): %v", e.Line, e.Offset, e.Err)
}

// Unwrap returns e.Err.
func (e *LineError) Unwrap() error { return e.Err }

// Reader streams records from a trace file. It is not safe for concurrent
// use.
//
// Next reports each bad line as a *LineError naming it and goes on with the
// next line when called again; blank lines are skipped. A Reader in follow
// mode (see [Reader.Follow]) can tail a file that is being written.
type Reader struct {
	br     *bufio.Reader
	p      parser
	follow bool
	done   bool

	line     int   // number of the last line returned or skipped
	offset   int64 // bytes consumed through the last complete line
	pending  []byte
	skipping bool  // in a line longer than maxLine
	skipped  int64 // bytes of that line read so far
	maxLine  int   // MaxLineSize, smaller in tests
}

// NewReader returns a Reader of the trace file read from r. It buffers its
// reads.
func NewReader(r io.Reader) *Reader {
	return newReader(r, 64<<10, MaxLineSize)
}

func newReader(r io.Reader, bufSize, maxLine int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), p: parser{intern: make(map[string]string)}, maxLine: maxLine}
}

// Follow sets follow mode. In follow mode, reaching the end of the stream in
// the middle of a line returns io.EOF and keeps the partial line; a later
// Next, once more has been written, reads on from there. Without it, such a
// last line is returned if it parses and reported as truncated if not, and
// the Reader then stays at io.EOF.
func (r *Reader) Follow(on bool) { r.follow = on }

// Line returns the 1-based number of the line last returned.
func (r *Reader) Line() int { return r.line }

// Offset returns the number of bytes consumed through the last complete
// (newline-terminated) line. A tailer that reopens the file can seek there
// to read what was appended; a last line without its newline is read again.
func (r *Reader) Offset() int64 { return r.offset }

// Next returns the next record. It returns io.EOF at the end of the stream,
// and (Record{}, err) for an error reading it. A bad line gives a
// *LineError (see [LineError] for when its Record is usable); call Next
// again to go on.
func (r *Reader) Next() (Record, error) {
	for {
		if r.done {
			return Record{}, io.EOF
		}
		chunk, err := r.br.ReadSlice('\n')
		switch {
		case err == nil:
			if r.skipping {
				return Record{}, r.endSkip(int64(len(chunk)), false)
			}
			data := chunk
			if len(r.pending) > 0 {
				r.pending = append(r.pending, chunk...)
				data = r.pending
			}
			start := r.offset
			r.line++
			r.offset += int64(len(data))
			body := bytes.TrimSuffix(data[:len(data)-1], []byte{'\r'})
			if len(body) > r.maxLine {
				r.resetPending()
				return Record{}, &LineError{Line: r.line, Offset: start, TooLong: true,
					Err: fmt.Errorf("%w: %d bytes, more than %d; skipped", ErrLineTooLong, len(body), r.maxLine)}
			}
			rec, perr := r.parse(body, start, false)
			r.resetPending()
			if perr == nil && rec.Type == "" {
				continue // blank line
			}
			return rec, perr
		case errors.Is(err, bufio.ErrBufferFull):
			r.grow(chunk)
		default:
			r.grow(chunk)
			if !errors.Is(err, io.EOF) {
				return Record{}, fmt.Errorf("tracefile: reading line %d: %w", r.line+1, err)
			}
			if !r.skipping && len(r.pending) == 0 {
				return Record{}, io.EOF
			}
			if r.follow {
				return Record{}, io.EOF
			}
			r.done = true
			if r.skipping {
				return Record{}, r.endSkip(0, true)
			}
			if len(r.pending) > r.maxLine {
				r.skipping, r.skipped = true, int64(len(r.pending))
				r.resetPending()
				return Record{}, r.endSkip(0, true)
			}
			r.line++
			rec, perr := r.parse(r.pending, r.offset, true)
			r.resetPending()
			if perr == nil && rec.Type == "" {
				return Record{}, io.EOF
			}
			return rec, perr
		}
	}
}

// grow adds a chunk of an unfinished line to pending, or starts skipping
// the line once it is longer than maxLine (plus room for "\r").
func (r *Reader) grow(chunk []byte) {
	switch {
	case r.skipping:
		r.skipped += int64(len(chunk))
	case len(r.pending)+len(chunk) > r.maxLine+1:
		r.skipping = true
		r.skipped = int64(len(r.pending) + len(chunk))
		r.resetPending()
	default:
		r.pending = append(r.pending, chunk...)
	}
}

// endSkip finishes a skipped line whose last n bytes were just read.
func (r *Reader) endSkip(n int64, truncated bool) error {
	start := r.offset
	size := r.skipped + n
	r.line++
	r.skipping, r.skipped = false, 0
	le := &LineError{Line: r.line, Offset: start, TooLong: true, Truncated: truncated}
	if truncated {
		le.Err = fmt.Errorf("%w: %d bytes without a newline at the end, more than %d; skipped", ErrLineTooLong, size, r.maxLine)
	} else {
		r.offset += size
		le.Err = fmt.Errorf("%w: %d bytes, more than %d; skipped", ErrLineTooLong, size-1, r.maxLine)
	}
	return le
}

// resetPending empties pending, dropping the buffer if a long line grew it.
func (r *Reader) resetPending() {
	if cap(r.pending) > 256<<10 {
		r.pending = nil
		return
	}
	r.pending = r.pending[:0]
}

// parse decodes one line; a blank line gives a zero Record and nil.
func (r *Reader) parse(body []byte, start int64, last bool) (Record, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return Record{}, nil
	}
	rec, err := r.p.parse(body)
	if err == nil {
		return rec, nil
	}
	le := &LineError{Line: r.line, Offset: start, Err: err}
	if last && rec.Type == "" {
		le.Truncated = true
		le.Err = fmt.Errorf("%w (no newline at the end): %w", ErrTruncated, err)
	}
	return rec, le
}
