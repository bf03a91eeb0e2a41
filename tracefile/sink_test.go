package tracefile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flux-go/flux"
)

func stepEvent(run string, i int) flux.TraceEvent {
	return flux.TraceEvent{Type: flux.EventStepComplete, Time: time.UnixMilli(1795610935537), RunID: run,
		Workflow: "bench", Step: "step-" + strconv.Itoa(i%10), Index: i, Attempt: 1, MaxRetries: 3,
		Duration: 1234 * time.Microsecond, Status: flux.StatusCompleted}
}

func readFile(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []Record
	for _, it := range readAll(t, NewReader(f)) {
		if it.err != nil {
			t.Fatalf("%s line %d: %v", path, it.line, it.err)
		}
		recs = append(recs, it.rec)
	}
	return recs
}

func TestSinkCreatesDirectoryAndAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "trace.ndjson")
	for round := range 2 {
		s, err := New(path)
		if err != nil {
			t.Fatal(err)
		}
		s.Emit(stepEvent("run-"+strconv.Itoa(round), 0))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if recs := readFile(t, path); len(recs) != 2 || recs[0].WorkflowID != "run-0" || recs[1].WorkflowID != "run-1" {
		t.Fatalf("appending sinks: %+v", recs)
	}
	s, err := New(path, Reset(true))
	if err != nil {
		t.Fatal(err)
	}
	s.Emit(stepEvent("run-2", 0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if recs := readFile(t, path); len(recs) != 1 || recs[0].WorkflowID != "run-2" {
		t.Fatalf("Reset(true) did not truncate: %+v", recs)
	}
}

func TestSinkOptionsValidated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.ndjson")
	for _, o := range []Option{FlushInterval(0), BufferLimit(-1), MaxBlock(-time.Second)} {
		if s, err := New(path, o); err == nil {
			s.Close()
			t.Errorf("option accepted")
		} else if !strings.Contains(err.Error(), "tracefile.") {
			t.Errorf("error %q does not name the option", err)
		}
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := New(filepath.Join(path, "x", "y")); err == nil {
		s.Close()
		t.Error("New under a regular file succeeded")
	} else if !strings.Contains(err.Error(), "directory") {
		t.Errorf("error %q does not say what failed", err)
	}
}

func TestSinkFlushCloseAndLateEmit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.ndjson")
	s, err := New(path, FlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s.Emit(stepEvent("r", 0))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if recs := readFile(t, path); len(recs) != 1 {
		t.Fatalf("after Flush the file has %d records, want 1", len(recs))
	}
	s.Emit(stepEvent("r", 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if recs := readFile(t, path); len(recs) != 2 {
		t.Fatalf("after Close the file has %d records, want 2", len(recs))
	}
	s.Emit(stepEvent("r", 2))
	if s.Dropped() != 1 {
		t.Errorf("Dropped() = %d after an Emit after Close, want 1", s.Dropped())
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Flush(); err == nil {
		t.Error("Flush after Close succeeded")
	}
}

// blockingWriter blocks its first Write until release is closed.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	writes  int
	data    bytes.Buffer
	err     error
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	first := w.writes == 0
	w.writes++
	w.mu.Unlock()
	if first {
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	return w.data.Write(p)
}

func (w *blockingWriter) Close() error { return nil }

func (w *blockingWriter) lines() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Count(w.data.Bytes(), []byte{'\n'})
}

// On a stuck disk Emit waits MaxBlock once, then drops at once until the
// writer gets going again; nothing else is lost.
func TestSinkSlowDiskDropsAfterMaxBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &blockingWriter{release: make(chan struct{})}
		ev := stepEvent("r", 0)
		lineLen := len(FromEvent(ev).AppendJSON(nil)) + 1
		const maxBlock = 20 * time.Millisecond
		s := newSink("stuck", w, w, config{interval: time.Hour, limit: 8 * lineLen, maxBlock: maxBlock})

		s.Emit(ev) // reaches limit/8: the writer takes it and blocks
		synctest.Wait()
		for range 8 {
			s.Emit(ev)
		}
		if s.Dropped() != 0 {
			t.Fatalf("dropped %d before the buffer was full", s.Dropped())
		}
		start := time.Now()
		s.Emit(ev)
		if waited := time.Since(start); waited != maxBlock || s.Dropped() != 1 {
			t.Fatalf("full buffer: waited %v and dropped %d; want %v and 1", waited, s.Dropped(), maxBlock)
		}
		start = time.Now()
		s.Emit(ev)
		if waited := time.Since(start); waited != 0 || s.Dropped() != 2 {
			t.Fatalf("still stuck: waited %v and dropped %d; want 0 and 2", waited, s.Dropped())
		}

		close(w.release)
		synctest.Wait() // the pending kick writes the full buffer
		if got := w.lines(); got != 9 {
			t.Fatalf("after the disk recovered %d lines were written, want 9", got)
		}
		s.Emit(ev)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if w.lines() != 10 || s.Dropped() != 2 {
			t.Errorf("%d lines written and %d dropped, want 10 and 2", w.lines(), s.Dropped())
		}
	})
}

// An Emit that finds the buffer full gets in as soon as a write frees it.
func TestSinkWaitsForRoomWithinMaxBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &blockingWriter{release: make(chan struct{})}
		ev := stepEvent("r", 0)
		lineLen := len(FromEvent(ev).AppendJSON(nil)) + 1
		s := newSink("slow", w, w, config{interval: time.Hour, limit: 2 * lineLen, maxBlock: time.Second})
		s.Emit(ev)
		synctest.Wait()
		s.Emit(ev)
		s.Emit(ev)
		done := make(chan time.Duration)
		go func() {
			start := time.Now()
			s.Emit(ev)
			done <- time.Since(start)
		}()
		synctest.Wait()
		time.Sleep(300 * time.Millisecond) // fake time: the disk is stuck for 300ms
		close(w.release)
		if waited := <-done; waited != 300*time.Millisecond {
			t.Errorf("Emit waited %v, want 300ms", waited)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if w.lines() != 4 || s.Dropped() != 0 {
			t.Errorf("%d lines, %d dropped; want 4 and 0", w.lines(), s.Dropped())
		}
	})
}

func TestSinkReportsWriteErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &blockingWriter{release: make(chan struct{}), err: errors.New("no space left on device")}
		close(w.release)
		s := newSink("/full/trace.ndjson", w, w, config{interval: time.Hour, limit: 1 << 20, maxBlock: time.Second})
		s.Emit(stepEvent("r", 0))
		s.Emit(stepEvent("r", 1))
		err := s.Flush()
		if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "/full/trace.ndjson") ||
			!strings.Contains(err.Error(), "2 events lost") {
			t.Errorf("Flush error = %v", err)
		}
		if s.Dropped() != 2 {
			t.Errorf("Dropped() = %d, want 2", s.Dropped())
		}
		if err := s.Flush(); err != nil {
			t.Errorf("the error was reported twice: %v", err)
		}
		s.Close()
	})
}

func TestSinkWritesAtTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &blockingWriter{release: make(chan struct{})}
		close(w.release)
		s := newSink("tick", w, w, config{interval: 100 * time.Millisecond, limit: 1 << 20, maxBlock: time.Second})
		defer s.Close()
		s.Emit(stepEvent("r", 0))
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		if w.lines() != 0 {
			t.Fatalf("written before the interval")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if w.lines() != 1 {
			t.Fatalf("not written at the interval")
		}
	})
}

// writerSpec is what one writer of TestMultiProcessAppend writes: runs
// named prefix-g (g < goroutines), each with n events, stepIndex 0..n-1.
type writerSpec struct {
	path       string
	prefix     string
	goroutines int
	n          int
}

func (w writerSpec) String() string {
	return fmt.Sprintf("%s|%s|%d|%d", w.path, w.prefix, w.goroutines, w.n)
}

// write emits the writer's events through one Sink and returns how many
// were dropped.
func (w writerSpec) write() (int64, error) {
	s, err := New(w.path, BufferLimit(256<<10), FlushInterval(time.Millisecond), MaxBlock(time.Minute))
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for g := range w.goroutines {
		wg.Go(func() {
			run := w.prefix + "-" + strconv.Itoa(g)
			for i := range w.n {
				ev := stepEvent(run, i)
				// Lines of very different lengths make torn writes show.
				ev.Err = strings.Repeat("e", (i*7919)%5000)
				s.Emit(ev)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		return 0, err
	}
	return s.Dropped(), nil
}

// runChild is a child process of TestMultiProcessAppend: it waits for a
// line on stdin, writes, and prints how many events it dropped.
func runChild(spec string) int {
	parts := strings.Split(spec, "|")
	if len(parts) != 4 {
		fmt.Fprintln(os.Stderr, "bad child spec", spec)
		return 2
	}
	g, _ := strconv.Atoi(parts[2])
	n, _ := strconv.Atoi(parts[3])
	bufio.NewReader(os.Stdin).ReadString('\n')
	dropped, err := writerSpec{parts[0], parts[1], g, n}.write()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(dropped)
	return 0
}

// Two processes and two Sinks in this process append to one file at once:
// every line comes out whole, and each run's events are all there, in order.
func TestMultiProcessAppend(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.ndjson")
	const goroutines, n = 4, 2000
	var children []*exec.Cmd
	var stdins []io.WriteCloser
	var outs []*bytes.Buffer
	for _, name := range []string{"proc1", "proc2"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+writerSpec{path, name, goroutines, n}.String())
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children, stdins, outs = append(children, cmd), append(stdins, in), append(outs, out)
	}
	for _, in := range stdins {
		io.WriteString(in, "go\n")
		in.Close()
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	dropped := make([]int64, 2)
	for k, name := range []string{"local1", "local2"} {
		wg.Go(func() { dropped[k], errs[k] = writerSpec{path, name, goroutines, n}.write() })
	}
	wg.Wait()
	for k, cmd := range children {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v: %s", k, err, outs[k])
		}
		if got := strings.TrimSpace(outs[k].String()); got != "0" {
			t.Errorf("child %d dropped %s events", k, got)
		}
	}
	for k := range errs {
		if errs[k] != nil || dropped[k] != 0 {
			t.Errorf("local writer %d: %v, dropped %d", k, errs[k], dropped[k])
		}
	}

	next := map[string]int{} // run -> next stepIndex expected
	for _, rec := range readFile(t, path) {
		if rec.StepIndex == nil || *rec.StepIndex != next[rec.WorkflowID] {
			t.Fatalf("run %s: stepIndex %v, want %d", rec.WorkflowID, rec.StepIndex, next[rec.WorkflowID])
		}
		if want := strings.Repeat("e", (*rec.StepIndex*7919)%5000); rec.Error != want {
			t.Fatalf("run %s event %d: error field of %d bytes, want %d", rec.WorkflowID, *rec.StepIndex, len(rec.Error), len(want))
		}
		next[rec.WorkflowID]++
	}
	if len(next) != 4*goroutines {
		t.Errorf("%d runs in the file, want %d", len(next), 4*goroutines)
	}
	for run, got := range next {
		if got != n {
			t.Errorf("run %s: %d events, want %d", run, got, n)
		}
	}
}
