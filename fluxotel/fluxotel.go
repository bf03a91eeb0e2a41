package fluxotel

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/flux-go/flux"
)

// ScopeName is the instrumentation scope of the tracer and meter.
const ScopeName = "github.com/flux-go/flux/fluxotel"

// Attribute keys set on spans and metrics.
const (
	AttrRunID      = attribute.Key("flux.run.id")
	AttrWorkflow   = attribute.Key("flux.workflow.name")
	AttrRunStatus  = attribute.Key("flux.run.status")
	AttrStep       = attribute.Key("flux.step.name")
	AttrIndex      = attribute.Key("flux.step.index")
	AttrKind       = attribute.Key("flux.step.kind")
	AttrAttempt    = attribute.Key("flux.step.attempt")
	AttrMaxRetries = attribute.Key("flux.step.max_retries")
	AttrOutcome    = attribute.Key("flux.step.outcome")
	AttrSkipped    = attribute.Key("flux.step.skipped")
	// AttrUnfinished is set on spans that were ended without their end
	// event: "restarted", "evicted" or "closed".
	AttrUnfinished = attribute.Key("flux.unfinished")
)

// Values of [AttrOutcome].
const (
	OutcomeCompleted   = "completed"
	OutcomeRetry       = "retry"
	OutcomeError       = "error"
	OutcomeInterrupted = "interrupted"
)

// noSpan is the non-recording span of an empty context.
var noSpan = trace.SpanFromContext(context.Background())

// DefaultMaxOpenRuns is the default of [WithMaxOpenRuns].
const DefaultMaxOpenRuns = 10000

// durationBuckets suit steps from milliseconds to minutes, in seconds.
var durationBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// Option configures [New].
type Option func(*config)

type config struct {
	tp      trace.TracerProvider
	mp      metric.MeterProvider
	maxRuns int
	err     error
}

// WithTracerProvider sets the tracer provider; the default is
// otel.GetTracerProvider().
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp == nil {
			c.err = errors.Join(c.err, errors.New("WithTracerProvider(nil): pass a provider, or omit the option to use otel.GetTracerProvider()"))
			return
		}
		c.tp = tp
	}
}

// WithMeterProvider sets the meter provider; the default is
// otel.GetMeterProvider().
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp == nil {
			c.err = errors.Join(c.err, errors.New("WithMeterProvider(nil): pass a provider, or omit the option to use otel.GetMeterProvider()"))
			return
		}
		c.mp = mp
	}
}

// WithMaxOpenRuns bounds how many runs may have open spans at once; when a
// new run would exceed it, the spans of the run whose last event is oldest
// are ended and marked flux.unfinished="evicted". The default is
// [DefaultMaxOpenRuns]. Set it above the number of runs the engines feeding
// this Instrumentation execute at once.
func WithMaxOpenRuns(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.err = errors.Join(c.err, fmt.Errorf("WithMaxOpenRuns(%d): must be at least 1", n))
			return
		}
		c.maxRuns = n
	}
}

// Instrumentation records Flux trace events as OpenTelemetry spans and
// metrics. It is a [flux.TraceSink], safe for concurrent use by any number
// of runs and engines. Make one with [New] and Close it after the engines
// that feed it.
type Instrumentation struct {
	tracer  trace.Tracer
	maxRuns int

	runsStarted, runsCompleted, runsFailed, runsCancelled metric.Int64Counter
	stepDuration                                          metric.Float64Histogram
	stepRetries                                           metric.Int64Counter
	runsCorrupt                                           metric.Int64Counter
	runsLeaseLost                                         metric.Int64Counter
	runsPending                                           metric.Int64ObservableGauge

	meter   metric.Meter
	pending []metric.Registration // of ObservePending; unregistered by Close

	memo memo

	mu     sync.Mutex
	runs   map[string]*runState
	order  list.List // of *runState, least recently active first
	closed bool
}

// runState is what is open of one run. It is guarded by Instrumentation.mu.
type runState struct {
	id, workflow string
	span         trace.Span
	ctx          context.Context // carries span
	metricAttrs  metric.MeasurementOption
	attempts     []attemptState // open attempt spans, usually one
	last         time.Time      // time of the run's last event
	elem         *list.Element
}

type attemptState struct {
	span  trace.Span
	index int
	step  string
	start time.Time
}

// take removes and returns the open attempt of node index.
func (rs *runState) take(index int) (attemptState, bool) {
	for i, a := range rs.attempts {
		if a.index == index {
			rs.attempts = append(rs.attempts[:i], rs.attempts[i+1:]...)
			return a, true
		}
	}
	return attemptState{}, false
}

// New returns an Instrumentation configured by opts. It fails only on
// invalid options or if an instrument cannot be created.
func New(opts ...Option) (*Instrumentation, error) {
	c := config{maxRuns: DefaultMaxOpenRuns}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.err != nil {
		return nil, fmt.Errorf("fluxotel: %w", c.err)
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	meter := c.mp.Meter(ScopeName)
	in := &Instrumentation{
		tracer:  c.tp.Tracer(ScopeName),
		meter:   meter,
		maxRuns: c.maxRuns,
		runs:    make(map[string]*runState),
	}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		ctr, err := meter.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return ctr
	}
	in.runsStarted = counter("flux.runs.started", "{run}", "Runs that entered running: first starts, resumes, step retries and recoveries.")
	in.runsCompleted = counter("flux.runs.completed", "{run}", "Runs that completed.")
	in.runsFailed = counter("flux.runs.failed", "{run}", "Runs that failed.")
	in.runsCancelled = counter("flux.runs.cancelled", "{run}", "Runs that were cancelled.")
	in.stepRetries = counter("flux.step.retries", "{retry}", "Failed step attempts that will be retried.")
	in.runsCorrupt = counter("flux.runs.corrupt", "{run}", "Stored runs that recovery could not read, once per run and engine start.")
	in.runsLeaseLost = counter("flux.runs.lease_lost", "{run}", "Runs stopped because another owner took their lease, as the lease renewal found.")
	var err error
	in.runsPending, err = meter.Int64ObservableGauge("flux.runs.pending", metric.WithUnit("{run}"),
		metric.WithDescription("Runs stored pending, waiting for an engine to take them; counted from the store at collection, up to a bound."))
	errs = append(errs, err)
	in.stepDuration, err = meter.Float64Histogram("flux.step.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of step and commit attempts, by outcome."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fluxotel: creating metric instruments: %w", err)
	}
	return in, nil
}

// RunCorrupt counts a stored run that an engine's recovery could not read
// (flux.runs.corrupt); it makes Instrumentation a [flux.CorruptReporter].
func (in *Instrumentation) RunCorrupt(flux.CorruptRun) {
	in.runsCorrupt.Add(context.Background(), 1)
}

// Emit records one trace event. Events of unknown types are ignored, as are
// all events after Close.
func (in *Instrumentation) Emit(ev flux.TraceEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Duration = max(ev.Duration, 0)
	switch ev.Type {
	case flux.EventWorkflowStart:
		in.runStart(&ev)
	case flux.EventWorkflowComplete, flux.EventWorkflowError, flux.EventWorkflowCancelled:
		in.runEnd(&ev)
	case flux.EventStepStart:
		in.stepStart(&ev)
	case flux.EventStepComplete, flux.EventStepRetry, flux.EventStepError:
		in.stepEnd(&ev)
	case flux.EventStepSkipped:
		in.stepSkipped(&ev)
	case flux.EventWorkflowInterrupted:
		in.runInterrupted(&ev)
	case flux.EventWorkflowWaiting:
		in.runWaiting(&ev)
	}
}

// Close ends the spans of runs that are still open, marked
// flux.unfinished="closed", stops observing the stores given to
// [Instrumentation.ObservePending], and makes later events no-ops. Close the
// engines that feed the Instrumentation first, and shut the providers down
// after. It returns the errors of unregistering the pending-run callbacks.
func (in *Instrumentation) Close() error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	var open []*runState
	for e := in.order.Front(); e != nil; e = e.Next() {
		open = append(open, e.Value.(*runState))
	}
	in.runs, in.order = nil, list.List{}
	regs := in.pending
	in.pending = nil
	in.mu.Unlock()
	now := time.Now()
	for _, rs := range open {
		rs.abandon("closed", now)
	}
	var errs []error
	for _, r := range regs {
		errs = append(errs, r.Unregister())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fluxotel: %w", err)
	}
	return nil
}

func (in *Instrumentation) runStart(ev *flux.TraceEvent) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	old := in.remove(ev.RunID)
	rs, evicted := in.open(ev, ev.Time)
	in.mu.Unlock()

	in.runsStarted.Add(rs.ctx, 1, rs.metricAttrs)
	finish(old, evicted)
}

func (in *Instrumentation) runEnd(ev *flux.TraceEvent) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	rs, evicted := in.get(ev, ev.Time.Add(-ev.Duration))
	in.remove(ev.RunID)
	in.mu.Unlock()

	finish(nil, evicted)
	for _, a := range rs.attempts {
		// Cancel interrupts an attempt without a step event of its own.
		in.endAttempt(rs, a, OutcomeInterrupted, ev.Time)
	}
	switch ev.Type {
	case flux.EventWorkflowComplete:
		in.runsCompleted.Add(rs.ctx, 1, rs.metricAttrs)
	case flux.EventWorkflowError:
		in.runsFailed.Add(rs.ctx, 1, rs.metricAttrs)
	case flux.EventWorkflowCancelled:
		in.runsCancelled.Add(rs.ctx, 1, rs.metricAttrs)
	}
	span := rs.span
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(AttrRunStatus.String(string(runStatus(ev))))
	switch ev.Type {
	case flux.EventWorkflowError:
		recordError(span, ev)
	case flux.EventWorkflowCancelled:
		span.AddEvent("cancelled", trace.WithTimestamp(ev.Time))
	}
	span.End(trace.WithTimestamp(ev.Time))
}

// runWaiting ends the span of a run that starts waiting (a sleep, a
// signal, an event): it holds no engine until it wakes, maybe days later,
// and a span is exported only once it ends. Its wake starts a new span, as
// any start of a run does.
func (in *Instrumentation) runWaiting(ev *flux.TraceEvent) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	rs, evicted := in.get(ev, ev.Time)
	in.remove(ev.RunID)
	in.mu.Unlock()

	finish(nil, evicted)
	for _, a := range rs.attempts { // none, unless an end event was lost
		in.endAttempt(rs, a, OutcomeInterrupted, ev.Time)
	}
	if rs.span.IsRecording() {
		rs.span.SetAttributes(AttrRunStatus.String(string(flux.StatusWaiting)))
		rs.span.AddEvent("waiting", trace.WithTimestamp(ev.Time))
	}
	end(rs.span, ev.Time)
}

func (in *Instrumentation) stepStart(ev *flux.TraceEvent) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	rs, evicted := in.get(ev, ev.Time)
	prev, hadPrev := rs.take(ev.Index)
	a := attemptState{span: in.startStep(rs, ev, ev.Time), index: ev.Index, step: ev.Step, start: ev.Time}
	rs.attempts = append(rs.attempts, a)
	in.mu.Unlock()

	finish(nil, evicted)
	if hadPrev { // its end event was lost
		unfinished(prev.span, "restarted", ev.Time)
	}
}

func (in *Instrumentation) stepEnd(ev *flux.TraceEvent) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	start := ev.Time.Add(-ev.Duration)
	rs, evicted := in.get(ev, start)
	a, ok := rs.take(ev.Index)
	if !ok {
		// No step:start: a When predicate or an AtMostOnce commit failed
		// before an attempt began, or the start was not seen here.
		a = attemptState{span: in.startStep(rs, ev, start), index: ev.Index, step: ev.Step, start: start}
	}
	in.mu.Unlock()

	finish(nil, evicted)
	outcome := OutcomeCompleted
	switch ev.Type {
	case flux.EventStepRetry:
		outcome = OutcomeRetry
	case flux.EventStepError:
		outcome = OutcomeError
	}
	if outcome != OutcomeCompleted && a.span.IsRecording() {
		recordError(a.span, ev)
	}
	in.endAttempt(rs, a, outcome, ev.Time)
	if outcome == OutcomeRetry {
		in.stepRetries.Add(exemplarContext(a.span), 1, in.memo.get(memoKey{memoStep, rs.workflow, ev.Step, ""}).metricAttrs)
	}
}

func (in *Instrumentation) stepSkipped(ev *flux.TraceEvent) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	rs, evicted := in.get(ev, ev.Time)
	span := in.startStep(rs, ev, ev.Time)
	in.mu.Unlock()

	finish(nil, evicted)
	end(span, ev.Time)
}

// startStep starts an attempt span under rs's run span. The caller holds mu.
func (in *Instrumentation) startStep(rs *runState, ev *flux.TraceEvent, at time.Time) trace.Span {
	if !rs.span.SpanContext().IsValid() {
		// The provider makes no spans (a no-op provider): skip the work.
		return noSpan
	}
	kind := flux.KindStep
	if ev.Commit {
		kind = flux.KindCommit
	}
	attrs := []attribute.KeyValue{
		AttrRunID.String(rs.id), AttrStep.String(ev.Step), AttrIndex.Int(ev.Index), AttrKind.String(string(kind)),
	}
	if ev.Type == flux.EventStepSkipped {
		attrs = append(attrs, AttrSkipped.Bool(true))
	} else {
		attrs = append(attrs, AttrAttempt.Int(ev.Attempt), AttrMaxRetries.Int(ev.MaxRetries))
	}
	name := in.memo.get(memoKey{memoStep, rs.workflow, ev.Step, ""}).spanName
	_, span := in.tracer.Start(rs.ctx, name, trace.WithTimestamp(at), trace.WithAttributes(attrs...))
	return span
}

// endAttempt ends an attempt span and records its duration.
func (in *Instrumentation) endAttempt(rs *runState, a attemptState, outcome string, at time.Time) {
	in.stepDuration.Record(exemplarContext(a.span), max(at.Sub(a.start), 0).Seconds(),
		in.memo.get(memoKey{memoOutcome, rs.workflow, a.step, outcome}).metricAttrs)
	if a.span.IsRecording() {
		a.span.SetAttributes(AttrOutcome.String(outcome))
	}
	end(a.span, at)
}

// get returns the open state of ev's run, starting its span at start if
// the run is not open. The caller holds mu; it must finish the evicted run.
func (in *Instrumentation) get(ev *flux.TraceEvent, start time.Time) (rs, evicted *runState) {
	if rs = in.runs[ev.RunID]; rs != nil {
		rs.last = ev.Time
		in.order.MoveToBack(rs.elem)
		return rs, nil
	}
	return in.open(ev, start)
}

// open starts a run span for ev's run. The caller holds mu and has removed
// any open state of the run; it must finish the evicted run.
func (in *Instrumentation) open(ev *flux.TraceEvent, start time.Time) (rs, evicted *runState) {
	if in.order.Len() >= in.maxRuns {
		evicted = in.order.Front().Value.(*runState)
		in.remove(evicted.id)
	}
	m := in.memo.get(memoKey{kind: memoRun, workflow: ev.Workflow})
	ctx, span := in.tracer.Start(context.Background(), m.spanName,
		trace.WithNewRoot(), trace.WithTimestamp(start),
		trace.WithAttributes(AttrRunID.String(ev.RunID), AttrWorkflow.String(ev.Workflow),
			AttrRunStatus.String(string(flux.StatusRunning))))
	rs = &runState{
		id: ev.RunID, workflow: ev.Workflow, span: span, ctx: ctx,
		metricAttrs: m.metricAttrs, last: ev.Time,
	}
	rs.elem = in.order.PushBack(rs)
	in.runs[ev.RunID] = rs
	return rs, evicted
}

// remove forgets the open state of run id and returns it, or nil. The
// caller holds mu.
func (in *Instrumentation) remove(id string) *runState {
	rs := in.runs[id]
	if rs != nil {
		delete(in.runs, id)
		in.order.Remove(rs.elem)
	}
	return rs
}

// exemplarContext is the context to record a measurement in: one that
// carries span if it is sampled, so that the measurement may be an exemplar.
func exemplarContext(span trace.Span) context.Context {
	if span.SpanContext().IsSampled() {
		return trace.ContextWithSpan(context.Background(), span)
	}
	return context.Background()
}

// finish ends the spans of runs whose end events will not come: a run that
// started again, and one evicted for space. It runs without mu held.
func finish(restarted, evicted *runState) {
	if restarted != nil {
		restarted.abandon("restarted", restarted.last)
	}
	if evicted != nil {
		evicted.abandon("evicted", evicted.last)
	}
}

// abandon ends the spans of a run that will see no end event here.
func (rs *runState) abandon(reason string, at time.Time) {
	for _, a := range rs.attempts {
		unfinished(a.span, reason, at)
	}
	unfinished(rs.span, reason, at)
}

// unfinished ends span at at, marked as ended without its end event.
func unfinished(span trace.Span, reason string, at time.Time) {
	if span.IsRecording() {
		span.SetAttributes(AttrUnfinished.String(reason))
	}
	end(span, at)
}

// end ends span at at. Spans that record nothing skip the option.
func end(span trace.Span, at time.Time) {
	if span.IsRecording() {
		span.End(trace.WithTimestamp(at))
	} else {
		span.End()
	}
}

func runStatus(ev *flux.TraceEvent) flux.Status {
	if ev.Status != "" {
		return ev.Status
	}
	switch ev.Type {
	case flux.EventWorkflowComplete:
		return flux.StatusCompleted
	case flux.EventWorkflowError:
		return flux.StatusFailed
	default:
		return flux.StatusCancelled
	}
}

// recordError records ev's error on span and sets its status to Error.
func recordError(span trace.Span, ev *flux.TraceEvent) {
	msg := ev.Err
	if msg == "" {
		msg = string(ev.Type)
	}
	opts := []trace.EventOption{trace.WithTimestamp(ev.Time)}
	if ev.Stack != "" {
		opts = append(opts, trace.WithAttributes(attribute.String("exception.stacktrace", ev.Stack)))
	}
	span.RecordError(errors.New(msg), opts...)
	span.SetStatus(codes.Error, msg)
}
