//! `/badge/DOMAIN.svg`: a shields-style badge of the domain's acceptance
//! of server-only certificates (accepts / dialback only / breaks / not
//! tested), from `results.acceptance` of its latest result. One indexed
//! query per domain, answers kept [`TTL`] in memory; the four SVGs are
//! built once.

use super::view::BadgeState;
use super::{AppState, data, pages};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long a badge answer is cached here and by clients.
pub const TTL: Duration = Duration::from_secs(300);

/// Domains cached at most (the cache is emptied when full).
pub const CACHE_ENTRIES: usize = 200_000;

/// The badge cache: domain → (state, when looked up).
#[derive(Default)]
pub struct Cache(Mutex<HashMap<String, (BadgeState, Instant)>>);

impl Cache {
    fn get(&self, domain: &str) -> Option<BadgeState> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(domain)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(s, _)| *s)
    }

    fn put(&self, domain: String, state: BadgeState) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_ENTRIES {
            map.clear();
        }
        map.insert(domain, (state, Instant::now()));
    }
}

const LABEL: &str = "server-only certs";

/// Width of a text in Verdana 11px, roughly (shields' metric, per char).
fn text_width(s: &str) -> u32 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | '.' | '-' | ' ' | 'j' | 't' | 'f' | 'r' => 4,
            'm' | 'w' => 10,
            _ => 7,
        })
        .sum::<u32>()
        + 10
}

/// The SVG of a state (shields "flat" style).
pub fn svg(state: BadgeState) -> String {
    let value = state.text();
    let color = match state {
        BadgeState::Accepts => "#3c1",
        BadgeState::DialbackOnly => "#dfb317",
        BadgeState::Breaks => "#e05d44",
        BadgeState::NotTested => "#9f9f9f",
    };
    let (lw, vw) = (text_width(LABEL), text_width(value));
    let w = lw + vw;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{LABEL}: {value}"><title>{LABEL}: {value}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="15" fill="#010101" fill-opacity=".3">{LABEL}</text><text x="{lx}" y="14">{LABEL}</text><text x="{vx}" y="15" fill="#010101" fill-opacity=".3">{value}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        lx = lw / 2,
        vx = lw + vw / 2,
    )
}

static SVGS: LazyLock<[String; 4]> = LazyLock::new(|| {
    [
        svg(BadgeState::Accepts),
        svg(BadgeState::DialbackOnly),
        svg(BadgeState::Breaks),
        svg(BadgeState::NotTested),
    ]
});

fn cached_svg(state: BadgeState) -> &'static str {
    let i = match state {
        BadgeState::Accepts => 0,
        BadgeState::DialbackOnly => 1,
        BadgeState::Breaks => 2,
        BadgeState::NotTested => 3,
    };
    &SVGS[i]
}

/// `GET /badge/{domain}.svg`.
pub async fn badge(
    State(state): State<AppState>,
    file: Result<Path<String>, PathRejection>,
) -> Response {
    let domain = match pages::file_domain(file, "badge", ".svg") {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let badge_state = match state.badges.get(&domain) {
        Some(s) => s,
        None => match data::latest_acceptance(&state.reader, &domain).await {
            Ok(v) => {
                let s = BadgeState::from_acceptance(v.as_deref());
                state.badges.put(domain, s);
                s
            }
            Err(e) => return pages::render_problem(&super::error::Problem::database(&e)),
        },
    };
    let mut r = cached_svg(badge_state).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_its_words_and_colour() {
        for (s, words) in [
            (BadgeState::Accepts, "accepts"),
            (BadgeState::DialbackOnly, "dialback only"),
            (BadgeState::Breaks, "breaks"),
            (BadgeState::NotTested, "not tested"),
        ] {
            let svg = cached_svg(s);
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.contains(&format!(">{words}</text>")), "{svg}");
        }
        assert_eq!(
            BadgeState::from_acceptance(Some("no_cert_auth")),
            BadgeState::DialbackOnly
        );
        assert_eq!(
            BadgeState::from_acceptance(Some("inconclusive")),
            BadgeState::NotTested
        );
        assert_eq!(BadgeState::from_acceptance(None), BadgeState::NotTested);
    }
}
