//! The configuration of a channel: [`ChannelConfig`], tagged by the channel's kind, and
//! what the channels' configurations share (the [`Timeout`], CA files, `host:port`).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Deserializer};

use crate::email::EmailConfig;
use crate::error::ConfigError;
use crate::slack::SlackConfig;
use crate::syslog::SyslogConfig;
use crate::webhook::WebhookConfig;

/// One channel, as configured. In YAML, a map with one key naming the kind:
///
/// ```yaml
/// - webhook: { url: "https://hooks.example/portgate", secret: "whsec_…", timeout: 5 }
/// - slack: { url: "https://hooks.slack.com/services/…" }
/// - syslog: { address: "siem.example:6514", transport: tls, ca: /etc/portgate/siem-ca.pem }
/// - email: { smtp: "smtp.example:587", from: "portgate@example.org", to: ["sec@example.org"] }
/// ```
///
/// Unknown keys are refused, in the tag and in each kind's settings.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelConfig {
    /// A signed JSON POST ([`WebhookConfig`]).
    Webhook(WebhookConfig),
    /// A Slack incoming webhook ([`SlackConfig`]).
    Slack(SlackConfig),
    /// Syslog (RFC 5424) messages carrying CEF events ([`SyslogConfig`]).
    Syslog(SyslogConfig),
    /// An email over SMTP ([`EmailConfig`]).
    Email(EmailConfig),
}

impl fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelConfig::Webhook(c) => f.debug_tuple("Webhook").field(c).finish(),
            ChannelConfig::Slack(c) => f.debug_tuple("Slack").field(c).finish(),
            ChannelConfig::Syslog(c) => f.debug_tuple("Syslog").field(c).finish(),
            ChannelConfig::Email(c) => f.debug_tuple("Email").field(c).finish(),
        }
    }
}

/// How long a channel waits for each connect, handshake, request or write: a number of
/// seconds in the configuration (`timeout: 2.5`), more than 0 and at most 3600;
/// [`Timeout::DEFAULT`] when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(Duration);

impl Timeout {
    /// Ten seconds.
    pub const DEFAULT: Timeout = Timeout(Duration::from_secs(10));

    /// The longest timeout accepted.
    pub const MAX: Duration = Duration::from_secs(3600);

    /// `duration` when it is more than zero and at most [`Timeout::MAX`].
    pub fn new(duration: Duration) -> Option<Timeout> {
        (!duration.is_zero() && duration <= Timeout::MAX).then_some(Timeout(duration))
    }

    /// The timeout.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// The configured timeout, or the default.
    pub(crate) fn or_default(timeout: Option<Timeout>) -> Duration {
        timeout.unwrap_or(Timeout::DEFAULT).0
    }
}

impl Default for Timeout {
    fn default() -> Self {
        Timeout::DEFAULT
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        let out_of_range = || {
            serde::de::Error::custom(format!(
                "timeout {seconds} s: give a number of seconds more than 0 and at most {}",
                Timeout::MAX.as_secs()
            ))
        };
        if !seconds.is_finite() || seconds <= 0.0 {
            return Err(out_of_range());
        }
        Duration::try_from_secs_f64(seconds)
            .ok()
            .and_then(Timeout::new)
            .ok_or_else(out_of_range)
    }
}

/// The certificates of the PEM file `path`, for a channel's trust roots.
pub(crate) fn read_ca(
    channel: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = std::fs::read(path).map_err(|source| ConfigError::ReadCa {
        channel: channel.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: Option<String>| ConfigError::BadCa {
        channel: channel.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(Some(e.to_string())))?;
    if certs.is_empty() {
        return Err(bad(None));
    }
    Ok(certs)
}

/// The trust roots: the certificates of `ca`, or the system's when there is none.
pub(crate) fn root_store(
    channel: &str,
    ca: Option<&Path>,
) -> Result<rustls::RootCertStore, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in read_ca(channel, path)? {
                roots.add(cert).map_err(|e| ConfigError::BadCa {
                    channel: channel.to_string(),
                    path: path.to_path_buf(),
                    reason: Some(e.to_string()),
                })?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(roots)
}

/// A rustls client configuration trusting `roots`, with ring.
pub(crate) fn tls_client_config(
    channel: &str,
    roots: rustls::RootCertStore,
) -> Result<rustls::ClientConfig, ConfigError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Client {
            channel: channel.to_string(),
            reason: format!("TLS: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `host:port` (`[v6]:port` for an IPv6 address) split into the host, without brackets,
/// and the port.
pub(crate) fn host_port(channel: &str, address: &str) -> Result<(String, u16), ConfigError> {
    let invalid = || ConfigError::Address {
        channel: channel.to_string(),
        address: address.to_string(),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(invalid)?,
        None if host.contains(':') => return Err(invalid()),
        None => host,
    };
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if host.is_empty() || port == 0 || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        for (address, want) in [
            ("siem.example:514", Some(("siem.example", 514))),
            ("127.0.0.1:6514", Some(("127.0.0.1", 6514))),
            ("[::1]:25", Some(("::1", 25))),
            ("::1:25", None),
            ("siem.example", None),
            ("siem.example:0", None),
            ("siem.example:70000", None),
            (":514", None),
            ("[::1:25", None),
            ("bad host:1", None),
        ] {
            let got = host_port("test", address).ok();
            assert_eq!(
                got.as_ref().map(|(h, p)| (h.as_str(), *p)),
                want,
                "{address}"
            );
        }
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        #[derive(Deserialize)]
        struct T {
            timeout: Timeout,
        }
        let read = |s: &str| serde_json::from_str::<T>(s).map(|t| t.timeout.duration());
        assert_eq!(read(r#"{"timeout": 5}"#).unwrap(), Duration::from_secs(5));
        assert_eq!(
            read(r#"{"timeout": 0.25}"#).unwrap(),
            Duration::from_millis(250)
        );
        for bad in ["0", "-1", "3601", "\"10s\""] {
            assert!(read(&format!(r#"{{"timeout": {bad}}}"#)).is_err(), "{bad}");
        }
    }
}
