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
