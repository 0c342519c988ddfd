//! Reading an answer: the head up to its end (capped), then the body by its framing
//! (length, chunked or until close), every read bounded by the deadline.

use super::*;

/// The first bytes of `bytes`, escaped for an error message.
pub(super) fn escaped_start(bytes: &[u8]) -> String {
    let end = bytes.len().min(ERROR_PREFIX_BYTES);
    let mut s: String = bytes[..end].escape_ascii().to_string();
    if bytes.len() > end {
        s.push_str("...");
    }
    s
}

/// Read until `buf` holds a complete head; return its length. `buf` may already hold
/// bytes; it never grows past [`HttpOptions::max_head_bytes`].
pub(super) async fn read_head<S>(
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
pub(super) fn head_end(buf: &[u8], from: usize) -> Option<usize> {
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

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (204, 304, 101).
    None,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length`.
    Length(u64),
    /// Until the connection closes.
    UntilClose,
}

pub(super) fn body_framing(head: &Head, notes: &mut Vec<String>) -> Framing {
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
/// until its end, the closing `</title` (when `to_title`), the byte cap or the deadline.
pub(super) async fn read_body<S>(
    stream: &mut S,
    mut body: Vec<u8>,
    framing: Framing,
    deadline: Instant,
    opts: &HttpOptions,
    to_title: bool,
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
        if to_title && find_ascii_ci(&body[scanned..], b"</title").is_some() {
            break;
        }
        // A server that keeps the connection open after the last chunk is not waited for.
        if framing == Framing::Chunked && chunked_complete(&body, &mut next_chunk) {
            break;
        }
        scanned = body.len().saturating_sub(b"</title".len() - 1);
        if body.len() >= limit {
            if to_title && limit < expected && find_ascii_ci(&body, b"<title").is_none() {
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

/// [`read_body`], then the chunked framing undone: the body, and how many bytes of it came
/// on the wire.
pub(super) async fn read_decoded_body<S>(
    stream: &mut S,
    leftover: Vec<u8>,
    framing: Framing,
    deadline: Instant,
    opts: &HttpOptions,
    to_title: bool,
    notes: &mut Vec<String>,
) -> (Vec<u8>, usize)
where
    S: AsyncRead + Unpin,
{
    let raw = read_body(stream, leftover, framing, deadline, opts, to_title, notes).await;
    let wire = raw.len();
    let body = match framing {
        Framing::Chunked => decode_chunked(&raw, notes),
        _ => raw,
    };
    (body, wire)
}

/// Position of `needle` (lower-case ASCII) in `hay`, ignoring ASCII case.
pub(super) fn find_ascii_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether the chunked body in `raw` has ended (last chunk seen, or malformed), walking
/// the chunks from `*next` and leaving `*next` at the first chunk not yet complete.
pub(super) fn chunked_complete(raw: &[u8], next: &mut usize) -> bool {
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
pub(super) fn decode_chunked(raw: &[u8], notes: &mut Vec<String>) -> Vec<u8> {
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
