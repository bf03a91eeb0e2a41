package viewer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser() // shared by the browser tests
	removeMillionTrace()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// seedTrace is the trace written by the original TypeScript engine.
func seedTrace(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "seed-trace.ndjson")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the seed trace is missing: %v", err)
	}
	return p
}

// copyFile copies src into a new file in t's temp dir and returns its path.
func copyFile(t testing.TB, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// openTrace opens path with a fast poll and closes it when t ends.
func openTrace(t testing.TB, path string, opt TraceOptions) *TraceSource {
	t.Helper()
	if opt.PollInterval == 0 {
		opt.PollInterval = 10 * time.Millisecond
	}
	src, err := OpenTrace(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// waitUntil waits for cond to hold, re-checking it after each change src
// reports, and fails t after a generous deadline.
func waitUntil(t testing.TB, src *TraceSource, what string, cond func() bool) {
	t.Helper()
	changed := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	registered := make(chan struct{})
	go func() {
		src.watch(ctx, func(Change) {
			select {
			case changed <- struct{}{}:
			default:
			}
		}, registered)
	}()
	<-registered
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// ready waits for src's whole file to be indexed.
func ready(t testing.TB, src *TraceSource) {
	t.Helper()
	waitUntil(t, src, "the file is indexed", func() bool {
		st := src.State(context.Background())
		return st.Ready && !st.Indexing
	})
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o644) }
