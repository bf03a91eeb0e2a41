// Notify shows retries and timeouts: the send step calls a flaky notifier
// with Retries(5) and Timeout(10s), so it gets up to six attempts of at most
// ten seconds each.
//
// The first run meets a notifier that fails twice and then delivers: send
// completes on its third attempt. The second meets a notifier that is down:
// send fails after its sixth attempt and the run fails with the notifier's
// error. Backoff between attempts is 10ms doubling to 50ms, so the program
// finishes at once; the engine's default is 1s doubling to 10s.
//
// Run it from the module root:
//
//	go run ./examples/notify
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/flux-go/flux"
)

// Input is the workflow's input.
type Input struct {
	UserID string `json:"userId"`
}

// Data is what send records.
type Data struct {
	MessageID string `json:"messageId,omitempty"`
}

// newNotify returns the workflow, sending through n.
func newNotify(n *notifier) *flux.Workflow[Input, Data] {
	return flux.New[Input, Data]("notify").
		Step("send", func(c *flux.Ctx[Input, Data]) error {
			id, err := n.Send(c, c.IdempotencyKey(), c.Input.UserID)
			if err != nil {
				return err // retried, up to 5 times
			}
			c.Data.MessageID = id
			return nil
		},
			flux.Retries(5),
			flux.Timeout(10*time.Second),
			flux.Backoff(10*time.Millisecond, 50*time.Millisecond))
}

// outcome is what run did.
type outcome struct {
	Flaky    *flux.Result[Data] // against a notifier that fails twice
	Down     *flux.Result[Data] // against a notifier that always fails
	DownErr  error              // why Down failed
	Notifier *notifier          // the flaky one
}

func main() {
	if _, err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run notifies a user through a flaky notifier, then through one that is down.
func run(ctx context.Context, out io.Writer) (*outcome, error) {
	engine, err := flux.NewEngine(flux.Config{
		Logger: slog.New(slog.DiscardHandler), // the hooks below tell the story
		Hooks: flux.Hooks{
			StepRetry: func(ev flux.StepEvent) {
				fmt.Fprintf(out, "  %s: attempt %d failed: %v; retrying in %s\n",
					ev.Step, ev.Attempt, ev.Err, ev.Delay.Round(time.Millisecond))
			},
			StepError: func(ev flux.StepEvent) {
				fmt.Fprintf(out, "  %s: attempt %d failed: %v; giving up\n", ev.Step, ev.Attempt, ev.Err)
			},
		},
	})
	if err != nil {
		return nil, err
	}
	defer engine.Close()

	o := &outcome{Notifier: &notifier{failures: 2}}
	fmt.Fprintln(out, "flaky notifier:")
	o.Flaky, err = flux.Execute(ctx, engine, newNotify(o.Notifier), Input{UserID: "u_123"})
	if err != nil {
		return o, err
	}
	report(out, o.Flaky)

	fmt.Fprintln(out, "notifier down:")
	down := &notifier{failures: 1 << 30}
	o.Down, o.DownErr = flux.Execute(ctx, engine, newNotify(down), Input{UserID: "u_456"})
	if !errors.Is(o.DownErr, errUnavailable) {
		return o, fmt.Errorf("notifier down: want errUnavailable, got %v", o.DownErr)
	}
	report(out, o.Down)
	return o, nil
}

func report(out io.Writer, res *flux.Result[Data]) {
	s := res.Steps[0]
	fmt.Fprintf(out, "run %s %s: %s %s after %d attempts in %s\n",
		res.ID, res.Status, s.Name, s.Status, len(s.Attempts), res.Duration.Round(time.Millisecond))
}

// errUnavailable is the flaky notifier's failure.
var errUnavailable = errors.New("notifier: 503 service unavailable")

// notifier is a fake notification service whose first calls fail.
type notifier struct {
	mu       sync.Mutex
	failures int             // calls left that fail
	sent     map[string]bool // idempotency keys delivered
}

// Send delivers a notification to a user, once per key, and returns its ID.
func (n *notifier) Send(ctx context.Context, key, userID string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failures > 0 {
		n.failures--
		return "", errUnavailable
	}
	if n.sent == nil {
		n.sent = make(map[string]bool)
	}
	n.sent[key] = true
	return fmt.Sprintf("msg-%s-%d", userID, len(n.sent)), nil
}

// Delivered returns how many distinct notifications were delivered.
func (n *notifier) Delivered() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.sent)
}
