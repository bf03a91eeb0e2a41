package crashtest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/jackc/pgx/v5"
)

// childEnv holds the JSON childConfig of a child process.
const childEnv = "FLUX_CRASH_CHILD"

// storeConfig says which store a process opens.
type storeConfig struct {
	Kind   string `json:"kind"` // "postgres" or "sqlite"
	URL    string `json:"url,omitempty"`
	Schema string `json:"schema,omitempty"`
	Path   string `json:"path,omitempty"`
}

// childConfig is what a child process does.
type childConfig struct {
	Mode        string        `json:"mode"` // "crash", "start", "worker", "zombie" or "saga"
	Store       storeConfig   `json:"store"`
	Dir         string        `json:"dir"`
	Who         string        `json:"who"` // engine ID, and the name of its calls log
	Point       string        `json:"point,omitempty"`
	K           int64         `json:"k,omitempty"`
	Runs        int           `json:"runs"`
	Concurrency int           `json:"concurrency"`
	Lease       time.Duration `json:"lease"`
	AtMostOnce  bool          `json:"atMostOnce,omitempty"`
	Shuffle     uint64        `json:"shuffle,omitempty"` // worker: execute the runs in an order shuffled with this seed
}

// childResult is what a zombie child reports.
type childResult struct {
	Err       string `json:"err"`
	LeaseLost bool   `json:"leaseLost"` // errors.Is(err, flux.ErrLeaseLost)
}

// openStore opens the store cfg names.
func openStore(ctx context.Context, cfg storeConfig) (flux.Storage, func(), error) {
	switch cfg.Kind {
	case "postgres":
		sep := "?"
		if strings.Contains(cfg.URL, "?") {
			sep = "&"
		}
		s, err := postgres.Open(ctx, cfg.URL+sep+"pool_max_conns=6", postgres.Schema(cfg.Schema))
		if err != nil {
			return nil, nil, err
		}
		return s, func() { _ = s.Close() }, nil
	case "sqlite":
		return openSQLite(cfg.Path)
	}
	return nil, nil, fmt.Errorf("unknown store kind %q", cfg.Kind)
}

// childMain runs a child process and returns its exit code.
func childMain(cfgJSON string) int {
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child: bad config:", err)
		return 2
	}
	run := runChild
	if cfg.Mode == "saga" {
		run = runSagaChild
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func runChild(cfg childConfig) error {
	ctx := context.Background()
	store, closeStore, err := openStore(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer closeStore()
	a, err := newActor(cfg.Dir, cfg.Who)
	if err != nil {
		return err
	}
	defer a.close()
	a.point, a.k = cfg.Point, cfg.K
	if cfg.Mode == "zombie" {
		a.block = "prepare"
	}
	eng, err := flux.NewEngine(flux.Config{
		Storage: store, ID: cfg.Who, LeaseDuration: cfg.Lease, RecoveryInterval: 100 * time.Millisecond,
		Hooks: a.hooks(), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Workers: max(cfg.Concurrency, 1),
	})
	if err != nil {
		return err
	}
	defer eng.Close()
	flow := newFlow(a, cfg.AtMostOnce)
	switch cfg.Mode {
	case "crash":
		errs := executeAll(ctx, eng, flow, runIDs(cfg.Runs), cfg.Concurrency)
		return fmt.Errorf("the kill point %s (K=%d) was never reached; errors: %v", cfg.Point, cfg.K, errs)
	case "start":
		// Background workers execute the started runs, until the kill.
		for _, id := range runIDs(cfg.Runs) {
			if _, err := flux.Start(ctx, eng, flow, inputOf(id), flux.RunID(id)); err != nil {
				return err
			}
		}
		if err := pollUntil(ctx, time.Minute, func() (bool, error) {
			left, err := unfinished(ctx, store, cfg.Runs)
			return left == 0, err
		}); err != nil {
			return err
		}
		return fmt.Errorf("the kill point %s (K=%d) was never reached", cfg.Point, cfg.K)
	case "worker":
		if err := eng.Register(flow); err != nil {
			return err
		}
		ids := runIDs(cfg.Runs)
		rng := mathrand.New(mathrand.NewPCG(cfg.Shuffle, 0))
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		if errs := executeAll(ctx, eng, flow, ids, cfg.Concurrency); len(errs) > 0 {
			return fmt.Errorf("unexpected Execute errors: %v", errs)
		}
		// The runs the other engine held are finished by it, or by this
		// engine's recovery loop if it dies.
		return pollUntil(ctx, time.Minute, func() (bool, error) {
			left, err := unfinished(ctx, store, cfg.Runs)
			return left == 0, err
		})
	case "zombie":
		_, err := flux.Execute(ctx, eng, flow, Input{N: 7}, flux.RunID("zombie-1"))
		res := childResult{LeaseLost: errors.Is(err, flux.ErrLeaseLost)}
		if err != nil {
			res.Err = err.Error()
		}
		b, _ := json.Marshal(res)
		return os.WriteFile(filepath.Join(cfg.Dir, resultFile), b, 0o644)
	}
	return fmt.Errorf("unknown mode %q", cfg.Mode)
}

// executeAll executes the runs at the given concurrency, each once, and
// returns the errors other than ErrRunActive (a run another engine holds).
func executeAll(ctx context.Context, eng *flux.Engine, flow *flux.Workflow[Input, Data], ids []string, concurrency int) []error {
	work := make(chan string)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for id := range work {
				_, err := flux.Execute(ctx, eng, flow, inputOf(id), flux.RunID(id))
				if err != nil && !errors.Is(err, flux.ErrRunActive) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("run %s: %w", id, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return errs
}

// unfinished counts the runs among run-0..run-<n-1> that are not stored in a
// final state.
func unfinished(ctx context.Context, store flux.Storage, n int) (int, error) {
	page, err := store.List(ctx, flux.Filter{Workflow: flowName, Limit: 1000})
	if err != nil {
		return 0, err
	}
	done := 0
	for _, r := range page.Runs {
		if r.Status.Final() {
			done++
		}
	}
	return n - done, nil
}

// pollUntil calls cond every 20ms until it returns true, an error, or the
// timeout passes. It is for waiting on other processes and the database
// clock, which the test cannot synchronise with otherwise.
func pollUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met after %s", timeout)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// child is a started child process.
type child struct {
	cmd  *exec.Cmd
	out  string // its stdout and stderr
	done chan error
}

// spawn starts the test binary as a child process doing cfg.
func spawn(t *testing.T, cfg childConfig) *child {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(cfg.Dir, "child-"+cfg.Who+".out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting child %s: %v", cfg.Who, err)
	}
	c := &child{cmd: cmd, out: outPath, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait waits for the child to exit, failing the test after timeout, and
// returns its wait status. A child's race report fails the test.
func (c *child) wait(t *testing.T, timeout time.Duration) syscall.WaitStatus {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-c.done:
		c.done <- nil // for the cleanup
	case <-timer.C:
		_ = c.cmd.Process.Kill()
		<-c.done
		c.done <- nil
		t.Fatalf("child %v did not exit within %s; its output:\n%s", c.cmd.Env[len(c.cmd.Env)-1], timeout, c.output())
	}
	if out := c.output(); strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("the child process reported a data race:\n%s", out)
	}
	return c.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func (c *child) output() string {
	b, _ := os.ReadFile(c.out)
	return string(b)
}

// call is one line of a calls log.
type call struct {
	run, step, who, event string
	at                    int64
}

// readCalls reads every calls log in dir.
func readCalls(t *testing.T, dir string) []call {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "calls-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	var calls []call
	for _, f := range files {
		for _, line := range readLines(t, f) {
			p := strings.Fields(line)
			if len(p) != 5 {
				t.Fatalf("%s: malformed line %q", f, line)
			}
			at, err := strconv.ParseInt(p[4], 10, 64)
			if err != nil {
				t.Fatalf("%s: malformed line %q", f, line)
			}
			calls = append(calls, call{run: p[0], step: p[1], who: p[2], event: p[3], at: at})
		}
	}
	return calls
}

// readLines returns the lines of a file; a missing file has none.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// ledgerByRun reads the ledger: raw lines per run ID. Every line must be the
// idempotency key of a known run's "charge".
func ledgerByRun(t *testing.T, dir string, ids []string) map[string]int {
	t.Helper()
	known := map[string]bool{}
	for _, id := range ids {
		known[id] = true
	}
	lines := map[string]int{}
	for _, key := range readLines(t, filepath.Join(dir, ledgerFile)) {
		run, ok := strings.CutSuffix(key, "/charge")
		if !ok || !known[run] {
			t.Errorf("ledger line %q is not the idempotency key of a run's charge", key)
			continue
		}
		lines[run]++
	}
	return lines
}

// dbURL returns FLUX_POSTGRES_URL, or skips the test when it is unset.
func dbURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("FLUX_POSTGRES_URL")
	if u == "" {
		t.Skip("FLUX_POSTGRES_URL is unset, so the PostgreSQL crash tests are skipped: set it to a server, such as " +
			"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	}
	return u
}

// pgStore returns the config of a PostgreSQL store in a schema of its own,
// dropped when the test ends.
func pgStore(t *testing.T) storeConfig {
	t.Helper()
	url := dbURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "flux_crash_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
		}
	})
	return storeConfig{Kind: "postgres", URL: url, Schema: name}
}

// sqliteStore returns the config of a SQLite store in the test's directory.
func sqliteStore(dir string) storeConfig {
	return storeConfig{Kind: "sqlite", Path: filepath.Join(dir, "workflows.db")}
}

// testLogger logs the engine's warnings and errors to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}
