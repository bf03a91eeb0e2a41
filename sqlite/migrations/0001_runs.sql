-- Runs: the columns Flux filters, orders and compare-and-sets on, and the
-- rest of flux.Run as JSON in body. Times are Unix nanoseconds, 0 for none.
CREATE TABLE runs (
    id          TEXT    NOT NULL PRIMARY KEY,
    workflow    TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    owner       TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    body        TEXT    NOT NULL
) STRICT;

-- List: newest first, overall and by workflow.
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_workflow_created ON runs (workflow, created_at, id);

-- ClaimExpired: the unfinished runs of a workflow.
CREATE INDEX runs_unfinished ON runs (workflow) WHERE status IN ('pending', 'running');
