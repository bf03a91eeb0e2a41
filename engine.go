package flux

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux/driver"
)

// Config configures an [Engine]. The zero Config is valid: in-memory
// storage, slog.Default(), no hooks and no trace.
type Config struct {
	// Storage keeps runs; nil means a new [MemoryStorage].
	Storage Storage
	// Logger receives transitions at debug, retries at warn and failures at
	// error level, with run_id, workflow and step attributes; nil means
	// slog.Default().
	Logger *slog.Logger
	// Hooks are called on transitions.
	Hooks Hooks
	// Trace receives one event per transition; nil means none.
	Trace TraceSink
	// DefaultStepOptions apply to every node before the node's own options,
	// overriding Flux's defaults (Retries(3), Timeout(30*time.Second),
	// Backoff(time.Second, 10*time.Second)).
	DefaultStepOptions []StepOption
	// MaxPayloadBytes limits the JSON size of a run's input and of each data
	// snapshot; larger ones fail with ErrPayloadTooLarge and nothing is
	// written. 0 means 4 MiB; negative means no limit.
	MaxPayloadBytes int
	// LeaseDuration is how long a run's owner may be silent before another
	// engine may take the run over; 0 means 30s. Leases are renewed every
	// LeaseDuration/3 while a run executes.
	LeaseDuration time.Duration
	// RecoveryInterval is how often the engine looks for runs of registered
	// workflows that need an owner — started with [Start] and not taken
	// yet, or whose owner died — when nothing told it of one sooner; 0
	// means one second. Each look is one query.
	RecoveryInterval time.Duration
	// Workers is how many runs the engine executes at once in the
	// background: runs started with [Start] and runs it recovers. 0 means
	// 32. Negative means none: the engine only stores the runs it starts,
	// for other engines to execute, and recovers nothing.
	Workers int
	// Retention says how long finished runs are kept: by default completed
	// and cancelled runs for 24 hours and failed runs for 7 days. The
	// engine deletes older ones in the background (see PruneInterval).
	Retention Retention
	// WorkflowRetention overrides Retention for the workflows it names;
	// the zero fields of an entry fall back to Retention's.
	WorkflowRetention map[string]Retention
	// PruneInterval is how often the engine deletes the finished runs past
	// their retention, a few hundred at a time; 0 means every minute,
	// negative means never in the background (call [Engine.Prune]).
	// Engines sharing a store may all prune: each deletion is idempotent.
	PruneInterval time.Duration
	// ID names this engine as the owner of its leases; "" means a random ID.
	// Give each process a stable ID of its own (a host or pod name): an
	// engine started with the ID of one that crashed continues that one's
	// runs at once, at its first recovery pass, instead of after their
	// leases expire. Two engines running at the same time must not share an
	// ID, and an ID may not contain "#".
	ID string
}

// Engine executes workflows and records their runs. It is safe for
// concurrent use; make one per process and Close it on shutdown.
type Engine struct {
	store    Storage
	log      *slog.Logger
	hooks    Hooks
	trace    TraceSink
	defaults stepOptions
	maxBytes int
	lease    time.Duration
	interval time.Duration
	slots    int           // most runs the background loop executes at once (Config.Workers); < 0: none
	busy     int           // runs the background loop executes now (under mu)
	wake     chan struct{} // a run to execute may be waiting: look now
	draining atomic.Bool   // Shutdown: take no run, start no node
	// storeWake receives when the store tells of a run that needs an owner
	// (driver.Waker); nil for a store that cannot tell.
	storeWake <-chan struct{}
	stopWake  func()
	ended     chan struct{} // closed, and replaced, whenever a run ends here (under mu)
	id        string
	owner     string // id#nonce: what this start of the engine writes as owner
	retain    retention

	mu         sync.Mutex
	active     map[string]*activeRun
	orphans    map[string]bool // runs that ended here still leased to this engine
	closed     bool
	registry   map[string]registered
	recovering bool
	nextWake   time.Time // the earliest known time of a waiting run not yet due
	// corruptSeen holds the runs reported as unreadable, so that each is
	// reported once, not at every recovery pass.
	corruptSeen map[string]bool
	wg          sync.WaitGroup // runs and background loops
	stop        chan struct{}
	idle        chan *worker // workers kept for the next runs' handlers

	// checkpointHook, when set (by tests), sees every write of a run with
	// the changes it records.
	checkpointHook func(*Run, *changes)
}

type activeRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the run ends; made by Cancel (under Engine.mu)
	// leased is set (under Engine.mu) once the run's lease is this engine's:
	// before that, the stored run is absent or another owner's, and the
	// heartbeat must neither renew it nor take it for a lost lease.
	leased bool
}

// NewEngine returns an engine configured by cfg.
func NewEngine(cfg Config) (*Engine, error) {
	e := &Engine{
		store: cfg.Storage, log: cfg.Logger, hooks: cfg.Hooks, trace: cfg.Trace,
		maxBytes: cfg.MaxPayloadBytes, lease: cfg.LeaseDuration, interval: cfg.RecoveryInterval,
		slots: cfg.Workers, wake: make(chan struct{}, 1), ended: make(chan struct{}),
		id: cfg.ID, active: make(map[string]*activeRun), orphans: make(map[string]bool),
		registry: make(map[string]registered), stop: make(chan struct{}),
		idle: make(chan *worker, maxIdleWorkers),
	}
	if strings.Contains(e.id, "#") {
		return nil, fmt.Errorf("flux: Config.ID %q contains \"#\", which separates the ID from its start's nonce in lease owners; choose another ID", cfg.ID)
	}
	if e.store == nil {
		e.store = NewMemoryStorage()
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.maxBytes == 0 {
		e.maxBytes = 4 << 20
	}
	if e.lease <= 0 {
		e.lease = 30 * time.Second
	}
	if e.interval <= 0 {
		e.interval = time.Second
	}
	if e.slots == 0 {
		e.slots = DefaultWorkers
	}
	if e.id == "" {
		e.id = "engine-" + newID()[24:]
	}
	e.owner = e.id + "#" + newID()[28:]
	retries, timeout := 3, 30*time.Second
	e.defaults = stepOptions{retries: &retries, timeout: &timeout, backoff: &backoff{time.Second, 10 * time.Second}}
	for _, o := range cfg.DefaultStepOptions {
		if o != nil {
			o(&e.defaults)
		}
	}
	if err := e.defaults.err; err != nil {
		return nil, fmt.Errorf("flux: Config.DefaultStepOptions: %w", err)
	}
	if e.defaults.when != nil || e.defaults.atMostOnce {
		return nil, errors.New("flux: Config.DefaultStepOptions: When and AtMostOnce apply to single nodes only")
	}
	var err error
	if e.retain, err = newRetention(cfg); err != nil {
		return nil, err
	}
	e.stopWake = func() {}
	if wk, ok := e.store.(driver.Waker); ok && e.slots > 0 {
		e.storeWake, e.stopWake = wk.Wakeups()
	}
	e.wg.Add(1)
	go e.heartbeat()
	if e.retain.interval > 0 {
		e.wg.Add(1)
		go e.pruneLoop()
	}
	return e, nil
}

// ID returns the engine's ID: Config.ID, or the random one it drew.
func (e *Engine) ID() string { return e.id }

// Owner returns what the engine records as the owner of the runs it
// executes: its ID, "#", and a nonce new at every NewEngine, so that an
// engine restarted with the same ID tells its own runs from those of its
// crashed predecessor (see [Storage]).
func (e *Engine) Owner() string { return e.owner }

// Storage returns the engine's storage.
func (e *Engine) Storage() Storage { return e.store }

// Close stops the engine: runs in flight see their context cancelled with
// cause ErrClosed and stop without being marked failed or cancelled, so they
// stay resumable; their leases are released. Close waits for them and for the
// engine's background work. It closes neither the storage nor the trace
// sink: whoever opened them closes them, after the engine.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.stop)
	for _, a := range e.active {
		a.cancel(ErrClosed)
	}
	e.mu.Unlock()
	e.wg.Wait()
	e.stopWorkers()
	e.stopWake()
	return nil
}

// begin registers run id as executing here and returns its context.
func (e *Engine) begin(ctx context.Context, id string) (context.Context, *activeRun, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, nil, ErrClosed
	}
	if _, ok := e.active[id]; ok {
		return nil, nil, fmt.Errorf("%w: run %s is executing in this engine", ErrRunActive, id)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	a := &activeRun{cancel: cancel}
	e.active[id] = a
	e.wg.Add(1)
	return rctx, a, nil
}

// holdsLease records that this engine now holds the lease of run id, so the
// heartbeat renews it.
func (e *Engine) holdsLease(id string) {
	e.mu.Lock()
	if a := e.active[id]; a != nil {
		a.leased = true
	}
	e.mu.Unlock()
}

// end unregisters run id. leased reports whether the run is still leased to
// this engine in storage (its last write failed): the recovery loop then
// takes it up again.
func (e *Engine) end(id string, a *activeRun, leased bool) {
	e.mu.Lock()
	delete(e.active, id)
	if leased {
		e.orphans[id] = true
	}
	if a.done != nil {
		close(a.done)
	}
	close(e.ended)
	e.ended = make(chan struct{})
	e.mu.Unlock()
	a.cancel(nil)
	e.wg.Done()
}

// Get returns the stored run with the given ID, or an error wrapping
// ErrRunNotFound.
func (e *Engine) Get(ctx context.Context, id string) (*Run, error) {
	return e.store.Get(ctx, id)
}

// List returns stored runs, newest first, one page at a time.
func (e *Engine) List(ctx context.Context, f Filter) (*RunPage, error) {
	return e.store.List(ctx, f)
}

// Cancel cancels a run. A run executing in this engine sees its attempt's
// context cancelled and is marked cancelled before Cancel returns; a run
// executing elsewhere is marked cancelled in storage and its owner stops at
// its next checkpoint. Cancelling a cancelled run is a no-op; cancelling a
// completed or failed one returns an error wrapping ErrRunFinished.
func (e *Engine) Cancel(ctx context.Context, id string) error {
	e.mu.Lock()
	a := e.active[id]
	var done chan struct{}
	if a != nil {
		if a.done == nil { // made on demand: most runs are never cancelled
			a.done = make(chan struct{})
		}
		done = a.done
	}
	e.mu.Unlock()
	if a != nil {
		a.cancel(ErrCancelled)
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The store marks it cancelled and releases its lease: its owner's
	// next write fails and it stops; a Resume may take the run at once.
	now := time.Now()
	return e.store.Cancel(ctx, driver.CancelParams{ID: id, Error: ErrCancelled.Error(), At: now})
}

// NodeData returns run id's data as it was after the node named step
// finished (after the last node up to it that completed; the data before
// the first node if none did), as JSON. The viewer shows it; RetryStep
// starts from the data before its node.
func (e *Engine) NodeData(ctx context.Context, id, step string) (json.RawMessage, error) {
	run, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	for i, s := range run.Steps {
		if s.Name == step {
			return e.store.NodeData(ctx, driver.NodeDataParams{ID: id, Index: i})
		}
	}
	return nil, fmt.Errorf("%w: run %s has no node %q", ErrStepNotFound, id, step)
}

// heartbeat renews the leases of runs executing here, and stops the runs
// whose lease another engine took.
func (e *Engine) heartbeat() {
	defer e.wg.Done()
	t := time.NewTicker(e.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		e.mu.Lock()
		ids := make([]string, 0, len(e.active))
		held := make(map[string]*activeRun, len(e.active))
		for id, a := range e.active {
			if a.leased {
				ids = append(ids, id)
				held[id] = a
			}
		}
		e.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.lease/3)
		lost, err := e.store.Extend(ctx, driver.ExtendParams{Owner: e.owner, IDs: ids, Lease: e.lease})
		cancel()
		if err != nil {
			e.log.Warn("flux: renewing leases failed", slog.Any("error", err))
			continue
		}
		e.mu.Lock()
		for _, id := range lost {
			// Only the execution whose lease was renewed: one that ended
			// meanwhile gave its lease back, and a new start of the same
			// run (a duplicate Execute, a Resume) is not the one that lost.
			if a := e.active[id]; a != nil && a == held[id] {
				a.cancel(ErrLeaseLost)
			}
		}
		e.mu.Unlock()
	}
}

// newID returns a UUIDv7: random, and sortable by creation time.
func newID() string { return newIDAt(time.Now()) }

// newIDAt is newID with the clock already read.
func newIDAt(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
