package orderdemo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Inventory is a fake stock service.
type Inventory struct {
	mu           sync.Mutex
	stock        map[string]int
	reservations map[string][]string // by idempotency key
	next         int
}

// NewInventory returns an inventory holding stock, by product ID.
func NewInventory(stock map[string]int) *Inventory {
	inv := &Inventory{stock: maps.Clone(stock), reservations: make(map[string][]string)}
	if inv.stock == nil {
		inv.stock = make(map[string]int)
	}
	return inv
}

// Stock returns how many units of a product are in stock.
func (inv *Inventory) Stock(ctx context.Context, productID string) (int, error) {
	if err := checkCtx(ctx); err != nil {
		return 0, err
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.stock[productID], nil
}

// Reserve takes items out of stock and returns one reservation ID per item.
// A repeated key returns the first reservation and takes nothing more.
func (inv *Inventory) Reserve(ctx context.Context, key string, items []Item) ([]string, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if ids, ok := inv.reservations[key]; ok {
		return slices.Clone(ids), nil
	}
	for _, it := range items {
		if inv.stock[it.ProductID] < it.Qty {
			return nil, fmt.Errorf("inventory: cannot reserve %d of %s: %d left", it.Qty, it.ProductID, inv.stock[it.ProductID])
		}
	}
	ids := make([]string, 0, len(items))
	for _, it := range items {
		inv.stock[it.ProductID] -= it.Qty
		inv.next++
		ids = append(ids, fmt.Sprintf("res_%03d", inv.next))
	}
	inv.reservations[key] = ids
	return slices.Clone(ids), nil
}

// Reservations returns how many distinct reservations were made.
func (inv *Inventory) Reservations() int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return len(inv.reservations)
}

// ErrConnectionReset is the fake gateway's transient failure: the charge was
// accepted but its response was lost on the way back.
var ErrConnectionReset = errors.New("payment gateway: connection reset before the response arrived")

// Gateway is a fake payment gateway that deduplicates charges by
// idempotency key.
type Gateway struct {
	mu       sync.Mutex
	failures int
	calls    int
	charges  map[string]Payment // by idempotency key
}

// NewGateway returns a gateway whose first failures calls accept the charge
// and then fail with ErrConnectionReset.
func NewGateway(failures int) *Gateway {
	return &Gateway{failures: failures, charges: make(map[string]Payment)}
}

// Charge charges amountCents for an order. A repeated key returns the first
// payment instead of charging again.
func (g *Gateway) Charge(ctx context.Context, key, orderID string, amountCents int64) (Payment, error) {
	if err := checkCtx(ctx); err != nil {
		return Payment{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	p, ok := g.charges[key]
	if !ok {
		p = Payment{ID: fmt.Sprintf("pay_%s_%d", orderID, len(g.charges)+1), AmountCents: amountCents}
		g.charges[key] = p
	}
	if g.failures > 0 {
		g.failures--
		return Payment{}, ErrConnectionReset
	}
	return p, nil
}

// Calls returns how many times Charge was called.
func (g *Gateway) Calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

// Charges returns the distinct payments made.
func (g *Gateway) Charges() []Payment {
	g.mu.Lock()
	defer g.mu.Unlock()
	ps := make([]Payment, 0, len(g.charges))
	for _, p := range g.charges {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b Payment) int { return strings.Compare(a.ID, b.ID) })
	return ps
}

// Mail is a message the fake mailer sent.
type Mail struct {
	To, Template, Body string
}

// Mailer is a fake mail service that deduplicates by idempotency key.
type Mailer struct {
	mu   sync.Mutex
	keys map[string]bool
	sent []Mail
}

// NewMailer returns a mailer that has sent nothing.
func NewMailer() *Mailer { return &Mailer{keys: make(map[string]bool)} }

// Send sends a mail, once per key.
func (m *Mailer) Send(ctx context.Context, key, to, template, body string) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	if to == "" {
		return errors.New("mailer: no recipient")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys[key] {
		return nil
	}
	m.keys[key] = true
	m.sent = append(m.sent, Mail{To: to, Template: template, Body: body})
	return nil
}

// Sent returns the mails sent so far, in order.
func (m *Mailer) Sent() []Mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sent)
}
