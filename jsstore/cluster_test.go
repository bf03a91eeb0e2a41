package jsstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/natstest"
	"github.com/flux-go/flux/jsstore"
	"github.com/flux-go/flux/storagetest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// cluster starts a three-node cluster, stopped when t ends, and returns
// its nodes' client URLs.
func cluster(t testing.TB) []string {
	c := natstest.NewCluster(t, 3)
	return []string{c.URL(0), c.URL(1), c.URL(2)}
}

// clusterHarness is harness on a three-node cluster with three replicas:
// each store connects to the next node in turn.
func clusterHarness(t *testing.T, opts ...jsstore.Option) func(t *testing.T) storagetest.Harness {
	us := cluster(t)
	var mu sync.Mutex
	n := 0
	return func(t *testing.T) storagetest.Harness {
		mu.Lock()
		u := us[n%len(us)]
		n++
		mu.Unlock()
		return harness(u, append([]jsstore.Option{jsstore.Replicas(3)}, opts...)...)(t)
	}
}

func TestClusterConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the three-node cluster is skipped in -short mode")
	}
	storagetest.Run(t, clusterHarness(t))
}

func TestClusterEngineConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the three-node cluster is skipped in -short mode")
	}
	storagetest.RunEngine(t, clusterHarness(t))
}

// TestClusterDrain starts pending runs, then three engines, each connected
// to another node of a three-node cluster with three replicas, execute
// them: each exactly once. FLUX_JS_DRAIN sets how many (default 2000).
func TestClusterDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("the three-node cluster is skipped in -short mode")
	}
	n := 2000
	if v := os.Getenv("FLUX_JS_DRAIN"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("FLUX_JS_DRAIN=%q: %v", v, err)
		}
	}
	us := cluster(t)
	drain(t, us, n, jsstore.Replicas(3), jsstore.Partitions(3))
}

// TestDrain is TestClusterDrain on one server.
func TestDrain(t *testing.T) {
	u := embedded(t)
	drain(t, []string{u, u, u}, 2000)
}

type drainIn struct {
	N int `json:"n"`
}

type drainData struct {
	Done bool `json:"done"`
}

func drain(t *testing.T, us []string, n int, opts ...jsstore.Option) {
	opts = append([]jsstore.Option{jsstore.Prefix(fmt.Sprintf("drain%d", prefixes.Add(1)))}, opts...)
	open := func(u string) *jsstore.Store {
		s, err := jsstore.Open(t.Context(), connect(t, u), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	var mu sync.Mutex
	calls := make(map[string]int)
	w := flux.New[drainIn, drainData]("drain").Step("once", func(x *flux.Ctx[drainIn, drainData]) error {
		mu.Lock()
		calls[x.RunID()]++
		mu.Unlock()
		x.Data.Done = true
		return nil
	})
	newEngine := func(s *jsstore.Store, id string, workers int) *flux.Engine {
		e, err := flux.NewEngine(flux.Config{Storage: s, ID: id, Logger: slog.New(slog.DiscardHandler),
			LeaseDuration: 30 * time.Second, RecoveryInterval: 250 * time.Millisecond, Workers: workers, PruneInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		return e
	}
	producer := newEngine(open(us[0]), "producer", -1)
	start := time.Now()
	var ids sync.Map
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	errs := make(chan error, 1)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id, err := flux.Start(t.Context(), producer, w, drainIn{N: i})
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			ids.Store(id, true)
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("Start: %v", err)
	default:
	}
	started := time.Since(start)
	start = time.Now()
	for i, u := range us {
		e := newEngine(open(u), fmt.Sprintf("worker-%d", i), 32)
		if err := e.Register(w); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Duration(n/20+60) * time.Second)
	for {
		mu.Lock()
		done := len(calls)
		mu.Unlock()
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d runs executed after %v", done, n, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond) // polling the handler's count, with a deadline
	}
	drained := time.Since(start)
	// Every run completed, and no handler ran twice, even late.
	ctx := t.Context()
	var all []string
	ids.Range(func(k, _ any) bool {
		all = append(all, k.(string))
		return true
	})
	if len(all) != n {
		t.Fatalf("%d run IDs for %d Starts", len(all), n)
	}
	bad := make(chan string, n)
	for chunk := range slices.Chunk(all, (n+15)/16) {
		wg.Go(func() {
			for _, id := range chunk {
				for {
					r, err := producer.Get(ctx, id)
					if err == nil && r.Status == flux.StatusCompleted {
						break
					}
					if time.Now().After(deadline) {
						bad <- fmt.Sprintf("run %s: %v, %v", id, r, err)
						break
					}
					time.Sleep(5 * time.Millisecond) // polling the run, with a deadline
				}
			}
		})
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Error(b)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, c := range calls {
		if c != 1 {
			t.Errorf("run %s executed %d times", id, c)
		}
	}
	t.Logf("%d runs started in %v (%.0f/s), drained by 3 engines in %v (%.0f runs/s)",
		n, started, float64(n)/started.Seconds(), drained, float64(n)/drained.Seconds())
}

// The store's writes are compare-and-set on a key's revision, and two
// engines may write one run at once (a lease taken over). The store relies
// on the servers refusing all but one of concurrent writes that expect
// the same revision, even when they arrive through different nodes and
// are proposed to the stream's Raft group before any of them is applied.
func TestClusterCompareAndSetUnderConcurrentWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("the three-node cluster is skipped in -short mode")
	}
	us := cluster(t)
	ctx := context.Background()
	var kvs []jetstream.KeyValue
	for i, u := range us {
		nc, err := nats.Connect(u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		var kv jetstream.KeyValue
		if i == 0 {
			kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "cas", Replicas: 3})
		} else {
			kv, err = js.KeyValue(ctx, "cas")
		}
		if err != nil {
			t.Fatal(err)
		}
		kvs = append(kvs, kv)
	}
	rev, err := kvs[0].Put(ctx, "k", []byte("start"))
	if err != nil {
		t.Fatal(err)
	}
	const rounds, writers = 200, 9
	for round := range rounds {
		var wg sync.WaitGroup
		won := make([]uint64, writers)
		var unexpected error
		var mu sync.Mutex
		for w := range writers {
			wg.Go(func() {
				r, err := kvs[w%len(kvs)].Update(ctx, "k", []byte(fmt.Sprintf("%d/%d", round, w)), rev)
				switch {
				case err == nil:
					won[w] = r
				case !errors.Is(err, jetstream.ErrKeyRevisionMismatch):
					mu.Lock()
					unexpected = err
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if unexpected != nil {
			t.Fatalf("round %d: %v", round, unexpected)
		}
		winners := 0
		for w, r := range won {
			if r != 0 {
				winners++
				rev = r
				e, err := kvs[(w+1)%len(kvs)].Get(ctx, "k")
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("%d/%d", round, w); string(e.Value()) != want || e.Revision() != r {
					t.Fatalf("round %d: the key holds %q at revision %d, want the winner's %q at %d", round, e.Value(), e.Revision(), want, r)
				}
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d of %d writes expecting one revision succeeded, want exactly 1", round, winners, writers)
		}
	}
}
