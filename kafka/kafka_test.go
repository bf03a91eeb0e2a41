package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/triggertest"
	"github.com/flux-go/flux/kafka"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/trigger"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestMain(m *testing.M) {
	if arg := os.Getenv(triggertest.ChildEnv); arg != "" {
		os.Exit(child(arg))
	}
	os.Exit(m.Run())
}

// groupOpts make group membership settle fast on kfake.
var groupOpts = []kgo.Opt{
	kgo.SessionTimeout(6 * time.Second),
	kgo.HeartbeatInterval(300 * time.Millisecond),
	// Generous: a poll settled slowly (the race detector, a busy CI
	// machine) must rejoin within it, or its records are read again.
	kgo.RebalanceTimeout(30 * time.Second),
	kgo.FetchMaxWait(100 * time.Millisecond),
}

// cluster starts a kfake broker with topic "orders" of parts partitions.
func cluster(t testing.TB, parts int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "orders", "orders.dlq"),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes the values to topic "orders", spread over its partitions
// by key, and waits until all are acknowledged.
func produce(t testing.TB, c *kfake.Cluster, values ...[]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: v}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

func payloads(from, n int) [][]byte {
	v := make([][]byte, n)
	for i := range v {
		v[i] = triggertest.Payload(from + i)
	}
	return v
}

// consume runs a consumer until the returned stop is called; stop waits
// for Run to return and fails the test if it returned an error.
func consume(t testing.TB, c *kfake.Cluster, tr *trigger.Trigger, cfg kafka.Config) (stop func()) {
	t.Helper()
	cfg.Brokers = c.ListenAddrs()
	if cfg.Group == "" {
		cfg.Group = "flux"
	}
	cfg.Topics = []string{"orders"}
	cfg.Options = append(cfg.Options, groupOpts...)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kafka.Run(ctx, cfg, tr) }()
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

func TestTenThousandRecordsTenThousandRuns(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			var store flux.Storage
			if kind == "sqlite" {
				store = triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
			} else {
				store = triggertest.OpenPostgres(t, triggertest.PostgresSchema(t))
			}
			const n = 10_000
			c := cluster(t, 4)
			produce(t, c, payloads(0, n)...)
			w, commits := triggertest.Flow()
			e := triggertest.Engine(t, store, 16)
			d := new(triggertest.Deliveries)
			consume(t, c, newTrigger(t, e, w, d), kafka.Config{})
			commits.Wait(t, n, 5*time.Minute)
			triggertest.WaitRuns(t, store, "order-flow", n, time.Minute)
			runs, twice := commits.Runs()
			if runs != n || twice != 0 {
				t.Fatalf("%d runs committed, %d of them twice; want %d and 0", runs, twice, n)
			}
			if len(d.Seen()) != n {
				t.Fatalf("%d distinct records delivered, want %d", len(d.Seen()), n)
			}
		})
	}
}

func TestLostCommitStartsNoSecondRun(t *testing.T) {
	const n = 200
	c := cluster(t, 2)
	produce(t, c, payloads(0, n)...)
	// Fault injection: every offset commit fails, as when the consumer's
	// connection drops between storing the runs and committing.
	var failing atomic.Bool
	var failed atomic.Int64
	failing.Store(true)
	c.ControlKey(kmsg.OffsetCommit.Int16(), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		failed.Add(1)
		req := r.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code // any error the client does not retry
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
	w, commits := triggertest.Flow()
	e := triggertest.Engine(t, store, 4)
	d := new(triggertest.Deliveries)
	tr := newTrigger(t, e, w, d)
	stop := consume(t, c, tr, kafka.Config{})
	triggertest.WaitRuns(t, store, "order-flow", n, time.Minute)
	stop()
	if failed.Load() == 0 {
		t.Fatal("no offset commit was attempted")
	}
	first := d.N.Load()

	// The group's offsets were never committed: a new consumer reads every
	// record again.
	failing.Store(false)
	consume(t, c, tr, kafka.Config{})
	deadline := time.Now().Add(time.Minute)
	for d.N.Load() < first+n {
		if time.Now().After(deadline) {
			t.Fatalf("the second consumer read %d records, want %d", d.N.Load()-first, n)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	if total, _ := triggertest.Count(t, store, "order-flow"); total != n {
		t.Fatalf("%d runs after every record was delivered twice, want %d", total, n)
	}
	for id, k := range d.Seen() {
		if k < 2 {
			t.Fatalf("record %s delivered %d times, want at least 2 (the commit was lost)", id, k)
		}
	}
	if runs, twice := commits.Runs(); runs != n || twice != 0 {
		t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, n)
	}
}

func TestPoisonGoesToDeadLetterTopic(t *testing.T) {
	c := cluster(t, 1)
	values := payloads(0, 10)
	values[4] = []byte(`{"orderId":`)    // does not decode
	values[6] = []byte(`{"orderId":""}`) // refused by Validate
	produce(t, c, values...)
	store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, store, 4)
	consume(t, c, newTrigger(t, e, w, nil), kafka.Config{DeadLetterTopic: "orders.dlq"})
	triggertest.WaitRuns(t, store, "order-flow", 8, time.Minute)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("orders.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(got) < 2 && ctx.Err() == nil {
		got = append(got, cl.PollFetches(ctx).Records()...)
	}
	if len(got) != 2 {
		t.Fatalf("%d records on the dead-letter topic, want 2", len(got))
	}
	// The two poison records are handled concurrently: their dead letters
	// may come in either order.
	slices.SortFunc(got, func(a, b *kgo.Record) int { return strings.Compare(header(a, "flux-offset"), header(b, "flux-offset")) })
	for i, off := range []int{4, 6} {
		r := got[i]
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if string(r.Value) != string(values[off]) || h["flux-offset"] != strconv.Itoa(off) ||
			h["flux-topic"] != "orders" || h["flux-partition"] != "0" || h["flux-error"] == "" {
			t.Errorf("dead letter %d: value %q headers %v; want record %d with its position and error", i, r.Value, h, off)
		}
	}
	run, err := e.Get(context.Background(), kafka.RunID("flux", &kgo.Record{Topic: "orders", Partition: 0, Offset: 9}))
	if err != nil || run.Status != flux.StatusCompleted {
		t.Fatalf("the record after the poison: %v, %v; want a completed run", run, err)
	}
}

func TestPoisonWithoutDeadLetterIsCommittedPast(t *testing.T) {
	c := cluster(t, 1)
	values := payloads(0, 5)
	values[1] = []byte("not json")
	produce(t, c, values...)
	store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, store, 2)
	stop := consume(t, c, newTrigger(t, e, w, nil), kafka.Config{Group: "g"})
	triggertest.WaitRuns(t, store, "order-flow", 4, time.Minute)
	stop()
	adm, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	offs, err := kadm.NewClient(adm).FetchOffsets(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("orders", 0); !ok || o.At != 5 {
		t.Fatalf("committed offset %+v, want 5: the poison record is committed past", o)
	}
}

func TestRebalanceLosesAndDuplicatesNothing(t *testing.T) {
	const half = 600
	c := cluster(t, 4)
	produce(t, c, payloads(0, half)...)
	store := &triggertest.Creates{Storage: triggertest.OpenSQLite(t, triggertest.SQLitePath(t))}
	w, commits := triggertest.Flow()
	e := triggertest.Engine(t, store, 4)
	tr := newTrigger(t, e, w, nil)
	stopA := consume(t, c, tr, kafka.Config{})
	for store.Created.Load() < half/3 {
		time.Sleep(5 * time.Millisecond) // polling: A is consuming
	}
	// B joins: the partitions are shared out while A is mid-stream.
	stopB := consume(t, c, tr, kafka.Config{})
	produce(t, c, payloads(half, half)...)
	for store.Created.Load() < half+half/2 {
		time.Sleep(5 * time.Millisecond)
	}
	stopA() // A leaves: B takes every partition
	triggertest.WaitRuns(t, store, "order-flow", 2*half, 2*time.Minute)
	stopB()
	if got := store.Existed.Load(); got != 0 {
		t.Fatalf("%d records were handled again after their runs were stored, want 0", got)
	}
	if got := store.Created.Load(); got != 2*half {
		t.Fatalf("%d runs created, want %d", got, 2*half)
	}
	if runs, twice := commits.Runs(); runs != 2*half || twice != 0 {
		t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, 2*half)
	}
}

func TestRunRefusesIncompleteConfig(t *testing.T) {
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, flux.NewMemoryStorage(), -1)
	tr := newTrigger(t, e, w, nil)
	ctx := context.Background()
	for name, cfg := range map[string]kafka.Config{
		"Brokers": {Group: "g", Topics: []string{"t"}},
		"Group":   {Brokers: []string{"x:1"}, Topics: []string{"t"}},
		"Topics":  {Brokers: []string{"x:1"}, Group: "g"},
	} {
		if err := kafka.Run(ctx, cfg, tr); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Run without %s: %v, want an error naming it", name, err)
		}
	}
	if err := kafka.Run(ctx, kafka.Config{Brokers: []string{"x:1"}, Group: "g", Topics: []string{"t"}}, nil); err == nil {
		t.Error("Run without a trigger: no error")
	}
}

// childArgs is what the child process of TestKilledAfterStoreBeforeCommit
// does.
type childArgs struct {
	Brokers []string `json:"brokers"`
	DB      string   `json:"db"`
}

// child consumes with a store that stalls after storing its first run,
// until the parent kills it.
func child(arg string) int {
	var a childArgs
	if err := json.Unmarshal([]byte(arg), &a); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store, err := sqlite.Open(a.DB)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e, err := flux.NewEngine(flux.Config{Storage: &triggertest.Stall{Storage: store, Out: os.Stdout}, Workers: -1, Logger: triggertest.Quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	w, _ := triggertest.Flow()
	tr, err := trigger.New(e, w, trigger.Options[triggertest.Order]{Logger: triggertest.Quiet})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = kafka.Run(context.Background(), kafka.Config{Brokers: a.Brokers, Group: "flux", Topics: []string{"orders"},
		Concurrency: 1, Options: groupOpts, Logger: triggertest.Quiet}, tr)
	fmt.Fprintln(os.Stderr, "child: Run returned", err)
	return 1
}

func TestKilledAfterStoreBeforeCommit(t *testing.T) {
	const n = 50
	c := cluster(t, 1)
	produce(t, c, payloads(0, n)...)
	path := triggertest.SQLitePath(t)
	// The database exists, with its schema, before the child opens it.
	triggertest.OpenSQLite(t, path)
	arg, _ := json.Marshal(childArgs{Brokers: c.ListenAddrs(), DB: path})
	ch := triggertest.StartChild(t, "TestKilledAfterStoreBeforeCommit", string(arg))
	stalled := ch.Line(t, "stored ", time.Minute)
	ch.Kill() // kill -9: the run is stored, its offset not committed

	store := triggertest.OpenSQLite(t, path)
	if run, err := store.Get(context.Background(), stalled); err != nil || run.Status != flux.StatusPending {
		t.Fatalf("the killed consumer's run %s: %v, %v; want it stored, pending", stalled, run, err)
	}
	w, commits := triggertest.Flow()
	e := triggertest.Engine(t, store, 4)
	d := new(triggertest.Deliveries)
	consume(t, c, newTrigger(t, e, w, d), kafka.Config{})
	triggertest.WaitRuns(t, store, "order-flow", n, 2*time.Minute)
	if d.Count(stalled) != 1 {
		t.Fatalf("the stalled record %s was delivered %d times to the new consumer, want 1 (read again)", stalled, d.Count(stalled))
	}
	if runs, twice := commits.Runs(); runs != n || twice != 0 {
		t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, n)
	}
}

// TestProducerDuplicateIsOneRun: a producer that retried without
// idempotence wrote the same event twice, at two offsets; a run ID from
// the payload makes them one run.
func TestProducerDuplicateIsOneRun(t *testing.T) {
	c := cluster(t, 1)
	produce(t, c, triggertest.Payload(1), triggertest.Payload(2), triggertest.Payload(1))
	store := &triggertest.Creates{Storage: triggertest.OpenSQLite(t, triggertest.SQLitePath(t))}
	w, commits := triggertest.Flow()
	e := triggertest.Engine(t, store, 2)
	tr, err := trigger.New(e, w, trigger.Options[triggertest.Order]{Logger: triggertest.Quiet,
		RunID: func(_ trigger.Message, o triggertest.Order) string { return "order/" + o.OrderID }})
	if err != nil {
		t.Fatal(err)
	}
	consume(t, c, tr, kafka.Config{Concurrency: 1})
	triggertest.WaitRuns(t, store, "order-flow", 2, time.Minute)
	deadline := time.Now().Add(time.Minute)
	for store.Created.Load()+store.Existed.Load() < 3 { // the third record reached the store
		if time.Now().After(deadline) {
			t.Fatal("the duplicate record was not handled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if store.Created.Load() != 2 || store.Existed.Load() != 1 {
		t.Fatalf("%d runs created, %d found stored; want 2 and 1", store.Created.Load(), store.Existed.Load())
	}
	if runs, twice := commits.Runs(); runs != 2 || twice != 0 {
		t.Fatalf("%d runs committed, %d twice; want 2 and 0", runs, twice)
	}
}

// header returns the value of header key of r, "" if it has none.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
