package tracefile

import (
	"fmt"

	"github.com/flux-go/flux"
)

// Stored is a trace record read back from a store's trace table (see
// sqlite.Store.TraceEvents and postgres.Store.TraceEvents), with the
// sequence number the store gave it. Seq grows with every event a store
// writes, across all runs.
type Stored struct {
	Seq    int64
	RunID  string
	Record Record
}

// SeqError reports a stored trace line that could not be decoded. Err is
// the error of [ParseLine] and wraps [flux.ErrCorrupt].
type SeqError struct {
	Seq   int64
	RunID string
	Err   error
}

func (e *SeqError) Error() string {
	return fmt.Sprintf("tracefile: stored trace event %d of run %q: %v", e.Seq, e.RunID, e.Err)
}

func (e *SeqError) Unwrap() error { return e.Err }

// EncodeEvent returns ev as one trace-file line, without the newline: the
// form in which stores keep trace events.
func EncodeEvent(ev flux.TraceEvent) []byte {
	e := encoders.Get().(*encoder)
	rec := fromEvent(&ev, &e.nums)
	line := rec.AppendJSON(make([]byte, 0, 256))
	encoders.Put(e)
	return line
}
