package driver

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Patch is how a node changed a run's data: the JSON after the node is the
// JSON before it with Delete bytes at Offset replaced by Insert. Flux
// encodes data with encoding/json, which writes a value the same way every
// time, so a node that changes a small part of large data gives a small
// patch, and a run's stored data grows with what its nodes changed rather
// than with the number of nodes times the size of the data.
type Patch struct {
	Offset int    `json:"offset"`
	Delete int    `json:"delete"`
	Insert []byte `json:"insert,omitempty"`
}

// Diff returns the patch that turns before into after: what lies between
// their longest common prefix and, after it, their longest common suffix.
// The patch's Insert is a part of after, not a copy.
func Diff(before, after []byte) Patch {
	n := min(len(before), len(after))
	p := 0
	// Block by block first: bytes.Equal compares many bytes at a time, so a
	// step that appends to 100 KB of data costs microseconds, not tens.
	for p+diffBlock <= n && bytes.Equal(before[p:p+diffBlock], after[p:p+diffBlock]) {
		p += diffBlock
	}
	for p < n && before[p] == after[p] {
		p++
	}
	s := 0
	for s+diffBlock <= n-p && bytes.Equal(before[len(before)-s-diffBlock:len(before)-s], after[len(after)-s-diffBlock:len(after)-s]) {
		s += diffBlock
	}
	for s < n-p && before[len(before)-1-s] == after[len(after)-1-s] {
		s++
	}
	return Patch{Offset: p, Delete: len(before) - p - s, Insert: after[p : len(after)-s : len(after)-s]}
}

// diffBlock is how many bytes Diff compares at once.
const diffBlock = 64

// Size is roughly how many bytes p takes to store.
func (p Patch) Size() int { return len(p.Insert) + 16 }

// apply applies p to buf in place, growing it if needed, and returns it.
func (p Patch) apply(buf []byte) ([]byte, error) {
	if p.Offset < 0 || p.Delete < 0 || p.Offset+p.Delete > len(buf) {
		return nil, fmt.Errorf("%w: a data patch (offset %d, delete %d) does not fit data of %d bytes", ErrCorrupt, p.Offset, p.Delete, len(buf))
	}
	tail := buf[p.Offset+p.Delete:]
	size := p.Offset + len(p.Insert) + len(tail)
	if size > cap(buf) {
		grown := make([]byte, size, size+size/2)
		copy(grown, buf[:p.Offset])
		copy(grown[p.Offset:], p.Insert)
		copy(grown[p.Offset+len(p.Insert):], tail)
		return grown, nil
	}
	old := len(buf)
	buf = buf[:max(old, size)]
	copy(buf[p.Offset+len(p.Insert):], buf[p.Offset+p.Delete:old])
	copy(buf[p.Offset:], p.Insert)
	return buf[:size], nil
}

// NodeData is the data a node left when it completed: the whole of it
// (Snapshot), or its change from the data before the node (Patch).
type NodeData struct {
	Index    int
	Snapshot json.RawMessage
	Patch    *Patch
}

// Rebuild returns the data after the last of datas, which are a run's node
// data in node order: it starts from the last snapshot among them (initial,
// the data before the first node, if there is none) and applies the patches
// that follow it. The result is a new slice.
func Rebuild(initial json.RawMessage, datas []NodeData) (json.RawMessage, error) {
	start, base := 0, initial
	for i := len(datas) - 1; i >= 0; i-- {
		if datas[i].Patch == nil {
			start, base = i+1, datas[i].Snapshot
			break
		}
	}
	size := len(base)
	for _, d := range datas[start:] {
		size += len(d.Patch.Insert)
	}
	buf := append(make([]byte, 0, size), base...)
	var err error
	for _, d := range datas[start:] {
		if buf, err = d.Patch.apply(buf); err != nil {
			return nil, fmt.Errorf("node %d: %w", d.Index, err)
		}
	}
	return buf, nil
}
