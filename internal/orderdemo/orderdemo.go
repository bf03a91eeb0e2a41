// Package orderdemo is the order-fulfillment workflow of the Flux seed, with
// in-memory fakes of the services it calls: an inventory, a payment gateway
// and a mailer. examples/order-fulfillment and `flux demo` both run it.
//
// The workflow is
//
//	validate (step)  check that every item is in stock; out of stock is permanent
//	charge   (step)  charge the order, Retries(3), Timeout(30s)
//	reserve  (commit) reserve the items
//	notify   (commit) mail the order confirmation
//
// Every call that changes something passes the step's IdempotencyKey, and the
// fakes deduplicate on it the way real payment and mail APIs do: the fake
// gateway's transient failure accepts the charge but loses the response, so
// the retry that follows must not charge twice.
package orderdemo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flux-go/flux"
)

// Item is one line of an order.
type Item struct {
	ProductID  string `json:"productId"`
	Qty        int    `json:"qty"`
	PriceCents int64  `json:"priceCents"`
}

// Input is the input of the order-fulfillment workflow.
type Input struct {
	OrderID string `json:"orderId"`
	Email   string `json:"email"`
	Items   []Item `json:"items"`
}

// Payment is a charge accepted by the payment gateway.
type Payment struct {
	ID          string `json:"id"`
	AmountCents int64  `json:"amountCents"`
}

// Data is what the workflow's steps record as they go.
type Data struct {
	Payment        *Payment `json:"payment,omitempty"`
	ReservationIDs []string `json:"reservationIds,omitempty"`
}

// ErrOutOfStock is the cause of a run that failed in validate because an
// item is not in stock. It is permanent: retrying will not restock.
var ErrOutOfStock = errors.New("out of stock")

// Services are the fakes the workflow's steps call.
type Services struct {
	Inventory *Inventory
	Payments  *Gateway
	Mail      *Mailer
}

// NewServices returns fresh fakes: an inventory stocking the products of
// [SampleOrder], and a payment gateway whose first failures calls fail
// transiently.
func NewServices(failures int) *Services {
	return &Services{
		Inventory: NewInventory(map[string]int{"sku-kettle": 5, "sku-mug": 12}),
		Payments:  NewGateway(failures),
		Mail:      NewMailer(),
	}
}

// SampleOrder returns the order the example and the demo place: two mugs and
// a kettle, which NewServices has in stock.
func SampleOrder() Input {
	return Input{
		OrderID: "o_001",
		Email:   "ada@example.com",
		Items: []Item{
			{ProductID: "sku-kettle", Qty: 1, PriceCents: 3900},
			{ProductID: "sku-mug", Qty: 2, PriceCents: 1250},
		},
	}
}

// Workflow returns the order-fulfillment workflow calling the services s.
// charge retries quickly (10ms, doubling to 50ms) so that the example and the
// demo finish in a moment; a real gateway deserves the default backoff.
func Workflow(s *Services) *flux.Workflow[Input, Data] {
	return flux.New[Input, Data]("order-fulfillment").
		Validate(validInput).
		Step("validate", s.validate).
		Step("charge", s.charge,
			flux.Retries(3), flux.Timeout(30*time.Second), flux.Backoff(10*time.Millisecond, 50*time.Millisecond)).
		Commit("reserve", s.reserve).
		Commit("notify", s.notify)
}

// validInput rejects an order that no step could handle, before a run exists.
func validInput(in Input) error {
	if in.OrderID == "" {
		return errors.New("orderId is empty")
	}
	if len(in.Items) == 0 {
		return fmt.Errorf("order %s has no items", in.OrderID)
	}
	for _, it := range in.Items {
		if it.Qty <= 0 || it.PriceCents < 0 {
			return fmt.Errorf("order %s: item %s has quantity %d and price %d; want a positive quantity and a price of 0 or more",
				in.OrderID, it.ProductID, it.Qty, it.PriceCents)
		}
	}
	return nil
}

func (s *Services) validate(c *flux.Ctx[Input, Data]) error {
	for _, it := range c.Input.Items {
		stock, err := s.Inventory.Stock(c, it.ProductID)
		if err != nil {
			return err
		}
		if stock < it.Qty {
			return flux.Permanent(fmt.Errorf("%w: %s (want %d, have %d)", ErrOutOfStock, it.ProductID, it.Qty, stock))
		}
	}
	return nil
}

func (s *Services) charge(c *flux.Ctx[Input, Data]) error {
	var total int64
	for _, it := range c.Input.Items {
		total += int64(it.Qty) * it.PriceCents
	}
	p, err := s.Payments.Charge(c, c.IdempotencyKey(), c.Input.OrderID, total)
	if err != nil {
		return err // transient: the engine retries with the same key
	}
	c.Data.Payment = &p
	return nil
}

func (s *Services) reserve(c *flux.Ctx[Input, Data]) error {
	ids, err := s.Inventory.Reserve(c, c.IdempotencyKey(), c.Input.Items)
	if err != nil {
		return err
	}
	c.Data.ReservationIDs = ids
	return nil
}

func (s *Services) notify(c *flux.Ctx[Input, Data]) error {
	body := fmt.Sprintf("Order %s is confirmed: payment %s, reservations %v.",
		c.Input.OrderID, c.Data.Payment.ID, c.Data.ReservationIDs)
	return s.Mail.Send(c, c.IdempotencyKey(), c.Input.Email, "order-confirmed", body)
}

// checkCtx fails a fake call whose caller gave up, as a network call would.
func checkCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("request abandoned: %w", context.Cause(ctx))
	}
	return nil
}
