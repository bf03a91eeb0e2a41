package viewer

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/flux-go/flux"
)

// The seed's workflows, run by a real engine in the tests.

type routeIn struct {
	Payload struct {
		Kind string `json:"kind"`
	} `json:"payload"`
}

type routeData struct {
	Route    string `json:"route"`
	Result   string `json:"result,omitempty"`
	TicketID string `json:"ticketId,omitempty"`
	AuditID  string `json:"auditId,omitempty"`
}

func onRoute(r string) flux.StepOption {
	return flux.When(func(c *flux.Ctx[routeIn, routeData]) bool { return c.Data.Route == r })
}

// routingFlow is the seed's branching example.
var routingFlow = flux.New[routeIn, routeData]("event-routing").
	Step("classify", func(c *flux.Ctx[routeIn, routeData]) error {
		c.Data.Route = c.Input.Payload.Kind
		return nil
	}).
	Step("auto-handle", func(c *flux.Ctx[routeIn, routeData]) error {
		c.Data.Result = "auto-ok"
		return nil
	}, onRoute("auto")).
	Step("manual-review", func(c *flux.Ctx[routeIn, routeData]) error {
		c.Data.TicketID = "T-1"
		return nil
	}, onRoute("manual")).
	Step("risk-audit", func(c *flux.Ctx[routeIn, routeData]) error {
		c.Data.AuditID = "A-1"
		return nil
	}, onRoute("risk")).
	Commit("notify", func(c *flux.Ctx[routeIn, routeData]) error { return nil })

type orderIn struct {
	OrderID string `json:"orderId"`
}

type orderData struct {
	PaymentID string `json:"paymentId,omitempty"`
}

// orderFlow's charge step fails its first two attempts.
var orderFlow = flux.New[orderIn, orderData]("order-fulfillment").
	Step("validate", func(c *flux.Ctx[orderIn, orderData]) error { return nil }).
	Step("charge", func(c *flux.Ctx[orderIn, orderData]) error {
		if c.Attempt() < 3 {
			return errors.New("payment gateway timeout")
		}
		c.Data.PaymentID = "P-9"
		return nil
	}, flux.Retries(3), flux.NoBackoff()).
	Commit("reserve", func(c *flux.Ctx[orderIn, orderData]) error { return nil })

const hostile = `<img src=x onerror=alert(1)>`

type hostileData struct {
	Note string `json:"note"`
}

// hostileFlow puts markup everywhere a trace carries a string.
var hostileFlow = flux.New[map[string]string, hostileData](hostile).
	Step(hostile, func(c *flux.Ctx[map[string]string, hostileData]) error {
		c.Data.Note = `<script>alert("data")</script>`
		return nil
	}).
	Step("fail "+hostile, func(c *flux.Ctx[map[string]string, hostileData]) error {
		return flux.Permanent(errors.New(`<b onmouseover=alert(2)>boom</b>`))
	})

func newEngine(t testing.TB, cfg flux.Config) *flux.Engine {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e, err := flux.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// runSamples runs the routing example down each route, the order with its
// retried charge, and the hostile workflow, and returns their run IDs.
func runSamples(t testing.TB, e *flux.Engine) map[string]string {
	t.Helper()
	ctx := context.Background()
	ids := map[string]string{}
	for _, kind := range []string{"auto", "manual", "risk"} {
		var in routeIn
		in.Payload.Kind = kind
		res, err := flux.Execute(ctx, e, routingFlow, in)
		if err != nil {
			t.Fatalf("routing %s: %v", kind, err)
		}
		ids["route-"+kind] = res.ID
	}
	res, err := flux.Execute(ctx, e, orderFlow, orderIn{OrderID: "ORD-7"})
	if err != nil {
		t.Fatalf("order: %v", err)
	}
	ids["order"] = res.ID
	hres, err := flux.Execute(ctx, e, hostileFlow, map[string]string{"html": hostile})
	if err == nil || hres == nil {
		t.Fatalf("the hostile workflow should fail, got %v", err)
	}
	ids["hostile"] = hres.ID
	return ids
}
