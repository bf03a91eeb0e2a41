package flux_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// takenStore refuses every checkpoint once taken is set, as a store does
// when another owner took the run's lease.
type takenStore struct {
	flux.Storage
	taken atomic.Bool
}

func (s *takenStore) Checkpoint(ctx context.Context, p driver.CheckpointParams) (driver.Written, error) {
	if s.taken.Load() {
		return driver.Written{}, driver.ErrLeaseLost
	}
	return s.Storage.Checkpoint(ctx, p)
}

// TestRefusedCheckpointTellsTheLeaseLoss: a run whose checkpoint is refused
// because another owner took it stops with ErrLeaseLost and says so with a
// workflow:interrupted event, as the heartbeat does (metrics count lease
// losses from it).
func TestRefusedCheckpointTellsTheLeaseLoss(t *testing.T) {
	store := &takenStore{Storage: flux.NewMemoryStorage()}
	trace := &traceRecorder{}
	e := newEngine(t, flux.Config{Storage: store, Trace: trace})
	w := flux.New[string, struct{}]("taken").
		Step("a", func(*flux.Ctx[string, struct{}]) error { store.taken.Store(true); return nil }).
		Commit("b", func(*flux.Ctx[string, struct{}]) error {
			t.Error("the commit ran after the lease was lost")
			return nil
		})
	_, err := flux.Execute(context.Background(), e, w, "x", flux.RunID("r1"))
	if !errors.Is(err, flux.ErrLeaseLost) {
		t.Fatalf("Execute: %v, want ErrLeaseLost", err)
	}
	var interrupted []flux.TraceEvent
	for _, ev := range trace.forRun("r1") {
		if ev.Type == flux.EventWorkflowInterrupted {
			interrupted = append(interrupted, ev)
		}
	}
	if len(interrupted) != 1 || !strings.Contains(interrupted[0].Err, flux.ErrLeaseLost.Error()) {
		t.Fatalf("workflow:interrupted events %+v, want one naming the lost lease", interrupted)
	}
}
