//! The crawl queue: enqueueing domains, leasing them to workers
//! (`FOR UPDATE SKIP LOCKED`), retries and `not_tested`, and the domain
//! lists (known domains, opt-outs).

use super::{Store, StoreError};
use std::collections::HashSet;
use std::time::Duration;

/// Domains per `enqueue` statement: bounds the locks and memory of one
/// statement when a list has hundreds of thousands of names.
const ENQUEUE_CHUNK: usize = 10_000;

/// One domain given to one worker until the lease expires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// For `record`, `retry_later`, `not_tested`.
    pub domain_id: i64,
    /// The domain to probe.
    pub domain: String,
    /// How many times it has been leased in this crawl, this one included:
    /// the crawler gives up after its retry budget.
    pub attempts: u32,
}

impl Store {
    /// Adds domains to a crawl; returns how many were newly queued. Each
    /// name is upserted into `domains` (`last_seen` refreshed); opted-out
    /// names are skipped entirely; a domain already in this crawl is never
    /// queued again (whatever its state). Names must be normalised.
    pub async fn enqueue<D: AsRef<str>>(
        &self,
        crawl_id: i64,
        domains: &[D],
    ) -> Result<u64, StoreError> {
        if let Some(bad) = domains.iter().find(|d| !is_normalised(d.as_ref())) {
            return Err(StoreError::InvalidDomain(bad.as_ref().to_string()));
        }
        let mut queued = 0;
        for chunk in domains.chunks(ENQUEUE_CHUNK) {
            let chunk: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
            queued += sqlx::query(
                "WITH input AS (
                    SELECT DISTINCT n AS name FROM unnest($2::text[]) AS n
                    WHERE NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.domain = n)
                 ), upserted AS (
                    INSERT INTO domains (name) SELECT name FROM input ORDER BY name
                    ON CONFLICT (name) DO UPDATE SET last_seen = now()
                    RETURNING id
                 )
                 INSERT INTO crawl_queue (crawl_id, domain_id)
                 SELECT $1, id FROM upserted
                 ON CONFLICT (crawl_id, domain_id) DO NOTHING",
            )
            .bind(crawl_id)
            .bind(chunk)
            .execute(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    StoreError::NoSuchCrawl(crawl_id)
                }
                _ => self.err()(e),
            })?
            .rows_affected();
        }
        Ok(queued)
    }

    /// Gives `worker` up to `max` domains for `lease_for`: queued ones whose
    /// `not_before` has passed and leased ones whose lease expired (a worker
    /// that died). `FOR UPDATE SKIP LOCKED` means concurrent callers never
    /// get the same domain. Each lease counts as an attempt.
    pub async fn lease(
        &self,
        crawl_id: i64,
        worker: &str,
        max: usize,
        lease_for: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let rows: Vec<(i64, String, i32)> = sqlx::query_as(
            "WITH picked AS (
                SELECT domain_id FROM crawl_queue
                WHERE crawl_id = $1
                  AND ((state = 'queued' AND not_before <= now())
                       OR (state = 'leased' AND lease_until <= now()))
                LIMIT $3
                FOR UPDATE SKIP LOCKED
             )
             UPDATE crawl_queue q
                SET state = 'leased', lease_owner = $2,
                    lease_until = now() + $4::interval, attempts = q.attempts + 1
               FROM picked JOIN domains d ON d.id = picked.domain_id
              WHERE q.crawl_id = $1 AND q.domain_id = picked.domain_id
             RETURNING q.domain_id, d.name, q.attempts",
        )
        .bind(crawl_id)
        .bind(worker)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .bind(lease_for)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        let mut leases: Vec<Lease> = rows
            .into_iter()
            .map(|(domain_id, domain, attempts)| Lease {
                domain_id,
                domain,
                attempts: u32::try_from(attempts).unwrap_or(0),
            })
            .collect();
        leases.sort_by_key(|l| l.domain_id);
        Ok(leases)
    }

    /// Puts a leased domain back in the queue, leasable again `after` from
    /// now (retry backoff), keeping `error` as the reason. A domain already
    /// done is left alone (another worker recorded it).
    pub async fn retry_later(
        &self,
        crawl_id: i64,
        domain_id: i64,
        after: Duration,
        error: &str,
    ) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawl_queue
                SET state = 'queued', not_before = now() + $3::interval, last_error = $4,
                    lease_owner = NULL, lease_until = NULL
              WHERE crawl_id = $1 AND domain_id = $2 AND state <> 'done'",
        )
        .bind(crawl_id)
        .bind(domain_id)
        .bind(after)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        self.ensure_queued(changed, crawl_id, domain_id).await
    }

    /// Marks a domain as not tested (retry budget spent, excluded), with the
    /// reason: it counts as handled but has no result. A domain already done
    /// is left alone.
    pub async fn not_tested(
        &self,
        crawl_id: i64,
        domain_id: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawl_queue
                SET state = 'not_tested', last_error = $3, done_at = now(),
                    lease_owner = NULL, lease_until = NULL
              WHERE crawl_id = $1 AND domain_id = $2 AND state <> 'done'",
        )
        .bind(crawl_id)
        .bind(domain_id)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        self.ensure_queued(changed, crawl_id, domain_id).await
    }

    /// After an update that changed nothing: fine if the domain is in the
    /// queue (it was done), [`StoreError::NotQueued`] if it is not.
    async fn ensure_queued(
        &self,
        changed: u64,
        crawl_id: i64,
        domain_id: i64,
    ) -> Result<(), StoreError> {
        if changed > 0 {
            return Ok(());
        }
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM crawl_queue WHERE crawl_id = $1 AND domain_id = $2)",
        )
        .bind(crawl_id)
        .bind(domain_id)
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        if exists {
            Ok(())
        } else {
            Err(StoreError::NotQueued {
                crawl_id,
                domain_id,
            })
        }
    }

    /// Every domain ever enqueued, minus opt-outs, sorted: the "db" domain
    /// source, so a weekly crawl re-measures everything seen before.
    pub async fn known_domains(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT name FROM domains d
             WHERE NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.domain = d.name)
             ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())
    }

    /// The opted-out domains (MEASUREMENTS §5).
    pub async fn opt_outs(&self) -> Result<HashSet<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT domain FROM opt_outs")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(names.into_iter().collect())
    }

    /// Records an opt-out (or updates its reason) and, in the same
    /// transaction, marks the domain `not_tested` wherever it is still
    /// queued, so a running crawl stops before probing it. A lease already
    /// handed out is not revoked.
    pub async fn add_opt_out(&self, domain: &str, reason: &str) -> Result<(), StoreError> {
        if !is_normalised(domain) {
            return Err(StoreError::InvalidDomain(domain.to_string()));
        }
        let e = self.err();
        let mut tx = self.pool.begin().await.map_err(&e)?;
        sqlx::query(
            "INSERT INTO opt_outs (domain, reason) VALUES ($1, $2)
             ON CONFLICT (domain) DO UPDATE SET reason = EXCLUDED.reason",
        )
        .bind(domain)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(&e)?;
        sqlx::query(
            "UPDATE crawl_queue q
                SET state = 'not_tested', done_at = now(), last_error = 'opted out: ' || $2
               FROM domains d
              WHERE d.name = $1 AND q.domain_id = d.id AND q.state = 'queued'",
        )
        .bind(domain)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(&e)?;
        tx.commit().await.map_err(&e)
    }
}

/// The form `domains.name` requires (its CHECK): non-empty, lowercase, no
/// trailing dot. `crate::domain` produces it.
fn is_normalised(d: &str) -> bool {
    !d.is_empty() && !d.ends_with('.') && d.to_lowercase() == d
}
