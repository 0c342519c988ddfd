//! The syslog channel: one RFC 5424 message per alert item, its MSG a CEF event
//! ([`crate::cef`]), over UDP (one datagram each, at most [`UDP_LIMIT`] bytes), TCP or TLS
//! (RFC 6587 octet counting: `LEN SP MSG`).
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - CEF:0|portgate|portgate|…
//! ```
//!
//! PRI is the facility times 8 plus the syslog severity of the finding (critical 2,
//! high 3, medium 4, low 5, info 6); TIMESTAMP is the alert's creation time; MSGID is
//! the CEF signature id; there is no structured data. Over TCP and TLS a delivery opens a
//! connection, writes every message and closes it: syslog has no acknowledgement, so a
//! delivery counts as done once the messages are written.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::SecondsFormat;
use portgate_model::Severity;
use rustls_pki_types::ServerName;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;

use crate::cef;
use crate::channel::Delivery;
use crate::config::{Timeout, host_port, root_store, tls_client_config};
use crate::error::{ConfigError, DeliveryError, Failure};
use crate::http::{chain, is_tls_refusal};
use crate::message::{Alert, AlertItem};

/// The most bytes in one UDP datagram; the `msg` extension is cut to fit.
pub const UDP_LIMIT: usize = 8 * 1024;
/// The most bytes in one message over TCP or TLS.
pub const STREAM_LIMIT: usize = 64 * 1024;

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// One datagram per message.
    Udp,
    /// Octet-counted messages over a TCP connection.
    Tcp,
    /// Octet-counted messages over TLS (verified against `ca` or the system's roots).
    Tls,
}

impl SyslogTransport {
    fn as_str(self) -> &'static str {
        match self {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
            SyslogTransport::Tls => "tls",
        }
    }
}

/// A syslog facility (0–23): a name (`kern`, `user`, `mail`, `daemon`, `auth`, `syslog`,
/// `lpr`, `news`, `uucp`, `cron`, `authpriv`, `ftp`, `ntp`, `security`, `console`,
/// `clock`, `local0`…`local7`) or its number in the configuration. `local0` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

/// The facility names, by number.
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

impl Facility {
    /// `local0`, the default.
    pub const LOCAL0: Facility = Facility(16);

    /// The facility numbered `code`, when it is 0–23.
    pub fn new(code: u8) -> Option<Facility> {
        (usize::from(code) < FACILITIES.len()).then_some(Facility(code))
    }

    /// The facility called `name`.
    pub fn from_name(name: &str) -> Option<Facility> {
        let index = FACILITIES.iter().position(|f| *f == name)?;
        u8::try_from(index).ok().map(Facility)
    }

    /// Its number.
    pub fn code(self) -> u8 {
        self.0
    }
}

impl Default for Facility {
    fn default() -> Self {
        Facility::LOCAL0
    }
}

impl<'de> Deserialize<'de> for Facility {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FacilityVisitor;
        impl Visitor<'_> for FacilityVisitor {
            type Value = Facility;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a syslog facility: a name such as local0, or a number 0-23")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Facility, E> {
                Facility::from_name(v)
                    .or_else(|| v.parse().ok().and_then(Facility::new))
                    .ok_or_else(|| E::custom(format!("unknown syslog facility {v:?}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Facility, E> {
                u8::try_from(v)
                    .ok()
                    .and_then(Facility::new)
                    .ok_or_else(|| E::custom(format!("syslog facility {v} is not 0-23")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Facility, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("syslog facility {v} is not 0-23")))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        deserializer.deserialize_any(FacilityVisitor)
    }
}

/// The syslog channel's settings.
///
/// ```yaml
/// syslog:
///   address: siem.example:6514   # host:port ([v6]:port)
///   transport: tls               # udp | tcp | tls
///   ca: /etc/portgate/siem-ca.pem   # tls only: trust this CA (PEM) instead of the system's
///   server_name: siem.example    # tls only: the name the certificate must carry (default: the host)
///   facility: local0             # a name or 0-23 (default local0)
///   app_name: portgate           # APP-NAME (default portgate)
///   timeout: 10                  # seconds, each connect, handshake and write (optional)
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The receiver, `host:port`.
    pub address: String,
    /// How messages travel.
    pub transport: SyslogTransport,
    /// TLS: the CA certificates (PEM) to trust instead of the system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// TLS: the name to verify the certificate against, when not the address's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// The facility (default `local0`).
    #[serde(default)]
    pub facility: Facility,
    /// The APP-NAME field: 1–48 printable ASCII characters (default `portgate`).
    #[serde(default)]
    pub app_name: Option<String>,
    /// How long each connect, handshake and write may take (default 10 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

/// The syslog severity of a finding severity.
fn syslog_severity(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    }
}

/// `s` as an RFC 5424 header field: printable ASCII only, at most `max` bytes, `-` when
/// nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let field: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// What the RFC 5424 header says about the sender.
struct Origin {
    facility: Facility,
    hostname: String,
    app_name: String,
    procid: String,
}

/// The RFC 5424 message of `item`, at most `limit` bytes.
fn message(origin: &Origin, alert: &Alert, item: &AlertItem, limit: usize) -> String {
    let f = &item.finding;
    let pri = u16::from(origin.facility.code()) * 8 + u16::from(syslog_severity(f.severity));
    let head = format!(
        "<{pri}>1 {} {} {} {} {} - ",
        alert
            .created_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        origin.hostname,
        origin.app_name,
        origin.procid,
        header_field(&cef::signature_id(f.rule, item.state), 32),
    );
    let event = cef::event(alert, item, limit.saturating_sub(head.len()));
    head + &event
}

enum Transport {
    Udp,
    Tcp,
    Tls {
        connector: TlsConnector,
        server_name: ServerName<'static>,
    },
}

/// A syslog channel, ready to deliver.
pub(crate) struct SyslogChannel {
    pub(crate) label: String,
    host: String,
    port: u16,
    transport: Transport,
    origin: Origin,
    timeout: Duration,
}

impl SyslogChannel {
    pub(crate) fn new(config: &SyslogConfig) -> Result<SyslogChannel, ConfigError> {
        let label = format!("syslog {} {}", config.transport.as_str(), config.address);
        let invalid = |reason: &str| ConfigError::Invalid {
            channel: label.clone(),
            reason: reason.to_string(),
        };
        let (host, port) = host_port(&label, &config.address)?;
        let app_name = config
            .app_name
            .clone()
            .unwrap_or_else(|| "portgate".to_string());
        if app_name.is_empty()
            || app_name.len() > 48
            || !app_name.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(invalid("app_name must be 1-48 printable ASCII characters"));
        }
        let transport = match config.transport {
            SyslogTransport::Udp | SyslogTransport::Tcp => {
                if config.ca.is_some() || config.server_name.is_some() {
                    return Err(invalid("ca and server_name apply to transport tls only"));
                }
                if config.transport == SyslogTransport::Udp {
                    Transport::Udp
                } else {
                    Transport::Tcp
                }
            }
            SyslogTransport::Tls => {
                let roots = root_store(&label, config.ca.as_deref())?;
                let tls = tls_client_config(&label, roots)?;
                let name = config.server_name.clone().unwrap_or_else(|| host.clone());
                let server_name =
                    ServerName::try_from(name.clone()).map_err(|_| ConfigError::ServerName {
                        channel: label.clone(),
                        name,
                    })?;
                Transport::Tls {
                    connector: TlsConnector::from(Arc::new(tls)),
                    server_name,
                }
            }
        };
        let hostname = hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        Ok(SyslogChannel {
            label,
            host,
            port,
            transport,
            origin: Origin {
                facility: config.facility,
                hostname: header_field(&hostname, 255),
                app_name,
                procid: std::process::id().to_string(),
            },
            timeout: Timeout::or_default(config.timeout),
        })
    }

    pub(crate) async fn deliver(&self, alert: &Alert) -> Result<Delivery, DeliveryError> {
        let limit = match self.transport {
            Transport::Udp => UDP_LIMIT,
            Transport::Tcp | Transport::Tls { .. } => STREAM_LIMIT,
        };
        let messages: Vec<String> = alert
            .items
            .iter()
            .map(|item| message(&self.origin, alert, item, limit))
            .collect();
        if !messages.is_empty() {
            match &self.transport {
                Transport::Udp => self.send_udp(&messages).await?,
                Transport::Tcp => {
                    let stream = self.connect().await?;
                    self.send_stream(stream, &messages).await?;
                }
                Transport::Tls {
                    connector,
                    server_name,
                } => {
                    let stream = self.connect().await?;
                    let handshake = connector.connect(server_name.clone(), stream);
                    let stream = self.wait("TLS handshake", handshake).await?.map_err(|e| {
                        if is_tls_refusal(&e) {
                            DeliveryError::permanent(&self.label, Failure::Tls(chain(&e)))
                        } else {
                            DeliveryError::retry(&self.label, Failure::Tls(chain(&e)))
                        }
                    })?;
                    self.send_stream(stream, &messages).await?;
                }
            }
        }
        Ok(Delivery {
            channel: self.label.clone(),
            messages: messages.len(),
        })
    }

    /// `future`, or a retryable timeout after the channel's timeout.
    async fn wait<T>(
        &self,
        operation: &'static str,
        future: impl Future<Output = T>,
    ) -> Result<T, DeliveryError> {
        tokio::time::timeout(self.timeout, future)
            .await
            .map_err(|_| {
                DeliveryError::retry(
                    &self.label,
                    Failure::Timeout {
                        operation,
                        after: self.timeout,
                    },
                )
            })
    }

    fn io_failure(&self, operation: &'static str) -> impl Fn(std::io::Error) -> DeliveryError {
        move |e| {
            DeliveryError::retry(
                &self.label,
                Failure::Io {
                    operation,
                    detail: e.to_string(),
                },
            )
        }
    }

    async fn connect(&self) -> Result<TcpStream, DeliveryError> {
        self.wait(
            "connect",
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await?
        .map_err(|e| DeliveryError::retry(&self.label, Failure::Connect(e.to_string())))
    }

    async fn send_udp(&self, messages: &[String]) -> Result<(), DeliveryError> {
        let address = self
            .wait(
                "resolve",
                tokio::net::lookup_host((self.host.as_str(), self.port)),
            )
            .await?
            .map_err(|e| DeliveryError::retry(&self.label, Failure::Connect(e.to_string())))?
            .next()
            .ok_or_else(|| {
                DeliveryError::retry(
                    &self.label,
                    Failure::Connect(format!("{} has no address", self.host)),
                )
            })?;
        let local: std::net::SocketAddr = if address.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(self.io_failure("bind a UDP socket"))?;
        for message in messages {
            self.wait("send", socket.send_to(message.as_bytes(), address))
                .await?
                .map_err(self.io_failure("send"))?;
        }
        Ok(())
    }

    async fn send_stream(
        &self,
        mut stream: impl AsyncWrite + Unpin,
        messages: &[String],
    ) -> Result<(), DeliveryError> {
        let mut frames = Vec::new();
        for message in messages {
            frames.extend_from_slice(format!("{} ", message.len()).as_bytes());
            frames.extend_from_slice(message.as_bytes());
        }
        self.wait("write", stream.write_all(&frames))
            .await?
            .map_err(self.io_failure("write"))?;
        self.wait("write", stream.flush())
            .await?
            .map_err(self.io_failure("write"))?;
        // The messages are written; a receiver that does not close cleanly loses nothing.
        let _ = tokio::time::timeout(self.timeout, stream.shutdown()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{alert, hostile_item};

    #[test]
    fn facilities_by_name_or_number() {
        #[derive(Deserialize)]
        struct F {
            facility: Facility,
        }
        let read = |s: &str| serde_json::from_str::<F>(s).map(|f| f.facility.code());
        assert_eq!(read(r#"{"facility": "local0"}"#).unwrap(), 16);
        assert_eq!(read(r#"{"facility": "auth"}"#).unwrap(), 4);
        assert_eq!(read(r#"{"facility": 23}"#).unwrap(), 23);
        assert_eq!(read(r#"{"facility": "3"}"#).unwrap(), 3);
        for bad in [r#""local8""#, "24", "-1", r#""""#] {
            assert!(read(&format!(r#"{{"facility": {bad}}}"#)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_message_fits_the_udp_limit() {
        let mut item = hostile_item();
        item.finding.message = "x=\\".repeat(10_000);
        let a = alert(vec![item]);
        let origin = Origin {
            facility: Facility::LOCAL0,
            hostname: header_field("scanner.example", 255),
            app_name: "portgate".to_string(),
            procid: "42".to_string(),
        };
        let m = message(&origin, &a, &a.items[0], UDP_LIMIT);
        assert!(m.len() <= UDP_LIMIT, "{}", m.len());
        // local0 (16) * 8 + critical (2).
        assert!(
            m.starts_with("<130>1 2025-01-31T08:00:00.000Z scanner.example portgate 42 port.unapproved - CEF:0|"),
            "{m}"
        );
    }

    #[test]
    fn header_fields_are_printable_ascii() {
        assert_eq!(header_field("host name\n", 255), "hostname");
        assert_eq!(header_field("", 255), "-");
        assert_eq!(header_field("ünï", 255), "n");
        assert_eq!(header_field(&"a".repeat(300), 255).len(), 255);
    }
}
