package viewer

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// What the run page shows of waiting runs, signals and compensations.

// maxSignalPayload is how much of a signal's payload (compact JSON) the run
// page receives; the stored record has it whole.
const maxSignalPayload = 2 << 10

// undoPrefix is what flux.UndoName puts before a commit's name.
var undoPrefix = flux.UndoName("")

// waitOf returns what run r waits for, nil if it does not wait.
func waitOf(r *flux.Run) *Wait {
	wi, ok := flux.Waiting(r)
	if !ok {
		return nil
	}
	w := &Wait{Node: wi.Node, Index: -1, Kind: wi.Kind, Signal: wi.Signal, Key: wi.Key,
		// flux.Waiting tells the signal or event name, not which: the
		// stored wait key of a WaitEvent starts with "event".
		Event: strings.HasPrefix(r.WaitKey, "event\x1f")}
	if !wi.Until.IsZero() {
		w.UntilMs = wi.Until.UnixMilli()
	}
	for i, st := range r.Steps {
		if st.Name == wi.Node {
			w.Index = i
			if !st.StartedAt.IsZero() {
				w.SinceMs = st.StartedAt.UnixMilli()
			}
			break
		}
	}
	return w
}

// waitNode fills in the wait of sleep or wait node n of a stored run: the
// time it waited, or, if the run waits at it, its wait in progress.
func waitNode(n *Node, st *flux.StepState, w *Wait) {
	if n.Kind != flux.KindSleep && n.Kind != flux.KindWait {
		return
	}
	if w != nil && w.Index == n.Index {
		n.Status = flux.StatusWaiting
		n.UntilMs = w.UntilMs
		start := w.SinceMs
		if start == 0 && len(n.Attempts) > 0 {
			start = n.Attempts[len(n.Attempts)-1].EndMs
		}
		if w.UntilMs > 0 && start > 0 {
			v := float64(w.UntilMs - start)
			n.WaitMs = &v
		}
		if start > 0 {
			n.Attempts = append(n.Attempts, Attempt{Number: len(st.Attempts) + 1, Status: flux.StatusWaiting, StartMs: start})
		}
		return
	}
	if st.Status != flux.StatusCompleted || len(n.Attempts) == 0 {
		return
	}
	var total float64
	for _, a := range n.Attempts {
		total += a.DurationMs
	}
	n.WaitMs = &total
}

// signalsOf returns the run's signals as the run page lists them.
func signalsOf(r *flux.Run) []Signal {
	if len(r.Signals) == 0 {
		return nil
	}
	out := make([]Signal, 0, len(r.Signals))
	for _, s := range r.Signals {
		v := Signal{Seq: s.Seq, Name: s.Name, Key: s.Key, Node: s.Node}
		if !s.SentAt.IsZero() {
			v.SentAt = s.SentAt.UnixMilli()
		}
		if s.Node >= 0 && s.Node < len(r.Steps) {
			v.NodeName = r.Steps[s.Node].Name
		}
		v.Payload, v.PayloadBytes, v.PayloadCut = payloadText(s.Payload)
		out = append(out, v)
	}
	return out
}

// payloadText returns payload as compact JSON cut to maxSignalPayload
// bytes (at a character boundary), its compact size, and whether it was
// cut.
func payloadText(payload json.RawMessage) (string, int, bool) {
	if len(payload) == 0 {
		return "", 0, false
	}
	b := []byte(payload)
	var buf bytes.Buffer
	if json.Compact(&buf, payload) == nil {
		b = buf.Bytes()
	}
	size := len(b)
	if size <= maxSignalPayload {
		return string(b), size, false
	}
	cut := maxSignalPayload
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return string(b[:cut]), size, true
}

// compensationOf tells whether a run in status st with nodes ns compensates:
// "" when none of its undo nodes started.
func compensationOf(st flux.Status, ns []Node) string {
	started, failed := false, false
	for _, n := range ns {
		if n.Kind != flux.KindUndo || n.Status == flux.StatusPending || n.Status == flux.StatusSkipped {
			continue
		}
		started = true
		failed = failed || n.Status == flux.StatusFailed
	}
	switch {
	case !started:
		return ""
	case !st.Final():
		return compensating
	case failed:
		return compensationFailed
	}
	return compensated
}

// compensationMark returns the mark of the start of a compensation: when
// the first undo node started.
func compensationMark(steps []driver.StepState) []Mark {
	var at time.Time
	for _, st := range steps {
		if st.Kind == flux.KindUndo && !st.StartedAt.IsZero() && (at.IsZero() || st.StartedAt.Before(at)) {
			at = st.StartedAt
		}
	}
	if at.IsZero() {
		return nil
	}
	return []Mark{{Type: string(flux.EventWorkflowCompensating), At: at.UnixMilli()}}
}

// markUndos gives the nodes of a trace named UndoName(c), where c is a
// commit of the run, the kind undo: a trace marks commits, not undos.
func markUndos(ns []Node) {
	commits := map[string]bool{}
	for _, n := range ns {
		if n.Kind == flux.KindCommit {
			commits[n.Name] = true
		}
	}
	for i := range ns {
		n := &ns[i]
		if c, ok := strings.CutPrefix(n.Name, undoPrefix); ok && n.Kind == flux.KindStep && commits[c] {
			n.Kind, n.Undoes, n.Conditional = flux.KindUndo, c, false
		}
	}
}
