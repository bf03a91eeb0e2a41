package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// gather calls Changes from position pos until the runs named, each at
// its last change, are want, in that order, and returns them and the last
// position. A store may hold changes back while earlier writes could still
// land (PostgreSQL does while any transaction runs, in any schema), so it
// polls: a run that changed twice may come first at its first change, in
// one page, and at its last in a later one, which moves it to the end.
func gather(t *testing.T, s flux.Storage, pos string, want []string, limit int) ([]string, string) {
	t.Helper()
	var got []string
	eventually(t, fmt.Sprintf("Changes after %q name %v, in that order", pos, want), func() (bool, error) {
		p, err := s.Changes(ctx(t), driver.ChangesParams{After: pos, Limit: limit})
		if err != nil {
			return false, err
		}
		if len(p.Runs) > limit {
			return false, fmt.Errorf("a page of Changes with Limit %d has %d runs", limit, len(p.Runs))
		}
		if p.Position == "" {
			return false, fmt.Errorf("a page of Changes has no position")
		}
		for _, r := range p.Runs {
			got = append(slices.DeleteFunc(got, func(id string) bool { return id == r.ID }), r.ID)
		}
		pos = p.Position
		if len(got) > len(want) {
			return false, fmt.Errorf("the pages of Changes name %v, more than the %d runs that changed", got, len(want))
		}
		return slices.Equal(got, want), nil
	})
	return got, pos
}

var changesTests = []testCase{
	{"Feed", func(t *testing.T, h Harness) {
		start, err := h.Store.Changes(ctx(t), driver.ChangesParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(start.Runs) != 0 || start.Position == "" {
			t.Fatalf("Changes from now: %d runs, position %q; want none and a position", len(start.Runs), start.Position)
		}
		hour := time.Hour
		a := mustCreate(t, h.Store, fullRun("feed-a"), hour)
		mustCreate(t, h.Store, smallRun("feed-b", "w", flux.StatusRunning, listBase), 0)
		a.Status = flux.StatusRunning
		mustCheckpoint(t, h.Store, a, hour, counts(a))
		got, pos := gather(t, h.Store, start.Position, []string{"feed-b", "feed-a"}, 100)
		wantIDs(t, "runs changed, by their last change", []string{"feed-b", "feed-a"}, got)

		// Leases are not changes; a cancel is.
		mustClaim(t, h.Store, driver.ClaimParams{ID: "feed-b", Owner: "e#2", Lease: hour})
		if err := h.Store.Release(ctx(t), driver.ReleaseParams{ID: "feed-b", Owner: "e#2"}); err != nil {
			t.Fatal(err)
		}
		if err := h.Store.Cancel(ctx(t), driver.CancelParams{ID: "feed-a", Error: "stop", At: listBase}); err != nil {
			t.Fatal(err)
		}
		got, pos = gather(t, h.Store, pos, []string{"feed-a"}, 100)
		wantIDs(t, "runs changed after a claim, a release and a cancel", []string{"feed-a"}, got)
		if r := mustList(t, h.Store, flux.Filter{Search: "feed-a"}).Runs[0]; r.Status != flux.StatusCancelled {
			t.Fatalf("feed-a is %s after its cancel", r.Status)
		}

		// More runs than the limit: the next call goes on.
		for i := range 5 {
			mustCreate(t, h.Store, smallRun(fmt.Sprintf("feed-c%d", i), "w", flux.StatusRunning, listBase), 0)
		}
		got, _ = gather(t, h.Store, pos, []string{"feed-c0", "feed-c1", "feed-c2", "feed-c3", "feed-c4"}, 2)
		wantIDs(t, "five new runs, two at a time", []string{"feed-c0", "feed-c1", "feed-c2", "feed-c3", "feed-c4"}, got)

		if _, err := h.Store.Changes(ctx(t), driver.ChangesParams{After: "not a position"}); err == nil {
			t.Fatal("Changes after a position the store never gave: no error")
		}
	}},
}
