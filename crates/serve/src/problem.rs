//! Errors as `application/problem+json` (RFC 9457): a stable `type` per kind of error, a
//! title, the status and a detail that says what was wrong; never an internal message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The base of every problem type.
pub const PROBLEM_BASE: &str = "https://portgate.example.test/problems/";

/// An error of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of error; stable across versions.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong with this request.
    pub detail: String,
    /// Seconds to wait before trying again (429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retry_after: Option<u64>,
}

impl Problem {
    fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("{PROBLEM_BASE}{kind}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed or a value in it is not valid.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    /// 401: no key, an unknown key or a revoked key (one answer for all three).
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "a valid API key is required in the x-api-key header",
        )
    }

    /// 403: a target outside the authorised scope.
    pub fn out_of_scope(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "out-of-scope",
            "Target out of scope",
            detail,
        )
    }

    /// 403: a signed link that does not match or has expired.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 409: the request conflicts with the resource's state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    /// 413: the body is too large.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 431: too many or too large request headers.
    pub fn headers_too_large(count: usize, bytes: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request headers too large",
            format!("at most {count} request headers of {bytes} bytes together"),
        )
    }

    /// 429: too many requests or scans; try again after `seconds`.
    pub fn too_many(detail: impl Into<String>, seconds: u64) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            detail,
        );
        p.retry_after = Some(seconds.max(1));
        p
    }

    /// 503: the server is not ready (draining, or its database is unreachable).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// 500: something failed inside; the detail names the operation, not the cause.
    pub fn internal(operation: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            format!("the server could not {operation}; see its log"),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The refusals any request with a key may get, for the OpenAPI document's responses.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI form is used.
pub(crate) enum Refused {
    #[response(
        status = 401,
        description = "A key missing, wrong or revoked: the same answer for each",
        content_type = "application/problem+json"
    )]
    NoValidKey(Problem),
    #[response(
        status = 429,
        description = "Too many requests for this key, or (for a new scan or check) too many of its jobs queued or running; Retry-After says when to come back",
        content_type = "application/problem+json"
    )]
    TooMany(Problem),
    #[response(
        status = 431,
        description = "More than 64 request headers, or more than 16 KiB of them",
        content_type = "application/problem+json"
    )]
    HeadersTooLarge(Problem),
}
