//! The application: what a subcommand does between its parsed flags and its
//! exit status. `main.rs` only defines the flags, maps each flag group into
//! one of the config structs of [`config`] and prints errors; everything
//! else (validating, assembling the prober, listener, budget and store,
//! loading domains, running and reporting) is here, with typed errors.
//!
//! - [`config`]: the run's configuration ([`RunConfig`], [`NetConfig`],
//!   [`WorkConfig`]) with every default from one library constant, and the
//!   duration syntax of the flags.
//! - [`file`]: the TOML config file (`--config`), one section per flag
//!   group; flags override it.
//! - [`setup`]: [`setup::setup`] builds and checks every component of a run
//!   ([`Setup`]) before anything is probed or recorded.
//! - [`probe`]: `probe`: domains from arguments and sources, printed.
//! - [`crawl`]: `crawl` and `worker`: the store, the crawl, the worker.
//! - [`serve`]: `serve`: the web server ([`crate::web`]) and `optout`.
//! - [`survey`]: `survey`: the weekly crawl and report in one command.
//! - [`check`]: `config check`: the config file and what it names.
//! - [`lookup`]: `lookup`: one domain's findings, stored or live.
//! - [`status`]: `status`: a crawl's progress and its workers.

pub mod check;
pub mod config;
pub mod crawl;
pub mod file;
pub mod lookup;
pub mod probe;
pub mod serve;
pub mod setup;
pub mod status;
pub mod survey;

pub use config::{NetConfig, RunConfig, WorkConfig};
pub use setup::{Setup, setup};

use crate::budget::BudgetError;
use crate::crawl::config::ConfigError;
use crate::dns::resolve::DnsSetupError;
use crate::identity::IdentityError;
use crate::listener::ListenerError;
use crate::sources::{SourceError, SourceProblem};
use crate::store::StoreError;
use crate::tls::verify::TlsSetupError;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a subcommand could not run (or stopped). Each names its culprit:
/// the file, resolver, listen address or database.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// An `--extra-ca` file (or the TLS set-up with it) is unusable.
    #[error(transparent)]
    ExtraCa(#[from] TlsSetupError),
    /// The TLS client could not be built.
    #[error("cannot set up TLS")]
    Tls(#[source] TlsSetupError),
    /// The config file is unreadable, not TOML, or has an unknown key or a
    /// wrong type.
    #[error(transparent)]
    ConfigFile(#[from] file::ConfigFileError),
    /// The probe identity (config file, certificates, keys) is unusable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The open-file limit could not be read or raised.
    #[error(transparent)]
    Nofile(BudgetError),
    /// Not even a minimal run fits in the open-file limit.
    #[error("{error} (soft limit {soft}, hard limit {hard})")]
    Budget {
        /// Why it does not fit (its message is this error's).
        error: BudgetError,
        /// The soft limit in force.
        soft: u64,
        /// The hard limit.
        hard: u64,
    },
    /// The resolver could not be built.
    #[error("cannot set up the DNS resolver")]
    ResolverSetup(#[source] DnsSetupError),
    /// The resolver does not answer.
    #[error(transparent)]
    Resolver(DnsSetupError),
    /// The dialback listener could not start.
    #[error("cannot start the dialback listener on {listen}")]
    Listener {
        /// The configured listen address.
        listen: SocketAddr,
        /// Why.
        #[source]
        source: ListenerError,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database's schema is not this binary's.
    #[error(
        "database schema is version {found}, this binary needs {needed}: run `xmpp-survey db migrate`"
    )]
    SchemaVersion {
        /// The database's version.
        found: i32,
        /// The binary's.
        needed: i32,
    },
    /// The database has no schema at all.
    #[error("the database has no xmpp-survey schema: run `xmpp-survey db migrate` first")]
    NoSchema,
    /// No crawl has this label.
    #[error("no crawl labelled {0:?} in the database")]
    NoCrawl(String),
    /// `--crawl auto`: this ISO week's crawl has not been created.
    #[error(
        "no crawl labelled {0:?} (this ISO week's, --crawl auto) in the database: start it with `xmpp-survey survey` or `xmpp-survey crawl` first"
    )]
    NoWeeklyCrawl(String),
    /// The crawl to join is not running.
    #[error(
        "crawl {label:?} is {status}, not running: nothing to join (resume it with `xmpp-survey crawl --label {label}` or `survey`)"
    )]
    CrawlNotRunning {
        /// Its label.
        label: String,
        /// `crawls.status`.
        status: String,
    },
    /// A source argument or the opt-out list is unusable.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A domain source `probe` was given could not be used at all.
    #[error("cannot use domain list: {0}")]
    SourceFailed(SourceProblem),
    /// `probe` was given invalid domains (without `--skip-invalid`).
    #[error(
        "invalid domain(s), nothing probed (use --skip-invalid to probe the rest):\n  {}",
        .0.join("\n  ")
    )]
    InvalidDomains(Vec<String>),
    /// `probe` has nothing to probe.
    #[error("no domains to probe: give DOMAIN or SOURCE arguments or --file")]
    NoDomains,
    /// Nothing valid in a crawl's sources.
    #[error("no valid domains in the sources: nothing to crawl")]
    NothingToCrawl,
    /// The HTTP client for providers lists could not be built.
    #[error("cannot build the HTTP client")]
    Http(#[source] reqwest::Error),
    /// The crawl's configuration could not be recorded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be created or written.
    #[error("cannot create {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Output could not be written.
    #[error(transparent)]
    Output(#[from] std::io::Error),
    /// A report could not be serialised.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// `lookup` was given something that is not a domain.
    #[error("invalid domain {input:?}")]
    InvalidDomain {
        /// As given.
        input: String,
        /// Why.
        #[source]
        source: crate::model::domain::DomainError,
    },
    /// The advice file is unusable.
    #[error(transparent)]
    Knowledge(#[from] crate::lookup::KnowledgeError),
    /// A stored lookup failed.
    #[error(transparent)]
    Lookup(#[from] crate::lookup::LookupError),
    /// A stored lookup needs a database.
    #[error("no database: give --database-url (or DATABASE_URL), or use --live to probe now")]
    NoDatabase,
    /// A report could not be written.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// The clock could not be formatted.
    #[error("cannot format the time: {0}")]
    Clock(String),
    /// The domain's operator opted out: it is never probed.
    #[error("{0} opted out of being probed (opt_outs): not probing it")]
    OptedOut(String),
}

/// An error and its causes, outermost first, joined by `": "` (what
/// `anyhow`'s `{:#}` prints): the text recorded as `crawls.error`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
