//! `crawl` and `worker`: open the store, create (or find) the crawl, run
//! this process's worker on it and print what it did.

use super::{AppError, NetConfig, RunConfig, Setup, WorkConfig, error_chain, setup};
use crate::crawl::config::{CrawlConfig, SOFTWARE_VERSION, Settings};
use crate::crawl::resources::Monitor;
use crate::crawl::{self as engine, WorkerConfig, iso_week_label, run_worker_watched};
use crate::sources::{self, SourceSpec};
use crate::store::migrate::BINARY_VERSION;
use crate::store::{Crawl, CrawlMeta, CrawlStatus, Store};
use std::path::PathBuf;
use std::sync::Arc;

/// What `crawl` runs.
#[derive(Debug, Clone)]
pub struct CrawlRun {
    /// The `--source` arguments as given (recorded with the crawl).
    pub sources: Vec<String>,
    /// The crawl's label; `None`: this ISO week's.
    pub label: Option<String>,
    /// Opt-out files (added to the database's list).
    pub opt_out: Vec<PathBuf>,
    /// Where this crawl runs from.
    pub vantage: String,
    /// PostgreSQL URL.
    pub database_url: String,
    /// How the worker works.
    pub work: WorkConfig,
    /// Targets, trust, identity, limits.
    pub net: NetConfig,
}

/// What `worker` runs.
#[derive(Debug, Clone)]
pub struct WorkerRun {
    /// The label of the crawl to join, or `auto`: this ISO week's
    /// ([`AUTO_LABEL`]).
    pub crawl: String,
    /// PostgreSQL URL.
    pub database_url: String,
    /// How the worker works.
    pub work: WorkConfig,
    /// Targets, trust, identity, limits.
    pub net: NetConfig,
}

/// Connects to the database; refuses one whose schema is not the binary's.
pub async fn open_store(url: &str) -> Result<Store, AppError> {
    let store = Store::connect(url).await?;
    match store.schema_version().await? {
        Some(v) if v == BINARY_VERSION => Ok(store),
        Some(found) => Err(AppError::SchemaVersion {
            found,
            needed: BINARY_VERSION,
        }),
        None => Err(AppError::NoSchema),
    }
}

/// `crawls.config`: every setting that can change a result (see
/// [`CrawlConfig`]).
pub fn crawl_config(
    setup: &Setup,
    work: &WorkConfig,
    net: &NetConfig,
) -> Result<CrawlConfig, AppError> {
    let worker = work.worker_for(&setup.budget);
    Ok(CrawlConfig::new(&Settings {
        policy: setup.policy,
        extra_ca: &setup.extra_ca,
        resolver: net.resolver,
        limits: setup.limits,
        politeness: work.politeness,
        worker: &worker,
        identity: setup.identity.as_deref(),
        bound: setup.listener.as_ref().map(|l| l.local_addr()),
        roots_version: crate::tls::verify::roots_version(),
        budget: Some(setup.budget),
    })?)
}

/// `crawl`: loads the sources, creates or resumes the crawl and works on
/// it. Everything that can fail is checked before the crawl exists.
pub async fn crawl(a: CrawlRun) -> Result<(), AppError> {
    let store = open_store(&a.database_url).await?;
    run_crawl(&store, &a, None).await.map(|_| ())
}

/// What [`run_crawl`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrawlOutcome {
    /// The crawl (with whether its label existed before).
    pub crawl: Crawl,
    /// `Finished`, or `Interrupted` (Ctrl-C, or domains left to others).
    pub status: CrawlStatus,
    /// Domains the sources gave.
    pub domains: usize,
}

/// [`crawl`] on an open store, with `fallback` for providers URLs that
/// cannot be fetched (`survey`).
pub async fn run_crawl(
    store: &Store,
    a: &CrawlRun,
    fallback: Option<&sources::ProvidersFallback>,
) -> Result<CrawlOutcome, AppError> {
    let specs = a
        .sources
        .iter()
        .map(|s| s.parse::<SourceSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut opt_out = store.opt_outs().await?;
    for f in &a.opt_out {
        opt_out.extend(sources::load_opt_out_file(f)?);
    }
    // A crawl that cannot start is never left `running`.
    let setup = setup(&RunConfig::crawl(a.net.clone(), &a.work)).await?;
    let config = crawl_config(&setup, &a.work, &a.net)?;
    let known = if specs.iter().any(|s| matches!(s, SourceSpec::Database)) {
        Some(store.known_domains().await?)
    } else {
        None
    };
    let loaded = sources::load_with_fallback(
        &specs,
        known,
        &super::probe::http_client()?,
        &opt_out,
        fallback,
    )
    .await;
    report_loaded(&loaded);
    if loaded.domains.is_empty() {
        return Err(AppError::NothingToCrawl);
    }
    let label = a
        .label
        .clone()
        .unwrap_or_else(|| iso_week_label(time::OffsetDateTime::now_utc()));
    let meta = CrawlMeta {
        label,
        sources: serde_json::json!(a.sources),
        vantage: a.vantage.clone(),
        probe_domain: setup.identity.as_ref().map(|i| i.domain.clone()),
        software_version: SOFTWARE_VERSION.to_string(),
        roots_version: crate::tls::verify::roots_version(),
        config: config.to_json(),
    };
    let crawl = store.create_or_resume_crawl(&meta).await?;
    let domains = loaded.domains.len();
    let run = async {
        let added = store.enqueue(crawl.id, &loaded.domains).await?;
        eprintln!(
            "crawl {} {}: {domains} domain(s) from the sources, {added} newly queued",
            crawl.label,
            if crawl.resumed { "resumed" } else { "created" },
        );
        // The names are in the queue now: a crawl of a million domains
        // must not hold them all while it probes (issue 13 step 10).
        drop(loaded);
        work(store, &crawl, &a.work, setup).await
    };
    let result = run.await;
    if let Err(e) = &result {
        mark_failed(store, &crawl, e).await;
    }
    Ok(CrawlOutcome {
        crawl,
        status: result?,
        domains,
    })
}

/// Prints what loading the sources found besides domains (stderr).
pub fn report_loaded(loaded: &sources::Loaded) {
    for p in &loaded.problems {
        eprintln!("warning: {p}");
    }
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    for (source, n) in &loaded.per_source {
        eprintln!("source {source}: {n} domain(s)");
    }
    if !loaded.opted_out.is_empty() {
        eprintln!("{} domain(s) opted out, not probed", loaded.opted_out.len());
    }
    if !loaded.no_consent.is_empty() {
        eprintln!(
            "{} provider(s) without serverTesting consent, not probed",
            loaded.no_consent.len()
        );
    }
}

/// Records why a started crawl stopped, so it is not left `running`. A
/// database too broken to take that is reported, not allowed to hide the
/// error that stopped the crawl.
async fn mark_failed(store: &Store, crawl: &Crawl, error: &AppError) {
    if let Err(e) = store.fail_crawl(crawl.id, &error_chain(error)).await {
        eprintln!("warning: cannot mark crawl {} failed: {e}", crawl.label);
    }
}

/// `worker --crawl auto` (and `status --crawl auto`): this ISO week's crawl.
pub const AUTO_LABEL: &str = "auto";

/// The crawl `worker --crawl LABEL|auto` joins: it must exist and be
/// running (a finished crawl has nothing left; an interrupted one is
/// resumed by `crawl`/`survey`, which re-read its sources).
pub async fn crawl_to_join(
    store: &Store,
    label: &str,
    now: time::OffsetDateTime,
) -> Result<Crawl, AppError> {
    let (label, auto) = if label == AUTO_LABEL {
        (iso_week_label(now), true)
    } else {
        (label.to_string(), false)
    };
    let Some(row) = store.crawl_row(&label).await? else {
        return Err(if auto {
            AppError::NoWeeklyCrawl(label)
        } else {
            AppError::NoCrawl(label)
        });
    };
    if row.status != CrawlStatus::Running.as_str() {
        return Err(AppError::CrawlNotRunning {
            label,
            status: row.status,
        });
    }
    store
        .find_crawl(&label)
        .await?
        .ok_or(AppError::NoCrawl(label))
}

/// `worker`: joins an existing crawl (`--crawl auto`: this ISO week's).
pub async fn worker(a: WorkerRun) -> Result<(), AppError> {
    let store = open_store(&a.database_url).await?;
    let crawl = crawl_to_join(&store, &a.crawl, time::OffsetDateTime::now_utc()).await?;
    let setup = setup(&RunConfig::crawl(a.net.clone(), &a.work)).await?;
    if let Some(id) = &setup.identity
        && !id.shared_secret
    {
        eprintln!(
            "warning: [identity] dialback_secret_file is not set: this worker's dialback keys come from a random secret of its own, so the probe domain's listener on another host cannot confirm them (set the same dialback_secret_file on every worker; docs/operating.md, several hosts)"
        );
    }
    eprintln!("worker joins crawl {}", crawl.label);
    work(&store, &crawl, &a.work, setup).await.map(|_| ())
}

/// This process in the crawl's `workers` table: registered, heartbeat
/// every [`engine::status::HEARTBEAT_INTERVAL`] (it does not extend
/// leases: a lease is only ever as long as `--lease`), stopped at the end.
struct Registration {
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Registration {
    async fn start(
        store: &Store,
        crawl: &Crawl,
        worker_id: &str,
        listen: Option<std::net::SocketAddr>,
    ) -> Result<Self, AppError> {
        let interval = engine::status::HEARTBEAT_INTERVAL;
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        store
            .register_worker(
                crawl,
                &crate::store::WorkerInfo {
                    worker_id: worker_id.to_string(),
                    host,
                    pid: std::process::id(),
                    listen: listen.map(|l| l.to_string()),
                    interval,
                },
            )
            .await?;
        let (store, id, me) = (store.clone(), crawl.id, worker_id.to_string());
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store.heartbeat(id, &me).await {
                    tracing::warn!(error = %e, "heartbeat not written");
                }
            }
        });
        Ok(Self { heartbeat })
    }

    async fn stop(self, store: &Store, crawl: &Crawl, worker_id: &str) {
        self.heartbeat.abort();
        if let Err(e) = store.stop_worker(crawl.id, worker_id).await {
            eprintln!("warning: cannot mark worker {worker_id} stopped: {e}");
        }
    }
}

/// Runs this process's worker on a crawl with Ctrl-C handling and
/// prints the crawl summary; returns whether the crawl is finished.
pub async fn work(
    store: &Store,
    crawl: &Crawl,
    w: &WorkConfig,
    setup: Setup,
) -> Result<CrawlStatus, AppError> {
    let Setup {
        prober,
        listener,
        budget,
        ..
    } = setup;
    let cfg = w.worker_for(&budget);
    let registration = Registration::start(
        store,
        crawl,
        &cfg.worker_id,
        listener.as_ref().map(|l| l.local_addr()),
    )
    .await?;
    let relay = match &listener {
        Some(l) => Some(engine::relay::start(store, crawl.id, &cfg.worker_id, l.clone()).await?),
        None => None,
    };
    let monitor = Arc::new(Monitor::start(listener.clone(), budget));
    let result = work_with(store, crawl, &cfg, &prober, &monitor).await;
    if let Some(r) = relay {
        r.shutdown().await;
    }
    registration.stop(store, crawl, &cfg.worker_id).await;
    if let Some(l) = listener {
        l.shutdown().await;
    }
    // Whatever happened, the crawl's row gets this process's counters.
    let used = monitor.warn_now();
    let json = serde_json::to_value(used).unwrap_or(serde_json::Value::Null);
    if let Err(e) = store
        .record_listener_stats(crawl.id, &cfg.worker_id, &json)
        .await
    {
        eprintln!("warning: cannot record the listener's counters: {e}");
    }
    if result.is_ok() {
        print!("{}", used.render());
    }
    result
}

/// [`work`] after the set-up: runs the worker, prints its summary.
async fn work_with(
    store: &Store,
    crawl: &Crawl,
    cfg: &WorkerConfig,
    prober: &crate::probe::Prober,
    monitor: &Arc<Monitor>,
) -> Result<CrawlStatus, AppError> {
    let before = store.progress(crawl.id).await?;
    let total = before.total();
    let m = monitor.clone();
    let extra: engine::progress::Extra = Arc::new(move || m.compact());
    let progress: Arc<dyn engine::ProgressSink> = Arc::from(engine::progress::for_stderr(
        total,
        total - before.queued - before.leased,
        Some(extra),
    ));
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nCtrl-C: finishing the probes in flight; the rest stays queued");
            c.cancel();
        }
    });
    let started = std::time::Instant::now();
    let refusals = monitor.refusal_count();
    let stats = run_worker_watched(
        store,
        crawl.id,
        prober,
        cfg,
        progress.clone(),
        &cancel,
        refusals,
    )
    .await?;
    drop(progress);
    let secs = started.elapsed().as_secs_f64();
    let after = store.progress(crawl.id).await?;
    let status = if stats.interrupted || after.queued + after.leased > 0 {
        CrawlStatus::Interrupted
    } else {
        CrawlStatus::Finished
    };
    if status == CrawlStatus::Finished {
        store.finish_crawl(crawl.id, status).await?;
    }
    println!(
        "worker {}: {} probed in {secs:.1}s ({:.1}/s), {} recorded ({} new), {} retried, {} not tested{}",
        cfg.worker_id,
        stats.probed,
        stats.probed as f64 / secs.max(0.001),
        stats.recorded,
        stats.rows,
        stats.retried,
        stats.not_tested,
        if stats.db_waits > 0 {
            format!(", waited {} time(s) for the database", stats.db_waits)
        } else {
            String::new()
        }
    );
    let dns = prober.resolver().cache_stats();
    println!(
        "dns: {} questions about shared names asked, {} answered from the run's cache, {} joined one in flight",
        dns.asked, dns.hits, dns.joined
    );
    let summary = store.summary(crawl.id).await?;
    print!(
        "{}",
        engine::summary::render(&crawl.label, &after, &summary)
    );
    if status == CrawlStatus::Interrupted {
        println!(
            "crawl {} not finished ({} queued, {} leased); resume with:\n  xmpp-survey crawl --label {} --source ... (same sources), or\n  xmpp-survey worker --crawl {}",
            crawl.label, after.queued, after.leased, crawl.label, crawl.label
        );
    }
    Ok(status)
}
