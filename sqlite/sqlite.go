// Package sqlite is the SQLite [flux.Storage]: embedded, pure Go
// (modernc.org/sqlite, no cgo), one file on disk. It is the CLI's default
// store.
//
// Durability: a write returns once its transaction committed. With the
// default synchronous=FULL a recorded checkpoint survives a crash of the
// process and a power loss; with [Synchronous]("NORMAL") it survives a crash
// of the process, but the last commits before a power loss or an
// operating-system crash may be lost. Open and New switch modernc.org/sqlite
// to committing with fdatasync, process-wide, as SQLite's own Linux builds
// do: it is as durable as fsync and much cheaper.
//
// An fsync per transaction would limit a store to a few thousand writes a
// second, so writes go through group commit: one writer goroutine, on the
// one writing connection, takes every write pending at that moment
// (checkpoints of all concurrent runs, creates, claims) and commits them in
// one transaction, one fsync; each caller waits for its own result, and a
// compare-and-set that fails fails only its own write. Reads use a pool of
// other connections and never wait for the writer (WAL mode).
//
// A run is a header row in runs (what List reads) and rows in nodes,
// attempts and node_data, in the layout package internal/sqlstore describes
// and PostgreSQL shares: a checkpoint updates the header and writes the rows
// that changed. A run's signals are rows of signals, read only for runs that
// had one; cron schedules are rows of schedules. Migrations are embedded and
// recorded in schema_migrations; Open and New apply them, each in one
// transaction, so that a migration cut off half-way is applied again whole
// by the next Open.
//
// Several processes may open one file; each has its own writer, and SQLite
// serialises them (busy_timeout). For many workers, use PostgreSQL.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/tracestore"
	"github.com/flux-go/flux/internal/wake"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// Store is a [flux.Storage] in a SQLite database. It is safe for concurrent
// use. Close it when done.
type Store struct {
	cfg   config
	reads *sql.DB   // the read pool
	owned []*sql.DB // closed by Close: what Open opened
	conn  *sql.Conn // the writer's connection
	w     writeStmts

	mu     sync.Mutex
	queue  []*request
	closed bool
	wake   chan struct{} // a token: the queue may be non-empty or closed set
	exited chan struct{} // closed when the writer goroutine returns
	shut   atomic.Bool

	batches, batchedWrites atomic.Int64 // for the benchmarks' batch size

	wakes wake.Broadcast // engines to tell of runs that need an owner

	traceMu sync.Mutex
	trace   *tracestore.Sink // made by the first TraceSink
}

// Wakeups implements [driver.Waker]: the engines of this process that use
// the store hear of runs that need an owner at once. (A SQLite file has one
// process writing it.)
func (s *Store) Wakeups() (<-chan struct{}, func()) { return s.wakes.Subscribe() }

var _ driver.Store = (*Store)(nil)

// ErrClosed reports use of a Store after Close. It wraps [flux.ErrClosed].
var ErrClosed = fmt.Errorf("sqlite: store is closed: %w", flux.ErrClosed)

// Option configures Open and New.
type Option func(*config)

type config struct {
	sync        string
	busyTimeout time.Duration
	readers     int
	err         error
}

// Synchronous sets PRAGMA synchronous of the writing connection. "FULL", the
// default, makes every commit durable before the write returns: it survives
// a power loss. "NORMAL" skips the fsync of each commit; a commit survives a
// crash of the process but the last ones may be lost in a power loss or an
// operating-system crash, though the database stays intact; writes are
// faster. "EXTRA" is accepted and in WAL mode is the same as FULL. "OFF"
// never syncs: a power loss may damage the database. It is for tests.
func Synchronous(mode string) Option {
	return func(c *config) {
		m := strings.ToUpper(strings.TrimSpace(mode))
		switch m {
		case "OFF", "NORMAL", "FULL", "EXTRA":
			c.sync = m
		default:
			c.err = fmt.Errorf("sqlite: Synchronous(%q): want FULL, NORMAL, EXTRA or OFF", mode)
		}
	}
}

// BusyTimeout sets how long a connection waits for another process's lock
// before failing with SQLITE_BUSY. The default is 10 seconds.
func BusyTimeout(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.err = fmt.Errorf("sqlite: BusyTimeout(%s): want a duration of zero or more", d)
			return
		}
		c.busyTimeout = d
	}
}

// MaxReaders sets the size of the read pool that Open creates: how many
// Get and List calls run at once. The default is max(4, GOMAXPROCS). New
// reads through the *sql.DB it is given instead.
func MaxReaders(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.err = fmt.Errorf("sqlite: MaxReaders(%d): want at least 1", n)
			return
		}
		c.readers = n
	}
}

func newConfig(opts []Option) (config, error) {
	c := config{sync: "FULL", busyTimeout: 10 * time.Second, readers: max(4, runtime.GOMAXPROCS(0))}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c, c.err
}

// Open opens the SQLite database at path, creating the file and its parent
// directory if needed, and migrates it to the current schema. It opens one
// connection for writes and a pool for reads.
func Open(path string, opts ...Option) (*Store, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	switch {
	case path == "":
		return nil, errors.New("sqlite: Open: empty path; pass a file path such as ./data/workflows.db")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite: Open(%q): pass a file path; for a store in memory use flux.NewMemoryStorage", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("sqlite: Open(%q): it is a directory; pass the path of a database file", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("sqlite: creating the directory of %s: %w", path, err)
	}
	// SQLite reads a URI path percent-decoded; escaping keeps ?, # and % in
	// file names from being taken for URI syntax.
	uri := "file:" + (&url.URL{Path: path}).EscapedPath()
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", cfg.busyTimeout.Milliseconds())
	writes, err := sql.Open("sqlite", uri+"?"+busy)
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", path, err)
	}
	writes.SetMaxOpenConns(1)
	reads, err := sql.Open("sqlite", uri+"?"+busy+"&_pragma=query_only(1)")
	if err != nil {
		writes.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", path, err)
	}
	reads.SetMaxOpenConns(cfg.readers)
	reads.SetMaxIdleConns(cfg.readers)
	s, err := newStore(writes, reads, cfg)
	if err != nil {
		writes.Close()
		reads.Close()
		return nil, fmt.Errorf("sqlite: opening %s: %w", path, err)
	}
	s.owned = []*sql.DB{writes, reads}
	return s, nil
}

// New returns a Store on db, a database opened with the "sqlite" driver of
// modernc.org/sqlite, and migrates it. The Store keeps one of db's
// connections for its writes, so db must allow at least two; set the busy
// timeout of the others in the data source name
// (?_pragma=busy_timeout(10000)). Close does not close db.
func New(db *sql.DB, opts ...Option) (*Store, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("sqlite: New: db is nil")
	}
	if n := db.Stats().MaxOpenConnections; n == 1 {
		return nil, errors.New("sqlite: New: db allows one connection, which the writer would keep: allow at least two (db.SetMaxOpenConns)")
	}
	return newStore(db, db, cfg)
}

func newStore(writes, reads *sql.DB, cfg config) (_ *Store, err error) {
	ctx := context.Background()
	// SQLite's own Linux builds commit with fdatasync, which makes a commit
	// as durable as fsync (the data, and the file size needed to read it)
	// at about a fifth of the cost here; the transpiled library defaults to
	// fsync unless told, process-wide. Where it is unavailable the call
	// fails and fsync stays.
	_, _ = sqlite3.Fdatasync(true)
	conn, err := writes.Conn(ctx)
	if err != nil {
		return nil, explain(err)
	}
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	var mode string
	for _, p := range []string{
		fmt.Sprintf("PRAGMA busy_timeout = %d", cfg.busyTimeout.Milliseconds()),
		"PRAGMA synchronous = " + cfg.sync,
	} {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			return nil, fmt.Errorf("%s: %w", p, explain(err))
		}
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return nil, fmt.Errorf("switching to WAL mode: %w", explain(err))
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("the database stays in journal mode %q instead of WAL (an in-memory database?): use a file", mode)
	}
	if err := migrateConn(ctx, conn); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, reads: reads, conn: conn, wake: make(chan struct{}, 1), exited: make(chan struct{})}
	if err := s.w.prepare(ctx, conn); err != nil {
		return nil, err
	}
	go s.writer()
	return s, nil
}

// explain turns SQLite's "file is not a database" into an error that says
// what to do.
func explain(err error) error {
	var e *sqlite3.Error
	if errors.As(err, &e) && e.Code()&0xff == sqlite3lib.SQLITE_NOTADB {
		return fmt.Errorf("the file is not a SQLite database (another kind of file, encrypted, or damaged); pass the path of a Flux database or of a new file: %w", err)
	}
	return err
}

// Close writes the buffered trace events (see TraceSink), waits for the
// writes in progress, then closes the store. Later calls
// return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	// The trace sink writes through the writer: flush it while it runs.
	var traceErr error
	s.traceMu.Lock()
	if s.trace != nil {
		traceErr = s.trace.Close()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.traceMu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.traceMu.Unlock()
	s.signal()
	<-s.exited
	s.shut.Store(true)
	errs := []error{traceErr, s.w.close(), s.conn.Close()}
	for _, db := range s.owned {
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}

// Migrate applies the migrations the database lacks. Open and New call it.
func (s *Store) Migrate(ctx context.Context) error {
	return s.submit(ctx, func(t *txn) error { return migrate(ctx, t.conn) })
}
