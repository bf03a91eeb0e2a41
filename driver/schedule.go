package driver

import (
	"context"
	"encoding/json"
	"time"
)

// Schedule is a stored cron schedule: what package schedule starts, and
// the state that engines sharing a store share about it.
type Schedule struct {
	Name     string          `json:"name"`
	Workflow string          `json:"workflow"`
	Spec     string          `json:"spec"`     // cron expression
	TimeZone string          `json:"timeZone"` // IANA name; "" is UTC
	Input    json.RawMessage `json:"input"`
	CatchUp  string          `json:"catchUp"` // the policy for ticks missed while no engine ran
	Paused   bool            `json:"paused"`
	// LastTick is the latest tick whose run was started; zero before the
	// first.
	LastTick  time.Time `json:"lastTick,omitzero"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// SaveScheduleParams are the arguments of Scheduler.SaveSchedule.
type SaveScheduleParams struct {
	Schedule Schedule
}

// SetScheduleParams are the arguments of Scheduler.SetSchedule.
type SetScheduleParams struct {
	Name string
	// Paused, when not nil, pauses or resumes the schedule.
	Paused *bool
	// LastTick, when not zero, becomes the schedule's LastTick if it is
	// later than the stored one (a tick is never taken back).
	LastTick time.Time
	At       time.Time // recorded as UpdatedAt
}

// Scheduler is the part of a Store that keeps cron schedules. Every store
// of this module implements it.
type Scheduler interface {
	// SaveSchedule stores p.Schedule, or replaces the definition (workflow,
	// spec, time zone, input, catch-up) of the schedule of that name,
	// keeping its Paused and LastTick.
	SaveSchedule(ctx context.Context, p SaveScheduleParams) error
	// Schedules returns every schedule, by name.
	Schedules(ctx context.Context) ([]Schedule, error)
	// SetSchedule changes a schedule's state; an unknown name gives
	// ErrScheduleNotFound.
	SetSchedule(ctx context.Context, p SetScheduleParams) error
	// DeleteSchedule deletes a schedule; an unknown name gives
	// ErrScheduleNotFound.
	DeleteSchedule(ctx context.Context, name string) error
}
