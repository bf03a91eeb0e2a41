// Package flux is a durable workflow engine built on a state machine.
//
// A workflow is code: an ordered list of named steps and commits over a
// typed input and typed, shared data. Every state transition of a run is
// recorded, so a run can be traced, inspected, replayed from a named step,
// and recovered after a crash without repeating a commit that already
// landed. No server is needed: the engine is a library, and its state lives
// in a [Storage] — in memory (the default), SQLite (package sqlite) or
// PostgreSQL (package postgres).
//
// # Defining and running a workflow
//
//	var onboarding = flux.New[Input, Data]("onboarding").
//		Step("load-user", func(c *flux.Ctx[Input, Data]) error {
//			u, err := users.Find(c, c.Input.UserID)
//			c.Data.User = u
//			return err
//		}).
//		Commit("send-email", func(c *flux.Ctx[Input, Data]) error {
//			return mail.SendWelcome(c, c.IdempotencyKey(), c.Data.User)
//		})
//
//	engine, err := flux.NewEngine(flux.Config{})
//	defer engine.Close()
//	res, err := flux.Execute(ctx, engine, onboarding, Input{UserID: "u_123"})
//
// # Steps and commits
//
// A step may run again after a crash (at-least-once); it should compute,
// read, or call idempotent services. A commit is a side effect that must land
// once: before it starts, everything before it is durable and its start is
// recorded; after it succeeds, that is recorded before anything else happens.
// A completed commit never runs again — not by recovery, [Resume], a
// duplicate start with [RunID], or a [RetryStep] from an earlier node (that
// returns [ErrCommitted] unless [Force] is given). A commit cut off by a crash
// runs again with the same [Ctx.IdempotencyKey], or fails the run with
// [ErrCommitOutcomeUnknown] if it is marked [AtMostOnce].
//
// # The state machine
//
// Runs go pending → running → completed | failed | cancelled, and nodes go
// pending → running → completed | failed | skipped. The legal transitions are
// one table (see [CheckRunTransition] and [CheckNodeTransition]); hooks,
// trace events and logs are emitted from the transitions, after they were
// recorded.
//
// # Attempts
//
// Each attempt of a node works on its own copy of Data, restored from the
// snapshot before the node, and runs under [Ctx], a context.Context that is
// cancelled at the attempt's [Timeout]. A failed or timed-out attempt leaves
// nothing behind; a handler that ignores its context is abandoned and cannot
// touch the run again. Failed attempts are retried ([Retries]) after a
// [Backoff]; errors wrapped with [Permanent] are not. A panic becomes a
// [*PanicError] carrying the stack. Every attempt stays in the run's record,
// across retries, [Resume], [RetryStep] and crashes; one cut off before its
// handler returned is marked [Attempt].Interrupted.
//
// # Crashes and restarts
//
// An engine holds a lease on each run it executes. When it dies, another
// engine with the workflow registered ([Engine.Register]) continues its runs
// once the lease expired ([Config].LeaseDuration); an engine restarted with
// the dead one's [Config].ID continues them at once.
package flux
