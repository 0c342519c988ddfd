//! Writing: a scan begun as running and finished with its report, a whole scan at once,
//! a check's findings, and the recovery of scans whose writer died.

use crate::{BATCH_ROWS, Pool, Store, StoreError, ms, state_str, writer};
use crate::{CheckId, ScanId, ScanStart, StoredStatus};
use chrono::Utc;
use portgate_model::{
    DetectedService, Finding, HostReport, Outcome, PortState, Protocol, ScanReport, ScanStatus,
};
use sqlx::QueryBuilder;

impl Store {
    /// Marks as incomplete every `running` scan whose writer was a process of this host that
    /// has ended. Returns how many.
    pub async fn recover_interrupted(&self) -> Result<u64, StoreError> {
        let rows: Vec<(i64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, writer FROM scans WHERE status = 'running'")
                .fetch_all(pool)
                .await
        })
        .map_err(self.query_err("list running scans"))?;
        let mut marked = 0;
        for (id, writer) in rows {
            let Some(writer) = writer else { continue };
            if !writer::is_dead(&writer) {
                continue;
            }
            let reasons = serde_json::json!([format!(
                "interrupted: the process writing the scan ({writer}) ended before the scan was finalised"
            )])
            .to_string();
            let done = on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE scans SET status = 'incomplete', incomplete_reasons = $1 \
                     WHERE id = $2 AND status = 'running'",
                )
                .bind(&reasons)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(self.query_err(format!("mark scan {id} incomplete")))?;
            marked += done;
        }
        Ok(marked)
    }

    /// Inserts a scan as `running` and returns its id. Call before the first probe.
    pub async fn begin_scan(&self, start: &ScanStart) -> Result<ScanId, StoreError> {
        let started = ms(start.started_at.unwrap_or_else(Utc::now));
        let targets = serde_json::to_string(&start.targets).unwrap_or_else(|_| "[]".into());
        let writer = writer::current();
        let row: (i64,) = on_pool!(self, pool => {
            sqlx::query_as(
                "INSERT INTO scans (status, started_at_ms, method, targets, manifest_revision, writer) \
                 VALUES ('running', $1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(started)
            .bind(&start.method)
            .bind(&targets)
            .bind(&start.manifest_revision)
            .bind(&writer)
            .fetch_one(pool)
            .await
        })
        .map_err(self.query_err("begin a scan"))?;
        Ok(ScanId(row.0))
    }

    /// Finalises a `running` scan with its report, in one transaction: status, counts, the
    /// host, port and service rows, and the compressed report.
    pub async fn finish_scan(&self, id: ScanId, report: &ScanReport) -> Result<(), StoreError> {
        let compressed = compress_report(report).map_err(|message| StoreError::Corrupt {
            db: self.name.clone(),
            scan_id: id,
            field: "report",
            message,
        })?;
        let summary = report.summary();
        let status = match report.status {
            ScanStatus::Completed => StoredStatus::Completed,
            ScanStatus::Incomplete => StoredStatus::Incomplete,
        };
        let reasons =
            serde_json::to_string(&report.incomplete_reasons).unwrap_or_else(|_| "[]".into());
        let targets: Vec<&str> = report.targets.iter().map(|t| t.input.as_str()).collect();
        let targets = serde_json::to_string(&targets).unwrap_or_else(|_| "[]".into());
        let err = self.query_err(format!("save scan {id}"));
        let updated = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                // The first statement writes, so a SQLite transaction takes the write lock
                // at once (waiting out other writers) instead of failing on a stale snapshot.
                let updated = sqlx::query(
                    "UPDATE scans SET status = $1, finished_at_ms = $2, method = $3, targets = $4, \
                     incomplete_reasons = $5, hosts = $6, ports_scanned = $7, open_ports = $8, \
                     closed_ports = $9, filtered_ports = $10, open_filtered_ports = $11, \
                     report_zstd = $12, started_at_ms = $13 \
                     WHERE id = $14 AND status = 'running'",
                )
                .bind(status.as_str())
                .bind(ms(report.finished_at))
                .bind(report.method.as_str())
                .bind(&targets)
                .bind(&reasons)
                .bind(summary.hosts as i64)
                .bind(summary.ports_scanned as i64)
                .bind(summary.open as i64)
                .bind(summary.closed as i64)
                .bind(summary.filtered as i64)
                .bind(summary.open_filtered as i64)
                .bind(&compressed)
                .bind(ms(report.started_at))
                .bind(id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                for chunk in indexed_hosts(&report.hosts).chunks(BATCH_ROWS) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO scan_hosts (scan_id, host_index, target, hostname, ip, \
                         ports_requested, open_ports, closed_ports, filtered_ports, \
                         open_filtered_ports, tarpit, unlisted_tcp, unlisted_udp) ",
                    );
                    q.push_values(chunk, |mut b, (index, host)| {
                        b.push_bind(id.0)
                            .push_bind(*index as i64)
                            .push_bind(host.target.clone())
                            .push_bind(host.hostname.clone())
                            .push_bind(host.ip.to_string())
                            .push_bind(i64::from(host.ports_requested))
                            .push_bind(host.count(PortState::Open) as i64)
                            .push_bind(host.count(PortState::Closed) as i64)
                            .push_bind(host.count(PortState::Filtered) as i64)
                            .push_bind(host.count(PortState::OpenFiltered) as i64)
                            .push_bind(host.tarpit.is_some())
                            .push_bind(unlisted_state(host, Protocol::Tcp).map(PortState::as_str))
                            .push_bind(unlisted_state(host, Protocol::Udp).map(PortState::as_str));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                let ports: Vec<(usize, &portgate_model::PortResult)> = report
                    .hosts
                    .iter()
                    .enumerate()
                    .flat_map(|(i, h)| {
                        let tcp = unlisted_state(h, Protocol::Tcp);
                        let udp = unlisted_state(h, Protocol::Udp);
                        h.ports
                            .iter()
                            .filter(move |p| {
                                let unlisted = match p.protocol {
                                    Protocol::Tcp => tcp,
                                    Protocol::Udp => udp,
                                };
                                Some(p.state) != unlisted
                            })
                            .map(move |p| (i, p))
                    })
                    .collect();
                for chunk in ports.chunks(BATCH_ROWS) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO scan_ports (scan_id, host_index, protocol, port, state, \
                         reason, rtt_us) ",
                    );
                    q.push_values(chunk, |mut b, (index, p)| {
                        b.push_bind(id.0)
                            .push_bind(*index as i64)
                            .push_bind(p.protocol.as_str())
                            .push_bind(i32::from(p.port))
                            .push_bind(state_str(p.state))
                            .push_bind(p.reason.as_str())
                            .push_bind(p.rtt_us.map(i64::from));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                let services: Vec<(usize, &DetectedService)> = report
                    .hosts
                    .iter()
                    .enumerate()
                    .flat_map(|(i, h)| h.services.iter().map(move |s| (i, s)))
                    .collect();
                for chunk in services.chunks(BATCH_ROWS / 2) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO scan_services (scan_id, host_index, protocol, port, service, \
                         product, version, info, tls_protocol, tls_subject, tls_issuer, \
                         tls_not_after, tls_fingerprint_sha256, tls_valid, tls_reasons, \
                         http_status, http_server, http_title) ",
                    );
                    q.push_values(chunk, |mut b, (index, found)| {
                        let s = &found.detection;
                        let tls = s.tls.as_ref();
                        let http = s.http.as_ref();
                        b.push_bind(id.0)
                            .push_bind(*index as i64)
                            .push_bind(found.protocol.as_str())
                            .push_bind(i32::from(found.port))
                            .push_bind(s.service.clone())
                            .push_bind(s.product.clone())
                            .push_bind(s.version.clone())
                            .push_bind(s.info.clone())
                            .push_bind(tls.map(|t| t.protocol.clone()))
                            .push_bind(tls.map(|t| t.subject.clone()))
                            .push_bind(tls.map(|t| t.issuer.clone()))
                            .push_bind(tls.and_then(|t| t.not_after.clone()))
                            .push_bind(tls.map(|t| t.fingerprint_sha256.clone()))
                            .push_bind(tls.map(|t| t.valid))
                            .push_bind(tls.map(|t| {
                                serde_json::to_string(&t.reasons).unwrap_or_else(|_| "[]".into())
                            }))
                            .push_bind(http.map(|h| i32::from(h.status)))
                            .push_bind(http.and_then(|h| h.server.clone()))
                            .push_bind(http.and_then(|h| h.title.clone()));
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<bool, sqlx::Error>(true)
            }
            .await
        })
        .map_err(err)?;
        if updated {
            Ok(())
        } else {
            Err(StoreError::NotRunning {
                db: self.name.clone(),
                scan_id: id,
            })
        }
    }

    /// Stores a finished scan in one go ([`Store::begin_scan`] then [`Store::finish_scan`]).
    pub async fn save_scan(
        &self,
        report: &ScanReport,
        manifest_revision: Option<&str>,
    ) -> Result<ScanId, StoreError> {
        let id = self
            .begin_scan(&ScanStart {
                started_at: Some(report.started_at),
                targets: report.targets.iter().map(|t| t.input.clone()).collect(),
                method: Some(report.method.as_str().to_string()),
                manifest_revision: manifest_revision.map(str::to_string),
            })
            .await?;
        self.finish_scan(id, report).await?;
        Ok(id)
    }

    /// Stores the findings of a check of scan `scan_id`, in one transaction.
    pub async fn save_check(
        &self,
        scan_id: ScanId,
        findings: &[Finding],
        manifest_revision: Option<&str>,
    ) -> Result<CheckId, StoreError> {
        let count = |o: Outcome| findings.iter().filter(|f| f.outcome == o).count() as i64;
        let err = self.query_err(format!("save a check of scan {scan_id}"));
        let now = ms(Utc::now());
        let id = on_pool!(self, pool => {
            async {
                let mut tx = pool.begin().await?;
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO checks (scan_id, created_at_ms, manifest_revision, pass_count, \
                     warn_count, fail_count, inconclusive_count) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind(scan_id.0)
                .bind(now)
                .bind(manifest_revision)
                .bind(count(Outcome::Pass))
                .bind(count(Outcome::Warn))
                .bind(count(Outcome::Fail))
                .bind(count(Outcome::Inconclusive))
                .fetch_one(&mut *tx)
                .await?;
                let indexed: Vec<(usize, &Finding)> = findings.iter().enumerate().collect();
                for chunk in indexed.chunks(BATCH_ROWS / 2) {
                    let mut q = QueryBuilder::new(
                        "INSERT INTO check_findings (check_id, finding_index, rule, outcome, \
                         severity, target, ip, protocol, port, state, service, product, version, \
                         asset, message, finding) ",
                    );
                    q.push_values(chunk, |mut b, (index, f)| {
                        b.push_bind(id)
                            .push_bind(*index as i64)
                            .push_bind(f.rule.id())
                            .push_bind(f.outcome.as_str())
                            .push_bind(f.severity.as_str())
                            .push_bind(f.target.clone())
                            .push_bind(f.ip.map(|ip| ip.to_string()))
                            .push_bind(f.protocol.map(|p| p.as_str()))
                            .push_bind(f.port.map(i32::from))
                            .push_bind(f.state.map(|s| s.as_str()))
                            .push_bind(f.service.clone())
                            .push_bind(f.product.clone())
                            .push_bind(f.version.clone())
                            .push_bind(f.asset.clone())
                            .push_bind(f.message.clone())
                            .push_bind(serde_json::to_string(f).unwrap_or_default());
                    });
                    q.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok::<i64, sqlx::Error>(id)
            }
            .await
        })
        .map_err(err)?;
        Ok(CheckId(id))
    }
}

/// The report as JSON, compressed while it is written (a full scan of many hosts is
/// hundreds of megabytes of JSON, a few of zstd).
fn compress_report(report: &ScanReport) -> Result<Vec<u8>, String> {
    let mut encoder =
        zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL).map_err(|e| e.to_string())?;
    let mut writer = std::io::BufWriter::new(&mut encoder);
    serde_json::to_writer(&mut writer, report).map_err(|e| e.to_string())?;
    std::io::Write::flush(&mut writer).map_err(|e| e.to_string())?;
    drop(writer);
    encoder.finish().map_err(|e| e.to_string())
}

/// zstd's fast end: the report is written once per scan and read rarely.
const ZSTD_LEVEL: i32 = 3;

/// The state whose ports of `protocol` get no row on `host`: the most common of closed,
/// filtered and open|filtered (closed on a tie), when the host has any such port.
fn unlisted_state(host: &HostReport, protocol: Protocol) -> Option<PortState> {
    let mut counts = [0usize; 3];
    let states = [
        PortState::Closed,
        PortState::Filtered,
        PortState::OpenFiltered,
    ];
    for port in host.ports.iter().filter(|p| p.protocol == protocol) {
        if let Some(i) = states.iter().position(|s| *s == port.state) {
            counts[i] += 1;
        }
    }
    let (best, count) =
        counts.iter().enumerate().fold(
            (0, 0),
            |(bi, bc), (i, c)| if *c > bc { (i, *c) } else { (bi, bc) },
        );
    (count > 0).then_some(states[best])
}

fn indexed_hosts(hosts: &[HostReport]) -> Vec<(usize, &HostReport)> {
    hosts.iter().enumerate().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portgate_model::{PortResult, Reason};

    fn host(states: &[(Protocol, PortState)]) -> HostReport {
        HostReport {
            target: "198.18.0.2".into(),
            hostname: None,
            ip: "198.18.0.2".parse().expect("an address"),
            ports_requested: states.len() as u32,
            ports: states
                .iter()
                .enumerate()
                .map(|(i, (protocol, state))| PortResult {
                    port: 1 + i as u16,
                    protocol: *protocol,
                    state: *state,
                    reason: Reason::NoResponse,
                    rtt_us: None,
                    attempts: 1,
                    at_ms: 0,
                })
                .collect(),
            services: Vec::new(),
            tarpit: None,
        }
    }

    #[test]
    fn the_unlisted_state_is_the_most_common_non_open_one_closed_on_a_tie() {
        use PortState::{Closed, Filtered, Open, OpenFiltered};
        use Protocol::{Tcp, Udp};
        let h = host(&[(Tcp, Open), (Tcp, Filtered), (Tcp, Filtered), (Tcp, Closed)]);
        assert_eq!(unlisted_state(&h, Tcp), Some(Filtered));
        assert_eq!(unlisted_state(&h, Udp), None, "no UDP port");
        let tie = host(&[(Tcp, Filtered), (Tcp, Closed), (Udp, OpenFiltered)]);
        assert_eq!(unlisted_state(&tie, Tcp), Some(Closed));
        assert_eq!(unlisted_state(&tie, Udp), Some(OpenFiltered));
        assert_eq!(
            unlisted_state(&host(&[(Tcp, Open)]), Tcp),
            None,
            "open ports always get rows"
        );
    }

    #[test]
    fn a_compressed_report_reads_back_whole() {
        use chrono::TimeZone;
        let started_at = Utc
            .with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
            .single()
            .expect("a time");
        let ports: Vec<(Protocol, PortState)> = (0..5000)
            .map(|_| (Protocol::Tcp, PortState::Closed))
            .collect();
        let report = ScanReport {
            method: portgate_model::ScanMethod::Syn,
            started_at,
            finished_at: started_at,
            status: ScanStatus::Completed,
            incomplete_reasons: Vec::new(),
            targets: Vec::new(),
            hosts: vec![host(&ports)],
            enrichment: None,
        };
        let bytes = compress_report(&report).expect("compresses");
        let json = serde_json::to_vec(&report).expect("serialises");
        assert!(
            bytes.len() * 10 < json.len(),
            "{} of {}",
            bytes.len(),
            json.len()
        );
        let back: ScanReport = serde_json::from_reader(
            zstd::stream::read::Decoder::new(bytes.as_slice()).expect("zstd"),
        )
        .expect("reads back");
        assert_eq!(back, report);
    }
}
