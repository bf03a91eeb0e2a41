package flux

import (
	"context"
	"log/slog"
)

// Ctx is the context of one attempt of a step or commit. It is a
// context.Context, cancelled when the attempt times out, when the run is
// cancelled, and when the engine shuts down; pass it to every call the
// handler makes.
//
// Data points to the attempt's own copy of the run's data, restored from
// the snapshot taken before the node: a failed or timed-out attempt leaves
// nothing behind, and a handler that ignores cancellation cannot touch the
// run's data after its attempt ended. Input is shared and must be treated
// as read-only.
type Ctx[In, Data any] struct {
	context.Context
	Input In
	Data  *Data

	run     *runInfo
	step    string
	attempt int
}

// runInfo is what every Ctx of one run shares.
type runInfo struct {
	id, workflow string
	logger       *slog.Logger
}

// RunID returns the ID of the run.
func (c *Ctx[In, Data]) RunID() string { return c.run.id }

// Workflow returns the workflow's name.
func (c *Ctx[In, Data]) Workflow() string { return c.run.workflow }

// Step returns the name of the node being executed.
func (c *Ctx[In, Data]) Step() string { return c.step }

// Attempt returns the 1-based number of this attempt of the node. A node
// re-run after a crash continues the count.
func (c *Ctx[In, Data]) Attempt() int { return c.attempt }

// IdempotencyKey returns a key that is the same for this run and node across
// attempts, recoveries and processes. Hand it to payment, mail and other
// APIs that deduplicate requests, so a commit that runs again after a crash
// has one effect.
func (c *Ctx[In, Data]) IdempotencyKey() string {
	return c.run.id + "/" + c.step
}

// Logger returns the engine's logger with the run ID, workflow, step and
// attempt as attributes.
func (c *Ctx[In, Data]) Logger() *slog.Logger {
	return c.run.logger.With(
		slog.String("run_id", c.run.id),
		slog.String("workflow", c.run.workflow),
		slog.String("step", c.step),
		slog.Int("attempt", c.attempt))
}
