//! Security headers on every response and the CSRF check of form posts.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;

/// The pages' Content-Security-Policy: no script at all, styles and
/// images from this origin only, forms only to this origin, never framed.
pub const CSP: &str = "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The policy of the crawl reports served under `/reports/`: they are
/// self-contained files with one inline `<style>` element and inline SVG,
/// written by `xmpp-survey report`, so inline styles are allowed there and
/// nothing else (still no script, no form, no framing).
pub const REPORT_CSP: &str = "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `app` with the security headers on every response (a handler may set
/// its own Content-Security-Policy first, as the reports do).
pub fn with_headers(app: Router) -> Router {
    app.layer(SetResponseHeaderLayer::if_not_present(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    ))
}

/// Whether a state-changing request comes from our own pages: a browser
/// sends `Sec-Fetch-Site` and `Origin` with every form post, and another
/// site's form would show itself in them. Requests without either (curl,
/// old browsers) carry no ambient authority worth forging: the server has
/// no cookies or sessions.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
                return false;
            };
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
        }
    }
}

/// Middleware: refuses a cross-site POST with 403 before any handler runs.
pub async fn csrf(req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !same_origin(req.headers()) {
        return (
            StatusCode::FORBIDDEN,
            super::pages::render_problem(&super::error::Problem::new(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                "this form was sent from another site; open the page here and send it again",
            )),
        )
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&h(&[])));
        assert!(same_origin(&h(&[
            ("host", "127.130.0.1:8080"),
            ("origin", "http://127.130.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.130.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&h(&[("origin", "null"), ("host", "x")])));
    }
}
