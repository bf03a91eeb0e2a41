package schedule_test

import (
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/schedule"
)

// simulateDay runs two engines, each with its own Scheduler, on one store,
// and drives both concurrently with Tick every minute of the day that
// starts at midnight in zone, for schedule "every-5" ("*/5 * * * *" in
// zone, added a second before midnight). Each pass sees the time a few
// seconds to half a minute after its minute, the two engines not the
// same. It checks that the stored runs are exactly one per tick: the run
// IDs of every instant of the day at a multiple of five minutes (zone's
// offsets are whole hours), no other.
func simulateDay(t *testing.T, store flux.Storage, zone string, midnight time.Time, wantTicks int) {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	midnight = midnight.In(loc)
	end := time.Date(midnight.Year(), midnight.Month(), midnight.Day()+1, 0, 0, 0, 0, loc)
	c := &clock{}
	c.Set(midnight.Add(-time.Second))
	flow := reportFlow("report")
	_, a := newScheduler(t, store, c)
	_, b := newScheduler(t, store, c)
	sc := schedule.Schedule{Name: "every-5", Spec: "*/5 * * * *", TimeZone: zone}
	for _, s := range []*schedule.Scheduler{a, b} {
		if err := schedule.Add(t.Context(), s, flow, sc, Report{To: "ops@example.com"}); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	passes, started := 0, 0
	for m := midnight; m.Before(end); m = m.Add(time.Minute) {
		var wg sync.WaitGroup
		var errs [2]error
		var n [2]int
		for i, s := range []*schedule.Scheduler{a, b} {
			// Engine a sees the minute 5s late, b 5s to 35s late.
			now := m.Add(5*time.Second + time.Duration(i*passes%7)*5*time.Second)
			wg.Add(1)
			go func() {
				defer wg.Done()
				n[i], errs[i] = s.Tick(t.Context(), now)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Tick of engine %d at %v: %v", i, m, err)
			}
			started += n[i]
		}
		passes++
	}
	var ticks []time.Time
	for x := midnight; x.Before(end); x = x.Add(time.Minute) {
		if x.Unix()%300 == 0 {
			ticks = append(ticks, x)
		}
	}
	if len(ticks) != wantTicks {
		t.Fatalf("the day has %d ticks, want %d: the test is wrong", len(ticks), wantTicks)
	}
	sameIDs(t, runIDs(t, store, "report"), tickIDs("every-5", ticks))
	// Each pass of each engine that saw a tick started (or found started)
	// its run: at most twice per tick, at least once.
	if started < wantTicks || started > 2*wantTicks {
		t.Errorf("Tick reported %d runs started, want %d to %d", started, wantTicks, 2*wantTicks)
	}
}

// TestTwoEnginesPostgres is simulateDay on PostgreSQL, in New York on a
// day of summer time: 288 ticks.
func TestTwoEnginesPostgres(t *testing.T) {
	store := pgStore(t)
	ny, _ := time.LoadLocation("America/New_York")
	simulateDay(t, store, "America/New_York", time.Date(2026, 6, 15, 0, 0, 0, 0, ny), 288)
}

// TestTwoEnginesMemoryDST is simulateDay in memory in Paris on the days
// daylight saving time starts (23 hours: 276 ticks) and ends (25 hours:
// 300 ticks): a tick every five minutes of real time.
func TestTwoEnginesMemoryDST(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, tc := range []struct {
		name  string
		day   time.Time
		ticks int
	}{
		{"spring", time.Date(2026, 3, 29, 0, 0, 0, 0, paris), 276},
		{"fall", time.Date(2026, 10, 25, 0, 0, 0, 0, paris), 300},
		{"plain", time.Date(2026, 6, 15, 0, 0, 0, 0, paris), 288},
	} {
		t.Run(tc.name, func(t *testing.T) {
			simulateDay(t, memStore(t), "Europe/Paris", tc.day, tc.ticks)
		})
	}
}
