// Package driver is the contract between the Flux engine and the stores that
// keep its runs, as database/sql/driver is for database/sql: the [Store]
// interface, one params struct per method, and the records they carry.
// Users of Flux never import it: package flux exports the records ([Run],
// [Status], [Filter], ...) and the sentinel errors under the same names.
// Store authors implement [Store] and prove it with package storagetest.
//
// A run is stored as a header (the run's status, version, owner and lease,
// its input, the data before its first node, and a [Summary] of its nodes),
// its nodes, their attempts, and the data each node left when it completed,
// as a whole snapshot or as a [Patch] from the data before it. The engine
// sends a snapshot when the patches since the last one add up to more than
// the data itself, so a run's stored size grows with its final data plus
// the sum of its changes, and each checkpoint writes what changed. The SQL
// stores keep the nodes as a log: one row per write, with the node changes
// of its [CheckpointParams], replayed by Get.
//
// Besides keeping runs, a store answers [Filter.Search] (ID prefix,
// workflow, words of the error) and follows its writes with
// [Store.Changes], by indexes, so that a viewer searches and follows every
// run, not only the newest.
package driver
