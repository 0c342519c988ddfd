//! Errors of the import and of the product table. Each says what was wrong and where:
//! the file (an archive's entry as `archive.zip!entry.json`), the place in it (a JSON
//! path with line and column, or a record id and a field), and the value refused.

use thiserror::Error;

/// An error importing vulnerability data or loading the product table.
#[derive(Debug, Error)]
pub enum VulnError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file (or its decompressed content) is larger than the cap for its kind.
    #[error("{path}: {what} is larger than the cap of {limit} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// What was too large ("the file", "the decompressed content", "the archive's
        /// entries together" …).
        what: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// A file is not valid JSON, or a value has the wrong type.
    #[error("{path}: at {at} (line {line}, column {column}): {message}")]
    Json {
        /// The file.
        path: String,
        /// The JSON path of the value (`vulnerabilities[3].cve.published`, `.` for the
        /// top level).
        at: String,
        /// Line of the error, 1-based (0 when unknown).
        line: usize,
        /// Column of the error, 1-based (0 when unknown).
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// A record parsed as JSON but one of its fields has a value that cannot be used.
    #[error("{path}: record {record}: field {field} = {value:?}: {reason}")]
    Record {
        /// The file.
        path: String,
        /// The record's id (a CVE id or an OSV id), or its position when it has none.
        record: String,
        /// The field's path inside the record.
        field: String,
        /// The value refused (cut to 200 characters).
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The file is not what the import expects (not gzip, not a zip archive, not an NVD
    /// feed, too many entries …).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The product table is invalid.
    #[error("product table {origin}: {message}")]
    Products {
        /// Where the table came from.
        origin: String,
        /// What was wrong.
        message: String,
    },
}

impl VulnError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        VulnError::Io {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn format(path: impl std::fmt::Display, message: impl Into<String>) -> Self {
        VulnError::Format {
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn record(
        path: &str,
        record: &str,
        field: impl Into<String>,
        value: &str,
        reason: impl Into<String>,
    ) -> Self {
        VulnError::Record {
            path: path.to_owned(),
            record: record.chars().take(200).collect(),
            field: field.into(),
            value: value.chars().take(200).collect(),
            reason: reason.into(),
        }
    }

    pub(crate) fn json(path: &str, err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let at = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = (inner.line(), inner.column());
        // serde_json appends " at line L column C"; the position is reported on its own.
        let mut message = inner.to_string();
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        VulnError::Json {
            path: path.to_owned(),
            at,
            line,
            column,
            message,
        }
    }
}
