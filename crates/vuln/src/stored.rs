//! The index kept in a database: imports read into per-record rows, and a small
//! [`VulnIndex`] built from the rows one lookup needs.
//!
//! A store keeps each NVD CVE and OSV record as one row (its id, its `lastModified` /
//! `modified` and its body) with the lookup keys it answers to:
//!
//! * `cpe:vendor:product` and `cpeprod:product` for each vulnerable application CPE of a
//!   CVE;
//! * `pkg:name` for each source package an OSV record names.
//!
//! [`lookup_keys`] gives the keys a lookup of a product, version and banner reads; the
//! store fetches the rows holding any of them and [`VulnIndex::from_stored`] makes an index
//! of just those, which answers that lookup exactly as the whole index would.

use std::path::Path;

use chrono::{DateTime, Utc};

use crate::banner::parse_banner;
use crate::error::VulnError;
use crate::index::{DataDate, ImportOptions, Source, VulnIndex, read_nvd_items, read_osv_items};
use crate::nvd::{NvdCve, NvdItem};
use crate::osv::{OsvItem, OsvRecord};
use crate::products::ProductTable;
use crate::read::read_file_capped;

/// Version of the row bodies' format; a store refuses rows of another one.
pub const BODY_FORMAT: u32 = 1;

/// One record as a store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// NVD or OSV.
    pub source: Source,
    /// `CVE-…` or the OSV id.
    pub id: String,
    /// `lastModified` (NVD) or `modified` (OSV).
    pub modified: DateTime<Utc>,
    /// The lookup keys it answers to (see the module documentation).
    pub keys: Vec<String>,
    /// The record in the index's own JSON form ([`BODY_FORMAT`]).
    pub body: String,
}

/// What an import file says about one record.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordChange {
    /// Add the record, or replace an older copy.
    Put(StoredRecord),
    /// Remove the record (NVD `Rejected`, OSV `withdrawn`) unless the copy held is newer.
    Remove {
        /// NVD or OSV.
        source: Source,
        /// The record id.
        id: String,
        /// When it was rejected or withdrawn.
        modified: DateTime<Utc>,
    },
}

impl RecordChange {
    /// The record's id.
    pub fn id(&self) -> &str {
        match self {
            RecordChange::Put(r) => &r.id,
            RecordChange::Remove { id, .. } => id,
        }
    }

    /// Its modification time.
    pub fn modified(&self) -> DateTime<Utc> {
        match self {
            RecordChange::Put(r) => r.modified,
            RecordChange::Remove { modified, .. } => *modified,
        }
    }
}

/// The records of one import path, ready for a store.
#[derive(Debug, Clone)]
pub struct ParsedImport {
    /// NVD or OSV.
    pub source: Source,
    /// The path as given.
    pub path: String,
    /// Files read.
    pub files: usize,
    /// Records about no Debian or Ubuntu package (OSV), left out.
    pub skipped: usize,
    /// One change per record, in file order.
    pub changes: Vec<RecordChange>,
    /// The newest record's time.
    pub newest_record: Option<DateTime<Utc>>,
    /// The dataset date the import was told.
    pub dataset_date: Option<DateTime<Utc>>,
}

/// Reads an NVD 2.0 feed file (plain or gzip) into rows. Either the whole file is read or
/// the error names the file and the place.
pub fn read_nvd_path(path: &Path, options: &ImportOptions) -> Result<ParsedImport, VulnError> {
    let name = path.display().to_string();
    let bytes = read_file_capped(path, options.limits.max_nvd_bytes)?;
    let items = read_nvd_items(&name, bytes, &options.limits)?;
    let mut changes = Vec::with_capacity(items.len());
    for item in items {
        changes.push(match item {
            NvdItem::Cve(cve) => RecordChange::Put(nvd_row(&cve, &name)?),
            NvdItem::Rejected { id, last_modified } => RecordChange::Remove {
                source: Source::Nvd,
                id,
                modified: last_modified,
            },
        });
    }
    Ok(parsed(Source::Nvd, name, 1, 0, changes, options))
}

/// Reads OSV records (a directory, a `.zip` or one file) into rows; records about no
/// Debian or Ubuntu package are counted in `skipped`.
pub fn read_osv_path(path: &Path, options: &ImportOptions) -> Result<ParsedImport, VulnError> {
    let name = path.display().to_string();
    let (items, files) = read_osv_items(path, &options.limits)?;
    let mut changes = Vec::with_capacity(items.len());
    let mut skipped = 0;
    for item in items {
        match item {
            OsvItem::Skipped => skipped += 1,
            OsvItem::Withdrawn { id, modified } => changes.push(RecordChange::Remove {
                source: Source::Osv,
                id,
                modified,
            }),
            OsvItem::Record(record) => changes.push(RecordChange::Put(osv_row(&record, &name)?)),
        }
    }
    Ok(parsed(Source::Osv, name, files, skipped, changes, options))
}

fn parsed(
    source: Source,
    path: String,
    files: usize,
    skipped: usize,
    changes: Vec<RecordChange>,
    options: &ImportOptions,
) -> ParsedImport {
    let newest_record = changes.iter().map(RecordChange::modified).max();
    ParsedImport {
        source,
        path,
        files,
        skipped,
        changes,
        newest_record,
        dataset_date: options.dataset_date,
    }
}

fn nvd_row(cve: &NvdCve, file: &str) -> Result<StoredRecord, VulnError> {
    let mut keys = Vec::new();
    for key in cve.vulnerable_keys() {
        if let Some((_, product)) = key.split_once(':') {
            keys.push(format!("cpeprod:{product}"));
        }
        keys.push(format!("cpe:{key}"));
    }
    keys.sort();
    keys.dedup();
    Ok(StoredRecord {
        source: Source::Nvd,
        id: cve.id.clone(),
        modified: cve.last_modified,
        keys,
        body: serde_json::to_string(cve).map_err(|e| VulnError::format(file, e.to_string()))?,
    })
}

fn osv_row(record: &OsvRecord, file: &str) -> Result<StoredRecord, VulnError> {
    let mut keys: Vec<String> = record
        .affected
        .iter()
        .map(|a| format!("pkg:{}", a.package))
        .collect();
    keys.sort();
    keys.dedup();
    Ok(StoredRecord {
        source: Source::Osv,
        id: record.id.clone(),
        modified: record.modified,
        keys,
        body: serde_json::to_string(record).map_err(|e| VulnError::format(file, e.to_string()))?,
    })
}

/// The keys whose rows a lookup of `product` at `version` (and `banner`) reads, with the
/// built-in product table. Empty when there is nothing to look up.
pub fn lookup_keys(product: &str, version: &str, banner: Option<&str>) -> Vec<String> {
    lookup_keys_with(ProductTable::builtin(), product, version, banner)
}

/// Like [`lookup_keys`], with another product table.
pub fn lookup_keys_with(
    table: &ProductTable,
    product: &str,
    version: &str,
    banner: Option<&str>,
) -> Vec<String> {
    let banner_info = banner.map(parse_banner).unwrap_or_default();
    let product = if product.trim().is_empty() {
        banner_info.product.as_deref().unwrap_or_default()
    } else {
        product
    };
    if product.trim().is_empty() {
        return Vec::new();
    }
    let version = if version.trim().is_empty() {
        banner_info.version.as_deref().unwrap_or_default()
    } else {
        version
    };
    let mut keys = Vec::new();
    match table.get(product) {
        Some(entry) => {
            keys.extend(entry.cpes.iter().map(|c| format!("cpe:{c}")));
            if let Some(v) = entry.normalize_version(version) {
                for packaging in [&entry.debian, &entry.ubuntu].into_iter().flatten() {
                    keys.extend(
                        packaging
                            .source_names(&v.full)
                            .into_iter()
                            .map(|n| format!("pkg:{n}")),
                    );
                }
            }
        }
        None => {
            let guess = product.trim().to_lowercase().replace([' ', '-'], "_");
            keys.push(format!("cpeprod:{}", guess.replace('_', "-")));
            keys.push(format!("cpeprod:{guess}"));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

impl VulnIndex {
    /// An index of the given rows (those a lookup's [`lookup_keys`] found, or all), with
    /// the data dates the store keeps. A row of another body format, or that does not
    /// parse, is an error naming it.
    pub fn from_stored(
        records: impl IntoIterator<Item = StoredRecord>,
        nvd_date: DataDate,
        osv_date: DataDate,
    ) -> Result<VulnIndex, VulnError> {
        let mut index = VulnIndex {
            nvd_date,
            osv_date,
            ..VulnIndex::default()
        };
        for r in records {
            let place = format!("stored {} record {}", r.source, r.id);
            match r.source {
                Source::Nvd => {
                    let cve: NvdCve = serde_json::from_str(&r.body)
                        .map_err(|e| VulnError::format(&place, e.to_string()))?;
                    index.insert_nvd(cve);
                }
                Source::Osv => {
                    let record: OsvRecord = serde_json::from_str(&r.body)
                        .map_err(|e| VulnError::format(&place, e.to_string()))?;
                    index.insert_osv(record);
                }
            }
        }
        Ok(index)
    }
}
