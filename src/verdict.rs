//! **The verdict logic.** Per-domain, per-service verdicts derived from a
//! probe report by pure functions (MEASUREMENTS §2 and the figures §4 needs).
//!
//! Nothing here does I/O: a reader can re-derive every verdict from the raw
//! evidence in the JSON report, and the unit tests do exactly that.

use crate::dns::{DnsOutcome, DnsReport, SrvService};
use crate::model::names::label;
use crate::model::report::{ConnectOutcome, EndpointOutcome, EndpointReport, Transport};
use crate::tls::TlsInfo;
use crate::xmpp::Service;

pub use crate::model::summary::{DomainSummary, ServiceStatus, ServiceSummary};

/// Derives the summary of a domain from its DNS answers and endpoints
/// (the acceptance verdict starts as `not_run`).
pub fn summarize(dns: &DnsReport, endpoints: &[EndpointReport]) -> DomainSummary {
    DomainSummary {
        c2s: summarize_service(Service::C2s, dns, endpoints),
        s2s: summarize_service(Service::S2s, dns, endpoints),
        acceptance: crate::model::acceptance::AcceptanceVerdict::NotRun,
        software: None,
    }
}

fn srv_services(service: Service) -> [SrvService; 2] {
    match service {
        Service::C2s => [SrvService::XmppClient, SrvService::XmppsClient],
        Service::S2s => [SrvService::XmppServer, SrvService::XmppsServer],
    }
}

/// Derives one service's summary. Endpoints of the other service are ignored.
pub fn summarize_service(
    service: Service,
    dns: &DnsReport,
    endpoints: &[EndpointReport],
) -> ServiceSummary {
    let eps: Vec<&EndpointReport> = endpoints
        .iter()
        .filter(|e| e.key.service == service)
        .collect();
    let tls_ok: Vec<&EndpointReport> = eps
        .iter()
        .copied()
        .filter(|e| e.outcome == EndpointOutcome::Complete)
        .collect();
    // STARTTLS endpoints come before direct TLS ones in probe order. The
    // primary endpoint is the first whose handshake completed, whatever
    // the stream did afterwards (a server requiring peer certificates
    // refuses our certificate-less stream after TLS: its TLS facts stand).
    let primary = eps.iter().copied().find(|e| tls_session(e));
    let primary_tls: Option<&TlsInfo> = primary.and_then(|e| e.tls.as_ref());
    let leaf = primary_tls.and_then(|t| t.chain.first());
    let pre_tls = eps.iter().find_map(|e| e.pre_tls.as_ref());
    let post_tls = primary.and_then(|e| e.post_tls.as_ref());
    let s2s = service == Service::S2s;

    ServiceSummary {
        status: status(service, dns, &eps),
        endpoints: eps.len(),
        endpoints_tls_ok: tls_ok.len(),
        starttls: pre_tls.map(|f| f.starttls),
        sasl_before_tls: pre_tls.map(|f| f.sasl_mechanisms.clone()),
        direct_tls: tls_ok
            .iter()
            .any(|e| e.key.transport == Transport::DirectTls),
        tls_version: primary_tls.and_then(|t| t.version.clone()),
        chain_verdict: primary_tls.and_then(|t| t.verdict),
        name_match: primary_tls.and_then(|t| t.name_match),
        eku_class: leaf.map(|c| c.eku.class),
        client_purpose: primary_tls.and_then(|t| crate::tls::eku::client_purpose(&t.chain)),
        lets_encrypt: leaf.map(|c| c.lets_encrypt),
        renews_server_only: leaf.and_then(|c| c.renews_server_only),
        client_cert_requested: primary_tls.map(|t| t.client_cert_requested),
        external_offered: post_tls.map(|f| f.sasl_mechanisms.iter().any(|m| m == "EXTERNAL")),
        dialback_offered: post_tls.filter(|_| s2s).map(|f| f.dialback),
        bidi_offered: post_tls.filter(|_| s2s).map(|f| f.bidi),
        dane_match: primary_tls.and_then(|t| t.dane_match),
    }
}

/// The endpoint's TLS handshake completed and no alert followed on the
/// first read (a TLS 1.3 client-certificate rejection).
pub fn tls_session(e: &EndpointReport) -> bool {
    e.tls
        .as_ref()
        .is_some_and(|t| t.version.is_some() && t.failure.is_none())
}

fn status(service: Service, dns: &DnsReport, eps: &[&EndpointReport]) -> ServiceStatus {
    if eps.is_empty() {
        let lookups: Vec<_> = dns
            .srv
            .iter()
            .filter(|s| srv_services(service).contains(&s.service))
            .collect();
        let declined = !lookups.is_empty()
            && lookups
                .iter()
                .all(|s| s.decidedly_unavailable || s.outcome != DnsOutcome::Records);
        if declined && lookups.iter().any(|s| s.decidedly_unavailable) {
            return ServiceStatus::NotOffered;
        }
        return ServiceStatus::NoAddress;
    }
    if eps.iter().any(|e| tls_session(e)) {
        return ServiceStatus::TlsOk;
    }
    if eps
        .iter()
        .all(|e| e.connect == ConnectOutcome::BlockedAddress)
    {
        return ServiceStatus::Blocked;
    }
    let connected: Vec<_> = eps
        .iter()
        .filter(|e| e.connect == ConnectOutcome::Connected)
        .collect();
    if connected.is_empty() {
        return ServiceStatus::Unreachable;
    }
    if connected.iter().any(|e| {
        matches!(
            e.outcome,
            EndpointOutcome::TlsFailed | EndpointOutcome::InjectionAfterProceed
        )
    }) {
        return ServiceStatus::TlsFailed;
    }
    if connected.iter().any(|e| {
        matches!(
            e.outcome,
            EndpointOutcome::NoStarttls | EndpointOutcome::NoVersion
        )
    }) {
        return ServiceStatus::NoTls;
    }
    ServiceStatus::StreamFailed
}

/// An acceptance verdict with its typed reason and the human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptanceJudgement {
    /// The verdict.
    pub verdict: crate::model::acceptance::AcceptanceVerdict,
    /// Why, as a stable code.
    pub reason: crate::model::acceptance::AcceptanceReason,
    /// Why, in words (conditions, alert names, the dialback outcome).
    pub text: Option<String>,
}

fn judged(
    verdict: crate::model::acceptance::AcceptanceVerdict,
    reason: crate::model::acceptance::AcceptanceReason,
    text: impl Into<Option<String>>,
) -> AcceptanceJudgement {
    AcceptanceJudgement {
        verdict,
        reason,
        text: text.into(),
    }
}

/// The acceptance verdict of MEASUREMENTS §3, derived from the attempts'
/// evidence alone. `passive` (the s2s summary of the passive probe) is
/// consulted only when no attempt could be made, to say why: the attempts
/// run on any s2s endpoint whose TLS handshake completed, whatever the
/// certificate-less passive stream did after TLS (a `s2s_secure_auth`
/// server refuses that stream, yet accepts a peer with a certificate).
///
/// The rules, in order:
/// 1. no attempt: no s2s address → `unreachable` (`no_s2s_address`); no
///    TCP connection → `unreachable` (`s2s_unreachable`); else `tls_failed`
///    (`no_tls_session`);
/// 2. EXTERNAL succeeded with the server-only certificate → `accepts_server_only`;
/// 3. no CertificateRequest with either certificate → `no_cert_auth`
///    (EXTERNAL cannot succeed without a presented certificate, even if
///    the server lists it);
/// 4. the server-only attempt did not reach EXTERNAL for a reason other
///    than our certificate (timeout, stream error) → `inconclusive`;
/// 5. the client-and-server control was refused too → `inconclusive`
///    (a trust problem, not an EKU one);
/// 6. otherwise the server-only certificate was refused (TLS alert after
///    presenting it, EXTERNAL failure or EXTERNAL not offered) → with
///    dialback working (or offered and not testable) `rejects_server_only_dialback`,
///    else `rejects_server_only_no_fallback`.
pub fn acceptance(
    passive: &ServiceSummary,
    attempts: &[crate::model::acceptance::AttemptReport],
    dialback: Option<&crate::model::acceptance::DialbackReport>,
) -> AcceptanceJudgement {
    use crate::model::acceptance::{
        AcceptanceReason as R, AcceptanceVerdict as V, DialbackOutcome, ProbeCertKind,
    };
    use crate::xmpp::sasl::SaslOutcome;
    if attempts.is_empty() {
        let why = label(passive.status);
        return match passive.status {
            ServiceStatus::NoAddress | ServiceStatus::Blocked | ServiceStatus::NotOffered => {
                judged(V::Unreachable, R::NoS2sAddress, format!("s2s {why}"))
            }
            ServiceStatus::Unreachable => {
                judged(V::Unreachable, R::S2sUnreachable, format!("s2s {why}"))
            }
            _ => judged(
                V::TlsFailed,
                R::NoTlsSession,
                format!("no TLS handshake completed with any s2s endpoint (s2s {why})"),
            ),
        };
    }
    let find = |k| attempts.iter().find(|a| a.cert == k);
    let Some(so) = find(ProbeCertKind::ServerOnly) else {
        return judged(
            V::Inconclusive,
            R::AttemptIncomplete,
            "no server-only attempt was made".to_string(),
        );
    };
    let cs = find(ProbeCertKind::ClientAndServer);
    let success =
        |a: &crate::model::acceptance::AttemptReport| a.external == Some(SaslOutcome::Success);
    if success(so) {
        return judged(V::AcceptsServerOnly, R::ExternalSucceeded, None);
    }
    let asks = |a: &crate::model::acceptance::AttemptReport| {
        a.connection
            .tls
            .as_ref()
            .is_some_and(|t| t.client_cert_requested)
    };
    if !asks(so) && !cs.is_some_and(asks) && so.connection.tls.is_some() {
        let db = dialback.map_or("no dialback attempt".to_string(), |d| {
            format!("dialback {}", label(&d.outcome))
        });
        let external = if attempts.iter().any(|a| a.external_offered == Some(true)) {
            "EXTERNAL listed but unusable"
        } else {
            "no EXTERNAL"
        };
        return judged(
            V::NoCertAuth,
            R::NoCertificateRequest,
            format!("no CertificateRequest with either certificate ({external}); {db}"),
        );
    }
    // Did the server-only attempt end because of our certificate?
    let tls_rejected = so.client_cert_sent
        && so
            .connection
            .tls
            .as_ref()
            .is_some_and(|t| t.failure == Some(crate::tls::TlsFailure::Alert));
    let external_failed = matches!(so.external, Some(SaslOutcome::Failure { .. }));
    let not_offered = so.external.is_none() && so.external_offered == Some(false);
    if !(tls_rejected || external_failed || not_offered) {
        let why = so
            .detail
            .clone()
            .or_else(|| so.connection.detail.clone())
            .unwrap_or_else(|| label(so.connection.outcome));
        return judged(
            V::Inconclusive,
            R::AttemptIncomplete,
            format!("the server-only attempt did not complete: {why}"),
        );
    }
    let (code, how) = if tls_rejected {
        let alert = so
            .connection
            .tls
            .as_ref()
            .and_then(|t| t.failure_detail.clone())
            .unwrap_or_default();
        (
            R::TlsAlertOnServerOnly,
            format!("TLS rejected the server-only certificate ({alert})"),
        )
    } else {
        match &so.external {
            Some(SaslOutcome::Failure { condition, text }) => (
                R::ExternalRefused,
                format!(
                    "EXTERNAL refused the server-only certificate: {condition}{}",
                    text.as_deref()
                        .map(|t| format!(" ({t})"))
                        .unwrap_or_default()
                ),
            ),
            _ => (
                R::ExternalNotOffered,
                "EXTERNAL not offered to the server-only certificate".into(),
            ),
        }
    };
    let control = match cs {
        Some(cs) if success(cs) => {
            "accepted with client-and-server: the EKU is the reason".to_string()
        }
        Some(cs) => {
            let o = cs
                .external
                .as_ref()
                .map_or_else(|| label(cs.connection.outcome), label);
            return judged(
                V::Inconclusive,
                R::BothCertificatesRefused,
                format!(
                    "{how}, and the client-and-server certificate was refused too ({o}): a trust problem, not an EKU one"
                ),
            );
        }
        None => "no client-and-server control: a trust problem is not ruled out".into(),
    };
    let offered = attempts.iter().any(|a| a.dialback_offered == Some(true));
    let fallback = match dialback.map(|d| &d.outcome) {
        Some(DialbackOutcome::Valid) => Some("dialback succeeded"),
        Some(DialbackOutcome::NotOffered) | None if offered => {
            Some("dialback offered (not verified)")
        }
        _ => None,
    };
    match fallback {
        Some(db) => judged(
            V::RejectsServerOnlyDialback,
            code,
            format!("{how}; {control}; {db}"),
        ),
        None => {
            let db = dialback.map_or("dialback not offered".to_string(), |d| {
                format!("dialback {}", label(&d.outcome))
            });
            judged(
                V::RejectsServerOnlyNoFallback,
                code,
                format!("{how}; {control}; {db}"),
            )
        }
    }
}

#[cfg(test)]
mod acceptance_tests {
    use super::*;
    use crate::model::acceptance::{
        AcceptanceVerdict as V, AttemptReport, DialbackOutcome, DialbackReport, IqOutcome,
        ProbeCertKind,
    };
    use crate::model::report::{ConnectOutcome, EndpointKey, EndpointSource, Phase, Transport};
    use crate::tls::{TlsFailure, TlsInfo};
    use crate::xmpp::sasl::SaslOutcome;

    fn conn(outcome: EndpointOutcome, requested: bool, alert: bool) -> EndpointReport {
        EndpointReport {
            key: EndpointKey {
                service: Service::S2s,
                transport: Transport::Starttls,
                host: "xmpp.t.test".into(),
                ip: "127.0.0.9".parse().unwrap(),
                port: 5269,
            },
            source: EndpointSource::Srv,
            connect: ConnectOutcome::Connected,
            connect_ms: Some(1),
            outcome,
            phase: alert.then_some(Phase::StreamHeaderAfterTls),
            detail: None,
            header: None,
            pre_tls: None,
            tls: Some(TlsInfo {
                failure: alert.then_some(TlsFailure::Alert),
                failure_detail: alert.then(|| "received fatal alert: CertificateRequired".into()),
                version: Some("TLSv1.3".into()),
                cipher_suite: None,
                alpn: None,
                client_cert_requested: requested,
                client_cert_sent: requested,
                chain: vec![],
                verdict: None,
                verdict_detail: None,
                name_match: None,
                dane_match: None,
            }),
            header_after_tls: None,
            post_tls: None,
            stream_error: None,
            starttls_injected_bytes: None,
        }
    }

    fn attempt(cert: ProbeCertKind, external: Option<SaslOutcome>, offered: bool) -> AttemptReport {
        AttemptReport {
            cert,
            connection: conn(EndpointOutcome::Complete, offered, false),
            client_cert_sent: offered,
            external_offered: Some(offered),
            external,
            external_fault: None,
            dialback_offered: Some(true),
            ping: IqOutcome::NotAttempted,
            version_query: IqOutcome::NotAttempted,
            version: None,
            detail: None,
        }
    }

    fn refused() -> Option<SaslOutcome> {
        Some(SaslOutcome::Failure {
            condition: "not-authorized".into(),
            text: Some("unsupported certificate purpose".into()),
        })
    }

    fn db(outcome: DialbackOutcome) -> DialbackReport {
        DialbackReport {
            connection: conn(EndpointOutcome::Complete, true, false),
            outcome,
            verify_received: true,
            ping: IqOutcome::NotAttempted,
            version_query: IqOutcome::NotAttempted,
            version: None,
        }
    }

    fn passive(status: ServiceStatus) -> ServiceSummary {
        let dns = DnsReport {
            srv: vec![],
            hosts: vec![],
            tlsa: vec![],
            dnssec: crate::dns::Dnssec::Unknown,
        };
        ServiceSummary {
            status,
            dialback_offered: Some(true),
            ..summarize_service(Service::S2s, &dns, &[])
        }
    }

    use ProbeCertKind::{ClientAndServer as Cs, ServerOnly as So};

    #[test]
    fn every_path_has_its_reason_code() {
        use crate::model::acceptance::AcceptanceReason as R;
        let reason = |p: ServiceStatus, a: &[AttemptReport], d: Option<&DialbackReport>| {
            let j = acceptance(&passive(p), a, d);
            (j.verdict, j.reason)
        };
        let ok = ServiceStatus::TlsOk;
        assert_eq!(
            reason(ServiceStatus::NoAddress, &[], None),
            (V::Unreachable, R::NoS2sAddress)
        );
        assert_eq!(
            reason(ServiceStatus::Blocked, &[], None),
            (V::Unreachable, R::NoS2sAddress)
        );
        assert_eq!(
            reason(ServiceStatus::Unreachable, &[], None),
            (V::Unreachable, R::S2sUnreachable)
        );
        assert_eq!(
            reason(ServiceStatus::StreamFailed, &[], None),
            (V::TlsFailed, R::NoTlsSession)
        );
        assert_eq!(
            reason(ok, &[attempt(So, Some(SaslOutcome::Success), true)], None),
            (V::AcceptsServerOnly, R::ExternalSucceeded)
        );
        let valid = db(DialbackOutcome::Valid);
        let control = attempt(Cs, Some(SaslOutcome::Success), true);
        assert_eq!(
            reason(
                ok,
                &[attempt(So, refused(), true), control.clone()],
                Some(&valid)
            ),
            (V::RejectsServerOnlyDialback, R::ExternalRefused)
        );
        let mut not_offered = attempt(So, None, true);
        not_offered.external_offered = Some(false);
        assert_eq!(
            reason(ok, &[not_offered, control.clone()], Some(&valid)),
            (V::RejectsServerOnlyDialback, R::ExternalNotOffered)
        );
        assert_eq!(
            reason(
                ok,
                &[attempt(So, refused(), true), attempt(Cs, refused(), true)],
                None
            ),
            (V::Inconclusive, R::BothCertificatesRefused)
        );
        assert_eq!(
            reason(ok, &[attempt(So, None, false)], None),
            (V::NoCertAuth, R::NoCertificateRequest)
        );
    }

    /// Debian's stock Prosody (`s2s_secure_auth = true`) refuses the
    /// passive probe's certificate-less stream after TLS; the passive s2s
    /// summary must keep the TLS facts, and the verdict comes from the
    /// attempts alone.
    #[test]
    fn secure_auth_refusal_after_tls_keeps_tls_facts_and_the_verdict() {
        let mut refused_stream = conn(EndpointOutcome::StreamError, true, false);
        refused_stream.phase = Some(Phase::FeaturesAfterTls);
        let dns = DnsReport {
            srv: vec![],
            hosts: vec![],
            tlsa: vec![],
            dnssec: crate::dns::Dnssec::Unknown,
        };
        let s = summarize_service(Service::S2s, &dns, std::slice::from_ref(&refused_stream));
        assert_eq!(s.status, ServiceStatus::TlsOk);
        assert_eq!(s.tls_version.as_deref(), Some("TLSv1.3"));
        assert_eq!(s.client_cert_requested, Some(true));
        assert_eq!(s.endpoints_tls_ok, 0, "post-TLS features never came");
        assert_eq!(s.dialback_offered, None);
        let a = [attempt(So, Some(SaslOutcome::Success), true)];
        assert_eq!(acceptance(&s, &a, None).verdict, V::AcceptsServerOnly);
        // A TLS 1.3 alert right after the handshake is no TLS session.
        let alert = conn(EndpointOutcome::TlsFailed, true, true);
        let s = summarize_service(Service::S2s, &dns, &[alert]);
        assert_eq!(s.status, ServiceStatus::TlsFailed);
        assert_eq!(s.tls_version, None);
    }

    #[test]
    fn accepts_server_only_when_external_succeeds() {
        let a = [attempt(So, Some(SaslOutcome::Success), true)];
        assert_eq!(
            acceptance(&passive(ServiceStatus::TlsOk), &a, None).verdict,
            V::AcceptsServerOnly
        );
    }

    #[test]
    fn eku_rejection_with_dialback_and_without() {
        let a = [
            attempt(So, refused(), true),
            attempt(Cs, Some(SaslOutcome::Success), true),
        ];
        let AcceptanceJudgement {
            verdict: v,
            text: why,
            ..
        } = acceptance(
            &passive(ServiceStatus::TlsOk),
            &a,
            Some(&db(DialbackOutcome::Valid)),
        );
        assert_eq!(v, V::RejectsServerOnlyDialback);
        let why = why.unwrap();
        assert!(
            why.contains("unsupported certificate purpose") && why.contains("EKU"),
            "{why}"
        );
        let mut no_db = a.clone();
        for x in &mut no_db {
            x.dialback_offered = Some(false);
        }
        let mut p = passive(ServiceStatus::TlsOk);
        p.dialback_offered = Some(false);
        assert_eq!(
            acceptance(&p, &no_db, Some(&db(DialbackOutcome::NotOffered))).verdict,
            V::RejectsServerOnlyNoFallback
        );
        // Offered but failed: no fallback either.
        assert_eq!(
            acceptance(
                &passive(ServiceStatus::TlsOk),
                &a,
                Some(&db(DialbackOutcome::Invalid))
            )
            .verdict,
            V::RejectsServerOnlyNoFallback
        );
    }

    #[test]
    fn handshake_alert_after_presenting_server_only_is_a_rejection() {
        let mut so = attempt(So, None, true);
        so.connection = conn(EndpointOutcome::TlsFailed, true, true);
        so.external_offered = None;
        let a = [so, attempt(Cs, Some(SaslOutcome::Success), true)];
        let d = db(DialbackOutcome::ConnectionFailed);
        let AcceptanceJudgement {
            verdict: v,
            text: why,
            ..
        } = acceptance(&passive(ServiceStatus::TlsOk), &a, Some(&d));
        assert_eq!(v, V::RejectsServerOnlyNoFallback, "{why:?}");
        assert!(why.unwrap().contains("CertificateRequired"));
    }

    #[test]
    fn no_cert_auth_when_never_asked_nor_offered() {
        let a = [attempt(So, None, false), attempt(Cs, None, false)];
        let AcceptanceJudgement { verdict: v, .. } = acceptance(
            &passive(ServiceStatus::TlsOk),
            &a,
            Some(&db(DialbackOutcome::Valid)),
        );
        assert_eq!(v, V::NoCertAuth);
        // EXTERNAL listed, but no certificate was ever asked for: it fails
        // for want of a certificate, not for trust or EKU.
        let mut listed = a.clone();
        for x in &mut listed {
            x.external_offered = Some(true);
            x.external = refused();
        }
        let AcceptanceJudgement {
            verdict: v,
            text: why,
            ..
        } = acceptance(&passive(ServiceStatus::TlsOk), &listed, None);
        assert_eq!(v, V::NoCertAuth);
        assert!(why.unwrap().contains("unusable"));
    }

    #[test]
    fn both_certificates_refused_is_inconclusive_trust() {
        let a = [attempt(So, refused(), true), attempt(Cs, refused(), true)];
        let AcceptanceJudgement {
            verdict: v,
            text: why,
            ..
        } = acceptance(
            &passive(ServiceStatus::TlsOk),
            &a,
            Some(&db(DialbackOutcome::Valid)),
        );
        assert_eq!(v, V::Inconclusive);
        assert!(why.unwrap().contains("trust"));
    }

    #[test]
    fn without_control_certificate_a_refusal_still_counts_but_says_so() {
        let a = [attempt(So, refused(), true)];
        let AcceptanceJudgement {
            verdict: v,
            text: why,
            ..
        } = acceptance(
            &passive(ServiceStatus::TlsOk),
            &a,
            Some(&db(DialbackOutcome::Valid)),
        );
        assert_eq!(v, V::RejectsServerOnlyDialback);
        assert!(why.unwrap().contains("not ruled out"));
    }

    #[test]
    fn broken_attempt_is_inconclusive_and_reachability_comes_first() {
        let mut so = attempt(So, None, true);
        so.external = None;
        so.detail = Some("EXTERNAL: timed out".into());
        let AcceptanceJudgement {
            verdict: v,
            text: why,
            ..
        } = acceptance(&passive(ServiceStatus::TlsOk), &[so], None);
        assert_eq!(v, V::Inconclusive);
        assert!(why.unwrap().contains("timed out"));
        assert_eq!(
            acceptance(&passive(ServiceStatus::Unreachable), &[], None).verdict,
            V::Unreachable
        );
        assert_eq!(
            acceptance(&passive(ServiceStatus::NoAddress), &[], None).verdict,
            V::Unreachable
        );
        assert_eq!(
            acceptance(&passive(ServiceStatus::TlsFailed), &[], None).verdict,
            V::TlsFailed
        );
    }
}
