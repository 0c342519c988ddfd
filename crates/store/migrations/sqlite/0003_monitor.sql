-- portgate monitoring, version 1: schedules with their next run, findings with a life
-- (open, acknowledged, resolved; reopened when seen again) and its events, and the alert
-- outbox with its delivery log. The SQLite and PostgreSQL migrations are the same text
-- except for the line that declares each table's generated id (a test keeps them so).

CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    -- the next run due (ms since the epoch); after downtime a missed run runs once
    next_run_at_ms BIGINT NOT NULL,
    last_run_at_ms BIGINT,
    last_job_id BIGINT
);

CREATE TABLE findings (
    -- stable: target, address, protocol, port, rule (and the CVE or certificate, where one
    -- applies), hashed
    fingerprint TEXT PRIMARY KEY,
    -- open, acknowledged, resolved
    state TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    target TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    asset TEXT,
    -- the finding as last seen (JSON)
    finding TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    -- checks in a row of its target that no longer showed it; resolved at the drift
    -- rules' confirmation count, so that a port lost once on a lossy path is not news
    missing_runs BIGINT NOT NULL DEFAULT 0,
    acknowledged_by TEXT,
    ack_comment TEXT,
    acknowledged_at_ms BIGINT,
    resolved_at_ms BIGINT
);
CREATE INDEX findings_state ON findings (state, target);

CREATE TABLE finding_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL REFERENCES findings (fingerprint),
    at_ms BIGINT NOT NULL,
    -- opened, reopened, acknowledged, resolved
    event TEXT NOT NULL,
    actor TEXT,
    comment TEXT,
    -- the job (check) that saw it
    job_id BIGINT
);
CREATE INDEX finding_events_fingerprint ON finding_events (fingerprint, id);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- the configured channel's name
    channel TEXT NOT NULL,
    -- the message's id (webhook-id), the same on every attempt so that a receiver can
    -- drop a repeat
    message_id TEXT NOT NULL,
    -- the alert (JSON)
    alert TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- pending, delivered, failed (given up)
    status TEXT NOT NULL,
    delivered_at_ms BIGINT,
    last_error TEXT,
    -- who is sending it and until when (a sender that died leaves it to the next)
    lease_owner TEXT,
    lease_until_ms BIGINT
);
CREATE UNIQUE INDEX outbox_message ON outbox (channel, message_id);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at_ms);

CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id BIGINT NOT NULL REFERENCES outbox (id),
    at_ms BIGINT NOT NULL,
    ok BOOLEAN NOT NULL,
    detail TEXT
);
CREATE INDEX deliveries_outbox ON deliveries (outbox_id, id);
