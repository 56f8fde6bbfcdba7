//! Atom feeds (RFC 4287) of changes: `/feed/DOMAIN.atom` for one domain,
//! `/feed.atom` for the network. An entry is what changed
//! about a domain in one crawl: the rows recorded in `domain_changes` when
//! the crawl finished ([`data::recorded_changes`]: verdict, EKU class,
//! STARTTLS, software, renewed certificate), or, for crawls without such
//! rows, a change of the acceptance verdict or s2s certificate class
//! against the previous crawl that measured it ([`data::changes`], a `LAG`
//! window).

use super::error::Problem;
use super::{AppState, data, pages};
use crate::model::change::ChangeKind;
use crate::model::names::Named;
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

/// One change as words: the verdict as "acceptance", the s2s EKU class as
/// "certificate" (the words of the `LAG` entries), the rest by kind.
fn change_words(c: &data::RecordedChange) -> String {
    let what = match (c.kind.as_str(), c.scope.as_str()) {
        ("verdict", _) => "acceptance".to_string(),
        ("eku_class", "s2s") => "certificate".to_string(),
        ("appeared" | "disappeared", _) => return words(Some(&c.kind)),
        (kind, "domain") => words(Some(kind)),
        (kind, scope) => format!("{scope} {}", words(Some(kind))),
    };
    format!(
        "{what} {} → {}",
        words(c.before.as_deref()),
        words(c.after.as_deref())
    )
}

/// One entry per (domain, crawl) of recorded changes.
fn recorded_entries(rows: &[data::RecordedChange]) -> Vec<(OffsetDateTime, i64, Entry)> {
    let mut out: Vec<(OffsetDateTime, i64, Entry)> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let first = &rows[i];
        let mut group: Vec<&data::RecordedChange> = rows[i..]
            .iter()
            .take_while(|r| r.domain == first.domain && r.crawl_id == first.crawl_id)
            .collect();
        i += group.len();
        // The verdict first: kinds in their declaration order.
        let order = <ChangeKind as Named>::names();
        group.sort_by_key(|c| {
            (
                order
                    .iter()
                    .position(|k| *k == c.kind)
                    .unwrap_or(usize::MAX),
                c.scope.clone(),
            )
        });
        let what = group
            .iter()
            .map(|c| change_words(c))
            .collect::<Vec<_>>()
            .join(", ");
        out.push((
            first.crawl_started_at,
            first.crawl_id,
            Entry {
                id: format!("urn:xmpp-survey:change:{}:{}", first.domain, first.crawl_id),
                title: format!("{}: {what}", first.domain),
                updated: rfc3339(first.crawl_started_at),
                domain: first.domain.clone(),
                summary: format!(
                    "Between crawls {} and {}: {what}.",
                    first.previous_label, first.crawl_label
                ),
            },
        ));
    }
    out
}

/// The feed's entries: recorded changes, plus the `LAG` changes of
/// (domain, crawl) pairs that have no recorded rows; newest first.
fn entries(recorded: &[data::RecordedChange], legacy: &[data::Change]) -> Vec<Entry> {
    let seen: std::collections::HashSet<(&str, i64)> = recorded
        .iter()
        .map(|r| (r.domain.as_str(), r.crawl_id))
        .collect();
    let mut all = recorded_entries(recorded);
    all.extend(
        legacy
            .iter()
            .filter(|c| !seen.contains(&(c.domain.as_str(), c.crawl_id)))
            .map(|c| (c.crawl_started_at, c.crawl_id, entry(c))),
    );
    all.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(a.2.domain.cmp(&b.2.domain))
    });
    all.truncate(usize::try_from(data::FEED_ENTRIES).unwrap_or(usize::MAX));
    all.into_iter().map(|(_, _, e)| e).collect()
}

fn atom(
    state: &AppState,
    id: String,
    title: String,
    self_path: String,
    alternate: String,
    entries: Vec<Entry>,
) -> Response {
    let updated = entries
        .first()
        .and_then(|e| OffsetDateTime::parse(&e.updated, &Rfc3339).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
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
    let both = tokio::try_join!(
        data::recorded_changes(&state.reader, None),
        data::changes(&state.reader, None)
    );
    match both {
        Ok((recorded, changes)) => atom(
            &state,
            "urn:xmpp-survey:feed:network".into(),
            "xmpp-survey: verdict changes on the network".into(),
            "/feed.atom".into(),
            "/".into(),
            entries(&recorded, &changes),
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
    let both = tokio::try_join!(
        data::recorded_changes(&state.reader, Some(&domain)),
        data::changes(&state.reader, Some(&domain))
    );
    match both {
        Ok((recorded, changes)) => atom(
            &state,
            format!("urn:xmpp-survey:feed:{domain}"),
            format!("xmpp-survey: changes of {domain}"),
            format!("/feed/{domain}.atom"),
            format!("/domain/{domain}"),
            entries(&recorded, &changes),
        ),
        Err(e) => pages::render_problem(&Problem::database(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u8) -> OffsetDateTime {
        time::macros::datetime!(2026-12-01 10:00 UTC) + time::Duration::days(i64::from(day))
    }

    fn recorded(domain: &str, crawl_id: i64, kind: &str, scope: &str) -> data::RecordedChange {
        data::RecordedChange {
            domain: domain.into(),
            crawl_id,
            crawl_label: format!("c{crawl_id}"),
            crawl_started_at: at(crawl_id as u8),
            previous_label: format!("c{}", crawl_id - 1),
            kind: kind.into(),
            scope: scope.into(),
            before: Some("a_b".into()),
            after: Some("c_d".into()),
        }
    }

    fn legacy(domain: &str, crawl_id: i64) -> data::Change {
        data::Change {
            domain: domain.into(),
            crawl_id,
            crawl_label: format!("c{crawl_id}"),
            crawl_started_at: at(crawl_id as u8),
            previous_label: format!("c{}", crawl_id - 1),
            acceptance: "accepts_server_only".into(),
            previous_acceptance: "tls_failed".into(),
            s2s_eku_class: None,
            previous_eku_class: None,
        }
    }

    /// Recorded rows make one entry per (domain, crawl), verdict first;
    /// a `LAG` change of the same pair is dropped, others are kept; newest
    /// crawl first.
    #[test]
    fn recorded_changes_replace_lag_changes_of_the_same_crawl() {
        let rows = vec![
            recorded("a.example", 3, "software_version", "domain"),
            recorded("a.example", 3, "verdict", "domain"),
            recorded("a.example", 3, "eku_class", "s2s"),
            recorded("b.example", 3, "starttls", "c2s"),
        ];
        let lag = vec![legacy("a.example", 3), legacy("c.example", 2)];
        let e = entries(&rows, &lag);
        let titles: Vec<&str> = e.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "a.example: acceptance a b → c d, certificate a b → c d, software version a b → c d",
                "b.example: c2s starttls a b → c d",
                "c.example: acceptance tls failed → accepts server only",
            ]
        );
        assert!(e[0].summary.starts_with("Between crawls c2 and c3: "));
    }
}
