// Package tracefile writes and reads Flux trace files: NDJSON, one JSON
// object per line for every trace event (SPEC §6).
//
// A line keeps the original engine's field names and meanings — type,
// timestamp (Unix epoch milliseconds), workflowId, workflowName, stepName,
// stepIndex, commit, retries, maxRetries, duration (milliseconds), error,
// status, input, data, meta — and Flux adds attempt and stack:
//
//	{"type":"step:retry","timestamp":1795610935537,"workflowId":"d2b0…","workflowName":"order-fulfillment","stepName":"charge","stepIndex":1,"commit":false,"retries":1,"maxRetries":3,"attempt":1,"duration":0.412,"error":"payment gateway timeout","status":"running"}
//
// so a trace written by the original TypeScript engine reads unchanged.
//
// [New] returns a [Sink], the file sink for [flux.Config].Trace. It buffers
// events and appends whole lines with O_APPEND, so many runs, and several
// processes, can share one file; it never holds a run up for long on a slow
// disk (see [Sink]).
//
// [NewReader] streams the records of a file. A bad line — truncated, longer
// than [MaxLineSize], not JSON, not UTF-8, of an unknown event type — is
// reported as a [*LineError] with its line number, and reading goes on.
// [ParseLine] decodes one line.
package tracefile
