-- portgate service, version 1: API keys and the job queue of `portgate serve`. The SQLite and
-- PostgreSQL migrations are the same text except for the line that declares each table's
-- generated id (a test keeps them so).

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    -- the key's first characters, shown to tell keys apart (`pg_1a2b3c4d`)
    prefix TEXT NOT NULL,
    -- SHA-256 of the whole key, lower-case hex; the key itself is never stored
    hash TEXT NOT NULL UNIQUE,
    -- JSON array of CIDRs the key is narrowed to; empty: the server's whole scope
    scope TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- scan or check
    kind TEXT NOT NULL,
    -- queued, running, succeeded, partial, failed, cancelled
    status TEXT NOT NULL,
    -- the request as accepted (JSON), with the addresses it resolved to and checked
    request TEXT NOT NULL,
    key_id BIGINT REFERENCES api_keys (id),
    -- JSON array of the targets as given, for listing by target
    targets TEXT NOT NULL,
    idempotency_key TEXT,
    created_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT,
    finished_at_ms BIGINT,
    -- who runs it (host, pid, start) and until when; a lease not renewed in time is taken
    -- to be a dead worker's, and the job is queued again
    lease_owner TEXT,
    lease_until_ms BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    -- probes answered so far, of how many
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT NOT NULL DEFAULT 0,
    scan_id BIGINT REFERENCES scans (id) ON DELETE SET NULL,
    -- the result document (JSON): the scan report, or the check's outcome
    result TEXT,
    error TEXT
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (key_id, idempotency_key);
CREATE INDEX jobs_status ON jobs (status, id);
