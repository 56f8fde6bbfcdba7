//! What a domain page shows, built from one [`DomainReport`] (stored by a
//! crawl or just measured by a live probe): the verdict in words, the
//! findings, the endpoints, the certificate chain with each certificate's
//! EKU, and the acceptance evidence. Pure; the templates only lay it out.

use crate::facts::label;
use crate::model::names::Named;
use crate::model::report::{DomainReport, EndpointReport};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The badge and headline state of a domain (from `results.acceptance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BadgeState {
    /// Accepts server-only certificates.
    Accepts,
    /// Refuses them but federates through dialback (or never uses
    /// certificates at all).
    DialbackOnly,
    /// Refuses them and has no fallback: federation breaks.
    Breaks,
    /// No result, or one that says nothing about acceptance.
    NotTested,
}

impl BadgeState {
    /// The state for an acceptance verdict (`None`: no result).
    pub fn from_acceptance(verdict: Option<&str>) -> Self {
        match verdict {
            Some("accepts_server_only") => Self::Accepts,
            Some("rejects_server_only_dialback" | "no_cert_auth") => Self::DialbackOnly,
            Some("rejects_server_only_no_fallback") => Self::Breaks,
            _ => Self::NotTested,
        }
    }

    /// The badge's words.
    pub fn text(self) -> &'static str {
        match self {
            Self::Accepts => "accepts",
            Self::DialbackOnly => "dialback only",
            Self::Breaks => "breaks",
            Self::NotTested => "not tested",
        }
    }

    /// The CSS class / snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepts => "accepts",
            Self::DialbackOnly => "dialback_only",
            Self::Breaks => "breaks",
            Self::NotTested => "not_tested",
        }
    }
}

/// One sentence for an acceptance verdict, as an operator reads it.
pub fn verdict_sentence(verdict: &str) -> &'static str {
    match verdict {
        "accepts_server_only" => {
            "Accepts peers with server-only certificates: federation keeps working as certificates turn server-only."
        }
        "rejects_server_only_dialback" => {
            "Refuses server-only certificates, but federates through dialback: keep dialback enabled."
        }
        "rejects_server_only_no_fallback" => {
            "Refuses server-only certificates and offers no dialback: federation with server-only peers breaks."
        }
        "no_cert_auth" => "Never authenticates peers by certificate: it relies on dialback alone.",
        "inconclusive" => "The acceptance test was inconclusive.",
        "unreachable" => "No server-to-server endpoint could be reached.",
        "tls_failed" => "No TLS session could be established with the server-to-server endpoint.",
        "not_run" => "The acceptance test did not run (no probe identity).",
        _ => "Unknown verdict.",
    }
}

/// A finding: one check, its status, what was seen, and what to do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingView {
    /// Stable code of the test, e.g. `s2s_starttls_required`.
    pub code: String,
    /// The outcome variant the advice was chosen by, e.g. `optional`.
    pub case: String,
    /// passed, failed, warning, info, not_tested, error.
    pub status: String,
    /// The check, in words.
    pub title: String,
    /// One sentence of what was seen.
    pub seen: String,
    /// The evidence.
    pub evidence: Vec<EvidenceView>,
    /// What to do.
    pub advice: Option<AdviceView>,
}

/// One piece of evidence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EvidenceView {
    /// What it is.
    pub label: String,
    /// Its value.
    pub value: String,
}

/// Advice with its sources.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdviceView {
    /// What to do.
    pub text: String,
    /// Where the advice comes from.
    pub sources: Vec<AdviceSourceView>,
}

/// A source of advice.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdviceSourceView {
    /// Title.
    pub title: String,
    /// URL.
    pub url: String,
}

impl From<&crate::model::finding::Finding> for FindingView {
    fn from(f: &crate::model::finding::Finding) -> Self {
        Self {
            code: f.code.as_str().to_string(),
            case: f.case.clone(),
            status: f.status.as_str().to_string(),
            title: f.title.clone(),
            seen: f.seen.clone(),
            evidence: f
                .evidence
                .iter()
                .map(|e| EvidenceView {
                    label: e.label.clone(),
                    value: e.value.clone(),
                })
                .collect(),
            advice: f.advice.as_ref().map(|a| AdviceView {
                text: a.text.clone(),
                sources: a
                    .sources
                    .iter()
                    .map(|s| AdviceSourceView {
                        title: s.title.clone(),
                        url: s.url.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

/// The findings of a report ([`crate::lookup::findings`], advice from the
/// knowledge file), as the pages and the API show them.
pub fn findings(report: &DomainReport, knowledge: &crate::lookup::Knowledge) -> Vec<FindingView> {
    let today = OffsetDateTime::now_utc().date();
    crate::lookup::findings(report, knowledge, today)
        .iter()
        .map(FindingView::from)
        .collect()
}

/// One endpoint row.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    /// c2s / s2s.
    pub service: String,
    /// starttls / direct_tls.
    pub transport: String,
    /// Host name.
    pub host: String,
    /// `ip:port` (IPv6 in brackets).
    pub address: String,
    /// Where the probe ended.
    pub outcome: String,
    /// STARTTLS offer.
    pub starttls: String,
    /// TLS version.
    pub tls_version: String,
    /// Chain verdict.
    pub chain_verdict: String,
    /// Whether this endpoint reached post-TLS features.
    pub ok: bool,
}

/// One certificate of a chain.
#[derive(Debug, Clone, Serialize)]
pub struct CertView {
    /// 0 = end-entity.
    pub position: usize,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// notAfter (date).
    pub not_after: String,
    /// EKU class.
    pub eku_class: String,
    /// The purposes, in words.
    pub eku: Vec<String>,
    /// Whether clientAuth is missing (what strict peers check).
    pub lacks_client_auth: bool,
    /// DNS names.
    pub dns: Vec<String>,
    /// SHA-256.
    pub sha256: String,
}

/// The chain shown: from one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ChainView {
    /// Which endpoint (service and address).
    pub endpoint: String,
    /// Its certificates, end-entity first.
    pub certs: Vec<CertView>,
}

/// One acceptance attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    /// server_only / client_and_server.
    pub cert: String,
    /// Whether a client certificate was requested.
    pub requested: String,
    /// Whether ours was sent.
    pub sent: bool,
    /// TLS outcome.
    pub tls: String,
    /// EXTERNAL offered.
    pub external_offered: String,
    /// The answer to EXTERNAL.
    pub external: String,
    /// Dialback offered.
    pub dialback_offered: String,
    /// Ping answer.
    pub ping: String,
}

/// The acceptance evidence.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptanceView {
    /// The verdict.
    pub verdict: String,
    /// Its reason code.
    pub reason_code: String,
    /// In words.
    pub reason: Option<String>,
    /// The endpoint tried.
    pub endpoint: Option<String>,
    /// Our probe domain.
    pub probe_domain: String,
    /// Each attempt.
    pub attempts: Vec<AttemptView>,
    /// The dialback attempt, in words.
    pub dialback: Option<String>,
}

/// Everything the domain page shows of one report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    /// The verdict code.
    pub acceptance: String,
    /// The verdict in one sentence.
    pub verdict_sentence: &'static str,
    /// Badge state name.
    pub state: &'static str,
    /// Badge words.
    pub state_text: &'static str,
    /// When probed (UTC, minutes).
    pub probed_at: String,
    /// Software, if known.
    pub software: Option<String>,
    /// c2s / s2s status.
    pub c2s_status: String,
    /// s2s status.
    pub s2s_status: String,
    /// Findings.
    pub findings: Vec<FindingView>,
    /// Endpoints.
    pub endpoints: Vec<EndpointView>,
    /// The chains shown (s2s first, then c2s when different).
    pub chains: Vec<ChainView>,
    /// Acceptance evidence.
    pub acceptance_evidence: Option<AcceptanceView>,
}

/// A date-time as the pages show it: `2026-12-01 02:31 UTC`.
pub fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn opt<T: Serialize>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), label)
}

fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}

fn address(e: &EndpointReport) -> String {
    e.key.addr().to_string()
}

fn endpoint_view(e: &EndpointReport) -> EndpointView {
    let outcome = label(e.outcome);
    EndpointView {
        service: e.key.service.as_str().to_string(),
        transport: e.key.transport.as_str().to_string(),
        host: e.key.host.clone(),
        address: address(e),
        ok: outcome == "complete",
        outcome,
        starttls: opt(e.pre_tls.as_ref().map(|f| f.starttls)),
        tls_version: e
            .tls
            .as_ref()
            .and_then(|t| t.version.clone())
            .unwrap_or_else(|| "-".into()),
        chain_verdict: opt(e.tls.as_ref().and_then(|t| t.verdict)),
    }
}

fn chain_view(e: &EndpointReport) -> Option<ChainView> {
    let tls = e.tls.as_ref()?;
    if tls.chain.is_empty() {
        return None;
    }
    let certs = tls
        .chain
        .iter()
        .enumerate()
        .map(|(position, c)| {
            let mut eku = Vec::new();
            if !c.eku.present {
                eku.push("no EKU extension (any purpose)".to_string());
            }
            if c.eku.server_auth {
                eku.push("serverAuth".into());
            }
            if c.eku.client_auth {
                eku.push("clientAuth".into());
            }
            if c.eku.any {
                eku.push("anyExtendedKeyUsage".into());
            }
            for o in &c.eku.oids {
                if !["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "2.5.29.37.0"].contains(&o.as_str())
                {
                    eku.push(o.clone());
                }
            }
            CertView {
                position,
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                not_after: c.not_after.date().to_string(),
                eku_class: c.eku.class.as_str().to_string(),
                lacks_client_auth: c.eku.present && !c.eku.client_auth && !c.eku.any,
                eku,
                dns: c.sans.dns.clone(),
                sha256: c.sha256.clone(),
            }
        })
        .collect();
    Some(ChainView {
        endpoint: format!("{} {} ({})", e.key.service.as_str(), address(e), e.key.host),
        certs,
    })
}

fn acceptance_view(report: &DomainReport) -> Option<AcceptanceView> {
    let a = report.acceptance.as_ref()?;
    let attempts = a
        .attempts
        .iter()
        .map(|t| {
            let c = &t.connection;
            let tls = match &c.tls {
                Some(tls) => match tls.failure {
                    Some(f) => format!(
                        "failed: {}{}",
                        label(f),
                        tls.failure_detail
                            .as_ref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    ),
                    None => tls.version.clone().unwrap_or_else(|| "ok".into()),
                },
                None => format!("not reached ({})", label(c.outcome)),
            };
            let external = match &t.external {
                None => match t.external_fault {
                    Some(f) => format!("no answer ({})", label(f)),
                    None => "not sent".into(),
                },
                Some(crate::xmpp::sasl::SaslOutcome::Success) => "success".into(),
                Some(crate::xmpp::sasl::SaslOutcome::Challenge) => "challenge".into(),
                Some(crate::xmpp::sasl::SaslOutcome::Failure { condition, text }) => match text {
                    Some(text) => format!("failure: {condition} \u{201c}{text}\u{201d}"),
                    None => format!("failure: {condition}"),
                },
            };
            AttemptView {
                cert: t.cert.as_str().to_string(),
                requested: yes_no(c.tls.as_ref().map(|t| t.client_cert_requested)),
                sent: t.client_cert_sent,
                tls,
                external_offered: yes_no(t.external_offered),
                external,
                dialback_offered: yes_no(t.dialback_offered),
                ping: label(&t.ping),
            }
        })
        .collect();
    Some(AcceptanceView {
        verdict: a.verdict.as_str().to_string(),
        reason_code: a.reason_code.as_str().to_string(),
        reason: a.reason.clone(),
        endpoint: a.endpoint.clone(),
        probe_domain: a.probe_domain.clone(),
        attempts,
        dialback: a.dialback.as_ref().map(|d| {
            let outcome = label(&d.outcome);
            format!(
                "{outcome}{}",
                if d.verify_received {
                    " (the server verified our key with our authoritative server)"
                } else {
                    ""
                }
            )
        }),
    })
}

/// Order of statuses on the pages: what needs doing first.
fn severity(status: &str) -> u8 {
    match status {
        "failed" => 0,
        "error" => 1,
        "warning" => 2,
        "not_tested" => 3,
        "info" => 4,
        _ => 5,
    }
}

/// The page's view of one report (findings ordered: failed, error,
/// warning, not tested, info, passed; the order of the lookup otherwise).
pub fn report_view(report: &DomainReport, mut findings: Vec<FindingView>) -> ReportView {
    findings.sort_by_key(|f| severity(&f.status));
    let acceptance = report.summary.acceptance.as_str().to_string();
    let state = BadgeState::from_acceptance(Some(&acceptance));
    let endpoints: Vec<EndpointView> = report.endpoints.iter().map(endpoint_view).collect();
    let mut chains = Vec::new();
    let primary = |service: &str| {
        report
            .endpoints
            .iter()
            .filter(|e| e.key.service.as_str() == service)
            .find_map(chain_view)
    };
    if let Some(c) = primary("s2s") {
        chains.push(c);
    }
    if let Some(c) = primary("c2s") {
        let same = chains.first().is_some_and(|s| {
            s.certs
                .iter()
                .map(|x| &x.sha256)
                .eq(c.certs.iter().map(|x| &x.sha256))
        });
        if !same {
            chains.push(c);
        }
    }
    let software = report.summary.software.as_ref().and_then(|s| {
        let t = [s.name.as_deref(), s.version.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!t.is_empty()).then_some(t)
    });
    ReportView {
        verdict_sentence: verdict_sentence(&acceptance),
        acceptance,
        state: state.name(),
        state_text: state.text(),
        probed_at: when(report.started_at),
        software,
        c2s_status: report.summary.c2s.status.as_str().to_string(),
        s2s_status: report.summary.s2s.status.as_str().to_string(),
        findings,
        endpoints,
        chains,
        acceptance_evidence: acceptance_view(report),
    }
}
