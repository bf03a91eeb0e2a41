-- Trace events (Store.TraceSink), one row per event: seq orders them all
-- and never goes back (AUTOINCREMENT: not even after the newest rows were
-- pruned), created_at is the event's time in Unix nanoseconds, line is the
-- event as one line of a trace file (package tracefile), JSON text. Rows
-- go with their run when it is pruned.
CREATE TABLE trace_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    line       TEXT    NOT NULL
) STRICT;
CREATE INDEX trace_events_run ON trace_events (run_id, seq);
