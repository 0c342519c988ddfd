//! The vulnerability index: imported NVD CVEs and OSV records, with the maps that make a
//! lookup touch only the entries of the product asked about.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::VulnError;
use crate::nvd::{self, NvdCve, NvdItem};
use crate::osv::{self, OsvItem, OsvRecord};
use crate::read::{Limits, is_zip, maybe_gunzip, read_file_capped, read_to_cap};

/// The serialized index's format version.
const FORMAT: u32 = 1;

/// Where data came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// NVD CVE records (feed format 2.0).
    Nvd,
    /// OSV records of Debian and Ubuntu.
    Osv,
}

impl Source {
    /// `nvd` or `osv`, as a store keeps it.
    pub fn key(&self) -> &'static str {
        match self {
            Source::Nvd => "nvd",
            Source::Osv => "osv",
        }
    }

    /// The source of a [`Source::key`].
    pub fn from_key(key: &str) -> Option<Source> {
        match key {
            "nvd" => Some(Source::Nvd),
            "osv" => Some(Source::Osv),
            _ => None,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Nvd => "NVD",
            Source::Osv => "OSV",
        })
    }
}

/// How recent one source's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataDate {
    /// The newest `lastModified` (NVD) or `modified` (OSV) among the records imported.
    pub newest_record: Option<DateTime<Utc>>,
    /// The date of the dataset, when the import was told it.
    pub dataset: Option<DateTime<Utc>>,
}

impl DataDate {
    /// The dataset's date if given, else the newest record's.
    pub fn effective(&self) -> Option<DateTime<Utc>> {
        self.dataset.or(self.newest_record)
    }

    fn saw(&mut self, t: DateTime<Utc>) {
        if self.newest_record.is_none_or(|n| t > n) {
            self.newest_record = Some(t);
        }
    }

    fn dataset_is(&mut self, t: Option<DateTime<Utc>>) {
        if let Some(t) = t
            && self.dataset.is_none_or(|d| t > d)
        {
            self.dataset = Some(t);
        }
    }
}

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Caps on what is read.
    pub limits: Limits,
    /// The dataset's date (when it was downloaded or published), reported with matches
    /// instead of the newest record's date. The newest given is kept.
    pub dataset_date: Option<DateTime<Utc>>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The file, archive or directory imported.
    pub path: String,
    /// Files read (archive entries and directory files count one each).
    pub files: usize,
    /// Records read.
    pub records: usize,
    /// Records new to the index.
    pub added: usize,
    /// Records that replaced an older copy (same id, newer modification date).
    pub replaced: usize,
    /// Records already held with the same modification date: left as they were.
    pub unchanged: usize,
    /// Records older than the copy held: ignored.
    pub older: usize,
    /// Records removed because they were rejected (NVD) or withdrawn (OSV).
    pub removed: usize,
    /// OSV records about no Debian or Ubuntu package: not kept.
    pub skipped: usize,
}

/// Counts and dates of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStats {
    /// CVEs from NVD.
    pub nvd_cves: usize,
    /// Their `cpeMatch` entries.
    pub nvd_cpe_matches: usize,
    /// Distinct `vendor:product` pairs marked vulnerable.
    pub nvd_products: usize,
    /// OSV records.
    pub osv_records: usize,
    /// Distinct source packages named by them.
    pub osv_packages: usize,
    /// The ecosystems named by them (`Debian:12`, `Ubuntu:22.04:LTS` …).
    pub osv_ecosystems: Vec<String>,
    /// How recent the NVD data is.
    pub nvd_date: DataDate,
    /// How recent the OSV data is.
    pub osv_date: DataDate,
}

/// Imported vulnerability data and its lookup maps. Serialize it (serde) to keep it;
/// deserializing rebuilds the maps.
#[derive(Debug, Clone, Default)]
pub struct VulnIndex {
    pub(crate) nvd: BTreeMap<String, NvdCve>,
    pub(crate) osv: BTreeMap<String, OsvRecord>,
    pub(crate) nvd_date: DataDate,
    pub(crate) osv_date: DataDate,
    /// `vendor:product` → CVE ids with a vulnerable application entry for it.
    pub(crate) by_cpe: HashMap<String, BTreeSet<String>>,
    /// CPE product (without vendor) → `vendor:product` keys, for guesses by name.
    pub(crate) by_cpe_product: HashMap<String, BTreeSet<String>>,
    /// Source package name → OSV record ids naming it.
    pub(crate) osv_by_package: HashMap<String, BTreeSet<String>>,
}

impl VulnIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts and dates.
    pub fn stats(&self) -> IndexStats {
        let mut ecosystems: BTreeSet<&str> = BTreeSet::new();
        for r in self.osv.values() {
            for a in &r.affected {
                ecosystems.insert(&a.ecosystem);
            }
        }
        IndexStats {
            nvd_cves: self.nvd.len(),
            nvd_cpe_matches: self.nvd.values().map(NvdCve::cpe_match_count).sum(),
            nvd_products: self.by_cpe.len(),
            osv_records: self.osv.len(),
            osv_packages: self.osv_by_package.len(),
            osv_ecosystems: ecosystems.into_iter().map(str::to_owned).collect(),
            nvd_date: self.nvd_date,
            osv_date: self.osv_date,
        }
    }

    /// The date of one source's data (see [`DataDate`]).
    pub fn data_date(&self, source: Source) -> DataDate {
        match source {
            Source::Nvd => self.nvd_date,
            Source::Osv => self.osv_date,
        }
    }

    // ---- NVD --------------------------------------------------------------------------

    /// Imports an NVD 2.0 feed file, plain JSON or gzip (recognised by its content), of at
    /// most [`Limits::max_nvd_bytes`] before and after decompression. A CVE already held is
    /// replaced only by a copy with a newer `lastModified`; a `Rejected` CVE is removed.
    /// Nothing is changed when the file has an error.
    pub fn import_nvd_path(
        &mut self,
        path: &Path,
        options: &ImportOptions,
    ) -> Result<ImportReport, VulnError> {
        let bytes = read_file_capped(path, options.limits.max_nvd_bytes)?;
        self.import_nvd_bytes(&path.display().to_string(), bytes, options)
    }

    /// Imports an NVD 2.0 feed held in memory (plain or gzip); `name` names it in errors.
    pub fn import_nvd_bytes(
        &mut self,
        name: &str,
        bytes: Vec<u8>,
        options: &ImportOptions,
    ) -> Result<ImportReport, VulnError> {
        let items = read_nvd_items(name, bytes, &options.limits)?;
        let mut report = ImportReport {
            path: name.to_owned(),
            files: 1,
            records: items.len(),
            ..ImportReport::default()
        };
        for item in items {
            self.apply_nvd(item, &mut report);
        }
        self.nvd_date.dataset_is(options.dataset_date);
        Ok(report)
    }

    fn apply_nvd(&mut self, item: NvdItem, report: &mut ImportReport) {
        match item {
            NvdItem::Rejected { id, last_modified } => {
                self.nvd_date.saw(last_modified);
                match self.nvd.get(&id) {
                    Some(old) if old.last_modified > last_modified => report.older += 1,
                    Some(_) => {
                        self.remove_nvd(&id);
                        report.removed += 1;
                    }
                    None => report.unchanged += 1,
                }
            }
            NvdItem::Cve(cve) => {
                self.nvd_date.saw(cve.last_modified);
                match self.nvd.get(&cve.id) {
                    Some(old) if old.last_modified > cve.last_modified => report.older += 1,
                    Some(old) if old.last_modified == cve.last_modified => report.unchanged += 1,
                    Some(_) => {
                        self.remove_nvd(&cve.id);
                        self.insert_nvd(*cve);
                        report.replaced += 1;
                    }
                    None => {
                        self.insert_nvd(*cve);
                        report.added += 1;
                    }
                }
            }
        }
    }

    pub(crate) fn insert_nvd(&mut self, cve: NvdCve) {
        for key in cve.vulnerable_keys() {
            if let Some((_, product)) = key.split_once(':') {
                self.by_cpe_product
                    .entry(product.to_owned())
                    .or_default()
                    .insert(key.clone());
            }
            self.by_cpe.entry(key).or_default().insert(cve.id.clone());
        }
        self.nvd.insert(cve.id.clone(), cve);
    }

    fn remove_nvd(&mut self, id: &str) {
        let Some(old) = self.nvd.remove(id) else {
            return;
        };
        for key in old.vulnerable_keys() {
            let now_empty = self.by_cpe.get_mut(&key).is_some_and(|ids| {
                ids.remove(id);
                ids.is_empty()
            });
            if now_empty {
                self.by_cpe.remove(&key);
                if let Some((_, product)) = key.split_once(':') {
                    let gone = self.by_cpe_product.get_mut(product).is_some_and(|keys| {
                        keys.remove(&key);
                        keys.is_empty()
                    });
                    if gone {
                        self.by_cpe_product.remove(product);
                    }
                }
            }
        }
    }

    // ---- OSV --------------------------------------------------------------------------

    /// Imports OSV records from a directory of `.json` files (searched
    /// [`Limits::max_osv_depth`] levels down, symbolic links to directories not followed),
    /// a `.zip` archive of them, or a single `.json` (or gzip) file. Only Debian and
    /// Ubuntu entries are kept. A record already held is replaced only by a copy with a
    /// newer `modified`; a withdrawn record is removed. Nothing is changed when a file has
    /// an error.
    pub fn import_osv_path(
        &mut self,
        path: &Path,
        options: &ImportOptions,
    ) -> Result<ImportReport, VulnError> {
        let (items, files) = read_osv_items(path, &options.limits)?;
        let mut report = ImportReport {
            path: path.display().to_string(),
            files,
            ..ImportReport::default()
        };
        self.apply_osv_items(items, &mut report);
        self.osv_date.dataset_is(options.dataset_date);
        Ok(report)
    }

    /// Imports OSV records held in memory: a `.zip` archive, a record, or an array of
    /// records (plain or gzip); `name` names it in errors.
    pub fn import_osv_bytes(
        &mut self,
        name: &str,
        bytes: Vec<u8>,
        options: &ImportOptions,
    ) -> Result<ImportReport, VulnError> {
        let limits = &options.limits;
        let mut report = ImportReport {
            path: name.to_owned(),
            ..ImportReport::default()
        };
        let mut items = Vec::new();
        if is_zip(&bytes) {
            if bytes.len() as u64 > limits.max_osv_archive_bytes {
                return Err(VulnError::TooLarge {
                    path: name.to_owned(),
                    what: "the archive".to_owned(),
                    limit: limits.max_osv_archive_bytes,
                });
            }
            report.files = read_zip(std::io::Cursor::new(bytes), name, limits, &mut items)?;
        } else {
            if bytes.len() as u64 > limits.max_osv_record_bytes {
                return Err(VulnError::TooLarge {
                    path: name.to_owned(),
                    what: "the file".to_owned(),
                    limit: limits.max_osv_record_bytes,
                });
            }
            let bytes = maybe_gunzip(bytes, limits.max_osv_record_bytes, name)?;
            items = osv::parse_file(name, &bytes)?;
            report.files = 1;
        }
        self.apply_osv_items(items, &mut report);
        self.osv_date.dataset_is(options.dataset_date);
        Ok(report)
    }

    fn apply_osv_items(&mut self, items: Vec<OsvItem>, report: &mut ImportReport) {
        report.records += items.len();
        for item in items {
            match item {
                OsvItem::Skipped => report.skipped += 1,
                OsvItem::Withdrawn { id, modified } => {
                    self.osv_date.saw(modified);
                    match self.osv.get(&id) {
                        Some(old) if old.modified > modified => report.older += 1,
                        Some(_) => {
                            self.remove_osv(&id);
                            report.removed += 1;
                        }
                        None => report.unchanged += 1,
                    }
                }
                OsvItem::Record(record) => {
                    self.osv_date.saw(record.modified);
                    match self.osv.get(&record.id) {
                        Some(old) if old.modified > record.modified => report.older += 1,
                        Some(old) if old.modified == record.modified => report.unchanged += 1,
                        Some(_) => {
                            self.remove_osv(&record.id);
                            self.insert_osv(*record);
                            report.replaced += 1;
                        }
                        None => {
                            self.insert_osv(*record);
                            report.added += 1;
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn insert_osv(&mut self, record: OsvRecord) {
        for a in &record.affected {
            self.osv_by_package
                .entry(a.package.clone())
                .or_default()
                .insert(record.id.clone());
        }
        self.osv.insert(record.id.clone(), record);
    }

    fn remove_osv(&mut self, id: &str) {
        let Some(old) = self.osv.remove(id) else {
            return;
        };
        for a in &old.affected {
            let gone = self.osv_by_package.get_mut(&a.package).is_some_and(|ids| {
                ids.remove(id);
                ids.is_empty()
            });
            if gone {
                self.osv_by_package.remove(&a.package);
            }
        }
    }
}

/// Reads the OSV items of a directory, a `.zip` archive or one file, and how many files
/// held them.
pub(crate) fn read_osv_items(
    path: &Path,
    limits: &Limits,
) -> Result<(Vec<OsvItem>, usize), VulnError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| VulnError::io(&shown, e))?;
    let mut items = Vec::new();
    let mut count = 0usize;
    if meta.is_dir() {
        let mut files = Vec::new();
        collect_json_files(path, 0, limits, &mut files)?;
        files.sort();
        let mut total = 0u64;
        for file in &files {
            let bytes = read_file_capped(file, limits.max_osv_record_bytes)?;
            total += bytes.len() as u64;
            if total > limits.max_osv_total_bytes {
                return Err(VulnError::TooLarge {
                    path: shown,
                    what: "the directory's records together".to_owned(),
                    limit: limits.max_osv_total_bytes,
                });
            }
            let name = file.display().to_string();
            let bytes = maybe_gunzip(bytes, limits.max_osv_record_bytes, &name)?;
            items.extend(osv::parse_file(&name, &bytes)?);
            count += 1;
        }
    } else {
        let mut file = std::fs::File::open(path).map_err(|e| VulnError::io(&shown, e))?;
        let mut magic = [0u8; 4];
        let n = std::io::Read::read(&mut file, &mut magic).map_err(|e| VulnError::io(&shown, e))?;
        if is_zip(&magic[..n]) {
            if meta.len() > limits.max_osv_archive_bytes {
                return Err(VulnError::TooLarge {
                    path: shown,
                    what: "the archive".to_owned(),
                    limit: limits.max_osv_archive_bytes,
                });
            }
            count = read_zip(file, &shown, limits, &mut items)?;
        } else {
            drop(file);
            let bytes = read_file_capped(path, limits.max_osv_record_bytes)?;
            let bytes = maybe_gunzip(bytes, limits.max_osv_record_bytes, &shown)?;
            items = osv::parse_file(&shown, &bytes)?;
            count = 1;
        }
    }
    Ok((items, count))
}

/// Reads the items of an NVD feed held in memory (plain or gzip).
pub(crate) fn read_nvd_items(
    name: &str,
    bytes: Vec<u8>,
    limits: &Limits,
) -> Result<Vec<NvdItem>, VulnError> {
    let cap = limits.max_nvd_bytes;
    if bytes.len() as u64 > cap {
        return Err(VulnError::TooLarge {
            path: name.to_owned(),
            what: "the file".to_owned(),
            limit: cap,
        });
    }
    let bytes = maybe_gunzip(bytes, cap, name)?;
    nvd::parse_feed(name, &bytes)
}

fn collect_json_files(
    dir: &Path,
    depth: usize,
    limits: &Limits,
    out: &mut Vec<std::path::PathBuf>,
) -> Result<(), VulnError> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| VulnError::io(&shown, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| VulnError::io(&shown, e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| VulnError::io(path.display(), e))?;
        if kind.is_dir() {
            if depth < limits.max_osv_depth {
                collect_json_files(&path, depth + 1, limits, out)?;
            }
            continue;
        }
        let is_json = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".json") || n.ends_with(".json.gz"));
        let is_file = kind.is_file() || (kind.is_symlink() && path.is_file());
        if is_json && is_file {
            if out.len() >= limits.max_osv_files {
                return Err(VulnError::format(
                    &shown,
                    format!("more than {} .json files", limits.max_osv_files),
                ));
            }
            out.push(path);
        }
    }
    Ok(())
}

/// Reads the `.json` entries of an OSV archive; returns how many were read.
fn read_zip<R: std::io::Read + std::io::Seek>(
    reader: R,
    shown: &str,
    limits: &Limits,
    items: &mut Vec<OsvItem>,
) -> Result<usize, VulnError> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| VulnError::format(shown, format!("not a readable zip archive: {e}")))?;
    let mut total = 0u64;
    let mut files = 0usize;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| VulnError::format(shown, format!("entry #{i} cannot be read: {e}")))?;
        let entry_name = entry
            .name()
            .map_err(|e| VulnError::format(shown, format!("entry #{i} has no readable name: {e}")))?
            .into_owned();
        if entry.is_dir() || !entry_name.ends_with(".json") {
            continue;
        }
        files += 1;
        if files > limits.max_osv_files {
            return Err(VulnError::format(
                shown,
                format!("more than {} .json entries", limits.max_osv_files),
            ));
        }
        let name = format!("{shown}!{entry_name}");
        let bytes = read_to_cap(&mut entry, limits.max_osv_record_bytes, &name, "the entry")
            .map_err(|e| match e {
                VulnError::Io { path, source } => {
                    VulnError::format(path, format!("cannot be decompressed: {source}"))
                }
                other => other,
            })?;
        total += bytes.len() as u64;
        if total > limits.max_osv_total_bytes {
            return Err(VulnError::TooLarge {
                path: shown.to_owned(),
                what: "the archive's entries together".to_owned(),
                limit: limits.max_osv_total_bytes,
            });
        }
        items.extend(osv::parse_file(&name, &bytes)?);
    }
    Ok(files)
}

// ---- serialization --------------------------------------------------------------------

struct ValuesOf<'a, T>(&'a BTreeMap<String, T>);

impl<T: Serialize> Serialize for ValuesOf<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values())
    }
}

impl Serialize for VulnIndex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("VulnIndex", 5)?;
        st.serialize_field("format", &FORMAT)?;
        st.serialize_field("nvd_date", &self.nvd_date)?;
        st.serialize_field("osv_date", &self.osv_date)?;
        st.serialize_field("nvd", &ValuesOf(&self.nvd))?;
        st.serialize_field("osv", &ValuesOf(&self.osv))?;
        st.end()
    }
}

#[derive(Deserialize)]
struct Stored {
    format: u32,
    nvd_date: DataDate,
    osv_date: DataDate,
    nvd: Vec<NvdCve>,
    osv: Vec<OsvRecord>,
}

impl<'de> Deserialize<'de> for VulnIndex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        if stored.format != FORMAT {
            return Err(D::Error::custom(format!(
                "vulnerability index format {} is not the supported format {FORMAT}",
                stored.format
            )));
        }
        let mut index = VulnIndex {
            nvd_date: stored.nvd_date,
            osv_date: stored.osv_date,
            ..VulnIndex::default()
        };
        for cve in stored.nvd {
            index.insert_nvd(cve);
        }
        for record in stored.osv {
            index.insert_osv(record);
        }
        Ok(index)
    }
}
