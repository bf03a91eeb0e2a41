package schedule_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/schedule"
)

// Sending is the data of the example's workflow.
type Sending struct {
	Sent string `json:"sent"`
}

// A report scheduled at 02:00 in Paris with catch-up Latest. The passes are
// made with Tick at fixed times, as Run makes them at each tick: the first
// one at 02:00:05, then one after the engines were down for two days.
func Example() {
	ctx := context.Background()
	engine, err := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer engine.Close()
	report := flux.New[Report, Sending]("report").
		Commit("send", func(c *flux.Ctx[Report, Sending]) error {
			// The tick is in the run's ID.
			_, tick, err := schedule.ParseRunID(c.RunID())
			if err != nil {
				return err
			}
			c.Data.Sent = fmt.Sprintf("the report of %s to %s", tick.Format(time.DateOnly), c.Input.To)
			return nil
		})

	paris, _ := time.LoadLocation("Europe/Paris")
	day := func(d, hh, mm, ss int) time.Time { return time.Date(2026, 12, d, hh, mm, ss, 0, paris) }
	clock := day(2, 18, 0, 0) // when the schedule is added
	s, err := schedule.New(engine, schedule.Options{Now: func() time.Time { return clock }})
	if err != nil {
		panic(err)
	}
	err = schedule.Add(ctx, s, report, schedule.Schedule{
		Name: "nightly", Spec: "0 2 * * *", TimeZone: "Europe/Paris", CatchUp: schedule.Latest,
	}, Report{To: "ops@example.com"})
	if err != nil {
		panic(err)
	}

	pass := func(now time.Time) {
		n, err := s.Tick(ctx, now)
		if err != nil {
			panic(err)
		}
		fmt.Printf("pass at %s: %d run(s) started\n", now.Format("Jan 2 15:04:05"), n)
	}
	wait := func(tick time.Time) {
		res, err := flux.Wait(ctx, engine, report, schedule.RunID("nightly", tick))
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %s: sent %s\n", res.ID, res.Status, res.Data.Sent)
	}
	pass(day(3, 2, 0, 5))
	wait(day(3, 2, 0, 0))
	pass(day(3, 2, 0, 30)) // the same tick again: nothing new
	// Down from Dec 3 02:01 to Dec 5 09:00: Latest runs the tick of Dec 5
	// only, not Dec 4's.
	pass(day(5, 9, 0, 0))
	wait(day(5, 2, 0, 0))

	infos, err := schedule.List(ctx, engine.Storage(), day(5, 9, 0, 0))
	if err != nil {
		panic(err)
	}
	for _, i := range infos {
		fmt.Printf("%s: last tick %s, next %s\n", i.Name, i.LastTick.In(paris).Format(time.RFC3339), i.NextTick.In(paris).Format(time.RFC3339))
	}
	// Output:
	// pass at Dec 3 02:00:05: 1 run(s) started
	// nightly@2026-12-03T01:00:00Z completed: sent the report of 2026-12-03 to ops@example.com
	// pass at Dec 3 02:00:30: 0 run(s) started
	// pass at Dec 5 09:00:00: 1 run(s) started
	// nightly@2026-12-05T01:00:00Z completed: sent the report of 2026-12-05 to ops@example.com
	// nightly: last tick 2026-12-05T02:00:00+01:00, next 2026-12-06T02:00:00+01:00
}
