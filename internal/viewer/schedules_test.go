package viewer

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/schedule"
)

type reportIn struct {
	To string `json:"to"`
}

var reportFlow = flux.New[reportIn, struct{}]("nightly-report").
	Step("send", func(c *flux.Ctx[reportIn, struct{}]) error { return nil })

// addSchedules stores, as of now, schedule nightly (02:00 in Paris, catch
// up the latest), schedule hourly, paused, and returns the scheduler.
func addSchedules(t testing.TB, e *flux.Engine, now time.Time) *schedule.Scheduler {
	t.Helper()
	ctx := context.Background()
	s, err := schedule.New(e, schedule.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := schedule.Add(ctx, s, reportFlow, schedule.Schedule{Name: "nightly", Spec: "0 2 * * *", TimeZone: "Europe/Paris",
		CatchUp: schedule.Latest}, reportIn{To: "ops@example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := schedule.Add(ctx, s, reportFlow, schedule.Schedule{Name: "hourly", Spec: "@hourly", Paused: true}, reportIn{To: "me"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSchedulesAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := flux.NewMemoryStorage()
	e := newEngine(t, flux.Config{Storage: store, Workers: -1})
	added := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	s := addSchedules(t, e, added)
	// A schedule whose stored spec is not one (written by other means).
	if err := store.SaveSchedule(ctx, driver.SaveScheduleParams{Schedule: driver.Schedule{Name: "broken", Workflow: "nightly-report",
		Spec: "every full moon", CatchUp: "skip", UpdatedAt: added}}); err != nil {
		t.Fatal(err)
	}
	src := NewStorageSource(store, "memory", StorageOptions{})
	now := added
	src.now = func() time.Time { return now }
	ts := serve(t, src)

	var l ScheduleList
	if res := get(t, ts, "/api/schedules", &l); res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/schedules: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !l.Supported || l.Note != "" || len(l.Schedules) != 3 {
		t.Fatalf("schedules %+v, want broken, hourly and nightly", l)
	}
	broken, hourly, nightly := l.Schedules[0], l.Schedules[1], l.Schedules[2]
	if broken.Name != "broken" || broken.NextTick != 0 || !strings.Contains(broken.Error, "every full moon") {
		t.Errorf("the broken schedule: %+v", broken)
	}
	// 02:00 in Paris on 11 March 2026 (UTC+1: before summer time).
	want := Schedule{Name: "nightly", Workflow: "nightly-report", Spec: "0 2 * * *", TimeZone: "Europe/Paris", CatchUp: "latest",
		Input: `{"to":"ops@example.com"}`, LastTick: added.UnixMilli(), UpdatedAt: added.UnixMilli(),
		NextTick: time.Date(2026, 3, 11, 1, 0, 0, 0, time.UTC).UnixMilli()}
	if nightly != want {
		t.Errorf("nightly = %+v\nwant      %+v", nightly, want)
	}
	if hourly.Name != "hourly" || !hourly.Paused || hourly.NextTick != 0 || hourly.Error != "" || hourly.TimeZone != "" || hourly.CatchUp != "skip" {
		t.Errorf("the paused schedule: %+v", hourly)
	}

	// The tick runs: its last tick moves, and its next one.
	tick := time.Date(2026, 3, 11, 1, 0, 30, 0, time.UTC)
	if n, err := s.Tick(ctx, tick); n != 1 || err == nil || !strings.Contains(err.Error(), `"broken"`) {
		t.Fatalf("Tick = %d, %v; want nightly's run, and broken refused", n, err)
	}
	now = tick
	get(t, ts, "/api/schedules", &l)
	if got := l.Schedules[2]; got.Name != "nightly" || got.LastTick != time.Date(2026, 3, 11, 1, 0, 0, 0, time.UTC).UnixMilli() ||
		got.NextTick != time.Date(2026, 3, 12, 1, 0, 0, 0, time.UTC).UnixMilli() {
		t.Errorf("after its tick: last %v, next %v", time.UnixMilli(got.LastTick).UTC(), time.UnixMilli(got.NextTick).UTC())
	}
	if err := schedule.ResumeAt(ctx, store, "hourly", tick); err != nil {
		t.Fatal(err)
	}
	get(t, ts, "/api/schedules", &l)
	if got := l.Schedules[1]; got.Paused || got.NextTick != time.Date(2026, 3, 11, 2, 0, 0, 0, time.UTC).UnixMilli() {
		t.Errorf("hourly resumed: paused %v, next %v", got.Paused, time.UnixMilli(got.NextTick).UTC())
	}

	if res := get(t, ts, "/api/schedules?name=nightly", &l); res.StatusCode != 200 || len(l.Schedules) != 3 {
		t.Errorf("an unknown parameter: %d, %d schedules", res.StatusCode, len(l.Schedules))
	}
	res, err := ts.Client().Post(ts.URL+"/api/schedules", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/schedules: %d, want 405", res.StatusCode)
	}
}

// runsOnly is a store that keeps runs but no schedules.
type runsOnly struct{ flux.Storage }

// failingSchedules is a store whose schedules cannot be read.
type failingSchedules struct {
	flux.Storage
	driver.Scheduler
}

func (failingSchedules) Schedules(context.Context) ([]driver.Schedule, error) {
	return nil, errors.New("disk on fire")
}

func TestSchedulesAPIWithoutSchedules(t *testing.T) {
	t.Parallel()
	mem := flux.NewMemoryStorage()
	if _, ok := any(runsOnly{mem}).(driver.Scheduler); ok {
		t.Fatal("runsOnly keeps schedules")
	}
	var l ScheduleList
	res := get(t, serve(t, NewStorageSource(runsOnly{mem}, "memory", StorageOptions{})), "/api/schedules", &l)
	if res.StatusCode != 200 || l.Supported || !strings.HasPrefix(l.Note, "Schedules need a database") || l.Schedules == nil || len(l.Schedules) != 0 {
		t.Errorf("a store without schedules: %d %+v", res.StatusCode, l)
	}

	path := filepath.Join(t.TempDir(), "t.ndjson")
	if err := writeFile(path, ""); err != nil {
		t.Fatal(err)
	}
	l = ScheduleList{}
	res = get(t, serve(t, openTrace(t, path, TraceOptions{})), "/api/schedules", &l)
	if res.StatusCode != 200 || l.Supported || !strings.HasPrefix(l.Note, "Schedules need a database") || !strings.Contains(l.Note, "trace") {
		t.Errorf("a trace: %d %+v", res.StatusCode, l)
	}

	var e struct{ Error string }
	v := New(NewStorageSource(failingSchedules{Storage: mem, Scheduler: mem}, "memory", StorageOptions{}), Options{Logger: slog.New(slog.DiscardHandler)})
	failing := httptest.NewServer(v)
	t.Cleanup(func() {
		v.Close()
		failing.Close()
	})
	res = get(t, failing, "/api/schedules", &e)
	if res.StatusCode != 500 || !strings.Contains(e.Error, "disk on fire") {
		t.Errorf("a store that fails: %d %q", res.StatusCode, e.Error)
	}
}
