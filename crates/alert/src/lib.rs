//! portgate's alerts: the alert message, its renderings, and its delivery to four kinds of
//! channel — a signed webhook, Slack, syslog with CEF events, and email.
//!
//! An [`Alert`] carries [`AlertItem`]s (a [`portgate_model::Finding`] with its fingerprint
//! and [`ItemState`]). A [`Channel`] is built from a [`ChannelConfig`] and
//! [`delivers`](Channel::deliver) an alert once, returning a [`Delivery`] or a
//! [`DeliveryError`] that says whether to try again and when.
//!
//! This crate decides nothing about *when* to alert: grouping, deduplication, maintenance
//! windows, acknowledgement and retry schedules belong to its caller. It must not print,
//! must not retry on its own, must not panic on anything a receiver or a scanned service
//! can send, and must not wait on the network without a timeout. Text that comes from
//! findings is treated as hostile in every rendering (HTML, Slack mrkdwn, CEF, syslog).
//!
//! # Channels
//!
//! | kind | what is sent | module |
//! |---|---|---|
//! | `webhook` | the JSON document of [`Alert`], signed | [`webhook`] |
//! | `slack` | a Block Kit message to an incoming webhook, ≤ 1 a second | [`slack`] |
//! | `syslog` | an RFC 5424 message with a CEF event per item, UDP/TCP/TLS | [`syslog`], [`cef`] |
//! | `email` | multipart/alternative text and HTML over SMTP + STARTTLS | [`email`] |
//!
//! # Verifying a webhook
//!
//! Each webhook is a `POST` with `Content-Type: application/json`, the alert's JSON
//! document (`"type": "portgate.alert.v1"`, see [`Alert`]) as body, and these headers
//! ([Standard Webhooks](https://www.standardwebhooks.com/)):
//!
//! | header | value |
//! |---|---|
//! | `webhook-id` | the alert's id: deduplicate on it, a retried delivery repeats it |
//! | `webhook-timestamp` | when it was signed, in seconds since the Unix epoch |
//! | `webhook-signature` | `v1,` then the base64 of HMAC-SHA256(key, `{id}.{timestamp}.{body}`) |
//! | `X-Portgate-Signature-256` | `sha256=` then the hex of HMAC-SHA256(key, `{body}`) (GitHub's form) |
//!
//! The key is the base64-decoded part of the secret after `whsec_`; a secret without that
//! prefix is used as its raw UTF-8 bytes. The string signed is the id, a `.`, the
//! timestamp as sent (decimal digits), a `.`, and the body exactly as received — verify
//! before parsing the JSON. Compare signatures in constant time, and refuse a timestamp
//! more than five minutes from your clock either way ([`webhook::DEFAULT_TOLERANCE`]):
//! that refuses replays of an old delivery. `webhook-signature` may hold several
//! space-separated signatures (while a secret is being rotated); one match suffices.
//! `X-Portgate-Signature-256` signs the body alone, so it does not guard against replay:
//! check the timestamp some other way when relying on it.
//!
//! A receiver written in Rust can use [`webhook::verify`]:
//!
//! ```
//! use chrono::Utc;
//! use portgate_alert::webhook::{self, SignatureHeaders, WebhookSecret};
//!
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! // What the sender does:
//! let body = br#"{"type":"portgate.alert.v1","id":"a1"}"#;
//! let now = Utc::now();
//! let signature = WebhookSecret::parse(secret)?.sign("a1", now.timestamp(), body);
//! // What the receiver does, with the headers and the raw body it received:
//! let headers = SignatureHeaders {
//!     id: "a1",
//!     timestamp: &now.timestamp().to_string(),
//!     signature: &signature,
//! };
//! webhook::verify(secret, &headers, body, Utc::now(), webhook::DEFAULT_TOLERANCE)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The webhook channel counts any 2xx answer as delivered; 408, 429 and 5xx answers,
//! timeouts and connection failures as worth a retry (honouring `Retry-After` on 429 and
//! 503); any other answer as a permanent failure. It follows no redirect.

pub mod cef;
mod channel;
mod config;
pub mod email;
mod error;
mod http;
mod message;
pub mod render;
pub mod slack;
pub mod syslog;
#[cfg(test)]
mod testing;
pub mod webhook;

pub use channel::{Channel, Delivery};
pub use config::{ChannelConfig, Timeout};
pub use email::{EmailConfig, StartTls};
pub use error::{ConfigError, DeliveryError, Failure, MAX_RETRY_AFTER};
pub use message::{Alert, AlertItem, AlertKind, DOCUMENT_TYPE, ItemState};
pub use slack::SlackConfig;
pub use syslog::{Facility, SyslogConfig, SyslogTransport};
pub use webhook::{SignatureHeaders, VerifyError, WebhookConfig, WebhookSecret, verify};
