package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestClaimPlansUseTheirIndexes: the statements of ClaimExpired, planned
// once for all parameters (as a cached plan may be), read the index meant
// for them, and never the whole table: with thousands of runs waiting but
// not due, of finished runs, and of pending runs queued behind a limit.
func TestClaimPlansUseTheirIndexes(t *testing.T) {
	t.Parallel()
	url := os.Getenv("FLUX_POSTGRES_URL")
	if url == "" {
		t.Skip("FLUX_POSTGRES_URL is unset: set it to a PostgreSQL server to run the PostgreSQL tests")
	}
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "flux_plans_" + hex.EncodeToString(b[:])
	s, err := Open(ctx, url, Schema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	defer func() {
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+s.sql.schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	}()
	// Header rows only: the plans do not read the log. No run has an
	// owner, as in a store whose runs all sleep: the planner then guesses
	// that the conditions on the lease let few rows through, and would
	// rather read the table than walk an index in order (as it did for
	// nextWake before its owner = '' came first).
	fill := `INSERT INTO ` + s.sql.runs + ` (id, workflow, fingerprint, status, version, owner, lease_until, created_at, updated_at,
			input, initial_data, nodes, done, attempts, failures, interrupted, wake_at, concurrency_key)
		SELECT $1 || g, $2, 'fp', $3, 1, $4, 0, g, g, '{}', '{}', 1, 0, 0, 0, 0, CASE WHEN $5::bigint = 0 THEN 0 ELSE $5::bigint + g END, 'k' || (g % 5)
		FROM generate_series(1, $6::int) g`
	for _, f := range []struct {
		prefix, workflow, status, owner string
		wake                            int64 // plus the row's number
		n                               int
	}{
		{"wait-", "w", "waiting", "", 1 << 62, 100_000}, // waking from 2116
		{"done-", "w", "completed", "", 0, 5000},
		{"lim-", "lim", "pending", "", 0, 3000},
		{"run-", "lim", "running", "", 0, 10},
	} {
		if _, err := conn.Exec(ctx, fill, f.prefix, f.workflow, f.status, f.owner, f.wake, f.n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+s.sql.runs); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, sql, args, index string
	}{
		{"expired", s.sql.expired, `'{w,lim}', 100, 'b#1', 'b', '{lim}'`, "runs_unfinished"},
		{"waitingDue", s.sql.waitingDue, `'{w,lim}', 100, 'b#1', 'b'`, "runs_waiting"},
		{"nextWake", s.sql.nextWake, `'{w,lim}', 'b#1', 'b'`, "runs_waiting"},
		{"counted", s.sql.counted, `'lim'`, "runs_counted"},
		{"pendingLeased", s.sql.pendingLeased, `'lim', 'b#1', 'b', 64`, "runs_counted"},
		{"pendingFree", s.sql.pendingFree, `'lim', -9223372036854775808, '', '{k1}', 64, 'b#1'`, "runs_unfinished"},
		{"lockWaitKey", s.sql.lockWaitKey, `'order-1'`, "runs_wait_key"},
	} {
		if _, err := conn.Exec(ctx, "PREPARE "+c.name+" AS "+c.sql); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rows, err := conn.Query(ctx, "EXPLAIN EXECUTE "+c.name+"("+c.args+")", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, c.index) || strings.Contains(plan, "Seq Scan") {
			t.Errorf("the generic plan of %s does not read %s alone:\n%s", c.name, c.index, plan)
		}
	}
}
