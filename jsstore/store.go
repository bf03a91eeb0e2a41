package jsstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/wake"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Store is a [driver.Store] on NATS JetStream key-value buckets. It also
// implements [driver.Signaler], [driver.Scheduler] and [driver.Waker].
// It is safe for concurrent use, and several Stores, in one process or in
// many, may share the same buckets: every write is a compare-and-set on
// the revision of the run's key.
type Store struct {
	nc    *nats.Conn
	owned bool // Close closes nc
	js    jetstream.JetStream
	cfg   config

	parts     []*partition
	schedules jetstream.KeyValue

	// offset is the estimated difference between the JetStream server's
	// clock and the local one, in nanoseconds; measured is when it was
	// last measured (local UnixNano), probing whether one is under way.
	offset   atomic.Int64
	measured atomic.Int64
	probing  atomic.Bool

	// hintRevs caches the revisions of the claim index keys this Store
	// wrote last, so that most index writes need no read first.
	hintRevs *memo[uint64]

	// runLocks serialize this Store's writes of one run (by a hash of its
	// ID): see mutateWith.
	runLocks [256]sync.Mutex

	// lastWrites are the records this Store wrote last, by run ID.
	lastWrites *memo[lastWrite]

	limitMu sync.Mutex // held by ClaimExpired under limits, in this process

	wakes   wake.Broadcast
	wakeSub *nats.Subscription

	closeMu sync.RWMutex
	closed  bool
}

// partition is one bucket of runs, and its index.
type partition struct {
	n      int
	bucket string
	kv     jetstream.KeyValue
	stream jetstream.Stream
	subj   string // "$KV.<bucket>.": the subject prefix of its keys
}

var _ driver.Store = (*Store)(nil)
var _ driver.Signaler = (*Store)(nil)
var _ driver.Scheduler = (*Store)(nil)
var _ driver.Waker = (*Store)(nil)

// Option configures [Open].
type Option func(*config)

type config struct {
	replicas   int
	partitions int
	prefix     string
	storage    jetstream.StorageType
}

// Replicas sets how many servers keep each bucket (1 to 5; JetStream
// replicates with Raft, so 3 survives the loss of one server and 5 of
// two). The default is 1. It applies when Open creates the buckets; Open
// updates existing buckets to it.
func Replicas(n int) Option { return func(c *config) { c.replicas = n } }

// Partitions sets over how many buckets runs are spread, by a hash of
// their ID (default 1). Every Store sharing buckets must use the same
// number: a run is looked for in one partition only.
func Partitions(n int) Option { return func(c *config) { c.partitions = n } }

// Prefix sets the prefix of the names of the buckets and subjects the
// store uses (default "flux"): buckets <prefix>_runs_<n> and
// <prefix>_schedules, the wake-up subject <prefix>.wake. Letters, digits,
// '-' and '_' only.
func Prefix(s string) Option { return func(c *config) { c.prefix = s } }

// MemoryStorage keeps the buckets in the servers' memory rather than on
// disk: faster, and lost when every replica restarts. For tests and
// caches of runs, not for runs that must survive.
func MemoryStorage() Option { return func(c *config) { c.storage = jetstream.MemoryStorage } }

// OpenTimeout bounds [Open] when its context has no deadline.
const OpenTimeout = 30 * time.Second

var prefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Open opens the store on the buckets named by the options, creating
// those that do not exist, over connection nc, which the caller keeps
// and closes after the Store. Without a deadline on ctx, Open gives up
// after [OpenTimeout]: creating a replicated bucket waits for its Raft
// group to elect a leader, which takes seconds on a busy cluster.
func Open(ctx context.Context, nc *nats.Conn, opts ...Option) (*Store, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, OpenTimeout)
		defer cancel()
	}
	cfg := config{replicas: 1, partitions: 1, prefix: "flux", storage: jetstream.FileStorage}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	switch {
	case nc == nil:
		return nil, errors.New("jsstore: Open needs a NATS connection; nc is nil")
	case cfg.replicas < 1 || cfg.replicas > 5:
		return nil, fmt.Errorf("jsstore: Replicas(%d): JetStream keeps 1 to 5 replicas", cfg.replicas)
	case cfg.partitions < 1 || cfg.partitions > 1024:
		return nil, fmt.Errorf("jsstore: Partitions(%d): use 1 to 1024", cfg.partitions)
	case !prefixRe.MatchString(cfg.prefix):
		return nil, fmt.Errorf("jsstore: Prefix(%q): use letters, digits, '-' and '_' only", cfg.prefix)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jsstore: %w", err)
	}
	s := &Store{nc: nc, js: js, cfg: cfg, hintRevs: newMemo[uint64](maxCachedHints), lastWrites: newMemo[lastWrite](maxLastWrites)}
	for i := range cfg.partitions {
		name := fmt.Sprintf("%s_runs_%d", cfg.prefix, i)
		kv, st, err := s.bucket(ctx, name, "flux runs, partition "+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		s.parts = append(s.parts, &partition{n: i, bucket: name, kv: kv, stream: st, subj: "$KV." + name + "."})
		if i == 0 {
			if err := s.checkPartitions(ctx); err != nil {
				return nil, err
			}
		}
	}
	if s.schedules, _, err = s.bucket(ctx, cfg.prefix+"_schedules", "flux cron schedules"); err != nil {
		return nil, err
	}
	if err := s.measure(ctx); err != nil {
		return nil, err
	}
	s.wakeSub, err = nc.Subscribe(s.wakeSubject(), func(*nats.Msg) { s.wakes.Signal() })
	if err != nil {
		return nil, fmt.Errorf("jsstore: subscribing to wake-ups on %s: %w", s.wakeSubject(), err)
	}
	return s, nil
}

// checkPartitions records the number of partitions in the first
// partition's key m.partitions, or checks it against the one recorded: a
// Store opened with another number would look for runs in the wrong
// buckets.
func (s *Store) checkPartitions(ctx context.Context) error {
	kv, want := s.parts[0].kv, strconv.Itoa(s.cfg.partitions)
	_, err := kv.Create(ctx, "m.partitions", []byte(want))
	if err == nil || !isConflict(err) {
		if err != nil {
			return fmt.Errorf("jsstore: recording the partitions in bucket %s: %w", s.parts[0].bucket, err)
		}
		return nil
	}
	e, err := kv.Get(ctx, "m.partitions")
	if err != nil {
		return fmt.Errorf("jsstore: reading the partitions of bucket %s: %w", s.parts[0].bucket, err)
	}
	if got := string(e.Value()); got != want {
		return fmt.Errorf("jsstore: the runs of prefix %q are spread over %s partitions, not %s: open with Partitions(%s)",
			s.cfg.prefix, got, want, got)
	}
	return nil
}

// OpenURL connects to the NATS server at url and opens the store on it
// (see [Open]); Close closes the connection.
func OpenURL(ctx context.Context, url string, opts ...Option) (*Store, error) {
	nc, err := nats.Connect(url, nats.Name("flux jsstore"))
	if err != nil {
		return nil, fmt.Errorf("jsstore: connecting to %s: %w", url, err)
	}
	s, err := Open(ctx, nc, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// bucket creates or updates the key-value bucket name and binds to it.
// The bucket's stream is made as package jetstream makes those of
// key-value buckets, except that reads go to the stream's leader rather
// than to any replica (AllowDirect false): a replica may answer before it
// has applied the latest write, and a store must read its own writes.
func (s *Store) bucket(ctx context.Context, name, desc string) (jetstream.KeyValue, jetstream.Stream, error) {
	scfg := jetstream.StreamConfig{
		Name:              "KV_" + name,
		Description:       desc,
		Subjects:          []string{"$KV." + name + ".>"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           s.cfg.storage,
		Replicas:          s.cfg.replicas,
		AllowRollup:       true,
		DenyDelete:        true,
		Duplicates:        2 * time.Minute,
		AllowDirect:       false,
		Discard:           jetstream.DiscardNew,
	}
	st, err := s.js.CreateOrUpdateStream(ctx, scfg)
	if err != nil {
		return nil, nil, fmt.Errorf("jsstore: creating bucket %s (%d replicas): %w", name, s.cfg.replicas, err)
	}
	kv, err := s.js.KeyValue(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("jsstore: binding bucket %s: %w", name, err)
	}
	return kv, st, nil
}

func (s *Store) wakeSubject() string { return s.cfg.prefix + ".wake" }

// Wakeups implements [driver.Waker]: engines of every process sharing the
// buckets are told, by a core NATS message on <prefix>.wake, of runs
// stored pending and free and of leases given back.
func (s *Store) Wakeups() (<-chan struct{}, func()) { return s.wakes.Subscribe() }

// wake tells every Store sharing the buckets that a run needs an owner.
func (s *Store) wake() { _ = s.nc.Publish(s.wakeSubject(), nil) }

// Close implements [driver.Store]. It closes the connection only if
// [OpenURL] opened it.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.wakeSub != nil {
		_ = s.wakeSub.Unsubscribe()
	}
	if s.owned {
		s.nc.Close()
	}
	return nil
}

var errClosed = fmt.Errorf("jsstore: the store is closed: %w", driver.ErrClosed)

// live returns errClosed after Close.
func (s *Store) live() error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return errClosed
	}
	return nil
}

// measureEvery is how often the server's clock is measured again.
const measureEvery = 30 * time.Second

// measure estimates the offset of the server's clock from the local one:
// it writes a key and compares the server's time of the write with the
// middle of the local times before and after it.
func (s *Store) measure(ctx context.Context) error {
	p := s.parts[0]
	t0 := time.Now()
	rev, err := p.kv.Put(ctx, "m.clock", []byte(t0.Format(time.RFC3339Nano)))
	t1 := time.Now()
	if err != nil {
		return fmt.Errorf("jsstore: writing to bucket %s: %w", p.bucket, err)
	}
	m, err := p.stream.GetMsg(ctx, rev)
	if err != nil {
		return fmt.Errorf("jsstore: reading from bucket %s: %w", p.bucket, err)
	}
	mid := t0.Add(t1.Sub(t0) / 2)
	s.offset.Store(int64(m.Time.Sub(mid)))
	s.measured.Store(t1.UnixNano())
	return nil
}

// now returns the storage's clock: the JetStream server's, estimated as
// the local clock plus the offset last measured. It measures again,
// in the calling goroutine, when the last measure is old.
func (s *Store) now(ctx context.Context) time.Time {
	t := time.Now()
	if t.UnixNano()-s.measured.Load() > int64(measureEvery) && s.probing.CompareAndSwap(false, true) {
		_ = s.measure(ctx) // on failure the old offset stays
		s.probing.Store(false)
		t = time.Now()
	}
	return t.Add(time.Duration(s.offset.Load()))
}

// Now returns the storage's clock, by which leases expire: the local
// clock corrected by the offset of the JetStream server's clock, measured
// when the store opened and every 30 seconds since.
func (s *Store) Now() time.Time { return s.now(context.Background()) }

// enc encodes a string as one token of a key: "x" and its unpadded
// base64url, so that any run ID, workflow or wait key fits.
func enc(s string) string { return "x" + base64.RawURLEncoding.EncodeToString([]byte(s)) }

// dec decodes a token made by enc.
func dec(tok string) (string, error) {
	if len(tok) == 0 || tok[0] != 'x' {
		return "", fmt.Errorf("jsstore: key token %q was not made by this store", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(tok[1:])
	return string(b), err
}

// idHash spreads run IDs over partitions and write locks.
func idHash(id string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32()
}

// runLock returns the lock of run id's writes in this Store.
func (s *Store) runLock(id string) *sync.Mutex {
	return &s.runLocks[idHash(id)%uint32(len(s.runLocks))]
}

// part returns the partition of run id.
func (s *Store) part(id string) *partition {
	return s.parts[idHash(id)%uint32(len(s.parts))]
}

// Keys of a partition's bucket.
func runKey(id string) string          { return "r." + enc(id) }
func hintKey(wf, id string) string     { return "w." + enc(wf) + "." + enc(id) }
func waitKeyKey(key, id string) string { return "k." + enc(key) + "." + enc(id) }
func limitLockKey(wf string) string    { return "l." + enc(wf) }
func scheduleKey(name string) string   { return "s." + enc(name) }
func hintPrefix(wf string) string      { return "w." + enc(wf) + ".>" }
func waitKeyPrefix(key string) string  { return "k." + enc(key) + ".>" }

// isConflict reports whether err is JetStream's refusal of a write whose
// expected last revision of the key was not the key's.
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return errors.Is(err, jetstream.ErrKeyExists)
}
