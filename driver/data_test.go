package driver

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestDiffApply(t *testing.T) {
	cases := [][2]string{
		{`{"items":["a"]}`, `{"items":["a","b"]}`},
		{`{"n":1,"items":[]}`, `{"n":22,"items":[]}`},
		{`{}`, `{"a":{"b":[1,2,3]}}`},
		{`{"a":"xxxx"}`, `{"a":"xx"}`},
		{`{"same":true}`, `{"same":true}`},
		{``, `null`},
		{`"aaaa"`, `"aa"`},
	}
	for _, c := range cases {
		p := Diff([]byte(c[0]), []byte(c[1]))
		got, err := p.apply(append([]byte(nil), c[0]...))
		if err != nil || string(got) != c[1] {
			t.Errorf("Diff(%s, %s) = %+v, applied gives %q, %v", c[0], c[1], p, got, err)
		}
	}
	if p := Diff([]byte(`{"items":["a"]}`), []byte(`{"items":["a","b"]}`)); len(p.Insert) != 4 {
		t.Errorf("appending to an array gives patch %+v, want 4 bytes inserted", p)
	}
}

// TestRebuildRandomChains applies random chains of changes, with snapshots
// here and there, and checks every prefix rebuilds to the right data.
func TestRebuildRandomChains(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		initial := json.RawMessage(`{"items":[]}`)
		cur := []byte(initial)
		var datas []NodeData
		var want []string
		for i := range 1 + rng.IntN(30) {
			next := mutate(rng, cur)
			d := NodeData{Index: i * 2}
			if rng.IntN(5) == 0 {
				d.Snapshot = append(json.RawMessage(nil), next...)
			} else {
				p := Diff(cur, next)
				d.Patch = &p
			}
			datas = append(datas, d)
			want = append(want, string(next))
			cur = next
		}
		for k := range datas {
			got, err := Rebuild(initial, datas[:k+1])
			if err != nil || string(got) != want[k] {
				t.Fatalf("Rebuild of %d nodes = %q, %v; want %q", k+1, got, err, want[k])
			}
		}
		if got, err := Rebuild(initial, nil); err != nil || string(got) != string(initial) {
			t.Fatalf("Rebuild of no node = %q, %v; want the initial data", got, err)
		}
	}
}

// mutate returns a changed copy of b: bytes inserted, deleted or replaced
// somewhere.
func mutate(rng *rand.Rand, b []byte) []byte {
	out := append([]byte(nil), b...)
	at := rng.IntN(len(out) + 1)
	switch rng.IntN(3) {
	case 0:
		ins := make([]byte, rng.IntN(20))
		for i := range ins {
			ins[i] = byte('a' + rng.IntN(26))
		}
		out = append(out[:at], append(ins, out[at:]...)...)
	case 1:
		n := min(rng.IntN(10), len(out)-at)
		out = append(out[:at], out[at+n:]...)
	default:
		if at < len(out) {
			out[at] = byte('A' + rng.IntN(26))
		}
	}
	return out
}

func TestRebuildCorruptPatch(t *testing.T) {
	_, err := Rebuild(json.RawMessage(`{}`), []NodeData{{Index: 3, Patch: &Patch{Offset: 5, Delete: 9}}})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a patch past the data's end: %v, want ErrCorrupt", err)
	}
}
