// Package jsstore is a Flux store ([driver.Store], with
// [driver.Signaler], [driver.Scheduler] and [driver.Waker]) on NATS
// JetStream key-value buckets, replicated by JetStream's Raft groups and
// spread over partitions, so that runs outlive any one server and the
// write rate grows with the cluster.
//
//	nc, err := nats.Connect("nats://n1:4222,nats://n2:4222,nats://n3:4222")
//	...
//	store, err := jsstore.Open(ctx, nc, jsstore.Replicas(3), jsstore.Partitions(3))
//	...
//	defer store.Close()
//	engine, err := flux.NewEngine(flux.Config{Storage: store})
//
// # Layout
//
// Runs are spread over the buckets <prefix>_runs_0 … <prefix>_runs_<n-1>
// by an FNV-1a hash of their ID; schedules are in <prefix>_schedules. Each
// bucket is a stream that keeps the last message of each key. In a
// partition's bucket:
//
//   - r.<id> is the run's record: its whole state (header, nodes,
//     attempts, node data, signals) as JSON. It is the truth.
//   - w.<workflow>.<id> is the run's claim index entry (a hint), while
//     the run is unfinished: see "Finding claimable runs".
//   - k.<wait key>.<id> exists while the unfinished run listens for that
//     wait key, so that a signal by key finds its runs without a scan.
//   - l.<workflow> (first partition only) is the lock of claims under
//     concurrency limits; m.clock is the probe of the server's clock;
//     keys ending in .barrier are read barriers (see below).
//
// Tokens of keys are "x" and the unpadded base64url of the ID, workflow
// or wait key, so any string fits.
//
// # Writes: compare-and-set on the key's revision
//
// A write reads the run's record (its revision is the stream sequence of
// the key's last message), checks the contract's conditions on it (the
// run's Version and Owner for Checkpoint, Release and Cancel; its lease
// for Claim), and publishes the new record with the header
// Nats-Expected-Last-Subject-Sequence set to that revision, as
// KeyValue.Update does. If another write came between, JetStream refuses
// it and the write starts again from a new read: if the Version changed
// meanwhile the caller gets [driver.ErrConflict] (or [driver.ErrLeaseLost]
// if the owner changed); if only a signal or a lease renewal came, which
// do not change the Version, it is retried. So two engines never both
// advance a run. A Store remembers the record it wrote last for each run
// it writes, and starts its next write of the run from it rather than from
// a read: one round trip rather than two for an engine checkpointing the
// runs it holds. If another write came between, the compare-and-set fails
// and the write starts again from a read; a refusal (a conflict, a lease
// lost, a run active) is only ever decided on a record read.
// Every write rewrites the whole record, so its cost grows
// with the run's size, and a run must fit in one message: the server's
// max_payload, 1 MB by default (8 MB at most).
//
// Reads go to the leader of the bucket's stream (the buckets are made
// without direct gets, which any replica may answer before it has applied
// the latest write), so a store reads its own writes. Scans (List, Prune,
// ClaimExpired's index, signals by key, Schedules) read through a
// consumer, which may live on a lagging replica; with replicas, a scan
// first writes a barrier key under its filter and reads until the
// consumer delivers it.
//
// # Leases and the storage's clock
//
// A lease is kept in the run's record as a time, LeaseUntil, by the
// storage's clock: the clock of the JetStream servers, estimated as the
// local clock plus an offset measured when the store opens and every 30
// seconds since. To measure it, the store writes m.clock and reads the
// server's timestamp of that write; the offset's error is at most half
// the round trip. So engines whose clocks disagree still agree on when a
// lease expires, within a few milliseconds of each other (and of the
// servers, whose clocks NTP keeps together).
//
// # Finding claimable runs
//
// ClaimExpired does not read every run. Each unfinished run has a hint,
// w.<workflow>.<id>, that repeats its status, owner, lease, wake time,
// creation time and concurrency key; finished runs have none. ClaimExpired
// reads the hints of the workflows it is asked for, in each partition,
// and reads and claims only the runs whose hint says they may be
// claimable (pending or running and free or expired, or waiting and due),
// checking each against its record before the compare-and-set. Without
// limits, it claims as it reads, a few candidates per run wanted at a
// time in random order (so that engines asking at once seldom want the
// same runs), and stops reading once it has claimed enough.
//
// JetStream has no transaction over two keys: a writer writes the record,
// then the hint, compare-and-set on the hint's revision; a writer that
// loses re-reads the hint's revision, then the record, and writes the
// hint of what it read, so the hint converges to the last record. A lease
// renewal does not rewrite the hint: when the hint's lease has passed,
// ClaimExpired reads the record, finds the lease live, and rewrites the
// hint, at most once per lease. A process that dies between a record
// write and its hint write leaves a stale hint: one with an owner heals
// when its lease expires; one of a run waiting for a signal only, or of a
// run created but never indexed, stays stale until the run is written
// again (by a signal, a Claim or a Cancel).
//
// Concurrency limits ([driver.Limit]) are counted from the hints of the
// limited workflow, all of them, under a lock key per limited workflow
// that serializes such claims across processes; a lock left by a process
// that died expires after 30 seconds.
//
// # Listing and changes
//
// List, Filter.Search and Prune read every run of every partition in
// this first version: their cost grows with the runs kept, finished ones
// included, so keep retention (flux.Retention) short on large stores.
// Changes reads the headers of the messages written to the runs' keys
// since its position (the stream sequence reached in each partition);
// writes that are no change (leases, signals) carry the position and time
// of the run's last change in a header, Flux-Change.
//
// # Durability
//
// A write is acknowledged once the bucket's stream has stored it: on one
// server with Replicas(1), on a majority of the replicas (2 of 3, 3 of 5)
// otherwise. What survives:
//
//   - Replicas(1): a crash of the nats-server process loses nothing
//     acknowledged (it is in the operating system's page cache). A crash
//     of the machine or a power loss loses the writes not yet synced to
//     disk: JetStream syncs every two minutes by default (sync_interval).
//     While the server is down, no engine can read or write runs; if its
//     disk is lost, the runs are lost.
//   - Replicas(3): the loss of any one server, its disk included, loses
//     nothing acknowledged, and after a new leader is elected (a few
//     seconds) engines go on; with two servers of three down, writes stop
//     until one returns. A power loss of all three at once (one rack, one
//     zone) can lose up to sync_interval of writes, like Replicas(1).
//   - Replicas(5) survives two servers lost at once.
//
// For a sync to disk before every acknowledgement, set
//
//	jetstream { sync_interval: always }
//
// in the servers' configuration: it costs write throughput, and it is
// what a single server (or a cluster in one failure domain) needs to keep
// every acknowledged checkpoint through a power loss. [MemoryStorage]
// keeps nothing through a restart of all replicas: for tests only.
//
// # Sizing partitions and replicas
//
// Each partition is one stream, one Raft group with one leader that
// orders its writes: the write rate of a partition is bounded by one
// server, and partitions are how writes spread over the cluster. Use
// about as many partitions as servers, or a small multiple (3 servers: 3
// or 6 partitions) so that each server leads some; JetStream spreads the
// leaders. More partitions than that add little, and cost ClaimExpired
// one index read per partition per call. The number of partitions is
// fixed when runs are stored: a run is looked for in the partition its ID
// hashes to, so every Store sharing the buckets must be opened with the
// same Partitions, and changing it needs the runs copied. Use Replicas(1)
// for development and tests, Replicas(3) in production (an odd number:
// a majority must agree), Replicas(5) to survive two servers lost.
// Replication costs each write a round trip between servers.
package jsstore
