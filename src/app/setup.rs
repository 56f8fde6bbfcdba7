//! Assembling a run: the prober and everything it is built from, each part
//! checked before anything is probed or recorded.

use super::{AppError, NetConfig, RunConfig};
use crate::acceptance::probe::AcceptanceProbe;
use crate::budget::{Budget, raise_nofile};
use crate::dns::resolve::{DnsConfig, Resolver};
use crate::identity::{IdentityConfig, ProbeIdentity};
use crate::limits::Limits;
use crate::listener::{self, ListenerConfig, ProbeListener};
use crate::net::policy::AddressPolicy;
use crate::net::politeness::Politeness;
use crate::probe::Prober;
use crate::probe::endpoint::ProbeContext;
use crate::tls::client::TlsProbe;
use rustls_pki_types::CertificateDer;
use std::path::PathBuf;
use std::sync::Arc;

/// A prober and everything it was built from, all checked: the CA files
/// parse, the identity loads, the resolver answers, the dialback listener
/// is bound. A crawl is created only once this exists.
pub struct Setup {
    /// The prober (with the acceptance probe when an identity is set).
    pub prober: Prober,
    /// The dialback listener (shut down by the caller).
    pub listener: Option<Arc<ProbeListener>>,
    /// Each extra CA file with its certificates.
    pub extra_ca: Vec<(PathBuf, Vec<CertificateDer<'static>>)>,
    /// The acceptance probe's identity.
    pub identity: Option<Arc<ProbeIdentity>>,
    /// Which addresses may be probed.
    pub policy: AddressPolicy,
    /// The probe's limits.
    pub limits: Limits,
    /// The fd budget: concurrency and the listener's streams fit in it.
    pub budget: Budget,
}

/// Builds the prober for `cfg`, checking every part before anything is
/// probed or recorded: local files first (CAs, identity), then the
/// resolver (one question to the configured server, which must answer),
/// then the listener's bind. Each error names its culprit.
pub async fn setup(cfg: &RunConfig) -> Result<Setup, AppError> {
    let o = &cfg.net;
    let mut extra_ca = Vec::new();
    for path in &o.extra_ca {
        extra_ca.push((path.clone(), crate::tls::verify::load_extra_ca(path)?));
    }
    let tls = TlsProbe::new(extra_ca.iter().flat_map(|(_, c)| c.clone()).collect())
        .map_err(AppError::Tls)?;
    let identity = load_identity(o)?.map(Arc::new);
    let budget = resource_budget(cfg.concurrency, identity.is_some(), cfg.db_pool)?;
    let resolver = Resolver::new(&DnsConfig {
        server: o.resolver,
        timeout: o.limits.dns_timeout,
    })
    .map_err(AppError::ResolverSetup)?;
    resolver
        .check_reachable()
        .await
        .map_err(AppError::Resolver)?;
    let limits = o.limits;
    let policy = o.policy;
    let gate = cfg.politeness.map(|c| Arc::new(Politeness::new(c)));
    let resolver = Arc::new(resolver);
    let prober = Prober::new(
        resolver.clone(),
        ProbeContext {
            limits,
            policy,
            tls: Arc::new(tls),
            probe_domain: identity.as_ref().map(|i| i.domain.clone()),
            gate,
            source_ip: None,
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
        max_streams: budget.listener_streams.unwrap_or(listener::MAX_STREAMS),
        identity: id.clone(),
        ctx: listener_ctx,
        resolver,
    })
    .await
    .map_err(|source| AppError::Listener {
        listen: id.listen,
        source,
    })?;
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
/// when it does not fit, refuses to start when not even a minimal run
/// fits.
fn resource_budget(
    concurrency: usize,
    acceptance_on: bool,
    db_pool: u32,
) -> Result<Budget, AppError> {
    let nofile = raise_nofile().map_err(AppError::Nofile)?;
    let budget =
        Budget::derive(nofile.soft, concurrency, acceptance_on, db_pool).map_err(|error| {
            AppError::Budget {
                error,
                soft: nofile.soft,
                hard: nofile.hard,
            }
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

/// The probe identity from the config file and the identity settings
/// given directly (those win).
fn load_identity(o: &NetConfig) -> Result<Option<ProbeIdentity>, AppError> {
    let from_file = match &o.config_file {
        Some(path) => super::file::ConfigFile::load(path)?.identity,
        None => IdentityConfig::default(),
    };
    let cfg = from_file.merge(o.identity.clone());
    Ok(ProbeIdentity::from_config(&cfg)?)
}
