-- Runs: the indexed fields as columns, the rest of flux.Run as JSON in body.
-- version, owner and lease_until are authoritative over the copies in body.
CREATE TABLE runs (
    id          text COLLATE "C" PRIMARY KEY,
    workflow    text        NOT NULL,
    status      text        NOT NULL,
    version     bigint      NOT NULL,
    owner       text        NOT NULL DEFAULT '',
    lease_until timestamptz,
    created_at  timestamptz NOT NULL,
    -- created_at in Unix nanoseconds: List orders and pages by it, exactly as
    -- flux.Run.CreatedAt does (timestamptz keeps only microseconds).
    created_ns  bigint      NOT NULL,
    updated_at  timestamptz NOT NULL,
    body        bytea       NOT NULL
) WITH (fillfactor = 70); -- room for HOT updates: checkpoints change no indexed column

-- Indexes for List, newest first. Completed runs, the bulk, are found by
-- runs_newest; the others by partial indexes, which a run enters only in
-- those states, so that a checkpoint pays for few index entries.
CREATE INDEX runs_newest ON runs (created_ns DESC, id DESC);
CREATE INDEX runs_workflow_newest ON runs (workflow, created_ns DESC, id DESC);
CREATE INDEX runs_stopped ON runs (created_ns DESC, id DESC) WHERE status IN ('failed', 'cancelled');
-- Recovery looks only at unfinished runs.
CREATE INDEX runs_unfinished ON runs (workflow, created_ns) WHERE status IN ('pending', 'running');
