package jsstore

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/natstest"
	"github.com/nats-io/nats.go"
)

// A viewer polls Changes every second. On a store with nothing new, a call
// must not create a consumer (each creation and deletion is an operation of
// the cluster's meta leader); a call with something new still reads it.
func TestChangesOfAnIdleStoreCreatesNoConsumer(t *testing.T) {
	nc, err := nats.Connect(natstest.Single(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s, err := Open(t.Context(), nc, Prefix("idle"), Partitions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	create := func(id string) {
		t.Helper()
		now := time.Now()
		r := &driver.Run{ID: id, Workflow: "w", Fingerprint: "fp", Status: driver.StatusPending,
			Input: json.RawMessage(`{}`), Data: json.RawMessage(`{}`),
			Steps:     []driver.StepState{{Name: "only", Kind: driver.KindStep, Status: driver.StatusPending}},
			CreatedAt: now, UpdatedAt: now}
		if _, err := s.Create(t.Context(), driver.CreateParams{Run: r}); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
	}
	create("before")
	first, err := s.Changes(t.Context(), driver.ChangesParams{})
	if err != nil {
		t.Fatal(err)
	}

	var created atomic.Int64
	seen := make(chan struct{}, 16)
	sub, err := nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED.>", func(*nats.Msg) {
		created.Add(1)
		seen <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	for range 5 {
		page, err := s.Changes(t.Context(), driver.ChangesParams{After: first.Position})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Runs) != 0 || page.Position != first.Position {
			t.Fatalf("Changes of an idle store: %d runs, position %q (was %q)", len(page.Runs), page.Position, first.Position)
		}
	}

	// Something new: its partition is read, through one consumer.
	create("after")
	page, err := s.Changes(t.Context(), driver.ChangesParams{After: first.Position})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != 1 || page.Runs[0].ID != "after" {
		t.Fatalf("Changes after a new run: %d runs %v, want the run 'after'", len(page.Runs), page.Runs)
	}
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no consumer-created advisory for the read of the new run: the test cannot see consumers")
	}
	// The server sends its advisories in order: any of the idle calls
	// would have come before this one.
	if n := created.Load(); n != 1 {
		t.Fatalf("%d consumers created, want 1 (to read the new run): the idle calls created some", n)
	}
}
