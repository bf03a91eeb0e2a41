package schedule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// Info is a stored schedule as [List] shows it.
type Info struct {
	driver.Schedule
	// NextTick is the schedule's first tick after now; zero when it is
	// paused or its definition is invalid.
	NextTick time.Time
	// Err says why the stored definition is invalid (a spec, time zone or
	// catch-up policy written by other means than [Add]); nil if it is
	// valid.
	Err error
}

// List returns the schedules stored in store, by name, with their next
// tick after now.
func List(ctx context.Context, store flux.Storage, now time.Time) ([]Info, error) {
	sc, err := schedulerOf(store)
	if err != nil {
		return nil, err
	}
	all, err := sc.Schedules(ctx)
	if err != nil {
		return nil, fmt.Errorf("schedule: reading the schedules: %w", err)
	}
	out := make([]Info, len(all))
	for i, s := range all {
		out[i].Schedule = s
		sp, err := parseSpec(s.Spec, s.TimeZone)
		if err == nil {
			_, err = parseCatchUp(s.CatchUp)
		}
		if err != nil {
			out[i].Err = fmt.Errorf("schedule %q: %w", s.Name, err)
			continue
		}
		if !s.Paused {
			from := now
			if s.LastTick.After(from) {
				from = s.LastTick
			}
			out[i].NextTick = sp.next(from)
		}
	}
	return out, nil
}

// Pause pauses schedule name: no engine starts its runs until [Resume].
// Pausing a paused schedule changes nothing. An unknown name gives an error
// wrapping flux.ErrScheduleNotFound.
func Pause(ctx context.Context, store flux.Storage, name string) error {
	sc, err := schedulerOf(store)
	if err != nil {
		return err
	}
	paused := true
	return setSchedule(ctx, sc, driver.SetScheduleParams{Name: name, Paused: &paused, At: time.Now()})
}

// Resume resumes schedule name as of now: its runs start again from its
// first tick after now. The ticks it missed while paused are not caught
// up, whatever its catch-up policy: Resume records now as its last tick.
// Resuming a running schedule moves its last tick to now, so that a tick
// missed and not caught up yet is not caught up. An unknown name gives an
// error wrapping flux.ErrScheduleNotFound.
func Resume(ctx context.Context, store flux.Storage, name string) error {
	return ResumeAt(ctx, store, name, time.Now())
}

// ResumeAt is [Resume] as of time at rather than now: the ticks up to at
// are not caught up. Tests and tools with a clock of their own use it.
func ResumeAt(ctx context.Context, store flux.Storage, name string, at time.Time) error {
	sc, err := schedulerOf(store)
	if err != nil {
		return err
	}
	paused := false
	return setSchedule(ctx, sc, driver.SetScheduleParams{Name: name, Paused: &paused, LastTick: at, At: at})
}

// Delete deletes schedule name: no engine starts its runs any more; the
// runs it started stay. An unknown name gives an error wrapping
// flux.ErrScheduleNotFound.
func Delete(ctx context.Context, store flux.Storage, name string) error {
	sc, err := schedulerOf(store)
	if err != nil {
		return err
	}
	if err := sc.DeleteSchedule(ctx, name); err != nil {
		return notFound(name, err)
	}
	return nil
}

func setSchedule(ctx context.Context, sc driver.Scheduler, p driver.SetScheduleParams) error {
	if err := sc.SetSchedule(ctx, p); err != nil {
		return notFound(p.Name, err)
	}
	return nil
}

// notFound names the schedule in a store's error.
func notFound(name string, err error) error {
	if errors.Is(err, driver.ErrScheduleNotFound) {
		return fmt.Errorf("schedule %q: %w (see the stored schedules with `flux schedules list`)", name, err)
	}
	return fmt.Errorf("schedule %q: %w", name, err)
}
