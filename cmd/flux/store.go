package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/flux-go/flux"
)

// storeOptions are the flags that choose a storage, shared by the commands.
type storeOptions struct {
	storage  string
	db       string
	postgres string
}

// addStoreFlags adds --storage, --db and --postgres to fs.
func addStoreFlags(fs *flag.FlagSet, def string) *storeOptions {
	o := &storeOptions{}
	fs.StringVar(&o.storage, "storage", def, "storage: memory, sqlite or postgres (implied by --db or --postgres)")
	fs.StringVar(&o.db, "db", "./data/workflows.db", "SQLite database file")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL, e.g. postgres://user@host:5432/db")
	return o
}

func (o *storeOptions) kind() string {
	if o.postgres != "" {
		return "postgres"
	}
	return o.storage
}

// open opens the chosen storage and returns it with its closer.
func (o *storeOptions) open(ctx context.Context) (flux.Storage, func(), error) {
	switch o.kind() {
	case "memory":
		return flux.NewMemoryStorage(), func() {}, nil
	default:
		return nil, nil, fmt.Errorf("unknown --storage %q: want memory, sqlite or postgres", o.storage)
	}
}
