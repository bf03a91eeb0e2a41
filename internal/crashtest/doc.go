// Package crashtest holds Flux's crash-recovery acceptance tests. They run
// real child processes (the test binary re-executing itself) that are killed
// with SIGKILL or stopped with SIGSTOP at chosen points of a workflow, and
// check that another engine recovers every run on SQLite and PostgreSQL
// without repeating a recorded commit, that two engines sharing one
// PostgreSQL never execute a run at the same time, and that a zombie owner's
// late write is refused with flux.ErrLeaseLost. In-process tests on memory
// storage with injected pauses pin down the engine bugs those found.
//
// The package has no API; everything is in its tests.
package crashtest
