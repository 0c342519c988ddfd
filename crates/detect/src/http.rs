//! HTTP inspection: one `GET` request over a stream the caller opened (plain TCP, or TLS
//! after the caller's handshake), and what the answer tells about the service: status,
//! redirect, server, title, security headers, cookie flags and CORS.
//!
//! A scanned service may be hostile, so everything is bounded: one deadline covers the
//! request and the whole answer, the head is read up to [`HttpOptions::max_head_bytes`]
//! and parsed for at most [`HttpOptions::max_headers`] headers, and at most
//! [`HttpOptions::max_body_bytes`] of body are read to find the title.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use portgate_model::{CookieFlags, Cors, HttpInfo, SecurityHeaders};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

/// The `Origin` sent with every request, to see how the service answers CORS for an
/// origin it cannot know (`.invalid` is reserved and never resolves).
pub const CORS_PROBE_ORIGIN: &str = "https://portgate.invalid";

/// The `User-Agent` sent with every request.
pub const USER_AGENT: &str = concat!("portgate/", env!("CARGO_PKG_VERSION"));

/// Longest title kept, in characters.
const MAX_TITLE_CHARS: usize = 256;
/// Longest header value kept in a field (the full value stays in the evidence).
const MAX_VALUE_CHARS: usize = 1024;
/// Interim (1xx) answers skipped before giving up.
const MAX_INTERIM: usize = 4;
/// How many bytes of an unexpected answer an error message shows.
const ERROR_PREFIX_BYTES: usize = 48;
/// Size of one read.
const READ_CHUNK: usize = 4096;

/// Options for an HTTP inspection.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time allowed for sending the request and reading the answer, all together (and, in
    /// [`inspect_http_at`], separately for the TCP connect). A body still arriving at the
    /// deadline is cut short; a head still arriving is an error.
    pub timeout: Duration,
    /// A response head (status line and headers) longer than this is an error.
    pub max_head_bytes: usize,
    /// Headers beyond this many are not read (the answer is still described, with a note).
    pub max_headers: usize,
    /// Body bytes read at most (on the wire) while looking for the title.
    pub max_body_bytes: usize,
    /// The head is kept as evidence up to this many bytes.
    pub max_evidence_bytes: usize,
    /// Path requested; starts with `/`, visible ASCII only.
    pub path: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_head_bytes: 64 * 1024,
            max_headers: 256,
            max_body_bytes: 64 * 1024,
            max_evidence_bytes: 16 * 1024,
            path: "/".to_string(),
        }
    }
}

/// Why an HTTP inspection gave no answer to describe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The host or path given cannot be put in a request.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidRequest {
        /// `host` or `path`.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TCP connection failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// Target address.
        addr: SocketAddr,
        /// Underlying error.
        source: io::Error,
    },
    /// The deadline passed before the response head was complete (or before connecting).
    #[error("timed out after {after:?} {stage} ({received} bytes received)")]
    Timeout {
        /// The time allowed.
        after: Duration,
        /// What was being done: `connecting`, `sending the request`, `waiting for the
        /// response head` or `reading the response head`.
        stage: &'static str,
        /// Bytes of the answer received by then.
        received: usize,
    },
    /// Reading or writing failed.
    #[error("{stage}: {source}")]
    Io {
        /// What was being done.
        stage: &'static str,
        /// Underlying error.
        source: io::Error,
    },
    /// The answer does not start like an HTTP response.
    #[error("not HTTP: the answer starts with \"{start}\"")]
    NotHttp {
        /// The first bytes, escaped.
        start: String,
    },
    /// The answer starts like HTTP, but its head does not parse.
    #[error("malformed HTTP response head ({reason}); it starts with \"{start}\"")]
    Malformed {
        /// What the parser rejected.
        reason: String,
        /// The first bytes, escaped.
        start: String,
    },
    /// No end of the head within the cap.
    #[error("response head over {limit} bytes (the cap) without an end")]
    HeadTooLarge {
        /// [`HttpOptions::max_head_bytes`].
        limit: usize,
    },
    /// The service closed the connection before the end of the head.
    #[error(
        "connection closed before the response head was complete ({received} bytes received{})",
        if start.is_empty() { String::new() } else { format!(", starting with \"{start}\"") }
    )]
    Closed {
        /// Bytes received.
        received: usize,
        /// The first bytes, escaped.
        start: String,
    },
    /// Too many informational (1xx) answers before the final one.
    #[error("more than {limit} informational (1xx) answers before the final one")]
    TooManyInterim {
        /// How many are skipped at most.
        limit: usize,
    },
}

/// Connect to `addr` over plain TCP (within [`HttpOptions::timeout`]) and run
/// [`inspect_http`] on it. `host` goes into the `Host` header; pass the address as text
/// when there is no name.
pub async fn inspect_http_at(
    addr: SocketAddr,
    host: &str,
    opts: &HttpOptions,
) -> Result<HttpInfo, HttpError> {
    // Refuse a bad host or path before touching the network.
    build_request(host, addr.port(), false, &opts.path)?;
    let stream = match timeout(opts.timeout, TcpStream::connect(addr)).await {
        Err(_) => {
            return Err(HttpError::Timeout {
                after: opts.timeout,
                stage: "connecting",
                received: 0,
            });
        }
        Ok(Err(source)) => return Err(HttpError::Connect { addr, source }),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    inspect_http(stream, host, addr.port(), false, opts).await
}

/// Send `GET {path} HTTP/1.1` over `stream` and describe the answer.
///
/// `host` and `port` make the `Host` header and the URL that a relative `Location`
/// resolves against; `tls` says whether `stream` is a TLS stream (the caller did the
/// handshake), which makes the URL `https` and `Strict-Transport-Security` expected. The
/// request carries `User-Agent: portgate/<version>`, `Accept: */*`,
/// `Origin: https://portgate.invalid` ([`CORS_PROBE_ORIGIN`]) and `Connection: close`.
///
/// Errors only when there is no response head to describe; anything odd after it (body
/// cut short, headers past the cap, unparsable cookies) is a note in
/// [`HttpInfo::notes`].
pub async fn inspect_http<S>(
    mut stream: S,
    host: &str,
    port: u16,
    tls: bool,
    opts: &HttpOptions,
) -> Result<HttpInfo, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = build_request(host, port, tls, &opts.path)?;
    let deadline = Instant::now() + opts.timeout;
    let timed_out = |stage, received| HttpError::Timeout {
        after: opts.timeout,
        stage,
        received,
    };

    let send = async {
        stream.write_all(request.text.as_bytes()).await?;
        stream.flush().await
    };
    match timeout_at(deadline, send).await {
        Err(_) => return Err(timed_out("sending the request", 0)),
        Ok(Err(source)) => {
            return Err(HttpError::Io {
                stage: "sending the request",
                source,
            });
        }
        Ok(Ok(())) => {}
    }

    let mut notes = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(opts.max_head_bytes.min(16 * 1024));
    let mut interim = 0;
    let (head_len, parsed) = loop {
        let head_len = read_head(&mut stream, &mut buf, deadline, opts).await?;
        let parsed = parse_head(&buf[..head_len], opts.max_headers, &mut notes)?;
        if (100..200).contains(&parsed.status) && parsed.status != 101 {
            interim += 1;
            if interim > MAX_INTERIM {
                return Err(HttpError::TooManyInterim { limit: MAX_INTERIM });
            }
            notes.push(format!("skipped an interim answer {}", parsed.status));
            buf.drain(..head_len);
            continue;
        }
        break (head_len, parsed);
    };

    let head = &buf[..head_len];
    let evidence_len = head_len.min(opts.max_evidence_bytes);
    let mut info = HttpInfo {
        url: request.url.clone(),
        tls,
        version: parsed.version.to_string(),
        status: parsed.status,
        reason: parsed.reason.clone(),
        location: None,
        redirect_url: None,
        redirects_to_https: None,
        server: parsed.value("server", &mut notes),
        content_type: parsed.value("content-type", &mut notes),
        title: None,
        security_headers: SecurityHeaders::default(),
        missing_security_headers: Vec::new(),
        cookies: Vec::new(),
        cors: None,
        head: head[..evidence_len].to_vec(),
        head_truncated: evidence_len < head_len,
        body_bytes_read: 0,
        notes: Vec::new(),
    };

    for name in SecurityHeaders::NAMES {
        let value = parsed.value(name, &mut notes);
        // An empty value sets no policy: count the header as missing.
        if value
            .as_deref()
            .is_some_and(|v| v.split(',').all(|p| p.trim().is_empty()))
        {
            notes.push(format!("{name} is empty"));
            continue;
        }
        if let Some(slot) = info.security_headers.slot_mut(name) {
            *slot = value;
        }
    }
    info.missing_security_headers = info.security_headers.missing(tls);
    if !tls && info.security_headers.hsts.is_some() {
        notes.push("Strict-Transport-Security over plain HTTP has no effect".to_string());
    }

    // Several Location headers make no sense together; the first one counts.
    info.location = parsed
        .values("location")
        .next()
        .map(|l| cap_chars(l, MAX_VALUE_CHARS, "Location", &mut notes));
    if let (Some(location), true) = (&info.location, info.is_redirect()) {
        match url::Url::parse(&request.url).and_then(|base| base.join(location.trim())) {
            Ok(target) => {
                info.redirects_to_https = Some(target.scheme() == "https");
                info.redirect_url = Some(target.to_string());
            }
            Err(e) => notes.push(format!(
                "Location {location:?} does not resolve against {}: {e}",
                request.url
            )),
        }
    }

    info.cookies = cookies(&parsed, &mut notes);
    info.cors = cors(&parsed, &mut notes);

    // The title: from the body, when it is (or may be) HTML.
    let framing = body_framing(&parsed, &mut notes);
    let htmlish = info
        .content_type
        .as_deref()
        .is_none_or(|t| t.to_ascii_lowercase().contains("html"));
    let encoded = parsed
        .value("content-encoding", &mut notes)
        .filter(|e| !e.trim().eq_ignore_ascii_case("identity"));
    if let Some(enc) = &encoded {
        if htmlish && framing != Framing::None {
            notes.push(format!("body is {enc}-encoded; title not read"));
        }
    } else if htmlish && framing != Framing::None {
        let leftover = buf.split_off(head_len);
        let body = read_body(&mut stream, leftover, framing, deadline, opts, &mut notes).await;
        info.body_bytes_read = body.len() as u64;
        let decoded = match framing {
            Framing::Chunked => decode_chunked(&body, &mut notes),
            _ => body,
        };
        info.title = extract_title(&decoded);
    }

    info.notes = notes;
    Ok(info)
}

/// The request bytes and the URL they ask for.
struct Request {
    text: String,
    url: String,
}

fn build_request(host: &str, port: u16, tls: bool, path: &str) -> Result<Request, HttpError> {
    let bad_host = |reason| HttpError::InvalidRequest {
        what: "host",
        value: host.to_string(),
        reason,
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let authority_host = if bare.parse::<Ipv6Addr>().is_ok() {
        format!("[{bare}]")
    } else if host.is_empty() {
        return Err(bad_host("empty"));
    } else if !host.is_ascii() {
        return Err(bad_host("not ASCII (give the IDNA form)"));
    } else if host
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || b"-._~".contains(&b)))
    {
        return Err(bad_host(
            "only letters, digits, '-', '.', '_' and '~' may appear",
        ));
    } else {
        host.to_string()
    };
    if !path.starts_with('/') {
        return Err(HttpError::InvalidRequest {
            what: "path",
            value: path.to_string(),
            reason: "does not start with '/'",
        });
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::InvalidRequest {
            what: "path",
            value: path.to_string(),
            reason: "only visible ASCII may appear (percent-encode the rest)",
        });
    }
    let default_port = if tls { 443 } else { 80 };
    let authority = if port == default_port {
        authority_host
    } else {
        format!("{authority_host}:{port}")
    };
    let scheme = if tls { "https" } else { "http" };
    Ok(Request {
        text: format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n\
             Accept: */*\r\nOrigin: {CORS_PROBE_ORIGIN}\r\nConnection: close\r\n\r\n"
        ),
        url: format!("{scheme}://{authority}{path}"),
    })
}

/// The first bytes of `bytes`, escaped for an error message.
fn escaped_start(bytes: &[u8]) -> String {
    let end = bytes.len().min(ERROR_PREFIX_BYTES);
    let mut s: String = bytes[..end].escape_ascii().to_string();
    if bytes.len() > end {
        s.push_str("...");
    }
    s
}

/// Read until `buf` holds a complete head; return its length. `buf` may already hold
/// bytes; it never grows past [`HttpOptions::max_head_bytes`].
async fn read_head<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
    opts: &HttpOptions,
) -> Result<usize, HttpError>
where
    S: AsyncRead + Unpin,
{
    let mut chunk = [0u8; READ_CHUNK];
    let mut scanned = 0;
    loop {
        let prefix = &buf[..buf.len().min(5)];
        if !b"HTTP/".starts_with(prefix) {
            return Err(HttpError::NotHttp {
                start: escaped_start(buf),
            });
        }
        if let Some(end) = head_end(buf, scanned) {
            return Ok(end);
        }
        // The end marker is at most 4 bytes; re-scan the tail that could hold its start.
        scanned = buf.len().saturating_sub(3);
        let room = opts.max_head_bytes.saturating_sub(buf.len());
        if room == 0 {
            return Err(HttpError::HeadTooLarge {
                limit: opts.max_head_bytes,
            });
        }
        let want = room.min(READ_CHUNK);
        let n = match timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Err(_) => {
                let stage = if buf.is_empty() {
                    "waiting for the response head"
                } else {
                    "reading the response head"
                };
                return Err(HttpError::Timeout {
                    after: opts.timeout,
                    stage,
                    received: buf.len(),
                });
            }
            // A TLS peer that closes without close_notify: a close like any other.
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Ok(Err(source)) => {
                return Err(HttpError::Io {
                    stage: "reading the response head",
                    source,
                });
            }
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Err(HttpError::Closed {
                received: buf.len(),
                start: escaped_start(buf),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// End of the head (just past the empty line; bare `\n` line ends are accepted), searching
/// from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| {
        if buf[i] != b'\n' {
            return None;
        }
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

/// A parsed response head.
struct Head {
    version: &'static str,
    status: u16,
    reason: String,
    /// Header names (lower case) and raw values, in order.
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Every value of header `name`, as text.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
    }

    /// The values of header `name` joined with `, `, capped, if present.
    fn value(&self, name: &str, notes: &mut Vec<String>) -> Option<String> {
        let all: Vec<String> = self.values(name).collect();
        if all.is_empty() {
            return None;
        }
        Some(cap_chars(all.join(", "), MAX_VALUE_CHARS, name, notes))
    }
}

/// `s` cut to `max` characters; a note says so when it was longer.
fn cap_chars(mut s: String, max: usize, what: &str, notes: &mut Vec<String>) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max) {
        notes.push(format!(
            "{what} cut to {max} characters (of {})",
            s.chars().count()
        ));
        s.truncate(cut);
    }
    s
}

fn parse_head(head: &[u8], max_headers: usize, notes: &mut Vec<String>) -> Result<Head, HttpError> {
    // Lines after the status line, less the empty one: an upper bound on the headers.
    let lines = head
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(2);
    let cut;
    let head = if lines > max_headers {
        // Keep the status line and the first `max_headers` lines, then end the head there.
        let end = head
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(max_headers)
            .map_or(head.len(), |(i, _)| i + 1);
        let mut shortened = head[..end].to_vec();
        shortened.extend_from_slice(b"\r\n");
        cut = shortened;
        notes.push(format!(
            "{lines} header lines; only the first {max_headers} were read (the cap)"
        ));
        &cut[..]
    } else {
        head
    };

    let mut slots = vec![httparse::EMPTY_HEADER; lines.min(max_headers) + 1];
    let mut response = httparse::Response::new(&mut slots);
    let status = httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .parse_response(&mut response, head);
    let malformed = |reason: String| HttpError::Malformed {
        reason,
        start: escaped_start(head),
    };
    match status {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(malformed("incomplete head".to_string())),
        Err(e) => return Err(malformed(e.to_string())),
    }
    let version = match response.version {
        Some(0) => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let status = response
        .code
        .ok_or_else(|| malformed("no status code".to_string()))?;
    let reason = response.reason.unwrap_or_default().to_string();
    let headers = response
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    Ok(Head {
        version,
        status,
        reason,
        headers,
    })
}

fn cookies(head: &Head, notes: &mut Vec<String>) -> Vec<CookieFlags> {
    let mut out = Vec::new();
    for (i, raw) in head.values("set-cookie").enumerate() {
        match cookie::Cookie::parse(raw.as_str()) {
            Ok(c) => out.push(CookieFlags {
                name: cap_chars(c.name().to_string(), 128, "cookie name", notes),
                secure: c.secure().unwrap_or(false),
                http_only: c.http_only().unwrap_or(false),
                same_site: c.same_site().map(|s| s.to_string()),
            }),
            Err(e) => notes.push(format!(
                "Set-Cookie #{} not understood ({e}): \"{}\"",
                i + 1,
                escaped_start(raw.as_bytes())
            )),
        }
    }
    out
}

fn cors(head: &Head, notes: &mut Vec<String>) -> Option<Cors> {
    let allow_origin = head.value("access-control-allow-origin", notes);
    let credentials = head.value("access-control-allow-credentials", notes);
    if allow_origin.is_none() && credentials.is_none() {
        return None;
    }
    let allow_credentials = credentials
        .as_deref()
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("true"));
    let origin = allow_origin.as_deref().map(str::trim);
    let wildcard = origin == Some("*");
    let reflects_origin = origin.is_some_and(|o| o.eq_ignore_ascii_case(CORS_PROBE_ORIGIN));
    if wildcard && allow_credentials {
        notes.push(
            "CORS: wildcard origin with credentials (browsers refuse this combination)".to_string(),
        );
    }
    if origin.is_some_and(|o| o.eq_ignore_ascii_case("null")) {
        notes.push("CORS: the null origin is allowed".to_string());
    }
    Some(Cors {
        request_origin: CORS_PROBE_ORIGIN.to_string(),
        allow_origin,
        allow_credentials,
        wildcard,
        reflects_origin,
        any_origin_with_credentials: reflects_origin && allow_credentials,
    })
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (204, 304, 101).
    None,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`.
    Length(u64),
    /// Until the connection closes.
    UntilClose,
}

fn body_framing(head: &Head, notes: &mut Vec<String>) -> Framing {
    if matches!(head.status, 101 | 204 | 304) {
        return Framing::None;
    }
    if let Some(te) = head.value("transfer-encoding", notes) {
        let last = te.rsplit(',').next().unwrap_or("").trim();
        return if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        };
    }
    let lengths: Vec<String> = head.values("content-length").collect();
    if lengths.is_empty() {
        return Framing::UntilClose;
    }
    let parsed: Vec<Option<u64>> = lengths
        .iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().parse().ok())
        .collect();
    match parsed.first() {
        Some(Some(n)) if parsed.iter().all(|p| *p == Some(*n)) => Framing::Length(*n),
        _ => {
            notes.push(format!(
                "invalid Content-Length {:?}; body read until close",
                lengths.join(", ")
            ));
            Framing::UntilClose
        }
    }
}

/// Read the body as it is on the wire, starting with the bytes already read after the head,
/// until its end, the closing `</title`, the byte cap or the deadline.
async fn read_body<S>(
    stream: &mut S,
    mut body: Vec<u8>,
    framing: Framing,
    deadline: Instant,
    opts: &HttpOptions,
    notes: &mut Vec<String>,
) -> Vec<u8>
where
    S: AsyncRead + Unpin,
{
    let expected = match framing {
        Framing::Length(n) => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let limit = expected.min(opts.max_body_bytes);
    body.truncate(limit);
    body.reserve_exact(limit - body.len());
    let mut chunk = [0u8; READ_CHUNK];
    let mut scanned = 0;
    // Offset of the next chunk-size line, for a chunked body.
    let mut next_chunk = 0;
    loop {
        if find_ascii_ci(&body[scanned..], b"</title").is_some() {
            break;
        }
        // A server that keeps the connection open after the last chunk is not waited for.
        if framing == Framing::Chunked && chunked_complete(&body, &mut next_chunk) {
            break;
        }
        scanned = body.len().saturating_sub(b"</title".len() - 1);
        if body.len() >= limit {
            if limit < expected && find_ascii_ci(&body, b"<title").is_none() {
                notes.push(format!(
                    "no title in the first {} body bytes (the cap)",
                    opts.max_body_bytes
                ));
            }
            break;
        }
        let want = (limit - body.len()).min(READ_CHUNK);
        match timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Err(_) => {
                notes.push(format!(
                    "body read stopped by the {:?} timeout after {} bytes",
                    opts.timeout,
                    body.len()
                ));
                break;
            }
            Ok(Err(e)) if e.kind() != io::ErrorKind::UnexpectedEof => {
                notes.push(format!("body read failed after {} bytes: {e}", body.len()));
                break;
            }
            // End of stream, or a TLS peer closing without close_notify.
            Ok(Ok(0)) | Ok(Err(_)) => {
                if expected != usize::MAX && body.len() < expected {
                    notes.push(format!(
                        "connection closed after {} of {expected} body bytes",
                        body.len()
                    ));
                }
                break;
            }
            Ok(Ok(n)) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body
}

/// Position of `needle` (lower-case ASCII) in `hay`, ignoring ASCII case.
fn find_ascii_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether the chunked body in `raw` has ended (last chunk seen, or malformed), walking
/// the chunks from `*next` and leaving `*next` at the first chunk not yet complete.
fn chunked_complete(raw: &[u8], next: &mut usize) -> bool {
    loop {
        let Some(rest) = raw.get(*next..) else {
            return false;
        };
        match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete((_, 0))) | Err(_) => return true,
            Ok(httparse::Status::Complete((used, size))) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                let end = next
                    .saturating_add(used)
                    .saturating_add(size)
                    .saturating_add(2);
                if end > raw.len() {
                    return false;
                }
                *next = end;
            }
            Ok(httparse::Status::Partial) => return false,
        }
    }
}

/// The data of a chunked body, as far as it is complete.
fn decode_chunked(raw: &[u8], notes: &mut Vec<String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut pos = 0;
    while pos < raw.len() {
        match httparse::parse_chunk_size(&raw[pos..]) {
            Ok(httparse::Status::Complete((used, size))) => {
                if size == 0 {
                    break;
                }
                let start = pos + used;
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                let end = start.saturating_add(size).min(raw.len());
                out.extend_from_slice(&raw[start..end]);
                // Skip the data and its CRLF.
                pos = end.saturating_add(2);
            }
            Ok(httparse::Status::Partial) => break,
            Err(_) => {
                notes.push(format!("malformed chunked body at byte {pos}"));
                break;
            }
        }
    }
    out
}

/// The first `<title>` of an HTML body: entities decoded, whitespace collapsed, capped.
fn extract_title(body: &[u8]) -> Option<String> {
    let mut from = 0;
    let open_end = loop {
        let at = from + find_ascii_ci(&body[from..], b"<title")?;
        let after = at + b"<title".len();
        match body.get(after) {
            // `<title>` or `<title lang=..>`, not `<titles>`.
            Some(b'>' | b' ' | b'\t' | b'\r' | b'\n') => {
                let close = body[after..].iter().position(|&b| b == b'>')?;
                break after + close + 1;
            }
            _ => from = after,
        }
    };
    let text = &body[open_end..];
    let text = &text[..find_ascii_ci(text, b"</title").unwrap_or(text.len())];
    let text = String::from_utf8_lossy(text);
    let decoded = html_escape::decode_html_entities(&text);
    let mut title = String::new();
    for word in decoded.split_whitespace() {
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(word);
        if title.len() > MAX_TITLE_CHARS * 4 {
            break;
        }
    }
    if let Some((cut, _)) = title.char_indices().nth(MAX_TITLE_CHARS) {
        title.truncate(cut);
    }
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_accepts_crlf_and_lf() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nbody", 0), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\nbody", 0), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn titles() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"<html><title>Hi</title>", Some("Hi")),
            (
                b"<TITLE lang=en>\n  A &amp; B\t&lt;C&gt; &#233;t&eacute;  </TiTlE>",
                Some("A & B <C> été"),
            ),
            (b"<titles>no</titles><title>yes</title>", Some("yes")),
            (b"<title>   </title>", None),
            (b"<title>unclosed and cut", Some("unclosed and cut")),
            (b"no title here", None),
        ];
        for (body, want) in cases {
            assert_eq!(extract_title(body).as_deref(), *want, "{body:?}");
        }
        let long = format!("<title>{}</title>", "x".repeat(10_000));
        assert_eq!(
            extract_title(long.as_bytes()).map(|t| t.chars().count()),
            Some(MAX_TITLE_CHARS)
        );
    }

    #[test]
    fn chunked_decoding() {
        let mut notes = Vec::new();
        let raw = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(decode_chunked(raw, &mut notes), b"hello world");
        assert_eq!(decode_chunked(b"5\r\nhel", &mut notes), b"hel");
        assert!(notes.is_empty());
        assert_eq!(decode_chunked(b"zz\r\nhello", &mut notes), b"");
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn chunked_end_is_found_incrementally() {
        let raw = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let mut next = 0;
        assert!(!chunked_complete(&raw[..12], &mut next));
        assert_eq!(next, 10);
        assert!(!chunked_complete(&raw[..20], &mut next));
        assert!(chunked_complete(raw, &mut next));
        assert_eq!(next, 21);
        assert!(chunked_complete(b"zz\r\n", &mut 0));
    }

    #[test]
    fn request_rejects_bad_host_and_path() {
        assert!(build_request("a\r\nX: y", 80, false, "/").is_err());
        assert!(build_request("", 80, false, "/").is_err());
        assert!(build_request("host", 80, false, "no-slash").is_err());
        assert!(build_request("host", 80, false, "/a b").is_err());
        let r = build_request("::1", 8443, true, "/").expect("v6");
        assert_eq!(r.url, "https://[::1]:8443/");
        let r = build_request("example.test", 80, false, "/x").expect("name");
        assert_eq!(r.url, "http://example.test/x");
        assert!(
            r.text
                .starts_with("GET /x HTTP/1.1\r\nHost: example.test\r\n")
        );
    }
}
