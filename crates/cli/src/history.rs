//! `portgate history`, `portgate diff`, `portgate db`, and the history side of
//! `portgate scan --db`: every scan kept in a SQLite file (default) or PostgreSQL.
//!
//! The database is `--db PATH|URL`, else `$PORTGATE_DB`, else
//! `$XDG_DATA_HOME/portgate/history.db`, else `~/.local/share/portgate/history.db`.

use crate::Failure;
use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use portgate_model::ScanReport;
use portgate_policy::drift::{Change, ChangeStatus, DriftOptions, diff, drift};
use portgate_store::{HostSnapshot, Location, Retention, ScanId, ScanStart, Store};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// The history database option, shared by the commands that read or write history.
#[derive(Debug, Clone, Args)]
pub(crate) struct DbArg {
    /// History database: a SQLite file (created on first use) or a postgres:// URL
    /// [default: $PORTGATE_DB, else $XDG_DATA_HOME/portgate/history.db, else
    /// ~/.local/share/portgate/history.db].
    #[arg(long, value_name = "PATH|URL")]
    pub(crate) db: Option<String>,
}

/// Output formats of the history commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HistoryFormat {
    /// Aligned columns for people.
    Table,
    /// JSON.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The target as scanned (hostname, address or range), or one of its addresses.
    #[arg(value_name = "TARGET")]
    pub(crate) target: String,

    #[command(flatten)]
    pub(crate) db: DbArg,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = HistoryFormat::Table)]
    pub(crate) format: HistoryFormat,

    /// Show at most this many scans, newest first.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub(crate) limit: u32,
}

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("mode").args(["scan_b", "since"]).required(true)),
    override_usage = "portgate diff [OPTIONS] SCAN_A SCAN_B\n       portgate diff [OPTIONS] TARGET --since DURATION"
)]
pub(crate) struct DiffArgs {
    /// A scan id (with SCAN_B), or a target (with --since).
    #[arg(value_name = "SCAN_A|TARGET")]
    pub(crate) first: String,

    /// The later scan id: every difference between the two scans, without flap control.
    #[arg(value_name = "SCAN_B")]
    pub(crate) scan_b: Option<String>,

    /// With a target: the changes of its scans over this period (e.g. 24h, 7d), compared
    /// with the last scan before it, with flap control.
    #[arg(long, value_parser = parse_period, value_name = "DURATION")]
    pub(crate) since: Option<Duration>,

    /// Scans in a row that confirm a newly open port.
    #[arg(long, default_value_t = DriftOptions::default().confirm_appeared, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) confirm_open: u32,

    /// Scans in a row that confirm an open port gone closed or filtered (flap control).
    #[arg(long, default_value_t = DriftOptions::default().confirm_disappeared, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) confirm_gone: u32,

    /// Scans in a row that confirm a changed service, version or certificate.
    #[arg(long, default_value_t = DriftOptions::default().confirm_changed, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) confirm_changed: u32,

    #[command(flatten)]
    pub(crate) db: DbArg,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = HistoryFormat::Table)]
    pub(crate) format: HistoryFormat,
}

#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    #[command(subcommand)]
    pub(crate) command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Delete old scans (with their ports, services and checks); running scans are kept.
    #[command(group(ArgGroup::new("keep").args(["keep_days", "keep_scans"]).required(true)))]
    Prune {
        /// Keep the scans that started within the last N days.
        #[arg(long, value_name = "N")]
        keep_days: Option<u32>,
        /// Keep the newest N scans.
        #[arg(long, value_name = "N")]
        keep_scans: Option<u64>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Write every scan (record, full report, checks) as JSON lines, oldest first.
    Export {
        /// The file to write (`-` for standard output).
        #[arg(long, value_name = "FILE")]
        jsonl: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
}

fn parse_period(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("\"{text}\" is not a period like 12h, 7d or 2w: {e}"))
}

/// The database named by `--db`, else the environment's or the default one.
pub(crate) fn location(db: Option<&str>) -> Result<Location, Failure> {
    match db.filter(|d| !d.is_empty()) {
        Some(text) => Location::parse(text),
        None => Location::from_env_or_default(),
    }
    .map_err(|e| Failure::usage(e.to_string()))
}

/// Opens the history database (created on first use).
pub(crate) async fn open_store(db: Option<&str>) -> Result<Store, Failure> {
    let location = location(db)?;
    Store::open(&location)
        .await
        .map_err(|e| Failure::usage(e.to_string()))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("could not start the async runtime: {e}")))
}

fn store_err(e: portgate_store::StoreError) -> Failure {
    Failure::usage(e.to_string())
}

/// A scan being recorded: inserted as `running` before the first probe, finalised with the
/// report. A process that dies in between leaves it to be marked incomplete.
pub(crate) struct ScanRecorder {
    store: Store,
    id: ScanId,
}

impl ScanRecorder {
    /// Opens the database and inserts the scan as running.
    pub(crate) async fn begin(
        db: Option<&str>,
        targets: &[String],
        method: Option<&str>,
    ) -> Result<ScanRecorder, Failure> {
        let store = open_store(db).await?;
        let id = store
            .begin_scan(&ScanStart {
                started_at: Some(Utc::now()),
                targets: targets.to_vec(),
                method: method.map(str::to_string),
                manifest_revision: None,
            })
            .await
            .map_err(store_err)?;
        Ok(ScanRecorder { store, id })
    }

    /// Stores the report; says on standard error where it went.
    pub(crate) async fn finish(self, report: &ScanReport) -> Result<ScanId, Failure> {
        let result = self.store.finish_scan(self.id, report).await;
        self.store.close().await;
        result.map_err(|e| {
            Failure::scan(format!(
                "the scan finished but could not be saved to the history: {e}"
            ))
        })?;
        eprintln!(
            "portgate: saved as scan {} in {}",
            self.id,
            self.store.name()
        );
        Ok(self.id)
    }
}

/// Whether a command records to the history: with `--db`, `--save` or `$PORTGATE_DB` set.
pub(crate) fn recording(db: Option<&str>, save: bool) -> bool {
    let from_env = std::env::var_os(portgate_store::DB_ENV).is_some_and(|v| !v.is_empty());
    db.is_some() || save || from_env
}

/// For `portgate scan`: with `--db`, `--save` or `$PORTGATE_DB` set, opens the history and
/// records the scan as running before the first probe.
pub(crate) fn begin_scan(
    runtime: &tokio::runtime::Runtime,
    db: Option<&str>,
    save: bool,
    targets: &[impl std::fmt::Display],
    method: Option<&str>,
) -> Result<Option<ScanRecorder>, Failure> {
    if !recording(db, save) {
        return Ok(None);
    }
    let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
    runtime
        .block_on(ScanRecorder::begin(db, &targets, method))
        .map(Some)
}

/// For `portgate scan`: stores the finished scan, when it is being recorded.
pub(crate) fn finish_scan(
    runtime: &tokio::runtime::Runtime,
    recorder: Option<ScanRecorder>,
    report: &ScanReport,
) -> Result<(), Failure> {
    match recorder {
        Some(recorder) => runtime.block_on(recorder.finish(report)).map(|_| ()),
        None => Ok(()),
    }
}

/// `portgate history TARGET`.
pub(crate) fn run_history(args: HistoryArgs) -> Result<u8, Failure> {
    let runtime = runtime()?;
    let (snapshots, unfinished) = runtime.block_on(async {
        let store = open_store(args.db.db.as_deref()).await?;
        let result = async {
            let snapshots = store
                .history(&args.target, i64::from(args.limit))
                .await
                .map_err(store_err)?;
            let unfinished = store
                .unfinished_scans_of_target(&args.target, args.limit as usize)
                .await
                .map_err(store_err)?;
            Ok::<_, Failure>((snapshots, unfinished))
        }
        .await;
        store.close().await;
        result
    })?;
    let text = match args.format {
        HistoryFormat::Json => {
            let value = serde_json::json!({
                "schema": "portgate.history.v1",
                "target": args.target,
                "snapshots": snapshots,
                "unfinished": unfinished,
            });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )
        }
        HistoryFormat::Table => {
            let mut text = history_table(&args.target, &snapshots);
            for scan in &unfinished {
                text.push_str(&format!(
                    "scan {} started {} UTC is {}: {}\n",
                    scan.id,
                    when(scan.started_at),
                    scan.status.as_str(),
                    if scan.incomplete_reasons.is_empty() {
                        "not finalised yet".to_string()
                    } else {
                        scan.incomplete_reasons.join("; ")
                    }
                ));
            }
            text
        }
    };
    write_stdout(&text);
    Ok(0)
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// One line per address per scan, newest first, with what opened (+) and closed (-) since
/// the address's previous scan.
fn history_table(target: &str, snapshots: &[HostSnapshot]) -> String {
    if snapshots.is_empty() {
        return format!("no scan of {target} in the history\n");
    }
    let scans: BTreeSet<i64> = snapshots.iter().map(|s| s.scan.id).collect();
    let mut out = format!(
        "{target}: {} scan{}, newest first\n",
        scans.len(),
        if scans.len() == 1 { "" } else { "s" }
    );
    let mut rows = vec![[
        "SCAN".to_string(),
        "STARTED (UTC)".into(),
        "STATUS".into(),
        "ADDRESS".into(),
        "OPEN".into(),
        "FILTERED".into(),
        "CLOSED".into(),
        "CHANGE".into(),
        "OPEN PORTS".into(),
    ]];
    for (i, snap) in snapshots.iter().enumerate() {
        let open = open_ports(snap);
        // The same address's previous (older) snapshot comes later in the list.
        let change = match snapshots[i + 1..].iter().find(|s| s.ip == snap.ip) {
            Some(older) => {
                let before = open_ports(older);
                let mut parts: Vec<String> = open
                    .iter()
                    .filter(|p| !before.contains(p))
                    .map(|p| format!("+{p}"))
                    .collect();
                parts.extend(
                    before
                        .iter()
                        .filter(|p| !open.contains(p))
                        .map(|p| format!("-{p}")),
                );
                if parts.is_empty() {
                    "=".to_string()
                } else {
                    parts.join(" ")
                }
            }
            None => "first".to_string(),
        };
        let described: Vec<String> = open
            .iter()
            .map(|p| {
                let service = snap
                    .services
                    .iter()
                    .find(|s| format!("{}/{}", s.port, s.protocol) == *p);
                match service {
                    Some(s) => {
                        let mut text = p.clone();
                        for part in [&s.service, &s.product, &s.version].into_iter().flatten() {
                            text.push(' ');
                            text.push_str(part);
                        }
                        if s.tls_valid == Some(false) {
                            text.push_str(" [TLS invalid]");
                        }
                        text
                    }
                    None => p.clone(),
                }
            })
            .collect();
        rows.push([
            snap.scan.id.to_string(),
            when(snap.scan.started_at),
            snap.scan.status.as_str().to_string(),
            snap.ip.clone(),
            snap.open.to_string(),
            (snap.filtered + snap.open_filtered).to_string(),
            snap.closed.to_string(),
            change,
            if described.is_empty() {
                "-".to_string()
            } else {
                described.join(", ")
            },
        ]);
    }
    out.push_str(&columns(&rows));
    out
}

/// `PORT/PROTO` of every open port, in port order.
fn open_ports(snap: &HostSnapshot) -> Vec<String> {
    snap.ports
        .iter()
        .filter(|p| p.state == "open")
        .map(|p| format!("{}/{}", p.port, p.protocol))
        .collect()
}

fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `portgate diff`.
pub(crate) fn run_diff(args: DiffArgs) -> Result<u8, Failure> {
    let runtime = runtime()?;
    let options = DriftOptions {
        confirm_appeared: args.confirm_open,
        confirm_disappeared: args.confirm_gone,
        confirm_changed: args.confirm_changed,
    };
    let (scans, changes, title) = runtime.block_on(async {
        let store = open_store(args.db.db.as_deref()).await?;
        let result = diff_inputs(&store, &args, &options).await;
        store.close().await;
        result
    })?;
    let text = match args.format {
        HistoryFormat::Json => {
            let changes: Vec<serde_json::Value> = changes
                .iter()
                .map(|c| {
                    let mut value = serde_json::to_value(c).unwrap_or_default();
                    if let Some(object) = value.as_object_mut() {
                        object.insert(
                            "first_seen_scan".into(),
                            scans.get(c.first_seen).map(|s| s.0).into(),
                        );
                        object.insert("at_scan".into(), scans.get(c.at).map(|s| s.0).into());
                        object.remove("first_seen");
                        object.remove("at");
                    }
                    value
                })
                .collect();
            let value = serde_json::json!({
                "schema": "portgate.diff.v1",
                "scans": scans.iter().map(|(id, at)| serde_json::json!({"id": id, "started_at": at})).collect::<Vec<_>>(),
                "changes": changes,
            });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )
        }
        HistoryFormat::Table => diff_table(&title, &scans, &changes),
    };
    write_stdout(&text);
    Ok(0)
}

type ScanList = Vec<(ScanId, DateTime<Utc>)>;

async fn diff_inputs(
    store: &Store,
    args: &DiffArgs,
    options: &DriftOptions,
) -> Result<(ScanList, Vec<Change>, String), Failure> {
    if let Some(second) = &args.scan_b {
        let parse = |text: &str| {
            text.parse::<ScanId>().map_err(|_| {
                Failure::usage(format!(
                    "\"{text}\" is not a scan id (a number from `portgate history`)"
                ))
            })
        };
        let (a, b) = (parse(&args.first)?, parse(second)?);
        let before = store.load_report(a).await.map_err(store_err)?;
        let after = store.load_report(b).await.map_err(store_err)?;
        let title = format!("scan {a} → scan {b}");
        return Ok((
            vec![(a, before.started_at), (b, after.started_at)],
            diff(&before, &after),
            title,
        ));
    }
    let period = args.since.unwrap_or(Duration::from_secs(7 * 86_400));
    let since = Utc::now()
        - chrono::Duration::from_std(period).unwrap_or_else(|_| chrono::Duration::days(36_500));
    let target = &args.first;
    let mut records = Vec::new();
    let mut baseline = false;
    if let Some(base) = store
        .last_scan_of_target_before(target, since)
        .await
        .map_err(store_err)?
    {
        records.push(base);
        baseline = true;
    }
    records.extend(
        store
            .scans_of_target(target, Some(since))
            .await
            .map_err(store_err)?,
    );
    let mut reports = Vec::with_capacity(records.len());
    for record in &records {
        let mut report = store.load_report(record.id).await.map_err(store_err)?;
        // Only this target's addresses: a scan may have covered many targets.
        report
            .hosts
            .retain(|h| h.target == *target || h.ip.to_string() == *target);
        reports.push(report);
    }
    let scans = records.iter().map(|r| (r.id, r.started_at)).collect();
    let title = format!(
        "{target} since {} UTC: {} scan{}{}",
        when(since),
        records.len(),
        if records.len() == 1 { "" } else { "s" },
        if baseline {
            ", the first the last one before the period"
        } else {
            ""
        }
    );
    Ok((scans, drift(&reports, options), title))
}

fn diff_table(title: &str, scans: &ScanList, changes: &[Change]) -> String {
    let mut out = format!("{title}\n");
    if scans.len() < 2 {
        out.push_str("fewer than two scans: nothing to compare\n");
        return out;
    }
    if changes.is_empty() {
        out.push_str("no changes\n");
        return out;
    }
    let scan_id = |index: usize| {
        scans
            .get(index)
            .map(|s| s.0.to_string())
            .unwrap_or_default()
    };
    let mut rows = vec![[
        "SCAN".to_string(),
        "ENDPOINT".into(),
        "CHANGE".into(),
        "BEFORE".into(),
        "AFTER".into(),
        "STATUS".into(),
    ]];
    for c in changes {
        let status = match c.status {
            ChangeStatus::Confirmed => "confirmed".to_string(),
            ChangeStatus::Pending { seen, needed } => format!("pending ({seen} of {needed})"),
        };
        rows.push([
            scan_id(c.at),
            c.endpoint(),
            c.kind.id().to_string(),
            c.before.clone().unwrap_or_else(|| "-".into()),
            c.after.clone().unwrap_or_else(|| "-".into()),
            status,
        ]);
    }
    out.push_str(&columns(&rows));
    out
}

/// `portgate db prune | export`.
pub(crate) fn run_db(args: DbArgs) -> Result<u8, Failure> {
    let runtime = runtime()?;
    match args.command {
        DbCommand::Prune {
            keep_days,
            keep_scans,
            db,
        } => {
            let retention = match (keep_days, keep_scans) {
                (Some(days), _) => Retention::KeepDays {
                    days,
                    now: Utc::now(),
                },
                (None, Some(n)) => Retention::KeepScans(n),
                (None, None) => {
                    return Err(Failure::usage("give --keep-days N or --keep-scans N"));
                }
            };
            let (deleted, name) = runtime.block_on(async {
                let store = open_store(db.db.as_deref()).await?;
                let result = store.prune(retention).await.map_err(store_err);
                store.close().await;
                result.map(|n| (n, store.name().to_string()))
            })?;
            eprintln!("portgate: deleted {deleted} scan(s) from {name}");
            Ok(0)
        }
        DbCommand::Export { jsonl, db } => {
            let to_stdout = jsonl.as_os_str() == "-";
            let mut file: Box<dyn Write> = if to_stdout {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&jsonl).map_err(|e| {
                        Failure::usage(format!("cannot create {}: {e}", jsonl.display()))
                    })?,
                ))
            };
            let lines = runtime.block_on(async {
                let store = open_store(db.db.as_deref()).await?;
                let result = store
                    .export_jsonl(&mut *file)
                    .await
                    .map_err(|e| Failure::usage(format!("exporting to {}: {e}", jsonl.display())));
                store.close().await;
                result
            })?;
            if !to_stdout {
                eprintln!("portgate: exported {lines} scan(s) to {}", jsonl.display());
            }
            Ok(0)
        }
    }
}

fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) is not an error.
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use portgate_store::{ScanRecord, StoredPort, StoredService, StoredStatus};

    fn snapshot(id: i64, minute: u32, open: &[u16], status: StoredStatus) -> HostSnapshot {
        let started = Utc
            .with_ymd_and_hms(2026, 11, 30, 6, minute, 0)
            .single()
            .unwrap_or_default();
        HostSnapshot {
            scan: ScanRecord {
                id,
                status,
                started_at: started,
                finished_at: Some(started),
                method: Some("connect".into()),
                targets: vec!["app.example".into()],
                manifest_revision: None,
                incomplete_reasons: vec![],
                hosts: 1,
                ports_scanned: 1000,
                open: open.len() as i64,
                closed: 1000 - open.len() as i64,
                filtered: 0,
                open_filtered: 0,
            },
            target: "app.example".into(),
            hostname: Some("app.example".into()),
            ip: "198.18.0.10".into(),
            ports_requested: 1000,
            open: open.len() as i64,
            closed: 1000 - open.len() as i64,
            filtered: 0,
            open_filtered: 0,
            tarpit: false,
            unlisted_tcp: Some("closed".into()),
            unlisted_udp: None,
            ports: open
                .iter()
                .map(|p| StoredPort {
                    protocol: "tcp".into(),
                    port: *p,
                    state: "open".into(),
                    reason: "syn-ack".into(),
                })
                .collect(),
            services: open
                .iter()
                .filter(|p| **p == 443)
                .map(|p| StoredService {
                    protocol: "tcp".into(),
                    port: *p,
                    service: Some("https".into()),
                    product: Some("nginx".into()),
                    version: Some("1.24.0".into()),
                    tls_valid: Some(false),
                    ..StoredService::default()
                })
                .collect(),
        }
    }

    #[test]
    fn the_timeline_shows_what_opened_and_closed() {
        let snapshots = [
            snapshot(3, 20, &[443, 8080], StoredStatus::Incomplete),
            snapshot(2, 10, &[22, 443], StoredStatus::Completed),
            snapshot(1, 0, &[22, 443], StoredStatus::Completed),
        ];
        let expected = "\
app.example: 3 scans, newest first
SCAN  STARTED (UTC)        STATUS      ADDRESS      OPEN  FILTERED  CLOSED  CHANGE             OPEN PORTS
3     2026-11-30 06:20:00  incomplete  198.18.0.10  2     0         998     +8080/tcp -22/tcp  443/tcp https nginx 1.24.0 [TLS invalid], 8080/tcp
2     2026-11-30 06:10:00  completed   198.18.0.10  2     0         998     =                  22/tcp, 443/tcp https nginx 1.24.0 [TLS invalid]
1     2026-11-30 06:00:00  completed   198.18.0.10  2     0         998     first              22/tcp, 443/tcp https nginx 1.24.0 [TLS invalid]
";
        assert_eq!(history_table("app.example", &snapshots), expected);
        assert_eq!(
            history_table("nothing.example", &[]),
            "no scan of nothing.example in the history\n"
        );
    }
}
