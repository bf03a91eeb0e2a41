package flux

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
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
	// workflows whose owner died; 0 means 5s.
	RecoveryInterval time.Duration
	// ID names this engine as the owner of its leases; "" means a random ID.
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
	id       string

	mu         sync.Mutex
	active     map[string]*activeRun
	closed     bool
	registry   map[string]registered
	recovering bool
	wg         sync.WaitGroup // runs and background loops
	stop       chan struct{}
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
		id: cfg.ID, active: make(map[string]*activeRun), registry: make(map[string]registered),
		stop: make(chan struct{}),
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
		e.interval = 5 * time.Second
	}
	if e.id == "" {
		e.id = "engine-" + newID()[24:]
	}
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
	e.wg.Add(1)
	go e.heartbeat()
	return e, nil
}

// ID returns the engine's owner ID, as recorded in the leases it holds.
func (e *Engine) ID() string { return e.id }

// Storage returns the engine's storage.
func (e *Engine) Storage() Storage { return e.store }

// Close stops the engine: runs in flight see their context cancelled with
// cause ErrClosed and stop without being marked failed or cancelled, so they
// stay resumable; their leases are released. Close waits for them and for the
// engine's background work, and does not close the storage.
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

func (e *Engine) end(id string, a *activeRun) {
	e.mu.Lock()
	delete(e.active, id)
	if a.done != nil {
		close(a.done)
	}
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
// completed or failed one is an error.
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
	for {
		run, err := e.store.Get(ctx, id)
		if err != nil {
			return err
		}
		switch run.Status {
		case StatusCancelled:
			return nil
		case StatusCompleted, StatusFailed:
			return fmt.Errorf("flux: cannot cancel run %s: it is %s", id, run.Status)
		}
		if err := CheckRunTransition(run.Status, StatusCancelled, TriggerExecute); err != nil {
			return err
		}
		run.Status, run.Error = StatusCancelled, ErrCancelled.Error()
		run.UpdatedAt = time.Now()
		run.FinishedAt = run.UpdatedAt
		err = e.store.Update(ctx, run, 0)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
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
		for id, a := range e.active {
			if a.leased {
				ids = append(ids, id)
			}
		}
		e.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.lease/3)
		lost, err := e.store.Extend(ctx, ExtendParams{Owner: e.id, IDs: ids, Lease: e.lease})
		cancel()
		if err != nil {
			e.log.Warn("flux: renewing leases failed", slog.Any("error", err))
			continue
		}
		e.mu.Lock()
		for _, id := range lost {
			if a := e.active[id]; a != nil {
				a.cancel(ErrLeaseLost)
			}
		}
		e.mu.Unlock()
	}
}

// registered is a workflow the engine can recover without its types.
type registered interface {
	Name() string
	Err() error
	recoverRun(ctx context.Context, e *Engine, run *Run) error
}

// Registrable is a workflow definition that [Engine.Register] accepts: any
// *[Workflow].
type Registrable interface {
	registered
}

// Register makes the engine recover runs of these workflows: runs whose
// owner died (its lease expired) or shut down are picked up by a background
// loop every Config.RecoveryInterval and continued after their last durable
// node. It returns the definition errors of the workflows, wrapping
// ErrInvalidDefinition.
func (e *Engine) Register(flows ...Registrable) error {
	for _, f := range flows {
		if err := f.Err(); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	for _, f := range flows {
		e.registry[f.Name()] = f
	}
	if !e.recovering && len(e.registry) > 0 {
		e.recovering = true
		e.wg.Add(1)
		go e.recoveryLoop()
	}
	return nil
}

func (e *Engine) recoveryLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		e.RecoverNow()
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
	}
}

// RecoverNow claims the runs of registered workflows whose lease expired
// and continues each in its own goroutine. It returns how many it claimed.
// The recovery loop calls it every Config.RecoveryInterval; tests and
// operators may call it directly.
func (e *Engine) RecoverNow() int {
	e.mu.Lock()
	names := make([]string, 0, len(e.registry))
	for n := range e.registry {
		names = append(names, n)
	}
	// Runs executing here are not for recovery, even if their lease lapsed
	// before the heartbeat renewed it.
	here := make([]string, 0, len(e.active))
	for id := range e.active {
		here = append(here, id)
	}
	closed := e.closed
	e.mu.Unlock()
	if closed || len(names) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.lease)
	runs, err := e.store.ClaimExpired(ctx, ClaimExpiredParams{Owner: e.id, Workflows: names, Lease: e.lease, Limit: 100, Exclude: here})
	cancel()
	if err != nil {
		e.log.Warn("flux: looking for runs to recover failed", slog.Any("error", err))
		return 0
	}
	for _, run := range runs {
		e.mu.Lock()
		w := e.registry[run.Workflow]
		_, here := e.active[run.ID]
		e.mu.Unlock()
		if here {
			// It began here after Exclude was made (Resume, a duplicate
			// start): its own Claim saw or made the latest version.
			continue
		}
		e.log.Info("flux: recovering run", slog.String("run_id", run.ID), slog.String("workflow", run.Workflow))
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			if err := w.recoverRun(context.Background(), e, run); err != nil && !errors.Is(err, ErrClosed) {
				e.log.Warn("flux: recovered run did not complete", slog.String("run_id", run.ID), slog.Any("error", err))
			}
		}()
	}
	return len(runs)
}

// newID returns a UUIDv7: random, and sortable by creation time.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(time.Now().UnixMilli())
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
