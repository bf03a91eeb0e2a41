package viewer

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/schedule"
)

// ScheduleSource is a [Source] that can list the cron schedules of package
// schedule: a store keeps them, a trace does not.
type ScheduleSource interface {
	// Schedules returns the stored schedules, by name, with their next
	// tick; an error wrapping errNoSchedules when the store keeps none.
	Schedules(ctx context.Context) ([]Schedule, error)
}

// Schedule is one stored cron schedule, as the schedules view lists it.
type Schedule struct {
	Name     string `json:"name"`
	Workflow string `json:"workflow"`
	Spec     string `json:"spec"`
	TimeZone string `json:"timeZone"` // IANA name; "" is UTC
	CatchUp  string `json:"catchUp"`
	Paused   bool   `json:"paused"`
	// Input is the input of its runs as compact JSON, cut like a signal's
	// payload (InputCut).
	Input    string `json:"input,omitempty"`
	InputCut bool   `json:"inputCut,omitempty"`
	// LastTick is the latest tick dealt with (or when the schedule was
	// added or resumed), epoch ms; 0 before any.
	LastTick  int64 `json:"lastTick,omitempty"`
	UpdatedAt int64 `json:"updatedAt,omitempty"`
	// NextTick is its next tick, epoch ms; 0 when it is paused or its
	// stored definition is invalid (Error says why).
	NextTick int64  `json:"nextTick,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ScheduleList is the body of GET /api/schedules.
type ScheduleList struct {
	// Supported is false when the source keeps no schedules (a trace file,
	// a store without them); Note then says so.
	Supported bool       `json:"supported"`
	Note      string     `json:"note,omitempty"`
	Schedules []Schedule `json:"schedules"`
}

// errNoSchedules marks a store that keeps no schedules.
var errNoSchedules = errors.New("viewer: the store keeps no schedules")

// Schedules implements [ScheduleSource] with schedule.List, as of the
// source's clock.
func (s *StorageSource) Schedules(ctx context.Context) ([]Schedule, error) {
	if _, ok := s.store.(driver.Scheduler); !ok {
		return nil, fmt.Errorf("%w: %T does not implement driver.Scheduler", errNoSchedules, s.store)
	}
	list, err := schedule.List(ctx, s.store, s.now())
	if err != nil {
		return nil, fmt.Errorf("viewer: listing the schedules of %s: %w", s.name, err)
	}
	out := make([]Schedule, 0, len(list))
	for _, in := range list {
		sc := Schedule{Name: in.Name, Workflow: in.Workflow, Spec: in.Spec, TimeZone: in.TimeZone,
			CatchUp: in.CatchUp, Paused: in.Paused}
		sc.Input, _, sc.InputCut = payloadText(in.Input)
		if !in.LastTick.IsZero() {
			sc.LastTick = in.LastTick.UnixMilli()
		}
		if !in.UpdatedAt.IsZero() {
			sc.UpdatedAt = in.UpdatedAt.UnixMilli()
		}
		if !in.NextTick.IsZero() {
			sc.NextTick = in.NextTick.UnixMilli()
		}
		if in.Err != nil {
			sc.Error = in.Err.Error()
		}
		out = append(out, sc)
	}
	return out, nil
}

const noSchedulesNote = "Schedules need a database: "

func (s *Server) handleSchedules(w http.ResponseWriter, r *http.Request) {
	out := ScheduleList{Schedules: []Schedule{}}
	src, ok := s.src.(ScheduleSource)
	if !ok {
		out.Note = noSchedulesNote + "a trace file keeps none. Open the store with flux dev --db or --postgres to see them."
		writeJSON(w, http.StatusOK, out)
		return
	}
	list, err := src.Schedules(r.Context())
	switch {
	case errors.Is(err, errNoSchedules):
		out.Note = noSchedulesNote + "this store keeps none. SQLite, PostgreSQL and memory storage keep them."
		writeJSON(w, http.StatusOK, out)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	out.Supported, out.Schedules = true, list
	writeJSON(w, http.StatusOK, out)
}
