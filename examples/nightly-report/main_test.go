package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOnce runs the program with --once-at the tick of December 3 and
// checks that the report of December 2 was sent, once: a second run at the
// same time finds the run done and sends nothing.
func TestOnce(t *testing.T) {
	db := filepath.Join(t.TempDir(), "data", "nightly.db")
	c := config{db: db, onceAt: "2026-12-03T02:00:00+01:00", to: "ops@example.com"}
	var out strings.Builder
	if err := run(t.Context(), c, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	want := "pass at 2026-12-03T02:00:00+01:00: runs started: 1\n" +
		"to ops@example.com: Sales of 2026-12-02: 12 orders, 450.00 EUR\n" +
		"run nightly-report@2026-12-03T01:00:00Z completed: report of 2026-12-02 sent to ops@example.com\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	if err := run(t.Context(), c, &out); err != nil {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	want = "pass at 2026-12-03T02:00:00+01:00: runs started: 0\n" +
		"run nightly-report@2026-12-03T01:00:00Z completed: report of 2026-12-02 sent to ops@example.com\n"
	if out.String() != want {
		t.Fatalf("second run's output:\n%s\nwant (nothing sent again):\n%s", out.String(), want)
	}
}

func TestOnceNotATick(t *testing.T) {
	db := filepath.Join(t.TempDir(), "nightly.db")
	var out strings.Builder
	err := run(t.Context(), config{db: db, onceAt: "2026-12-03T03:00:00+01:00", to: "ops@example.com"}, &out)
	if err == nil || !strings.Contains(err.Error(), "not a tick") {
		t.Fatalf("run at 03:00: %v, want an error saying it is not a tick\n%s", err, out.String())
	}
	err = run(t.Context(), config{db: db, onceAt: "tonight", to: "ops@example.com"}, &out)
	if err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("run at tonight: %v", err)
	}
}

// TestRunUntilInterrupted starts the program as a daemon and stops it: it
// says when its next tick is, and returns cleanly.
func TestRunUntilInterrupted(t *testing.T) {
	db := filepath.Join(t.TempDir(), "nightly.db")
	ctx, cancel := context.WithCancel(t.Context())
	out := &lockedWriter{w: new(strings.Builder)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, config{db: db, to: "ops@example.com"}, out) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(printed(out), "scheduler running") {
		if time.Now().After(deadline) {
			t.Fatalf("no start line within 30s:\n%s", printed(out))
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	if p := printed(out); !strings.Contains(p, "T02:00:00+01:00") && !strings.Contains(p, "T02:00:00+02:00") {
		t.Errorf("start line without a next tick at 02:00 Paris time:\n%s", printed(out))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after interruption: %v", err)
	}
}

func printed(l *lockedWriter) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.(*strings.Builder).String()
}
