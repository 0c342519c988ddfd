//! The client side: what `portgate scan --server` and `portgate check --server` use to have
//! a server scan for them — submit, poll until done (within a ceiling), read the report.

use crate::api::ScanRequest;
use portgate_model::ScanReport;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the server did not give a report.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request (4xx): its problem's detail.
    #[error("the server refused the scan ({status}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// What the server said.
        detail: String,
    },
    /// The server could not be reached, failed (5xx) or answered something unreadable.
    #[error("server {base}: {message}")]
    Failed {
        /// The server.
        base: String,
        /// What went wrong.
        message: String,
    },
    /// The scan was not done within the wait.
    #[error(
        "scan {id} on {base} is not done after {waited:?} (still {status}); raise --wait or poll it later"
    )]
    NotDone {
        /// The server.
        base: String,
        /// The scan.
        id: i64,
        /// How long we waited.
        waited: Duration,
        /// Its last status.
        status: String,
    },
    /// The scan ended without a report.
    #[error("scan {id} {status}: {reason}")]
    Ended {
        /// The scan.
        id: i64,
        /// `failed` or `cancelled`.
        status: String,
        /// Why.
        reason: String,
    },
}

impl ClientError {
    /// Whether the request itself was at fault (a usage error, exit 2) rather than the
    /// server or the network (exit 3).
    pub fn is_input(&self) -> bool {
        matches!(self, ClientError::Refused { status, .. } if *status != 429)
    }
}

/// A portgate server and the key to use it.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    /// A client of the server at `base` (`http://…` or `https://…`, the system's trust
    /// roots) with API key `key`.
    pub fn new(base: &str, key: &str) -> Result<Client, ClientError> {
        let base = base.trim_end_matches('/').to_string();
        let failed = |message: String| ClientError::Failed {
            base: base.clone(),
            message,
        };
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Refused {
                status: 0,
                detail: format!("--server {base}: give an http:// or https:// URL"),
            });
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        Ok(Client {
            http,
            base,
            key: key.to_string(),
        })
    }

    fn failed(&self, message: impl Into<String>) -> ClientError {
        ClientError::Failed {
            base: self.base.clone(),
            message: message.into(),
        }
    }

    async fn answer(&self, response: reqwest::Response) -> Result<Value, ClientError> {
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| self.failed(format!("unreadable answer ({status}): {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        let detail = body["detail"].as_str().unwrap_or("no detail").to_string();
        if status.is_client_error() {
            Err(ClientError::Refused {
                status: status.as_u16(),
                detail,
            })
        } else {
            Err(self.failed(format!("{status}: {detail}")))
        }
    }

    /// Acknowledges finding `fingerprint` as `by` with `comment`; the finding as the server
    /// now has it (`portgate.finding` view, with its events).
    pub async fn acknowledge(
        &self,
        fingerprint: &str,
        by: &str,
        comment: &str,
    ) -> Result<Value, ClientError> {
        let sent = self
            .http
            .post(format!("{}/v1/findings/{fingerprint}/ack", self.base))
            .header("x-api-key", &self.key)
            .json(&serde_json::json!({"by": by, "comment": comment}))
            .send()
            .await
            .map_err(|e| self.failed(e.to_string()))?;
        self.answer(sent).await
    }

    /// The maintenance windows (`GET /v1/windows`).
    pub async fn windows(&self) -> Result<Value, ClientError> {
        let sent = self
            .http
            .get(format!("{}/v1/windows", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
            .map_err(|e| self.failed(e.to_string()))?;
        self.answer(sent).await
    }

    /// Makes (or changes) a maintenance window; the window as the server has it.
    pub async fn put_window(
        &self,
        window: &crate::maintenance::WindowRequest,
    ) -> Result<Value, ClientError> {
        let sent = self
            .http
            .post(format!("{}/v1/windows", self.base))
            .header("x-api-key", &self.key)
            .json(window)
            .send()
            .await
            .map_err(|e| self.failed(e.to_string()))?;
        self.answer(sent).await
    }

    /// Deletes maintenance window `name`.
    pub async fn delete_window(&self, name: &str) -> Result<(), ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}/v1/windows/", self.base))
            .map_err(|e| self.failed(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| self.failed("not a base URL"))?
            .pop_if_empty()
            .push(name);
        let sent = self
            .http
            .delete(url)
            .header("x-api-key", &self.key)
            .send()
            .await
            .map_err(|e| self.failed(e.to_string()))?;
        if sent.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(());
        }
        self.answer(sent).await.map(|_| ())
    }

    /// Submits `request` and waits at most `wait` for its report.
    pub async fn scan(
        &self,
        request: &ScanRequest,
        wait: Duration,
    ) -> Result<ScanReport, ClientError> {
        let sent = self
            .http
            .post(format!("{}/v1/scans", self.base))
            .header("x-api-key", &self.key)
            .json(request)
            .send()
            .await
            .map_err(|e| self.failed(e.to_string()))?;
        let accepted = self.answer(sent).await?;
        let id = accepted["scanId"]
            .as_i64()
            .ok_or_else(|| self.failed("no scanId in the answer"))?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(200);
        loop {
            let polled = self
                .http
                .get(format!("{}/v1/scans/{id}?allPorts=true", self.base))
                .header("x-api-key", &self.key)
                .send()
                .await
                .map_err(|e| self.failed(e.to_string()))?;
            let view = self.answer(polled).await?;
            let status = view["status"].as_str().unwrap_or_default().to_string();
            match status.as_str() {
                "succeeded" | "partial" => {
                    let report = view["report"].to_string();
                    return portgate_report::read_json(&report)
                        .map_err(|e| self.failed(format!("scan {id}: its report: {e}")));
                }
                "failed" | "cancelled" => {
                    return Err(ClientError::Ended {
                        id,
                        reason: view["error"]
                            .as_str()
                            .unwrap_or("no reason given")
                            .to_string(),
                        status,
                    });
                }
                _ => {}
            }
            if start.elapsed() >= wait {
                return Err(ClientError::NotDone {
                    base: self.base.clone(),
                    id,
                    waited: wait,
                    status,
                });
            }
            tokio::time::sleep(pause.min(wait.saturating_sub(start.elapsed()))).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}
