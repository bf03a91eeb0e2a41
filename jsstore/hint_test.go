package jsstore

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/natstest"
	"github.com/nats-io/nats.go"
)

// A claim of a limited run whose hint write failed leaves the hint saying
// "pending, no owner" while the run executes. ClaimExpired must still
// count the run against its key's limit when it finds it taken, and not
// admit the next run of the key (seen once in CI under load as two runs of
// one customer executing at once).
func TestLimitCountsARunWhoseHintWasLeftBehind(t *testing.T) {
	nc, err := nats.Connect(natstest.Single(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s, err := Open(t.Context(), nc, Prefix("hint"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, id := range []string{"first", "second"} {
		r := &driver.Run{ID: id, Workflow: "lim", Fingerprint: "fp", Status: driver.StatusPending,
			Input: json.RawMessage(`{}`), Data: json.RawMessage(`{}`), ConcurrencyKey: "customer",
			Steps:     []driver.StepState{{Name: "only", Kind: driver.KindStep, Status: driver.StatusPending}},
			CreatedAt: base.Add(time.Duration(i) * time.Second), UpdatedAt: base}
		if _, err := s.Create(t.Context(), driver.CreateParams{Run: r}); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
	}
	claim := func(owner string) []string {
		t.Helper()
		c, err := s.ClaimExpired(t.Context(), driver.ClaimExpiredParams{Owner: owner, Workflows: []string{"lim"},
			Lease: time.Hour, Limit: 10, Limits: []driver.Limit{{Workflow: "lim", PerKey: 1}}})
		if err != nil {
			t.Fatalf("ClaimExpired for %s: %v", owner, err)
		}
		var ids []string
		for _, r := range c.Runs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got := claim("engine-a"); len(got) != 1 || got[0] != "first" {
		t.Fatalf("engine-a claimed %v, want [first]", got)
	}
	// The hint of "first" as it was before the claim, as if its rewrite
	// after the claim had failed.
	p := s.part("first")
	stale, _ := json.Marshal(hint{Status: driver.StatusPending, Created: base, Key: "customer"})
	if _, err := p.kv.Put(t.Context(), hintKey("lim", "first"), stale); err != nil {
		t.Fatal(err)
	}
	s.hintRevs.set(p.bucket+"/"+hintKey("lim", "first"), 0, false)
	if got := claim("engine-b"); len(got) != 0 {
		t.Fatalf("engine-b claimed %v while run first of the same customer is engine-a's: want none", got)
	}
	// The stale hint was repaired on the way: it says engine-a holds the run.
	e, err := p.kv.Get(t.Context(), hintKey("lim", "first"))
	if err != nil {
		t.Fatal(err)
	}
	var h hint
	if err := json.Unmarshal(e.Value(), &h); err != nil || h.Owner != "engine-a" {
		t.Fatalf("hint of run first after ClaimExpired: %s (%v), want owner engine-a", e.Value(), err)
	}
}
