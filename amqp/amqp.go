// Package amqp starts Flux runs from RabbitMQ messages: a queue consumer
// on github.com/rabbitmq/amqp091-go, a thin binding of package trigger.
//
// Delivery guarantee: a delivery is acknowledged after its run is stored;
// a redelivery starts no second run (with a message-id).
//
// Each message maps to one run whose ID is, by default, the message's
// message-id property, the same on every redelivery: a message delivered
// again after a crash, a lost acknowledgement or a closed connection finds
// its run stored and starts nothing. A message without a message-id gets
// "sha256:" and the hex SHA-256 of its exchange, routing key and body, so
// two messages with the same body on the same routing key are one run: set
// a message-id on each message (or derive the ID from the payload with
// trigger.Options.RunID) when equal bodies are distinct events. The ID is
// not scoped by queue: when one message is routed to two queues consumed
// by triggers of two workflows, give each its own IDs with
// trigger.Options.RunID.
//
// Run consumes one queue with manual acknowledgements, Config.Concurrency
// messages at once. While storage is down, the trigger retries in place
// with backoff and the delivery stays unacknowledged. A message that
// cannot become a run (a payload that does not decode, input the workflow
// refuses) is rejected without requeueing: RabbitMQ routes it to the
// queue's dead-letter exchange, if it has one (see DeclareQueue), and
// drops it otherwise, after the trigger logged it with its position.
//
// On the RabbitMQ side, an event is safe once the broker confirmed it as a
// persistent message (DeliveryMode 2, amqp091.Persistent) in a durable
// queue: producers put their channel in confirm mode (Channel.Confirm),
// wait for each publishing's confirmation (DeferredConfirmation.Wait) and
// publish again what was not confirmed. RabbitMQ confirms such a message
// once it is written to disk, or, in a quorum queue (queue argument
// x-queue-type: quorum), once a majority of its replicas hold it: use
// quorum queues to survive the loss of a node. A quorum queue counts
// requeues and dead-letters a message past its delivery-limit (20 by
// default since RabbitMQ 4.0); Run requeues only the messages in hand
// when it stops.
package amqp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"sync"
	"time"

	"github.com/flux-go/flux/trigger"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Config says what to consume.
type Config struct {
	// Queue is the queue to consume. It must exist; declare it durable
	// with a dead-letter exchange (x-dead-letter-exchange) so that poison
	// messages are kept, as DeclareQueue does.
	Queue string
	// ConsumerTag names the consumer on the broker; "" generates a unique
	// one.
	ConsumerTag string
	// Concurrency is how many messages are handled at once; 0 means
	// [trigger.DefaultConcurrency] (16).
	// The channel's prefetch count (Qos) is twice as many, so the next
	// messages are at hand when a worker is free.
	Concurrency int
	// Logger receives acknowledgements that failed; nil uses
	// slog.Default(). Rejected messages and storage failures are logged
	// by the trigger, with its own logger.
	Logger *slog.Logger
}

// maxConcurrency keeps the prefetch count, 2×Concurrency, within AMQP's
// 16 bits.
const maxConcurrency = math.MaxUint16 / 2

// Run consumes cfg.Queue on a channel of its own on conn and hands each
// delivery to t, until ctx ends. Then it cancels the consumer, lets the
// deliveries in hand settle (acknowledged if their run is stored,
// requeued if not; a store call under way is given up to trigger.Grace),
// closes its channel and returns nil.
//
// Run returns an error at once for an incomplete Config, a queue that
// cannot be consumed or a connection with automatic recovery
// (amqp091.Config.Recovery): a recovered channel numbers its deliveries
// anew, so an acknowledgement meant for a delivery of the old one could
// acknowledge another message. Run returns an error, too, when its channel
// or conn closes under it, or the broker cancels its consumer (the queue
// was deleted): RabbitMQ delivers the unacknowledged messages again, and
// the caller dials again and calls Run again.
func Run(ctx context.Context, conn *amqp091.Connection, cfg Config, t *trigger.Trigger) error {
	switch {
	case t == nil:
		return errors.New("amqp: Run needs a trigger: make one with trigger.New")
	case conn == nil:
		return errors.New("amqp: Run needs a connection: dial one with amqp091.Dial")
	case cfg.Queue == "":
		return errors.New("amqp: Config.Queue is empty: name the queue to consume (declare it first, as DeclareQueue does)")
	case cfg.Concurrency > maxConcurrency:
		return fmt.Errorf("amqp: Config.Concurrency is %d: at most %d, as the prefetch count, twice as many, must fit in 16 bits", cfg.Concurrency, maxConcurrency)
	case conn.IsRecoveryEnabled():
		return errors.New("amqp: the connection recovers itself (amqp091.Config.Recovery is set): a recovered channel numbers its deliveries anew " +
			"and an acknowledgement could reach the wrong message; dial without Recovery, and dial again and call Run again when Run returns an error")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = trigger.DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ConsumerTag == "" {
		cfg.ConsumerTag = "flux-" + rand.Text()
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: opening a channel: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Qos(2*cfg.Concurrency, 0, false); err != nil {
		_ = ch.Close()
		return fmt.Errorf("amqp: setting the prefetch count: %w", err)
	}
	deliveries, err := ch.Consume(cfg.Queue, cfg.ConsumerTag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return fmt.Errorf("amqp: consuming queue %q (declare it first, as DeclareQueue does): %w", cfg.Queue, err)
	}

	// The workers' context ends after the consumer is cancelled, so that
	// a message requeued on the way out is not delivered here again.
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	c := &consumer{queue: cfg.Queue, t: t, log: cfg.Logger}
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for d := range deliveries {
				c.handle(wctx, &d)
			}
		})
	}
	drained := make(chan struct{})
	go func() {
		wg.Wait()
		close(drained)
	}()

	select {
	case <-ctx.Done():
		// Cancel waits for the broker's cancel-ok; the deliveries that
		// came before it are still handed to the workers, which requeue
		// them, and then the deliveries channel closes.
		if cerr := ch.Cancel(cfg.ConsumerTag, false); cerr != nil {
			_ = ch.Close() // closes the deliveries channel
		}
	case e := <-closed:
		err = closedError(cfg.Queue, e)
	case <-drained:
		if ch.IsClosed() { // the deliveries channel closed first
			err = closedError(cfg.Queue, <-closed)
		} else {
			err = fmt.Errorf("amqp: the broker cancelled the consumer of queue %q (was the queue deleted?); declare it and call Run again", cfg.Queue)
		}
	}
	stop()
	<-drained
	_ = ch.Close()
	return err
}

// closedError is Run's error when its channel closed under it, with the
// broker's reason, if any: nil when the channel or its connection was
// closed by this process.
func closedError(queue string, reason *amqp091.Error) error {
	if reason != nil {
		return fmt.Errorf("amqp: the channel consuming queue %q closed: %w; dial again and call Run again", queue, reason)
	}
	return fmt.Errorf("amqp: the channel consuming queue %q was closed (its connection closed?): %w; dial again and call Run again", queue, amqp091.ErrClosed)
}

// consumer is one Run's state.
type consumer struct {
	queue string
	t     *trigger.Trigger
	log   *slog.Logger
}

// handle maps one delivery to its run and settles it: Ack once the run is
// stored, Reject (to the dead-letter exchange) for poison, Nack with
// requeue when ctx ended first.
func (c *consumer) handle(ctx context.Context, d *amqp091.Delivery) {
	var err error
	action := "requeue"
	out, perr := c.t.Process(ctx, c.message(d))
	switch {
	case perr != nil: // ctx ended first
		err = d.Nack(false, true)
	case out.Action == trigger.Ack:
		action = "ack"
		err = d.Ack(false)
	default: // Reject: Process retries a Retry until ctx ends.
		action = "reject"
		err = d.Reject(false)
	}
	if err == nil {
		return
	}
	// The broker delivers an unsettled message again, and a stored run
	// makes that harmless; a closed channel ends Run, which says so.
	level := slog.LevelWarn
	if errors.Is(err, amqp091.ErrClosed) {
		level = slog.LevelDebug
	}
	c.log.LogAttrs(ctx, level, "flux amqp: settling a delivery failed; the message will be delivered again",
		slog.String("action", action), slog.String("position", position(c.queue, d)), slog.Any("error", err))
}

// message is the trigger's view of d.
func (c *consumer) message(d *amqp091.Delivery) trigger.Message {
	m := trigger.Message{Value: d.Body, ID: RunID(d), Position: position(c.queue, d)}
	if len(d.Headers) > 0 {
		m.Headers = make(map[string]string, len(d.Headers))
		for k, v := range d.Headers {
			m.Headers[k] = headerString(v)
		}
	}
	return m
}

// RunID returns the default run ID of a delivery: its message-id property
// if set, else "sha256:" and the hex SHA-256 of its exchange, a zero byte,
// its routing key, a zero byte and its body.
func RunID(d *amqp091.Delivery) string {
	if d.MessageId != "" {
		return d.MessageId
	}
	h := sha256.New()
	h.Write([]byte(d.Exchange))
	h.Write([]byte{0})
	h.Write([]byte(d.RoutingKey))
	h.Write([]byte{0})
	h.Write(d.Body)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// position says where d is, for logs.
func position(queue string, d *amqp091.Delivery) string {
	return fmt.Sprintf("%s delivery %d (exchange %q, key %q)", queue, d.DeliveryTag, d.Exchange, d.RoutingKey)
}

// headerString renders a header value of an AMQP table as a string.
func headerString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return string(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case amqp091.Decimal: // Value × 10^-Scale
		scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(v.Scale)), nil)
		return new(big.Rat).SetFrac(big.NewInt(int64(v.Value)), scale).FloatString(int(v.Scale))
	}
	return fmt.Sprint(v)
}

// DeclareQueue declares the durable classic queue queue, whose poison
// messages (those Run rejects) go to the durable queue deadLetterQueue:
// it declares a durable direct exchange queue+".dlx", binds
// deadLetterQueue to it, and declares queue with that exchange as its
// x-dead-letter-exchange and its own name as x-dead-letter-routing-key.
// RabbitMQ adds an x-death header to each dead letter, saying from which
// queue it came and why ("rejected").
//
// Declaring again with the same arguments changes nothing; RabbitMQ
// refuses to declare an existing queue with other arguments, and closes
// ch. A queue that exists without a dead-letter exchange gets one with a
// policy (rabbitmqctl set_policy, dead-letter-exchange). For a quorum
// queue, declare it yourself with x-queue-type: quorum and the same two
// dead-letter arguments.
func DeclareQueue(ch *amqp091.Channel, queue, deadLetterQueue string) error {
	if ch == nil || queue == "" || deadLetterQueue == "" {
		return errors.New("amqp: DeclareQueue needs a channel, a queue and a dead-letter queue")
	}
	dlx := queue + ".dlx"
	if err := ch.ExchangeDeclare(dlx, amqp091.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: declaring the dead-letter exchange %q: %w", dlx, err)
	}
	if _, err := ch.QueueDeclare(deadLetterQueue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: declaring the dead-letter queue %q: %w", deadLetterQueue, err)
	}
	if err := ch.QueueBind(deadLetterQueue, queue, dlx, false, nil); err != nil {
		return fmt.Errorf("amqp: binding the dead-letter queue %q to %q: %w", deadLetterQueue, dlx, err)
	}
	args := amqp091.Table{"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": queue}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("amqp: declaring queue %q: %w", queue, err)
	}
	return nil
}
