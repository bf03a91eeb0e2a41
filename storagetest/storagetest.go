// Package storagetest is the conformance suite for [flux.Storage]: the same
// tests, run by every adapter (memory, SQLite, PostgreSQL), prove the same
// behaviour on every store. An adapter wires it up in one test:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storagetest.Harness {
//			s := openEmptyStore(t) // isolated: its own file, schema or database
//			t.Cleanup(func() { s.Close() })
//			return storagetest.Harness{Store: s, Corrupt: corruptRow(s)}
//		})
//	}
//
// The contract tested is the one documented on [flux.Storage]. Every test
// runs in parallel with the others, each on the fresh store its harness
// returns; no test sleeps: lease expiry uses leases of one nanosecond, which
// have expired by the next call (polled with a deadline for stores whose
// clock is coarse).
package storagetest

import (
	"testing"

	"github.com/flux-go/flux"
)

// Harness is what an adapter gives the suite for one test.
type Harness struct {
	// Store is an isolated, empty store. The adapter closes it in a
	// t.Cleanup; the suite may close it first, so Close must be safe to
	// call twice.
	Store flux.Storage
	// Corrupt makes the stored row of run id undecodable (for example invalid
	// JSON in its body column). It is nil for stores that cannot be corrupted
	// (memory): the corrupt-row tests are then skipped with a message.
	Corrupt func(t *testing.T, id string)
}

// Run runs the whole suite as subtests of t; newHarness is called once per
// subtest and must return an isolated, empty store.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(t, newHarness(t))
				})
			}
		})
	}
}

type testCase struct {
	name string
	fn   func(t *testing.T, h Harness)
}

type group struct {
	name  string
	cases []testCase
}

var groups = []group{
	{"Create", createTests},
	{"Get", getTests},
	{"Checkpoint", checkpointTests},
	{"List", listTests},
	{"Changes", changesTests},
	{"Claim", claimTests},
	{"ClaimExpired", claimExpiredTests},
	{"Extend", extendTests},
	{"Release", releaseTests},
	{"Cancel", cancelTests},
	{"Prune", pruneTests},
	{"Concurrency", concurrencyTests},
	{"Corrupt", corruptTests},
	{"Sharing", sharingTests},
	{"Closed", closedTests},
	{"Wait", waitTests},
	{"Signal", signalTests},
	{"Limits", limitTests},
	{"Schedules", scheduleTests},
}
