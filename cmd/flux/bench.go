package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/term"

	"github.com/flux-go/flux"
)

func init() {
	register("bench", "measure throughput and latency of workload W1 on a storage", runBench)
}

type w1Input struct {
	OrderID string `json:"orderId"`
}

type w1Data struct {
	Validated bool   `json:"validated"`
	Reserved  bool   `json:"reserved"`
	Receipt   string `json:"receipt"`
}

// w1 is workload W1: two steps and one commit, trivial work, small data.
var w1 = flux.New[w1Input, w1Data]("bench-w1").
	Step("validate", func(c *flux.Ctx[w1Input, w1Data]) error { c.Data.Validated = true; return nil }).
	Step("reserve", func(c *flux.Ctx[w1Input, w1Data]) error { c.Data.Reserved = true; return nil }).
	Commit("notify", func(c *flux.Ctx[w1Input, w1Data]) error { c.Data.Receipt = c.IdempotencyKey(); return nil })

// benchResult holds the figures of one W1 measurement.
type benchResult struct {
	Storage          string
	Runs             int
	Elapsed          time.Duration
	SeqP50, SeqP99   time.Duration
	PeakRSSBytes     int64
	RunsPerSecond    float64
	StepsPerSecond   float64
	SequentialRuns   int
	ConcurrencyLevel int
}

func (r benchResult) String() string {
	seq := ""
	if r.SequentialRuns > 0 {
		seq = fmt.Sprintf(", seq p50 %.3f ms p99 %.3f ms", float64(r.SeqP50.Microseconds())/1000, float64(r.SeqP99.Microseconds())/1000)
	}
	return fmt.Sprintf("W1 %s: %d runs at concurrency %d, %.0f runs/s, %.0f steps/s%s, peak RSS %d MiB",
		r.Storage, r.Runs, r.ConcurrencyLevel, r.RunsPerSecond, r.StepsPerSecond, seq, r.PeakRSSBytes>>20)
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	so := addStoreFlags(fs, "memory")
	n := fs.Int("workflows", 20000, "number of runs")
	c := fs.Int("concurrency", 32, "runs executing at once")
	seq := fs.Int("sequential", 1000, "runs measured one at a time for the latency figures")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measurement to this file")
	workload := fs.String("workload", "w1", "w1 (short runs, throughput), long (W2: runs of --steps steps, time and bytes per step), start (background execution) or waits (durable sleeps)")
	processes := fs.Int("processes", 1, "start: worker processes draining the started runs (more than one needs PostgreSQL)")
	steps := fs.Int("steps", 100, "long: steps per run")
	baseline := fs.Bool("baseline", false, "w1: instead of Flux, measure the raw baseline: the same three durable writes per run, group-committed by one writer (sqlite or postgres)")
	park := fs.Duration("park", 30*time.Second, "waits: the first run's sleep ends this long after the start (time to park them all)")
	spread := fs.Duration("spread", 0, "waits: the runs' sleeps end evenly over this duration after the first (0: all at once)")
	dataBytes := fs.Int("data-bytes", 100, "long: bytes each step appends to the run's data (0: each step changes the data without growing it)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: flux bench [--storage memory|sqlite|postgres] [--db PATH] [--postgres URL] [--workflows N] [--concurrency C]
       flux bench --baseline [--workflows N] [--concurrency C] --storage sqlite|postgres [store flags]
       flux bench --workload long [--steps N] [--data-bytes B] [--workflows R] [store flags]
       flux bench --workload start [--workflows N] [--processes P] [--concurrency C] [store flags]
       flux bench --workload waits [--workflows N] [--park D] [--spread D] [--concurrency C] [store flags]

W1 (the default) runs two steps and one commit, trivial work, small data, N times at concurrency C,
then a sequential series, and prints runs/s, steps/s, sequential p50/p99 latency and peak RSS.
W2 (--workload long) runs R runs (default 1) of N steps one after the other, each step appending
B bytes to the run's data, and prints the time per step and the bytes written and stored per step.
The start workload stores N runs with flux.Start, has P worker processes of C workers each drain them,
counts their commits (once each), then measures Start to the first step's start and an idle engine's calls.
The waits workload starts N runs that sleep until --park after the start (spread evenly over --spread),
counts the goroutines while all wait, and prints how late the engine (C workers) woke them and wakes/s.
--baseline measures, instead of Flux, a loop doing W1's three durable writes per run with the same
group commit, in a table of its own (baseline_runs): the figure to hold Flux's W1 against.

Each measurement starts from an empty store, as the baseline does: on SQLite a temporary file unless
--db names one, on PostgreSQL the schema flux_bench (dropped first) unless --schema names one. So the
benchmark never writes into the store of your application.`)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q: flux bench takes flags only (see flux bench -h)", pos[0])
	}
	if *n <= 0 || *c <= 0 || *seq < 0 {
		return fmt.Errorf("--workflows and --concurrency must be positive, --sequential not negative")
	}
	if *workload != "start-worker" {
		cleanup, err := benchStore(ctx, fs, so)
		if err != nil {
			return err
		}
		defer cleanup()
	}
	switch *workload {
	case "w1":
	case "start":
		if *processes < 1 {
			return fmt.Errorf("--processes must be at least 1")
		}
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
		res, err := benchStart(ctx, so, *n, *processes, *c)
		if err != nil {
			return err
		}
		fmt.Println(res)
		return nil
	case "waits":
		if *park <= 0 || *spread < 0 {
			return fmt.Errorf("--park must be positive and --spread not negative")
		}
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
		res, err := benchWaits(ctx, so, *n, *c, *park, *spread)
		if err != nil {
			return err
		}
		fmt.Println(res)
		return nil
	case "start-worker": // a child of --workload start
		return startWorker(ctx, so, *c)
	case "long":
		if *steps <= 0 || *dataBytes < 0 {
			return fmt.Errorf("--steps must be positive and --data-bytes not negative")
		}
		if !setFlags(fs)["workflows"] {
			*n = 1
		}
	default:
		return fmt.Errorf("unknown --workload %q: want w1, long, start or waits", *workload)
	}
	if *baseline {
		if *workload != "w1" {
			return fmt.Errorf("--baseline measures W1's writes; it does not go with --workload %s", *workload)
		}
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
		res, err := benchBaseline(ctx, so, *n, *c)
		if err != nil {
			return err
		}
		fmt.Println(res)
		return nil
	}
	store, err := so.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	stop, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	if *workload == "long" {
		counter, closeCounter, err := counterFor(ctx, so)
		if err != nil {
			return err
		}
		defer closeCounter()
		res, err := benchLong(ctx, store, so.kind(), counter, *n, *steps, *dataBytes)
		if err != nil {
			return err
		}
		fmt.Println(res)
		return nil
	}
	res, err := benchW1(ctx, store, so.kind(), *n, *c, *seq, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Println(res)
	return nil
}

// benchSchema is the PostgreSQL schema of the benchmarks when --schema
// names none.
const benchSchema = "flux_bench"

// benchStore points so at an empty store of the benchmark's own, unless
// the flags name one: a temporary SQLite file (removed by cleanup), or
// the schema benchSchema, dropped first. A store the flags name is used as
// it is.
func benchStore(ctx context.Context, fs *flag.FlagSet, so *storeOptions) (cleanup func(), err error) {
	set := setFlags(fs)
	switch so.kind() {
	case "sqlite":
		if set["db"] {
			return func() {}, nil
		}
		dir, err := os.MkdirTemp("", "flux-bench-")
		if err != nil {
			return nil, err
		}
		so.db = filepath.Join(dir, "bench.db")
		return func() { _ = os.RemoveAll(dir) }, nil
	case "postgres":
		if set["schema"] || so.postgres == "" {
			return func() {}, nil
		}
		so.schema = benchSchema
		conn, err := pgx.Connect(ctx, so.postgres)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", so.postgres, err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+benchSchema+" CASCADE"); err != nil {
			return nil, fmt.Errorf("emptying the benchmark's schema %s: %w", benchSchema, err)
		}
	}
	return func() {}, nil
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// benchW1 measures W1 on store: n runs at concurrency c, then seq runs one
// at a time. Progress goes to progress when it is a terminal.
func benchW1(ctx context.Context, store flux.Storage, name string, n, c, seq int, progress io.Writer) (benchResult, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	e, err := flux.NewEngine(flux.Config{Storage: store, Logger: quiet})
	if err != nil {
		return benchResult{}, err
	}
	defer e.Close()

	bar := newProgressBar(progress, n+seq)
	var next, done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				if _, err := flux.Execute(ctx, e, w1, w1Input{OrderID: fmt.Sprintf("o_%d", i)}); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				bar.set(int(done.Add(1)))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return benchResult{}, fmt.Errorf("run failed: %w", firstErr)
	}
	lat := make([]time.Duration, 0, seq)
	for i := range seq {
		t := time.Now()
		if _, err := flux.Execute(ctx, e, w1, w1Input{OrderID: fmt.Sprintf("s_%d", i)}); err != nil {
			return benchResult{}, fmt.Errorf("sequential run failed: %w", err)
		}
		lat = append(lat, time.Since(t))
		bar.set(n + i + 1)
	}
	bar.finish()
	slices.Sort(lat)
	res := benchResult{
		Storage: name, Runs: n, Elapsed: elapsed, SequentialRuns: seq, ConcurrencyLevel: c,
		RunsPerSecond:  float64(n) / elapsed.Seconds(),
		StepsPerSecond: float64(3*n) / elapsed.Seconds(),
		PeakRSSBytes:   peakRSS(),
	}
	if len(lat) > 0 {
		res.SeqP50 = lat[len(lat)*50/100]
		res.SeqP99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res, nil
}

// peakRSS returns the process's peak resident set size.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

// progressBar draws on a terminal and stays silent elsewhere.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	total int
	last  time.Time
}

func newProgressBar(w io.Writer, total int) *progressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progressBar{total: total}
	}
	return &progressBar{w: w, total: total}
}

func (p *progressBar) set(done int) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && done < p.total {
		return
	}
	p.last = time.Now()
	const width = 40
	fill := width * done / max(p.total, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("#", fill), strings.Repeat(" ", width-fill), done, p.total)
}

func (p *progressBar) finish() {
	if p.w != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// startCPUProfile writes a CPU profile to path until stop is called; with
// no path it does nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
