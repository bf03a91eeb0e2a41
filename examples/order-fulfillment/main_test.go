package main

import (
	"strings"
	"testing"
	"testing/synctest"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/orderdemo"
)

// TestOrderFulfillment runs the example in a synctest bubble, so the backoff
// between charge attempts takes no real time.
func TestOrderFulfillment(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var out strings.Builder
		res, svc, err := run(t.Context(), &out)
		if err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
		if res.Status != flux.StatusCompleted {
			t.Fatalf("status = %s, want completed", res.Status)
		}
		wantAttempts := map[string]int{"validate": 1, "charge": gatewayFailures + 1, "reserve": 1, "notify": 1}
		wantKind := map[string]flux.Kind{"validate": flux.KindStep, "charge": flux.KindStep, "reserve": flux.KindCommit, "notify": flux.KindCommit}
		if len(res.Steps) != len(wantAttempts) {
			t.Fatalf("%d steps, want %d", len(res.Steps), len(wantAttempts))
		}
		for _, s := range res.Steps {
			if s.Status != flux.StatusCompleted || len(s.Attempts) != wantAttempts[s.Name] || s.Kind != wantKind[s.Name] {
				t.Errorf("%s: %s %s after %d attempts, want %s completed after %d", s.Name, s.Kind, s.Status, len(s.Attempts), wantKind[s.Name], wantAttempts[s.Name])
			}
		}
		charge := res.Steps[1]
		for _, a := range charge.Attempts[:gatewayFailures] {
			if !strings.Contains(a.Error, orderdemo.ErrConnectionReset.Error()) {
				t.Errorf("charge attempt %d error = %q, want the gateway's connection reset", a.Number, a.Error)
			}
		}

		order := orderdemo.SampleOrder()
		var total int64
		for _, it := range order.Items {
			total += int64(it.Qty) * it.PriceCents
		}
		if p := res.Data.Payment; p == nil || p.AmountCents != total {
			t.Errorf("Data.Payment = %+v, want %d cents", p, total)
		}
		if calls, charges := svc.Payments.Calls(), svc.Payments.Charges(); calls != gatewayFailures+1 || len(charges) != 1 {
			t.Errorf("gateway: %d calls and %d charges, want %d calls and 1 charge (the idempotency key dedupes)", calls, len(charges), gatewayFailures+1)
		}
		if got := len(res.Data.ReservationIDs); got != len(order.Items) || svc.Inventory.Reservations() != 1 {
			t.Errorf("reservation IDs %v (%d reservations), want %d IDs in 1 reservation", res.Data.ReservationIDs, svc.Inventory.Reservations(), len(order.Items))
		}
		sent := svc.Mail.Sent()
		if len(sent) != 1 || sent[0].To != order.Email || !strings.Contains(sent[0].Body, res.Data.Payment.ID) {
			t.Errorf("mails = %+v, want one confirmation to %s naming the payment", sent, order.Email)
		}
		if n := strings.Count(out.String(), "charge: attempt"); n != gatewayFailures {
			t.Errorf("output shows %d charge retries, want %d:\n%s", n, gatewayFailures, out.String())
		}
	})
}
