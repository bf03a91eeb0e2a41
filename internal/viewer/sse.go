package viewer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// maxPendingIDs is how many changed run IDs a slow event stream collects
// before it sends "all changed" instead.
const maxPendingIDs = 200

// hub fans source changes out to the event streams.
type hub struct {
	mu     sync.Mutex
	subs   map[*sub]struct{}
	closed bool
	done   chan struct{}
}

// sub is one event stream's pending change.
type sub struct {
	mu     sync.Mutex
	ready  chan struct{} // capacity 1: a change is pending
	ids    map[string]struct{}
	all    bool
	reset  bool
	events int
}

func newHub() *hub { return &hub{subs: map[*sub]struct{}{}, done: make(chan struct{})} }

func (h *hub) subscribe() *sub {
	s := &sub{ready: make(chan struct{}, 1), ids: map[string]struct{}{}}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.subs[s] = struct{}{}
	}
	return s
}

func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// publish records c for every stream; it never blocks.
func (h *hub) publish(c Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		s.all = s.all || c.All
		s.reset = s.reset || c.Reset
		for _, id := range c.Runs {
			if len(s.ids) >= maxPendingIDs {
				s.all = true
				break
			}
			s.ids[id] = struct{}{}
		}
		s.events++
		s.mu.Unlock()
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
}

// take returns the pending change and clears it.
func (s *sub) take() Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Change{All: s.all, Reset: s.reset}
	if !s.all {
		c.Runs = make([]string, 0, len(s.ids))
		for id := range s.ids {
			c.Runs = append(c.Runs, id)
		}
	}
	s.all, s.reset, s.ids = false, false, map[string]struct{}{}
	return c
}

// eventData is the payload of a "change" event.
type eventData struct {
	Change
	State State `json:"state"`
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	sb := s.hub.subscribe()
	defer s.hub.unsubscribe(sb)
	send := func(event string, v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	if !send("hello", s.lightState(r)) {
		return
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.hub.done:
			return
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-sb.ready:
			if !send("change", eventData{Change: sb.take(), State: s.lightState(r)}) {
				return
			}
		}
	}
}

// lightState is the source's state without its list of problems.
func (s *Server) lightState(r *http.Request) State {
	st := s.src.State(r.Context())
	st.Problems = nil
	return st
}
