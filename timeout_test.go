package flux_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flux-go/flux"
)

// TestTimeoutCancelsContext checks that at its Timeout an attempt's context
// is cancelled with cause ErrTimeout, and that the next attempt starts from
// the data before the node, without the timed-out attempt's writes.
func TestTimeoutCancelsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := openEngine(t, flux.Config{})
		defer e.Close()
		type observed struct {
			waited time.Duration
			cause  error
			err    error
		}
		timedOut := make(chan observed, 1)
		var mu sync.Mutex
		var startData [][]string
		w := flux.New[tIn, tData]("timeout").
			Step("prepare", func(c *tCtx) error { c.Data.Trail = []string{"prepare"}; return nil }).
			Step("slow", func(c *tCtx) error {
				mu.Lock()
				startData = append(startData, slices.Clone(c.Data.Trail))
				mu.Unlock()
				c.Data.Trail = append(c.Data.Trail, fmt.Sprintf("slow%d", c.Attempt()))
				c.Data.Sum += 100
				if c.Attempt() == 1 {
					start := time.Now()
					<-c.Done()
					timedOut <- observed{time.Since(start), context.Cause(c), c.Err()}
					return c.Err()
				}
				return nil
			}, flux.Timeout(5*time.Second), flux.Retries(1), flux.NoBackoff())
		res, err := flux.Execute(context.Background(), e, w, tIn{})
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		obs := <-timedOut
		if obs.waited != 5*time.Second {
			t.Errorf("context was cancelled after %s, want the 5s timeout", obs.waited)
		}
		if !errors.Is(obs.cause, flux.ErrTimeout) || !errors.Is(obs.err, context.DeadlineExceeded) {
			t.Errorf("handler saw cause %v and err %v, want ErrTimeout and DeadlineExceeded", obs.cause, obs.err)
		}
		if want := [][]string{{"prepare"}, {"prepare"}}; !reflect.DeepEqual(startData, want) {
			t.Errorf("attempts started with trails %v, want %v", startData, want)
		}
		if !slices.Equal(res.Data.Trail, []string{"prepare", "slow2"}) || res.Data.Sum != 100 {
			t.Errorf("final data %+v, want trail [prepare slow2] and sum 100", res.Data)
		}
		atts := res.Steps[1].Attempts
		if len(atts) != 2 || !strings.Contains(atts[0].Error, flux.ErrTimeout.Error()) || atts[1].Error != "" {
			t.Errorf("attempts %+v, want a timed-out one then a successful one", atts)
		}
	})
}

// TestTimeoutExhausted checks that a step that always times out fails the
// run with an error wrapping ErrTimeout, even when the handler ignores its
// context, after exactly Timeout per attempt.
func TestTimeoutExhausted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := openEngine(t, flux.Config{})
		defer e.Close()
		release := make(chan struct{})
		exited := make(chan struct{}, 3)
		w := flux.New[tIn, tData]("always-late").
			Step("late", func(c *tCtx) error {
				defer func() { exited <- struct{}{} }()
				<-release // ignores its context
				return nil
			}, flux.Timeout(time.Second), flux.Retries(2), flux.NoBackoff())
		start := time.Now()
		res, err := flux.Execute(context.Background(), e, w, tIn{})
		elapsed := time.Since(start)
		close(release)
		for range 3 {
			<-exited
		}
		if !errors.Is(err, flux.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		var se *flux.StepError
		if !errors.As(err, &se) || se.Attempt != 3 {
			t.Errorf("StepError %+v, want attempt 3", se)
		}
		if elapsed != 3*time.Second {
			t.Errorf("three 1s attempts took %s", elapsed)
		}
		if res.Status != flux.StatusFailed || len(res.Steps[0].Attempts) != 3 {
			t.Errorf("status %s with %d attempts, want failed with 3", res.Status, len(res.Steps[0].Attempts))
		}
	})
}

// TestAbandonedHandlerChangesNothing runs a handler that ignores its
// timeout and keeps writing to its Data while the next attempt runs and
// after the run completed: neither the next attempt, the result, the stored
// run nor the hooks see anything of it. Under -race, any memory it shared
// with the run would also be reported.
func TestAbandonedHandlerChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		e := openEngine(t, flux.Config{Hooks: rec.hooks()})
		defer e.Close()
		secondStarted := make(chan struct{})
		abandonedWrote := make(chan struct{})
		release := make(chan struct{})
		finished := make(chan struct{})
		var secondSaw []string
		scribble := func(c *tCtx, tag string) {
			for i := range 100 {
				c.Data.Trail = append(c.Data.Trail, fmt.Sprintf("%s-%d", tag, i))
				c.Data.Sum += 1000
				c.Data.Big = tag
			}
		}
		w := flux.New[tIn, tData]("abandon").
			Step("prepare", func(c *tCtx) error { c.Data.Trail = []string{"prepare"}; return nil }).
			Step("stubborn", func(c *tCtx) error {
				if c.Attempt() == 1 {
					defer close(finished)
					scribble(c, "before-timeout")
					<-secondStarted // long after the timeout, ignoring c
					scribble(c, "during-next-attempt")
					close(abandonedWrote)
					<-release
					scribble(c, "after-run")
					return nil // success, far too late
				}
				close(secondStarted)
				<-abandonedWrote
				secondSaw = slices.Clone(c.Data.Trail)
				c.Data.Trail = append(c.Data.Trail, "stubborn")
				return nil
			}, flux.Timeout(time.Second), flux.Retries(1), flux.NoBackoff()).
			Step("after", func(c *tCtx) error { c.Data.Trail = append(c.Data.Trail, "after"); return nil })

		res, err := flux.Execute(context.Background(), e, w, tIn{})
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		stored := mustGet(t, e, res.ID)
		hooks := rec.len()
		close(release)
		<-finished
		synctest.Wait() // let anything the late return might trigger happen

		wantTrail := []string{"prepare", "stubborn", "after"}
		if !slices.Equal(secondSaw, []string{"prepare"}) {
			t.Errorf("second attempt started with %v, want [prepare]", secondSaw)
		}
		if !slices.Equal(res.Data.Trail, wantTrail) || res.Data.Sum != 0 || res.Data.Big != "" {
			t.Errorf("result data %+v, want trail %v and nothing else", res.Data, wantTrail)
		}
		again := mustGet(t, e, res.ID)
		if !reflect.DeepEqual(stored, again) {
			t.Errorf("stored run changed after the abandoned handler returned:\n before %+v\n after  %+v", stored, again)
		}
		if s := string(again.Data); strings.Contains(s, "before-timeout") || strings.Contains(s, "during") || strings.Contains(s, "after-run") {
			t.Errorf("stored data %s has the abandoned handler's writes", s)
		}
		for _, st := range again.Steps {
			d, err := e.NodeData(context.Background(), res.ID, st.Name)
			if err != nil || strings.Contains(string(d), "timeout") || strings.Contains(string(d), "after-run") {
				t.Errorf("data after %s: %s, %v; want none of the abandoned handler's writes", st.Name, d, err)
			}
		}
		if again.Status != flux.StatusCompleted || len(again.Steps[1].Attempts) != 2 {
			t.Errorf("stored status %s with %d attempts of stubborn, want completed with 2", again.Status, len(again.Steps[1].Attempts))
		}
		if n := rec.len(); n != hooks {
			t.Errorf("%d hooks fired after the run ended", n-hooks)
		}
		if evs := rec.forStep(res.ID, "stubborn"); hookNames(evs)[1] != "StepRetry" || !errors.Is(evs[1].Err, flux.ErrTimeout) {
			t.Errorf("hooks of stubborn %v, want a StepRetry with ErrTimeout after the first start", evs)
		}
	})
}

// TestLateTimerDoesNotEndNextAttempt finishes a step exactly at its
// deadline, so its timeout may fire just after it completed, and checks that
// this late firing never ends the next node, which has no timeout. (About
// half the runs finish the first step in time; the others time it out.)
func TestLateTimerDoesNotEndNextAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := openEngine(t, flux.Config{})
		defer e.Close()
		exited := make(chan struct{}, 1)
		w := flux.New[tIn, tData]("late-timer").
			Step("on-the-dot", func(c *tCtx) error {
				time.Sleep(time.Second)
				return nil
			}, flux.Timeout(time.Second), flux.Retries(0)).
			Step("untimed", func(c *tCtx) error {
				defer func() { exited <- struct{}{} }()
				time.Sleep(time.Minute)
				return nil
			}, flux.Timeout(0), flux.Retries(0))
		completed := 0
		for range 100 {
			res, err := flux.Execute(context.Background(), e, w, tIn{})
			if res.Steps[0].Status != flux.StatusCompleted {
				continue // timed out at the deadline: fine
			}
			completed++
			<-exited
			if err != nil || res.Status != flux.StatusCompleted {
				t.Fatalf("a step without timeout failed after the previous step finished at its deadline: %v", err)
			}
		}
		t.Logf("%d of 100 runs finished the first step at its deadline", completed)
	})
}
