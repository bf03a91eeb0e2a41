-- Trace events (Store.TraceSink), one row per event: seq orders them all
-- (batches are written under an advisory lock, so seq also follows commit
-- order), created_at is the event's time in Unix nanoseconds, line is the
-- event as one line of a trace file (package tracefile): text, kept byte
-- for byte; query it as line::jsonb. Rows go with their run when it is
-- pruned.
CREATE TABLE trace_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    type       text   NOT NULL,
    line       text   NOT NULL
);
CREATE INDEX trace_events_run ON trace_events (run_id, seq);
