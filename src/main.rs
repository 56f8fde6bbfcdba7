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
use xmpp_survey::dns::resolve::{DnsConfig, Resolver};
use xmpp_survey::identity::{ConfigFile, IdentityConfig, ProbeIdentity};
use xmpp_survey::limits::{self, Limits};
use xmpp_survey::listener::{ListenerConfig, ProbeListener};
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::probe::endpoint::ProbeContext;
use xmpp_survey::probe::{Prober, render};
use xmpp_survey::tls::client::TlsProbe;

#[derive(Parser)]
#[command(
    name = "xmpp-survey",
    version,
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
    Testnet(TestnetCommand),
}

#[derive(Subcommand)]
enum TestnetCommand {
    /// Start the testnet, write its manifest, and serve until Ctrl-C.
    Up(TestnetArgs),
    /// Compare probe results (JSON lines) with a testnet manifest.
    Check(CheckArgs),
}

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
    /// DNS server to ask (IP:PORT) instead of the system resolver.
    #[arg(long, env = "XMPP_SURVEY_RESOLVER")]
    resolver: Option<SocketAddr>,
    /// Also trust the CA certificates in this PEM file (repeatable).
    #[arg(long = "extra-ca")]
    extra_ca: Vec<PathBuf>,
    /// Allow probing loopback and private addresses (testnet, labs).
    #[arg(long)]
    allow_private: bool,
    /// Skip invalid lines in domain lists instead of refusing to start.
    #[arg(long)]
    skip_invalid: bool,
    /// Domains probed at once.
    #[arg(long, default_value_t = limits::DEFAULT_CONCURRENCY)]
    concurrency: usize,
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
            Command::Testnet(TestnetCommand::Up(a)) => testnet_up(a).await,
            Command::Testnet(TestnetCommand::Check(a)) => testnet_check(&a),
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
        let text = if f.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read domains from stdin")?
        } else {
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read domain list {}", f.display()))?
        };
        let (good, errs) = xmpp_survey::domain::parse_list(f, &text);
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

async fn probe(a: ProbeArgs) -> Result<()> {
    let domains = collect_domains(&a)?;
    let mut extra = Vec::new();
    for path in &a.extra_ca {
        extra.extend(xmpp_survey::tls::verify::load_extra_ca(path)?);
    }
    let tls = TlsProbe::new(extra).context("cannot set up TLS")?;
    let resolver = Resolver::new(&DnsConfig {
        server: a.resolver,
        timeout: a.dns_timeout,
    })
    .context("cannot set up the DNS resolver")?;
    resolver.check_reachable().await?;
    let identity = load_identity(&a)?;
    let limits = Limits {
        connect_timeout: a.connect_timeout,
        phase_timeout: a.phase_timeout,
        dns_timeout: a.dns_timeout,
        ..Limits::default()
    };
    let prober = Prober::new(
        Arc::new(resolver.clone()),
        ProbeContext {
            limits,
            policy: if a.allow_private {
                AddressPolicy::ALLOW_PRIVATE
            } else {
                AddressPolicy::STRICT
            },
            tls: Arc::new(tls),
            probe_domain: identity.as_ref().map(|i| i.domain.clone()),
            gate: None,
        },
    );
    let resolver = Arc::new(resolver);
    let mut listener = None;
    let prober = match identity {
        None => prober,
        Some(id) => {
            let id = Arc::new(id);
            let l = ProbeListener::start(ListenerConfig {
                identity: id.clone(),
                ctx: prober.context().clone(),
                resolver: resolver.clone(),
            })
            .await
            .context("cannot start the dialback listener")?;
            eprintln!(
                "acceptance probe on: as {} (dialback listener on {})",
                id.domain,
                l.local_addr()
            );
            listener = Some(l.clone());
            prober.with_acceptance(AcceptanceProbe::new(id, l))
        }
    };
    let mut results = futures::stream::iter(domains)
        .map(|d| {
            let prober = prober.clone();
            async move { prober.probe(&d).await }
        })
        .buffered(a.concurrency.max(1));
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
fn load_identity(a: &ProbeArgs) -> Result<Option<ProbeIdentity>> {
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
