-- Waiting runs, signals, concurrency limits and schedules (see package
-- driver, wait.go and schedule.go). Times are Unix nanoseconds, 0 for none.
--
-- wake_at: when a waiting run may be claimed again; 0 for a run that does
-- not wait or may be claimed now, 9223372036854775807 (sqlstore.NeverWake)
-- for one that waits for a signal only. wait_key: the event key the run
-- listens for, '' none. concurrency_key: the run's group for Limit.PerKey,
-- set by Create. signal_seq: how many signals the run was sent.
ALTER TABLE runs ADD COLUMN wake_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN wait_key TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN concurrency_key TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN signal_seq INTEGER NOT NULL DEFAULT 0;

-- ClaimExpired takes the pending and running runs of each of its
-- workflows, oldest first, and decides from this index alone which it may
-- take (status, owner and, for a limit by key, concurrency key): a run it
-- passes over costs no read of its row, and the runs of other workflows
-- are not in its way. (lease_until, which every checkpoint writes, is read
-- from the row, for the runs that another engine leases only.)
DROP INDEX runs_unfinished;
CREATE INDEX runs_unfinished ON runs (workflow, created_at, id, status, owner, concurrency_key)
    WHERE status IN ('pending', 'running');

-- ClaimExpired: the waiting runs by the time they wake, so that it reads
-- the due ones and the next to wake, never those that sleep on
-- (runs_unfinished keeps pending and running runs only).
CREATE INDEX runs_waiting ON runs (wake_at) WHERE status = 'waiting';

-- Signal by WaitKey: the runs that listen for an event.
CREATE INDEX runs_wait_key ON runs (wait_key) WHERE wait_key <> '';

-- ClaimExpired's limits: the runs that count, by workflow and key. A run
-- counts while it is running, or pending or waiting with an owner (leased);
-- the index holds those only, so that counting reads as many entries as
-- there are runs counted, however long the queue of pending runs. The
-- queries repeat this condition word for word, as SQLite requires of a
-- partial index.
CREATE INDEX runs_counted ON runs (workflow, concurrency_key)
    WHERE status = 'running' OR (owner <> '' AND status IN ('pending', 'waiting'));

-- A run's signals, by the order they came (seq = the run's signal_seq after
-- it). node is the node that consumed the signal, -1 while it waits in the
-- run's inbox. A non-empty key deduplicates: a run has one signal of a key.
-- Rows go with their run when it is pruned.
CREATE TABLE signals (
    run_id  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    name    TEXT    NOT NULL,
    key     TEXT    NOT NULL DEFAULT '',
    payload BLOB,
    sent_at INTEGER NOT NULL,
    node    INTEGER NOT NULL DEFAULT -1,
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX signals_key ON signals (run_id, key) WHERE key <> '';

-- Cron schedules (driver.Scheduler): the definition, and the state the
-- engines sharing the store share about it. paused is 0 or 1.
CREATE TABLE schedules (
    name       TEXT    NOT NULL PRIMARY KEY,
    workflow   TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    time_zone  TEXT    NOT NULL DEFAULT '',
    input      BLOB,
    catch_up   TEXT    NOT NULL DEFAULT '',
    paused     INTEGER NOT NULL DEFAULT 0,
    last_tick  INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
