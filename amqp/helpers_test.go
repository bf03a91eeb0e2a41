package amqp_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/amqp"
	"github.com/flux-go/flux/internal/triggertest"
	"github.com/flux-go/flux/trigger"
	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if arg := os.Getenv(triggertest.ChildEnv); arg != "" {
		os.Exit(child(arg))
	}
	goleak.VerifyTestMain(m)
}

// amqpURL returns FLUX_AMQP_URL, or skips the test, saying so, when it is
// unset.
func amqpURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("FLUX_AMQP_URL")
	if u == "" {
		t.Skip("FLUX_AMQP_URL is unset: set it to a RabbitMQ server, such as " +
			"amqp://guest:guest@127.0.0.1:5672/, to run the RabbitMQ tests")
	}
	return u
}

// dial connects to RabbitMQ; the connection is closed when the test ends.
func dial(t testing.TB) *amqp091.Connection {
	t.Helper()
	conn, err := amqp091.Dial(amqpURL(t))
	if err != nil {
		t.Fatalf("dialing RabbitMQ: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// declare declares a queue of a name no one uses yet with a dead-letter
// queue (amqp.DeclareQueue), and deletes both, and the dead-letter
// exchange, when the test ends.
func declare(t testing.TB) (queue, dead string) {
	t.Helper()
	amqpURL(t) // skip before registering the cleanup
	queue = "flux-test-" + strings.ToLower(rand.Text()[:12])
	dead = queue + ".dead"
	t.Cleanup(func() {
		broker(t, func(ch *amqp091.Channel) error {
			for _, q := range []string{queue, dead} {
				if _, err := ch.QueueDelete(q, false, false, false); err != nil {
					return err
				}
			}
			return ch.ExchangeDelete(queue+".dlx", false, false)
		})
	})
	broker(t, func(ch *amqp091.Channel) error { return amqp.DeclareQueue(ch, queue, dead) })
	return queue, dead
}

// broker calls f with a channel on a connection of its own, closed when f
// returns, and fails the test if f fails.
func broker(t testing.TB, f func(*amqp091.Channel) error) {
	t.Helper()
	conn, err := amqp091.Dial(amqpURL(t))
	if err != nil {
		t.Fatalf("dialing RabbitMQ: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = f(ch)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// publish sends msgs, persistent, to queue through the default exchange
// on a channel in confirm mode, and waits until the broker confirmed every
// one: the messages are in the queue.
func publish(t testing.TB, queue string, msgs ...amqp091.Publishing) {
	t.Helper()
	broker(t, func(ch *amqp091.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		confirms := make([]*amqp091.DeferredConfirmation, len(msgs))
		for i, m := range msgs {
			m.DeliveryMode = amqp091.Persistent
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, m)
			if err != nil {
				return fmt.Errorf("publishing message %d: %w", i, err)
			}
			confirms[i] = dc
		}
		for i, dc := range confirms {
			if ok, err := dc.WaitContext(ctx); !ok || err != nil {
				return fmt.Errorf("message %d not confirmed (%v)", i, err)
			}
		}
		return nil
	})
}

// orders returns n messages of triggertest.Payload from from on, with
// message-ids m-<i>.
func orders(from, n int) []amqp091.Publishing {
	msgs := make([]amqp091.Publishing, n)
	for i := range msgs {
		msgs[i] = amqp091.Publishing{MessageId: "m-" + strconv.Itoa(from+i), ContentType: "application/json", Body: triggertest.Payload(from + i)}
	}
	return msgs
}

// ready returns how many messages of queue are ready for delivery: in the
// queue and not held, unacknowledged, by a consumer.
func ready(t testing.TB, queue string) (n int) {
	t.Helper()
	broker(t, func(ch *amqp091.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		n = q.Messages
		return err
	})
	return n
}

// waitFor polls cond until it holds, or fails the test after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(pause) // polling a condition with a deadline
		pause = min(2*pause, 100*time.Millisecond)
	}
}

func newTrigger(t testing.TB, e *flux.Engine, w *flux.Workflow[triggertest.Order, triggertest.Charged], d *triggertest.Deliveries) *trigger.Trigger {
	t.Helper()
	o := trigger.Options[triggertest.Order]{Logger: triggertest.Quiet, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	if d != nil {
		o.RunID = d.RunID
	}
	tr, err := trigger.New(e, w, o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// consume runs amqp.Run on a connection of its own until the returned
// stop is called; stop waits for Run to return and fails the test if it
// returned an error.
func consume(t testing.TB, tr *trigger.Trigger, cfg amqp.Config) (stop func()) {
	t.Helper()
	conn := dial(t)
	if cfg.Logger == nil {
		cfg.Logger = triggertest.Quiet
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- amqp.Run(ctx, conn, cfg, tr) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
