package viewer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"
)

// BenchmarkMillionEvents measures the viewer on a trace of 1,000,000
// events (100,000 runs) in one file: how long after the server starts the
// first page of the runs list is served, how long the whole file takes to
// index, and the peak memory meanwhile. "cold" evicts the file from the page
// cache first, so it is read from disk; "warm" reads it from the cache.
//
//	go test -run '^$' -bench MillionEvents -benchtime 3x ./internal/viewer
func BenchmarkMillionEvents(b *testing.B) {
	path := millionTrace(b)
	for _, cold := range []bool{true, false} {
		name := "warm"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			var first, full, peakHeap, peakRSS, retained float64
			n := 0
			for b.Loop() {
				r := measureOpen(b, path, cold)
				first += r.firstList.Seconds() * 1000
				full += r.fullIndex.Seconds() * 1000
				peakHeap = max(peakHeap, r.peakHeap)
				peakRSS = max(peakRSS, r.peakRSS)
				retained = max(retained, r.retained)
				n++
			}
			b.ReportMetric(first/float64(n), "ms-first-list")
			b.ReportMetric(full/float64(n), "ms-full-index")
			b.ReportMetric(peakHeap, "MiB-peak-heap")
			b.ReportMetric(peakRSS, "MiB-peak-RSS")
			b.ReportMetric(retained, "MiB-index-heap")
		})
	}
}

// BenchmarkMillionEventsBrowser measures the first paint of the runs list
// in Chromium: from starting the server on a cold 1,000,000-event file to
// the first rows of the table in the page.
func BenchmarkMillionEventsBrowser(b *testing.B) {
	path := millionTrace(b)
	if _, err := os.Stat(chromiumPath); err != nil {
		b.Skipf("%s is missing: install Debian's chromium to measure the first paint", chromiumPath)
	}
	browser.once.Do(startBrowser)
	if browser.err != nil {
		b.Fatal(browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		b.Fatal(err)
	}
	var total float64
	n := 0
	for b.Loop() {
		evict(b, path)
		start := time.Now()
		src, err := OpenTrace(path, TraceOptions{})
		if err != nil {
			b.Fatal(err)
		}
		v := New(src, Options{})
		ts := httptest.NewServer(v)
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/")); err != nil {
			b.Fatal(err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll('table.runs tbody tr').length === 50`,
			chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start).Seconds() * 1000
		n++
		ready(b, src) // let the indexing finish before the next round
		v.Close()
		ts.Close()
		src.Close()
	}
	b.ReportMetric(total/float64(n), "ms-first-paint")
}

var million struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// millionTrace returns a trace file of 1,000,000 events (100,000 runs),
// written once per test binary and removed by TestMain.
func millionTrace(b *testing.B) string {
	million.once.Do(func() {
		million.dir, million.err = os.MkdirTemp("", "flux-viewer-bench-")
		if million.err != nil {
			return
		}
		million.path = filepath.Join(million.dir, "trace.ndjson")
		f, err := os.Create(million.path)
		if err != nil {
			million.err = err
			return
		}
		events, _, err := genTrace(f, 100_000, 42)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && events != 1_000_000 {
			err = fmt.Errorf("generated %d events, want 1000000", events)
		}
		million.err = err
	})
	if million.err != nil {
		b.Fatal(million.err)
	}
	b.Logf("%s: %.0f MiB", million.path, float64(fileSize(b, million.path))/(1<<20))
	return million.path
}

func removeMillionTrace() {
	if million.dir != "" {
		os.RemoveAll(million.dir)
	}
}

type openResult struct {
	firstList, fullIndex        time.Duration
	peakHeap, peakRSS, retained float64 // MiB
}

// measureOpen starts a viewer of path and times its first list response and
// its full index, sampling the memory meanwhile.
func measureOpen(b *testing.B, path string, cold bool) openResult {
	b.Helper()
	if cold {
		evict(b, path)
	}
	runtime.GC()
	resetPeakRSS()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var peakHeap float64
	wg.Add(1)
	go func() {
		defer wg.Done()
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peakHeap = max(peakHeap, float64(sample[0].Value.Uint64())/(1<<20))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	start := time.Now()
	src, err := OpenTrace(path, TraceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	v := New(src, Options{})
	ts := httptest.NewServer(v)
	res, err := ts.Client().Get(ts.URL + "/api/runs?limit=50")
	if err != nil {
		b.Fatal(err)
	}
	var p Page
	err = json.NewDecoder(res.Body).Decode(&p)
	res.Body.Close()
	firstList := time.Since(start)
	if err != nil || len(p.Runs) != 50 {
		b.Fatalf("first list: %d runs, %v", len(p.Runs), err)
	}
	ready(b, src)
	fullIndex := time.Since(start)
	close(stop)
	wg.Wait()
	if st := src.State(context.Background()); st.Runs != 100_000 || st.Lines != 1_000_000 {
		b.Fatalf("indexed %d runs and %d lines, want 100000 and 1000000", st.Runs, st.Lines)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := openResult{firstList: firstList, fullIndex: fullIndex, peakHeap: peakHeap, peakRSS: peakRSSMiB(),
		retained: float64(ms.HeapAlloc) / (1 << 20)}
	v.Close()
	ts.Close()
	src.Close()
	return r
}

// evict drops path's pages from the page cache.
func evict(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Skipf("cannot evict the file from the page cache: %v", err)
	}
}

// resetPeakRSS resets the process's peak resident set size (VmHWM).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMiB reads the process's peak resident set size.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}
