package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// CatchUp is a schedule's policy for the ticks missed while no engine ran
// its schedules: see the package documentation.
type CatchUp string

// The catch-up policies.
const (
	// Skip runs no missed tick: a tick starts only while it is no older than
	// Options.Grace. It is the default.
	Skip CatchUp = "skip"
	// Latest runs the latest missed tick once, and no older one.
	Latest CatchUp = "latest"
	// All runs every missed tick, oldest first, at most Options.MaxCatchUp
	// (the latest ones) in one pass; the older ones are logged as skipped.
	All CatchUp = "all"
)

// parseCatchUp returns the policy named s; "" is Skip.
func parseCatchUp(s string) (CatchUp, error) {
	switch c := CatchUp(strings.ToLower(strings.TrimSpace(s))); c {
	case "":
		return Skip, nil
	case Skip, Latest, All:
		return c, nil
	}
	return "", fmt.Errorf("unknown catch-up policy %q: want %q, %q or %q", s, Skip, Latest, All)
}

// Schedule is a schedule's definition, as [Add] takes it.
type Schedule struct {
	// Name identifies the schedule in the store, and prefixes the IDs of
	// its runs. It may not be empty nor contain "@".
	Name string
	// Spec is a five-field cron expression or a descriptor such as @daily.
	Spec string
	// TimeZone is the IANA name of the time zone of Spec's wall-clock
	// times, such as "Europe/Paris"; "" is UTC.
	TimeZone string
	// CatchUp is the policy for missed ticks; "" is Skip.
	CatchUp CatchUp
	// Paused adds a new schedule paused; it does not change an existing
	// one's state (see [Pause] and [Resume]).
	Paused bool
}

// spec is a parsed cron spec in its time zone.
type spec struct {
	cron cron.Schedule
	loc  *time.Location
}

// parseSpec parses a cron expression and a time zone name ("" is UTC). Its
// errors name what they refuse and say what is accepted.
func parseSpec(expr, zone string) (spec, error) {
	loc, err := loadZone(zone)
	if err != nil {
		return spec{}, err
	}
	expr = strings.TrimSpace(expr)
	switch {
	case expr == "":
		return spec{}, errors.New("empty cron spec: want five fields (minute hour day-of-month month day-of-week), such as \"*/5 * * * *\", or a descriptor such as @daily")
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return spec{}, fmt.Errorf("cron spec %q names a time zone: give the spec alone, and the zone as the schedule's TimeZone", expr)
	case strings.HasPrefix(expr, "@every"):
		return spec{}, fmt.Errorf("cron spec %q: @every intervals are not supported (their ticks depend on when they are counted from); use a cron expression such as \"*/10 * * * *\"", expr)
	}
	c, err := parseCron(expr)
	if err != nil {
		return spec{}, fmt.Errorf("invalid cron spec %q: %v (want five fields: minute hour day-of-month month day-of-week, such as \"*/5 * * * *\", or a descriptor such as @daily)", expr, err)
	}
	s := spec{cron: c, loc: loc}
	// A spec such as "0 0 30 2 *" parses but never matches: the parser
	// gives up after five years.
	if s.next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return spec{}, fmt.Errorf("cron spec %q matches no date", expr)
	}
	return s, nil
}

// parseCron is cron.ParseStandard, with its panics (it has some on odd
// input) turned into errors.
func parseCron(expr string) (c cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("the cron parser failed: %v", r)
		}
	}()
	return cron.ParseStandard(expr)
}

// loadZone returns the location of an IANA time zone name; "" is UTC.
// "Local" is refused: it differs between the hosts sharing a store.
func loadZone(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, errors.New("time zone \"Local\" depends on each host's settings: name the zone, such as \"Europe/Paris\" (IANA names)")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: want an IANA name such as \"Europe/Paris\" or \"America/New_York\" (\"\" is UTC): %v", name, err)
	}
	return loc, nil
}

// next returns the spec's first tick after t, or zero if there is none
// within five years.
func (s spec) next(t time.Time) time.Time {
	n := s.cron.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.In(s.loc)
}

// plan is what one pass does with one schedule's due ticks.
type plan struct {
	run []time.Time // ticks to start, oldest first
	// missed counts the due ticks not started, by the policy; first and
	// last are the oldest and the latest of them.
	missed      int
	first, last time.Time
}

// LookBack is how far back a pass looks for missed ticks: a tick older
// than that is never caught up, nor counted as missed.
const LookBack = 400 * 24 * time.Hour

// planTicks returns which of the ticks in (after, now] to start under
// policy c: Skip those no older than grace, Latest the latest one, All the
// latest max of them (max >= 1). Ticks older than LookBack are ignored.
func planTicks(s spec, c CatchUp, after, now time.Time, grace time.Duration, max int) plan {
	if horizon := now.Add(-LookBack); after.Before(horizon) {
		after = horizon
	}
	keep := 1
	if c == All {
		keep = max
	}
	var p plan
	// ring keeps the latest keep ticks, the oldest at start once full.
	ring := make([]time.Time, 0, min(keep, 1024))
	start := 0
	miss := func(t time.Time) {
		if p.missed == 0 {
			p.first = t
		}
		p.missed++
		p.last = t
	}
	for t := s.next(after); !t.IsZero() && !t.After(now); t = s.next(t) {
		if c == Skip {
			if now.Sub(t) <= grace {
				p.run = append(p.run, t)
			} else {
				miss(t)
			}
			continue
		}
		if len(ring) < keep {
			ring = append(ring, t)
			continue
		}
		miss(ring[start])
		ring[start] = t
		start = (start + 1) % keep
	}
	if c != Skip {
		p.run = append(ring[start:len(ring):len(ring)], ring[:start]...)
	}
	return p
}

// RunID returns the ID of the run of schedule name's tick: the name, "@",
// and the tick in UTC as RFC 3339 ("nightly-report@2026-12-03T01:00:00Z").
// Every engine gives a tick's run this ID, so that the tick starts one run
// however many engines see it (flux.Start with flux.RunID stores a run
// once).
func RunID(name string, tick time.Time) string {
	return name + "@" + tick.UTC().Format(time.RFC3339)
}

// ParseRunID returns the schedule name and the tick of a run ID made by
// [RunID], for a workflow that needs the time it was scheduled for
// (flux.Ctx.RunID gives its ID). An ID of another form is an error.
func ParseRunID(id string) (name string, tick time.Time, err error) {
	i := strings.LastIndexByte(id, '@')
	if i <= 0 {
		return "", time.Time{}, fmt.Errorf("run ID %q is not a scheduled run's: want NAME@TICK, as schedule.RunID makes", id)
	}
	tick, err = time.Parse(time.RFC3339, id[i+1:])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("run ID %q is not a scheduled run's: its tick %q is not an RFC 3339 time", id, id[i+1:])
	}
	return id[:i], tick, nil
}

// checkName checks a schedule name.
func checkName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("schedule name is empty: give each schedule a name of its own")
	case strings.Contains(name, "@"):
		return fmt.Errorf("schedule name %q contains \"@\", which separates the name from the tick in run IDs: choose another name", name)
	}
	return nil
}
