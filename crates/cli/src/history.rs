//! `portgate history`, `portgate diff`, `portgate db`: every scan kept in a SQLite file
//! (default) or PostgreSQL.
//!
//! The database is `--db PATH|URL`, else `$PORTGATE_DB`, else
//! `$XDG_DATA_HOME/portgate/history.db`, else `~/.local/share/portgate/history.db`.

use crate::Failure;
use chrono::Utc;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use portgate_pipeline::{self as pipeline, Error};
use portgate_policy::drift::DriftOptions;
use portgate_report::{diff_json, diff_table, timeline_json, timeline_table};
use portgate_store::{Retention, ScanId, Store};
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
    #[arg(long, value_parser = crate::args::parse_duration, value_name = "DURATION")]
    pub(crate) since: Option<Duration>,

    /// Scans in a row that confirm a newly open port.
    #[arg(long, default_value_t = DriftOptions::default().confirm_appeared, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), env = "PORTGATE_CONFIRM_OPEN")]
    pub(crate) confirm_open: u32,

    /// Scans in a row that confirm an open port gone closed or filtered (flap control).
    #[arg(long, default_value_t = DriftOptions::default().confirm_disappeared, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), env = "PORTGATE_CONFIRM_GONE")]
    pub(crate) confirm_gone: u32,

    /// Scans in a row that confirm a changed service, version or certificate.
    #[arg(long, default_value_t = DriftOptions::default().confirm_changed, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..), env = "PORTGATE_CONFIRM_CHANGED")]
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

/// Opens the history database named by `db`, runs `work` on it and closes it.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The scan file.
    #[arg(value_name = "FILE")]
    pub(crate) file: std::path::PathBuf,
    #[command(flatten)]
    pub(crate) db: DbArg,
}

/// `portgate import`: reads the file, stores it, says what it held.
pub(crate) fn import(args: ImportArgs) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::usage(format!("{}: cannot read: {e}", args.file.display())))?;
    let (format, report) = portgate_report::read_scan(&text)
        .map_err(|e| Failure::usage(format!("{}: {e}", args.file.display())))?;
    let (id, store) = with_store(args.db.db.as_deref(), async |store| {
        let id = pipeline::import_scan(store, &report).await?;
        Ok((id, store.name().to_string()))
    })?;
    let open: usize = report
        .hosts
        .iter()
        .map(|h| {
            h.ports
                .iter()
                .filter(|p| p.state == portgate_model::PortState::Open)
                .count()
        })
        .sum();
    eprintln!(
        "portgate: {}: {} with {} host(s), {} open port(s); saved as scan {id} in {store}",
        args.file.display(),
        format.as_str(),
        report.hosts.len(),
        open
    );
    Ok(0)
}

pub(crate) fn with_store<T>(
    db: Option<&str>,
    work: impl AsyncFnOnce(&Store) -> Result<T, Error>,
) -> Result<T, Failure> {
    let location = pipeline::location(db)?;
    crate::runtime()?.block_on(async {
        let store = pipeline::open_store(&location).await?;
        let result = work(&store).await;
        store.close().await;
        Ok(result?)
    })
}

/// `portgate history TARGET`.
pub(crate) fn run_history(args: HistoryArgs) -> Result<u8, Failure> {
    let timeline = with_store(args.db.db.as_deref(), async |store| {
        pipeline::timeline(store, &args.target, args.limit).await
    })?;
    crate::write_stdout(&match args.format {
        HistoryFormat::Json => timeline_json(&args.target, &timeline),
        HistoryFormat::Table => timeline_table(&args.target, &timeline),
    });
    Ok(0)
}

/// `portgate diff`.
pub(crate) fn run_diff(args: DiffArgs) -> Result<u8, Failure> {
    let options = DriftOptions {
        confirm_appeared: args.confirm_open,
        confirm_disappeared: args.confirm_gone,
        confirm_changed: args.confirm_changed,
    };
    let scan_ids = match &args.scan_b {
        Some(second) => {
            let parse = |text: &str| {
                text.parse::<ScanId>().map_err(|_| {
                    Failure::usage(format!(
                        "\"{text}\" is not a scan id (a number from `portgate history`)"
                    ))
                })
            };
            Some((parse(&args.first)?, parse(second)?))
        }
        None => None,
    };
    let period = args.since.unwrap_or(Duration::from_secs(7 * 86_400));
    let diffed = with_store(args.db.db.as_deref(), async |store| match scan_ids {
        Some((a, b)) => pipeline::diff_scans(store, a, b).await,
        None => pipeline::changes_since(store, &args.first, period, Utc::now(), &options).await,
    })?;
    crate::write_stdout(&match args.format {
        HistoryFormat::Json => diff_json(&diffed),
        HistoryFormat::Table => diff_table(&diffed),
    });
    Ok(0)
}

/// `portgate db prune | export`.
pub(crate) fn run_db(args: DbArgs) -> Result<u8, Failure> {
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
            let (deleted, name) = with_store(db.db.as_deref(), async |store| {
                let deleted = pipeline::prune(store, retention).await?;
                Ok((deleted, store.name().to_string()))
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
                    std::fs::File::create(&jsonl)
                        .map_err(|e| crate::exit::cannot_write(&jsonl, &e))?,
                ))
            };
            let lines = with_store(db.db.as_deref(), async |store| {
                pipeline::export_jsonl(store, &mut *file)
                    .await
                    .map_err(|e| Error::Input(format!("exporting to {}: {e}", jsonl.display())))
            })?;
            if !to_stdout {
                eprintln!("portgate: exported {lines} scan(s) to {}", jsonl.display());
            }
            Ok(0)
        }
    }
}
