package postgres

import (
	"slices"
	"testing"

	"github.com/flux-go/flux/driver"
)

// TestAppendRounds: writes to one run go in successive statements, in the
// order they came, since one statement can change a row only once.
func TestAppendRounds(t *testing.T) {
	t.Parallel()
	var writes []*writeReq
	for i, id := range []string{"a", "a", "b", "c", "c", "c"} {
		writes = append(writes, &writeReq{checkpoint: &driver.CheckpointParams{ID: id, Version: int64(i)}})
	}
	var got [][]int64
	for _, round := range appendRounds(nil, writes) {
		var vs []int64
		for _, r := range round {
			vs = append(vs, r.checkpoint.Version)
		}
		got = append(got, vs)
	}
	want := [][]int64{{0, 2, 3}, {1, 4}, {5}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("rounds = %v, want %v", got, want)
	}
}
