//! Applications behind HTTP: the application database (`data/apps.toml`, extendable with a
//! file of the same format) and the engine that identifies an application on a port and
//! proves what it exposes ([`identify`]).
//!
//! Every entry is a read-only `GET` and conditions on its answer; the database's header
//! comment documents the format.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use portgate_model::ExposureKind;
use regex::Regex;
use regex::bytes::Regex as BytesRegex;
use serde::Deserialize;

mod engine;

pub use engine::{AppOptions, Target, identify};

use crate::probes::{line_col, toml_error};

const BUILTIN: &str = include_str!("../../data/apps.toml");
const BUILTIN_ORIGIN: &str = "<built-in>/data/apps.toml";
/// Compiled size limit of one regex: a user file cannot make a pattern that eats memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The path that stands for "a path that exists nowhere".
pub(crate) const ABSENT: &str = "@absent";

/// Why an application database could not be loaded: the file, the place and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLoadError {
    /// The file (or `<built-in>/data/apps.toml`).
    pub origin: String,
    /// 1-based line of the offending text, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The application concerned, when known.
    pub app: Option<String>,
    /// What is wrong (names the key or value).
    pub message: String,
}

impl fmt::Display for AppLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::probes::write_place(f, &self.origin, self.line, self.column)?;
        if let Some(app) = &self.app {
            write!(f, "application \"{app}\": ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppLoadError {}

/// Where a version is read from.
#[derive(Debug, Clone)]
pub(crate) enum VersionFrom {
    Body,
    Title,
    Header(String),
}

/// A version read from an answer: where, and the pattern whose first group it is.
#[derive(Debug, Clone)]
pub(crate) struct VersionRule {
    pub(crate) from: VersionFrom,
    pub(crate) pattern: Regex,
}

/// A request and the conditions on its answer.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) path: String,
    pub(crate) status: Vec<u16>,
    pub(crate) headers: Vec<(String, Regex)>,
    pub(crate) title: Option<Regex>,
    pub(crate) body: Option<BytesRegex>,
    pub(crate) not_body: Option<BytesRegex>,
    pub(crate) location: Option<Regex>,
    pub(crate) favicon: Vec<i32>,
    pub(crate) ports: Vec<u16>,
    pub(crate) version: Option<VersionRule>,
}

impl Request {
    /// Whether the entry applies on `port`.
    pub(crate) fn applies_on(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }
}

/// A check: a request whose matching answer proves an exposure.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) id: String,
    pub(crate) kind: ExposureKind,
    pub(crate) title: String,
    pub(crate) request: Request,
}

/// A vendor's documented default login.
#[derive(Debug, Clone)]
pub(crate) struct DefaultLogin {
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) request: Request,
}

/// One application of the database.
#[derive(Debug, Clone)]
pub struct App {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) category: String,
    pub(crate) ports: Vec<u16>,
    pub(crate) identify: Vec<Request>,
    pub(crate) version: Vec<Request>,
    pub(crate) checks: Vec<Check>,
    pub(crate) logins: Vec<DefaultLogin>,
}

impl App {
    /// Its identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its category.
    pub fn category(&self) -> &str {
        &self.category
    }

    /// The ports where it usually listens.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The identifiers of its checks.
    pub fn check_ids(&self) -> impl Iterator<Item = &str> {
        self.checks.iter().map(|c| c.id.as_str())
    }

    /// Whether it has a default login to try.
    pub fn has_default_login(&self) -> bool {
        !self.logins.is_empty()
    }
}

/// The application database.
#[derive(Debug, Clone)]
pub struct AppDb {
    apps: Vec<App>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDb {
    #[serde(default, rename = "app")]
    apps: Vec<RawApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    id: toml::Spanned<String>,
    name: toml::Spanned<String>,
    category: toml::Spanned<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    identify: Vec<RawRequest>,
    #[serde(default)]
    version: Vec<RawRequest>,
    #[serde(default)]
    check: Vec<RawRequest>,
    #[serde(default)]
    default_credentials: Vec<RawRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default)]
    path: Option<toml::Spanned<String>>,
    #[serde(default)]
    status: Vec<u16>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, toml::Spanned<String>>,
    title: Option<toml::Spanned<String>>,
    body: Option<toml::Spanned<String>>,
    not_body: Option<toml::Spanned<String>>,
    location: Option<toml::Spanned<String>>,
    #[serde(default)]
    favicon: Vec<i32>,
    #[serde(default)]
    ports: Vec<u16>,
    version: Option<toml::Spanned<RawVersion>>,
    // [[app.check]] only
    id: Option<toml::Spanned<String>>,
    kind: Option<toml::Spanned<String>>,
    proves: Option<String>,
    // [[app.default_credentials]] only
    user: Option<toml::Spanned<String>>,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersion {
    from: String,
    pattern: String,
}

/// The application (by `id`, else `#index`) whose `[[app]]` table holds `offset`.
fn app_at(src: &str, offset: usize) -> Option<String> {
    let before = src.get(..offset.min(src.len()))?;
    let index = before.lines().filter(|l| l.trim() == "[[app]]").count();
    if index == 0 {
        return None;
    }
    let id = toml::from_str::<toml::Table>(src).ok().and_then(|t| {
        t.get("app")?
            .as_array()?
            .get(index - 1)?
            .get("id")?
            .as_str()
            .map(str::to_owned)
    });
    Some(id.unwrap_or_else(|| format!("#{index}")))
}

struct Loader<'a> {
    src: &'a str,
    origin: &'a str,
}

impl Loader<'_> {
    fn err(&self, span: Option<Range<usize>>, app: Option<&str>, message: String) -> AppLoadError {
        let (line, column) = span.map(|s| line_col(self.src, s.start)).unzip();
        AppLoadError {
            origin: self.origin.to_owned(),
            line,
            column,
            app: app.map(str::to_owned),
            message,
        }
    }

    fn regex(
        &self,
        app: &str,
        key: &str,
        pattern: &toml::Spanned<String>,
    ) -> Result<Regex, AppLoadError> {
        regex::RegexBuilder::new(pattern.get_ref())
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                self.err(
                    Some(pattern.span()),
                    Some(app),
                    format!("bad regex in `{key}`: {e}"),
                )
            })
    }

    fn bytes_regex(
        &self,
        app: &str,
        key: &str,
        pattern: &toml::Spanned<String>,
    ) -> Result<BytesRegex, AppLoadError> {
        regex::bytes::RegexBuilder::new(pattern.get_ref())
            .unicode(false)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| {
                self.err(
                    Some(pattern.span()),
                    Some(app),
                    format!("bad regex in `{key}`: {e}"),
                )
            })
    }

    /// A request entry of `table` (`[[app.identify]]` …), which must not hold the keys of
    /// the other kinds of entry.
    fn request(&self, app: &str, table: &str, raw: RawRequest) -> Result<Request, AppLoadError> {
        let foreign = [
            ("id", raw.id.as_ref().map(|v| v.span()), table != "check"),
            (
                "kind",
                raw.kind.as_ref().map(|v| v.span()),
                table != "check",
            ),
            (
                "proves",
                raw.proves.as_ref().map(|_| 0..0),
                table != "check",
            ),
            (
                "user",
                raw.user.as_ref().map(|v| v.span()),
                table != "default_credentials",
            ),
            (
                "password",
                raw.password.as_ref().map(|_| 0..0),
                table != "default_credentials",
            ),
        ];
        if let Some((key, span, _)) = foreign.into_iter().find(|(_, s, bad)| *bad && s.is_some()) {
            let span = span.filter(|s| !s.is_empty());
            return Err(self.err(
                span.or_else(|| raw.path.as_ref().map(|p| p.span())),
                Some(app),
                format!("`{key}` does not belong in [[app.{table}]]"),
            ));
        }
        let path_span = raw.path.as_ref().map(|p| p.span());
        let path = match raw.path {
            None => "/".to_owned(),
            Some(p) => {
                let text = p.get_ref().clone();
                let valid = text == ABSENT
                    || (text.starts_with('/') && text.bytes().all(|b| b.is_ascii_graphic()));
                if !valid {
                    return Err(self.err(
                        Some(p.span()),
                        Some(app),
                        format!(
                            "path = {text:?}: must start with '/' and hold only visible ASCII (percent-encode the rest), or be \"{ABSENT}\""
                        ),
                    ));
                }
                text
            }
        };
        let mut headers = Vec::with_capacity(raw.headers.len());
        for (name, pattern) in &raw.headers {
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(self.err(
                    Some(pattern.span()),
                    Some(app),
                    format!("headers: {name:?} is not a header name"),
                ));
            }
            headers.push((name, self.regex(app, "headers", pattern)?));
        }
        if let Some(bad) = raw.status.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(self.err(
                path_span,
                Some(app),
                format!("status {bad}: not an HTTP status code (100-599)"),
            ));
        }
        let version = match raw.version {
            None => None,
            Some(v) => {
                let span = v.span();
                let v = v.into_inner();
                let from = match v.from.as_str() {
                    "body" => VersionFrom::Body,
                    "title" => VersionFrom::Title,
                    other => match other.strip_prefix("header:") {
                        Some(h) if !h.trim().is_empty() => {
                            VersionFrom::Header(h.trim().to_ascii_lowercase())
                        }
                        _ => {
                            return Err(self.err(
                                Some(span),
                                Some(app),
                                format!(
                                    "version.from = {other:?}: expected \"body\", \"title\" or \"header:NAME\""
                                ),
                            ));
                        }
                    },
                };
                let pattern = regex::RegexBuilder::new(&v.pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        self.err(
                            Some(span.clone()),
                            Some(app),
                            format!("bad regex in `version.pattern`: {e}"),
                        )
                    })?;
                if pattern.captures_len() < 2 {
                    return Err(self.err(
                        Some(span),
                        Some(app),
                        "version.pattern has no group: the version is its first group".into(),
                    ));
                }
                Some(VersionRule { from, pattern })
            }
        };
        Ok(Request {
            path,
            status: raw.status,
            headers,
            title: raw
                .title
                .as_ref()
                .map(|t| self.regex(app, "title", t))
                .transpose()?,
            body: raw
                .body
                .as_ref()
                .map(|t| self.bytes_regex(app, "body", t))
                .transpose()?,
            not_body: raw
                .not_body
                .as_ref()
                .map(|t| self.bytes_regex(app, "not_body", t))
                .transpose()?,
            location: raw
                .location
                .as_ref()
                .map(|t| self.regex(app, "location", t))
                .transpose()?,
            favicon: raw.favicon,
            ports: raw.ports,
            version,
        })
    }
}

impl AppDb {
    /// The built-in database (`data/apps.toml`, compiled in).
    pub fn builtin() -> Result<Self, AppLoadError> {
        Self::parse(BUILTIN, BUILTIN_ORIGIN)
    }

    /// The built-in database merged with the applications of `path`: an application whose
    /// `id` is already present replaces it (in place); others are appended.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AppLoadError> {
        let mut db = Self::builtin()?;
        db.merge(Self::parse_file(path)?);
        Ok(db)
    }

    /// Only the applications of `path`.
    pub fn parse_file(path: impl AsRef<Path>) -> Result<Self, AppLoadError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| AppLoadError {
            origin: origin.clone(),
            line: None,
            column: None,
            app: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&src, &origin)
    }

    /// Parse a database from TOML text; `origin` names it in errors.
    pub fn parse(src: &str, origin: &str) -> Result<Self, AppLoadError> {
        let loader = Loader { src, origin };
        let raw: RawDb = toml::from_str(src).map_err(|e| {
            let (span, message) = toml_error(src, &e);
            let app = span.as_ref().and_then(|s| app_at(src, s.start));
            loader.err(span, app.as_deref(), message)
        })?;
        let mut apps: Vec<App> = Vec::with_capacity(raw.apps.len());
        for ra in raw.apps {
            let id = ra.id.get_ref().trim().to_owned();
            let valid_id = !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_id {
                return Err(loader.err(
                    Some(ra.id.span()),
                    None,
                    format!("id = {id:?}: use lower-case letters, digits and '-'"),
                ));
            }
            if apps.iter().any(|a| a.id == id) {
                return Err(loader.err(
                    Some(ra.id.span()),
                    Some(&id),
                    "duplicate application id".into(),
                ));
            }
            if ra.name.get_ref().trim().is_empty() {
                return Err(loader.err(Some(ra.name.span()), Some(&id), "empty name".into()));
            }
            if ra.category.get_ref().trim().is_empty() {
                return Err(loader.err(
                    Some(ra.category.span()),
                    Some(&id),
                    "empty category".into(),
                ));
            }
            if ra.identify.is_empty() {
                return Err(loader.err(
                    Some(ra.id.span()),
                    Some(&id),
                    "no [[app.identify]] entry: nothing would ever recognise it".into(),
                ));
            }
            let identify = ra
                .identify
                .into_iter()
                .map(|r| loader.request(&id, "identify", r))
                .collect::<Result<Vec<_>, _>>()?;
            let version = ra
                .version
                .into_iter()
                .map(|r| loader.request(&id, "version", r))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(v) = version.iter().find(|v| v.version.is_none()) {
                return Err(loader.err(
                    None,
                    Some(&id),
                    format!(
                        "[[app.version]] for {}: no `version = {{ from, pattern }}`",
                        v.path
                    ),
                ));
            }
            let mut checks: Vec<Check> = Vec::with_capacity(ra.check.len());
            for mut rc in ra.check {
                let (Some(check_id), Some(kind), Some(title)) =
                    (rc.id.take(), rc.kind.take(), rc.proves.take())
                else {
                    return Err(loader.err(
                        rc.path.as_ref().map(|p| p.span()),
                        Some(&id),
                        "[[app.check]] needs `id`, `kind` and `proves`".into(),
                    ));
                };
                let span = check_id.span();
                let check_id = check_id.into_inner().trim().to_owned();
                if check_id.is_empty() || checks.iter().any(|c| c.id == check_id) {
                    return Err(loader.err(
                        Some(span),
                        Some(&id),
                        format!("check id {check_id:?}: empty or used twice"),
                    ));
                }
                let kind = match ExposureKind::parse(kind.get_ref()) {
                    Some(ExposureKind::DefaultCredentials) | None => {
                        return Err(loader.err(
                            Some(kind.span()),
                            Some(&id),
                            format!(
                                "check {check_id}: kind = {:?}: expected \"unauthenticated-api\", \"debug-endpoint-exposed\" or \"exposed-management-ui\" (default logins go in [[app.default_credentials]])",
                                kind.get_ref()
                            ),
                        ));
                    }
                    Some(kind) => kind,
                };
                let request = loader.request(&id, "check", rc)?;
                if request.path == ABSENT {
                    return Err(loader.err(
                        Some(span),
                        Some(&id),
                        format!("check {check_id}: a check needs a real path, not {ABSENT}"),
                    ));
                }
                checks.push(Check {
                    id: check_id,
                    kind,
                    title,
                    request,
                });
            }
            let mut logins = Vec::new();
            for mut rl in ra.default_credentials {
                let (Some(user), Some(password)) = (rl.user.take(), rl.password.take()) else {
                    return Err(loader.err(
                        rl.path.as_ref().map(|p| p.span()),
                        Some(&id),
                        "[[app.default_credentials]] needs `user` and `password`".into(),
                    ));
                };
                let span = user.span();
                let user = user.into_inner();
                if user.contains(':') || user.is_empty() {
                    return Err(loader.err(
                        Some(span),
                        Some(&id),
                        format!("default_credentials: user {user:?} is empty or holds ':'"),
                    ));
                }
                logins.push(DefaultLogin {
                    user,
                    password,
                    request: loader.request(&id, "default_credentials", rl)?,
                });
            }
            apps.push(App {
                name: ra.name.get_ref().trim().to_owned(),
                category: ra.category.get_ref().trim().to_owned(),
                ports: ra.ports,
                identify,
                version,
                checks,
                logins,
                id,
            });
        }
        Ok(Self { apps })
    }

    /// Add `other`'s applications: the same id replaces in place, new ids are appended.
    pub fn merge(&mut self, other: AppDb) {
        for app in other.apps {
            match self.apps.iter_mut().find(|a| a.id == app.id) {
                Some(slot) => *slot = app,
                None => self.apps.push(app),
            }
        }
    }

    /// Every application, in database order.
    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    /// The application `id`.
    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.id == id)
    }
}
