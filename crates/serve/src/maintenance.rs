//! `/v1/windows`: maintenance windows over the API — list, create (or change) one, delete
//! one. Those of the configuration file are listed too but changed only there. A window
//! silences alerts, so only a key with the server's whole scope may make or delete one.

use crate::State;
use crate::api::{Authed, json_body, store_failed, time};
use crate::problem::{Problem, Refused};
use crate::windows::{Window, WindowScope};
use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use portgate_store::{ApiKey, StoredWindow};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// A maintenance window to make: one-off (`start`, `end`) or recurring (`cron`,
/// `durationSeconds`, optional `timezone`).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WindowRequest {
    /// Its name: 1–64 letters, digits, `-`, `_`, `.`; a window of that name made over
    /// the API is replaced.
    #[schema(example = "db-migration")]
    pub name: String,
    /// What it covers: `all`, `asset:NAME`, `target:TARGET` or `tag:KEY=VALUE`.
    #[schema(example = "asset:orders-db")]
    pub scope: String,
    /// One-off: opens (RFC 3339).
    pub start: Option<DateTime<Utc>>,
    /// One-off: closes (RFC 3339).
    pub end: Option<DateTime<Utc>>,
    /// Recurring: each opening, as cron (five fields, or six with seconds first).
    #[schema(example = "0 2 * * 6")]
    pub cron: Option<String>,
    /// Recurring: the cron's time zone (IANA; UTC when absent).
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// Recurring: how long each opening lasts, in seconds.
    pub duration_seconds: Option<u64>,
    /// Why (up to 2,000 characters).
    pub comment: Option<String>,
    /// Who (up to 200 characters).
    pub created_by: Option<String>,
}

/// A maintenance window.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowView {
    /// Its name.
    pub name: String,
    /// What it covers.
    pub scope: String,
    /// One-off: opens.
    pub start: Option<String>,
    /// One-off: closes.
    pub end: Option<String>,
    /// Recurring: each opening.
    pub cron: Option<String>,
    /// Recurring: the cron's time zone.
    pub timezone: Option<String>,
    /// Recurring: how long each opening lasts, in seconds.
    pub duration_seconds: Option<u64>,
    /// Why.
    pub comment: Option<String>,
    /// Who.
    pub created_by: Option<String>,
    /// `config` (the configuration file's) or `api`.
    pub source: String,
    /// When the current opening closes, if it is open now.
    pub open_until: Option<String>,
}

/// The maintenance windows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowList {
    /// By name.
    pub items: Vec<WindowView>,
}

impl WindowView {
    /// The view of window `w` (stored as `row`) at `now`.
    pub fn of(w: &Window, row: &StoredWindow, now: DateTime<Utc>) -> WindowView {
        view(w, row, now)
    }
}

fn view(w: &Window, row: &StoredWindow, now: DateTime<Utc>) -> WindowView {
    WindowView {
        name: row.name.clone(),
        scope: w.scope.to_string(),
        start: row.starts_at.map(time),
        end: row.ends_at.map(time),
        cron: row.cron.clone(),
        timezone: row.timezone.clone(),
        duration_seconds: row.duration_ms.and_then(|ms| u64::try_from(ms / 1000).ok()),
        comment: row.comment.clone(),
        created_by: row.created_by.clone(),
        source: row.source.clone(),
        open_until: w.open_at(now).map(|(_, end)| time(end)),
    }
}

fn whole_scope(key: &ApiKey) -> Result<(), Problem> {
    if key.scope.is_empty() {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "a key with a narrowed scope may not make or delete maintenance windows",
        ))
    }
}

/// Every maintenance window.
#[utoipa::path(
    get, path = "/v1/windows", operation_id = "list_windows",
    responses((status = 200, description = "The windows", body = WindowList), Refused)
)]
pub(crate) async fn list(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(_key): Authed,
) -> Result<Json<WindowList>, Problem> {
    let now = Utc::now();
    let items = crate::monitor::windows(&state)
        .await
        .iter()
        .map(|(w, row)| view(w, row, now))
        .collect();
    Ok(Json(WindowList { items }))
}

/// The window a request describes.
pub fn window_of(request: &WindowRequest) -> Result<Window, Problem> {
    let what = format!("window {}", request.name.escape_default());
    let scope =
        WindowScope::parse(&request.scope).map_err(|e| Problem::invalid(format!("scope: {e}")))?;
    let mut window = match (&request.cron, request.start, request.end) {
        (Some(cron), None, None) => {
            let seconds = request.duration_seconds.ok_or_else(|| {
                Problem::invalid("durationSeconds: a recurring window needs how long it lasts")
            })?;
            Window::recurring(
                &request.name,
                scope,
                cron,
                request.timezone.as_deref(),
                Duration::from_secs(seconds),
                &what,
            )
        }
        (None, Some(start), Some(end))
            if request.duration_seconds.is_none() && request.timezone.is_none() =>
        {
            Window::once(&request.name, scope, start, end, &what)
        }
        _ => {
            return Err(Problem::invalid(
                "give start and end (one-off), or cron and durationSeconds (recurring)",
            ));
        }
    }
    .map_err(Problem::invalid)?;
    let text =
        |value: &Option<String>, field: &str, max: usize| match value.as_deref().map(str::trim) {
            Some(v) if v.chars().count() > max => Err(Problem::invalid(format!(
                "{field}: at most {max} characters"
            ))),
            Some(v) if !v.is_empty() => Ok(Some(v.to_string())),
            _ => Ok(None),
        };
    window.comment = text(&request.comment, "comment", 2000)?;
    window.created_by = text(&request.created_by, "createdBy", 200)?;
    Ok(window)
}

/// Make (or change) a maintenance window.
#[utoipa::path(
    post, path = "/v1/windows", operation_id = "create_window", request_body = WindowRequest,
    responses(
        (status = 201, description = "Made", body = WindowView),
        (status = 400, description = "Invalid window", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key's scope is narrowed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A window of the configuration file has that name", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
pub(crate) async fn create(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    body: Result<Json<WindowRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<WindowView>), Problem> {
    let request = json_body(body, state.0.config.max_body)?;
    whole_scope(&key)?;
    let window = window_of(&request)?;
    let store = &state.0.store;
    let existing = store
        .windows()
        .await
        .map_err(store_failed("read the windows"))?;
    if existing
        .iter()
        .any(|w| w.name == window.name && w.source == "config")
    {
        return Err(Problem::conflict(format!(
            "window {} is in the configuration file: change it there",
            window.name
        )));
    }
    let now = Utc::now();
    let row = window.to_stored("api", now);
    store
        .put_window(&row)
        .await
        .map_err(store_failed("write a window"))?;
    Ok((StatusCode::CREATED, Json(view(&window, &row, now))))
}

/// Delete a maintenance window made over the API.
#[utoipa::path(
    delete, path = "/v1/windows/{name}", operation_id = "delete_window",
    params(("name" = String, Path, description = "The window's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The key's scope is narrowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such window", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A window of the configuration file", body = Problem, content_type = "application/problem+json"),
        Refused,
    )
)]
pub(crate) async fn delete(
    axum::extract::State(state): axum::extract::State<State>,
    Authed(key): Authed,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    whole_scope(&key)?;
    let store = &state.0.store;
    let existing = store
        .windows()
        .await
        .map_err(store_failed("read the windows"))?;
    match existing.iter().find(|w| w.name == name) {
        None => Err(Problem::not_found(format!(
            "no window {}",
            name.escape_default()
        ))),
        Some(w) if w.source == "config" => Err(Problem::conflict(format!(
            "window {name} is in the configuration file: remove it there"
        ))),
        Some(_) => {
            store
                .delete_window(&name)
                .await
                .map_err(store_failed("delete a window"))?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
