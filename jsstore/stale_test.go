package jsstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/jsstore"
)

// A read that finds the run older than the Store wrote it (a leader newly
// elected, not caught up) is not believed: the write waits for the leader
// to catch up instead of refusing the run's owner with a conflict.
func TestLaggingLeaderIsNotBelieved(t *testing.T) {
	s := harness(embedded(t))(t).Store.(*jsstore.Store)
	ctx := context.Background()
	now := time.Now()
	run := &flux.Run{ID: "lag-1", Workflow: "w", Status: flux.StatusRunning, Owner: "e#1", Version: 1,
		Input: []byte(`{}`), Data: []byte(`{}`), CreatedAt: now, UpdatedAt: now,
		Steps: []flux.StepState{{Name: "a", Kind: flux.KindStep, Status: flux.StatusPending}}}
	if _, err := s.Create(ctx, driver.CreateParams{Run: run, Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	jsstore.PretendWrittenAhead(s, "lag-1", 5)
	h := driver.Header{Status: flux.StatusRunning, Fingerprint: run.Fingerprint, UpdatedAt: time.Now(), Nodes: 1,
		Summary: driver.Summary{Nodes: 1}}
	// Long enough for the first read to answer on a busy machine: the
	// deadline must end while the write waits for the leader.
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := s.Checkpoint(short, driver.CheckpointParams{ID: "lag-1", Owner: "e#1", Version: 1, Header: &h, Lease: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "older than") {
		t.Fatalf("Checkpoint while the leader lags: %v; want it to wait for the leader until the deadline", err)
	}
	if errors.Is(err, driver.ErrConflict) {
		t.Fatalf("a lagging leader was believed: %v", err)
	}
}
