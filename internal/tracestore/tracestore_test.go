package tracestore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ev(run string) flux.TraceEvent {
	return flux.TraceEvent{Type: flux.EventWorkflowStart, RunID: run, Workflow: "w", Index: -1}
}

// TestFullBufferBlocksThenDrops: with the buffer full and the writer stuck,
// Emit waits MaxBlock, then drops; once the writer moves on, Emit waits for
// room instead; Close writes the rest; later events are dropped.
func TestFullBufferBlocksThenDrops(t *testing.T) {
	var mu sync.Mutex
	var written []string
	started, gate := make(chan struct{}), make(chan struct{})
	first := true
	write := func(ctx context.Context, rows []Row) error {
		mu.Lock()
		for _, r := range rows {
			written = append(written, r.RunID)
		}
		wait := first
		first = false
		mu.Unlock()
		if wait {
			close(started)
			<-gate
		}
		return nil
	}
	s := newSink(write, 2, 50*time.Millisecond, time.Hour)
	s.Emit(ev("a"))
	s.Emit(ev("b"))
	s.Emit(ev("c")) // waits until the writer takes a and b
	<-started
	s.Emit(ev("d"))
	begin := time.Now()
	s.Emit(ev("e")) // the writer is stuck: dropped after MaxBlock
	if d := time.Since(begin); d < 50*time.Millisecond {
		t.Errorf("Emit on a full buffer returned after %s, want MaxBlock", d)
	}
	if n := s.Dropped(); n != 1 {
		t.Errorf("Dropped = %d, want 1", n)
	}
	close(gate)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Emit(ev("f"))
	if n := s.Dropped(); n != 2 {
		t.Errorf("Dropped after an Emit after Close = %d, want 2", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"a", "b", "c", "d"}; !equal(written, want) {
		t.Errorf("written %v, want %v", written, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWriteError: a failed batch is counted as dropped and reported once.
func TestWriteError(t *testing.T) {
	boom := errors.New("boom")
	s := newSink(func(context.Context, []Row) error { return boom }, 10, time.Second, time.Hour)
	s.Emit(ev("a"))
	s.Emit(ev("b"))
	if err := s.Flush(); !errors.Is(err, boom) {
		t.Errorf("Flush: %v, want boom", err)
	}
	if err := s.Flush(); err != nil {
		t.Errorf("second Flush: %v, want nil", err)
	}
	if n := s.Dropped(); n != 2 {
		t.Errorf("Dropped = %d, want 2", n)
	}
	if err := s.Close(); err != nil || s.Close() != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestDecoder: corrupt lines are reported by seq and skipped.
func TestDecoder(t *testing.T) {
	var d Decoder
	d.Add(1, "r", `{"type":"workflow:start","timestamp":1,"workflowId":"r","workflowName":"w"}`)
	d.Add(2, "r", `{"type":`)
	d.Add(3, "r", `{"type":"custom:thing","timestamp":1,"workflowId":"r","workflowName":"w"}`)
	if len(d.Events) != 2 || d.Events[0].Seq != 1 || d.Events[1].Seq != 3 {
		t.Errorf("events %+v", d.Events)
	}
	if err := d.Err(); !errors.Is(err, flux.ErrCorrupt) {
		t.Errorf("Err: %v", err)
	}
}
