// Package fluxotel turns Flux runs and steps into OpenTelemetry spans and
// metrics. It depends on the OpenTelemetry API only; the application chooses
// the SDK and exporters.
//
// An [Instrumentation] is a [flux.TraceSink]: put it in flux.Config.Trace,
// alone or combined with other sinks (such as the NDJSON trace file) by
// [Tee], and flux.Config.Hooks stay free for the application.
//
//	inst, err := fluxotel.New(fluxotel.WithTracerProvider(tp), fluxotel.WithMeterProvider(mp))
//	engine, err := flux.NewEngine(flux.Config{Trace: fluxotel.Tee(inst, file)})
//	defer inst.Close() // after engine.Close
//
// # Spans
//
// Each run is a root span (trace sinks get no context.Context to take a
// parent from) named "flux.run <workflow>", from workflow:start to
// workflow:complete, workflow:error or workflow:cancelled, with the
// attributes flux.run.id, flux.workflow.name and flux.run.status. Each
// attempt of a node is a child span named "flux.step <step>", from its
// step:start to its step:complete, step:retry or step:error, with the
// attributes flux.step.name, flux.step.index, flux.step.kind,
// flux.step.attempt and, when it ends, flux.step.outcome. A skipped node is a
// zero-length child span with flux.step.skipped=true. Span times are the
// engine's event times.
//
// A run that starts waiting (a sleep, a signal, an event) ends its span at
// workflow:waiting, with flux.run.status=waiting and an event "waiting":
// it may wait for days, and a span is exported only once it ends. Its wake
// is a workflow:start, and a new run span (and flux.runs.started) with it.
//
// A failed attempt (retried or not) and a failed run record the error
// (RecordError, with the stack trace the engine captured) and have status
// Error. A cancelled run is not an error: its status stays Unset and
// flux.run.status says cancelled; the attempt it interrupted ends with
// outcome "interrupted".
//
// A run whose workflow:start this Instrumentation did not see (it was fed
// only the end of a run, for instance replayed from a trace file) gets its
// run span at its first event. Flux emits no event when a run is interrupted
// by engine shutdown or by the caller's context, so such a run's spans stay
// open until the run starts again here (its old spans end then, marked
// flux.unfinished="restarted"), until more than [WithMaxOpenRuns] runs are
// open (those of the least recently active run end, "evicted"), or until [Instrumentation.Close]
// ("closed").
//
// # Metrics
//
//	flux.runs.started    counter    {run}   workflow:start (first start, resume, retry, recovery, wake)
//	flux.runs.completed  counter    {run}   workflow:complete
//	flux.runs.failed     counter    {run}   workflow:error
//	flux.runs.cancelled  counter    {run}   workflow:cancelled
//	flux.step.duration   histogram  s       one per finished attempt
//	flux.step.retries    counter    {retry} step:retry
//	flux.runs.corrupt    counter    {run}   stored runs recovery cannot read (flux.CorruptReporter)
//	flux.runs.lease_lost counter    {run}   workflow:interrupted because the lease was lost
//	flux.runs.pending    gauge      {run}   pending runs in a store, counted at collection ([Instrumentation.ObservePending])
//
// Run metrics other than flux.runs.corrupt have the attribute flux.workflow.name; step metrics add
// flux.step.name, and flux.step.duration also flux.step.outcome: one of
// completed, retry, error or interrupted. flux.step.duration covers the
// attempts of steps and commits alike.
//
// flux.runs.lease_lost counts the runs that stopped because another owner
// took them, found by the engine's lease renewal or by a checkpoint whose
// write was refused: the engine stops them with a workflow:interrupted
// event whose error is [flux.ErrLeaseLost]. There is no [flux.Hooks]
// field for it.
//
// # Prometheus
//
// [NewPrometheus] returns an Instrumentation whose meter provider feeds the
// OpenTelemetry Prometheus exporter, in a registry of its own, and which is
// the [net/http.Handler] that serves it. The names follow Prometheus
// conventions: flux_runs_started_total, flux_runs_completed_total,
// flux_runs_failed_total, flux_runs_cancelled_total,
// flux_runs_corrupt_total, flux_runs_lease_lost_total, flux_runs_pending,
// flux_step_retries_total and the histogram flux_step_duration_seconds
// (_bucket, _sum, _count), with the labels flux_workflow_name,
// flux_step_name and flux_step_outcome. A counter appears once it has
// counted something. docs/grafana/flux.json is a Grafana dashboard of
// these metrics.
package fluxotel
