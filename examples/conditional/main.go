// Conditional shows flux.When: the send step runs only when the input asks
// for it. When the predicate is false the step is marked skipped, which is
// neither an error nor a retry, and the run completes.
//
// It runs the workflow twice: for a user with notifications disabled (send is
// skipped, nothing is sent) and for one with them enabled (send runs).
//
// Run it from the module root:
//
//	go run ./examples/conditional
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/flux-go/flux"
)

// Input is the workflow's input.
type Input struct {
	UserID  string `json:"userId"`
	Enabled bool   `json:"enabled"`
}

// Data is what send records.
type Data struct {
	Sent bool `json:"sent"`
}

// newNotify returns the workflow, sending through n.
func newNotify(n *notifier) *flux.Workflow[Input, Data] {
	return flux.New[Input, Data]("notify").
		Step("send", func(c *flux.Ctx[Input, Data]) error {
			if err := n.Send(c, c.Input.UserID); err != nil {
				return err
			}
			c.Data.Sent = true
			return nil
		}, flux.When(func(c *flux.Ctx[Input, Data]) bool { return c.Input.Enabled }))
}

func main() {
	if _, _, err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run notifies u_1, who disabled notifications, then u_2, who enabled them.
// It returns the two results, in that order, and the notifier.
func run(ctx context.Context, out io.Writer) ([]*flux.Result[Data], *notifier, error) {
	engine, err := flux.NewEngine(flux.Config{})
	if err != nil {
		return nil, nil, err
	}
	defer engine.Close()
	n := &notifier{}
	flow := newNotify(n)

	var results []*flux.Result[Data]
	for _, in := range []Input{{UserID: "u_1", Enabled: false}, {UserID: "u_2", Enabled: true}} {
		res, err := flux.Execute(ctx, engine, flow, in)
		if err != nil {
			return results, n, err
		}
		results = append(results, res)
		fmt.Fprintf(out, "%s (enabled=%t): run %s, send %s\n", in.UserID, in.Enabled, res.Status, res.Steps[0].Status)
	}
	fmt.Fprintf(out, "notified: %v\n", n.Sent())
	return results, n, nil
}

// notifier is a fake notification service.
type notifier struct {
	mu   sync.Mutex
	sent []string
}

// Send notifies a user.
func (n *notifier) Send(ctx context.Context, userID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, userID)
	return nil
}

// Sent returns the users notified so far.
func (n *notifier) Sent() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.sent...)
}
