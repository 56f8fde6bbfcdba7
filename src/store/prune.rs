//! Retention of raw evidence (`xmpp-survey db prune --keep-raw WEEKS`).
//!
//! Why: the raw JSONB beside the typed columns (`results.report`,
//! `endpoints.evidence`, `dns_records.data`) is most of a crawl's size,
//! while every report figure and the lookup history come from typed
//! columns. Pruning sets the raw evidence of old crawls to NULL and keeps
//! every typed column, so old crawls stay queryable and their reports
//! identical. Two rules keep what readers still need:
//! - a crawl that is still `running`, or that started within the kept
//!   window, is never touched;
//! - the newest result of every domain keeps its raw evidence, because
//!   the lookup and the domain page read the newest report's JSON.
//!
//! The work goes in batches of domains, one short transaction each, so
//! the rows' old versions can be vacuumed while it runs and no lock is
//! held long; `VACUUM (ANALYZE)` of the three tables follows by default.

use super::{Store, StoreError};
use time::{Duration, OffsetDateTime};

/// Domains per prune transaction: small enough that a transaction lasts
/// milliseconds, large enough that a million results take few round trips.
pub const DEFAULT_PRUNE_BATCH: i64 = 2_000;

/// What `prune --keep-raw` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePlan {
    /// Raw evidence of crawls started before this instant may go.
    pub cutoff: OffsetDateTime,
    /// Domains per transaction.
    pub batch: i64,
    /// Count what would go, change nothing.
    pub dry_run: bool,
}

impl PrunePlan {
    /// The plan that keeps `weeks` weeks of raw evidence back from `now`.
    /// The cut-off is the caller's clock, not the database's, so a test
    /// (or an operator replaying a schedule) can fix it.
    pub fn keep_weeks(weeks: u32, now: OffsetDateTime) -> Self {
        Self {
            cutoff: now - Duration::weeks(i64::from(weeks)),
            batch: DEFAULT_PRUNE_BATCH,
            dry_run: false,
        }
    }
}

/// What one crawl lost (or, in a dry run, would lose).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrawlPrune {
    /// The crawl's label.
    pub label: String,
    /// `results.report` values set to NULL.
    pub reports: u64,
    /// `endpoints.evidence` values set to NULL.
    pub endpoint_evidence: u64,
    /// `dns_records.data` values set to NULL.
    pub dns_data: u64,
    /// Results kept whole because they are their domain's newest.
    pub kept_newest: u64,
}

impl CrawlPrune {
    /// Raw values removed, all tables.
    pub fn total(&self) -> u64 {
        self.reports + self.endpoint_evidence + self.dns_data
    }
}

/// What `prune` did, crawl by crawl (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneSummary {
    /// Crawls old enough and not running, whether or not anything was left
    /// in them to prune.
    pub crawls: Vec<CrawlPrune>,
    /// Transactions committed (0 in a dry run).
    pub batches: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

impl std::fmt::Display for PruneSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run {
            "would prune"
        } else {
            "pruned"
        };
        if self.crawls.is_empty() {
            return write!(f, "no finished crawl is older than the kept window");
        }
        for c in &self.crawls {
            writeln!(
                f,
                "{}: {verb} {} report(s), {} endpoint evidence, {} DNS answer(s); kept {} newest-of-domain result(s) whole",
                c.label, c.reports, c.endpoint_evidence, c.dns_data, c.kept_newest
            )?;
        }
        let total: u64 = self.crawls.iter().map(CrawlPrune::total).sum();
        write!(
            f,
            "{verb} {total} raw value(s) in {} crawl(s), {} transaction(s); every typed column kept",
            self.crawls.len(),
            self.batches
        )
    }
}

/// A result `r` of crawl `c` that is not its domain's newest: a result
/// exists in a crawl started later (ties by id), the order of the lookup
/// history. (A macro, so the statements stay `&'static str` for sqlx.)
macro_rules! has_newer {
    () => {
        "EXISTS (SELECT 1 FROM results n JOIN crawls nc ON nc.id = n.crawl_id \
         WHERE n.domain_id = r.domain_id AND (nc.started_at, nc.id) > (c.started_at, c.id))"
    };
}

/// The domains of crawl `$1` after domain id `$2` whose result still holds
/// its raw report and is not their newest, `$3` at a time. (A batch clears
/// a domain's three raw columns in one transaction, so a NULL report means
/// the domain is done.)
const OLDER_RESULTS: &str = concat!(
    "SELECT r.domain_id FROM results r JOIN crawls c ON c.id = r.crawl_id \
     WHERE r.crawl_id = $1 AND r.domain_id > $2 AND r.report IS NOT NULL AND ",
    has_newer!(),
    " ORDER BY r.domain_id LIMIT $3"
);

/// Results of crawl `$1` that are their domain's newest (kept whole).
const NEWEST_RESULTS: &str = concat!(
    "SELECT count(*) FROM results r JOIN crawls c ON c.id = r.crawl_id \
     WHERE r.crawl_id = $1 AND NOT ",
    has_newer!()
);

impl Store {
    /// Prunes raw evidence as [`PrunePlan`] says (see the module doc for
    /// what is kept). Safe to run again, and while crawls run: running
    /// crawls are skipped and each batch commits on its own, so an
    /// interrupted prune keeps what it did and the next run goes on.
    pub async fn prune_raw(&self, plan: PrunePlan) -> Result<PruneSummary, StoreError> {
        let crawls: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, label FROM crawls WHERE status <> 'running' AND started_at < $1 \
             ORDER BY started_at, id",
        )
        .bind(plan.cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        let mut summary = PruneSummary {
            dry_run: plan.dry_run,
            ..PruneSummary::default()
        };
        for (crawl_id, label) in crawls {
            let mut one = CrawlPrune {
                label,
                ..CrawlPrune::default()
            };
            let newest: i64 = sqlx::query_scalar(NEWEST_RESULTS)
                .bind(crawl_id)
                .fetch_one(&self.pool)
                .await
                .map_err(self.err())?;
            one.kept_newest = newest as u64;
            let mut after = 0_i64;
            loop {
                let ids: Vec<i64> = sqlx::query_scalar(OLDER_RESULTS)
                    .bind(crawl_id)
                    .bind(after)
                    .bind(plan.batch.max(1))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(self.err())?;
                let Some(&last) = ids.last() else { break };
                after = last;
                let counts = if plan.dry_run {
                    self.count_raw(crawl_id, &ids).await?
                } else {
                    summary.batches += 1;
                    self.null_raw(crawl_id, &ids).await?
                };
                one.reports += counts[0];
                one.endpoint_evidence += counts[1];
                one.dns_data += counts[2];
            }
            if !plan.dry_run && one.total() > 0 {
                sqlx::query("UPDATE crawls SET raw_pruned_at = now() WHERE id = $1")
                    .bind(crawl_id)
                    .execute(&self.pool)
                    .await
                    .map_err(self.err())?;
            }
            summary.crawls.push(one);
        }
        Ok(summary)
    }

    /// `VACUUM (ANALYZE)` of the tables a prune rewrote, so the space of
    /// the old row versions is reused (it cannot run in a transaction).
    pub async fn vacuum_raw_tables(&self) -> Result<(), StoreError> {
        sqlx::raw_sql("VACUUM (ANALYZE) results, endpoints, dns_records")
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Sets the raw evidence of `domains` in `crawl_id` to NULL, in one
    /// transaction; returns the values changed per table.
    async fn null_raw(&self, crawl_id: i64, domains: &[i64]) -> Result<[u64; 3], StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        let mut out = [0_u64; 3];
        for (i, sql) in [
            "UPDATE results SET report = NULL \
             WHERE crawl_id = $1 AND domain_id = ANY($2) AND report IS NOT NULL",
            "UPDATE endpoints SET evidence = NULL \
             WHERE crawl_id = $1 AND domain_id = ANY($2) AND evidence IS NOT NULL",
            "UPDATE dns_records SET data = NULL \
             WHERE crawl_id = $1 AND domain_id = ANY($2) AND data IS NOT NULL",
        ]
        .into_iter()
        .enumerate()
        {
            out[i] = sqlx::query(sql)
                .bind(crawl_id)
                .bind(domains)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?
                .rows_affected();
        }
        tx.commit().await.map_err(self.err())?;
        Ok(out)
    }

    /// What [`Store::null_raw`] would change, counted.
    async fn count_raw(&self, crawl_id: i64, domains: &[i64]) -> Result<[u64; 3], StoreError> {
        let (a, b, c): (i64, i64, i64) = sqlx::query_as(
            "SELECT \
               (SELECT count(*) FROM results WHERE crawl_id = $1 AND domain_id = ANY($2) AND report IS NOT NULL), \
               (SELECT count(*) FROM endpoints WHERE crawl_id = $1 AND domain_id = ANY($2) AND evidence IS NOT NULL), \
               (SELECT count(*) FROM dns_records WHERE crawl_id = $1 AND domain_id = ANY($2) AND data IS NOT NULL)",
        )
        .bind(crawl_id)
        .bind(domains)
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        Ok([a as u64, b as u64, c as u64])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_cut_off_is_whole_weeks_back_from_the_callers_clock() {
        let now = datetime!(2026-12-01 05:00 UTC);
        let p = PrunePlan::keep_weeks(4, now);
        assert_eq!(p.cutoff, datetime!(2026-11-03 05:00 UTC));
        assert_eq!(PrunePlan::keep_weeks(0, now).cutoff, now);
        assert!(!p.dry_run);
    }

    #[test]
    fn the_summary_says_what_went_and_what_stayed() {
        let s = PruneSummary {
            crawls: vec![CrawlPrune {
                label: "2026-W40".into(),
                reports: 3,
                endpoint_evidence: 7,
                dns_data: 11,
                kept_newest: 2,
            }],
            batches: 1,
            dry_run: true,
        };
        let text = s.to_string();
        assert!(
            text.contains(
                "2026-W40: would prune 3 report(s), 7 endpoint evidence, 11 DNS answer(s); kept 2"
            ),
            "{text}"
        );
        assert!(text.ends_with("would prune 21 raw value(s) in 1 crawl(s), 1 transaction(s); every typed column kept"), "{text}");
        assert_eq!(
            PruneSummary::default().to_string(),
            "no finished crawl is older than the kept window"
        );
    }
}
