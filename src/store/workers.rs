//! Workers of a crawl on several hosts: registration and heartbeat
//! (`workers`), what `status` reads, joining this week's crawl, and the
//! evidence relay's rows (`relay_events`) with their NOTIFY.

use super::{Crawl, Progress, Store, StoreError};
use time::OffsetDateTime;

/// A worker as it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its name in leases.
    pub worker_id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Its dialback listener's address, if any.
    pub listen: Option<String>,
    /// Heartbeat interval.
    pub interval: std::time::Duration,
}

/// A crawl's row as `status` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrawlRow {
    /// Its id.
    pub id: i64,
    /// Its label.
    pub label: String,
    /// `crawls.status`.
    pub status: String,
    /// When it was created.
    pub started_at: OffsetDateTime,
}

/// One worker's row with its work, for `status` (read by column name).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkerRow {
    /// Its name in leases.
    pub worker_id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// Its listener's address.
    pub listen: Option<String>,
    /// When it joined.
    pub started_at: OffsetDateTime,
    /// Its last heartbeat.
    pub heartbeat_at: OffsetDateTime,
    /// Its heartbeat interval in milliseconds.
    pub interval_ms: i32,
    /// When it stopped cleanly.
    pub stopped_at: Option<OffsetDateTime>,
    /// Results it stored.
    pub done: i64,
    /// Results it stored in the last minute.
    pub done_last_minute: i64,
    /// Leases it holds now (expired ones included).
    pub leased: i64,
    /// Of those, expired: waiting for another worker to take them over.
    pub expired: i64,
}

/// Everything `status` shows, read in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRows {
    /// The crawl.
    pub crawl: CrawlRow,
    /// Queue counts.
    pub progress: Progress,
    /// Leases whose time is up (their owner died or is late).
    pub expired_leases: i64,
    /// Results stored in the last minute, all workers.
    pub done_last_minute: i64,
    /// The database's clock when read.
    pub now: OffsetDateTime,
    /// Every worker that registered, oldest first.
    pub workers: Vec<WorkerRow>,
}

/// The NOTIFY channel of a crawl's relay (one per crawl).
pub fn relay_channel(crawl_id: i64) -> String {
    format!("xmpp_survey_relay_{crawl_id}")
}

impl Store {
    /// The crawl's row (`None`: no such label).
    pub async fn crawl_row(&self, label: &str) -> Result<Option<CrawlRow>, StoreError> {
        let row: Option<(i64, String, String, OffsetDateTime)> =
            sqlx::query_as("SELECT id, label, status, started_at FROM crawls WHERE label = $1")
                .bind(label)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.err())?;
        Ok(row.map(|(id, label, status, started_at)| CrawlRow {
            id,
            label,
            status,
            started_at,
        }))
    }

    /// The latest started crawl's label (`status --crawl latest`).
    pub async fn latest_label(&self) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT label FROM crawls ORDER BY started_at DESC, id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())
    }

    /// Registers (or re-registers) a worker on a crawl, heartbeat now.
    pub async fn register_worker(&self, crawl: &Crawl, w: &WorkerInfo) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO workers (crawl_id, worker_id, host, pid, listen, interval_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (crawl_id, worker_id) DO UPDATE
                SET host = EXCLUDED.host, pid = EXCLUDED.pid, listen = EXCLUDED.listen,
                    interval_ms = EXCLUDED.interval_ms, started_at = now(),
                    heartbeat_at = now(), stopped_at = NULL",
        )
        .bind(crawl.id)
        .bind(&w.worker_id)
        .bind(&w.host)
        .bind(i32::try_from(w.pid).unwrap_or(i32::MAX))
        .bind(&w.listen)
        .bind(i32::try_from(w.interval.as_millis().max(1)).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// A worker's heartbeat (it does not extend its leases).
    pub async fn heartbeat(&self, crawl_id: i64, worker_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE workers SET heartbeat_at = now() WHERE crawl_id = $1 AND worker_id = $2",
        )
        .bind(crawl_id)
        .bind(worker_id)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// A worker ended its work cleanly.
    pub async fn stop_worker(&self, crawl_id: i64, worker_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE workers SET heartbeat_at = now(), stopped_at = now()
              WHERE crawl_id = $1 AND worker_id = $2",
        )
        .bind(crawl_id)
        .bind(worker_id)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// What `status` shows about a crawl.
    pub async fn status_rows(&self, crawl: CrawlRow) -> Result<StatusRows, StoreError> {
        let progress = self.progress(crawl.id).await?;
        let (expired_leases, done_last_minute, now): (i64, i64, OffsetDateTime) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'leased' AND lease_until <= now()),
                    count(*) FILTER (WHERE state = 'done' AND done_at > now() - interval '60 seconds'),
                    now()
               FROM crawl_queue WHERE crawl_id = $1",
        )
        .bind(crawl.id)
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        let workers: Vec<WorkerRow> = sqlx::query_as(
            "SELECT w.worker_id, w.host, w.pid, w.listen, w.started_at, w.heartbeat_at,
                    w.interval_ms, w.stopped_at,
                    coalesce(q.done, 0) AS done, coalesce(q.recent, 0) AS done_last_minute,
                    coalesce(q.leased, 0) AS leased, coalesce(q.expired, 0) AS expired
               FROM workers w
               LEFT JOIN LATERAL (
                    SELECT count(*) FILTER (WHERE state = 'done' AND done_by = w.worker_id) AS done,
                           count(*) FILTER (WHERE state = 'done' AND done_by = w.worker_id
                                              AND done_at > now() - interval '60 seconds') AS recent,
                           count(*) FILTER (WHERE state = 'leased' AND lease_owner = w.worker_id) AS leased,
                           count(*) FILTER (WHERE state = 'leased' AND lease_owner = w.worker_id
                                              AND lease_until <= now()) AS expired
                      FROM crawl_queue WHERE crawl_id = w.crawl_id
                        AND (done_by = w.worker_id OR lease_owner = w.worker_id)
               ) q ON true
              WHERE w.crawl_id = $1
              ORDER BY w.started_at, w.worker_id",
        )
        .bind(crawl.id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(StatusRows {
            crawl,
            progress,
            expired_leases,
            done_last_minute,
            now,
            workers,
        })
    }

    /// Sends a NOTIFY on `channel` (the relay's begin/end notices).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Stores relayed evidence for `to_worker` and announces its id on
    /// the crawl's channel as `event <id> <to_worker>`.
    pub async fn relay_event(
        &self,
        crawl_id: i64,
        to_worker: &str,
        payload: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH e AS (
                INSERT INTO relay_events (crawl_id, to_worker, payload) VALUES ($1, $2, $3)
                RETURNING id)
             SELECT pg_notify($4, 'event ' || e.id || ' ' || $2) FROM e",
        )
        .bind(crawl_id)
        .bind(to_worker)
        .bind(payload)
        .bind(relay_channel(crawl_id))
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// Takes (deletes and returns) relayed evidence addressed to `worker`.
    pub async fn take_relay_event(
        &self,
        id: i64,
        worker: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        sqlx::query_scalar(
            "DELETE FROM relay_events WHERE id = $1 AND to_worker = $2 RETURNING payload",
        )
        .bind(id)
        .bind(worker)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())
    }
}
