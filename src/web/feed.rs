//! Atom feeds (RFC 4287) of changes: `/feed/DOMAIN.atom` for one domain,
//! `/feed.atom` for the network. An entry is a change of a domain's
//! acceptance verdict or s2s certificate class between two consecutive
//! crawls that both measured it ([`data::changes`], a `LAG` window).

use super::error::Problem;
use super::{AppState, data, pages};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Serialize)]
struct Entry {
    id: String,
    title: String,
    updated: String,
    domain: String,
    summary: String,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn words(v: Option<&str>) -> String {
    v.unwrap_or("none").replace('_', " ")
}

fn entry(c: &data::Change) -> Entry {
    let mut parts = Vec::new();
    if c.acceptance != c.previous_acceptance {
        parts.push(format!(
            "acceptance {} → {}",
            words(Some(&c.previous_acceptance)),
            words(Some(&c.acceptance))
        ));
    }
    if c.s2s_eku_class != c.previous_eku_class {
        parts.push(format!(
            "certificate {} → {}",
            words(c.previous_eku_class.as_deref()),
            words(c.s2s_eku_class.as_deref())
        ));
    }
    let what = parts.join(", ");
    Entry {
        id: format!("urn:xmpp-survey:change:{}:{}", c.domain, c.crawl_id),
        title: format!("{}: {what}", c.domain),
        updated: rfc3339(c.crawl_started_at),
        domain: c.domain.clone(),
        summary: format!(
            "Between crawls {} and {}: {what}. {}",
            c.previous_label,
            c.crawl_label,
            super::view::verdict_sentence(&c.acceptance)
        ),
    }
}

fn atom(
    state: &AppState,
    id: String,
    title: String,
    self_path: String,
    alternate: String,
    changes: &[data::Change],
) -> Response {
    let updated = changes
        .first()
        .map_or(OffsetDateTime::UNIX_EPOCH, |c| c.crawl_started_at);
    let entries: Vec<Entry> = changes.iter().map(entry).collect();
    match pages::render(
        "feed.xml",
        minijinja::context! {
            id, title, self_path, alternate, entries,
            base => state.base.clone(),
            updated => rfc3339(updated),
        },
    ) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/atom+xml; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=600"),
            ],
            body,
        )
            .into_response(),
        Err(p) => pages::render_problem(&p),
    }
}

/// `GET /feed.atom`: changes of every domain over the latest crawls.
pub async fn network(State(state): State<AppState>) -> Response {
    match data::changes(&state.reader, None).await {
        Ok(changes) => atom(
            &state,
            "urn:xmpp-survey:feed:network".into(),
            "xmpp-survey: verdict changes on the network".into(),
            "/feed.atom".into(),
            "/".into(),
            &changes,
        ),
        Err(e) => pages::render_problem(&Problem::database(&e)),
    }
}

/// `GET /feed/{domain}.atom`: one domain's changes across every crawl.
pub async fn domain(
    State(state): State<AppState>,
    file: Result<Path<String>, PathRejection>,
) -> Response {
    let domain = match pages::file_domain(file, "feed", ".atom") {
        Ok(d) => d,
        Err(r) => return *r,
    };
    match data::changes(&state.reader, Some(&domain)).await {
        Ok(changes) => atom(
            &state,
            format!("urn:xmpp-survey:feed:{domain}"),
            format!("xmpp-survey: changes of {domain}"),
            format!("/feed/{domain}.atom"),
            format!("/domain/{domain}"),
            &changes,
        ),
        Err(e) => pages::render_problem(&Problem::database(&e)),
    }
}
