//! Reading: scans, a target's scans and timeline, checks, and whole reports.

use crate::{
    CheckId, CheckRecord, HostSnapshot, ScanId, ScanRecord, StoredPort, StoredService, StoredStatus,
};
use crate::{Pool, Store, StoreError, from_ms, ms};
use chrono::{DateTime, Utc};
use portgate_model::{PortState, Protocol, Reason, ScanReport};
use sqlx::Row;

impl Store {
    /// The checks stored for a scan, oldest first, with their findings.
    pub async fn checks_of_scan(&self, scan_id: ScanId) -> Result<Vec<CheckRecord>, StoreError> {
        let checks: Vec<(i64, i64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, created_at_ms, manifest_revision FROM checks WHERE scan_id = $1 ORDER BY id",
            )
            .bind(scan_id.0)
            .fetch_all(pool)
            .await
        })
        .map_err(self.query_err(format!("list the checks of scan {scan_id}")))?;
        let mut out = Vec::with_capacity(checks.len());
        for (id, created, revision) in checks {
            let rows: Vec<(String,)> = on_pool!(self, pool => {
                sqlx::query_as(
                    "SELECT finding FROM check_findings WHERE check_id = $1 ORDER BY finding_index",
                )
                .bind(id)
                .fetch_all(pool)
                .await
            })
            .map_err(self.query_err(format!("read the findings of check {id}")))?;
            let mut findings = Vec::with_capacity(rows.len());
            for (json,) in rows {
                findings.push(
                    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                        db: self.name.clone(),
                        scan_id,
                        field: "finding",
                        message: e.to_string(),
                    })?,
                );
            }
            out.push(CheckRecord {
                id: CheckId(id),
                scan_id,
                created_at: from_ms(created),
                manifest_revision: revision,
                findings,
            });
        }
        Ok(out)
    }

    /// One scan's record.
    pub async fn scan(&self, id: ScanId) -> Result<ScanRecord, StoreError> {
        let row = on_pool!(self, pool => {
            sqlx::query(&format!("{SCAN_COLUMNS} WHERE id = $1"))
                .bind(id.0)
                .fetch_optional(pool)
                .await
                .and_then(|r| r.map(|r| scan_record(&r)).transpose())
        })
        .map_err(self.query_err(format!("read scan {id}")))?;
        row.ok_or(StoreError::NoSuchScan {
            db: self.name.clone(),
            scan_id: id,
        })
    }

    /// Every scan, newest first, at most `limit`.
    pub async fn scans(&self, limit: i64) -> Result<Vec<ScanRecord>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!("{SCAN_COLUMNS} ORDER BY started_at_ms DESC, id DESC LIMIT $1"))
                .bind(limit)
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(scan_record).collect::<Result<Vec<_>, _>>())
        })
        .map_err(self.query_err("list scans"))
    }

    /// The finalised scans that covered `target` (as given, or one of its addresses), oldest
    /// first, that started at or after `since` (all when none).
    pub async fn scans_of_target(
        &self,
        target: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        let since = since.map(ms).unwrap_or(i64::MIN);
        on_pool!(self, pool => {
            sqlx::query(&format!(
                "{SCAN_COLUMNS} WHERE status <> 'running' AND started_at_ms >= $2 AND id IN \
                 (SELECT scan_id FROM scan_hosts WHERE target = $1 OR ip = $1) \
                 ORDER BY started_at_ms, id"
            ))
            .bind(target)
            .bind(since)
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(scan_record).collect::<Result<Vec<_>, _>>())
        })
        .map_err(self.query_err(format!("list the scans of {target}")))
    }

    /// The newest finalised scan of `target` that started before `before`.
    pub async fn last_scan_of_target_before(
        &self,
        target: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<ScanRecord>, StoreError> {
        on_pool!(self, pool => {
            sqlx::query(&format!(
                "{SCAN_COLUMNS} WHERE status <> 'running' AND started_at_ms < $2 AND id IN \
                 (SELECT scan_id FROM scan_hosts WHERE target = $1 OR ip = $1) \
                 ORDER BY started_at_ms DESC, id DESC LIMIT 1"
            ))
            .bind(target)
            .bind(ms(before))
            .fetch_optional(pool)
            .await
            .and_then(|r| r.map(|r| scan_record(&r)).transpose())
        })
        .map_err(self.query_err(format!("find the last scan of {target}")))
    }

    /// The scans of `target` (as given) that were never finalised — still running, or
    /// interrupted — newest first, at most `limit`. They have no host rows, so
    /// [`Store::history`] cannot show them.
    pub async fn unfinished_scans_of_target(
        &self,
        target: &str,
        limit: usize,
    ) -> Result<Vec<ScanRecord>, StoreError> {
        let records = on_pool!(self, pool => {
            sqlx::query(&format!(
                "{SCAN_COLUMNS} WHERE finished_at_ms IS NULL ORDER BY started_at_ms DESC, id DESC"
            ))
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(scan_record).collect::<Result<Vec<_>, _>>())
        })
        .map_err(self.query_err(format!("list the unfinished scans of {target}")))?;
        Ok(records
            .into_iter()
            .filter(|r| r.targets.iter().any(|t| t == target))
            .take(limit)
            .collect())
    }

    /// The report of a finalised scan, exactly as it was stored.
    pub async fn load_report(&self, id: ScanId) -> Result<ScanReport, StoreError> {
        let row: Option<(Option<Vec<u8>>,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT report_zstd FROM scans WHERE id = $1")
                .bind(id.0)
                .fetch_optional(pool)
                .await
        })
        .map_err(self.query_err(format!("read the report of scan {id}")))?;
        let corrupt = |message: String| StoreError::Corrupt {
            db: self.name.clone(),
            scan_id: id,
            field: "report",
            message,
        };
        match row {
            None => Err(StoreError::NoSuchScan {
                db: self.name.clone(),
                scan_id: id,
            }),
            Some((None,)) => Err(corrupt(
                "none: the scan was never finalised (it is running or was interrupted)".into(),
            )),
            Some((Some(bytes),)) => {
                let decoder = zstd::stream::read::Decoder::new(bytes.as_slice())
                    .map_err(|e| corrupt(format!("not zstd: {e}")))?;
                serde_json::from_reader(std::io::BufReader::new(decoder))
                    .map_err(|e| corrupt(format!("not a report: {e}")))
            }
        }
    }

    /// The timeline of `target` (as given, or one of its addresses): one snapshot per address
    /// per scan, newest first, at most `limit` scans, with the ports that have rows
    /// and what detection found.
    pub async fn history(&self, target: &str, limit: i64) -> Result<Vec<HostSnapshot>, StoreError> {
        let err = self.query_err(format!("read the history of {target}"));
        on_pool!(self, pool => {
            async {
                let hosts = sqlx::query(&format!(
                    "SELECT h.host_index, h.target, h.hostname, h.ip, h.ports_requested, \
                     h.open_ports AS h_open, h.closed_ports AS h_closed, \
                     h.filtered_ports AS h_filtered, h.open_filtered_ports AS h_open_filtered, \
                     h.tarpit, h.unlisted_tcp, h.unlisted_udp, s.* FROM scan_hosts h JOIN ({SCAN_COLUMNS} WHERE id IN \
                     (SELECT scan_id FROM scan_hosts WHERE target = $1 OR ip = $1) \
                     ORDER BY started_at_ms DESC, id DESC LIMIT $2) s ON s.id = h.scan_id \
                     WHERE h.target = $1 OR h.ip = $1 \
                     ORDER BY s.started_at_ms DESC, s.id DESC, h.host_index"
                ))
                .bind(target)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                let mut out = Vec::with_capacity(hosts.len());
                for row in &hosts {
                    let scan = scan_record(row)?;
                    let host_index: i64 = row.try_get("host_index")?;
                    let ports = sqlx::query(
                        "SELECT protocol, port, state, reason FROM scan_ports \
                         WHERE scan_id = $1 AND host_index = $2 ORDER BY protocol, port",
                    )
                    .bind(scan.id.0)
                    .bind(host_index)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok::<_, sqlx::Error>(StoredPort {
                            protocol: named(r, "protocol", Protocol::from_name)?,
                            port: port_of(r.try_get::<i32, _>("port")?),
                            state: named(r, "state", PortState::from_name)?,
                            reason: named(r, "reason", Reason::from_name)?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                    let services = sqlx::query(
                        "SELECT protocol, port, service, product, version, tls_issuer, \
                         tls_not_after, tls_fingerprint_sha256, tls_valid, tls_reasons, \
                         http_status, http_server, http_title FROM scan_services \
                         WHERE scan_id = $1 AND host_index = $2 ORDER BY protocol, port",
                    )
                    .bind(scan.id.0)
                    .bind(host_index)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| {
                        let reasons: Option<String> = r.try_get("tls_reasons")?;
                        Ok::<_, sqlx::Error>(StoredService {
                            protocol: named(r, "protocol", Protocol::from_name)?,
                            port: port_of(r.try_get::<i32, _>("port")?),
                            service: r.try_get("service")?,
                            product: r.try_get("product")?,
                            version: r.try_get("version")?,
                            tls_issuer: r.try_get("tls_issuer")?,
                            tls_not_after: r.try_get("tls_not_after")?,
                            tls_fingerprint_sha256: r.try_get("tls_fingerprint_sha256")?,
                            tls_valid: r.try_get("tls_valid")?,
                            tls_reasons: reasons
                                .and_then(|j| serde_json::from_str(&j).ok())
                                .unwrap_or_default(),
                            http_status: r
                                .try_get::<Option<i32>, _>("http_status")?
                                .map(port_of),
                            http_server: r.try_get("http_server")?,
                            http_title: r.try_get("http_title")?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                    out.push(HostSnapshot {
                        scan,
                        target: row.try_get("target")?,
                        hostname: row.try_get("hostname")?,
                        ip: row.try_get("ip")?,
                        ports_requested: row.try_get("ports_requested")?,
                        open: row.try_get("h_open")?,
                        closed: row.try_get("h_closed")?,
                        filtered: row.try_get("h_filtered")?,
                        open_filtered: row.try_get("h_open_filtered")?,
                        tarpit: row.try_get("tarpit")?,
                        unlisted_tcp: named_opt(row, "unlisted_tcp")?,
                        unlisted_udp: named_opt(row, "unlisted_udp")?,
                        ports,
                        services,
                    });
                }
                Ok::<_, sqlx::Error>(out)
            }
            .await
        })
        .map_err(err)
    }
}

const SCAN_COLUMNS: &str = "SELECT id, status, started_at_ms, finished_at_ms, method, targets, \
     manifest_revision, incomplete_reasons, hosts, ports_scanned, open_ports, closed_ports, \
     filtered_ports, open_filtered_ports FROM scans";

fn port_of(value: i32) -> u16 {
    u16::try_from(value).unwrap_or(0)
}

fn scan_record<R: Row>(row: &R) -> Result<ScanRecord, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'d> i64: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    for<'d> String: sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    let targets: String = row.try_get("targets")?;
    let reasons: Option<String> = row.try_get("incomplete_reasons")?;
    let decode_err = |field: &str, message: String| sqlx::Error::ColumnDecode {
        index: field.to_string(),
        source: message.into(),
    };
    Ok(ScanRecord {
        id: ScanId(row.try_get("id")?),
        status: StoredStatus::from_name(&status)
            .ok_or_else(|| decode_err("status", format!("unknown status {status:?}")))?,
        started_at: from_ms(row.try_get("started_at_ms")?),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(from_ms),
        method: row.try_get("method")?,
        targets: serde_json::from_str(&targets)
            .map_err(|e| decode_err("targets", e.to_string()))?,
        manifest_revision: row.try_get("manifest_revision")?,
        incomplete_reasons: match reasons {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| decode_err("incomplete_reasons", e.to_string()))?,
            None => Vec::new(),
        },
        hosts: row.try_get("hosts")?,
        ports_scanned: row.try_get("ports_scanned")?,
        open: row.try_get("open_ports")?,
        closed: row.try_get("closed_ports")?,
        filtered: row.try_get("filtered_ports")?,
        open_filtered: row.try_get("open_filtered_ports")?,
    })
}

/// A column holding one of the model's names (`tcp`, `open|filtered`, `syn-ack`), as the
/// model's value; an unknown name is a decoding error that names the column and the value.
pub(crate) fn named<R: Row, T>(
    row: &R,
    column: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'v> String: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
{
    decode_name(column, &row.try_get::<String, _>(column)?, parse)
}

/// [`named`] for a nullable port-state column.
fn named_opt<R: Row>(row: &R, column: &str) -> Result<Option<PortState>, sqlx::Error>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'v> Option<String>: sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
{
    row.try_get::<Option<String>, _>(column)?
        .map(|text| decode_name(column, &text, PortState::from_name))
        .transpose()
}

fn decode_name<T>(
    column: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, sqlx::Error> {
    parse(text).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: format!("unknown value \"{text}\"").into(),
    })
}
