//! `POST /v1/checks` and `GET /v1/checks/{id}`: a manifest (one the server is configured
//! with, by name, or inline YAML) checked against a scan the server runs — the same plan,
//! evaluation and renditions (JSON evidence, SARIF, JUnit, Markdown) as `portgate check`.

use crate::State;
use crate::api::{Authed, json_body, links_of, query, store_failed};
use crate::problem::{Problem, Refused};
use crate::targets::{self, Checked};
use crate::worker::{self, Progress, ScanJob};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use portgate_model::{Finding, Outcome, PortSpec, ScanReport, TargetSpec};
use portgate_pipeline::{CheckOptions, Error, RemoteScan, Saved};
use portgate_policy::{Manifest, Unlisted};
use portgate_store::{Job, NewJob};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// A check to run.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The name of a manifest the server is configured with (`--manifest NAME=PATH`), or a
    /// whole manifest as YAML.
    pub manifest: String,
    /// Check only this environment's assets.
    #[serde(default)]
    pub env: Option<String>,
    /// Check only this target (as `portgate check --target`).
    #[serde(default)]
    pub target: Option<String>,
}

/// A check as stored in its job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckJob {
    /// The manifest's text.
    manifest: String,
    /// Its name in findings and renditions.
    source: String,
    env: Option<String>,
    target: Option<String>,
    /// Every target of the plan, resolved and checked against the scope.
    checked: Vec<Checked>,
    /// The ports scanned on every asset instead of each asset's own (a schedule's tier).
    #[serde(default)]
    ports: Option<String>,
    /// The schedule that queued it: its findings then have a life and alerts.
    #[serde(default)]
    schedule: Option<String>,
}

/// What a finished check keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckResult {
    report: ScanReport,
    findings: Vec<Finding>,
    outcome: Outcome,
    monitor: bool,
    /// The stored scans it was compared with.
    #[serde(default)]
    compared: Vec<ComparedScan>,
    /// The check's record in the history, when it was saved.
    #[serde(default)]
    saved_check: Option<i64>,
}

/// A stored scan a target's results were compared with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComparedScan {
    /// The target.
    pub target: String,
    /// The stored scan (`GET /v1/diff?a=…&b=…` takes it).
    pub scan_id: i64,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// The plan's scans, done with the addresses checked when the check was accepted.
struct PlanScans<'a> {
    checked: &'a [Checked],
    progress: Arc<Progress>,
    budget: &'a crate::budget::Budget,
}

impl RemoteScan for PlanScans<'_> {
    fn scan<'a>(
        &'a self,
        ports: &'a PortSpec,
        targets: &'a [TargetSpec],
        deadline: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = Result<ScanReport, Error>> + Send + 'a>> {
        Box::pin(async move {
            let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
            let checked: Vec<Checked> = self
                .checked
                .iter()
                .filter(|c| {
                    TargetSpec::from_str(&c.input).is_ok_and(|t| names.contains(&t.to_string()))
                })
                .cloned()
                .collect();
            let job = ScanJob {
                targets: names,
                ports: ports.to_string(),
                detect: true,
                try_default_credentials: false,
                timeout_s: deadline.map(|d| d.as_secs().max(1)),
                checked,
            };
            worker::scan(&job, self.progress.clone(), self.budget)
                .await
                .map_err(Error::Server)
        })
    }
}

/// What a check run produced: its result document (JSON) and the scan kept in the history.
pub(crate) struct Ran {
    /// The result document.
    pub text: String,
    /// The scan's id in the history, when it was saved.
    pub scan_id: Option<i64>,
}

/// Runs a stored check: compared with the last scan of each target in the server's history,
/// evaluated as `portgate check` evaluates, and saved there (scan and findings).
pub(crate) async fn run(
    job_id: i64,
    request: &str,
    progress: Arc<Progress>,
    state: &State,
) -> Result<Ran, String> {
    let job: CheckJob = serde_json::from_str(request)
        .map_err(|e| format!("the stored check is unreadable: {e}"))?;
    let manifest =
        Manifest::from_bytes(job.manifest.as_bytes(), &job.source).map_err(|e| e.to_string())?;
    let options = options(&job)?;
    let scans = PlanScans {
        checked: &job.checked,
        progress,
        budget: &state.0.budget,
    };
    let outcome = portgate_pipeline::check_remote_in(&manifest, &options, &scans, &state.0.store)
        .await
        .map_err(|e| e.to_string())?;
    let (scan_id, saved_check) = match outcome.saved {
        Saved::Saved { scan, check, .. } => (Some(scan.0), Some(check.0)),
        Saved::NotRecorded => (None, None),
        Saved::Failed(e) => {
            tracing::error!(job_id, error = %e, "cannot keep the check in the history: {e}");
            (None, None)
        }
    };
    // A scheduled check: every finding has a life and alerts. Any check of a manifest that
    // sends the targets no asset lists to review: those findings go to the review queue.
    let review = manifest.defaults.unlisted == Unlisted::Review;
    let (label, targets, findings): (&str, BTreeSet<String>, Vec<Finding>) = match &job.schedule {
        Some(schedule) => (
            schedule,
            outcome
                .report
                .hosts
                .iter()
                .map(|h| h.target.clone())
                .collect(),
            outcome.evaluation.findings.clone(),
        ),
        None if review => {
            let listed: BTreeSet<String> = manifest
                .assets
                .iter()
                .flat_map(|a| a.value.targets.iter().map(|t| t.value.0.to_string()))
                .collect();
            let unlisted: BTreeSet<String> = outcome
                .report
                .hosts
                .iter()
                .map(|h| h.target.clone())
                .filter(|t| {
                    let normal = TargetSpec::from_str(t)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|_| t.clone());
                    !listed.contains(&normal)
                })
                .collect();
            let findings = outcome
                .evaluation
                .findings
                .iter()
                .filter(|f| f.asset.is_none() && unlisted.contains(&f.target))
                .cloned()
                .collect();
            ("review", unlisted, findings)
        }
        None => ("", BTreeSet::new(), Vec::new()),
    };
    if !targets.is_empty() {
        let began = std::time::Instant::now();
        let tags = manifest
            .assets
            .iter()
            .map(|a| (a.value.name.clone(), a.value.tags.clone()))
            .collect();
        let recorded =
            crate::monitor::record(state, job_id, label, &targets, &findings, tags, review).await;
        state
            .0
            .metrics
            .findings_evaluated(findings.len(), began.elapsed());
        if let Err(e) = recorded {
            tracing::error!(job_id, error = %e, "check {job_id}: cannot record its findings: {e}");
        }
    }
    let compared = outcome
        .compared
        .into_iter()
        .map(|c| ComparedScan {
            target: c.target,
            scan_id: c.scan.0,
            started_at: c.started_at,
        })
        .collect();
    let text = serde_json::to_string(&CheckResult {
        report: outcome.report,
        findings: outcome.evaluation.findings,
        outcome: outcome.evaluation.outcome,
        monitor: outcome.evaluation.monitor,
        compared,
        saved_check,
    })
    .map_err(|e| e.to_string())?;
    Ok(Ran { text, scan_id })
}

fn options(job: &CheckJob) -> Result<CheckOptions, String> {
    let targets = job
        .target
        .iter()
        .map(|t| TargetSpec::from_str(t).map_err(|e| format!("target: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let ports = job
        .ports
        .as_deref()
        .map(|p| PortSpec::from_str(p).map_err(|e| format!("ports: {e}")))
        .transpose()?;
    Ok(CheckOptions::builder()
        .env(job.env.clone())
        .targets(targets)
        .ports(ports)
        .build())
}

/// The manifest a request names: one the server is configured with, or inline YAML.
fn manifest_text(state: &State, manifest: &str) -> Result<(String, String), Problem> {
    match state.0.config.manifests.get(manifest) {
        Some(path) => Ok((
            std::fs::read_to_string(path).map_err(|e| {
                tracing::error!(manifest = %path.display(), error = %e, "manifest {}: {e}", path.display());
                Problem::internal("read the configured manifest")
            })?,
            manifest.to_string(),
        )),
        None if manifest.contains('\n') => Ok((manifest.to_string(), "inline".into())),
        None => Err(Problem::invalid(format!(
            "manifest: \"{manifest}\" is neither a manifest this server is configured with nor YAML"
        ))),
    }
}

/// A check job for `job` (manifest, env, target, ports set): the manifest parsed, the
/// environment known, every target of its plan resolved and checked against `scope`.
/// Its targets as given, for the job's row.
async fn prepare(
    state: &State,
    scope: &portgate_model::Scope,
    job: &mut CheckJob,
) -> Result<Vec<String>, Problem> {
    let manifest = Manifest::from_bytes(job.manifest.as_bytes(), &job.source)
        .map_err(|e| Problem::invalid(format!("manifest: {e}")))?;
    let options = options(job).map_err(Problem::invalid)?;
    manifest
        .check_environment(options.env())
        .map_err(|e| Problem::invalid(e.to_string()))?;
    let inputs: Vec<String> = manifest
        .scan_plan(options.env(), &[])
        .iter()
        .flat_map(|g| g.targets.iter().map(ToString::to_string))
        .chain(job.target.iter().cloned())
        .collect();
    if inputs.is_empty() {
        return Err(Problem::invalid(
            "manifest: nothing to check: no asset lists a target",
        ));
    }
    job.checked = targets::check(&inputs, scope, state.resolve_timeout()).await?;
    Ok(inputs)
}

/// Queues schedule `schedule`'s check of configured manifest `manifest` (the server's own
/// job, within the server's whole scope) under `idempotency`; the job's id.
pub(crate) async fn queue_scheduled(
    state: &State,
    manifest: &str,
    schedule: &crate::monitor::Schedule,
    idempotency: &str,
) -> Result<i64, String> {
    let (text, source) = manifest_text(state, manifest).map_err(|p| p.detail)?;
    let mut job = CheckJob {
        manifest: text,
        source,
        env: schedule.env.clone(),
        target: None,
        checked: Vec::new(),
        ports: schedule.ports.as_ref().map(ToString::to_string),
        schedule: Some(schedule.name.clone()),
    };
    let inputs = prepare(state, &state.0.config.scope, &mut job)
        .await
        .map_err(|p| p.detail)?;
    let request = serde_json::to_string(&job).map_err(|e| e.to_string())?;
    let (stored, created) = state
        .0
        .store
        .enqueue_job(&NewJob {
            kind: "check",
            request: &request,
            targets: &inputs,
            key_id: None,
            idempotency_key: Some(idempotency),
        })
        .await
        .map_err(|e| e.to_string())?;
    if created {
        state.0.queue.pushed(stored.id);
    }
    Ok(stored.id)
}

/// A check accepted.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckAccepted {
    /// Its id, to poll.
    pub check_id: i64,
    /// `queued`.
    pub status: String,
}

/// Queue a check of a manifest.
#[utoipa::path(
    post, path = "/v1/checks", request_body = CheckRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the first request's check")),
    responses(
        (status = 202, description = "Accepted", body = CheckAccepted),
        (status = 400, description = "Invalid request or manifest", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A target outside the scope", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
pub(crate) async fn create_check(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    headers: axum::http::HeaderMap,
    body: Result<Json<CheckRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let inner = &state.0;
    if state.draining() {
        return Err(Problem::unavailable("the server is shutting down"));
    }
    let request = json_body(body, inner.config.max_body)?;
    let idempotency = crate::api::idempotency_key(&headers)?;
    crate::api::within_scan_limit(&state, &key, idempotency.is_some()).await?;
    let (text, source) = manifest_text(&state, &request.manifest)?;
    let mut job = CheckJob {
        manifest: text,
        source,
        env: request.env.clone(),
        target: request.target.clone(),
        checked: Vec::new(),
        ports: None,
        schedule: None,
    };
    let scope = state.scope_for(&key)?;
    let inputs = prepare(&state, &scope, &mut job).await?;
    let text = serde_json::to_string(&job).map_err(|_| Problem::internal("record the request"))?;
    let (stored, created) = inner
        .store
        .enqueue_job(&NewJob {
            kind: "check",
            request: &text,
            targets: &inputs,
            key_id: Some(key.id),
            idempotency_key: idempotency.as_deref(),
        })
        .await
        .map_err(store_failed("queue the check"))?;
    if created {
        inner.queue.pushed(stored.id);
    }
    let accepted = CheckAccepted {
        check_id: stored.id,
        status: stored.status.as_str().to_string(),
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// How to show a check.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// `json` (status and, when done, the decision and the `portgate.check.v1` evidence;
    /// the default), or a rendition of a finished check: `sarif`, `junit`, `markdown`.
    pub format: Option<String>,
}

/// A check: status and, when done, its decision, findings and renditions.
#[utoipa::path(
    get, path = "/v1/checks/{id}",
    params(("id" = i64, Path, description = "The check id"), CheckQuery),
    responses(
        (status = 200, description = "The check (JSON), or a rendition (SARIF, JUnit XML, Markdown)", body = Object),
        (status = 400, description = "Unknown format", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such check for this key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A rendition of a check not done", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
pub(crate) async fn get_check(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    Path(id): Path<String>,
    q: Result<Query<CheckQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let q = query(q)?;
    let job = crate::api::job_of_key(&state, &key, &id, "check").await?;
    let format = q.format.as_deref().unwrap_or("json");
    let result: Option<CheckResult> = job
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    let stored: Option<CheckJob> = serde_json::from_str(&job.request).ok();
    let source = stored
        .as_ref()
        .map(|j| j.source.clone())
        .unwrap_or_default();
    let env = stored.as_ref().and_then(|j| j.env.clone());
    let rendition = result.as_ref().map(|r| portgate_report::CheckReport {
        findings: &r.findings,
        outcome: r.outcome,
        monitor: r.monitor,
        manifest: &source,
        env: env.as_deref(),
        scan: &r.report,
    });
    let (content_type, render): (&str, fn(&portgate_report::CheckReport<'_>) -> String) =
        match format {
            "json" => {
                return Ok(Json(view(&job, result.as_ref(), rendition.as_ref())).into_response());
            }
            "sarif" => ("application/sarif+json", portgate_report::sarif),
            "junit" => ("application/xml", portgate_report::junit),
            "markdown" => ("text/markdown; charset=utf-8", portgate_report::markdown),
            other => {
                return Err(Problem::invalid(format!(
                    "format \"{other}\": json, sarif, junit or markdown"
                )));
            }
        };
    let Some(check) = rendition else {
        return Err(Problem::conflict(format!(
            "check {} is {}: its {format} is there once it has succeeded",
            job.id,
            job.status.as_str()
        )));
    };
    Ok(([(header::CONTENT_TYPE, content_type)], render(&check)).into_response())
}

/// A check as JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckView {
    /// Its id.
    pub check_id: i64,
    /// `queued`, `running`, `succeeded` (decided), `failed` (could not run), `cancelled`.
    pub status: String,
    /// When done: `pass`, `warn`, `fail` or `inconclusive`.
    pub decision: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When done: the `portgate.check.v1` evidence (findings and the scan), as
    /// `portgate check --json` writes it.
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<serde_json::Value>,
    /// When done: the scan it ran, as kept in the server's history (what the next check of
    /// the same targets is compared with).
    pub scan_id: Option<i64>,
    /// When done: the stored scans it was compared with, one per target scanned before.
    pub compared: Vec<ComparedScan>,
    /// Where to poll.
    pub links: crate::api::Links,
}

fn view(
    job: &Job,
    result: Option<&CheckResult>,
    check: Option<&portgate_report::CheckReport<'_>>,
) -> CheckView {
    CheckView {
        check_id: job.id,
        status: job.status.as_str().to_string(),
        decision: check.map(|c| c.outcome.as_str().to_string()),
        error: job.error.clone(),
        evidence: check.and_then(|c| serde_json::from_str(&portgate_report::check_json(c)).ok()),
        scan_id: job.scan_id,
        compared: result.map(|r| r.compared.clone()).unwrap_or_default(),
        links: links_of("checks", job.id),
    }
}
