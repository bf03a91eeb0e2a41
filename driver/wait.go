package driver

import (
	"context"
	"encoding/json"
	"time"
)

// Waiting runs, signals and concurrency limits.
//
// A run that waits (a durable sleep, a wait for a signal or an event) is
// written by a Checkpoint whose header has status waiting and whose lease is
// given up (ReleaseLease): it holds no lease and no engine. Its header's
// WakeAt says when ClaimExpired may take it again (zero: never by time, only
// by a signal). A signal delivered to a run (Store.Signal) is kept in the
// run's inbox and increments its SignalSeq; if the run is waiting, the
// signal makes it claimable at once.
//
// The race between a signal and a run going to wait is closed by the store:
// a Checkpoint to waiting carries the SignalSeq the writer has seen (the
// run's inbox as it was claimed); if the stored SignalSeq is higher, a
// signal came meanwhile, and the store makes the run claimable at once
// instead of at WakeAt. A waiting node's engine, claiming it again, sees the
// new signal in Run.Signals.

// Signal is a message delivered to one run: by Engine.Signal to the run by
// ID, or by flux.Send to the runs waiting for an event with its key.
type Signal struct {
	// Seq numbers the run's signals from 1, in the order they were stored.
	Seq  int64  `json:"seq"`
	Name string `json:"name"`
	// Key deduplicates: a second signal to the run with the same non-empty
	// Key is not stored.
	Key     string          `json:"key,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	SentAt  time.Time       `json:"sentAt"`
	// Node is the index of the node that consumed the signal, or -1 while
	// it waits in the run's inbox.
	Node int `json:"node"`
}

// SignalParams are the arguments of Store.Signal: one signal, to run RunID
// or, with RunID "", to every unfinished run whose WaitKey is WaitKey.
type SignalParams struct {
	RunID   string
	WaitKey string
	Name    string
	Key     string // deduplication key, "" for none
	Payload json.RawMessage
	At      time.Time // recorded as Signal.SentAt
}

// Consumed marks signal Seq of the run consumed by node Node, in a
// Checkpoint.
type Consumed struct {
	Seq  int64
	Node int
}

// Signaler is the part of a Store that keeps signals. Every store of this
// module implements it; the engine refuses signals on a store that does
// not, and a waiting node then fails.
type Signaler interface {
	// Signal stores p's signal in the inbox of run p.RunID, or of every
	// unfinished run whose WaitKey is p.WaitKey, increments each one's
	// SignalSeq, and makes each one that waits claimable at once. A run
	// that already has a signal with the same non-empty Key gets nothing.
	// It returns how many runs it delivered to. With a RunID, an unknown
	// run gives ErrRunNotFound and a finished run ErrRunFinished; with a
	// WaitKey, no run waiting is not an error (0).
	//
	// A signal does not change the run's Version: it never makes its
	// owner's next Checkpoint fail.
	Signal(ctx context.Context, p SignalParams) (int, error)
}

// Limit bounds how many runs of one workflow ClaimExpired lets execute at
// once. A run counts while it is unfinished and either running or leased:
// started, or claimed to start; a waiting run with no lease does not count.
// Limits apply to pending runs only: runs that already started (a running
// run whose owner died, a waiting run woken) are claimed whatever the
// count. Pending runs blocked by a limit are taken later, oldest first.
type Limit struct {
	Workflow string
	// Max is the most runs of the workflow counted at once; 0 means no
	// bound.
	Max int
	// PerKey is the most runs counted at once that have the same
	// ConcurrencyKey; 0 means no bound.
	PerKey int
}
