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

use crate::dns::resolve::Resolver;
use crate::model::acceptance::AcceptanceReport;
use crate::model::report::{DomainReport, EndpointReport, SCHEMA_VERSION};
use crate::model::summary::DomainSummary;
use crate::probe::endpoint::{ProbeContext, probe_endpoint};
use crate::probe::plan::EndpointPlan;
use futures::future::{BoxFuture, join_all};
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;
use tracing::{Instrument, info_span};

/// A measurement that runs after the passive probe of a domain, on its
/// results: the acceptance probe (MEASUREMENTS §3,
/// [`crate::acceptance::probe::AcceptanceProbe`]). A seam, so that the
/// passive prober depends on nothing above it.
pub trait ActiveProbe: Send + Sync {
    /// Our own domain (the `from` of s2s streams).
    fn domain(&self) -> &str;
    /// Runs against `target` given the passive probe's plans, endpoint
    /// reports and summary.
    fn run<'a>(
        &'a self,
        ctx: &'a ProbeContext,
        target: &'a str,
        plans: &'a [EndpointPlan],
        passive: &'a [EndpointReport],
        summary: &'a DomainSummary,
    ) -> BoxFuture<'a, AcceptanceReport>;
}

/// Probes domains: owns the resolver and the shared probe context.
#[derive(Clone)]
pub struct Prober {
    resolver: Arc<Resolver>,
    ctx: Arc<ProbeContext>,
    acceptance: Option<Arc<dyn ActiveProbe>>,
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

    /// The run's resolver (its shared-name cache figures, for the closing
    /// line of a crawl).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Also runs the active acceptance probe (MEASUREMENTS §3) on every
    /// domain; s2s streams then carry the probe domain as `from`.
    pub fn with_acceptance(mut self, acceptance: impl ActiveProbe + 'static) -> Self {
        let mut ctx = (*self.ctx).clone();
        ctx.probe_domain = Some(acceptance.domain().to_string());
        self.ctx = Arc::new(ctx);
        self.acceptance = Some(Arc::new(acceptance));
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
