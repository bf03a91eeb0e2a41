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

// TestDiffMatchesByteByByte checks Diff, which compares blocks at a time,
// against the byte-by-byte definition, on data longer than a few blocks
// changed anywhere (across block boundaries too).
func TestDiffMatchesByteByByte(t *testing.T) {
	naive := func(before, after []byte) (p, s int) {
		n := min(len(before), len(after))
		for p < n && before[p] == after[p] {
			p++
		}
		for s < n-p && before[len(before)-1-s] == after[len(after)-1-s] {
			s++
		}
		return p, s
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		before := make([]byte, rng.IntN(600))
		for i := range before {
			before[i] = byte('a' + rng.IntN(3)) // few letters: long accidental matches
		}
		after := mutate(rng, before)
		if rng.IntN(2) == 0 {
			after = mutate(rng, after)
		}
		got := Diff(before, after)
		p, s := naive(before, after)
		want := Patch{Offset: p, Delete: len(before) - p - s, Insert: after[p : len(after)-s]}
		if got.Offset != want.Offset || got.Delete != want.Delete || string(got.Insert) != string(want.Insert) {
			t.Fatalf("Diff(%q, %q) = %+v, want %+v", before, after, got, want)
		}
		if applied, err := got.apply(append([]byte(nil), before...)); err != nil || string(applied) != string(after) {
			t.Fatalf("Diff(%q, %q) applied gives %q, %v", before, after, applied, err)
		}
	}
}

// BenchmarkDiff is a W2 step at N = 1,000: 100 bytes appended to the last
// of a thousand items.
func BenchmarkDiff(b *testing.B) {
	item := `"` + string(make([]byte, 98)) + `",`
	var before []byte
	before = append(before, `{"items":[`...)
	for range 1000 {
		before = append(before, item...)
	}
	after := append(append([]byte(nil), before...), item...)
	before = append(before, `""]}`...)
	after = append(after, `""]}`...)
	b.SetBytes(int64(len(before)))
	for b.Loop() {
		if p := Diff(before, after); len(p.Insert) != len(item) {
			b.Fatalf("patch inserts %d bytes, want %d", len(p.Insert), len(item))
		}
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
