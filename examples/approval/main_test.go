package main

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
)

// approval runs the program with args, as `approval args...` would, and
// returns what it printed and its exit code.
func approval(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut strings.Builder
	code = cli(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// startExpense runs `approval start AMOUNT` and returns the run's ID.
func startExpense(t *testing.T, db, amount string) string {
	t.Helper()
	out, errOut, code := approval(t, "start", amount, "--db", db)
	if code != 0 || !strings.Contains(errOut, `waits at "manager-approval" for "decision" until `) {
		t.Fatalf("start %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 0 and the run waiting", amount, code, out, errOut)
	}
	return strings.TrimSpace(out)
}

// stored reads run id from the SQLite file, as another process would.
func stored(t *testing.T, db, id string) (*flux.Run, Claim) {
	t.Helper()
	store, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	run, err := store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var claim Claim
	if err := json.Unmarshal(run.Data, &claim); err != nil {
		t.Fatal(err)
	}
	return run, claim
}

// statuses returns each node's name and status.
func statuses(run *flux.Run) map[string]flux.Status {
	m := map[string]flux.Status{}
	for _, s := range run.Steps {
		m[s.Name] = s.Status
	}
	return m
}

func TestApproveThenPay(t *testing.T) {
	db := filepath.Join(t.TempDir(), "approval.db")
	id := startExpense(t, db, "120.50")

	out, _, code := approval(t, "show", id, "--db", db)
	for _, want := range []string{"run " + id + ": waiting\n", `waits at "manager-approval" for "decision" until `, `input: {"cents":12050}`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("show: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}

	out, errOut, code := approval(t, "approve", id, "--by", "ana", "--db", db)
	if want := "payments: paid 120.50 EUR (approved by ana)\nrun " + id + " completed\n"; code != 0 || out != want {
		t.Fatalf("approve: exit %d\n%s\nwant:\n%s\nstderr:\n%s", code, out, want, errOut)
	}
	run, claim := stored(t, db, id)
	st := statuses(run)
	if run.Status != flux.StatusCompleted || st["pay"] != flux.StatusCompleted || st["notify-rejection"] != flux.StatusSkipped || st["escalate"] != flux.StatusSkipped {
		t.Fatalf("run %s, nodes %v; want completed through pay, the other branches skipped", run.Status, st)
	}
	if pay := run.Steps[2]; pay.Name != "pay" || len(pay.Attempts) != 1 {
		t.Fatalf("node 2 = %+v; want pay, executed once", pay)
	}
	if claim.Decision == nil || !claim.Decision.Approved || claim.Decision.By != "ana" || !claim.Paid || claim.TimedOut {
		t.Fatalf("data %+v; want approved by ana and paid", claim)
	}

	out, _, code = approval(t, "show", id, "--db", db)
	if code != 0 || !strings.Contains(out, "run "+id+": completed\n") || strings.Contains(out, "waits at") || !strings.Contains(out, `"paid":true`) {
		t.Fatalf("show after the approval: exit %d\n%s", code, out)
	}
}

func TestRejectNotifies(t *testing.T) {
	db := filepath.Join(t.TempDir(), "approval.db")
	id := startExpense(t, db, "80")
	out, _, code := approval(t, "reject", id, "--by", "bo", "--db", db)
	if want := "mail to the submitter: your expense of 80.00 EUR was rejected by bo\nrun " + id + " completed\n"; code != 0 || out != want {
		t.Fatalf("reject: exit %d\n%s\nwant:\n%s", code, out, want)
	}
	run, claim := stored(t, db, id)
	if st := statuses(run); st["pay"] != flux.StatusSkipped || st["notify-rejection"] != flux.StatusCompleted || claim.Paid || !claim.Notified {
		t.Fatalf("nodes %v, data %+v; want notified, not paid", st, claim)
	}
	// The run is over: a late approval is refused, and says why.
	_, errOut, code := approval(t, "approve", id, "--by", "ana", "--db", db)
	if code != 1 || !strings.Contains(errOut, "is completed: it no longer takes a decision") {
		t.Fatalf("approve after the rejection: exit %d, stderr:\n%s", code, errOut)
	}
	if _, claim := stored(t, db, id); claim.Paid || claim.Decision.Approved {
		t.Fatalf("data after the late approval %+v; want unchanged", claim)
	}
}

// A double click: the same approval sent twice while the run waits is
// delivered once, and a third time after the run finished is told so.
func TestDuplicateApproveDeliveredOnce(t *testing.T) {
	db := filepath.Join(t.TempDir(), "approval.db")
	id := startExpense(t, db, "42")
	for range 2 {
		// --wait 0 only sends: nothing executes the run meanwhile.
		out, _, code := approval(t, "approve", id, "--by", "ana", "--wait", "0", "--db", db)
		if want := "decision sent to run " + id + "; `serve` acts on it\n"; code != 0 || out != want {
			t.Fatalf("approve --wait 0: exit %d\n%s\nwant:\n%s", code, out, want)
		}
	}
	run, _ := stored(t, db, id)
	if run.Status != flux.StatusWaiting || len(run.Signals) != 1 || run.Signals[0].Key != "approve/ana" || run.Signals[0].Node != -1 {
		t.Fatalf("after two approvals: %s, signals %+v; want waiting with one signal in its inbox", run.Status, run.Signals)
	}

	var printed strings.Builder
	for range 2 {
		out, errOut, code := approval(t, "approve", id, "--by", "ana", "--db", db)
		if code != 0 {
			t.Fatalf("approve: exit %d\n%s%s", code, out, errOut)
		}
		printed.WriteString(out)
	}
	// The engine of the first of them may have woken the run on the
	// signals already in its inbox before that approve looked at it: it
	// then says the decision was already delivered, as the second does.
	got := printed.String()
	done, dup := "run "+id+" completed\n", "this decision was already delivered; run "+id+" is completed\n"
	if strings.Count(got, "payments: paid 42.00 EUR (approved by ana)\n") != 1 ||
		strings.Count(got, done)+strings.Count(got, dup) != 2 || !strings.HasSuffix(got, dup) {
		t.Fatalf("two more approvals printed:\n%s\nwant one payment, and each approve telling the run completed, the last as already delivered", got)
	}
	run, claim := stored(t, db, id)
	if len(run.Signals) != 1 || run.Signals[0].Node != 1 || len(run.Steps[2].Attempts) != 1 || !claim.Paid {
		t.Fatalf("signals %+v, pay attempts %d, data %+v; want one signal, consumed by the wait, and one payment",
			run.Signals, len(run.Steps[2].Attempts), claim)
	}
}

func TestErrorsSayWhatToDo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "approval.db")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"approve", "no-such-run", "--db", db}, 1, "approval: no run no-such-run in " + db + ": pass the ID that `start` printed, and the same --db\n"},
		{[]string{"show", "no-such-run", "--db", db}, 1, "approval: no run no-such-run in " + db + ": pass the ID that `start` printed, and the same --db\n"},
		{[]string{"start", "ten", "--db", db}, 1, "approval: amount \"ten\": want a positive number of euros, such as 120 or 45.50\n"},
		{[]string{"start", "0", "--db", db}, 1, "approval: amount \"0\": want a positive number of euros, such as 120 or 45.50\n"},
		{[]string{"approve", "--db", db}, 2, `approval: "approve" takes 1 argument(s)`},
		{[]string{"pay", "x"}, 2, `approval: unknown command "pay"`},
		{nil, 2, "usage:"},
	} {
		out, errOut, code := approval(t, tc.args...)
		if code != tc.code || !strings.HasPrefix(errOut, tc.want) || out != "" {
			t.Errorf("approval %q: exit %d, stdout %q, stderr:\n%s\nwant exit %d and stderr starting with:\n%s", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

// With no decision, `serve` escalates at the timeout, not before. The
// clock is synctest's: 48 hours pass at once.
func TestTimeoutEscalates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		out := &lockedWriter{w: new(strings.Builder)}
		printed := func() string {
			out.mu.Lock()
			defer out.mu.Unlock()
			return out.w.(*strings.Builder).String()
		}
		flow := ExpenseFlow(48*time.Hour, out)
		cfg := engineConfig(flux.NewMemoryStorage(), io.Discard, true)
		// The run is woken by the engine's timer at its timeout; looking
		// every hour instead of every second only spares synctest 172,800
		// looks.
		cfg.RecoveryInterval = time.Hour
		engine, err := flux.NewEngine(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer engine.Close()
		if err := engine.Register(flow); err != nil {
			t.Fatal(err)
		}
		sctx, stop := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- serve(sctx, engine, out) }()

		begin := time.Now()
		var idOut strings.Builder
		if err := start(ctx, engine, flow, 12000, &idOut, io.Discard); err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSpace(idOut.String())
		run, err := engine.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		wi, ok := flux.Waiting(run)
		if due := begin.Add(48 * time.Hour); !ok || wi.Node != "manager-approval" || wi.Signal != SignalDecision || wi.Until.Before(due) || wi.Until.After(due.Add(time.Second)) {
			t.Fatalf("Waiting = %+v, %v; want the decision until %s", wi, ok, due)
		}

		time.Sleep(48*time.Hour - time.Minute)
		synctest.Wait()
		if run, err := engine.Get(ctx, id); err != nil || run.Status != flux.StatusWaiting || statuses(run)["escalate"] != flux.StatusPending {
			t.Fatalf("a minute before the timeout: %v, %v; want still waiting, nothing escalated", run.Status, err)
		}
		if strings.Contains(printed(), "finance") {
			t.Fatalf("escalated before the timeout:\n%s", printed())
		}

		res, err := flux.Wait(ctx, engine, flow, id)
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(begin); waited < 48*time.Hour || waited > 48*time.Hour+2*time.Second {
			t.Fatalf("the run ended after %s; want at the 48h timeout", waited)
		}
		st := statuses(&flux.Run{Steps: res.Steps})
		if !res.Data.TimedOut || !res.Data.Escalated || res.Data.Paid || st["pay"] != flux.StatusSkipped || st["notify-rejection"] != flux.StatusSkipped {
			t.Fatalf("data %+v, nodes %v; want escalated only", res.Data, st)
		}
		want := "executing runs; Ctrl-C stops\nmail to finance: no decision on the expense of 120.00 EUR within 48h0m0s\n"
		if printed() != want {
			t.Fatalf("printed:\n%s\nwant:\n%s", printed(), want)
		}
		stop()
		if err := <-served; err != nil {
			t.Fatalf("serve: %v", err)
		}
	})
}
