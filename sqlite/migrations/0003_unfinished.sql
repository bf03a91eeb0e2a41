-- ClaimExpired takes the unfinished runs oldest first: an index in that
-- order, so that a claim reads a few entries however many runs finished
-- (by the workflow it walked every finished run of the workflow too).
DROP INDEX runs_unfinished;
CREATE INDEX runs_unfinished ON runs (created_at) WHERE status IN ('pending', 'running');
