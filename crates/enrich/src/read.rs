//! Reading input files within caps, so a huge file or a gzip bomb ends in
//! [`EnrichError::TooLarge`] instead of exhausting memory.

use std::io::Read;
use std::path::Path;

use crate::error::EnrichError;

/// Reads at most `cap` bytes from `reader`; more is an error naming `origin` and
/// `what`.
pub(crate) fn read_to_cap(
    reader: impl Read,
    cap: u64,
    origin: &str,
    what: &str,
) -> Result<Vec<u8>, EnrichError> {
    let mut out = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| EnrichError::io(origin, e))?;
    if out.len() as u64 > cap {
        return Err(EnrichError::too_large(origin, what, format!("{cap} bytes")));
    }
    Ok(out)
}

/// Reads a file of at most `cap` bytes (checked before reading, then while reading).
pub(crate) fn read_file_capped(path: &Path, cap: u64) -> Result<Vec<u8>, EnrichError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| EnrichError::io(&shown, e))?;
    let meta = file.metadata().map_err(|e| EnrichError::io(&shown, e))?;
    if meta.is_dir() {
        return Err(EnrichError::format(&shown, "a directory, not a file"));
    }
    if meta.len() > cap {
        return Err(EnrichError::too_large(
            &shown,
            "the file",
            format!("{cap} bytes"),
        ));
    }
    read_to_cap(file, cap, &shown, "the file")
}

/// Decompresses gzip content up to `cap` bytes; other content is returned as it is.
pub(crate) fn maybe_gunzip(bytes: Vec<u8>, cap: u64, origin: &str) -> Result<Vec<u8>, EnrichError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let decoder = flate2::read::MultiGzDecoder::new(bytes.as_slice());
    read_to_cap(decoder, cap, origin, "the decompressed content").map_err(|e| match e {
        EnrichError::Io { path, source } => {
            EnrichError::format(path, format!("not a valid gzip stream: {source}"))
        }
        other => other,
    })
}

/// Parses `bytes` (from `origin`) as one JSON document of type `T`; the error names
/// the JSON path and the line and column.
pub(crate) fn json_document<T: serde::de::DeserializeOwned>(
    origin: &str,
    bytes: &[u8],
) -> Result<T, EnrichError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        json_error(origin, &at, &inner)
    })?;
    de.end().map_err(|e| json_error(origin, ".", &e))?;
    Ok(value)
}

/// A serde_json error as [`EnrichError::Json`], its position given apart.
pub(crate) fn json_error(origin: &str, at: &str, e: &serde_json::Error) -> EnrichError {
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    let at = if e.line() > 0 {
        format!("{at} (line {}, column {})", e.line(), e.column())
    } else {
        at.to_owned()
    };
    EnrichError::Json {
        origin: origin.to_owned(),
        at,
        message,
    }
}
