package flux

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/flux-go/flux/driver"
)

// registered is a workflow the engine can recover without its types.
type registered interface {
	Name() string
	Err() error
	recoverRun(e *Engine, run *Run) error
	limits() (driver.Limit, bool)
}

// Registrable is a workflow definition that [Engine.Register] accepts: any
// *[Workflow].
type Registrable interface {
	registered
}

// Register makes the engine recover runs of these workflows: runs whose
// owner died (its lease expired, or it was an earlier start of this engine's
// ID) or shut down are picked up by a background loop, at once and then
// every Config.RecoveryInterval, and continued after their last durable
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
	if !e.recovering && len(e.registry) > 0 && e.slots > 0 {
		e.recovering = true
		e.wg.Add(1)
		go e.recoveryLoop()
	}
	return nil
}

// DefaultWorkers is how many runs an engine executes at once in the
// background unless Config.Workers says otherwise.
const DefaultWorkers = 32

// minRecoveryTimeout bounds a recovery pass's store calls from below,
// whatever the lease.
const minRecoveryTimeout = 10 * time.Second

func (e *Engine) recoveryLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		e.RecoverNow()
		// A waiting run due before the next look is looked for at its
		// time.
		var due <-chan time.Time
		var wt *time.Timer
		if d, ok := e.untilWake(); ok && d < e.interval {
			wt = time.NewTimer(max(d, minWakeDelay))
			due = wt.C
		}
		select {
		case <-e.stop:
			return
		case <-t.C:
		case <-due:
		case <-e.wake:
		case <-e.storeWake:
		}
		if wt != nil {
			wt.Stop()
		}
	}
}

// minWakeDelay bounds from below the wait for a waiting run's time, so that
// a store whose clock is behind the engine's is not asked in a loop.
const minWakeDelay = 5 * time.Millisecond

// setNextWake records the store's earliest time of a waiting run not yet
// due.
func (e *Engine) setNextWake(t time.Time) {
	e.mu.Lock()
	e.nextWake = t
	e.mu.Unlock()
}

// wakeBy makes the background loop look for waiting runs at t at the
// latest.
func (e *Engine) wakeBy(t time.Time) {
	if t.IsZero() {
		return
	}
	e.mu.Lock()
	sooner := e.nextWake.IsZero() || t.Before(e.nextWake)
	if sooner {
		e.nextWake = t
	}
	e.mu.Unlock()
	if sooner {
		e.nudge()
	}
}

// untilWake returns how long until the earliest known waiting run is due.
func (e *Engine) untilWake() (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.nextWake.IsZero() {
		return 0, false
	}
	return time.Until(e.nextWake), true
}

// nudge tells the background loop to look for runs now: a run was started
// here, or a slot came free.
func (e *Engine) nudge() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// RecoverNow claims the runs of registered workflows that need an owner
// (started with [Start] and not taken yet, their lease expired or was
// released, or an earlier start of this engine's ID held them), as many as
// Config.Workers leaves room for, and executes each in its own goroutine.
// It returns how many it claimed. The background loop calls it every
// Config.RecoveryInterval and whenever a run is started or ends here; tests
// and operators may call it directly.
func (e *Engine) RecoverNow() int {
	e.mu.Lock()
	room := e.slots - e.busy
	names := make([]string, 0, len(e.registry))
	var limits []driver.Limit
	for n, w := range e.registry {
		names = append(names, n)
		if l, ok := w.limits(); ok {
			limits = append(limits, l)
		}
	}
	var orphans []string
	for id := range e.orphans {
		orphans = append(orphans, id)
	}
	closed := e.closed
	e.mu.Unlock()
	if closed || len(names) == 0 || room <= 0 || e.draining.Load() {
		return 0
	}
	// A slow store is given time: the runs it claims late may have to be
	// given up (their lease expired meanwhile), but the pass is not lost.
	ctx, cancel := context.WithTimeout(context.Background(), max(e.lease, minRecoveryTimeout))
	defer cancel()
	// The query leaves alone the runs this engine holds: they execute here.
	claimed, err := e.store.ClaimExpired(ctx, driver.ClaimExpiredParams{Owner: e.owner, Workflows: names, Lease: e.lease,
		Limit: max(room-len(orphans), 1), Limits: limits})
	if err != nil {
		e.log.Warn("flux: looking for runs to recover failed", slog.Any("error", err))
		return 0
	}
	for _, err := range claimed.Corrupt {
		e.corrupt(err)
	}
	e.setNextWake(claimed.NextWake)
	runs := claimed.Runs
	// Runs that stopped here without giving their lease back (their last
	// write failed) are this engine's to continue.
	for _, id := range orphans {
		e.mu.Lock()
		_, here := e.active[id] // a Resume took it up meanwhile
		e.mu.Unlock()
		if here {
			continue
		}
		run, err := e.store.Claim(ctx, driver.ClaimParams{ID: id, Owner: e.owner, Lease: e.lease})
		if err != nil && !errors.Is(err, ErrRunNotFound) && !errors.Is(err, ErrRunActive) {
			continue // storage still failing: try again next time
		}
		e.mu.Lock()
		delete(e.orphans, id)
		e.mu.Unlock()
		if err == nil && !run.Status.Final() {
			runs = append(runs, run)
		} else if err == nil {
			e.release(run)
		}
	}
	for _, run := range runs {
		e.mu.Lock()
		w := e.registry[run.Workflow]
		if w != nil {
			e.busy++
		}
		e.mu.Unlock()
		if w == nil {
			e.release(run)
			continue
		}
		if run.Status == StatusPending { // started, never taken
			e.log.Debug("flux: starting run", slog.String("run_id", run.ID), slog.String("workflow", run.Workflow))
		} else {
			e.log.Info("flux: recovering run", slog.String("run_id", run.ID), slog.String("workflow", run.Workflow))
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer func() {
				e.mu.Lock()
				e.busy--
				room := e.slots - e.busy
				e.mu.Unlock()
				// Slots are filled a quarter at a time: one claim for
				// many runs, not one per run that ends.
				if room >= max(1, e.slots/4) {
					e.nudge()
				}
			}()
			if err := w.recoverRun(e, run); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrRunActive) && !errors.Is(err, ErrWaiting) {
				e.log.Warn("flux: recovered run did not complete", slog.String("run_id", run.ID), slog.Any("error", err))
			}
		}()
	}
	return len(runs)
}

// release gives back the lease of a run this engine claimed and will not
// execute. A failure is logged: the lease then expires.
func (e *Engine) release(run *Run) {
	ctx, cancel := context.WithTimeout(context.Background(), e.lease)
	defer cancel()
	if err := e.store.Release(ctx, driver.ReleaseParams{ID: run.ID, Owner: e.owner}); err != nil {
		e.log.Warn("flux: giving back the lease of a run failed; it expires in Config.LeaseDuration",
			slog.String("run_id", run.ID), slog.Any("error", err))
	}
}

// recoverRun continues a run that the recovery loop claimed.
func (w *Workflow[In, Data]) recoverRun(e *Engine, claimed *Run) error {
	ctx, a, err := e.begin(context.Background(), claimed.ID)
	if errors.Is(err, ErrClosed) {
		e.release(claimed)
	}
	if err != nil {
		// Or it executes here already (a Resume or duplicate start that
		// began after the claim, holding the same lease): nothing to do.
		return err
	}
	r, _, err := fromClaim(ctx, e, w, claimed, TriggerExecute, startOptions{recovery: true})
	if err != nil {
		e.end(claimed.ID, a, false)
		return err
	}
	_, err = r.execute()
	e.end(claimed.ID, a, r.leased())
	if r.run.Status.Final() {
		// It ended: failed, compensated or cancelled. Its outcome was
		// logged with its events; it is not a failure to recover it.
		return nil
	}
	return err
}

// corrupt reports a stored run that recovery cannot read, once per run
// and engine start: an error log with its ID, and the trace sink's
// RunCorrupt if it has one. The run is left as it is; the runs after it are
// recovered.
func (e *Engine) corrupt(err error) {
	id := driver.CorruptRunID(err)
	e.mu.Lock()
	seen := e.corruptSeen[id]
	if e.corruptSeen == nil {
		e.corruptSeen = make(map[string]bool)
	}
	e.corruptSeen[id] = true
	e.mu.Unlock()
	if seen && id != "" {
		return
	}
	e.log.Error("flux: a stored run cannot be read, so it is not recovered; repair or delete it (flux runs show names what is wrong)",
		slog.String("run_id", id), slog.Any("error", err))
	if cr, ok := e.trace.(CorruptReporter); ok {
		defer func() {
			if v := recover(); v != nil {
				e.log.Error("flux: trace sink panicked in RunCorrupt", slog.Any("error", newPanicError(v)))
			}
		}()
		cr.RunCorrupt(CorruptRun{RunID: id, Err: err})
	}
}

// CorruptRun describes a stored run that the engine cannot read.
type CorruptRun struct {
	RunID string // "" if the store could not tell
	Err   error  // wraps ErrCorrupt
}

// CorruptReporter is implemented by trace sinks that want to know of the
// stored runs recovery cannot read, such as fluxotel's, which counts them.
// The engine calls RunCorrupt once per run and start of the engine.
type CorruptReporter interface {
	RunCorrupt(CorruptRun)
}
