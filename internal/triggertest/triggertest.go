// Package triggertest holds what the broker bindings' tests share: stores
// on SQLite and PostgreSQL, an order workflow that counts its commits, a
// store that stalls after storing a run (to kill a consumer between storing
// a run and acknowledging its message), and a child process to kill -9.
package triggertest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/trigger"
	"github.com/jackc/pgx/v5"
)

// Order is the input of the test workflow: the seed's order.created event.
type Order struct {
	OrderID string  `json:"orderId"`
	UserID  string  `json:"userId"`
	Amount  float64 `json:"amount"`
}

// Charged is the test workflow's data.
type Charged struct {
	Charged bool `json:"charged"`
}

// Counter counts the commits of each run, in this process.
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// Add counts one commit of run id.
func (c *Counter) Add(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[id]++
}

// Runs returns how many runs committed, and how many of them more than once.
func (c *Counter) Runs() (runs, twice int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.n {
		if k > 1 {
			twice++
		}
	}
	return len(c.n), twice
}

// Wait waits until n runs committed, or fails the test after timeout. It
// is cheaper than WaitRuns, which lists the runs: wait here first.
func (c *Counter) Wait(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		runs, _ := c.Runs()
		if runs >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d runs committed, want %d", timeout, runs, n)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// Flow returns the order workflow, "order-flow": a step that checks the
// amount and a commit "charge" counted in the returned Counter.
func Flow() (*flux.Workflow[Order, Charged], *Counter) {
	c := new(Counter)
	w := flux.New[Order, Charged]("order-flow").
		Validate(func(o Order) error {
			if o.OrderID == "" {
				return fmt.Errorf("order without orderId")
			}
			return nil
		}).
		Step("check", func(x *flux.Ctx[Order, Charged]) error { return nil }).
		Commit("charge", func(x *flux.Ctx[Order, Charged]) error {
			c.Add(x.RunID())
			x.Data.Charged = true
			return nil
		})
	return w, c
}

// Payload returns the JSON of order i.
func Payload(i int) []byte {
	return fmt.Appendf(nil, `{"orderId":"o-%d","userId":"u-%d","amount":%d.5}`, i, i%7, i)
}

// Quiet is a logger that drops everything.
var Quiet = slog.New(slog.DiscardHandler)

// SQLitePath returns the path of a new SQLite database in a test directory.
func SQLitePath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "flux.db")
}

// OpenSQLite opens the SQLite store at path, closed when the test ends.
func OpenSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// PostgresURL returns FLUX_POSTGRES_URL, or skips the test, saying so,
// when it is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("FLUX_POSTGRES_URL")
	if u == "" {
		t.Skip("FLUX_POSTGRES_URL is unset: set it to a PostgreSQL server, such as " +
			"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, to run the PostgreSQL tests")
	}
	return u
}

// PostgresSchema returns a schema name no one uses yet, dropped with
// everything in it when the test ends.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	url := PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "flux_trig_" + hex.EncodeToString(b[:])
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
	return name
}

// OpenPostgres opens a PostgreSQL store on schema, closed when the test
// ends.
func OpenPostgres(t testing.TB, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), PostgresURL(t), postgres.Schema(schema))
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Engine returns an engine on s with the given number of workers (-1:
// none), closed when the test ends.
func Engine(t testing.TB, s flux.Storage, workers int) *flux.Engine {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Storage: s, Workers: workers, Logger: Quiet})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// WaitRuns waits until the store holds want runs of workflow, all of them
// completed, or fails the test after timeout with what it saw.
func WaitRuns(t testing.TB, s flux.Storage, workflow string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := 5 * time.Millisecond
	for {
		total, done := Count(t, s, workflow)
		if total == want && done == want {
			return
		}
		if total > want {
			t.Fatalf("%d runs of %s stored, want %d", total, workflow, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d runs of %s stored, %d completed; want %d completed", timeout, total, workflow, done, want)
		}
		time.Sleep(pause) // polling a condition with a deadline, not a race
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// Count returns how many runs of workflow the store holds and how many of
// them completed.
func Count(t testing.TB, s flux.Storage, workflow string) (total, completed int) {
	t.Helper()
	f := flux.Filter{Workflow: workflow, Limit: 1000}
	for {
		page, err := s.List(context.Background(), f)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, r := range page.Runs {
			total++
			if r.Status == flux.StatusCompleted {
				completed++
			}
		}
		if page.Next == "" {
			return total, completed
		}
		f.Cursor = page.Next
	}
}

// Deliveries counts the messages a trigger handled, by message ID: use its
// RunID as trigger.Options.RunID.
type Deliveries struct {
	N    atomic.Int64 // messages handed to the trigger, redeliveries included
	mu   sync.Mutex
	seen map[string]int
}

// RunID counts m and returns its ID as the run ID.
func (d *Deliveries) RunID(m trigger.Message, _ Order) string {
	d.N.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]int{}
	}
	d.seen[m.ID]++
	return m.ID
}

// Count returns how many times the message with ID id was handled.
func (d *Deliveries) Count(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[id]
}

// Seen returns a copy of the counts by message ID.
func (d *Deliveries) Seen() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.seen)
}

// Creates wraps a store to count the runs it created and the creates
// refused because the run was stored already: a message handled again
// after its run was stored.
type Creates struct {
	flux.Storage
	Created, Existed atomic.Int64
}

// Create stores the run and counts the outcome.
func (c *Creates) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	w, err := c.Storage.Create(ctx, p)
	switch {
	case err == nil:
		c.Created.Add(1)
	case errors.Is(err, flux.ErrRunExists):
		c.Existed.Add(1)
		fmt.Fprintf(os.Stderr, "KDBG existed %s\n", p.Run.ID)
	}
	return w, err
}

// Stall wraps a store: after its first successful Create it writes
// "stored <id>" on Out and blocks every later call until the process is
// killed, so a consumer stops between storing a run and acknowledging its
// message.
type Stall struct {
	flux.Storage
	Out     io.Writer
	mu      sync.Mutex
	stalled bool
}

// Create stores the run, then stalls.
func (s *Stall) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	s.mu.Lock() // held for good once stalled: every later call blocks
	if s.stalled {
		select {} // killed here
	}
	w, err := s.Storage.Create(ctx, p)
	if err != nil {
		s.mu.Unlock()
		return w, err
	}
	s.stalled = true
	fmt.Fprintf(s.Out, "stored %s\n", p.Run.ID)
	select {} // killed here, before the message is acknowledged
}

// ChildEnv names the variable that tells a test binary it runs as a child.
const ChildEnv = "FLUX_TRIGGER_CHILD"

// Child is a copy of the test binary running one test as a child process.
type Child struct {
	cmd   *exec.Cmd
	lines chan string
}

// StartChild runs test (a test function name) in a new process of the test
// binary with ChildEnv set to arg and the extra environment env.
func StartChild(t testing.TB, test, arg string, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(append(os.Environ(), ChildEnv+"="+arg), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting child: %v", err)
	}
	c := &Child{cmd: cmd, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() { c.Kill() })
	return c
}

// Line waits for the child's first output line starting with prefix and
// returns the rest of it, or fails the test if the child ends first or
// timeout passes.
func (c *Child) Line(t testing.TB, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				t.Fatalf("child ended before writing %q", prefix)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return strings.TrimSpace(rest)
			}
		case <-deadline:
			t.Fatalf("child wrote no %q line within %v", prefix, timeout)
		}
	}
}

// Kill kills the child with SIGKILL and reaps it.
func (c *Child) Kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}
