//! HTTP(S) GETs with a time limit and a cap on the answer: the body is read chunk by
//! chunk and refused as soon as it passes the cap, whatever `Content-Length` says.

use std::sync::Arc;
use std::time::Duration;

use crate::error::EnrichError;
use crate::text::excerpt;

/// A client over rustls (ring) with the system's trust roots.
pub(crate) fn client(
    timeout: Duration,
    user_agent: &str,
    system_proxy: bool,
) -> Result<reqwest::Client, EnrichError> {
    let failed = |message: String| EnrichError::Request {
        target: "HTTP client".to_owned(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder();
    if !system_proxy {
        builder = builder.no_proxy();
    }
    builder
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent(user_agent)
        .build()
        .map_err(|e| failed(e.to_string()))
}

/// An answer read whole.
pub(crate) struct Answer {
    pub body: Vec<u8>,
    pub content_type: String,
}

/// GETs `url`; a status other than 200 is [`EnrichError::Http`], a body over `cap`
/// bytes [`EnrichError::TooLarge`], no complete answer within `timeout`
/// [`EnrichError::Timeout`].
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    cap: u64,
    timeout: Duration,
) -> Result<Answer, EnrichError> {
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            EnrichError::Timeout {
                target: url.to_owned(),
                after: timeout,
            }
        } else {
            EnrichError::Request {
                target: url.to_owned(),
                message: describe(&e),
            }
        }
    };
    let work = async {
        let mut response = client
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| crate::text::escape_text(v, 100))
            .unwrap_or_default();
        if response.content_length().is_some_and(|n| n > cap) && status.is_success() {
            return Err(EnrichError::too_large(
                url,
                "the answer",
                format!("{cap} bytes"),
            ));
        }
        let mut body: Vec<u8> = Vec::new();
        // An error answer is read only for its first bytes, to quote them.
        let keep = if status == reqwest::StatusCode::OK {
            cap
        } else {
            4096
        };
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() as u64 + chunk.len() as u64 > keep {
                if status == reqwest::StatusCode::OK {
                    return Err(EnrichError::too_large(
                        url,
                        "the answer",
                        format!("{cap} bytes"),
                    ));
                }
                let room = (keep as usize).saturating_sub(body.len());
                body.extend_from_slice(&chunk[..room.min(chunk.len())]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if status != reqwest::StatusCode::OK {
            let reason = status.canonical_reason().unwrap_or("unexpected status");
            let message = if body.iter().all(u8::is_ascii_whitespace) {
                reason.to_owned()
            } else {
                format!("{reason}: {}", excerpt(&body))
            };
            return Err(EnrichError::Http {
                url: url.to_owned(),
                status: status.as_u16(),
                message,
            });
        }
        Ok(Answer { body, content_type })
    };
    // reqwest's own timeout covers the request; this one also covers a body that
    // trickles in.
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(EnrichError::Timeout {
            target: url.to_owned(),
            after: timeout,
        }),
    }
}

/// reqwest's error with its causes, which say what actually failed.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    crate::text::escape_text(&text, 400)
}
