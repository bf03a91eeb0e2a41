-- Runs as a header and its rows (see internal/sqlstore): a checkpoint writes
-- the header and what changed, List reads headers only, and each node keeps
-- the data it left as a snapshot or a patch instead of a whole copy. The
-- runs of schema 0001 are converted by the Go code of this migration, then
-- runs_0001 is dropped.
ALTER TABLE runs RENAME TO runs_0001;
DROP INDEX runs_created;
DROP INDEX runs_workflow_created;
DROP INDEX runs_unfinished;

CREATE TABLE runs (
    id           TEXT    NOT NULL PRIMARY KEY,
    workflow     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    owner        TEXT    NOT NULL DEFAULT '',
    lease_until  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT '',
    input        BLOB    NOT NULL,
    initial_data BLOB    NOT NULL,
    nodes        INTEGER NOT NULL,
    done         INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    interrupted  INTEGER NOT NULL,
    at_node      TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE nodes (
    run_id      TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER NOT NULL DEFAULT 0,
    in_flight   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE attempts (
    run_id      TEXT    NOT NULL,
    idx         INTEGER NOT NULL,
    number      INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration    INTEGER NOT NULL,
    error       TEXT    NOT NULL DEFAULT '',
    stack       TEXT    NOT NULL DEFAULT '',
    interrupted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, idx, number)
) STRICT, WITHOUT ROWID;

-- snapshot is the whole data after the node, or NULL for a patch.
CREATE TABLE node_data (
    run_id       TEXT    NOT NULL,
    idx          INTEGER NOT NULL,
    snapshot     BLOB,
    patch_offset INTEGER NOT NULL DEFAULT 0,
    patch_delete INTEGER NOT NULL DEFAULT 0,
    patch_insert BLOB,
    PRIMARY KEY (run_id, idx)
) STRICT, WITHOUT ROWID;

-- List: newest first, overall and by workflow.
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_workflow_created ON runs (workflow, created_at, id);
-- ClaimExpired: the unfinished runs of a workflow.
CREATE INDEX runs_unfinished ON runs (workflow) WHERE status IN ('pending', 'running');
-- Prune: finished runs, oldest first.
CREATE INDEX runs_finished ON runs (status, finished_at) WHERE status IN ('completed', 'failed', 'cancelled');
-- Runs of schema 0001 whose body could not be decoded: kept, not lost.
CREATE TABLE corrupt_0001 (
    id   TEXT NOT NULL PRIMARY KEY,
    body TEXT NOT NULL
) STRICT;
