//! Keeping the database in bounds and getting everything out: prune and export.

use crate::{CheckRecord, Retention, ScanId, ScanRecord, StoredStatus};
use crate::{Pool, Store, StoreError, ms};
use portgate_model::ScanReport;
use serde::Serialize;

impl Store {
    /// Deletes the scans (with their ports, services and checks) that `retention` does not
    /// keep. A scan still `running` is never deleted. Returns how many scans were deleted.
    pub async fn prune(&self, retention: Retention) -> Result<u64, StoreError> {
        let err = self.query_err("prune scans");
        on_pool!(self, pool => {
            match retention {
                Retention::KeepDays { days, now } => {
                    let cutoff = ms(now - chrono::Duration::days(i64::from(days)));
                    sqlx::query("DELETE FROM scans WHERE status <> 'running' AND started_at_ms < $1")
                        .bind(cutoff)
                        .execute(pool)
                        .await
                }
                Retention::KeepScans(n) => {
                    sqlx::query(
                        "DELETE FROM scans WHERE status <> 'running' AND id NOT IN \
                         (SELECT id FROM scans ORDER BY started_at_ms DESC, id DESC LIMIT $1)",
                    )
                    .bind(i64::try_from(n).unwrap_or(i64::MAX))
                    .execute(pool)
                    .await
                }
            }
            .map(|r| r.rows_affected())
        })
        .map_err(err)
    }

    /// Writes every scan, oldest first, as one JSON object per line: the scan's record, its
    /// report (none when it was never finalised) and its checks. Returns how many lines.
    pub async fn export_jsonl(&self, out: &mut dyn std::io::Write) -> Result<u64, StoreError> {
        let ids: Vec<(i64,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id FROM scans ORDER BY started_at_ms, id")
                .fetch_all(pool)
                .await
        })
        .map_err(self.query_err("list scans to export"))?;
        let mut lines = 0;
        for (id,) in ids {
            let id = ScanId(id);
            // A scan pruned meanwhile by another process is skipped, not an error.
            let record = match self.scan(id).await {
                Ok(r) => r,
                Err(StoreError::NoSuchScan { .. }) => continue,
                Err(e) => return Err(e),
            };
            let report = match record.status {
                StoredStatus::Running => None,
                _ => match self.load_report(id).await {
                    Ok(r) => Some(r),
                    // Interrupted before finalising: there is no report.
                    Err(StoreError::Corrupt { .. }) if record.finished_at.is_none() => None,
                    Err(StoreError::NoSuchScan { .. }) => continue,
                    Err(e) => return Err(e),
                },
            };
            let checks = self.checks_of_scan(id).await?;
            let line = ExportLine {
                schema: EXPORT_SCHEMA,
                scan: &record,
                report: report.as_ref(),
                checks: &checks,
            };
            serde_json::to_writer(&mut *out, &line)
                .map_err(|e| StoreError::Export(std::io::Error::other(e)))?;
            out.write_all(b"\n").map_err(StoreError::Export)?;
            lines += 1;
        }
        out.flush().map_err(StoreError::Export)?;
        Ok(lines)
    }
}

/// The `schema` of each line of [`Store::export_jsonl`].
pub const EXPORT_SCHEMA: &str = "portgate.export.v1";

#[derive(Serialize)]
struct ExportLine<'a> {
    schema: &'static str,
    scan: &'a ScanRecord,
    report: Option<&'a ScanReport>,
    checks: &'a [CheckRecord],
}
