-- Runs as a header and its rows, in the layout SQLite shares (see
-- internal/sqlstore): a checkpoint writes the header and what changed, List
-- reads headers only, and each node keeps the data it left as a snapshot or
-- a patch instead of a whole copy. Times are Unix nanoseconds, 0 for none.
-- The runs of schema 0001 are converted by the Go code of this migration,
-- then runs_0001 is dropped.
ALTER TABLE runs RENAME TO runs_0001;
DROP INDEX runs_newest;
DROP INDEX runs_workflow_newest;
DROP INDEX runs_stopped;
DROP INDEX runs_unfinished;

CREATE TABLE runs (
    id           text COLLATE "C" PRIMARY KEY,
    workflow     text   NOT NULL,
    fingerprint  text   NOT NULL,
    status       text   NOT NULL,
    version      bigint NOT NULL,
    owner        text   NOT NULL DEFAULT '',
    lease_until  bigint NOT NULL DEFAULT 0,
    created_at   bigint NOT NULL,
    updated_at   bigint NOT NULL,
    finished_at  bigint NOT NULL DEFAULT 0,
    error        text   NOT NULL DEFAULT '',
    input        bytea  NOT NULL,
    initial_data bytea  NOT NULL,
    nodes        integer NOT NULL,
    done         integer NOT NULL,
    attempts     integer NOT NULL,
    failures     integer NOT NULL,
    interrupted  integer NOT NULL,
    at_node      text   NOT NULL DEFAULT ''
) WITH (fillfactor = 70); -- room for HOT updates: checkpoints change no indexed column

CREATE TABLE nodes (
    run_id      text COLLATE "C" NOT NULL,
    idx         integer NOT NULL,
    name        text    NOT NULL,
    kind        text    NOT NULL,
    status      text    NOT NULL,
    started_at  bigint  NOT NULL DEFAULT 0,
    finished_at bigint  NOT NULL DEFAULT 0,
    in_flight   bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, idx)
) WITH (fillfactor = 70);

CREATE TABLE attempts (
    run_id      text COLLATE "C" NOT NULL,
    idx         integer NOT NULL,
    number      integer NOT NULL,
    started_at  bigint  NOT NULL,
    duration    bigint  NOT NULL,
    error       text    NOT NULL DEFAULT '',
    stack       text    NOT NULL DEFAULT '',
    interrupted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, idx, number)
);

-- snapshot is the whole data after the node, or NULL for a patch.
CREATE TABLE node_data (
    run_id       text COLLATE "C" NOT NULL,
    idx          integer NOT NULL,
    snapshot     bytea,
    patch_offset integer NOT NULL DEFAULT 0,
    patch_delete integer NOT NULL DEFAULT 0,
    patch_insert bytea,
    PRIMARY KEY (run_id, idx)
);

-- Indexes for List, newest first. Completed runs, the bulk, are found by
-- runs_newest; the others by partial indexes, which a run enters only in
-- those states, so that a checkpoint pays for few index entries.
CREATE INDEX runs_newest ON runs (created_at DESC, id DESC);
CREATE INDEX runs_workflow_newest ON runs (workflow, created_at DESC, id DESC);
CREATE INDEX runs_stopped ON runs (created_at DESC, id DESC) WHERE status IN ('failed', 'cancelled');
-- Recovery looks only at unfinished runs.
CREATE INDEX runs_unfinished ON runs (workflow, created_at) WHERE status IN ('pending', 'running');
-- Prune: finished runs, oldest first.
CREATE INDEX runs_finished ON runs (status, finished_at) WHERE status IN ('completed', 'failed', 'cancelled');

-- Runs of schema 0001 whose body could not be decoded: kept, not lost.
CREATE TABLE corrupt_0001 (
    id   text PRIMARY KEY,
    body bytea NOT NULL
);
