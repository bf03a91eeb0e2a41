package flux_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// gatedStore lets a test hold the heartbeat's Extend and a Get of one run
// where it wants them.
type gatedStore struct {
	*flux.MemoryStorage
	mu           sync.Mutex
	holdExtendOf string        // an Extend naming this run waits for extendGo
	extendHeld   chan struct{} // closed when such an Extend waits
	extendGo     chan struct{}
	extends      chan struct{} // one per Extend after the held one
	holdGetOf    string        // a Get of this run waits for getGo or its context
	getHeld      chan struct{}
	getGo        chan struct{}
}

func (s *gatedStore) Extend(ctx context.Context, p driver.ExtendParams) ([]string, error) {
	s.mu.Lock()
	hold := s.holdExtendOf != "" && slices.Contains(p.IDs, s.holdExtendOf)
	if hold {
		s.holdExtendOf = ""
	}
	s.mu.Unlock()
	if hold {
		close(s.extendHeld)
		<-s.extendGo
	} else {
		select {
		case s.extends <- struct{}{}:
		default:
		}
	}
	return s.MemoryStorage.Extend(ctx, p)
}

func (s *gatedStore) Get(ctx context.Context, id string) (*flux.Run, error) {
	s.mu.Lock()
	hold := s.holdGetOf == id
	if hold {
		s.holdGetOf = ""
	}
	s.mu.Unlock()
	if hold {
		close(s.getHeld)
		select {
		case <-s.getGo:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	return s.MemoryStorage.Get(ctx, id)
}

// TestHeartbeatSparesANewStartOfTheSameRun: the heartbeat renews the
// leases of the runs executing when it looked; a run that ended meanwhile
// is reported lost, and a new start of that run (a duplicate Execute)
// must not be cancelled for it.
func TestHeartbeatSparesANewStartOfTheSameRun(t *testing.T) {
	ctx := context.Background()
	s := &gatedStore{MemoryStorage: flux.NewMemoryStorage(), extendHeld: make(chan struct{}), extendGo: make(chan struct{}),
		extends: make(chan struct{}, 1), getHeld: make(chan struct{}), getGo: make(chan struct{})}
	e, err := flux.NewEngine(flux.Config{Storage: s, Logger: quiet, LeaseDuration: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	release := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	started := make(chan string, 2)
	w := flux.New[string, struct{}]("held").Step("wait", func(c *flux.Ctx[string, struct{}]) error {
		if ch := release[c.Input]; ch != nil && c.Attempt() == 1 {
			started <- c.Input
			<-ch
		}
		return nil
	})
	// b keeps the heartbeat extending; a is the run it loses track of.
	bDone := make(chan error, 1)
	go func() { _, err := flux.Execute(ctx, e, w, "b", flux.RunID("b")); bDone <- err }()
	<-started
	s.mu.Lock()
	s.holdExtendOf = "a"
	s.mu.Unlock()
	aDone := make(chan error, 1)
	go func() { _, err := flux.Execute(ctx, e, w, "a", flux.RunID("a")); aDone <- err }()
	<-started
	<-s.extendHeld // the heartbeat took a's lease to renew, and waits
	close(release["a"])
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	// A new start of a, held in its first read, while the heartbeat learns
	// that a's lease is gone.
	s.mu.Lock()
	s.holdGetOf = "a"
	s.mu.Unlock()
	dupDone := make(chan error, 1)
	go func() { _, err := flux.Execute(ctx, e, w, "a", flux.RunID("a")); dupDone <- err }()
	<-s.getHeld
	select { // forget the Extends before the held one
	case <-s.extends:
	default:
	}
	close(s.extendGo)
	<-s.extends // the next heartbeat: the one before has dealt with what it lost
	close(s.getGo)
	if err := <-dupDone; err != nil {
		t.Fatalf("a duplicate start while the heartbeat found the run's lease gone: %v", err)
	}
	close(release["b"])
	if err := <-bDone; err != nil {
		t.Fatal(err)
	}
}
