//! `serve`: the web server (`crate::web`) on one address, with a writer
//! pool (live probes, opt-out requests), a read-only pool (everything
//! else), and the prober of `probe` for "test now"; and `optout`, the
//! operator's decisions on opt-out requests.

use super::{AppError, NetConfig, RunConfig, Setup, setup};
use crate::web::live::{Live, LiveLimits};
use crate::web::{self, AppState};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What `serve` runs.
pub struct ServeRun {
    /// Where to listen.
    pub bind: SocketAddr,
    /// PostgreSQL URL.
    pub database_url: String,
    /// Where the reports are (`reports/`).
    pub reports_dir: PathBuf,
    /// The public base URL (default `http://BIND`).
    pub public_url: Option<String>,
    /// Connections of the read-only pool.
    pub read_connections: u32,
    /// Live probes: targets, trust, identity, address policy.
    pub net: NetConfig,
    /// Live probe limits.
    pub live: LiveLimits,
    /// The advice file behind the findings.
    pub knowledge: crate::lookup::Knowledge,
    /// No live probes at all.
    pub no_live: bool,
}

/// Why `serve` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database or the prober could not be set up.
    #[error(transparent)]
    App(#[from] AppError),
    /// The address could not be bound.
    #[error("cannot listen on {bind}")]
    Bind {
        /// The address.
        bind: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped on an error.
    #[error("the web server failed")]
    Serve(#[source] std::io::Error),
}

/// `serve`: checks the database, builds the prober (live probes are
/// switched off with a warning when it cannot be built), binds, serves
/// until Ctrl-C.
pub async fn serve(a: ServeRun) -> Result<(), ServeError> {
    let store = super::crawl::open_store(&a.database_url).await?;
    let options =
        <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&a.database_url)
            .map_err(|source| {
                AppError::Store(crate::store::StoreError::Config {
                    url: crate::store::redact_url(&a.database_url),
                    source,
                })
            })?;
    let reader = web::data::reader_pool(options, a.read_connections);
    // Live probes a stopped server left queued or running never finish:
    // close them (only those older than any probe can run, so another
    // serve process on the same database keeps its own).
    let stale = web::live::close_stale(store.pool(), a.live.probe_timeout)
        .await
        .map_err(|e| {
            AppError::Store(crate::store::StoreError::from_sqlx(
                &crate::store::redact_url(&a.database_url),
                e,
            ))
        })?;
    if stale > 0 {
        eprintln!("closed {stale} live probe(s) left unfinished by a previous run");
    }
    let mut listener_handle = None;
    let live = if a.no_live {
        Live::unavailable("switched off (--no-live)")
    } else {
        let run = RunConfig {
            politeness: Some(super::config::default_politeness()),
            ..RunConfig::probe(a.net.clone(), a.live.max_in_flight.max(1))
        };
        match setup(&run).await {
            Ok(Setup {
                prober, listener, ..
            }) => {
                listener_handle = listener;
                Live::new(prober, a.live)
            }
            Err(e) => {
                let why = super::error_chain(&e);
                eprintln!("warning: live probes are off: {why}");
                Live::unavailable(why)
            }
        }
    };
    let tcp = tokio::net::TcpListener::bind(a.bind)
        .await
        .map_err(|source| ServeError::Bind {
            bind: a.bind,
            source,
        })?;
    let local = tcp.local_addr().map_err(ServeError::Serve)?;
    let base = a.public_url.unwrap_or_else(|| format!("http://{local}"));
    let state = AppState::new(
        reader,
        store.pool().clone(),
        base.clone(),
        a.reports_dir,
        live,
        a.knowledge,
    );
    let app = web::router(state);
    println!("serving on {base} (listening on {local})");
    axum::serve(tcp, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(ServeError::Serve)?;
    if let Some(l) = listener_handle {
        l.shutdown().await;
    }
    Ok(())
}
