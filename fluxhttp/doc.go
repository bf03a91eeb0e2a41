// Package fluxhttp serves a Flux engine over HTTP: start runs of the
// workflows registered with it, read and list runs, retry, resume and
// cancel them, all as JSON, with errors as RFC 9457 problem details
// (application/problem+json). Its OpenAPI 3.1 document is served at
// {prefix}openapi.json.
//
// Each workflow is registered with [Workflow], which captures the typed
// calls of package flux (Start, Wait, Resume, RetryStep) for it:
//
//	h, err := fluxhttp.New(fluxhttp.Config{
//		Engine:    engine,
//		Authorize: checkToken, // mutations answer 403 without it
//	}, fluxhttp.Workflow(orderFlow))
//	mux.Handle("/flux/", http.StripPrefix("/flux", h))
//
// [Client] is the other side: a service starts a run and waits for it.
//
// With Config.Viewer set (it is off by default), the web viewer of
// flux dev is mounted at {prefix}ui/ ({prefix}ui redirects there), reading
// the runs from the engine's storage: the page is {prefix}ui/, its assets
// {prefix}ui/assets/ and its own read-only JSON API {prefix}ui/api/ (runs,
// run, state, events, actions), so nothing collides with this API. It is a
// read: AuthorizeRead guards it. Its run page has "retry from this step",
// "resume" and "cancel" buttons, each asking for a confirmation, which post
// to {prefix}runs/{id}/retry?step=NAME, /resume and /cancel with the page's
// cookies; they show only when Authorize allows the page's request (the
// page asks {prefix}ui/api/actions), and the POST is authorized again. Close
// the handler to stop the viewer's polling of storage.
//
// Error statuses: 400 for a body that is not JSON, does not decode into
// the workflow's input type (the problem names the field) or is refused by
// its Validate; 403 when Authorize refuses (or is not set); 404 for an
// unknown run, workflow or step; 405 for a wrong method; 409 for a replay
// over a completed commit, a run that is active, finished or of another
// workflow, or a changed definition; 413 for a body over Config.MaxBodyBytes
// or an input over the engine's MaxPayloadBytes; 500 for a corrupt stored
// run; 503 when the engine is closed or its storage fails in a way Flux
// does not classify (the error is logged, not sent).
package fluxhttp
