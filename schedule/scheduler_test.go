package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/schedule"
)

var paris, _ = time.LoadLocation("Europe/Paris")

// pt is 2026-06-15 at hh:mm:ss in Paris.
func pt(hh, mm, ss int) time.Time { return time.Date(2026, 6, 15, hh, mm, ss, 0, paris) }

// every5 returns the ticks of "*/5 * * * *" from first to last.
func every5(first, last time.Time) []time.Time {
	var out []time.Time
	for t := first; !t.After(last); t = t.Add(5 * time.Minute) {
		out = append(out, t)
	}
	return out
}

// tickEvery calls s.Tick every minute from from to to (included), each
// pass 10s after its minute.
func tickEvery(t *testing.T, s *schedule.Scheduler, from, to time.Time) {
	t.Helper()
	for m := from; !m.After(to); m = m.Add(time.Minute) {
		if _, err := s.Tick(t.Context(), m.Add(10*time.Second)); err != nil {
			t.Fatalf("Tick at %v: %v", m, err)
		}
	}
}

// TestDowntime adds a schedule at 09:58, ticks every minute to 10:00 (the
// 10:00 tick runs), then not until 12:00:30 or later, and checks which
// ticks ran under each policy.
func TestDowntime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		catchUp schedule.CatchUp
		max     int
		back    time.Time // the first pass after the downtime
		ran     []time.Time
	}{
		{"skip", schedule.Skip, 0, pt(12, 0, 30), []time.Time{pt(10, 0, 0), pt(12, 0, 0)}},
		{"skip, back after the grace", schedule.Skip, 0, pt(12, 1, 30), []time.Time{pt(10, 0, 0)}},
		{"default is skip", "", 0, pt(12, 0, 30), []time.Time{pt(10, 0, 0), pt(12, 0, 0)}},
		{"latest", schedule.Latest, 0, pt(12, 0, 30), []time.Time{pt(10, 0, 0), pt(12, 0, 0)}},
		{"latest, back after the grace", schedule.Latest, 0, pt(12, 4, 30), []time.Time{pt(10, 0, 0), pt(12, 0, 0)}},
		{"all", schedule.All, 0, pt(12, 0, 30), every5(pt(10, 0, 0), pt(12, 0, 0))},
		{"all, at most 3", schedule.All, 3, pt(12, 0, 30), []time.Time{pt(10, 0, 0), pt(11, 50, 0), pt(11, 55, 0), pt(12, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := memStore(t)
			c := &clock{}
			c.Set(pt(9, 58, 0))
			_, s := newScheduler(t, store, c, func(o *schedule.Options) { o.MaxCatchUp = tc.max })
			sc := schedule.Schedule{Name: "every-5", Spec: "*/5 * * * *", TimeZone: "Europe/Paris", CatchUp: tc.catchUp}
			if err := schedule.Add(t.Context(), s, reportFlow("report"), sc, Report{To: "ops"}); err != nil {
				t.Fatal(err)
			}
			tickEvery(t, s, pt(9, 58, 0), pt(10, 0, 0))
			sameIDs(t, runIDs(t, store, "report"), tickIDs("every-5", []time.Time{pt(10, 0, 0)}))
			if _, err := s.Tick(t.Context(), tc.back); err != nil {
				t.Fatal(err)
			}
			sameIDs(t, runIDs(t, store, "report"), tickIDs("every-5", tc.ran))
			// The next pass starts nothing more: the missed ticks were
			// dealt with.
			if n, err := s.Tick(t.Context(), tc.back.Add(time.Second)); n != 0 || err != nil {
				t.Fatalf("second pass after the downtime: %d started, %v", n, err)
			}
			sameIDs(t, runIDs(t, store, "report"), tickIDs("every-5", tc.ran))
		})
	}
}

// TestPauseResume checks that a paused schedule starts nothing, and that
// resuming it does not catch up the ticks of the pause, even under All.
func TestPauseResume(t *testing.T) {
	store := memStore(t)
	c := &clock{}
	c.Set(pt(9, 58, 0))
	_, s := newScheduler(t, store, c)
	sc := schedule.Schedule{Name: "every-5", Spec: "*/5 * * * *", TimeZone: "Europe/Paris", CatchUp: schedule.All}
	if err := schedule.Add(t.Context(), s, reportFlow("report"), sc, Report{To: "ops"}); err != nil {
		t.Fatal(err)
	}
	tickEvery(t, s, pt(9, 58, 0), pt(10, 0, 0))
	if err := schedule.Pause(t.Context(), store, "every-5"); err != nil {
		t.Fatal(err)
	}
	info := listOne(t, store, pt(10, 1, 0))
	if !info.Paused || !info.NextTick.IsZero() {
		t.Errorf("paused schedule listed as paused %v, next tick %v; want paused, no next tick", info.Paused, info.NextTick)
	}
	tickEvery(t, s, pt(10, 1, 0), pt(11, 2, 0))
	sameIDs(t, runIDs(t, store, "report"), tickIDs("every-5", []time.Time{pt(10, 0, 0)}))

	if err := schedule.ResumeAt(t.Context(), store, "every-5", pt(11, 2, 30)); err != nil {
		t.Fatal(err)
	}
	info = listOne(t, store, pt(11, 2, 40))
	if info.Paused || !info.NextTick.Equal(pt(11, 5, 0)) {
		t.Errorf("resumed schedule listed as paused %v, next tick %v; want running, next 11:05", info.Paused, info.NextTick)
	}
	tickEvery(t, s, pt(11, 3, 0), pt(11, 10, 0))
	sameIDs(t, runIDs(t, store, "report"), tickIDs("every-5", []time.Time{pt(10, 0, 0), pt(11, 5, 0), pt(11, 10, 0)}))

	for _, f := range []func(context.Context, flux.Storage, string) error{schedule.Pause, schedule.Resume, schedule.Delete} {
		if err := f(t.Context(), store, "nope"); !errors.Is(err, flux.ErrScheduleNotFound) || !strings.Contains(err.Error(), `"nope"`) {
			t.Errorf("on an unknown schedule: %v, want ErrScheduleNotFound naming it", err)
		}
	}
}

func listOne(t *testing.T, store flux.Storage, now time.Time) schedule.Info {
	t.Helper()
	infos, err := schedule.List(t.Context(), store, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("List: %d schedules, want 1", len(infos))
	}
	return infos[0]
}

// TestUnregisteredLeftAlone checks that a pass leaves the schedules of
// workflows registered elsewhere alone, without error, and that the
// scheduler of the process that registered them starts them.
func TestUnregisteredLeftAlone(t *testing.T) {
	store := memStore(t)
	c := &clock{}
	c.Set(pt(9, 58, 0))
	_, a := newScheduler(t, store, c)
	_, b := newScheduler(t, store, c)
	if err := schedule.Add(t.Context(), a, reportFlow("report"), schedule.Schedule{Name: "r", Spec: "*/5 * * * *"}, Report{}); err != nil {
		t.Fatal(err)
	}
	if err := schedule.Add(t.Context(), b, reportFlow("other"), schedule.Schedule{Name: "o", Spec: "*/5 * * * *"}, Report{}); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Tick(t.Context(), pt(10, 0, 10)); n != 1 || err != nil {
		t.Fatalf("Tick of a: %d started, %v; want 1, nil", n, err)
	}
	if ids := runIDs(t, store, "other"); len(ids) != 0 {
		t.Fatalf("a started runs of a workflow it does not know: %v", ids)
	}
	infos, err := schedule.List(t.Context(), store, pt(10, 0, 10))
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].Name != "o" || !infos[0].LastTick.Equal(pt(9, 58, 0)) {
		t.Errorf("schedule o after a's pass: last tick %v, want its creation 09:58", infos[0].LastTick)
	}
	if n, err := b.Tick(t.Context(), pt(10, 0, 20)); n != 1 || err != nil {
		t.Fatalf("Tick of b: %d started, %v; want 1, nil", n, err)
	}
	sameIDs(t, runIDs(t, store, "other"), []string{schedule.RunID("o", pt(10, 0, 0))})
}

// TestStoredInputWins checks that a tick's run gets the stored input,
// whichever process stored it last.
func TestStoredInputWins(t *testing.T) {
	store := memStore(t)
	c := &clock{}
	c.Set(pt(9, 58, 0))
	_, a := newScheduler(t, store, c)
	_, b := newScheduler(t, store, c)
	sc := schedule.Schedule{Name: "r", Spec: "*/5 * * * *"}
	if err := schedule.Add(t.Context(), a, reportFlow("report"), sc, Report{To: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := schedule.Add(t.Context(), b, reportFlow("report"), sc, Report{To: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tick(t.Context(), pt(10, 0, 10)); err != nil {
		t.Fatal(err)
	}
	run, err := store.Get(t.Context(), schedule.RunID("r", pt(10, 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	var in Report
	if err := json.Unmarshal(run.Input, &in); err != nil || in.To != "b" {
		t.Errorf("run input %s, want the stored one, to b", run.Input)
	}
	if info := listOne(t, store, pt(10, 0, 10)); !info.LastTick.Equal(pt(10, 0, 0)) || string(info.Input) == "" {
		t.Errorf("listed last tick %v, input %s; want 10:00, the input", info.LastTick, info.Input)
	}
}

// TestRefusedRun checks that a tick whose run the workflow refuses is
// logged and passed, not tried at every pass.
func TestRefusedRun(t *testing.T) {
	store := memStore(t)
	c := &clock{}
	c.Set(pt(9, 58, 0))
	_, s := newScheduler(t, store, c)
	flow := reportFlow("report").Validate(func(r Report) error {
		if r.To == "" {
			return errors.New("no recipient")
		}
		return nil
	})
	if err := schedule.Add(t.Context(), s, flow, schedule.Schedule{Name: "r", Spec: "*/5 * * * *"}, Report{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Tick(t.Context(), pt(10, 0, 10)); n != 0 || err != nil {
		t.Fatalf("Tick: %d started, %v; want 0, nil (the run is refused for good)", n, err)
	}
	if ids := runIDs(t, store, "report"); len(ids) != 0 {
		t.Fatalf("runs %v stored for a refused input", ids)
	}
	if info := listOne(t, store, pt(10, 0, 10)); !info.LastTick.Equal(pt(10, 0, 0)) {
		t.Errorf("last tick %v, want 10:00: the refused tick was dealt with", info.LastTick)
	}
}

// TestFailedStartRetried checks that a run that could not be started (here
// the pass's context ended) is started by the next pass, its tick still
// current.
func TestFailedStartRetried(t *testing.T) {
	store := memStore(t)
	c := &clock{}
	c.Set(pt(9, 58, 0))
	_, s := newScheduler(t, store, c)
	if err := schedule.Add(t.Context(), s, reportFlow("report"), schedule.Schedule{Name: "r", Spec: "*/5 * * * *"}, Report{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Tick(ctx, pt(10, 0, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Tick with an ended context: %v, want context.Canceled", err)
	}
	if n, err := s.Tick(t.Context(), pt(10, 0, 20)); n != 1 || err != nil {
		t.Fatalf("next Tick: %d started, %v; want 1, nil", n, err)
	}
	sameIDs(t, runIDs(t, store, "report"), []string{schedule.RunID("r", pt(10, 0, 0))})
}

func TestAddErrors(t *testing.T) {
	store := memStore(t)
	c := &clock{}
	c.Set(pt(9, 58, 0))
	_, s := newScheduler(t, store, c)
	flow := reportFlow("report")
	for _, tc := range []struct {
		sc   schedule.Schedule
		want string
	}{
		{schedule.Schedule{Name: "x", Spec: "*/5 * * *"}, `invalid cron spec "*/5 * * *"`},
		{schedule.Schedule{Name: "x", Spec: "@every 1h"}, "@every"},
		{schedule.Schedule{Name: "x", Spec: "0 2 * * *", TimeZone: "Europe/Pariss"}, `unknown time zone "Europe/Pariss"`},
		{schedule.Schedule{Name: "x", Spec: "0 2 * * *", CatchUp: "backfill"}, `unknown catch-up policy "backfill"`},
		{schedule.Schedule{Spec: "0 2 * * *"}, "schedule name is empty"},
		{schedule.Schedule{Name: "a@b", Spec: "0 2 * * *"}, `contains "@"`},
	} {
		if err := schedule.Add(t.Context(), s, flow, tc.sc, Report{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%+v) = %v, want an error containing %q", tc.sc, err, tc.want)
		}
	}
	if infos, err := schedule.List(t.Context(), store, pt(10, 0, 0)); err != nil || len(infos) != 0 {
		t.Fatalf("failed Adds stored %d schedules (%v)", len(infos), err)
	}
	if err := schedule.Add(t.Context(), s, flow, schedule.Schedule{Name: "x", Spec: "@daily"}, Report{}); err != nil {
		t.Fatal(err)
	}
	err := schedule.Add(t.Context(), s, reportFlow("other"), schedule.Schedule{Name: "x", Spec: "@daily"}, Report{})
	if err == nil || !strings.Contains(err.Error(), `schedule "x" is a schedule of workflow "report", not "other"`) {
		t.Errorf("Add of another workflow's schedule: %v", err)
	}
	if err := schedule.Register(s, reportFlow("report")); err == nil || !strings.Contains(err.Error(), "another workflow named") {
		t.Errorf("Register of a second workflow named report: %v", err)
	}

	e, err := flux.NewEngine(flux.Config{Storage: bareStore{memStore(t)}, Workers: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := schedule.New(e, schedule.Options{}); err == nil || !strings.Contains(err.Error(), "keeps no schedules") {
		t.Errorf("New on a store without schedules: %v", err)
	}
	if _, err := schedule.List(t.Context(), bareStore{store}, time.Now()); err == nil || !strings.Contains(err.Error(), "keeps no schedules") {
		t.Errorf("List on a store without schedules: %v", err)
	}
}

// bareStore hides the Scheduler of the store it wraps.
type bareStore struct{ flux.Storage }

// TestRun checks that Run makes a pass at once, starting the run of a tick
// that is due, and returns when its context ends.
func TestRun(t *testing.T) {
	store := memStore(t)
	c := &clock{}
	c.Set(pt(9, 58, 0))
	_, s := newScheduler(t, store, c)
	if err := schedule.Add(t.Context(), s, reportFlow("report"), schedule.Schedule{Name: "r", Spec: "*/5 * * * *"}, Report{}); err != nil {
		t.Fatal(err)
	}
	c.Set(pt(10, 0, 5))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	want := schedule.RunID("r", pt(10, 0, 0))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := store.Get(t.Context(), want); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run did not start %s within 10s", want)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
}
