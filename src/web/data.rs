//! The read-only queries behind pages, API, badge and feeds. Each is one
//! statement on indexed columns (`domains.name`, `results (domain_id,
//! crawl_id)`, `results (crawl_id, …)`); none scans every crawl's results
//! except the network feed, which looks at the last [`FEED_CRAWLS`] crawls.

use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Crawls the network feed compares (the latest ones).
pub const FEED_CRAWLS: i64 = 6;

/// Entries in a feed, at most.
pub const FEED_ENTRIES: i64 = 200;

/// Service statuses of a service that answered (as the report counts them).
pub use crate::report::data::ANSWERED;

/// The read-only pool: every session is `READ ONLY`, so no page handler
/// can write even through a bug. Connects lazily (the writer pool has
/// already checked the URL).
pub fn reader_pool(options: PgConnectOptions, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with(options.application_name("xmpp-survey serve (read-only)"))
}

/// One crawl, as listed.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct CrawlRow {
    /// Crawl id.
    pub id: i64,
    /// Label, e.g. `2026-W47`.
    pub label: String,
    /// running, finished, interrupted, failed.
    pub status: String,
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    /// End, when ended.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
    /// Domains with a stored result.
    pub domains_tested: i64,
}

/// Every crawl, newest first, with its result count.
pub async fn crawls(pool: &PgPool) -> Result<Vec<CrawlRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.label, c.status, c.started_at, c.finished_at,
                (SELECT count(*) FROM results r WHERE r.crawl_id = c.id) AS domains_tested
           FROM crawls c ORDER BY c.started_at DESC, c.id DESC",
    )
    .fetch_all(pool)
    .await
}

/// A figure: count of a population, and its percentage.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Figure {
    /// Domains with the property.
    pub count: i64,
    /// The population.
    pub of: i64,
    /// `count / of` in percent, one decimal; null when `of` is 0.
    pub percent: Option<f64>,
}

impl Figure {
    fn new(count: i64, of: i64) -> Self {
        let percent = (of > 0).then(|| (count as f64 * 1000.0 / of as f64).round() / 10.0);
        Self { count, of, percent }
    }
}

/// The network's headline figures of one crawl (the latest finished).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stats {
    /// The crawl.
    pub crawl: CrawlRow,
    /// Domains with a result.
    pub domains_tested: i64,
    /// Accept server-only certificates, of the domains with an acceptance
    /// verdict other than not_run and unreachable.
    pub accepts_server_only: Figure,
    /// s2s STARTTLS required, of the domains whose s2s answered.
    pub s2s_starttls_required: Figure,
    /// s2s certificate is server-only, of the domains with an s2s
    /// certificate.
    pub s2s_server_only_certs: Figure,
}

/// The latest finished crawl (`None` before the first finishes).
pub async fn latest_finished(pool: &PgPool) -> Result<Option<CrawlRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.label, c.status, c.started_at, c.finished_at,
                (SELECT count(*) FROM results r WHERE r.crawl_id = c.id) AS domains_tested
           FROM crawls c WHERE c.status = 'finished'
          ORDER BY c.started_at DESC, c.id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}

/// How long the headline figures are kept in memory: they change when a
/// crawl finishes, and computing them scans that crawl's results.
pub const STATS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The headline figures, computed at most once per [`STATS_TTL`].
#[derive(Default)]
pub struct StatsCache(tokio::sync::Mutex<Option<(std::time::Instant, Option<Stats>)>>);

impl StatsCache {
    /// The cached figures, or fresh ones (computed by one caller while
    /// the others wait for them).
    pub async fn get(&self, pool: &PgPool) -> Result<Option<Stats>, sqlx::Error> {
        let mut slot = self.0.lock().await;
        if let Some((at, s)) = slot.as_ref()
            && at.elapsed() < STATS_TTL
        {
            return Ok(s.clone());
        }
        let fresh = stats(pool).await?;
        *slot = Some((std::time::Instant::now(), fresh.clone()));
        Ok(fresh)
    }
}

/// Headline figures of the latest finished crawl.
pub async fn stats(pool: &PgPool) -> Result<Option<Stats>, sqlx::Error> {
    let Some(crawl) = latest_finished(pool).await? else {
        return Ok(None);
    };
    let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*),
                count(*) FILTER (WHERE acceptance = 'accepts_server_only'),
                count(*) FILTER (WHERE acceptance NOT IN ('not_run', 'unreachable')),
                count(*) FILTER (WHERE s2s_status IN {ANSWERED} AND s2s_starttls = 'required'),
                count(*) FILTER (WHERE s2s_status IN {ANSWERED}),
                count(*) FILTER (WHERE s2s_eku_class = 'server_only'),
                count(*) FILTER (WHERE s2s_eku_class IS NOT NULL)
           FROM results WHERE crawl_id = $1"
    )))
    .bind(crawl.id)
    .fetch_one(pool)
    .await?;
    Ok(Some(Stats {
        crawl,
        domains_tested: row.0,
        accepts_server_only: Figure::new(row.1, row.2),
        s2s_starttls_required: Figure::new(row.3, row.4),
        s2s_server_only_certs: Figure::new(row.5, row.6),
    }))
}

pub use crate::lookup::HistoryEntry;

/// A domain as stored ([`crate::lookup::lookup_stored`]): opt-out, latest
/// result with its findings, history.
pub async fn lookup(
    pool: &PgPool,
    domain: &str,
    knowledge: &crate::lookup::Knowledge,
) -> Result<crate::lookup::DomainLookup, super::error::Problem> {
    let today = OffsetDateTime::now_utc().date();
    crate::lookup::lookup_stored(pool, domain, knowledge, today)
        .await
        .map_err(|e| match e {
            crate::lookup::LookupError::Database(e) => super::error::Problem::database(&e),
            other => {
                tracing::error!(error = %other, "stored report unreadable");
                super::error::Problem::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "stored_report",
                    "the stored result of this domain cannot be read by this version",
                )
            }
        })
}

/// The acceptance verdict of the domain's latest result (the badge);
/// none for an opted-out domain.
pub async fn latest_acceptance(pool: &PgPool, domain: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT r.acceptance FROM domains d JOIN results r ON r.domain_id = d.id
          WHERE d.name = $1 AND NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.domain = $1)
          ORDER BY r.crawl_id DESC LIMIT 1",
    )
    .bind(domain)
    .fetch_optional(pool)
    .await
}

/// One domain in a crawl (the API's domain list).
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DomainRow {
    /// The domain.
    pub domain: String,
    /// Acceptance verdict.
    pub acceptance: String,
    /// c2s status.
    pub c2s_status: String,
    /// s2s status.
    pub s2s_status: String,
    /// EKU class of the s2s certificate.
    pub s2s_eku_class: Option<String>,
    /// When it was probed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub probed_at: OffsetDateTime,
}

/// One page of a crawl's domains, by name, optionally of one verdict;
/// with the total.
pub async fn domains(
    pool: &PgPool,
    crawl_id: i64,
    acceptance: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<DomainRow>), sqlx::Error> {
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM results WHERE crawl_id = $1 AND ($2::text IS NULL OR acceptance = $2)",
    )
    .bind(crawl_id)
    .bind(acceptance)
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as(
        "SELECT d.name AS domain, r.acceptance, r.c2s_status, r.s2s_status, r.s2s_eku_class,
                r.probed_at
           FROM results r JOIN domains d ON d.id = r.domain_id
          WHERE r.crawl_id = $1 AND ($2::text IS NULL OR r.acceptance = $2)
          ORDER BY d.name OFFSET $3 LIMIT $4",
    )
    .bind(crawl_id)
    .bind(acceptance)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok((total, rows))
}

/// The crawl a label names.
pub async fn crawl_by_label(pool: &PgPool, label: &str) -> Result<Option<CrawlRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.id, c.label, c.status, c.started_at, c.finished_at,
                (SELECT count(*) FROM results r WHERE r.crawl_id = c.id) AS domains_tested
           FROM crawls c WHERE c.label = $1",
    )
    .bind(label)
    .fetch_optional(pool)
    .await
}

/// A change of a domain's acceptance verdict or s2s certificate class
/// between two consecutive crawls that both measured it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Change {
    /// The domain.
    pub domain: String,
    /// The crawl where the new value was seen.
    pub crawl_id: i64,
    /// Its label.
    pub crawl_label: String,
    /// When it started.
    pub crawl_started_at: OffsetDateTime,
    /// The previous crawl's label.
    pub previous_label: String,
    /// Acceptance verdict now.
    pub acceptance: String,
    /// Acceptance verdict before.
    pub previous_acceptance: String,
    /// s2s EKU class now.
    pub s2s_eku_class: Option<String>,
    /// s2s EKU class before.
    pub previous_eku_class: Option<String>,
}

/// Changes between consecutive crawls (by start time) of one domain, or
/// of every domain over the last [`FEED_CRAWLS`] crawls; newest first.
pub async fn changes(pool: &PgPool, domain: Option<&str>) -> Result<Vec<Change>, sqlx::Error> {
    sqlx::query_as(
        "WITH h AS (
            SELECT d.name AS domain, r.crawl_id, c.label AS crawl_label,
                   c.started_at AS crawl_started_at, r.acceptance, r.s2s_eku_class,
                   LAG(c.label) OVER w AS previous_label,
                   LAG(r.acceptance) OVER w AS previous_acceptance,
                   LAG(r.s2s_eku_class) OVER w AS previous_eku_class
              FROM results r
              JOIN crawls c ON c.id = r.crawl_id
              JOIN domains d ON d.id = r.domain_id
             WHERE ($1::text IS NOT NULL AND d.name = $1)
                OR ($1::text IS NULL AND r.crawl_id IN
                    (SELECT id FROM crawls ORDER BY started_at DESC, id DESC LIMIT $2))
            WINDOW w AS (PARTITION BY r.domain_id ORDER BY c.started_at, c.id)
         )
         SELECT domain, crawl_id, crawl_label, crawl_started_at, previous_label, acceptance,
                previous_acceptance, s2s_eku_class, previous_eku_class
           FROM h
          WHERE previous_label IS NOT NULL
            AND (acceptance IS DISTINCT FROM previous_acceptance
                 OR s2s_eku_class IS DISTINCT FROM previous_eku_class)
          ORDER BY crawl_started_at DESC, crawl_id DESC, domain
          LIMIT $3",
    )
    .bind(domain)
    .bind(FEED_CRAWLS)
    .bind(FEED_ENTRIES)
    .fetch_all(pool)
    .await
}

/// One row of `domain_changes` with its crawls, for the feeds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordedChange {
    /// The domain.
    pub domain: String,
    /// The crawl where the change was seen.
    pub crawl_id: i64,
    /// Its label.
    pub crawl_label: String,
    /// When it started.
    pub crawl_started_at: OffsetDateTime,
    /// The previous crawl's label.
    pub previous_label: String,
    /// `verdict`, `eku_class`, ... (`ChangeKind`).
    pub kind: String,
    /// `domain`, `c2s` or `s2s`.
    pub scope: String,
    /// The previous value.
    pub before: Option<String>,
    /// The new value.
    pub after: Option<String>,
}

/// The changes recorded when crawls finished (`domain_changes`), of one
/// domain or of every domain over the last [`FEED_CRAWLS`] crawls; newest
/// first.
pub async fn recorded_changes(
    pool: &PgPool,
    domain: Option<&str>,
) -> Result<Vec<RecordedChange>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.name AS domain, x.crawl_id, c.label AS crawl_label,
                c.started_at AS crawl_started_at, p.label AS previous_label,
                x.kind, x.scope, x.before, x.after
           FROM domain_changes x
           JOIN crawls c ON c.id = x.crawl_id
           JOIN crawls p ON p.id = x.previous_crawl_id
           JOIN domains d ON d.id = x.domain_id
          WHERE ($1::text IS NOT NULL AND d.name = $1)
             OR ($1::text IS NULL AND x.crawl_id IN
                 (SELECT id FROM crawls ORDER BY started_at DESC, id DESC LIMIT $2))
          ORDER BY c.started_at DESC, x.crawl_id DESC, d.name,
                   array_position($4::text[], x.kind), x.scope
          LIMIT $3",
    )
    .bind(domain)
    .bind(FEED_CRAWLS)
    .bind(FEED_ENTRIES * 8)
    // Kinds in ChangeKind's order: the verdict first.
    .bind(<crate::model::change::ChangeKind as crate::model::names::Named>::names())
    .fetch_all(pool)
    .await
}

/// Whether the domain was ever enqueued by a crawl.
pub async fn known(pool: &PgPool, domain: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)")
        .bind(domain)
        .fetch_one(pool)
        .await
}
