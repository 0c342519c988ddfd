//! The history: recording a scan, a target's timeline, the changes between scans, and
//! keeping the database in bounds. The database is `--db PATH|URL`, else `$PORTGATE_DB`,
//! else `$XDG_DATA_HOME/portgate/history.db`, else `~/.local/share/portgate/history.db`.

use crate::Error;
use chrono::{DateTime, Utc};
use portgate_model::ScanReport;
pub use portgate_model::history::{DiffSpan, Diffed, Timeline};
use portgate_policy::drift::{DriftOptions, diff, drift, host_diff};
use portgate_store::{DB_ENV, HostSnapshot, Location, Retention, ScanId, ScanStart, Store};
use std::collections::BTreeMap;
use std::time::Duration;

/// The database named by `db` (a file path or a `postgres://` URL), else the
/// environment's or the default one.
pub fn location(db: Option<&str>) -> Result<Location, Error> {
    match db.filter(|d| !d.is_empty()) {
        Some(text) => Location::parse(text),
        None => Location::from_env_or_default(),
    }
    .map_err(Error::history)
}

/// Opens the history database (created on first use).
pub async fn open_store(location: &Location) -> Result<Store, Error> {
    Store::open(location).await.map_err(Error::history)
}

/// Whether a command records to the history: with a database named, `save` asked for,
/// or `$PORTGATE_DB` set.
pub fn recording(db: Option<&str>, save: bool) -> bool {
    let from_env = std::env::var_os(DB_ENV).is_some_and(|v| !v.is_empty());
    db.is_some() || save || from_env
}

/// A scan being recorded: inserted as `running` before the first probe, finalised with
/// the report. A process that dies in between leaves it to be marked incomplete.
pub struct ScanRecorder {
    store: Store,
    id: ScanId,
}

impl ScanRecorder {
    /// Opens the database and inserts the scan as running.
    pub async fn begin(
        location: &Location,
        targets: &[String],
        method: Option<&str>,
    ) -> Result<ScanRecorder, Error> {
        let store = open_store(location).await?;
        let started = store
            .begin_scan(&ScanStart {
                started_at: Some(Utc::now()),
                targets: targets.to_vec(),
                method: method.map(str::to_string),
                manifest_revision: None,
            })
            .await;
        match started {
            Ok(id) => Ok(ScanRecorder { store, id }),
            Err(source) => {
                store.close().await;
                Err(Error::history(source))
            }
        }
    }

    /// The history database the scan is recorded in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores the report; returns the scan's id and the database's display name.
    pub async fn finish(self, report: &ScanReport) -> Result<(ScanId, String), Error> {
        let result = self.store.finish_scan(self.id, report).await;
        self.store.close().await;
        result.map_err(|source| Error::Save {
            what: "scan",
            source,
        })?;
        Ok((self.id, self.store.name().to_string()))
    }
}

/// Stores a scan made elsewhere (`portgate import`: nmap's XML, masscan's output, a
/// portgate JSON report) in the history as a finished scan; returns its id.
pub async fn import_scan(store: &Store, report: &ScanReport) -> Result<ScanId, Error> {
    let id = store
        .begin_scan(&ScanStart {
            started_at: Some(report.started_at),
            targets: report.targets.iter().map(|t| t.input.clone()).collect(),
            method: Some(report.method.as_str().to_string()),
            manifest_revision: None,
        })
        .await
        .map_err(Error::history)?;
    store
        .finish_scan(id, report)
        .await
        .map_err(|source| Error::Save {
            what: "scan",
            source,
        })?;
    Ok(id)
}

/// The timeline of `target` (as scanned, or one of its addresses): at most `limit` scans.
pub async fn timeline(store: &Store, target: &str, limit: u32) -> Result<Timeline, Error> {
    let snapshots = store
        .history(target, i64::from(limit))
        .await
        .map_err(Error::history)?;
    let unfinished = store
        .unfinished_scans_of_target(target, limit as usize)
        .await
        .map_err(Error::history)?;
    let mut reports: BTreeMap<ScanId, ScanReport> = BTreeMap::new();
    for snap in &snapshots {
        if let std::collections::btree_map::Entry::Vacant(slot) = reports.entry(snap.scan.id) {
            slot.insert(
                store
                    .load_report(snap.scan.id)
                    .await
                    .map_err(Error::history)?,
            );
        }
    }
    let host_of = |snap: &HostSnapshot| {
        reports.get(&snap.scan.id).and_then(|r| {
            r.hosts
                .iter()
                .find(|h| h.ip.to_string() == snap.ip && h.target == snap.target)
        })
    };
    let changes = snapshots
        .iter()
        .enumerate()
        .map(|(i, snap)| {
            // The same address's previous (older) snapshot comes later in the list.
            let older = snapshots[i + 1..].iter().find(|s| s.ip == snap.ip)?;
            Some(match (host_of(older), host_of(snap)) {
                (Some(before), Some(after)) => host_diff(before, after),
                _ => Vec::new(),
            })
        })
        .collect();
    Ok(Timeline {
        snapshots,
        changes,
        unfinished,
    })
}

/// Every difference between two stored scans, without flap control.
pub async fn diff_scans(store: &Store, before: ScanId, after: ScanId) -> Result<Diffed, Error> {
    let a = store.load_report(before).await.map_err(Error::history)?;
    let b = store.load_report(after).await.map_err(Error::history)?;
    Ok(Diffed {
        span: DiffSpan::Scans { before, after },
        scans: vec![(before, a.started_at), (after, b.started_at)],
        changes: diff(&a, &b),
    })
}

/// The changes of `target`'s scans over the `period` before `now`, compared with the last
/// scan before it, with the flap control of `options`.
pub async fn changes_since(
    store: &Store,
    target: &str,
    period: Duration,
    now: DateTime<Utc>,
    options: &DriftOptions,
) -> Result<Diffed, Error> {
    let since =
        now - chrono::Duration::from_std(period).unwrap_or_else(|_| chrono::Duration::days(36_500));
    let mut records = Vec::new();
    let mut baseline = false;
    if let Some(base) = store
        .last_scan_of_target_before(target, since)
        .await
        .map_err(Error::history)?
    {
        records.push(base);
        baseline = true;
    }
    records.extend(
        store
            .scans_of_target(target, Some(since))
            .await
            .map_err(Error::history)?,
    );
    let mut reports = Vec::with_capacity(records.len());
    for record in &records {
        let mut report = store.load_report(record.id).await.map_err(Error::history)?;
        // Only this target's addresses: a scan may have covered many targets.
        report
            .hosts
            .retain(|h| h.target == target || h.ip.to_string() == target);
        reports.push(report);
    }
    Ok(Diffed {
        span: DiffSpan::Since {
            target: target.to_string(),
            since,
            baseline,
        },
        scans: records.iter().map(|r| (r.id, r.started_at)).collect(),
        changes: drift(&reports, options),
    })
}

/// Deletes old scans (with their ports, services and checks); running scans are kept.
/// Returns how many were deleted.
pub async fn prune(store: &Store, retention: Retention) -> Result<u64, Error> {
    store.prune(retention).await.map_err(Error::history)
}

/// Writes every scan (record, full report, checks) as JSON lines, oldest first; returns
/// how many.
pub async fn export_jsonl(store: &Store, out: &mut dyn std::io::Write) -> Result<u64, Error> {
    store.export_jsonl(out).await.map_err(Error::history)
}
