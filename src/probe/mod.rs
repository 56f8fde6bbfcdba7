//! Probing one domain: DNS discovery, then every endpoint.
//!
//! This is the I/O layer: sockets, timeouts and the TLS handshake live
//! here; what to probe ([`plan`]), how to read the stream
//! ([`crate::xmpp`]), how to judge certificates ([`crate::tls`]) and the
//! verdicts ([`crate::verdict`]) are pure and tested on their own.

pub mod endpoint;
pub mod plan;
pub mod render;
pub mod report;

use crate::acceptance::probe::AcceptanceProbe;
use crate::dns::resolve::Resolver;
use crate::probe::endpoint::{ProbeContext, probe_endpoint};
use crate::probe::report::{DomainReport, SCHEMA_VERSION};
use futures::future::join_all;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;
use tracing::{Instrument, info_span};

/// Probes domains: owns the resolver and the shared probe context.
#[derive(Clone)]
pub struct Prober {
    resolver: Arc<Resolver>,
    ctx: Arc<ProbeContext>,
    acceptance: Option<AcceptanceProbe>,
}

impl Prober {
    /// A prober using `resolver` for DNS and `ctx` for every endpoint.
    pub fn new(resolver: Arc<Resolver>, ctx: ProbeContext) -> Self {
        Self {
            resolver,
            ctx: Arc::new(ctx),
            acceptance: None,
        }
    }

    /// The shared endpoint context (limits, address policy, TLS roots).
    pub fn context(&self) -> &ProbeContext {
        &self.ctx
    }

    /// Also runs the active acceptance probe (MEASUREMENTS §3) on every
    /// domain; s2s streams then carry the probe domain as `from`.
    pub fn with_acceptance(mut self, acceptance: AcceptanceProbe) -> Self {
        let mut ctx = (*self.ctx).clone();
        ctx.probe_domain = Some(acceptance.domain().to_string());
        self.ctx = Arc::new(ctx);
        self.acceptance = Some(acceptance);
        self
    }

    /// Measures one (already normalised) domain. Never fails: DNS and
    /// endpoint failures are recorded in the report.
    pub async fn probe(&self, domain: &str) -> DomainReport {
        let span = info_span!("probe", domain);
        async {
            let started_at = OffsetDateTime::now_utc();
            let t0 = Instant::now();
            let dns = self.resolver.discover(domain).await;
            let plans = plan::plan(domain, &dns);
            let endpoints =
                join_all(plans.iter().map(|p| probe_endpoint(&self.ctx, domain, p))).await;
            let mut summary = crate::verdict::summarize(&dns, &endpoints);
            let acceptance = match &self.acceptance {
                Some(a) => Some(a.run(&self.ctx, domain, &plans, &endpoints, &summary).await),
                None => None,
            };
            if let Some(a) = &acceptance {
                summary.acceptance = a.verdict;
                summary.software = a.software.clone();
            }
            DomainReport {
                schema_version: SCHEMA_VERSION,
                domain: domain.to_string(),
                started_at,
                duration_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                dns,
                endpoints,
                summary,
                acceptance,
            }
        }
        .instrument(span)
        .await
    }
}
