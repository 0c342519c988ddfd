//! The HTTP API: routes, request and response types (the OpenAPI document is generated
//! from them), authentication and limits.

use crate::State;
use crate::problem::{Problem, Refused};
use crate::targets;
use crate::worker::{self, Progress, ScanJob};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use portgate_model::{PortState, Protocol, ScanReport, Scope};
use portgate_report::RenderOptions;
use portgate_store::{ApiKey, Job, JobFilter, JobStatus, NewJob};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Most ports of a synchronous port check.
pub const PORT_CHECK_MAX_PORTS: usize = 100;
/// Longest timeout of a synchronous port check, in seconds.
pub const PORT_CHECK_MAX_TIMEOUT: u64 = 30;

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "portgate",
        description = "Scan what you own over HTTP: scan ids to poll, a synchronous port check, API keys and an authorised scope. Errors are application/problem+json (RFC 9457).",
        license(name = "Apache-2.0 OR MIT")
    ),
    paths(
        create_scan, get_scan, list_scans, cancel_scan, crate::checks::create_check,
        crate::checks::get_check, port_scanner, target_history, diff,
        crate::findings::list, crate::findings::get_one, crate::findings::ack,
        crate::maintenance::list, crate::maintenance::create, crate::maintenance::delete,
        healthz, readyz, metrics
    ),
    components(schemas(
        ScanRequest, ScanAccepted, ScanView, ScanList, Links, ProgressView, PortCheck,
        PortCheckPort, Certificate, PortCheckSummary, Problem, crate::checks::CheckRequest,
        crate::checks::CheckAccepted, crate::checks::CheckView, crate::checks::ComparedScan,
        crate::findings::FindingView, crate::findings::EventView, crate::findings::FindingList,
        crate::findings::AckRequest, crate::maintenance::WindowRequest,
        crate::maintenance::WindowView, crate::maintenance::WindowList
    )),
    modifiers(&KeyAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

struct KeyAuth;

impl utoipa::Modify for KeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey as Key, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(Key::Header(ApiKeyValue::new("x-api-key"))),
        );
    }
}

/// The OpenAPI document, pretty-printed with a trailing newline.
pub fn openapi_json() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

pub(crate) fn router(state: State) -> Router {
    let max_body = state.0.config.max_body;
    Router::new()
        .route("/v1/scans", post(create_scan).get(list_scans))
        .route("/v1/scans/{id}", get(get_scan))
        .route("/v1/scans/{id}/cancel", post(cancel_scan))
        .route("/v1/checks", post(crate::checks::create_check))
        .route("/v1/checks/{id}", get(crate::checks::get_check))
        .route("/v1/port-scanner", get(port_scanner))
        .route("/v1/targets/{target}/history", get(target_history))
        .route("/v1/diff", get(diff))
        .route("/v1/findings", get(crate::findings::list))
        .route("/v1/findings/{fingerprint}", get(crate::findings::get_one))
        .route("/v1/findings/{fingerprint}/ack", post(crate::findings::ack))
        .route(
            "/v1/windows",
            get(crate::maintenance::list).post(crate::maintenance::create),
        )
        .route("/v1/windows/{name}", delete(crate::maintenance::delete))
        .route(
            "/v1/ack/{fingerprint}",
            get(crate::links::show).post(crate::links::submit),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(header_limits))
        .layer(axum::middleware::from_fn(access_log))
        // A bug must not drop the connection: it is a 500 problem like any other.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                Problem::internal("answer this request").into_response()
            },
        ))
        .with_state(state)
}

/// Most bytes of all request headers together (names and values).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most request headers.
pub const MAX_HEADERS: usize = 64;

/// One debug event per request: method, route (the matched pattern, not the path with its
/// ids), status and time taken.
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(none)".to_string(), |p| p.as_str().to_string());
    let began = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = began.elapsed().as_millis() as u64;
    tracing::debug!(
        method = %method,
        route = %route,
        status,
        elapsed_ms,
        "{method} {route}: {status} in {elapsed_ms} ms"
    );
    response
}

/// Refuses requests whose headers are too many or too large: 431, as a problem.
async fn header_limits(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Problem::headers_too_large(MAX_HEADERS, MAX_HEADER_BYTES).into_response();
    }
    next.run(request).await
}

/// The key of the request, checked and within its rate limit.
pub(crate) struct Authed(pub(crate) ApiKey);

impl FromRequestParts<State> for Authed {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Problem> {
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| k.len() < 200)
            .ok_or_else(Problem::unauthorized)?;
        let found = state
            .0
            .store
            .key_by_hash(&crate::keys::hash(key))
            .await
            .map_err(|e| {
                tracing::error!(operation = "key lookup", error = %e, "key lookup: {e}");
                Problem::internal("check the API key")
            })?
            .ok_or_else(Problem::unauthorized)?;
        if let Err(not_until) = state.0.limiter.check_key(&found.id) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return Err(Problem::too_many(
                format!(
                    "more than {} requests a minute with this key",
                    state.0.config.requests_per_minute
                ),
                wait.as_secs() + 1,
            ));
        }
        Ok(Authed(found))
    }
}

impl State {
    /// How long a name may take to resolve; `None` when names are not taken.
    pub(crate) fn resolve_timeout(&self) -> Option<Duration> {
        let config = &self.0.config;
        config.resolve_names.then_some(config.resolve_timeout)
    }

    /// The scope for `key`: the server's, narrowed by the key's own.
    pub(crate) fn scope_for(&self, key: &ApiKey) -> Result<Scope, Problem> {
        if key.scope.is_empty() {
            return Ok(self.0.config.scope.clone());
        }
        let own = Scope::parse(&key.scope)
            .map_err(|e| Problem::out_of_scope(format!("the key's scope is unusable: {e}")))?;
        Ok(self.0.config.scope.narrow(&own))
    }
}

pub(crate) fn json_body<T>(
    body: Result<Json<T>, JsonRejection>,
    limit: usize,
) -> Result<T, Problem> {
    match body {
        Ok(Json(value)) => Ok(value),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(Problem::too_large(limit))
        }
        Err(rejection) => Err(Problem::invalid(rejection.body_text())),
    }
}

pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(v)| v)
        .map_err(|rejection| Problem::invalid(rejection.body_text()))
}

pub(crate) fn store_failed(
    operation: &'static str,
) -> impl FnOnce(portgate_store::StoreError) -> Problem {
    move |e| {
        tracing::error!(operation, error = %e, "{operation}: {e}");
        Problem::internal(operation)
    }
}

/// A scan to run.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Addresses, CIDR ranges or names, each inside the server's (and the key's) scope.
    #[schema(example = json!(["198.18.0.10", "app.example.test"]))]
    pub targets: Vec<String>,
    /// Ports, in the CLI's syntax: `22,80,443`, `1-1024`, `top1000`, `T:22,U:53`, `-`.
    #[schema(example = "T:22,80,443")]
    pub ports: String,
    /// Name what answers on every open TCP port (service, version, TLS, HTTP, the
    /// application behind HTTP and what it exposes).
    #[serde(default)]
    pub detect: bool,
    /// With `detect`: try the vendors' documented default logins of the management
    /// interfaces found (HTTP Basic, each attempt recorded). Only for your own assets.
    #[serde(default)]
    pub try_default_credentials: bool,
    /// Also probe the same port numbers over UDP (for a spec without `T:`/`U:`).
    #[serde(default)]
    pub udp: bool,
    /// Deadline of the scan in seconds (at most the server's maximum, 900 by default).
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// Where to go next.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Links {
    /// This scan.
    #[serde(rename = "self")]
    pub this: String,
    /// Cancel it.
    pub cancel: String,
}

fn links(id: i64) -> Links {
    links_of("scans", id)
}

/// The links of job `id` of a kind's collection (`scans`, `checks`).
pub(crate) fn links_of(collection: &str, id: i64) -> Links {
    Links {
        this: format!("/v1/{collection}/{id}"),
        cancel: format!("/v1/{collection}/{id}/cancel"),
    }
}

/// A scan accepted.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanAccepted {
    /// Its id, to poll.
    pub scan_id: i64,
    /// `queued` (or, for a repeated `Idempotency-Key`, where the first request's scan is).
    pub status: String,
    /// Where to poll and cancel.
    pub links: Links,
}

/// Ports settled so far.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgressView {
    /// Settled.
    pub done: i64,
    /// In all (0 until the scan starts).
    pub total: i64,
}

/// A scan and, when done, its report.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanView {
    /// Its id.
    pub scan_id: i64,
    /// `queued`, `running`, `succeeded`, `partial` (done, something left out), `failed`,
    /// `cancelled`.
    pub status: String,
    /// The targets as given.
    pub targets: Vec<String>,
    /// Progress of a running scan.
    pub progress: ProgressView,
    /// When it was accepted (RFC 3339).
    pub created_at: String,
    /// When it last started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Times a worker took it (more than 1 after a server died while scanning).
    pub attempts: i64,
    /// The id of the scan in the server's history (for `/v1/diff`, `portgate diff`).
    pub history_scan_id: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it succeeded or is partial: the `portgate.scan.v1` report.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    /// Where to poll and cancel.
    pub links: Links,
}

/// A page of scans.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScanList {
    /// Newest first, without their reports.
    pub items: Vec<ScanView>,
    /// The `after` of the next page; null on the last.
    pub next: Option<String>,
}

pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn view(job: &Job, report: Option<(&ScanReport, RenderOptions)>) -> ScanView {
    ScanView {
        scan_id: job.id,
        status: job.status.as_str().to_string(),
        targets: job.targets.clone(),
        progress: ProgressView {
            done: job.progress_done,
            total: job.progress_total,
        },
        created_at: time(job.created_at),
        started_at: job.started_at.map(time),
        finished_at: job.finished_at.map(time),
        attempts: job.attempts,
        history_scan_id: job.scan_id,
        error: job.error.clone(),
        report: report.and_then(|(report, options)| {
            serde_json::to_value(portgate_report::JsonReport::new(report, options)).ok()
        }),
        links: links(job.id),
    }
}

/// The request's `Idempotency-Key`, if any: 1 to 200 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| Problem::invalid("Idempotency-Key: not visible ASCII"))?;
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(Problem::invalid("Idempotency-Key: 1 to 200 characters"));
    }
    Ok(key)
}

/// 429 when the key already has as many scans and checks queued or running as allowed (a
/// retry with an idempotency key is let through: it may name a job already there).
pub(crate) async fn within_scan_limit(
    state: &State,
    key: &ApiKey,
    retry: bool,
) -> Result<(), Problem> {
    let limit = state.0.config.per_key_scans;
    let active = state
        .0
        .store
        .active_jobs_of_key(Some(key.id))
        .await
        .map_err(store_failed("count the key's jobs"))?;
    if active >= limit && !retry {
        return Err(Problem::too_many(
            format!("this key has {active} scans or checks queued or running (at most {limit})"),
            5,
        ));
    }
    Ok(())
}

/// The port specification of a request, with `udp` applied: its text and how many ports.
fn port_spec(ports: &str, udp: bool) -> Result<(String, usize), Problem> {
    let spec = ports.trim();
    if spec.is_empty() {
        return Err(Problem::invalid(
            "ports: give a port specification, e.g. T:22,80,443",
        ));
    }
    let spec = if udp && !spec.contains(':') {
        format!("T:{spec},U:{spec}")
    } else {
        spec.to_string()
    };
    let count = worker::parse_ports(&spec).map_err(Problem::invalid)?.len();
    Ok((spec, count))
}

/// Queue a scan.
#[utoipa::path(
    post, path = "/v1/scans", request_body = ScanRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the first request's scan")),
    responses(
        (status = 202, description = "Accepted", body = ScanAccepted),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A target outside the scope", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
async fn create_scan(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    headers: HeaderMap,
    body: Result<Json<ScanRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let inner = &state.0;
    if state.draining() {
        return Err(Problem::unavailable("the server is shutting down"));
    }
    let request = json_body(body, inner.config.max_body)?;
    let (ports, _) = port_spec(&request.ports, request.udp)?;
    if request.try_default_credentials && !request.detect {
        return Err(Problem::invalid(
            "try_default_credentials: true needs detect: true (the default logins are tried on the management interfaces detection finds)",
        ));
    }
    let max = inner.config.max_scan_time.as_secs();
    if let Some(t) = request.timeout
        && (t == 0 || t > max)
    {
        return Err(Problem::invalid(format!(
            "timeout: {t} s; give 1 to {max} seconds"
        )));
    }
    let idempotency = idempotency_key(&headers)?;
    let scope = state.scope_for(&key)?;
    let checked = targets::check(&request.targets, &scope, state.resolve_timeout()).await?;
    within_scan_limit(&state, &key, idempotency.is_some()).await?;
    let job = ScanJob {
        targets: request.targets.clone(),
        ports,
        detect: request.detect,
        try_default_credentials: request.try_default_credentials,
        timeout_s: request.timeout,
        checked,
    };
    let text = serde_json::to_string(&job).map_err(|_| Problem::internal("record the request"))?;
    let (stored, created) = inner
        .store
        .enqueue_job(&NewJob {
            kind: "scan",
            request: &text,
            targets: &request.targets,
            key_id: Some(key.id),
            idempotency_key: idempotency.as_deref(),
        })
        .await
        .map_err(store_failed("queue the scan"))?;
    if created {
        inner.queue.pushed(stored.id);
    }
    let accepted = ScanAccepted {
        scan_id: stored.id,
        status: stored.status.as_str().to_string(),
        links: links(stored.id),
    };
    let mut response = (StatusCode::ACCEPTED, Json(accepted)).into_response();
    if let Ok(location) = header::HeaderValue::from_str(&format!("/v1/scans/{}", stored.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub(crate) async fn job_of_key(
    state: &State,
    key: &ApiKey,
    id: &str,
    kind: &str,
) -> Result<Job, Problem> {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Problem::invalid(format!("scan id \"{id}\": a positive number")))?;
    let job = state
        .0
        .store
        .job(id)
        .await
        .map_err(store_failed("read the scan"))?;
    // Another key's scan is not there, for this key.
    job.filter(|j| j.key_id == Some(key.id) && j.kind == kind)
        .ok_or_else(|| Problem::not_found(format!("no {kind} {id} for this key")))
}

/// A scan: status, progress and, when done, the report.
#[utoipa::path(
    get, path = "/v1/scans/{id}",
    params(("id" = i64, Path, description = "The scan id"), ViewQuery),
    responses(
        (status = 200, description = "The scan", body = ScanView),
        (status = 404, description = "No such scan for this key", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
async fn get_scan(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    Path(id): Path<String>,
    q: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Json<ScanView>, Problem> {
    let q = query(q)?;
    let job = job_of_key(&state, &key, &id, "scan").await?;
    let options = RenderOptions {
        only_open: false,
        all_ports: q.all_ports.unwrap_or(false),
    };
    let report = report_of(&state, &job).await?;
    Ok(Json(view(&job, report.as_ref().map(|r| (r, options)))))
}

/// A finished scan job's report: kept in the history (its `historyScanId`), or in the job
/// itself when keeping it in the history failed.
async fn report_of(state: &State, job: &Job) -> Result<Option<ScanReport>, Problem> {
    if let Some(text) = &job.result {
        return Ok(serde_json::from_str(text).ok());
    }
    match job.scan_id {
        Some(id) if job.status.is_done() => state
            .0
            .store
            .load_report(portgate_store::ScanId(id))
            .await
            .map(Some)
            .map_err(store_failed("read the scan's report")),
        _ => Ok(None),
    }
}

/// How to show a scan's report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// List every port in the report (by default a state with more than 25 ports on a
    /// host is summarised in `not_shown`, as `portgate scan -o json` does).
    pub all_ports: Option<bool>,
}

/// Filters of the list of scans.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only in this status.
    pub status: Option<String>,
    /// Only with this target (as given).
    pub target: Option<String>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// At most this many (1–100, default 20).
    pub limit: Option<u32>,
}

/// Scans of this key, newest first.
#[utoipa::path(
    get, path = "/v1/scans", params(ListQuery),
    responses(
        (status = 200, description = "A page of scans", body = ScanList),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
async fn list_scans(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ScanList>, Problem> {
    let q = query(q)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            JobStatus::from_name(s).ok_or_else(|| {
                Problem::invalid(format!(
                    "status \"{s}\": one of queued, running, succeeded, partial, failed, cancelled"
                ))
            })
        })
        .transpose()?;
    let before = q
        .after
        .as_deref()
        .map(|a| {
            a.parse::<i64>().map_err(|_| {
                Problem::invalid(format!("after \"{a}\": the next of a previous page"))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::invalid(format!("limit {limit}: 1 to 100")));
    }
    let jobs = state
        .0
        .store
        .jobs(&JobFilter {
            status,
            target: q.target,
            before,
            key_id: Some(key.id),
            limit: limit + 1,
        })
        .await
        .map_err(store_failed("list the scans"))?;
    let more = jobs.len() > limit as usize;
    let items: Vec<ScanView> = jobs
        .iter()
        .take(limit as usize)
        .map(|j| view(j, None))
        .collect();
    let next = if more {
        items.last().map(|v| v.scan_id.to_string())
    } else {
        None
    };
    Ok(Json(ScanList { items, next }))
}

/// Cancel a scan: a queued one at once, a running one within a few seconds.
#[utoipa::path(
    post, path = "/v1/scans/{id}/cancel",
    params(("id" = i64, Path, description = "The scan id")),
    responses(
        (status = 202, description = "Cancelled, or being cancelled", body = ScanView),
        (status = 404, description = "No such scan for this key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already finished", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
async fn cancel_scan(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let job = job_of_key(&state, &key, &id, "scan").await?;
    if job.status.is_done() {
        return Err(Problem::conflict(format!(
            "scan {} is already {}",
            job.id,
            job.status.as_str()
        )));
    }
    let now = state
        .0
        .store
        .cancel_job(job.id)
        .await
        .map_err(store_failed("cancel the scan"))?
        .unwrap_or(job);
    Ok((StatusCode::ACCEPTED, Json(view(&now, None))).into_response())
}

/// The synchronous check.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PortCheckQuery {
    /// An address or a name (a name is checked on its first address: see the README).
    pub target: String,
    /// At most 100 ports, in the CLI's syntax (default `T:21,22,23,25,53,80,110,143,443,3306,3389,5432,6379,8080`).
    pub ports: Option<String>,
    /// Seconds, 1–30 (default 10).
    pub timeout: Option<u64>,
    /// Scan again even when a recent answer is cached.
    pub skip_cache: Option<bool>,
}

/// The port check's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortCheck {
    /// The target as given.
    pub target: String,
    /// The address scanned.
    pub ip: String,
    /// An id of this check.
    pub scan_id: String,
    /// When it was scanned (RFC 3339).
    pub timestamp: String,
    /// Wall time of the scan.
    pub scan_duration_ms: u64,
    /// Every port asked for.
    pub ports: Vec<PortCheckPort>,
    /// Counts.
    pub summary: PortCheckSummary,
}

/// One port of a port check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortCheckPort {
    /// Number.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `open`, `closed`, `filtered` or `open|filtered`.
    pub state: String,
    /// What answers there, else the usual service of the number, else null.
    pub service: Option<String>,
    /// The first bytes the service sent (escaped), for an open port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    /// TLS version, when the port speaks TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The certificate, when the port speaks TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

/// A TLS certificate in a port check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Certificate {
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Expiry (RFC 3339).
    pub expires: Option<String>,
    /// Chain and name verified.
    pub valid: bool,
}

/// Counts of a port check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortCheckSummary {
    /// Ports scanned.
    pub total_scanned: u64,
    /// Open.
    pub open: u64,
    /// Closed.
    pub closed: u64,
    /// Filtered (open|filtered included).
    pub filtered: u64,
}

const DEFAULT_CHECK_PORTS: &str = "T:21,22,23,25,53,80,110,143,443,3306,3389,5432,6379,8080";

/// Scan a few ports of one address now and answer in one response.
#[utoipa::path(
    get, path = "/v1/port-scanner", params(PortCheckQuery),
    responses(
        (status = 200, description = "The ports' states", body = PortCheck),
        (status = 400, description = "Invalid, or too large for a synchronous check: use POST /v1/scans", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Target outside the scope", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
async fn port_scanner(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    q: Result<Query<PortCheckQuery>, QueryRejection>,
) -> Result<Json<PortCheck>, Problem> {
    let inner = &state.0;
    let q = query(q)?;
    let timeout = q.timeout.unwrap_or(10);
    if !(1..=PORT_CHECK_MAX_TIMEOUT).contains(&timeout) {
        return Err(Problem::invalid(format!(
            "timeout {timeout}: 1 to {PORT_CHECK_MAX_TIMEOUT} seconds here; for longer scans use POST /v1/scans"
        )));
    }
    let (ports, count) = port_spec(q.ports.as_deref().unwrap_or(DEFAULT_CHECK_PORTS), false)?;
    if count > PORT_CHECK_MAX_PORTS {
        return Err(Problem::invalid(format!(
            "ports: {count} ports; at most {PORT_CHECK_MAX_PORTS} here, for more use POST /v1/scans"
        )));
    }
    let scope = state.scope_for(&key)?;
    let mut checked = targets::check(
        std::slice::from_ref(&q.target),
        &scope,
        state.resolve_timeout(),
    )
    .await?;
    let Some(first) = checked.first_mut() else {
        return Err(Problem::invalid("target: give one"));
    };
    if matches!(
        first.specs.first(),
        Some(portgate_model::TargetSpec::Cidr(_))
    ) {
        return Err(Problem::invalid(
            "target: one address or name here; for a range use POST /v1/scans",
        ));
    }
    // A name with several addresses: the first is checked here.
    first.specs.truncate(1);
    let ip = first
        .specs
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    let cache_key = format!("{ip} {ports}");
    if !q.skip_cache.unwrap_or(false) {
        let hit = inner.cache.lock().ok().and_then(|cache| {
            cache
                .get(&cache_key)
                .filter(|(at, _)| at.elapsed() < inner.config.cache_ttl)
                .map(|(_, v)| v.clone())
        });
        if let Some(value) = hit
            && let Ok(mut answer) = serde_json::from_value::<PortCheck>(value)
        {
            answer.target = q.target.clone();
            inner.metrics.port_check(true, 0);
            return Ok(Json(answer));
        }
    }
    let _permit = inner
        .port_checks
        .try_acquire()
        .map_err(|_| Problem::too_many("the server is busy with other port checks", 2))?;
    let job = ScanJob {
        targets: vec![q.target.clone()],
        ports,
        detect: true,
        try_default_credentials: false,
        timeout_s: Some(timeout),
        checked,
    };
    let started = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(timeout * 2 + 2),
        worker::scan(&job, Arc::new(Progress::default()), &state.0.budget),
    )
    .await
    .map_err(|_| Problem::invalid(format!("the scan did not finish within {timeout} s")))?
    .map_err(Problem::invalid)?;
    let answer = port_check(&q.target, &ip, &report, started.elapsed());
    inner
        .metrics
        .port_check(false, report.summary().probes_sent);
    if let (Ok(mut cache), Ok(value)) = (inner.cache.lock(), serde_json::to_value(&answer)) {
        cache.retain(|_, (at, _)| at.elapsed() < inner.config.cache_ttl);
        cache.insert(cache_key, (Instant::now(), value));
    }
    Ok(Json(answer))
}

fn port_check(target: &str, ip: &str, report: &ScanReport, took: Duration) -> PortCheck {
    let mut ports = Vec::new();
    let (mut open, mut closed, mut filtered) = (0, 0, 0);
    for host in &report.hosts {
        for p in &host.ports {
            match p.state {
                PortState::Open => open += 1,
                PortState::Closed => closed += 1,
                PortState::Filtered | PortState::OpenFiltered => filtered += 1,
            }
            let found = host.service_on(p.protocol, p.port);
            let tls = found.and_then(|d| d.tls.as_ref());
            ports.push(PortCheckPort {
                port: p.port,
                protocol: p.protocol.as_str().to_string(),
                state: p.state.as_str().to_string(),
                service: found.and_then(|d| d.service.clone()).or_else(|| {
                    portgate_model::service_name(p.protocol, p.port).map(str::to_string)
                }),
                banner: found
                    .filter(|d| !d.evidence.is_empty() && p.protocol == Protocol::Tcp)
                    .map(|d| d.evidence.escaped()),
                tls_version: tls.map(|t| t.protocol.clone()),
                certificate: tls.map(|t| Certificate {
                    subject: t.subject.clone(),
                    issuer: t.issuer.clone(),
                    expires: t.not_after.clone(),
                    valid: t.valid,
                }),
            });
        }
    }
    let mut id = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
    PortCheck {
        target: target.to_string(),
        ip: ip.to_string(),
        scan_id: format!("pc_{}", hex::encode(id)),
        timestamp: time(report.started_at),
        scan_duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        summary: PortCheckSummary {
            total_scanned: ports.len() as u64,
            open,
            closed,
            filtered,
        },
        ports,
    }
}

/// How much history.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many scans, newest first (1–100, default 20).
    pub limit: Option<u32>,
}

fn json_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn pipeline_failed(e: portgate_pipeline::Error) -> Problem {
    match e.kind() {
        portgate_pipeline::ErrorKind::Input => Problem::not_found(e.to_string()),
        portgate_pipeline::ErrorKind::Incomplete => {
            tracing::error!(operation = "history", error = %e, "history: {e}");
            Problem::internal("read the history")
        }
    }
}

/// A target's exposure timeline (`portgate.history.v1`, as `portgate history -o json`):
/// one snapshot per address per scan, newest first.
#[utoipa::path(
    get, path = "/v1/targets/{target}/history",
    params(("target" = String, Path, description = "The target as scanned, or one of its addresses"), HistoryQuery),
    responses(
        (status = 200, description = "The timeline (portgate.history.v1)", body = Object),
        (status = 400, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Target outside the key's scope", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
async fn target_history(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    Path(target): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(Problem::invalid(format!("limit {limit}: 1 to 100")));
    }
    // Only what the key may scan may it read.
    let scope = state.scope_for(&key)?;
    targets::check(
        std::slice::from_ref(&target),
        &scope,
        state.resolve_timeout(),
    )
    .await?;
    let timeline = portgate_pipeline::timeline(&state.0.store, &target, limit)
        .await
        .map_err(pipeline_failed)?;
    Ok(json_text(portgate_report::timeline_json(
        &target, &timeline,
    )))
}

/// Two stored scans compared.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The earlier scan's history id (`historyScanId`).
    pub a: String,
    /// The later scan's history id.
    pub b: String,
}

/// Every difference between two stored scans (`portgate.diff.v1`, as `portgate diff A B -o json`).
#[utoipa::path(
    get, path = "/v1/diff", params(DiffQuery),
    responses(
        (status = 200, description = "The changes (portgate.diff.v1)", body = Object),
        (status = 400, description = "Invalid", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A change outside the key's scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such scan", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
async fn diff(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    q: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let q = query(q)?;
    let id = |text: &str, name: &str| {
        text.parse::<portgate_store::ScanId>()
            .map_err(|e| Problem::invalid(format!("{name}: {e}")))
    };
    let (a, b) = (id(&q.a, "a")?, id(&q.b, "b")?);
    let diffed = portgate_pipeline::diff_scans(&state.0.store, a, b)
        .await
        .map_err(pipeline_failed)?;
    let scope = state.scope_for(&key)?;
    if let Some(outside) = diffed
        .changes
        .iter()
        .find(|c| scope.check_addr(c.ip).is_err())
    {
        return Err(Problem::out_of_scope(format!(
            "scan {a} or {b} covers {}, outside this key's scope",
            outside.ip
        )));
    }
    Ok(json_text(portgate_report::diff_json(&diffed)))
}

/// Alive.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "The process answers", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready for work: the database answers and the server is not draining.
#[utoipa::path(get, path = "/readyz", security(()), responses(
    (status = 200, description = "Ready", body = String),
    (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json"),
))]
async fn readyz(
    axum::extract::State(state): axum::extract::State<State>,
) -> Result<&'static str, Problem> {
    if state.draining() {
        return Err(Problem::unavailable("the server is shutting down"));
    }
    state
        .0
        .store
        .job_counts()
        .await
        .map_err(|_| Problem::unavailable("the database does not answer"))?;
    Ok("ready\n")
}

/// Prometheus metrics: jobs by state, scans finished, probes sent, job latency.
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, description = "Prometheus text format", body = String)))]
async fn metrics(
    axum::extract::State(state): axum::extract::State<State>,
) -> Result<Response, Problem> {
    let counts = state
        .0
        .store
        .job_counts()
        .await
        .map_err(store_failed("count the jobs"))?;
    let text = state.0.metrics.render(&counts, state.0.budget.usage());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}
