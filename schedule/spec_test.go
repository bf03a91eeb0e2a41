package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustSpec(t *testing.T, expr, zone string) spec {
	t.Helper()
	s, err := parseSpec(expr, zone)
	if err != nil {
		t.Fatalf("parseSpec(%q, %q): %v", expr, zone, err)
	}
	return s
}

// at is 2026-06-15 at hh:mm:ss UTC.
func at(hh, mm, ss int) time.Time { return time.Date(2026, 6, 15, hh, mm, ss, 0, time.UTC) }

// fiveMinutes returns the ticks of "*/5 * * * *" from first to last.
func fiveMinutes(first, last time.Time) []time.Time {
	var out []time.Time
	for t := first; !t.After(last); t = t.Add(5 * time.Minute) {
		out = append(out, t)
	}
	return out
}

func sameTimes(t *testing.T, what string, got, want []time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d ticks %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			t.Fatalf("%s: tick %d = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

// TestPlanTicks checks each policy on explicit times: the engines were
// down from 10:00 (the last tick dealt with) to 12:00:30.
func TestPlanTicks(t *testing.T) {
	s := mustSpec(t, "*/5 * * * *", "")
	after := at(10, 0, 0)
	for _, tc := range []struct {
		name        string
		c           CatchUp
		now         time.Time
		grace       time.Duration
		max         int
		run         []time.Time
		missed      int
		first, last time.Time
	}{
		{"skip: the current tick only", Skip, at(12, 0, 30), time.Minute, 1000,
			[]time.Time{at(12, 0, 0)}, 23, at(10, 5, 0), at(11, 55, 0)},
		{"skip: the latest tick is past grace", Skip, at(12, 1, 30), time.Minute, 1000,
			nil, 24, at(10, 5, 0), at(12, 0, 0)},
		{"skip: a tick exactly grace old runs", Skip, at(12, 1, 0), time.Minute, 1000,
			[]time.Time{at(12, 0, 0)}, 23, at(10, 5, 0), at(11, 55, 0)},
		{"skip: a grace longer than the period", Skip, at(12, 0, 30), 10 * time.Minute, 1000,
			[]time.Time{at(11, 55, 0), at(12, 0, 0)}, 22, at(10, 5, 0), at(11, 50, 0)},
		{"latest", Latest, at(12, 0, 30), time.Minute, 1000,
			[]time.Time{at(12, 0, 0)}, 23, at(10, 5, 0), at(11, 55, 0)},
		{"latest: old ticks only", Latest, at(12, 4, 59), time.Minute, 1000,
			[]time.Time{at(12, 0, 0)}, 23, at(10, 5, 0), at(11, 55, 0)},
		{"all", All, at(12, 0, 30), time.Minute, 1000,
			fiveMinutes(at(10, 5, 0), at(12, 0, 0)), 0, time.Time{}, time.Time{}},
		{"all: beyond max", All, at(12, 0, 30), time.Minute, 5,
			fiveMinutes(at(11, 40, 0), at(12, 0, 0)), 19, at(10, 5, 0), at(11, 35, 0)},
		{"all: max 1", All, at(12, 0, 30), time.Minute, 1,
			[]time.Time{at(12, 0, 0)}, 23, at(10, 5, 0), at(11, 55, 0)},
		{"a tick at now is due", Skip, at(10, 5, 0), time.Minute, 1000,
			[]time.Time{at(10, 5, 0)}, 0, time.Time{}, time.Time{}},
		{"the last tick is not due again", All, at(10, 4, 59), time.Minute, 1000,
			nil, 0, time.Time{}, time.Time{}},
		{"now before the last tick", All, at(9, 0, 0), time.Minute, 1000,
			nil, 0, time.Time{}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planTicks(s, tc.c, after, tc.now, tc.grace, tc.max)
			sameTimes(t, "run", p.run, tc.run)
			if p.missed != tc.missed || !p.first.Equal(tc.first) || !p.last.Equal(tc.last) {
				t.Errorf("missed %d from %v to %v, want %d from %v to %v", p.missed, p.first, p.last, tc.missed, tc.first, tc.last)
			}
		})
	}
}

// TestPlanTicksLookBack checks that ticks older than LookBack are ignored,
// so that a schedule last run years ago does not enumerate them all.
func TestPlanTicksLookBack(t *testing.T) {
	s := mustSpec(t, "@daily", "")
	now := time.Date(2026, 6, 15, 0, 30, 0, 0, time.UTC)
	p := planTicks(s, Latest, now.AddDate(-3, 0, 0), now, time.Minute, 1000)
	sameTimes(t, "run", p.run, []time.Time{time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)})
	days := int(LookBack / (24 * time.Hour))
	if p.missed != days-1 || !p.first.Equal(now.Add(-LookBack).Truncate(24*time.Hour).AddDate(0, 0, 1)) {
		t.Errorf("missed %d from %v, want %d from %d days ago", p.missed, p.first, days-1, days-1)
	}
}

// TestSpecTimeZone checks that specs are wall-clock times of their zone,
// across both daylight saving time changes of 2026 in Paris.
func TestSpecTimeZone(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	ticks := func(s spec, from, to time.Time) []time.Time {
		var out []time.Time
		for x := s.next(from); !x.After(to); x = s.next(x) {
			out = append(out, x)
		}
		return out
	}
	daily := mustSpec(t, "30 2 * * *", "Europe/Paris")
	// Spring forward on March 29: 02:30 does not exist that day.
	sameTimes(t, "spring", ticks(daily, time.Date(2026, 3, 28, 0, 0, 0, 0, paris), time.Date(2026, 3, 31, 0, 0, 0, 0, paris)), []time.Time{
		time.Date(2026, 3, 28, 1, 30, 0, 0, time.UTC), // 02:30 CET
		time.Date(2026, 3, 30, 0, 30, 0, 0, time.UTC), // 02:30 CEST
	})
	// Fall back on October 25: 02:30 occurs twice.
	sameTimes(t, "fall", ticks(daily, time.Date(2026, 10, 25, 0, 0, 0, 0, paris), time.Date(2026, 10, 26, 0, 0, 0, 0, paris)), []time.Time{
		time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), // 02:30 CEST
		time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), // 02:30 CET
	})
	// The zone is the schedule's, whatever the location of the time given.
	ny := mustSpec(t, "0 9 * * *", "America/New_York")
	if got, want := ny.next(time.Date(2026, 6, 15, 0, 0, 0, 0, time.UTC)), time.Date(2026, 6, 15, 13, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next 09:00 New York = %v, want %v", got, want)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct{ spec, zone, want string }{
		{"", "", "empty cron spec"},
		{"* * * *", "", `invalid cron spec "* * * *"`},
		{"61 * * * *", "", `invalid cron spec "61 * * * *"`},
		{"*/0 * * * *", "", `invalid cron spec "*/0 * * * *"`},
		{"@fortnightly", "", `invalid cron spec "@fortnightly"`},
		{"@every 5m", "", "@every intervals are not supported"},
		{"TZ=Europe/Paris 0 2 * * *", "", "names a time zone"},
		{"TZ=0", "", "names a time zone"}, // makes cron.ParseStandard panic
		{"0 0 30 2 *", "", "matches no date"},
		{"0 2 * * *", "Mars/Olympus", `unknown time zone "Mars/Olympus"`},
		{"0 2 * * *", "Local", `time zone "Local"`},
	} {
		_, err := parseSpec(tc.spec, tc.zone)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseSpec(%q, %q) = %v, want an error containing %q", tc.spec, tc.zone, err, tc.want)
		}
	}
	for _, ok := range []string{"*/5 * * * *", "0 2 * * 1-5", "@daily", "@hourly", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "0 9 1,15 * *"} {
		if _, err := parseSpec(ok, "Europe/Paris"); err != nil {
			t.Errorf("parseSpec(%q): %v", ok, err)
		}
	}
}

func TestParseCatchUp(t *testing.T) {
	for in, want := range map[string]CatchUp{"": Skip, "skip": Skip, "Latest": Latest, " all ": All} {
		if got, err := parseCatchUp(in); err != nil || got != want {
			t.Errorf("parseCatchUp(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := parseCatchUp("backfill"); err == nil || !strings.Contains(err.Error(), `"backfill"`) {
		t.Errorf("parseCatchUp(backfill) = %v, want an error naming it", err)
	}
}

func TestRunID(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	tick := time.Date(2026, 12, 3, 2, 0, 0, 0, paris)
	id := RunID("nightly-report", tick)
	if id != "nightly-report@2026-12-03T01:00:00Z" {
		t.Fatalf("RunID = %q", id)
	}
	name, got, err := ParseRunID(id)
	if err != nil || name != "nightly-report" || !got.Equal(tick) {
		t.Fatalf("ParseRunID(%q) = %q, %v, %v", id, name, got, err)
	}
	for _, bad := range []string{"order-1", "@2026-12-03T01:00:00Z", "x@yesterday"} {
		if _, _, err := ParseRunID(bad); err == nil {
			t.Errorf("ParseRunID(%q) succeeded", bad)
		}
	}
	if err := checkName("a@b"); err == nil {
		t.Error("checkName(a@b) succeeded")
	}
}
