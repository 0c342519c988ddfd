//! portgate's vulnerability matching: a product and version the detector found (and,
//! when there is one, the banner it came from) against known vulnerabilities imported
//! from local files, with an honest confidence.
//!
//! Nothing here touches the network: the user downloads the data and imports the files.
//!
//! * [`VulnIndex::import_nvd_path`] reads NVD CVE feeds (format 2.0, JSON or gzip).
//! * [`VulnIndex::import_osv_path`] reads OSV records of Debian and Ubuntu (a directory
//!   of `.json` files, a `.zip` of them, or one file).
//! * [`VulnIndex::lookup`] answers `(product, version, banner)` with [`VulnMatch`]es;
//!   [`VulnIndex::assess`] gives the whole [`Assessment`].
//! * The [`ProductTable`] (`data/products.toml`, built in) maps the detector's product
//!   names to NVD CPEs and to the distributions' source packages.
//!
//! The [`matcher`] module documents how a match is decided and what each
//! [`Confidence`] means; [`version`] documents the version orderings; [`banner`] the
//! banners understood.
//!
//! ```
//! use portgate_vuln::{Confidence, ImportOptions, VulnIndex};
//!
//! let feed = r#"{"vulnerabilities": [{"cve": {
//!     "id": "CVE-2024-6387", "lastModified": "2024-07-01T13:15:06.467",
//!     "configurations": [{"nodes": [{"operator": "OR", "cpeMatch": [
//!         {"vulnerable": true, "criteria": "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*",
//!          "versionStartIncluding": "8.5p1", "versionEndExcluding": "9.8p1"}]}]}]}}]}"#;
//! let mut index = VulnIndex::new();
//! index.import_nvd_bytes("feed.json", feed.as_bytes().to_vec(), &ImportOptions::default())?;
//! let found = index.lookup("OpenSSH", "", Some("SSH-2.0-OpenSSH_9.6"));
//! assert_eq!(found[0].cve, "CVE-2024-6387");
//! assert_eq!(found[0].confidence, Confidence::UpstreamVersion);
//! assert!(index.lookup("OpenSSH", "9.8p1", None).is_empty());
//! # Ok::<(), portgate_vuln::VulnError>(())
//! ```
//!
//! # Input is hostile
//!
//! Every read is capped ([`Limits`]: 1 GiB for an NVD feed after decompression, 16 MiB
//! for an OSV record, 2 GiB for an OSV archive, 4 GiB and 1,000,000 files for all the
//! records of one archive or directory), and no input makes this crate panic. An import
//! either takes a whole file or changes nothing, and its error names the file, the place
//! (JSON path, line and column, or record id and field) and the value refused.

pub mod banner;
pub mod cpe;
mod error;
mod index;
pub mod matcher;
mod nvd;
mod osv;
pub mod products;
mod read;
pub mod stored;
mod synth;
mod time;
pub mod version;

pub use banner::{BannerInfo, DistroFamily, DistroHint, parse_banner};
pub use error::VulnError;
pub use index::{DataDate, ImportOptions, ImportReport, IndexStats, Source, VulnIndex};
pub use matcher::{
    AdvisoryFix, Assessment, Confidence, DistroClearance, Evidence, SourceDate, VulnMatch,
};
pub use nvd::Cvss;
pub use products::{DistroPackaging, NormalizedVersion, ProductEntry, ProductTable, VersionScheme};
pub use read::Limits;
pub use stored::{
    ParsedImport, RecordChange, StoredRecord, lookup_keys, read_nvd_path, read_osv_path,
};
pub use synth::synthetic_nvd_feed;
pub use version::{compare_dpkg, compare_upstream};
