//! `xmpp-survey`: the command-line edge. Defines the flags (each once, in
//! groups shared by the subcommands that use them), maps each group into
//! one of the library's config structs ([`xmpp_survey::app`]), runs, and
//! prints one clean error on failure. Every default is a library constant.
//!
//! ```text
//! xmpp-survey probe [--json] [--resolver IP:PORT] [--extra-ca FILE] DOMAIN|SOURCE...
//! xmpp-survey testnet up --domains N [--seed S] --manifest FILE
//! xmpp-survey survey [--config FILE] [--label auto|LABEL] [--now RFC3339]
//! xmpp-survey config check [--config FILE] [--offline]
//! xmpp-survey worker --crawl auto|LABEL [--config FILE]
//! xmpp-survey status [--crawl latest|auto|LABEL] [--json]
//! ```
//!
//! `--config FILE` (TOML, [`app::file`]) holds every flag's setting; a
//! flag overrides it, the library's defaults come last.

#[cfg(feature = "testnet")]
use anyhow::bail;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
#[cfg(feature = "testnet")]
use std::time::Duration;
use xmpp_survey::app::config::FlagDuration;
#[cfg(feature = "testnet")]
use xmpp_survey::app::config::parse_duration;
use xmpp_survey::app::crawl::{CrawlRun, WorkerRun};
use xmpp_survey::app::file::{ConfigFile, NetSection, WorkSection};
use xmpp_survey::app::probe::ProbeRun;
use xmpp_survey::app::{self, NetConfig, WorkConfig};
use xmpp_survey::crawl::WorkerConfig;
use xmpp_survey::crawl::config::SOFTWARE_VERSION;
use xmpp_survey::identity::IdentityConfig;
use xmpp_survey::limits::{self, Limits};
use xmpp_survey::store::Store;

#[derive(Parser)]
#[command(
    name = "xmpp-survey",
    version = SOFTWARE_VERSION,
    about = "Measures XMPP servers' TLS readiness (2026): mandatory STARTTLS, server-only certificates, federation acceptance."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Probe domains now and print what was measured (no database needed).
    Probe(Box<ProbeArgs>),
    /// Run the local test federation (private CA, DNS, simulated servers).
    #[command(subcommand)]
    #[cfg(feature = "testnet")]
    Testnet(TestnetCommand),
    /// Database administration (PostgreSQL).
    #[command(subcommand)]
    Db(DbCommand),
    /// Create (or resume) a crawl from sources and work on it.
    Crawl(Box<CrawlArgs>),
    /// Join an existing crawl from another process or host.
    Worker(Box<WorkerArgs>),
    /// Write a crawl's readiness report (HTML, Markdown, JSON, CSV).
    Report(ReportArgs),
    /// Serve the web pages, badge, feeds and JSON API on the crawls.
    Serve(Box<ServeArgs>),
    /// Decide on opt-out requests sent through the web pages.
    #[command(subcommand)]
    Optout(OptoutCommand),
    /// One domain for its operator: findings with advice, and history.
    Lookup(Box<LookupArgs>),
    /// The weekly run: this ISO week's crawl (created or resumed) to the
    /// end, then its report. Exit status: 0 finished, 3 resumed and
    /// finished, 4 not finished (resumable), 1 failed (why on stderr).
    Survey(Box<SurveyArgs>),
    /// The config file (docs/operating.md).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// A crawl's progress, its workers (live by heartbeat, stale, stopped)
    /// with their rates, and expired leases waiting for takeover.
    Status(StatusArgs),
}

/// `status [--crawl LABEL|auto|latest] [--json]`.
#[derive(Args)]
struct StatusArgs {
    /// The crawl: a label, `auto` (this ISO week's) or `latest`.
    #[arg(long, default_value = "latest")]
    crawl: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// PostgreSQL URL [default: the config file's `[database] url`].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Config file (for its `[database] url`).
    #[arg(long, env = "XMPP_SURVEY_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the config file and everything it names (identity files,
    /// CAs, sources, database); exit 1 naming each problem. Probes nothing.
    Check(ConfigCheckArgs),
}

/// `config check [--config FILE] [--offline]`.
#[derive(Args)]
struct ConfigCheckArgs {
    /// The config file.
    #[arg(long, env = "XMPP_SURVEY_CONFIG")]
    config: PathBuf,
    /// Overrides `[database] url`.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Do not connect to the database (its URL is still parsed).
    #[arg(long)]
    offline: bool,
}

/// `survey [--config FILE] [--label auto|LABEL] [--now RFC3339]`.
#[derive(Args)]
struct SurveyArgs {
    /// The crawl's label; `auto`: the ISO week of now, e.g. 2026-W49 (a
    /// second run in the same week resumes that crawl).
    #[arg(long, default_value = "auto")]
    label: String,
    /// The clock (RFC 3339; for tests): the week and the report's timestamp.
    #[arg(long, value_parser = parse_now)]
    now: Option<time::OffsetDateTime>,
    /// A domain source (repeatable) [default: the config file's `[sources] list`,
    /// else the live XMPP Providers list and db].
    #[arg(long = "source")]
    sources: Vec<String>,
    /// Domains never to probe (file; repeatable) [default: `[sources] opt_out`].
    #[arg(long = "opt-out")]
    opt_out: Vec<PathBuf>,
    /// Where this crawl runs from [default: `[survey] vantage`, else default].
    #[arg(long)]
    vantage: Option<String>,
    /// Reports go to DIR/<label>/ [default: `[report] out_dir`, else reports].
    #[arg(long)]
    reports_dir: Option<PathBuf>,
    /// PostgreSQL URL [default: the config file's `[database] url`].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    work: WorkArgs,
    #[command(flatten)]
    net: NetOptions,
}

fn parse_now(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (e.g. 2026-12-02T10:00:00Z): {e}"))
}

/// `lookup DOMAIN [--live] [--json]`.
#[derive(Args)]
struct LookupArgs {
    /// The XMPP domain (IDNA U-labels are accepted).
    domain: String,
    /// Probe now with the configured identity (no database needed).
    #[arg(long)]
    live: bool,
    /// Print JSON (the `/api/v1/domains/{domain}` shape) instead of text.
    #[arg(long)]
    json: bool,
    /// PostgreSQL URL: the stored results (with --live: history and opt-outs).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Advice file to use instead of the built-in seeds/advice.toml.
    #[arg(long)]
    advice: Option<PathBuf>,
    #[command(flatten)]
    net: NetOptions,
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply the schema's migrations (safe to run twice).
    Migrate(DbArgs),
    /// Drop raw JSONB evidence (results.report, endpoints.evidence,
    /// dns_records.data) of finished crawls older than --keep-raw weeks;
    /// every typed column, every report figure and each domain's newest
    /// result stay whole.
    Prune(DbPruneArgs),
}

/// `db prune --keep-raw WEEKS`.
#[derive(Args)]
struct DbPruneArgs {
    /// Weeks of raw evidence to keep [default: the config file's
    /// `[retention] keep_raw_weeks`].
    #[arg(long)]
    keep_raw: Option<u32>,
    /// Count what would go; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Domains per transaction.
    #[arg(long, default_value_t = xmpp_survey::store::DEFAULT_PRUNE_BATCH,
          value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    batch: i64,
    /// Skip the `VACUUM (ANALYZE)` of the pruned tables afterwards.
    #[arg(long)]
    no_vacuum: bool,
    /// The clock the kept window counts back from (RFC 3339; for tests).
    #[arg(long, value_parser = parse_now)]
    now: Option<time::OffsetDateTime>,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
struct DbArgs {
    /// PostgreSQL URL [default: the config file's `[database] url`].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Config file (for its `[database] url`).
    #[arg(long, env = "XMPP_SURVEY_CONFIG")]
    config: Option<PathBuf>,
}

/// How a worker works: concurrency, politeness, leases, retries
/// ([`WorkSection`]; a flag overrides the config file's `[work]` key of
/// the same name; defaults: [`WorkerConfig::default`],
/// [`app::config::default_politeness`]).
#[derive(Args, Clone)]
struct WorkArgs {
    #[arg(long, help = dflt("Probes in flight at once in this process", WorkerConfig::default().concurrency))]
    concurrency: Option<usize>,
    /// Global connection rate (connections/s over all targets) [default: none].
    #[arg(long)]
    rate: Option<NonZeroU32>,
    #[arg(long, help = dflt("Connections/s to any one target address", limits::DEFAULT_PER_IP_RATE))]
    per_ip_rate: Option<NonZeroU32>,
    #[arg(long, help = dflt("Simultaneous connections to any one target address", limits::DEFAULT_PER_IP_CONCURRENCY))]
    per_ip_concurrency: Option<NonZeroUsize>,
    /// No rate or concurrency limits at all (testnet benchmarks only).
    #[arg(long)]
    no_limits: bool,
    #[arg(long, help = dflt("How long a lease lasts before another worker may take the domain", FlagDuration(WorkerConfig::default().lease_for)))]
    lease: Option<FlagDuration>,
    #[arg(long, help = dflt("Attempts before a transiently failing domain ends `not_tested`", WorkerConfig::default().max_attempts))]
    max_attempts: Option<u32>,
    #[arg(long, help = dflt("First retry delay (doubles each attempt)", FlagDuration(WorkerConfig::default().retry_base)))]
    retry_base: Option<FlagDuration>,
    /// This worker's name in leases [default: host:pid].
    #[arg(long)]
    worker_id: Option<String>,
    #[arg(long, help = dflt("Results per write transaction", WorkerConfig::default().write_batch))]
    write_batch: Option<usize>,
}

impl WorkArgs {
    fn section(&self) -> WorkSection {
        WorkSection {
            concurrency: self.concurrency,
            rate: self.rate,
            per_ip_rate: self.per_ip_rate,
            per_ip_concurrency: self.per_ip_concurrency,
            no_limits: self.no_limits.then_some(true),
            lease: self.lease,
            max_attempts: self.max_attempts,
            retry_base: self.retry_base,
            worker_id: self.worker_id.clone(),
            write_batch: self.write_batch,
            crawl: None,
        }
    }

    /// The file's `[work]` with these flags over it.
    fn config(&self, file: &ConfigFile) -> WorkConfig {
        file.work.clone().merge(self.section()).resolve()
    }
}

#[derive(Args)]
struct CrawlArgs {
    /// A domain source (repeatable): text:FILE, csv:FILE[#column],
    /// providers:URL|FILE, db, or a path guessed by its extension
    /// [default: the config file's `[sources] list`].
    #[arg(long = "source")]
    sources: Vec<String>,
    /// Crawl label; the same label resumes (default: ISO week, e.g. 2026-W47).
    #[arg(long)]
    label: Option<String>,
    /// Domains never to probe (file, one a line; added to the table's list).
    #[arg(long = "opt-out")]
    opt_out: Vec<PathBuf>,
    /// Where this crawl runs from (recorded with the crawl) [default: default].
    #[arg(long)]
    vantage: Option<String>,
    /// PostgreSQL URL [default: the config file's `[database] url`].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    work: WorkArgs,
    #[command(flatten)]
    net: NetOptions,
}

#[derive(Args)]
struct WorkerArgs {
    /// The crawl to join: its label, or `auto` (this ISO week's, e.g.
    /// 2026-W49) [default: the config file's `[work] crawl`].
    #[arg(long)]
    crawl: Option<String>,
    /// PostgreSQL URL [default: the config file's `[database] url`].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    #[command(flatten)]
    work: WorkArgs,
    #[command(flatten)]
    net: NetOptions,
}

#[cfg(feature = "testnet")]
#[derive(Subcommand)]
enum TestnetCommand {
    /// Start the testnet, write its manifest, and serve until Ctrl-C.
    Up(TestnetArgs),
    /// Compare probe results (JSON lines) with a testnet manifest.
    Check(CheckArgs),
    /// Measure the raw TLS handshake rate against a running testnet (the
    /// benchmark's baseline).
    TlsCeiling(CeilingArgs),
    /// Attack a dialback listener the way hostile peers would (loopback
    /// only): the stress test's and `scripts/bench.sh attacks`' client, in
    /// a process of its own so that its memory is not the listener's.
    Attack(AttackArgs),
    /// Measure the database write path alone: store the reports of a
    /// finished crawl again, under a new crawl label, through the crawl's
    /// own writer (the benchmark's "DB writer keeps up" figure).
    WriteBench(WriteBenchArgs),
}

#[cfg(feature = "testnet")]
#[derive(Args)]
struct WriteBenchArgs {
    /// Reports, one JSON object per line (e.g. `SELECT report FROM results`).
    #[arg(long)]
    reports: PathBuf,
    /// Copies of every report, each under its own domain name
    /// (`wN-DOMAIN`), for more rows than one crawl gave.
    #[arg(long, default_value_t = 1)]
    copies: usize,
    /// PostgreSQL URL (a migrated benchmark database).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

#[cfg(feature = "testnet")]
#[derive(Args)]
struct AttackArgs {
    /// The attack: verify-flood, idle-hold, slow-text, big-client-chain, forged-from.
    #[arg(long, value_parser = attack_kind)]
    kind: xmpp_survey::testnet::attack::AttackKind,
    /// The listener's address (loopback).
    #[arg(long)]
    listener: SocketAddr,
    /// The probe domain (the `to` of every stream).
    #[arg(long)]
    probe_domain: String,
    /// File of domains to name as `from`, one per line.
    #[arg(long)]
    targets: PathBuf,
    /// Source addresses (loopback), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    sources: Vec<std::net::IpAddr>,
    /// Connections kept open at once.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// New connections per second, at most.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How long to attack.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    duration: Duration,
}

#[cfg(feature = "testnet")]
fn attack_kind(s: &str) -> Result<xmpp_survey::testnet::attack::AttackKind, String> {
    use xmpp_survey::testnet::attack::AttackKind;
    AttackKind::ALL
        .into_iter()
        .find(|k| xmpp_survey::facts::label(k).replace('_', "-") == s.replace('_', "-"))
        .ok_or_else(|| {
            format!("unknown attack {s:?} (verify-flood, idle-hold, slow-text, big-client-chain, forged-from)")
        })
}

#[cfg(feature = "testnet")]
#[derive(Args)]
struct CeilingArgs {
    /// The manifest written by `testnet up` (its CA is read beside it).
    #[arg(long)]
    manifest: PathBuf,
    /// How long to measure.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    duration: Duration,
    /// Handshake loops in parallel.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[cfg(feature = "testnet")]
#[derive(Args)]
struct CheckArgs {
    /// The manifest written by `testnet up`.
    #[arg(long)]
    manifest: PathBuf,
    /// Probe results, one JSON object per line (`probe --json` / `--json-out`).
    #[arg(long)]
    reports: PathBuf,
}

#[derive(Args)]
struct ProbeArgs {
    /// Domains to probe, and sources of domains: text:FILE,
    /// csv:FILE[#column], providers:URL|FILE (as `crawl --source`).
    domains: Vec<String>,
    /// Read more domains from FILE (one a line, `#` comments; `-` for stdin).
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// Print one JSON object per domain per line (schema: docs/probe-json-schema.md).
    #[arg(long)]
    json: bool,
    /// Also write the JSON lines to FILE (terminal output stays readable).
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Print only the one-line-per-domain table, not each domain's evidence.
    #[arg(long, conflicts_with = "json")]
    table: bool,
    /// Skip invalid lines in domain lists instead of refusing to start.
    #[arg(long)]
    skip_invalid: bool,
    /// Domains probed at once.
    #[arg(long, default_value_t = limits::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    #[command(flatten)]
    net: NetOptions,
}

/// How to reach targets and who we are: shared by probe, crawl, worker,
/// survey and lookup ([`NetSection`] and [`IdentityConfig`]; a flag
/// overrides the config file's key; defaults: [`Limits::default`]).
#[derive(Args, Clone)]
struct NetOptions {
    /// DNS server to ask (IP:PORT) instead of the system resolver.
    #[arg(long, env = "XMPP_SURVEY_RESOLVER")]
    resolver: Option<SocketAddr>,
    /// Also trust the CA certificates in this PEM file (repeatable).
    #[arg(long = "extra-ca")]
    extra_ca: Vec<PathBuf>,
    /// Allow probing loopback and private addresses (testnet, labs).
    #[arg(long)]
    allow_private: bool,
    #[arg(long, help = dflt("TCP connect timeout", FlagDuration(Limits::default().connect_timeout)))]
    connect_timeout: Option<FlagDuration>,
    #[arg(long, help = dflt("Timeout of each stream phase (header, features, STARTTLS, handshake)", FlagDuration(Limits::default().phase_timeout)))]
    phase_timeout: Option<FlagDuration>,
    #[arg(long, help = dflt("Timeout of each DNS question", FlagDuration(Limits::default().dns_timeout)))]
    dns_timeout: Option<FlagDuration>,
    /// Config file (TOML; docs/operating.md): every setting of these
    /// flags, the `[identity]` of the acceptance probe, the database, the
    /// sources. Flags override it.
    #[arg(long, env = "XMPP_SURVEY_CONFIG")]
    config: Option<PathBuf>,
    /// Probe identity: our domain, sent as `from` on s2s streams.
    #[arg(long)]
    probe_domain: Option<String>,
    /// Probe identity: server-only certificate chain (PEM).
    #[arg(long)]
    probe_cert: Option<PathBuf>,
    /// Probe identity: its private key (PEM).
    #[arg(long)]
    probe_key: Option<PathBuf>,
    /// Probe identity: optional client-and-server certificate chain (PEM).
    #[arg(long)]
    probe_cs_cert: Option<PathBuf>,
    /// Probe identity: its private key (PEM).
    #[arg(long)]
    probe_cs_key: Option<PathBuf>,
    /// Where the dialback listener binds (default 0.0.0.0:5269).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

impl NetOptions {
    /// The config file named by `--config` (every default without one).
    fn file(&self) -> Result<ConfigFile> {
        Ok(ConfigFile::load_or_default(self.config.as_deref())?)
    }

    /// The file's `[net]` and `[identity]` with these flags over them.
    fn config(&self, file: &ConfigFile) -> NetConfig {
        let flags = NetSection {
            resolver: self.resolver,
            extra_ca: (!self.extra_ca.is_empty()).then(|| self.extra_ca.clone()),
            allow_private: self.allow_private.then_some(true),
            connect_timeout: self.connect_timeout,
            phase_timeout: self.phase_timeout,
            dns_timeout: self.dns_timeout,
        };
        let identity = file.identity.clone().merge(IdentityConfig {
            domain: self.probe_domain.clone(),
            server_only_cert: self.probe_cert.clone(),
            server_only_key: self.probe_key.clone(),
            client_and_server_cert: self.probe_cs_cert.clone(),
            client_and_server_key: self.probe_cs_key.clone(),
            listen: self.listen,
            dialback_secret: None,
            dialback_secret_file: None,
        });
        file.net.clone().merge(flags).resolve(identity)
    }
}

/// A flag's help with the library's default, as `--help` shows defaults
/// (a flag without a value given falls back to the config file first).
fn dflt(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

/// The database URL: the flag (or `DATABASE_URL`), else the file's.
fn database_url(flag: Option<String>, file: &ConfigFile) -> Result<String> {
    flag.or_else(|| file.database.url.clone()).context(
        "no database: give --database-url, set DATABASE_URL or `[database] url` in the config file",
    )
}

#[cfg(feature = "testnet")]
#[derive(Args)]
struct TestnetArgs {
    /// Number of simulated domains.
    #[arg(long, default_value_t = 200)]
    domains: usize,
    /// Seed of the profile mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the manifest (JSON). The CA goes beside it as `.ca.pem`.
    #[arg(long)]
    manifest: PathBuf,
    /// Second octet B of the 127.B.0.0/16 block the testnet uses.
    #[arg(long, default_value_t = 20)]
    net: u8,
    /// Port of the testnet's DNS server on 127.B.0.1.
    #[arg(long, default_value_t = 5300)]
    dns_port: u16,
    /// Only these profiles (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    profiles: Vec<String>,
    /// Domains per shared host (and shared SRV target name): 8 by default;
    /// more models a few hosting providers serving many domains.
    #[arg(long, default_value_t = xmpp_survey::testnet::layout::SHARED_PER_HOST)]
    per_host: usize,
    /// Domains that would get an address of their own share one per
    /// profile (each still plays its own profile): a large testnet then
    /// fits under the open-file limit (one listening socket per host and
    /// port). For throughput and memory runs, not for the truth test.
    #[arg(long)]
    dedicated_by_profile: bool,
    /// Generation to start in (0, or 1: the profiles listed in
    /// `testnet::profile::GENERATION_1` play their successors). SIGHUP
    /// switches a running testnet to the next generation, rewrites the
    /// manifest and writes the expected change list beside it as
    /// `.changes.json`.
    #[arg(long, default_value_t = 0)]
    generation: u32,
}

/// mimalloc instead of glibc malloc: the crawl allocates and frees many
/// small buffers per connection on every runtime thread; glibc's per-thread
/// arenas cost ~10 % of the crawler's instructions and let the peak RSS
/// grow with the length of a crawl (docs/benchmarks.md, issue 13 step 7).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process (`prctl(2)`,
/// `PR_SET_THP_DISABLE`): mimalloc 2.3 asks for them on its segments
/// (`madvise(MADV_HUGEPAGE)`), and each 2 MiB page is then resident whole
/// and zeroed whole when it is touched again after mimalloc returned it.
/// Measured on a 3,000-domain crawl: 10 MB lower peak RSS, and the kernel's
/// page zeroing (3.5 % of the crawler's CPU samples) gone
/// (docs/benchmarks.md, issue 13 step 10). Best effort: a kernel without
/// the option keeps them.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

fn main() {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    xmpp_survey::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Probe(a) => probe(*a).await,
            #[cfg(feature = "testnet")]
            Command::Testnet(TestnetCommand::Up(a)) => testnet_up(a).await.map(|()| 0),
            #[cfg(feature = "testnet")]
            Command::Testnet(TestnetCommand::Check(a)) => testnet_check(&a).map(|()| 0),
            #[cfg(feature = "testnet")]
            Command::Testnet(TestnetCommand::TlsCeiling(a)) => tls_ceiling(&a).await.map(|()| 0),
            #[cfg(feature = "testnet")]
            Command::Testnet(TestnetCommand::Attack(a)) => attack(a).await.map(|()| 0),
            #[cfg(feature = "testnet")]
            Command::Testnet(TestnetCommand::WriteBench(a)) => write_bench(&a).await.map(|()| 0),
            Command::Db(DbCommand::Migrate(a)) => db_migrate(&a).await,
            Command::Db(DbCommand::Prune(a)) => db_prune(&a).await,
            Command::Crawl(a) => crawl(*a).await,
            Command::Worker(a) => worker(*a).await,
            Command::Report(a) => report(a).await,
            Command::Serve(a) => serve(*a).await,
            Command::Optout(c) => optout(c).await,
            Command::Lookup(a) => lookup(*a).await,
            Command::Survey(a) => survey(*a).await,
            Command::Config(ConfigCommand::Check(a)) => config_check(&a).await,
            Command::Status(a) => status(a).await,
        }
    });
    match result {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn probe(a: ProbeArgs) -> Result<i32> {
    let file = a.net.file()?;
    app::probe::probe(ProbeRun {
        args: a.domains,
        files: a.files,
        json: a.json,
        json_out: a.json_out,
        table: a.table,
        skip_invalid: a.skip_invalid,
        concurrency: a.concurrency,
        net: a.net.config(&file),
    })
    .await?;
    Ok(0)
}

async fn lookup(a: LookupArgs) -> Result<i32> {
    let file = a.net.file()?;
    app::lookup::lookup(app::lookup::LookupRun {
        domain: a.domain,
        live: a.live,
        json: a.json,
        database_url: a.database_url.or_else(|| file.database.url.clone()),
        advice: a.advice,
        net: a.net.config(&file),
    })
    .await?;
    Ok(0)
}

async fn crawl(a: CrawlArgs) -> Result<i32> {
    let file = a.net.file()?;
    let sources = if a.sources.is_empty() {
        file.sources.list.clone().context(
            "no sources: give --source (repeatable) or `[sources] list` in the config file",
        )?
    } else {
        a.sources
    };
    app::crawl::crawl(CrawlRun {
        sources,
        label: a.label,
        opt_out: or_file(a.opt_out, &file.sources.opt_out),
        vantage: vantage(a.vantage, &file),
        database_url: database_url(a.database_url, &file)?,
        work: a.work.config(&file),
        net: a.net.config(&file),
    })
    .await?;
    Ok(0)
}

/// The flag's list when given, else the file's.
fn or_file(flags: Vec<PathBuf>, file: &Option<Vec<PathBuf>>) -> Vec<PathBuf> {
    if flags.is_empty() {
        file.clone().unwrap_or_default()
    } else {
        flags
    }
}

fn vantage(flag: Option<String>, file: &ConfigFile) -> String {
    flag.or_else(|| file.survey.vantage.clone())
        .unwrap_or_else(|| app::file::DEFAULT_VANTAGE.to_string())
}

async fn worker(a: WorkerArgs) -> Result<i32> {
    let file = a.net.file()?;
    let crawl = a.crawl.or_else(|| file.work.crawl.clone()).context(
        "no crawl to join: give --crawl LABEL|auto or `[work] crawl` in the config file",
    )?;
    app::crawl::worker(WorkerRun {
        crawl,
        database_url: database_url(a.database_url, &file)?,
        work: a.work.config(&file),
        net: a.net.config(&file),
    })
    .await?;
    Ok(0)
}

/// `survey`: exit status 0 finished, 3 resumed and finished, 4 not
/// finished; an error (status 1) says why on stderr.
async fn survey(a: SurveyArgs) -> Result<i32> {
    use app::survey::{SurveyRun, survey};
    let file = a.net.file()?;
    let sources = if a.sources.is_empty() {
        file.source_list()
    } else {
        a.sources
    };
    let summary = survey(SurveyRun {
        label: Some(a.label),
        now: a.now.unwrap_or_else(time::OffsetDateTime::now_utc),
        database_url: database_url(a.database_url, &file)?,
        sources,
        fallback: file.sources.fallback.clone(),
        opt_out: or_file(a.opt_out, &file.sources.opt_out),
        vantage: vantage(a.vantage, &file),
        reports_dir: a
            .reports_dir
            .or_else(|| file.report.out_dir.clone())
            .unwrap_or_else(|| app::file::DEFAULT_REPORTS_DIR.into()),
        seeds: file.report.seeds.clone(),
        keep_raw_weeks: file.retention.keep_raw_weeks,
        work: a.work.config(&file),
        net: a.net.config(&file),
    })
    .await
    .context("survey failed")?;
    println!("{summary}");
    Ok(summary.outcome.exit_code())
}

/// `status`: the crawl's progress and workers.
async fn status(a: StatusArgs) -> Result<i32> {
    let file = ConfigFile::load_or_default(a.config.as_deref())?;
    app::status::status(app::status::StatusRun {
        database_url: database_url(a.database_url, &file)?,
        crawl: a.crawl,
        json: a.json,
    })
    .await?;
    Ok(0)
}

/// `config check`: each problem on stderr, exit status 1 if any.
async fn config_check(a: &ConfigCheckArgs) -> Result<i32> {
    use app::check::{CheckOptions, check};
    let problems = check(
        &a.config,
        &CheckOptions {
            database_url: a.database_url.clone(),
            offline: a.offline,
        },
    )
    .await;
    for p in &problems {
        eprintln!("problem: {p}");
    }
    if problems.is_empty() {
        println!(
            "{}: OK{}",
            a.config.display(),
            if a.offline {
                " (database not contacted: --offline)"
            } else {
                ""
            }
        );
        Ok(0)
    } else {
        eprintln!("{}: {} problem(s)", a.config.display(), problems.len());
        Ok(1)
    }
}

async fn db_migrate(a: &DbArgs) -> Result<i32> {
    let file = ConfigFile::load_or_default(a.config.as_deref())?;
    let store = Store::connect(&database_url(a.database_url.clone(), &file)?).await?;
    let applied = store.migrate().await?;
    let now = store.schema_version().await?.unwrap_or(0);
    if applied.is_empty() {
        println!("schema is up to date (version {now})");
    } else {
        println!("applied migration(s) {applied:?}; schema version {now}");
    }
    Ok(0)
}

/// `db prune`: prints what went per crawl; exit status 0.
async fn db_prune(a: &DbPruneArgs) -> Result<i32> {
    use xmpp_survey::store::PrunePlan;
    let file = ConfigFile::load_or_default(a.db.config.as_deref())?;
    let weeks = a.keep_raw.or(file.retention.keep_raw_weeks).context(
        "how many weeks of raw evidence to keep: give --keep-raw WEEKS or `[retention] keep_raw_weeks` in the config file",
    )?;
    let store = app::crawl::open_store(&database_url(a.db.database_url.clone(), &file)?).await?;
    let plan = PrunePlan {
        batch: a.batch,
        dry_run: a.dry_run,
        ..PrunePlan::keep_weeks(weeks, a.now.unwrap_or_else(time::OffsetDateTime::now_utc))
    };
    let summary = store.prune_raw(plan).await?;
    println!("{summary}");
    if !a.dry_run && !a.no_vacuum && summary.batches > 0 {
        store.vacuum_raw_tables().await?;
        println!("vacuumed results, endpoints, dns_records");
    }
    Ok(0)
}

#[cfg(feature = "testnet")]
/// Compares JSON-lines probe results with a manifest, fact by fact
/// ([`xmpp_survey::testnet::check::check_manifest`]); prints each mismatch.
fn testnet_check(a: &CheckArgs) -> Result<()> {
    use xmpp_survey::facts::parse_reports;
    use xmpp_survey::testnet::Manifest;
    use xmpp_survey::testnet::check::check_manifest;
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("cannot read manifest {}", a.manifest.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a testnet manifest", a.manifest.display()))?;
    let text = std::fs::read_to_string(&a.reports)
        .with_context(|| format!("cannot read reports {}", a.reports.display()))?;
    let reports = parse_reports(&text).map_err(|e| {
        anyhow::Error::new(e.source).context(format!(
            "{}:{}: not a probe report",
            a.reports.display(),
            e.line
        ))
    })?;
    let check = check_manifest(&manifest, &reports);
    for d in &check.differing {
        for m in &d.mismatches {
            println!(
                "MISMATCH {} [{}] {}: expected {} got {}",
                d.domain, d.profile, m.key, m.expected, m.got
            );
        }
    }
    let bad_domains = check.differing.len();
    println!(
        "checked {} domains ({} in the manifest were not probed): {} facts compared, {bad_domains} domain(s) with mismatches",
        check.domains, check.missing, check.facts_compared
    );
    if bad_domains > 0 {
        bail!("{bad_domains} domain(s) differ from the manifest");
    }
    Ok(())
}

#[cfg(feature = "testnet")]
async fn testnet_up(a: TestnetArgs) -> Result<()> {
    use xmpp_survey::testnet::{Testnet, TestnetConfig};
    let cfg = TestnetConfig {
        domains: a.domains,
        seed: a.seed,
        net: a.net,
        dns_port: a.dns_port,
        profiles: a.profiles.clone(),
        generation: a.generation,
        external: Vec::new(),
        per_host: a.per_host,
        dedicated_by_profile: a.dedicated_by_profile,
    };
    let net = Testnet::start(cfg).await?;
    let ca_path = a.manifest.with_extension("ca.pem");
    net.write_manifest(&a.manifest, &ca_path)?;
    let list_path = a.manifest.with_extension("domains.txt");
    std::fs::write(&list_path, net.domains().join("\n") + "\n")
        .with_context(|| format!("cannot write {}", list_path.display()))?;
    println!(
        "testnet up: {} domains on 127.{}.0.0/16, DNS at {}\nmanifest: {}\nCA:       {}\ndomains:  {}\n\nprobe it with:\n  xmpp-survey probe --resolver {} --extra-ca {} --allow-private {}\n  xmpp-survey probe --resolver {} --extra-ca {} --allow-private --file {} --table\n\nCtrl-C stops it.",
        net.domains().len(),
        a.net,
        net.dns_addr(),
        a.manifest.display(),
        ca_path.display(),
        list_path.display(),
        net.dns_addr(),
        ca_path.display(),
        net.domains()
            .first()
            .map(String::as_str)
            .unwrap_or("DOMAIN"),
        net.dns_addr(),
        ca_path.display(),
        list_path.display(),
    );
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            c = tokio::signal::ctrl_c() => {
                c.context("cannot wait for Ctrl-C")?;
                break;
            }
            _ = hup.recv() => {
                let from = net.generation();
                net.set_generation(from + 1);
                net.write_manifest(&a.manifest, &ca_path)?;
                let changes = net.expected_changes(from, from + 1)?;
                let path = a.manifest.with_extension("changes.json");
                std::fs::write(&path, serde_json::to_string_pretty(&changes)? + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!(
                    "generation {}: {} expected change(s) in {}",
                    from + 1,
                    changes.len(),
                    path.display()
                );
            }
        }
    }
    net.shutdown().await;
    Ok(())
}

#[cfg(feature = "testnet")]
async fn attack(a: AttackArgs) -> Result<()> {
    use xmpp_survey::testnet::attack::{self, AttackConfig};
    let text = std::fs::read_to_string(&a.targets)
        .with_context(|| format!("cannot read targets {}", a.targets.display()))?;
    let targets: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let report = attack::run(AttackConfig {
        kind: a.kind,
        listener: a.listener,
        probe_domain: a.probe_domain,
        targets,
        sources: a.sources,
        connections: a.connections,
        rate: a.rate,
        duration: a.duration,
    })
    .await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[cfg(feature = "testnet")]
async fn write_bench(a: &WriteBenchArgs) -> Result<()> {
    use xmpp_survey::model::report::DomainReport;
    let text = std::fs::read_to_string(&a.reports)
        .with_context(|| format!("cannot read reports {}", a.reports.display()))?;
    let mut originals = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: DomainReport = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not a report", a.reports.display(), i + 1))?;
        originals.push(r);
    }
    let mut reports = Vec::with_capacity(originals.len() * a.copies);
    for c in 0..a.copies {
        for r in &originals {
            let mut r = r.clone();
            if a.copies > 1 {
                r.domain = format!("w{c}-{}", r.domain);
            }
            reports.push(r);
        }
    }
    let store = app::crawl::open_store(&a.database_url).await?;
    let crawl = store
        .create_or_resume_crawl(&xmpp_survey::store::CrawlMeta {
            label: format!("write-bench-{}", std::process::id()),
            sources: serde_json::json!([a.reports.display().to_string()]),
            vantage: "write-bench".into(),
            probe_domain: None,
            software_version: SOFTWARE_VERSION.to_string(),
            roots_version: xmpp_survey::tls::verify::roots_version(),
            config: serde_json::json!({}),
        })
        .await?;
    let names: Vec<&str> = reports.iter().map(|r| r.domain.as_str()).collect();
    store.enqueue(crawl.id, &names).await?;
    let leases = store
        .lease(
            crawl.id,
            "write-bench",
            names.len(),
            Duration::from_secs(3600),
        )
        .await?;
    let ids: std::collections::HashMap<String, i64> = leases
        .into_iter()
        .map(|l| (l.domain, l.domain_id))
        .collect();
    let batch: Vec<(i64, DomainReport)> = reports
        .into_iter()
        .filter_map(|r| ids.get(&r.domain).map(|id| (*id, r)))
        .collect();
    let n = batch.len();
    let cfg = WorkerConfig::default();
    let started = std::time::Instant::now();
    let (written, new) = xmpp_survey::crawl::write_all(&store, crawl.id, batch, &cfg).await?;
    let secs = started.elapsed().as_secs_f64();
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM results WHERE crawl_id = $1)
              + (SELECT count(*) FROM endpoints WHERE crawl_id = $1)
              + (SELECT count(*) FROM chain_members WHERE crawl_id = $1)
              + (SELECT count(*) FROM dns_records WHERE crawl_id = $1)
              + (SELECT count(*) FROM acceptance_attempts WHERE crawl_id = $1)
              + (SELECT count(*) FROM acceptance_dialback WHERE crawl_id = $1)
              + (SELECT count(*) FROM inbound_streams WHERE crawl_id = $1)
              + (SELECT count(*) FROM crawl_queue WHERE crawl_id = $1)",
    )
    .bind(crawl.id)
    .fetch_one(store.pool())
    .await?;
    println!(
        "write path: {written} results ({new} new, {n} given, {rows} rows) in {secs:.2}s = {:.0} results/s, {:.0} rows/s",
        written as f64 / secs.max(0.001),
        rows as f64 / secs.max(0.001),
    );
    Ok(())
}

#[cfg(feature = "testnet")]
async fn tls_ceiling(a: &CeilingArgs) -> Result<()> {
    use xmpp_survey::testnet::Manifest;
    use xmpp_survey::testnet::ceiling::{Target, measure};
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("cannot read manifest {}", a.manifest.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a testnet manifest", a.manifest.display()))?;
    let mut seen = std::collections::HashSet::new();
    let targets: Vec<Target> = manifest
        .domains
        .iter()
        // One valid-certificate tenant per shared host: the loop verifies
        // like the probe, and a broken certificate would count as a failure.
        .filter(|d| d.shared && d.profile == "srv_ok" && seen.insert(d.ip))
        .map(|d| Target {
            addr: SocketAddr::new(d.ip, 5223),
            name: d.domain.clone(),
        })
        .collect();
    let ca = a.manifest.with_extension("ca.pem");
    let roots = xmpp_survey::tls::verify::load_extra_ca(&ca)?;
    let c = measure(&targets, roots, a.concurrency, a.duration)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "tls ceiling: {} handshakes in {:.1}s = {:.0}/s over {} hosts ({} failed)",
        c.handshakes,
        c.elapsed.as_secs_f64(),
        c.rate(),
        targets.len(),
        c.failures
    );
    Ok(())
}

// --- report (src/report) --------------------------------------------------

/// `xmpp-survey report`: one crawl as index.html, report.md, summary.json
/// and CSV files (MEASUREMENTS §4).
#[derive(Args)]
struct ReportArgs {
    /// The crawl's label, or `latest` (the latest started).
    #[arg(long, default_value = "latest")]
    crawl: String,
    /// Another crawl's label: list the domains whose verdict changed.
    #[arg(long)]
    compare: Option<String>,
    /// Output folder (default: `[report] out_dir`/<label>/, else reports/<label>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// CA cut-over dates (default: `[report] seeds`, else the built-in
    /// seeds/ca-cutover.toml).
    #[arg(long)]
    seeds: Option<PathBuf>,
    /// PostgreSQL URL [default: the config file's `[database] url`].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Config file (docs/operating.md); flags override it.
    #[arg(long, env = "XMPP_SURVEY_CONFIG")]
    config: Option<PathBuf>,
}

async fn report(a: ReportArgs) -> Result<i32> {
    use xmpp_survey::report::{ReportOptions, write_report};
    let file = ConfigFile::load_or_default(a.config.as_deref())?;
    let store = app::crawl::open_store(&database_url(a.database_url, &file)?).await?;
    let generated_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the time")?;
    let opts = ReportOptions {
        crawl: Some(a.crawl),
        compare: a.compare,
        out: a.out,
        reports_dir: file.report.out_dir.clone(),
        seeds: a.seeds.or_else(|| file.report.seeds.clone()),
        generated_at,
    };
    let w = write_report(store.pool(), &opts).await?;
    for (file, rows) in &w.csv_rows {
        eprintln!("{file}: {rows} rows");
    }
    println!("{}", w.dir.join("index.html").display());
    Ok(0)
}

// --- serve and optout (src/web) --------------------------------------------

/// `xmpp-survey serve`: the operators' web server.
#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long)]
    bind: SocketAddr,
    /// PostgreSQL URL [default: the config file's `[database] url`].
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where `xmpp-survey report` wrote the reports.
    #[arg(long, default_value = "reports")]
    reports_dir: PathBuf,
    /// Public base URL for the badge snippet and feeds (default http://BIND).
    #[arg(long)]
    public_url: Option<String>,
    /// Connections of the read-only database pool.
    #[arg(long, default_value_t = 16)]
    read_connections: u32,
    /// No "test now" live probes.
    #[arg(long)]
    no_live: bool,
    /// Advice file behind the findings (default: the built-in seeds/advice.toml).
    #[arg(long)]
    advice: Option<PathBuf>,
    /// Live probes per minute from one client address.
    #[arg(long, default_value_t = xmpp_survey::web::live::LiveLimits::default().per_ip_per_minute)]
    live_per_ip: NonZeroU32,
    /// Live probes of one domain per 10 minutes.
    #[arg(long, default_value_t = xmpp_survey::web::live::LiveLimits::default().per_domain_per_10min)]
    live_per_domain: NonZeroU32,
    /// Live probes started per minute on the whole server.
    #[arg(long, default_value_t = xmpp_survey::web::live::LiveLimits::default().global_per_minute)]
    live_per_minute: NonZeroU32,
    /// Live probes queued or running at once.
    #[arg(long, default_value_t = xmpp_survey::web::live::LiveLimits::default().max_in_flight)]
    live_max_in_flight: usize,
    #[command(flatten)]
    net: NetOptions,
}

async fn serve(a: ServeArgs) -> Result<i32> {
    use xmpp_survey::app::serve::ServeRun;
    use xmpp_survey::web::live::LiveLimits;
    let file = a.net.file()?;
    app::serve::serve(ServeRun {
        bind: a.bind,
        database_url: database_url(a.database_url, &file)?,
        reports_dir: a.reports_dir,
        public_url: a.public_url,
        read_connections: a.read_connections,
        net: a.net.config(&file),
        live: LiveLimits {
            per_ip_per_minute: a.live_per_ip,
            per_domain_per_10min: a.live_per_domain,
            global_per_minute: a.live_per_minute,
            max_in_flight: a.live_max_in_flight,
            ..LiveLimits::default()
        },
        no_live: a.no_live,
        knowledge: app::lookup::knowledge(a.advice.as_deref())?,
    })
    .await?;
    Ok(0)
}

#[derive(Subcommand)]
enum OptoutCommand {
    /// List the opt-out requests (pending first).
    List(DbArgs),
    /// Approve a request: the domain is never probed again.
    Approve(OptoutDecision),
    /// Reject a request.
    Reject(OptoutDecision),
}

#[derive(Args)]
struct OptoutDecision {
    /// The request's id (see `optout list`).
    id: i64,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

async fn optout(c: OptoutCommand) -> Result<i32> {
    use xmpp_survey::web::optout;
    match c {
        OptoutCommand::List(a) => {
            let file = ConfigFile::load_or_default(a.config.as_deref())?;
            let store =
                app::crawl::open_store(&database_url(a.database_url.clone(), &file)?).await?;
            let list = optout::list(&store).await?;
            if list.is_empty() {
                println!("no opt-out requests");
            }
            for r in list {
                println!(
                    "#{}\t{}\t{}\t{}\treason: {}\tcontact: {}",
                    r.id,
                    r.state,
                    r.requested_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default(),
                    r.domain,
                    r.reason.replace(['\n', '\t'], " "),
                    r.contact.replace(['\n', '\t'], " "),
                );
            }
        }
        OptoutCommand::Approve(a) => {
            let store = app::crawl::open_store(&a.database_url).await?;
            let r = optout::approve(&store, a.id).await?;
            println!(
                "approved #{}: {} is opted out and will not be probed again",
                r.id, r.domain
            );
        }
        OptoutCommand::Reject(a) => {
            let store = app::crawl::open_store(&a.database_url).await?;
            let r = optout::reject(&store, a.id).await?;
            println!("rejected #{}: {}", r.id, r.domain);
        }
    }
    Ok(0)
}
