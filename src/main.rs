//! `xmpp-survey`: the command-line edge. Parses arguments into the
//! library's config types, runs, and prints one clean error on failure.
//!
//! ```text
//! xmpp-survey probe [--json] [--resolver IP:PORT] [--extra-ca FILE] DOMAIN...
//! xmpp-survey testnet up --domains N [--seed S] --manifest FILE
//! ```

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use xmpp_survey::acceptance::probe::AcceptanceProbe;
use xmpp_survey::budget::{Budget, raise_nofile};
use xmpp_survey::crawl::config::{CrawlConfig, SOFTWARE_VERSION, Settings};
use xmpp_survey::crawl::resources::Monitor;
use xmpp_survey::crawl::{WorkerConfig, default_worker_id, iso_week_label, run_worker_watched};
use xmpp_survey::dns::resolve::{DnsConfig, Resolver};
use xmpp_survey::identity::{ConfigFile, IdentityConfig, ProbeIdentity};
use xmpp_survey::limits::{self, Limits};
use xmpp_survey::listener::{ListenerConfig, ProbeListener};
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::net::politeness::{Politeness, PolitenessConfig};
use xmpp_survey::probe::endpoint::ProbeContext;
use xmpp_survey::probe::{Prober, render};
use xmpp_survey::sources::SourceSpec;
use xmpp_survey::store::migrate::BINARY_VERSION;
use xmpp_survey::store::{Crawl, CrawlMeta, CrawlStatus, DEFAULT_MAX_CONNECTIONS, Store};
use xmpp_survey::tls::client::TlsProbe;

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
    #[cfg(feature = "testnet")]
    #[command(subcommand)]
    Testnet(TestnetCommand),
    /// Database administration (PostgreSQL).
    #[command(subcommand)]
    Db(DbCommand),
    /// Create (or resume) a crawl from sources and work on it.
    Crawl(Box<CrawlArgs>),
    /// Join an existing crawl from another process or host.
    Worker(Box<WorkerArgs>),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply the schema's migrations (safe to run twice).
    Migrate(DbArgs),
}

#[derive(Args)]
struct DbArgs {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

/// How a worker works: concurrency, politeness, leases, retries.
#[derive(Args, Clone)]
struct WorkArgs {
    /// Probes in flight at once in this process.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Global connection rate (connections/s over all targets).
    #[arg(long)]
    rate: Option<std::num::NonZeroU32>,
    /// Connections/s to any one target address.
    #[arg(long, default_value = "10")]
    per_ip_rate: Option<std::num::NonZeroU32>,
    /// Simultaneous connections to any one target address.
    #[arg(long, default_value = "4")]
    per_ip_concurrency: Option<std::num::NonZeroUsize>,
    /// No rate or concurrency limits at all (testnet benchmarks only).
    #[arg(long)]
    no_limits: bool,
    /// How long a lease lasts before another worker may take the domain.
    #[arg(long, value_parser = duration, default_value = "300s")]
    lease: Duration,
    /// Attempts before a transiently failing domain ends `not_tested`.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// First retry delay (doubles each attempt).
    #[arg(long, value_parser = duration, default_value = "30s")]
    retry_base: Duration,
    /// This worker's name in leases (default host:pid).
    #[arg(long)]
    worker_id: Option<String>,
    /// Results per write transaction.
    #[arg(long, default_value_t = 128)]
    write_batch: usize,
}

#[derive(Args)]
struct CrawlArgs {
    /// A domain source (repeatable): text:FILE, csv:FILE[#column],
    /// providers:URL|FILE, db, or a path guessed by its extension.
    #[arg(long = "source", required = true)]
    sources: Vec<String>,
    /// Crawl label; the same label resumes (default: ISO week, e.g. 2026-W47).
    #[arg(long)]
    label: Option<String>,
    /// Domains never to probe (file, one a line; added to the table's list).
    #[arg(long = "opt-out")]
    opt_out: Vec<PathBuf>,
    /// Where this crawl runs from (recorded with the crawl).
    #[arg(long, default_value = "default")]
    vantage: String,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[command(flatten)]
    work: WorkArgs,
    #[command(flatten)]
    net: NetOptions,
}

#[derive(Args)]
struct WorkerArgs {
    /// The label of the crawl to join.
    #[arg(long)]
    crawl: String,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
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
    #[arg(long, value_parser = duration, default_value = "20s")]
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
    #[arg(long, value_parser = duration, default_value = "10s")]
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

/// Parses `5`, `2.5`, `5s` or `500ms`.
fn duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 0.001)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 5, 2.5s or 500ms)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[derive(Args)]
struct ProbeArgs {
    /// Domains to probe.
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

/// How to reach targets and who we are: shared by probe, crawl and worker.
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
    /// TCP connect timeout.
    #[arg(long, value_parser = duration, default_value = "5s")]
    connect_timeout: Duration,
    /// Timeout of each stream phase (header, features, STARTTLS, handshake).
    #[arg(long, value_parser = duration, default_value = "10s")]
    phase_timeout: Duration,
    /// Timeout of each DNS question.
    #[arg(long, value_parser = duration, default_value = "5s")]
    dns_timeout: Duration,
    /// Config file (TOML) with the `[identity]` of the acceptance probe
    /// (docs/probe-identity.md). Flags below override it.
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
}

fn main() {
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
            Command::Testnet(TestnetCommand::Up(a)) => testnet_up(a).await,
            #[cfg(feature = "testnet")]
            Command::Testnet(TestnetCommand::Check(a)) => testnet_check(&a),
            #[cfg(feature = "testnet")]
            Command::Testnet(TestnetCommand::TlsCeiling(a)) => tls_ceiling(&a).await,
            #[cfg(feature = "testnet")]
            Command::Testnet(TestnetCommand::Attack(a)) => attack(a).await,
            Command::Db(DbCommand::Migrate(a)) => db_migrate(&a).await,
            Command::Crawl(a) => crawl(*a).await,
            Command::Worker(a) => worker(*a).await,
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Collects domains from arguments and files; refuses bad lines unless
/// told to skip them, naming file and line.
fn collect_domains(a: &ProbeArgs) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for d in &a.domains {
        match xmpp_survey::domain::normalize(d) {
            Ok(d) => out.push(d),
            Err(e) => bad.push(format!("argument {d:?}: {e}")),
        }
    }
    for f in &a.files {
        let bytes = if f.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                .context("cannot read domains from stdin")?;
            b
        } else {
            std::fs::read(f).with_context(|| format!("cannot read domain list {}", f.display()))?
        };
        let (good, errs) = xmpp_survey::domain::parse_list(f, &bytes);
        out.extend(good);
        bad.extend(errs.iter().map(ToString::to_string));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert(d.clone()));
    if !bad.is_empty() {
        if a.skip_invalid {
            for b in &bad {
                eprintln!("warning: skipped {b}");
            }
        } else {
            bail!(
                "invalid domain(s), nothing probed (use --skip-invalid to probe the rest):\n  {}",
                bad.join("\n  ")
            );
        }
    }
    if out.is_empty() {
        bail!("no domains to probe: give DOMAIN arguments or --file");
    }
    Ok(out)
}

/// A prober and everything it was built from, all checked: the CA files
/// parse, the identity loads, the resolver answers, the dialback listener
/// is bound. A crawl is created only once this exists.
struct Setup {
    prober: Prober,
    /// The dialback listener (shut down by the caller).
    listener: Option<Arc<ProbeListener>>,
    /// Each `--extra-ca` file with its certificates.
    extra_ca: Vec<(PathBuf, Vec<rustls_pki_types::CertificateDer<'static>>)>,
    identity: Option<Arc<ProbeIdentity>>,
    policy: AddressPolicy,
    limits: Limits,
    /// The fd budget: concurrency and the listener's streams fit in it.
    budget: Budget,
}

/// Builds the prober for the given options, checking every part before
/// anything is probed or recorded: local files first (CAs, identity), then
/// the resolver (one question to the configured server, which must
/// answer), then the listener's bind. Each error names its culprit.
async fn build_prober(
    o: &NetOptions,
    gate: Option<Arc<Politeness>>,
    concurrency: usize,
    db_pool: u32,
) -> Result<Setup> {
    let mut extra_ca = Vec::new();
    for path in &o.extra_ca {
        extra_ca.push((path.clone(), xmpp_survey::tls::verify::load_extra_ca(path)?));
    }
    let tls = TlsProbe::new(extra_ca.iter().flat_map(|(_, c)| c.clone()).collect())
        .context("cannot set up TLS")?;
    let identity = load_identity(o)?.map(Arc::new);
    let budget = resource_budget(concurrency, identity.is_some(), db_pool)?;
    let resolver = Resolver::new(&DnsConfig {
        server: o.resolver,
        timeout: o.dns_timeout,
    })
    .context("cannot set up the DNS resolver")?;
    resolver.check_reachable().await?;
    let limits = Limits {
        connect_timeout: o.connect_timeout,
        phase_timeout: o.phase_timeout,
        dns_timeout: o.dns_timeout,
        ..Limits::default()
    };
    let policy = if o.allow_private {
        AddressPolicy::ALLOW_PRIVATE
    } else {
        AddressPolicy::STRICT
    };
    let resolver = Arc::new(resolver);
    let prober = Prober::new(
        resolver.clone(),
        ProbeContext {
            limits,
            policy,
            tls: Arc::new(tls),
            probe_domain: identity.as_ref().map(|i| i.domain.clone()),
            gate,
        },
    );
    let mut setup = Setup {
        prober,
        listener: None,
        extra_ca,
        identity: identity.clone(),
        policy,
        limits,
        budget,
    };
    let Some(id) = identity else {
        return Ok(setup);
    };
    // The listener's outbound connections (verifying a target's dialback
    // key) obey the same politeness limits as probes (rates and per-address
    // concurrency, from the same settings) but in a gate of their own:
    // they answer a target's request while our probes of that target hold
    // its per-address slots waiting for the answer, and sharing those
    // slots would deadlock. They are made only for domains being probed,
    // at most one per inbound stream.
    let mut listener_ctx = setup.prober.context().clone();
    listener_ctx.gate = listener_ctx
        .gate
        .as_ref()
        .map(|g| Arc::new(Politeness::new(g.config())));
    let l = ProbeListener::start(ListenerConfig {
        max_streams: budget
            .listener_streams
            .unwrap_or(xmpp_survey::listener::MAX_STREAMS),
        identity: id.clone(),
        ctx: listener_ctx,
        resolver,
    })
    .await
    .with_context(|| format!("cannot start the dialback listener on {}", id.listen))?;
    eprintln!(
        "acceptance probe on: as {} (dialback listener on {})",
        id.domain,
        l.local_addr()
    );
    setup.prober = setup
        .prober
        .with_acceptance(AcceptanceProbe::new(id, l.clone()));
    setup.listener = Some(l);
    Ok(setup)
}

/// Raises the open-file limit to the hard limit and derives the budget
/// from it (logged in one line); lowers the concurrency with a warning
/// when it does not fit, refuses to start when not even a minimal crawl
/// fits.
fn resource_budget(concurrency: usize, acceptance_on: bool, db_pool: u32) -> Result<Budget> {
    let nofile = raise_nofile()?;
    let budget = Budget::derive(nofile.soft, concurrency, acceptance_on, db_pool).map_err(|e| {
        anyhow::anyhow!(
            "{e} (soft limit {}, hard limit {})",
            nofile.soft,
            nofile.hard
        )
    })?;
    let raised = if nofile.soft > nofile.soft_before {
        format!(" (soft limit raised from {})", nofile.soft_before)
    } else {
        String::new()
    };
    eprintln!("{budget}{raised}");
    tracing::info!(%budget, "resource budget");
    if budget.lowered() {
        eprintln!(
            "warning: --concurrency {} does not fit in the open-file limit {} (hard limit {}): lowered to {}; raise the hard limit (`ulimit -Hn`, LimitNOFILE=) to probe more at once",
            budget.requested_concurrency, nofile.soft, nofile.hard, budget.concurrency
        );
    }
    Ok(budget)
}

async fn probe(a: ProbeArgs) -> Result<()> {
    let domains = collect_domains(&a)?;
    let Setup {
        prober,
        listener,
        budget,
        ..
    } = build_prober(&a.net, None, a.concurrency, 0).await?;
    let mut results = futures::stream::iter(domains)
        .map(|d| {
            let prober = prober.clone();
            async move { prober.probe(&d).await }
        })
        .buffered(budget.concurrency.max(1));
    let mut reports = Vec::new();
    let mut json_out = match &a.json_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let stdout = std::io::stdout();
    while let Some(report) = results.next().await {
        if let Some(f) = json_out.as_mut() {
            serde_json::to_writer(&mut *f, &report)?;
            writeln!(f)?;
        }
        let mut out = stdout.lock();
        if a.json {
            serde_json::to_writer(&mut out, &report)?;
            writeln!(out)?;
        } else if !a.table {
            writeln!(out, "{}", render::domain(&report))?;
        }
        out.flush()?;
        reports.push(report);
    }
    if let Some(mut f) = json_out {
        f.flush()?;
    }
    if !a.json && (a.table || reports.len() > 1) {
        print!("{}", render::table(&reports));
    }
    if let Some(l) = listener {
        l.shutdown().await;
    }
    Ok(())
}

/// The probe identity from `--config` and the identity flags (flags win).
fn load_identity(a: &NetOptions) -> Result<Option<ProbeIdentity>> {
    let from_file = match &a.config {
        Some(path) => ConfigFile::load(path)?.identity.unwrap_or_default(),
        None => IdentityConfig::default(),
    };
    let cfg = from_file.merge(IdentityConfig {
        domain: a.probe_domain.clone(),
        server_only_cert: a.probe_cert.clone(),
        server_only_key: a.probe_key.clone(),
        client_and_server_cert: a.probe_cs_cert.clone(),
        client_and_server_key: a.probe_cs_key.clone(),
        listen: a.listen,
        dialback_secret: None,
    });
    Ok(ProbeIdentity::from_config(&cfg)?)
}

/// Compares JSON-lines probe results with a manifest, fact by fact.
#[cfg(feature = "testnet")]
fn testnet_check(a: &CheckArgs) -> Result<()> {
    use xmpp_survey::facts::{compare, facts};
    use xmpp_survey::probe::report::DomainReport;
    use xmpp_survey::testnet::Manifest;
    let text = std::fs::read_to_string(&a.manifest)
        .with_context(|| format!("cannot read manifest {}", a.manifest.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a testnet manifest", a.manifest.display()))?;
    let text = std::fs::read_to_string(&a.reports)
        .with_context(|| format!("cannot read reports {}", a.reports.display()))?;
    let mut by_domain = std::collections::HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: DomainReport = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a probe report", a.reports.display(), i + 1))?;
        by_domain.insert(r.domain.clone(), r);
    }
    let (mut facts_compared, mut domains, mut bad_domains, mut missing) = (0, 0, 0, 0);
    for d in &manifest.domains {
        let Some(r) = by_domain.get(&d.domain) else {
            missing += 1;
            continue;
        };
        domains += 1;
        facts_compared += d.expect.len();
        let mismatches = compare(&d.expect, &facts(r));
        if !mismatches.is_empty() {
            bad_domains += 1;
        }
        for m in mismatches {
            println!(
                "MISMATCH {} [{}] {}: expected {} got {}",
                d.domain, d.profile, m.key, m.expected, m.got
            );
        }
    }
    println!(
        "checked {domains} domains ({missing} in the manifest were not probed): {facts_compared} facts compared, {bad_domains} domain(s) with mismatches"
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
        external: Vec::new(),
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
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    net.shutdown().await;
    Ok(())
}

async fn db_migrate(a: &DbArgs) -> Result<()> {
    let store = Store::connect(&a.database_url).await?;
    let applied = store.migrate().await?;
    let now = store.schema_version().await?.unwrap_or(0);
    if applied.is_empty() {
        println!("schema is up to date (version {now})");
    } else {
        println!("applied migration(s) {applied:?}; schema version {now}");
    }
    Ok(())
}

/// Politeness settings from the flags (none with --no-limits).
fn politeness_config(w: &WorkArgs) -> Option<PolitenessConfig> {
    (!w.no_limits).then_some(PolitenessConfig {
        global_rate: w.rate,
        per_ip_rate: w.per_ip_rate,
        per_ip_concurrency: w.per_ip_concurrency,
    })
}

/// Politeness from the flags (none with --no-limits).
fn politeness(w: &WorkArgs) -> Option<Arc<Politeness>> {
    politeness_config(w).map(|c| Arc::new(Politeness::new(c)))
}

/// The worker's settings; its concurrency is the budget's.
fn worker_config(w: &WorkArgs, budget: &Budget) -> WorkerConfig {
    WorkerConfig {
        worker_id: w.worker_id.clone().unwrap_or_else(default_worker_id),
        concurrency: budget.concurrency.max(1),
        lease_for: w.lease,
        max_attempts: w.max_attempts.max(1),
        retry_base: w.retry_base,
        write_batch: w.write_batch.max(1),
        ..WorkerConfig::default()
    }
}

/// Refuses to work on a database whose schema is not the binary's.
async fn open_store(url: &str) -> Result<Store> {
    let store = Store::connect(url).await?;
    match store.schema_version().await? {
        Some(v) if v == BINARY_VERSION => Ok(store),
        Some(v) => bail!(
            "database schema is version {v}, this binary needs {}: run `xmpp-survey db migrate`",
            BINARY_VERSION
        ),
        None => bail!("the database has no xmpp-survey schema: run `xmpp-survey db migrate` first"),
    }
}

/// Runs this process's worker on a crawl with Ctrl-C handling and
/// prints the crawl summary.
async fn work(store: &Store, crawl: &Crawl, w: &WorkArgs, setup: Setup) -> Result<()> {
    let Setup {
        prober,
        listener,
        budget,
        ..
    } = setup;
    let cfg = worker_config(w, &budget);
    let monitor = Arc::new(Monitor::start(listener.clone(), budget));
    let result = work_with(store, crawl, &cfg, &prober, &monitor).await;
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
    prober: &Prober,
    monitor: &Arc<Monitor>,
) -> Result<()> {
    let before = store.progress(crawl.id).await?;
    let total = before.total();
    let m = monitor.clone();
    let extra: xmpp_survey::crawl::progress::Extra = Arc::new(move || m.compact());
    let progress: Arc<dyn xmpp_survey::crawl::ProgressSink> =
        Arc::from(xmpp_survey::crawl::progress::for_stderr(
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
    let summary = store.summary(crawl.id).await?;
    print!(
        "{}",
        xmpp_survey::crawl::summary::render(&crawl.label, &after, &summary)
    );
    if status == CrawlStatus::Interrupted {
        println!(
            "crawl {} not finished ({} queued, {} leased); resume with:\n  xmpp-survey crawl --label {} --source ... (same sources), or\n  xmpp-survey worker --crawl {}",
            crawl.label, after.queued, after.leased, crawl.label, crawl.label
        );
    }
    Ok(())
}

/// `crawls.config`: every setting that can change a result (see
/// [`CrawlConfig`]).
fn crawl_config(setup: &Setup, w: &WorkArgs, net: &NetOptions) -> Result<CrawlConfig> {
    let worker = worker_config(w, &setup.budget);
    Ok(CrawlConfig::new(&Settings {
        policy: setup.policy,
        extra_ca: &setup.extra_ca,
        resolver: net.resolver,
        limits: setup.limits,
        politeness: politeness_config(w),
        worker: &worker,
        identity: setup.identity.as_deref(),
        bound: setup.listener.as_ref().map(|l| l.local_addr()),
        roots_version: xmpp_survey::tls::verify::roots_version(),
        budget: Some(setup.budget),
    })?)
}

async fn crawl(a: CrawlArgs) -> Result<()> {
    let store = open_store(&a.database_url).await?;
    let specs = a
        .sources
        .iter()
        .map(|s| s.parse::<SourceSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut opt_out = store.opt_outs().await?;
    for f in &a.opt_out {
        opt_out.extend(xmpp_survey::sources::load_opt_out_file(f)?);
    }
    // Everything that can fail is checked before the crawl exists: a crawl
    // that cannot start is never left `running`.
    let setup = build_prober(
        &a.net,
        politeness(&a.work),
        a.work.concurrency,
        DEFAULT_MAX_CONNECTIONS,
    )
    .await?;
    let config = crawl_config(&setup, &a.work, &a.net)?;
    let known = if specs.iter().any(|s| matches!(s, SourceSpec::Database)) {
        Some(store.known_domains().await?)
    } else {
        None
    };
    let http = reqwest::Client::builder()
        .user_agent(concat!("xmpp-survey/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let loaded = xmpp_survey::sources::load(&specs, known, &http, &opt_out).await;
    for p in &loaded.problems {
        eprintln!("warning: {p}");
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
    if loaded.domains.is_empty() {
        bail!("no valid domains in the sources: nothing to crawl");
    }
    let label = a
        .label
        .clone()
        .unwrap_or_else(|| iso_week_label(time::OffsetDateTime::now_utc()));
    let meta = CrawlMeta {
        label: label.clone(),
        sources: serde_json::json!(a.sources),
        vantage: a.vantage.clone(),
        probe_domain: setup.identity.as_ref().map(|i| i.domain.clone()),
        software_version: SOFTWARE_VERSION.to_string(),
        roots_version: xmpp_survey::tls::verify::roots_version(),
        config: config.to_json(),
    };
    let crawl = store.create_or_resume_crawl(&meta).await?;
    let run = async {
        let added = store.enqueue(crawl.id, &loaded.domains).await?;
        eprintln!(
            "crawl {} {}: {} domain(s) from the sources, {added} newly queued",
            crawl.label,
            if crawl.resumed { "resumed" } else { "created" },
            loaded.domains.len()
        );
        work(&store, &crawl, &a.work, setup).await
    };
    let result = run.await;
    if let Err(e) = &result {
        mark_failed(&store, &crawl, e).await;
    }
    result
}

/// Records why a started crawl stopped, so it is not left `running`. A
/// database too broken to take that is reported, not allowed to hide the
/// error that stopped the crawl.
async fn mark_failed(store: &Store, crawl: &Crawl, error: &anyhow::Error) {
    if let Err(e) = store.fail_crawl(crawl.id, &format!("{error:#}")).await {
        eprintln!("warning: cannot mark crawl {} failed: {e}", crawl.label);
    }
}

async fn worker(a: WorkerArgs) -> Result<()> {
    let store = open_store(&a.database_url).await?;
    let crawl = store
        .find_crawl(&a.crawl)
        .await?
        .with_context(|| format!("no crawl labelled {:?} in the database", a.crawl))?;
    let setup = build_prober(
        &a.net,
        politeness(&a.work),
        a.work.concurrency,
        DEFAULT_MAX_CONNECTIONS,
    )
    .await?;
    work(&store, &crawl, &a.work, setup).await
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
