package flux

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"reflect"
	"slices"
	"time"

	"github.com/flux-go/flux/driver"
)

// Handler is the code of a step or commit. It reads c.Input, reads and
// writes *c.Data, and returns nil on success. It should honour c (a
// context.Context) being cancelled.
type Handler[In, Data any] func(c *Ctx[In, Data]) error

// Workflow is a typed workflow definition: an ordered list of named steps
// and commits over an input of type In and shared data of type Data. Both
// must survive a JSON round trip. Build one with [New]; its methods append
// to it and return it, for chaining, and are meant for package
// initialisation: a Workflow must not change once it runs.
type Workflow[In, Data any] struct {
	name     string
	nodes    []*node[In, Data]
	validate func(In) error
	errs     []error
	fp       string
	fpHash   hash.Hash       // the running hash behind fp, fed one node at a time
	zero     json.RawMessage // the JSON of a zero Data: the snapshot before the first node
	// checkInput is set when the JSON of an In might not decode back
	// into an In: Execute then checks each input.
	checkInput bool
	// regular is how many nodes are not undos: the undos of the commits
	// that have one follow them, in reverse order of the commits.
	regular int
	undos   int
	waits   bool // it has sleeps or waits: Execute registers it, for its runs to be woken
	limit   driver.Limit
	keyOf   func(In) string // ConcurrencyKey
}

type node[In, Data any] struct {
	name string
	kind Kind
	fn   Handler[In, Data]
	opts stepOptions
	when func(*Ctx[In, Data]) bool
	wait *waitSpec[In, Data] // sleeps and waits
	of   int                 // an undo: the index of its commit
}

// New starts the definition of a workflow named name.
func New[In, Data any](name string) *Workflow[In, Data] {
	w := &Workflow[In, Data]{name: name}
	if name == "" {
		w.errs = append(w.errs, errors.New("workflow name is empty"))
	}
	zero, err := json.Marshal(new(Data))
	if err != nil {
		w.errs = append(w.errs, fmt.Errorf("its Data type cannot be encoded as JSON: %w", err))
	}
	w.zero = zero
	w.checkInput = mayNotRoundTrip(reflect.TypeFor[In](), map[reflect.Type]bool{})
	return w
}

// Name returns the workflow's name.
func (w *Workflow[In, Data]) Name() string { return w.name }

// Validate sets a function that checks the input before a run is created.
// An error from it makes Execute return an error wrapping [ErrInvalidInput]
// and stores no run.
func (w *Workflow[In, Data]) Validate(fn func(In) error) *Workflow[In, Data] {
	w.validate = fn
	return w
}

// Step appends a step: a computation that may run again after a crash
// (at-least-once). Put side effects in a [Workflow.Commit].
func (w *Workflow[In, Data]) Step(name string, fn Handler[In, Data], opts ...StepOption) *Workflow[In, Data] {
	return w.add(KindStep, name, fn, opts)
}

// Commit appends a commit: a side effect (a database write, a charge, an
// email) that must land once. Everything before a commit is durable before
// it starts; a completed commit is never executed again by recovery, Resume,
// a duplicate start or a RetryStep from an earlier node.
func (w *Workflow[In, Data]) Commit(name string, fn Handler[In, Data], opts ...StepOption) *Workflow[In, Data] {
	return w.add(KindCommit, name, fn, opts)
}

func (w *Workflow[In, Data]) add(kind Kind, name string, fn Handler[In, Data], opts []StepOption) *Workflow[In, Data] {
	n := &node[In, Data]{name: name, kind: kind, fn: fn}
	where := w.where(n)
	if fn == nil {
		w.errs = append(w.errs, fmt.Errorf("%s: handler is nil", where))
	}
	return w.insert(n, opts)
}

func (w *Workflow[In, Data]) where(n *node[In, Data]) string {
	return fmt.Sprintf("%s %d (%q)", n.kind, w.regular, n.name)
}

// insert checks a new regular node and its options and appends it, with
// its undo if it has one.
func (w *Workflow[In, Data]) insert(n *node[In, Data], opts []StepOption) *Workflow[In, Data] {
	where := w.where(n)
	w.checkName(where, n.name)
	for _, o := range opts {
		if o == nil {
			continue
		}
		o(&n.opts)
	}
	if n.opts.err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s: %w", where, n.opts.err))
	}
	if n.opts.when != nil {
		pred, ok := n.opts.when.(func(*Ctx[In, Data]) bool)
		if !ok {
			w.errs = append(w.errs, fmt.Errorf("%s: When predicate is a %T, want a func(%T) bool",
				where, n.opts.when, (*Ctx[In, Data])(nil)))
		}
		n.when = pred
	}
	if n.opts.atMostOnce && n.kind != KindCommit {
		w.errs = append(w.errs, fmt.Errorf("%s: AtMostOnce applies to commits only", where))
	}
	if n.wait != nil && (n.opts.retries != nil || n.opts.timeout != nil || n.opts.backoff != nil) {
		w.errs = append(w.errs, fmt.Errorf("%s: Retries, Timeout and Backoff do not apply to a %s; only When does", where, n.kind))
	}
	var undo *node[In, Data]
	if n.opts.undo != nil {
		fn, ok := n.opts.undo.(Handler[In, Data])
		switch {
		case n.kind != KindCommit:
			w.errs = append(w.errs, fmt.Errorf("%s: Undo applies to commits only", where))
		case !ok:
			w.errs = append(w.errs, fmt.Errorf("%s: Undo handler is a %T, want a flux.Handler[%T, %T]",
				where, n.opts.undo, *new(In), *new(Data)))
		default:
			undo = &node[In, Data]{name: UndoName(n.name), kind: KindUndo, fn: fn, of: w.regular}
			undo.opts.retries, undo.opts.timeout, undo.opts.backoff = n.opts.retries, n.opts.timeout, n.opts.backoff
			w.checkName(fmt.Sprintf("undo of %s", where), undo.name)
		}
	}
	// The regular nodes come first, then the undos in reverse order of
	// their commits: a new undo goes right after the regular nodes.
	w.nodes = slices.Insert(w.nodes, w.regular, n)
	w.regular++
	if undo != nil {
		w.nodes = slices.Insert(w.nodes, w.regular, undo)
		w.undos++
	}
	if n.wait != nil {
		w.waits = true
	}
	w.hashNodes(n)
	return w
}

func (w *Workflow[In, Data]) checkName(where, name string) {
	switch {
	case name == "":
		w.errs = append(w.errs, fmt.Errorf("%s: name is empty", where))
	case w.index(name) >= 0:
		w.errs = append(w.errs, fmt.Errorf("%s: duplicate name", where))
	}
}

// hashNodes updates the fingerprint after n was added. Computed now, while
// the definition is built on one goroutine: runs executing concurrently
// then only read it. Without undos the running hash keeps adding a node
// constant in cost however long the workflow is; with them, the undos
// (which come last) are hashed again each time.
func (w *Workflow[In, Data]) hashNodes(n *node[In, Data]) {
	if w.fpHash == nil {
		w.fpHash = sha256.New()
	}
	fmt.Fprintf(w.fpHash, "%s\x00%s\x00", n.kind, n.name)
	if w.undos == 0 {
		w.fp = hex.EncodeToString(w.fpHash.Sum(nil)[:12])
		return
	}
	h := sha256.New()
	for _, m := range w.nodes {
		fmt.Fprintf(h, "%s\x00%s\x00", m.kind, m.name)
	}
	w.fp = hex.EncodeToString(h.Sum(nil)[:12])
}

func (w *Workflow[In, Data]) index(name string) int {
	for i, n := range w.nodes {
		if n.name == name {
			return i
		}
	}
	return -1
}

// Err returns the definition's mistakes, wrapping [ErrInvalidDefinition], or
// nil. Execute and Engine.Register return the same error.
func (w *Workflow[In, Data]) Err() error {
	errs := w.errs
	if len(w.nodes) == 0 {
		errs = append(errs[:len(errs):len(errs)], errors.New("no steps"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w %q: %w", ErrInvalidDefinition, w.name, errors.Join(errs...))
}

// Description is the static shape of a workflow, from [Workflow.Describe].
type Description struct {
	Name        string     `json:"name"`
	Nodes       []NodeInfo `json:"nodes"`
	Fingerprint string     `json:"fingerprint"`
}

// NodeInfo describes one node of a workflow. Options not set on the node are
// zero (and HasRetries etc. false): the engine's defaults apply.
type NodeInfo struct {
	Name       string        `json:"name"`
	Kind       Kind          `json:"kind"`
	Retries    *int          `json:"retries,omitempty"`
	Timeout    time.Duration `json:"timeout,omitempty"`
	Backoff    *BackoffInfo  `json:"backoff,omitempty"`
	When       bool          `json:"when,omitempty"` // has a When predicate
	AtMostOnce bool          `json:"atMostOnce,omitempty"`
	// Sleep is a sleep's duration (zero for SleepUntil, whose time comes
	// from the data).
	Sleep time.Duration `json:"sleep,omitempty"`
	// Signal is the signal (WaitSignal) or event (WaitEvent, with Event
	// set) a wait receives; WaitTimeout its timeout, zero for none.
	Signal      string        `json:"signal,omitempty"`
	Event       bool          `json:"event,omitempty"`
	WaitTimeout time.Duration `json:"waitTimeout,omitempty"`
	// Undoes is, for an undo node, the name of the commit it compensates.
	Undoes string `json:"undoes,omitempty"`
}

// BackoffInfo is a node's backoff setting; zero Base means no backoff.
type BackoffInfo struct {
	Base time.Duration `json:"base"`
	Max  time.Duration `json:"max"`
}

// Describe returns the workflow's name, nodes and fingerprint.
func (w *Workflow[In, Data]) Describe() Description {
	d := Description{Name: w.name, Fingerprint: w.fingerprint()}
	for _, n := range w.nodes {
		ni := n.info()
		if n.kind == KindUndo {
			ni.Undoes = w.nodes[n.of].name
		}
		d.Nodes = append(d.Nodes, ni)
	}
	return d
}

func (n *node[In, Data]) info() NodeInfo {
	ni := NodeInfo{Name: n.name, Kind: n.kind, Retries: n.opts.retries, When: n.when != nil, AtMostOnce: n.opts.atMostOnce}
	if n.opts.timeout != nil {
		ni.Timeout = *n.opts.timeout
	}
	if b := n.opts.backoff; b != nil {
		ni.Backoff = &BackoffInfo{Base: b.base, Max: b.max}
	}
	if w := n.wait; w != nil {
		ni.Sleep, ni.Signal, ni.Event, ni.WaitTimeout = w.d, w.name, w.key != nil, w.timeout
	}
	return ni
}

// fingerprint is the hash of the ordered node names and kinds.
func (w *Workflow[In, Data]) fingerprint() string {
	if w.fp == "" { // no nodes yet
		return hex.EncodeToString(sha256.New().Sum(nil)[:12])
	}
	return w.fp
}

// StepOption configures one step or commit.
type StepOption func(*stepOptions)

type stepOptions struct {
	retries    *int
	timeout    *time.Duration
	backoff    *backoff
	when       any
	undo       any
	atMostOnce bool
	err        error
}

type backoff struct{ base, max time.Duration }

// Retries sets how many extra attempts follow a failed first attempt: a step
// with Retries(3) runs at most 4 times. The default is 3.
func Retries(n int) StepOption {
	return func(o *stepOptions) {
		if n < 0 {
			o.err = fmt.Errorf("Retries(%d): must be 0 or more", n)
			return
		}
		o.retries = &n
	}
}

// Timeout limits each attempt: at d the handler's context is cancelled and
// the attempt fails with [ErrTimeout]. The default is 30s; 0 means none.
func Timeout(d time.Duration) StepOption {
	return func(o *stepOptions) {
		if d < 0 {
			o.err = fmt.Errorf("Timeout(%s): must not be negative", d)
			return
		}
		o.timeout = &d
	}
}

// Backoff sets the delay between attempts: base before the first retry,
// doubling each time up to max, each delay drawn at random from its upper
// half (jitter). The default is Backoff(time.Second, 10*time.Second).
func Backoff(base, max time.Duration) StepOption {
	return func(o *stepOptions) {
		if base <= 0 || max < base {
			o.err = fmt.Errorf("Backoff(%s, %s): want 0 < base <= max", base, max)
			return
		}
		o.backoff = &backoff{base, max}
	}
}

// NoBackoff retries at once.
func NoBackoff() StepOption {
	return func(o *stepOptions) { o.backoff = &backoff{} }
}

// When runs the node only if pred returns true; otherwise the node is marked
// skipped, which is neither an error nor a retry. pred sees the input and the
// data so far and must not change them. Its type parameters must be the
// workflow's.
func When[In, Data any](pred func(*Ctx[In, Data]) bool) StepOption {
	return func(o *stepOptions) {
		if pred == nil {
			o.err = errors.New("When(nil)")
			return
		}
		o.when = pred
	}
}

// AtMostOnce makes a commit that was interrupted after it started fail the
// run with [ErrCommitOutcomeUnknown] instead of running again with the same
// idempotency key. Use it for side effects that no key can deduplicate.
func AtMostOnce() StepOption {
	return func(o *stepOptions) { o.atMostOnce = true }
}
