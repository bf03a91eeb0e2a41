package natsjs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/triggertest"
	"github.com/flux-go/flux/natsjs"
	"github.com/flux-go/flux/sqlite"
	"github.com/flux-go/flux/trigger"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if arg := os.Getenv(triggertest.ChildEnv); arg != "" {
		os.Exit(child(arg))
	}
	goleak.VerifyTestMain(m)
}

// embedded starts a nats-server with JetStream in this process, shut down
// when the test ends, and returns its URL.
func embedded(t testing.TB) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the embedded nats-server is not ready after 10s")
	}
	return s.ClientURL()
}

// servers runs f against an embedded server ("embedded") and against the
// server at FLUX_NATS_URL ("server"), skipped when that is unset.
func servers(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		f(t, embedded(t))
	})
	t.Run("server", func(t *testing.T) {
		url := os.Getenv("FLUX_NATS_URL")
		if url == "" {
			t.Skip("FLUX_NATS_URL is unset: set it to a nats-server with JetStream, " +
				"such as nats://127.0.0.1:4222, to run this against a real server")
		}
		t.Parallel()
		f(t, url)
	})
}

// broker is a connection to a server and a stream of orders made for one
// test, deleted when it ends.
type broker struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  string // the orders stream
	subject string // its one subject
	prefix  string // of every subject of this test
}

// newBroker connects to url and creates a stream with a name no other
// test uses; mod adjusts its configuration.
func newBroker(t testing.TB, url string, mod func(*jetstream.StreamConfig)) *broker {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var r [5]byte
	_, _ = rand.Read(r[:])
	suffix := hex.EncodeToString(r[:])
	b := &broker{nc: nc, js: js, stream: "FLUX_" + strings.ToUpper(suffix), prefix: "flux-test." + suffix}
	b.subject = b.prefix + ".orders"
	cfg := jetstream.StreamConfig{Name: b.stream, Subjects: []string{b.subject}, Storage: jetstream.FileStorage}
	if mod != nil {
		mod(&cfg)
	}
	b.addStream(t, cfg)
	return b
}

// addStream creates a stream, deleted when the test ends.
func (b *broker) addStream(t testing.TB, cfg jetstream.StreamConfig) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.js.CreateStream(ctx, cfg); err != nil {
		t.Fatalf("creating stream %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		if err := b.js.DeleteStream(ctx, cfg.Name); err != nil {
			t.Errorf("deleting stream %s: %v", cfg.Name, err)
		}
	})
}

// publish publishes values to the orders subject, a thousand at a time
// without waiting for each acknowledgement, and waits until all are
// stored.
func (b *broker) publish(t testing.TB, values ...[]byte) {
	t.Helper()
	msgs := make([]*nats.Msg, len(values))
	for i, v := range values {
		msgs[i] = &nats.Msg{Subject: b.subject, Data: v}
	}
	b.publishMsgs(t, msgs...)
}

// publishMsgs publishes msgs as publish does values.
func (b *broker) publishMsgs(t testing.TB, msgs ...*nats.Msg) {
	t.Helper()
	for len(msgs) > 0 {
		chunk := msgs[:min(len(msgs), 1000)]
		msgs = msgs[len(chunk):]
		acks := make([]jetstream.PubAckFuture, len(chunk))
		for i, m := range chunk {
			f, err := b.js.PublishMsgAsync(m)
			if err != nil {
				t.Fatalf("publishing: %v", err)
			}
			acks[i] = f
		}
		select {
		case <-b.js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			t.Fatal("publishes not acknowledged within a minute")
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publishing: %v", err)
			}
		}
	}
}

// consumerInfo returns the state of the durable consumer name.
func (b *broker) consumerInfo(t testing.TB, name string) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	c, err := b.js.Consumer(context.Background(), b.stream, name)
	for errors.Is(err, jetstream.ErrConsumerNotFound) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling: Run has not created it yet
		c, err = b.js.Consumer(context.Background(), b.stream, name)
	}
	if err != nil {
		t.Fatalf("consumer %s: %v", name, err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatalf("consumer %s: %v", name, err)
	}
	return info
}

// waitAcked waits until consumer name acknowledged (or terminated) every
// message up to stream sequence last and holds none unacknowledged.
func (b *broker) waitAcked(t testing.TB, name string, last uint64) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		info := b.consumerInfo(t, name)
		if info.AckFloor.Stream == last && info.NumAckPending == 0 && info.NumPending == 0 {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s: ack floor %d, %d unacknowledged, %d pending; want every message up to %d acknowledged",
				name, info.AckFloor.Stream, info.NumAckPending, info.NumPending, last)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

func payloads(from, n int) [][]byte {
	v := make([][]byte, n)
	for i := range v {
		v[i] = triggertest.Payload(from + i)
	}
	return v
}

func newTrigger(t testing.TB, e *flux.Engine, w *flux.Workflow[triggertest.Order, triggertest.Charged], d *triggertest.Deliveries) *trigger.Trigger {
	t.Helper()
	o := trigger.Options[triggertest.Order]{Logger: triggertest.Quiet, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if d != nil {
		o.RunID = d.RunID
	}
	tr, err := trigger.New(e, w, o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// consume runs a consumer until the returned stop is called; stop waits
// for Run to return and fails the test if it returned an error.
func consume(t testing.TB, b *broker, tr *trigger.Trigger, cfg natsjs.Config) (stop func()) {
	t.Helper()
	cfg.Stream = b.stream
	if cfg.Consumer == "" {
		cfg.Consumer = "flux"
	}
	if cfg.Logger == nil {
		cfg.Logger = triggertest.Quiet
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- natsjs.Run(ctx, b.js, cfg, tr) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("Run did not return within a minute of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestSameMsgIDTwiceStartsOneRun(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, url string) {
		b := newBroker(t, url, func(c *jetstream.StreamConfig) { c.Duplicates = 100 * time.Millisecond })
		ctx := context.Background()
		m := &nats.Msg{Subject: b.subject, Data: triggertest.Payload(7), Header: nats.Header{jetstream.MsgIDHeader: {"order-7"}}}
		if _, err := b.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		// The producer sends it again after the duplicate window: the
		// stream holds it twice.
		deadline := time.Now().Add(30 * time.Second)
		for {
			ack, err := b.js.PublishMsg(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			if !ack.Duplicate {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("JetStream still deduplicates after 30s")
			}
			time.Sleep(20 * time.Millisecond) // polling until the window passed
		}
		if s, err := b.js.Stream(ctx, b.stream); err != nil || s.CachedInfo().State.Msgs != 2 {
			t.Fatalf("stream: %v; want it to hold the message twice", err)
		}
		store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
		w, commits := triggertest.Flow()
		e := triggertest.Engine(t, store, 2)
		d := new(triggertest.Deliveries)
		consume(t, b, newTrigger(t, e, w, d), natsjs.Config{})
		b.waitAcked(t, "flux", 2)
		triggertest.WaitRuns(t, store, "order-flow", 1, time.Minute)
		if got := d.Count("order-7"); got != 2 {
			t.Fatalf("message order-7 handled %d times, want 2", got)
		}
		if runs, twice := commits.Runs(); runs != 1 || twice != 0 {
			t.Fatalf("%d runs committed, %d twice; want 1 and 0", runs, twice)
		}
		if run, err := e.Get(ctx, "order-7"); err != nil || run.Status != flux.StatusCompleted {
			t.Fatalf("run order-7: %v, %v; want it completed", run, err)
		}
	})
}

// lostReply stores each run, then, the first time, reports a failure, as
// a store whose reply is lost after its commit: the message is delivered
// again after its run was stored.
type lostReply struct {
	flux.Storage
	mu   sync.Mutex
	lost map[string]bool
}

func (s *lostReply) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	w, err := s.Storage.Create(ctx, p)
	if err != nil {
		return w, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lost[p.Run.ID] {
		s.lost[p.Run.ID] = true
		return w, errors.New("injected: connection lost after the commit")
	}
	return w, nil
}

func TestRedeliveredAfterStoreStartsNoSecondRun(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, url string) {
		const n = 20
		b := newBroker(t, url, nil)
		b.publish(t, payloads(0, n)...)
		store := &lostReply{Storage: triggertest.OpenSQLite(t, triggertest.SQLitePath(t)), lost: map[string]bool{}}
		w, commits := triggertest.Flow()
		e := triggertest.Engine(t, store, 2)
		d := new(triggertest.Deliveries)
		consume(t, b, newTrigger(t, e, w, d), natsjs.Config{Concurrency: 4})
		triggertest.WaitRuns(t, store, "order-flow", n, time.Minute)
		info := b.waitAcked(t, "flux", n)
		for seq := 1; seq <= n; seq++ {
			id := b.stream + "/" + strconv.Itoa(seq)
			if got := d.Count(id); got < 2 {
				t.Errorf("message %s handled %d times, want at least 2 (delivered again after NakWithDelay)", id, got)
			}
		}
		if info.NumRedelivered != 0 || info.Delivered.Consumer < 2*n {
			// NumRedelivered counts the messages still unacknowledged.
			t.Errorf("consumer delivered %d times, %d redelivered pending; want at least %d deliveries and none pending",
				info.Delivered.Consumer, info.NumRedelivered, 2*n)
		}
		if runs, twice := commits.Runs(); runs != n || twice != 0 {
			t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, n)
		}
	})
}

func TestPoisonGoesToDeadLetterSubject(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, url string) {
		b := newBroker(t, url, nil)
		dlq := b.prefix + ".dead"
		b.addStream(t, jetstream.StreamConfig{Name: b.stream + "_DEAD", Subjects: []string{dlq}})
		sub, err := b.nc.SubscribeSync(dlq)
		if err != nil {
			t.Fatal(err)
		}
		values := payloads(0, 10)
		values[4] = []byte(`{"orderId":`)    // does not decode
		values[6] = []byte(`{"orderId":""}`) // refused by Validate
		msgs := make([]*nats.Msg, len(values))
		for i, v := range values {
			msgs[i] = &nats.Msg{Subject: b.subject, Data: v, Header: nats.Header{"trace-id": {"t-" + strconv.Itoa(i)}}}
		}
		b.publishMsgs(t, msgs...)
		store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
		w, commits := triggertest.Flow()
		e := triggertest.Engine(t, store, 4)
		consume(t, b, newTrigger(t, e, w, nil), natsjs.Config{DeadLetterSubject: dlq})
		triggertest.WaitRuns(t, store, "order-flow", 8, time.Minute)
		info := b.waitAcked(t, "flux", 10)
		if info.Delivered.Consumer != 10 {
			t.Errorf("%d deliveries, want 10: the poison is not delivered again", info.Delivered.Consumer)
		}
		got := map[string]*nats.Msg{}
		for range 2 {
			m, err := sub.NextMsg(30 * time.Second)
			if err != nil {
				t.Fatalf("reading the dead-letter subject: %v (got %d messages)", err, len(got))
			}
			got[m.Header.Get("flux-sequence")] = m
		}
		for i, reason := range map[int]string{4: "decoding", 6: "orderId"} {
			m := got[strconv.Itoa(i+1)]
			if m == nil {
				t.Errorf("message %d (sequence %d) is not on the dead-letter subject; got sequences %v", i, i+1, keys(got))
				continue
			}
			h := m.Header
			if string(m.Data) != string(values[i]) || h.Get("trace-id") != "t-"+strconv.Itoa(i) ||
				h.Get("flux-stream") != b.stream || h.Get("flux-subject") != b.subject ||
				!strings.Contains(h.Get("flux-error"), reason) {
				t.Errorf("dead letter of message %d: data %q headers %v; want its data and headers, its position and an error about %q",
					i, m.Data, h, reason)
			}
		}
		dead, err := b.js.Stream(context.Background(), b.stream+"_DEAD")
		if err != nil || dead.CachedInfo().State.Msgs != 2 {
			t.Fatalf("dead-letter stream: %v; want it to hold 2 messages", err)
		}
		if runs, twice := commits.Runs(); runs != 8 || twice != 0 {
			t.Fatalf("%d runs committed, %d twice; want 8 and 0", runs, twice)
		}
		for _, seq := range []int{6, 8, 10} { // after each poison message
			if run, err := e.Get(context.Background(), b.stream+"/"+strconv.Itoa(seq)); err != nil || run.Status != flux.StatusCompleted {
				t.Errorf("the message at sequence %d: %v, %v; want a completed run", seq, run, err)
			}
		}
	})
}

func keys(m map[string]*nats.Msg) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}

func TestPoisonWithoutDeadLetterIsTerminated(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, url string) {
		b := newBroker(t, url, nil)
		values := payloads(0, 5)
		values[1] = []byte("not json")
		b.publish(t, values...)
		store := triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
		w, _ := triggertest.Flow()
		e := triggertest.Engine(t, store, 2)
		consume(t, b, newTrigger(t, e, w, nil), natsjs.Config{})
		triggertest.WaitRuns(t, store, "order-flow", 4, time.Minute)
		info := b.waitAcked(t, "flux", 5)
		if info.Delivered.Consumer != 5 {
			t.Fatalf("%d deliveries, want 5: the poison is terminated, not delivered again", info.Delivered.Consumer)
		}
	})
}

// flaky is a store whose Create fails while down is set.
type flaky struct {
	flux.Storage
	down     atomic.Bool
	failures atomic.Int64
}

func (f *flaky) Create(ctx context.Context, p driver.CreateParams) (driver.Written, error) {
	if f.down.Load() {
		f.failures.Add(1)
		return driver.Written{}, errors.New("injected: storage unreachable")
	}
	return f.Storage.Create(ctx, p)
}

func TestStorageDownAcknowledgesNothing(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, url string) {
		const n = 5
		b := newBroker(t, url, nil)
		b.publish(t, payloads(0, n)...)
		store := &flaky{Storage: triggertest.OpenSQLite(t, triggertest.SQLitePath(t))}
		store.down.Store(true)
		w, commits := triggertest.Flow()
		e := triggertest.Engine(t, store, 2)
		d := new(triggertest.Deliveries)
		consume(t, b, newTrigger(t, e, w, d), natsjs.Config{})
		deadline := time.Now().Add(time.Minute)
		for store.failures.Load() < 4*n {
			if time.Now().After(deadline) {
				t.Fatalf("%d failed stores after a minute, want %d", store.failures.Load(), 4*n)
			}
			time.Sleep(5 * time.Millisecond) // polling: the consumer is retrying
		}
		info := b.consumerInfo(t, "flux")
		if info.AckFloor.Stream != 0 || info.NumPending != 0 {
			t.Fatalf("while storage is down: ack floor %d, %d pending; want nothing acknowledged and every message delivered",
				info.AckFloor.Stream, info.NumPending)
		}
		if total, _ := triggertest.Count(t, store, "order-flow"); total != 0 {
			t.Fatalf("%d runs stored while storage is down", total)
		}
		store.down.Store(false)
		triggertest.WaitRuns(t, store, "order-flow", n, time.Minute)
		b.waitAcked(t, "flux", n)
		for seq := 1; seq <= n; seq++ {
			if got := d.Count(b.stream + "/" + strconv.Itoa(seq)); got < 2 {
				t.Errorf("message %d handled %d times, want it delivered again after failing", seq, got)
			}
		}
		if runs, twice := commits.Runs(); runs != n || twice != 0 {
			t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, n)
		}
	})
}

// TestTenThousandMessagesTenThousandRuns runs on SQLite with the embedded
// server, and on PostgreSQL with the server at FLUX_NATS_URL (the embedded
// one when that is unset): one 10,000-message run per server costs half
// the time of two under -race.
func TestTenThousandMessagesTenThousandRuns(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var store flux.Storage
			url := embedded(t)
			if kind == "sqlite" {
				store = triggertest.OpenSQLite(t, triggertest.SQLitePath(t))
			} else {
				store = triggertest.OpenPostgres(t, triggertest.PostgresSchema(t))
				if u := os.Getenv("FLUX_NATS_URL"); u != "" {
					url = u
				} else {
					t.Log("FLUX_NATS_URL is unset: this runs against the embedded server only")
				}
			}
			const n = 10_000
			b := newBroker(t, url, nil)
			b.publish(t, payloads(0, n)...)
			w, commits := triggertest.Flow()
			e := triggertest.Engine(t, store, 16)
			d := new(triggertest.Deliveries)
			consume(t, b, newTrigger(t, e, w, d), natsjs.Config{})
			// Listing 10,000 runs takes seconds under -race: count the
			// commits until they are all in, then list.
			deadline := time.Now().Add(3 * time.Minute)
			for runs, _ := commits.Runs(); runs < n; runs, _ = commits.Runs() {
				if time.Now().After(deadline) {
					t.Fatalf("after 3m: %d runs committed, want %d", runs, n)
				}
				time.Sleep(50 * time.Millisecond) // polling a counter with a deadline
			}
			triggertest.WaitRuns(t, store, "order-flow", n, time.Minute)
			b.waitAcked(t, "flux", n)
			runs, twice := commits.Runs()
			if runs != n || twice != 0 {
				t.Fatalf("%d runs committed, %d of them twice; want %d and 0", runs, twice, n)
			}
			if got := len(d.Seen()); got != n {
				t.Fatalf("%d distinct messages delivered, want %d", got, n)
			}
		})
	}
}

func TestRunRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	w, _ := triggertest.Flow()
	e := triggertest.Engine(t, flux.NewMemoryStorage(), -1)
	tr := newTrigger(t, e, w, nil)
	b := newBroker(t, embedded(t), nil)
	ctx := context.Background()
	for name, cfg := range map[string]natsjs.Config{
		"Stream":      {Consumer: "c"},
		"Consumer":    {Stream: b.stream},
		"Concurrency": {Stream: b.stream, Consumer: "c", Concurrency: -1},
		"AckWait":     {Stream: b.stream, Consumer: "c", AckWait: -time.Second},
	} {
		if err := natsjs.Run(ctx, b.js, cfg, tr); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Run without a valid %s: %v, want an error naming it", name, err)
		}
	}
	cfg := natsjs.Config{Stream: b.stream, Consumer: "c"}
	if err := natsjs.Run(ctx, nil, cfg, tr); err == nil || !strings.Contains(err.Error(), "jetstream.New") {
		t.Errorf("Run without JetStream: %v, want an error saying how to make one", err)
	}
	if err := natsjs.Run(ctx, b.js, cfg, nil); err == nil || !strings.Contains(err.Error(), "trigger.New") {
		t.Errorf("Run without a trigger: %v, want an error saying how to make one", err)
	}
	missing := natsjs.Config{Stream: "NO_SUCH_STREAM", Consumer: "c"}
	if err := natsjs.Run(ctx, b.js, missing, tr); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Run on a stream that does not exist: %v, want ErrStreamNotFound", err)
	}
}

// childArgs is what the child process of TestKilledAfterStoreBeforeAck
// does.
type childArgs struct {
	URL    string `json:"url"`
	Stream string `json:"stream"`
	DB     string `json:"db"`
}

// ackWait is the crash test's: the killed consumer's message is delivered
// again this long after it was.
const ackWait = time.Second

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
	nc, err := nats.Connect(a.URL)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = natsjs.Run(context.Background(), js, natsjs.Config{Stream: a.Stream, Consumer: "flux",
		Concurrency: 1, AckWait: ackWait, Logger: triggertest.Quiet}, tr)
	fmt.Fprintln(os.Stderr, "child: Run returned", err)
	return 1
}

func TestKilledAfterStoreBeforeAck(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, url string) {
		const n = 50
		b := newBroker(t, url, nil)
		b.publish(t, payloads(0, n)...)
		path := triggertest.SQLitePath(t)
		// The database exists, with its schema, before the child opens it.
		triggertest.OpenSQLite(t, path)
		arg, _ := json.Marshal(childArgs{URL: url, Stream: b.stream, DB: path})
		ch := triggertest.StartChild(t, "TestKilledAfterStoreBeforeAck", string(arg))
		stalled := ch.Line(t, "stored ", time.Minute)
		ch.Kill() // kill -9: the run is stored, its message not acknowledged

		store := triggertest.OpenSQLite(t, path)
		if run, err := store.Get(context.Background(), stalled); err != nil || run.Status != flux.StatusPending {
			t.Fatalf("the killed consumer's run %s: %v, %v; want it stored, pending", stalled, run, err)
		}
		if info := b.consumerInfo(t, "flux"); info.AckFloor.Stream != 0 {
			t.Fatalf("ack floor %d after the kill, want 0: the killed consumer acknowledged nothing", info.AckFloor.Stream)
		}
		w, commits := triggertest.Flow()
		e := triggertest.Engine(t, store, 4)
		d := new(triggertest.Deliveries)
		consume(t, b, newTrigger(t, e, w, d), natsjs.Config{AckWait: ackWait})
		triggertest.WaitRuns(t, store, "order-flow", n, 2*time.Minute)
		b.waitAcked(t, "flux", n)
		if got := d.Count(stalled); got != 1 {
			t.Fatalf("the stalled message %s was handled %d times by the new consumer, want 1 (delivered again)", stalled, got)
		}
		if run, err := e.Get(context.Background(), stalled); err != nil || run.Status != flux.StatusCompleted {
			t.Fatalf("the stalled run %s: %v, %v; want it completed", stalled, run, err)
		}
		if runs, twice := commits.Runs(); runs != n || twice != 0 {
			t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, n)
		}
	})
}

func TestStopSettlesAndHandsBack(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, url string) {
		const n = 400
		b := newBroker(t, url, nil)
		b.publish(t, payloads(0, n)...)
		store := &triggertest.Creates{Storage: triggertest.OpenSQLite(t, triggertest.SQLitePath(t))}
		w, commits := triggertest.Flow()
		e := triggertest.Engine(t, store, 4)
		tr := newTrigger(t, e, w, nil)
		// A message the first consumer holds unacknowledged would hold the
		// test for AckWait.
		stop := consume(t, b, tr, natsjs.Config{Concurrency: 4, AckWait: time.Minute})
		deadline := time.Now().Add(time.Minute)
		for store.Created.Load() < n/4 {
			if time.Now().After(deadline) {
				t.Fatalf("%d runs stored after a minute", store.Created.Load())
			}
			time.Sleep(time.Millisecond) // polling: the first consumer is consuming
		}
		stop()
		first := store.Created.Load()
		if first == n {
			t.Fatal("the first consumer stored every run before it was stopped")
		}
		// Run returned once what it stored was acknowledged: the messages
		// it started are the first ones, and all of them are.
		if info := b.consumerInfo(t, "flux"); info.AckFloor.Stream != uint64(first) {
			t.Fatalf("ack floor %d after Run returned, want %d: every stored run's message acknowledged, no other",
				info.AckFloor.Stream, first)
		}
		// What it fetched but had not started is handed back at once, not
		// after AckWait.
		start := time.Now()
		consume(t, b, tr, natsjs.Config{Concurrency: 4, AckWait: time.Minute})
		triggertest.WaitRuns(t, store, "order-flow", n, 40*time.Second)
		b.waitAcked(t, "flux", n)
		if d := time.Since(start); d > 40*time.Second {
			t.Fatalf("the second consumer took %v, want well under AckWait (1m): messages were held by the first", d)
		}
		if got := store.Existed.Load(); got != 0 {
			t.Fatalf("%d messages handled again after their runs were stored, want 0", got)
		}
		if runs, twice := commits.Runs(); runs != n || twice != 0 {
			t.Fatalf("%d runs committed, %d twice; want %d and 0", runs, twice, n)
		}
	})
}

func TestRunStopsWhenConsumingCannotGoOn(t *testing.T) {
	t.Parallel()
	servers(t, func(t *testing.T, url string) {
		b := newBroker(t, url, nil)
		w, _ := triggertest.Flow()
		e := triggertest.Engine(t, flux.NewMemoryStorage(), -1)
		tr := newTrigger(t, e, w, nil)
		run := func(js jetstream.JetStream, name string) <-chan error {
			done := make(chan error, 1)
			go func() {
				done <- natsjs.Run(context.Background(), js, natsjs.Config{Stream: b.stream, Consumer: name, Logger: triggertest.Quiet}, tr)
			}()
			return done
		}
		wait := func(done <-chan error, what string) error {
			t.Helper()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("Run returned nil after %s, want an error", what)
				}
				return err
			case <-time.After(30 * time.Second):
				t.Fatalf("Run still running 30s after %s", what)
			}
			return nil
		}

		done := run(b.js, "deleted")
		b.consumerInfo(t, "deleted") // created; wait for it
		if err := b.js.DeleteConsumer(context.Background(), b.stream, "deleted"); err != nil {
			t.Fatal(err)
		}
		err := wait(done, "its consumer was deleted")
		if !errors.Is(err, jetstream.ErrConsumerDeleted) && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("Run after its consumer was deleted: %v, want ErrConsumerDeleted or ErrConsumerNotFound", err)
		}

		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		done = run(js, "closed")
		b.consumerInfo(t, "closed")
		nc.Close()
		if err := wait(done, "its connection closed"); !strings.Contains(err.Error(), "closed") {
			t.Errorf("Run after its connection closed: %v, want an error saying so", err)
		}
	})
}
