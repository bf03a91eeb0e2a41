package viewer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

// genTrace writes a synthetic trace of runs runs, ten events each,
// in the format of package tracefile: routing runs that skip two of three
// branches, order runs whose charge step is retried, failing image runs.
// Runs overlap in pairs, as concurrent runs do. It returns the number of
// events written and the ID and outcome of every run.
func genTrace(w io.Writer, runs int, seed uint64) (events int, want map[string]flux.Status, err error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(seed, 1))
	want = make(map[string]flux.Status, runs)
	ts := int64(1_795_000_000_000)
	var buf []byte
	emit := func(r tracefile.Record) {
		buf = r.AppendJSON(buf[:0])
		buf = append(buf, '\n')
		bw.Write(buf)
		events++
	}
	ip := func(i int) *int { return &i }
	fp := func(f float64) *float64 { return &f }
	type pending struct{ recs []tracefile.Record }
	var carry *pending // the previous run's second half, interleaved with the next run
	for n := 0; n < runs; n++ {
		id := fmt.Sprintf("run-%08d-%04x", n, rng.Uint32()&0xffff)
		var recs []tracefile.Record
		add := func(r tracefile.Record) {
			ts += int64(rng.IntN(3))
			r.Timestamp, r.WorkflowID = ts, id
			recs = append(recs, r)
		}
		step := func(wf, name string, i, attempt int, typ flux.EventType, status string, errMsg string) {
			r := tracefile.Record{Type: string(typ), WorkflowName: wf, StepName: name, StepIndex: ip(i), Retries: ip(max(attempt-1, 0)),
				MaxRetries: ip(3), Attempt: attempt, Status: status, Error: errMsg}
			if typ != flux.EventStepStart {
				r.Duration = fp(float64(rng.IntN(5000)) / 1000)
			}
			if typ == flux.EventStepRetry {
				r.Retries = ip(attempt)
			}
			add(r)
		}
		switch n % 3 {
		case 0:
			wf := "event-routing"
			routes := []string{"auto-handle", "manual-review", "risk-audit"}
			pick := rng.IntN(3)
			in, _ := json.Marshal(map[string]any{"payload": map[string]any{"kind": routes[pick], "n": n}})
			add(tracefile.Record{Type: "workflow:start", WorkflowName: wf, Status: "running", Input: in})
			step(wf, "classify", 0, 1, flux.EventStepStart, "running", "")
			step(wf, "classify", 0, 1, flux.EventStepComplete, "completed", "")
			for i, r := range routes {
				if i == pick {
					step(wf, r, i+1, 1, flux.EventStepStart, "running", "")
					step(wf, r, i+1, 1, flux.EventStepComplete, "completed", "")
				} else {
					step(wf, r, i+1, 0, flux.EventStepSkipped, "skipped", "")
				}
			}
			r := tracefile.Record{Type: string(flux.EventStepStart), WorkflowName: wf, StepName: "notify", StepIndex: ip(4), Commit: true, Retries: ip(0), MaxRetries: ip(3), Attempt: 1, Status: "running"}
			add(r)
			r.Type, r.Status, r.Duration = string(flux.EventStepComplete), "completed", fp(0.4)
			add(r)
			data, _ := json.Marshal(map[string]any{"route": routes[pick], "ticketId": fmt.Sprintf("T-%d", n)})
			add(tracefile.Record{Type: "workflow:complete", WorkflowName: wf, Status: "completed", Duration: fp(12.5), Data: data})
			want[id] = flux.StatusCompleted
		case 1:
			wf := "order-fulfillment"
			in, _ := json.Marshal(map[string]any{"orderId": fmt.Sprintf("ORD-%d", n), "items": []string{"a", "b"}})
			add(tracefile.Record{Type: "workflow:start", WorkflowName: wf, Status: "running", Input: in})
			step(wf, "validate", 0, 1, flux.EventStepStart, "running", "")
			step(wf, "validate", 0, 1, flux.EventStepComplete, "completed", "")
			step(wf, "charge", 1, 1, flux.EventStepStart, "running", "")
			step(wf, "charge", 1, 1, flux.EventStepRetry, "running", "payment gateway timeout")
			step(wf, "charge", 1, 2, flux.EventStepStart, "running", "")
			step(wf, "charge", 1, 2, flux.EventStepComplete, "completed", "")
			r := tracefile.Record{Type: string(flux.EventStepStart), WorkflowName: wf, StepName: "reserve", StepIndex: ip(2), Commit: true, Retries: ip(0), MaxRetries: ip(3), Attempt: 1, Status: "running"}
			add(r)
			r.Type, r.Status, r.Duration = string(flux.EventStepComplete), "completed", fp(1)
			add(r)
			data, _ := json.Marshal(map[string]any{"paymentId": fmt.Sprintf("P-%d", n)})
			add(tracefile.Record{Type: "workflow:complete", WorkflowName: wf, Status: "completed", Duration: fp(20), Data: data})
			want[id] = flux.StatusCompleted
		default:
			wf := "image-processing"
			in, _ := json.Marshal(map[string]any{"fileName": fmt.Sprintf("img-%d.png", n)})
			add(tracefile.Record{Type: "workflow:start", WorkflowName: wf, Status: "running", Input: in})
			step(wf, "validate", 0, 1, flux.EventStepStart, "running", "")
			step(wf, "validate", 0, 1, flux.EventStepComplete, "completed", "")
			step(wf, "resize", 1, 1, flux.EventStepStart, "running", "")
			step(wf, "resize", 1, 1, flux.EventStepRetry, "running", "out of memory")
			step(wf, "resize", 1, 2, flux.EventStepStart, "running", "")
			step(wf, "resize", 1, 2, flux.EventStepRetry, "running", "out of memory")
			step(wf, "resize", 1, 3, flux.EventStepStart, "running", "")
			step(wf, "resize", 1, 3, flux.EventStepError, "failed", "out of memory")
			add(tracefile.Record{Type: "workflow:error", WorkflowName: wf, Status: "failed", Duration: fp(30), Error: "step resize: out of memory"})
			want[id] = flux.StatusFailed
		}
		// Interleave: the first half of this run between the halves of the
		// previous one.
		half := len(recs) / 2
		for _, r := range recs[:half] {
			emit(r)
		}
		if carry != nil {
			for _, r := range carry.recs {
				emit(r)
			}
		}
		carry = &pending{recs: recs[half:]}
	}
	if carry != nil {
		for _, r := range carry.recs {
			emit(r)
		}
	}
	return events, want, bw.Flush()
}
