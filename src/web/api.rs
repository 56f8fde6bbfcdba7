//! The JSON API under `/api/v1/`, and its OpenAPI 3 document generated
//! from these handlers by utoipa (`/api/v1/openapi.json`). Every error is
//! `{error, detail}` ([`ErrorBody`]) with a 4xx status, or 503 when the
//! database is unavailable.

// utoipa's generated path types qualify names this lint objects to.
#![allow(unused_qualifications)]

use super::data::{self, CrawlRow, DomainRow, HistoryEntry, Stats};
use super::error::{ApiError, ErrorBody, Problem};
use super::view::{BadgeState, FindingView};
use super::{AppState, pages};
use crate::model::acceptance::AcceptanceVerdict;
use crate::model::names::Named;
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";

/// Largest page of `/domains`.
pub const MAX_PER_PAGE: u32 = 500;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "xmpp-survey API",
        version = "1",
        description = "Read-only access to the crawls of xmpp-survey: which XMPP servers accept peers with server-only certificates, their history across crawls, and the network's headline figures. Every error is a JSON object {error, detail} with a 4xx status, or 503 when the database is unavailable.",
        license(name = "AGPL-3.0-or-later")
    ),
    tags((name = "domains", description = "Per-domain results"), (name = "network", description = "Crawls and headline figures"))
)]
struct ApiDoc;

/// The API routes with their OpenAPI description (paths include
/// [`PREFIX`]).
pub fn router() -> OpenApiRouter<AppState> {
    let inner = OpenApiRouter::new()
        .routes(routes!(domains))
        .routes(routes!(domain))
        .routes(routes!(history))
        .routes(routes!(crawls))
        .routes(routes!(stats))
        .routes(routes!(openapi_json));
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest(PREFIX, inner)
}

static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    let (_, doc) = router().split_for_parts();
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"openapi\",\"detail\":\"{e}\"}}"))
});

/// The OpenAPI document (also written by tests to check it).
pub fn openapi_json_text() -> &'static str {
    &OPENAPI
}

/// JSON 404 of an unknown `/api/v1/` path.
pub async fn not_found(req: Request) -> Response {
    let path: String = req.uri().path().chars().take(200).collect();
    ApiError(Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no API endpoint at {path}"),
    ))
    .into_response()
}

fn bad_request(detail: String) -> ApiError {
    ApiError(Problem::new(StatusCode::BAD_REQUEST, "bad_request", detail))
}

/// The domain of an API path: valid and already normalised (the API
/// names resources by one spelling; the pages redirect instead).
fn path_domain(raw: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(raw) = raw.map_err(|e| bad_request(e.body_text()))?;
    let domain = pages::normalize(&raw)?;
    if domain != raw {
        return Err(ApiError(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_domain",
            format!(
                "write the domain in its normalised form (lowercase A-labels, no trailing dot): {domain}"
            ),
        )));
    }
    Ok(domain)
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "network",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi_json_text(),
    )
        .into_response()
}

/// Query of `/domains`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DomainsQuery {
    /// Only domains with this acceptance verdict.
    #[param(inline, value_type = Option<AcceptanceVerdict>)]
    acceptance: Option<String>,
    /// The crawl's label (default: the latest finished crawl).
    #[param(max_length = 200)]
    crawl: Option<String>,
    /// Page, from 1.
    #[param(minimum = 1, maximum = 1000000)]
    page: Option<u32>,
    /// Domains per page (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500)]
    per_page: Option<u32>,
}

/// One page of a crawl's domains.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    /// The crawl listed.
    pub crawl: CrawlRow,
    /// The page (from 1).
    pub page: u32,
    /// Domains per page.
    pub per_page: u32,
    /// Domains matching, over every page.
    pub total: i64,
    /// This page's domains, by name.
    pub domains: Vec<DomainRow>,
}

/// The crawl a request names, or the latest finished (else the latest).
async fn pick_crawl(state: &AppState, label: Option<&str>) -> Result<CrawlRow, ApiError> {
    let found = match label {
        // No label holds NUL (PostgreSQL text cannot): not found.
        Some(l) if l.contains('\0') => None,
        Some(l) => data::crawl_by_label(&state.reader, l).await?,
        None => match data::latest_finished(&state.reader).await? {
            Some(c) => Some(c),
            None => data::crawls(&state.reader).await?.into_iter().next(),
        },
    };
    found.ok_or_else(|| {
        ApiError(Problem::new(
            StatusCode::NOT_FOUND,
            "no_crawl",
            match label {
                Some(l) => format!("no crawl labelled {l:?}"),
                None => "no crawl in the database yet".to_string(),
            },
        ))
    })
}

/// A crawl's domains, by name, a page at a time.
#[utoipa::path(
    get,
    path = "/domains",
    tag = "domains",
    params(DomainsQuery),
    responses(
        (status = 200, description = "One page of the crawl's domains", body = DomainList),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 404, description = "No such crawl, or no crawl yet", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
async fn domains(
    State(state): State<AppState>,
    q: Result<Query<DomainsQuery>, QueryRejection>,
) -> Result<Json<DomainList>, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    if let Some(a) = &q.acceptance
        && !AcceptanceVerdict::names().contains(&a.as_str())
    {
        return Err(bad_request(format!(
            "acceptance must be one of {}",
            AcceptanceVerdict::names().join(", ")
        )));
    }
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(100);
    if !(1..=1_000_000).contains(&page) {
        return Err(bad_request("page must be between 1 and 1000000".into()));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(bad_request(format!(
            "per_page must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    let crawl = pick_crawl(&state, q.crawl.as_deref()).await?;
    let (total, domains) = data::domains(
        &state.reader,
        crawl.id,
        q.acceptance.as_deref(),
        i64::from(page - 1) * i64::from(per_page),
        i64::from(per_page),
    )
    .await?;
    Ok(Json(DomainList {
        crawl,
        page,
        per_page,
        total,
        domains,
    }))
}

/// A domain's latest stored result.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestResult {
    /// The crawl.
    pub crawl_id: i64,
    /// Its label.
    pub crawl_label: String,
    /// When the domain was probed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub probed_at: OffsetDateTime,
    /// Acceptance verdict (MEASUREMENTS §3).
    pub acceptance: String,
    /// The whole probe report (docs/probe-json-schema.md).
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

/// A domain: its latest result and findings.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainDetail {
    /// The domain, normalised (A-labels, lowercase).
    pub domain: String,
    /// The operator opted out: nothing else is given.
    pub opted_out: bool,
    /// The badge state of the latest result.
    pub badge: BadgeState,
    /// The latest result (null when opted out).
    pub latest: Option<LatestResult>,
    /// The findings of the latest result.
    pub findings: Vec<FindingView>,
}

/// A domain's latest result and its findings.
#[utoipa::path(
    get,
    path = "/domains/{domain}",
    tag = "domains",
    params(("domain" = String, Path, description = "The XMPP domain in its normalised form: lowercase A-labels, no trailing dot (the pages redirect other forms to it; the API refuses them naming it)", min_length = 3, max_length = 253, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")),
    responses(
        (status = 200, description = "The domain's latest result", body = DomainDetail),
        (status = 400, description = "Not a valid XMPP domain", body = ErrorBody),
        (status = 404, description = "No crawl tested the domain", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
async fn domain(
    State(state): State<AppState>,
    raw: Result<Path<String>, PathRejection>,
) -> Result<Json<DomainDetail>, ApiError> {
    let domain = path_domain(raw)?;
    let l = data::lookup(&state.reader, &domain, &state.knowledge).await?;
    if l.opted_out {
        return Ok(Json(DomainDetail {
            domain,
            opted_out: true,
            badge: BadgeState::NotTested,
            latest: None,
            findings: Vec::new(),
        }));
    }
    let latest = l
        .latest
        .ok_or_else(|| ApiError(Problem::unknown_domain(&domain)))?;
    let acceptance = latest.report.summary.acceptance.as_str().to_string();
    Ok(Json(DomainDetail {
        badge: BadgeState::from_acceptance(Some(&acceptance)),
        domain,
        opted_out: false,
        findings: l.findings.iter().map(FindingView::from).collect(),
        latest: Some(LatestResult {
            crawl_id: latest.crawl_id.unwrap_or_default(),
            crawl_label: latest.crawl_label,
            probed_at: latest.probed_at,
            acceptance,
            report: serde_json::to_value(&latest.report).unwrap_or_default(),
        }),
    }))
}

/// A domain's verdicts across crawls.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// The domain, normalised.
    pub domain: String,
    /// The operator opted out: no entries are given.
    pub opted_out: bool,
    /// One entry per crawl that measured it, newest first.
    pub entries: Vec<HistoryEntry>,
    /// What changed between consecutive finished crawls (verdict, EKU
    /// class, STARTTLS, software, renewed certificate), newest first.
    pub changes: Vec<crate::store::changes::ChangeRow>,
}

/// A domain's verdicts in every crawl, newest first.
#[utoipa::path(
    get,
    path = "/domains/{domain}/history",
    tag = "domains",
    params(("domain" = String, Path, description = "The XMPP domain in its normalised form (lowercase A-labels, no trailing dot)", min_length = 3, max_length = 253, pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")),
    responses(
        (status = 200, description = "The domain's history", body = History),
        (status = 400, description = "Not a valid XMPP domain", body = ErrorBody),
        (status = 404, description = "No crawl tested the domain", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
async fn history(
    State(state): State<AppState>,
    raw: Result<Path<String>, PathRejection>,
) -> Result<Json<History>, ApiError> {
    let domain = path_domain(raw)?;
    if crate::lookup::opted_out(&state.reader, &domain).await? {
        return Ok(Json(History {
            domain,
            opted_out: true,
            entries: Vec::new(),
            changes: Vec::new(),
        }));
    }
    let entries: Vec<HistoryEntry> = crate::lookup::history(&state.reader, &domain).await?;
    if entries.is_empty() {
        return Err(ApiError(Problem::unknown_domain(&domain)));
    }
    let changes =
        crate::store::changes::domain_changes(&state.reader, &domain, crate::lookup::CHANGES_LIMIT)
            .await?;
    Ok(Json(History {
        domain,
        opted_out: false,
        entries,
        changes,
    }))
}

/// Every crawl.
#[derive(Debug, Serialize, ToSchema)]
pub struct CrawlList {
    /// Newest first.
    pub crawls: Vec<CrawlRow>,
}

/// Every crawl in the database, newest first.
#[utoipa::path(
    get,
    path = "/crawls",
    tag = "network",
    responses(
        (status = 200, description = "Every crawl", body = CrawlList),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
async fn crawls(State(state): State<AppState>) -> Result<Json<CrawlList>, ApiError> {
    Ok(Json(CrawlList {
        crawls: data::crawls(&state.reader).await?,
    }))
}

/// Headline figures of the latest finished crawl.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "network",
    responses(
        (status = 200, description = "Headline figures", body = Stats),
        (status = 404, description = "No crawl has finished yet", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    state
        .stats
        .get(&state.reader)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError(Problem::new(
                StatusCode::NOT_FOUND,
                "no_crawl",
                "no crawl has finished yet",
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_with_its_errors() {
        let doc: serde_json::Value = serde_json::from_str(openapi_json_text()).expect("json");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        for p in [
            "/api/v1/domains",
            "/api/v1/domains/{domain}",
            "/api/v1/domains/{domain}/history",
            "/api/v1/crawls",
            "/api/v1/stats",
            "/api/v1/openapi.json",
        ] {
            let op = &doc["paths"][p]["get"];
            assert!(op.is_object(), "{p} missing");
            if p != "/api/v1/openapi.json" {
                assert!(op["responses"]["503"].is_object(), "{p} lacks 503");
            }
        }
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        assert!(doc["components"]["schemas"]["FindingView"].is_object());
        let names: Vec<String> = AcceptanceVerdict::names()
            .into_iter()
            .map(String::from)
            .collect();
        let filter = serde_json::to_string(&doc).expect("json");
        for n in names {
            assert!(filter.contains(&format!("\"{n}\"")), "{n} not in the enum");
        }
    }
}
