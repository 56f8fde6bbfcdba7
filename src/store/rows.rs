//! The mapping from a [`DomainReport`] to the rows the schema stores: pure,
//! so it is unit-tested without a database and the SQL stays a thin
//! `jsonb_populate_record` over these structs.
//!
//! Every struct here serialises to a JSON object whose keys are **exactly**
//! the column names of its table (`schema.sql`); `Store::record` hands the
//! objects to PostgreSQL, which converts them with the table's own row type.
//! The integration test `row_keys_are_the_table_columns` keeps the two in
//! step. Columns the database fills itself (`crawl_id`, `domain_id`,
//! `recorded_at`) are not here.

use crate::dns::{DnsOutcome, DnsReport, Dnssec};
use crate::model::acceptance::{
    AcceptanceReason, AcceptanceReport, AcceptanceVerdict, AttemptReport, DialbackOutcome,
    DialbackReport, InboundAuth, InboundReport, IqOutcome, ProbeCertKind,
};
use crate::model::report::{
    ConnectOutcome, DomainReport, EndpointKey, EndpointOutcome, EndpointReport, EndpointSource,
    Phase, Transport,
};
use crate::model::summary::{ServiceStatus, ServiceSummary};
use crate::tls::{CertInfo, ChainVerdict, ClientPurpose, EkuClass, NameMatch, TlsFailure};
use crate::xmpp::features::StarttlsOffer;
use crate::xmpp::sasl::SaslOutcome;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use time::{Date, OffsetDateTime};

/// All rows one domain's report becomes, in the order they are inserted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rows {
    /// The `results` row.
    pub result: ResultRow,
    /// Distinct certificates of every endpoint's chain, sorted by SHA-256
    /// (a fixed order means two concurrent upserts lock rows in the same
    /// order and cannot deadlock).
    pub certificates: Vec<CertificateRow>,
    /// One `endpoints` row per report endpoint, in report order.
    pub endpoints: Vec<EndpointRow>,
    /// The chain of every endpoint, certificate by certificate.
    pub chain_members: Vec<ChainMemberRow>,
    /// One `dns_records` row per DNS question.
    pub dns_records: Vec<DnsRow>,
    /// One `acceptance_attempts` row per acceptance attempt, in report order.
    pub acceptance_attempts: Vec<AttemptRow>,
    /// The `acceptance_dialback` row, when the acceptance probe ran.
    pub acceptance_dialback: Option<DialbackRow>,
    /// One `inbound_streams` row per stream the target opened to the
    /// probe's listener, in report order.
    pub inbound_streams: Vec<InboundRow>,
}

/// A `results` row: the per-domain verdicts as typed columns plus the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRow {
    /// When the probe started.
    #[serde(with = "time::serde::rfc3339")]
    pub probed_at: OffsetDateTime,
    /// Wall time of the probe.
    pub duration_ms: u64,
    /// DNSSEC status.
    pub dnssec: Dnssec,
    /// c2s verdict columns.
    #[serde(flatten, serialize_with = "c2s")]
    pub c2s: ServiceColumns,
    /// s2s verdict columns.
    #[serde(flatten, serialize_with = "s2s")]
    pub s2s: ServiceColumns,
    /// s2s dialback offered (XEP-0220).
    pub s2s_dialback_offered: Option<bool>,
    /// s2s bidi offered (XEP-0288).
    pub s2s_bidi_offered: Option<bool>,
    /// Acceptance verdict (MEASUREMENTS §3).
    pub acceptance: AcceptanceVerdict,
    /// Why that verdict, as a stable code (`no_probe_identity` when the
    /// probe did not run).
    pub acceptance_reason: Option<AcceptanceReason>,
    /// Why that verdict, in words.
    pub acceptance_reason_text: Option<String>,
    /// The s2s endpoint the attempts ran against.
    pub acceptance_endpoint: Option<String>,
    /// Ping outcome on the first authenticated acceptance stream.
    pub acceptance_ping: Option<&'static str>,
    /// Version-query outcome on the first authenticated acceptance stream.
    pub acceptance_version_query: Option<&'static str>,
    /// XEP-0092 name.
    pub software_name: Option<String>,
    /// XEP-0092 version.
    pub software_version: Option<String>,
    /// The whole report.
    pub report: Report,
}

/// The columns a [`ServiceSummary`] gives, without their `c2s_`/`s2s_`
/// prefix (added when serialised).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceColumns {
    /// Reachability.
    pub status: ServiceStatus,
    /// Endpoints probed.
    pub endpoints: usize,
    /// Endpoints that completed TLS.
    pub endpoints_tls_ok: usize,
    /// STARTTLS offer.
    pub starttls: Option<StarttlsOffer>,
    /// SASL mechanisms before TLS.
    pub sasl_before_tls: Option<Vec<String>>,
    /// Direct TLS completed.
    pub direct_tls: bool,
    /// Primary endpoint's TLS version.
    pub tls_version: Option<String>,
    /// Primary endpoint's chain verdict.
    pub chain_verdict: Option<ChainVerdict>,
    /// Primary endpoint's name match.
    pub name_match: Option<NameMatch>,
    /// Primary end-entity's EKU class.
    pub eku_class: Option<EkuClass>,
    /// Primary chain's TLS-client purpose check.
    pub client_purpose: Option<ClientPurpose>,
    /// Issued by Let's Encrypt.
    pub lets_encrypt: Option<bool>,
    /// Date the successor turns server-only.
    #[serde(serialize_with = "date_opt")]
    pub renews_server_only: Option<Date>,
    /// CertificateRequest seen.
    pub client_cert_requested: Option<bool>,
    /// EXTERNAL offered after TLS.
    pub external_offered: Option<bool>,
    /// TLSA matched.
    pub dane_match: Option<bool>,
}

impl From<&ServiceSummary> for ServiceColumns {
    fn from(s: &ServiceSummary) -> Self {
        Self {
            status: s.status,
            endpoints: s.endpoints,
            endpoints_tls_ok: s.endpoints_tls_ok,
            starttls: s.starttls,
            sasl_before_tls: s.sasl_before_tls.clone(),
            direct_tls: s.direct_tls,
            tls_version: s.tls_version.clone(),
            chain_verdict: s.chain_verdict,
            name_match: s.name_match,
            eku_class: s.eku_class,
            client_purpose: s.client_purpose,
            lets_encrypt: s.lets_encrypt,
            renews_server_only: s.renews_server_only,
            client_cert_requested: s.client_cert_requested,
            external_offered: s.external_offered,
            dane_match: s.dane_match,
        }
    }
}

/// A `certificates` row; `first_seen` = `last_seen` = this sighting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateRow {
    /// SHA-256 of the DER.
    pub sha256: String,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial, hex.
    pub serial: String,
    /// notBefore.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// notAfter.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Key algorithm.
    pub key_algorithm: String,
    /// Key size.
    pub key_bits: Option<u32>,
    /// EC curve.
    pub key_curve: Option<String>,
    /// Signature algorithm.
    pub signature_algorithm: String,
    /// EKU extension present.
    pub eku_present: bool,
    /// EKU class.
    pub eku_class: EkuClass,
    /// EKU OIDs.
    pub eku_oids: Vec<String>,
    /// SANs as JSON.
    pub sans: Value,
    /// Let's Encrypt.
    pub lets_encrypt: bool,
    /// cA.
    pub is_ca: bool,
    /// Self-signed.
    pub self_signed: bool,
    /// Renews server-only on.
    #[serde(serialize_with = "date_opt")]
    pub renews_server_only: Option<Date>,
    /// This sighting (the probe's start).
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// This sighting (the probe's start).
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// An `endpoints` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointRow {
    /// Index in the report's endpoint list.
    pub ordinal: usize,
    /// Service, transport, host, address, port (flattened: the row's
    /// columns).
    #[serde(flatten)]
    pub key: EndpointKey,
    /// SRV or fallback.
    pub source: EndpointSource,
    /// TCP connect result.
    pub connect: ConnectOutcome,
    /// Connect time.
    pub connect_ms: Option<u64>,
    /// Final outcome.
    pub outcome: EndpointOutcome,
    /// Phase of the outcome.
    pub phase: Option<Phase>,
    /// STARTTLS offer before TLS.
    pub starttls: Option<StarttlsOffer>,
    /// TLS failure class.
    pub tls_failure: Option<TlsFailure>,
    /// TLS version.
    pub tls_version: Option<String>,
    /// Cipher suite.
    pub cipher_suite: Option<String>,
    /// ALPN.
    pub alpn: Option<String>,
    /// CertificateRequest seen (`None`: no TLS attempted).
    pub client_cert_requested: Option<bool>,
    /// Chain verdict.
    pub chain_verdict: Option<ChainVerdict>,
    /// Name match.
    pub name_match: Option<NameMatch>,
    /// TLSA match.
    pub dane_match: Option<bool>,
    /// End-entity certificate.
    pub leaf_sha256: Option<String>,
    /// The endpoint JSON, `tls.chain` replaced by `tls.chain_sha256`.
    pub evidence: Value,
    /// Plaintext bytes discarded after `<proceed/>`.
    pub starttls_injected_bytes: Option<u64>,
    /// The presented chain's TLS-client purpose check.
    pub client_purpose: Option<ClientPurpose>,
}

/// An `acceptance_attempts` row: one probe certificate presented to the
/// target's s2s endpoint (MEASUREMENTS §3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    /// Index in the report's attempt list.
    pub ordinal: usize,
    /// The certificate presented.
    pub cert_kind: ProbeCertKind,
    /// STARTTLS / direct TLS.
    pub transport: Transport,
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// CertificateRequest seen (`None`: no TLS attempted).
    pub client_cert_requested: Option<bool>,
    /// Our certificate was sent.
    pub client_cert_sent: bool,
    /// TLS version.
    pub tls_version: Option<String>,
    /// TLS failure class.
    pub tls_failure: Option<TlsFailure>,
    /// TLS failure in words (alert description).
    pub tls_failure_detail: Option<String>,
    /// Connection outcome.
    pub outcome: EndpointOutcome,
    /// Phase of the outcome.
    pub phase: Option<Phase>,
    /// EXTERNAL offered after TLS.
    pub external_offered: Option<bool>,
    /// The answer to EXTERNAL ([`sasl_kind`]).
    pub external_outcome: Option<&'static str>,
    /// Its failure condition.
    pub external_condition: Option<String>,
    /// Its failure text.
    pub external_text: Option<String>,
    /// How the exchange broke instead of answering.
    pub external_fault: Option<crate::model::acceptance::ExchangeFault>,
    /// Dialback offered.
    pub dialback_offered: Option<bool>,
    /// Ping outcome ([`iq_kind`]).
    pub ping: &'static str,
    /// Ping error condition.
    pub ping_condition: Option<String>,
    /// Version-query outcome ([`iq_kind`]).
    pub version_query: &'static str,
    /// Version-query error condition.
    pub version_query_condition: Option<String>,
    /// XEP-0092 name.
    pub software_name: Option<String>,
    /// XEP-0092 version.
    pub software_version: Option<String>,
    /// What went wrong after the connection was up.
    pub detail: Option<String>,
}

/// The `acceptance_dialback` row of a domain whose acceptance probe ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DialbackRow {
    /// Any attempt saw dialback offered.
    pub offered: bool,
    /// A dialback attempt was made.
    pub attempted: bool,
    /// Its outcome ([`dialback_kind`]).
    pub outcome: Option<&'static str>,
    /// Error condition.
    pub condition: Option<String>,
    /// `db:verify` reached our listener.
    pub verify_received: Option<bool>,
    /// Ping outcome after dialback.
    pub ping: Option<&'static str>,
    /// Ping error condition.
    pub ping_condition: Option<String>,
    /// Version-query outcome after dialback.
    pub version_query: Option<&'static str>,
    /// Version-query error condition.
    pub version_query_condition: Option<String>,
}

/// An `inbound_streams` row: a stream the target opened to our listener.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundRow {
    /// Index in the report's inbound list.
    pub ordinal: usize,
    /// Stream header `from`.
    pub peer: String,
    /// When it connected.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// TLS negotiated.
    pub tls: bool,
    /// Certificates presented as TLS client.
    pub client_chain_length: usize,
    /// End-entity certificate.
    pub client_leaf_sha256: Option<String>,
    /// End-entity EKU class.
    pub client_eku_class: Option<EkuClass>,
    /// The chain's TLS-client purpose check.
    pub client_purpose: Option<ClientPurpose>,
    /// How it authenticated ([`inbound_method`]).
    pub auth_method: &'static str,
    /// The outcome of that method.
    pub auth_outcome: Option<&'static str>,
    /// EXTERNAL failure condition.
    pub auth_condition: Option<String>,
    /// IQ replies delivered.
    pub replies: usize,
}

/// The `result` tag serde gives an [`IqOutcome`] (the column value).
pub fn iq_kind(o: &IqOutcome) -> &'static str {
    match o {
        IqOutcome::NotAttempted => "not_attempted",
        IqOutcome::Result => "result",
        IqOutcome::Error { .. } => "error",
        IqOutcome::Timeout => "timeout",
    }
}

fn iq_condition(o: &IqOutcome) -> Option<String> {
    match o {
        IqOutcome::Error { condition } => Some(condition.clone()),
        _ => None,
    }
}

/// The `result` tag serde gives a [`SaslOutcome`].
pub fn sasl_kind(o: &SaslOutcome) -> &'static str {
    match o {
        SaslOutcome::Success => "success",
        SaslOutcome::Failure { .. } => "failure",
        SaslOutcome::Challenge => "challenge",
    }
}

/// The `result` tag serde gives a [`DialbackOutcome`].
pub fn dialback_kind(o: &DialbackOutcome) -> &'static str {
    match o {
        DialbackOutcome::Valid => "valid",
        DialbackOutcome::Invalid => "invalid",
        DialbackOutcome::Error { .. } => "error",
        DialbackOutcome::NotOffered => "not_offered",
        DialbackOutcome::ConnectionFailed => "connection_failed",
        DialbackOutcome::Timeout => "timeout",
    }
}

/// The `method` tag serde gives an [`InboundAuth`].
pub fn inbound_method(a: &InboundAuth) -> &'static str {
    match a {
        InboundAuth::External { .. } => "external",
        InboundAuth::Dialback { .. } => "dialback",
        InboundAuth::VerifyOnly => "verify_only",
        InboundAuth::None => "none",
    }
}

/// A `chain_members` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainMemberRow {
    /// The endpoint's ordinal.
    pub ordinal: usize,
    /// Position in the chain (0 = end-entity).
    pub position: usize,
    /// The certificate.
    pub sha256: String,
}

/// A `dns_records` row: one DNS question and its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRow {
    /// Question order.
    pub ordinal: usize,
    /// Owner name.
    pub name: String,
    /// `SRV`, `A`, `AAAA` or `TLSA`.
    pub rtype: &'static str,
    /// Outcome.
    pub outcome: DnsOutcome,
    /// The answer.
    pub data: Value,
}

/// The whole report, already serialised: kept as compact JSON text, not a
/// JSON value tree (a batch of reports would otherwise cost hundreds of
/// MiB), and compared by its text.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Report(pub Option<Box<RawValue>>);

impl PartialEq for Report {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().map(|r| r.get()) == other.0.as_ref().map(|r| r.get())
    }
}

/// Maps one report to its rows. Deterministic: the same report gives the
/// same rows, which is what makes re-recording a no-op comparable.
pub fn from_report(report: &DomainReport) -> Rows {
    let seen = report.started_at;
    let mut certificates: BTreeMap<&str, CertificateRow> = BTreeMap::new();
    let mut endpoints = Vec::with_capacity(report.endpoints.len());
    let mut chain_members = Vec::new();
    for (ordinal, e) in report.endpoints.iter().enumerate() {
        let chain = e.tls.as_ref().map(|t| t.chain.as_slice()).unwrap_or(&[]);
        for (position, c) in chain.iter().enumerate() {
            certificates
                .entry(&c.sha256)
                .or_insert_with(|| certificate_row(c, seen));
            chain_members.push(ChainMemberRow {
                ordinal,
                position,
                sha256: c.sha256.clone(),
            });
        }
        endpoints.push(endpoint_row(ordinal, e));
    }
    let summary = &report.summary;
    let software = summary.software.as_ref();
    let acceptance = report.acceptance.as_ref();
    let authenticated = acceptance.and_then(first_authenticated);
    Rows {
        result: ResultRow {
            probed_at: report.started_at,
            duration_ms: report.duration_ms,
            dnssec: report.dns.dnssec,
            c2s: (&summary.c2s).into(),
            s2s: (&summary.s2s).into(),
            s2s_dialback_offered: summary.s2s.dialback_offered,
            s2s_bidi_offered: summary.s2s.bidi_offered,
            acceptance: summary.acceptance,
            acceptance_reason: match acceptance {
                Some(a) => Some(a.reason_code),
                None if summary.acceptance == AcceptanceVerdict::NotRun => {
                    Some(AcceptanceReason::NoProbeIdentity)
                }
                None => None,
            },
            acceptance_reason_text: acceptance.and_then(|a| a.reason.clone()),
            acceptance_endpoint: acceptance.and_then(|a| a.endpoint.clone()),
            acceptance_ping: authenticated.map(|(ping, _)| iq_kind(ping)),
            acceptance_version_query: authenticated.map(|(_, vq)| iq_kind(vq)),
            software_name: software.and_then(|s| s.name.clone()),
            software_version: software.and_then(|s| s.version.clone()),
            report: Report(
                serde_json::to_string(report)
                    .ok()
                    .and_then(|s| RawValue::from_string(s).ok()),
            ),
        },
        certificates: certificates.into_values().collect(),
        endpoints,
        chain_members,
        dns_records: dns_rows(&report.domain, &report.dns),
        acceptance_attempts: acceptance
            .map(|a| a.attempts.iter().enumerate().map(attempt_row).collect())
            .unwrap_or_default(),
        acceptance_dialback: acceptance.map(dialback_row),
        inbound_streams: acceptance
            .map(|a| a.inbound.iter().enumerate().map(inbound_row).collect())
            .unwrap_or_default(),
    }
}

/// The ping and version-query outcomes of the first stream that
/// authenticated: the attempts in order (EXTERNAL success), then the
/// dialback attempt (valid).
fn first_authenticated(a: &AcceptanceReport) -> Option<(&IqOutcome, &IqOutcome)> {
    a.attempts
        .iter()
        .find(|x| x.external == Some(SaslOutcome::Success))
        .map(|x| (&x.ping, &x.version_query))
        .or_else(|| {
            a.dialback
                .as_ref()
                .filter(|d| d.outcome == DialbackOutcome::Valid)
                .map(|d| (&d.ping, &d.version_query))
        })
}

fn attempt_row((ordinal, a): (usize, &AttemptReport)) -> AttemptRow {
    let c = &a.connection;
    let tls = c.tls.as_ref();
    let (external_condition, external_text) = match &a.external {
        Some(SaslOutcome::Failure { condition, text }) => (Some(condition.clone()), text.clone()),
        _ => (None, None),
    };
    AttemptRow {
        ordinal,
        cert_kind: a.cert,
        transport: c.key.transport,
        ip: c.key.ip,
        port: c.key.port,
        client_cert_requested: tls.map(|t| t.client_cert_requested),
        client_cert_sent: a.client_cert_sent,
        tls_version: tls.and_then(|t| t.version.clone()),
        tls_failure: tls.and_then(|t| t.failure),
        tls_failure_detail: tls.and_then(|t| t.failure_detail.clone()),
        outcome: c.outcome,
        phase: c.phase,
        external_offered: a.external_offered,
        external_outcome: a.external.as_ref().map(sasl_kind),
        external_condition,
        external_text,
        external_fault: a.external_fault,
        dialback_offered: a.dialback_offered,
        ping: iq_kind(&a.ping),
        ping_condition: iq_condition(&a.ping),
        version_query: iq_kind(&a.version_query),
        version_query_condition: iq_condition(&a.version_query),
        software_name: a.version.as_ref().and_then(|v| v.name.clone()),
        software_version: a.version.as_ref().and_then(|v| v.version.clone()),
        detail: a.detail.clone(),
    }
}

fn dialback_row(a: &AcceptanceReport) -> DialbackRow {
    let d: Option<&DialbackReport> = a.dialback.as_ref();
    DialbackRow {
        offered: a.attempts.iter().any(|x| x.dialback_offered == Some(true)),
        attempted: d.is_some(),
        outcome: d.map(|d| dialback_kind(&d.outcome)),
        condition: d.and_then(|d| match &d.outcome {
            DialbackOutcome::Error { condition } => Some(condition.clone()),
            _ => None,
        }),
        verify_received: d.map(|d| d.verify_received),
        ping: d.map(|d| iq_kind(&d.ping)),
        ping_condition: d.and_then(|d| iq_condition(&d.ping)),
        version_query: d.map(|d| iq_kind(&d.version_query)),
        version_query_condition: d.and_then(|d| iq_condition(&d.version_query)),
    }
}

fn inbound_row((ordinal, i): (usize, &InboundReport)) -> InboundRow {
    let (auth_outcome, auth_condition) = match &i.auth {
        InboundAuth::External { outcome } => (
            Some(sasl_kind(outcome)),
            match outcome {
                SaslOutcome::Failure { condition, .. } => Some(condition.clone()),
                _ => None,
            },
        ),
        InboundAuth::Dialback { valid } => (Some(if *valid { "valid" } else { "invalid" }), None),
        InboundAuth::VerifyOnly | InboundAuth::None => (None, None),
    };
    InboundRow {
        ordinal,
        peer: i.peer.clone(),
        at: i.at,
        tls: i.tls,
        client_chain_length: i.client_chain.len(),
        client_leaf_sha256: i.client_chain.first().map(|c| c.sha256.clone()),
        client_eku_class: i.client_eku,
        client_purpose: i
            .client_purpose
            .or_else(|| crate::tls::eku::client_purpose(&i.client_chain)),
        auth_method: inbound_method(&i.auth),
        auth_outcome,
        auth_condition,
        replies: i.replies,
    }
}

fn certificate_row(c: &CertInfo, seen: OffsetDateTime) -> CertificateRow {
    CertificateRow {
        sha256: c.sha256.clone(),
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        serial: c.serial.clone(),
        not_before: c.not_before,
        not_after: c.not_after,
        key_algorithm: c.key.algorithm.clone(),
        key_bits: c.key.bits,
        key_curve: c.key.curve.clone(),
        signature_algorithm: c.signature_algorithm.clone(),
        eku_present: c.eku.present,
        eku_class: c.eku.class,
        eku_oids: c.eku.oids.clone(),
        sans: serde_json::to_value(&c.sans).unwrap_or(Value::Null),
        lets_encrypt: c.lets_encrypt,
        is_ca: c.is_ca,
        self_signed: c.self_signed,
        renews_server_only: c.renews_server_only,
        first_seen: seen,
        last_seen: seen,
    }
}

fn endpoint_row(ordinal: usize, e: &EndpointReport) -> EndpointRow {
    let tls = e.tls.as_ref();
    let mut evidence = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Some(t) = evidence.get_mut("tls").and_then(Value::as_object_mut) {
        t.remove("chain");
        let hashes: Vec<&str> = tls
            .map(|t| t.chain.iter().map(|c| c.sha256.as_str()).collect())
            .unwrap_or_default();
        t.insert("chain_sha256".into(), json!(hashes));
    }
    EndpointRow {
        ordinal,
        key: e.key.clone(),
        source: e.source,
        connect: e.connect,
        connect_ms: e.connect_ms,
        outcome: e.outcome,
        phase: e.phase,
        starttls: e.pre_tls.as_ref().map(|f| f.starttls),
        tls_failure: tls.and_then(|t| t.failure),
        tls_version: tls.and_then(|t| t.version.clone()),
        cipher_suite: tls.and_then(|t| t.cipher_suite.clone()),
        alpn: tls.and_then(|t| t.alpn.clone()),
        client_cert_requested: tls.map(|t| t.client_cert_requested),
        chain_verdict: tls.and_then(|t| t.verdict),
        name_match: tls.and_then(|t| t.name_match),
        dane_match: tls.and_then(|t| t.dane_match),
        leaf_sha256: tls.and_then(|t| t.chain.first()).map(|c| c.sha256.clone()),
        evidence,
        starttls_injected_bytes: e.starttls_injected_bytes,
        client_purpose: tls.and_then(|t| crate::tls::eku::client_purpose(&t.chain)),
    }
}

fn dns_rows(domain: &str, dns: &DnsReport) -> Vec<DnsRow> {
    let mut rows = Vec::new();
    let mut push = |name: String, rtype, outcome, data| {
        rows.push(DnsRow {
            ordinal: rows.len(),
            name,
            rtype,
            outcome,
            data,
        })
    };
    for s in &dns.srv {
        push(
            format!("{}.{domain}", s.service.label()),
            "SRV",
            s.outcome,
            json!({
                "records": s.records,
                "decidedly_unavailable": s.decidedly_unavailable,
                "detail": s.detail,
            }),
        );
    }
    for h in &dns.hosts {
        for (rtype, outcome, v4) in [("A", h.a, true), ("AAAA", h.aaaa, false)] {
            let addrs: Vec<&IpAddr> = h.addrs.iter().filter(|a| a.is_ipv4() == v4).collect();
            push(
                h.name.clone(),
                rtype,
                outcome,
                json!({ "addrs": addrs, "cnames": h.cnames }),
            );
        }
    }
    for t in &dns.tlsa {
        push(
            t.name.clone(),
            "TLSA",
            t.outcome,
            json!({ "records": t.records }),
        );
    }
    rows
}

fn date_opt<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        // ISO 8601 calendar date, which PostgreSQL's DATE input accepts.
        Some(d) => s.serialize_str(&format!(
            "{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )),
        None => s.serialize_none(),
    }
}

fn prefixed<S: Serializer>(prefix: &str, c: &ServiceColumns, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeMap};
    let Value::Object(fields) = serde_json::to_value(c).map_err(S::Error::custom)? else {
        return Err(S::Error::custom("service columns are an object"));
    };
    let mut map = s.serialize_map(Some(fields.len()))?;
    for (k, v) in fields {
        map.serialize_entry(&format!("{prefix}_{k}"), &v)?;
    }
    map.end()
}

fn c2s<S: Serializer>(c: &ServiceColumns, s: S) -> Result<S::Ok, S::Error> {
    prefixed("c2s", c, s)
}

fn s2s<S: Serializer>(c: &ServiceColumns, s: S) -> Result<S::Ok, S::Error> {
    prefixed("s2s", c, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{HostLookup, SrvLookup, SrvRecord, SrvService, TlsaLookup};
    use crate::tls::{Eku, KeyInfo, Sans, TlsInfo};
    use crate::verdict::summarize;
    use crate::xmpp::Service;
    use time::macros::{date, datetime};

    fn cert(sha: char, class: EkuClass, renews: Option<Date>) -> CertInfo {
        CertInfo {
            sha256: sha.to_string().repeat(64),
            subject: format!("CN={sha}"),
            issuer: "CN=ca".into(),
            serial: "01".into(),
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: datetime!(2026-04-01 0:00 UTC),
            key: KeyInfo {
                algorithm: "ec".into(),
                bits: Some(256),
                curve: Some("P-256".into()),
            },
            signature_algorithm: "ecdsa-with-SHA256".into(),
            sans: Sans {
                dns: vec!["example.test".into()],
                ..Sans::default()
            },
            eku: Eku {
                present: true,
                server_auth: true,
                client_auth: class == EkuClass::ClientAndServer,
                any: false,
                oids: vec!["1.3.6.1.5.5.7.3.1".into()],
                class,
            },
            is_ca: false,
            self_signed: false,
            lets_encrypt: true,
            renews_server_only: renews,
            anomalies: Vec::new(),
        }
    }

    fn endpoint(service: Service, chain: Vec<CertInfo>) -> EndpointReport {
        EndpointReport {
            key: EndpointKey {
                service,
                transport: Transport::Starttls,
                host: "xmpp.example.test".into(),
                ip: "192.0.2.7".parse().unwrap(),
                port: if service == Service::C2s { 5222 } else { 5269 },
            },
            source: EndpointSource::Srv,
            connect: ConnectOutcome::Connected,
            connect_ms: Some(3),
            outcome: EndpointOutcome::Complete,
            phase: None,
            detail: None,
            header: None,
            pre_tls: None,
            tls: Some(TlsInfo {
                failure: None,
                failure_detail: None,
                version: Some("TLSv1.3".into()),
                cipher_suite: Some("TLS13_AES_128_GCM_SHA256".into()),
                alpn: None,
                client_cert_requested: service == Service::S2s,
                client_cert_sent: false,
                chain,
                verdict: Some(ChainVerdict::Trusted),
                verdict_detail: None,
                name_match: Some(NameMatch::DnsId),
                dane_match: None,
            }),
            header_after_tls: None,
            post_tls: None,
            stream_error: None,
            starttls_injected_bytes: None,
        }
    }

    fn report() -> DomainReport {
        let leaf = cert('a', EkuClass::ClientAndServer, Some(date!(2026 - 05 - 13)));
        let inter = cert('b', EkuClass::ServerOnly, None);
        let dns = DnsReport {
            srv: vec![SrvLookup {
                service: SrvService::XmppServer,
                outcome: DnsOutcome::Records,
                detail: None,
                records: vec![SrvRecord {
                    priority: 5,
                    weight: 0,
                    port: 5269,
                    target: "xmpp.example.test".into(),
                }],
                decidedly_unavailable: false,
            }],
            hosts: vec![HostLookup {
                name: "xmpp.example.test".into(),
                a: DnsOutcome::Records,
                aaaa: DnsOutcome::NoData,
                addrs: vec!["192.0.2.7".parse().unwrap()],
                cnames: vec![],
            }],
            tlsa: vec![TlsaLookup {
                name: "_5269._tcp.xmpp.example.test".into(),
                outcome: DnsOutcome::NxDomain,
                records: vec![],
            }],
            dnssec: Dnssec::NotValidated,
        };
        let endpoints = vec![
            endpoint(Service::C2s, vec![leaf.clone(), inter.clone()]),
            endpoint(Service::S2s, vec![leaf, inter]),
        ];
        DomainReport {
            schema_version: 1,
            domain: "example.test".into(),
            started_at: datetime!(2026-03-01 12:00 UTC),
            duration_ms: 42,
            summary: summarize(&dns, &endpoints),
            dns,
            endpoints,
            acceptance: None,
        }
    }

    #[test]
    fn a_certificate_on_two_endpoints_is_one_row_and_two_chains() {
        let rows = from_report(&report());
        assert_eq!(rows.certificates.len(), 2);
        assert_eq!(rows.certificates[0].sha256, "a".repeat(64));
        assert_eq!(rows.chain_members.len(), 4);
        assert_eq!(
            rows.chain_members[3],
            ChainMemberRow {
                ordinal: 1,
                position: 1,
                sha256: "b".repeat(64)
            }
        );
        let seen = datetime!(2026-03-01 12:00 UTC);
        assert!(
            rows.certificates
                .iter()
                .all(|c| c.first_seen == seen && c.last_seen == seen)
        );
    }

    #[test]
    fn endpoint_evidence_keeps_hashes_not_certificates() {
        let rows = from_report(&report());
        let e = &rows.endpoints[1];
        assert_eq!(e.ordinal, 1);
        assert_eq!(e.leaf_sha256.as_deref(), Some(&*"a".repeat(64)));
        assert_eq!(e.client_cert_requested, Some(true));
        let tls = &e.evidence["tls"];
        assert!(tls.get("chain").is_none());
        assert_eq!(tls["chain_sha256"], json!(["a".repeat(64), "b".repeat(64)]));
        assert_eq!(e.evidence["host"], "xmpp.example.test");
    }

    #[test]
    fn result_columns_carry_the_summary_with_service_prefixes() {
        let rows = from_report(&report());
        let v = serde_json::to_value(&rows.result).unwrap();
        assert_eq!(v["c2s_status"], "tls_ok");
        assert_eq!(v["s2s_status"], "tls_ok");
        assert_eq!(v["s2s_eku_class"], "client_and_server");
        assert_eq!(v["s2s_chain_verdict"], "trusted");
        assert_eq!(v["s2s_renews_server_only"], "2026-05-13");
        assert_eq!(v["c2s_client_cert_requested"], false);
        assert_eq!(v["s2s_client_cert_requested"], true);
        assert_eq!(v["acceptance"], "not_run");
        assert_eq!(v["dnssec"], "not_validated");
        assert_eq!(v["probed_at"], "2026-03-01T12:00:00Z");
        assert_eq!(v["report"]["domain"], "example.test");
        assert!(v.get("c2s").is_none() && v.get("status").is_none());
    }

    #[test]
    fn every_dns_question_is_a_row_with_its_own_outcome() {
        let rows = from_report(&report());
        let got: Vec<_> = rows
            .dns_records
            .iter()
            .map(|r| (r.ordinal, r.name.as_str(), r.rtype, r.outcome))
            .collect();
        assert_eq!(
            got,
            [
                (
                    0,
                    "_xmpp-server._tcp.example.test",
                    "SRV",
                    DnsOutcome::Records
                ),
                (1, "xmpp.example.test", "A", DnsOutcome::Records),
                (2, "xmpp.example.test", "AAAA", DnsOutcome::NoData),
                (
                    3,
                    "_5269._tcp.xmpp.example.test",
                    "TLSA",
                    DnsOutcome::NxDomain
                ),
            ]
        );
        assert_eq!(rows.dns_records[1].data["addrs"], json!(["192.0.2.7"]));
        assert_eq!(rows.dns_records[2].data["addrs"], json!([]));
        assert_eq!(rows.dns_records[0].data["records"][0]["port"], 5269);
    }

    /// An acceptance report with every kind of evidence: a server-only
    /// attempt refused by EXTERNAL, a client-and-server control accepted
    /// (ping answered, version refused), a valid dialback, two inbound
    /// streams.
    fn with_acceptance() -> DomainReport {
        use crate::model::acceptance::AcceptanceReport;
        use crate::xmpp::iq::SoftwareVersion;
        let mut r = report();
        let conn = |alert: bool| {
            let mut c = endpoint(Service::S2s, vec![cert('c', EkuClass::ServerOnly, None)]);
            if alert {
                let t = c.tls.as_mut().unwrap();
                t.failure = Some(TlsFailure::Alert);
                t.failure_detail = Some("unsupported_certificate".into());
                c.outcome = EndpointOutcome::TlsFailed;
                c.phase = Some(Phase::StreamHeaderAfterTls);
            }
            c
        };
        let so = AttemptReport {
            cert: ProbeCertKind::ServerOnly,
            connection: conn(false),
            client_cert_sent: true,
            external_offered: Some(true),
            external: Some(SaslOutcome::Failure {
                condition: "not-authorized".into(),
                text: Some("unsupported certificate purpose".into()),
            }),
            external_fault: None,
            dialback_offered: Some(true),
            ping: IqOutcome::NotAttempted,
            version_query: IqOutcome::NotAttempted,
            version: None,
            detail: None,
        };
        let cs = AttemptReport {
            cert: ProbeCertKind::ClientAndServer,
            external: Some(SaslOutcome::Success),
            external_fault: None,
            ping: IqOutcome::Result,
            version_query: IqOutcome::Error {
                condition: "service-unavailable".into(),
            },
            version: Some(SoftwareVersion {
                name: Some("ejabberd".into()),
                version: Some("24.12".into()),
                os: None,
            }),
            ..so.clone()
        };
        let inbound = |auth, chain: Vec<CertInfo>| InboundReport {
            peer: "example.test".into(),
            at: datetime!(2026-03-01 12:00:01 UTC),
            tls: true,
            client_eku: chain.first().map(|c| c.eku.class),
            client_purpose: None,
            client_chain: chain,
            auth,
            replies: 2,
        };
        r.acceptance = Some(AcceptanceReport {
            probe_domain: "probe.test".into(),
            attempts: vec![so, cs],
            dialback: Some(DialbackReport {
                connection: conn(true),
                outcome: DialbackOutcome::Valid,
                verify_received: true,
                ping: IqOutcome::Timeout,
                version_query: IqOutcome::NotAttempted,
                version: None,
            }),
            inbound: vec![
                inbound(
                    InboundAuth::External {
                        outcome: SaslOutcome::Failure {
                            condition: "not-authorized".into(),
                            text: None,
                        },
                    },
                    vec![cert('d', EkuClass::ServerOnly, None)],
                ),
                inbound(InboundAuth::Dialback { valid: true }, vec![]),
            ],
            software: None,
            verdict: AcceptanceVerdict::RejectsServerOnlyDialback,
            reason_code: AcceptanceReason::ExternalRefused,
            endpoint: Some("192.0.2.7:5269 starttls".into()),
            reason: Some("EXTERNAL refused the server-only certificate".into()),
        });
        r.summary.acceptance = AcceptanceVerdict::RejectsServerOnlyDialback;
        r
    }

    #[test]
    fn acceptance_evidence_becomes_typed_rows() {
        let rows = from_report(&with_acceptance());
        let a = &rows.acceptance_attempts;
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].ordinal, a[0].cert_kind, a[1].cert_kind),
            (0, ProbeCertKind::ServerOnly, ProbeCertKind::ClientAndServer)
        );
        assert_eq!(a[0].external_outcome, Some("failure"));
        assert_eq!(a[0].external_condition.as_deref(), Some("not-authorized"));
        assert_eq!(
            a[0].external_text.as_deref(),
            Some("unsupported certificate purpose")
        );
        assert_eq!(
            (a[0].ping, a[0].version_query),
            ("not_attempted", "not_attempted")
        );
        assert_eq!(a[1].external_outcome, Some("success"));
        assert_eq!((a[1].ping, a[1].version_query), ("result", "error"));
        assert_eq!(
            a[1].version_query_condition.as_deref(),
            Some("service-unavailable")
        );
        assert_eq!(a[1].software_name.as_deref(), Some("ejabberd"));
        assert_eq!(a[0].client_cert_requested, Some(true));
        assert!(a[0].client_cert_sent);
        assert_eq!(a[0].port, 5269);

        let d = rows.acceptance_dialback.as_ref().unwrap();
        assert!(d.offered && d.attempted);
        assert_eq!((d.outcome, d.verify_received), (Some("valid"), Some(true)));
        assert_eq!(
            (d.ping, d.version_query),
            (Some("timeout"), Some("not_attempted"))
        );

        let i = &rows.inbound_streams;
        assert_eq!(i.len(), 2);
        assert_eq!(
            (
                i[0].auth_method,
                i[0].auth_outcome,
                i[0].auth_condition.as_deref()
            ),
            ("external", Some("failure"), Some("not-authorized"))
        );
        assert_eq!(i[0].client_eku_class, Some(EkuClass::ServerOnly));
        assert_eq!(
            i[0].client_purpose,
            Some(ClientPurpose::LeafLacksClientAuth),
            "derived from the chain when the report has none"
        );
        assert_eq!(i[0].client_leaf_sha256.as_deref(), Some(&*"d".repeat(64)));
        assert_eq!(
            (i[1].auth_method, i[1].auth_outcome),
            ("dialback", Some("valid"))
        );
        assert_eq!((i[1].client_chain_length, i[1].client_purpose), (0, None));

        let v = serde_json::to_value(&rows.result).unwrap();
        assert_eq!(v["acceptance"], "rejects_server_only_dialback");
        assert_eq!(v["acceptance_reason"], "external_refused");
        assert_eq!(
            v["acceptance_reason_text"],
            "EXTERNAL refused the server-only certificate"
        );
        assert_eq!(v["acceptance_endpoint"], "192.0.2.7:5269 starttls");
        // The control attempt authenticated first (the dialback later).
        assert_eq!(v["acceptance_ping"], "result");
        assert_eq!(v["acceptance_version_query"], "error");
        // The leaf is client_and_server, the intermediate server-only.
        assert_eq!(v["s2s_client_purpose"], "intermediate_lacks_client_auth");
        assert_eq!(
            rows.endpoints[1].client_purpose,
            Some(ClientPurpose::IntermediateLacksClientAuth)
        );
    }

    #[test]
    fn without_a_probe_identity_only_the_reason_code_says_so() {
        let mut r = report();
        r.endpoints[0].starttls_injected_bytes = Some(17);
        let rows = from_report(&r);
        assert!(rows.acceptance_attempts.is_empty() && rows.inbound_streams.is_empty());
        assert_eq!(rows.acceptance_dialback, None);
        let v = serde_json::to_value(&rows.result).unwrap();
        assert_eq!(v["acceptance_reason"], "no_probe_identity");
        assert!(v["acceptance_ping"].is_null() && v["acceptance_reason_text"].is_null());
        assert_eq!(rows.endpoints[0].starttls_injected_bytes, Some(17));
        assert_eq!(rows.endpoints[1].starttls_injected_bytes, None);
    }

    #[test]
    fn tag_helpers_are_the_serde_tags() {
        let tag = |v: Value, key: &str| v[key].as_str().unwrap().to_string();
        for o in [
            IqOutcome::NotAttempted,
            IqOutcome::Result,
            IqOutcome::Error {
                condition: "x".into(),
            },
            IqOutcome::Timeout,
        ] {
            assert_eq!(iq_kind(&o), tag(json!(o), "result"));
        }
        for o in [
            SaslOutcome::Success,
            SaslOutcome::Failure {
                condition: "x".into(),
                text: None,
            },
            SaslOutcome::Challenge,
        ] {
            assert_eq!(sasl_kind(&o), tag(json!(o), "result"));
        }
        for o in [
            DialbackOutcome::Valid,
            DialbackOutcome::Invalid,
            DialbackOutcome::Error {
                condition: "x".into(),
            },
            DialbackOutcome::NotOffered,
            DialbackOutcome::ConnectionFailed,
            DialbackOutcome::Timeout,
        ] {
            assert_eq!(dialback_kind(&o), tag(json!(o), "result"));
        }
        for a in [
            InboundAuth::External {
                outcome: SaslOutcome::Success,
            },
            InboundAuth::Dialback { valid: true },
            InboundAuth::VerifyOnly,
            InboundAuth::None,
        ] {
            assert_eq!(inbound_method(&a), tag(json!(a), "method"));
        }
    }

    #[test]
    fn mapping_is_deterministic() {
        assert_eq!(from_report(&report()), from_report(&report()));
        assert_eq!(
            from_report(&with_acceptance()),
            from_report(&with_acceptance())
        );
    }

    /// Reads COPY text back: rows of columns, `None` for `\N`.
    fn read_copy(data: &[u8]) -> Vec<Vec<Option<String>>> {
        let text = std::str::from_utf8(data).unwrap();
        text.lines()
            .map(|line| {
                line.split('\t')
                    .map(|f| {
                        if f == "\\N" {
                            return None;
                        }
                        let mut out = String::new();
                        let mut chars = f.chars();
                        while let Some(c) = chars.next() {
                            if c != '\\' {
                                out.push(c);
                                continue;
                            }
                            match chars.next() {
                                Some('n') => out.push('\n'),
                                Some('r') => out.push('\r'),
                                Some('t') => out.push('\t'),
                                Some(o) => out.push(o),
                                None => panic!("a lone backslash in {f:?}"),
                            }
                        }
                        Some(out)
                    })
                    .collect()
            })
            .collect()
    }

    /// What a column holding `v` must read back as from COPY text.
    fn expected_text(v: &Value, array: bool) -> Option<String> {
        match v {
            Value::Null => None,
            Value::Bool(b) => Some(if *b { "t" } else { "f" }.into()),
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            Value::Array(items) if array => {
                let quoted: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => {
                            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
                        }
                        _ => "NULL".into(),
                    })
                    .collect();
                Some(format!("{{{}}}", quoted.join(",")))
            }
            other => Some(other.to_string()),
        }
    }

    /// Checks `copy::encode` of `rows` against serde_json's view of the
    /// same rows, column by column (an independent reading: the encoder
    /// writes COPY text straight from serde, without JSON).
    fn copy_matches_json<T: Serialize>(table: &'static str, rows: &[T]) {
        let json: Vec<serde_json::Map<String, Value>> = rows
            .iter()
            .map(|r| match serde_json::to_value(r).unwrap() {
                Value::Object(m) => m,
                other => panic!("{table}: not an object: {other}"),
            })
            .collect();
        // Array columns: the sequences of strings (TEXT[] in the schema).
        let arrays: std::collections::HashSet<String> = json
            .iter()
            .flat_map(|m| m.iter())
            .filter(|(_, v)| {
                v.as_array()
                    .is_some_and(|a| a.iter().all(|i| i.is_string() || i.is_null()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let batch = crate::store::copy::encode(
            table,
            &arrays,
            42,
            rows.iter().enumerate().map(|(i, r)| (i as i64 + 1, r)),
        )
        .unwrap();
        let read = read_copy(&batch.data);
        assert_eq!(read.len(), rows.len(), "{table}");
        assert_eq!(batch.rows, rows.len(), "{table}");
        for (i, (got, want)) in read.iter().zip(&json).enumerate() {
            assert_eq!(got.len(), batch.columns.len(), "{table} row {i}");
            assert_eq!(got[0].as_deref(), Some("42"));
            assert_eq!(got[1], Some((i + 1).to_string()));
            for (column, text) in batch.columns.iter().zip(got).skip(2) {
                let expected = want
                    .get(column)
                    .and_then(|v| expected_text(v, arrays.contains(column)));
                let same = match (&expected, text) {
                    // JSON text: equal as JSON (key order, spacing).
                    (Some(e), Some(t)) if e.starts_with(['{', '[']) && !arrays.contains(column) => {
                        serde_json::from_str::<Value>(e).unwrap()
                            == serde_json::from_str::<Value>(t).unwrap()
                    }
                    _ => expected.as_ref() == text.as_ref(),
                };
                assert!(
                    same,
                    "{table} row {i} column {column}: {text:?}, want {expected:?}"
                );
            }
            for column in want.keys() {
                assert!(
                    batch.columns.contains(column),
                    "{table}: column {column} missing"
                );
            }
        }
    }

    #[test]
    fn copy_text_of_every_table_reads_back_as_the_rows_json() {
        for report in [report(), with_acceptance()] {
            let rows = from_report(&report);
            copy_matches_json("results", std::slice::from_ref(&rows.result));
            copy_matches_json("certificates", &rows.certificates);
            copy_matches_json("endpoints", &rows.endpoints);
            copy_matches_json("chain_members", &rows.chain_members);
            copy_matches_json("dns_records", &rows.dns_records);
            copy_matches_json("acceptance_attempts", &rows.acceptance_attempts);
            copy_matches_json("acceptance_dialback", rows.acceptance_dialback.as_slice());
            copy_matches_json("inbound_streams", &rows.inbound_streams);
        }
    }
}
