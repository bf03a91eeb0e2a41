package main

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flux-go/flux"
)

// w2Data is the data of workload W2: each step appends one item, or,
// with items of zero bytes, counts itself.
type w2Data struct {
	Items []string `json:"items"`
	Steps int      `json:"steps"`
}

// w2 returns workload W2: one run of steps steps, each appending an item
// of size bytes to the run's data, so that the data grows with the run.
// With size 0 each step only counts itself, so the data changes at every
// step but does not grow.
func w2(steps, size int) *flux.Workflow[struct{}, w2Data] {
	item := strings.Repeat("x", size)
	w := flux.New[struct{}, w2Data](fmt.Sprintf("bench-w2-%d", steps))
	for i := range steps {
		w.Step(fmt.Sprintf("s%05d", i), func(c *flux.Ctx[struct{}, w2Data]) error {
			c.Data.Steps++
			if size > 0 {
				c.Data.Items = append(c.Data.Items, item)
			}
			return nil
		})
	}
	return w
}

// longResult holds the figures of one W2 measurement.
type longResult struct {
	Storage       string
	Runs, Steps   int
	DataBytes     int
	Elapsed       time.Duration
	WrittenBytes  int64 // -1 when the storage cannot tell
	StoredBytes   int64 // -1 when the storage cannot tell
	WrittenSource string
}

func (r longResult) String() string {
	steps := float64(r.Runs * r.Steps)
	what := fmt.Sprintf("appending %d bytes each", r.DataBytes)
	if r.DataBytes == 0 {
		what = "counting in data that does not grow"
	}
	s := fmt.Sprintf("W2 %s: %d run(s) of %d steps %s: %.3f ms/step",
		r.Storage, r.Runs, r.Steps, what, float64(r.Elapsed.Microseconds())/1000/steps)
	if r.WrittenBytes >= 0 {
		s += fmt.Sprintf(", %.0f bytes written/step (%s)", float64(r.WrittenBytes)/steps, r.WrittenSource)
	}
	if r.StoredBytes >= 0 {
		s += fmt.Sprintf(", %.0f bytes stored/step", float64(r.StoredBytes)/steps)
	}
	return s
}

// writtenCounter reads how many bytes a storage has written so far.
type writtenCounter struct {
	source string
	read   func() (int64, error)
	stored func() (int64, error)
}

// counterFor returns the written-bytes counter of the chosen storage: the
// process's write calls for SQLite (/proc/self/io wchar: database, WAL and
// all), the server's WAL bytes for PostgreSQL (pg_stat_wal), none for memory.
func counterFor(ctx context.Context, so *storeOptions) (*writtenCounter, func(), error) {
	switch so.kind() {
	case "sqlite":
		return &writtenCounter{source: "write calls to the database and its WAL", read: procWchar, stored: func() (int64, error) {
			// The database file's size once the WAL is folded into it.
			db, err := sql.Open("sqlite", so.db)
			if err != nil {
				return 0, err
			}
			defer db.Close()
			if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				return 0, err
			}
			fi, err := os.Stat(so.db)
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		}}, func() {}, nil
	case "postgres":
		conn, err := pgx.Connect(ctx, so.postgres)
		if err != nil {
			return nil, nil, err
		}
		schema := cmp.Or(so.schema, "flux")
		c := &writtenCounter{source: "the server's WAL", read: func() (int64, error) {
			var n int64
			err := conn.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").Scan(&n)
			return n, err
		}, stored: func() (int64, error) {
			// The schema's tables with their TOAST and indexes, once
			// VACUUM has reclaimed the dead row versions (of the schema's
			// tables only: not the whole database).
			rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname)
				FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = $1 AND c.relkind = 'r'`, schema)
			if err != nil {
				return 0, err
			}
			tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return 0, err
			}
			for _, t := range tables {
				if _, err := conn.Exec(ctx, "VACUUM "+t); err != nil {
					return 0, err
				}
			}
			var n int64
			err = conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
				FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&n)
			return n, err
		}}
		return c, func() { _ = conn.Close(context.Background()) }, nil
	}
	return nil, func() {}, nil
}

// procWchar returns the bytes this process passed to write calls.
func procWchar() (int64, error) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar: "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no wchar in /proc/self/io")
}

// benchLong measures W2 on store: runs runs of steps steps, one at a time.
func benchLong(ctx context.Context, store flux.Storage, name string, counter *writtenCounter, runs, steps, size int) (longResult, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	e, err := flux.NewEngine(flux.Config{Storage: store, Logger: quiet})
	if err != nil {
		return longResult{}, err
	}
	defer e.Close()
	w := w2(steps, size)
	res := longResult{Storage: name, Runs: runs, Steps: steps, DataBytes: size, WrittenBytes: -1, StoredBytes: -1}
	var before, storedBefore int64
	if counter != nil {
		// Stored first: measuring it writes (a WAL checkpoint, a VACUUM),
		// and those writes are not the runs'.
		if storedBefore, err = counter.stored(); err != nil {
			return res, fmt.Errorf("reading the bytes stored: %w", err)
		}
		if before, err = counter.read(); err != nil {
			return res, fmt.Errorf("reading the bytes written: %w", err)
		}
	}
	start := time.Now()
	for range runs {
		r, err := flux.Execute(ctx, e, w, struct{}{})
		if err != nil {
			return res, err
		}
		if r.Data.Steps != steps || (size > 0 && len(r.Data.Items) != steps) {
			return res, fmt.Errorf("run %s ended with %d steps counted and %d items, want %d", r.ID, r.Data.Steps, len(r.Data.Items), steps)
		}
	}
	res.Elapsed = time.Since(start)
	if counter != nil {
		after, err := counter.read()
		if err != nil {
			return res, err
		}
		storedAfter, err := counter.stored()
		if err != nil {
			return res, err
		}
		res.WrittenBytes, res.WrittenSource = after-before, counter.source
		res.StoredBytes = storedAfter - storedBefore
	}
	return res, nil
}
