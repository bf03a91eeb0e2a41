-- Runs as a header and a log, in the layout SQLite shares (see
-- internal/sqlstore): a checkpoint updates the header and appends one row of
-- what it changed, List reads headers only, and each node keeps the data it
-- left as a snapshot or a patch instead of a whole copy. Times are Unix nanoseconds, 0 for none.
-- The runs of schema 0001 are converted by the Go code of this migration,
-- then runs_0001 is dropped.
ALTER TABLE runs RENAME TO runs_0001;
DROP INDEX runs_newest;
DROP INDEX runs_workflow_newest;
DROP INDEX runs_stopped;
DROP INDEX runs_unfinished;

CREATE TABLE runs (
    id           text COLLATE "C" NOT NULL,
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
    at_node      text   NOT NULL DEFAULT '',
    -- created_at in the key's index: a search by ID prefix sorts its
    -- matches newest first without reading them.
    PRIMARY KEY (id) INCLUDE (created_at)
) WITH (fillfactor = 70); -- room for HOT updates: checkpoints change no indexed column

-- One row per write that changed a run's nodes, keyed by the version the
-- write gave the run: the nodes it changed, the attempts it appended, the
-- data they left (internal/sqlstore's binary form). Never updated.
-- xid is the writing transaction's, for Store.Changes: once no transaction
-- older than an xid is running, every row before it is there to be seen.
CREATE TABLE checkpoints (
    run_id  text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    body    bytea  NOT NULL,
    xid     bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    PRIMARY KEY (run_id, version)
);
-- Rows go in in xid order, about: a block range index finds the recent ones
-- at almost no cost per row written.
CREATE INDEX checkpoints_xid ON checkpoints USING brin (xid);

CREATE INDEX runs_newest ON runs (created_at DESC, id DESC);
CREATE INDEX runs_workflow_newest ON runs (workflow, created_at DESC, id DESC);
CREATE INDEX runs_stopped ON runs (created_at DESC, id DESC) WHERE status IN ('failed', 'cancelled');
-- Recovery looks only at unfinished runs.
CREATE INDEX runs_unfinished ON runs (workflow, created_at) WHERE status IN ('pending', 'running');
-- Prune: finished runs, oldest first.

-- Runs of schema 0001 whose body could not be decoded: kept, not lost.
-- Search by the words of a run's error (Filter.Search).
CREATE INDEX runs_error_words ON runs USING gin (to_tsvector('simple', error)) WHERE error <> '';

CREATE TABLE corrupt_0001 (
    id   text PRIMARY KEY,
    body bytea NOT NULL
);
