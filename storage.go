package flux

import "github.com/flux-go/flux/driver"

// Storage keeps runs: memory (the default), SQLite (package sqlite) or
// PostgreSQL (package postgres). The engine depends on nothing else for
// state. The contract, for those who write a store, is package driver's
// Store.
type Storage = driver.Store

// Run is the stored view of a run: what [Engine.Get] returns. Input and Data
// are JSON; Data is the data after the last node that finished (the data
// after any one node is read with [Engine.NodeData]). [Engine.List] returns
// runs without their nodes and data.
type Run = driver.Run

// StepState is the record of one node of a run.
type StepState = driver.StepState

// Attempt is one execution of a node's handler.
type Attempt = driver.Attempt

// Summary counts a run's nodes and attempts.
type Summary = driver.Summary

// Filter selects runs for [Engine.List]. Zero fields match everything.
type Filter = driver.Filter

// RunPage is one page of [Engine.List].
type RunPage = driver.RunPage

// Kind tells a step from a commit, a sleep, a wait and an undo.
type Kind = driver.Kind

// Node kinds: see [Workflow.Step], [Workflow.Commit], [Workflow.Sleep],
// [Workflow.WaitSignal] and [Undo].
const (
	KindStep   = driver.KindStep
	KindCommit = driver.KindCommit
	KindSleep  = driver.KindSleep
	KindWait   = driver.KindWait
	KindUndo   = driver.KindUndo
)
