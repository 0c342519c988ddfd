//! `portgate data`: import vulnerability data and network tables into the history
//! database, and list what is held.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use portgate_pipeline::{self as pipeline, VulnFeed};

use crate::Failure;
use crate::history::DbArg;

#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    #[command(subcommand)]
    pub(crate) command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Import data files into the history database. Nothing is downloaded: fetch the files
    /// yourself (NVD CVE feeds 2.0, OSV exports of Debian and Ubuntu).
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// The datasets held: name, format, date of the data, records, last import.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportWhat {
    /// NVD CVE feed files, format 2.0 (`nvdcve-2.0-2024.json` or `.json.gz`). Re-importing
    /// is incremental: only newer copies replace what is held; rejected CVEs are removed.
    Nvd {
        /// Feed files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// OSV records (Debian and Ubuntu ecosystems): a directory of `.json` files, a `.zip`
    /// export (`all.zip` of an ecosystem) or one record.
    Osv {
        /// Directories, archives or files.
        #[arg(required = true, value_name = "DIR|ZIP|FILE")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// An IP-to-network table: iptoasn TSV (`ip2asn-v4.tsv`, `ip2asn-v6.tsv`, or `.gz`),
    /// CAIDA prefix-to-AS (`routeviews-rv2-…pfx2as`, multi-origin kept as a list) or
    /// MaxMind GeoLite2-ASN (`.mmdb`), recognised by content. Importing a name again
    /// replaces it.
    Asn {
        /// The table file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The dataset's name [default: the format's name]; several can be held (one per
        /// family or source), and a lookup asks each.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        common: ImportCommon,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ImportCommon {
    /// The date the data is of (YYYY-MM-DD), shown in every result; default: the newest
    /// record's date.
    #[arg(long, value_parser = parse_day, value_name = "DATE")]
    date: Option<DateTime<Utc>>,
    #[command(flatten)]
    db: DbArg,
}

/// Output formats of `data list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListFormat {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
}

fn parse_day(text: &str) -> Result<DateTime<Utc>, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("\"{text}\" is not a date (YYYY-MM-DD)"))
}

/// `portgate data …`.
pub(crate) fn run(args: DataArgs) -> Result<u8, Failure> {
    match args.command {
        DataCommand::Import {
            what: ImportWhat::Asn { file, name, common },
        } => {
            let started = std::time::Instant::now();
            let r = crate::history::with_store(common.db.db.as_deref(), async |store| {
                pipeline::import_asn(store, &file, name.as_deref(), common.date).await
            })?;
            eprintln!(
                "portgate: {}: {} ({}): {} row(s), {} disjoint range(s) stored, {} skipped (not routed or without an AS number){} ({:.1} s)",
                file.display(),
                r.dataset,
                r.format,
                r.rows,
                r.ranges,
                r.skipped,
                r.date
                    .map(|d| format!(", data of {}", d.format("%Y-%m-%d")))
                    .unwrap_or_default(),
                started.elapsed().as_secs_f64()
            );
            Ok(0)
        }
        DataCommand::Import {
            what: ImportWhat::Nvd { files, common },
        } => import_vulnerabilities(VulnFeed::Nvd, files, common),
        DataCommand::Import {
            what: ImportWhat::Osv { paths, common },
        } => import_vulnerabilities(VulnFeed::Osv, paths, common),
        DataCommand::List { format, db } => list(format, db),
    }
}

fn import_vulnerabilities(
    feed: VulnFeed,
    paths: Vec<PathBuf>,
    common: ImportCommon,
) -> Result<u8, Failure> {
    crate::history::with_store(common.db.db.as_deref(), async |store| {
        for path in &paths {
            let started = std::time::Instant::now();
            let r = pipeline::import_vulnerabilities(store, feed, path, common.date).await?;
            eprintln!(
                "portgate: {}: {} record(s) in {} file(s): {} added, {} replaced, {} unchanged, {} older than held, {} removed{} ({:.1} s)",
                r.path,
                r.records,
                r.files,
                r.added,
                r.replaced,
                r.unchanged,
                r.older,
                r.removed,
                if r.skipped > 0 {
                    format!(", {} about other ecosystems skipped", r.skipped)
                } else {
                    String::new()
                },
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })?;
    Ok(0)
}

fn list(format: ListFormat, db: DbArg) -> Result<u8, Failure> {
    let sets = crate::history::with_store(db.db.as_deref(), pipeline::datasets)?;
    let text = match format {
        ListFormat::Json => {
            let mut t = serde_json::to_string_pretty(&sets).unwrap_or_default();
            t.push('\n');
            t
        }
        ListFormat::Table => {
            let mut rows: Vec<Vec<String>> = vec![
                [
                    "DATASET",
                    "FORMAT",
                    "DATA DATE",
                    "RECORDS",
                    "IMPORTED",
                    "LAST FILE",
                ]
                .map(String::from)
                .to_vec(),
            ];
            for d in &sets {
                rows.push(vec![
                    d.name.clone(),
                    d.format.clone(),
                    d.date()
                        .map(|d| d.format("%Y-%m-%d").to_string())
                        .unwrap_or_else(|| "-".into()),
                    d.records.to_string(),
                    d.imported_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    d.path.clone().unwrap_or_else(|| "-".into()),
                ]);
            }
            let mut t = portgate_report::columns(&rows);
            if sets.is_empty() {
                t.push_str("(no data imported: see `portgate data import --help`)\n");
            }
            t
        }
    };
    crate::write_stdout(&text);
    Ok(0)
}
