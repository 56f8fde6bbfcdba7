//! **The findings logic**: what an operator is told about one domain,
//! derived from its probe report by a pure function. Every finding's
//! status comes from measured behaviour (the summary of
//! [`crate::verdict`] and the evidence in the report); the reported
//! software version only selects advice, never a status
//! (`shared/data/server-only-facts.md`: "a verdict must come from
//! behaviour").

use super::knowledge::{AdviceQuery, Knowledge};
use crate::model::acceptance::{AcceptanceReport, AcceptanceVerdict, ProbeCertKind};
use crate::model::finding::{Evidence, Finding, FindingCode, FindingStatus};
use crate::model::names::{Named, label};
use crate::model::report::DomainReport;
use crate::model::summary::{ServiceStatus, ServiceSummary};
use crate::tls::{ChainVerdict, ClientPurpose, EkuClass};
use crate::xmpp::features::StarttlsOffer;
use crate::xmpp::sasl::SaslOutcome;
use time::Date;

use FindingStatus::{Error, Failed, Info, NotTested, Passed, Warning};

/// Every finding about a domain, s2s (federation) first, in a fixed order
/// so that pages and diffs across crawls line up. `today` decides whether
/// a "renews as server-only" date is still ahead.
pub fn findings(report: &DomainReport, knowledge: &Knowledge, today: Date) -> Vec<Finding> {
    let s = &report.summary;
    let software = s.software.as_ref().and_then(|v| v.name.as_deref());
    let version = s.software.as_ref().and_then(|v| v.version.as_deref());
    let mut out = vec![
        reachable(FindingCode::S2sReachable, "federation (s2s)", &s.s2s),
        starttls(FindingCode::S2sStarttlsRequired, "s2s", &s.s2s),
        certificate(FindingCode::S2sCertificate, "s2s", &s.s2s),
        own_certificate_purpose(&s.s2s, today),
        dialback(&s.s2s),
        acceptance(report),
        tls_version(&s.s2s),
        reachable(FindingCode::C2sReachable, "clients (c2s)", &s.c2s),
        starttls(FindingCode::C2sStarttlsRequired, "c2s", &s.c2s),
        plaintext_sasl(&s.c2s),
        certificate(FindingCode::C2sCertificate, "c2s", &s.c2s),
        injection(report),
        dane(&s.s2s, &s.c2s),
        dnssec(report),
        software_finding(report),
    ];
    for f in &mut out {
        if matches!(f.status, Passed | Info | NotTested) && f.code != FindingCode::AcceptsServerOnly
        {
            continue;
        }
        f.advice = knowledge.advise(AdviceQuery {
            code: f.code,
            case: &f.case,
            software,
            version,
        });
    }
    out
}

fn finding(
    code: FindingCode,
    case: &str,
    status: FindingStatus,
    title: &str,
    seen: String,
) -> Finding {
    Finding {
        code,
        case: case.to_string(),
        status,
        title: title.to_string(),
        seen,
        evidence: Vec::new(),
        advice: None,
    }
}

fn ev(label: &str, value: impl Into<String>) -> Evidence {
    Evidence {
        label: label.to_string(),
        value: value.into(),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Whether the service's TLS facts can be judged: a session was up.
fn has_tls(s: &ServiceSummary) -> bool {
    s.tls_version.is_some() || s.chain_verdict.is_some()
}

fn reachable(code: FindingCode, what: &str, s: &ServiceSummary) -> Finding {
    let (status, seen) = match s.status {
        ServiceStatus::TlsOk => (Passed, format!("Reached {what} and completed TLS.")),
        ServiceStatus::NoTls => (
            Failed,
            format!("Reached {what}, but it offers no TLS: everything travels in clear."),
        ),
        ServiceStatus::TlsFailed => (
            Error,
            format!("Reached {what}, but no TLS session completed."),
        ),
        ServiceStatus::StreamFailed => (
            Error,
            format!("Connected to {what}, but the XMPP stream failed before TLS."),
        ),
        ServiceStatus::Unreachable => (
            Error,
            format!("No endpoint for {what} accepted a connection."),
        ),
        ServiceStatus::Blocked => (
            NotTested,
            format!(
                "Not tested: {what} resolves only to addresses the probe may not contact (private or reserved)."
            ),
        ),
        ServiceStatus::NotOffered => (
            Info,
            format!("The domain says it offers no {what} service (SRV target \".\")."),
        ),
        ServiceStatus::NoAddress => (Error, format!("DNS gave no address for {what}.")),
    };
    let title = format!("Reachable over TLS: {what}");
    let mut f = finding(code, s.status.as_str(), status, &title, seen);
    f.evidence = vec![
        ev("status", s.status.as_str()),
        ev("endpoints probed", s.endpoints.to_string()),
        ev("endpoints with TLS", s.endpoints_tls_ok.to_string()),
        ev("direct TLS (XEP-0368)", yes_no(s.direct_tls)),
    ];
    f
}

fn starttls(code: FindingCode, service: &str, s: &ServiceSummary) -> Finding {
    let title = format!("STARTTLS required ({service})");
    let (case, status, seen) = match s.starttls {
        Some(StarttlsOffer::Required) => (
            "required",
            Passed,
            "STARTTLS is offered and marked <required/>.".to_string(),
        ),
        Some(StarttlsOffer::Optional) => (
            "optional",
            Failed,
            "STARTTLS is offered but optional: an attacker on the path can strip it.".to_string(),
        ),
        Some(StarttlsOffer::Absent) => (
            "absent",
            Failed,
            "STARTTLS is not offered at all.".to_string(),
        ),
        None if s.direct_tls => (
            "direct_tls_only",
            Info,
            "Only direct TLS (XEP-0368) answered; no STARTTLS features were seen.".to_string(),
        ),
        None => (
            "not_seen",
            NotTested,
            "No stream features before TLS were seen.".to_string(),
        ),
    };
    let mut f = finding(code, case, status, &title, seen);
    f.evidence = vec![ev("STARTTLS offer", s.starttls.map_or("-", |o| o.as_str()))];
    f
}

fn certificate(code: FindingCode, service: &str, s: &ServiceSummary) -> Finding {
    let title = format!("Certificate valid for the domain ({service})");
    let mut f = match s.chain_verdict {
        Some(ChainVerdict::Trusted) => finding(
            code,
            "trusted",
            Passed,
            &title,
            "The certificate chain verifies against the trusted roots and names the domain.".into(),
        ),
        Some(v) => finding(
            code,
            v.as_str(),
            Failed,
            &title,
            format!(
                "The certificate chain does not verify for the domain: {}.",
                v.as_str().replace('_', " ")
            ),
        ),
        None => finding(
            code,
            "not_seen",
            NotTested,
            &title,
            "No certificate was seen (no TLS session).".into(),
        ),
    };
    if let Some(v) = s.chain_verdict {
        f.evidence.push(ev("chain verdict", v.as_str()));
    }
    if let Some(m) = s.name_match {
        f.evidence.push(ev("name matched by", m.as_str()));
    }
    if let Some(le) = s.lets_encrypt {
        f.evidence.push(ev("Let's Encrypt", yes_no(le)));
    }
    f
}

/// This domain's own s2s certificate as a strict peer sees it when this
/// domain connects out (MEASUREMENTS §1: a receiver checks the sender's
/// certificate with the TLS-client purpose).
fn own_certificate_purpose(s: &ServiceSummary, today: Date) -> Finding {
    let code = FindingCode::S2sCertificatePurpose;
    let title = "Your certificate at strict peers";
    let mut f = match (s.eku_class, s.client_purpose) {
        (None, _) => finding(
            code,
            "not_seen",
            NotTested,
            title,
            "No s2s certificate was seen.".into(),
        ),
        (Some(EkuClass::ServerOnly), _) | (_, Some(ClientPurpose::LeafLacksClientAuth)) => finding(
            code,
            "server_only",
            Warning,
            title,
            "Your s2s certificate is server-only (no clientAuth): peers that check it as a client certificate will refuse it and need dialback.".into(),
        ),
        (_, Some(ClientPurpose::IntermediateLacksClientAuth)) => finding(
            code,
            "intermediate_lacks_client_auth",
            Warning,
            title,
            "Your certificate lists clientAuth, but an intermediate CA certificate does not: strict peers (OpenSSL's client purpose) still refuse it.".into(),
        ),
        (Some(EkuClass::ClientOnly | EkuClass::Other), _) => finding(
            code,
            "no_server_auth",
            Failed,
            title,
            "Your s2s certificate's EKU does not allow TLS server authentication.".into(),
        ),
        (Some(_), _) => match s.renews_server_only {
            Some(d) if d > today => finding(
                code,
                "renews_server_only",
                Warning,
                title,
                format!("Your certificate still carries clientAuth, but its CA has stopped issuing it: the renewal due by {d} will be server-only."),
            ),
            Some(d) => finding(
                code,
                "renews_server_only",
                Warning,
                title,
                format!("Your certificate still carries clientAuth, but its CA stopped issuing it on renewal (since {d}): the next one will be server-only."),
            ),
            None => finding(
                code,
                "client_and_server",
                Passed,
                title,
                "Your certificate carries clientAuth: strict peers accept it today.".into(),
            ),
        },
    };
    if let Some(c) = s.eku_class {
        f.evidence.push(ev("EKU class", c.as_str()));
    }
    if let Some(p) = s.client_purpose {
        f.evidence
            .push(ev("TLS-client purpose of the chain", p.as_str()));
    }
    if let Some(d) = s.renews_server_only {
        f.evidence.push(ev("renews as server-only", d.to_string()));
    }
    f
}

fn dialback(s: &ServiceSummary) -> Finding {
    let code = FindingCode::S2sDialback;
    let title = "Dialback offered (fallback authentication)";
    let server_only = s.eku_class == Some(EkuClass::ServerOnly)
        || s.client_purpose.is_some_and(|p| p != ClientPurpose::Ok);
    let mut f = match s.dialback_offered {
        Some(true) => finding(
            code,
            "offered",
            Passed,
            title,
            "Dialback (XEP-0220) is offered: peers whose certificates you cannot accept, and peers that cannot accept yours, still federate.".into(),
        ),
        Some(false) if server_only => finding(
            code,
            "not_offered_server_only",
            Failed,
            title,
            "Dialback is not offered and your certificate is server-only: federation with strict peers fails both ways.".into(),
        ),
        Some(false) => finding(
            code,
            "not_offered",
            Info,
            title,
            "Dialback is not offered: only certificate authentication (SASL EXTERNAL) is possible.".into(),
        ),
        None => finding(
            code,
            "not_seen",
            NotTested,
            title,
            "No s2s features after TLS were seen.".into(),
        ),
    };
    if let Some(b) = s.dialback_offered {
        f.evidence.push(ev("dialback offered", yes_no(b)));
    }
    if let Some(b) = s.external_offered {
        f.evidence.push(ev("SASL EXTERNAL offered", yes_no(b)));
    }
    f
}

fn sasl_text(o: &SaslOutcome) -> String {
    match o {
        SaslOutcome::Success => "success".into(),
        SaslOutcome::Failure { condition, text } => match text {
            Some(t) => format!("failure: {condition} ({t:?})"),
            None => format!("failure: {condition}"),
        },
        SaslOutcome::Challenge => "challenge (unexpected for EXTERNAL)".into(),
    }
}

fn acceptance_evidence(a: &AcceptanceReport) -> Vec<Evidence> {
    let mut out = vec![
        ev("verdict", a.verdict.as_str()),
        ev("reason", a.reason_code.as_str()),
        ev("probe domain", a.probe_domain.clone()),
    ];
    if let Some(e) = &a.endpoint {
        out.push(ev("endpoint", e.clone()));
    }
    for t in &a.attempts {
        let who = match t.cert {
            ProbeCertKind::ServerOnly => "server-only certificate",
            ProbeCertKind::ClientAndServer => "client-and-server certificate",
        };
        let tls = t.connection.tls.as_ref();
        let mut parts = vec![format!(
            "certificate requested: {}",
            tls.map_or("-", |t| yes_no(t.client_cert_requested))
        )];
        if let Some(fail) = tls.and_then(|t| t.failure) {
            let detail = tls.and_then(|t| t.failure_detail.as_deref()).unwrap_or("");
            parts.push(
                format!("TLS failed: {} {detail}", label(fail))
                    .trim_end()
                    .to_string(),
            );
        }
        parts.push(format!(
            "EXTERNAL offered: {}",
            t.external_offered.map_or("-", yes_no)
        ));
        if let Some(o) = &t.external {
            parts.push(format!("EXTERNAL: {}", sasl_text(o)));
        }
        if let Some(f) = &t.external_fault {
            parts.push(format!("exchange fault: {}", label(f)));
        }
        out.push(ev(&format!("with our {who}"), parts.join("; ")));
    }
    if let Some(d) = &a.dialback {
        out.push(ev("dialback", label(&d.outcome)));
    }
    if !a.inbound.is_empty() {
        out.push(ev(
            "streams your server opened to us",
            a.inbound.len().to_string(),
        ));
    }
    if let Some(r) = &a.reason {
        out.push(ev("detail", r.clone()));
    }
    out
}

/// The question the tool exists for: does this server accept peers whose
/// certificates are server-only (MEASUREMENTS §3 verdict table)?
fn acceptance(report: &DomainReport) -> Finding {
    let code = FindingCode::AcceptsServerOnly;
    let title = "Accepts peers with server-only certificates";
    let v = report.summary.acceptance;
    let (status, seen) = match v {
        AcceptanceVerdict::AcceptsServerOnly => (
            Passed,
            "Your server accepted our server-only certificate (SASL EXTERNAL succeeded): peers with Let's Encrypt certificates federate with you.",
        ),
        AcceptanceVerdict::RejectsServerOnlyDialback => (
            Warning,
            "Your server refused our server-only certificate, but dialback works: federation continues with weaker authentication.",
        ),
        AcceptanceVerdict::RejectsServerOnlyNoFallback => (
            Failed,
            "Your server refused our server-only certificate and dialback is unavailable: peers with Let's Encrypt certificates cannot federate with you.",
        ),
        AcceptanceVerdict::NoCertAuth => (
            Info,
            "Your server never asked for a certificate: it authenticates peers by dialback only, so server-only certificates do not affect it.",
        ),
        AcceptanceVerdict::Inconclusive => (
            NotTested,
            "The test ran but could not tell; see the detail.",
        ),
        AcceptanceVerdict::Unreachable => {
            (Error, "Not tested: no s2s endpoint accepted a connection.")
        }
        AcceptanceVerdict::TlsFailed => (
            Error,
            "Not tested: no TLS session could be established with any s2s endpoint.",
        ),
        AcceptanceVerdict::NotRun => (
            NotTested,
            "Not tested: this measurement ran without a probe identity (certificates of our own).",
        ),
    };
    let mut f = finding(code, v.as_str(), status, title, seen.to_string());
    f.evidence = match &report.acceptance {
        Some(a) => acceptance_evidence(a),
        None => vec![ev("verdict", v.as_str())],
    };
    f
}

fn tls_version(s: &ServiceSummary) -> Finding {
    let code = FindingCode::S2sTlsVersion;
    let title = "TLS version (s2s)";
    let mut f = match s.tls_version.as_deref() {
        Some(v @ ("TLSv1.3" | "TLSv1.2")) => finding(
            code,
            "current",
            Passed,
            title,
            format!("The s2s session used {v}."),
        ),
        Some(v) => finding(
            code,
            "old",
            Failed,
            title,
            format!("The s2s session used {v}, which RFC 8996 deprecates."),
        ),
        None => finding(
            code,
            "not_seen",
            NotTested,
            title,
            "No s2s TLS session.".into(),
        ),
    };
    if let Some(v) = &s.tls_version {
        f.evidence.push(ev("negotiated", v.clone()));
    }
    f
}

fn plaintext_sasl(s: &ServiceSummary) -> Finding {
    let code = FindingCode::C2sPlaintextSasl;
    let title = "No password login before TLS (c2s)";
    let mut f = match &s.sasl_before_tls {
        Some(m) if !m.is_empty() => finding(
            code,
            "offered",
            Failed,
            title,
            format!(
                "Before TLS the server offers SASL {}: a client may send its password in clear.",
                m.join(", ")
            ),
        ),
        Some(_) => finding(
            code,
            "none",
            Passed,
            title,
            "No SASL mechanism is offered before TLS.".into(),
        ),
        None => finding(
            code,
            "not_seen",
            NotTested,
            title,
            "No c2s stream features before TLS were seen.".into(),
        ),
    };
    if let Some(m) = &s.sasl_before_tls {
        f.evidence.push(ev(
            "mechanisms before TLS",
            if m.is_empty() {
                "none".into()
            } else {
                m.join(", ")
            },
        ));
    }
    f
}

fn injection(report: &DomainReport) -> Finding {
    let code = FindingCode::StarttlsInjection;
    let title = "No plaintext injected after STARTTLS";
    let injected: Vec<String> = report
        .endpoints
        .iter()
        .filter_map(|e| {
            e.starttls_injected_bytes.map(|n| {
                format!(
                    "{} {}:{} ({} bytes)",
                    e.key.service.as_str(),
                    e.key.ip,
                    e.key.port,
                    n
                )
            })
        })
        .collect();
    let tried = report.endpoints.iter().any(|e| e.pre_tls.is_some());
    let mut f = if !injected.is_empty() {
        finding(
            code,
            "injected",
            Failed,
            title,
            "Bytes arrived in clear right after <proceed/>; they were discarded as RFC 6120 §5.4.3.3 requires.".into(),
        )
    } else if tried {
        finding(
            code,
            "clean",
            Passed,
            title,
            "Nothing arrived between <proceed/> and the TLS handshake.".into(),
        )
    } else {
        finding(
            code,
            "not_seen",
            NotTested,
            title,
            "No STARTTLS negotiation took place.".into(),
        )
    };
    f.evidence = injected.into_iter().map(|i| ev("injected", i)).collect();
    f
}

fn dane(s2s: &ServiceSummary, c2s: &ServiceSummary) -> Finding {
    let code = FindingCode::Dane;
    let title = "DANE (TLSA records)";
    let matches = [("s2s", s2s.dane_match), ("c2s", c2s.dane_match)];
    let mut f = if matches.iter().any(|(_, m)| *m == Some(false)) {
        finding(
            code,
            "mismatch",
            Failed,
            title,
            "TLSA records are published but the served certificate does not match them.".into(),
        )
    } else if matches.iter().any(|(_, m)| *m == Some(true)) {
        finding(
            code,
            "match",
            Passed,
            title,
            "TLSA records are published and match the served certificate.".into(),
        )
    } else if has_tls(s2s) || has_tls(c2s) {
        finding(
            code,
            "none",
            Info,
            title,
            "No TLSA records are published (DANE is optional).".into(),
        )
    } else {
        finding(
            code,
            "not_seen",
            NotTested,
            title,
            "No TLS session to compare TLSA records with.".into(),
        )
    };
    for (svc, m) in matches {
        if let Some(m) = m {
            f.evidence
                .push(ev(&format!("{svc} chain matches TLSA"), yes_no(m)));
        }
    }
    f
}

fn dnssec(report: &DomainReport) -> Finding {
    let code = FindingCode::Dnssec;
    let d = report.dns.dnssec;
    let seen = match label(d).as_str() {
        "validated" => "The resolver validated the SRV answer with DNSSEC.",
        "not_validated" => {
            "The SRV answer was not DNSSEC-validated (unsigned zone, or the resolver does not validate)."
        }
        _ => "DNSSEC status unknown (the question failed or was not asked).",
    };
    let mut f = finding(code, &label(d), Info, "DNSSEC", seen.into());
    f.evidence.push(ev("DNSSEC", label(d)));
    f
}

fn software_finding(report: &DomainReport) -> Finding {
    let code = FindingCode::Software;
    let title = "Server software (as reported)";
    match &report.summary.software {
        Some(v) => {
            let name = v.name.as_deref().unwrap_or("?");
            let version = v.version.as_deref().unwrap_or("?");
            let mut f = finding(
                code,
                "reported",
                Info,
                title,
                format!(
                    "The server says it runs {name} {version} (XEP-0092; informational, verdicts come from behaviour)."
                ),
            );
            f.evidence.push(ev("name", name));
            f.evidence.push(ev("version", version));
            if let Some(os) = &v.os {
                f.evidence.push(ev("os", os.clone()));
            }
            f
        }
        None => finding(
            code,
            "not_reported",
            NotTested,
            title,
            "The server did not report its software (asked only after authentication, or refused)."
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{DnsReport, Dnssec};
    use crate::model::summary::DomainSummary;
    use crate::xmpp::iq::SoftwareVersion;
    use strum::VariantArray;
    use time::macros::{date, datetime};

    fn svc(status: ServiceStatus) -> ServiceSummary {
        let tls = status == ServiceStatus::TlsOk;
        ServiceSummary {
            status,
            endpoints: 1,
            endpoints_tls_ok: usize::from(tls),
            starttls: Some(StarttlsOffer::Required),
            sasl_before_tls: Some(Vec::new()),
            direct_tls: false,
            tls_version: tls.then(|| "TLSv1.3".to_string()),
            chain_verdict: tls.then_some(ChainVerdict::Trusted),
            name_match: None,
            eku_class: tls.then_some(EkuClass::ServerOnly),
            client_purpose: tls.then_some(ClientPurpose::LeafLacksClientAuth),
            lets_encrypt: Some(true),
            renews_server_only: None,
            client_cert_requested: Some(true),
            external_offered: Some(true),
            dialback_offered: Some(true),
            bidi_offered: None,
            dane_match: None,
        }
    }

    fn report(acceptance: AcceptanceVerdict, software: Option<(&str, &str)>) -> DomainReport {
        DomainReport {
            schema_version: crate::model::report::SCHEMA_VERSION,
            domain: "example.org".into(),
            started_at: datetime!(2026-12-01 00:00 UTC),
            duration_ms: 1,
            dns: DnsReport {
                srv: Vec::new(),
                hosts: Vec::new(),
                tlsa: Vec::new(),
                dnssec: Dnssec::NotValidated,
            },
            endpoints: Vec::new(),
            summary: DomainSummary {
                c2s: svc(ServiceStatus::TlsOk),
                s2s: svc(ServiceStatus::TlsOk),
                acceptance,
                software: software.map(|(n, v)| SoftwareVersion {
                    name: Some(n.into()),
                    version: Some(v.into()),
                    os: None,
                }),
            },
            acceptance: None,
        }
    }

    const TODAY: Date = date!(2026 - 12 - 01);

    fn get(fs: &[Finding], code: FindingCode) -> &Finding {
        fs.iter().find(|f| f.code == code).expect("finding present")
    }

    #[test]
    fn every_code_appears_once_in_a_fixed_order() {
        let fs = findings(
            &report(AcceptanceVerdict::AcceptsServerOnly, None),
            &Knowledge::built_in(),
            TODAY,
        );
        let codes: Vec<_> = fs.iter().map(|f| f.code).collect();
        assert_eq!(codes.len(), FindingCode::VARIANTS.len());
        for c in FindingCode::VARIANTS {
            assert_eq!(codes.iter().filter(|x| *x == c).count(), 1, "{c:?}");
        }
        assert_eq!(codes[0], FindingCode::S2sReachable);
    }

    #[test]
    fn acceptance_verdicts_map_to_statuses_and_advice() {
        let k = Knowledge::built_in();
        let cases = [
            (AcceptanceVerdict::AcceptsServerOnly, Passed, None),
            (
                AcceptanceVerdict::RejectsServerOnlyDialback,
                Warning,
                Some("refuses-with-dialback"),
            ),
            (
                AcceptanceVerdict::RejectsServerOnlyNoFallback,
                Failed,
                Some("refuses-no-fallback"),
            ),
            (AcceptanceVerdict::NoCertAuth, Info, Some("no-cert-auth")),
            (
                AcceptanceVerdict::Inconclusive,
                NotTested,
                Some("acceptance-inconclusive"),
            ),
            (AcceptanceVerdict::Unreachable, Error, None),
            (AcceptanceVerdict::TlsFailed, Error, None),
            (AcceptanceVerdict::NotRun, NotTested, None),
        ];
        for (v, status, advice) in cases {
            let fs = findings(&report(v, None), &k, TODAY);
            let f = get(&fs, FindingCode::AcceptsServerOnly);
            assert_eq!(f.status, status, "{v:?}");
            assert_eq!(f.case, v.as_str());
            assert_eq!(f.advice.as_ref().map(|a| a.id.as_str()), advice, "{v:?}");
        }
    }

    #[test]
    fn reported_software_selects_advice_but_never_the_status() {
        let k = Knowledge::built_in();
        let old = findings(
            &report(
                AcceptanceVerdict::RejectsServerOnlyDialback,
                Some(("ejabberd", "23.01")),
            ),
            &k,
            TODAY,
        );
        let f = get(&old, FindingCode::AcceptsServerOnly);
        assert_eq!(f.status, Warning);
        assert_eq!(
            f.advice.as_ref().unwrap().id,
            "ejabberd-unsupported-purpose"
        );
        // The same old version, but behaviour says it accepts: passed, no advice.
        let accepts = findings(
            &report(
                AcceptanceVerdict::AcceptsServerOnly,
                Some(("ejabberd", "23.01")),
            ),
            &k,
            TODAY,
        );
        let f = get(&accepts, FindingCode::AcceptsServerOnly);
        assert_eq!((f.status, f.advice.is_none()), (Passed, true));
        assert_eq!(get(&accepts, FindingCode::Software).status, Info);
    }

    #[test]
    fn own_certificate_purpose_cases() {
        let k = Knowledge::built_in();
        let mut r = report(AcceptanceVerdict::AcceptsServerOnly, None);
        let purpose = |r: &DomainReport| {
            let fs = findings(r, &k, TODAY);
            let f = get(&fs, FindingCode::S2sCertificatePurpose).clone();
            (f.case, f.status, f.advice.map(|a| a.id))
        };
        assert_eq!(
            purpose(&r),
            (
                "server_only".into(),
                Warning,
                Some("own-cert-server-only".into())
            )
        );
        r.summary.s2s.eku_class = Some(EkuClass::ClientAndServer);
        r.summary.s2s.client_purpose = Some(ClientPurpose::IntermediateLacksClientAuth);
        assert_eq!(purpose(&r).0, "intermediate_lacks_client_auth");
        r.summary.s2s.client_purpose = Some(ClientPurpose::Ok);
        assert_eq!(purpose(&r), ("client_and_server".into(), Passed, None));
        r.summary.s2s.renews_server_only = Some(date!(2027 - 01 - 15));
        let (case, status, advice) = purpose(&r);
        assert_eq!((case.as_str(), status), ("renews_server_only", Warning));
        assert_eq!(advice.as_deref(), Some("own-cert-renews-server-only"));
        r.summary.s2s.eku_class = None;
        assert_eq!(purpose(&r).1, NotTested);
    }

    #[test]
    fn server_only_without_dialback_fails_both_ways() {
        let mut r = report(AcceptanceVerdict::AcceptsServerOnly, None);
        r.summary.s2s.dialback_offered = Some(false);
        let fs = findings(&r, &Knowledge::built_in(), TODAY);
        let f = get(&fs, FindingCode::S2sDialback);
        assert_eq!(
            (f.status, f.case.as_str()),
            (Failed, "not_offered_server_only")
        );
        assert_eq!(f.advice.as_ref().unwrap().id, "no-dialback-server-only");
        r.summary.s2s.eku_class = Some(EkuClass::ClientAndServer);
        r.summary.s2s.client_purpose = Some(ClientPurpose::Ok);
        let fs = findings(&r, &Knowledge::built_in(), TODAY);
        assert_eq!(get(&fs, FindingCode::S2sDialback).status, Info);
    }

    #[test]
    fn starttls_sasl_and_reachability() {
        let k = Knowledge::built_in();
        let mut r = report(AcceptanceVerdict::AcceptsServerOnly, None);
        r.summary.s2s.starttls = Some(StarttlsOffer::Optional);
        r.summary.c2s.sasl_before_tls = Some(vec!["PLAIN".into(), "SCRAM-SHA-1".into()]);
        let fs = findings(&r, &k, TODAY);
        let s = get(&fs, FindingCode::S2sStarttlsRequired);
        assert_eq!(
            (s.status, s.advice.as_ref().unwrap().id.as_str()),
            (Failed, "s2s-starttls-optional")
        );
        let p = get(&fs, FindingCode::C2sPlaintextSasl);
        assert_eq!(p.status, Failed);
        assert!(p.seen.contains("PLAIN, SCRAM-SHA-1"), "{}", p.seen);
        assert_eq!(get(&fs, FindingCode::C2sStarttlsRequired).status, Passed);

        r.summary.s2s = svc(ServiceStatus::Unreachable);
        r.summary.s2s.starttls = None;
        r.summary.s2s.sasl_before_tls = None;
        let fs = findings(&r, &k, TODAY);
        assert_eq!(get(&fs, FindingCode::S2sReachable).status, Error);
        assert_eq!(get(&fs, FindingCode::S2sStarttlsRequired).status, NotTested);
        assert_eq!(get(&fs, FindingCode::S2sCertificate).status, NotTested);
        r.summary.s2s = svc(ServiceStatus::Blocked);
        let fs = findings(&r, &k, TODAY);
        assert_eq!(get(&fs, FindingCode::S2sReachable).status, NotTested);
    }

    #[test]
    fn untrusted_chain_and_dane_mismatch_fail_with_advice() {
        let mut r = report(AcceptanceVerdict::AcceptsServerOnly, None);
        r.summary.s2s.chain_verdict = Some(ChainVerdict::SelfSigned);
        r.summary.c2s.dane_match = Some(false);
        let fs = findings(&r, &Knowledge::built_in(), TODAY);
        let c = get(&fs, FindingCode::S2sCertificate);
        assert_eq!((c.status, c.case.as_str()), (Failed, "self_signed"));
        assert!(c.seen.contains("self signed"));
        assert_eq!(c.advice.as_ref().unwrap().id, "chain-untrusted");
        let d = get(&fs, FindingCode::Dane);
        assert_eq!(
            (d.status, d.advice.as_ref().unwrap().id.as_str()),
            (Failed, "dane-mismatch")
        );
    }
}
