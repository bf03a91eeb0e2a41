// Package trigger is the one path from a delivered queue message to a Flux
// run, shared by the broker bindings (packages kafka, natsjs and amqp):
// decode the payload, derive the run ID, store the run (hand-off, the
// default) or execute it (inline), and tell the binding what to do with the
// message: acknowledge it, deliver it again later, or reject it as poison.
//
// A binding calls [Trigger.Handle] once per delivery, or [Trigger.Process]
// to retry a storage failure in place, and acts on the [Outcome]. Because
// the run ID comes from the message (its broker position or a key the
// caller derives), a redelivered message finds its run already stored and
// starts no second one: acknowledging after the run is stored gives
// exactly one run per message, whatever the broker redelivers.
package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flux-go/flux"
)

// Message is one delivery, as a binding hands it to the trigger.
type Message struct {
	// Value is the payload; the default decoder reads it as JSON.
	Value []byte
	// Key is the message key, where the broker has one (Kafka).
	Key []byte
	// Headers are the message's headers, first value of each.
	Headers map[string]string
	// ID is the broker's stable identity for this message, the same on
	// every redelivery: the default run ID. Kafka's is
	// group/topic/partition/offset, JetStream's the Nats-Msg-Id header or
	// stream sequence, RabbitMQ's the message-id property.
	ID string
	// Position says where the message is, for logs: topic, partition and
	// offset; stream and sequence; queue and delivery tag.
	Position string
}

// Action is what a binding does with a message after the trigger saw it.
type Action int

const (
	// Ack acknowledges the message: its run is stored (hand-off) or ended
	// (inline), or was already.
	Ack Action = iota
	// Retry acknowledges nothing: storing the run failed for a reason that
	// may pass (storage down, the engine closing). The binding delivers the
	// message again after [Trigger.Backoff].
	Retry
	// Reject marks poison: a payload that does not decode, input the
	// workflow refuses, a run ID that belongs to another workflow. Retrying
	// cannot help. The binding sends the message to its dead-letter
	// destination when one is configured and acknowledges it, so it never
	// blocks its partition or queue; the trigger has logged it with its
	// position.
	Reject
)

// String returns "ack", "retry" or "reject".
func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Outcome is the trigger's verdict on one message.
type Outcome struct {
	Action Action
	// RunID is the run the message maps to; "" if it was rejected before
	// an ID was derived.
	RunID string
	// Err says why a message is retried or rejected; for an inline run
	// that ended without completing, it is the run's error (the message is
	// still acknowledged: the run is stored and can be retried from Flux).
	Err error
}

// Options configures a trigger. The zero value decodes JSON, uses the
// message's ID as run ID, and hands runs off to the engine's workers.
type Options[In any] struct {
	// Decode turns a message into the workflow's input. The default
	// unmarshals Message.Value as JSON into In, refusing unknown trailing
	// data. An error rejects the message as poison.
	Decode func(Message) (In, error)
	// RunID derives the run ID from the message and its decoded input, for
	// instance a business key (an order ID) so that the same event sent
	// twice by a producer starts one run. The default is Message.ID. A
	// returned "" rejects the message.
	RunID func(Message, In) string
	// Inline executes the run before the message is acknowledged, as the
	// seed's Kafka example does, instead of acknowledging once the run is
	// stored and letting the engine's workers execute it (hand-off, for
	// throughput). An inline run that fails is still acknowledged: it is
	// stored and Flux retries it, not the broker.
	Inline bool
	// Logger receives one line per rejected message, with its position,
	// and one per storage failure. nil uses slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the pause before a retried message is
	// delivered again; it doubles with each consecutive failure. Zero
	// means 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
}

// Trigger maps messages to runs of one workflow on one engine. It is safe
// for concurrent use: a binding may handle several partitions at once.
type Trigger struct {
	handle   func(ctx context.Context, m Message) Outcome
	workflow string
	log      *slog.Logger
	min, max time.Duration
}

// New returns a trigger that starts (or, with Options.Inline, executes)
// runs of w on e. In hand-off mode e must have workers (Config.Workers
// not negative) or another engine must execute w's runs.
func New[In, Data any](e *flux.Engine, w *flux.Workflow[In, Data], o Options[In]) (*Trigger, error) {
	if e == nil || w == nil {
		return nil, errors.New("trigger: New needs an engine and a workflow")
	}
	if err := w.Err(); err != nil {
		return nil, err
	}
	decode := o.Decode
	if decode == nil {
		decode = decodeJSON[In]
	}
	runID := o.RunID
	if runID == nil {
		runID = func(m Message, _ In) string { return m.ID }
	}
	t := &Trigger{workflow: w.Name(), log: o.Logger, min: o.MinBackoff, max: o.MaxBackoff}
	if t.log == nil {
		t.log = slog.Default()
	}
	if t.min <= 0 {
		t.min = 100 * time.Millisecond
	}
	if t.max <= 0 {
		t.max = 30 * time.Second
	}
	t.max = max(t.max, t.min)
	t.handle = func(ctx context.Context, m Message) Outcome {
		in, err := decode(m)
		if err != nil {
			return Outcome{Action: Reject, Err: fmt.Errorf("trigger: decoding the payload of %s: %w", m.Position, err)}
		}
		id := runID(m, in)
		if id == "" {
			return Outcome{Action: Reject, Err: fmt.Errorf("trigger: no run ID for the message at %s", m.Position)}
		}
		if !o.Inline {
			_, err := flux.Start(ctx, e, w, in, flux.RunID(id))
			return verdict(id, err, false)
		}
		res, err := flux.Execute(ctx, e, w, in, flux.RunID(id))
		return verdict(id, err, res != nil && res.Status.Final())
	}
	return t, nil
}

// Workflow returns the name of the workflow the trigger starts.
func (t *Trigger) Workflow() string { return t.workflow }

// decodeJSON is the default decoder.
func decodeJSON[In any](m Message) (In, error) {
	var in In
	if len(m.Value) == 0 {
		return in, errors.New("empty payload")
	}
	err := json.Unmarshal(m.Value, &in)
	return in, err
}

// verdict classifies the error of a start or an inline execution.
func verdict(id string, err error, ended bool) Outcome {
	switch {
	case err == nil:
		return Outcome{Action: Ack, RunID: id}
	case ended:
		// Inline: the run ended without completing; it is stored.
		return Outcome{Action: Ack, RunID: id, Err: err}
	case errors.Is(err, flux.ErrRunActive):
		// Stored, and executing elsewhere.
		return Outcome{Action: Ack, RunID: id, Err: err}
	case errors.Is(err, flux.ErrInvalidInput), errors.Is(err, flux.ErrPayloadTooLarge),
		errors.Is(err, flux.ErrWrongWorkflow), errors.Is(err, flux.ErrInvalidDefinition):
		return Outcome{Action: Reject, RunID: id, Err: err}
	}
	return Outcome{Action: Retry, RunID: id, Err: err}
}

// Handle maps one delivery to its run, once, and says what to do with the
// message. A rejected message is logged here with its position; the
// binding dead-letters it or acknowledges it past. Handle does not retry:
// see Process.
func (t *Trigger) Handle(ctx context.Context, m Message) Outcome {
	out := t.handle(ctx, m)
	switch out.Action {
	case Reject:
		t.log.LogAttrs(ctx, slog.LevelError, "flux trigger: poison message rejected",
			slog.String("workflow", t.workflow), slog.String("position", m.Position),
			slog.String("run", out.RunID), slog.Any("error", out.Err))
	case Retry:
		if ctx.Err() == nil {
			t.log.LogAttrs(ctx, slog.LevelWarn, "flux trigger: storing the run failed; the message will be delivered again",
				slog.String("workflow", t.workflow), slog.String("position", m.Position),
				slog.String("run", out.RunID), slog.Any("error", out.Err))
		}
	}
	return out
}

// Process handles m, and while the outcome is Retry it pauses with
// [Trigger.Backoff] and tries again, holding the message unacknowledged,
// until the outcome is Ack or Reject or ctx ends.
//
// Ending ctx stops Process gracefully: no new try starts, but a try in
// flight is let finish (for up to [Grace]), so a run whose write was
// under way is acknowledged rather than read again. Process returns ctx's
// cause when ctx ended with the message unsettled: the binding must then
// acknowledge nothing.
func (t *Trigger) Process(ctx context.Context, m Message) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return Outcome{Action: Retry, Err: context.Cause(ctx)}, context.Cause(ctx)
	}
	hctx, cancel := WithGrace(ctx)
	defer cancel()
	for failures := 1; ; failures++ {
		out := t.Handle(hctx, m)
		if out.Action != Retry {
			return out, nil
		}
		if err := Sleep(ctx, t.Backoff(failures)); err != nil {
			return out, err
		}
	}
}

// DefaultConcurrency is how many messages a broker binding (kafka,
// natsjs, amqp) handles at once when its Config leaves Concurrency 0.
const DefaultConcurrency = 16

// Grace is how long a try in flight may go on after the context of
// [Trigger.Process] ended.
const Grace = 10 * time.Second

// WithGrace returns a context that ends [Grace] after ctx ends (or when
// cancel is called): work already in hand when ctx ends is let finish,
// for a while. Bindings use it for the messages they handed out.
func WithGrace(ctx context.Context) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(Grace, cancel) })
	return gctx, func() { stop(); cancel() }
}

// Backoff returns the pause before the next delivery of a message that
// failed failures times in a row: MinBackoff doubled each time, at most
// MaxBackoff.
func (t *Trigger) Backoff(failures int) time.Duration {
	d := t.min
	for i := 1; i < failures && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

// Sleep pauses for d or until ctx ends, and then returns ctx's cause.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
