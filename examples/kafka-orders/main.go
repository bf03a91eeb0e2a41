// Kafka-orders is the seed's Kafka example in Go: a producer puts an
// order.created event into Kafka, and a consumer in the order-workers group
// hands each record to Flux, which runs the order flow (validate, reserve,
// then the notify commit). A failed step is retried by Flux, alone; Kafka
// only redelivers records whose runs were not stored, and a redelivered
// record starts no second run.
//
// With no --brokers it starts franz-go's in-process Kafka broker (kfake) on
// 127.0.0.1:9092 (or another free port), prints its address, and sends the
// seed's sample order ORD-001, so on a fresh machine
//
//	go run ./examples/kafka-orders
//
// shows a run complete. Any Kafka client can then send more records to the
// topic order.created at the printed address, the seed's kafkajs producer
// among them, or this program:
//
//	go run ./examples/kafka-orders produce --brokers 127.0.0.1:9092 ORD-002 ORD-003
//
// With --db PATH the runs are kept in SQLite, so `flux runs list --db PATH`
// shows them. --handoff acknowledges each record once its run is stored and
// lets the engine's workers execute it (the default executes the run, then
// commits the offset, as the seed does).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/kafka"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/trigger"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Topic is the seed's topic.
const Topic = "order.created"

// Order is the event's payload, as the seed's producer sends it.
type Order struct {
	OrderID string `json:"orderId"`
	UserID  string `json:"userId"`
}

// Data is what the order flow's steps record.
type Data struct {
	Validated bool `json:"validated"`
	Reserved  bool `json:"reserved"`
	Notified  bool `json:"notified"`
}

// OrderFlow is the seed's order-flow.
func OrderFlow() *flux.Workflow[Order, Data] {
	return flux.New[Order, Data]("order-flow").
		Validate(func(o Order) error {
			if o.OrderID == "" {
				return errors.New("orderId is empty")
			}
			return nil
		}).
		Step("validate", func(c *flux.Ctx[Order, Data]) error { c.Data.Validated = true; return nil }).
		Step("reserve", func(c *flux.Ctx[Order, Data]) error { c.Data.Reserved = true; return nil }).
		Commit("notify", func(c *flux.Ctx[Order, Data]) error { c.Data.Notified = true; return nil })
}

// config is the consumer's command line.
type config struct {
	brokers string
	port    int
	db      string
	handoff bool
	sample  bool // send ORD-001 once the consumer runs
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "produce" {
		fs := flag.NewFlagSet("produce", flag.ExitOnError)
		brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
		_ = fs.Parse(os.Args[2:])
		if fs.NArg() == 0 {
			fmt.Fprintln(os.Stderr, "usage: kafka-orders produce [--brokers host:port] ORDER-ID...")
			os.Exit(2)
		}
		err = produce(ctx, strings.Split(*brokers, ","), fs.Args()...)
	} else {
		var c config
		flag.StringVar(&c.brokers, "brokers", "", "Kafka seed brokers, comma-separated; empty starts an in-process broker")
		flag.IntVar(&c.port, "port", 9092, "port of the in-process broker (0: any free port)")
		flag.StringVar(&c.db, "db", "", "keep the runs in this SQLite file (default: in memory)")
		flag.BoolVar(&c.handoff, "handoff", false, "commit each record once its run is stored; workers execute it")
		flag.Parse()
		c.sample = c.brokers == ""
		err = consume(ctx, c, os.Stdout, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka-orders:", err)
		os.Exit(1)
	}
}

// produce sends one order.created event per order ID, keyed by it, as the
// seed's producer does, and waits until Kafka acknowledged them.
func produce(ctx context.Context, brokers []string, ids ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(Topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(ids))
	for i, id := range ids {
		v, _ := json.Marshal(Order{OrderID: id, UserID: "u_1"})
		recs[i] = &kgo.Record{Key: []byte(id), Value: v}
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// consume runs the order workers until ctx ends. ready, if not nil,
// receives the brokers' address once the consumer runs.
func consume(ctx context.Context, c config, out io.Writer, ready chan<- string) error {
	brokers := strings.Split(c.brokers, ",")
	if c.brokers == "" {
		broker, err := startBroker(c.port)
		if err != nil {
			return err
		}
		defer broker.Close()
		brokers = broker.ListenAddrs()
		fmt.Fprintf(out, "in-process Kafka broker on %s, topic %s\n", brokers[0], Topic)
	}
	var store flux.Storage
	if c.db != "" {
		s, err := sqlite.Open(c.db)
		if err != nil {
			return err
		}
		defer s.Close()
		store = s
	}
	workers := -1
	if c.handoff {
		workers = 0 // the default number
	}
	engine, err := flux.NewEngine(flux.Config{
		Storage: store, Workers: workers,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Hooks: flux.Hooks{WorkflowComplete: func(ev flux.RunEvent) {
			fmt.Fprintf(out, "run %s completed in %v\n", ev.RunID, ev.Duration.Round(1e5))
		}},
	})
	if err != nil {
		return err
	}
	defer engine.Close()
	t, err := trigger.New(engine, OrderFlow(), trigger.Options[Order]{Inline: !c.handoff})
	if err != nil {
		return err
	}
	if c.sample {
		if err := produce(ctx, brokers, "ORD-001"); err != nil {
			return err
		}
	}
	if ready != nil {
		ready <- brokers[0]
	}
	fmt.Fprintln(out, "consuming; Ctrl-C stops")
	return kafka.Run(ctx, kafka.Config{Brokers: brokers, Group: "order-workers", Topics: []string{Topic},
		DeadLetterTopic: Topic + ".dlq"}, t)
}

// startBroker starts kfake on port, or on any free port if that one is
// taken.
func startBroker(port int) (*kfake.Cluster, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, Topic, Topic+".dlq")}
	c, err := kfake.NewCluster(append(opts, kfake.Ports(port))...)
	if err != nil && port != 0 {
		c, err = kfake.NewCluster(append(opts, kfake.Ports(0))...)
	}
	return c, err
}
