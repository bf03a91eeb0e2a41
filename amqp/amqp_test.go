package amqp_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/amqp"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/triggertest"
	"github.com/flux-go/flux/trigger"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

func TestMessageFields(t *testing.T) {
	t.Parallel()
	queue, _ := declare(t)
	publish(t, queue, amqp091.Publishing{
		MessageId: "order-1",
		Headers: amqp091.Table{
			"trace":  "abc",
			"bytes":  []byte("raw"),
			"count":  int32(7),
			"ok":     true,
			"price":  amqp091.Decimal{Scale: 2, Value: -1250},
			"absent": nil,
		},
		Body: triggertest.Payload(1),
	})
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, flux.NewMemoryStorage(), -1)
	seen := make(chan trigger.Message, 1)
	tr, err := trigger.New(e, w, trigger.Options[triggertest.Order]{Logger: triggertest.Quiet,
		RunID: func(m trigger.Message, _ triggertest.Order) string {
			seen <- m
			return m.ID
		}})
	if err != nil {
		t.Fatal(err)
	}
	consume(t, tr, amqp.Config{Queue: queue})
	var m trigger.Message
	select {
	case m = <-seen:
	case <-time.After(time.Minute):
		t.Fatal("no message handed to the trigger within a minute")
	}
	want := map[string]string{"trace": "abc", "bytes": "raw", "count": "7", "ok": "true", "price": "-12.50", "absent": ""}
	if !maps.Equal(m.Headers, want) {
		t.Errorf("headers %v, want %v", m.Headers, want)
	}
	if m.ID != "order-1" || !bytes.Equal(m.Value, triggertest.Payload(1)) {
		t.Errorf("ID %q, value %s; want the message-id and the body", m.ID, m.Value)
	}
	if want := queue + ` delivery 1 (exchange "", key "` + queue + `")`; m.Position != want {
		t.Errorf("position %q, want %q", m.Position, want)
	}
}

func TestRunIDWithoutMessageID(t *testing.T) {
	t.Parallel()
	d := amqp091.Delivery{Exchange: "ex", RoutingKey: "key", Body: []byte("body")}
	id := amqp.RunID(&d)
	// The fields are separated: moving a byte from one to the next changes
	// the ID.
	shifted := amqp.RunID(&amqp091.Delivery{Exchange: "ex", RoutingKey: "keyb", Body: []byte("ody")})
	if !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+64 || id == shifted {
		t.Fatalf("RunID %q (shifted %q), want sha256: and 64 hex digits, distinct", id, shifted)
	}
	if again := amqp.RunID(&d); again != id {
		t.Fatalf("RunID not stable: %q then %q", id, again)
	}
	d.MessageId = "evt-9"
	if got := amqp.RunID(&d); got != "evt-9" {
		t.Fatalf("RunID with a message-id: %q, want evt-9", got)
	}
}

func TestDuplicatesStartOneRun(t *testing.T) {
	t.Parallel()
	queue, dead := declare(t)
	byID := amqp091.Publishing{MessageId: "order-1", Body: triggertest.Payload(1)}
	byBody := amqp091.Publishing{Body: triggertest.Payload(2)} // no message-id
	publish(t, queue, byID, byBody, byID, byBody)

	store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
	w, commits := triggertest.Flow()
	e := triggertest.Engine(t, store, 4)
	d := new(triggertest.Deliveries)
	stop := consume(t, newTrigger(t, e, w, d), amqp.Config{Queue: queue})
	waitFor(t, "4 deliveries", time.Minute, func() bool { return d.N.Load() == 4 })
	triggertest.WaitRuns(t, store, "order-flow", 2, time.Minute)
	stop()

	hashID := amqp.RunID(&amqp091.Delivery{RoutingKey: queue, Body: triggertest.Payload(2)})
	for _, id := range []string{"order-1", hashID} {
		if n := d.Count(id); n != 2 {
			t.Errorf("message %s delivered %d times, want 2", id, n)
		}
		if run, err := e.Get(context.Background(), id); err != nil || run.Status != flux.StatusCompleted {
			t.Errorf("run %s: %v, %v; want it completed", id, run, err)
		}
	}
	if runs, twice := commits.Runs(); runs != 2 || twice != 0 {
		t.Fatalf("%d runs committed, %d twice; want 2 and 0", runs, twice)
	}
	if n, dn := ready(t, queue), ready(t, dead); n != 0 || dn != 0 {
		t.Fatalf("%d messages left in the queue, %d dead-lettered; want all 4 acknowledged", n, dn)
	}
}

// lostReply is storage that goes down as it stores a run: the first
// Create stores the run and reports a failure, as when the reply is lost,
// and every Create after it fails.
type lostReply struct {
	flux.Storage
	calls atomic.Int64
}

func (s *lostReply) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	if s.calls.Add(1) == 1 {
		if _, err := s.Storage.Create(ctx, p); err != nil {
			return driver.Written{}, err
		}
	}
	return driver.Written{}, errDown
}

func TestRedeliveryStartsNoSecondRun(t *testing.T) {
	t.Parallel()
	queue, _ := declare(t)
	publish(t, queue, orders(7, 1)...)
	store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))

	// A stores the run but does not learn so, and holds the message while
	// storage is down; stopped, Run requeues it (Nack).
	lost := &lostReply{Storage: store}
	wA, _ := triggertest.Flow()
	stopA := consume(t, newTrigger(t, triggertest.Engine(t, lost, -1), wA, nil), amqp.Config{Queue: queue})
	waitFor(t, "A retrying after storing the run", time.Minute, func() bool { return lost.calls.Load() >= 3 })
	stopA()
	if run, err := store.Get(context.Background(), "m-7"); err != nil || run.Status != flux.StatusPending {
		t.Fatalf("run m-7: %v, %v; want it stored by A, pending", run, err)
	}
	if n := ready(t, queue); n != 1 {
		t.Fatalf("%d messages ready after A stopped, want 1: the message requeued", n)
	}

	// B gets the message again: the run is there, nothing starts twice.
	counted := &triggertest.Creates{Storage: store}
	w, commits := triggertest.Flow()
	e := triggertest.Engine(t, counted, 2)
	d := new(triggertest.Deliveries)
	stopB := consume(t, newTrigger(t, e, w, d), amqp.Config{Queue: queue})
	triggertest.WaitRuns(t, store, "order-flow", 1, time.Minute)
	waitFor(t, "the redelivery acknowledged", time.Minute, func() bool { return ready(t, queue) == 0 && d.Count("m-7") == 1 })
	stopB()
	if counted.Created.Load() != 0 || counted.Existed.Load() != 1 {
		t.Fatalf("B created %d runs and found %d stored, want 0 and 1", counted.Created.Load(), counted.Existed.Load())
	}
	if runs, twice := commits.Runs(); runs != 1 || twice != 0 {
		t.Fatalf("%d runs committed, %d twice; want 1 and 0", runs, twice)
	}
	if n := ready(t, queue); n != 0 {
		t.Fatalf("%d messages left after the redelivery, want 0", n)
	}
}

func TestPoisonGoesToDeadLetterQueue(t *testing.T) {
	t.Parallel()
	queue, dead := declare(t)
	msgs := orders(0, 10)
	msgs[4].Body = []byte(`{"orderId":`)    // does not decode
	msgs[6].Body = []byte(`{"orderId":""}`) // refused by Validate
	publish(t, queue, msgs...)
	store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, store, 4)
	stop := consume(t, newTrigger(t, e, w, nil), amqp.Config{Queue: queue, Concurrency: 2})
	triggertest.WaitRuns(t, store, "order-flow", 8, time.Minute)

	var got []amqp091.Delivery
	deadline := time.Now().Add(time.Minute)
	broker(t, func(ch *amqp091.Channel) error {
		for len(got) < 2 && time.Now().Before(deadline) {
			d, ok, err := ch.Get(dead, true)
			if err != nil {
				return err
			}
			if !ok {
				time.Sleep(10 * time.Millisecond) // polling with a deadline
				continue
			}
			got = append(got, d)
		}
		return nil
	})
	if len(got) != 2 {
		t.Fatalf("%d messages in the dead-letter queue, want 2", len(got))
	}
	slices.SortFunc(got, func(a, b amqp091.Delivery) int { return strings.Compare(a.MessageId, b.MessageId) })
	for i, k := range []int{4, 6} {
		d := got[i]
		if d.MessageId != msgs[k].MessageId || !bytes.Equal(d.Body, msgs[k].Body) {
			t.Errorf("dead letter %d: %s %q, want message %d (%s %q)", i, d.MessageId, d.Body, k, msgs[k].MessageId, msgs[k].Body)
		}
		deaths, _ := d.Headers["x-death"].([]any)
		if len(deaths) != 1 {
			t.Errorf("dead letter %d: x-death %v, want one death", i, d.Headers["x-death"])
			continue
		}
		death, _ := deaths[0].(amqp091.Table)
		if death["queue"] != queue || death["reason"] != "rejected" {
			t.Errorf("dead letter %d: x-death %v, want queue %s, reason rejected", i, death, queue)
		}
	}
	for i, m := range msgs {
		if i == 4 || i == 6 {
			continue
		}
		if run, err := e.Get(context.Background(), m.MessageId); err != nil || run.Status != flux.StatusCompleted {
			t.Errorf("message %d: %v, %v; want a completed run", i, run, err)
		}
	}
	stop()
	if n := ready(t, queue); n != 0 {
		t.Fatalf("%d messages left in the queue, want 0", n)
	}
}

// lockedBuffer is a log sink for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestPoisonWithoutDeadLetterIsLoggedAndDropped(t *testing.T) {
	t.Parallel()
	queue, _ := declare(t)
	plain := queue + ".plain" // no dead-letter exchange
	broker(t, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare(plain, true, false, false, false, nil)
		return err
	})
	t.Cleanup(func() {
		broker(t, func(ch *amqp091.Channel) error { _, err := ch.QueueDelete(plain, false, false, false); return err })
	})
	msgs := orders(0, 3)
	msgs[1].Body = []byte("not json")
	publish(t, plain, msgs...)
	store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, store, 2)
	var logs lockedBuffer
	tr, err := trigger.New(e, w, trigger.Options[triggertest.Order]{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := consume(t, tr, amqp.Config{Queue: plain, Concurrency: 1})
	triggertest.WaitRuns(t, store, "order-flow", 2, time.Minute)
	waitFor(t, "the poison message logged", time.Minute, func() bool { return strings.Contains(logs.String(), "poison") })
	stop()
	if l := logs.String(); !strings.Contains(l, plain+" delivery 2 (exchange") {
		t.Fatalf("log %q does not give the poison message's position, %s delivery 2", l, plain)
	}
	if n := ready(t, plain); n != 0 {
		t.Fatalf("%d messages left in the queue, want 0: the poison is dropped, not requeued", n)
	}
}

func TestTenThousandMessagesTenThousandRuns(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			amqpURL(t)
			var store flux.Storage
			if kind == "sqlite" {
				store = triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
			} else {
				store = triggertest.OpenPostgres(t, triggertest.PostgresSchema(t))
			}
			const n = 10_000
			queue, _ := declare(t)
			publish(t, queue, orders(0, n)...)
			w, commits := triggertest.Flow()
			counted := &triggertest.Creates{Storage: store}
			e := triggertest.Engine(t, counted, 16)
			d := new(triggertest.Deliveries)
			stop := consume(t, newTrigger(t, e, w, d), amqp.Config{Queue: queue})
			// The commit counter first: listing 10,000 runs is slow.
			waitFor(t, "10,000 runs committed", 3*time.Minute, func() bool { runs, _ := commits.Runs(); return runs >= n })
			triggertest.WaitRuns(t, store, "order-flow", n, time.Minute)
			stop()
			if runs, twice := commits.Runs(); runs != n || twice != 0 {
				t.Fatalf("%d runs committed, %d of them twice; want %d and 0", runs, twice, n)
			}
			if created, existed := counted.Created.Load(), counted.Existed.Load(); created != n || existed != 0 {
				t.Fatalf("%d runs created, %d messages found their run stored; want %d and 0", created, existed, n)
			}
			if len(d.Seen()) != n {
				t.Fatalf("%d distinct messages delivered, want %d", len(d.Seen()), n)
			}
			if left := ready(t, queue); left != 0 {
				t.Fatalf("%d messages left in the queue, want 0", left)
			}
		})
	}
}

// flaky is a store whose Create fails while down is set, and comes back
// up by itself after upAfter failures (0: never).
type flaky struct {
	flux.Storage
	down     atomic.Bool
	failures atomic.Int64
	upAfter  int64
}

var errDown = errors.New("storage unreachable")

func (f *flaky) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	if f.down.Load() {
		if n := f.failures.Add(1); f.upAfter > 0 && n >= f.upAfter {
			f.down.Store(false)
		}
		return driver.Written{}, errDown
	}
	return f.Storage.Create(ctx, p)
}

func TestStorageDownHoldsTheMessage(t *testing.T) {
	t.Parallel()
	queue, dead := declare(t)
	const n = 5
	publish(t, queue, orders(0, n)...)
	store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
	f := &flaky{Storage: store}
	f.down.Store(true)
	w, commits := triggertest.Flow()
	e := triggertest.Engine(t, f, 2)
	tr := newTrigger(t, e, w, nil)

	// While storage is down, nothing is acknowledged: the messages are
	// held, and requeued when the consumer stops.
	stop := consume(t, tr, amqp.Config{Queue: queue, Concurrency: 2})
	waitFor(t, "Create failing", time.Minute, func() bool { return f.failures.Load() >= 10 })
	if total, _ := triggertest.Count(t, store, "order-flow"); total != 0 {
		t.Fatalf("%d runs stored while storage was down", total)
	}
	stop()
	if got := ready(t, queue); got != n {
		t.Fatalf("%d messages ready after stopping with storage down, want all %d: none acknowledged", got, n)
	}

	// Storage comes back while a consumer retries in place: every run is
	// stored once, every message acknowledged.
	f.upAfter = f.failures.Load() + 20
	consume(t, tr, amqp.Config{Queue: queue, Concurrency: 2})
	triggertest.WaitRuns(t, store, "order-flow", n, time.Minute)
	if f.down.Load() {
		t.Fatal("storage still down with the runs stored")
	}
	if runs, twice := commits.Runs(); runs != n || twice != 0 {
		t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, n)
	}
	waitFor(t, "the queue empty", time.Minute, func() bool { return ready(t, queue) == 0 })
	if dn := ready(t, dead); dn != 0 {
		t.Fatalf("%d messages dead-lettered, want 0", dn)
	}
}

func TestRunRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, flux.NewMemoryStorage(), -1)
	tr := newTrigger(t, e, w, nil)
	ctx := context.Background()
	// A connection is needed to get past the nil check; checks come before
	// it is used.
	conn := new(amqp091.Connection)
	for _, c := range []struct {
		name string
		conn *amqp091.Connection
		cfg  amqp.Config
		tr   *trigger.Trigger
		want string
	}{
		{"no queue", conn, amqp.Config{}, tr, "Config.Queue"},
		{"no connection", nil, amqp.Config{Queue: "q"}, tr, "connection"},
		{"no trigger", conn, amqp.Config{Queue: "q"}, nil, "trigger.New"},
		{"too concurrent", conn, amqp.Config{Queue: "q", Concurrency: 40_000}, tr, "Concurrency"},
	} {
		if err := amqp.Run(ctx, c.conn, c.cfg, c.tr); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Run returned %v, want an error naming %s", c.name, err, c.want)
		}
	}
}

func TestRunRefusesWhatItCannotConsume(t *testing.T) {
	t.Parallel()
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, flux.NewMemoryStorage(), -1)
	tr := newTrigger(t, e, w, nil)
	ctx := context.Background()
	err := amqp.Run(ctx, dial(t), amqp.Config{Queue: "flux-test-no-such-queue"}, tr)
	if err == nil || !strings.Contains(err.Error(), "DeclareQueue") {
		t.Errorf("Run on a missing queue: %v, want an error saying to declare it", err)
	}
	var amqpErr *amqp091.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp091.NotFound {
		t.Errorf("Run on a missing queue: %v, want the broker's 404", err)
	}

	recovering, err := amqp091.DialConfig(amqpURL(t), amqp091.Config{Recovery: &amqp091.Recovery{}})
	if err != nil {
		t.Fatal(err)
	}
	defer recovering.Close()
	if err := amqp.Run(ctx, recovering, amqp.Config{Queue: "q"}, tr); err == nil || !strings.Contains(err.Error(), "Recovery") {
		t.Errorf("Run on a connection with recovery: %v, want an error naming Recovery", err)
	}
}

func TestRunReturnsWhenTheConnectionCloses(t *testing.T) {
	t.Parallel()
	queue, _ := declare(t)
	publish(t, queue, orders(0, 1)...)
	f := &flaky{Storage: triggertest.OpenSQLite(t, triggertest.SQLitePath(t))}
	f.down.Store(true) // the message is held, unacknowledged
	w, _ := triggertest.Flow()
	tr := newTrigger(t, triggertest.Engine(t, f, -1), w, nil)
	conn := dial(t)
	done := make(chan error, 1)
	go func() { done <- amqp.Run(context.Background(), conn, amqp.Config{Queue: queue}, tr) }()
	waitFor(t, "Create failing", time.Minute, func() bool { return f.failures.Load() >= 3 })
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, amqp091.ErrClosed) {
			t.Fatalf("Run returned %v, want an error wrapping amqp091.ErrClosed", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of its connection closing")
	}
	waitFor(t, "the held message back in the queue", time.Minute, func() bool { return ready(t, queue) == 1 })
}

func TestRunReturnsWhenTheQueueIsDeleted(t *testing.T) {
	t.Parallel()
	queue := "flux-test-" + strings.ToLower(rand.Text()[:12])
	broker(t, func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare(queue, false, true, false, false, nil)
		return err
	})
	w, _ := triggertest.Flow()
	tr := newTrigger(t, triggertest.Engine(t, flux.NewMemoryStorage(), -1), w, nil)
	done := make(chan error, 1)
	go func() { done <- amqp.Run(context.Background(), dial(t), amqp.Config{Queue: queue}, tr) }()
	// The consumer is there once the queue counts it.
	waitFor(t, "the consumer registered", time.Minute, func() bool {
		var consumers int
		broker(t, func(ch *amqp091.Channel) error {
			q, err := ch.QueueDeclarePassive(queue, false, true, false, false, nil)
			consumers = q.Consumers
			return err
		})
		return consumers == 1
	})
	broker(t, func(ch *amqp091.Channel) error { _, err := ch.QueueDelete(queue, false, false, false); return err })
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cancelled the consumer") {
			t.Fatalf("Run returned %v, want an error saying the broker cancelled the consumer", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of its queue being deleted")
	}
}
