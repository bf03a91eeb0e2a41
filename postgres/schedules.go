package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

var _ driver.Scheduler = (*Store)(nil)

// scheduleQueries are the statements of the schedules table.
type scheduleQueries struct {
	saveSchedule, schedules, setSchedule, deleteSchedule string
}

func makeScheduleQueries(r func(string) string) scheduleQueries {
	return scheduleQueries{
		// A new schedule starts with no tick; one that exists keeps its
		// paused state and last tick.
		saveSchedule: r(`INSERT INTO {schedules} (name, workflow, spec, time_zone, input, catch_up, paused, last_tick, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)
			ON CONFLICT (name) DO UPDATE SET workflow = excluded.workflow, spec = excluded.spec,
				time_zone = excluded.time_zone, input = excluded.input, catch_up = excluded.catch_up,
				updated_at = excluded.updated_at`),
		schedules: r(`SELECT name, workflow, spec, time_zone, input, catch_up, paused, last_tick, updated_at
			FROM {schedules} ORDER BY name`),
		// A tick is never taken back: last_tick only grows.
		setSchedule: r(`UPDATE {schedules} SET paused = coalesce($2, paused),
				last_tick = CASE WHEN $3::bigint <> 0 AND (last_tick = 0 OR $3::bigint > last_tick) THEN $3::bigint ELSE last_tick END,
				updated_at = $4
			WHERE name = $1`),
		deleteSchedule: r(`DELETE FROM {schedules} WHERE name = $1`),
	}
}

// SaveSchedule implements [driver.Scheduler].
func (s *Store) SaveSchedule(ctx context.Context, p driver.SaveScheduleParams) error {
	if s.closed.Load() {
		return errClosed
	}
	c := &p.Schedule
	if c.Name == "" {
		return errors.New("postgres: a schedule needs a name")
	}
	if err := sqlstore.CheckTime("UpdatedAt", c.UpdatedAt); err != nil {
		return fmt.Errorf("postgres: schedule %s: %w", c.Name, err)
	}
	_, err := s.pool.Exec(ctx, s.sql.saveSchedule, c.Name, c.Workflow, c.Spec, c.TimeZone, []byte(c.Input), c.CatchUp,
		c.Paused, sqlstore.Nanos(c.UpdatedAt))
	if err != nil {
		return fmt.Errorf("postgres: saving schedule %s: %w", c.Name, err)
	}
	return nil
}

// Schedules implements [driver.Scheduler].
func (s *Store) Schedules(ctx context.Context) ([]driver.Schedule, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	rows, err := s.pool.Query(ctx, s.sql.schedules)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading schedules: %w", err)
	}
	out := []driver.Schedule{}
	var c driver.Schedule
	var lastTick, updated int64
	_, err = pgx.ForEachRow(rows, []any{&c.Name, &c.Workflow, &c.Spec, &c.TimeZone, &c.Input, &c.CatchUp, &c.Paused,
		&lastTick, &updated}, func() error {
		c.LastTick, c.UpdatedAt = sqlstore.Time(lastTick), sqlstore.Time(updated)
		out = append(out, c)
		c.Input = nil // the next row scans into a new slice
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: reading schedules: %w", err)
	}
	return out, nil
}

// SetSchedule implements [driver.Scheduler].
func (s *Store) SetSchedule(ctx context.Context, p driver.SetScheduleParams) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := errors.Join(sqlstore.CheckTime("LastTick", p.LastTick), sqlstore.CheckTime("At", p.At)); err != nil {
		return fmt.Errorf("postgres: schedule %s: %w", p.Name, err)
	}
	tag, err := s.pool.Exec(ctx, s.sql.setSchedule, p.Name, p.Paused, sqlstore.Nanos(p.LastTick), sqlstore.Nanos(p.At))
	if err != nil {
		return fmt.Errorf("postgres: changing schedule %s: %w", p.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %q", driver.ErrScheduleNotFound, p.Name)
	}
	return nil
}

// DeleteSchedule implements [driver.Scheduler].
func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	if s.closed.Load() {
		return errClosed
	}
	tag, err := s.pool.Exec(ctx, s.sql.deleteSchedule, name)
	if err != nil {
		return fmt.Errorf("postgres: deleting schedule %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %q", driver.ErrScheduleNotFound, name)
	}
	return nil
}
