//! The crawl engine (issue "Crawl engine with PostgreSQL"): workers lease
//! domains from the crawl's queue in PostgreSQL, probe them politely, and
//! write each domain's result in one transaction, batched.
//!
//! Safety of the data: a result row is keyed by (crawl, domain), so a
//! re-probed domain (lease expired, crawler killed) can never produce a
//! second result; a crash loses at most the in-flight probes, whose leases
//! expire and are taken again. When the database goes away the worker
//! keeps its finished results in memory and waits for it to return.

pub mod config;
pub mod progress;
pub mod relay;
pub mod resources;
pub mod retry;
pub mod status;
pub mod summary;

use crate::model::report::DomainReport;
use crate::probe::Prober;
use crate::store::{Lease, Store, StoreError};
use retry::Disposition;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Longest delay before a retry, however many attempts came before.
pub const RETRY_CAP: Duration = Duration::from_secs(3600);

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
    /// Domains leased per round trip (at most `concurrency`).
    pub lease_chunk: usize,
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
            write_batch: 128,
            write_interval: Duration::from_millis(500),
            lease_chunk: 32,
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
/// database is unavailable (or until `cancel` when `give_up_on_cancel`).
async fn with_db<T, F, Fut>(
    db_waits: &mut u64,
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
                *db_waits += 1;
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
    let key = crate::model::names::label(r.summary.s2s.status);
    *stats.outcomes.entry(key).or_default() += 1;
}

/// What the writer task is asked to do.
enum Write {
    /// Store this domain's result (batched).
    Result(i64, Box<DomainReport>),
    /// Write everything pending now and say so.
    Flush(oneshot::Sender<()>),
}

/// What the writer task did.
#[derive(Default)]
struct Written {
    recorded: u64,
    rows: u64,
    db_waits: u64,
    /// Results the database refused as data, kept `not_tested`.
    unstorable: u64,
}

/// Batch writes in flight at once: each domain is one transaction of a
/// few round trips, so one writer caps a crawl at ~100 domains/s (measured);
/// four use half the store's pool and scale with PostgreSQL.
pub const WRITERS: usize = 4;

/// Writes one batch, waiting out a lost database; returns what it did.
async fn write_batch(
    store: Store,
    crawl_id: i64,
    batch: Vec<(i64, DomainReport)>,
    progress: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> Result<Written, StoreError> {
    let mut w = Written::default();
    let whole = with_db(&mut w.db_waits, progress.as_ref(), &cancel, false, || {
        store.record(crawl_id, &batch)
    })
    .await;
    match whole {
        Ok(rows) => {
            w.rows = rows as u64;
            w.recorded = batch.len() as u64;
            Ok(w)
        }
        // One domain's unstorable result must not cost the others theirs:
        // write them one by one; an unstorable one ends `not_tested` with
        // the store's words, and the crawl goes on.
        Err(e) if e.is_unstorable_data() => {
            tracing::warn!(error = %e, domains = batch.len(), "batch refused; writing its results one by one");
            for one in batch.chunks(1) {
                let (domain_id, report) = &one[0];
                let alone = with_db(&mut w.db_waits, progress.as_ref(), &cancel, false, || {
                    store.record(crawl_id, one)
                })
                .await;
                match alone {
                    Ok(rows) => {
                        w.rows += rows as u64;
                        w.recorded += 1;
                    }
                    Err(e) if e.is_unstorable_data() => {
                        let reason = format!("result could not be stored: {e}");
                        tracing::warn!(domain = %report.domain, "{reason}");
                        with_db(&mut w.db_waits, progress.as_ref(), &cancel, false, || {
                            store.not_tested(crawl_id, *domain_id, &reason)
                        })
                        .await?;
                        w.unstorable += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(w)
        }
        Err(e) => Err(e),
    }
}

/// The writer task: batches results and writes up to [`WRITERS`] batches
/// at once while the worker keeps probing (writes never stall leasing or
/// probing), waiting out a lost database with the batches kept in memory.
async fn writer(
    store: Store,
    crawl_id: i64,
    cfg: WorkerConfig,
    progress: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
    mut rx: mpsc::Receiver<Write>,
) -> Result<Written, StoreError> {
    let mut done = Written::default();
    let mut batch: Vec<(i64, DomainReport)> = Vec::new();
    let mut writing: JoinSet<Result<Written, StoreError>> = JoinSet::new();
    let merge = |done: &mut Written,
                 r: Option<Result<Result<Written, StoreError>, tokio::task::JoinError>>|
     -> Result<(), StoreError> {
        match r {
            Some(Ok(Ok(w))) => {
                done.recorded += w.recorded;
                done.rows += w.rows;
                done.db_waits += w.db_waits;
                done.unstorable += w.unstorable;
                Ok(())
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => panic!("write task failed: {e}"),
            None => Ok(()),
        }
    };
    loop {
        let msg = tokio::time::timeout(cfg.write_interval, rx.recv()).await;
        let closed = matches!(msg, Ok(None));
        let timed_out = msg.is_err();
        let mut ack = None;
        match msg {
            Ok(Some(Write::Result(id, r))) => batch.push((id, *r)),
            Ok(Some(Write::Flush(a))) => ack = Some(a),
            Ok(None) | Err(_) => {}
        }
        let due = batch.len() >= cfg.write_batch || ack.is_some() || closed || timed_out;
        if due && !batch.is_empty() {
            while writing.len() >= WRITERS {
                merge(&mut done, writing.join_next().await)?;
            }
            writing.spawn(write_batch(
                store.clone(),
                crawl_id,
                std::mem::take(&mut batch),
                progress.clone(),
                cancel.clone(),
            ));
        }
        if ack.is_some() || closed {
            while !writing.is_empty() {
                merge(&mut done, writing.join_next().await)?;
            }
        }
        if let Some(a) = ack {
            let _ = a.send(());
        }
        if closed {
            return Ok(done);
        }
    }
}

/// Writes finished reports through the crawl's own write path (the
/// writer task: batches of `cfg.write_batch`, [`WRITERS`] at once) and
/// returns (results written, results new to the database). The
/// benchmark's measure of the writer alone (`testnet write-bench`): the
/// crawl needs it to keep up with probing with room to spare.
pub async fn write_all(
    store: &Store,
    crawl_id: i64,
    reports: Vec<(i64, DomainReport)>,
    cfg: &WorkerConfig,
) -> Result<(u64, u64), StoreError> {
    struct Quiet;
    impl ProgressSink for Quiet {
        fn tick(&self, _: &WorkerStats) {}
        fn waiting_for_db(&self, _: &str) {}
    }
    let (tx, rx) = mpsc::channel::<Write>(cfg.write_batch.max(1) * 2);
    let task = tokio::spawn(writer(
        store.clone(),
        crawl_id,
        cfg.clone(),
        Arc::new(Quiet),
        CancellationToken::new(),
        rx,
    ));
    for (id, r) in reports {
        if tx.send(Write::Result(id, Box::new(r))).await.is_err() {
            break;
        }
    }
    drop(tx);
    let w = task
        .await
        .unwrap_or_else(|e| panic!("writer task failed: {e}"))?;
    Ok((w.recorded, w.rows))
}

/// How long after an acceptance probe the listener's refusals still count
/// against it (the target's connection back can arrive after our side is
/// done).
pub const REFUSAL_GRACE: Duration = Duration::from_secs(1);

/// Counts the dialback listener's refusals at its caps (stream slots,
/// per-address, per-prefix) and its accept errors: see
/// [`run_worker_watched`].
pub type RefusalCount = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Runs one worker on a crawl until the queue is empty or `cancel` fires.
/// Ctrl-C (cancel) stops leasing, lets in-flight probes finish and writes
/// their results; the rest stays queued for the next run.
pub async fn run_worker(
    store: &Store,
    crawl_id: i64,
    prober: &Prober,
    cfg: &WorkerConfig,
    progress: Arc<dyn ProgressSink>,
    cancel: &CancellationToken,
) -> Result<WorkerStats, StoreError> {
    run_worker_watched(store, crawl_id, prober, cfg, progress, cancel, None).await
}

/// [`run_worker`], also retrying every acceptance result during whose
/// probe the listener refused a connection at one of its caps (`refusals`
/// grew): the refused connection may have been the target's `db:verify`
/// or its stream to the probe domain, and a verdict must not depend on
/// our listener's load.
pub async fn run_worker_watched(
    store: &Store,
    crawl_id: i64,
    prober: &Prober,
    cfg: &WorkerConfig,
    progress: Arc<dyn ProgressSink>,
    cancel: &CancellationToken,
    refusals: Option<RefusalCount>,
) -> Result<WorkerStats, StoreError> {
    let mut stats = WorkerStats::default();
    let mut inflight: JoinSet<(Lease, DomainReport, u64)> = JoinSet::new();
    // Room for two batches ahead of the writer: enough to keep it busy,
    // little enough to bound memory (reports are tens of KiB each).
    let (tx, rx) = mpsc::channel::<Write>(cfg.write_batch.max(1) * 2);
    let writer = tokio::spawn(writer(
        store.clone(),
        crawl_id,
        cfg.clone(),
        progress.clone(),
        cancel.clone(),
        rx,
    ));
    // Lease in chunks: one round trip per chunk, not per finished probe.
    let chunk = cfg.lease_chunk.clamp(1, cfg.concurrency.max(1));
    let result = loop {
        let free = cfg.concurrency.saturating_sub(inflight.len());
        if !cancel.is_cancelled() && (free >= chunk || (free > 0 && inflight.is_empty())) {
            let leased = with_db(&mut stats.db_waits, progress.as_ref(), cancel, true, || {
                store.lease(crawl_id, &cfg.worker_id, free, cfg.lease_for)
            })
            .await;
            let leased = match leased {
                Ok(l) => l,
                Err(e) if e.is_unavailable() => Vec::new(),
                Err(e) => break Err(e),
            };
            for lease in leased {
                let p = prober.clone();
                let count = refusals.clone();
                inflight.spawn(async move {
                    let before = count.as_ref().map_or(0, |c| c());
                    let r = p.probe(&lease.domain).await;
                    if count.is_some() && r.acceptance.is_some() {
                        // A target's connection back may still be on its
                        // way when our side of the probe is done.
                        tokio::time::sleep(REFUSAL_GRACE).await;
                    }
                    let refused = count.as_ref().map_or(0, |c| c()).saturating_sub(before);
                    (lease, r, refused)
                });
            }
        }
        if inflight.is_empty() {
            // Everything of ours is written before we look at the queue.
            let (ack, acked) = oneshot::channel();
            if tx.send(Write::Flush(ack)).await.is_err() || acked.await.is_err() {
                break Ok(());
            }
            if cancel.is_cancelled() {
                stats.interrupted = true;
                break Ok(());
            }
            let open = match with_db(&mut stats.db_waits, progress.as_ref(), cancel, true, || {
                store.progress(crawl_id)
            })
            .await
            {
                Ok(o) => o,
                Err(e) => break Err(e),
            };
            if open.queued + open.leased == 0 {
                break Ok(());
            }
            // Others hold leases or retries are not due yet.
            tokio::select! {
                _ = tokio::time::sleep(cfg.idle_poll) => {}
                _ = cancel.cancelled() => {}
            }
            continue;
        }
        let Some(joined) = inflight.join_next().await else {
            continue;
        };
        let (lease, report, refused) = match joined {
            Ok(x) => x,
            // A panicking probe is our bug: surface it, don't hide it.
            Err(e) => panic!("probe task failed: {e}"),
        };
        stats.probed += 1;
        let disposition = match retry::classify(&report) {
            Disposition::Record if refused > 0 && report.acceptance.is_some() => {
                Disposition::Retry(format!(
                    "the dialback listener refused {refused} connection(s) at its caps while this domain was probed (local resource limit, not the target's)"
                ))
            }
            d => d,
        };
        let outcome = match disposition {
            Disposition::Record => {
                count_outcome(&mut stats, &report);
                tx.send(Write::Result(lease.domain_id, Box::new(report)))
                    .await
                    .map_err(|_| ())
            }
            Disposition::Retry(why) if lease.attempts < cfg.max_attempts => {
                let after = retry::backoff(cfg.retry_base, lease.attempts, RETRY_CAP);
                stats.retried += 1;
                with_db(
                    &mut stats.db_waits,
                    progress.as_ref(),
                    cancel,
                    false,
                    || store.retry_later(crawl_id, lease.domain_id, after, &why),
                )
                .await
                .map_err(|_| ())
            }
            Disposition::Retry(why) => {
                let reason = format!("retries exhausted after {} attempts: {why}", lease.attempts);
                stats.not_tested += 1;
                *stats.outcomes.entry("not_tested".into()).or_default() += 1;
                with_db(
                    &mut stats.db_waits,
                    progress.as_ref(),
                    cancel,
                    false,
                    || store.not_tested(crawl_id, lease.domain_id, &reason),
                )
                .await
                .map_err(|_| ())
            }
        };
        if outcome.is_err() {
            break Ok(());
        }
        progress.tick(&stats);
    };
    drop(tx);
    let written = writer
        .await
        .unwrap_or_else(|e| panic!("writer task failed: {e}"))?;
    result?;
    stats.recorded = written.recorded;
    stats.rows = written.rows;
    stats.db_waits += written.db_waits;
    stats.not_tested += written.unstorable;
    if written.unstorable > 0 {
        *stats.outcomes.entry("not_tested".into()).or_default() += written.unstorable;
    }
    Ok(stats)
}
