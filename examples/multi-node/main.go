// Multi-node is the seed's n8n-style workflow: one message, routed by its
// type to email, Slack or a webhook, then written to an audit log as a
// commit.
//
// Each channel is a node guarded by flux.When, so a run executes exactly one
// of them and records the other two as skipped. The workflow's Validate
// function rejects an unknown type before any run is created: Execute returns
// an error wrapping flux.ErrInvalidInput and nothing is stored.
//
// Run it from the module root:
//
//	go run ./examples/multi-node
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/flux-go/flux"
)

// Channel is where a message goes.
type Channel string

// Channels.
const (
	Email   Channel = "email"
	Slack   Channel = "slack"
	Webhook Channel = "webhook"
)

// Input is the workflow's input: a channel and an opaque payload.
type Input struct {
	Type    Channel         `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// Data is what the nodes record.
type Data struct {
	Route      Channel `json:"route"`
	DeliveryID string  `json:"deliveryId,omitempty"` // from the channel used
}

// to is a When predicate that holds when the message goes to ch.
func to(ch Channel) flux.StepOption {
	return flux.When(func(c *flux.Ctx[Input, Data]) bool { return c.Data.Route == ch })
}

// deliver returns a handler that hands the payload to o.
func deliver(o *outbox) flux.Handler[Input, Data] {
	return func(c *flux.Ctx[Input, Data]) error {
		id, err := o.Add(c, c.IdempotencyKey(), string(c.Input.Payload))
		if err != nil {
			return err
		}
		c.Data.DeliveryID = id
		return nil
	}
}

// newMultiNode returns the workflow, delivering through the fakes s.
func newMultiNode(s *services) *flux.Workflow[Input, Data] {
	return flux.New[Input, Data]("multi-node").
		Validate(func(in Input) error {
			switch in.Type {
			case Email, Slack, Webhook:
				return nil
			}
			return fmt.Errorf("type %q: want %q, %q or %q", in.Type, Email, Slack, Webhook)
		}).
		Step("classify", func(c *flux.Ctx[Input, Data]) error {
			c.Data.Route = c.Input.Type
			return nil
		}).
		Step("send-email", deliver(s.Email), to(Email)).
		Step("send-slack", deliver(s.Slack), to(Slack)).
		Step("call-webhook", deliver(s.Webhook), to(Webhook)).
		Commit("audit", func(c *flux.Ctx[Input, Data]) error {
			entry, err := json.Marshal(c.Data)
			if err != nil {
				return flux.Permanent(err)
			}
			_, err = s.Audit.Add(c, c.IdempotencyKey(), string(entry))
			return err
		})
}

// sampleInputs are the messages run sends, one per channel.
var sampleInputs = []Input{
	{Type: Email, Payload: json.RawMessage(`{"to":"ada@example.com","subject":"Build passed"}`)},
	{Type: Slack, Payload: json.RawMessage(`{"channel":"#builds","text":"Build passed"}`)},
	{Type: Webhook, Payload: json.RawMessage(`{"event":"build.passed","build":42}`)},
}

// outcome is what run did.
type outcome struct {
	Results []*flux.Result[Data] // one per sample input, in order
	Invalid error                // from the message of an unknown type
	*services
}

func main() {
	if _, err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run sends the sample messages, then one of an unknown type.
func run(ctx context.Context, out io.Writer) (*outcome, error) {
	engine, err := flux.NewEngine(flux.Config{})
	if err != nil {
		return nil, err
	}
	defer engine.Close()
	o := &outcome{services: &services{
		Email: &outbox{prefix: "email"}, Slack: &outbox{prefix: "slack"},
		Webhook: &outbox{prefix: "hook"}, Audit: &outbox{prefix: "audit"},
	}}
	flow := newMultiNode(o.services)

	for _, in := range sampleInputs {
		res, err := flux.Execute(ctx, engine, flow, in)
		if err != nil {
			return o, err
		}
		o.Results = append(o.Results, res)
		fmt.Fprintf(out, "%-7s run %s, delivery %s\n", in.Type, res.Status, res.Data.DeliveryID)
		for _, st := range res.Steps {
			fmt.Fprintf(out, "  %-12s %-6s %s\n", st.Name, st.Kind, st.Status)
		}
	}

	_, o.Invalid = flux.Execute(ctx, engine, flow, Input{Type: "sms"})
	if !errors.Is(o.Invalid, flux.ErrInvalidInput) {
		return o, fmt.Errorf("sms: want an error wrapping flux.ErrInvalidInput, got %v", o.Invalid)
	}
	fmt.Fprintf(out, "sms     rejected: %v\n", o.Invalid)
	fmt.Fprintf(out, "audit log:\n")
	for _, e := range o.Audit.Items() {
		fmt.Fprintf(out, "  %s\n", e)
	}
	return o, nil
}

// services are the fake channels and the audit log.
type services struct {
	Email, Slack, Webhook, Audit *outbox
}

// outbox is a fake channel: it accepts items, once per idempotency key, and
// returns their IDs.
type outbox struct {
	prefix string
	mu     sync.Mutex
	ids    map[string]string // by key
	items  []string
}

// Add accepts item and returns its ID; a repeated key returns the first ID.
func (o *outbox) Add(ctx context.Context, key, item string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if id, ok := o.ids[key]; ok {
		return id, nil
	}
	if o.ids == nil {
		o.ids = make(map[string]string)
	}
	o.items = append(o.items, item)
	id := fmt.Sprintf("%s-%d", o.prefix, len(o.items))
	o.ids[key] = id
	return id, nil
}

// Items returns the items accepted so far.
func (o *outbox) Items() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.items...)
}
