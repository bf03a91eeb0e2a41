package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// finalStatuses are the statuses flux runs prune deletes.
var finalStatuses = []flux.Status{flux.StatusCompleted, flux.StatusFailed, flux.StatusCancelled}

// pruneCmd is `flux runs prune --older-than D`: it deletes the finished
// runs that finished more than D ago, a batch at a time, as an engine's
// retention does in the background.
func pruneCmd(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("runs prune", flag.ContinueOnError)
	so := addStoreFlags(fs, "sqlite")
	olderThan := fs.String("older-than", "", "delete runs that finished longer ago than this: a Go duration (36h, 90m) or days (7d); required")
	workflow := fs.String("workflow", "", "only runs of this workflow")
	status := fs.String("status", "", "only runs in these final statuses, comma-separated (default all of "+joinStatuses(finalStatuses)+")")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("unexpected argument %q: flux runs prune takes flags only (see flux runs prune -h)", pos[0])
	}
	if *olderThan == "" {
		return fmt.Errorf("flux runs prune needs --older-than, such as --older-than 7d: it deletes the finished runs older than that")
	}
	age, err := parseAge(*olderThan)
	if err != nil {
		return err
	}
	statuses, err := parseStatuses(*status)
	if err != nil {
		return err
	}
	for _, s := range statuses {
		if !s.Final() {
			return fmt.Errorf("--status %s: only finished runs are pruned; want one or more of %s", s, joinStatuses(finalStatuses))
		}
	}
	if len(statuses) == 0 {
		statuses = finalStatuses
	}
	store, err := so.openExisting(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	before := time.Now().Add(-age)
	total := 0
	for _, s := range statuses {
		for {
			n, err := store.Prune(ctx, driver.PruneParams{Status: s, Workflow: *workflow, FinishedBefore: before, Limit: 1000})
			total += n
			if err != nil {
				return fmt.Errorf("deleted %d runs, then: %w", total, err)
			}
			if n < 1000 {
				break
			}
		}
	}
	fmt.Fprintf(out, "deleted %d finished runs that ended before %s\n", total, before.Local().Format(time.DateTime))
	return nil
}

// parseAge reads a Go duration or a whole number of days ("7d").
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err == nil && n > 0 && n < 100_000 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, fmt.Errorf("--older-than %q: want a positive duration such as 36h, 90m or 7d", s)
}
