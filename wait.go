package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flux-go/flux/driver"
)

// Durable sleeps and waits. A sleep or a wait is a node of the workflow
// like a step: when a run reaches it and must wait, the run is written
// waiting, gives up its lease and its goroutine, and costs one stored
// record until it is woken — at its time, or by a signal — by any engine
// that registered the workflow. Its node records one attempt, as long as
// the wait; what it received lands in Data through the node's handler.

// ErrWaiting is wrapped by the error of [Execute], [Resume] and
// [RetryStep] when the run stopped to wait: it is not failed, and an
// engine continues it when it is woken. [Wait] returns its result once it
// ends.
var ErrWaiting = errors.New("flux: run is waiting")

// Received is what a wait node's handler gets: the signal or event that
// ended the wait, or TimedOut.
type Received struct {
	Name     string          // the signal or event name
	Payload  json.RawMessage // its payload as JSON; nil when TimedOut
	SentAt   time.Time
	TimedOut bool // the wait's timeout passed first
}

// Decode unmarshals the payload into v.
func (r Received) Decode(v any) error {
	if r.TimedOut {
		return errors.New("flux: the wait timed out: there is no payload to decode")
	}
	if err := json.Unmarshal(r.Payload, v); err != nil {
		return fmt.Errorf("flux: the payload of %q does not decode as %T: %w", r.Name, v, err)
	}
	return nil
}

// Landing is the handler of a wait node: it puts what was received (or
// that the wait timed out) into c.Data, for the nodes after it — When
// predicates among them — to see. An error fails the run.
type Landing[In, Data any] func(c *Ctx[In, Data], r Received) error

type waitSpec[In, Data any] struct {
	d       time.Duration                  // Sleep
	until   func(*Ctx[In, Data]) time.Time // SleepUntil
	name    string                         // the signal or event a wait receives
	key     func(*Ctx[In, Data]) string    // WaitEvent: the key from the run's data
	timeout time.Duration                  // of a wait; 0 means none
	land    Landing[In, Data]
}

// Sleep appends a durable sleep of d, from when the run reaches it. Only
// the When option applies.
func (w *Workflow[In, Data]) Sleep(name string, d time.Duration, opts ...StepOption) *Workflow[In, Data] {
	n := &node[In, Data]{name: name, kind: KindSleep, wait: &waitSpec[In, Data]{d: d}}
	if d < 0 {
		w.errs = append(w.errs, fmt.Errorf("%s: negative duration %s", w.where(n), d))
	}
	return w.insert(n, opts)
}

// SleepUntil appends a durable sleep until the time at returns, computed
// from the input and the data when the run reaches it (and again, to the
// same time, if the run is woken early: at must depend on them only). A
// time in the past does not wait.
func (w *Workflow[In, Data]) SleepUntil(name string, at func(c *Ctx[In, Data]) time.Time, opts ...StepOption) *Workflow[In, Data] {
	n := &node[In, Data]{name: name, kind: KindSleep, wait: &waitSpec[In, Data]{until: at}}
	if at == nil {
		w.errs = append(w.errs, fmt.Errorf("%s: time function is nil", w.where(n)))
	}
	return w.insert(n, opts)
}

// WaitSignal appends a wait for the signal named signal, sent to the run
// with [Engine.Signal]: a signal sent before the run got here waits in its
// inbox and is taken at once. After timeout (0: none) the wait ends
// without one: a signal sent after the timeout is not received, even if
// no engine woke the run in time. Either way land is called, on the run's
// data, and the run goes on. Each signal is received by one wait. The
// timeout counts from when the run reached the wait, by the definition of
// the engine that wakes it.
func (w *Workflow[In, Data]) WaitSignal(name, signal string, timeout time.Duration, land Landing[In, Data], opts ...StepOption) *Workflow[In, Data] {
	n := &node[In, Data]{name: name, kind: KindWait, wait: &waitSpec[In, Data]{name: signal, timeout: timeout, land: land}}
	w.checkWait(n)
	return w.insert(n, opts)
}

// WaitEvent appends a wait for an event named event whose key is the one
// key returns on the run's data, sent with [Send] (like Inngest's
// waitForEvent with a match): events sent from the moment the run reached
// the wait on are received; earlier ones are not. After timeout (0: none)
// the wait ends without one. Either way land is called, and the run goes
// on.
func (w *Workflow[In, Data]) WaitEvent(name, event string, key func(c *Ctx[In, Data]) string, timeout time.Duration, land Landing[In, Data], opts ...StepOption) *Workflow[In, Data] {
	n := &node[In, Data]{name: name, kind: KindWait, wait: &waitSpec[In, Data]{name: event, key: key, timeout: timeout, land: land}}
	w.checkWait(n)
	if key == nil {
		w.errs = append(w.errs, fmt.Errorf("%s: key function is nil", w.where(n)))
	}
	return w.insert(n, opts)
}

func (w *Workflow[In, Data]) checkWait(n *node[In, Data]) {
	switch s := n.wait; {
	case s.name == "":
		w.errs = append(w.errs, fmt.Errorf("%s: signal or event name is empty", w.where(n)))
	case s.timeout < 0:
		w.errs = append(w.errs, fmt.Errorf("%s: negative timeout %s", w.where(n), s.timeout))
	case s.land == nil:
		w.errs = append(w.errs, fmt.Errorf("%s: handler is nil", w.where(n)))
	}
}

// SignalOption configures [Engine.Signal] and [Send].
type SignalOption func(*signalOptions)

type signalOptions struct{ key string }

// SignalKey deduplicates: a second signal with the same key to the same
// run is not delivered (a webhook delivered twice, a retried call).
func SignalKey(key string) SignalOption { return func(o *signalOptions) { o.key = key } }

// Signal sends the signal name, with payload (encoded as JSON), to run id:
// a wait for it (see [Workflow.WaitSignal]) receives it, now if the run
// waits for it, or when it gets there. A run that waits is woken at once,
// by whichever engine claims it. An unknown run gives an error wrapping
// ErrRunNotFound, a finished one ErrRunFinished. With [SignalKey], a
// duplicate is accepted and dropped.
func (e *Engine) Signal(ctx context.Context, id, name string, payload any, opts ...SignalOption) error {
	p, err := e.signalParams(name, payload, opts)
	if err != nil {
		return err
	}
	p.RunID = id
	s, err := e.signaler()
	if err != nil {
		return err
	}
	if _, err := s.Signal(ctx, p); err != nil {
		if errors.Is(err, ErrRunFinished) && p.Key != "" && e.hasSignal(ctx, id, p.Key) {
			return nil // a duplicate of a signal the run had before it finished
		}
		return fmt.Errorf("flux: signal %q to run %s: %w", name, id, err)
	}
	return nil
}

// hasSignal reports whether run id has a signal with key.
func (e *Engine) hasSignal(ctx context.Context, id, key string) bool {
	run, err := e.store.Get(ctx, id)
	if err != nil {
		return false
	}
	for _, s := range run.Signals {
		if s.Key == key {
			return true
		}
	}
	return false
}

// Signal is a signal as a run keeps it (Run.Signals): its name, key,
// payload, when it was sent, and the node that received it (-1 while it
// waits in the run's inbox).
type Signal = driver.Signal

// Send sends the event name with key and payload to every run waiting for
// it (see [Workflow.WaitEvent]) and returns how many received it. An event
// no run waits for is dropped: that is not an error.
func Send(ctx context.Context, e *Engine, name, key string, payload any, opts ...SignalOption) (int, error) {
	p, err := e.signalParams(name, payload, opts)
	if err != nil {
		return 0, err
	}
	p.WaitKey = eventKey(name, key)
	s, err := e.signaler()
	if err != nil {
		return 0, err
	}
	n, err := s.Signal(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("flux: sending event %q with key %q: %w", name, key, err)
	}
	return n, nil
}

func (e *Engine) signalParams(name string, payload any, opts []SignalOption) (driver.SignalParams, error) {
	var o signalOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if name == "" {
		return driver.SignalParams{}, errors.New("flux: signal name is empty")
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return driver.SignalParams{}, fmt.Errorf("%w: the payload of signal %q cannot be encoded as JSON: %w", ErrInvalidInput, name, err)
	}
	if err := e.checkSize("signal payload", b); err != nil {
		return driver.SignalParams{}, err
	}
	return driver.SignalParams{Name: name, Key: o.key, Payload: b, At: time.Now()}, nil
}

func (e *Engine) signaler() (driver.Signaler, error) {
	s, ok := e.store.(driver.Signaler)
	if !ok {
		return nil, fmt.Errorf("flux: the storage (%T) keeps no signals: use memory, SQLite or PostgreSQL storage", e.store)
	}
	return s, nil
}

// eventKey is the stored wait key of a wait for event name with key;
// signalKey that of a wait for signal name, which no event matches.
func eventKey(name, key string) string { return "event\x1f" + name + "\x1f" + key }
func signalKey(name string) string     { return "signal\x1f" + name }

// WaitInfo says what a waiting run waits for, from its stored record:
// the node, and the signal or event.
type WaitInfo struct {
	Node   string
	Kind   Kind      // KindSleep or KindWait
	Until  time.Time // the end of the sleep, or the wait's timeout; zero for none
	Signal string    // the signal or event a wait receives
	Event  bool      // Signal is an event (WaitEvent), matched by Key
	Key    string    // the event's key, for WaitEvent
}

// Waiting returns what a waiting run waits for, and false for a run that
// does not wait.
func Waiting(run *Run) (WaitInfo, bool) {
	if run.Status != StatusWaiting {
		return WaitInfo{}, false
	}
	wi := WaitInfo{Until: run.WakeAt, Node: run.Summary.Node}
	for _, s := range run.Steps {
		if s.Name == wi.Node {
			wi.Kind = s.Kind
		}
	}
	switch kind, rest, _ := strings.Cut(run.WaitKey, "\x1f"); kind {
	case "event":
		wi.Event = true
		wi.Signal, wi.Key, _ = strings.Cut(rest, "\x1f")
	case "signal":
		wi.Signal = rest
	}
	return wi, true
}
