//! The initiating side of a server-to-server stream, for delivering
//! replies and for verifying dialback keys with an authoritative server:
//! [`connect`] opens an authenticated stream (STARTTLS, then SASL EXTERNAL
//! or dialback), [`verify_key`] asks `db:verify` (XEP-0220 §2.1.2), and
//! [`direct_plan`] / [`resolve_plans`] say where to connect.
//!
//! Used by the probe's dialback listener ([`crate::listener`]) and the
//! testnet's simulated servers; also reachable as
//! `crate::s2s::inbound::{connect, verify_key, ...}`.

use crate::dns::resolve::Resolver;
use crate::probe::endpoint::{ConnectOptions, ProbeContext, Session, open_session};
use crate::probe::plan::{EndpointPlan, plan};
use crate::probe::report::{EndpointKey, EndpointSource, Transport};
use crate::s2s::steps::{self, StepError};
use crate::xmpp::Service;
use crate::xmpp::dialback::{self, Answer};
use crate::xmpp::sasl::SaslOutcome;
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;

/// Why an outbound s2s stream could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OutboundError {
    /// DNS gave no s2s endpoint (or the address policy refused them all).
    #[error("no s2s endpoint for {0}")]
    NoEndpoint(String),
    /// No endpoint reached the post-TLS features.
    #[error("{domain}: connection failed: {detail}")]
    Connect {
        /// The remote domain.
        domain: String,
        /// The last endpoint's outcome.
        detail: String,
    },
    /// Neither EXTERNAL nor dialback authenticated us.
    #[error("{domain}: not authenticated: {detail}")]
    NotAuthenticated {
        /// The remote domain.
        domain: String,
        /// What was tried and answered.
        detail: String,
    },
    /// A step failed (timeout, stream error, broken stream).
    #[error("{domain}: {error}")]
    Step {
        /// The remote domain.
        domain: String,
        /// The step's error.
        error: StepError,
    },
}

/// How an outbound stream authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundAuth {
    /// SASL EXTERNAL (XEP-0178).
    External,
    /// Dialback (XEP-0220), our authoritative server confirming the key.
    Dialback,
}

/// An authenticated outbound stream.
pub struct Outbound {
    /// The live stream (its `features` are the post-authentication ones
    /// after EXTERNAL).
    pub session: Session,
    /// How it authenticated.
    pub auth: OutboundAuth,
}

/// A STARTTLS s2s plan for a known address (no DNS): used when the
/// authoritative address is given, as the testnet gives the probe's.
pub fn direct_plan(host: &str, addr: SocketAddr) -> EndpointPlan {
    EndpointPlan {
        key: EndpointKey {
            service: Service::S2s,
            transport: Transport::Starttls,
            host: host.to_owned(),
            ip: addr.ip(),
            port: addr.port(),
        },
        source: EndpointSource::Srv,
        tlsa: Vec::new(),
    }
}

/// The s2s endpoints of `domain` (RFC 6120 §3.2: SRV, else the domain's
/// own address on 5269), in the order the probe would try them.
pub async fn resolve_plans(resolver: &Resolver, domain: &str) -> Vec<EndpointPlan> {
    let dns = resolver.discover(domain).await;
    plan(domain, &dns)
        .into_iter()
        .filter(|p| p.key.service == Service::S2s)
        .collect()
}

/// Opens the first endpoint in `plans` that reaches post-TLS features,
/// with our header `from` set to `from`.
async fn first_session(
    ctx: &ProbeContext,
    from: &str,
    to: &str,
    plans: &[EndpointPlan],
    opts: &ConnectOptions,
) -> Result<Session, OutboundError> {
    let mut ctx = ctx.clone();
    ctx.probe_domain = Some(from.to_owned());
    let mut detail = None;
    for p in plans.iter().filter(|p| p.key.service == Service::S2s) {
        let (report, session) = open_session(&ctx, to, p, opts).await;
        if let Some(s) = session {
            return Ok(s);
        }
        detail = Some(format!(
            "{}:{} {}{}",
            p.key.ip,
            p.key.port,
            crate::model::names::json(report.outcome)
                .as_str()
                .unwrap_or("failed"),
            report.detail.map(|d| format!(": {d}")).unwrap_or_default()
        ));
    }
    Err(match detail {
        None => OutboundError::NoEndpoint(to.to_owned()),
        Some(detail) => OutboundError::Connect {
            domain: to.to_owned(),
            detail,
        },
    })
}

/// Opens an authenticated s2s stream from `from` to `to` (RFC 6120 §4–§6):
/// STARTTLS presenting `cert` as TLS client certificate, SASL EXTERNAL
/// (XEP-0178) when offered, else (or after an EXTERNAL failure) dialback
/// (XEP-0220 §2.1.1) with a XEP-0185 key from `secret`, which our own
/// authoritative server must then confirm when `to` calls it back.
pub async fn connect(
    ctx: &ProbeContext,
    from: &str,
    to: &str,
    plans: &[EndpointPlan],
    cert: Option<Arc<CertifiedKey>>,
    secret: &[u8],
) -> Result<Outbound, OutboundError> {
    let has_cert = cert.is_some();
    let mut s = first_session(ctx, from, to, plans, &ConnectOptions { client_cert: cert }).await?;
    let limit = ctx.limits.phase_timeout;
    let step_err = |error| OutboundError::Step {
        domain: to.to_owned(),
        error,
    };
    let mut tried = Vec::new();
    if has_cert && s.features.sasl_mechanisms.iter().any(|m| m == "EXTERNAL") {
        let (outcome, feats) = steps::auth_external(&mut s.stream, from, to, limit)
            .await
            .map_err(step_err)?;
        if let (SaslOutcome::Success, Some(f)) = (&outcome, feats) {
            s.features = f;
            return Ok(Outbound {
                session: s,
                auth: OutboundAuth::External,
            });
        }
        tried.push(format!("EXTERNAL: {outcome:?}"));
    }
    if s.features.dialback
        && let Some(id) = s.stream_id.clone()
    {
        let key = dialback::key(secret, to, from, &id);
        let answer = steps::dialback(&mut s.stream, from, to, &key, limit * 3)
            .await
            .map_err(step_err)?;
        if answer == Answer::Valid {
            return Ok(Outbound {
                session: s,
                auth: OutboundAuth::Dialback,
            });
        }
        tried.push(format!("dialback: {answer:?}"));
    } else {
        tried.push("dialback not offered".into());
    }
    s.close().await;
    Err(OutboundError::NotAuthenticated {
        domain: to.to_owned(),
        detail: tried.join("; "),
    })
}

/// XEP-0220 §2.1.2 as the receiving server `from`: connects to `to`'s
/// authoritative server (first reachable endpoint of `plans`, no client
/// certificate) and asks whether `key` is genuine for stream `id`.
pub async fn verify_key(
    ctx: &ProbeContext,
    from: &str,
    to: &str,
    plans: &[EndpointPlan],
    id: &str,
    key: &str,
) -> Result<bool, OutboundError> {
    let mut s = first_session(ctx, from, to, plans, &ConnectOptions::default()).await?;
    let answer = steps::verify(&mut s.stream, from, to, id, key, ctx.limits.phase_timeout).await;
    s.close().await;
    answer
        .map(|a| a == Answer::Valid)
        .map_err(|error| OutboundError::Step {
            domain: to.to_owned(),
            error,
        })
}
