// Package postgres is the PostgreSQL [flux.Storage], for production and for
// several engines (processes) sharing one set of runs.
//
// Runs live in the store's schema ("flux" unless [Schema] says otherwise):
// table runs holds one header row per run (status, version, owner, lease,
// wake time, the counts List shows), which each checkpoint updates in place;
// table checkpoints appends one row per write that changed nodes (the nodes
// changed, the attempts appended, the data patch), so a write costs what
// changed, not the run's length. Get reads the header and replays its rows;
// List reads headers only. Signals and schedules have tables of their own.
// Lease and wake times come from the database clock, so the engines sharing
// a database need not agree on the time.
//
// Writes are group-committed: concurrent Create and Checkpoint calls are
// collected by a few writer goroutines and sent as one pipelined batch in a
// single transaction, so the cost of a commit is shared by every run that
// checkpoints at the same moment. Each caller still gets its own result: a
// write that loses its compare-and-set fails alone.
//
// Open and New create the schema and apply the embedded migrations; two
// processes starting at once are serialised by an advisory lock.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/tracestore"
	"github.com/flux-go/flux/internal/wake"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is a [flux.Storage] kept in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	schema  string // as given
	sql     queries

	reqs   chan *writeReq // unbuffered: a send succeeds only when a writer takes it
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	closed atomic.Bool

	// batches and writes count group commits and the writes they carried.
	batches, writes atomic.Int64
	// created counts the runs this store inserted; at analyzeAt it
	// refreshes the table's statistics (see maybeAnalyze).
	created, analyzeAt atomic.Int64
	analyzing          atomic.Bool

	channel    string         // of LISTEN/NOTIFY (see wake.go)
	wakes      wake.Broadcast // this process's engines
	listenOnce sync.Once

	traceMu sync.Mutex
	trace   *tracestore.Sink // made by the first TraceSink
}

var _ flux.Storage = (*Store)(nil)

// Option configures a [Store].
type Option func(*options)

type options struct {
	schema  string
	writers int
}

// Schema sets the PostgreSQL schema that holds the store's tables; the
// default is "flux". The schema is created if it does not exist. Stores with
// different schemas in one database are independent.
func Schema(name string) Option {
	return func(o *options) { o.schema = name }
}

// Writers sets how many group-commit writer goroutines send batches of
// writes at the same time; the default is 2. More writers overlap more
// commits (and hold more pool connections while they do); one writer makes
// the largest batches.
func Writers(n int) Option {
	return func(o *options) { o.writers = n }
}

// DefaultMaxConns is the pool size Open gives a URL that does not set
// pool_max_conns.
const DefaultMaxConns = 16

// Open connects to the PostgreSQL database at url (such as
// "postgres://user@127.0.0.1:5432/db?sslmode=disable"; pgxpool settings like
// pool_max_conns are accepted), applies the migrations and returns the store.
// Close closes the pool it opened.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid database URL (want postgres://user[:password]@host:port/database?sslmode=disable): %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		pctx, cancel = context.WithTimeout(ctx, 15*time.Second)
	}
	err = pool.Ping(pctx)
	cancel()
	if err != nil {
		pool.Close()
		c := cfg.ConnConfig
		return nil, fmt.Errorf("postgres: cannot connect to database %q on %s:%d as user %q (check the URL and that the server is running): %w",
			c.Database, c.Host, c.Port, c.User, err)
	}
	s, err := New(ctx, pool, opts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New returns a store that uses pool, after applying the migrations. Close
// does not close pool.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("postgres: New needs a *pgxpool.Pool, got nil")
	}
	o := options{schema: "flux", writers: 2}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.schema == "" {
		return nil, errors.New("postgres: empty schema name: pass a name to postgres.Schema or leave the option out for \"flux\"")
	}
	if o.writers < 1 {
		return nil, fmt.Errorf("postgres: postgres.Writers(%d): need at least 1 writer", o.writers)
	}
	s := &Store{
		pool:    pool,
		schema:  o.schema,
		sql:     makeQueries(pgx.Identifier{o.schema}.Sanitize()),
		channel: channelName(o.schema),
		reqs:    make(chan *writeReq),
		done:    make(chan struct{}),
	}
	s.analyzeAt.Store(firstAnalyze)
	if err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	s.wg.Add(o.writers)
	for range o.writers {
		go s.writer()
	}
	return s, nil
}

// Close writes the buffered trace events (see TraceSink), stops the
// writers, after the batches in flight, and closes the pool
// if Open made it. Later calls fail with an error wrapping [flux.ErrClosed].
// Close is safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		// Before the pool closes; it marks the store closed.
		err = s.closeTrace()
		close(s.done)
		s.wg.Wait()
		if s.ownPool {
			s.pool.Close()
		}
	})
	return err
}

// Pool returns the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// SchemaName returns the schema that holds the store's tables.
func (s *Store) SchemaName() string { return s.schema }
