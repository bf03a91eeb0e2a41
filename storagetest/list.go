package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/driver"
)

// listBase is a creation time on a whole second, so that List tests do not
// depend on how finely a store keeps time.
var listBase = time.Date(2025, 1, 2, 3, 4, 5, 0, zone)

// newestFirst is the order of List: by creation time, then by ID, both
// descending.
func newestFirst(a, b *flux.Run) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// seed creates runs (in a scrambled order, so that insertion order cannot
// pass for List's order) and returns them newest first.
func seed(t *testing.T, s flux.Storage, runs []*flux.Run) []*flux.Run {
	t.Helper()
	n := len(runs)
	for i := range n {
		// 7 is prime to every count used, so this visits each run once.
		mustCreate(t, s, runs[(i*7+3)%n], 0)
	}
	want := slices.Clone(runs)
	slices.SortFunc(want, newestFirst)
	return want
}

// pageAll lists every page of f and checks the page sizes.
func pageAll(t *testing.T, s flux.Storage, f flux.Filter) (all []string, pages int) {
	t.Helper()
	for {
		p := mustList(t, s, f)
		pages++
		if p.Next != "" && len(p.Runs) != f.PageSize() {
			t.Fatalf("page %d of %+v has %d runs and a next page; want full pages of %d", pages, f, len(p.Runs), f.PageSize())
		}
		if len(p.Runs) > f.PageSize() {
			t.Fatalf("page %d of %+v has %d runs, more than Limit", pages, f, len(p.Runs))
		}
		all = append(all, ids(p.Runs)...)
		if p.Next == "" {
			return all, pages
		}
		if pages > 100 {
			t.Fatalf("List(%+v) gave more than 100 pages: Next never became empty", f)
		}
		f.Cursor = p.Next
	}
}

var listTests = []testCase{
	{"Search", searchTest},
	{"Empty", func(t *testing.T, h Harness) {
		p := mustList(t, h.Store, flux.Filter{})
		if len(p.Runs) != 0 || p.Next != "" {
			t.Fatalf("List of an empty store gave %d runs and Next %q", len(p.Runs), p.Next)
		}
	}},
	{"NewestFirst", func(t *testing.T, h Harness) {
		var runs []*flux.Run
		for i := range 6 {
			// Runs 0-2 share a creation time: their order is by ID.
			created := listBase.Add(time.Duration(max(i, 2)) * time.Minute)
			runs = append(runs, smallRun(fmt.Sprintf("r%d", i), "w", flux.StatusPending, created))
		}
		want := seed(t, h.Store, runs)
		p := mustList(t, h.Store, flux.Filter{})
		wantIDs(t, "List order", []string{"r5", "r4", "r3", "r2", "r1", "r0"}, ids(p.Runs))
		for i, r := range p.Runs {
			wantSameRun(t, "run "+r.ID+" from List", header(want[i]), r)
		}
	}},
	{"Filters", func(t *testing.T, h Harness) {
		statuses := []flux.Status{flux.StatusPending, flux.StatusRunning, flux.StatusCompleted, flux.StatusFailed, flux.StatusCancelled}
		var runs []*flux.Run
		for i := range 20 {
			wf := []string{"orders", "refunds"}[i%2]
			runs = append(runs, smallRun(fmt.Sprintf("r%02d", i), wf, statuses[i%5], listBase.Add(time.Duration(i)*time.Second)))
		}
		all := seed(t, h.Store, runs)
		since, until := listBase.Add(5*time.Second), listBase.Add(15*time.Second)
		for _, f := range []flux.Filter{
			{},
			{Workflow: "orders"},
			{Workflow: "refunds"},
			{Workflow: "none"},
			{Status: []flux.Status{flux.StatusCompleted}},
			{Status: []flux.Status{flux.StatusCompleted, flux.StatusFailed}},
			{Status: []flux.Status{flux.StatusWaiting}},
			{Since: since},               // inclusive
			{Until: until},               // exclusive
			{Since: since, Until: until}, // both
			{Since: until, Until: since}, // nothing
			{Since: listBase.Add(-time.Hour), Until: listBase.Add(time.Hour)},
			{Workflow: "orders", Status: []flux.Status{flux.StatusPending, flux.StatusCompleted}, Since: since, Until: until},
		} {
			var want []string
			for _, r := range all {
				if f.Matches(r) {
					want = append(want, r.ID)
				}
			}
			p := mustList(t, h.Store, f)
			wantIDs(t, fmt.Sprintf("List(%+v)", f), want, ids(p.Runs))
			if p.Next != "" {
				t.Fatalf("List(%+v) of %d runs gave a next page", f, len(want))
			}
		}
		// The bounds are what Filter documents: Since inclusive, Until exclusive.
		p := mustList(t, h.Store, flux.Filter{Since: since, Until: until})
		if got := ids(p.Runs); len(got) != 10 || got[0] != "r14" || got[9] != "r05" {
			t.Fatalf("List(Since r05's time, Until r15's) gave %v, want r14 down to r05", got)
		}
	}},
	{"Pagination", func(t *testing.T, h Harness) {
		var runs []*flux.Run
		for i := range 25 {
			// Groups of three share a creation time, so pages break both
			// between and inside groups of equal times.
			created := listBase.Add(time.Duration(i/3) * time.Millisecond)
			wf := []string{"a", "b"}[i%2]
			runs = append(runs, smallRun(fmt.Sprintf("r%02d", i), wf, flux.StatusCompleted, created))
		}
		sorted := seed(t, h.Store, runs)
		all := ids(sorted)
		for _, limit := range []int{1, 5, 7, 24, 25, 26} {
			got, pages := pageAll(t, h.Store, flux.Filter{Limit: limit})
			wantIDs(t, fmt.Sprintf("all pages of Limit %d", limit), all, got)
			if want := (25 + limit - 1) / limit; pages != want {
				t.Fatalf("Limit %d gave %d pages for 25 runs, want %d (the last full page must have no Next)", limit, pages, want)
			}
		}
		var wantA []string
		for _, r := range sorted {
			if r.Workflow == "a" {
				wantA = append(wantA, r.ID)
			}
		}
		got, _ := pageAll(t, h.Store, flux.Filter{Workflow: "a", Limit: 4})
		wantIDs(t, "all pages of workflow a, Limit 4", wantA, got)
	}},
	{"CursorIsAPosition", func(t *testing.T, h Harness) {
		var runs []*flux.Run
		for i := range 10 {
			runs = append(runs, smallRun(fmt.Sprintf("r%d", i), "w", flux.StatusCompleted, listBase.Add(time.Duration(i)*time.Second)))
		}
		all := ids(seed(t, h.Store, runs))
		p1 := mustList(t, h.Store, flux.Filter{Limit: 4})
		wantIDs(t, "first page", all[:4], ids(p1.Runs))
		// A run created after the first page sorts before the cursor, an
		// old one after it: the next pages show the old one and nothing twice.
		mustCreate(t, h.Store, smallRun("new", "w", flux.StatusPending, listBase.Add(time.Hour)), 0)
		mustCreate(t, h.Store, smallRun("old", "w", flux.StatusPending, listBase.Add(-time.Hour)), 0)
		got, _ := pageAll(t, h.Store, flux.Filter{Limit: 4, Cursor: p1.Next})
		wantIDs(t, "the pages after the first", append(slices.Clone(all[4:]), "old"), got)
	}},
	{"DefaultLimit", func(t *testing.T, h Harness) {
		var runs []*flux.Run
		for i := range 55 {
			runs = append(runs, smallRun(fmt.Sprintf("r%02d", i), "w", flux.StatusCompleted, listBase.Add(time.Duration(i)*time.Second)))
		}
		all := ids(seed(t, h.Store, runs))
		p := mustList(t, h.Store, flux.Filter{})
		wantIDs(t, "first page with Limit 0", all[:50], ids(p.Runs))
		if p.Next == "" {
			t.Fatal("first page with the default limit of 55 runs has no Next")
		}
		p = mustList(t, h.Store, flux.Filter{Cursor: p.Next})
		wantIDs(t, "second page with Limit 0", all[50:], ids(p.Runs))
	}},
	{"InvalidCursor", func(t *testing.T, h Harness) {
		mustCreate(t, h.Store, smallRun("r1", "w", flux.StatusCompleted, listBase), 0)
		for _, c := range []string{"%%%", "bm90LWEtY3Vyc29y" /* base64 of not-a-cursor */, "x:y", "-"} {
			p, err := h.Store.List(ctx(t), flux.Filter{Cursor: c})
			if err == nil {
				t.Fatalf("List with the invalid cursor %q gave no error but %d runs", c, len(p.Runs))
			}
		}
	}},
}

// searchTest: Filter.Search finds runs by ID prefix, by workflow and by the
// words of their error (as word prefixes, in any case, all of them), with
// the other filters and across pages, and follows a run's error as
// checkpoints change it.
func searchTest(t *testing.T, h Harness) {
	var runs []*flux.Run
	add := func(id, wf string, status flux.Status, errText string) *flux.Run {
		r := smallRun(id, wf, status, listBase.Add(time.Duration(len(runs))*time.Minute))
		r.Error = errText
		runs = append(runs, r)
		return r
	}
	add("ord-0001", "orders", flux.StatusCompleted, "")
	add("ord-0002", "orders", flux.StatusFailed, "payment: card declined by issuer")
	add("ord-0003", "orders", flux.StatusFailed, "inventory: Out of stock (SKU 42)")
	add("ref-0001", "refunds", flux.StatusFailed, "Card DECLINED")
	add("ref-0002", "refunds", flux.StatusCancelled, "cancelled by operator")
	add("shp-0001", "ord", flux.StatusRunning, "")
	add("zzz-long", "long", flux.StatusFailed, "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen: needle")
	add("zzz-done", "long", flux.StatusCompleted, "")
	seed(t, h.Store, runs) // 8 runs: seed's stride of 7 visits each once

	search := func(f flux.Filter) []string {
		t.Helper()
		got, _ := pageAll(t, h.Store, f)
		return got
	}
	for _, c := range []struct {
		f    flux.Filter
		want []string
	}{
		{flux.Filter{Search: "ord-000"}, []string{"ord-0003", "ord-0002", "ord-0001"}},
		{flux.Filter{Search: "ord-0002"}, []string{"ord-0002"}},
		{flux.Filter{Search: "refunds"}, []string{"ref-0002", "ref-0001"}},
		{flux.Filter{Search: "ord"}, []string{"shp-0001", "ord-0003", "ord-0002", "ord-0001"}}, // workflow ord, and the prefix
		{flux.Filter{Search: "declined"}, []string{"ref-0001", "ord-0002"}},
		{flux.Filter{Search: "DECL"}, []string{"ref-0001", "ord-0002"}},
		{flux.Filter{Search: "card decl"}, []string{"ref-0001", "ord-0002"}},
		{flux.Filter{Search: "card issuer"}, []string{"ord-0002"}},
		{flux.Filter{Search: "stock 42"}, []string{"ord-0003"}},
		{flux.Filter{Search: "needle"}, []string{"zzz-long"}}, // the 18th word of its error
		{flux.Filter{Search: "declined", Workflow: "orders"}, []string{"ord-0002"}},
		{flux.Filter{Search: "declined", Status: []flux.Status{flux.StatusCancelled}}, nil},
		{flux.Filter{Search: "clined"}, nil}, // words match from their start
		{flux.Filter{Search: "nothing-like-this"}, nil},
		{flux.Filter{Search: "ord-000", Limit: 1}, []string{"ord-0003", "ord-0002", "ord-0001"}}, // one per page
	} {
		wantIDs(t, fmt.Sprintf("search %+v", c.f), c.want, search(c.f))
	}

	// A checkpoint that clears the error (a resume) takes the run out of
	// the search; one that sets it puts it in.
	r := mustGet(t, h.Store, "ord-0002")
	claimed := mustClaim(t, h.Store, driver.ClaimParams{ID: r.ID, Owner: "e#1", Lease: time.Hour})
	claimed.Status, claimed.Error, claimed.FinishedAt = flux.StatusRunning, "", time.Time{}
	mustCheckpoint(t, h.Store, claimed, time.Hour, counts(claimed))
	wantIDs(t, "search for declined after ord-0002 resumed", []string{"ref-0001"}, search(flux.Filter{Search: "declined"}))
	claimed.Status, claimed.Error, claimed.FinishedAt = flux.StatusFailed, "timeout talking to the bank", listBase.Add(time.Hour)
	mustCheckpoint(t, h.Store, claimed, driver.ReleaseLease, counts(claimed))
	wantIDs(t, "search for bank after ord-0002 failed again", []string{"ord-0002"}, search(flux.Filter{Search: "BANK"}))
	wantIDs(t, "search for declined after ord-0002 failed again", []string{"ref-0001"}, search(flux.Filter{Search: "declined"}))
}
