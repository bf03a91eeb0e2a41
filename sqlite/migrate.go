package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flux-go/flux/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order. Each file is named
// NNNN_description.sql; NNNN is its version.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("sqlite: migration file %s does not start with a version number", n)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	return ms, nil
}

// Version is the schema version this package's migrations bring a
// database to.
func Version() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// execer is what migrate needs of a connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// migrateConn migrates in a transaction of its own, which holds the write
// lock, so that processes opening one new file at once migrate it once.
func migrateConn(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("starting the migration: %w", explain(err))
	}
	if err := migrate(ctx, conn); err != nil {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = conn.ExecContext(ctx, "ROLLBACK")
		return fmt.Errorf("committing the migration: %w", err)
	}
	return nil
}

// migrate applies the migrations the database lacks, inside the caller's
// transaction, and records each in schema_migrations.
func migrate(ctx context.Context, db execer) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: creating schema_migrations: %w", explain(err))
	}
	rows, err := db.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("sqlite: reading schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	latest := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: reading schema_migrations: %w", err)
		}
		applied[v] = true
		latest = max(latest, v)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlite: reading schema_migrations: %w", err)
	}
	if known := ms[len(ms)-1].version; latest > known {
		return fmt.Errorf("sqlite: the database has schema version %d, newer than this Flux knows (%d): use a newer Flux", latest, known)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if _, err := db.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("sqlite: applying migration %s: %w", m.name, err)
		}
		if step := goSteps[m.version]; step != nil {
			if err := step(ctx, db); err != nil {
				return fmt.Errorf("sqlite: applying migration %s: %w", m.name, err)
			}
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.version, m.name, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("sqlite: recording migration %s: %w", m.name, err)
		}
	}
	return nil
}

// goSteps are the parts of migrations that SQL alone cannot do, run after
// the migration's SQL, in its transaction.
var goSteps = map[int]func(ctx context.Context, db execer) error{
	2: convert0001,
}

// convert0001 moves the runs of schema 0001, a JSON body each, into the
// tables of schema 0002 (a header and one checkpoint row each), a page at a time, then drops the old table. A run
// whose body does not decode is kept as it was in corrupt_0001, for a
// person to look at: nothing is lost.
func convert0001(ctx context.Context, db execer) error {
	var after int64
	converted := 0
	for {
		rows, err := db.QueryContext(ctx, `SELECT rowid, id, workflow, status, version, owner, lease_until, created_at, updated_at, body
			FROM runs_0001 WHERE rowid > ? ORDER BY rowid LIMIT 500`, after)
		if err != nil {
			return err
		}
		type old struct {
			h    sqlstore.Header
			body []byte
		}
		var page []old
		for rows.Next() {
			var o old
			if err := rows.Scan(&after, &o.h.ID, &o.h.Workflow, &o.h.Status, &o.h.Version, &o.h.Owner,
				&o.h.LeaseUntil, &o.h.CreatedAt, &o.h.UpdatedAt, &o.body); err != nil {
				rows.Close()
				return err
			}
			page = append(page, o)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(page) == 0 {
			_, err := db.ExecContext(ctx, "DROP TABLE runs_0001")
			return err
		}
		for _, o := range page {
			run, err := sqlstore.From0001(o.h, o.body)
			if err != nil {
				if _, err := db.ExecContext(ctx, "INSERT INTO corrupt_0001 (id, body) VALUES (?, ?)", o.h.ID, string(o.body)); err != nil {
					return err
				}
				continue
			}
			if err := insertRows(ctx, db, &run.Header, run.Body); err != nil {
				return fmt.Errorf("run %s: %w", o.h.ID, err)
			}
			converted++
			sqlstore.Converted(converted)
		}
	}
}
