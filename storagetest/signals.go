package storagetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// signaler returns s as a driver.Signaler: every store of the module must
// be one.
func signaler(t *testing.T, s flux.Storage) driver.Signaler {
	t.Helper()
	sg, ok := s.(driver.Signaler)
	if !ok {
		t.Fatalf("store %T does not implement driver.Signaler: every store of the module must", s)
	}
	return sg
}

// mustSignal sends p and fails unless it was delivered to want runs.
func mustSignal(t *testing.T, s flux.Storage, p driver.SignalParams, want int) {
	t.Helper()
	n, err := signaler(t, s).Signal(ctx(t), p)
	if err != nil {
		t.Fatalf("Signal %q to run %q / wait key %q: %v", p.Name, p.RunID, p.WaitKey, err)
	}
	if n != want {
		t.Fatalf("Signal %q to run %q / wait key %q (key %q) delivered to %d runs, want %d", p.Name, p.RunID, p.WaitKey, p.Key, n, want)
	}
}

// wantSignals fails unless got are want: every field equal, the payload
// byte for byte, SentAt to the microsecond.
func wantSignals(t *testing.T, what string, want, got []driver.Signal) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: got %d signals %s, want %d %s", what, len(got), fmtSignals(got), len(want), fmtSignals(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Seq != w.Seq || g.Name != w.Name || g.Key != w.Key || !bytes.Equal(g.Payload, w.Payload) ||
			!sameMicro(g.SentAt, w.SentAt) || g.Node != w.Node {
			t.Fatalf("%s: signal %d is %s, want %s", what, i, fmtSignals(got[i:i+1]), fmtSignals(want[i:i+1]))
		}
	}
}

func fmtSignals(ss []driver.Signal) string {
	var b bytes.Buffer
	for _, s := range ss {
		fmt.Fprintf(&b, "{Seq %d, Name %q, Key %q, Payload %q, SentAt %s, Node %d}", s.Seq, s.Name, s.Key, s.Payload, fmtTime(s.SentAt), s.Node)
	}
	return "[" + b.String() + "]"
}

// setWaitKey writes r, running, with wait key key, by its owner.
func setWaitKey(t *testing.T, s flux.Storage, r *flux.Run, key string) {
	t.Helper()
	p := checkpoint(r, 0, counts(r))
	p.Header.WaitKey = key
	mustWrite(t, s, r, p)
	r.WaitKey = key
}

var signalTests = []testCase{
	{"ToAWaitingRun", func(t *testing.T, h Harness) {
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		mustWait(t, s, r, time.Time{}, "", 0)
		payload := []byte(`{"approved":true,"by":"ann"}`)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "approval", Payload: payload, At: baseTime}, 1)
		sig := []driver.Signal{{Seq: 1, Name: "approval", Payload: payload, SentAt: baseTime, Node: -1}}
		got := mustGet(t, s, "r1")
		wantWait(t, "Get of a waiting run after a Signal", got, waitState{Status: flux.StatusWaiting, Version: 2, SignalSeq: 1})
		wantSignals(t, "Get of a waiting run after a Signal", sig, got.Signals)
		c := claimWorkflows(t, s, "engine-b", "w")
		wantIDs(t, "ClaimExpired of the signalled run", []string{"r1"}, ids(c.Runs))
		wantWait(t, "the run ClaimExpired returned", c.Runs[0], waitState{Status: flux.StatusWaiting, Owner: "engine-b", Version: 3, SignalSeq: 1})
		wantSignals(t, "the run ClaimExpired returned", sig, c.Runs[0].Signals)
	}},
	{"ToASleepingRun", func(t *testing.T, h Harness) {
		// A signal wakes a run sleeping until later, too.
		s := h.Store
		mustWait(t, s, leasedRun(t, s, "r1", "w", listBase), time.Now().Add(hour), "", 0)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "go", At: baseTime}, 1)
		c := claimWorkflows(t, s, "engine-b", "w")
		wantIDs(t, "ClaimExpired of the signalled run", []string{"r1"}, ids(c.Runs))
		if !c.NextWake.IsZero() {
			t.Fatalf("NextWake %s after the only sleeping run was signalled and claimed, want zero", fmtTime(c.NextWake))
		}
	}},
	{"WakesEngines", func(t *testing.T, h Harness) {
		s := h.Store
		wk, ok := s.(driver.Waker)
		if !ok {
			t.Skipf("store %T is not a driver.Waker", s)
		}
		mustWait(t, s, leasedRun(t, s, "r1", "w", listBase), time.Time{}, "", 0)
		ch, stop := wk.Wakeups()
		defer stop()
		select {
		case <-ch: // the wait's own wake-up
		default:
		}
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "go", At: baseTime}, 1)
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no wake-up within 10s of a Signal that made a waiting run claimable")
		}
	}},
	{"UnknownRun", func(t *testing.T, h Harness) {
		_, err := signaler(t, h.Store).Signal(ctx(t), driver.SignalParams{RunID: "missing", Name: "go", At: baseTime})
		wantErr(t, "Signal to an unknown run", err, flux.ErrRunNotFound)
	}},
	{"FinishedRun", func(t *testing.T, h Harness) {
		for _, st := range []flux.Status{flux.StatusCompleted, flux.StatusFailed, flux.StatusCancelled} {
			r := mustCreate(t, h.Store, smallRun("r-"+string(st), "w", st, listBase), 0)
			_, err := signaler(t, h.Store).Signal(ctx(t), driver.SignalParams{RunID: r.ID, Name: "go", Key: "k", At: baseTime})
			wantErr(t, "Signal to a "+string(st)+" run", err, flux.ErrRunFinished)
			got := mustGet(t, h.Store, r.ID)
			wantWait(t, "Get after the refused Signal", got, waitState{Status: st, Version: 1})
			wantSignals(t, "Get after the refused Signal", nil, got.Signals)
		}
	}},
	{"DuplicateKey", func(t *testing.T, h Harness) {
		s := h.Store
		leasedRun(t, s, "r1", "w", listBase)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "paid", Key: "pay-1", Payload: []byte(`1`), At: baseTime}, 1)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "paid", Key: "pay-1", Payload: []byte(`2`), At: baseTime.Add(time.Second)}, 0)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "paid", Key: "pay-2", Payload: []byte(`3`), At: baseTime.Add(2 * time.Second)}, 1)
		got := mustGet(t, s, "r1")
		wantWait(t, "Get after signals with keys pay-1, pay-1, pay-2", got,
			waitState{Status: flux.StatusRunning, Owner: "engine-a", Version: 1, SignalSeq: 2})
		wantSignals(t, "Get after signals with keys pay-1, pay-1, pay-2", []driver.Signal{
			{Seq: 1, Name: "paid", Key: "pay-1", Payload: []byte(`1`), SentAt: baseTime, Node: -1},
			{Seq: 2, Name: "paid", Key: "pay-2", Payload: []byte(`3`), SentAt: baseTime.Add(2 * time.Second), Node: -1},
		}, got.Signals)
	}},
	{"WithoutKeyEveryTime", func(t *testing.T, h Harness) {
		s := h.Store
		leasedRun(t, s, "r1", "w", listBase)
		for range 2 {
			mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "ping", At: baseTime}, 1)
		}
		got := mustGet(t, s, "r1")
		wantWait(t, "Get after two signals without key", got, waitState{Status: flux.StatusRunning, Owner: "engine-a", Version: 1, SignalSeq: 2})
		wantSignals(t, "Get after two signals without key", []driver.Signal{
			{Seq: 1, Name: "ping", SentAt: baseTime, Node: -1},
			{Seq: 2, Name: "ping", SentAt: baseTime, Node: -1},
		}, got.Signals)
	}},
	{"LeasedRunKeepsItsOwner", func(t *testing.T, h Harness) {
		// A signal to a running run changes neither its version nor its
		// lease: its owner's next checkpoints succeed.
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "go", At: baseTime}, 1)
		wantWait(t, "Get of a running run after a Signal", mustGet(t, s, "r1"),
			waitState{Status: flux.StatusRunning, Owner: "engine-a", Version: 1, SignalSeq: 1})
		if c := claimWorkflows(t, s, "engine-b", "w"); len(c.Runs) != 0 {
			t.Fatalf("ClaimExpired claimed %v, a signalled run under a live lease", ids(c.Runs))
		}
		r.Error = "still running"
		mustCheckpoint(t, s, r, hour, counts(r))
		// The owner saw the signal (SignalSeq 1) and waits on.
		wake := time.Now().Add(hour)
		mustWait(t, s, r, wake, "", 1)
		c := claimWorkflows(t, s, "engine-b", "w")
		if len(c.Runs) != 0 {
			t.Fatalf("ClaimExpired claimed %v, waiting for an hour after a signal it had seen", ids(c.Runs))
		}
		wantMicro(t, "NextWake", wake, c.NextWake)
		wantWait(t, "Get of the waiting run", mustGet(t, s, "r1"),
			waitState{Status: flux.StatusWaiting, Version: 3, WakeAt: wake, SignalSeq: 1})
	}},
	{"StaleSignalSeq", func(t *testing.T, h Harness) {
		// The writer had not seen the signal: the run does not sleep.
		s := h.Store
		for _, id := range []string{"sleep", "signal-only"} {
			r := leasedRun(t, s, id, "w", listBase)
			mustSignal(t, s, driver.SignalParams{RunID: id, Name: "go", At: baseTime}, 1)
			wake := time.Now().Add(hour)
			if id == "signal-only" {
				wake = time.Time{}
			}
			mustWait(t, s, r, wake, "", 0)
			got := mustGet(t, s, id)
			wantWait(t, "Get of "+id+" after a wait with a stale SignalSeq", got, waitState{Status: flux.StatusWaiting, Version: 2, SignalSeq: 1})
		}
		c := claimWorkflows(t, s, "engine-b", "w")
		wantSameSet(t, "ClaimExpired of runs that waited with a stale SignalSeq", []string{"sleep", "signal-only"}, ids(c.Runs))
		for _, r := range c.Runs {
			wantSignals(t, "the run ClaimExpired returned", []driver.Signal{{Seq: 1, Name: "go", SentAt: baseTime, Node: -1}}, r.Signals)
		}
	}},
	{"RaceWithWait", func(t *testing.T, h Harness) {
		// A signal racing its run's checkpoint to waiting is never lost:
		// the writer saw no signal, so the run must be claimable at once,
		// whichever came first.
		s := h.Store
		sg := signaler(t, s)
		const n = 50
		params := make([]driver.CheckpointParams, n)
		for i := range n {
			r := leasedRun(t, s, fmt.Sprintf("r%02d", i), "w", listBase)
			wake := time.Now().Add(hour)
			if i%2 == 0 {
				wake = time.Time{}
			}
			params[i] = waitParams(r, wake, "", 0)
		}
		errs := make([]error, 2*n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[2*i] = s.Checkpoint(ctx(t), params[i])
			})
			wg.Go(func() {
				<-start
				k, err := sg.Signal(ctx(t), driver.SignalParams{RunID: params[i].ID, Name: "go", At: baseTime})
				if err == nil && k != 1 {
					err = fmt.Errorf("delivered to %d runs, want 1", k)
				}
				errs[2*i+1] = err
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("run r%02d: %s: %v", i/2, map[bool]string{true: "Checkpoint to waiting", false: "Signal"}[i%2 == 0], err)
			}
		}
		c := claimWorkflows(t, s, "engine-b", "w")
		var want []string
		for _, p := range params {
			want = append(want, p.ID)
		}
		wantSameSet(t, "ClaimExpired after signals raced the waits", want, ids(c.Runs))
		for _, r := range c.Runs {
			if r.SignalSeq != 1 || len(r.Signals) != 1 {
				t.Fatalf("run %s: SignalSeq %d and %d signals, want 1 and 1", r.ID, r.SignalSeq, len(r.Signals))
			}
		}
	}},
	{"Consume", func(t *testing.T, h Harness) {
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "a", At: baseTime}, 1)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "b", At: baseTime}, 1)
		p := checkpoint(r, hour, counts(r))
		p.Consume = []driver.Consumed{{Seq: 1, Node: 0}}
		mustWrite(t, s, r, p)
		want := []driver.Signal{{Seq: 1, Name: "a", SentAt: baseTime, Node: 0}, {Seq: 2, Name: "b", SentAt: baseTime, Node: -1}}
		got := mustGet(t, s, "r1")
		wantSignals(t, "Get after a Checkpoint consuming signal 1", want, got.Signals)
		wantWait(t, "Get after a Checkpoint consuming signal 1", got, waitState{Status: flux.StatusRunning, Owner: "engine-a", Version: 2, SignalSeq: 2})

		// A failed Checkpoint consumes nothing.
		stale := checkpoint(ownedCopy(r, "engine-a", 1), hour, counts(r))
		stale.Consume = []driver.Consumed{{Seq: 2, Node: 0}}
		_, err := s.Checkpoint(ctx(t), stale)
		wantErr(t, "Checkpoint at a stale version", err, flux.ErrConflict)
		other := checkpoint(ownedCopy(r, "engine-b", r.Version), hour, counts(r))
		other.Consume = []driver.Consumed{{Seq: 2, Node: 0}}
		_, err = s.Checkpoint(ctx(t), other)
		wantErr(t, "Checkpoint by another owner", err, flux.ErrLeaseLost)
		wantSignals(t, "Get after the failed Checkpoints", want, mustGet(t, s, "r1").Signals)

		// Consumed with the wait it ends.
		p = waitParams(r, time.Now().Add(hour), "", 2)
		p.Consume = []driver.Consumed{{Seq: 2, Node: 0}}
		mustWrite(t, s, r, p)
		want[1].Node = 0
		wantSignals(t, "Get after a wait consuming signal 2", want, mustGet(t, s, "r1").Signals)
	}},
	{"ByWaitKey", func(t *testing.T, h Harness) {
		s := h.Store
		setWaitKey(t, s, leasedRun(t, s, "running", "w", listBase), "order-1")
		mustWait(t, s, leasedRun(t, s, "waiting", "w", listBase), time.Time{}, "order-1", 0)
		mustWait(t, s, leasedRun(t, s, "other-workflow", "v", listBase), time.Time{}, "order-1", 0)
		mustWait(t, s, leasedRun(t, s, "other-key", "w", listBase), time.Time{}, "order-2", 0)
		leasedRun(t, s, "no-key", "w", listBase)
		done := leasedRun(t, s, "completed", "w", listBase)
		setWaitKey(t, s, done, "order-1")
		done.Status, done.FinishedAt = flux.StatusCompleted, baseTime
		p := checkpoint(done, driver.ReleaseLease, counts(done))
		p.Header.WaitKey = "order-1"
		mustWrite(t, s, done, p)

		paid := driver.SignalParams{WaitKey: "order-1", Name: "paid", Key: "pay-1", Payload: []byte(`{"amount":12}`), At: baseTime}
		mustSignal(t, s, paid, 3)
		for id, seq := range map[string]int64{"running": 1, "waiting": 1, "other-workflow": 1, "other-key": 0, "no-key": 0, "completed": 0} {
			got := mustGet(t, s, id)
			if got.SignalSeq != seq {
				t.Fatalf("run %s has SignalSeq %d after a Signal to wait key order-1, want %d", id, got.SignalSeq, seq)
			}
			if seq == 1 {
				wantSignals(t, "Get of "+id, []driver.Signal{{Seq: 1, Name: "paid", Key: "pay-1", Payload: paid.Payload, SentAt: baseTime, Node: -1}}, got.Signals)
			}
		}
		c := claimWorkflows(t, s, "engine-b", "w")
		wantIDs(t, "ClaimExpired after the Signal to wait key order-1", []string{"waiting"}, ids(c.Runs))

		mustSignal(t, s, paid, 0) // the same key again
		if got := mustGet(t, s, "running"); got.SignalSeq != 1 {
			t.Fatalf("a second signal with key pay-1 was stored: SignalSeq %d", got.SignalSeq)
		}
		mustSignal(t, s, driver.SignalParams{WaitKey: "nobody", Name: "paid", At: baseTime}, 0)
	}},
	{"WaitKeyCleared", func(t *testing.T, h Harness) {
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		mustWait(t, s, r, time.Time{}, "order-1", 0)
		b := mustClaim(t, s, driver.ClaimParams{ID: "r1", Owner: "engine-b", Lease: hour})
		b.Status = flux.StatusRunning
		mustCheckpoint(t, s, b, hour, counts(b)) // WaitKey ""
		mustSignal(t, s, driver.SignalParams{WaitKey: "order-1", Name: "paid", At: baseTime}, 0)
		mustWait(t, s, b, time.Time{}, "order-2", 0)
		mustSignal(t, s, driver.SignalParams{WaitKey: "order-1", Name: "paid", At: baseTime}, 0)
		wantWait(t, "Get after signals to keys the run no longer waits for", mustGet(t, s, "r1"),
			waitState{Status: flux.StatusWaiting, Version: 5, WaitKey: "order-2"})
		mustSignal(t, s, driver.SignalParams{WaitKey: "order-2", Name: "paid", At: baseTime}, 1)
	}},
	{"Pruned", func(t *testing.T, h Harness) {
		// Prune deletes a run's signals: a new run with its ID has none.
		s := h.Store
		r := leasedRun(t, s, "r1", "w", listBase)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "a", Key: "k", At: baseTime}, 1)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "b", At: baseTime}, 1)
		r.Status, r.FinishedAt = flux.StatusCompleted, baseTime
		mustCheckpoint(t, s, r, driver.ReleaseLease, counts(r))
		if n, err := s.Prune(ctx(t), driver.PruneParams{Status: flux.StatusCompleted, FinishedBefore: baseTime.Add(hour)}); err != nil || n != 1 {
			t.Fatalf("Prune: %d, %v; want 1", n, err)
		}
		leasedRun(t, s, "r1", "w", listBase)
		got := mustGet(t, s, "r1")
		wantWait(t, "Get of a new run with a pruned run's ID", got, waitState{Status: flux.StatusRunning, Owner: "engine-a", Version: 1})
		wantSignals(t, "Get of a new run with a pruned run's ID", nil, got.Signals)
		mustSignal(t, s, driver.SignalParams{RunID: "r1", Name: "c", Key: "k", At: baseTime}, 1)
		wantSignals(t, "Get after a Signal to the new run", []driver.Signal{{Seq: 1, Name: "c", Key: "k", SentAt: baseTime, Node: -1}},
			mustGet(t, s, "r1").Signals)
	}},
	{"NotShared", func(t *testing.T, h Harness) {
		s := h.Store
		leasedRun(t, s, "r1", "w", listBase)
		p := driver.SignalParams{RunID: "r1", Name: "a", Payload: []byte(`{"k":"v"}`), At: baseTime}
		mustSignal(t, s, p, 1)
		want := []driver.Signal{{Seq: 1, Name: "a", Payload: bytes.Clone(p.Payload), SentAt: baseTime, Node: -1}}
		for i := range p.Payload {
			p.Payload[i] = 'X'
		}
		got := mustGet(t, s, "r1")
		wantSignals(t, "Get after the caller changed the payload it sent", want, got.Signals)
		for i := range got.Signals[0].Payload {
			got.Signals[0].Payload[i] = 'X'
		}
		got.Signals[0].Node, got.Signals[0].Name = 7, "scribbled"
		wantSignals(t, "Get after the caller changed the signals it got", want, mustGet(t, s, "r1").Signals)
	}},
	{"Closed", func(t *testing.T, h Harness) {
		s := h.Store
		leasedRun(t, s, "r1", "w", listBase)
		sg := signaler(t, s)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, err := sg.Signal(ctx(t), driver.SignalParams{RunID: "r1", Name: "a", At: baseTime})
		wantErr(t, "Signal to a run of a closed store", err, flux.ErrClosed)
		_, err = sg.Signal(ctx(t), driver.SignalParams{WaitKey: "k", Name: "a", At: baseTime})
		wantErr(t, "Signal to a wait key of a closed store", err, flux.ErrClosed)
	}},
}
