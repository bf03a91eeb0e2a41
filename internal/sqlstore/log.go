package sqlstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/flux-go/flux/driver"
)

// A run's nodes are kept as its log: one row of checkpoints per write that
// changed them, keyed by the run's ID and the version the write gave it.
// The row's body is the write's node changes in a compact binary form:
//
//	body    = format(1) nodes:uvarint clearInFlight:byte count:uvarint change*
//	change  = index:uvarint name kind status:string started finished inFlight:varint
//	          flags:byte (1 reset, 2 replace, 4 data, 8 data is a patch)
//	          attempts:uvarint attempt* [data]
//	attempt = number:uvarint startedAt duration:varint error stack:string interrupted:byte
//	data    = snapshot:bytes | offset delete:uvarint insert:bytes
//	string, bytes = length:uvarint, then the bytes
//
// Times are Unix nanoseconds (0 for none). Replaying a run's bodies in
// order gives its nodes, their attempts and the data each left: a write
// costs what it changed, whatever the length of the run.

const logFormat = 1

const (
	flagReset = 1 << iota
	flagReplace
	flagData
	flagPatch
)

// EncodeCreate returns the body of the first row of a new run: all its
// nodes, and the data of those that completed.
func EncodeCreate(r *driver.Run, datas []driver.NodeData) []byte {
	byIndex := make(map[int]*driver.NodeData, len(datas))
	for i := range datas {
		byIndex[datas[i].Index] = &datas[i]
	}
	b := appendHead(make([]byte, 0, 64+48*len(r.Steps)), len(r.Steps), false, len(r.Steps))
	for i := range r.Steps {
		s := &r.Steps[i]
		b = appendChange(b, &driver.NodeChange{Index: i, Name: s.Name, Kind: s.Kind, Status: s.Status,
			StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, InFlight: s.InFlight, Attempts: s.Attempts, Data: byIndex[i]})
	}
	return b
}

// EncodeCheckpoint returns the body of a checkpoint's row: the run now has
// nodes nodes, and changes changed.
func EncodeCheckpoint(nodes int, changes []driver.NodeChange) []byte {
	size := 16
	for i := range changes {
		size += 48 + len(changes[i].Name)
		if d := changes[i].Data; d != nil {
			size += len(d.Snapshot)
			if d.Patch != nil {
				size += len(d.Patch.Insert)
			}
		}
	}
	b := appendHead(make([]byte, 0, size), nodes, false, len(changes))
	for i := range changes {
		b = appendChange(b, &changes[i])
	}
	return b
}

// EncodeCancel returns the body of a cancellation's row: no node changes,
// and no attempt in flight any more.
func EncodeCancel(nodes int) []byte {
	return appendHead(nil, nodes, true, 0)
}

func appendHead(b []byte, nodes int, clearInFlight bool, count int) []byte {
	b = append(b, logFormat)
	b = binary.AppendUvarint(b, uint64(nodes))
	if clearInFlight {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return binary.AppendUvarint(b, uint64(count))
}

func appendChange(b []byte, c *driver.NodeChange) []byte {
	b = binary.AppendUvarint(b, uint64(c.Index))
	b = appendString(b, c.Name)
	b = appendString(b, string(c.Kind))
	b = appendString(b, string(c.Status))
	b = binary.AppendVarint(b, Nanos(c.StartedAt))
	b = binary.AppendVarint(b, Nanos(c.FinishedAt))
	b = binary.AppendVarint(b, Nanos(c.InFlight))
	var flags byte
	if c.Reset {
		flags |= flagReset
	}
	if c.Replace {
		flags |= flagReplace
	}
	if c.Data != nil {
		flags |= flagData
		if c.Data.Patch != nil {
			flags |= flagPatch
		}
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(c.Attempts)))
	for i := range c.Attempts {
		a := &c.Attempts[i]
		b = binary.AppendUvarint(b, uint64(a.Number))
		b = binary.AppendVarint(b, Nanos(a.StartedAt))
		b = binary.AppendVarint(b, int64(a.Duration))
		b = appendString(b, a.Error)
		b = appendString(b, a.Stack)
		if a.Interrupted {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	if d := c.Data; d != nil {
		if d.Patch != nil {
			b = binary.AppendUvarint(b, uint64(d.Patch.Offset))
			b = binary.AppendUvarint(b, uint64(d.Patch.Delete))
			b = appendString(b, string(d.Patch.Insert))
		} else {
			b = appendString(b, string(d.Snapshot))
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Log is a run's rows of checkpoints, replayed.
type Log struct {
	Steps []driver.StepState
	Data  []*driver.NodeData // by node index; nil where the node left none
}

// maxNodes bounds the node count a body may claim, so that a corrupt one
// cannot make replay allocate without end.
const maxNodes = 1 << 24

// Apply replays one body onto l. An error says what is wrong with it.
func (l *Log) Apply(body []byte) error {
	d := decoder{b: body}
	if f := d.byte(); f != logFormat {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("a checkpoint row of format %d, not %d", f, logFormat)
	}
	nodes := d.uvarint()
	clear := d.byte() == 1
	count := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if nodes > maxNodes {
		return fmt.Errorf("a checkpoint row says the run has %d nodes", nodes)
	}
	n := int(nodes)
	if n < len(l.Steps) {
		l.Steps, l.Data = l.Steps[:n], l.Data[:n]
	}
	for len(l.Steps) < n {
		l.Steps, l.Data = append(l.Steps, driver.StepState{}), append(l.Data, nil)
	}
	for range count {
		if err := l.change(&d); err != nil {
			return err
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the last node change of a checkpoint row", len(d.b))
	}
	if clear {
		for i := range l.Steps {
			l.Steps[i].InFlight = time.Time{}
		}
	}
	return d.err
}

func (l *Log) change(d *decoder) error {
	i := d.uvarint()
	name, kind, status := d.string(), d.string(), d.string()
	started, finished, inFlight := d.varint(), d.varint(), d.varint()
	flags := d.byte()
	count := d.uvarint()
	if d.err != nil {
		return d.err
	}
	if i >= uint64(len(l.Steps)) {
		return fmt.Errorf("a change of node %d of a run of %d nodes", i, len(l.Steps))
	}
	s := &l.Steps[i]
	if flags&flagReplace != 0 {
		s.Attempts, l.Data[i] = nil, nil
	}
	if flags&flagReset != 0 {
		l.Data[i] = nil
	}
	s.Name, s.Kind, s.Status = name, driver.Kind(kind), driver.Status(status)
	s.StartedAt, s.FinishedAt, s.InFlight = Time(started), Time(finished), Time(inFlight)
	if count > uint64(len(d.b)) { // each attempt takes bytes
		return fmt.Errorf("node %d claims %d attempts in %d bytes", i, count, len(d.b))
	}
	for range count {
		a := driver.Attempt{Number: int(d.uvarint()), StartedAt: Time(d.varint()), Duration: time.Duration(d.varint()),
			Error: d.string(), Stack: d.string(), Interrupted: d.byte() == 1}
		if d.err != nil {
			return d.err
		}
		s.Attempts = append(s.Attempts, a)
	}
	if flags&flagData != 0 {
		nd := &driver.NodeData{Index: int(i)}
		if flags&flagPatch != 0 {
			off, del := d.uvarint(), d.uvarint()
			ins := d.bytes()
			if off > math.MaxInt32 || del > math.MaxInt32 {
				return fmt.Errorf("node %d: a data patch at %d deleting %d bytes", i, off, del)
			}
			nd.Patch = &driver.Patch{Offset: int(off), Delete: int(del), Insert: ins}
		} else {
			nd.Snapshot = d.bytes()
		}
		l.Data[i] = nd
	}
	return d.err
}

// Replay returns the run of header h whose checkpoint rows are bodies, in
// order. An error wraps driver.ErrCorrupt and names the run.
func Replay(h *Header, bodies [][]byte) (*driver.Run, error) {
	l, err := ReplayLog(h, bodies)
	if err != nil {
		return nil, err
	}
	r := RunOf(h)
	r.Steps = l.Steps
	if r.Data, err = l.DataAt(h, len(l.Steps)-1); err != nil {
		return nil, err
	}
	return r, nil
}

// ReplayLog replays the checkpoint rows of the run of header h. An error
// wraps driver.ErrCorrupt and names the run.
func ReplayLog(h *Header, bodies [][]byte) (*Log, error) {
	l := &Log{}
	for k, b := range bodies {
		if err := l.Apply(b); err != nil {
			return nil, driver.Corrupt(h.ID, "checkpoint row %d of %d: %v", k+1, len(bodies), err)
		}
	}
	if len(l.Steps) != h.Nodes {
		return nil, driver.Corrupt(h.ID, "it has %d nodes, its checkpoint rows give %d", h.Nodes, len(l.Steps))
	}
	return l, nil
}

// DataAt returns the run's data after node index (-1: before the first).
func (l *Log) DataAt(h *Header, index int) (json.RawMessage, error) {
	var datas []driver.NodeData
	for i := 0; i <= index && i < len(l.Data); i++ {
		if d := l.Data[i]; d != nil {
			datas = append(datas, *d)
		}
	}
	return Rebuild(h.ID, h.Initial, datas)
}

// decoder reads a body, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("a checkpoint row ends early")

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
}
