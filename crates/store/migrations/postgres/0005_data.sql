-- portgate data, version 1: the vulnerability index (NVD CVEs and OSV records imported from
-- files, one row each with the lookup keys it answers to), IP-to-network tables and the
-- date of every dataset. The SQLite and PostgreSQL migrations are the same text except for
-- the binary column type (BLOB, BYTEA).

CREATE TABLE vuln_records (
    -- nvd or osv
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    -- lastModified (NVD) or modified (OSV), ms since the epoch: a re-import replaces a row
    -- only with a newer copy
    modified_ms BIGINT NOT NULL,
    -- the record in the index's JSON form, zstd-compressed
    body_zstd BYTEA NOT NULL,
    body_format INTEGER NOT NULL,
    PRIMARY KEY (source, id)
);

-- cpe:vendor:product, cpeprod:product, pkg:name → the records a lookup reads
CREATE TABLE vuln_keys (
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (key, source, id)
);
CREATE INDEX vuln_keys_record ON vuln_keys (source, id);

-- one row per dataset: nvd, osv, asn:<name>
CREATE TABLE datasets (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    -- the format read (nvd-2.0, osv, iptoasn, caida-pfx2as, geolite2-asn)
    format TEXT NOT NULL,
    -- the date the data is of: given at import, or the newest record's
    dataset_ms BIGINT,
    newest_record_ms BIGINT,
    imported_at_ms BIGINT NOT NULL,
    records BIGINT NOT NULL,
    -- the last file imported
    path TEXT
);

-- IP ranges of an ASN dataset, made disjoint at import (the most specific prefix wins);
-- start and end are 16-byte keys (IPv4 as IPv4-mapped IPv6), so one ordered index answers
-- both families
CREATE TABLE asn_ranges (
    dataset TEXT NOT NULL,
    start_key BYTEA NOT NULL,
    end_key BYTEA NOT NULL,
    -- one or more AS numbers (multi-origin prefixes), space-separated
    asns TEXT NOT NULL,
    org TEXT,
    country TEXT,
    PRIMARY KEY (dataset, start_key)
);
