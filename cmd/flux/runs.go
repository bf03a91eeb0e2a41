package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flux-go/flux"
)

func init() {
	register("runs", "list stored runs, or show one: flux runs list | flux runs show ID", func(ctx context.Context, args []string) error {
		return runsCmd(ctx, os.Stdout, args)
	})
	register("migrate", "apply the storage's migrations (SQLite or PostgreSQL)", func(ctx context.Context, args []string) error {
		return migrateCmd(ctx, os.Stdout, args)
	})
}

func runsCmd(ctx context.Context, out io.Writer, args []string) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "show") {
		return errors.New("usage: flux runs list [flags] | flux runs show [flags] ID")
	}
	sub := args[0]
	fs := flag.NewFlagSet("runs "+sub, flag.ContinueOnError)
	so := addStoreFlags(fs, "sqlite")
	workflow := fs.String("workflow", "", "list: only runs of this workflow")
	status := fs.String("status", "", "list: only runs in these statuses, comma-separated (e.g. failed,running)")
	limit := fs.Int("limit", 20, "list: runs per page")
	cursor := fs.String("cursor", "", "list: the page after this cursor (printed at the end of a page)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if sub == "show" && fs.NArg() != 1 {
		return errors.New("usage: flux runs show [flags] ID")
	}
	if sub == "list" && fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q; flags go before them? see flux runs list -h", fs.Args())
	}
	store, closeStore, err := so.open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	if sub == "show" {
		run, err := store.Get(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out, run)
		}
		return writeRunTable(out, run)
	}
	f := flux.Filter{Workflow: *workflow, Limit: *limit, Cursor: *cursor}
	for _, s := range strings.Split(*status, ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.Status = append(f.Status, flux.Status(s))
		}
	}
	page, err := store.List(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, page)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tSTEPS\tCREATED\tDURATION")
	for _, r := range page.Runs {
		done := 0
		for _, s := range r.Steps {
			if s.Status.Done() {
				done++
			}
		}
		end := r.FinishedAt
		if end.IsZero() {
			end = r.UpdatedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.Workflow, r.Status, done, len(r.Steps),
			r.CreatedAt.Local().Format(time.DateTime), formatDuration(end.Sub(r.CreatedAt)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range page.Corrupt {
		fmt.Fprintf(out, "unreadable: %v\n", c)
	}
	if len(page.Runs) == 0 {
		fmt.Fprintln(out, "no runs")
	}
	if page.Next != "" {
		fmt.Fprintf(out, "more: flux runs list --cursor %s\n", page.Next)
	}
	return nil
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, closeStore, err := so.open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
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
