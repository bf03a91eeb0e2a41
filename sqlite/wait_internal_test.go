package sqlite

import (
	"database/sql"
	"strings"
	"testing"
)

// TestWaitQueryPlans checks that the statements of waiting runs, signals
// and limits search their indexes by range rather than scanning them:
// ClaimExpired must not read the waiting runs that are not due, counting a
// limit must read the counted runs only, a signal by wait key the runs
// listening for it.
func TestWaitQueryPlans(t *testing.T) {
	t.Parallel()
	s := openT(t)
	for _, c := range []struct {
		name string
		stmt **sql.Stmt
		args []any
		want []string // in the plan's lines
	}{
		{"waiting", &s.w.waiting, []any{"o", 1, "e", `["w"]`}, []string{"SEARCH runs USING INDEX runs_waiting (wake_at<?)"}},
		{"counted", &s.w.counted, []any{"w"}, []string{"SEARCH runs USING INDEX runs_counted (workflow=?)"}},
		{"expired", &s.w.expired, []any{"w", "o", `["k"]`, 0, ""}, []string{"SEARCH runs USING COVERING INDEX runs_unfinished (workflow=? AND (created_at,id)>(?,?))"}},
		{"expiredCounted", &s.w.expiredCounted, []any{"w", "o", "[]", 0, ""}, []string{"SEARCH runs USING INDEX runs_counted (workflow=?)"}},
		{"signalWaiters", &s.w.signalWaiters, []any{"k", "d"}, []string{"SEARCH runs USING INDEX runs_wait_key (wait_key=?)",
			"SEARCH signals USING COVERING INDEX signals_key (run_id=? AND key=?)"}},
		{"signalRun", &s.w.signalRun, []any{"r", "d"}, []string{"SEARCH runs USING PRIMARY KEY (id=?)",
			"SEARCH signals USING COVERING INDEX signals_key (run_id=? AND key=?)"}},
	} {
		var text string
		for _, st := range s.w.texts() {
			if st.s == c.stmt {
				text = st.sql
			}
		}
		if text == "" {
			t.Fatalf("%s: no such statement", c.name)
		}
		var plan []string
		err := s.submit(t.Context(), func(t *txn) error {
			rows, err := t.conn.QueryContext(bg, "EXPLAIN QUERY PLAN "+text, c.args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					return err
				}
				plan = append(plan, detail)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		all := strings.Join(plan, "\n")
		for _, w := range c.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: the plan\n%s\nlacks %q", c.name, all, w)
			}
		}
	}
}
