package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/schedule"
)

func init() {
	register("schedules", "list cron schedules, pause, resume or delete one: flux schedules list | pause NAME | resume NAME | delete NAME", func(ctx context.Context, args []string) error {
		return schedulesCmd(ctx, os.Stdout, args)
	})
}

const schedulesUsage = "usage: flux schedules list [flags] | flux schedules pause NAME [flags] | flux schedules resume NAME [flags] | flux schedules delete NAME [flags]"

// schedulesCmd is `flux schedules list`, `pause NAME`, `resume NAME` and
// `delete NAME`. A --db file that does not exist is an error.
func schedulesCmd(ctx context.Context, out io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New(schedulesUsage)
	}
	sub := args[0]
	switch sub {
	case "list", "pause", "resume", "delete":
	default:
		return fmt.Errorf("unknown subcommand %q: %s", sub, schedulesUsage)
	}
	fs := flag.NewFlagSet("schedules "+sub, flag.ContinueOnError)
	so := addStoreFlags(fs, "sqlite")
	asJSON := fs.Bool("json", false, "list: print JSON instead of a table")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if sub == "list" && len(pos) != 0 {
		return fmt.Errorf("unexpected argument %q: flux schedules list takes flags only (see flux schedules list -h)", pos[0])
	}
	if sub != "list" && len(pos) != 1 {
		return fmt.Errorf("usage: flux schedules %s NAME [flags]: want one schedule name, got %d arguments %q", sub, len(pos), pos)
	}
	store, err := so.openExisting(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	switch sub {
	case "pause":
		if err := schedule.Pause(ctx, store, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: paused\n", pos[0])
		return nil
	case "resume":
		if err := schedule.Resume(ctx, store, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: resumed: runs start again at its next tick; the ticks missed while it was paused are not run\n", pos[0])
		return nil
	case "delete":
		if err := schedule.Delete(ctx, store, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: deleted (the runs it started are kept)\n", pos[0])
		return nil
	}
	infos, err := schedule.List(ctx, store, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, jsonSchedules(infos))
	}
	return writeSchedules(out, infos)
}

// writeSchedules prints the schedules as a table. Times are in each
// schedule's time zone.
func writeSchedules(out io.Writer, infos []schedule.Info) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tWORKFLOW\tSPEC\tTIMEZONE\tCATCHUP\tPAUSED\tLAST-TICK\tNEXT-TICK")
	for _, i := range infos {
		zone, catchUp, paused := i.TimeZone, i.CatchUp, "no"
		if zone == "" {
			zone = "UTC"
		}
		if catchUp == "" {
			catchUp = string(schedule.Skip)
		}
		if i.Paused {
			paused = "yes"
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			loc = time.UTC
		}
		next := formatTick(i.NextTick, loc)
		if i.Err != nil {
			next = "invalid"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.Name, i.Workflow, i.Spec, zone, catchUp, paused,
			formatTick(i.LastTick, loc), next)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, i := range infos {
		if i.Err != nil {
			fmt.Fprintf(out, "invalid: %v\n", i.Err)
		}
	}
	if len(infos) == 0 {
		fmt.Fprintln(out, "no schedules")
	}
	return nil
}

// formatTick formats a tick in the schedule's zone, "-" if zero.
func formatTick(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(loc).Format(time.RFC3339)
}

// scheduleJSON is a schedule as --json prints it.
type scheduleJSON struct {
	driver.Schedule
	NextTick time.Time `json:"nextTick,omitzero"`
	Error    string    `json:"error,omitempty"`
}

func jsonSchedules(infos []schedule.Info) []scheduleJSON {
	out := make([]scheduleJSON, len(infos))
	for i, in := range infos {
		out[i] = scheduleJSON{Schedule: in.Schedule, NextTick: in.NextTick}
		if in.Err != nil {
			out[i].Error = in.Err.Error()
		}
	}
	return out
}
