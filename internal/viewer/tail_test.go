package viewer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flux-go/flux"
)

func seedLines(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(seedTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func runCount(t testing.TB, src *TraceSource) int {
	t.Helper()
	p, err := src.Runs(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Runs)
}

// changes records the changes src reports.
type changes struct {
	mu  sync.Mutex
	ids []string
	all []Change
}

func watchChanges(t *testing.T, src *TraceSource) *changes {
	c := &changes{}
	ctx, cancel := context.WithCancel(context.Background())
	registered := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.watch(ctx, func(ch Change) {
			c.mu.Lock()
			c.ids = append(c.ids, ch.Runs...)
			c.all = append(c.all, ch)
			c.mu.Unlock()
		}, registered)
	}()
	<-registered
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *changes) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.ids, id)
}

func (c *changes) reset() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.all {
		if ch.Reset {
			return true
		}
	}
	return false
}

func TestTailAppend(t *testing.T) {
	t.Parallel()
	lines := seedLines(t)
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	if err := os.WriteFile(path, []byte(strings.Join(lines[:12], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	if n := runCount(t, src); n != 1 {
		t.Fatalf("%d runs before appending, want 1", n)
	}
	ch := watchChanges(t, src)
	appendFile(t, path, strings.Join(lines[12:], ""))
	waitUntil(t, src, "the appended runs are indexed", func() bool { return runCount(t, src) == 4 })
	waitUntil(t, src, "the change names the order run", func() bool { return ch.has(seedOrder) })
	d, err := src.Run(context.Background(), seedOrder)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodeByName(t, d, "charge").Attempts) != 3 || d.Events[0].Line != 25 {
		t.Errorf("appended run: charge attempts %d, first line %d; want 3 and 25", len(nodeByName(t, d, "charge").Attempts), d.Events[0].Line)
	}
}

func TestTailIncompleteLastLine(t *testing.T) {
	t.Parallel()
	lines := seedLines(t)
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	if err := os.WriteFile(path, []byte(strings.Join(lines[:12], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	next := lines[12]
	appendFile(t, path, next[:40])
	incomplete := func() bool {
		st := src.State(context.Background())
		return len(st.Problems) == 1 && strings.Contains(st.Problems[0].Reason, "no newline") && st.Problems[0].Line == 13
	}
	waitUntil(t, src, "the incomplete line is reported", incomplete)
	if n := runCount(t, src); n != 1 {
		t.Errorf("%d runs while the line is incomplete, want 1", n)
	}
	appendFile(t, path, next[40:])
	waitUntil(t, src, "the completed line is indexed", func() bool { return runCount(t, src) == 2 })
	if st := src.State(context.Background()); st.ProblemCount != 0 || st.Lines != 13 {
		t.Errorf("after completing the line: %d problems %v, %d lines; want none and 13", st.ProblemCount, st.Problems, st.Lines)
	}
}

func TestTruncatedFileIsReindexed(t *testing.T) {
	t.Parallel()
	lines := seedLines(t)
	path := copyFile(t, seedTrace(t))
	src := openTrace(t, path, TraceOptions{})
	ready(t, src)
	ch := watchChanges(t, src)
	// tracefile.Reset(true) truncates the file and writes a new run.
	if err := os.WriteFile(path, []byte(strings.Join(lines[36:], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, src, "the truncated file is indexed again", func() bool {
		p, _ := src.Runs(context.Background(), Query{})
		return len(p.Runs) == 1 && p.Runs[0].ID == seedImage
	})
	if !ch.reset() {
		t.Error("no reset change was reported")
	}
	// Rewritten from scratch to more than its size between two polls: the
	// old last line is gone, so it is read again.
	long := strings.Join(lines[:24], "")
	if err := os.WriteFile(path, []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, src, "the rewritten file is indexed again", func() bool {
		p, _ := src.Runs(context.Background(), Query{})
		return len(p.Runs) == 2 && !slices.Contains(ids(p), seedImage)
	})
	if st := src.State(context.Background()); st.Lines != 24 {
		t.Errorf("%d lines after the rewrite, want 24", st.Lines)
	}
}

func TestReplacedAndLateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "trace.ndjson")
	src := openTrace(t, path, TraceOptions{})
	waitUntil(t, src, "the source is ready", func() bool { return src.State(context.Background()).Ready })
	if st := src.State(context.Background()); !strings.Contains(st.Notice, "does not exist") {
		t.Errorf("notice %q, want one saying the file does not exist yet", st.Notice)
	}
	lines := seedLines(t)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, src, "the created file is indexed", func() bool { return runCount(t, src) == 4 })
	// Replace it (rename over it), as a log rotation would.
	tmp := filepath.Join(dir, "new.ndjson")
	if err := os.WriteFile(tmp, []byte(strings.Join(lines[24:36], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, src, "the replacement is indexed", func() bool {
		p, _ := src.Runs(context.Background(), Query{})
		return len(p.Runs) == 1 && p.Runs[0].ID == seedOrder && p.Runs[0].Status == flux.StatusCompleted
	})
}

func TestTailLargeAppendInPieces(t *testing.T) {
	t.Parallel()
	lines := seedLines(t)
	path := filepath.Join(t.TempDir(), "trace.ndjson")
	if err := os.WriteFile(path, []byte(lines[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	src := openTrace(t, path, TraceOptions{tailRead: 1000})
	ready(t, src)
	appendFile(t, path, strings.Join(lines[1:], ""))
	waitUntil(t, src, "the append is indexed", func() bool {
		st := src.State(context.Background())
		return st.Lines == 39 && st.Runs == 4
	})
	d, err := src.Run(context.Background(), seedOrder)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 12 || d.Events[0].Line != 25 || d.Events[11].Line != 36 {
		t.Errorf("order run: %d events, lines %d..%d; want 12 from 25 to 36", len(d.Events), d.Events[0].Line, d.Events[len(d.Events)-1].Line)
	}
}
