package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/jsstore"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/sqlite"
)

// storeOptions are the flags that choose a storage, shared by the commands.
type storeOptions struct {
	storage  string
	db       string
	postgres string
	schema   string // PostgreSQL schema; "" for the store's default, flux
	nats     string
	fs       *flag.FlagSet
}

// addStoreFlags adds --storage, --db, --postgres, --schema and --nats to fs.
func addStoreFlags(fs *flag.FlagSet, def string) *storeOptions {
	o := &storeOptions{fs: fs}
	fs.StringVar(&o.storage, "storage", def, "storage: memory, sqlite, postgres or nats (implied by --db, --postgres or --nats)")
	fs.StringVar(&o.db, "db", "./data/workflows.db", "SQLite database file")
	fs.StringVar(&o.postgres, "postgres", os.Getenv("FLUX_POSTGRES_URL"), "PostgreSQL URL, e.g. postgres://user@host:5432/db (default $FLUX_POSTGRES_URL)")
	fs.StringVar(&o.schema, "schema", "", "PostgreSQL schema of the store, as given to postgres.Schema (default flux)")
	fs.StringVar(&o.nats, "nats", "", "NATS JetStream URL of the replicated store, e.g. nats://host:4222?partitions=4&prefix=flux "+
		"(query: prefix, partitions, replicas as the engines open it)")
	return o
}

// kind returns the storage chosen: an explicit --db, --postgres (or
// --schema) or --nats wins over the default of --storage.
func (o *storeOptions) kind() string {
	set := map[string]bool{}
	o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["storage"]:
		return o.storage
	case set["nats"]:
		return "nats"
	case set["postgres"]:
		return "postgres"
	case set["db"]:
		return "sqlite"
	case set["schema"]:
		return "postgres"
	}
	return o.storage
}

// openExisting is open for the commands that only read: a SQLite file that
// does not exist is an error, where open would create an empty database
// (and its directory) and the command would report no runs.
func (o *storeOptions) openExisting(ctx context.Context) (flux.Storage, error) {
	if err := o.checkSchema(); err != nil {
		return nil, err
	}
	if o.kind() == "sqlite" {
		if _, err := os.Stat(o.db); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no SQLite database at %s: the file does not exist. "+
				"Pass with --db the file your engine writes, or create one with `flux migrate --db %s` (empty) "+
				"or `flux demo --db %s` (with a sample run)", o.db, shellQuote(o.db), shellQuote(o.db))
		} else if err != nil {
			return nil, fmt.Errorf("cannot read the SQLite database %s: %w", o.db, err)
		}
	}
	return o.open(ctx)
}

// open opens the chosen storage, creating a SQLite file that does not
// exist, and returns it; the caller closes it.
func (o *storeOptions) open(ctx context.Context) (flux.Storage, error) {
	if err := o.checkSchema(); err != nil {
		return nil, err
	}
	switch o.kind() {
	case "memory":
		return flux.NewMemoryStorage(), nil
	case "sqlite":
		if dir := filepath.Dir(o.db); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		s, err := sqlite.Open(o.db)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "postgres":
		if o.postgres == "" {
			return nil, fmt.Errorf("--storage postgres needs --postgres URL (or FLUX_POSTGRES_URL)")
		}
		var opts []postgres.Option
		if o.schema != "" {
			opts = append(opts, postgres.Schema(o.schema))
		}
		s, err := postgres.Open(ctx, o.postgres, opts...)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "nats":
		if o.nats == "" {
			return nil, fmt.Errorf("--storage nats needs --nats URL")
		}
		url, opts, err := natsStoreURL(o.nats)
		if err != nil {
			return nil, err
		}
		s, err := jsstore.OpenURL(ctx, url, opts...)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("unknown --storage %q: want memory, sqlite, postgres or nats", o.storage)
	}
}

// checkSchema refuses a --schema given for another storage than PostgreSQL.
func (o *storeOptions) checkSchema() error {
	if o.schema != "" && o.kind() != "postgres" {
		return fmt.Errorf("--schema %s is for PostgreSQL, not --storage %s", o.schema, o.kind())
	}
	return nil
}

// natsStoreURL splits a --nats URL into the server URLs and the store's
// options, given in its query: prefix, partitions and replicas.
func natsStoreURL(s string) (string, []jsstore.Option, error) {
	servers, query, _ := strings.Cut(s, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", nil, fmt.Errorf("--nats %s: the query does not parse: %w", s, err)
	}
	var opts []jsstore.Option
	for key, vals := range q {
		v := vals[len(vals)-1]
		switch key {
		case "prefix":
			opts = append(opts, jsstore.Prefix(v))
		case "partitions", "replicas":
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", nil, fmt.Errorf("--nats %s: %s=%q is not a number", s, key, v)
			}
			if key == "partitions" {
				opts = append(opts, jsstore.Partitions(n))
			} else {
				opts = append(opts, jsstore.Replicas(n))
			}
		default:
			return "", nil, fmt.Errorf("--nats %s: unknown option %q: the query takes prefix, partitions and replicas", s, key)
		}
	}
	return servers, opts, nil
}
