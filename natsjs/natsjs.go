// Package natsjs starts Flux runs from NATS JetStream messages: a durable
// pull consumer on nats.go's jetstream package, a thin binding of package
// trigger.
//
// Delivery guarantee: a message is acknowledged after its run is stored; a
// redelivery starts no second run.
//
// Each message maps to one run whose ID is, by default, the message's
// Nats-Msg-Id header (the ID JetStream deduplicates publishes by), or
// stream/sequence when it has none. A message delivered again, because its
// acknowledgement was lost, because the consumer died between storing the
// run and acknowledging, or because AckWait passed, finds its run stored
// and starts nothing. Derive the ID from the payload instead with
// trigger.Options.RunID, for instance when two consumers of one stream
// start different workflows on the same store (their default IDs would
// collide), or when a stream is deleted and created again under the same
// name (its sequences start again at 1, and would map to the old runs).
//
// Run pulls batches of twice Config.Concurrency messages, hands each to
// the trigger, at most Concurrency at once, and settles it: acknowledged
// (and the acknowledgement confirmed) once its run is stored; delivered
// again after [trigger.Trigger.Backoff] (NakWithDelay) while storing fails,
// so nothing is acknowledged while storage is down; published to
// Config.DeadLetterSubject and then terminated when it cannot become a run
// (a payload that does not decode, input the workflow refuses). When its
// context ends, Run finishes the messages in hand and gives back those it
// fetched but had not started, for another consumer to take at once.
//
// What is acknowledged is only as durable as the stream that held it. For
// a stream that loses no message, use file storage (jetstream.FileStorage)
// and, in a cluster, Replicas of at least 3. A single server fsyncs its
// files every two minutes by default (the jetstream sync_interval), so a
// power loss can lose messages it had acknowledged to their publishers;
// set `jetstream { sync_interval: always }` (nats-server 2.10 and later)
// to fsync every write, at a cost in publish throughput, or rely on
// replication, where a message is acknowledged once a quorum holds it.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flux-go/flux/trigger"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says what to consume.
type Config struct {
	// Stream is the stream to consume. It must exist.
	Stream string
	// Consumer is the durable consumer's name. Run creates it, or updates
	// it, as a pull consumer with explicit acknowledgements. Several Runs
	// with the same Consumer share its messages.
	Consumer string
	// FilterSubject restricts the consumer to the stream's messages on
	// this subject (wildcards allowed); "" consumes every message.
	FilterSubject string
	// DeadLetterSubject receives the messages that cannot become runs,
	// with their data and headers (less the Nats-* headers JetStream
	// interprets) and four more headers: flux-error, flux-stream,
	// flux-subject and flux-sequence. The subject must belong to a stream:
	// the publish is acknowledged by JetStream before the message is
	// terminated, and a publish that fails leaves the message to be
	// delivered again. "" logs such messages (the trigger does, with
	// their position) and terminates them.
	DeadLetterSubject string
	// Concurrency is how many messages are handled at once; 0 means
	// [trigger.DefaultConcurrency] (16).
	// Run fetches up to twice as many at a time.
	Concurrency int
	// AckWait is how long the server waits for an acknowledgement before
	// it delivers a message again; 0 means 30s. After ctx ends, Run gives
	// the messages in hand this long to settle.
	AckWait time.Duration
	// MaxDeliver bounds how many times a message is delivered; 0 means no
	// bound. Beware: a message still unstored after MaxDeliver deliveries
	// (storage down for that long) is dropped by the server, not
	// dead-lettered.
	MaxDeliver int
	// Logger receives acknowledgement and dead-letter failures; nil uses
	// slog.Default().
	Logger *slog.Logger
}

// ackTimeout bounds an acknowledgement or a dead-letter publish.
const ackTimeout = 10 * time.Second

// Run consumes cfg.Stream through the durable consumer cfg.Consumer and
// hands each message to t until ctx ends. Then it stops fetching (within a
// second), settles the messages in hand (acknowledging those whose runs
// are stored; it gives them AckWait at most), hands back the ones it
// fetched but had not started, and returns nil. It returns an error at
// once for an incomplete Config or a consumer that cannot be created, and
// later if consuming cannot go on (the connection closed, the consumer
// deleted). Several Runs, in one process or many, may share a consumer.
func Run(ctx context.Context, js jetstream.JetStream, cfg Config, t *trigger.Trigger) error {
	switch {
	case js == nil:
		return errors.New("natsjs: Run needs a JetStream context: make one with jetstream.New(nc)")
	case t == nil:
		return errors.New("natsjs: Run needs a trigger: make one with trigger.New")
	case cfg.Stream == "":
		return errors.New("natsjs: Config.Stream is empty: name the stream to consume")
	case cfg.Consumer == "":
		return errors.New("natsjs: Config.Consumer is empty: name the durable consumer")
	case cfg.Concurrency < 0, cfg.AckWait < 0, cfg.MaxDeliver < 0:
		return errors.New("natsjs: Config.Concurrency, AckWait and MaxDeliver cannot be negative: leave them 0 for the defaults")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = trigger.DefaultConcurrency
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		FilterSubject: cfg.FilterSubject,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("natsjs: creating consumer %q on stream %q: %w", cfg.Consumer, cfg.Stream, err)
	}
	c := &consumer{cfg: cfg, js: js, t: t, stopping: ctx.Done()}
	// The messages in hand settle after ctx ends, for at most AckWait: the
	// server delivers them again after that anyway.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(cfg.AckWait, cancel) })
	defer stopGrace()
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for m := range msgs {
				c.handle(hctx, m)
			}
		})
	}
	defer func() {
		close(msgs)
		wg.Wait()
	}()
	for failures := 0; ctx.Err() == nil; {
		err := c.fetch(ctx, cons, msgs)
		switch {
		case err == nil || ctx.Err() != nil:
			failures = 0
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound),
			errors.Is(err, jetstream.ErrBadRequest), errors.Is(err, nats.ErrConnectionClosed),
			errors.Is(err, jetstream.ErrConnectionClosed):
			return fmt.Errorf("natsjs: consuming %s/%s stopped: %w", cfg.Stream, cfg.Consumer, err)
		default:
			failures++
			cfg.Logger.Warn("flux natsjs: fetching failed; retrying", "stream", cfg.Stream, "consumer", cfg.Consumer, "error", err)
			_ = trigger.Sleep(ctx, t.Backoff(failures))
		}
	}
	return nil
}

// fetchWait is how long one pull request waits for messages: Run returns
// at most this long after ctx ends, plus the time to settle the messages
// in hand.
const fetchWait = time.Second

// fetch pulls one batch and hands its messages to the workers. When ctx
// ends it keeps the rest of the batch and, once the pull request is over,
// hands them back to the server for another consumer, at once. (It waits
// for the request to end, rather than abandoning it as Stop or Drain of a
// pull iterator does: a server before 2.10 would deliver the messages it
// is handed back to the abandoned request, to wait AckWait.)
func (c *consumer) fetch(ctx context.Context, cons jetstream.Consumer, msgs chan<- jetstream.Msg) error {
	batch, err := cons.Fetch(2*c.cfg.Concurrency, jetstream.FetchMaxWait(fetchWait))
	if err != nil {
		return err
	}
	var held []jetstream.Msg
	for m := range batch.Messages() {
		if ctx.Err() != nil {
			held = append(held, m)
			continue
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			held = append(held, m)
		}
	}
	for _, m := range held {
		_ = m.Nak()
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrBatchCompleted) {
		return err
	}
	return nil
}

// consumer is one Run's state.
type consumer struct {
	stopping <-chan struct{} // closed when Run's ctx ends
	cfg      Config
	js       jetstream.JetStream
	t        *trigger.Trigger
}

// handle maps one message to its run and settles the message.
func (c *consumer) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing to map it to, nothing to ack.
		c.cfg.Logger.Error("flux natsjs: a message without JetStream metadata", "subject", msg.Subject(), "error", err)
		return
	}
	seq := strconv.FormatUint(meta.Sequence.Stream, 10)
	m := trigger.Message{
		Value:    msg.Data(),
		ID:       meta.Stream + "/" + seq,
		Position: meta.Stream + " seq " + seq + " (" + msg.Subject() + ")",
	}
	if h := msg.Headers(); len(h) > 0 {
		m.Headers = make(map[string]string, len(h))
		for k, v := range h {
			if len(v) > 0 {
				m.Headers[k] = v[0]
			}
		}
		if id := m.Headers[jetstream.MsgIDHeader]; id != "" {
			m.ID = id
		}
	}
	out := c.t.Handle(ctx, m)
	switch out.Action {
	case trigger.Ack:
		c.ack(ctx, msg, m.Position)
	case trigger.Retry:
		c.retry(msg, meta.NumDelivered)
	case trigger.Reject:
		if c.cfg.DeadLetterSubject != "" {
			if err := c.deadLetter(ctx, msg, meta, out.Err); err != nil {
				c.cfg.Logger.Warn("flux natsjs: publishing to the dead-letter subject failed; the message will be delivered again",
					"subject", c.cfg.DeadLetterSubject, "position", m.Position, "error", err)
				c.retry(msg, meta.NumDelivered)
				return
			}
		}
		// Term, not TermWithReason: a server before 2.10 takes a Term with
		// a reason for no acknowledgement at all.
		if err := msg.Term(); err != nil {
			c.cfg.Logger.Warn("flux natsjs: terminating a rejected message failed; it will be delivered again",
				"position", m.Position, "error", err)
		}
	}
}

// ack acknowledges msg and waits for the server to confirm it.
func (c *consumer) ack(ctx context.Context, msg jetstream.Msg, position string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		// The run is stored: the message delivered again starts nothing.
		c.cfg.Logger.Warn("flux natsjs: acknowledging failed; the message will be delivered again and start no second run",
			"position", position, "error", err)
	}
}

// retry asks for msg again after the trigger's backoff, or at once when
// Run is stopping, for another consumer to take it.
func (c *consumer) retry(msg jetstream.Msg, delivered uint64) {
	select {
	case <-c.stopping:
		_ = msg.Nak()
		return
	default:
	}
	// Not acknowledged either way: AckWait delivers it again if this fails.
	_ = msg.NakWithDelay(c.t.Backoff(int(min(delivered, 64))))
}

// deadLetter publishes msg to the dead-letter subject and waits for the
// stream that holds it to acknowledge it.
func (c *consumer) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason error) error {
	h := nats.Header{}
	for k, v := range msg.Headers() {
		if !strings.HasPrefix(k, "Nats-") { // such as Nats-Expected-*, Nats-Rollup, Nats-TTL
			h[k] = v
		}
	}
	seq := strconv.FormatUint(meta.Sequence.Stream, 10)
	if reason == nil {
		reason = errors.New("rejected")
	}
	h.Set("flux-error", reason.Error())
	h.Set("flux-stream", meta.Stream)
	h.Set("flux-subject", msg.Subject())
	h.Set("flux-sequence", seq)
	// A poison message delivered again (its Term lost) is dead-lettered once.
	h.Set(jetstream.MsgIDHeader, "flux-dead-letter/"+meta.Stream+"/"+seq)
	pctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	_, err := c.js.PublishMsg(pctx, &nats.Msg{Subject: c.cfg.DeadLetterSubject, Header: h, Data: msg.Data()})
	return err
}
