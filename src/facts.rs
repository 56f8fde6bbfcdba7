//! Flattened, comparable facts of one probe: the single vocabulary shared by
//! the testnet manifest (expected values), the truth test (measured values)
//! and, later, the database's typed columns.
//!
//! A fact is `key → JSON value`. Keys look like `dns.xmpp_server.outcome`,
//! `s2s/starttls/xmpp.example.test/127.0.3.4:5269.tls_version` or
//! `summary.c2s.starttls`. A measured fact that does not apply is `null`;
//! an expectation that does not mention a key asserts nothing about it.

use crate::dns::{DnsReport, SrvService};
use crate::model::report::{DomainReport, EndpointKey, EndpointReport};
use crate::model::summary::DomainSummary;
use serde_json::Value;
use std::collections::BTreeMap;

/// A set of facts (or of expectations), ordered by key for stable output.
pub type Facts = BTreeMap<String, Value>;

/// Per-endpoint fact names. The probe fills every one; a testnet profile
/// states the ones its behaviour determines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointField {
    /// [`crate::probe::report::ConnectOutcome`].
    Connect,
    /// [`crate::probe::report::EndpointOutcome`].
    Outcome,
    /// [`crate::probe::report::Phase`] of the outcome.
    Phase,
    /// Stream error condition (any phase).
    StreamError,
    /// `version` attribute of the first stream header.
    HeaderVersion,
    /// STARTTLS offer before TLS.
    Starttls,
    /// SASL mechanisms before TLS.
    SaslBeforeTls,
    /// Dialback offered before TLS.
    DialbackBeforeTls,
    /// iq-auth offered before TLS.
    IqAuth,
    /// Caps `node` before TLS (or after, if none before).
    CapsNode,
    /// [`crate::tls::TlsFailure`].
    TlsFailure,
    /// Negotiated TLS version.
    TlsVersion,
    /// Negotiated ALPN.
    Alpn,
    /// CertificateRequest seen.
    ClientCertRequested,
    /// Number of certificates presented.
    ChainLen,
    /// [`crate::tls::ChainVerdict`].
    Verdict,
    /// [`crate::tls::NameMatch`].
    NameMatch,
    /// EKU class of the end-entity certificate.
    EkuClass,
    /// EKU classes of every certificate presented, in order.
    ChainEkuClasses,
    /// End-entity issued by Let's Encrypt.
    LetsEncrypt,
    /// "Will renew as server-only" date.
    RenewsServerOnly,
    /// End-entity key algorithm.
    KeyAlgorithm,
    /// SASL mechanisms after TLS.
    SaslAfterTls,
    /// Dialback offered after TLS.
    DialbackAfterTls,
    /// Bidi offered after TLS.
    Bidi,
    /// TLSA match.
    DaneMatch,
    /// Plaintext bytes discarded after `<proceed/>` (STARTTLS injection).
    StarttlsInjectedBytes,
    /// What was odd about the end-entity certificate (NUL in a name, a time
    /// with an offset…), as [`crate::tls::CertAnomaly`] names.
    CertAnomalies,
}

impl EndpointField {
    /// Every field, in report order.
    pub const ALL: [Self; 28] = [
        Self::Connect,
        Self::Outcome,
        Self::Phase,
        Self::StreamError,
        Self::HeaderVersion,
        Self::Starttls,
        Self::SaslBeforeTls,
        Self::DialbackBeforeTls,
        Self::IqAuth,
        Self::CapsNode,
        Self::TlsFailure,
        Self::TlsVersion,
        Self::Alpn,
        Self::ClientCertRequested,
        Self::ChainLen,
        Self::Verdict,
        Self::NameMatch,
        Self::EkuClass,
        Self::ChainEkuClasses,
        Self::LetsEncrypt,
        Self::RenewsServerOnly,
        Self::KeyAlgorithm,
        Self::SaslAfterTls,
        Self::DialbackAfterTls,
        Self::Bidi,
        Self::DaneMatch,
        Self::StarttlsInjectedBytes,
        Self::CertAnomalies,
    ];

    /// The key suffix used in [`Facts`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Outcome => "outcome",
            Self::Phase => "phase",
            Self::StreamError => "stream_error",
            Self::HeaderVersion => "header_version",
            Self::Starttls => "starttls",
            Self::SaslBeforeTls => "sasl_before_tls",
            Self::DialbackBeforeTls => "dialback_before_tls",
            Self::IqAuth => "iq_auth",
            Self::CapsNode => "caps_node",
            Self::TlsFailure => "tls_failure",
            Self::TlsVersion => "tls_version",
            Self::Alpn => "alpn",
            Self::ClientCertRequested => "client_cert_requested",
            Self::ChainLen => "chain_len",
            Self::Verdict => "verdict",
            Self::NameMatch => "name_match",
            Self::EkuClass => "eku_class",
            Self::ChainEkuClasses => "chain_eku_classes",
            Self::LetsEncrypt => "lets_encrypt",
            Self::RenewsServerOnly => "renews_server_only",
            Self::KeyAlgorithm => "key_algorithm",
            Self::SaslAfterTls => "sasl_after_tls",
            Self::DialbackAfterTls => "dialback_after_tls",
            Self::Bidi => "bidi",
            Self::DaneMatch => "dane_match",
            Self::StarttlsInjectedBytes => "starttls_injected_bytes",
            Self::CertAnomalies => "cert_anomalies",
        }
    }

    /// Measures this field on an endpoint report.
    pub fn measure(self, e: &EndpointReport) -> Value {
        let tls = e.tls.as_ref();
        let leaf = tls.and_then(|t| t.chain.first());
        match self {
            Self::Connect => json(e.connect),
            Self::Outcome => json(e.outcome),
            Self::Phase => json(e.phase),
            Self::StreamError => json(e.stream_error.as_ref().map(|s| &s.condition)),
            Self::HeaderVersion => json(e.header.as_ref().map(|h| &h.version)),
            Self::Starttls => json(e.pre_tls.as_ref().map(|f| f.starttls)),
            Self::SaslBeforeTls => json(e.pre_tls.as_ref().map(|f| &f.sasl_mechanisms)),
            Self::DialbackBeforeTls => json(e.pre_tls.as_ref().map(|f| f.dialback)),
            Self::IqAuth => json(e.pre_tls.as_ref().map(|f| f.iq_auth)),
            Self::CapsNode => json(
                [e.pre_tls.as_ref(), e.post_tls.as_ref()]
                    .into_iter()
                    .flatten()
                    .find_map(|f| f.caps.as_ref().and_then(|c| c.node.clone())),
            ),
            Self::TlsFailure => json(tls.and_then(|t| t.failure)),
            Self::TlsVersion => json(tls.and_then(|t| t.version.as_ref())),
            Self::Alpn => json(tls.and_then(|t| t.alpn.as_ref())),
            Self::ClientCertRequested => json(tls.map(|t| t.client_cert_requested)),
            Self::ChainLen => json(tls.map(|t| t.chain.len())),
            Self::Verdict => json(tls.and_then(|t| t.verdict)),
            Self::NameMatch => json(tls.and_then(|t| t.name_match)),
            Self::EkuClass => json(leaf.map(|c| c.eku.class)),
            Self::ChainEkuClasses => {
                json(tls.map(|t| t.chain.iter().map(|c| c.eku.class).collect::<Vec<_>>()))
            }
            Self::LetsEncrypt => json(leaf.map(|c| c.lets_encrypt)),
            Self::RenewsServerOnly => json(leaf.and_then(|c| c.renews_server_only)),
            Self::KeyAlgorithm => json(leaf.map(|c| &c.key.algorithm)),
            Self::SaslAfterTls => json(e.post_tls.as_ref().map(|f| &f.sasl_mechanisms)),
            Self::DialbackAfterTls => json(e.post_tls.as_ref().map(|f| f.dialback)),
            Self::Bidi => json(e.post_tls.as_ref().map(|f| f.bidi)),
            Self::DaneMatch => json(tls.and_then(|t| t.dane_match)),
            Self::StarttlsInjectedBytes => json(e.starttls_injected_bytes),
            Self::CertAnomalies => json(leaf.map(|c| &c.anomalies)),
        }
    }
}

pub use crate::model::names::{json, label};

/// The key naming one endpoint: `service/transport/host/ip:port`.
pub fn endpoint_key(k: &EndpointKey) -> String {
    let service = json(k.service);
    let transport = json(k.transport);
    format!(
        "{}/{}/{}/{}",
        service.as_str().unwrap_or_default(),
        transport.as_str().unwrap_or_default(),
        k.host,
        k.addr()
    )
}

/// The key of a measured endpoint.
pub fn key_of(e: &EndpointReport) -> String {
    endpoint_key(&e.key)
}

/// Key of a per-endpoint fact.
pub fn endpoint_fact_key(endpoint: &str, field: EndpointField) -> String {
    format!("{endpoint}.{}", field.name())
}

/// Key of the sorted list of endpoint keys probed.
pub const ENDPOINTS_KEY: &str = "endpoints";

/// Keys of the DNS facts of one SRV name.
pub fn srv_keys(service: SrvService) -> [String; 3] {
    let s = json(service);
    let s = s.as_str().unwrap_or_default();
    [
        format!("dns.{s}.outcome"),
        format!("dns.{s}.records"),
        format!("dns.{s}.unavailable"),
    ]
}

/// Key of the DNSSEC fact.
pub const DNSSEC_KEY: &str = "dns.dnssec";
/// Key of the list of TLSA names that had records.
pub const TLSA_KEY: &str = "dns.tlsa_with_records";

/// The DNS facts of a report.
pub fn dns_facts(dns: &DnsReport) -> Facts {
    let mut f = Facts::new();
    for lookup in &dns.srv {
        let [outcome, records, unavailable] = srv_keys(lookup.service);
        f.insert(outcome, json(lookup.outcome));
        f.insert(
            records,
            json(
                lookup
                    .records
                    .iter()
                    .map(|r| format!("{} {} {} {}", r.priority, r.weight, r.port, r.target))
                    .collect::<Vec<_>>(),
            ),
        );
        f.insert(unavailable, json(lookup.decidedly_unavailable));
    }
    f.insert(DNSSEC_KEY.into(), json(dns.dnssec));
    let mut tlsa: Vec<&str> = dns
        .tlsa
        .iter()
        .filter(|t| !t.records.is_empty())
        .map(|t| t.name.as_str())
        .collect();
    tlsa.sort_unstable();
    f.insert(TLSA_KEY.into(), json(tlsa));
    f
}

/// The summary facts, `summary.c2s.*` and `summary.s2s.*`.
pub fn summary_facts(summary: &DomainSummary) -> Facts {
    let mut f = Facts::new();
    for (name, svc) in [("c2s", &summary.c2s), ("s2s", &summary.s2s)] {
        if let Value::Object(map) = json(svc) {
            for (k, v) in map {
                f.insert(format!("summary.{name}.{k}"), v);
            }
        }
    }
    f
}

/// Every fact of a domain report.
pub fn facts(report: &DomainReport) -> Facts {
    let mut f = dns_facts(&report.dns);
    let mut keys: Vec<String> = report.endpoints.iter().map(key_of).collect();
    keys.sort();
    f.insert(ENDPOINTS_KEY.into(), json(&keys));
    for e in &report.endpoints {
        let key = key_of(e);
        for field in EndpointField::ALL {
            f.insert(endpoint_fact_key(&key, field), field.measure(e));
        }
    }
    f.extend(summary_facts(&report.summary));
    f.extend(acceptance_facts(report));
    f
}

/// One disagreement between an expectation and a measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The fact key.
    pub key: String,
    /// What the expectation said.
    pub expected: Value,
    /// What was measured (`null` when absent).
    pub got: Value,
}

/// Compares expectations with measured facts: every expected key must be
/// measured with an equal value.
pub fn compare(expected: &Facts, measured: &Facts) -> Vec<Mismatch> {
    expected
        .iter()
        .filter_map(|(k, want)| {
            let got = measured.get(k).cloned().unwrap_or(Value::Null);
            (got != *want).then(|| Mismatch {
                key: k.clone(),
                expected: want.clone(),
                got,
            })
        })
        .collect()
}

/// Prefix of every acceptance fact; a passive probe measures only
/// `acceptance.verdict` (`not_run`).
pub const ACCEPTANCE_PREFIX: &str = "acceptance.";

/// Names of the acceptance facts of one attempt (`acceptance.server_only.*`).
pub const ATTEMPT_FIELDS: [&str; 6] = [
    "client_cert_requested",
    "client_cert_sent",
    "tls_failure",
    "external_offered",
    "external",
    "external_fault",
];

/// Key of an acceptance fact.
pub fn acceptance_key(name: &str) -> String {
    format!("{ACCEPTANCE_PREFIX}{name}")
}

/// The acceptance facts (MEASUREMENTS §3) of a report.
pub fn acceptance_facts(report: &DomainReport) -> Facts {
    use crate::model::acceptance::{IqOutcome, ProbeCertKind};
    let mut f = Facts::new();
    f.insert(acceptance_key("verdict"), json(report.summary.acceptance));
    let Some(a) = &report.acceptance else {
        return f;
    };
    for kind in [ProbeCertKind::ServerOnly, ProbeCertKind::ClientAndServer] {
        let k = json(kind);
        let k = k.as_str().unwrap_or_default();
        let at = a.attempts.iter().find(|x| x.cert == kind);
        let tls = at.and_then(|x| x.connection.tls.as_ref());
        let values = [
            json(tls.map(|t| t.client_cert_requested)),
            json(at.map(|x| x.client_cert_sent)),
            json(tls.and_then(|t| t.failure)),
            json(at.and_then(|x| x.external_offered)),
            json(at.and_then(|x| x.external.as_ref())),
            json(at.and_then(|x| x.external_fault)),
        ];
        for (name, v) in ATTEMPT_FIELDS.iter().zip(values) {
            f.insert(acceptance_key(&format!("{k}.{name}")), v);
        }
    }
    f.insert(
        acceptance_key("dialback_offered"),
        json(a.attempts.iter().any(|x| x.dialback_offered == Some(true))),
    );
    f.insert(
        acceptance_key("dialback"),
        json(a.dialback.as_ref().map(|d| &d.outcome)),
    );
    f.insert(
        acceptance_key("dialback_verify_received"),
        json(a.dialback.as_ref().map(|d| d.verify_received)),
    );
    // The first authenticated stream's answers (an EXTERNAL attempt, else
    // the dialback stream); `None` when no stream authenticated.
    let authenticated = a
        .attempts
        .iter()
        .map(|x| (&x.ping, &x.version_query))
        .chain(a.dialback.as_ref().map(|d| (&d.ping, &d.version_query)))
        .find(|(p, _)| **p != IqOutcome::NotAttempted);
    f.insert(acceptance_key("ping"), json(authenticated.map(|x| x.0)));
    f.insert(
        acceptance_key("version_query"),
        json(authenticated.map(|x| x.1)),
    );
    f.insert(acceptance_key("reason_code"), json(a.reason_code));
    f.insert(
        acceptance_key("software"),
        json(a.software.as_ref().and_then(|s| s.name.as_ref())),
    );
    f.insert(
        acceptance_key("software_version"),
        json(a.software.as_ref().and_then(|s| s.version.as_ref())),
    );
    let mut ekus: Vec<String> = a
        .inbound
        .iter()
        .filter_map(|i| i.client_eku)
        .map(|c| json(c).as_str().unwrap_or_default().to_string())
        .collect();
    ekus.sort();
    ekus.dedup();
    f.insert(acceptance_key("inbound_client_eku"), json(ekus));
    let mut purposes: Vec<String> = a
        .inbound
        .iter()
        .filter_map(|i| i.client_purpose)
        .map(|c| json(c).as_str().unwrap_or_default().to_string())
        .collect();
    purposes.sort();
    purposes.dedup();
    f.insert(acceptance_key("inbound_client_purpose"), json(purposes));
    f
}

/// A line of a JSON-lines report file that is not a probe report.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: not a probe report")]
pub struct BadReportLine {
    /// 1-based line number.
    pub line: usize,
    /// The parser's error.
    #[source]
    pub source: serde_json::Error,
}

/// Parses probe results written one JSON object a line (`probe --json`,
/// `--json-out`), blank lines ignored; a later report of a domain
/// replaces an earlier one.
pub fn parse_reports(
    text: &str,
) -> Result<std::collections::HashMap<String, DomainReport>, BadReportLine> {
    let mut by_domain = std::collections::HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: DomainReport = serde_json::from_str(line).map_err(|source| BadReportLine {
            line: i + 1,
            source,
        })?;
        by_domain.insert(r.domain.clone(), r);
    }
    Ok(by_domain)
}
