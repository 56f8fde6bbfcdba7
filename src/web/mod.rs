//! `xmpp-survey serve`: the operators' web server (issue 11). Server-rendered
//! pages that work without JavaScript, a badge, Atom feeds, a JSON API
//! described by an OpenAPI document, "test now" live probes and opt-out
//! requests.
//!
//! - [`data`]: the read-only queries (one pool whose sessions are
//!   `READ ONLY`), shared by pages, API, badge and feeds.
//! - [`view`]: what a domain page shows, built from a stored or live report.
//! - [`pages`]: the HTML pages and their templates (`templates/web/`).
//! - [`api`]: `/api/v1/` and its OpenAPI document (utoipa).
//! - [`badge`]: the badge, `/badge/DOMAIN.svg`.
//! - [`feed`]: Atom feeds of verdict changes between crawls.
//! - [`live`]: "test now": queued live probes, rate limits, address policy.
//! - [`optout`]: opt-out requests and the operator's decisions.
//! - [`reports`]: the crawl reports written by `xmpp-survey report`.
//! - [`security`]: response headers and the CSRF check of form posts.
//! - [`error`]: every error as an HTML page or `{error, detail}` JSON.

pub mod api;
pub mod badge;
pub mod data;
pub mod error;
pub mod feed;
pub mod live;
pub mod optout;
pub mod pages;
pub mod reports;
pub mod security;
pub mod view;

use axum::Router;
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Largest request body accepted (forms are a few hundred bytes).
pub const BODY_LIMIT: usize = 16 * 1024;

/// Longest a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The shared state behind [`AppState`].
pub struct Inner {
    /// Read-only pool: every page, API, badge and feed query.
    pub reader: PgPool,
    /// Writer pool: live probes and opt-out requests only.
    pub writer: PgPool,
    /// The public base URL (`http://host:port`, no trailing slash), for
    /// the badge snippet and the feeds.
    pub base: String,
    /// Where `xmpp-survey report` wrote the reports (`reports/`).
    pub reports_dir: PathBuf,
    /// Live probes ("test now").
    pub live: live::Live,
    /// The advice file behind the findings.
    pub knowledge: crate::lookup::Knowledge,
    /// The headline figures, cached.
    pub stats: data::StatsCache,
    /// The badge cache.
    pub badges: badge::Cache,
    /// Per-address limit of opt-out requests.
    pub optout_limit: optout::Limiter,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(
        reader: PgPool,
        writer: PgPool,
        base: String,
        reports_dir: PathBuf,
        live: live::Live,
        knowledge: crate::lookup::Knowledge,
    ) -> Self {
        Self(Arc::new(Inner {
            reader,
            writer,
            base: base.trim_end_matches('/').to_string(),
            reports_dir,
            live,
            knowledge,
            badges: badge::Cache::default(),
            stats: data::StatsCache::default(),
            optout_limit: optout::limiter(),
        }))
    }
}

/// The whole application: pages, API, badge, feeds, reports, with the
/// security headers, body limit and timeout on every route.
pub fn router(state: AppState) -> Router {
    use tower_http::limit::RequestBodyLimitLayer;
    use tower_http::timeout::TimeoutLayer;
    let (api_router, _) = api::router().split_for_parts();
    let app = Router::new()
        .merge(pages::router())
        .merge(reports::router(&state.reports_dir))
        .merge(api_router)
        .route("/api/v1", axum::routing::any(api::not_found))
        .route("/api/v1/", axum::routing::any(api::not_found))
        .route("/api/v1/{*rest}", axum::routing::any(api::not_found))
        .fallback(pages::not_found)
        .method_not_allowed_fallback(pages::method_not_allowed)
        .layer(axum::middleware::from_fn(security::csrf))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(uniform_errors))
        .with_state(state);
    security::with_headers(app)
}

/// tower-http's own 408 (timeout) and 413 (body limit) answers are plain
/// text; they get the body every other error has: JSON `{error, detail}`
/// under `/api/`, the error page elsewhere.
async fn uniform_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::{StatusCode, header};
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    let (code, detail) = match res.status() {
        StatusCode::REQUEST_TIMEOUT => (
            "timeout",
            format!("the request took over {} s", REQUEST_TIMEOUT.as_secs()),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            format!("the request body is over {} KiB", BODY_LIMIT / 1024),
        ),
        _ => return res,
    };
    let ours = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if ours {
        return res;
    }
    let problem = error::Problem::new(res.status(), code, detail);
    if api {
        error::ApiError(problem).into_response()
    } else {
        pages::render_problem(&problem)
    }
}
