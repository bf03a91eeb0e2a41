package flux

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// allStatuses are every status a run or node can have, plus values that no
// run or node can have, which every check must refuse.
var allStatuses = []Status{
	StatusPending, StatusRunning, StatusWaiting, StatusCompleted,
	StatusFailed, StatusCancelled, StatusSkipped, "", "bogus",
}

// singleTriggers are the triggers the engine passes, one at a time.
var singleTriggers = []Trigger{TriggerExecute, TriggerResume, TriggerRetryStep}

// wantRunTransitions is SPEC §3 for runs, written out independently of
// runTransitions: pending → running → completed | failed | cancelled,
// running ⇄ waiting, failed and cancelled back to running only through
// Resume or RetryStep, completed only through RetryStep. A run that never
// started (pending) or is waiting may be cancelled.
var wantRunTransitions = map[edge][]Trigger{
	{StatusPending, StatusRunning}:   singleTriggers,
	{StatusPending, StatusCancelled}: singleTriggers,
	{StatusRunning, StatusCompleted}: singleTriggers,
	{StatusRunning, StatusFailed}:    singleTriggers,
	{StatusRunning, StatusCancelled}: singleTriggers,
	{StatusRunning, StatusWaiting}:   singleTriggers,
	{StatusWaiting, StatusRunning}:   singleTriggers,
	{StatusWaiting, StatusCancelled}: singleTriggers,
	{StatusFailed, StatusRunning}:    {TriggerResume, TriggerRetryStep},
	{StatusCancelled, StatusRunning}: {TriggerResume, TriggerRetryStep},
	{StatusCompleted, StatusRunning}: {TriggerRetryStep},
}

// wantNodeTransitions is SPEC §3 for nodes: pending → running → completed |
// failed | skipped (skipped straight from pending, since a When predicate
// runs before the node starts), running → running for a retried attempt,
// running → pending for an interrupted step, and back to pending only by a
// replay: failed by Resume or RetryStep, completed and skipped by RetryStep.
var wantNodeTransitions = map[edge][]Trigger{
	{StatusPending, StatusRunning}:   singleTriggers,
	{StatusPending, StatusSkipped}:   singleTriggers,
	{StatusRunning, StatusRunning}:   singleTriggers,
	{StatusRunning, StatusCompleted}: singleTriggers,
	{StatusRunning, StatusFailed}:    singleTriggers,
	{StatusRunning, StatusPending}:   singleTriggers,
	{StatusFailed, StatusPending}:    {TriggerResume, TriggerRetryStep},
	{StatusCompleted, StatusPending}: {TriggerRetryStep},
	{StatusSkipped, StatusPending}:   {TriggerRetryStep},
}

func TestRunTransitions(t *testing.T) {
	t.Parallel()
	testTransitions(t, "run", CheckRunTransition, runTransitions, wantRunTransitions)
}

func TestNodeTransitions(t *testing.T) {
	t.Parallel()
	testTransitions(t, "node", CheckNodeTransition, nodeTransitions, wantNodeTransitions)
}

// testTransitions checks that the table holds exactly the expected edges and
// that check accepts each expected (from, to, trigger) and refuses every
// other combination over all statuses and triggers with ErrIllegalTransition.
func testTransitions(t *testing.T, what string, check func(from, to Status, by Trigger) error,
	table map[edge]Trigger, want map[edge][]Trigger) {
	for e := range table {
		if _, ok := want[e]; !ok {
			t.Errorf("%s table has %s → %s, which SPEC §3 does not allow", what, e.from, e.to)
		}
	}
	legal := 0
	for _, from := range allStatuses {
		for _, to := range allStatuses {
			// Every single trigger, no trigger, and unknown bits.
			for _, by := range append(singleTriggers, 0, 1<<7) {
				name := fmt.Sprintf("%s %q→%q by %d", what, from, to, by)
				wantOK := false
				for _, ok := range want[edge{from, to}] {
					wantOK = wantOK || ok == by
				}
				err := check(from, to, by)
				switch {
				case wantOK && err != nil:
					t.Errorf("%s: refused a legal transition: %v", name, err)
				case wantOK:
					legal++
				case err == nil:
					t.Errorf("%s: accepted an illegal transition", name)
				case !errors.Is(err, ErrIllegalTransition):
					t.Errorf("%s: error %v does not wrap ErrIllegalTransition", name, err)
				}
			}
		}
	}
	wantLegal := 0
	for _, by := range want {
		wantLegal += len(by)
	}
	if legal != wantLegal {
		t.Errorf("%s: %d legal (from, to, trigger) combinations accepted, want %d", what, legal, wantLegal)
	}
}

// TestTransitionErrorNamesTheEdge checks that a refused transition says what
// was refused, so the bug it reveals can be found.
func TestTransitionErrorNamesTheEdge(t *testing.T) {
	t.Parallel()
	err := CheckRunTransition(StatusCompleted, StatusFailed, TriggerExecute)
	if err == nil {
		t.Fatal("completed → failed accepted")
	}
	for _, s := range []string{"run", "completed", "failed"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	err = CheckNodeTransition(StatusSkipped, StatusCompleted, TriggerRetryStep)
	if err == nil || !strings.Contains(err.Error(), "node") || !strings.Contains(err.Error(), "skipped") {
		t.Errorf("node skipped → completed: error %v, want one naming the node and skipped", err)
	}
}

func TestStatusPredicates(t *testing.T) {
	t.Parallel()
	final := map[Status]bool{StatusCompleted: true, StatusFailed: true, StatusCancelled: true}
	done := map[Status]bool{StatusCompleted: true, StatusSkipped: true}
	for _, s := range allStatuses {
		if s.Final() != final[s] {
			t.Errorf("%q.Final() = %v, want %v", s, s.Final(), final[s])
		}
		if s.Done() != done[s] {
			t.Errorf("%q.Done() = %v, want %v", s, s.Done(), done[s])
		}
	}
}
