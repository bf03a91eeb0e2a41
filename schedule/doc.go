// Package schedule starts workflow runs on cron schedules: a schedule names
// a workflow, a cron expression, a time zone and an input, and each of its
// ticks starts exactly one run, however many engines (processes) share the
// store.
//
//	s, err := schedule.New(engine, schedule.Options{})
//	err = schedule.Add(ctx, s, report, schedule.Schedule{
//		Name: "nightly-report", Spec: "0 2 * * *", TimeZone: "Europe/Paris",
//		CatchUp: schedule.Latest,
//	}, ReportInput{To: "ops@example.com"})
//	go s.Run(ctx)
//
// # Specs and time zones
//
// A spec is a standard cron expression of five fields (minute, hour, day of
// month, month, day of week: "*/5 * * * *", "0 2 * * 1-5") or a descriptor
// (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly), as
// github.com/robfig/cron/v3 parses them. Its times are wall-clock times in
// the schedule's time zone, an IANA name ("Europe/Paris"; "" is UTC). When
// daylight saving time starts, the wall-clock times it skips have no tick
// that day ("30 2 * * *" does not run in Paris on the last Sunday of March);
// when it ends, the hour that occurs twice ticks twice for a spec that
// matches it ("30 2 * * *" runs twice on the last Sunday of October;
// "*/5 * * * *" ticks every five minutes of real time all day).
//
// # Exactly one run per tick
//
// The run of a tick has the ID [RunID](name, tick): the name, "@", and the
// tick in UTC (RFC 3339). flux.Start with flux.RunID stores a run once, so
// engines that see the same tick at once, or a pass repeated after a crash,
// start the same run, never a second one. The store keeps, per schedule,
// LastTick: the latest tick dealt with (its run started, or let go by the
// catch-up policy), or the time the schedule was added or resumed. A pass
// considers the ticks after it, up to now, and then moves it forward; a
// run that could not be started (the store failed) keeps it before that
// tick, for the next pass. A workflow reads its tick from its run ID with
// [ParseRunID].
//
// # Catch-up after downtime
//
// When no engine ran the schedules for a while, the ticks missed since
// LastTick are handled by the schedule's [CatchUp] policy:
//
//   - [Skip] (the default): missed ticks are not run. A tick starts only
//     while it is current: no older than Options.Grace (one minute by
//     default) when a pass sees it.
//   - [Latest]: the latest missed tick runs, once; older ones are not run.
//   - [All]: every missed tick runs, oldest first. A pass starts at most
//     Options.MaxCatchUp of them (1000 by default): the latest ones; the
//     older ones are logged as skipped and not run.
//
// Whatever the policy, ticks older than [LookBack] (400 days) are neither
// run nor counted.
//
// In Temporal's terms, Skip is a catch-up window of Grace, All a catch-up
// window as long as the outage (bounded by a number of ticks rather than a
// duration; Temporal's default window is a year), and Latest, which
// Temporal has no direct setting for, a catch-up of the last missed action
// only. River's periodic jobs do not catch up (like Skip); River's
// RunOnStart inserts a job whenever a scheduler starts, missed or not,
// where Latest runs a tick only if one was missed.
//
// A new schedule starts at its first tick after it was added: nothing
// before it is caught up. A schedule resumed by [Resume] starts at its
// first tick after the resume: the ticks while it was paused are not caught
// up, whatever the policy.
//
// # Engines and schedules
//
// Schedules live in the store (driver.Scheduler), so every process sharing
// the store sees them, and `flux schedules list` shows them. A [Scheduler]
// starts the schedules of the workflows registered with it ([Add] or
// [Register]) and leaves the others alone, for the processes that know
// their workflows. Run one Scheduler in each process, or in some: any that
// sees a tick starts its run, and the others find it started.
package schedule
