//! `probe`: domains from arguments and from sources (the same
//! [`sources::load`] as a crawl), probed now, printed.

use super::{AppError, NetConfig, RunConfig, Setup, setup};
use crate::model::domain::DomainName;
use crate::probe::render;
use crate::sources::{self, SourceSpec};
use futures::StreamExt;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

/// What `probe` runs.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    /// Positional arguments: a domain, or a source with an explicit kind
    /// (`text:FILE`, `csv:FILE[#column]`, `providers:URL|FILE`).
    pub args: Vec<String>,
    /// `-f FILE`: text lists (`-` is stdin).
    pub files: Vec<PathBuf>,
    /// Print JSON lines.
    pub json: bool,
    /// Also write JSON lines to this file.
    pub json_out: Option<PathBuf>,
    /// Print only the table.
    pub table: bool,
    /// Skip invalid entries (with a warning) instead of refusing to start.
    pub skip_invalid: bool,
    /// Domains probed at once, as requested.
    pub concurrency: usize,
    /// Targets, trust, identity, limits.
    pub net: NetConfig,
}

/// The HTTP client that fetches providers lists.
pub fn http_client() -> Result<reqwest::Client, AppError> {
    reqwest::Client::builder()
        .user_agent(concat!("xmpp-survey/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(AppError::Http)
}

/// The domains to probe: bare arguments are domains; arguments with a
/// source kind, and `-f` files (text), go through [`sources::load`], so
/// `probe` reads every source `crawl` reads except `db`. A source that
/// cannot be used at all is an error; a bad entry is an error naming it
/// (`FILE:LINE`, `SOURCE[N]`) unless `skip_invalid`, which skips it with
/// a warning. Domains are de-duplicated, arguments first.
pub async fn domains(
    args: &[String],
    files: &[PathBuf],
    skip_invalid: bool,
) -> Result<Vec<DomainName>, AppError> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut specs: Vec<SourceSpec> = files.iter().cloned().map(SourceSpec::Text).collect();
    for a in args {
        if let Some(spec) = SourceSpec::explicit(a) {
            specs.push(spec?);
            continue;
        }
        match DomainName::parse(a) {
            Ok(d) => out.push(d),
            Err(e) => bad.push(format!("argument {a:?}: {e}")),
        }
    }
    if !specs.is_empty() {
        let http = if specs
            .iter()
            .any(|s| matches!(s, SourceSpec::Providers(sources::ProvidersLocation::Url(_))))
        {
            http_client()?
        } else {
            reqwest::Client::new()
        };
        let loaded = sources::load(&specs, None, &http, &HashSet::new()).await;
        for p in loaded.problems {
            if p.is_whole() {
                return Err(AppError::SourceFailed(p));
            }
            bad.push(p.to_string());
        }
        if !loaded.no_consent.is_empty() {
            eprintln!(
                "{} provider(s) without serverTesting consent, not probed",
                loaded.no_consent.len()
            );
        }
        out.extend(loaded.domains);
    }
    let mut seen = HashSet::new();
    out.retain(|d| seen.insert(d.clone()));
    if !bad.is_empty() {
        if !skip_invalid {
            return Err(AppError::InvalidDomains(bad));
        }
        for b in &bad {
            eprintln!("warning: skipped {b}");
        }
    }
    if out.is_empty() {
        return Err(AppError::NoDomains);
    }
    Ok(out)
}

/// `probe`: loads the domains, sets up, probes and prints.
pub async fn probe(a: ProbeRun) -> Result<(), AppError> {
    let domains = domains(&a.args, &a.files, a.skip_invalid).await?;
    let Setup {
        prober,
        listener,
        budget,
        ..
    } = setup(&RunConfig::probe(a.net.clone(), a.concurrency)).await?;
    let mut results = futures::stream::iter(domains)
        .map(|d| {
            let prober = prober.clone();
            async move { prober.probe(&d).await }
        })
        .buffered(budget.concurrency.max(1));
    let mut reports = Vec::new();
    let mut json_out = match &a.json_out {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).map_err(
            |source| AppError::Create {
                path: p.clone(),
                source,
            },
        )?)),
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
