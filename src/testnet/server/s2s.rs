//! The s2s behaviour of the simulated servers as an [`InboundPolicy`]
//! ([`S2sPolicy`]), and the acceptance tests that drive it by hand
//! against a real probe listener.

use super::features_xml;
use super::{Listener, Shared, tenant};
use crate::s2s::inbound::{self, InboundPolicy, Stage};
use crate::testnet::layout::Placed;
use crate::testnet::profile::{ClientCertPolicy, StreamShape};
use crate::tls::{ChainVerdict, cert};
use crate::xmpp::Service;
use crate::xmpp::element::Element;
use crate::xmpp::iq::{self, IqKind, NS_PING, NS_VERSION, SoftwareVersion};
use crate::xmpp::sasl::SaslOutcome;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, UnixTime};
use std::sync::Arc;

/// The s2s behaviour of the simulated servers (TESTNET.md acceptance
/// group) as an [`InboundPolicy`]: features from the profile's shape, the
/// client-certificate policy of [`ClientCertPolicy`] at EXTERNAL time
/// (XEP-0178 §3), dialback verified with the probe domain's listener
/// (XEP-0220 §2.1.2), ping (XEP-0199) and version (XEP-0092) answered over
/// the domain's own outbound stream to the probe (RFC 6120 §8.1.1; no
/// XEP-0288 bidi).
pub(super) struct S2sPolicy<'a> {
    pub(super) sh: &'a Shared,
    pub(super) what: &'a Listener,
}

/// Text of the strict servers' EXTERNAL refusal (ejabberd before 25.08).
pub const UNSUPPORTED_PURPOSE: &str = "unsupported certificate purpose";
/// Text of the untrusting server's EXTERNAL refusal.
pub const NOT_TRUSTED: &str = "certificate not trusted";

fn not_authorized(text: impl Into<String>) -> SaslOutcome {
    SaslOutcome::Failure {
        condition: "not-authorized".into(),
        text: Some(text.into()),
    }
}

impl InboundPolicy for S2sPolicy<'_> {
    type Local = (Arc<Placed>, StreamShape);

    fn local(&self, to: Option<&str>) -> Option<Self::Local> {
        let p = tenant(self.what, to)?;
        Some((p.clone(), p.current().0.s2s?))
    }

    fn domain<'a>(&'a self, local: &'a Self::Local) -> &'a str {
        &local.0.domain
    }

    fn features(&self, (_, shape): &Self::Local, stage: Stage) -> String {
        match stage {
            Stage::BeforeTls => features_xml(shape, Service::S2s, false),
            Stage::AfterTls { .. } => features_xml(shape, Service::S2s, true),
            Stage::Authenticated => inbound::features(stage, false, shape.dialback),
        }
    }

    fn tls_config(&self, (p, _): &Self::Local) -> Option<Arc<ServerConfig>> {
        self.sh.config(p, Service::S2s, false).ok()
    }

    fn external(
        &self,
        (_, shape): &Self::Local,
        peer: &str,
        chain: &[CertificateDer<'static>],
    ) -> SaslOutcome {
        match shape.client_certs {
            // RFC 6120 §6.5.6: EXTERNAL is not among the mechanisms.
            ClientCertPolicy::NoRequest => {
                return SaslOutcome::Failure {
                    condition: "invalid-mechanism".into(),
                    text: None,
                };
            }
            ClientCertPolicy::Untrusting => return not_authorized(NOT_TRUSTED),
            ClientCertPolicy::StrictEku => {
                let leaf = chain.first().and_then(|c| cert::analyze(c.as_ref()).ok());
                if leaf.is_some_and(|c| c.eku.present && !c.eku.client_auth && !c.eku.any) {
                    return not_authorized(UNSUPPORTED_PURPOSE);
                }
            }
            ClientCertPolicy::Lenient | ClientCertPolicy::HandshakeReject => {}
        }
        if chain.is_empty() {
            return not_authorized("no client certificate");
        }
        // Validated as a *server* certificate for the peer's domain
        // (RFC 6120 §13.7.2.2), against the testnet root.
        let (verdict, detail, _) =
            self.sh
                .verifier
                .verdict_chain(peer, Service::S2s, chain, UnixTime::now());
        if verdict == ChainVerdict::Trusted {
            SaslOutcome::Success
        } else {
            not_authorized(format!(
                "{NOT_TRUSTED}: {}",
                detail.unwrap_or_else(|| format!("{verdict:?}"))
            ))
        }
    }

    fn dialback(&self, (_, shape): &Self::Local) -> bool {
        shape.dialback
    }

    fn requires_peer_certificate(&self, (_, shape): &Self::Local) -> bool {
        shape.secure_auth
    }

    async fn verify_dialback(
        &self,
        (p, _): &Self::Local,
        peer: &str,
        stream_id: &str,
        key: &str,
    ) -> bool {
        let fed = &self.sh.federation;
        if peer != fed.probe_domain {
            // The only authoritative server the testnet knows is the probe's.
            return false;
        }
        let plan = inbound::direct_plan(peer, fed.probe_addr);
        // Calls back from its own address, as a real server on its own
        // host would (the listener's per-address caps see each server).
        let ctx = self.sh.ctx.leaving_from(p.ip);
        inbound::verify_key(&ctx, &p.domain, peer, &[plan], stream_id, key)
            .await
            .unwrap_or(false)
    }

    fn secret<'a>(&'a self, _: &'a Self::Local) -> &'a [u8] {
        &self.sh.federation.secret
    }

    async fn iq(&self, (p, shape): &Self::Local, peer: &str, el: &Element) -> Option<String> {
        let q = iq::parse(el)?;
        let to = q.from.unwrap_or(peer);
        let reply = match (&q.kind, q.payload) {
            (IqKind::Get, Some(x)) if x.is(NS_PING, "ping") && !shape.refuse_ping => {
                iq::empty_result(&p.domain, to, q.id)
            }
            (IqKind::Get, Some(x)) if x.is(NS_VERSION, "query") && !shape.refuse_version => {
                let (name, version) = shape.software;
                let v = SoftwareVersion {
                    name: Some(name.into()),
                    version: Some(version.into()),
                    os: None,
                };
                iq::version_result(&p.domain, to, q.id, &v)
            }
            (IqKind::Get | IqKind::Set, _) => {
                iq::error_reply(&p.domain, to, q.id, "service-unavailable")
            }
            _ => return None,
        };
        if peer == self.sh.federation.probe_domain {
            self.sh.deliver(p, &reply).await;
        }
        None
    }
}

/// The acceptance profiles (TESTNET.md), driven by hand against a real
/// [`crate::listener::ProbeListener`]: each test names the behaviour it
/// proves and fails if the simulated server stops showing it.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ProbeIdentity;
    use crate::listener::ProbeListener;
    use crate::probe::endpoint::{ProbeContext, Session};
    use crate::probe::plan::EndpointPlan;
    use crate::probe::report::{EndpointOutcome, EndpointReport};
    use crate::s2s::steps;
    use crate::testnet::Testnet;
    use crate::testnet::harness::{ctx, listener, ping_and_version, resolver, session, testnet};
    use crate::tls::{EkuClass, TlsFailure};
    use crate::xmpp::dialback::Answer;
    use rustls::sign::CertifiedKey;
    use std::time::Duration;

    struct Run {
        net: Testnet,
        l: Arc<ProbeListener>,
        id: ProbeIdentity,
        target: String,
        cx: ProbeContext,
        plan: EndpointPlan,
    }

    impl Run {
        async fn start(octet: u8, profile: &str) -> Self {
            let net = testnet(octet, &[profile], vec![]).await;
            let l = listener(&net).await;
            let id = net.probe_identity().expect("identity");
            let target = net.domains().remove(0);
            l.begin(&target);
            let plan = inbound::resolve_plans(&resolver(&net), &target)
                .await
                .into_iter()
                .next()
                .expect("s2s endpoint");
            Self {
                cx: ctx(&net, &id.domain),
                net,
                l,
                id,
                target,
                plan,
            }
        }

        fn cert(&self, client_and_server: bool) -> Arc<CertifiedKey> {
            if client_and_server {
                self.id
                    .client_and_server
                    .as_ref()
                    .expect("second cert")
                    .key
                    .clone()
            } else {
                self.id.server_only.key.clone()
            }
        }

        async fn connect(&self, client_and_server: bool) -> (EndpointReport, Option<Session>) {
            session(
                &self.cx,
                &self.target,
                &self.plan,
                Some(self.cert(client_and_server)),
            )
            .await
        }

        /// STARTTLS with the chosen certificate, then EXTERNAL.
        async fn external(
            &self,
            client_and_server: bool,
        ) -> (EndpointReport, SaslOutcome, Session) {
            let (r, s) = self.connect(client_and_server).await;
            let mut s = s.unwrap_or_else(|| panic!("session: {r:?}"));
            assert!(
                s.features.sasl_mechanisms.iter().any(|m| m == "EXTERNAL"),
                "EXTERNAL offered"
            );
            let (outcome, _) = steps::auth_external(
                &mut s.stream,
                &self.id.domain,
                &self.target,
                Duration::from_secs(5),
            )
            .await
            .expect("EXTERNAL answered");
            (r, outcome, s)
        }

        /// Dialback with the server-only certificate presented, our listener
        /// as authoritative server.
        async fn dialback(&self) -> (Answer, Session) {
            let (r, s) = self.connect(false).await;
            let mut s = s.unwrap_or_else(|| panic!("session: {r:?}"));
            assert!(s.features.dialback, "dialback offered after TLS");
            let sid = s.stream_id.clone().expect("stream id");
            let key = self.l.dialback_key(&self.target, &sid);
            let a = steps::dialback(
                &mut s.stream,
                &self.id.domain,
                &self.target,
                &key,
                Duration::from_secs(15),
            )
            .await
            .expect("dialback answered");
            (a, s)
        }

        /// Ping and version answered through the listener; returns the
        /// reported software.
        async fn software(&self, s: &mut Session) -> SoftwareVersion {
            let (ping, version) = ping_and_version(s, &self.l, &self.id.domain, &self.target).await;
            assert_eq!(ping.attr("type"), Some("result"));
            let q = iq::parse(&version).expect("iq");
            assert_eq!(q.kind, IqKind::Result);
            iq::parse_version(q.payload.expect("query")).expect("version payload")
        }

        async fn stop(self) {
            self.l.shutdown().await;
            self.net.shutdown().await;
        }
    }

    fn failure(condition: &str, text: &str) -> SaslOutcome {
        SaslOutcome::Failure {
            condition: condition.into(),
            text: Some(text.into()),
        }
    }

    /// `lenient` (Prosody): a server-only client certificate passes
    /// EXTERNAL; ping and version come back over the target's own stream to
    /// the listener (which authenticated the target by EXTERNAL in turn).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lenient_accepts_server_only_and_answers_via_listener() {
        let run = Run::start(50, "lenient").await;
        let (r, outcome, mut s) = run.external(false).await;
        assert!(r.tls.as_ref().is_some_and(|t| t.client_cert_requested));
        assert_eq!(outcome, SaslOutcome::Success);
        let v = run.software(&mut s).await;
        assert_eq!(v.name.as_deref(), Some("Prosody-like"));
        assert_eq!(v.version.as_deref(), Some("0.12.3"));
        let inbound = run.l.inbound(&run.target);
        assert_eq!(inbound.len(), 1, "one reused outbound stream: {inbound:?}");
        assert_eq!(inbound[0].client_eku, Some(EkuClass::ClientAndServer));
        assert_eq!(
            inbound[0].auth,
            crate::acceptance::InboundAuth::External {
                outcome: SaslOutcome::Success
            }
        );
        run.stop().await;
    }

    /// `strict_eku` (ejabberd < 25.08): server-only refused with
    /// `unsupported certificate purpose`, client-and-server accepted,
    /// dialback valid (verified with the listener) and then answering.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strict_eku_refuses_server_only_accepts_client_auth_and_dialback() {
        let run = Run::start(51, "strict_eku").await;
        let (_, outcome, _) = run.external(false).await;
        assert_eq!(outcome, failure("not-authorized", UNSUPPORTED_PURPOSE));
        let (_, outcome, _) = run.external(true).await;
        assert_eq!(outcome, SaslOutcome::Success);
        let (answer, mut s) = run.dialback().await;
        assert_eq!(answer, Answer::Valid);
        assert!(
            run.l.verifies_from(&run.target) >= 1,
            "target asked our listener"
        );
        let v = run.software(&mut s).await;
        assert_eq!(v.name.as_deref(), Some("ejabberd-like"));
        run.stop().await;
    }

    /// `strict_eku_no_dialback`: the same refusal, and no dialback offered
    /// before or after TLS: no fallback for a server-only peer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strict_eku_no_dialback_offers_no_fallback() {
        let run = Run::start(52, "strict_eku_no_dialback").await;
        let (r, outcome, s) = run.external(false).await;
        assert_eq!(outcome, failure("not-authorized", UNSUPPORTED_PURPOSE));
        assert!(!s.features.dialback);
        assert_eq!(r.pre_tls.map(|f| f.dialback), Some(false));
        run.stop().await;
    }

    /// `no_client_cert`: no CertificateRequest, no EXTERNAL, dialback only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_client_cert_relies_on_dialback() {
        let run = Run::start(53, "no_client_cert").await;
        for cs in [false, true] {
            let (r, s) = run.connect(cs).await;
            let s = s.unwrap_or_else(|| panic!("session: {r:?}"));
            assert_eq!(r.tls.map(|t| t.client_cert_requested), Some(false));
            assert!(
                s.features.sasl_mechanisms.is_empty(),
                "EXTERNAL not offered"
            );
        }
        let (answer, mut s) = run.dialback().await;
        assert_eq!(answer, Answer::Valid);
        let v = run.software(&mut s).await;
        assert_eq!(v.name.as_deref(), Some("dialback-only"));
        run.stop().await;
    }

    /// `handshake_reject`: a server-only client certificate ends the TLS
    /// handshake with a fatal alert (seen on the first read with TLS 1.3);
    /// client-and-server passes TLS and EXTERNAL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handshake_reject_alerts_on_server_only() {
        let run = Run::start(54, "handshake_reject").await;
        let (r, s) = run.connect(false).await;
        assert!(s.is_none());
        assert_eq!(r.outcome, EndpointOutcome::TlsFailed);
        let tls = r.tls.expect("tls facts");
        assert_eq!(
            tls.failure,
            Some(TlsFailure::Alert),
            "{:?}",
            tls.failure_detail
        );
        assert!(tls.client_cert_requested);
        let (_, outcome, _) = run.external(true).await;
        assert_eq!(outcome, SaslOutcome::Success);
        run.stop().await;
    }

    /// `untrusting`: EXTERNAL refused whatever the certificate (trust, not
    /// EKU); dialback still works.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn untrusting_refuses_both_certs_dialback_valid() {
        let run = Run::start(55, "untrusting").await;
        for cs in [false, true] {
            let (r, outcome, _) = run.external(cs).await;
            assert!(r.tls.as_ref().is_some_and(|t| t.client_cert_requested));
            assert_eq!(outcome, failure("not-authorized", NOT_TRUSTED));
        }
        let (answer, _) = run.dialback().await;
        assert_eq!(answer, Answer::Valid);
        run.stop().await;
    }
}
