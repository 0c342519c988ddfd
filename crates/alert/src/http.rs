//! What the HTTP channels (webhook, Slack) share: the client, the POST and the reading of
//! the answer into delivered, retry (with `Retry-After`) or permanent failure.

use std::error::Error as StdError;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::config::{root_store, tls_client_config};
use crate::error::{ConfigError, DeliveryError, Failure, MAX_RETRY_AFTER};
use crate::render::one_line;

/// How much of a failed answer's body is kept for the error message.
const DETAIL_BYTES: usize = 512;
/// How many characters of it are shown.
const DETAIL_CHARS: usize = 200;

/// `url` when it parses as an http(s) URL with a host.
pub(crate) fn parse_url(channel: &str, url: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::Url {
        channel: channel.to_string(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?}: give an http or https URL",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_string()));
    }
    Ok(parsed)
}

/// `kind host[:port]`: names the channel without the URL's path or query, which often
/// hold the token (Slack's hook URLs do).
pub(crate) fn label(kind: &str, url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{kind} {host}:{port}"),
        None => format!("{kind} {host}"),
    }
}

/// A client with the system's trust roots, `timeout` on the connect and on the whole
/// exchange, and no redirects (a signed body must not be sent on to another host).
pub(crate) fn client(channel: &str, timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    let tls = tls_client_config(channel, root_store(channel, None)?)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("portgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::Client {
            channel: channel.to_string(),
            reason: chain(&e),
        })
}

/// POSTs `body` with `headers`: `Ok(status)` on 2xx; a retryable error on 408, 429, 5xx
/// and on timeouts and connection failures (with `Retry-After` of a 429 or 503); a
/// permanent one otherwise.
pub(crate) async fn post(
    channel: &str,
    client: &reqwest::Client,
    url: &Url,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<StatusCode, DeliveryError> {
    let response = client
        .post(url.clone())
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| request_failure(channel, &e, timeout))?;
    let status = response.status();
    if status.is_success() {
        return Ok(status);
    }
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now())),
        _ => None,
    };
    let detail = excerpt(response).await;
    let cause = Failure::Status {
        status: status.as_u16(),
        detail,
    };
    let retryable = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    Err(DeliveryError {
        channel: channel.to_string(),
        retryable,
        retry_after,
        cause,
    })
}

/// The start of the answer's body on one line; empty when it cannot be read in time.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < DETAIL_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(DETAIL_BYTES);
    let text = one_line(String::from_utf8_lossy(&bytes).trim());
    match text.char_indices().nth(DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn request_failure(channel: &str, e: &reqwest::Error, timeout: Duration) -> DeliveryError {
    let detail = describe(e);
    if e.is_timeout() {
        DeliveryError::retry(
            channel,
            Failure::Timeout {
                operation: "HTTP request",
                after: timeout,
            },
        )
    } else if is_tls_refusal(e) {
        DeliveryError::permanent(channel, Failure::Tls(detail))
    } else if e.is_connect() {
        DeliveryError::retry(channel, Failure::Connect(detail))
    } else if e.is_builder() {
        DeliveryError::permanent(channel, Failure::Encode(detail))
    } else {
        DeliveryError::retry(channel, Failure::Http(detail))
    }
}

/// The error's chain without the URL (which may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let mut text = chain(e);
    if let Some(url) = e.url() {
        text = text.replace(&format!(" for url ({url})"), "");
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// An error and its sources, joined by `: `; a source whose text the message already
/// holds (many errors repeat their source) is not repeated.
pub(crate) fn chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// Whether rustls refused the handshake (an untrusted or expired certificate, a name
/// mismatch): trying again will not help until the certificate or the trust changes.
pub(crate) fn is_tls_refusal(e: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(e) = current {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // io::Error::source skips the error it wraps: look inside.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// `Retry-After` (seconds or an HTTP date) as a wait from `now`, at most
/// [`MAX_RETRY_AFTER`]; a date in the past is no wait.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = (when.with_timezone(&Utc) - now)
        .to_std()
        .unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 28, 0).unwrap();
        for (value, want) in [
            ("1", Some(1)),
            (" 120 ", Some(120)),
            ("999999", Some(3600)),
            ("Wed, 21 Oct 2015 07:28:30 GMT", Some(30)),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(0)),
            ("soon", None),
            ("-5", None),
        ] {
            assert_eq!(
                parse_retry_after(value, now),
                want.map(Duration::from_secs),
                "{value}"
            );
        }
    }

    #[test]
    fn urls_are_http_and_labels_hide_the_path() {
        let url = parse_url("t", "https://hooks.slack.com/services/T0/B0/secret").unwrap();
        assert_eq!(label("slack", &url), "slack hooks.slack.com");
        let url = parse_url("t", "http://127.0.0.1:8080/hook?token=x").unwrap();
        assert_eq!(label("webhook", &url), "webhook 127.0.0.1:8080");
        assert!(parse_url("t", "ftp://example.org/").is_err());
        assert!(parse_url("t", "not a url").is_err());
        assert!(parse_url("t", "file:///etc/passwd").is_err());
    }
}
