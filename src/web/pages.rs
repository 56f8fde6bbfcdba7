//! The HTML pages: home, search, domain page, not-found and error pages.
//! Templates are in `templates/web/`, built into the binary; minijinja
//! escapes every value in `.html` templates.

use super::error::Problem;
use super::{AppState, data, view};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, extract::Request};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// The page templates, with autoescaping (by the `.html` extension).
static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.add_function("pct", |v: minijinja::Value| {
        match v
            .get_attr("percent")
            .ok()
            .and_then(|p| f64::try_from(p).ok())
        {
            Some(p) => format!("{p:.1} %"),
            None => "–".to_string(),
        }
    });
    let templates: &[(&str, &str)] = &[
        ("base.html", include_str!("../../templates/web/base.html")),
        ("home.html", include_str!("../../templates/web/home.html")),
        (
            "domain.html",
            include_str!("../../templates/web/domain.html"),
        ),
        (
            "report_parts.html",
            include_str!("../../templates/web/report_parts.html"),
        ),
        (
            "not_found.html",
            include_str!("../../templates/web/not_found.html"),
        ),
        ("error.html", include_str!("../../templates/web/error.html")),
        ("live.html", include_str!("../../templates/web/live.html")),
        (
            "reports.html",
            include_str!("../../templates/web/reports.html"),
        ),
        (
            "message.html",
            include_str!("../../templates/web/message.html"),
        ),
        ("feed.xml", include_str!("../../templates/web/feed.xml")),
    ];
    for (name, source) in templates {
        if let Err(e) = env.add_template(name, source) {
            panic!("template {name} does not parse: {e}");
        }
    }
    env
});

/// The site's icon (`/static/favicon.svg`, also answered at `/favicon.ico`
/// so that no browser logs a 404 for it).
pub const FAVICON_SVG: &str = include_str!("../../templates/web/favicon.svg");

/// The stylesheet (`/static/site.css`).
pub const SITE_CSS: &str = include_str!("../../templates/web/site.css");

/// Renders a template; a template error (a bug, not input) becomes a
/// plain 500 page and is logged.
pub fn render<S: Serialize>(name: &str, ctx: S) -> Result<String, Problem> {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| {
            tracing::error!(template = name, error = %e, "template failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "template",
                "this page could not be rendered",
            )
        })
}

/// An HTML response with `status`.
pub fn html(status: StatusCode, name: &str, ctx: impl Serialize) -> Response {
    match render(name, ctx) {
        Ok(body) => (status, Html(body)).into_response(),
        Err(p) => render_problem(&p),
    }
}

/// The error page of a problem, with its status.
pub fn render_problem(p: &Problem) -> Response {
    let ctx = minijinja::context! {
        title => p.status.canonical_reason().unwrap_or("Error"),
        status => p.status.as_u16(),
        code => p.code,
        detail => p.detail,
    };
    let body = TEMPLATES
        .get_template("error.html")
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|_| "error".to_string());
    let mut r = (p.status, Html(body)).into_response();
    if p.status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    }
    r
}

/// A [`Problem`] answered as an HTML page.
#[derive(Debug)]
pub struct PageError(pub Problem);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        render_problem(&self.0)
    }
}

impl From<Problem> for PageError {
    fn from(p: Problem) -> Self {
        Self(p)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        Self(Problem::database(&e))
    }
}

/// The pages' routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/static/site.css", get(css))
        .route("/static/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon))
        .route("/domain/{domain}", get(domain_page))
        .route("/domain/{domain}/test", post(super::live::request))
        .route("/domain/{domain}/live/{id}", get(super::live::page))
        .route("/domain/{domain}/optout", post(super::optout::request))
        .route("/badge/{file}", get(super::badge::badge))
        .route("/feed.atom", get(super::feed::network))
        .route("/feed/{file}", get(super::feed::domain))
}

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON_SVG,
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SITE_CSS,
    )
        .into_response()
}

/// The 404 page of an unknown path.
pub async fn not_found(req: Request) -> Response {
    let path: String = req.uri().path().chars().take(200).collect();
    render_problem(&Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("there is no page at {path}"),
    ))
}

/// 405 for a known path with another method.
pub async fn method_not_allowed(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        return super::error::ApiError(Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} is not allowed here", req.method()),
        ))
        .into_response();
    }
    render_problem(&Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed here", req.method()),
    ))
}

async fn home(State(state): State<AppState>) -> Result<Response, PageError> {
    let stats = state.stats.get(&state.reader).await?;
    let report = stats
        .as_ref()
        .and_then(|s| super::reports::report_link(&state.reports_dir, &s.crawl.label));
    Ok(html(
        StatusCode::OK,
        "home.html",
        minijinja::context! {
            title => "XMPP server-only certificate readiness",
            stats => stats,
            finished_at => stats.as_ref().and_then(|s| s.crawl.finished_at).map(view::when),
            report => report,
        },
    ))
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(q: Result<Query<SearchQuery>, QueryRejection>) -> Result<Response, PageError> {
    let q = q.map(|Query(q)| q.q).unwrap_or_default();
    let domain = normalize(&q)?;
    Ok(Redirect::to(&format!("/domain/{domain}")).into_response())
}

/// Normalises a domain from a URL or form; invalid → 400.
pub fn normalize(input: &str) -> Result<String, Problem> {
    if input.len() > 1024 {
        return Err(Problem::invalid_domain(
            input,
            &crate::model::domain::DomainError::TooLong,
        ));
    }
    crate::model::domain::DomainName::parse(input)
        .map(crate::model::domain::DomainName::into_string)
        .map_err(|e| Problem::invalid_domain(input, &e))
}

/// The domain of a path, normalised, or the answer to give instead: 400
/// for an invalid one, a permanent redirect to the canonical URL (A-labels,
/// lowercase) for one that is not written canonically.
pub fn path_domain(
    raw: Result<Path<String>, PathRejection>,
    canonical_path: impl Fn(&str) -> String,
) -> Result<String, Box<Response>> {
    canonical_domain(&path_text(raw)?, canonical_path)
}

/// The domain of a `/{dir}/DOMAIN{ext}` file (badge, feed), as
/// [`path_domain`] does; 404 when the name lacks the extension.
pub fn file_domain(
    raw: Result<Path<String>, PathRejection>,
    dir: &str,
    ext: &str,
) -> Result<String, Box<Response>> {
    let file = path_text(raw)?;
    let Some(stem) = file.strip_suffix(ext) else {
        return Err(Box::new(render_problem(&Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("these are at /{dir}/DOMAIN{ext}"),
        ))));
    };
    canonical_domain(stem, |d| format!("/{dir}/{d}{ext}"))
}

fn path_text(raw: Result<Path<String>, PathRejection>) -> Result<String, Box<Response>> {
    raw.map(|Path(d)| d).map_err(|e| {
        Box::new(render_problem(&Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            e.body_text(),
        )))
    })
}

fn canonical_domain(
    raw: &str,
    canonical_path: impl Fn(&str) -> String,
) -> Result<String, Box<Response>> {
    let domain = normalize(raw).map_err(|p| Box::new(render_problem(&p)))?;
    if domain != raw {
        return Err(Box::new(
            Redirect::permanent(&canonical_path(&domain)).into_response(),
        ));
    }
    Ok(domain)
}

async fn domain_page(
    State(state): State<AppState>,
    raw: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let domain = match path_domain(raw, |d| format!("/domain/{d}")) {
        Ok(d) => d,
        Err(r) => return Ok(*r),
    };
    let l = data::lookup(&state.reader, &domain, &state.knowledge).await?;
    if l.opted_out {
        return Ok(opted_out_page(&domain));
    }
    let Some(latest) = l.latest else {
        return Ok(html(
            StatusCode::NOT_FOUND,
            "not_found.html",
            minijinja::context! {
                title => format!("{domain}: not tested yet"),
                domain => domain,
                live => state.live.available(),
            },
        ));
    };
    let findings = l.findings.iter().map(view::FindingView::from).collect();
    let report = view::report_view(&latest.report, findings);
    let history: Vec<_> = l
        .history
        .into_iter()
        .map(|h| {
            let state = view::BadgeState::from_acceptance(Some(&h.acceptance));
            minijinja::context! {
                crawl_label => h.crawl_label,
                started => view::when(h.crawl_started_at),
                acceptance => h.acceptance,
                state => state.name(),
                state_text => state.text(),
                s2s_eku_class => h.s2s_eku_class,
                s2s_status => h.s2s_status,
                c2s_status => h.c2s_status,
                software => h.software,
            }
        })
        .collect();
    let changes: Vec<_> = l
        .changes
        .iter()
        .map(|c| {
            minijinja::context! {
                crawl => c.crawl,
                previous => c.previous_crawl,
                kind => crate::model::names::Named::as_str(c.kind).replace('_', " "),
                scope => crate::model::names::Named::as_str(c.scope),
                before => c.before,
                after => c.after,
            }
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        "domain.html",
        minijinja::context! {
            title => format!("{domain}: server-only certificate readiness"),
            domain => domain,
            base => state.base.clone(),
            crawl_label => latest.crawl_label,
            report_link => super::reports::report_link(&state.reports_dir, &latest.crawl_label),
            r => report,
            history => history,
            changes => changes,
            live => state.live.available(),
            feed => format!("/feed/{domain}.atom"),
        },
    ))
}

/// The page of an opted-out domain: that, and nothing else.
pub fn opted_out_page(domain: &str) -> Response {
    html(
        StatusCode::OK,
        "message.html",
        minijinja::context! {
            title => format!("{domain}: opted out"),
            heading => domain,
            message => "The operator opted out; not probed.",
            opted_out => true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes() {
        let p = Problem::new(StatusCode::BAD_REQUEST, "x", "<script>alert(1)</script>");
        let r = render(
            "error.html",
            minijinja::context! { title => "t", status => 400, code => "x", detail => p.detail },
        )
        .unwrap_or_default();
        assert!(
            r.contains("&lt;script&gt;") && !r.contains("<script>"),
            "{r}"
        );
        for name in [
            "home.html",
            "domain.html",
            "not_found.html",
            "live.html",
            "reports.html",
            "message.html",
            "feed.xml",
        ] {
            assert!(TEMPLATES.get_template(name).is_ok(), "{name}");
        }
    }
}
