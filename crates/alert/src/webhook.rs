//! The webhook channel: the alert's JSON document POSTed with a Standard Webhooks
//! signature (and GitHub's form of it), and [`verify`] for the receiving side.
//!
//! The signing key is the secret's base64 part after `whsec_` (the Standard Webhooks
//! form); a secret without that prefix is used as its raw bytes.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use sha2::Sha256;

use crate::channel::Delivery;
use crate::config::Timeout;
use crate::error::{ConfigError, DeliveryError, Failure};
use crate::http;
use crate::message::Alert;

/// The header carrying the alert's id.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the unix time (seconds) of the signature.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the Standard Webhooks signature, `v1,<base64>`.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The header carrying the GitHub-form signature of the body alone, `sha256=<hex>`.
pub const HEADER_SIGNATURE_256: &str = "x-portgate-signature-256";
/// The prefix of a Standard Webhooks secret; the rest is the base64 of the key.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a timestamp may be from the receiver's clock, either way, by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The webhook channel's settings.
///
/// ```yaml
/// webhook:
///   url: https://receiver.example/portgate   # http or https; redirects are not followed
///   secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw   # or any string, used as raw bytes
///   timeout: 10                              # seconds, optional
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST.
    pub url: String,
    /// The shared secret: `whsec_<base64 key>`, or raw bytes without the prefix.
    pub secret: String,
    /// How long to wait for the connect and for the whole exchange (default 10 s).
    #[serde(default)]
    pub timeout: Option<Timeout>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret, or its key after `whsec_`, is empty.
    #[error("the secret is empty")]
    Empty,
    /// The part after `whsec_` is not base64.
    #[error("the part after {SECRET_PREFIX} is not base64: {0}")]
    Base64(String),
}

/// Why a received webhook does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The receiver's secret cannot be used.
    #[error("invalid secret: {0}")]
    Secret(#[from] SecretError),
    /// `webhook-timestamp` is not a whole number of seconds.
    #[error("{HEADER_TIMESTAMP} {0:?} is not a unix time in seconds")]
    Timestamp(String),
    /// The timestamp is further in the past than the tolerance: a replay, or a delivery
    /// held up too long.
    #[error("{HEADER_TIMESTAMP} is {seconds} s old, more than the tolerance")]
    TooOld {
        /// How old.
        seconds: i64,
    },
    /// The timestamp is further in the future than the tolerance.
    #[error("{HEADER_TIMESTAMP} is {seconds} s ahead, more than the tolerance")]
    TooNew {
        /// How far ahead.
        seconds: i64,
    },
    /// `webhook-signature` holds no `v1,` signature.
    #[error("{HEADER_SIGNATURE} holds no v1 signature")]
    NoSignature,
    /// No signature matches the id, timestamp and body with this secret.
    #[error("no signature matches")]
    Mismatch,
}

/// A webhook signing key.
#[derive(Clone)]
pub struct WebhookSecret {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// The key of `secret`: the base64-decoded part after `whsec_`, or the bytes of
    /// `secret` when it has no such prefix.
    pub fn parse(secret: &str) -> Result<WebhookSecret, SecretError> {
        let key = match secret.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => BASE64
                .decode(encoded)
                .map_err(|e| SecretError::Base64(e.to_string()))?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        // HMAC takes a key of any length: this cannot fail.
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| SecretError::Empty)?;
        Ok(WebhookSecret { mac })
    }

    fn keyed(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value: `v1,` and the base64 of
    /// HMAC-SHA256(key, `{id}.{timestamp}.{body}`).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .keyed(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }

    /// The `X-Portgate-Signature-256` value: `sha256=` and the hex of
    /// HMAC-SHA256(key, body).
    pub fn sign_body(&self, body: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Checks a received webhook; see [`verify`].
    pub fn verify(
        &self,
        headers: &SignatureHeaders<'_>,
        body: &[u8],
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> Result<(), VerifyError> {
        let timestamp = headers.timestamp.trim();
        let seconds: i64 = timestamp
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| timestamp.parse().ok())
            .flatten()
            .ok_or_else(|| VerifyError::Timestamp(headers.timestamp.to_string()))?;
        let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
        let age = now.timestamp().saturating_sub(seconds);
        if age > tolerance {
            return Err(VerifyError::TooOld { seconds: age });
        }
        if -age > tolerance {
            return Err(VerifyError::TooNew { seconds: -age });
        }
        let mut any = false;
        for entry in headers.signature.split_whitespace() {
            let Some(encoded) = entry.strip_prefix("v1,") else {
                continue;
            };
            any = true;
            let Ok(tag) = BASE64.decode(encoded) else {
                continue;
            };
            // verify_slice compares in constant time.
            if self
                .keyed(headers.id, timestamp, body)
                .verify_slice(&tag)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(if any {
            VerifyError::Mismatch
        } else {
            VerifyError::NoSignature
        })
    }
}

/// The three Standard Webhooks headers of a received webhook, as received.
#[derive(Debug, Clone, Copy)]
pub struct SignatureHeaders<'a> {
    /// `webhook-id`.
    pub id: &'a str,
    /// `webhook-timestamp`.
    pub timestamp: &'a str,
    /// `webhook-signature`: one or more space-separated `v1,<base64>` (more than one
    /// while a secret is being rotated).
    pub signature: &'a str,
}

/// Checks a received webhook against `secret` (as configured on the sending side): the
/// timestamp is a unix time within `tolerance` of `now` either way
/// ([`DEFAULT_TOLERANCE`] is 5 minutes), and one `v1` signature is the HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under the secret's key, compared in constant time. `body`
/// is the raw body as received, before any JSON parsing.
pub fn verify(
    secret: &str,
    headers: &SignatureHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    WebhookSecret::parse(secret)?.verify(headers, body, now, tolerance)
}

/// A webhook channel, ready to deliver.
pub(crate) struct WebhookChannel {
    pub(crate) label: String,
    url: Url,
    secret: WebhookSecret,
    client: reqwest::Client,
    timeout: Duration,
}

impl WebhookChannel {
    pub(crate) fn new(config: &WebhookConfig) -> Result<WebhookChannel, ConfigError> {
        let url = http::parse_url("webhook", &config.url)?;
        let label = http::label("webhook", &url);
        let secret = WebhookSecret::parse(&config.secret).map_err(|e| ConfigError::Secret {
            channel: label.clone(),
            reason: e.to_string(),
        })?;
        let timeout = Timeout::or_default(config.timeout);
        let client = http::client(&label, timeout)?;
        Ok(WebhookChannel {
            label,
            url,
            secret,
            client,
            timeout,
        })
    }

    pub(crate) async fn deliver(&self, alert: &Alert) -> Result<Delivery, DeliveryError> {
        let encode =
            |detail: String| DeliveryError::permanent(&self.label, Failure::Encode(detail));
        let body = alert.to_json().map_err(|e| encode(e.to_string()))?;
        let timestamp = Utc::now().timestamp();
        let header = |value: String, what: &str| {
            HeaderValue::from_str(&value)
                .map_err(|_| encode(format!("{what} is not a valid header value")))
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static(HEADER_ID),
            header(alert.id.clone(), "the alert id")?,
        );
        headers.insert(
            HeaderName::from_static(HEADER_TIMESTAMP),
            header(timestamp.to_string(), "the timestamp")?,
        );
        headers.insert(
            HeaderName::from_static(HEADER_SIGNATURE),
            header(
                self.secret.sign(&alert.id, timestamp, &body),
                "the signature",
            )?,
        );
        headers.insert(
            HeaderName::from_static(HEADER_SIGNATURE_256),
            header(self.secret.sign_body(&body), "the signature")?,
        );
        http::post(
            &self.label,
            &self.client,
            &self.url,
            headers,
            body,
            self.timeout,
        )
        .await?;
        Ok(Delivery {
            channel: self.label.clone(),
            messages: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    // The key of the secret below, in bytes.
    const KEY: &[u8] = b"portgate-test-key-0123456789abcdef";

    fn secret() -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(KEY))
    }

    /// HMAC-SHA256 computed with the hmac crate directly, outside the signing code.
    fn reference(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn signatures_match_an_independent_computation() {
        let key = WebhookSecret::parse(&secret()).unwrap();
        let body = br#"{"type":"portgate.alert.v1"}"#;
        let signed = key.sign("msg_1", 1_700_000_000, body);
        let want = reference(KEY, br#"msg_1.1700000000.{"type":"portgate.alert.v1"}"#);
        assert_eq!(signed, format!("v1,{}", BASE64.encode(&want)));
        assert_eq!(
            key.sign_body(body),
            format!("sha256={}", hex::encode(reference(KEY, body)))
        );
    }

    #[test]
    fn the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification.
        let key = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_secret_without_prefix_is_raw_bytes() {
        let raw = WebhookSecret::parse("plain secret").unwrap();
        assert_eq!(
            raw.sign_body(b"x"),
            format!("sha256={}", hex::encode(reference(b"plain secret", b"x")))
        );
        assert_eq!(WebhookSecret::parse("").unwrap_err(), SecretError::Empty);
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            SecretError::Empty
        );
        assert!(matches!(
            WebhookSecret::parse("whsec_not base64!").unwrap_err(),
            SecretError::Base64(_)
        ));
    }

    #[test]
    fn verify_round_trip_and_refusals() {
        let secret = secret();
        let key = WebhookSecret::parse(&secret).unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let body = b"{\"id\":\"a\"}";
        let signature = key.sign("a", 1_700_000_000, body);
        let ok = SignatureHeaders {
            id: "a",
            timestamp: "1700000000",
            signature: &signature,
        };
        let check = |h: &SignatureHeaders<'_>, body: &[u8], now| {
            verify(&secret, h, body, now, DEFAULT_TOLERANCE)
        };
        assert_eq!(check(&ok, body, now), Ok(()));
        // Within the tolerance either way.
        assert_eq!(
            check(&ok, body, now + chrono::Duration::seconds(300)),
            Ok(())
        );
        assert_eq!(
            check(&ok, body, now - chrono::Duration::seconds(300)),
            Ok(())
        );
        // A rotated secret: the second signature matches.
        let two = format!("v1,AAAA {signature}");
        let rotated = SignatureHeaders {
            signature: &two,
            ..ok
        };
        assert_eq!(check(&rotated, body, now), Ok(()));

        assert_eq!(
            check(&ok, b"{\"id\":\"b\"}", now),
            Err(VerifyError::Mismatch)
        );
        let other_id = SignatureHeaders { id: "b", ..ok };
        assert_eq!(check(&other_id, body, now), Err(VerifyError::Mismatch));
        assert_eq!(
            check(&ok, body, now + chrono::Duration::seconds(301)),
            Err(VerifyError::TooOld { seconds: 301 })
        );
        assert_eq!(
            check(&ok, body, now - chrono::Duration::seconds(400)),
            Err(VerifyError::TooNew { seconds: 400 })
        );
        for bad in ["", "-1", "1e9", "17000000000000000000000", "0x10"] {
            let h = SignatureHeaders {
                timestamp: bad,
                ..ok
            };
            assert!(
                matches!(check(&h, body, now), Err(VerifyError::Timestamp(_))),
                "{bad}"
            );
        }
        let v2 = SignatureHeaders {
            signature: "v2,abc",
            ..ok
        };
        assert_eq!(check(&v2, body, now), Err(VerifyError::NoSignature));
        assert!(matches!(
            verify("whsec_!!", &ok, body, now, DEFAULT_TOLERANCE),
            Err(VerifyError::Secret(SecretError::Base64(_)))
        ));
    }
}
