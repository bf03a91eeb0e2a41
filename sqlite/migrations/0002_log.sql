-- Runs as a header and a log (see internal/sqlstore): a checkpoint updates
-- the header and appends one row of what it changed, List reads headers
-- only, and each node keeps the data it left as a snapshot or a patch
-- instead of a whole copy. The runs of schema 0001 are converted by the Go
-- code of this migration, then runs_0001 is dropped.
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
) STRICT, WITHOUT ROWID; -- one b-tree, keyed by ID, for the row and its lookups

-- One row per write that changed a run's nodes, keyed by the version the
-- write gave the run: the nodes it changed, the attempts it appended, the
-- data they left (internal/sqlstore's binary form). Never updated.
CREATE TABLE checkpoints (
    run_id  TEXT    NOT NULL,
    version INTEGER NOT NULL,
    body    BLOB    NOT NULL,
    PRIMARY KEY (run_id, version)
) STRICT, WITHOUT ROWID;

-- List: newest first, overall and by workflow.
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_workflow_created ON runs (workflow, created_at, id);
-- ClaimExpired: the unfinished runs of a workflow.
CREATE INDEX runs_unfinished ON runs (workflow) WHERE status IN ('pending', 'running');
-- Runs of schema 0001 whose body could not be decoded: kept, not lost.
CREATE TABLE corrupt_0001 (
    id   TEXT NOT NULL PRIMARY KEY,
    body TEXT NOT NULL
) STRICT;
