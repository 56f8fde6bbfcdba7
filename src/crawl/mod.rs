//! The crawl engine (issue "Crawl engine with PostgreSQL"): workers lease
//! domains from the crawl's queue in PostgreSQL, probe them politely, and
//! write each domain's result in one transaction, batched.
//!
//! Safety of the data: a result row is keyed by (crawl, domain), so a
//! re-probed domain (lease expired, crawler killed) can never produce a
//! second result; a crash loses at most the in-flight probes, whose leases
//! expire and are taken again. When the database goes away the worker
//! keeps its finished results in memory and waits for it to return.

pub mod progress;
pub mod retry;
pub mod summary;

use crate::probe::Prober;
use crate::probe::report::DomainReport;
use crate::store::{Lease, Store, StoreError};
use retry::Disposition;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name in leases (host:pid by default).
    pub worker_id: String,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// How long a lease lasts before another worker may take the domain.
    pub lease_for: Duration,
    /// Attempts before a transiently failing domain ends `not_tested`.
    pub max_attempts: u32,
    /// First retry delay (doubles each attempt).
    pub retry_base: Duration,
    /// Results per write batch.
    pub write_batch: usize,
    /// Longest a finished result waits before being written.
    pub write_interval: Duration,
    /// How long to wait between polls when the queue is momentarily empty
    /// (leases held by others, retries not yet due).
    pub idle_poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: default_worker_id(),
            concurrency: 64,
            lease_for: Duration::from_secs(300),
            max_attempts: 3,
            retry_base: Duration::from_secs(30),
            write_batch: 64,
            write_interval: Duration::from_millis(500),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// `host:pid`, unique enough across machines sharing one database.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

/// The label of this week's crawl, e.g. `2026-W47` (ISO 8601 week).
pub fn iso_week_label(now: OffsetDateTime) -> String {
    let (year, week, _) = now.date().to_iso_week_date();
    format!("{year}-W{week:02}")
}

/// What one worker did (the crawl summary adds the database's view).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Domains probed (including retried ones, each time).
    pub probed: u64,
    /// Results written.
    pub recorded: u64,
    /// Results that were new to the database (a re-probed domain whose
    /// result already exists adds none).
    pub rows: u64,
    /// Retries scheduled.
    pub retried: u64,
    /// Domains that ended `not_tested`.
    pub not_tested: u64,
    /// Times the worker waited for the database to come back.
    pub db_waits: u64,
    /// Counts by s2s status / acceptance verdict, for the progress line.
    pub outcomes: BTreeMap<String, u64>,
    /// Whether the run was interrupted (Ctrl-C).
    pub interrupted: bool,
}

/// Receives progress as the worker goes (a terminal bar or log lines).
pub trait ProgressSink: Send + Sync {
    /// One domain finished (recorded, retried or given up).
    fn tick(&self, stats: &WorkerStats);
    /// The worker is waiting for the database.
    fn waiting_for_db(&self, error: &str);
}

/// Runs a database operation until it succeeds, waiting while the
/// database is unavailable (or until `cancel` and `give_up_on_cancel`).
async fn with_db<T, F, Fut>(
    stats: &mut WorkerStats,
    progress: &dyn ProgressSink,
    cancel: &CancellationToken,
    give_up_on_cancel: bool,
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match op().await {
            Err(e) if e.is_unavailable() => {
                stats.db_waits += 1;
                progress.waiting_for_db(&e.to_string());
                if give_up_on_cancel && cancel.is_cancelled() {
                    return Err(e);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

fn count_outcome(stats: &mut WorkerStats, r: &DomainReport) {
    let key = crate::facts::label(r.summary.s2s.status);
    *stats.outcomes.entry(key).or_default() += 1;
}

/// Runs one worker on a crawl until the queue is empty or `cancel` fires.
/// Ctrl-C (cancel) stops leasing, lets in-flight probes finish and writes
/// their results; the rest stays queued for the next run.
pub async fn run_worker(
    store: &Store,
    crawl_id: i64,
    prober: &Prober,
    cfg: &WorkerConfig,
    progress: &dyn ProgressSink,
    cancel: &CancellationToken,
) -> Result<WorkerStats, StoreError> {
    let mut stats = WorkerStats::default();
    let mut inflight: JoinSet<(Lease, DomainReport)> = JoinSet::new();
    let mut pending: Vec<(i64, DomainReport)> = Vec::new();
    let mut last_write = Instant::now();
    loop {
        // Lease as many domains as there are free slots.
        let free = cfg.concurrency.saturating_sub(inflight.len());
        if free > 0 && !cancel.is_cancelled() {
            let leased = with_db(&mut stats, progress, cancel, true, || {
                store.lease(crawl_id, &cfg.worker_id, free, cfg.lease_for)
            })
            .await;
            let leased = match leased {
                Ok(l) => l,
                Err(e) if e.is_unavailable() => Vec::new(),
                Err(e) => return Err(e),
            };
            for lease in leased {
                let p = prober.clone();
                inflight.spawn(async move {
                    let r = p.probe(&lease.domain).await;
                    (lease, r)
                });
            }
        }
        if inflight.is_empty() {
            flush(store, crawl_id, &mut pending, &mut stats, progress, cancel).await?;
            if cancel.is_cancelled() {
                stats.interrupted = true;
                return Ok(stats);
            }
            let open = with_db(&mut stats, progress, cancel, true, || {
                store.progress(crawl_id)
            })
            .await?;
            if open.queued + open.leased == 0 {
                return Ok(stats);
            }
            // Others hold leases or retries are not due yet.
            tokio::select! {
                _ = tokio::time::sleep(cfg.idle_poll) => {}
                _ = cancel.cancelled() => {}
            }
            continue;
        }
        let next = tokio::select! {
            j = inflight.join_next() => j,
            _ = tokio::time::sleep(cfg.write_interval) => None,
        };
        if let Some(joined) = next {
            let (lease, report) = match joined {
                Ok(x) => x,
                // A panicking probe is our bug: surface it, don't hide it.
                Err(e) => panic!("probe task failed: {e}"),
            };
            stats.probed += 1;
            match retry::classify(&report) {
                Disposition::Record => {
                    count_outcome(&mut stats, &report);
                    pending.push((lease.domain_id, report));
                }
                Disposition::Retry(why) if lease.attempts < cfg.max_attempts => {
                    let after =
                        retry::backoff(cfg.retry_base, lease.attempts, Duration::from_secs(3600));
                    with_db(&mut stats, progress, cancel, false, || {
                        store.retry_later(crawl_id, lease.domain_id, after, &why)
                    })
                    .await?;
                    stats.retried += 1;
                }
                Disposition::Retry(why) => {
                    let reason =
                        format!("retries exhausted after {} attempts: {why}", lease.attempts);
                    with_db(&mut stats, progress, cancel, false, || {
                        store.not_tested(crawl_id, lease.domain_id, &reason)
                    })
                    .await?;
                    stats.not_tested += 1;
                    *stats.outcomes.entry("not_tested".into()).or_default() += 1;
                }
            }
            progress.tick(&stats);
        }
        if pending.len() >= cfg.write_batch || last_write.elapsed() >= cfg.write_interval {
            flush(store, crawl_id, &mut pending, &mut stats, progress, cancel).await?;
            last_write = Instant::now();
        }
    }
}

/// Writes the pending results (waiting for the database if it is gone).
async fn flush(
    store: &Store,
    crawl_id: i64,
    pending: &mut Vec<(i64, DomainReport)>,
    stats: &mut WorkerStats,
    progress: &dyn ProgressSink,
    cancel: &CancellationToken,
) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(pending);
    let rows = with_db(stats, progress, cancel, false, || {
        store.record(crawl_id, &batch)
    })
    .await?;
    stats.rows += rows as u64;
    stats.recorded += batch.len() as u64;
    Ok(())
}
