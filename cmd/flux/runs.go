package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

func init() {
	register("runs", "list stored runs, show one, or delete old ones: flux runs list | show ID | prune --older-than D", func(ctx context.Context, args []string) error {
		return runsCmd(ctx, os.Stdout, args)
	})
	register("migrate", "apply the storage's migrations (SQLite or PostgreSQL)", func(ctx context.Context, args []string) error {
		return migrateCmd(ctx, os.Stdout, args)
	})
}

// runStatuses are the statuses a run can be in, as --status takes them.
var runStatuses = []flux.Status{
	flux.StatusPending, flux.StatusRunning, flux.StatusWaiting,
	flux.StatusCompleted, flux.StatusFailed, flux.StatusCancelled,
}

// runsCmd is `flux runs list`, `flux runs show ID` and `flux runs prune`.
// A --db file that does not exist is an error.
func runsCmd(ctx context.Context, out io.Writer, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "show" && args[0] != "prune") {
		return errors.New("usage: flux runs list [flags] | flux runs show ID [flags] | flux runs prune --older-than D [flags]")
	}
	sub := args[0]
	if sub == "prune" {
		return pruneCmd(ctx, out, args[1:])
	}
	fs := flag.NewFlagSet("runs "+sub, flag.ContinueOnError)
	so := addStoreFlags(fs, "sqlite")
	workflow := fs.String("workflow", "", "list: only runs of this workflow")
	status := fs.String("status", "", "list: only runs in these statuses, comma-separated: "+joinStatuses(runStatuses))
	limit := fs.Int("limit", 20, "list: runs per page")
	cursor := fs.String("cursor", "", "list: the page after this cursor (printed at the end of a page)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	if sub == "show" {
		if len(pos) != 1 {
			return fmt.Errorf("usage: flux runs show ID [flags]: want one run ID, got %d arguments %q", len(pos), pos)
		}
		store, err := so.openExisting(ctx)
		if err != nil {
			return err
		}
		defer store.Close()
		run, err := store.Get(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, run)
		}
		return writeRunTable(out, run)
	}
	if len(pos) != 0 {
		return fmt.Errorf("unexpected argument %q: flux runs list takes flags only (see flux runs list -h)", pos[0])
	}
	statuses, err := parseStatuses(*status)
	if err != nil {
		return err
	}
	store, err := so.openExisting(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	page, err := store.List(ctx, flux.Filter{Workflow: *workflow, Status: statuses, Limit: *limit, Cursor: *cursor})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, page)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tSTEPS\tCREATED\tDURATION\tENGINE")
	for _, r := range page.Runs {
		// The engine that holds the run now: running where, or "-".
		engine := "-"
		if r.Owner != "" && r.LeaseUntil.After(time.Now()) {
			engine = driver.OwnerEngine(r.Owner)
		}
		end := r.FinishedAt
		if end.IsZero() {
			end = r.UpdatedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", r.ID, r.Workflow, r.Status, r.Summary.Done, r.Summary.Nodes,
			r.CreatedAt.Local().Format(time.DateTime), formatDuration(end.Sub(r.CreatedAt)), engine)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range page.Corrupt {
		fmt.Fprintf(out, "corrupt: %v\n", c)
	}
	if len(page.Runs) == 0 {
		fmt.Fprintln(out, "no runs")
	}
	if page.Next != "" {
		fmt.Fprintf(out, "more: %s\n", nextPageCommand(fs, page.Next))
	}
	return nil
}

// parseStatuses reads the comma-separated statuses of --status; an unknown
// one is an error naming it and the valid ones.
func parseStatuses(s string) ([]flux.Status, error) {
	var out []flux.Status
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		st := flux.Status(strings.ToLower(v))
		if !slices.Contains(runStatuses, st) {
			return nil, fmt.Errorf("unknown --status %q: want one or more of %s, comma-separated", v, joinStatuses(runStatuses))
		}
		out = append(out, st)
	}
	return out, nil
}

func joinStatuses(ss []flux.Status) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// nextPageCommand is the command that lists the page after cursor: flux
// runs list with the store and filter flags the user gave, quoted for a
// shell, so that it can be pasted as is.
func nextPageCommand(fs *flag.FlagSet, cursor string) string {
	words := []string{"flux", "runs", "list"}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "storage", "db", "postgres", "nats", "workflow", "status", "limit":
			words = append(words, "--"+f.Name, shellQuote(f.Value.String()))
		}
	})
	return strings.Join(append(words, "--cursor", shellQuote(cursor)), " ")
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// migrator is a storage with versioned migrations.
type migrator interface {
	Migrate(ctx context.Context) error
}

func migrateCmd(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	so := addStoreFlags(fs, "sqlite")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected argument %q: flux migrate takes flags only (see flux migrate -h)", pos[0])
	}
	store, err := so.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	m, ok := store.(migrator)
	if !ok {
		return fmt.Errorf("storage %s has no migrations", so.kind())
	}
	if err := m.Migrate(ctx); err != nil {
		return err
	}
	where := so.db
	if so.kind() == "postgres" {
		where = "PostgreSQL"
	}
	fmt.Fprintf(out, "%s: migrations applied\n", where)
	return nil
}
