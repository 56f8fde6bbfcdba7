//! One domain, for its operator: the latest stored result and its history
//! across crawls, as findings with advice (`xmpp-survey lookup`, the web
//! domain page and the API read this module).
//!
//! - [`assess`]: **the findings logic** (pure: report → findings).
//! - [`knowledge`]: the advice file `seeds/advice.toml`.
//! - [`render`]: the findings as text for the terminal.
//! - this module: reading a domain's results from PostgreSQL.

pub mod assess;
pub mod knowledge;
pub mod render;

pub use assess::findings;
pub use knowledge::{Knowledge, KnowledgeError};

use crate::model::finding::Finding;
use crate::model::report::DomainReport;
use serde::Serialize;
use sqlx::PgPool;
use time::{Date, OffsetDateTime};

/// Everything known about one domain: what `lookup --json` prints and the
/// domain page shows.
#[derive(Debug, Clone, Serialize)]
pub struct DomainLookup {
    /// The domain, normalised.
    pub domain: String,
    /// Its operator opted out (MEASUREMENTS §5): nothing is shown or probed.
    pub opted_out: bool,
    /// The latest stored measurement (or the live one, for `--live`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<StoredResult>,
    /// The findings of the latest measurement.
    pub findings: Vec<Finding>,
    /// One line per crawl that measured the domain, newest first.
    pub history: Vec<HistoryEntry>,
    /// What changed between consecutive crawls (`domain_changes`),
    /// newest crawl first.
    #[serde(default)]
    pub changes: Vec<crate::store::changes::ChangeRow>,
}

/// At most this many change rows in a domain's lookup.
pub const CHANGES_LIMIT: i64 = 200;

/// One measurement of the domain with where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct StoredResult {
    /// The crawl (`None` for a live probe).
    pub crawl_id: Option<i64>,
    /// The crawl's label, or `live`.
    pub crawl_label: String,
    /// When the domain was probed.
    #[serde(with = "time::serde::rfc3339")]
    pub probed_at: OffsetDateTime,
    /// The whole probe report (docs/probe-json-schema.md).
    pub report: DomainReport,
}

/// The domain's verdicts in one crawl (also the API's history entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The crawl.
    pub crawl_id: i64,
    /// Its label, e.g. `2026-W49`.
    pub crawl_label: String,
    /// When the crawl started.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub crawl_started_at: OffsetDateTime,
    /// When this domain was probed in it.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub probed_at: OffsetDateTime,
    /// Acceptance verdict (`results.acceptance`).
    pub acceptance: String,
    /// Its reason code.
    pub acceptance_reason: Option<String>,
    /// c2s status.
    pub c2s_status: String,
    /// s2s status.
    pub s2s_status: String,
    /// EKU class of the s2s certificate.
    pub s2s_eku_class: Option<String>,
    /// s2s chain verdict.
    pub s2s_chain_verdict: Option<String>,
    /// Reported software, `name version`.
    pub software: Option<String>,
}

/// Why a stored lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The database query failed.
    #[error("database query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored report does not parse as this version's report.
    #[error("the stored report of {domain} in crawl {crawl} does not parse")]
    StoredReport {
        /// The domain.
        domain: String,
        /// The crawl label.
        crawl: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

/// At most this many crawls in a domain's history (a weekly crawl: about
/// four years).
pub const HISTORY_LIMIT: i64 = 200;

/// The domain's history across crawls, newest first (one indexed query:
/// `domains.name` → `results (domain_id, crawl_id)`).
pub async fn history(pool: &PgPool, domain: &str) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    type Row = (
        i64,
        String,
        OffsetDateTime,
        OffsetDateTime,
        String,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT c.id, c.label, c.started_at, r.probed_at, r.acceptance, r.acceptance_reason, \
                r.c2s_status, r.s2s_status, r.s2s_eku_class, r.s2s_chain_verdict, \
                r.software_name, r.software_version \
         FROM domains d JOIN results r ON r.domain_id = d.id JOIN crawls c ON c.id = r.crawl_id \
         WHERE d.name = $1 ORDER BY c.started_at DESC, c.id DESC LIMIT $2",
    )
    .bind(domain)
    .bind(HISTORY_LIMIT)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| HistoryEntry {
            crawl_id: r.0,
            crawl_label: r.1,
            crawl_started_at: r.2,
            probed_at: r.3,
            acceptance: r.4,
            acceptance_reason: r.5,
            c2s_status: r.6,
            s2s_status: r.7,
            s2s_eku_class: r.8,
            s2s_chain_verdict: r.9,
            software: match (r.10, r.11) {
                (Some(n), Some(v)) => Some(format!("{n} {v}")),
                (n, v) => n.or(v),
            },
        })
        .collect())
}

/// Whether the domain's operator opted out (approved opt-outs only).
pub async fn opted_out(pool: &PgPool, domain: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM opt_outs WHERE domain = $1)")
        .bind(domain)
        .fetch_one(pool)
        .await
}

/// The stored report of `domain` in one crawl.
pub async fn stored_report(
    pool: &PgPool,
    domain: &str,
    crawl_id: i64,
) -> Result<Option<DomainReport>, LookupError> {
    // `report` is NULL once pruned (`db prune --keep-raw`), which never
    // prunes a domain's newest result; an older one reads as absent.
    let row: Option<(String, sqlx::types::Json<Box<serde_json::value::RawValue>>)> =
        sqlx::query_as(
            "SELECT c.label, r.report FROM results r JOIN domains d ON d.id = r.domain_id \
             JOIN crawls c ON c.id = r.crawl_id \
             WHERE d.name = $1 AND r.crawl_id = $2 AND r.report IS NOT NULL",
        )
        .bind(domain)
        .bind(crawl_id)
        .fetch_optional(pool)
        .await?;
    row.map(|(crawl, raw)| {
        serde_json::from_str(raw.0.get()).map_err(|source| LookupError::StoredReport {
            domain: domain.to_string(),
            crawl,
            source,
        })
    })
    .transpose()
}

/// The domain as stored: its latest result's findings and its history.
/// `domain` must be normalised ([`crate::model::domain::DomainName`]). An
/// opted-out domain yields nothing but `opted_out`.
pub async fn lookup_stored(
    pool: &PgPool,
    domain: &str,
    knowledge: &Knowledge,
    today: Date,
) -> Result<DomainLookup, LookupError> {
    let mut out = DomainLookup {
        domain: domain.to_string(),
        opted_out: opted_out(pool, domain).await?,
        latest: None,
        findings: Vec::new(),
        history: Vec::new(),
        changes: Vec::new(),
    };
    if out.opted_out {
        return Ok(out);
    }
    out.history = history(pool, domain).await?;
    out.changes = crate::store::changes::domain_changes(pool, domain, CHANGES_LIMIT).await?;
    if let Some(newest) = out.history.first()
        && let Some(report) = stored_report(pool, domain, newest.crawl_id).await?
    {
        out.findings = findings(&report, knowledge, today);
        out.latest = Some(StoredResult {
            crawl_id: Some(newest.crawl_id),
            crawl_label: newest.crawl_label.clone(),
            probed_at: newest.probed_at,
            report,
        });
    }
    Ok(out)
}

/// A live measurement as a lookup: the findings of `report` (no history).
pub fn lookup_live(report: DomainReport, knowledge: &Knowledge, today: Date) -> DomainLookup {
    DomainLookup {
        domain: report.domain.clone(),
        opted_out: false,
        findings: findings(&report, knowledge, today),
        history: Vec::new(),
        changes: Vec::new(),
        latest: Some(StoredResult {
            crawl_id: None,
            crawl_label: "live".into(),
            probed_at: report.started_at,
            report,
        }),
    }
}
