//! `portgate data import`: vulnerability data read from the user's files into the history
//! database, where scans and checks find it.

use std::path::Path;

use chrono::{DateTime, Utc};
use portgate_store::Store;
use portgate_vuln::{ImportOptions, ImportReport};

use crate::Error;

/// What a vulnerability import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VulnFeed {
    /// NVD CVE feed files, format 2.0 (JSON or gzip).
    Nvd,
    /// OSV records of Debian and Ubuntu: a directory, a `.zip`, or one file.
    Osv,
}

/// Reads one file (or OSV directory or archive) and imports it into `store`: new records
/// added, newer copies replacing older ones, rejected or withdrawn ones removed; the same
/// file again changes nothing. `dataset_date` is the date the data is of, when known (else
/// its newest record's date is shown). A file with an error changes nothing and the error
/// names the file and the place.
pub async fn import_vulnerabilities(
    store: &Store,
    feed: VulnFeed,
    path: &Path,
    dataset_date: Option<DateTime<Utc>>,
) -> Result<ImportReport, Error> {
    let options = ImportOptions {
        dataset_date,
        ..ImportOptions::default()
    };
    let owned = path.to_owned();
    // Parsing a feed is CPU work of seconds: off the runtime's threads.
    let parsed = tokio::task::spawn_blocking(move || match feed {
        VulnFeed::Nvd => portgate_vuln::read_nvd_path(&owned, &options),
        VulnFeed::Osv => portgate_vuln::read_osv_path(&owned, &options),
    })
    .await
    .map_err(|e| Error::Input(format!("{}: the import stopped: {e}", path.display())))?
    .map_err(|e| Error::Input(e.to_string()))?;
    let format = match feed {
        VulnFeed::Nvd => "nvd-2.0",
        VulnFeed::Osv => "osv",
    };
    store
        .import_vulnerabilities(&parsed, format)
        .await
        .map_err(Error::history)
}

/// The datasets held (vulnerability sources and network tables), by name.
pub async fn datasets(store: &Store) -> Result<Vec<portgate_store::DatasetInfo>, Error> {
    store.datasets().await.map_err(Error::history)
}

/// What an ASN import read.
#[derive(Debug, Clone)]
pub struct AsnImport {
    /// The dataset's name in the store (`asn:<name>`).
    pub dataset: String,
    /// The format recognised.
    pub format: String,
    /// Rows of the file kept (before overlapping prefixes are made disjoint).
    pub rows: usize,
    /// Disjoint ranges stored.
    pub ranges: usize,
    /// Rows skipped: not routed (iptoasn AS 0) or without an AS number (MaxMind).
    pub skipped: u64,
    /// The date of the data, when the file or the user gave it.
    pub date: Option<DateTime<Utc>>,
}

/// Reads an IP-to-network table (iptoasn TSV, CAIDA prefix-to-AS, MaxMind GeoLite2-ASN
/// `.mmdb`; recognised by content) and keeps it in `store` as dataset `name`, replacing
/// an earlier import of that name. Nested prefixes are made disjoint (the most specific
/// wins), so a lookup is one ordered read.
pub async fn import_asn(
    store: &Store,
    path: &Path,
    name: Option<&str>,
    date: Option<DateTime<Utc>>,
) -> Result<AsnImport, Error> {
    use portgate_enrich::asn::{AsnLimits, load_path};
    let owned = path.to_owned();
    let dataset =
        tokio::task::spawn_blocking(move || load_path(&owned, None, &AsnLimits::default()))
            .await
            .map_err(|e| Error::Input(format!("{}: the import stopped: {e}", path.display())))?
            .map_err(|e| Error::Input(e.to_string()))?;
    let name = match name {
        Some(n)
            if !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            n.to_owned()
        }
        Some(n) => {
            return Err(Error::Input(format!(
                "--name {n:?}: a dataset name is letters, digits, '-', '_' and '.'"
            )));
        }
        None => dataset.format.to_string(),
    };
    let format = dataset.format.to_string();
    let date = date.or_else(|| {
        dataset
            .date
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    });
    let rows = dataset.ranges.len();
    let skipped = dataset.unrouted_rows + dataset.networks_without_asn;
    let table = dataset.into_table();
    let stored: Vec<portgate_store::AsnRow> = table
        .ranges()
        .iter()
        .map(|r| portgate_store::AsnRow {
            start: r.start_key(),
            end: r.end_key(),
            asns: r.asns.clone(),
            org: r.org.clone(),
            country: r.country.clone(),
        })
        .collect();
    store
        .import_asn(&name, &format, date, &path.display().to_string(), &stored)
        .await
        .map_err(Error::history)?;
    Ok(AsnImport {
        dataset: format!("asn:{name}"),
        format,
        rows,
        ranges: stored.len(),
        skipped,
        date,
    })
}
