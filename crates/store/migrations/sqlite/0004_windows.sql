-- portgate monitoring, version 2: maintenance windows (a finding raised inside one is kept
-- and marked suppressed; a digest goes out when it closes), what escalation and the repeat
-- interval need to know of each finding, and the review queue. The SQLite and PostgreSQL migrations are
-- the same text except for the line that declares each table's generated id.

CREATE TABLE maintenance_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    -- what it covers: all, asset, target or tag (the value then is key=value)
    scope_kind TEXT NOT NULL,
    scope_value TEXT,
    -- one-off: from, until (ms since the epoch)
    starts_at_ms BIGINT,
    ends_at_ms BIGINT,
    -- recurring: each start by cron (in its time zone), open for duration_ms
    cron TEXT,
    timezone TEXT,
    duration_ms BIGINT,
    comment TEXT,
    created_by TEXT,
    created_at_ms BIGINT NOT NULL,
    -- config (kept in step with the configuration file) or api
    source TEXT NOT NULL,
    -- the end of the last closing whose digest was written
    digested_until_ms BIGINT
);

-- the window a finding was raised inside (kept as the mark of it)
ALTER TABLE findings ADD COLUMN suppressed_by TEXT;
-- when its opening was last sent (the repeat interval and escalation count from here)
ALTER TABLE findings ADD COLUMN notified_at_ms BIGINT;
ALTER TABLE findings ADD COLUMN escalated_at_ms BIGINT;
ALTER TABLE findings ADD COLUMN escalations BIGINT NOT NULL DEFAULT 0;
-- 'review': a finding of a target no asset lists, in the review queue (never alerted)
ALTER TABLE findings ADD COLUMN queue TEXT;

-- the window of a 'suppressed' event, the channel of an 'escalated' one
ALTER TABLE finding_events ADD COLUMN detail TEXT;
