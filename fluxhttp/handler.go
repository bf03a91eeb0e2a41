package fluxhttp

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/viewer"
)

// Config configures a [Handler].
type Config struct {
	// Engine executes and stores the runs. Required.
	Engine *flux.Engine
	// Prefix is the path the handler is mounted under, such as "/flux/",
	// when requests reach it with their full path. Leave it empty behind
	// http.StripPrefix: the handler routes the rest of the path, with or
	// without a leading slash.
	Prefix string
	// Authorize decides whether a request may start, retry, resume or
	// cancel a run. Without it those requests are refused with 403. An
	// error refuses the request: a *Problem is sent as it is (a 401 with
	// its own detail, say), any other error as a 403 with its text.
	Authorize func(*http.Request) error
	// AuthorizeRead, when set, decides the same for reads (runs, the
	// workflow list, the OpenAPI document, metrics); reads are open
	// without it.
	AuthorizeRead func(*http.Request) error
	// AllowOrigins are the origins allowed to call the API from a browser
	// ("*" for any). Empty means no CORS headers are sent.
	AllowOrigins []string
	// Metrics, when set, is served at {prefix}metrics (as a read).
	Metrics http.Handler
	// MaxBodyBytes limits a request body; larger ones get 413. 0 means
	// 8 MiB. The engine's MaxPayloadBytes still limits the input.
	MaxBodyBytes int64
	// MaxWait caps the ?wait= of a request; 0 means one minute.
	MaxWait time.Duration
	// AllowUnknownFields accepts input with JSON fields that the input type
	// does not have. By default they are refused with 400, naming the
	// field: a misspelt field silently dropped is worse than a refusal.
	AllowUnknownFields bool
	// Logger receives unclassified errors and the errors of retries and
	// resumes that end after their response was sent; nil means
	// slog.Default().
	Logger *slog.Logger
	// Viewer mounts the web viewer of flux dev at {prefix}ui/, reading the
	// runs from the engine's storage, as a read (AuthorizeRead guards it).
	// Its run page has retry-from-step, resume and cancel buttons, which
	// post to this API; they show only to a page whose request Authorize
	// allows. Close the handler to stop the viewer's polling of storage.
	Viewer bool
}

// Handler serves the API of one engine. Make it with [New].
type Handler struct {
	cfg    Config
	e      *flux.Engine
	flows  map[string]Route
	names  []string
	prefix string
	log    *slog.Logger
	viewer *viewer.Server // nil unless Config.Viewer
}

// New returns a handler for cfg.Engine serving workflows. It refuses a
// missing engine, a workflow whose definition is invalid, and two
// workflows of one name.
func New(cfg Config, workflows ...Route) (*Handler, error) {
	if cfg.Engine == nil {
		return nil, errors.New("fluxhttp: Config.Engine is nil")
	}
	h := &Handler{cfg: cfg, e: cfg.Engine, flows: make(map[string]Route), log: cfg.Logger}
	for _, r := range workflows {
		if r.start == nil {
			return nil, errors.New("fluxhttp: a Route not made by fluxhttp.Workflow")
		}
		if r.err != nil {
			return nil, fmt.Errorf("fluxhttp: workflow %q: %w", r.name, r.err)
		}
		if _, dup := h.flows[r.name]; dup {
			return nil, fmt.Errorf("fluxhttp: workflow %q given twice", r.name)
		}
		h.flows[r.name] = r
		h.names = append(h.names, r.name)
	}
	sort.Strings(h.names)
	if h.cfg.MaxBodyBytes == 0 {
		h.cfg.MaxBodyBytes = 8 << 20
	}
	if h.cfg.MaxWait <= 0 {
		h.cfg.MaxWait = time.Minute
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if cfg.Prefix != "" {
		h.prefix = "/" + strings.Trim(cfg.Prefix, "/") + "/"
		if h.prefix == "//" {
			h.prefix = "/"
		}
	}
	if cfg.Viewer {
		src := viewer.NewStorageSource(h.e.Storage(), "engine "+h.e.ID(), viewer.StorageOptions{})
		h.viewer = viewer.New(src, viewer.Options{
			Logger:       h.log,
			AllowAnyHost: true, // reads are guarded by AuthorizeRead, like the rest of the API
			Actions: &viewer.Actions{
				Base: "../", // the viewer's page is {prefix}ui/
				Allowed: func(r *http.Request) bool {
					return h.cfg.Authorize != nil && h.cfg.Authorize(r) == nil
				},
			},
		})
	}
	return h, nil
}

// Close stops the viewer mounted by Config.Viewer: its event streams end
// and it stops polling the engine's storage. It does not close the engine.
// Without the viewer it does nothing.
func (h *Handler) Close() error {
	if h.viewer != nil {
		return h.viewer.Close()
	}
	return nil
}

// serveViewer serves the viewer at {prefix}ui/; rel is the request's path
// below the prefix.
func (h *Handler) serveViewer(w http.ResponseWriter, r *http.Request, rel string) {
	if check := h.cfg.AuthorizeRead; check != nil {
		if err := check(r); err != nil {
			var p *Problem
			if !errors.As(err, &p) {
				p = newProblem(typeForbidden, http.StatusForbidden, err.Error())
			}
			writeProblem(w, p)
			return
		}
	}
	if rel == "ui" {
		// The page refers to its assets with relative URLs: it must end in "/".
		target := h.base(r) + "ui/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	rest, err := url.PathUnescape(strings.TrimPrefix(rel, "ui"))
	if err != nil {
		writeProblem(w, newProblem(typeNotFound, http.StatusNotFound, "no such path"))
		return
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = rest, ""
	r2.URL = &u
	h.viewer.ServeHTTP(w, r2)
}

// route is one operation of the API; path is as in the OpenAPI document.
type route struct {
	method string
	path   string
	write  bool
	serve  func(h *Handler, w http.ResponseWriter, r *http.Request, args []string)
}

// routes are every operation the handler serves: the OpenAPI document
// describes exactly these (see TestOpenAPIMatchesRoutes).
var routes = []route{
	{http.MethodGet, "/workflows", false, (*Handler).listWorkflows},
	{http.MethodPost, "/workflows/{name}/runs", true, (*Handler).start},
	{http.MethodGet, "/runs", false, (*Handler).listRuns},
	{http.MethodGet, "/runs/{id}", false, (*Handler).getRun},
	{http.MethodPost, "/runs/{id}/retry", true, (*Handler).retry},
	{http.MethodPost, "/runs/{id}/resume", true, (*Handler).resume},
	{http.MethodPost, "/runs/{id}/cancel", true, (*Handler).cancel},
	{http.MethodGet, "/openapi.json", false, (*Handler).openAPI},
	{http.MethodGet, "/metrics", false, (*Handler).metrics},
}

// ServeHTTP routes r.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rel, ok := h.relative(r)
	if !ok {
		writeProblem(w, newProblem(typeNotFound, http.StatusNotFound, "no such path"))
		return
	}
	if h.cors(w, r) {
		return
	}
	if h.viewer != nil && (rel == "ui" || strings.HasPrefix(rel, "ui/")) {
		h.serveViewer(w, r, rel)
		return
	}
	segs := strings.Split(rel, "/")
	var allowed []string
	for _, rt := range routes {
		args, ok := match(rt.path, segs)
		if !ok {
			continue
		}
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		if rt.method != method {
			allowed = append(allowed, rt.method)
			continue
		}
		check := h.cfg.AuthorizeRead
		if rt.write {
			check = h.cfg.Authorize
			if check == nil {
				writeProblem(w, newProblem(typeForbidden, http.StatusForbidden,
					"mutations are refused until fluxhttp.Config.Authorize is set"))
				return
			}
		}
		if check != nil {
			if err := check(r); err != nil {
				var p *Problem
				if !errors.As(err, &p) {
					p = newProblem(typeForbidden, http.StatusForbidden, err.Error())
				}
				writeProblem(w, p)
				return
			}
		}
		rt.serve(h, w, r, args)
		return
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, newProblem(typeMethod, http.StatusMethodNotAllowed,
			fmt.Sprintf("%s is not allowed here; use %s", r.Method, strings.Join(allowed, " or "))))
		return
	}
	writeProblem(w, newProblem(typeNotFound, http.StatusNotFound, "no such path"))
}

// relative returns r's escaped path below the handler's mount point,
// without a leading slash.
func (h *Handler) relative(r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	if h.prefix != "" {
		rest, ok := strings.CutPrefix(p, h.prefix)
		if !ok {
			return "", false
		}
		p = rest
	}
	return strings.TrimPrefix(p, "/"), true
}

// base returns the path of the handler's mount point as the client sees
// it, ending in "/": r's original path without the part the handler
// routes.
func (h *Handler) base(r *http.Request) string {
	rel, _ := h.relative(r)
	orig := r.URL.EscapedPath()
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && r.RequestURI != "" {
		orig = u.EscapedPath()
	}
	b := strings.TrimSuffix(orig, rel)
	if !strings.HasSuffix(b, "/") {
		b += "/"
	}
	return b
}

// runURL is the path of run id's resource.
func (h *Handler) runURL(r *http.Request, id string) string {
	return h.base(r) + "runs/" + url.PathEscape(id)
}

// match matches the segments of a path against pattern, returning the
// unescaped values of its {parameters}.
func match(pattern string, segs []string) ([]string, bool) {
	pat := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	if len(pat) != len(segs) {
		return nil, false
	}
	var args []string
	for i, p := range pat {
		if strings.HasPrefix(p, "{") {
			v, err := url.PathUnescape(segs[i])
			if err != nil || v == "" {
				return nil, false
			}
			args = append(args, v)
		} else if p != segs[i] {
			return nil, false
		}
	}
	return args, true
}

// cors sets the CORS headers of an allowed origin and answers a
// preflight request; it reports whether it answered.
func (h *Handler) cors(w http.ResponseWriter, r *http.Request) bool {
	if len(h.cfg.AllowOrigins) == 0 {
		return false
	}
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	switch {
	case slices.Contains(h.cfg.AllowOrigins, origin):
		w.Header().Set("Access-Control-Allow-Origin", origin)
	case slices.Contains(h.cfg.AllowOrigins, "*"):
		w.Header().Set("Access-Control-Allow-Origin", "*")
	default:
		return false
	}
	w.Header().Set("Access-Control-Expose-Headers", "Location")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// fail writes the problem of err, logging an unclassified one.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	p, ok := problemOf(err)
	if !ok {
		h.log.ErrorContext(r.Context(), "fluxhttp: request failed", slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	writeProblem(w, p)
}

// writeJSON writes v as JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// waitParam parses ?wait=, capped at MaxWait.
func (h *Handler) waitParam(r *http.Request) (time.Duration, error) {
	s := r.URL.Query().Get("wait")
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, newProblem(typeBadRequest, http.StatusBadRequest,
			fmt.Sprintf("wait=%q is not a duration such as 30s", s))
	}
	return min(d, h.cfg.MaxWait), nil
}

// Started is the body of a 202 answer: the run is accepted and executes
// in the background; Location has its URL.
type Started struct {
	ID       string      `json:"id"`
	Workflow string      `json:"workflow"`
	Status   flux.Status `json:"status"`
}

// WorkflowList is the body of GET {prefix}workflows.
type WorkflowList struct {
	Workflows []string `json:"workflows"`
}

// RunList is the body of GET {prefix}runs: one page of runs, newest
// first, without their steps and data.
type RunList struct {
	Runs []*flux.Run `json:"runs"`
	// Next is the cursor of the next page, "" on the last one.
	Next string `json:"next,omitempty"`
	// Corrupt describes matching runs that could not be decoded.
	Corrupt []string `json:"corrupt,omitempty"`
}

// Cancelled is the body of a cancel: the run after it, and what happened.
type Cancelled struct {
	Run *flux.Run `json:"run"`
	// Owner is the engine that held the run's lease when it was cancelled,
	// "" when none did.
	Owner string `json:"owner,omitempty"`
	// Elsewhere is true when Owner is another engine: the run is marked
	// cancelled in storage, and Owner stops it at its next checkpoint or
	// lease renewal.
	Elsewhere bool `json:"elsewhere"`
	// Detail says what happened, for a person.
	Detail string `json:"detail"`
}

func (h *Handler) listWorkflows(w http.ResponseWriter, _ *http.Request, _ []string) {
	writeJSON(w, http.StatusOK, WorkflowList{Workflows: append([]string{}, h.names...)})
}

func (h *Handler) start(w http.ResponseWriter, r *http.Request, args []string) {
	rt, ok := h.flows[args[0]]
	if !ok {
		writeProblem(w, newProblem(typeWorkflowUnknown, http.StatusNotFound,
			fmt.Sprintf("no workflow %q is served here", args[0])))
		return
	}
	wait, err := h.waitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, h.cfg.MaxBodyBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := rt.start(r.Context(), h.e, body, !h.cfg.AllowUnknownFields, r.Header.Get("Idempotency-Key"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var known flux.Status
	if r.Header.Get("Idempotency-Key") == "" {
		known = flux.StatusPending
	}
	h.answer(w, r, rt, id, wait, known)
}

// answer waits up to wait for run id to end and writes it: 200 with the
// run when it ended, 202 with its Location when it did not.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, rt Route, id string, wait time.Duration, known flux.Status) {
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		err := rt.wait(ctx, h.e, id)
		timedOut := ctx.Err() != nil && r.Context().Err() == nil
		cancel()
		if !timedOut {
			run, gerr := h.e.Get(r.Context(), id)
			switch {
			case gerr != nil:
				h.fail(w, r, gerr)
				return
			case run.Status.Final():
				writeJSON(w, http.StatusOK, run)
				return
			case err != nil:
				h.fail(w, r, err)
				return
			}
		}
	}
	// known is the status of a run just created (a start without an
	// Idempotency-Key); otherwise it is read, as a key may have found an
	// older run (a run read costs more than the start itself).
	status := known
	if status == "" {
		status = flux.StatusPending
		if run, err := h.e.Get(r.Context(), id); err == nil {
			status = run.Status
		}
	}
	w.Header().Set("Location", h.runURL(r, id))
	writeJSON(w, http.StatusAccepted, Started{ID: id, Workflow: rt.name, Status: status})
}

// readBody reads r's body, up to limit bytes (none if negative).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := r.Body
	if limit > 0 {
		body = http.MaxBytesReader(w, r.Body, limit)
	}
	b, err := io.ReadAll(body)
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, newProblem(typeTooLarge, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("the body is larger than %d bytes", mb.Limit))
	}
	if err != nil {
		return nil, newProblem(typeBadRequest, http.StatusBadRequest, "reading the body: "+err.Error())
	}
	return b, nil
}

func (h *Handler) getRun(w http.ResponseWriter, r *http.Request, args []string) {
	wait, err := h.waitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	run, err := h.e.Get(r.Context(), args[0])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if rt, ok := h.flows[run.Workflow]; ok && wait > 0 && !run.Status.Final() {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		_ = rt.wait(ctx, h.e, run.ID) // the run is read again below, whatever became of it
		cancel()
		if run, err = h.e.Get(r.Context(), args[0]); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, run)
}

func (h *Handler) listRuns(w http.ResponseWriter, r *http.Request, _ []string) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.e.List(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := RunList{Runs: page.Runs, Next: page.Next}
	if out.Runs == nil {
		out.Runs = []*flux.Run{}
	}
	for _, c := range page.Corrupt {
		out.Corrupt = append(out.Corrupt, c.Error())
	}
	writeJSON(w, http.StatusOK, out)
}

// parseFilter reads a list's query: workflow, status (repeated or
// comma-separated), search, since and until (RFC 3339), limit and cursor.
func parseFilter(q url.Values) (flux.Filter, error) {
	bad := func(format string, a ...any) error {
		return newProblem(typeBadRequest, http.StatusBadRequest, fmt.Sprintf(format, a...))
	}
	f := flux.Filter{Workflow: q.Get("workflow"), Search: q.Get("search"), Cursor: q.Get("cursor")}
	for _, v := range q["status"] {
		for s := range strings.SplitSeq(v, ",") {
			st := flux.Status(strings.TrimSpace(s))
			if !slices.Contains(driver.Statuses, st) || st == flux.StatusSkipped {
				return f, bad("status=%q is not a run status (pending, running, waiting, completed, failed, cancelled)", s)
			}
			f.Status = append(f.Status, st)
		}
	}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(t.name); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return f, bad("%s=%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", t.name, s)
			}
			*t.to = v
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return f, bad("limit=%q is not a number from 1 to 1000", s)
		}
		f.Limit = n
	}
	if _, err := driver.ParseCursor(f.Cursor); err != nil {
		return f, bad("%v", err)
	}
	return f, nil
}

func (h *Handler) retry(w http.ResponseWriter, r *http.Request, args []string) {
	step := r.URL.Query().Get("step")
	if step == "" {
		h.fail(w, r, newProblem(typeBadRequest, http.StatusBadRequest, "name the step to retry from: ?step=NAME"))
		return
	}
	force := false
	if s := r.URL.Query().Get("force"); s != "" {
		var err error
		if force, err = strconv.ParseBool(s); err != nil {
			h.fail(w, r, newProblem(typeBadRequest, http.StatusBadRequest, fmt.Sprintf("force=%q is not true or false", s)))
			return
		}
	}
	h.replay(w, r, args[0], func(ctx context.Context, rt Route) error { return rt.retry(ctx, h.e, args[0], step, force) })
}

func (h *Handler) resume(w http.ResponseWriter, r *http.Request, args []string) {
	h.replay(w, r, args[0], func(ctx context.Context, rt Route) error { return rt.resume(ctx, h.e, args[0]) })
}

// replay runs op (a Resume or RetryStep of run id) in the background and
// answers once it ended (200 with the run, or the problem of its refusal)
// or once the engine took the run (202), or ?wait= passed (202).
func (h *Handler) replay(w http.ResponseWriter, r *http.Request, id string, op func(context.Context, Route) error) {
	wait, err := h.waitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	before, err := h.e.Get(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rt, ok := h.flows[before.Workflow]
	if !ok {
		writeProblem(w, newProblem(typeWorkflowUnknown, http.StatusNotFound,
			fmt.Sprintf("run %s is a run of %q, which is not served here", id, before.Workflow)))
		return
	}
	done := make(chan error, 1)
	// The run goes on after the response: it must not end with the request.
	ctx := context.WithoutCancel(r.Context())
	go func() { done <- op(ctx, rt) }()
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	pause := time.Millisecond
	for {
		poll := time.NewTimer(pause)
		select {
		case err := <-done:
			poll.Stop()
			run, gerr := h.e.Get(r.Context(), id)
			switch {
			case gerr != nil:
				h.fail(w, r, gerr)
			case err == nil || (run.Status.Final() && run.Version != before.Version):
				writeJSON(w, http.StatusOK, run)
			default:
				h.fail(w, r, err)
			}
			return
		case <-r.Context().Done():
			poll.Stop()
			h.background(id, done)
			return
		case <-deadline:
			poll.Stop()
			h.background(id, done)
			h.answer(w, r, rt, id, 0, "")
			return
		case <-poll.C:
			pause = min(2*pause, 50*time.Millisecond)
			if wait > 0 {
				continue
			}
			// The engine wrote the run: it passed every check and executes.
			if run, err := h.e.Get(r.Context(), id); err == nil && run.Version != before.Version && !run.Status.Final() {
				h.background(id, done)
				h.answer(w, r, rt, id, 0, "")
				return
			}
		}
	}
}

// background logs the error that the replay of run id ends with, once the
// response no longer can.
func (h *Handler) background(id string, done <-chan error) {
	go func() {
		if err := <-done; err != nil {
			h.log.Warn("fluxhttp: replay ended with an error", slog.String("run_id", id), slog.Any("error", err))
		}
	}()
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, args []string) {
	id := args[0]
	before, err := h.e.Get(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.e.Cancel(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	run, err := h.e.Get(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := Cancelled{Run: run}
	live := before.Owner != "" && before.LeaseUntil.After(time.Now())
	switch {
	case before.Status == flux.StatusCancelled:
		out.Detail = "the run was already cancelled; nothing changed"
	case live && before.Owner == h.e.Owner():
		out.Owner = before.Owner
		out.Detail = "cancelled here: its attempt in flight was interrupted"
	case live:
		out.Owner, out.Elsewhere = before.Owner, true
		out.Detail = fmt.Sprintf("marked cancelled in storage; its owner %s stops it at its next checkpoint or lease renewal", before.Owner)
	default:
		out.Detail = "cancelled; no engine was executing it"
	}
	writeJSON(w, http.StatusOK, out)
}

//go:embed openapi.json
var openAPIDocument []byte

func (h *Handler) openAPI(w http.ResponseWriter, _ *http.Request, _ []string) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDocument)
}

func (h *Handler) metrics(w http.ResponseWriter, r *http.Request, _ []string) {
	if h.cfg.Metrics == nil {
		writeProblem(w, newProblem(typeNotFound, http.StatusNotFound, "metrics are not served: set fluxhttp.Config.Metrics"))
		return
	}
	h.cfg.Metrics.ServeHTTP(w, r)
}
