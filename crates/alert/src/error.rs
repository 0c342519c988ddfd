//! What can go wrong: building a channel from its configuration ([`ConfigError`]) and
//! delivering an alert ([`DeliveryError`], which says whether to try again and when).

use std::path::PathBuf;
use std::time::Duration;

/// Why a channel could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL does not parse, or is not http(s).
    #[error("{channel}: invalid URL: {reason}")]
    Url {
        /// The channel.
        channel: String,
        /// What is wrong (the URL itself is not repeated: it may hold a token).
        reason: String,
    },
    /// The webhook secret is empty or its `whsec_` part is not base64.
    #[error("{channel}: invalid secret: {reason}")]
    Secret {
        /// The channel.
        channel: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA file cannot be read.
    #[error("{channel}: cannot read the CA file {}: {source}", path.display())]
    ReadCa {
        /// The channel.
        channel: String,
        /// The file as configured.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("{channel}: the CA file {} holds no usable PEM certificate{}", path.display(), reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    BadCa {
        /// The channel.
        channel: String,
        /// The file as configured.
        path: PathBuf,
        /// What the parser said, if anything.
        reason: Option<String>,
    },
    /// An address is not `host:port`.
    #[error("{channel}: invalid address {address:?}: expected host:port")]
    Address {
        /// The channel.
        channel: String,
        /// The address as configured.
        address: String,
    },
    /// The name to verify the server's certificate against is not a DNS name or address.
    #[error("{channel}: invalid TLS server name {name:?}")]
    ServerName {
        /// The channel.
        channel: String,
        /// The name.
        name: String,
    },
    /// An email address does not parse.
    #[error("{channel}: invalid email address {address:?}: {reason}")]
    Mailbox {
        /// The channel.
        channel: String,
        /// The address as configured.
        address: String,
        /// What the parser said.
        reason: String,
    },
    /// Settings that do not go together, or a value out of range.
    #[error("{channel}: {reason}")]
    Invalid {
        /// The channel.
        channel: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS or HTTP client could not be set up.
    #[error("{channel}: cannot set up the client: {reason}")]
    Client {
        /// The channel.
        channel: String,
        /// What failed.
        reason: String,
    },
}

/// What went wrong in one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// A connect, handshake, request or write took longer than the channel's timeout.
    #[error("{operation} timed out after {}", humanize(*after))]
    Timeout {
        /// What was waited for.
        operation: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The address did not resolve, or the connection was refused or reset.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Sending or receiving failed after connecting.
    #[error("{operation}: {detail}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// What failed.
        detail: String,
    },
    /// The TLS handshake failed (the server's certificate did not verify, ...).
    #[error("TLS: {0}")]
    Tls(String),
    /// The receiver answered with a status that is not success.
    #[error("answered HTTP {status}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body, on one line.
        detail: String,
    },
    /// The HTTP exchange failed otherwise.
    #[error("HTTP: {0}")]
    Http(String),
    /// The SMTP server refused, or the exchange failed.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The message could not be put in the channel's format (a header value the alert's
    /// text makes invalid, ...).
    #[error("cannot encode the message: {0}")]
    Encode(String),
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A delivery that failed: which channel, why, and whether and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{channel}: {cause}{}", if *retryable { " (retryable)" } else { "" })]
pub struct DeliveryError {
    /// The channel ([`crate::Channel::label`]).
    pub channel: String,
    /// Whether the same alert may succeed later (timeouts, connection failures, 429,
    /// 5xx, transient SMTP answers); false when it needs a change first (4xx, a refused
    /// certificate, a permanent SMTP answer).
    pub retryable: bool,
    /// How long the receiver asked to wait (`Retry-After` of a 429 or 503), at most
    /// [`MAX_RETRY_AFTER`].
    pub retry_after: Option<Duration>,
    /// What went wrong.
    pub cause: Failure,
}

/// The longest `Retry-After` taken from a receiver; longer asks are cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl DeliveryError {
    /// A failure worth trying again.
    pub(crate) fn retry(channel: &str, cause: Failure) -> DeliveryError {
        DeliveryError {
            channel: channel.to_string(),
            retryable: true,
            retry_after: None,
            cause,
        }
    }

    /// A failure that will recur until something changes.
    pub(crate) fn permanent(channel: &str, cause: Failure) -> DeliveryError {
        DeliveryError {
            channel: channel.to_string(),
            retryable: false,
            retry_after: None,
            cause,
        }
    }
}
