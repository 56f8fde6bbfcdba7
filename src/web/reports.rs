//! `/reports/`: every crawl with a link to its report when `xmpp-survey
//! report` wrote one (`reports/<label>/index.html`), and the report files
//! themselves, served by tower-http's `ServeDir` (which refuses `..`,
//! encoded or not, and never leaves the folder).

use super::error::Problem;
use super::security::REPORT_CSP;
use super::{AppState, data, pages, view};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::path::{Component, Path};
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// The folder name `xmpp-survey report` uses for a crawl's label.
pub fn folder(label: &str) -> String {
    crate::report::default_dir(label)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `/reports/<folder>/` when the crawl's report exists.
pub fn report_link(dir: &Path, label: &str) -> Option<String> {
    let f = folder(label);
    dir.join(&f)
        .join("index.html")
        .is_file()
        .then(|| format!("/reports/{f}/"))
}

/// The routes (the folder is read per request).
pub fn router(_dir: &Path) -> Router<AppState> {
    Router::new()
        .route(
            "/reports",
            get(|| async { Redirect::permanent("/reports/") }),
        )
        .route("/reports/", get(list))
        .route("/reports/{*path}", get(file))
}

async fn list(State(state): State<AppState>) -> Response {
    let crawls = match data::crawls(&state.reader).await {
        Ok(c) => c,
        Err(e) => return pages::render_problem(&Problem::database(&e)),
    };
    let rows: Vec<_> = crawls
        .iter()
        .map(|c| {
            minijinja::context! {
                label => c.label,
                status => c.status,
                started => view::when(c.started_at),
                domains_tested => c.domains_tested,
                link => report_link(&state.reports_dir, &c.label),
            }
        })
        .collect();
    pages::html(
        StatusCode::OK,
        "reports.html",
        minijinja::context! { title => "Reports", crawls => rows },
    )
}

async fn file(State(state): State<AppState>, req: Request) -> Response {
    let path = req
        .uri()
        .path()
        .strip_prefix("/reports")
        .unwrap_or("/")
        .to_string();
    // A folder without its trailing slash: redirect, so relative links in
    // the report resolve inside it (only for a plain, existing folder).
    let plain = Path::new(path.trim_start_matches('/'))
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if plain
        && !path.ends_with('/')
        && !path.contains('%')
        && state
            .reports_dir
            .join(path.trim_start_matches('/'))
            .is_dir()
    {
        return Redirect::permanent(&format!("/reports{path}/")).into_response();
    }
    let Ok(uri) = path.parse::<Uri>() else {
        return pages::render_problem(&Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "not a valid path",
        ));
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    let served = ServeDir::new(&state.reports_dir)
        .oneshot(Request::from_parts(parts, body))
        .await;
    let Ok(resp) = served;
    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        return pages::render_problem(&Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "there is no such report file",
        ));
    }
    let mut resp = resp.into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(REPORT_CSP),
    );
    resp
}
