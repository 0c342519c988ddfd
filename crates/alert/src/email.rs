//! The email channel: one multipart/alternative message per alert (the plain-text and
//! HTML renderings) over SMTP, STARTTLS required by default.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use crate::channel::Delivery;
use crate::config::{Timeout, host_port, read_ca};
use crate::error::{ConfigError, DeliveryError, Failure};
use crate::http::{chain, is_tls_refusal};
use crate::message::Alert;
use crate::render;

/// Whether the SMTP connection is upgraded with STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// Upgrade, verifying the server's certificate, or send nothing.
    #[default]
    Required,
    /// Upgrade when the server offers it, else send in clear (open to a downgrade by
    /// anyone on the path).
    Opportunistic,
    /// Send in clear: for a relay on the same host only.
    None,
}

/// The email channel's settings.
///
/// ```yaml
/// email:
///   smtp: smtp.example:587          # host:port of the submission server
///   from: "portgate <portgate@example.org>"
///   to: ["secops@example.org"]
///   username: portgate              # optional; with password; needs starttls: required
///   password: "…"
///   starttls: required              # required | opportunistic | none (default required)
///   ca: /etc/portgate/smtp-ca.pem   # trust this CA (PEM) instead of the system's
///   timeout: 10                     # seconds, each connect and SMTP exchange (optional)
/// ```
///
/// Implicit TLS (port 465) is not offered: use the submission port with STARTTLS.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server, `host:port`; the host is also the name its certificate must carry.
    pub smtp: String,
    /// The sender, `addr@host` or `Name <addr@host>`.
    pub from: String,
    /// The recipients (at least one).
    pub to: Vec<String>,
    /// The user to authenticate as.
    #[serde(default)]
    pub username: Option<String>,
    /// The password.
    #[serde(default)]
    pub password: Option<String>,
    /// Whether to upgrade with STARTTLS (default `required`).
    #[serde(default)]
    pub starttls: StartTls,
    /// The CA certificates (PEM) to trust instead of the system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// How long each connect and each SMTP exchange may take (default 10 s); a whole
    /// delivery at most three times as long.
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp", &self.smtp)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("starttls", &self.starttls)
            .field("ca", &self.ca)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An email channel, ready to deliver.
pub(crate) struct EmailChannel {
    pub(crate) label: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl EmailChannel {
    pub(crate) fn new(config: &EmailConfig) -> Result<EmailChannel, ConfigError> {
        let label = format!("email {}", config.smtp);
        let invalid = |reason: &str| ConfigError::Invalid {
            channel: label.clone(),
            reason: reason.to_string(),
        };
        let (host, port) = host_port(&label, &config.smtp)?;
        let mailbox = |address: &str| {
            address
                .parse::<Mailbox>()
                .map_err(|e| ConfigError::Mailbox {
                    channel: label.clone(),
                    address: address.to_string(),
                    reason: e.to_string(),
                })
        };
        let from = mailbox(&config.from)?;
        let to = config
            .to
            .iter()
            .map(|a| mailbox(a))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(invalid("to: give at least one recipient"));
        }
        let timeout = Timeout::or_default(config.timeout);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(timeout));
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                // Credentials only ever go over a verified TLS connection.
                if config.starttls != StartTls::Required {
                    return Err(invalid("username and password need starttls: required"));
                }
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            }
            (None, None) => {}
            _ => return Err(invalid("give both username and password, or neither")),
        }
        let tls_parameters = || -> Result<TlsParameters, ConfigError> {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut parameters = TlsParameters::builder(host.clone());
            if let Some(path) = &config.ca {
                parameters = parameters.certificate_store(CertificateStore::None);
                for cert in read_ca(&label, path)? {
                    let cert =
                        Certificate::from_der(cert.to_vec()).map_err(|e| ConfigError::BadCa {
                            channel: label.clone(),
                            path: path.clone(),
                            reason: Some(e.to_string()),
                        })?;
                    parameters = parameters.add_root_certificate(cert);
                }
            }
            parameters.build_rustls().map_err(|e| ConfigError::Client {
                channel: label.clone(),
                reason: chain(&e),
            })
        };
        builder = builder.tls(match config.starttls {
            StartTls::Required => Tls::Required(tls_parameters()?),
            StartTls::Opportunistic => Tls::Opportunistic(tls_parameters()?),
            StartTls::None => {
                if config.ca.is_some() {
                    return Err(invalid(
                        "ca applies with starttls required or opportunistic",
                    ));
                }
                Tls::None
            }
        });
        Ok(EmailChannel {
            label,
            transport: builder.build(),
            from,
            to,
            timeout,
        })
    }

    /// The message of `alert`.
    fn message(&self, alert: &Alert) -> Result<Message, DeliveryError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(render::subject(alert))
            .date(alert.created_at.into());
        // The alert's id as Message-ID lets mail tools spot a repeated delivery.
        let id_ok = !alert.id.is_empty()
            && alert
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if id_ok {
            builder = builder.message_id(Some(format!("<{}@portgate>", alert.id)));
        }
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                render::text(alert),
                render::html(alert),
            ))
            .map_err(|e| DeliveryError::permanent(&self.label, Failure::Encode(e.to_string())))
    }

    pub(crate) async fn deliver(&self, alert: &Alert) -> Result<Delivery, DeliveryError> {
        let message = self.message(alert)?;
        let overall = self.timeout.saturating_mul(3);
        let sent = tokio::time::timeout(overall, self.transport.send(message))
            .await
            .map_err(|_| {
                DeliveryError::retry(
                    &self.label,
                    Failure::Timeout {
                        operation: "SMTP delivery",
                        after: overall,
                    },
                )
            })?;
        sent.map_err(|e| self.failure(&e))?;
        Ok(Delivery {
            channel: self.label.clone(),
            messages: 1,
        })
    }

    fn failure(&self, e: &lettre::transport::smtp::Error) -> DeliveryError {
        let detail = chain(e);
        if e.is_timeout() {
            DeliveryError::retry(
                &self.label,
                Failure::Timeout {
                    operation: "SMTP exchange",
                    after: self.timeout,
                },
            )
        } else if e.is_permanent() {
            DeliveryError::permanent(&self.label, Failure::Smtp(detail))
        } else if e.is_tls() || is_tls_refusal(e) {
            if is_tls_refusal(e) {
                DeliveryError::permanent(&self.label, Failure::Tls(detail))
            } else {
                DeliveryError::retry(&self.label, Failure::Tls(detail))
            }
        } else {
            // Transient answers (4xx), connection and network failures.
            DeliveryError::retry(&self.label, Failure::Smtp(detail))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig {
            smtp: "127.0.0.1:2525".to_string(),
            from: "portgate <portgate@pg.test>".to_string(),
            to: vec!["sec@pg.test".to_string()],
            username: None,
            password: None,
            starttls: StartTls::Required,
            ca: None,
            timeout: None,
        }
    }

    #[test]
    fn settings_that_do_not_go_together_are_refused() {
        assert!(EmailChannel::new(&config()).is_ok());
        for (change, want) in [
            (
                (|c: &mut EmailConfig| c.to.clear()) as fn(&mut EmailConfig),
                "at least one recipient",
            ),
            (
                |c| c.username = Some("u".into()),
                "both username and password",
            ),
            (
                |c| {
                    c.username = Some("u".into());
                    c.password = Some("p".into());
                    c.starttls = StartTls::Opportunistic;
                },
                "need starttls: required",
            ),
            (
                |c| c.from = "not an address".into(),
                "invalid email address",
            ),
            (|c| c.smtp = "no-port".into(), "expected host:port"),
        ] {
            let mut c = config();
            change(&mut c);
            let err = EmailChannel::new(&c).err().unwrap().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn the_password_is_not_shown() {
        let mut c = config();
        c.username = Some("u".into());
        c.password = Some("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
