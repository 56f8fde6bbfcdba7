//! "Test now": a live probe of one domain, requested from its page, queued
//! in `live_probes` and run by a background task of the serve process with
//! the same prober as `probe` (the address policy applies: no private or
//! loopback address unless `serve --allow-private`).
//!
//! Limits, each answered 429: requests per client address (IPv6 by /64),
//! probes per domain, probes started per minute and probes in flight on
//! the whole server. The probes themselves keep the crawl's politeness
//! towards each target address (connections per second and at once), so
//! many domains pointing at one host cannot turn "test now" into a flood.

use super::error::Problem;
use super::{AppState, pages, view};
use crate::facts::label;
use crate::model::report::DomainReport;
use crate::probe::Prober;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// The limits of live probes.
#[derive(Debug, Clone, Copy)]
pub struct LiveLimits {
    /// Requests per minute from one client address.
    pub per_ip_per_minute: NonZeroU32,
    /// Probes of one domain per ten minutes.
    pub per_domain_per_10min: NonZeroU32,
    /// Probes started per minute on the whole server.
    pub global_per_minute: NonZeroU32,
    /// Probes queued or running at once on the server.
    pub max_in_flight: usize,
    /// Longest a live probe may run before it is recorded as failed.
    pub probe_timeout: Duration,
}

impl Default for LiveLimits {
    fn default() -> Self {
        Self {
            per_ip_per_minute: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            per_domain_per_10min: NonZeroU32::MIN,
            global_per_minute: NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN),
            max_in_flight: 4,
            probe_timeout: Duration::from_secs(120),
        }
    }
}

/// Live probing: available (with its prober and limiters) or not (why).
pub struct Live(Result<Arc<Running>, String>);

/// The prober and the limits.
pub struct Running {
    prober: Prober,
    limits: LiveLimits,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_domain: DefaultKeyedRateLimiter<String>,
    global: governor::DefaultDirectRateLimiter,
    in_flight: AtomicUsize,
    secret: [u8; 32],
}

impl Live {
    /// Live probing with `prober` under `limits`.
    pub fn new(prober: Prober, limits: LiveLimits) -> Self {
        let per_domain =
            Quota::with_period(Duration::from_secs(600) / limits.per_domain_per_10min.get())
                .map_or_else(
                    || Quota::per_hour(NonZeroU32::MIN),
                    |q| q.allow_burst(limits.per_domain_per_10min),
                );
        let running = Arc::new(Running {
            prober,
            limits,
            per_ip: RateLimiter::keyed(Quota::per_minute(limits.per_ip_per_minute)),
            per_domain: RateLimiter::keyed(per_domain),
            global: RateLimiter::direct(Quota::per_minute(limits.global_per_minute)),
            in_flight: AtomicUsize::new(0),
            secret: rand::random(),
        });
        // Forget idle keys now and then, so the limiters stay small.
        let weak = Arc::downgrade(&running);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(r) = weak.upgrade() else { break };
                r.per_ip.retain_recent();
                r.per_domain.retain_recent();
            }
        });
        Self(Ok(running))
    }

    /// Live probing switched off, and why (shown on the pages).
    pub fn unavailable(why: impl Into<String>) -> Self {
        Self(Err(why.into()))
    }

    /// Whether "test now" is offered.
    pub fn available(&self) -> bool {
        self.0.is_ok()
    }
}

/// The key of a client address: IPv4 as is, IPv6 by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

fn too_many(detail: String, retry_after: u64) -> Response {
    let mut r = pages::render_problem(&Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        detail,
    ));
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Decrements the in-flight count when a probe task ends, however.
struct InFlight(Arc<Running>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `POST /domain/{domain}/test`.
pub async fn request(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    raw: Result<Path<String>, PathRejection>,
) -> Response {
    let raw = match raw {
        Ok(Path(d)) => d,
        Err(e) => {
            return pages::render_problem(&Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.body_text(),
            ));
        }
    };
    let domain = match pages::normalize(&raw) {
        Ok(d) => d,
        Err(p) => return pages::render_problem(&p),
    };
    let running = match &state.live.0 {
        Ok(r) => r.clone(),
        Err(why) => {
            return pages::render_problem(&Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "live_unavailable",
                format!("live tests are not available on this server: {why}"),
            ));
        }
    };
    match crate::lookup::opted_out(&state.reader, &domain).await {
        Ok(true) => {
            return pages::render_problem(&Problem::new(
                StatusCode::FORBIDDEN,
                "opted_out",
                format!("the operator of {domain} opted out; not probed"),
            ));
        }
        Ok(false) => {}
        Err(e) => return pages::render_problem(&Problem::database(&e)),
    }
    let client = client_key(peer.ip());
    if running.per_ip.check_key(&client).is_err() {
        return too_many(
            format!(
                "at most {} live tests a minute from one address; try again in a minute",
                running.limits.per_ip_per_minute
            ),
            60,
        );
    }
    if running.per_domain.check_key(&domain).is_err() {
        return too_many(
            format!(
                "{domain} was tested moments ago (at most {} live test(s) per domain every 10 minutes); its result is on the page",
                running.limits.per_domain_per_10min
            ),
            600,
        );
    }
    if running.global.check().is_err() {
        return too_many(
            format!(
                "this server starts at most {} live tests a minute; try again in a minute",
                running.limits.global_per_minute
            ),
            60,
        );
    }
    let now = running.in_flight.fetch_add(1, Ordering::SeqCst);
    let guard = InFlight(running.clone());
    if now >= running.limits.max_in_flight {
        drop(guard);
        return too_many(
            "too many live tests are running; try again in a minute".into(),
            60,
        );
    }
    let hash = {
        let mut h = Sha256::new();
        h.update(running.secret);
        h.update(client.to_string().as_bytes());
        hex::encode(h.finalize())[..32].to_string()
    };
    let id: i64 = match sqlx::query_scalar(
        "INSERT INTO live_probes (domain, requested_by_hash) VALUES ($1, $2) RETURNING id",
    )
    .bind(&domain)
    .bind(&hash)
    .fetch_one(&state.writer)
    .await
    {
        Ok(id) => id,
        Err(e) => return pages::render_problem(&Problem::database(&e)),
    };
    let writer = state.writer.clone();
    let d = domain.clone();
    tokio::spawn(async move {
        let _guard = guard;
        run(&running, &writer, id, &d).await;
    });
    Redirect::to(&format!("/domain/{domain}/live/{id}")).into_response()
}

/// Why a report is refused instead of shown: every address it would have
/// connected to is outside the address policy.
pub fn refused_by_policy(report: &DomainReport) -> bool {
    !report.endpoints.is_empty()
        && report
            .endpoints
            .iter()
            .all(|e| label(e.connect) == "blocked_address")
}

async fn run(r: &Running, writer: &PgPool, id: i64, domain: &str) {
    let set = |state: &'static str, error: Option<String>, report: Option<serde_json::Value>| {
        sqlx::query(
            "UPDATE live_probes SET state = $2, error = $3, report = $4,
                    finished_at = CASE WHEN $2 IN ('done', 'failed', 'refused') THEN now() END
              WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(error)
        .bind(report)
        .execute(writer)
    };
    if let Err(e) = set("running", None, None).await {
        tracing::warn!(id, error = %e, "live probe: cannot mark running");
    }
    let outcome = tokio::time::timeout(r.limits.probe_timeout, r.prober.probe(domain)).await;
    let result = match outcome {
        Err(_) => {
            set(
                "failed",
                Some(format!(
                    "the probe took longer than {} s",
                    r.limits.probe_timeout.as_secs()
                )),
                None,
            )
            .await
        }
        Ok(report) if refused_by_policy(&report) => {
            set(
                "refused",
                Some(format!(
                    "every address of {domain} is private, loopback or otherwise not public: this server does not probe such addresses"
                )),
                serde_json::to_value(&report).ok(),
            )
            .await
        }
        Ok(report) => match serde_json::to_value(&report) {
            Ok(v) => set("done", None, Some(v)).await,
            Err(e) => set("failed", Some(e.to_string()), None).await,
        },
    };
    if let Err(e) = result {
        tracing::warn!(id, error = %e, "live probe: cannot record the result");
    }
}

/// Marks live probes still queued or running after `older_than` twice
/// over as failed (their server stopped); returns how many.
pub async fn close_stale(writer: &PgPool, older_than: Duration) -> Result<u64, sqlx::Error> {
    let secs = i64::try_from(older_than.as_secs().saturating_mul(2)).unwrap_or(i64::MAX);
    Ok(sqlx::query(
        "UPDATE live_probes
            SET state = 'failed', finished_at = now(),
                error = 'the server stopped before the probe finished'
          WHERE state IN ('queued', 'running')
            AND requested_at < now() - make_interval(secs => $1)",
    )
    .bind(secs as f64)
    .execute(writer)
    .await?
    .rows_affected())
}

/// `GET /domain/{domain}/live/{id}`: the probe's state, refreshing itself
/// until done, then its result.
pub async fn page(
    State(state): State<AppState>,
    raw: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let not_found = || {
        pages::render_problem(&Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "there is no such live test",
        ))
    };
    let Ok(Path((raw, id))) = raw else {
        return not_found();
    };
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    let domain = match pages::normalize(&raw) {
        Ok(d) => d,
        Err(p) => return pages::render_problem(&p),
    };
    type Row = (
        String,
        OffsetDateTime,
        String,
        Option<String>,
        Option<sqlx::types::Json<DomainReport>>,
    );
    let row: Option<Row> = match sqlx::query_as(
        "SELECT domain, requested_at, state, error, report FROM live_probes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.reader)
    .await
    {
        Ok(r) => r,
        Err(e) => return pages::render_problem(&Problem::database(&e)),
    };
    let Some((d, requested_at, probe_state, error, report)) = row else {
        return not_found();
    };
    if d != domain {
        return not_found();
    }
    let r = report
        .filter(|_| probe_state == "done")
        .map(|j| view::report_view(&j.0, view::findings(&j.0, &state.knowledge)));
    let refresh = matches!(probe_state.as_str(), "queued" | "running");
    let mut resp = pages::html(
        StatusCode::OK,
        "live.html",
        minijinja::context! {
            title => format!("{domain}: live test"),
            domain, id, r, refresh, error,
            state => probe_state,
            requested_at => view::when(requested_at),
        },
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_keyed_by_address_and_ipv6_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:bbbb::2"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(client_key(mapped), IpAddr::from([192, 0, 2, 7]));
        let v4 = IpAddr::from([198, 51, 100, 1]);
        assert_eq!(client_key(v4), v4);
    }
}
