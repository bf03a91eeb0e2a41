-- ClaimExpired takes the unfinished runs oldest first. The index's order,
-- created_at + 0, is one no other index gives, so the planner walks these
-- few entries rather than runs_newest past every finished run (which it
-- does when the statistics were taken while most runs were pending).
DROP INDEX runs_unfinished;
CREATE INDEX runs_unfinished ON runs ((created_at + 0), id) WHERE status IN ('pending', 'running');
