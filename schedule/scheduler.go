package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// Options configure a [Scheduler]. The zero Options are valid.
type Options struct {
	// Logger receives missed ticks (info; warn for those All drops beyond
	// MaxCatchUp), runs that cannot be started (error) and started runs
	// (debug); nil means slog.Default().
	Logger *slog.Logger
	// Grace is how old a tick may be when a pass sees it and still start
	// under the Skip policy; 0 means one minute.
	Grace time.Duration
	// MaxCatchUp is the most missed ticks the All policy starts in one
	// pass (the latest ones); 0 means 1000.
	MaxCatchUp int
	// Poll is how often Run reads the schedules when no tick is due
	// sooner, to see the schedules other processes add, pause, resume or
	// change; 0 means one minute.
	Poll time.Duration
	// Now is the clock, for tests; nil means time.Now. Tick takes the time
	// it is given instead.
	Now func() time.Time
}

// Scheduler starts the runs of the schedules of the workflows registered
// with it, on one engine. Make one per process with [New], register
// workflows with [Add] or [Register], and call [Scheduler.Run]. It is safe
// for concurrent use.
type Scheduler struct {
	engine *flux.Engine
	store  driver.Scheduler
	log    *slog.Logger
	grace  time.Duration
	max    int
	poll   time.Duration
	now    func() time.Time

	mu    sync.Mutex
	flows map[string]registered // by workflow name
	specs map[[2]string]parsed  // by spec and time zone
}

// registered is a workflow registered with a Scheduler.
type registered struct {
	w     any // the *flux.Workflow, to tell two of one name apart
	start func(ctx context.Context, input json.RawMessage, id string) error
}

type parsed struct {
	spec spec
	err  error
}

// retryAfter is how soon Run tries again after a pass failed.
const retryAfter = 5 * time.Second

// New returns a Scheduler that starts runs on engine e and keeps its
// schedules in e's storage, which must implement driver.Scheduler (every
// store of this module does).
func New(e *flux.Engine, opts Options) (*Scheduler, error) {
	if e == nil {
		return nil, errors.New("schedule: New needs an engine, got nil")
	}
	store, err := schedulerOf(e.Storage())
	if err != nil {
		return nil, err
	}
	if opts.Grace < 0 || opts.MaxCatchUp < 0 || opts.Poll < 0 {
		return nil, fmt.Errorf("schedule: Options.Grace (%v), MaxCatchUp (%d) and Poll (%v) may not be negative; 0 means the default", opts.Grace, opts.MaxCatchUp, opts.Poll)
	}
	s := &Scheduler{
		engine: e, store: store, log: opts.Logger, grace: opts.Grace, max: opts.MaxCatchUp, poll: opts.Poll, now: opts.Now,
		flows: make(map[string]registered), specs: make(map[[2]string]parsed),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.grace == 0 {
		s.grace = time.Minute
	}
	if s.max == 0 {
		s.max = 1000
	}
	if s.poll == 0 {
		s.poll = time.Minute
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// schedulerOf returns store as a driver.Scheduler, or an error saying it
// keeps no schedules.
func schedulerOf(store flux.Storage) (driver.Scheduler, error) {
	sc, ok := store.(driver.Scheduler)
	if !ok {
		return nil, fmt.Errorf("schedule: the storage (%T) keeps no schedules: it does not implement driver.Scheduler; use the memory, SQLite or PostgreSQL storage of this module", store)
	}
	return sc, nil
}

// Register lets s start the runs of the stored schedules of workflow w,
// whoever added them: their input, decoded into In, is w's input. [Add]
// registers its workflow; a process that runs schedules added elsewhere
// registers their workflows. Registering a workflow twice is allowed;
// another workflow of the same name is an error.
func Register[In, Data any](s *Scheduler, w *flux.Workflow[In, Data]) error {
	if err := w.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.flows[w.Name()]; ok {
		if r.w != any(w) {
			return fmt.Errorf("schedule: another workflow named %q is registered with this scheduler: workflow names must be unique", w.Name())
		}
		return nil
	}
	e := s.engine
	s.flows[w.Name()] = registered{w: w, start: func(ctx context.Context, input json.RawMessage, id string) error {
		var in In
		if len(input) > 0 {
			if err := json.Unmarshal(input, &in); err != nil {
				return &inputError{fmt.Errorf("%w: the schedule's stored input does not decode into %T: %v", flux.ErrInvalidInput, in, err)}
			}
		}
		_, err := flux.Start(ctx, e, w, in, flux.RunID(id))
		return err
	}}
	return nil
}

// inputError is a stored input that does not decode: no pass can start
// its runs.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// Add stores schedule sc of workflow w with input in, in the engine's
// storage, and registers w with s ([Register]). If a schedule of that name
// exists, Add replaces its definition (spec, time zone, catch-up, input)
// and keeps its state: paused or not, and its last tick, from which the
// new definition's ticks are counted. A new schedule starts at its first
// tick after now: nothing before is caught up. A schedule of that name of
// another workflow is an error, as are an invalid spec or time zone, an
// unknown catch-up policy and an input that does not round-trip through
// JSON.
func Add[In, Data any](ctx context.Context, s *Scheduler, w *flux.Workflow[In, Data], sc Schedule, in In) error {
	if err := checkName(sc.Name); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	if _, err := parseSpec(sc.Spec, sc.TimeZone); err != nil {
		return fmt.Errorf("schedule %q: %w", sc.Name, err)
	}
	catchUp, err := parseCatchUp(string(sc.CatchUp))
	if err != nil {
		return fmt.Errorf("schedule %q: %w", sc.Name, err)
	}
	input, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("schedule %q: %w: the input does not encode as JSON: %v", sc.Name, flux.ErrInvalidInput, err)
	}
	if err := json.Unmarshal(input, new(In)); err != nil {
		return fmt.Errorf("schedule %q: %w: the input's JSON %s does not decode back into %T: %v", sc.Name, flux.ErrInvalidInput, input, in, err)
	}
	if err := Register(s, w); err != nil {
		return err
	}
	all, err := s.store.Schedules(ctx)
	if err != nil {
		return fmt.Errorf("schedule %q: reading the stored schedules: %w", sc.Name, err)
	}
	var old *driver.Schedule
	for i := range all {
		if all[i].Name == sc.Name {
			old = &all[i]
		}
	}
	def := driver.Schedule{
		Name: sc.Name, Workflow: w.Name(), Spec: sc.Spec, TimeZone: sc.TimeZone,
		Input: input, CatchUp: string(catchUp), Paused: sc.Paused, UpdatedAt: s.now(),
	}
	if old != nil {
		if old.Workflow != w.Name() {
			return fmt.Errorf("schedule %q is a schedule of workflow %q, not %q: choose another name, or delete it first (schedule.Delete)", sc.Name, old.Workflow, w.Name())
		}
		if old.Spec == def.Spec && old.TimeZone == def.TimeZone && old.CatchUp == def.CatchUp && sameJSON(old.Input, def.Input) {
			return nil // nothing changed
		}
	}
	if err := s.store.SaveSchedule(ctx, driver.SaveScheduleParams{Schedule: def}); err != nil {
		return fmt.Errorf("schedule %q: storing it: %w", sc.Name, err)
	}
	if old == nil {
		// Count its ticks from now on: no backfill.
		if err := s.store.SetSchedule(ctx, driver.SetScheduleParams{Name: sc.Name, LastTick: def.UpdatedAt, At: def.UpdatedAt}); err != nil {
			return fmt.Errorf("schedule %q: recording its creation time: %w", sc.Name, err)
		}
	}
	return nil
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// Tick makes one pass over the stored schedules as of now: for each one of
// a registered workflow that is not paused, it takes the ticks after the
// schedule's last tick up to now, starts the runs its catch-up policy
// keeps (flux.Start with RunID, so a run another engine started is not
// started twice), and records the latest tick it dealt with. Schedules of
// workflows not registered here are left alone.
//
// started counts the runs of this pass, including those another engine
// had started already. A schedule whose runs could not be started is
// reported in err, after the other schedules were dealt with; its last
// tick stays before the run that failed, for the next pass to try again
// (if the policy still keeps it then). A run refused for good (its stored
// input does not decode, or the workflow refuses it) is logged and
// counted as dealt with.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) (started int, err error) {
	started, _, err = s.pass(ctx, now)
	return started, err
}

// pass is Tick, and also returns the earliest tick after now of the
// schedules it looked at (zero if none).
func (s *Scheduler) pass(ctx context.Context, now time.Time) (started int, next time.Time, err error) {
	all, err := s.store.Schedules(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("schedule: reading the schedules: %w", err)
	}
	s.mu.Lock()
	flows := make(map[string]registered, len(s.flows))
	for k, v := range s.flows {
		flows[k] = v
	}
	s.mu.Unlock()
	var errs []error
	for i := range all {
		sc := &all[i]
		r, ok := flows[sc.Workflow]
		if sc.Paused || !ok {
			continue
		}
		n, nx, err := s.one(ctx, sc, r, now)
		started += n
		if err != nil {
			errs = append(errs, err)
			if errors.Is(err, flux.ErrClosed) || ctx.Err() != nil {
				break
			}
		}
		if !nx.IsZero() && (next.IsZero() || nx.Before(next)) {
			next = nx
		}
	}
	return started, next, errors.Join(errs...)
}

// one deals with the due ticks of one schedule, and returns how many runs
// it started and the schedule's next tick after now.
func (s *Scheduler) one(ctx context.Context, sc *driver.Schedule, r registered, now time.Time) (started int, next time.Time, err error) {
	sp, err := s.spec(sc.Spec, sc.TimeZone)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("schedule %q: %w", sc.Name, err)
	}
	catchUp, err := parseCatchUp(sc.CatchUp)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("schedule %q: %w", sc.Name, err)
	}
	after := sc.LastTick
	if after.IsZero() {
		after = sc.UpdatedAt // not set by Add: a schedule stored by other means
	}
	next = sp.next(now)
	p := planTicks(sp, catchUp, after, now, s.grace, s.max)
	done := time.Time{} // the latest tick dealt with
	if p.missed > 0 {
		level := slog.LevelInfo
		if catchUp == All {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "schedule: missed ticks not run", "schedule", sc.Name, "catch_up", string(catchUp),
			"missed", p.missed, "first", p.first, "last", p.last, "started", len(p.run))
		done = p.last
	}
	for _, t := range p.run {
		id := RunID(sc.Name, t)
		serr := r.start(ctx, sc.Input, id)
		if serr != nil && !refused(serr) {
			err = fmt.Errorf("schedule %q: starting run %s: %w", sc.Name, id, serr)
			break
		}
		if serr != nil {
			s.log.Error("schedule: run refused, tick not run", "schedule", sc.Name, "run_id", id, "err", serr)
		} else {
			started++
			s.log.Debug("schedule: run started", "schedule", sc.Name, "run_id", id)
		}
		done = t
	}
	if done.After(sc.LastTick) {
		serr := s.store.SetSchedule(ctx, driver.SetScheduleParams{Name: sc.Name, LastTick: done, At: now})
		if serr != nil && !errors.Is(serr, driver.ErrScheduleNotFound) { // deleted meanwhile: nothing to record
			err = errors.Join(err, fmt.Errorf("schedule %q: recording its last tick %s: %w", sc.Name, done.Format(time.RFC3339), serr))
		}
	}
	return started, next, err
}

// refused reports whether a Start failed for good: trying again at the
// next pass would fail the same way.
func refused(err error) bool {
	var ie *inputError
	return errors.As(err, &ie) || errors.Is(err, flux.ErrInvalidInput) || errors.Is(err, flux.ErrWrongWorkflow) ||
		errors.Is(err, flux.ErrPayloadTooLarge)
}

// spec returns the parsed spec, cached.
func (s *Scheduler) spec(expr, zone string) (spec, error) {
	key := [2]string{expr, zone}
	s.mu.Lock()
	p, ok := s.specs[key]
	s.mu.Unlock()
	if !ok {
		p.spec, p.err = parseSpec(expr, zone)
		s.mu.Lock()
		s.specs[key] = p
		s.mu.Unlock()
	}
	return p.spec, p.err
}

// Run calls Tick at each tick of the schedules it starts, and at least
// every Options.Poll to see schedules that other processes added, paused,
// resumed or changed, until ctx ends or a run cannot be started because the
// engine was closed. A pass that fails is logged and tried again after a
// few seconds. It returns ctx's cause, or the error of the closed engine.
// Cancel ctx before closing the engine.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		_, next, err := s.pass(ctx, s.now())
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		wait := s.poll
		if err != nil {
			if errors.Is(err, flux.ErrClosed) {
				return err
			}
			s.log.Error("schedule: pass failed", "err", err)
			wait = min(wait, retryAfter)
		}
		if !next.IsZero() {
			wait = max(0, min(wait, next.Sub(s.now())))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}
