package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
	"github.com/flux-go/flux/sqlite"
)

// storeOptions are the flags that choose a storage, shared by the commands.
type storeOptions struct {
	storage  string
	db       string
	postgres string
	fs       *flag.FlagSet
}

// addStoreFlags adds --storage, --db and --postgres to fs.
func addStoreFlags(fs *flag.FlagSet, def string) *storeOptions {
	o := &storeOptions{fs: fs}
	fs.StringVar(&o.storage, "storage", def, "storage: memory, sqlite or postgres (implied by --db or --postgres)")
	fs.StringVar(&o.db, "db", "./data/workflows.db", "SQLite database file")
	fs.StringVar(&o.postgres, "postgres", os.Getenv("FLUX_POSTGRES_URL"), "PostgreSQL URL, e.g. postgres://user@host:5432/db (default $FLUX_POSTGRES_URL)")
	return o
}

// kind returns the storage chosen: an explicit --db or --postgres wins over
// the default of --storage.
func (o *storeOptions) kind() string {
	set := map[string]bool{}
	o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["storage"]:
		return o.storage
	case set["postgres"]:
		return "postgres"
	case set["db"]:
		return "sqlite"
	}
	return o.storage
}

// open opens the chosen storage and returns it with its closer.
func (o *storeOptions) open(ctx context.Context) (flux.Storage, func(), error) {
	switch o.kind() {
	case "memory":
		return flux.NewMemoryStorage(), func() {}, nil
	case "sqlite":
		if dir := filepath.Dir(o.db); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, nil, err
			}
		}
		s, err := sqlite.Open(o.db)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { _ = s.Close() }, nil
	case "postgres":
		if o.postgres == "" {
			return nil, nil, fmt.Errorf("--storage postgres needs --postgres URL (or FLUX_POSTGRES_URL)")
		}
		s, err := postgres.Open(ctx, o.postgres)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	default:
		return nil, nil, fmt.Errorf("unknown --storage %q: want memory, sqlite or postgres", o.storage)
	}
}
