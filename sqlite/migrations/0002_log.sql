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
-- seq orders the writes of every run, for Store.Changes.
CREATE TABLE checkpoints (
    seq     INTEGER PRIMARY KEY,
    run_id  TEXT    NOT NULL,
    version INTEGER NOT NULL,
    body    BLOB    NOT NULL
) STRICT;
CREATE UNIQUE INDEX checkpoints_run ON checkpoints (run_id, version);

-- List: newest first, overall and by workflow.
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_workflow_created ON runs (workflow, created_at, id);
-- ClaimExpired: the unfinished runs of a workflow.
CREATE INDEX runs_unfinished ON runs (workflow) WHERE status IN ('pending', 'running');
-- Search by the words of a run's error (Filter.Search): the errors of the
-- runs that have one, and their full-text index, kept by triggers. An
-- error's key is its run's creation time in nanoseconds (the next free one
-- if another run has it), so that the index yields the newest runs first
-- and a search stops at a page.
CREATE TABLE run_errors (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    error  TEXT NOT NULL
) STRICT;
CREATE VIRTUAL TABLE run_errors_fts USING fts5(error, content = 'run_errors', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0');
CREATE TRIGGER run_errors_insert AFTER INSERT ON run_errors BEGIN
    INSERT INTO run_errors_fts (rowid, error) VALUES (new.id, new.error);
END;
CREATE TRIGGER run_errors_delete AFTER DELETE ON run_errors BEGIN
    INSERT INTO run_errors_fts (run_errors_fts, rowid, error) VALUES ('delete', old.id, old.error);
END;
CREATE TRIGGER runs_error_insert AFTER INSERT ON runs WHEN new.error <> '' BEGIN
    INSERT INTO run_errors (id, run_id, error) VALUES (
        coalesce((SELECT max(id) + 1 FROM run_errors WHERE id >= new.created_at AND id < new.created_at + 1000000000),
            new.created_at),
        new.id, new.error);
END;
CREATE TRIGGER runs_error_update AFTER UPDATE OF error ON runs WHEN old.error IS NOT new.error BEGIN
    DELETE FROM run_errors WHERE run_id = old.id;
    INSERT INTO run_errors (id, run_id, error) SELECT
        coalesce((SELECT max(id) + 1 FROM run_errors WHERE id >= new.created_at AND id < new.created_at + 1000000000),
            new.created_at),
        new.id, new.error
    WHERE new.error <> '';
END;
CREATE TRIGGER runs_error_delete AFTER DELETE ON runs WHEN old.error <> '' BEGIN
    DELETE FROM run_errors WHERE run_id = old.id;
END;

-- Runs of schema 0001 whose body could not be decoded: kept, not lost.
CREATE TABLE corrupt_0001 (
    id   TEXT NOT NULL PRIMARY KEY,
    body TEXT NOT NULL
) STRICT;
