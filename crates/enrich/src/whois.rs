//! WHOIS (RFC 3912, TCP port 43) for the domains whose registry has no RDAP service:
//! the query is the domain and CR LF, the answer free text read until the server
//! closes, within a cap (256 KiB by default) and a time limit (10 s by default).
//!
//! The server comes from a table by suffix (built in: `data/whois-servers.txt`,
//! replaceable with [`WhoisServers::from_path`]), or is given per call.
//!
//! [`parse_whois`] reads the common `Key: value` forms (keys matched without regard to
//! case): the registrar (`Registrar:`, `Registrar Name:`, `Sponsoring Registrar:`,
//! `registrar:`), its IANA id (`Registrar IANA ID:`), the expiry (`Registry Expiry
//! Date:`, `Registrar Registration Expiration Date:`, `Expiry Date:`, `Expiration Date:`,
//! `paid-till:`, `Expires:`), the creation (`Creation Date:`, `Created:`, `Registered:`,
//! `Registration Date:`), the last change (`Updated Date:`, `Changed:`, `Last
//! Modified:`), the name servers (`Name Server:`, `nserver:`, `Nameserver:`) and the
//! status (`Domain Status:`, `Status:`, `state:`). The first value of each single field
//! is taken. Text after `>>> Last update of WHOIS database` is the registry's notice and
//! is not read.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::EnrichError;
use crate::ratelimit::ServerRateLimiter;
use crate::registration::{Registration, RegistrationSource, parse_date};
use crate::text::escape_text;

/// The WHOIS port.
pub const WHOIS_PORT: u16 = 43;
/// Largest server table read, in bytes.
const MAX_TABLE_BYTES: u64 = 4 << 20;
/// Longest value kept from an answer, in characters.
const MAX_TEXT: usize = 256;
/// Most name servers and status values kept.
const MAX_ITEMS: usize = 64;
/// Longest line read from an answer, in bytes (longer lines are cut).
const MAX_LINE: usize = 4096;

const BUILTIN_SERVERS: &str = include_str!("../data/whois-servers.txt");

/// WHOIS servers by domain suffix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhoisServers {
    servers: HashMap<String, String>,
}

impl WhoisServers {
    /// No server.
    pub fn empty() -> WhoisServers {
        WhoisServers::default()
    }

    /// The built-in table (`data/whois-servers.txt`).
    pub fn builtin() -> Result<WhoisServers, EnrichError> {
        WhoisServers::parse("built-in whois-servers.txt", BUILTIN_SERVERS)
    }

    /// Reads a table: one line per suffix, `suffix server`, the server as `host` or
    /// `host:port` (`[v6]:port` for an IPv6 address); `#` starts a comment.
    pub fn from_path(path: &Path) -> Result<WhoisServers, EnrichError> {
        let bytes = crate::read::read_file_capped(path, MAX_TABLE_BYTES)?;
        let shown = path.display().to_string();
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| EnrichError::format(&shown, format!("not UTF-8: {e}")))?;
        WhoisServers::parse(&shown, text)
    }

    /// Parses a table (see [`from_path`](Self::from_path)); `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<WhoisServers, EnrichError> {
        let mut servers = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line_no = n as u64 + 1;
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(suffix), Some(server), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(EnrichError::line(
                    origin,
                    line_no,
                    "line",
                    line,
                    "expected two fields: a suffix and a server",
                ));
            };
            let suffix = crate::registration::host_to_ascii(suffix)
                .map_err(|e| EnrichError::line(origin, line_no, "suffix", suffix, e.to_string()))?;
            check_server(server)
                .map_err(|why| EnrichError::line(origin, line_no, "server", server, why))?;
            servers.insert(suffix, server.to_owned());
        }
        Ok(WhoisServers { servers })
    }

    /// Sets the server of a suffix.
    pub fn insert(&mut self, suffix: &str, server: &str) -> Result<(), EnrichError> {
        let suffix = crate::registration::host_to_ascii(suffix)?;
        check_server(server).map_err(|why| EnrichError::name(server, why))?;
        self.servers.insert(suffix, server.to_owned());
        Ok(())
    }

    /// The server of `domain`: that of its longest suffix in the table.
    pub fn server_for(&self, domain: &str) -> Option<&str> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut rest = domain.as_str();
        loop {
            if let Some(server) = self.servers.get(rest) {
                return Some(server);
            }
            rest = rest.split_once('.')?.1;
        }
    }
}

/// `host`, `host:port`, `[v6]:port` or a bare address, with no space or control
/// character.
fn check_server(server: &str) -> Result<(), String> {
    if server.is_empty() || server.len() > 300 {
        return Err("empty or longer than 300 bytes".into());
    }
    if server
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err("not a host or host:port".into());
    }
    let (_, port) = split_server(server);
    if port == 0 {
        return Err("port 0".into());
    }
    Ok(())
}

/// `host:port` → (`host`, port); a bare host or address gets port 43.
fn split_server(server: &str) -> (&str, u16) {
    if server.parse::<std::net::Ipv6Addr>().is_ok() {
        return (server, WHOIS_PORT);
    }
    if let Some(rest) = server.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
    {
        return (host, port.parse().unwrap_or(0));
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().unwrap_or(0)),
        _ => (server.trim_matches(['[', ']']), WHOIS_PORT),
    }
}

/// How WHOIS requests are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoisOptions {
    /// Time limit of one request, from connecting to the server's close: 10 s by
    /// default.
    pub timeout: Duration,
    /// Largest answer read: 256 KiB by default.
    pub max_response_bytes: usize,
}

impl Default for WhoisOptions {
    fn default() -> Self {
        WhoisOptions {
            timeout: Duration::from_secs(10),
            max_response_bytes: 256 << 10,
        }
    }
}

/// A WHOIS client.
#[derive(Debug)]
pub struct WhoisClient {
    servers: WhoisServers,
    options: WhoisOptions,
    limiter: Arc<ServerRateLimiter>,
}

impl WhoisClient {
    /// A client finding servers in `servers`, its requests spaced by `limiter`.
    pub fn new(
        servers: WhoisServers,
        options: WhoisOptions,
        limiter: Arc<ServerRateLimiter>,
    ) -> WhoisClient {
        WhoisClient {
            servers,
            options,
            limiter,
        }
    }

    /// The server table.
    pub fn servers(&self) -> &WhoisServers {
        &self.servers
    }

    /// Asks `server` (or, when `None`, the table's server for the domain) about
    /// `domain` and parses the answer.
    pub async fn lookup(
        &self,
        domain: &str,
        server: Option<&str>,
    ) -> Result<Registration, EnrichError> {
        let domain = crate::registration::host_to_ascii(domain)?;
        let server = match server {
            Some(s) => {
                check_server(s).map_err(|why| EnrichError::name(s, why))?;
                s.to_owned()
            }
            None => self
                .servers
                .server_for(&domain)
                .ok_or_else(|| EnrichError::NoServer {
                    query: domain.clone(),
                    message: "no WHOIS server in the table for its suffix".into(),
                })?
                .to_owned(),
        };
        let (host, port) = split_server(&server);
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        self.limiter.wait(&target).await;
        let text = query(&target, host, port, &domain, &self.options).await?;
        let reg = parse_whois(&domain, &target, &text, Utc::now());
        if reg.registrar.is_none()
            && reg.expires.is_none()
            && reg.created.is_none()
            && reg.nameservers.is_empty()
            && says_not_found(&text)
        {
            return Err(EnrichError::NotFound {
                query: domain,
                server: target,
            });
        }
        Ok(reg)
    }
}

/// Sends `domain\r\n` to `host:port` and reads the answer until the server closes.
async fn query(
    target: &str,
    host: &str,
    port: u16,
    domain: &str,
    options: &WhoisOptions,
) -> Result<String, EnrichError> {
    let cap = options.max_response_bytes;
    let failed = |what: &str, e: std::io::Error| EnrichError::Request {
        target: target.to_owned(),
        message: format!("{what}: {e}"),
    };
    let work = async {
        let mut stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| failed("connect", e))?;
        stream
            .write_all(format!("{domain}\r\n").as_bytes())
            .await
            .map_err(|e| failed("send", e))?;
        let mut body = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await.map_err(|e| failed("read", e))?;
            if n == 0 {
                break;
            }
            if body.len() + n > cap {
                return Err(EnrichError::too_large(
                    target,
                    "the answer",
                    format!("{cap} bytes"),
                ));
            }
            body.extend_from_slice(&buf[..n]);
        }
        Ok(body)
    };
    let body = tokio::time::timeout(options.timeout, work)
        .await
        .map_err(|_| EnrichError::Timeout {
            target: target.to_owned(),
            after: options.timeout,
        })??;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn says_not_found(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "no match for",
        "not found",
        "no entries found",
        "no data found",
        "status: free",
        "status: available",
        "is available for registration",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

/// Which field a key fills.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Registrar,
    RegistrarIana,
    Expires,
    Created,
    Changed,
    NameServer,
    Status,
}

fn field_of(key: &str) -> Option<Field> {
    Some(match key {
        "registrar" | "registrar name" | "sponsoring registrar" => Field::Registrar,
        "registrar iana id" => Field::RegistrarIana,
        "registry expiry date"
        | "registrar registration expiration date"
        | "expiry date"
        | "expiration date"
        | "expire date"
        | "paid-till"
        | "expires"
        | "expires on" => Field::Expires,
        "creation date" | "created" | "registered" | "registered on" | "registration date"
        | "created on" => Field::Created,
        "updated date" | "changed" | "last modified" | "last updated" => Field::Changed,
        "name server" | "nserver" | "nameserver" | "name servers" => Field::NameServer,
        "domain status" | "status" | "state" | "registration status" => Field::Status,
        _ => return None,
    })
}

/// Reads a WHOIS answer about `domain` from `server` (see the module's documentation
/// for the keys understood). Values that cannot be used are listed in
/// [`Registration::warnings`] with their line.
pub fn parse_whois(
    domain: &str,
    server: &str,
    text: &str,
    fetched_at: DateTime<Utc>,
) -> Registration {
    let mut reg = Registration {
        domain: domain.to_owned(),
        source: RegistrationSource::Whois,
        server: server.to_owned(),
        registrar: None,
        registrar_iana_id: None,
        status: Vec::new(),
        created: None,
        expires: None,
        last_changed: None,
        nameservers: Vec::new(),
        fetched_at,
        warnings: Vec::new(),
    };
    // Some registries (.uk, .eu) put the value on the line after a lone "Key:".
    let mut pending: Option<(Field, usize)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = cut_line(raw).trim();
        if line.starts_with(">>>") {
            break;
        }
        if line.is_empty() {
            pending = None;
            continue;
        }
        if line.starts_with('%') || line.starts_with('#') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((key, value)) if !key.contains("://") && key.len() <= 64 => {
                let key = key.trim().to_ascii_lowercase();
                match field_of(&key) {
                    Some(f) => {
                        let value = value.trim();
                        if value.is_empty() {
                            pending = Some((f, 0));
                            continue;
                        }
                        pending = None;
                        (f, value)
                    }
                    None => match pending {
                        // A continuation line that itself has a colon (a date with
                        // a time, a URL).
                        Some((f, count)) if raw.starts_with(char::is_whitespace) => {
                            pending = Some((f, count + 1));
                            (f, line)
                        }
                        _ => {
                            pending = None;
                            continue;
                        }
                    },
                }
            }
            _ => match pending {
                Some((f, count)) => {
                    pending = Some((f, count + 1));
                    (f, line)
                }
                None => continue,
            },
        };
        // A lone-key block holds one value for single fields.
        if let Some((f, count)) = pending
            && count > 1
            && !matches!(f, Field::NameServer | Field::Status)
        {
            continue;
        }
        apply(&mut reg, field, value, line_no);
    }
    reg
}

/// At most `MAX_LINE` bytes of a line (on a character boundary).
fn cut_line(line: &str) -> &str {
    if line.len() <= MAX_LINE {
        return line;
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

fn apply(reg: &mut Registration, field: Field, value: &str, line_no: usize) {
    let date = |reg: &mut Registration, slot: Option<DateTime<Utc>>, name: &str| {
        if slot.is_some() {
            return slot;
        }
        let parsed = parse_date(value);
        if parsed.is_none() {
            reg.warnings.push(format!(
                "line {line_no}: {name} = {:?}: not a date in a known form",
                escape_text(value, 64)
            ));
        }
        parsed
    };
    match field {
        Field::Registrar => {
            if reg.registrar.is_none() {
                reg.registrar = Some(escape_text(value, MAX_TEXT));
            }
        }
        Field::RegistrarIana => {
            if reg.registrar_iana_id.is_none() {
                match value.parse::<u32>() {
                    Ok(id) => reg.registrar_iana_id = Some(id),
                    Err(_) => reg.warnings.push(format!(
                        "line {line_no}: Registrar IANA ID = {:?}: not a number",
                        escape_text(value, 64)
                    )),
                }
            }
        }
        Field::Expires => reg.expires = date(reg, reg.expires, "expiry"),
        Field::Created => reg.created = date(reg, reg.created, "creation"),
        Field::Changed => reg.last_changed = date(reg, reg.last_changed, "last change"),
        Field::NameServer => {
            // `ns1.example.test. 198.18.0.53` or `ns1.example.test (198.18.0.53)`.
            let name = value.split_whitespace().next().unwrap_or_default();
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !name.is_empty() && reg.nameservers.len() < MAX_ITEMS {
                let name = escape_text(&name, MAX_TEXT);
                if !reg.nameservers.contains(&name) {
                    reg.nameservers.push(name);
                }
            }
        }
        Field::Status => {
            // `clientTransferProhibited https://icann.org/epp#…`, or
            // `REGISTERED, DELEGATED, VERIFIED`.
            for part in value.split(',') {
                let word = part.split_whitespace().next().unwrap_or_default();
                let word = if part.contains("://") {
                    word
                } else {
                    part.trim()
                };
                if !word.is_empty() && reg.status.len() < MAX_ITEMS {
                    let word = escape_text(word, MAX_TEXT);
                    if !reg.status.contains(&word) {
                        reg.status.push(word);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_split() {
        assert_eq!(
            split_server("whois.example.test"),
            ("whois.example.test", 43)
        );
        assert_eq!(split_server("127.0.0.1:4343"), ("127.0.0.1", 4343));
        assert_eq!(split_server("[::1]:4343"), ("::1", 4343));
        assert_eq!(split_server("2001:db8::43"), ("2001:db8::43", 43));
        assert!(check_server("host:0").is_err());
        assert!(check_server("a b").is_err());
    }

    #[test]
    fn builtin_table_parses() {
        let t = WhoisServers::builtin().expect("built-in table");
        assert_eq!(t.server_for("example.de"), Some("whois.denic.de"));
        assert_eq!(t.server_for("shop.example.co.uk"), Some("whois.nic.uk"));
        assert_eq!(t.server_for("example.test"), None);
    }

    #[test]
    fn bad_table_line_names_the_line() {
        let err = WhoisServers::parse("t.txt", "com whois.example.test\nde\n")
            .expect_err("one field")
            .to_string();
        assert!(err.starts_with("t.txt:2:"), "{err}");
    }
}
