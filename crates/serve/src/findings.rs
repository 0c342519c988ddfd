//! `/v1/findings`: what the scheduled checks found, with its life — list, one with its
//! events, and acknowledge (`POST /v1/findings/{fingerprint}/ack`). A key sees the findings
//! whose address lies inside its scope.

use crate::State;
use crate::api::{Authed, json_body, query, store_failed, time};
use crate::problem::{Problem, Refused};
use axum::Json;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use chrono::Utc;
use portgate_model::Scope;
use portgate_model::lifecycle::FindingState;
use portgate_store::{ApiKey, FindingEvent, StoredFinding};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A finding with its life.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingView {
    /// Stable across checks: target, address, protocol, port, rule.
    pub fingerprint: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    /// The rule (`unapproved-port`, …).
    pub rule: String,
    /// `critical` … `info`.
    pub severity: String,
    /// The target as the manifest writes it.
    pub target: String,
    /// `198.18.0.10:6379/tcp`.
    pub endpoint: String,
    /// Why, in one sentence.
    pub message: String,
    /// First seen.
    pub first_seen: String,
    /// Last seen.
    pub last_seen: String,
    /// Checks in a row that did not show it (resolved when the drift rules confirm it).
    pub missing_runs: u32,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// What they said.
    pub ack_comment: Option<String>,
    /// When.
    pub acknowledged_at: Option<String>,
    /// When it was last resolved.
    pub resolved_at: Option<String>,
    /// The maintenance window it was raised inside.
    pub suppressed_by: Option<String>,
    /// How often it was escalated since it was (re)opened.
    pub escalations: u32,
    /// `review`: in the review queue (a target no asset lists).
    pub queue: Option<String>,
    /// The finding as last seen (the `portgate.check.v1` form).
    #[schema(value_type = Object)]
    pub finding: serde_json::Value,
    /// Its life, oldest first (one finding only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

/// One change in a finding's life.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// When.
    pub at: String,
    /// `opened`, `reopened`, `suppressed`, `acknowledged`, `escalated`, `resolved`.
    pub event: String,
    /// Who.
    pub actor: Option<String>,
    /// What they said.
    pub comment: Option<String>,
    /// The check that saw it (`GET /v1/checks/{id}`).
    pub check_id: Option<i64>,
    /// The window of a `suppressed` event, the channel of an `escalated` one.
    pub detail: Option<String>,
}

/// Findings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingList {
    /// Newest seen first.
    pub items: Vec<FindingView>,
}

/// An acknowledgement.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Who acknowledges (1–200 characters).
    pub by: String,
    /// Why (1–2,000 characters).
    pub comment: String,
}

/// Filters of the list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    /// Only in this state: `open`, `acknowledged`, `resolved`.
    pub state: Option<String>,
    /// Only the review queue (`review`: findings of targets no asset lists, when the
    /// manifest says `unlisted: review`), or only the rest (`monitor`).
    pub queue: Option<String>,
    /// At most this many (1–500, default 100).
    pub limit: Option<i64>,
}

fn view(f: StoredFinding, events: Option<Vec<FindingEvent>>) -> FindingView {
    FindingView {
        state: f.state.as_str().to_string(),
        rule: f.finding.rule.id().to_string(),
        severity: f.finding.severity.as_str().to_string(),
        target: f.finding.target.clone(),
        endpoint: f.finding.endpoint(),
        message: f.finding.message.clone(),
        first_seen: time(f.first_seen),
        last_seen: time(f.last_seen),
        missing_runs: f.missing_runs,
        acknowledged_by: f.acknowledged_by,
        ack_comment: f.ack_comment,
        acknowledged_at: f.acknowledged_at.map(time),
        resolved_at: f.resolved_at.map(time),
        suppressed_by: f.suppressed_by,
        escalations: f.escalations,
        queue: f.queue.clone(),
        finding: serde_json::to_value(&f.finding).unwrap_or_default(),
        fingerprint: f.fingerprint,
        events: events.map(|list| {
            list.into_iter()
                .map(|e| EventView {
                    at: time(e.at),
                    event: e.event,
                    actor: e.actor,
                    comment: e.comment,
                    check_id: e.job_id,
                    detail: e.detail,
                })
                .collect()
        }),
    }
}

/// Whether `key`'s scope covers the finding's address (a finding without one: the whole
/// scope only).
fn visible(scope: &Scope, whole: bool, f: &StoredFinding) -> bool {
    match f.finding.ip {
        Some(ip) => scope.check_addr(ip).is_ok(),
        None => whole,
    }
}

fn scope_of(state: &State, key: &ApiKey) -> Result<(Scope, bool), Problem> {
    Ok((state.scope_for(key)?, key.scope.is_empty()))
}

/// The findings of the scheduled checks.
#[utoipa::path(
    get, path = "/v1/findings", params(FindingQuery),
    responses(
        (status = 200, description = "The findings", body = FindingList),
        (status = 400, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
pub(crate) async fn list(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    q: Result<Query<FindingQuery>, QueryRejection>,
) -> Result<Json<FindingList>, Problem> {
    let q = query(q)?;
    let filter = match q.state.as_deref() {
        None => None,
        Some(name) => Some(FindingState::parse(name).ok_or_else(|| {
            Problem::invalid(format!("state \"{name}\": open, acknowledged or resolved"))
        })?),
    };
    let review = match q.queue.as_deref() {
        None => None,
        Some("review") => Some(true),
        Some("monitor") => Some(false),
        Some(other) => {
            return Err(Problem::invalid(format!(
                "queue \"{}\": review or monitor",
                other.escape_default()
            )));
        }
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid(format!("limit {limit}: 1 to 500")));
    }
    let (scope, whole) = scope_of(&state, &key)?;
    let found = state
        .0
        .store
        .findings(filter, review, limit)
        .await
        .map_err(store_failed("list findings"))?;
    Ok(Json(FindingList {
        items: found
            .into_iter()
            .filter(|f| visible(&scope, whole, f))
            .map(|f| view(f, None))
            .collect(),
    }))
}

async fn one(state: &State, key: &ApiKey, fingerprint: &str) -> Result<StoredFinding, Problem> {
    let (scope, whole) = scope_of(state, key)?;
    state
        .0
        .store
        .finding(fingerprint)
        .await
        .map_err(store_failed("read a finding"))?
        .filter(|f| visible(&scope, whole, f))
        .ok_or_else(|| Problem::not_found(format!("no finding {fingerprint} for this key")))
}

/// One finding, with its life.
#[utoipa::path(
    get, path = "/v1/findings/{fingerprint}",
    params(("fingerprint" = String, Path, description = "The finding's fingerprint")),
    responses(
        (status = 200, description = "The finding and its events", body = FindingView),
        (status = 404, description = "No such finding for this key", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
pub(crate) async fn get_one(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    Path(fingerprint): Path<String>,
) -> Result<Json<FindingView>, Problem> {
    let found = one(&state, &key, &fingerprint).await?;
    let events = state
        .0
        .store
        .finding_events(&fingerprint)
        .await
        .map_err(store_failed("read a finding's events"))?;
    Ok(Json(view(found, Some(events))))
}

/// Acknowledge an open finding: it stops escalating and is not sent again until it is
/// resolved and reopened.
#[utoipa::path(
    post, path = "/v1/findings/{fingerprint}/ack", request_body = AckRequest,
    params(("fingerprint" = String, Path, description = "The finding's fingerprint")),
    responses(
        (status = 200, description = "Acknowledged (or already)", body = FindingView),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such finding for this key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The finding is resolved", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
pub(crate) async fn ack(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    Path(fingerprint): Path<String>,
    body: Result<Json<AckRequest>, JsonRejection>,
) -> Result<Json<FindingView>, Problem> {
    let request = json_body(body, state.0.config.max_body)?;
    let (by, comment) = ack_text(&request.by, &request.comment)?;
    one(&state, &key, &fingerprint).await?;
    let acked = acknowledge(&state, &fingerprint, by, comment).await?;
    let events = state
        .0
        .store
        .finding_events(&fingerprint)
        .await
        .map_err(store_failed("read a finding's events"))?;
    Ok(Json(view(acked, Some(events))))
}

/// The name and comment of an acknowledgement, trimmed and checked.
pub(crate) fn ack_text<'a>(by: &'a str, comment: &'a str) -> Result<(&'a str, &'a str), Problem> {
    let (by, comment) = (by.trim(), comment.trim());
    if by.is_empty() || by.chars().count() > 200 {
        return Err(Problem::invalid("by: 1 to 200 characters"));
    }
    if comment.is_empty() || comment.chars().count() > 2000 {
        return Err(Problem::invalid("comment: 1 to 2,000 characters"));
    }
    Ok((by, comment))
}

/// Acknowledges finding `fingerprint` (the caller checked who may).
pub(crate) async fn acknowledge(
    state: &State,
    fingerprint: &str,
    by: &str,
    comment: &str,
) -> Result<StoredFinding, Problem> {
    let found = state
        .0
        .store
        .finding(fingerprint)
        .await
        .map_err(store_failed("read a finding"))?
        .ok_or_else(|| Problem::not_found(format!("no finding {fingerprint}")))?;
    if found.state == FindingState::Resolved {
        return Err(Problem::conflict(format!(
            "finding {fingerprint} is resolved: nothing to acknowledge"
        )));
    }
    state
        .0
        .store
        .acknowledge_finding(fingerprint, by, comment, Utc::now())
        .await
        .map_err(store_failed("acknowledge a finding"))?
        .ok_or_else(|| Problem::not_found(format!("no finding {fingerprint}")))
}
