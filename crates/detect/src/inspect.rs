//! Everything `--detect` learns about one open port, in one call.
//!
//! [`inspect_port`] runs the probe engine ([`crate::probes::detect`]), then:
//!
//! - **STARTTLS** when the service is SMTP, IMAP, POP3, FTP or PostgreSQL: a fresh
//!   connection is upgraded ([`crate::starttls`]) and the certificate inspected; a server
//!   that does not offer TLS gets a note saying so;
//! - **TLS from the first byte** when nothing answered in plaintext, when the plaintext
//!   answer was an HTTP error of the kind HTTPS servers give to plain requests, or when
//!   the port is a well-known TLS port; inside TLS the port is asked for HTTP, and a
//!   service that greets instead (IMAPS, POP3S, SMTPS) is matched against the banner
//!   probes;
//! - **HTTP** inspection on every port that speaks HTTP, plain or inside TLS.
//!
//! Each step is bounded by its own options; the whole call by their sum.

use std::net::SocketAddr;

use portgate_model::{DetectedService, Detection, Evidence, Protocol, TlsSummary};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use crate::apps::{AppDb, AppOptions, Target, identify};
use crate::http::{HttpOptions, inspect_http, inspect_http_at};
use crate::probes::{DetectOptions, ProbeDb};
use crate::starttls::{self, StartTlsError, StartTlsOptions, Upgrade};
use crate::tls::{self, TlsOptions};

/// Ports where TLS from the first byte is the norm: HTTPS and its alternates, SMTPS,
/// LDAPS, FTPS, IMAPS, POP3S, NNTPS, DNS over TLS, AMQPS, MQTT over TLS, Kubernetes and
/// friends.
pub const TLS_PORTS: &[u16] = &[
    261, 443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 2376, 3269, 4443, 5061, 5671, 6443,
    6697, 8243, 8443, 8883, 9443, 10250, 10443,
];

/// Ports where a service inside TLS speaks first (a greeting), rather than waiting for a
/// request.
const GREETING_TLS_PORTS: &[u16] = &[465, 563, 989, 990, 992, 993, 994, 995, 6697];

/// Limits and choices for [`inspect_port`].
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// The probe engine.
    pub detect: DetectOptions,
    /// TLS handshakes (trust roots, timeout, chain bounds).
    pub tls: TlsOptions,
    /// STARTTLS exchanges.
    pub starttls: StartTlsOptions,
    /// HTTP requests.
    pub http: HttpOptions,
    /// Bound on connecting for the TLS and HTTP steps.
    pub connect_timeout: std::time::Duration,
    /// How long to wait for a greeting inside TLS.
    pub greeting_wait: std::time::Duration,
    /// Most bytes kept from an answer inside TLS.
    pub max_bytes: usize,
    /// The application database; `None` turns the application checks off.
    pub apps: Option<std::sync::Arc<AppDb>>,
    /// Bounds of the application checks (and whether default logins are tried).
    pub app: AppOptions,
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            detect: DetectOptions::default(),
            tls: TlsOptions {
                timeout: std::time::Duration::from_secs(3),
                ..TlsOptions::default()
            },
            starttls: StartTlsOptions::default(),
            http: HttpOptions::default(),
            connect_timeout: std::time::Duration::from_secs(3),
            greeting_wait: std::time::Duration::from_millis(1500),
            max_bytes: 16 * 1024,
            apps: builtin_apps(),
            app: AppOptions::default(),
        }
    }
}

/// The built-in application database, parsed once.
fn builtin_apps() -> Option<std::sync::Arc<AppDb>> {
    static BUILTIN: std::sync::OnceLock<Option<std::sync::Arc<AppDb>>> = std::sync::OnceLock::new();
    BUILTIN
        .get_or_init(|| AppDb::builtin().ok().map(std::sync::Arc::new))
        .clone()
}

/// What answers on the TCP port `addr`: service, product, version, TLS, HTTP and the
/// application behind HTTP, with evidence. `name` is the scanned name (SNI and certificate name check); `None` for a
/// bare address.
pub async fn inspect_port(
    addr: SocketAddr,
    name: Option<&str>,
    db: &ProbeDb,
    opts: &InspectOptions,
) -> DetectedService {
    let mut detection = inspect_detection(addr, name, db, opts).await;
    if let (Some(apps), Some(http)) = (&opts.apps, &detection.http) {
        let target = Target {
            addr,
            host: host_header(addr, name),
            tls: http
                .tls
                .then(|| (name.map(str::to_owned), opts.tls.clone())),
        };
        detection.applications = Some(identify(&target, apps, &opts.app).await);
    }
    DetectedService {
        port: addr.port(),
        protocol: Protocol::Tcp,
        detection,
    }
}

/// [`inspect_port`]'s findings.
async fn inspect_detection(
    addr: SocketAddr,
    name: Option<&str>,
    db: &ProbeDb,
    opts: &InspectOptions,
) -> Detection {
    let mut out = crate::probes::detect(addr, db, &opts.detect).await;
    let service = out.service.clone();

    if let Some(upgrade) = service.as_deref().and_then(Upgrade::for_service) {
        match starttls_at(addr, name, upgrade, opts).await {
            Ok(info) => {
                out.tls = Some(TlsSummary {
                    starttls: Some(upgrade.as_str().to_string()),
                    ..info
                })
            }
            Err(note) => out.notes.push(note),
        }
        return out;
    }

    let try_tls = match service.as_deref() {
        None | Some("tls" | "ssl") => true,
        Some("http") => {
            TLS_PORTS.contains(&addr.port()) || looks_like_https_refusal(out.evidence.as_bytes())
        }
        Some(_) => TLS_PORTS.contains(&addr.port()) && out.soft,
    };
    if try_tls {
        match tls_at(addr, name, db, opts).await {
            Ok((info, inner)) => {
                out.tls = Some(info);
                apply_inner(&mut out, inner);
                return out;
            }
            // Nothing answered in plaintext either: say why TLS did not work.
            Err(note) if service.is_none() => out.notes.push(note),
            Err(_) => {}
        }
    }
    if out.service.as_deref() == Some("http") {
        match inspect_http_at(addr, &host_header(addr, name), &opts.http).await {
            Ok(http) => out.http = Some(http),
            Err(e) => out.notes.push(format!("HTTP: {e}")),
        }
    }
    out
}

/// The `Host` header for `addr`: the scanned name, else the address.
fn host_header(addr: SocketAddr, name: Option<&str>) -> String {
    match (name, addr) {
        (Some(n), _) => n.to_string(),
        (None, SocketAddr::V4(a)) => a.ip().to_string(),
        (None, SocketAddr::V6(a)) => format!("[{}]", a.ip()),
    }
}

/// An HTTP answer saying "this port wants TLS" (nginx: "The plain HTTP request was sent
/// to HTTPS port"; Apache: "speaking plain HTTP to an SSL-enabled server port").
fn looks_like_https_refusal(evidence: &[u8]) -> bool {
    let text = String::from_utf8_lossy(evidence).to_ascii_lowercase();
    text.starts_with("http/")
        && (text.contains("https port")
            || text.contains("ssl-enabled server port")
            || text.contains("tls-enabled")
            || text.contains("client sent an http request to an https server"))
}

/// What was found inside TLS.
enum Inner {
    /// Nothing recognisable (or nothing at all).
    Unknown(Evidence),
    /// A probe database match on the bytes read inside TLS.
    Matched(Detection),
    /// An HTTP answer, and what the probe database made of its head.
    Http(Option<Detection>, Box<portgate_model::HttpInfo>),
}

/// Fold what TLS revealed into `out`.
fn apply_inner(out: &mut Detection, inner: Inner) {
    match inner {
        Inner::Http(found, http) => {
            let head = http.head.clone();
            out.http = Some(*http);
            match found {
                Some(mut d) => {
                    d.evidence = head;
                    apply_inner(out, Inner::Matched(d));
                }
                None => apply_inner(out, Inner::Unknown(head)),
            }
            // An HTTP answer inside TLS is HTTPS, whatever the head's product.
            if !matches!(out.service.as_deref(), Some(s) if s != "tls" && s != "http") {
                out.service = Some("https".to_string());
            }
        }
        Inner::Matched(d) => {
            let service = d.service.map(|s| tls_service_name(&s));
            // A plaintext answer already named the product (e.g. nginx's 400 page):
            // keep what is most specific.
            out.service = service.or(out.service.take());
            if d.product.is_some() {
                out.product = d.product;
                out.version = d.version;
                out.info = d.info;
                out.cpe = d.cpe;
            }
            if out.probe.is_none() || !d.evidence.is_empty() {
                out.probe = d.probe.map(|p| format!("tls/{p}"));
                out.evidence = d.evidence;
            }
            out.soft = d.soft;
        }
        Inner::Unknown(bytes) => {
            match out.service.as_deref() {
                None => out.service = Some("tls".to_string()),
                Some("http") => out.service = Some("https".to_string()),
                Some(_) => {}
            }
            if out.evidence.is_empty() {
                out.evidence = bytes;
            }
        }
    }
}

/// The name of a service reached inside TLS (`http` → `https`, `imap` → `imaps`, ...).
fn tls_service_name(service: &str) -> String {
    match service {
        "http" => "https",
        "imap" => "imaps",
        "pop3" => "pop3s",
        "smtp" => "smtps",
        "ftp" => "ftps",
        "ldap" => "ldaps",
        "nntp" => "nntps",
        "irc" => "ircs",
        other => other,
    }
    .to_string()
}

/// Connect within `within` (Nagle off: the exchanges are small and sequential).
pub(crate) async fn connect(
    addr: SocketAddr,
    within: std::time::Duration,
) -> Result<TcpStream, String> {
    match timeout(within, TcpStream::connect(addr)).await {
        Err(_) => Err(format!("connect timed out after {within:?}")),
        Ok(Err(e)) => Err(format!("connect failed: {e}")),
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

/// STARTTLS on a fresh connection, then the certificate.
async fn starttls_at(
    addr: SocketAddr,
    name: Option<&str>,
    upgrade: Upgrade,
    opts: &InspectOptions,
) -> Result<TlsSummary, String> {
    let mut stream = connect(addr, opts.connect_timeout).await?;
    match starttls::upgrade(&mut stream, upgrade, &opts.starttls).await {
        Ok(()) => {}
        Err(e @ StartTlsError::NotOffered { .. }) => {
            return Err(format!("STARTTLS not offered: {e}"));
        }
        Err(e) => return Err(format!("STARTTLS failed: {e}")),
    }
    tls::handshake(stream, name, &opts.tls)
        .await
        .map(|(_, info)| info)
        .map_err(|e| format!("TLS after STARTTLS: {e}"))
}

/// TLS from the first byte, then what answers inside.
async fn tls_at(
    addr: SocketAddr,
    name: Option<&str>,
    db: &ProbeDb,
    opts: &InspectOptions,
) -> Result<(TlsSummary, Inner), String> {
    let stream = connect(addr, opts.connect_timeout).await?;
    let (mut tls_stream, info) = tls::handshake(stream, name, &opts.tls)
        .await
        .map_err(|e| e.to_string())?;
    if GREETING_TLS_PORTS.contains(&addr.port()) {
        return Ok((info, greeting_inside(&mut tls_stream, db, opts).await));
    }
    let host = host_header(addr, name);
    if let Ok(http) = inspect_http(tls_stream, &host, addr.port(), true, &opts.http).await {
        let found = match_inner(db, http.head.as_bytes());
        return Ok((info, Inner::Http(found, Box::new(http))));
    }
    // Not HTTP: perhaps a service that greets; ask again on a fresh connection.
    let inner = match connect(addr, opts.connect_timeout).await {
        Ok(stream) => match tls::handshake(stream, name, &opts.tls).await {
            Ok((mut again, _)) => greeting_inside(&mut again, db, opts).await,
            Err(_) => Inner::Unknown(Evidence::default()),
        },
        Err(_) => Inner::Unknown(Evidence::default()),
    };
    Ok((info, inner))
}

/// Wait for a greeting inside TLS and match it against the banner probes.
async fn greeting_inside<S>(stream: &mut S, db: &ProbeDb, opts: &InspectOptions) -> Inner
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut bytes = Vec::new();
    read_some(stream, &mut bytes, opts.greeting_wait, opts.max_bytes).await;
    match match_inner(db, &bytes) {
        Some(mut d) => {
            d.evidence = bytes.into();
            Inner::Matched(d)
        }
        None => Inner::Unknown(bytes.into()),
    }
}

/// The first hard match of the banner probes and the HTTP probes on `bytes`, else the
/// first soft one.
fn match_inner(db: &ProbeDb, bytes: &[u8]) -> Option<Detection> {
    if bytes.is_empty() {
        return None;
    }
    let candidates: Vec<_> = db
        .probes()
        .iter()
        .filter(|p| p.is_null() || p.payload().starts_with(b"GET "))
        .collect();
    let hard = candidates.iter().find_map(|p| {
        p.try_match(bytes)
            .filter(|d| !d.soft)
            .map(|d| (p.name().to_string(), d))
    });
    let found = hard.or_else(|| {
        candidates
            .iter()
            .find_map(|p| p.try_match(bytes).map(|d| (p.name().to_string(), d)))
    });
    found.map(|(probe, mut d)| {
        d.probe = Some(probe);
        d
    })
}

/// Read a greeting: until a line ends, the peer stops, `wait` passes, or `cap` bytes are
/// kept.
async fn read_some<S>(stream: &mut S, bytes: &mut Vec<u8>, wait: std::time::Duration, cap: usize)
where
    S: AsyncRead + Unpin,
{
    let deadline = Instant::now() + wait;
    let mut chunk = [0u8; 4096];
    while bytes.len() < cap {
        let want = chunk.len().min(cap - bytes.len());
        let Some(buf) = chunk.get_mut(..want) else {
            break;
        };
        match timeout_at(deadline, stream.read(buf)).await {
            Ok(Ok(n)) if n > 0 => {
                bytes.extend_from_slice(buf.get(..n).unwrap_or_default());
                // A whole greeting line is enough to identify.
                if bytes.ends_with(b"\n") {
                    break;
                }
            }
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_refusals_are_recognised() {
        assert!(looks_like_https_refusal(
            b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n<center>The plain HTTP request was sent to HTTPS port</center>"
        ));
        assert!(looks_like_https_refusal(
            b"HTTP/1.1 400 Bad Request\r\n\r\nYou're speaking plain HTTP to an SSL-enabled server port."
        ));
        assert!(!looks_like_https_refusal(
            b"HTTP/1.1 200 OK\r\n\r\n<title>hi</title>"
        ));
        assert!(!looks_like_https_refusal(b"SSH-2.0-x https port\r\n"));
    }

    #[test]
    fn service_names_inside_tls() {
        assert_eq!(tls_service_name("http"), "https");
        assert_eq!(tls_service_name("imap"), "imaps");
        assert_eq!(tls_service_name("redis"), "redis");
    }
}
