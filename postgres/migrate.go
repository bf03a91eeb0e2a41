package postgres

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/flux-go/flux/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one embedded SQL file, named NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, path := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"), ".sql")
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("postgres: migration file %s does not start with a version number", path)
		}
		b, err := migrationFS.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// Version is the schema version this package's migrations bring a store to.
func Version() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate creates the store's schema if it is missing and applies the
// migrations it has not had yet, each once, in one transaction. Open and New
// call it; it is safe to call again, and from several processes at once: a
// transaction-level advisory lock on the schema makes them take turns.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version
	// Up to date is the common case, and needs neither the lock nor the
	// right to create anything.
	var have int
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+s.sql.migrations).Scan(&have); err == nil && have >= latest {
		return s.checkVersion(have, latest)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockKey()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s.sql.schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.sql.migrations+
			" (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT version FROM "+s.sql.migrations)
		if err != nil {
			return err
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			if err := s.checkVersion(int(slices.Max(applied)), latest); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+s.sql.schema); err != nil {
			return err
		}
		for _, m := range ms {
			if slices.Contains(applied, int32(m.version)) {
				continue
			}
			// The simple protocol runs a file of several statements.
			if _, err := tx.Conn().PgConn().Exec(ctx, m.sql).ReadAll(); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if step := goSteps[m.version]; step != nil {
				if err := step(ctx, s, tx); err != nil {
					return fmt.Errorf("migration %s: %w", m.name, err)
				}
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+s.sql.migrations+" (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: migrating schema %q: %w", s.schema, err)
	}
	return nil
}

func (s *Store) checkVersion(have, latest int) error {
	if have > latest {
		return fmt.Errorf("postgres: schema %q is at version %d, newer than this build of flux knows (%d): upgrade flux", s.schema, have, latest)
	}
	return nil
}

// lockKey is the advisory lock that serialises migrations of the schema.
func (s *Store) lockKey() int64 {
	h := fnv.New64a()
	h.Write([]byte("flux/postgres migrate " + s.schema))
	return int64(h.Sum64())
}

// goSteps are the parts of migrations that SQL alone cannot do, run after
// the migration's SQL, in its transaction (search_path set to the schema).
var goSteps = map[int]func(ctx context.Context, s *Store, tx pgx.Tx) error{
	2: convert0001,
}

// convert0001 moves the runs of schema 0001, a JSON body each, into the
// tables of schema 0002, a page at a time, then drops the old table. A run
// whose body does not decode is kept as it was in corrupt_0001, for a person
// to look at: nothing is lost.
func convert0001(ctx context.Context, s *Store, tx pgx.Tx) error {
	after := ""
	converted := 0
	for {
		var runs []*sqlstore.Run0001
		var corrupt [][2]any
		rows, err := tx.Query(ctx, `SELECT id, workflow, status, version, owner,
				coalesce((extract(epoch from lease_until) * 1000000)::bigint * 1000, 0), created_ns,
				(extract(epoch from updated_at) * 1000000)::bigint * 1000, body
			FROM runs_0001 WHERE id > $1 ORDER BY id LIMIT 500`, after)
		if err != nil {
			return err
		}
		var h sqlstore.Header
		var body []byte
		_, err = pgx.ForEachRow(rows, []any{&h.ID, &h.Workflow, &h.Status, &h.Version, &h.Owner, &h.LeaseUntil, &h.CreatedAt,
			&h.UpdatedAt, &body}, func() error {
			after = h.ID
			run, err := sqlstore.From0001(h, body)
			if err != nil {
				corrupt = append(corrupt, [2]any{h.ID, append([]byte(nil), body...)})
				return nil
			}
			runs = append(runs, run)
			return nil
		})
		if err != nil {
			return err
		}
		if len(runs) == 0 && len(corrupt) == 0 {
			_, err := tx.Exec(ctx, "DROP TABLE runs_0001")
			return err
		}
		for _, c := range corrupt {
			if _, err := tx.Exec(ctx, "INSERT INTO corrupt_0001 (id, body) VALUES ($1, $2)", c[0], c[1]); err != nil {
				return err
			}
		}
		if len(runs) > 0 {
			if _, err := tx.Exec(ctx, s.sql.insert0001, insert0001Args(runs)...); err != nil {
				return err
			}
		}
		for range runs {
			converted++
			sqlstore.Converted(converted)
		}
	}
}

// insert0001Args are the arrays of insert0001 for converted runs.
func insert0001Args(runs []*sqlstore.Run0001) []any {
	n := len(runs)
	id, wf, fp, st, owner, errs, atNode := make([]string, n), make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n)
	version, lease, created, updated, finished := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	input, initial := make([][]byte, n), make([][]byte, n)
	nodes, done, atts, fails, intr := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	body := make([][]byte, n)
	for i, r := range runs {
		body[i] = r.Body
		h := &r.Header
		intr[i] = int32(h.Interrupted)
		id[i], wf[i], fp[i], st[i], owner[i], errs[i], atNode[i] = h.ID, h.Workflow, h.Fingerprint, h.Status, h.Owner, h.Error, h.AtNode
		version[i], lease[i], created[i], updated[i], finished[i] = h.Version, h.LeaseUntil, h.CreatedAt, h.UpdatedAt, h.FinishedAt
		input[i], initial[i] = h.Input, h.Initial
		nodes[i], done[i], atts[i], fails[i] = int32(h.Nodes), int32(h.Done), int32(h.Attempts), int32(h.Failures)
	}
	return []any{id, wf, fp, st, version, owner, lease, created, updated, finished, errs, input, initial,
		nodes, done, atts, fails, intr, atNode, body}
}
