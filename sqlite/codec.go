package sqlite

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/flux-go/flux"
)

// runColumns are the columns of a run, in the order scanRun reads them.
const runColumns = "id, workflow, status, version, owner, lease_until, created_at, updated_at, body"

// body is the part of a flux.Run kept as JSON in the body column.
type body struct {
	Fingerprint string           `json:"fingerprint,omitempty"`
	Input       json.RawMessage  `json:"input,omitempty"`
	Data        json.RawMessage  `json:"data,omitempty"`
	Steps       []flux.StepState `json:"steps,omitempty"`
	Error       string           `json:"error,omitempty"`
	FinishedAt  time.Time        `json:"finishedAt,omitzero"`
}

// encoded is a run ready to be written.
type encoded struct {
	id, workflow, status, owner string
	createdAt, updatedAt        int64
	body                        string
}

func encode(r *flux.Run) (*encoded, error) {
	if r.ID == "" {
		return nil, fmt.Errorf("sqlite: run has no ID")
	}
	b, err := json.Marshal(body{
		Fingerprint: r.Fingerprint, Input: r.Input, Data: r.Data, Steps: r.Steps,
		Error: r.Error, FinishedAt: r.FinishedAt,
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: encoding run %s: %w", r.ID, err)
	}
	e := &encoded{id: r.ID, workflow: r.Workflow, status: string(r.Status), owner: r.Owner, body: string(b)}
	if e.createdAt, err = nanos(r.CreatedAt); err != nil {
		return nil, fmt.Errorf("sqlite: run %s: CreatedAt: %w", r.ID, err)
	}
	if e.updatedAt, err = nanos(r.UpdatedAt); err != nil {
		return nil, fmt.Errorf("sqlite: run %s: UpdatedAt: %w", r.ID, err)
	}
	return e, nil
}

// The instants a Unix time in int64 nanoseconds can hold.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos is t as stored: Unix nanoseconds, 0 for the zero time.
func nanos(t time.Time) (int64, error) {
	switch {
	case t.IsZero():
		return 0, nil
	case t.Before(minTime) || t.After(maxTime):
		return 0, fmt.Errorf("time %s is outside the years 1678 to 2262 that can be stored", t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// clampNanos is t as a bound of a query: the nearest storable time.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64 + 1
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// row is a run as read, before its body is decoded.
type row struct {
	id, workflow, status, owner           string
	version, leaseUntil, created, updated int64
	body                                  []byte
}

type scanner interface{ Scan(dest ...any) error }

func (r *row) scan(s scanner) error {
	return s.Scan(&r.id, &r.workflow, &r.status, &r.version, &r.owner, &r.leaseUntil, &r.created, &r.updated, &r.body)
}

// run decodes r, or returns an error wrapping flux.ErrCorrupt that names it.
func (r *row) run() (*flux.Run, error) {
	var b body
	if err := json.Unmarshal(r.body, &b); err != nil {
		return nil, fmt.Errorf("sqlite: run %s cannot be decoded: %w: %v", r.id, flux.ErrCorrupt, err)
	}
	return &flux.Run{
		ID: r.id, Workflow: r.workflow, Fingerprint: b.Fingerprint, Status: flux.Status(r.status),
		Input: b.Input, Data: b.Data, Steps: b.Steps, Error: b.Error,
		CreatedAt: fromNanos(r.created), UpdatedAt: fromNanos(r.updated), FinishedAt: b.FinishedAt,
		Version: r.version, Owner: r.owner, LeaseUntil: fromNanos(r.leaseUntil),
	}, nil
}
