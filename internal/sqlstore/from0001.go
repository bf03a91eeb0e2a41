package sqlstore

import (
	"encoding/json"
	"time"

	"github.com/flux-go/flux/driver"
)

// body0001 is what schema 0001 kept of a run as JSON. SQLite's body column
// held these fields; PostgreSQL's held the whole flux.Run of that release,
// which has them too. Each node carried a whole copy of the data after it.
type body0001 struct {
	Fingerprint string          `json:"fingerprint"`
	Input       json.RawMessage `json:"input"`
	Data        json.RawMessage `json:"data"`
	Steps       []struct {
		Name       string           `json:"name"`
		Kind       string           `json:"kind"`
		Status     string           `json:"status"`
		Attempts   []driver.Attempt `json:"attempts"`
		StartedAt  time.Time        `json:"startedAt"`
		FinishedAt time.Time        `json:"finishedAt"`
		InFlight   time.Time        `json:"inFlight"`
		Data       json.RawMessage  `json:"data"`
	} `json:"steps"`
	Error      string    `json:"error"`
	FinishedAt time.Time `json:"finishedAt"`
}

// Run0001 is a converted run of schema 0001: its header and the body of
// its one checkpoint row.
type Run0001 struct {
	Header Header
	Body   []byte
}

// From0001 converts a run of schema 0001, given its columns in h (ID,
// Workflow, Status, Version, Owner, LeaseUntil, CreatedAt, UpdatedAt) and
// its JSON body, to the rows of the current schema. The data of its
// completed nodes become a snapshot and patches. The data before its first
// node was not kept: a run that had completed nodes gets null there (the
// engine starts a RetryStep of the first node from the workflow's zero
// data), one that had none keeps its data, which was that. An error wraps
// driver.ErrCorrupt and names the run.
func From0001(h Header, body []byte) (*Run0001, error) {
	var b body0001
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, driver.Corrupt(h.ID, "its schema-0001 body does not decode: %v", err)
	}
	run := &driver.Run{Steps: make([]driver.StepState, len(b.Steps))}
	var datas []driver.NodeData
	var prev json.RawMessage
	patched := -1
	for i, s := range b.Steps {
		run.Steps[i] = driver.StepState{Name: s.Name, Kind: driver.Kind(s.Kind), Status: driver.Status(s.Status),
			Attempts: s.Attempts, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, InFlight: s.InFlight}
		if s.Status != string(driver.StatusCompleted) || len(s.Data) == 0 {
			continue
		}
		p := driver.Diff(prev, s.Data)
		if patched < 0 || patched+p.Size() > len(s.Data) {
			datas = append(datas, driver.NodeData{Index: i, Snapshot: s.Data})
			patched = 0
		} else {
			datas = append(datas, driver.NodeData{Index: i, Patch: &p})
			patched += p.Size()
		}
		prev = s.Data
	}
	out := &Run0001{Header: h, Body: EncodeCreate(run, datas)}
	sum := driver.Summarize(run.Steps)
	out.Header.Fingerprint, out.Header.Error = b.Fingerprint, b.Error
	out.Header.FinishedAt = Nanos(b.FinishedAt)
	out.Header.Input = orEmpty(b.Input)
	out.Header.Initial = json.RawMessage("null")
	if prev == nil && len(b.Data) > 0 {
		out.Header.Initial = b.Data
	}
	out.Header.Nodes, out.Header.Done, out.Header.Attempts, out.Header.Failures, out.Header.Interrupted, out.Header.AtNode =
		sum.Nodes, sum.Done, sum.Attempts, sum.Failures, sum.Interrupted, sum.Node
	return out, nil
}

// MigrationHook, when set (by tests), is called by the conversion of schema
// 0001 after each run it converted, with their count so far.
var MigrationHook func(converted int)

// Converted calls MigrationHook.
func Converted(n int) {
	if MigrationHook != nil {
		MigrationHook(n)
	}
}
