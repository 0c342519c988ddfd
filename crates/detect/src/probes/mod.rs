//! The probe database and the detection engine.
//!
//! A [`ProbeDb`] is a list of probes loaded from TOML (the built-in `data/probes.toml`,
//! optionally extended with a file of the same format, see [`ProbeDb::from_file`]). Each
//! probe is a payload to send on a fresh TCP connection and a list of regular expressions
//! tried against the response bytes. [`detect`] runs the probes against one address, in
//! order (the null probe, then the probes that list the port, then the rest), and stops at
//! the first hard match.
//!
//! Every wait is bounded: connecting by [`DetectOptions::connect_timeout`], each probe by its
//! `wait_ms` (clamped by [`DetectOptions::max_wait`]), the whole detection by
//! [`DetectOptions::total_timeout`]; every response is capped at
//! [`DetectOptions::max_bytes`].

mod database;
mod engine;
mod template;

pub use database::{Match, Probe, ProbeDb};
pub(crate) use database::{line_col, toml_error};
pub use engine::detect;
pub use template::Template;

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use portgate_model::{Detection, Evidence};
use regex::bytes::{Captures, Regex, RegexBuilder};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// The built-in probe database.
const BUILTIN: &str = include_str!("../../data/probes.toml");
/// How the built-in database is named in errors.
const BUILTIN_ORIGIN: &str = "<built-in>/data/probes.toml";
/// Longest product / version / info / cpe string produced from a response.
const MAX_FIELD_CHARS: usize = 160;
/// The payload placeholder replaced by the target address.
const HOST_PLACEHOLDER: &[u8] = b"{host}";
/// Largest `wait_ms` accepted in a probe database (one minute).
const MAX_WAIT_MS: u64 = 60_000;
/// Largest payload accepted in a probe database.
const MAX_PAYLOAD: usize = 64 * 1024;
/// Compiled-size limit for one pattern.
const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Public result and option types
// ---------------------------------------------------------------------------------------

/// Limits and choices for [`detect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectOptions {
    /// Bound on each TCP connect.
    pub connect_timeout: Duration,
    /// Bound on the whole detection, all probes included.
    pub total_timeout: Duration,
    /// Bytes kept from each response; reading stops there.
    pub max_bytes: usize,
    /// Upper bound on any probe's own `wait_ms`.
    pub max_wait: Duration,
    /// When `false`, only the null probe and the probes that list the port are sent.
    pub all_probes: bool,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(20),
            max_bytes: 16 * 1024,
            max_wait: Duration::from_secs(5),
            all_probes: true,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Load errors
// ---------------------------------------------------------------------------------------

/// A probe database that cannot be loaded: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file (or `<built-in>/data/probes.toml`).
    pub origin: String,
    /// 1-based line of the offending text, when known.
    pub line: Option<usize>,
    /// 1-based column of the offending text, when known.
    pub column: Option<usize>,
    /// Name of the probe concerned, when known.
    pub probe: Option<String>,
    /// What is wrong (names the offending key or value).
    pub message: String,
}

/// `file:line:column: ` (as much of it as is known), the start of a data file's error.
pub(crate) fn write_place(
    f: &mut fmt::Formatter<'_>,
    origin: &str,
    line: Option<usize>,
    column: Option<usize>,
) -> fmt::Result {
    write!(f, "{origin}")?;
    if let Some(line) = line {
        write!(f, ":{line}")?;
        if let Some(column) = column {
            write!(f, ":{column}")?;
        }
    }
    write!(f, ": ")
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_place(f, &self.origin, self.line, self.column)?;
        if let Some(probe) = &self.probe {
            write!(f, "probe \"{probe}\": ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// A malformed escape in a payload string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad escape at character {position}: {reason}")]
pub struct EscapeError {
    /// 0-based character index of the backslash.
    pub position: usize,
    /// What is wrong.
    pub reason: String,
}

/// Turn a payload string with `\r \n \t \0 \\ \" \' \xNN` escapes into bytes.
///
/// Any other character stands for its UTF-8 encoding.
pub fn parse_escapes(text: &str) -> Result<Vec<u8>, EscapeError> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars().enumerate();
    while let Some((position, c)) = chars.next() {
        if c != '\\' {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            continue;
        }
        let err = |reason: String| EscapeError { position, reason };
        match chars.next().map(|(_, c)| c) {
            None => return Err(err("trailing backslash".into())),
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('"') => out.push(b'"'),
            Some('\'') => out.push(b'\''),
            Some('x') => {
                let hi = chars.next().map(|(_, c)| c);
                let lo = chars.next().map(|(_, c)| c);
                match (
                    hi.and_then(|c| c.to_digit(16)),
                    lo.and_then(|c| c.to_digit(16)),
                ) {
                    (Some(hi), Some(lo)) => out.push(u8::try_from(hi * 16 + lo).unwrap_or(0)),
                    _ => return Err(err("\\x must be followed by two hex digits".into())),
                }
            }
            Some(other) => return Err(err(format!("unknown escape `\\{other}`"))),
        }
    }
    Ok(out)
}
