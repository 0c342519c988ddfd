//! The application engine: a bounded series of `GET` requests on one port.
//!
//! 1. `/` and a path that exists nowhere (the `@absent` answer), together. A `2xx` there
//!    marks a catch-all: from then on a path answering exactly like it (status and body) is
//!    no evidence of anything.
//! 2. The `[[app.identify]]` entries for `/` and `@absent`, on those two answers (no
//!    request more). When none matches, the entries with their own paths, those of the
//!    applications that usually listen on this port first, one request per distinct path,
//!    in waves of [`AppOptions::parallel`] until one matches or
//!    [`AppOptions::max_identify_requests`] is spent.
//! 3. For each application found, in one wave: its `[[app.version]]` requests while the
//!    version is unknown, and its checks; then (only with
//!    [`AppOptions::try_default_credentials`]) its default logins.
//!
//! Requests of a wave go out together, each on its own connection, so a wave costs one
//! round trip. Answers are cached by path (a check on the path an identification already
//! asked costs nothing); every request has its own deadline, all of them share
//! [`AppOptions::total`] and [`AppOptions::max_requests`], and the first request that
//! times out or cannot connect ends the series after its wave (a note says so).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use portgate_model::{
    Application, ApplicationReport, CredentialAttempt, Evidence, Exposure, ExposureKind, Proof,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout};

use super::{ABSENT, App, AppDb, Request, VersionFrom};
use crate::http::{Answer, HttpOptions, fetch};
use crate::tls::{self, TlsOptions};

/// Bytes of an answer (head and body) kept as the proof of an exposure.
const PROOF_BYTES: usize = 512;
/// Characters of a body shown in an identification's evidence line.
const EVIDENCE_CHARS: usize = 80;

/// Limits and choices for [`identify`].
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Requests per port at most, identification, versions, checks and logins together.
    pub max_requests: u32,
    /// Requests spent on identification paths (after `/` and `@absent`) at most.
    pub max_identify_requests: u32,
    /// Time for one request: connect, TLS handshake, request and answer.
    pub timeout: Duration,
    /// Requests in flight at once on one port (each on its own connection): a wave of
    /// independent requests costs one round trip, not one each.
    pub parallel: usize,
    /// Time for the whole series on one port.
    pub total: Duration,
    /// Body bytes read from one answer at most.
    pub max_body_bytes: usize,
    /// Try the vendors' documented default logins (HTTP Basic). Off by default: only for
    /// your own assets.
    pub try_default_credentials: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            max_requests: 16,
            max_identify_requests: 8,
            timeout: Duration::from_secs(4),
            parallel: 4,
            total: Duration::from_secs(20),
            max_body_bytes: 128 * 1024,
            try_default_credentials: false,
        }
    }
}

/// Where the requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The port's address.
    pub addr: SocketAddr,
    /// The `Host` header (the scanned name, else the address).
    pub host: String,
    /// `Some` for HTTPS: the name for SNI (none for a bare address) and the TLS options.
    pub tls: Option<(Option<String>, TlsOptions)>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One port's series of requests.
struct Session<'a> {
    target: &'a Target,
    opts: &'a AppOptions,
    http: HttpOptions,
    cache: HashMap<String, Answer>,
    requests: u32,
    deadline: Instant,
    stopped: Option<String>,
    notes: Vec<String>,
}

impl Session<'_> {
    /// Requests that may still be sent (none once the series has ended).
    fn budget_left(&mut self) -> usize {
        if self.stopped.is_some() {
            return 0;
        }
        if Instant::now() >= self.deadline {
            self.stopped = Some(format!("the time budget ({:?}) ran out", self.opts.total));
            return 0;
        }
        self.opts.max_requests.saturating_sub(self.requests) as usize
    }

    async fn open(&self, within: Duration) -> Result<Box<dyn Stream>, String> {
        let stream = crate::inspect::connect(self.target.addr, within).await?;
        match &self.target.tls {
            None => Ok(Box::new(stream)),
            Some((name, tls_opts)) => tls::handshake(stream, name.as_deref(), tls_opts)
                .await
                .map(|(s, _)| Box::new(s) as Box<dyn Stream>)
                .map_err(|e| format!("TLS: {e}")),
        }
    }

    /// One request on its own connection, within its time and what is left of the total.
    async fn fetch_one(&self, path: &str, authorization: Option<&str>) -> Result<Answer, String> {
        let per_request = self
            .opts
            .timeout
            .min(self.deadline.saturating_duration_since(Instant::now()));
        let http = HttpOptions {
            timeout: per_request,
            ..self.http.clone()
        };
        let port = self.target.addr.port();
        let tls = self.target.tls.is_some();
        let exchange = async {
            let stream = self.open(per_request).await?;
            fetch(
                stream,
                &self.target.host,
                port,
                tls,
                path,
                authorization,
                &http,
            )
            .await
            .map_err(|e| e.to_string())
        };
        match timeout(per_request + Duration::from_millis(50), exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("GET {path}: {e}")),
            Err(_) => Err(format!("GET {path}: timed out after {per_request:?}")),
        }
    }

    /// `requests` (path, credentials) sent at once, at most [`AppOptions::parallel`] at a
    /// time and within the budget; in order, `None` for each one not sent or failed. The
    /// first failure ends the series (the others of its wave still count).
    async fn ask_all(&mut self, requests: &[(&str, Option<&str>)]) -> Vec<Option<Answer>> {
        let left = self.budget_left();
        let sent = requests.len().min(left);
        if sent < requests.len() && self.stopped.is_none() {
            self.stopped = Some(format!(
                "the request budget ({}) was spent before every check ran",
                self.opts.max_requests
            ));
        }
        self.requests += u32::try_from(sent).unwrap_or(u32::MAX);
        let this = &*self;
        // Made first, then run: the futures hold plain borrows (a `Send` future for the
        // server's handlers).
        let pending: Vec<_> = requests[..sent]
            .iter()
            .map(|&(path, auth)| this.fetch_one(path, auth))
            .collect();
        let outcomes: Vec<Result<Answer, String>> = stream::iter(pending)
            .buffered(self.opts.parallel.max(1))
            .collect()
            .await;
        let mut out: Vec<Option<Answer>> = Vec::with_capacity(requests.len());
        for outcome in outcomes {
            match outcome {
                Ok(answer) => out.push(Some(answer)),
                Err(e) => {
                    self.stopped.get_or_insert(e);
                    out.push(None);
                }
            }
        }
        out.resize(requests.len(), None);
        out
    }

    /// Asks the paths of `paths` (without credentials) not asked yet, together; their
    /// answers go to the cache ([`Session::answer`]).
    async fn ask_missing(&mut self, paths: &[&str]) {
        let mut missing: Vec<&str> = Vec::new();
        for p in paths {
            if !self.cache.contains_key(*p) && !missing.contains(p) {
                missing.push(p);
            }
        }
        let asked: Vec<(&str, Option<&str>)> = missing.iter().map(|p| (*p, None)).collect();
        let answers = self.ask_all(&asked).await;
        for (path, answer) in missing.iter().zip(answers) {
            // A failed request is not cached: the series has ended anyway.
            if let Some(answer) = answer {
                self.cache.insert((*path).to_owned(), answer);
            }
        }
    }

    /// The answer to `path` (without credentials), when it was asked and came.
    fn answer(&self, path: &str) -> Option<&Answer> {
        self.cache.get(path)
    }
}

/// A random path that exists nowhere.
fn absent_path() -> String {
    let n = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    format!("/portgate-{n:016x}-absent")
}

/// Whether `answer` is the catch-all's answer (same status and body as `@absent`'s 2xx).
fn like_absent(answer: &Answer, absent: Option<&Answer>) -> bool {
    absent.is_some_and(|a| {
        (200..300).contains(&a.status) && a.status == answer.status && a.body == answer.body
    })
}

/// The favicon hash of `bytes` as Shodan computes it: the signed 32-bit MurmurHash3 of
/// the base64 text with a line break after every 76 characters and at the end.
pub(crate) fn favicon_hash(bytes: &[u8]) -> i32 {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut text = String::with_capacity(encoded.len() + encoded.len() / 76 + 1);
    for chunk in encoded.as_bytes().chunks(76) {
        text.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        text.push('\n');
    }
    let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(text.as_bytes()), 0).unwrap_or(0);
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// Whether `answer` meets every condition of `req`.
fn matches(req: &Request, answer: &Answer) -> bool {
    if !req.status.is_empty() && !req.status.contains(&answer.status) {
        return false;
    }
    let headers_ok = req.headers.iter().all(|(name, pattern)| {
        answer
            .headers
            .iter()
            .any(|(n, v)| n == name && pattern.is_match(v))
    });
    if !headers_ok {
        return false;
    }
    if let Some(t) = &req.title
        && !answer
            .title
            .as_deref()
            .is_some_and(|title| t.is_match(title))
    {
        return false;
    }
    if let Some(b) = &req.body
        && !b.is_match(&answer.body)
    {
        return false;
    }
    if let Some(b) = &req.not_body
        && b.is_match(&answer.body)
    {
        return false;
    }
    if let Some(l) = &req.location
        && !answer.header("location").is_some_and(|loc| l.is_match(loc))
    {
        return false;
    }
    if !req.favicon.is_empty()
        && (answer.body.is_empty()
            || !req
                .favicon
                .contains(answer.favicon.get_or_init(|| favicon_hash(&answer.body))))
    {
        return false;
    }
    true
}

/// The version `req` reads from `answer`, if any.
fn version_of(req: &Request, answer: &Answer) -> Option<String> {
    let rule = req.version.as_ref()?;
    let text = match &rule.from {
        VersionFrom::Body => String::from_utf8_lossy(&answer.body).into_owned(),
        VersionFrom::Title => answer.title.clone()?,
        VersionFrom::Header(name) => answer.header(name)?.to_owned(),
    };
    let found = rule.pattern.captures(&text)?.get(1)?.as_str().trim();
    // A version is short and printable; anything else is not shown.
    (!found.is_empty() && found.len() <= 64 && found.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| found.to_owned())
}

/// `GET /api → 200 application/json "{"version": "6.4.12"}"`: what an identification
/// rests on, escaped.
fn evidence_line(path: &str, answer: &Answer) -> String {
    let mut line = format!("GET {path} → {}", answer.status);
    if let Some(t) = answer.header("content-type") {
        line.push_str(&format!(" {}", escape_text(t, 60)));
    }
    if let Some(loc) = answer.header("location") {
        line.push_str(&format!(", Location {}", escape_text(loc, 120)));
    }
    if let Some(title) = &answer.title {
        line.push_str(&format!(", title \"{}\"", escape_text(title, 120)));
    } else if !answer.body.is_empty() {
        let start =
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(256)]).into_owned();
        line.push_str(&format!(
            ", body \"{}\"",
            escape_text(&start, EVIDENCE_CHARS)
        ));
    }
    line
}

/// `text` with control characters escaped, cut to `max` characters.
fn escape_text(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The proof of an answer: the URL asked, the status and the first bytes of the answer.
fn proof(answer: &Answer, credentials: Option<String>) -> Proof {
    let mut bytes = answer.head.clone();
    bytes.extend_from_slice(&answer.body);
    bytes.truncate(PROOF_BYTES);
    Proof {
        request: format!("GET {}", answer.url),
        credentials,
        status: answer.status,
        answer: Evidence::from(bytes),
    }
}

/// An application being built: the database entry and what was found.
struct Found<'db> {
    app: &'db App,
    out: Application,
}

impl<'db> Found<'db> {
    fn new(app: &'db App) -> Self {
        Found {
            app,
            out: Application {
                id: app.id.clone(),
                name: app.name.clone(),
                category: app.category.clone(),
                version: None,
                evidence: Vec::new(),
                exposures: Vec::new(),
                credential_attempts: Vec::new(),
            },
        }
    }
}

/// Adds to `found` every application an `[[app.identify]]` entry of which matches one of
/// `answers` (the entry's path, the path shown in the evidence, the answer), with the
/// evidence and the version it gives; an application found already gains the evidence.
fn identify_on<'db>(
    db: &'db AppDb,
    port: u16,
    answers: &[(&str, &str, &Answer)],
    found: &mut Vec<Found<'db>>,
) {
    for app in db.apps() {
        for entry in app.identify.iter().filter(|e| e.applies_on(port)) {
            for (path, shown, answer) in answers {
                if entry.path != *path || !matches(entry, answer) {
                    continue;
                }
                let f = match found.iter().position(|f| f.app.id == app.id) {
                    Some(i) => &mut found[i],
                    None => {
                        found.push(Found::new(app));
                        let last = found.len() - 1;
                        &mut found[last]
                    }
                };
                f.out.evidence.push(evidence_line(shown, answer));
                if f.out.version.is_none() {
                    f.out.version = version_of(entry, answer);
                }
            }
        }
    }
}

/// Identify the application behind the HTTP(S) port `target` and prove what it exposes,
/// within the bounds of `opts`. Never fails: what could not be done is a note.
pub async fn identify(target: &Target, db: &AppDb, opts: &AppOptions) -> ApplicationReport {
    let started = std::time::Instant::now();
    let mut session = Session {
        target,
        opts,
        http: HttpOptions {
            timeout: opts.timeout,
            max_body_bytes: opts.max_body_bytes,
            max_evidence_bytes: PROOF_BYTES,
            ..HttpOptions::default()
        },
        cache: HashMap::new(),
        requests: 0,
        deadline: Instant::now() + opts.total,
        stopped: None,
        notes: Vec::new(),
    };
    let found = run(&mut session, db).await;
    let mut notes = std::mem::take(&mut session.notes);
    if let Some(why) = session.stopped.take() {
        notes.push(format!("application checks stopped: {why}"));
    }
    ApplicationReport {
        found: found.into_iter().map(|f| f.out).collect(),
        requests: session.requests,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        notes,
    }
}

async fn run<'db>(s: &mut Session<'_>, db: &'db AppDb) -> Vec<Found<'db>> {
    let port = s.target.addr.port();
    let absent_at = absent_path();
    s.ask_missing(&["/", &absent_at]).await;
    let absent = s.answer(&absent_at).cloned();
    if s.answer("/").is_none() {
        return Vec::new();
    }
    if let Some(a) = &absent
        && (200..300).contains(&a.status)
    {
        s.notes.push(format!(
            "GET {absent_at} answered {}: a catch-all, so answers equal to it are no evidence",
            a.status
        ));
    }
    let Some(root) = s.answer("/") else {
        return Vec::new();
    };

    // Identification on the two answers already at hand.
    let mut found: Vec<Found<'db>> = Vec::new();
    let mut at_hand = vec![("/", "/", root)];
    if let Some(a) = &absent {
        at_hand.push((ABSENT, absent_at.as_str(), a));
    }
    identify_on(db, port, &at_hand, &mut found);

    // Identification by path, in waves: the port's usual applications first.
    if found.is_empty() {
        let mut order: Vec<&App> = db
            .apps()
            .iter()
            .filter(|a| a.ports.contains(&port))
            .collect();
        order.extend(db.apps().iter().filter(|a| !a.ports.contains(&port)));
        let mut paths: Vec<&str> = Vec::new();
        for app in order {
            for entry in app.identify.iter().filter(|e| e.applies_on(port)) {
                let p = entry.path.as_str();
                if p != "/" && p != ABSENT && !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
        paths.truncate(s.opts.max_identify_requests as usize);
        for wave in paths.chunks(s.opts.parallel.max(1)) {
            s.ask_missing(wave).await;
            let answers: Vec<(&str, &str, &Answer)> = wave
                .iter()
                .filter_map(|p| s.answer(p).map(|a| (*p, *p, a)))
                .filter(|(_, _, a)| !like_absent(a, absent.as_ref()))
                .collect();
            identify_on(db, port, &answers, &mut found);
            if !found.is_empty() || s.stopped.is_some() {
                break;
            }
        }
    }

    // The versions not known yet and every check, in one wave.
    let mut wanted: Vec<&str> = Vec::new();
    for f in &found {
        if f.out.version.is_none() {
            wanted.extend(
                f.app
                    .version
                    .iter()
                    .filter(|v| v.applies_on(port))
                    .map(|v| v.path.as_str()),
            );
        }
        wanted.extend(
            f.app
                .checks
                .iter()
                .filter(|c| c.request.applies_on(port))
                .map(|c| c.request.path.as_str()),
        );
    }
    s.ask_missing(&wanted).await;
    for f in &mut found {
        for v in f.app.version.iter().filter(|v| v.applies_on(port)) {
            if f.out.version.is_some() {
                break;
            }
            if let Some(answer) = s.answer(&v.path)
                && matches(v, answer)
                && !like_absent(answer, absent.as_ref())
            {
                f.out.version = version_of(v, answer);
            }
        }
        for check in f.app.checks.iter().filter(|c| c.request.applies_on(port)) {
            let Some(answer) = s.answer(&check.request.path) else {
                continue;
            };
            if matches(&check.request, answer) && !like_absent(answer, absent.as_ref()) {
                f.out.exposures.push(Exposure {
                    check: check.id.clone(),
                    kind: check.kind,
                    title: check.title.clone(),
                    proof: proof(answer, None),
                });
            }
        }
    }

    // The default logins, only when asked for: in one wave, each attempt recorded.
    if s.opts.try_default_credentials {
        use base64::Engine;
        let logins: Vec<(usize, &super::DefaultLogin, String)> = found
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                f.app
                    .logins
                    .iter()
                    .filter(|l| l.request.applies_on(port))
                    .map(move |l| (i, l))
            })
            .map(|(i, l)| {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", l.user, l.password));
                (i, l, format!("Basic {token}"))
            })
            .collect();
        let requests: Vec<(&str, Option<&str>)> = logins
            .iter()
            .map(|(_, l, auth)| (l.request.path.as_str(), Some(auth.as_str())))
            .collect();
        let answers = s.ask_all(&requests).await;
        let scheme = if s.target.tls.is_some() {
            "https"
        } else {
            "http"
        };
        for ((i, login, _), answer) in logins.iter().zip(answers) {
            let Some(f) = found.get_mut(*i) else {
                continue;
            };
            let accepted = answer
                .as_ref()
                .is_some_and(|a| matches(&login.request, a) && !like_absent(a, absent.as_ref()));
            f.out.credential_attempts.push(CredentialAttempt {
                request: format!(
                    "GET {scheme}://{}{}",
                    authority(s.target),
                    login.request.path
                ),
                user: login.user.clone(),
                status: answer.as_ref().map(|a| a.status),
                accepted,
            });
            let Some(answer) = answer.filter(|_| accepted) else {
                continue;
            };
            if f.out.version.is_none() {
                f.out.version = version_of(&login.request, &answer);
            }
            f.out.exposures.push(Exposure {
                check: format!("{}-default-login", f.app.id),
                kind: ExposureKind::DefaultCredentials,
                title: format!(
                    "{} accepts the vendor's default login {}:{}",
                    f.app.name, login.user, login.password
                ),
                proof: proof(
                    &answer,
                    Some(format!("{}:{} (HTTP Basic)", login.user, login.password)),
                ),
            });
        }
    }
    found
}

/// `host:port` as the requests name it (the port left out when it is the scheme's).
fn authority(target: &Target) -> String {
    let default = if target.tls.is_some() { 443 } else { 80 };
    if target.addr.port() == default {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.addr.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn favicon_hash_is_shodans() {
        // The values of Python's `mmh3.hash(base64.encodebytes(data))`, as Shodan computes
        // `http.favicon.hash` (lines of 76 characters, each ending in a line break).
        assert_eq!(favicon_hash(b"portgate"), 6794200);
        assert_eq!(favicon_hash(&[0u8; 100]), -1140816753);
        let bytes: Vec<u8> = (0..=255u8).cycle().take(768).collect();
        assert_eq!(favicon_hash(&bytes), 1836528006);
    }

    #[test]
    fn absent_paths_differ_and_are_valid() {
        let a = absent_path();
        assert!(a.starts_with("/portgate-") && a.ends_with("-absent"), "{a}");
        assert!(a.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn escaped_text_is_cut_and_escaped() {
        assert_eq!(escape_text("a\u{1b}[31mb", 80), "a\\u{1b}[31mb");
        assert_eq!(escape_text("abcdef", 3), "abc…");
    }
}
