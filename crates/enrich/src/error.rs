//! Errors of the enrichment. Each says what was wrong and where: the file and line (and
//! field and value) of an imported table, or the URL or server of a lookup and what it
//! answered.

use std::time::Duration;

use thiserror::Error;

/// Longest value quoted in an error, in characters.
const MAX_QUOTED: usize = 200;

/// An error of a lookup or of an import.
#[derive(Debug, Error)]
pub enum EnrichError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file or an answer is larger than its cap.
    #[error("{origin}: {what} is larger than the cap of {limit}")]
    TooLarge {
        /// The file, URL or server.
        origin: String,
        /// What was too large ("the file", "the answer", "the rows" …).
        what: String,
        /// The cap, with its unit ("1048576 bytes", "5000000 rows").
        limit: String,
    },
    /// A line of a text table has a field that cannot be used.
    #[error("{path}:{line}: field {field} = {value:?}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// The line, 1-based.
        line: u64,
        /// The field's name.
        field: String,
        /// The value refused, cut to 200 characters (shown quoted, control characters
        /// escaped).
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A JSON document (a file or an answer) is not valid JSON, or a value in it has the
    /// wrong type or cannot be used.
    #[error("{origin}: at {at}: {message}")]
    Json {
        /// The file or URL.
        origin: String,
        /// Where in the document: a JSON path (`services[2][0]`), or `line L, column C`.
        at: String,
        /// What was wrong.
        message: String,
    },
    /// A file is not in the format expected, or its format cannot be told.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A server answered with an HTTP status other than 200.
    #[error("{url}: HTTP status {status}: {message}")]
    Http {
        /// The URL asked.
        url: String,
        /// The status it answered.
        status: u16,
        /// What the status means here, and the start of the body when it says more.
        message: String,
    },
    /// A request could not be made or its answer not read (connection refused, reset,
    /// TLS failure …).
    #[error("{target}: {message}")]
    Request {
        /// The URL or `host:port` asked.
        target: String,
        /// What failed.
        message: String,
    },
    /// A request or a lookup took longer than its time limit.
    #[error("{target}: no complete answer within {}", show_duration(*.after))]
    Timeout {
        /// The URL, `host:port` or name asked.
        target: String,
        /// The time limit.
        after: Duration,
    },
    /// A name or address given to a lookup cannot be looked up.
    #[error("{name:?}: {reason}")]
    Name {
        /// The name as given, cut to 200 characters (shown quoted, control characters
        /// escaped).
        name: String,
        /// Why it cannot be looked up.
        reason: String,
    },
    /// No RDAP service and no WHOIS server is known for the query.
    #[error("{query}: {message}")]
    NoServer {
        /// The domain or address.
        query: String,
        /// Which tables were searched.
        message: String,
    },
    /// The registry says the domain or address is not registered.
    #[error("{query}: not registered according to {server}")]
    NotFound {
        /// The domain or address.
        query: String,
        /// The URL or WHOIS server that said so.
        server: String,
    },
    /// The DNS resolver could not be set up.
    #[error("DNS resolver: {message}")]
    Resolver {
        /// What failed.
        message: String,
    },
}

impl EnrichError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        EnrichError::Io {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn line(
        path: &str,
        line: u64,
        field: &str,
        value: &str,
        reason: impl Into<String>,
    ) -> Self {
        EnrichError::Line {
            path: path.to_owned(),
            line,
            field: field.to_owned(),
            value: quote(value),
            reason: reason.into(),
        }
    }

    pub(crate) fn format(path: impl std::fmt::Display, message: impl Into<String>) -> Self {
        EnrichError::Format {
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn name(name: &str, reason: impl Into<String>) -> Self {
        EnrichError::Name {
            name: quote(name),
            reason: reason.into(),
        }
    }

    pub(crate) fn too_large(
        origin: impl std::fmt::Display,
        what: &str,
        limit: impl std::fmt::Display,
    ) -> Self {
        EnrichError::TooLarge {
            origin: origin.to_string(),
            what: what.to_owned(),
            limit: limit.to_string(),
        }
    }
}

/// A value as kept in an error: cut to 200 characters. Errors show it with `{:?}`,
/// quoted and with control characters escaped.
pub(crate) fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let mut out: String = chars.by_ref().take(MAX_QUOTED).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// `2s`, `500ms`, `1.5s`.
pub(crate) fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
