// Package storeurl opens a Flux storage named by one URL, so that a program
// configured by a single setting (an environment variable such as
// FLUX_STORAGE_URL, a flag) can run on any of Flux's stores:
//
//	memory:                                   flux.NewMemoryStorage
//	sqlite:./data/workflows.db                sqlite.Open("./data/workflows.db")
//	sqlite:///var/lib/flux/workflows.db       sqlite.Open("/var/lib/flux/workflows.db")
//	file:./data/workflows.db                  the same as sqlite:
//	postgres://user@host:5432/db?sslmode=disable
//	postgresql://user@host:5432/db            postgres.Open(ctx, url)
//
// # SQLite
//
// The path follows "sqlite:" (or "file:"); a leading "//" is dropped, so
// "sqlite:///abs/path" is the absolute path /abs/path and "sqlite://rel" the
// relative one. The path is percent-decoded. The query may set
// synchronous (FULL, NORMAL, EXTRA or OFF), busy_timeout (a Go duration
// such as 10s) and max_readers: see [sqlite.Synchronous],
// [sqlite.BusyTimeout] and [sqlite.MaxReaders].
//
// # PostgreSQL
//
// The URL is given to [postgres.Open] as it is, with pgx's settings such as
// sslmode and pool_max_conns, except for two settings of Flux's own, which
// are taken out of it: flux_schema (see [postgres.Schema]) and flux_writers
// (see [postgres.Writers]).
//
// # Connection pools in functions
//
// A function instance (AWS Lambda, Cloud Functions, Azure Functions) runs
// one invocation at a time and a cold start reuses no connection, so a
// large pool only multiplies the connections the database must hold across
// many instances. Give such instances a small pool, for example
//
//	postgres://app@db:5432/app?sslmode=require&pool_max_conns=2&flux_writers=1
//
// and put a connection pooler between them and the database: PgBouncer or
// RDS Proxy in transaction mode is fine. Flux's migrations take
// transaction-level locks and settings only; its one session-level feature
// is the LISTEN it uses to hear at once of runs that need an owner.
// Through a pooler in transaction mode notifications do not arrive, and
// engines find those runs by polling every flux.Config.RecoveryInterval
// instead. pgx caches prepared statements per connection by default; a
// pooler that does not carry them across server connections (PgBouncer
// before 1.21 or without max_prepared_statements; RDS Proxy, which pins the
// session) wants default_query_exec_mode=exec in the URL as well. The
// default pool of [postgres.Open] ([postgres.DefaultMaxConns]) suits a
// long-lived server, not a function.
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/sqlite"
)

// ErrInvalidURL is wrapped by the errors of Open for a URL it cannot read:
// empty, of an unknown scheme, or with a setting it does not know.
var ErrInvalidURL = errors.New("storeurl: invalid storage URL")

// forms lists the URLs Open accepts, for its errors.
const forms = "memory:, sqlite:PATH (such as sqlite:./data/workflows.db or sqlite:///abs/path.db), " +
	"file:PATH, or postgres://user@host:5432/db (also postgresql://)"

// Open opens the storage named by rawURL (see the package documentation for
// the forms) and returns it. The caller closes it, after closing the engines
// that use it: [flux.Storage] has a Close method.
func Open(ctx context.Context, rawURL string) (flux.Storage, error) {
	rawURL = strings.TrimSpace(rawURL)
	if rawURL == "" {
		return nil, fmt.Errorf("%w: the URL is empty; want %s", ErrInvalidURL, forms)
	}
	scheme, rest, ok := strings.Cut(rawURL, ":")
	if !ok {
		return nil, fmt.Errorf("%w: %q has no scheme; want %s", ErrInvalidURL, rawURL, forms)
	}
	switch strings.ToLower(scheme) {
	case "memory":
		if r := strings.TrimPrefix(rest, "//"); r != "" {
			return nil, fmt.Errorf("%w: memory: takes nothing after the scheme, got %q", ErrInvalidURL, rest)
		}
		return flux.NewMemoryStorage(), nil
	case "sqlite", "file":
		return openSQLite(scheme, rest)
	case "postgres", "postgresql":
		return openPostgres(ctx, rawURL)
	default:
		// The rest is not echoed: it may hold a password.
		return nil, fmt.Errorf("%w: unknown scheme %q; want %s", ErrInvalidURL, scheme, forms)
	}
}

// openSQLite opens the SQLite database named by rest, the URL after
// "scheme:".
func openSQLite(scheme, rest string) (flux.Storage, error) {
	rawPath, query, _ := strings.Cut(rest, "?")
	rawPath = strings.TrimPrefix(rawPath, "//")
	path, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %s:%s: bad percent-encoding in the path: %w", ErrInvalidURL, scheme, rest, err)
	}
	switch path {
	case "":
		return nil, fmt.Errorf("%w: %s: needs a file path, such as %s:./data/workflows.db", ErrInvalidURL, scheme, scheme)
	case ":memory:":
		return nil, fmt.Errorf("%w: %s:%s: use memory: for a store in memory", ErrInvalidURL, scheme, rest)
	}
	opts, err := sqliteOptions(query)
	if err != nil {
		return nil, fmt.Errorf("%w: %s:%s: %w", ErrInvalidURL, scheme, rest, err)
	}
	s, err := sqlite.Open(path, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// sqliteOptions reads the settings of a sqlite: URL's query.
func sqliteOptions(query string) ([]sqlite.Option, error) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("bad query: %w", err)
	}
	var opts []sqlite.Option
	for key, vals := range q {
		v := vals[len(vals)-1]
		switch key {
		case "synchronous":
			opts = append(opts, sqlite.Synchronous(v))
		case "busy_timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf("busy_timeout=%q: want a duration such as 10s: %w", v, err)
			}
			opts = append(opts, sqlite.BusyTimeout(d))
		case "max_readers":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("max_readers=%q: want a number: %w", v, err)
			}
			opts = append(opts, sqlite.MaxReaders(n))
		default:
			return nil, fmt.Errorf("unknown setting %q; want synchronous, busy_timeout or max_readers", key)
		}
	}
	return opts, nil
}

// openPostgres opens the PostgreSQL store at rawURL after taking Flux's own
// settings out of its query.
func openPostgres(ctx context.Context, rawURL string) (flux.Storage, error) {
	base, query, hasQuery := strings.Cut(rawURL, "?")
	var opts []postgres.Option
	if hasQuery {
		// Only the query is parsed and rewritten: the rest of the URL is
		// pgx's to read (it allows lists of hosts that net/url refuses).
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("%w: the query of the postgres URL: %w", ErrInvalidURL, err)
		}
		if vals, ok := q["flux_schema"]; ok {
			opts = append(opts, postgres.Schema(vals[len(vals)-1]))
			q.Del("flux_schema")
		}
		if vals, ok := q["flux_writers"]; ok {
			n, err := strconv.Atoi(vals[len(vals)-1])
			if err != nil {
				return nil, fmt.Errorf("%w: flux_writers=%q: want a number: %w", ErrInvalidURL, vals[len(vals)-1], err)
			}
			opts = append(opts, postgres.Writers(n))
			q.Del("flux_writers")
		}
		rawURL = base
		if len(q) > 0 {
			rawURL += "?" + q.Encode()
		}
	}
	s, err := postgres.Open(ctx, rawURL, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}
