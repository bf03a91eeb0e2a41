// Package viewer is the web viewer behind `flux dev`: an HTTP server with
// its HTML, CSS and JavaScript embedded (no CDN, no build step), showing
// the runs of a trace file or of a flux.Storage, live.
//
// The server's JSON API, which the page uses:
//
//	GET /api/state            the source: what it reads, indexing progress, malformed lines
//	GET /api/runs?workflow=W&status=S1,S2&q=TEXT&limit=N&cursor=C   a page of runs, newest first
//	GET /api/run?id=ID        one run: nodes, attempts, input, data, raw trace lines
//	GET /api/schedules        the store's cron schedules with their next tick ({"supported": false}
//	                          and a note for a trace file or a store that keeps none)
//	GET /api/events           server-sent events: "change" when runs change
//	GET /api/actions          {"enabled": bool, "base": URL}: whether the run page shows its
//	                          retry, resume and cancel buttons to this request (see [Actions])
//
// The page refers to its assets and API with relative URLs, so the server
// can be mounted below a path (as fluxhttp mounts it at {prefix}ui/) as
// long as the page's URL ends in "/".
//
// Every string from a trace or a database reaches the page as JSON and is
// put into the DOM as text, never as HTML.
package viewer

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/flux-go/flux"
)

//go:embed assets
var assets embed.FS

// Options configure a [Server].
type Options struct {
	// Logger receives request errors; nil means slog.Default().
	Logger *slog.Logger
	// AllowAnyHost turns off the Host header check. By default the server
	// answers only requests addressed to localhost, 127.0.0.1 or [::1], so
	// that a web page cannot read the runs through DNS rebinding; set it
	// when serving on another interface.
	AllowAnyHost bool
	// Actions, when set, has the run page show "retry from this step",
	// "resume" and "cancel" buttons that post to a fluxhttp API. Without
	// it (as in flux dev) the viewer is read-only.
	Actions *Actions
}

// Actions are where the run page's buttons post, and to whom they show.
type Actions struct {
	// Base is the URL of the fluxhttp API, ending in "/", resolved
	// against the page's URL: the buttons post to
	// {Base}runs/{id}/retry?step=NAME, {Base}runs/{id}/resume and
	// {Base}runs/{id}/cancel.
	Base string
	// Allowed reports whether the buttons show to r's page (its requests
	// are still authorized by the API itself); nil shows them to every page.
	Allowed func(r *http.Request) bool
}

// Server serves the viewer of one [Source]. It is an http.Handler.
type Server struct {
	src    Source
	opt    Options
	mux    *http.ServeMux
	hub    *hub
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a server of src. Close it to stop its event streams.
func New(src Source, opt Options) *Server {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{src: src, opt: opt, mux: http.NewServeMux(), hub: newHub(), cancel: cancel}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	files := http.FileServerFS(static)
	s.mux.Handle("GET /assets/", http.StripPrefix("/assets/", files))
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	})
	s.mux.HandleFunc("GET /api/state", s.handleState)
	s.mux.HandleFunc("GET /api/runs", s.handleRuns)
	s.mux.HandleFunc("GET /api/run", s.handleRun)
	s.mux.HandleFunc("GET /api/node-data", s.handleNodeData)
	s.mux.HandleFunc("GET /api/events", s.handleEvents)
	s.mux.HandleFunc("GET /api/actions", s.handleActions)
	s.mux.HandleFunc("GET /api/schedules", s.handleSchedules)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		src.Watch(ctx, s.hub.publish)
	}()
	return s
}

// Close ends the event streams and stops watching the source. It does not
// close the source.
func (s *Server) Close() error {
	s.cancel()
	s.hub.close()
	s.wg.Wait()
	return nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.opt.AllowAnyHost && !loopbackHost(r.Host) {
		http.Error(w, "flux dev: this viewer answers only to localhost, 127.0.0.1 or [::1]", http.StatusMisdirectedRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.src.State(r.Context()))
}

// actionsInfo is the body of GET /api/actions.
type actionsInfo struct {
	Enabled bool   `json:"enabled"`
	Base    string `json:"base,omitempty"`
}

func (s *Server) handleActions(w http.ResponseWriter, r *http.Request) {
	var out actionsInfo
	if a := s.opt.Actions; a != nil && (a.Allowed == nil || a.Allowed(r)) {
		out = actionsInfo{Enabled: true, Base: a.Base}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := Query{Workflow: v.Get("workflow"), Search: v.Get("q"), Cursor: v.Get("cursor")}
	for _, st := range v["status"] {
		for part := range strings.SplitSeq(st, ",") {
			if part = strings.TrimSpace(part); part != "" {
				q.Status = append(q.Status, flux.Status(part))
			}
		}
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			writeError(w, http.StatusBadRequest, "limit must be a number of runs, got "+strconv.Quote(l))
			return
		}
		q.Limit = n
	}
	p, err := s.src.Runs(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		writeError(w, http.StatusBadRequest, "missing ?id=RUN_ID")
		return
	}
	d, err := s.src.Run(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// handleNodeData serves the data of run ?id= after its node ?index=.
func (s *Server) handleNodeData(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("id")
	index, err := strconv.Atoi(q.Get("index"))
	if id == "" || err != nil {
		writeError(w, http.StatusBadRequest, "want ?id=RUN_ID&index=NODE_INDEX (a number: 0 is the first node)")
		return
	}
	src, ok := s.src.(NodeDataSource)
	if !ok {
		writeError(w, http.StatusNotFound, "this source does not keep the data of each node: open the store with flux dev --db or --postgres")
		return
	}
	data, err := src.NodeData(r.Context(), id, index)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]json.RawMessage{"data": data})
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, flux.ErrRunNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, errBadQuery):
		writeError(w, http.StatusBadRequest, err.Error())
	case r.Context().Err() != nil:
		// The client went away.
	default:
		s.opt.Logger.Error("flux dev: request failed", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
}
