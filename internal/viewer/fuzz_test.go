package viewer

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

// FuzzTraceModel feeds arbitrary trace lines to the index and the run
// model: whatever the order or content of the events, they must not panic
// and must keep their invariants.
//
//	go test -fuzz FuzzTraceModel ./internal/viewer
func FuzzTraceModel(f *testing.F) {
	seed, err := os.ReadFile(seedTrace(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"type":"step:retry","timestamp":5,"workflowId":"r","workflowName":"w","stepName":"s","stepIndex":3,"retries":-4}
{"type":"step:complete","timestamp":1,"workflowId":"r","workflowName":"w","stepName":"s","stepIndex":3,"attempt":9,"duration":-2}
{"type":"step:start","timestamp":2,"workflowId":"r","workflowName":"w","stepName":"t","attempt":2}
{"type":"workflow:start","timestamp":3,"workflowId":"r","workflowName":"w"}
{"type":"step:skipped","timestamp":4,"workflowId":"r","workflowName":"w","stepName":"t"}
`))
	f.Add([]byte(`{"type":"workflow:waiting","timestamp":4,"workflowId":"r","workflowName":"w","status":"waiting"}
{"type":"step:complete","timestamp":2,"workflowId":"r","workflowName":"w","stepName":"undo:c","stepIndex":1}
{"type":"workflow:compensating","timestamp":3,"workflowId":"r","workflowName":"w","status":"running"}
{"type":"step:error","timestamp":1,"workflowId":"r","workflowName":"w","stepName":"c","stepIndex":0,"commit":true}
`))
	f.Fuzz(func(t *testing.T, data []byte) {
		byRun := map[string][]traceEvent{}
		c := newChunk()
		var off int64
		for i, line := range bytes.Split(data, []byte("\n")) {
			rec, err := tracefile.ParseLine(line)
			if !errors.Is(err, flux.ErrCorrupt) && rec.Type != "" {
				c.add(&rec, lineRef{off: off, size: int32(len(line) + 1), line: int32(i + 1)})
				byRun[rec.WorkflowID] = append(byRun[rec.WorkflowID], traceEvent{rec: rec, line: i + 1, off: off, raw: line})
			}
			off += int64(len(line) + 1)
		}
		x := newIndex()
		x.merge(c, 0, true)
		p, err := x.query(Query{Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != len(x.runs) {
			t.Fatalf("total %d, %d runs indexed", p.Total, len(x.runs))
		}
		for id, evs := range byRun {
			if id == "" {
				continue
			}
			e := x.runs[id]
			d := buildRun(id, evs, x.shapes[e.wf])
			if len(d.Events) != len(evs) || len(e.refs) != len(evs) {
				t.Fatalf("run %s: %d events, %d refs, want %d", id, len(d.Events), len(e.refs), len(evs))
			}
			for _, n := range d.Nodes {
				for _, a := range n.Attempts {
					if a.EndMs != 0 && a.EndMs < a.StartMs {
						t.Fatalf("run %s node %s: attempt %d ends before it starts", id, n.Name, a.Number)
					}
				}
			}
		}
	})
}
