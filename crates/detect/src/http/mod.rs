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

mod judge;
mod read;

use judge::*;
use read::*;

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
    build_request(host, addr.port(), false, &opts.path, &origin_header())?;
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
    let request = build_request(host, port, tls, &opts.path, &origin_header())?;
    let deadline = Instant::now() + opts.timeout;
    let mut notes = Vec::new();
    let (mut buf, head_len, parsed) =
        exchange(&mut stream, &request, deadline, opts, &mut notes).await?;

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
        head: head[..evidence_len].to_vec().into(),
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
        let (decoded, wire) = read_decoded_body(
            &mut stream,
            buf.split_off(head_len),
            framing,
            deadline,
            opts,
            true,
            &mut notes,
        )
        .await;
        info.body_bytes_read = wire as u64;
        info.title = extract_title(&decoded);
    }

    info.notes = notes;
    Ok(info)
}

/// Send `request` and read the final answer's head (interim `1xx` answers skipped, with a
/// note): the bytes read so far (the head, then whatever of the body came with it), the
/// head's length and the parsed head.
async fn exchange<S>(
    stream: &mut S,
    request: &Request,
    deadline: Instant,
    opts: &HttpOptions,
    notes: &mut Vec<String>,
) -> Result<(Vec<u8>, usize, Head), HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let send = async {
        stream.write_all(request.text.as_bytes()).await?;
        stream.flush().await
    };
    match timeout_at(deadline, send).await {
        Err(_) => {
            return Err(HttpError::Timeout {
                after: opts.timeout,
                stage: "sending the request",
                received: 0,
            });
        }
        Ok(Err(source)) => {
            return Err(HttpError::Io {
                stage: "sending the request",
                source,
            });
        }
        Ok(Ok(())) => {}
    }
    let mut buf: Vec<u8> = Vec::with_capacity(opts.max_head_bytes.min(16 * 1024));
    let mut interim = 0;
    loop {
        let head_len = read_head(stream, &mut buf, deadline, opts).await?;
        let parsed = parse_head(&buf[..head_len], opts.max_headers, notes)?;
        if (100..200).contains(&parsed.status) && parsed.status != 101 {
            interim += 1;
            if interim > MAX_INTERIM {
                return Err(HttpError::TooManyInterim { limit: MAX_INTERIM });
            }
            notes.push(format!("skipped an interim answer {}", parsed.status));
            buf.drain(..head_len);
            continue;
        }
        return Ok((buf, head_len, parsed));
    }
}

/// An answer read whole (up to the body cap), for the application checks.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// The URL asked for.
    pub(crate) url: String,
    /// Status code.
    pub(crate) status: u16,
    /// Header names (lower case) and values, in order.
    pub(crate) headers: Vec<(String, String)>,
    /// The HTML title, when the body has one.
    pub(crate) title: Option<String>,
    /// The response head as received (capped like the evidence).
    pub(crate) head: Vec<u8>,
    /// The body, de-chunked, at most [`HttpOptions::max_body_bytes`].
    pub(crate) body: Vec<u8>,
    /// The body's favicon hash, computed when first asked for.
    pub(crate) favicon: std::sync::OnceLock<i32>,
}

impl Answer {
    /// The first value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over `stream` with `Accept-Encoding: identity` and, when given, an
/// `Authorization` header; the answer is read whole up to the body cap, whatever its
/// content type. Bounded like [`inspect_http`].
pub(crate) async fn fetch<S>(
    mut stream: S,
    host: &str,
    port: u16,
    tls: bool,
    path: &str,
    authorization: Option<&str>,
    opts: &HttpOptions,
) -> Result<Answer, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let extra = match authorization {
        Some(value) => format!("Accept-Encoding: identity\r\nAuthorization: {value}\r\n"),
        None => "Accept-Encoding: identity\r\n".to_owned(),
    };
    let request = build_request(host, port, tls, path, &extra)?;
    let deadline = Instant::now() + opts.timeout;
    let mut notes = Vec::new();
    let (mut buf, head_len, parsed) =
        exchange(&mut stream, &request, deadline, opts, &mut notes).await?;
    let head = buf[..head_len.min(opts.max_evidence_bytes)].to_vec();
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|(n, v)| {
            let value = String::from_utf8_lossy(v).trim().to_string();
            (
                n.to_ascii_lowercase(),
                cap_chars(value, MAX_VALUE_CHARS, n, &mut notes),
            )
        })
        .collect();
    let framing = body_framing(&parsed, &mut notes);
    let body = if framing == Framing::None {
        Vec::new()
    } else {
        read_decoded_body(
            &mut stream,
            buf.split_off(head_len),
            framing,
            deadline,
            opts,
            false,
            &mut notes,
        )
        .await
        .0
    };
    let htmlish = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .is_none_or(|(_, t)| t.to_ascii_lowercase().contains("html"));
    Ok(Answer {
        url: request.url,
        status: parsed.status,
        title: if htmlish { extract_title(&body) } else { None },
        headers,
        head,
        body,
        favicon: std::sync::OnceLock::new(),
    })
}

/// The request bytes and the URL they ask for.
struct Request {
    text: String,
    url: String,
}

/// The `Origin` header line of the inspection request (the application checks send none:
/// some applications refuse API requests from a foreign origin).
fn origin_header() -> String {
    format!("Origin: {CORS_PROBE_ORIGIN}\r\n")
}

/// The request for `path`; `extra` is more header lines, each ending in CRLF.
fn build_request(
    host: &str,
    port: u16,
    tls: bool,
    path: &str,
    extra: &str,
) -> Result<Request, HttpError> {
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
             Accept: */*\r\n{extra}Connection: close\r\n\r\n"
        ),
        url: format!("{scheme}://{authority}{path}"),
    })
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
        assert!(build_request("a\r\nX: y", 80, false, "/", "").is_err());
        assert!(build_request("", 80, false, "/", "").is_err());
        assert!(build_request("host", 80, false, "no-slash", "").is_err());
        assert!(build_request("host", 80, false, "/a b", "").is_err());
        let r = build_request("::1", 8443, true, "/", "").expect("v6");
        assert_eq!(r.url, "https://[::1]:8443/");
        let r = build_request("example.test", 80, false, "/x", "").expect("name");
        assert_eq!(r.url, "http://example.test/x");
        assert!(
            r.text
                .starts_with("GET /x HTTP/1.1\r\nHost: example.test\r\n")
        );
    }
}
