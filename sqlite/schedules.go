package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
)

// Schedules are rows of table schedules, written through the writer like
// every write, read from the read pool.

var _ driver.Scheduler = (*Store)(nil)

// SaveSchedule implements [driver.Scheduler]. A new schedule is stored
// with p's Paused and no LastTick; an existing one keeps both.
func (s *Store) SaveSchedule(ctx context.Context, p driver.SaveScheduleParams) error {
	sc := &p.Schedule
	switch {
	case sc.Name == "":
		return errors.New("sqlite: SaveSchedule: the schedule has no name")
	case len(sc.Input) > 0 && !json.Valid(sc.Input):
		return fmt.Errorf("sqlite: SaveSchedule(%s): its input is not JSON", sc.Name)
	}
	if err := sqlstore.CheckTime("UpdatedAt", sc.UpdatedAt); err != nil {
		return fmt.Errorf("sqlite: SaveSchedule(%s): %w", sc.Name, err)
	}
	var input []byte
	if len(sc.Input) > 0 {
		input = sc.Input
	}
	return s.submit(ctx, func(t *txn) error {
		_, err := t.conn.ExecContext(bg, `INSERT INTO schedules (name, workflow, spec, time_zone, input, catch_up, paused, last_tick, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)
			ON CONFLICT (name) DO UPDATE SET workflow = excluded.workflow, spec = excluded.spec, time_zone = excluded.time_zone,
				input = excluded.input, catch_up = excluded.catch_up, updated_at = excluded.updated_at`,
			sc.Name, sc.Workflow, sc.Spec, sc.TimeZone, input, sc.CatchUp, sc.Paused, sqlstore.Nanos(sc.UpdatedAt))
		if err != nil {
			return fmt.Errorf("sqlite: saving schedule %s: %w", sc.Name, err)
		}
		return nil
	})
}

// Schedules implements [driver.Scheduler].
func (s *Store) Schedules(ctx context.Context) ([]driver.Schedule, error) {
	var out []driver.Schedule
	err := s.read(ctx, func(tx *sql.Tx) (err error) {
		out, err = collect(ctx, tx, `SELECT name, workflow, spec, time_zone, input, catch_up, paused, last_tick, updated_at
			FROM schedules ORDER BY name`, nil, func(r scanner) (sc driver.Schedule, err error) {
			var input []byte
			var tick, updated int64
			err = r.Scan(&sc.Name, &sc.Workflow, &sc.Spec, &sc.TimeZone, &input, &sc.CatchUp, &sc.Paused, &tick, &updated)
			if len(input) > 0 {
				sc.Input = input
			}
			sc.LastTick, sc.UpdatedAt = sqlstore.Time(tick), sqlstore.Time(updated)
			return sc, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetSchedule implements [driver.Scheduler].
func (s *Store) SetSchedule(ctx context.Context, p driver.SetScheduleParams) error {
	if err := errors.Join(sqlstore.CheckTime("LastTick", p.LastTick), sqlstore.CheckTime("At", p.At)); err != nil {
		return fmt.Errorf("sqlite: SetSchedule(%s): %w", p.Name, err)
	}
	var paused any // NULL: unchanged
	if p.Paused != nil {
		paused = *p.Paused
	}
	return s.submit(ctx, func(t *txn) error {
		res, err := t.conn.ExecContext(bg, `UPDATE schedules SET paused = coalesce(?1, paused), last_tick = max(last_tick, ?2),
				updated_at = ?3
			WHERE name = ?4`, paused, sqlstore.Nanos(p.LastTick), sqlstore.Nanos(p.At), p.Name)
		return scheduleChanged(res, err, "updating", p.Name)
	})
}

// DeleteSchedule implements [driver.Scheduler].
func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	return s.submit(ctx, func(t *txn) error {
		res, err := t.conn.ExecContext(bg, "DELETE FROM schedules WHERE name = ?", name)
		return scheduleChanged(res, err, "deleting", name)
	})
}

// scheduleChanged returns the error of a write of schedule name that
// changed res's rows: ErrScheduleNotFound if none.
func scheduleChanged(res sql.Result, err error, doing, name string) error {
	if err != nil {
		return fmt.Errorf("sqlite: %s schedule %s: %w", doing, name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: %s schedule %s: %w", doing, name, err)
	} else if n == 0 {
		return fmt.Errorf("%w: %q", flux.ErrScheduleNotFound, name)
	}
	return nil
}
