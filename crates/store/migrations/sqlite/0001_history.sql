-- portgate history, version 1. The SQLite and PostgreSQL migrations are the same text except
-- for the one line that declares each table's generated id (a test keeps them so).

CREATE TABLE scans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- running (not finalised: still going, or the process died), completed, incomplete
    status TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    method TEXT,
    -- JSON array of the targets as given
    targets TEXT NOT NULL,
    manifest_revision TEXT,
    -- host name, pid and start time of the process that writes the scan, to tell a dead
    -- writer's `running` scan from a live one
    writer TEXT,
    -- JSON array of why the scan is incomplete
    incomplete_reasons TEXT,
    hosts BIGINT NOT NULL DEFAULT 0,
    ports_scanned BIGINT NOT NULL DEFAULT 0,
    open_ports BIGINT NOT NULL DEFAULT 0,
    closed_ports BIGINT NOT NULL DEFAULT 0,
    filtered_ports BIGINT NOT NULL DEFAULT 0,
    open_filtered_ports BIGINT NOT NULL DEFAULT 0,
    -- the whole ScanReport as JSON, zstd-compressed, so the scan reloads exactly
    report_zstd BYTEA
);
CREATE INDEX scans_started ON scans (started_at_ms);

CREATE TABLE scan_hosts (
    scan_id BIGINT NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    host_index BIGINT NOT NULL,
    target TEXT NOT NULL,
    hostname TEXT,
    ip TEXT NOT NULL,
    ports_requested BIGINT NOT NULL,
    open_ports BIGINT NOT NULL,
    closed_ports BIGINT NOT NULL,
    filtered_ports BIGINT NOT NULL,
    open_filtered_ports BIGINT NOT NULL,
    tarpit BOOLEAN NOT NULL,
    -- per protocol, the state whose ports have no row in scan_ports (only counted): the
    -- most common of closed, filtered and open|filtered on this host
    unlisted_tcp TEXT,
    unlisted_udp TEXT,
    PRIMARY KEY (scan_id, host_index)
);
CREATE INDEX scan_hosts_target ON scan_hosts (target, scan_id);
CREATE INDEX scan_hosts_ip ON scan_hosts (ip, scan_id);

-- One row per port, except those in the host's unlisted state (counted in scan_hosts and
-- kept in the report).
CREATE TABLE scan_ports (
    scan_id BIGINT NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    host_index BIGINT NOT NULL,
    protocol TEXT NOT NULL,
    port INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    rtt_us BIGINT,
    PRIMARY KEY (scan_id, host_index, protocol, port)
);

CREATE TABLE scan_services (
    scan_id BIGINT NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    host_index BIGINT NOT NULL,
    protocol TEXT NOT NULL,
    port INTEGER NOT NULL,
    service TEXT,
    product TEXT,
    version TEXT,
    info TEXT,
    tls_protocol TEXT,
    tls_subject TEXT,
    tls_issuer TEXT,
    tls_not_after TEXT,
    tls_fingerprint_sha256 TEXT,
    tls_valid BOOLEAN,
    -- JSON array
    tls_reasons TEXT,
    http_status INTEGER,
    http_server TEXT,
    http_title TEXT,
    PRIMARY KEY (scan_id, host_index, protocol, port)
);

CREATE TABLE checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scan_id BIGINT NOT NULL REFERENCES scans (id) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL,
    manifest_revision TEXT,
    pass_count BIGINT NOT NULL,
    warn_count BIGINT NOT NULL,
    fail_count BIGINT NOT NULL,
    inconclusive_count BIGINT NOT NULL
);
CREATE INDEX checks_scan ON checks (scan_id);

CREATE TABLE check_findings (
    check_id BIGINT NOT NULL REFERENCES checks (id) ON DELETE CASCADE,
    finding_index BIGINT NOT NULL,
    rule TEXT NOT NULL,
    outcome TEXT NOT NULL,
    severity TEXT NOT NULL,
    target TEXT NOT NULL,
    ip TEXT,
    protocol TEXT,
    port INTEGER,
    state TEXT,
    service TEXT,
    product TEXT,
    version TEXT,
    asset TEXT,
    message TEXT NOT NULL,
    -- the Finding as JSON
    finding TEXT NOT NULL,
    PRIMARY KEY (check_id, finding_index)
);
