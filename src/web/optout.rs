//! Opt-out requests (MEASUREMENTS §5): the domain page's form records a
//! pending request in `optout_requests`; the crawl's operator decides with
//! `xmpp-survey optout list|approve ID|reject ID`. Approving adds the
//! domain to `opt_outs` (which every crawl honours) through
//! [`Store::add_opt_out`]; the domain page then says so and "test now"
//! refuses the domain.

use super::error::Problem;
use super::{AppState, pages};
use crate::store::{Store, StoreError};
use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use time::OffsetDateTime;

/// Longest reason kept (characters).
pub const MAX_REASON: usize = 1000;
/// Longest contact kept (characters).
pub const MAX_CONTACT: usize = 200;

/// Opt-out requests per client address.
pub type Limiter = DefaultKeyedRateLimiter<IpAddr>;

/// 5 requests per client address per hour.
pub fn limiter() -> Limiter {
    RateLimiter::keyed(Quota::per_hour(
        NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
    ))
}

/// The form.
#[derive(Debug, Deserialize)]
pub struct OptOutForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    contact: String,
}

fn clip(s: &str, n: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(n)
        .collect::<String>()
        .trim()
        .to_string()
}

/// `POST /domain/{domain}/optout`.
pub async fn request(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    raw: Result<Path<String>, PathRejection>,
    form: Result<Form<OptOutForm>, FormRejection>,
) -> Response {
    let bad = |detail: String| {
        pages::render_problem(&Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            detail,
        ))
    };
    let raw = match raw {
        Ok(Path(d)) => d,
        Err(e) => return bad(e.body_text()),
    };
    let domain = match pages::normalize(&raw) {
        Ok(d) => d,
        Err(p) => return pages::render_problem(&p),
    };
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return bad(e.body_text()),
    };
    if state
        .optout_limit
        .check_key(&super::live::client_key(peer.ip()))
        .is_err()
    {
        return pages::render_problem(&Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many opt-out requests from this address; try again later",
        ));
    }
    let inserted =
        sqlx::query("INSERT INTO optout_requests (domain, reason, contact) VALUES ($1, $2, $3)")
            .bind(&domain)
            .bind(clip(&form.reason, MAX_REASON))
            .bind(clip(&form.contact, MAX_CONTACT))
            .execute(&state.writer)
            .await;
    if let Err(e) = inserted {
        return pages::render_problem(&Problem::database(&e));
    }
    pages::html(
        StatusCode::OK,
        "message.html",
        minijinja::context! {
            title => format!("{domain}: opt-out requested"),
            heading => domain,
            message => "Your opt-out request is recorded. The crawl's operator reviews it; once approved, this domain is never probed again and its page says so.",
            link => format!("/domain/{domain}"),
            link_text => "Back to the domain page",
        },
    )
}

/// One request, as `optout list` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OptOutRequest {
    /// Id.
    pub id: i64,
    /// Domain.
    pub domain: String,
    /// Reason.
    pub reason: String,
    /// Contact.
    pub contact: String,
    /// When.
    pub requested_at: OffsetDateTime,
    /// pending, approved, rejected.
    pub state: String,
}

/// Why a decision could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum OptOutError {
    /// No request has this id.
    #[error("no opt-out request #{0}")]
    NoSuchRequest(i64),
    /// The request was already decided.
    #[error("opt-out request #{0} is already {1}")]
    Decided(i64, String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Every request, pending first, then newest first.
pub async fn list(store: &Store) -> Result<Vec<OptOutRequest>, OptOutError> {
    Ok(sqlx::query_as(
        "SELECT id, domain, reason, contact, requested_at, state FROM optout_requests
          ORDER BY state <> 'pending', requested_at DESC, id DESC",
    )
    .fetch_all(store.pool())
    .await?)
}

async fn pending(store: &Store, id: i64) -> Result<OptOutRequest, OptOutError> {
    let r: Option<OptOutRequest> = sqlx::query_as(
        "SELECT id, domain, reason, contact, requested_at, state FROM optout_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    let r = r.ok_or(OptOutError::NoSuchRequest(id))?;
    if r.state != "pending" {
        return Err(OptOutError::Decided(id, r.state));
    }
    Ok(r)
}

async fn decide(store: &Store, id: i64, state: &str) -> Result<(), OptOutError> {
    let n = sqlx::query(
        "UPDATE optout_requests SET state = $2, decided_at = now() WHERE id = $1 AND state = 'pending'",
    )
    .bind(id)
    .bind(state)
    .execute(store.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(OptOutError::Decided(id, "decided".into()));
    }
    Ok(())
}

/// Approves a pending request: the domain joins `opt_outs` (and leaves
/// every queue it waits in), then the request is marked approved.
pub async fn approve(store: &Store, id: i64) -> Result<OptOutRequest, OptOutError> {
    let r = pending(store, id).await?;
    let reason = if r.reason.is_empty() {
        format!("web request #{id}")
    } else {
        format!("web request #{id}: {}", r.reason)
    };
    store.add_opt_out(&r.domain, &reason).await?;
    decide(store, id, "approved").await?;
    Ok(r)
}

/// Rejects a pending request.
pub async fn reject(store: &Store, id: i64) -> Result<OptOutRequest, OptOutError> {
    let r = pending(store, id).await?;
    decide(store, id, "rejected").await?;
    Ok(r)
}
