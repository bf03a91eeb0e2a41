// Event-routing is the seed's branching workflow: classify an event, then
// take exactly one of three branches — handle it automatically, open a ticket
// for manual review, or queue it for a risk audit — and notify as a commit.
//
// Each branch is a step guarded by flux.When on the route that classify
// recorded in the data; the branches not taken are marked skipped, and the
// run's record shows which way every event went. The program routes three
// events, one down each branch.
//
// Run it from the module root:
//
//	go run ./examples/event-routing
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/flux-go/flux"
)

// Route is the branch an event takes.
type Route string

// Routes.
const (
	RouteAuto   Route = "auto"   // handled without a person
	RouteManual Route = "manual" // a person reviews it
	RouteRisk   Route = "risk"   // audited for risk
)

// Event is an incoming business event.
type Event struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AmountCents int64  `json:"amountCents"`
}

// Input is the workflow's input.
type Input struct {
	Payload Event `json:"payload"`
}

// Data is what the steps record: the route, and what the branch produced.
type Data struct {
	Route    Route  `json:"route"`
	Result   string `json:"result,omitempty"`   // auto-handle
	TicketID string `json:"ticketId,omitempty"` // manual-review
	AuditID  string `json:"auditId,omitempty"`  // risk-audit
}

// riskThreshold is the amount from which an event is audited.
const riskThreshold = 1_000_000 // $10,000.00

// classify picks an event's route.
func classify(e Event) Route {
	switch {
	case e.AmountCents >= riskThreshold:
		return RouteRisk
	case e.Type == "order.paid":
		return RouteAuto
	default:
		return RouteManual
	}
}

// on is a When predicate that holds on route r.
func on(r Route) flux.StepOption {
	return flux.When(func(c *flux.Ctx[Input, Data]) bool { return c.Data.Route == r })
}

// newRouting returns the workflow, using the fake services s.
func newRouting(s *services) *flux.Workflow[Input, Data] {
	return flux.New[Input, Data]("event-routing").
		Step("classify", func(c *flux.Ctx[Input, Data]) error {
			c.Data.Route = classify(c.Input.Payload)
			return nil
		}).
		Step("auto-handle", func(c *flux.Ctx[Input, Data]) error {
			c.Data.Result = "processed " + c.Input.Payload.ID
			return nil
		}, on(RouteAuto)).
		Step("manual-review", func(c *flux.Ctx[Input, Data]) error {
			id, err := s.Tickets.Add(c, c.IdempotencyKey(), c.Input.Payload.ID)
			if err != nil {
				return err
			}
			c.Data.TicketID = id
			return nil
		}, on(RouteManual)).
		Step("risk-audit", func(c *flux.Ctx[Input, Data]) error {
			id, err := s.Audits.Add(c, c.IdempotencyKey(), c.Input.Payload.ID)
			if err != nil {
				return err
			}
			c.Data.AuditID = id
			return nil
		}, on(RouteRisk)).
		Commit("notify", func(c *flux.Ctx[Input, Data]) error {
			_, err := s.Notifications.Add(c, c.IdempotencyKey(), fmt.Sprintf("%s went %s", c.Input.Payload.ID, c.Data.Route))
			return err
		})
}

// sampleEvents are the events run routes, one for each route.
var sampleEvents = []Event{
	{ID: "evt_1", Type: "order.paid", AmountCents: 2_500},
	{ID: "evt_2", Type: "order.refund-requested", AmountCents: 4_000},
	{ID: "evt_3", Type: "order.paid", AmountCents: 1_200_000},
}

func main() {
	if _, _, err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run routes the sample events and returns their results, in order, and the
// fake services.
func run(ctx context.Context, out io.Writer) ([]*flux.Result[Data], *services, error) {
	engine, err := flux.NewEngine(flux.Config{})
	if err != nil {
		return nil, nil, err
	}
	defer engine.Close()
	s := &services{Tickets: &queue{prefix: "TKT"}, Audits: &queue{prefix: "AUD"}, Notifications: &queue{prefix: "MSG"}}
	flow := newRouting(s)

	var results []*flux.Result[Data]
	for _, ev := range sampleEvents {
		res, err := flux.Execute(ctx, engine, flow, Input{Payload: ev})
		if err != nil {
			return results, s, err
		}
		results = append(results, res)
		fmt.Fprintf(out, "%s (%s, %d cents) → %s, run %s in %s\n",
			ev.ID, ev.Type, ev.AmountCents, res.Data.Route, res.Status, res.Duration.Round(time.Microsecond))
		for _, st := range res.Steps {
			fmt.Fprintf(out, "  %-13s %-6s %s\n", st.Name, st.Kind, st.Status)
		}
	}
	fmt.Fprintf(out, "notifications: %q\n", s.Notifications.Items())
	return results, s, nil
}

// services are the fake external systems the branches call.
type services struct {
	Tickets       *queue // the ticketing tool
	Audits        *queue // the risk audit queue
	Notifications *queue // the notifier
}

// queue is a fake external system: it accepts items, once per idempotency
// key, and hands out IDs.
type queue struct {
	prefix string
	mu     sync.Mutex
	ids    map[string]string // by key
	items  []string
}

// Add accepts item and returns its ID; a repeated key returns the first ID.
func (q *queue) Add(ctx context.Context, key, item string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if id, ok := q.ids[key]; ok {
		return id, nil
	}
	if q.ids == nil {
		q.ids = make(map[string]string)
	}
	q.items = append(q.items, item)
	id := fmt.Sprintf("%s-%d", q.prefix, len(q.items))
	q.ids[key] = id
	return id, nil
}

// Items returns the items accepted so far.
func (q *queue) Items() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.items...)
}
