package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/triggertest"
)

// syncBuffer is an io.Writer safe for the hooks' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOrdersFromKafka(t *testing.T) {
	for _, handoff := range []bool{false, true} {
		t.Run(map[bool]string{false: "inline", true: "handoff"}[handoff], func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "orders.db")
			ctx, cancel := context.WithCancel(context.Background())
			var out syncBuffer
			ready := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				done <- consume(ctx, config{port: 0, db: db, sample: true, handoff: handoff}, &out, ready)
			}()
			addr := <-ready
			// The seed's producer sends two more orders.
			if err := produce(ctx, []string{addr}, "ORD-002", "ORD-003"); err != nil {
				t.Fatal(err)
			}
			store := triggertest.OpenSQLite(t, db)
			triggertest.WaitRuns(t, store, "order-flow", 3, time.Minute)
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("consume: %v", err)
			}
			run, err := store.Get(context.Background(), "order-workers/order.created/0/0")
			if err != nil || run.Status != flux.StatusCompleted {
				t.Fatalf("the sample order's run: %v, %v", run, err)
			}
			if !strings.Contains(string(run.Input), `"orderId":"ORD-001"`) || !strings.Contains(string(run.Data), `"notified":true`) {
				t.Errorf("run input %s data %s; want ORD-001, notified", run.Input, run.Data)
			}
			for _, want := range []string{"in-process Kafka broker on " + addr, "run order-workers/order.created/0/2 completed"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestSeedKafkajsProducer sends the seed's own kafkajs producer's record
// (testdata/producer.mjs) to the example's in-process broker: a foreign
// Kafka client, speaking the real protocol.
func TestSeedKafkajsProducer(t *testing.T) {
	node, err := exec.LookPath("node")
	if _, serr := os.Stat("testdata/node_modules/kafkajs"); err != nil || serr != nil {
		msg := "node or testdata/node_modules/kafkajs is missing: run `npm ci --prefix examples/kafka-orders/testdata` to test the seed's kafkajs producer"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	db := filepath.Join(t.TempDir(), "orders.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- consume(ctx, config{port: 0, db: db}, &out, ready) }()
	addr := <-ready
	cmd := exec.CommandContext(ctx, node, "producer.mjs")
	cmd.Dir = "testdata"
	cmd.Env = append(os.Environ(), "BROKERS="+addr)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kafkajs producer: %v\n%s", err, b)
	}
	store := triggertest.OpenSQLite(t, db)
	triggertest.WaitRuns(t, store, "order-flow", 1, time.Minute)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("consume: %v", err)
	}
	run, err := store.Get(context.Background(), "order-workers/order.created/0/0")
	if err != nil || !strings.Contains(string(run.Input), `"orderId":"ORD-001"`) {
		t.Fatalf("the kafkajs record's run: %v, %v; want ORD-001", run, err)
	}
}
