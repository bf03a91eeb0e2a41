package crashtest

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flux-go/flux"
)

// Input and Data of the "crash-order" workflow.
type Input struct {
	N int `json:"n"`
}

// Data is what the nodes of "crash-order" fill in.
type Data struct {
	Prepared int    `json:"prepared"`
	Price    int    `json:"price"`
	Charged  bool   `json:"charged"`
	Key      string `json:"key"`
	Done     bool   `json:"done"`
}

const flowName = "crash-order"

// Kill points: where a child process kills itself, the K-th time a run
// reaches the point.
const (
	inPrepare    = "in-prepare"    // inside a step
	inPrice      = "in-price"      // inside a step, after a checkpointed one
	afterPrice   = "after-price"   // after a step checkpoint (its StepComplete hook)
	chargeBefore = "charge-before" // inside the commit, before its side effect
	chargeAfter  = "charge-after"  // after the side effect, before it was recorded
	afterCharge  = "after-charge"  // after the commit was recorded (its StepComplete hook)
)

// Files in a test's directory.
const (
	ledgerFile = "ledger.txt" // the payment provider's: one "key\n" per call
	killedFile = "killed.txt" // "<runID> <point>\n" of the run a child killed itself in
	readyFile  = "ready.txt"  // written by a zombie child when it blocks
	resultFile = "result.json"
)

// callsFile is the per-process log of handler calls and recorded nodes:
// "<runID> <step> <who> start|end|recorded <unix-nanos>\n".
func callsFile(who string) string { return "calls-" + who + ".log" }

// actor is what the handlers and hooks of one process share: where they log,
// and where they kill the process or block.
type actor struct {
	who    string
	calls  *os.File
	ledger *os.File
	dir    string
	point  string // kill point, "" for none
	k      int64  // kill the k-th time a run reaches point
	hits   atomic.Int64
	block  string // a step that blocks until SIGCONT (zombie child)
}

func newActor(dir, who string) (*actor, error) {
	calls, err := os.OpenFile(filepath.Join(dir, callsFile(who)), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	ledger, err := os.OpenFile(filepath.Join(dir, ledgerFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		calls.Close()
		return nil, err
	}
	return &actor{who: who, calls: calls, ledger: ledger, dir: dir}, nil
}

func (a *actor) close() {
	a.calls.Close()
	a.ledger.Close()
}

// log appends one line to the calls log in a single write (O_APPEND keeps
// lines whole across processes).
func (a *actor) log(runID, step, event string) error {
	_, err := fmt.Fprintf(a.calls, "%s %s %s %s %d\n", runID, step, a.who, event, time.Now().UnixNano())
	return err
}

// maybeKill kills the process with SIGKILL the k-th time a run reaches
// point, after recording which run it was.
func (a *actor) maybeKill(point, runID string) {
	if a.point != point || a.hits.Add(1) != a.k {
		return
	}
	if err := os.WriteFile(filepath.Join(a.dir, killedFile), []byte(runID+" "+point+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "writing the kill file:", err)
		os.Exit(4)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// waitCont blocks the handler of a zombie child until the parent stopped
// and continued the process.
func (a *actor) waitCont(step, runID string) error {
	if a.block != step {
		return nil
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCONT)
	defer signal.Stop(ch)
	if err := os.WriteFile(filepath.Join(a.dir, readyFile), []byte(strconv.Itoa(os.Getpid())+" "+runID+"\n"), 0o644); err != nil {
		return err
	}
	<-ch
	return nil
}

func (a *actor) hooks() flux.Hooks {
	return flux.Hooks{StepComplete: func(ev flux.StepEvent) {
		if err := a.log(ev.RunID, ev.Step, "recorded"); err != nil {
			panic(err) // logged by the engine; the parent then misses a line
		}
		switch ev.Step {
		case "price":
			a.maybeKill(afterPrice, ev.RunID)
		case "charge":
			a.maybeKill(afterCharge, ev.RunID)
		}
	}}
}

// newFlow returns the "crash-order" workflow, its handlers logging to a.
// Handlers fail permanently on an I/O error, so that the tests see it.
func newFlow(a *actor, atMostOnce bool) *flux.Workflow[Input, Data] {
	type ctx = flux.Ctx[Input, Data]
	wrap := func(step string, fn func(c *ctx) error) flux.Handler[Input, Data] {
		return func(c *ctx) error {
			if err := a.log(c.RunID(), step, "start"); err != nil {
				return flux.Permanent(err)
			}
			if err := fn(c); err != nil {
				return flux.Permanent(err)
			}
			if err := a.log(c.RunID(), step, "end"); err != nil {
				return flux.Permanent(err)
			}
			return nil
		}
	}
	var chargeOpts []flux.StepOption
	if atMostOnce {
		chargeOpts = append(chargeOpts, flux.AtMostOnce())
	}
	return flux.New[Input, Data](flowName).
		Step("prepare", wrap("prepare", func(c *ctx) error {
			a.maybeKill(inPrepare, c.RunID())
			if err := a.waitCont("prepare", c.RunID()); err != nil {
				return err
			}
			c.Data.Prepared = 2 * c.Input.N
			return nil
		})).
		Step("price", wrap("price", func(c *ctx) error {
			a.maybeKill(inPrice, c.RunID())
			c.Data.Price = c.Data.Prepared + 1
			return nil
		})).
		Commit("charge", wrap("charge", func(c *ctx) error {
			a.maybeKill(chargeBefore, c.RunID())
			key := c.IdempotencyKey()
			if _, err := a.ledger.WriteString(key + "\n"); err != nil {
				return err
			}
			a.maybeKill(chargeAfter, c.RunID())
			c.Data.Charged, c.Data.Key = true, key
			return nil
		}), chargeOpts...).
		Step("finish", wrap("finish", func(c *ctx) error {
			c.Data.Done = true
			return nil
		}))
}

// expected is the Data a completed run with input n must have.
func expected(runID string, n int) Data {
	return Data{Prepared: 2 * n, Price: 2*n + 1, Charged: true, Key: runID + "/charge", Done: true}
}

// runIDs returns "run-0" .. "run-<n-1>"; run-i has input N = i+1.
func runIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "run-" + strconv.Itoa(i)
	}
	return ids
}

func inputOf(id string) Input {
	i, _ := strconv.Atoi(id[len("run-"):])
	return Input{N: i + 1}
}
