package orderdemo

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/flux-go/flux"
)

func newEngine(t *testing.T) *flux.Engine {
	t.Helper()
	e, err := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestOutOfStock checks that validate fails at once, without retries, and
// that nothing is charged, reserved or mailed.
func TestOutOfStock(t *testing.T) {
	t.Parallel()
	svc := NewServices(0)
	in := SampleOrder()
	in.Items[0].Qty = 99
	res, err := flux.Execute(t.Context(), newEngine(t), Workflow(svc), in)
	if !errors.Is(err, ErrOutOfStock) || !flux.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent ErrOutOfStock", err)
	}
	if v := res.Steps[0]; v.Status != flux.StatusFailed || len(v.Attempts) != 1 {
		t.Errorf("validate is %s after %d attempts, want failed after 1", v.Status, len(v.Attempts))
	}
	if svc.Payments.Calls() != 0 || svc.Inventory.Reservations() != 0 || len(svc.Mail.Sent()) != 0 {
		t.Errorf("side effects after a failed validate: %d charges, %d reservations, %d mails",
			svc.Payments.Calls(), svc.Inventory.Reservations(), len(svc.Mail.Sent()))
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	for name, in := range map[string]Input{
		"no order ID": {Items: SampleOrder().Items},
		"no items":    {OrderID: "o_1"},
		"zero qty":    {OrderID: "o_1", Items: []Item{{ProductID: "sku-mug"}}},
	} {
		if _, err := flux.Execute(t.Context(), e, Workflow(NewServices(0)), in); !errors.Is(err, flux.ErrInvalidInput) {
			t.Errorf("%s: err = %v, want flux.ErrInvalidInput", name, err)
		}
	}
	page, err := e.List(t.Context(), flux.Filter{})
	if err != nil || len(page.Runs) != 0 {
		t.Errorf("stored %d runs (err %v), want none for invalid input", len(page.Runs), err)
	}
}

// TestFakesDeduplicate checks the fakes' idempotency: a repeated key has the
// effect of the first call.
func TestFakesDeduplicate(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g := NewGateway(1)
	if _, err := g.Charge(ctx, "k", "o_1", 100); !errors.Is(err, ErrConnectionReset) {
		t.Fatalf("first charge: err = %v, want ErrConnectionReset", err)
	}
	p1, err := g.Charge(ctx, "k", "o_1", 100)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := g.Charge(ctx, "k", "o_1", 100)
	p3, _ := g.Charge(ctx, "other", "o_1", 100)
	if p1 != p2 || p3 == p1 || len(g.Charges()) != 2 || g.Calls() != 4 {
		t.Errorf("payments %v %v %v, %d charges in %d calls; want the same key to give the same payment", p1, p2, p3, len(g.Charges()), g.Calls())
	}

	inv := NewInventory(map[string]int{"a": 3})
	items := []Item{{ProductID: "a", Qty: 2}}
	r1, err := inv.Reserve(ctx, "k", items)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := inv.Reserve(ctx, "k", items)
	if err != nil || r1[0] != r2[0] {
		t.Errorf("repeated reserve = %v, %v; want %v", r2, err, r1)
	}
	if left, _ := inv.Stock(ctx, "a"); left != 1 {
		t.Errorf("stock after a repeated reserve = %d, want 1", left)
	}
	if _, err := inv.Reserve(ctx, "k2", items); err == nil {
		t.Error("reserving more than the stock succeeded")
	}

	m := NewMailer()
	for range 2 {
		if err := m.Send(ctx, "k", "a@example.com", "t", "b"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.Sent()); n != 1 {
		t.Errorf("%d mails for one key, want 1", n)
	}
}
