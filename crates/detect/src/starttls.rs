//! STARTTLS: upgrading a plaintext connection to TLS so that the certificate behind it can
//! be inspected.
//!
//! [`upgrade`] speaks just enough of each protocol to ask for TLS — SMTP (`EHLO`, then
//! `STARTTLS`, RFC 3207), IMAP (`STARTTLS`, RFC 9051), POP3 (`STLS`, RFC 2595), FTP
//! (`AUTH TLS`, RFC 4217), PostgreSQL (the `SSLRequest` message) and MySQL/MariaDB (the
//! `SSLRequest` packet after the server's handshake, when it advertises `CLIENT_SSL`) —
//! and leaves the
//! stream ready for a TLS client handshake ([`crate::tls::handshake`]). A server that does
//! not offer TLS gives [`StartTlsError::NotOffered`] with what it said.
//!
//! Every read is bounded: lines by [`StartTlsOptions::max_line`], the whole exchange by
//! [`StartTlsOptions::max_bytes`] and [`StartTlsOptions::timeout`].

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

/// The protocols whose STARTTLS (or equivalent) upgrade is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upgrade {
    /// SMTP `STARTTLS` after `EHLO`.
    Smtp,
    /// IMAP `STARTTLS`.
    Imap,
    /// POP3 `STLS`.
    Pop3,
    /// FTP `AUTH TLS`.
    Ftp,
    /// PostgreSQL `SSLRequest`.
    Postgresql,
    /// MySQL / MariaDB `SSLRequest` packet.
    Mysql,
}

impl Upgrade {
    /// The upgrade for a detected service name (`smtp`, `imap`, `pop3`, `ftp`,
    /// `postgresql`), if it has one.
    pub fn for_service(service: &str) -> Option<Self> {
        match service {
            "smtp" | "submission" => Some(Self::Smtp),
            "imap" => Some(Self::Imap),
            "pop3" => Some(Self::Pop3),
            "ftp" => Some(Self::Ftp),
            "postgresql" => Some(Self::Postgresql),
            "mysql" => Some(Self::Mysql),
            _ => None,
        }
    }

    /// Short lower-case name, as reported (`smtp`, `imap`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Smtp => "smtp",
            Self::Imap => "imap",
            Self::Pop3 => "pop3",
            Self::Ftp => "ftp",
            Self::Postgresql => "postgresql",
            Self::Mysql => "mysql",
        }
    }
}

impl fmt::Display for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bounds on a STARTTLS exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartTlsOptions {
    /// The whole exchange, greeting to the server's go-ahead.
    pub timeout: Duration,
    /// Longest line accepted from the server.
    pub max_line: usize,
    /// Most bytes read from the server in all.
    pub max_bytes: usize,
    /// Name given in SMTP `EHLO`.
    pub ehlo_name: String,
}

impl Default for StartTlsOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_line: 4096,
            max_bytes: 64 * 1024,
            ehlo_name: "portgate.invalid".to_string(),
        }
    }
}

/// Why a connection could not be upgraded.
#[derive(Debug, thiserror::Error)]
pub enum StartTlsError {
    /// The server does not offer TLS here; what it said (escaped, capped).
    #[error("{upgrade} server does not offer TLS: {said}")]
    NotOffered {
        /// The protocol.
        upgrade: Upgrade,
        /// The server's answer.
        said: String,
    },
    /// The server said something the protocol does not allow at this point.
    #[error("{upgrade}: unexpected answer: {said}")]
    Unexpected {
        /// The protocol.
        upgrade: Upgrade,
        /// The server's answer.
        said: String,
    },
    /// The exchange did not finish in time.
    #[error("{upgrade}: no answer within {timeout:?}")]
    Timeout {
        /// The protocol.
        upgrade: Upgrade,
        /// The bound.
        timeout: Duration,
    },
    /// A line or the exchange exceeded its byte bound.
    #[error("{upgrade}: server sent more than {limit} bytes")]
    TooLong {
        /// The protocol.
        upgrade: Upgrade,
        /// The bound.
        limit: usize,
    },
    /// The connection closed or failed.
    #[error("{upgrade}: connection closed: {reason}")]
    Closed {
        /// The protocol.
        upgrade: Upgrade,
        /// What happened.
        reason: String,
    },
}

/// Ask the server on `stream` for TLS. On `Ok`, the next bytes on the stream belong to the
/// TLS handshake, which the caller starts.
pub async fn upgrade<S>(
    stream: &mut S,
    upgrade: Upgrade,
    opts: &StartTlsOptions,
) -> Result<(), StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conv = Conversation {
        stream,
        upgrade,
        deadline: Instant::now() + opts.timeout,
        timeout: opts.timeout,
        max_line: opts.max_line,
        budget: opts.max_bytes,
        buf: Vec::new(),
    };
    match upgrade {
        Upgrade::Smtp => smtp(&mut conv, &opts.ehlo_name).await,
        Upgrade::Imap => imap(&mut conv).await,
        Upgrade::Pop3 => pop3(&mut conv).await,
        Upgrade::Ftp => ftp(&mut conv).await,
        Upgrade::Postgresql => postgresql(&mut conv).await,
        Upgrade::Mysql => mysql(&mut conv).await,
    }
}

async fn smtp<S>(c: &mut Conversation<'_, S>, ehlo_name: &str) -> Result<(), StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let greeting = c.reply().await?;
    if !greeting.starts_with("220") {
        return Err(c.unexpected(&greeting));
    }
    c.send(format!("EHLO {ehlo_name}\r\n").as_bytes()).await?;
    let ehlo = c.reply().await?;
    if !ehlo.starts_with("250") {
        return Err(c.unexpected(&ehlo));
    }
    let offered = ehlo.lines().any(|line| {
        line.get(4..)
            .is_some_and(|ext| ext.trim().eq_ignore_ascii_case("STARTTLS"))
    });
    if !offered {
        return Err(c.not_offered(&ehlo));
    }
    c.send(b"STARTTLS\r\n").await?;
    let go = c.reply().await?;
    if go.starts_with("220") {
        Ok(())
    } else {
        Err(c.not_offered(&go))
    }
}

async fn imap<S>(c: &mut Conversation<'_, S>) -> Result<(), StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let greeting = c.line().await?;
    if !greeting.starts_with("* OK") {
        return Err(c.unexpected(&greeting));
    }
    c.send(b"pg1 STARTTLS\r\n").await?;
    loop {
        let line = c.line().await?;
        if let Some(status) = line.strip_prefix("pg1 ") {
            return if status.starts_with("OK") {
                Ok(())
            } else {
                Err(c.not_offered(&line))
            };
        }
        // Untagged lines (capabilities, alerts) may come first.
        if !line.starts_with('*') {
            return Err(c.unexpected(&line));
        }
    }
}

async fn pop3<S>(c: &mut Conversation<'_, S>) -> Result<(), StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let greeting = c.line().await?;
    if !greeting.starts_with("+OK") {
        return Err(c.unexpected(&greeting));
    }
    c.send(b"STLS\r\n").await?;
    let go = c.line().await?;
    if go.starts_with("+OK") {
        Ok(())
    } else {
        Err(c.not_offered(&go))
    }
}

async fn ftp<S>(c: &mut Conversation<'_, S>) -> Result<(), StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let greeting = c.reply().await?;
    if !greeting.starts_with("220") {
        return Err(c.unexpected(&greeting));
    }
    c.send(b"AUTH TLS\r\n").await?;
    let go = c.reply().await?;
    if go.starts_with("234") {
        Ok(())
    } else {
        Err(c.not_offered(&go))
    }
}

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

async fn postgresql<S>(c: &mut Conversation<'_, S>) -> Result<(), StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    c.send(&PG_SSL_REQUEST).await?;
    match c.byte().await? {
        b'S' => Ok(()),
        b'N' => Err(c.not_offered("N (SSL not enabled on the server)")),
        other => Err(c.unexpected(&escape(&[other]))),
    }
}

/// MySQL capability flags used here.
const MYSQL_CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const MYSQL_CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const MYSQL_CLIENT_SSL: u32 = 0x0000_0800;
const MYSQL_CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
/// Largest MySQL handshake packet read.
const MYSQL_MAX_HANDSHAKE: usize = 1024;

async fn mysql<S>(c: &mut Conversation<'_, S>) -> Result<(), StartTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Packet header: 3-byte little-endian length, sequence number.
    let header = c.exact(4).await?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len == 0 || len > MYSQL_MAX_HANDSHAKE {
        return Err(c.unexpected(&format!("handshake packet of {len} bytes")));
    }
    let payload = c.exact(len).await?;
    // Protocol 10: version byte, NUL-terminated server version, thread id (4),
    // auth data (8), filler (1), capability flags (lower 2 bytes).
    let Some((&10, rest)) = payload.split_first() else {
        return Err(c.unexpected(&escape(
            payload.get(..16.min(payload.len())).unwrap_or_default(),
        )));
    };
    let Some(nul) = rest.iter().position(|&b| b == 0) else {
        return Err(c.unexpected("handshake without a server version"));
    };
    let version = String::from_utf8_lossy(rest.get(..nul).unwrap_or_default()).into_owned();
    let caps = rest
        .get(nul + 1 + 4 + 8 + 1..nul + 1 + 4 + 8 + 1 + 2)
        .map(|b| u32::from(b[0]) | u32::from(b[1]) << 8)
        .ok_or_else(|| c.unexpected("handshake too short for its capability flags"))?;
    if caps & MYSQL_CLIENT_SSL == 0 {
        return Err(c.not_offered(&format!("server {version} does not advertise CLIENT_SSL")));
    }
    let flags = MYSQL_CLIENT_LONG_PASSWORD
        | MYSQL_CLIENT_PROTOCOL_41
        | MYSQL_CLIENT_SSL
        | MYSQL_CLIENT_SECURE_CONNECTION;
    let mut packet = vec![32, 0, 0, header[3].wrapping_add(1)];
    packet.extend_from_slice(&flags.to_le_bytes());
    packet.extend_from_slice(&(16u32 << 20).to_le_bytes());
    packet.push(0x21); // utf8_general_ci
    packet.extend_from_slice(&[0u8; 23]);
    c.send(&packet).await
}

/// One bounded exchange with a server.
struct Conversation<'a, S> {
    stream: &'a mut S,
    upgrade: Upgrade,
    deadline: Instant,
    timeout: Duration,
    max_line: usize,
    /// Bytes the server may still send.
    budget: usize,
    /// Received and not yet consumed.
    buf: Vec<u8>,
}

impl<S> Conversation<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async fn send(&mut self, bytes: &[u8]) -> Result<(), StartTlsError> {
        match timeout_at(self.deadline, self.stream.write_all(bytes)).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(e)) => Err(self.closed(e.to_string())),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Read more bytes into the buffer (at least one).
    async fn fill(&mut self) -> Result<(), StartTlsError> {
        if self.budget == 0 {
            return Err(StartTlsError::TooLong {
                upgrade: self.upgrade,
                limit: self.max_line.max(1),
            });
        }
        let mut chunk = [0u8; 1024];
        let want = chunk.len().min(self.budget);
        let Some(dst) = chunk.get_mut(..want) else {
            return Err(self.closed("read buffer".to_string()));
        };
        match timeout_at(self.deadline, self.stream.read(dst)).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(e)) => Err(self.closed(e.to_string())),
            Ok(Ok(0)) => Err(self.closed("end of stream".to_string())),
            Ok(Ok(n)) => {
                self.budget -= n;
                self.buf.extend_from_slice(dst.get(..n).unwrap_or_default());
                Ok(())
            }
        }
    }

    /// Exactly `n` bytes.
    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, StartTlsError> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One byte.
    async fn byte(&mut self) -> Result<u8, StartTlsError> {
        while self.buf.is_empty() {
            self.fill().await?;
        }
        Ok(self.buf.remove(0))
    }

    /// One line, without its line ending, lossily decoded.
    async fn line(&mut self) -> Result<String, StartTlsError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=end).collect();
                let text = raw.get(..end).unwrap_or_default();
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                return Ok(String::from_utf8_lossy(text).into_owned());
            }
            if self.buf.len() > self.max_line {
                return Err(StartTlsError::TooLong {
                    upgrade: self.upgrade,
                    limit: self.max_line,
                });
            }
            self.fill().await?;
        }
    }

    /// A multi-line reply of the SMTP/FTP kind (`250-...` continued, `250 ...` last):
    /// its lines joined by `\n`.
    async fn reply(&mut self) -> Result<String, StartTlsError> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await?;
            let last = !matches!(line.as_bytes().get(3), Some(b'-'));
            lines.push(line);
            if last {
                return Ok(lines.join("\n"));
            }
        }
    }

    fn timed_out(&self) -> StartTlsError {
        StartTlsError::Timeout {
            upgrade: self.upgrade,
            timeout: self.timeout,
        }
    }

    fn closed(&self, reason: String) -> StartTlsError {
        StartTlsError::Closed {
            upgrade: self.upgrade,
            reason,
        }
    }

    fn unexpected(&self, said: &str) -> StartTlsError {
        StartTlsError::Unexpected {
            upgrade: self.upgrade,
            said: cap(said),
        }
    }

    fn not_offered(&self, said: &str) -> StartTlsError {
        StartTlsError::NotOffered {
            upgrade: self.upgrade,
            said: cap(said),
        }
    }
}

/// Longest server text kept in an error.
const MAX_SAID: usize = 200;

fn cap(text: &str) -> String {
    let escaped = escape(text.as_bytes());
    match escaped.char_indices().nth(MAX_SAID) {
        Some((at, _)) => format!("{}…", escaped.get(..at).unwrap_or_default()),
        None => escaped,
    }
}

fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}
