//! Crawls: creating, resuming, finishing or failing one; its progress and
//! summary counts.

use super::{Store, StoreError};
use serde_json::Value;
use std::collections::BTreeMap;

/// What identifies a crawl's conditions (stored in `crawls`; see the
/// column comments in `schema.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct CrawlMeta {
    /// Unique label, e.g. `2026-W47`; an existing label is resumed.
    pub label: String,
    /// Where the domain list came from.
    pub sources: Value,
    /// Where the crawler runs from.
    pub vantage: String,
    /// The probe identity, if the acceptance probe runs.
    pub probe_domain: Option<String>,
    /// xmpp-survey version.
    pub software_version: String,
    /// webpki-roots version.
    pub roots_version: String,
    /// Effective configuration.
    pub config: Value,
}

/// A crawl as created or resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crawl {
    /// Its id, for every other call.
    pub id: i64,
    /// Its label.
    pub label: String,
    /// Whether the label existed: the queue already holds earlier work.
    pub resumed: bool,
}

/// The lifecycle state of a crawl (`crawls.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrawlStatus {
    /// Being worked on.
    Running,
    /// Every queued domain is done or not tested.
    Finished,
    /// Stopped early; resuming the label continues it.
    Interrupted,
}

impl CrawlStatus {
    /// The value stored in `crawls.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Queue counts of a crawl, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Waiting (possibly until `not_before`).
    pub queued: u64,
    /// Held by a worker (possibly expired).
    pub leased: u64,
    /// Result stored.
    pub done: u64,
    /// Given up or excluded.
    pub not_tested: u64,
}

impl Progress {
    /// Every domain of the crawl.
    pub fn total(&self) -> u64 {
        self.queued + self.leased + self.done + self.not_tested
    }

    /// Nothing left to lease or wait for.
    pub fn is_complete(&self) -> bool {
        self.queued == 0 && self.leased == 0
    }
}

/// Counts of results by one column's value (`None`: NULL, e.g. no TLS).
pub type Counts = BTreeMap<Option<String>, u64>;

/// Per-service counts of a crawl's results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    /// By `*_status`.
    pub status: Counts,
    /// By `*_starttls` (required / optional / absent).
    pub starttls: Counts,
    /// By `*_tls_version`.
    pub tls_version: Counts,
    /// By `*_chain_verdict`.
    pub chain_verdict: Counts,
    /// By `*_eku_class`.
    pub eku_class: Counts,
}

/// The headline counts of one crawl (MEASUREMENTS §4), from the typed
/// result columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrawlSummary {
    /// Results stored.
    pub results: u64,
    /// Client-to-server.
    pub c2s: ServiceCounts,
    /// Server-to-server.
    pub s2s: ServiceCounts,
    /// By acceptance verdict.
    pub acceptance: Counts,
    /// By (software name, version) from XEP-0092.
    pub software: BTreeMap<(Option<String>, Option<String>), u64>,
}

/// One query for every dimension of [`CrawlSummary`]: (dimension, value,
/// second value, count).
const SUMMARY_SQL: &str = "
SELECT 'c2s_status', c2s_status, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'c2s_starttls', c2s_starttls, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'c2s_tls_version', c2s_tls_version, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'c2s_chain_verdict', c2s_chain_verdict, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'c2s_eku_class', c2s_eku_class, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_status', s2s_status, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_starttls', s2s_starttls, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_tls_version', s2s_tls_version, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_chain_verdict', s2s_chain_verdict, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_eku_class', s2s_eku_class, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'acceptance', acceptance, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'software', software_name, software_version, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2, 3
";

impl Store {
    /// Creates the crawl, or resumes the one with the same label: its
    /// status goes back to `running` and its queue is kept, so finished
    /// domains are not probed again. The stored metadata is the one of the
    /// first start.
    pub async fn create_or_resume_crawl(&self, meta: &CrawlMeta) -> Result<Crawl, StoreError> {
        let (id, label, resumes): (i64, String, i32) = sqlx::query_as(
            "INSERT INTO crawls (label, sources, vantage, probe_domain, software_version, roots_version, config)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (label) DO UPDATE
                SET status = 'running', finished_at = NULL, error = NULL,
                    resumes = crawls.resumes + 1, resumed_at = now()
             RETURNING id, label, resumes",
        )
        .bind(&meta.label)
        .bind(&meta.sources)
        .bind(&meta.vantage)
        .bind(&meta.probe_domain)
        .bind(&meta.software_version)
        .bind(&meta.roots_version)
        .bind(&meta.config)
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(Crawl {
            id,
            label,
            resumed: resumes > 0,
        })
    }

    /// The crawl with this label, for `worker --crawl LABEL` (which joins a
    /// crawl someone else created and filled).
    pub async fn find_crawl(&self, label: &str) -> Result<Option<Crawl>, StoreError> {
        let row: Option<(i64, String, i32)> =
            sqlx::query_as("SELECT id, label, resumes FROM crawls WHERE label = $1")
                .bind(label)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.err())?;
        Ok(row.map(|(id, label, resumes)| Crawl {
            id,
            label,
            resumed: resumes > 0,
        }))
    }

    /// Queue counts by state: what a progress bar and the "is it over"
    /// check need.
    pub async fn progress(&self, crawl_id: i64) -> Result<Progress, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, count(*) FROM crawl_queue WHERE crawl_id = $1 GROUP BY state",
        )
        .bind(crawl_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        let mut p = Progress::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "queued" => p.queued = n,
                "leased" => p.leased = n,
                "done" => p.done = n,
                _ => p.not_tested += n,
            }
        }
        Ok(p)
    }

    /// The headline counts of a crawl (MEASUREMENTS §4) from the typed
    /// result columns; percentages are the report's job.
    pub async fn summary(&self, crawl_id: i64) -> Result<CrawlSummary, StoreError> {
        type Row = (String, Option<String>, Option<String>, i64);
        let rows: Vec<Row> = sqlx::query_as(SUMMARY_SQL)
            .bind(crawl_id)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        let mut s = CrawlSummary::default();
        for (dim, value, second, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            let counts = match dim.as_str() {
                "acceptance" => {
                    // Every result has exactly one acceptance verdict.
                    s.results += n;
                    &mut s.acceptance
                }
                "software" => {
                    s.software.insert((value, second), n);
                    continue;
                }
                _ => match dim.split_once('_') {
                    Some(("c2s", column)) => service_counts(&mut s.c2s, column),
                    Some(("s2s", column)) => service_counts(&mut s.s2s, column),
                    _ => None,
                }
                .expect("SUMMARY_SQL only names known dimensions"),
            };
            counts.insert(value, n);
        }
        Ok(s)
    }

    /// Ends (or re-opens, with `Running`) a crawl; `finished_at` is set for
    /// `Finished` and `Interrupted`; the error of an earlier
    /// [`Store::fail_crawl`] is cleared.
    ///
    /// Marking a crawl `Finished` also recomputes its `domain_changes`
    /// against the previous finished crawl of its vantage, in the same
    /// transaction (replacing earlier rows: finishing again never
    /// duplicates).
    pub async fn finish_crawl(&self, crawl_id: i64, status: CrawlStatus) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        let changed = sqlx::query(
            "UPDATE crawls
                SET status = $2, error = NULL,
                    finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE now() END
              WHERE id = $1",
        )
        .bind(crawl_id)
        .bind(status.as_str())
        .execute(&mut *tx)
        .await
        .map_err(self.err())?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NoSuchCrawl(crawl_id));
        }
        if status == CrawlStatus::Finished {
            let n = super::changes::record_changes(&mut tx, crawl_id)
                .await
                .map_err(self.err())?;
            tracing::info!(crawl_id, changes = n, "recorded per-domain changes");
        }
        tx.commit().await.map_err(self.err())?;
        Ok(())
    }

    /// Marks a crawl as stopped on an error: status `failed`, `finished_at`
    /// now, and `error` saying why (kept until the crawl is resumed, which
    /// clears it). Its queue is kept: resuming the label continues it.
    pub async fn fail_crawl(&self, crawl_id: i64, error: &str) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawls SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1",
        )
        .bind(crawl_id)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NoSuchCrawl(crawl_id));
        }
        Ok(())
    }

    /// Records one process's resource use on a crawl
    /// (`crawls.listener_stats`, keyed by worker id: each process of a
    /// crawl has its own listener and descriptors; a later run of the same
    /// worker id replaces its entry).
    pub async fn record_listener_stats(
        &self,
        crawl_id: i64,
        worker_id: &str,
        stats: &Value,
    ) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawls
                SET listener_stats = coalesce(listener_stats, '{}'::jsonb) || jsonb_build_object($2::text, $3::jsonb)
              WHERE id = $1",
        )
        .bind(crawl_id)
        .bind(worker_id)
        .bind(stats)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NoSuchCrawl(crawl_id));
        }
        Ok(())
    }
}

fn service_counts<'a>(s: &'a mut ServiceCounts, column: &str) -> Option<&'a mut Counts> {
    Some(match column {
        "status" => &mut s.status,
        "starttls" => &mut s.starttls,
        "tls_version" => &mut s.tls_version,
        "chain_verdict" => &mut s.chain_verdict,
        "eku_class" => &mut s.eku_class,
        _ => return None,
    })
}
