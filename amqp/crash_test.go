package amqp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/amqp"
	"github.com/flux-go/flux/internal/triggertest"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/trigger"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// childArgs is what the child process of TestKilledAfterStoreBeforeAck
// does.
type childArgs struct {
	DB    string `json:"db"`
	Queue string `json:"queue"`
}

// child consumes with a store that stalls after storing its first run,
// until the parent kills it.
func child(arg string) int {
	var a childArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	store, err := sqlite.Open(a.DB)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	e, err := flux.NewEngine(flux.Config{Storage: &triggertest.Stall{Storage: store, Out: os.Stdout}, Workers: -1, Logger: triggertest.Quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	w, _ := triggertest.Flow()
	tr, err := trigger.New(e, w, trigger.Options[triggertest.Order]{Logger: triggertest.Quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	conn, err := amqp091.Dial(os.Getenv("FLUX_AMQP_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	err = amqp.Run(context.Background(), conn, amqp.Config{Queue: a.Queue, Concurrency: 1, Logger: triggertest.Quiet}, tr)
	fmt.Fprintln(os.Stderr, "child: Run returned", err)
	return 1
}

func TestKilledAfterStoreBeforeAck(t *testing.T) {
	t.Parallel()
	const n = 50
	queue, dead := declare(t)
	publish(t, queue, orders(0, n)...)
	path := triggertest.SQLitePath(t)
	// The database exists, with its schema, before the child opens it.
	triggertest.OpenSQLite(t, path)
	arg, _ := json.Marshal(childArgs{DB: path, Queue: queue})
	ch := triggertest.StartChild(t, "TestKilledAfterStoreBeforeAck", string(arg))
	stalled := ch.Line(t, "stored ", time.Minute)
	ch.Kill() // kill -9: the run is stored, its message unacknowledged

	store := triggertest.OpenSQLite(t, path)
	if run, err := store.Get(context.Background(), stalled); err != nil || run.Status != flux.StatusPending {
		t.Fatalf("the killed consumer's run %s: %v, %v; want it stored, pending", stalled, run, err)
	}
	// RabbitMQ requeues the dead connection's deliveries.
	waitFor(t, "every message back in the queue", time.Minute, func() bool { return ready(t, queue) == n })
	counted := &triggertest.Creates{Storage: store}
	w, commits := triggertest.Flow()
	e := triggertest.Engine(t, counted, 4)
	d := new(triggertest.Deliveries)
	stop := consume(t, newTrigger(t, e, w, d), amqp.Config{Queue: queue})
	triggertest.WaitRuns(t, store, "order-flow", n, 2*time.Minute)
	waitFor(t, "every message acknowledged", time.Minute, func() bool { return ready(t, queue) == 0 && d.N.Load() == n })
	stop()
	if d.Count(stalled) != 1 {
		t.Fatalf("the stalled message %s was delivered %d times to the new consumer, want 1 (delivered again)", stalled, d.Count(stalled))
	}
	if created, existed := counted.Created.Load(), counted.Existed.Load(); created != n-1 || existed != 1 {
		t.Fatalf("the new consumer created %d runs and found %d stored, want %d and 1", created, existed, n-1)
	}
	if runs, twice := commits.Runs(); runs != n || twice != 0 {
		t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, n)
	}
	if dn := ready(t, dead); dn != 0 {
		t.Fatalf("%d messages dead-lettered, want 0", dn)
	}
}
