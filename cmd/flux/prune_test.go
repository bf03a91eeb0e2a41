package main

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
	"github.com/flux-go/flux/sqlite"
)

// TestRunsPrune: flux runs prune --older-than deletes the finished runs
// older than the age given, of the statuses and workflow given, and
// nothing else; bad flags are errors that say what to give.
func TestRunsPrune(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "w.db")
	now := time.Now()
	old, young := now.Add(-10*24*time.Hour), now.Add(-time.Hour)
	failed := testRun("old-failed", "shop", old)
	failed.Status = flux.StatusFailed
	running := testRun("old-running", "shop", old)
	running.Status, running.FinishedAt = flux.StatusRunning, time.Time{}
	running.Steps[0].Status = flux.StatusRunning
	storeRuns(t, db, testRun("old-shop", "shop", old), testRun("old-mail", "mail", old), testRun("young-shop", "shop", young), failed, running)

	prune := func(args ...string) string {
		t.Helper()
		var out strings.Builder
		if err := runsCmd(ctx, &out, append([]string{"prune", "--db", db}, args...)); err != nil {
			t.Fatalf("runs prune %q: %v", args, err)
		}
		return out.String()
	}
	kept := func(when string, want map[string]bool) {
		t.Helper()
		s, err := sqlite.Open(db)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for id, want := range want {
			_, err := s.Get(ctx, id)
			if err != nil && !errors.Is(err, flux.ErrRunNotFound) {
				t.Fatalf("Get %s: %v", id, err)
			}
			if got := err == nil; got != want {
				t.Errorf("%s: %s kept: %v, want %v", when, id, got, want)
			}
		}
	}

	if out := prune("--older-than", "7d", "--workflow", "shop", "--status", "completed"); !strings.HasPrefix(out, "deleted 1 finished runs") {
		t.Errorf("prune of old completed shop runs printed %q, want 1 deleted", out)
	}
	kept("after the completed shop runs", map[string]bool{"old-shop": false, "old-mail": true, "young-shop": true, "old-failed": true, "old-running": true})
	if out := prune("--older-than", "48h"); !strings.HasPrefix(out, "deleted 2 finished runs") {
		t.Errorf("prune of all old runs printed %q, want 2 deleted", out)
	}
	kept("after all old runs", map[string]bool{"old-mail": false, "old-failed": false, "young-shop": true, "old-running": true})

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "needs --older-than"},
		{[]string{"--older-than", "soon"}, "want a positive duration"},
		{[]string{"--older-than", "-3h"}, "want a positive duration"},
		{[]string{"--older-than", "0d"}, "want a positive duration"},
		{[]string{"--older-than", "1h", "--status", "running"}, "only finished runs are pruned"},
		{[]string{"--older-than", "1h", "extra"}, "takes flags only"},
	} {
		var out strings.Builder
		err := runsCmd(ctx, &out, append([]string{"prune", "--db", db}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("runs prune %q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	kept("after the refused commands", map[string]bool{"young-shop": true, "old-running": true})
}

// TestRunsListProgressAndCorrupt: flux runs list shows each run's progress
// from its stored header and names a corrupt run instead of hiding it.
func TestRunsListProgressAndCorrupt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "w.db")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	half := testRun("half", "shop", at)
	half.Status, half.FinishedAt = flux.StatusRunning, time.Time{}
	half.Steps = append(half.Steps, flux.StepState{Name: "second", Kind: flux.KindStep, Status: flux.StatusPending})
	storeRuns(t, db, testRun("whole", "shop", at), half, testRun("broken", "shop", at))
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `UPDATE runs SET input = CAST('{"cut off' AS BLOB) WHERE id = 'broken'`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	var out strings.Builder
	if err := runsCmd(ctx, &out, []string{"list", "--db", db}); err != nil {
		t.Fatal(err)
	}
	progress := map[string]string{}
	var corrupt []string
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && (f[0] == "whole" || f[0] == "half") {
			progress[f[0]] = f[3]
		}
		if c, ok := strings.CutPrefix(l, "corrupt: "); ok {
			corrupt = append(corrupt, c)
		}
	}
	if progress["whole"] != "1/1" || progress["half"] != "1/2" {
		t.Errorf("progress %v, want whole 1/1 and half 1/2:\n%s", progress, out.String())
	}
	if len(corrupt) != 1 || !strings.Contains(corrupt[0], "broken") {
		t.Errorf("corrupt lines %q, want one naming run broken:\n%s", corrupt, out.String())
	}
}

// TestRunsListEngine: flux runs list names the engine that holds each
// running run, and "-" for a started run no engine took yet.
func TestRunsListEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "w.db")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	held := testRun("held", "shop", at)
	held.Status, held.FinishedAt, held.Owner = flux.StatusRunning, time.Time{}, "billing-1#5f2a"
	waiting := testRun("waiting", "shop", at)
	waiting.Status, waiting.FinishedAt = flux.StatusPending, time.Time{}
	s, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*flux.Run{held, waiting} {
		if _, err := s.Create(ctx, driver.CreateParams{Run: r, Lease: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	var out strings.Builder
	if err := runsCmd(ctx, &out, []string{"list", "--db", db}); err != nil {
		t.Fatal(err)
	}
	engines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) >= 8 {
			engines[f[0]] = f[len(f)-1]
		}
	}
	if engines["held"] != "billing-1" || engines["waiting"] != "-" {
		t.Errorf("engines %v, want held by billing-1 and waiting by none:\n%s", engines, out.String())
	}
}
