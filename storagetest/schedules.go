package storagetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// scheduler returns s as a driver.Scheduler: every store of the module must
// be one.
func scheduler(t *testing.T, s flux.Storage) driver.Scheduler {
	t.Helper()
	sc, ok := s.(driver.Scheduler)
	if !ok {
		t.Fatalf("store %T does not implement driver.Scheduler: every store of the module must", s)
	}
	return sc
}

// schedule returns a schedule named name with every field of its
// definition set.
func schedule(name string) driver.Schedule {
	return driver.Schedule{Name: name, Workflow: "reports", Spec: "0 9 * * MON-FRI", TimeZone: "Europe/Paris",
		Input: json.RawMessage(`{"kind":"daily","to":["ann","bob"]}`), CatchUp: "latest", UpdatedAt: baseTime}
}

func mustSave(t *testing.T, sc driver.Scheduler, s driver.Schedule) {
	t.Helper()
	if err := sc.SaveSchedule(ctx(t), driver.SaveScheduleParams{Schedule: s}); err != nil {
		t.Fatalf("SaveSchedule(%s): %v", s.Name, err)
	}
}

func mustSet(t *testing.T, sc driver.Scheduler, p driver.SetScheduleParams) {
	t.Helper()
	if err := sc.SetSchedule(ctx(t), p); err != nil {
		t.Fatalf("SetSchedule(%s): %v", p.Name, err)
	}
}

// wantSchedules fails unless the store's schedules are want, in order:
// every field equal, Input by JSON value, times to the microsecond.
func wantSchedules(t *testing.T, what string, sc driver.Scheduler, want ...driver.Schedule) {
	t.Helper()
	got, err := sc.Schedules(ctx(t))
	if err != nil {
		t.Fatalf("%s: Schedules: %v", what, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got %d schedules %v, want %d", what, len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || g.Workflow != w.Workflow || g.Spec != w.Spec || g.TimeZone != w.TimeZone ||
			!sameJSON(g.Input, w.Input) || g.CatchUp != w.CatchUp || g.Paused != w.Paused ||
			!sameMicro(g.LastTick, w.LastTick) || !sameMicro(g.UpdatedAt, w.UpdatedAt) {
			t.Fatalf("%s: schedule %d is %s, want %s", what, i, fmtSchedule(g), fmtSchedule(w))
		}
	}
}

func fmtSchedule(s driver.Schedule) string {
	return fmt.Sprintf("{%s: workflow %q, spec %q, zone %q, input %s, catch-up %q, paused %v, last tick %s, updated %s}",
		s.Name, s.Workflow, s.Spec, s.TimeZone, s.Input, s.CatchUp, s.Paused, fmtTime(s.LastTick), fmtTime(s.UpdatedAt))
}

func ptr[T any](v T) *T { return &v }

var scheduleTests = []testCase{
	{"SaveAndList", func(t *testing.T, h Harness) {
		sc := scheduler(t, h.Store)
		wantSchedules(t, "a new store", sc)
		b, a := schedule("nightly"), schedule("hourly")
		a.Spec, a.TimeZone, a.Input, a.Paused = "@hourly", "", json.RawMessage(`null`), true
		mustSave(t, sc, b)
		mustSave(t, sc, a)
		wantSchedules(t, "Schedules, by name", sc, a, b)
	}},
	{"NewScheduleHasNoLastTick", func(t *testing.T, h Harness) {
		sc := scheduler(t, h.Store)
		s := schedule("nightly")
		s.LastTick = baseTime
		mustSave(t, sc, s)
		s.LastTick = time.Time{}
		wantSchedules(t, "a new schedule saved with a LastTick", sc, s)
	}},
	{"SaveKeepsTheState", func(t *testing.T, h Harness) {
		sc := scheduler(t, h.Store)
		s := schedule("nightly")
		mustSave(t, sc, s)
		tick, at := baseTime.Add(hour), baseTime.Add(2*hour)
		mustSet(t, sc, driver.SetScheduleParams{Name: "nightly", Paused: ptr(true), LastTick: tick, At: at})
		s2 := schedule("nightly")
		s2.Workflow, s2.Spec, s2.TimeZone, s2.Input, s2.CatchUp = "reports-v2", "0 10 * * *", "UTC", json.RawMessage(`{"kind":"weekly"}`), "all"
		s2.UpdatedAt = baseTime.Add(3 * hour)
		mustSave(t, sc, s2)
		s2.Paused, s2.LastTick = true, tick
		wantSchedules(t, "a schedule saved again", sc, s2)
	}},
	{"Set", func(t *testing.T, h Harness) {
		sc := scheduler(t, h.Store)
		s := schedule("nightly")
		mustSave(t, sc, s)
		tick := baseTime.Add(24 * hour)

		mustSet(t, sc, driver.SetScheduleParams{Name: "nightly", Paused: ptr(true), At: baseTime.Add(hour)})
		s.Paused, s.UpdatedAt = true, baseTime.Add(hour)
		wantSchedules(t, "after a pause", sc, s)

		mustSet(t, sc, driver.SetScheduleParams{Name: "nightly", LastTick: tick, At: baseTime.Add(2 * hour)})
		s.LastTick, s.UpdatedAt = tick, baseTime.Add(2*hour)
		wantSchedules(t, "after a tick (Paused nil: unchanged)", sc, s)

		mustSet(t, sc, driver.SetScheduleParams{Name: "nightly", LastTick: tick.Add(-hour), At: baseTime.Add(3 * hour)})
		s.UpdatedAt = baseTime.Add(3 * hour)
		wantSchedules(t, "after an earlier tick (LastTick unchanged)", sc, s)

		mustSet(t, sc, driver.SetScheduleParams{Name: "nightly", Paused: ptr(false), LastTick: tick.Add(hour), At: baseTime.Add(4 * hour)})
		s.Paused, s.LastTick, s.UpdatedAt = false, tick.Add(hour), baseTime.Add(4*hour)
		wantSchedules(t, "after a resume and a later tick", sc, s)
	}},
	{"Delete", func(t *testing.T, h Harness) {
		sc := scheduler(t, h.Store)
		mustSave(t, sc, schedule("a"))
		mustSave(t, sc, schedule("b"))
		if err := sc.DeleteSchedule(ctx(t), "a"); err != nil {
			t.Fatalf("DeleteSchedule(a): %v", err)
		}
		wantSchedules(t, "after deleting a", sc, schedule("b"))
		wantErr(t, "DeleteSchedule of a deleted schedule", sc.DeleteSchedule(ctx(t), "a"), flux.ErrScheduleNotFound)
	}},
	{"NotFound", func(t *testing.T, h Harness) {
		sc := scheduler(t, h.Store)
		mustSave(t, sc, schedule("a"))
		wantErr(t, "SetSchedule of an unknown schedule",
			sc.SetSchedule(ctx(t), driver.SetScheduleParams{Name: "missing", Paused: ptr(true), At: baseTime}), flux.ErrScheduleNotFound)
		wantErr(t, "DeleteSchedule of an unknown schedule", sc.DeleteSchedule(ctx(t), "missing"), flux.ErrScheduleNotFound)
		wantSchedules(t, "after the refused calls", sc, schedule("a"))
	}},
	{"NotShared", func(t *testing.T, h Harness) {
		sc := scheduler(t, h.Store)
		s := schedule("a")
		mustSave(t, sc, s)
		want := schedule("a")
		for i := range s.Input {
			s.Input[i] = 'X'
		}
		wantSchedules(t, "after the caller changed the input it saved", sc, want)
		got, err := sc.Schedules(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for i := range got[0].Input {
			got[0].Input[i] = 'X'
		}
		wantSchedules(t, "after the caller changed the input it got", sc, want)
	}},
	{"Closed", func(t *testing.T, h Harness) {
		sc := scheduler(t, h.Store)
		mustSave(t, sc, schedule("a"))
		if err := h.Store.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, listErr := sc.Schedules(ctx(t))
		for what, err := range map[string]error{
			"SaveSchedule":   sc.SaveSchedule(ctx(t), driver.SaveScheduleParams{Schedule: schedule("b")}),
			"Schedules":      listErr,
			"SetSchedule":    sc.SetSchedule(ctx(t), driver.SetScheduleParams{Name: "a", Paused: ptr(true), At: baseTime}),
			"DeleteSchedule": sc.DeleteSchedule(ctx(t), "a"),
		} {
			if !errors.Is(err, flux.ErrClosed) {
				t.Errorf("%s on a closed store: %v, want an error wrapping flux.ErrClosed", what, err)
			}
		}
	}},
}
