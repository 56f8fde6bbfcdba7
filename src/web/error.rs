//! Errors of the web server: every one has a 4xx status (bad input,
//! unknown domain, rate limit) or 503 (database or live probes
//! unavailable), never a panic. Pages render them as HTML
//! ([`PageError`]), the API as `{error, detail}` JSON ([`ApiError`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong, independent of how it is shown.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status (4xx, or 503).
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_domain`.
    pub code: &'static str,
    /// One sentence for a human.
    pub detail: String,
}

impl Problem {
    /// A problem with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 400: the domain in the URL is not a valid XMPP domain.
    pub fn invalid_domain(input: &str, why: &crate::model::domain::DomainError) -> Self {
        let shown: String = input.chars().take(300).collect();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_domain",
            format!("{shown:?} is not a valid XMPP domain: {why}"),
        )
    }

    /// 404: nothing is known about the domain.
    pub fn unknown_domain(domain: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_domain",
            format!("{domain} has not been tested by any crawl"),
        )
    }

    /// 503 for a database error: the handlers only run valid queries, so
    /// a failure means the database is down, overloaded or misconfigured.
    pub fn database(e: &sqlx::Error) -> Self {
        // A data exception (SQLSTATE class 22: a value PostgreSQL cannot
        // take, e.g. text with NUL) is the request's fault, not the
        // database's.
        if let sqlx::Error::Database(d) = e
            && d.code().is_some_and(|c| c.starts_with("22"))
        {
            return Self::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("a value in the request is not acceptable: {}", d.message()),
            );
        }
        tracing::warn!(error = %e, "database error");
        let detail = match e {
            sqlx::Error::PoolTimedOut => "the database did not answer in time".to_string(),
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                "the database cannot be reached".to_string()
            }
            _ => "the database failed to answer this request".to_string(),
        };
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            format!("{detail}; try again later"),
        )
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        Self::database(&e)
    }
}

/// The API's error body: every 4xx and 503 answer of `/api/v1/`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code: `invalid_domain`, `unknown_domain`, `bad_request`,
    /// `not_found`, `no_crawl`, `method_not_allowed`, `database_unavailable`.
    #[schema(example = "invalid_domain")]
    pub error: String,
    /// What was wrong, in words.
    pub detail: String,
}

/// A [`Problem`] answered as JSON.
#[derive(Debug, Clone)]
pub struct ApiError(pub Problem);

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        Self(p)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self(Problem::database(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.0.code.to_string(),
            detail: self.0.detail,
        };
        let mut r = (self.0.status, axum::Json(body)).into_response();
        if self.0.status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("30"),
            );
        }
        r
    }
}
