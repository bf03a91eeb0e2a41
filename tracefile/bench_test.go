package tracefile

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
)

// BenchmarkSinkEmit measures what the file sink costs a run per event, with
// 8 goroutines (8 concurrent runs) emitting into one Sink; a tenth of the
// events are workflow:start events with a small input. "file" writes a
// real file and lets Emit wait for the disk rather than drop (so disk
// throughput is included); "discard" writes to io.Discard and measures the
// encoding and buffering alone. Both fail if an event was dropped.
func BenchmarkSinkEmit(b *testing.B) {
	b.Run("file", func(b *testing.B) {
		s, err := New(filepath.Join(b.TempDir(), "trace.ndjson"), MaxBlock(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		benchEmit(b, s)
	})
	b.Run("discard", func(b *testing.B) {
		benchEmit(b, newSink("discard", io.Discard, io.NopCloser(nil), config{
			interval: 100 * time.Millisecond, limit: 4 << 20, maxBlock: time.Minute}))
	})
}

func benchEmit(b *testing.B, s *Sink) {
	const goroutines = 8
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((goroutines + procs - 1) / procs)
	var ids atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		run := "run-" + strconv.FormatInt(ids.Add(1), 10)
		step := stepEvent(run, 3)
		start := flux.TraceEvent{Type: flux.EventWorkflowStart, Time: time.Now(), RunID: run, Workflow: "bench",
			Index: -1, Status: flux.StatusRunning, Input: json.RawMessage(`{"orderId":"ORD-001","items":[{"sku":"A","qty":2}]}`)}
		for i := 0; pb.Next(); i++ {
			if i%10 == 0 {
				s.Emit(start)
			} else {
				s.Emit(step)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	// An upper bound on the CPU time an event costs: all processors busy.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())*float64(procs)/float64(b.N), "cpu-ns/event")
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if d := s.Dropped(); d != 0 {
		b.Fatalf("%d of %d events dropped", d, b.N)
	}
}

func BenchmarkParseLine(b *testing.B) {
	lines := seedLines(b)
	var n int64
	for _, l := range lines {
		n += int64(len(l))
	}
	b.SetBytes(n / int64(len(lines)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ParseLine(lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReader reads the seed trace repeated to about 100,000 lines.
func BenchmarkReader(b *testing.B) {
	var file []byte
	lines := seedLines(b)
	for range 100_000 / len(lines) {
		for _, l := range lines {
			file = append(append(file, l...), '\n')
		}
	}
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(file))
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(100_000/len(lines)*len(lines)), "ns/line")
}
