-- Waiting runs, signals, concurrency limits and schedules. Times are Unix
-- nanoseconds, 0 for none, as in the rest of the schema.
--
-- wake_at: when ClaimExpired may take a waiting run again; 0 for a run that
-- does not wait (or was woken by a signal), 9223372036854775807 for one
-- that waits for a signal only. wait_key: the event key a run listens for.
-- concurrency_key: groups runs for a limit's per-key bound, set once.
-- signal_seq: the number of signals delivered to the run (the rows of
-- signals it has). Constant defaults: adding them rewrites no row.
ALTER TABLE runs
    ADD COLUMN wake_at         bigint NOT NULL DEFAULT 0,
    ADD COLUMN wait_key        text   NOT NULL DEFAULT '',
    ADD COLUMN concurrency_key text   NOT NULL DEFAULT '',
    ADD COLUMN signal_seq      bigint NOT NULL DEFAULT 0;

-- runs_unfinished stays as it was, for pending and running runs only:
-- waiting runs that are not due must cost ClaimExpired nothing. They have
-- an index of their own, by the time they wake: ClaimExpired reads the due
-- ones from its start, and the next to wake (ClaimedRuns.NextWake) from
-- the first entry after now.
CREATE INDEX runs_waiting ON runs (wake_at) WHERE status = 'waiting';

-- Signal by wait key (flux.Send): the runs listening for an event.
CREATE INDEX runs_wait_key ON runs (wait_key) WHERE wait_key <> '';

-- The runs a concurrency limit counts: unfinished, and running or leased
-- (a free waiting run does not count; nor does a pending run no engine has
-- claimed, however many wait their turn). A count reads this index only as
-- far as the runs it counts.
CREATE INDEX runs_counted ON runs (workflow, concurrency_key)
    WHERE status = 'running' OR (status IN ('pending', 'waiting') AND owner <> '');

-- A run's signals, numbered from 1 in the order they were stored. node is
-- the index of the node that consumed the signal, -1 while it waits in the
-- run's inbox. A non-empty key deduplicates the signals of one run. Rows go
-- with their run when it is pruned.
CREATE TABLE signals (
    run_id  text COLLATE "C" NOT NULL,
    seq     bigint  NOT NULL,
    name    text    NOT NULL,
    key     text    NOT NULL DEFAULT '',
    payload bytea,
    sent_at bigint  NOT NULL,
    node    integer NOT NULL DEFAULT -1,
    PRIMARY KEY (run_id, seq)
);
CREATE UNIQUE INDEX signals_key ON signals (run_id, key) WHERE key <> '';

-- Cron schedules (driver.Scheduler), by name.
CREATE TABLE schedules (
    name       text COLLATE "C" PRIMARY KEY,
    workflow   text    NOT NULL,
    spec       text    NOT NULL,
    time_zone  text    NOT NULL DEFAULT '',
    input      bytea,
    catch_up   text    NOT NULL DEFAULT '',
    paused     boolean NOT NULL DEFAULT false,
    last_tick  bigint  NOT NULL DEFAULT 0,
    updated_at bigint  NOT NULL
);
