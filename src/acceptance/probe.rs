//! The acceptance probe's I/O (MEASUREMENTS §3): on a target's s2s
//! endpoint, as `from=PROBE`, one attempt per probe certificate
//! (STARTTLS presenting it, SASL EXTERNAL, then ping and version), and a
//! separate dialback attempt (XEP-0220) for which the probe's listener
//! acts as our authoritative server.

use crate::identity::{ProbeCert, ProbeIdentity};
use crate::model::acceptance::{
    AcceptanceReport, AttemptReport, DialbackOutcome, DialbackReport, InboundReport, IqOutcome,
    ProbeCertKind,
};
use crate::model::report::EndpointReport;
use crate::model::summary::DomainSummary;
use crate::probe::endpoint::{ConnectOptions, ProbeContext, Session, open_session};
use crate::probe::plan::EndpointPlan;
use crate::s2s::steps::{self, StepError};
use crate::xmpp::Service;
use crate::xmpp::element::Element;
use crate::xmpp::iq::{self, IqKind, SoftwareVersion};
use crate::xmpp::sasl::SaslOutcome;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// What the acceptance probe needs from the probe domain's authoritative
/// server (implemented by [`crate::listener::ProbeListener`]): dialback
/// keys it will confirm, and the replies targets deliver to it.
pub trait Authority: Send + Sync {
    /// The XEP-0185 key for our `db:result` to `receiving` on a stream
    /// whose id `receiving` gave us.
    fn dialback_key(&self, receiving: &str, stream_id: &str) -> String;
    /// Registers interest in the IQ answer `peer` delivers with `id`.
    fn expect_iq(&self, peer: &str, id: &str) -> oneshot::Receiver<Element>;
    /// `db:verify` requests from `peer` answered `valid` so far.
    fn verifies_from(&self, peer: &str) -> usize;
    /// Streams `peer` opened to us so far.
    fn inbound(&self, peer: &str) -> Vec<InboundReport>;
    /// `peer` is being probed from now on: its streams may authenticate
    /// and count as evidence. Resolves once every listener that may see
    /// those streams knows (another worker's, on several hosts).
    fn begin(&self, peer: &str) -> futures::future::BoxFuture<'static, ()>;
    /// `peer`'s run ended: forget it.
    fn end(&self, peer: &str);
    /// `db:verify` requests from `peer` once any relayed one had time to
    /// arrive (called after a `valid` dialback answer, which implies one).
    fn settled_verifies<'a>(
        &'a self,
        peer: &'a str,
        _before: usize,
    ) -> futures::future::BoxFuture<'a, usize> {
        let n = self.verifies_from(peer);
        Box::pin(std::future::ready(n))
    }
}

/// Ends the authority's interest in a target when dropped, also when the
/// run is cancelled (a crawl stopping mid-domain).
struct InFlight<'a> {
    authority: &'a dyn Authority,
    target: &'a str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.authority.end(self.target);
    }
}

/// Runs the acceptance probe for one domain.
#[derive(Clone)]
pub struct AcceptanceProbe {
    identity: Arc<ProbeIdentity>,
    authority: Arc<dyn Authority>,
}

fn random_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Waits for an IQ answer with `id`, on our own stream (a bidi or
/// same-stream answer) or delivered to the authority (the usual case:
/// the target's own connection to our listener).
async fn wait_reply(
    session: &mut Session,
    rx: oneshot::Receiver<Element>,
    id: &str,
    limit: Duration,
) -> Option<Element> {
    let mut rx = rx;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        tokio::select! {
            r = &mut rx => return r.ok(),
            el = tokio::time::timeout_at(deadline, session.stream.read_element()) => match el {
                Err(_) => return None,
                Ok(Ok(el)) if iq::parse(&el).is_some_and(|q| q.id == id) => return Some(el),
                Ok(Ok(_)) => continue,
                // Our stream died: the answer can still come to the listener.
                Ok(Err(_)) => {
                    return tokio::time::timeout_at(deadline, rx).await.ok().and_then(Result::ok);
                }
            },
        }
    }
}

/// The answers to the ping and version queries sent once authenticated.
#[derive(Default)]
struct IqAnswers {
    ping: IqOutcome,
    version_query: IqOutcome,
    software: Option<SoftwareVersion>,
}

fn iq_outcome(el: Option<&Element>) -> IqOutcome {
    match el.and_then(iq::parse).map(|q| q.kind) {
        Some(IqKind::Result) => IqOutcome::Result,
        Some(IqKind::Error { condition }) => IqOutcome::Error { condition },
        Some(other) => IqOutcome::Error {
            condition: format!("unexpected iq type {other:?}"),
        },
        None => IqOutcome::Timeout,
    }
}

impl AcceptanceProbe {
    /// A probe speaking as `identity`, with `authority` answering for it.
    pub fn new(identity: Arc<ProbeIdentity>, authority: Arc<dyn Authority>) -> Self {
        Self {
            identity,
            authority,
        }
    }

    /// Our domain.
    pub fn domain(&self) -> &str {
        &self.identity.domain
    }

    /// Ping and version once authenticated (XEP-0199, XEP-0092).
    async fn ping_and_version(
        &self,
        ctx: &ProbeContext,
        target: &str,
        session: &mut Session,
    ) -> IqAnswers {
        let me = &self.identity.domain;
        let limit = ctx.limits.phase_timeout;
        let (pid, vid) = (random_id("ping"), random_id("version"));
        let (prx, vrx) = (
            self.authority.expect_iq(target, &pid),
            self.authority.expect_iq(target, &vid),
        );
        let sent = async {
            steps::send(&mut session.stream, &iq::ping(me, target, &pid)).await?;
            steps::send(&mut session.stream, &iq::version_query(me, target, &vid)).await
        }
        .await;
        if let Err(e) = sent {
            tracing::debug!(target, error = %e, "could not send ping/version");
            return IqAnswers::default();
        }
        let ping = wait_reply(session, prx, &pid, limit).await;
        let version = wait_reply(session, vrx, &vid, limit).await;
        let software = version.as_ref().and_then(|el| {
            let q = iq::parse(el)?;
            (q.kind == IqKind::Result)
                .then_some(q.payload)
                .flatten()
                .and_then(iq::parse_version)
        });
        IqAnswers {
            ping: iq_outcome(ping.as_ref()),
            version_query: iq_outcome(version.as_ref()),
            software,
        }
    }

    /// One attempt presenting `cert` (MEASUREMENTS §3 items 1–3 and 5).
    async fn attempt(
        &self,
        ctx: &ProbeContext,
        target: &str,
        plan: &EndpointPlan,
        kind: ProbeCertKind,
        cert: &ProbeCert,
    ) -> AttemptReport {
        let opts = ConnectOptions {
            client_cert: Some(cert.key.clone()),
        };
        let (connection, session) = open_session(ctx, target, plan, &opts).await;
        let mut a = AttemptReport {
            cert: kind,
            client_cert_sent: connection.tls.as_ref().is_some_and(|t| t.client_cert_sent),
            external_offered: None,
            external: None,
            external_fault: None,
            dialback_offered: None,
            ping: IqOutcome::NotAttempted,
            version_query: IqOutcome::NotAttempted,
            version: None,
            detail: None,
            connection,
        };
        let Some(mut s) = session else {
            return a;
        };
        a.external_offered = Some(s.features.sasl_mechanisms.iter().any(|m| m == "EXTERNAL"));
        // XEP-0220 §2.4: the stream feature is the offer; a bare `xmlns:db`
        // on the header is not (servers declare it whether or not they
        // will do dialback).
        a.dialback_offered = Some(s.features.dialback);
        if a.external_offered == Some(true) {
            let me = self.identity.domain.clone();
            match steps::auth_external(&mut s.stream, &me, target, ctx.limits.phase_timeout).await {
                Ok((outcome, _)) => a.external = Some(outcome),
                Err(e) => {
                    a.external_fault = Some((&e).into());
                    a.detail = Some(format!("EXTERNAL: {e}"));
                }
            }
        }
        if a.external == Some(SaslOutcome::Success) {
            let answers = self.ping_and_version(ctx, target, &mut s).await;
            a.ping = answers.ping;
            a.version_query = answers.version_query;
            a.version = answers.software;
        }
        s.close().await;
        a
    }

    /// The dialback attempt (MEASUREMENTS §3 item 4), presenting the
    /// server-only certificate as a real peer with such a certificate would.
    async fn dialback(
        &self,
        ctx: &ProbeContext,
        target: &str,
        plan: &EndpointPlan,
    ) -> DialbackReport {
        let opts = ConnectOptions {
            client_cert: Some(self.identity.server_only.key.clone()),
        };
        let before = self.authority.verifies_from(target);
        let (connection, session) = open_session(ctx, target, plan, &opts).await;
        let mut report = DialbackReport {
            outcome: DialbackOutcome::ConnectionFailed,
            verify_received: false,
            ping: IqOutcome::NotAttempted,
            version_query: IqOutcome::NotAttempted,
            version: None,
            connection,
        };
        let Some(mut s) = session else {
            return report;
        };
        if !s.features.dialback {
            report.outcome = DialbackOutcome::NotOffered;
            s.close().await;
            return report;
        }
        let Some(sid) = s.stream_id.clone() else {
            report.outcome = DialbackOutcome::Error {
                condition: "no stream id on the target's header".into(),
            };
            s.close().await;
            return report;
        };
        let key = self.authority.dialback_key(target, &sid);
        let me = self.identity.domain.clone();
        // The target verifies with our listener before answering: allow
        // one connect-and-negotiate round on top of the phase timeout.
        let limit = ctx.limits.phase_timeout * 2;
        report.outcome = match steps::dialback(&mut s.stream, &me, target, &key, limit).await {
            Ok(answer) => answer.into(),
            Err(StepError::Timeout) => DialbackOutcome::Timeout,
            Err(e) => DialbackOutcome::Error {
                condition: e.to_string(),
            },
        };
        let verifies = if report.outcome == DialbackOutcome::Valid {
            self.authority.settled_verifies(target, before).await
        } else {
            self.authority.verifies_from(target)
        };
        report.verify_received = verifies > before;
        if report.outcome == DialbackOutcome::Valid {
            let answers = self.ping_and_version(ctx, target, &mut s).await;
            report.ping = answers.ping;
            report.version_query = answers.version_query;
            report.version = answers.software;
        }
        s.close().await;
        report
    }

    /// Runs the attempts against the s2s endpoints whose TLS handshake
    /// completed in the passive probe, whatever the certificate-less stream
    /// did after TLS (a `s2s_secure_auth` server refuses it with
    /// `not-authorized`, yet accepts a peer presenting a certificate), in
    /// the order a peer tries them: the first endpoint where the
    /// server-only attempt gets a TLS session (or a TLS verdict on our
    /// certificate) is where every attempt runs. Then derives the verdict.
    pub async fn run(
        &self,
        ctx: &ProbeContext,
        target: &str,
        plans: &[EndpointPlan],
        passive: &[EndpointReport],
        summary: &DomainSummary,
    ) -> AcceptanceReport {
        let announced = self.authority.begin(target);
        let _in_flight = InFlight {
            authority: &*self.authority,
            target,
        };
        announced.await;
        let candidates = passive.iter().zip(plans).filter(|(e, _)| {
            e.key.service == Service::S2s && e.tls.as_ref().is_some_and(|t| t.version.is_some())
        });
        let mut attempts = Vec::new();
        let mut dialback = None;
        let mut endpoint = None;
        for (_, plan) in candidates {
            let first = self
                .attempt(
                    ctx,
                    target,
                    plan,
                    ProbeCertKind::ServerOnly,
                    &self.identity.server_only,
                )
                .await;
            let reached_tls = first
                .connection
                .tls
                .as_ref()
                .is_some_and(|t| t.version.is_some());
            attempts = vec![first];
            endpoint = Some(format!(
                "{} {}",
                plan.key.addr(),
                crate::model::names::label(plan.key.transport)
            ));
            if reached_tls {
                if let Some(cs) = &self.identity.client_and_server {
                    attempts.push(
                        self.attempt(ctx, target, plan, ProbeCertKind::ClientAndServer, cs)
                            .await,
                    );
                }
                if attempts.iter().any(|a| a.dialback_offered == Some(true)) {
                    dialback = Some(self.dialback(ctx, target, plan).await);
                }
                break;
            }
        }
        let judgement = crate::verdict::acceptance(&summary.s2s, &attempts, dialback.as_ref());
        let software = attempts
            .iter()
            .find_map(|a| a.version.clone())
            .or_else(|| dialback.as_ref().and_then(|d| d.version.clone()));
        AcceptanceReport {
            probe_domain: self.identity.domain.clone(),
            inbound: self.authority.inbound(target),
            attempts,
            dialback,
            software,
            verdict: judgement.verdict,
            reason_code: judgement.reason,
            endpoint,
            reason: judgement.text,
        }
    }
}

impl crate::probe::ActiveProbe for AcceptanceProbe {
    fn domain(&self) -> &str {
        Self::domain(self)
    }

    fn run<'a>(
        &'a self,
        ctx: &'a ProbeContext,
        target: &'a str,
        plans: &'a [EndpointPlan],
        passive: &'a [EndpointReport],
        summary: &'a DomainSummary,
    ) -> futures::future::BoxFuture<'a, AcceptanceReport> {
        Box::pin(Self::run(self, ctx, target, plans, passive, summary))
    }
}
