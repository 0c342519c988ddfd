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

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use regex::bytes::{Captures, Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// The built-in probe database.
const BUILTIN: &str = include_str!("../data/probes.toml");
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

/// What [`detect`] found behind a port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Detection {
    /// Service name (`http`, `redis`, ...), `None` when nothing matched.
    pub service: Option<String>,
    /// Product (`nginx`, `Redis`, `MariaDB`, ...), when the response tells.
    pub product: Option<String>,
    /// Product version, when the response tells.
    pub version: Option<String>,
    /// Extra information (`auth required`, OS flavour, protocol version, ...).
    pub info: Option<String>,
    /// CPE of the product, when the match has a template for it.
    pub cpe: Option<String>,
    /// Name of the probe whose response matched.
    pub probe: Option<String>,
    /// `true` when only a soft match (service only) was found.
    pub soft: bool,
    /// The response bytes the result rests on (capped at [`DetectOptions::max_bytes`]).
    /// When nothing matched, the first non-empty response.
    pub evidence: Vec<u8>,
}

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

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
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

// ---------------------------------------------------------------------------------------
// Templates (`$1`-style capture references)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Group(usize),
}

/// A product / version / info / cpe template: literal text with `$1`..`$9` capture
/// references (`$$` is a literal dollar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse a template; `groups` is the number of capture groups of the pattern
    /// (a reference beyond it is an error).
    pub fn parse(text: &str, groups: usize) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                literal.push(c);
                continue;
            }
            match chars.next() {
                Some('$') => literal.push('$'),
                Some(d @ '1'..='9') => {
                    let n = d.to_digit(10).map_or(0, |n| n as usize);
                    if n > groups {
                        return Err(format!(
                            "template `{text}` refers to ${n} but the pattern has {groups} capture group(s)"
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Group(n));
                }
                _ => {
                    return Err(format!(
                        "template `{text}`: `$` must be followed by a digit 1-9 or `$`"
                    ));
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// Substitute the captures; control characters are dropped, whitespace runs collapsed,
    /// the result trimmed and capped. Groups that did not take part expand to nothing.
    /// An empty result is `None`.
    pub fn render(&self, caps: &Captures<'_>) -> Option<String> {
        let mut raw = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => raw.push_str(text),
                Part::Group(n) => {
                    if let Some(m) = caps.get(*n) {
                        raw.push_str(&String::from_utf8_lossy(m.as_bytes()));
                    }
                }
            }
        }
        let mut out = String::new();
        let mut pending_space = false;
        for c in raw.chars() {
            if c.is_whitespace() {
                pending_space = !out.is_empty();
            } else if !c.is_control() {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(c);
            }
            if out.chars().count() >= MAX_FIELD_CHARS {
                break;
            }
        }
        if out.is_empty() { None } else { Some(out) }
    }
}

// ---------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------

/// One match rule of a probe.
#[derive(Debug, Clone)]
pub struct Match {
    regex: Regex,
    service: String,
    soft: bool,
    product: Option<Template>,
    version: Option<Template>,
    info: Option<Template>,
    cpe: Option<Template>,
    follow_up: bool,
}

impl Match {
    /// The service this rule identifies.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether this is a soft match (service only, probing goes on).
    pub fn is_soft(&self) -> bool {
        self.soft
    }

    /// Whether this hard match is provisional: the follow-up probes for its
    /// service are sent, and a hard match of theirs replaces it.
    pub fn is_follow_up(&self) -> bool {
        self.follow_up
    }

    fn apply(&self, response: &[u8], probe: &str) -> Option<Detection> {
        let caps = self.regex.captures(response)?;
        let render = |t: &Option<Template>| t.as_ref().and_then(|t| t.render(&caps));
        let cpe = render(&self.cpe).map(|c| c.trim_end_matches(':').to_owned());
        Some(Detection {
            service: Some(self.service.clone()),
            product: render(&self.product),
            version: render(&self.version),
            info: render(&self.info),
            cpe,
            probe: Some(probe.to_owned()),
            soft: self.soft,
            evidence: Vec::new(),
        })
    }
}

/// One probe: what to send, where, how long to wait, what to look for.
#[derive(Debug, Clone)]
pub struct Probe {
    name: String,
    payload: Vec<u8>,
    ports: Vec<u16>,
    tls: bool,
    wait: Duration,
    refines: Vec<String>,
    matches: Vec<Match>,
}

impl Probe {
    /// The probe's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bytes sent (empty for the null probe). `{host}` is replaced at send time.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Ports where this probe is tried early.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Whether the probe is meant to run inside TLS (recorded, not yet used by [`detect`]).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// How long to wait for the response.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The services whose provisional matches this follow-up probe refines
    /// (empty for ordinary probes, which [`ProbeDb::order_for`] lists).
    pub fn refines(&self) -> &[String] {
        &self.refines
    }

    /// Whether this is a follow-up probe (sent only after a provisional match).
    pub fn is_follow_up(&self) -> bool {
        !self.refines.is_empty()
    }

    /// The match rules, in order.
    pub fn matches(&self) -> &[Match] {
        &self.matches
    }

    /// Whether this is a null probe (connect and listen, send nothing).
    pub fn is_null(&self) -> bool {
        self.payload.is_empty()
    }

    /// The first hard match on `response`, else the first soft match, else `None`.
    /// The returned [`Detection`] has an empty `evidence`.
    pub fn try_match(&self, response: &[u8]) -> Option<Detection> {
        self.hard_match(response)
            .or_else(|| self.soft_match(response))
    }

    fn hard_match(&self, response: &[u8]) -> Option<Detection> {
        self.hard_match_rule(response).map(|(d, _)| d)
    }

    /// The first hard match and whether it is provisional.
    fn hard_match_rule(&self, response: &[u8]) -> Option<(Detection, bool)> {
        self.matches
            .iter()
            .filter(|m| !m.soft)
            .find_map(|m| m.apply(response, &self.name).map(|d| (d, m.follow_up)))
    }

    fn soft_match(&self, response: &[u8]) -> Option<Detection> {
        self.matches
            .iter()
            .filter(|m| m.soft)
            .find_map(|m| m.apply(response, &self.name))
    }

    fn payload_for(&self, addr: SocketAddr) -> Vec<u8> {
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let mut out = Vec::with_capacity(self.payload.len() + host.len());
        let mut rest = self.payload.as_slice();
        while !rest.is_empty() {
            if rest.starts_with(HOST_PLACEHOLDER) {
                out.extend_from_slice(host.as_bytes());
                rest = rest.get(HOST_PLACEHOLDER.len()..).unwrap_or_default();
            } else {
                out.extend_from_slice(rest.get(..1).unwrap_or_default());
                rest = rest.get(1..).unwrap_or_default();
            }
        }
        out
    }
}

/// The probe database: probes in order.
#[derive(Debug, Clone, Default)]
pub struct ProbeDb {
    probes: Vec<Probe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDb {
    #[serde(default, rename = "probe")]
    probes: Vec<RawProbe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    name: toml::Spanned<String>,
    protocol: Option<toml::Spanned<String>>,
    payload: toml::Spanned<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    tls: bool,
    wait_ms: toml::Spanned<u64>,
    #[serde(default)]
    refines: Vec<String>,
    #[serde(default, rename = "match")]
    matches: Vec<RawMatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    pattern: toml::Spanned<String>,
    service: toml::Spanned<String>,
    #[serde(default)]
    soft: bool,
    follow_up: Option<toml::Spanned<bool>>,
    product: Option<toml::Spanned<String>>,
    version: Option<toml::Spanned<String>>,
    info: Option<toml::Spanned<String>>,
    cpe: Option<toml::Spanned<String>>,
}

/// 1-based line and column of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The probe (by name, else `#index`) whose `[[probe]]` table holds `offset`.
fn probe_at(src: &str, offset: usize) -> Option<String> {
    let before = src.get(..offset.min(src.len()))?;
    let index = before.lines().filter(|l| l.trim() == "[[probe]]").count();
    if index == 0 {
        return None;
    }
    let name = toml::from_str::<toml::Table>(src).ok().and_then(|t| {
        t.get("probe")?
            .as_array()?
            .get(index - 1)?
            .get("name")?
            .as_str()
            .map(str::to_owned)
    });
    Some(name.unwrap_or_else(|| format!("#{index}")))
}

impl ProbeDb {
    /// The built-in database (`data/probes.toml`, compiled in).
    pub fn builtin() -> Result<Self, LoadError> {
        Self::parse(BUILTIN, BUILTIN_ORIGIN)
    }

    /// The built-in database followed by the probes of `path`. A probe of `path` whose
    /// name is already present replaces it (in place); others are appended.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let mut db = Self::builtin()?;
        db.merge(Self::parse_file(path)?);
        Ok(db)
    }

    /// Only the probes of `path` (no built-in ones).
    pub fn parse_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| LoadError {
            origin: origin.clone(),
            line: None,
            column: None,
            probe: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&src, &origin)
    }

    /// Parse a database from TOML text; `origin` names it in errors.
    pub fn parse(src: &str, origin: &str) -> Result<Self, LoadError> {
        let err_at = |span: Option<Range<usize>>, probe: Option<String>, message: String| {
            let (line, column) = span.map(|s| line_col(src, s.start)).unzip();
            LoadError {
                origin: origin.to_owned(),
                line,
                column,
                probe,
                message,
            }
        };
        let raw: RawDb = toml::from_str(src).map_err(|e| {
            let span = e.span();
            let probe = span.as_ref().and_then(|s| probe_at(src, s.start));
            let mut message = e.message().trim().to_owned();
            if let Some(s) = &span {
                let (line, _) = line_col(src, s.start);
                if let Some(text) = src.lines().nth(line - 1) {
                    message.push_str(&format!(" (in `{}`)", text.trim()));
                }
            }
            err_at(span, probe, message)
        })?;
        let mut probes: Vec<Probe> = Vec::with_capacity(raw.probes.len());
        for rp in raw.probes {
            let name = rp.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(err_at(
                    Some(rp.name.span()),
                    None,
                    "empty probe name".into(),
                ));
            }
            let at = |span: Range<usize>, message: String| {
                err_at(Some(span), Some(name.clone()), message)
            };
            if probes.iter().any(|p| p.name == name) {
                return Err(at(rp.name.span(), "duplicate probe name".into()));
            }
            if let Some(protocol) = rp.protocol.as_ref().filter(|p| p.get_ref() != "tcp") {
                return Err(at(
                    protocol.span(),
                    format!(
                        "protocol = \"{}\": only \"tcp\" is supported",
                        protocol.get_ref()
                    ),
                ));
            }
            let payload = parse_escapes(rp.payload.get_ref())
                .map_err(|e| at(rp.payload.span(), format!("payload: {e}")))?;
            if payload.len() > MAX_PAYLOAD {
                return Err(at(
                    rp.payload.span(),
                    format!("payload longer than {MAX_PAYLOAD} bytes"),
                ));
            }
            let wait_ms = *rp.wait_ms.get_ref();
            if wait_ms == 0 || wait_ms > MAX_WAIT_MS {
                return Err(at(
                    rp.wait_ms.span(),
                    format!("wait_ms = {wait_ms}: must be within 1..={MAX_WAIT_MS}"),
                ));
            }
            let mut matches = Vec::with_capacity(rp.matches.len());
            for (i, rm) in rp.matches.into_iter().enumerate() {
                let which = i + 1;
                let regex = RegexBuilder::new(rm.pattern.get_ref())
                    .unicode(false)
                    .dot_matches_new_line(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        at(
                            rm.pattern.span(),
                            format!("match #{which}: bad regex in pattern: {e}"),
                        )
                    })?;
                let groups = regex.captures_len().saturating_sub(1);
                let template = |t: Option<toml::Spanned<String>>, key: &str| {
                    t.map(|t| {
                        Template::parse(t.get_ref(), groups)
                            .map_err(|e| at(t.span(), format!("match #{which}: {key}: {e}")))
                    })
                    .transpose()
                };
                let service = rm.service.get_ref().trim().to_owned();
                if service.is_empty() {
                    return Err(at(
                        rm.service.span(),
                        format!("match #{which}: empty service"),
                    ));
                }
                let follow_up = rm.follow_up.as_ref().is_some_and(|f| *f.get_ref());
                if let Some(flag) = rm.follow_up.as_ref().filter(|_| rm.soft && follow_up) {
                    return Err(at(
                        flag.span(),
                        format!("match #{which}: a soft match cannot also be `follow_up`"),
                    ));
                }
                if rm.soft {
                    let extra = [
                        ("product", &rm.product),
                        ("version", &rm.version),
                        ("info", &rm.info),
                        ("cpe", &rm.cpe),
                    ]
                    .into_iter()
                    .find_map(|(k, v)| v.as_ref().map(|v| (k, v.span())));
                    if let Some((key, span)) = extra {
                        return Err(at(
                            span,
                            format!(
                                "match #{which}: a soft match gives only a service, not `{key}`"
                            ),
                        ));
                    }
                }
                matches.push(Match {
                    regex,
                    service,
                    soft: rm.soft,
                    product: template(rm.product, "product")?,
                    version: template(rm.version, "version")?,
                    info: template(rm.info, "info")?,
                    cpe: template(rm.cpe, "cpe")?,
                    follow_up,
                });
            }
            probes.push(Probe {
                name,
                payload,
                ports: rp.ports,
                tls: rp.tls,
                wait: Duration::from_millis(wait_ms),
                refines: rp
                    .refines
                    .iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                matches,
            });
        }
        Ok(Self { probes })
    }

    /// Add `other`'s probes: same name replaces in place, new names are appended.
    pub fn merge(&mut self, other: ProbeDb) {
        for probe in other.probes {
            match self.probes.iter_mut().find(|p| p.name == probe.name) {
                Some(slot) => *slot = probe,
                None => self.probes.push(probe),
            }
        }
    }

    /// All probes, in database order.
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// A probe by name.
    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }

    /// The order probes are sent to `port`: null probes, then those listing the port, then
    /// the rest (database order within each group). Follow-up probes are not listed: they
    /// are sent only after a provisional match (see [`ProbeDb::follow_ups`]).
    pub fn order_for(&self, port: u16) -> Vec<&Probe> {
        let ordinary = || self.probes.iter().filter(|p| !p.is_follow_up());
        let null = ordinary().filter(|p| p.is_null());
        let listed = ordinary().filter(|p| !p.is_null() && p.ports.contains(&port));
        let rest = ordinary().filter(|p| !p.is_null() && !p.ports.contains(&port));
        null.chain(listed).chain(rest).collect()
    }

    /// The follow-up probes that refine a provisional match of `service`, in database
    /// order.
    pub fn follow_ups(&self, service: &str) -> Vec<&Probe> {
        self.probes
            .iter()
            .filter(|p| p.refines.iter().any(|s| s == service))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------

/// How long the null probe listens alone before the other probes are sent: services that
/// speak first do so at once, and most protocols are then identified without sending a
/// byte. The null probe keeps listening (up to its own `wait_ms`) after that.
const NULL_GRACE: Duration = Duration::from_millis(300);

/// Probes in flight at once against one port (each on its own connection).
const PARALLEL_PROBES: usize = 10;

/// What one probe got (`None` from [`run_probe`] when it could not connect).
struct ProbeResponse {
    hard: Option<(Detection, bool)>,
    soft: Option<Detection>,
    bytes: Vec<u8>,
}

/// Identify the service at `addr` with the probes of `db`.
///
/// The null probe listens first; after a short grace period (or at once when the service
/// stays silent and closes) the other probes follow in [`ProbeDb::order_for`] order, up
/// to [`PARALLEL_PROBES`] at a time, each on its own connection. The first hard match
/// wins. A provisional hard match (`follow_up = true`, e.g. a generic HTTP server) stops
/// the ordinary probes and sends the follow-up probes of its service (e.g. application
/// endpoints); the first of those (in database order) that hard-matches replaces it.
///
/// Never takes (much) longer than `opts.total_timeout`, keeps at most `opts.max_bytes` of
/// any response, and never panics on what the service sends. A port that refuses or does
/// not accept connections gives an empty [`Detection`].
pub async fn detect(addr: SocketAddr, db: &ProbeDb, opts: &DetectOptions) -> Detection {
    let deadline = Instant::now() + opts.total_timeout;
    let port = addr.port();
    let order: Vec<&Probe> = db
        .order_for(port)
        .into_iter()
        .filter(|p| opts.all_probes || p.is_null() || p.ports.contains(&port))
        .collect();
    let mut state = Collected::default();
    let mut pending = FuturesUnordered::new();
    let mut next = 0usize;
    // The null probes (normally one) start alone.
    while let Some(probe) = order.get(next).filter(|p| p.is_null()) {
        pending.push(indexed(next, run_probe(addr, probe, opts, deadline)));
        next += 1;
    }
    let grace = deadline.min(Instant::now() + NULL_GRACE);
    let mut refused = false;
    while !pending.is_empty() {
        match timeout_at(grace, pending.next()).await {
            Ok(Some((index, response))) => match state.take(index, response) {
                Outcome::Final(found) => return found,
                Outcome::Provisional => break,
                Outcome::Refused => {
                    refused = true;
                    break;
                }
                Outcome::Continue => {}
            },
            Ok(None) | Err(_) => break,
        }
    }
    if !refused && state.provisional.is_none() {
        loop {
            while pending.len() < PARALLEL_PROBES && !refused && Instant::now() < deadline {
                let Some(probe) = order.get(next) else {
                    break;
                };
                pending.push(indexed(next, run_probe(addr, probe, opts, deadline)));
                next += 1;
            }
            let Some((index, response)) = pending.next().await else {
                break;
            };
            match state.take(index, response) {
                Outcome::Final(found) => return found,
                Outcome::Provisional => break,
                Outcome::Refused => refused = true,
                Outcome::Continue => {}
            }
        }
    }
    // Stop whatever still runs (a provisional match settles the protocol).
    drop(pending);
    if let Some((found, _)) = state.provisional.take() {
        return refine(addr, db, opts, deadline, found).await;
    }
    state.finish()
}

/// Runs the follow-up probes for `provisional`'s service; the first hard match in database
/// order replaces `provisional`.
async fn refine(
    addr: SocketAddr,
    db: &ProbeDb,
    opts: &DetectOptions,
    deadline: Instant,
    provisional: Detection,
) -> Detection {
    let Some(service) = provisional.service.as_deref() else {
        return provisional;
    };
    let probes = db.follow_ups(service);
    let mut best: Option<(usize, Detection)> = None;
    let mut next = 0usize;
    let mut pending = FuturesUnordered::new();
    loop {
        while pending.len() < PARALLEL_PROBES && Instant::now() < deadline {
            let Some(probe) = probes.get(next) else {
                break;
            };
            pending.push(indexed(next, run_probe(addr, probe, opts, deadline)));
            next += 1;
        }
        let Some((index, response)) = pending.next().await else {
            break;
        };
        let Some(ProbeResponse { hard, bytes, .. }) = response else {
            continue;
        };
        if let Some((mut found, _)) = hard
            && best.as_ref().is_none_or(|(i, _)| index < *i)
        {
            found.evidence = bytes;
            best = Some((index, found));
            // Nothing earlier in the order is still to come: done.
            if index == 0 {
                break;
            }
        }
    }
    best.map_or(provisional, |(_, found)| found)
}

/// Pairs a probe's result with its position in the order.
async fn indexed<F: std::future::Future<Output = Option<ProbeResponse>>>(
    index: usize,
    run: F,
) -> (usize, Option<ProbeResponse>) {
    (index, run.await)
}

/// What one finished probe means for the detection.
enum Outcome {
    /// A definitive answer.
    Final(Detection),
    /// A provisional hard match was recorded: go on with the follow-up probes.
    Provisional,
    /// The connection was refused: stop sending more probes.
    Refused,
    /// Nothing decisive: go on.
    Continue,
}

/// The results gathered so far, keyed by position in the order (earlier wins).
#[derive(Default)]
struct Collected {
    provisional: Option<(Detection, usize)>,
    soft: Option<(Detection, usize)>,
    first_bytes: Option<(Vec<u8>, usize)>,
}

impl Collected {
    fn take(&mut self, index: usize, response: Option<ProbeResponse>) -> Outcome {
        let Some(ProbeResponse { hard, soft, bytes }) = response else {
            return Outcome::Refused;
        };
        if let Some((mut found, provisional)) = hard {
            found.evidence = bytes;
            if !provisional {
                return Outcome::Final(found);
            }
            self.provisional = Some((found, index));
            return Outcome::Provisional;
        }
        if let Some(mut found) = soft
            && self.soft.as_ref().is_none_or(|(_, i)| index < *i)
        {
            found.evidence = bytes.clone();
            self.soft = Some((found, index));
        }
        if !bytes.is_empty() && self.first_bytes.as_ref().is_none_or(|(_, i)| index < *i) {
            self.first_bytes = Some((bytes, index));
        }
        Outcome::Continue
    }

    fn finish(self) -> Detection {
        self.soft.map(|(d, _)| d).unwrap_or_else(|| Detection {
            evidence: self.first_bytes.map(|(b, _)| b).unwrap_or_default(),
            ..Detection::default()
        })
    }
}

async fn run_probe(
    addr: SocketAddr,
    probe: &Probe,
    opts: &DetectOptions,
    deadline: Instant,
) -> Option<ProbeResponse> {
    let connect_deadline = deadline.min(Instant::now() + opts.connect_timeout);
    let mut stream = match timeout_at(connect_deadline, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        _ => return None,
    };
    let read_deadline = deadline.min(Instant::now() + probe.wait.min(opts.max_wait));
    if !probe.is_null() {
        // A failed write is not fatal: the service may have spoken before closing.
        let payload = probe.payload_for(addr);
        let _ = timeout_at(read_deadline, stream.write_all(&payload)).await;
    }
    let cap = opts.max_bytes;
    let mut bytes = Vec::with_capacity(cap.min(4096));
    let mut chunk = [0u8; 4096];
    while bytes.len() < cap {
        let want = chunk.len().min(cap - bytes.len());
        let Some(buf) = chunk.get_mut(..want) else {
            break;
        };
        match timeout_at(read_deadline, stream.read(buf)).await {
            Ok(Ok(n)) if n > 0 => {
                bytes.extend_from_slice(buf.get(..n).unwrap_or_default());
                // A definitive match ends the read at once; a provisional one (e.g. generic
                // HTTP headers) waits for the rest of the response, whose body may still
                // identify the application.
                if let Some(hard) = probe.hard_match_rule(&bytes).filter(|(_, prov)| !prov) {
                    return Some(ProbeResponse {
                        hard: Some(hard),
                        soft: None,
                        bytes,
                    });
                }
            }
            // EOF, error, or time is up.
            _ => break,
        }
    }
    if let Some(hard) = probe.hard_match_rule(&bytes) {
        return Some(ProbeResponse {
            hard: Some(hard),
            soft: None,
            bytes,
        });
    }
    let soft = probe.soft_match(&bytes);
    Some(ProbeResponse {
        hard: None,
        soft,
        bytes,
    })
}
