//! `lookup`: one domain for its operator, as findings with advice: the
//! latest stored result and its history, or (`--live`) a probe now with
//! the configured identity and address policy, which needs no database.

use super::{AppError, NetConfig, RunConfig, Setup, setup};
use crate::lookup::{self, DomainLookup, Knowledge};
use std::io::Write;
use std::path::PathBuf;

/// What `lookup` runs.
#[derive(Debug, Clone)]
pub struct LookupRun {
    /// The domain as typed (normalised here: IDNA U-labels become A-labels).
    pub domain: String,
    /// Probe now instead of reading the database.
    pub live: bool,
    /// Print JSON instead of text.
    pub json: bool,
    /// PostgreSQL URL: required without `--live`; with it, adds the history
    /// and honours opt-outs (unreachable: a warning, the probe goes on).
    pub database_url: Option<String>,
    /// An advice file instead of the built-in `seeds/advice.toml`.
    pub advice: Option<PathBuf>,
    /// Targets, trust, identity, limits (for `--live`).
    pub net: NetConfig,
}

/// The knowledge file a run uses.
pub fn knowledge(path: Option<&std::path::Path>) -> Result<Knowledge, AppError> {
    Ok(match path {
        Some(p) => Knowledge::load(p)?,
        None => Knowledge::built_in(),
    })
}

/// Today, for "renews as server-only" dates still ahead.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// Looks the domain up (stored or live) without printing.
pub async fn run(r: &LookupRun) -> Result<DomainLookup, AppError> {
    let domain = crate::model::domain::DomainName::parse(&r.domain).map_err(|source| {
        AppError::InvalidDomain {
            input: r.domain.clone(),
            source,
        }
    })?;
    let knowledge = knowledge(r.advice.as_deref())?;
    if !r.live {
        let url = r.database_url.as_deref().ok_or(AppError::NoDatabase)?;
        let store = super::crawl::open_store(url).await?;
        return Ok(lookup::lookup_stored(store.pool(), &domain, &knowledge, today()).await?);
    }
    // Live: the database is optional; when it answers, honour opt-outs and
    // add the stored history under the live findings.
    let mut history = Vec::new();
    let mut changes = Vec::new();
    if let Some(url) = &r.database_url {
        match super::crawl::open_store(url).await {
            Ok(store) => {
                if lookup::opted_out(store.pool(), &domain)
                    .await
                    .map_err(lookup::LookupError::from)?
                {
                    return Err(AppError::OptedOut(domain.into_string()));
                }
                history = lookup::history(store.pool(), &domain)
                    .await
                    .map_err(lookup::LookupError::from)?;
                changes = crate::store::changes::domain_changes(
                    store.pool(),
                    &domain,
                    lookup::CHANGES_LIMIT,
                )
                .await
                .map_err(lookup::LookupError::from)?;
            }
            Err(e) => eprintln!(
                "warning: no stored history ({}); probing live anyway",
                super::error_chain(&e)
            ),
        }
    }
    let Setup { prober, .. } = setup(&RunConfig::probe(r.net.clone(), 1)).await?;
    let report = prober.probe(&domain).await;
    let mut out = lookup::lookup_live(report, &knowledge, today());
    out.history = history;
    out.changes = changes;
    Ok(out)
}

/// `lookup`: looks up and prints (text or JSON).
pub async fn lookup(r: LookupRun) -> Result<(), AppError> {
    let out = run(&r).await?;
    let mut stdout = std::io::stdout().lock();
    if r.json {
        serde_json::to_writer_pretty(&mut stdout, &out)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", lookup::render::text(&out))?;
    }
    stdout.flush()?;
    Ok(())
}
