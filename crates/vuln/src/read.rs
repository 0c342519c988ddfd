//! Reading input files within caps: every read is bounded, so a huge file, a gzip bomb or
//! an archive entry that lies about its size ends in [`VulnError::TooLarge`] instead of
//! exhausting memory.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::VulnError;

/// Caps on what an import reads. The defaults fit the real feeds with room to spare (an
/// NVD yearly feed is a few hundred MB uncompressed; an OSV record a few hundred KB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest NVD feed, after decompression: 1 GiB by default. The compressed file is
    /// held to the same cap.
    pub max_nvd_bytes: u64,
    /// Largest OSV record file or archive entry, after decompression: 16 MiB by default.
    pub max_osv_record_bytes: u64,
    /// Largest OSV archive (.zip) on disk: 2 GiB by default.
    pub max_osv_archive_bytes: u64,
    /// Most bytes read from all the records of one OSV archive or directory, after
    /// decompression: 4 GiB by default.
    pub max_osv_total_bytes: u64,
    /// Most `.json` files in one OSV archive or directory: 1,000,000 by default.
    pub max_osv_files: usize,
    /// Deepest directory level searched for OSV records below the one given: 8 by
    /// default.
    pub max_osv_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nvd_bytes: 1 << 30,
            max_osv_record_bytes: 16 << 20,
            max_osv_archive_bytes: 2 << 30,
            max_osv_total_bytes: 4 << 30,
            max_osv_files: 1_000_000,
            max_osv_depth: 8,
        }
    }
}

/// Reads at most `cap` bytes from `reader`; more is an error naming `path` and `what`.
pub(crate) fn read_to_cap(
    mut reader: impl Read,
    cap: u64,
    path: &str,
    what: &str,
) -> Result<Vec<u8>, VulnError> {
    let mut out = Vec::new();
    reader
        .by_ref()
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| VulnError::io(path, e))?;
    if out.len() as u64 > cap {
        return Err(VulnError::TooLarge {
            path: path.to_owned(),
            what: what.to_owned(),
            limit: cap,
        });
    }
    Ok(out)
}

/// Reads a file of at most `cap` bytes (checked before reading, then while reading).
pub(crate) fn read_file_capped(path: &Path, cap: u64) -> Result<Vec<u8>, VulnError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| VulnError::io(&shown, e))?;
    let meta = file.metadata().map_err(|e| VulnError::io(&shown, e))?;
    if meta.len() > cap {
        return Err(VulnError::TooLarge {
            path: shown,
            what: "the file".to_owned(),
            limit: cap,
        });
    }
    read_to_cap(file, cap, &shown, "the file")
}

/// The gzip magic number.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The zip local-file-header (or empty archive) magic number.
pub(crate) fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Decompresses gzip content (one or more members) up to `cap` bytes; other content is
/// returned as it is.
pub(crate) fn maybe_gunzip(bytes: Vec<u8>, cap: u64, path: &str) -> Result<Vec<u8>, VulnError> {
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    let decoder = flate2::read::MultiGzDecoder::new(bytes.as_slice());
    read_to_cap(decoder, cap, path, "the decompressed content").map_err(|e| match e {
        VulnError::Io { path, source } => {
            VulnError::format(path, format!("not a valid gzip stream: {source}"))
        }
        other => other,
    })
}

/// Parses `bytes` (the file `path`) as one JSON document of type `T`, with nothing after
/// it; `what` names the document in the error about trailing bytes.
pub(crate) fn json_document<T: serde::de::DeserializeOwned>(
    path: &str,
    bytes: &[u8],
    what: &str,
) -> Result<T, VulnError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| VulnError::json(path, e))?;
    de.end().map_err(|e| VulnError::Json {
        path: path.to_owned(),
        at: ".".to_owned(),
        line: e.line(),
        column: e.column(),
        message: format!("trailing characters after the {what}"),
    })?;
    Ok(value)
}
