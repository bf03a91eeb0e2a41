// Package kafka starts Flux runs from Kafka records: a consumer-group
// trigger on franz-go, a thin binding of package trigger.
//
// Delivery guarantee: a record's offset is committed after its run is
// stored; a redelivered record starts no second run.
//
// Each record maps to one run whose ID is, by default,
// group/topic/partition/offset, as DBOS does: the same record read again
// after a crash, a lost commit or a rebalance finds its run stored and
// starts nothing. To make two records of the same event one run (a
// producer that retried without idempotence), derive the ID from the
// payload with trigger.Options.RunID.
//
// Run processes each poll's records concurrently, commits the offsets of
// the records it settled (stored, or dead-lettered), and only then lets
// the group rebalance (kgo.BlockRebalanceOnPoll), so a partition moving to
// another consumer is read on from exactly where this one stopped. A
// record that cannot become a run (a payload that does not decode) goes to
// Config.DeadLetterTopic and its partition flows on. While storage is
// down, nothing is committed and the record is retried with backoff.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/flux-go/flux/trigger"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says what to consume.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Group is the consumer group. Consumers of one group share the
	// topics' partitions; the group is part of the default run ID.
	Group string
	// Topics are the topics to consume.
	Topics []string
	// DeadLetterTopic receives the records that cannot become runs, with
	// their key, value and headers and four more headers: flux-error,
	// flux-topic, flux-partition and flux-offset. "" logs them (the
	// trigger does, with their position) and commits past them.
	DeadLetterTopic string
	// Concurrency is how many records are handled at once; 0 means
	// [trigger.DefaultConcurrency] (16).
	// Set 1 to start the runs of a partition in order.
	Concurrency int
	// Options are more franz-go client options (TLS, SASL, timeouts).
	// Run sets the seed brokers, group, topics, manual commits and
	// BlockRebalanceOnPoll itself.
	Options []kgo.Opt
	// Logger receives commit failures; nil uses slog.Default().
	Logger *slog.Logger
}

// RunID returns the default run ID of a record read by group:
// group/topic/partition/offset.
func RunID(group string, r *kgo.Record) string {
	return group + "/" + r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}

// maxPoll is how many records one poll returns at most.
const maxPoll = 1000

// Run consumes cfg.Topics as a member of cfg.Group and hands each record
// to t until ctx ends. Then it finishes the records in hand, commits them,
// leaves the group and returns nil. It returns an error at once for an
// incomplete Config or a client that cannot be created.
func Run(ctx context.Context, cfg Config, t *trigger.Trigger) error {
	switch {
	case t == nil:
		return errors.New("kafka: Run needs a trigger: make one with trigger.New")
	case len(cfg.Brokers) == 0:
		return errors.New("kafka: Config.Brokers is empty: give at least one seed broker, host:port")
	case cfg.Group == "":
		return errors.New("kafka: Config.Group is empty: name the consumer group")
	case len(cfg.Topics) == 0:
		return errors.New("kafka: Config.Topics is empty: name the topics to consume")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = trigger.DefaultConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	}, cfg.Options...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: creating the client: %w", err)
	}
	c := &consumer{cfg: cfg, t: t, cl: cl}
	defer cl.CloseAllowingRebalance()
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, maxPoll)
		if fetches.IsClientClosed() {
			return errors.New("kafka: the client closed")
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				cfg.Logger.Warn("flux kafka: fetch failed", "topic", topic, "partition", p, "error", err)
			}
		})
		c.settle(ctx, fetches.Records())
		cl.AllowRebalance()
	}
	return nil
}

// consumer is one Run's state.
type consumer struct {
	cfg Config
	t   *trigger.Trigger
	cl  *kgo.Client
}

// settle hands the records of one poll to the trigger, at most
// Concurrency at once, then commits, for each partition, up to the last
// record before the first one left unsettled (ctx ended).
func (c *consumer) settle(ctx context.Context, recs []*kgo.Record) {
	if len(recs) == 0 {
		return
	}
	// A record handed to a worker is in hand: it is finished even when
	// ctx ends meanwhile (for up to trigger.Grace). Records are handed out
	// in offset order and none after ctx ended, so the settled records of a
	// partition are the ones before its first unsettled one, and a record
	// whose run is stored is not read again.
	hctx, cancelHandling := trigger.WithGrace(ctx)
	defer cancelHandling()
	done := make([]bool, len(recs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(c.cfg.Concurrency, len(recs)) {
		wg.Go(func() {
			for i := range next {
				done[i] = c.handle(hctx, recs[i])
			}
		})
	}
dispatch:
	for i := range recs {
		if ctx.Err() != nil {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break dispatch
		}
	}
	close(next)
	wg.Wait()

	// Records come partition by partition, in offset order.
	type tp struct {
		topic string
		p     int32
	}
	blocked := map[tp]bool{}
	var commit []*kgo.Record
	for i, r := range recs {
		k := tp{r.Topic, r.Partition}
		if blocked[k] {
			continue
		}
		if !done[i] {
			blocked[k] = true
			continue
		}
		commit = append(commit, r)
	}
	if len(commit) == 0 {
		return
	}
	// Commit even when ctx ended: what was stored should not be read again.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.cl.CommitRecords(cctx, commit...); err != nil {
		// The runs are stored: records read again start nothing.
		c.cfg.Logger.Warn("flux kafka: committing offsets failed; the records will be read again and start no second run",
			"group", c.cfg.Group, "error", err)
	}
}

// handle maps one record to its run and reports whether it is settled:
// its run stored or the record dead-lettered.
func (c *consumer) handle(ctx context.Context, r *kgo.Record) bool {
	m := trigger.Message{
		Value:    r.Value,
		Key:      r.Key,
		ID:       RunID(c.cfg.Group, r),
		Position: r.Topic + "[" + strconv.Itoa(int(r.Partition)) + "]@" + strconv.FormatInt(r.Offset, 10),
	}
	if len(r.Headers) > 0 {
		m.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			if _, dup := m.Headers[h.Key]; !dup {
				m.Headers[h.Key] = string(h.Value)
			}
		}
	}
	out, err := c.t.Process(ctx, m)
	if err != nil {
		return false // ctx ended with the run not stored: it is read again
	}
	if out.Action == trigger.Reject && c.cfg.DeadLetterTopic != "" {
		return c.deadLetter(ctx, r, out.Err)
	}
	return true
}

// deadLetter produces r to the dead-letter topic, retrying with backoff
// until it is written or ctx ends.
func (c *consumer) deadLetter(ctx context.Context, r *kgo.Record, reason error) bool {
	headers := append(r.Headers[:len(r.Headers):len(r.Headers)],
		kgo.RecordHeader{Key: "flux-error", Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: "flux-topic", Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: "flux-partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: "flux-offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	dl := &kgo.Record{Topic: c.cfg.DeadLetterTopic, Key: r.Key, Value: r.Value, Headers: headers}
	for failures := 1; ; failures++ {
		err := c.cl.ProduceSync(ctx, dl).FirstErr()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.cfg.Logger.Warn("flux kafka: writing to the dead-letter topic failed; retrying",
			"topic", c.cfg.DeadLetterTopic, "record", r.Topic+"["+strconv.Itoa(int(r.Partition))+"]@"+strconv.FormatInt(r.Offset, 10), "error", err)
		if trigger.Sleep(ctx, c.t.Backoff(failures)) != nil {
			return false
		}
	}
}
