//! Findings: what an operator reads about one domain (`lookup`, the web
//! page, the API). Each is one test with a status, one sentence of what
//! was seen, the evidence behind it and what to do, after the model of
//! internet.nl's per-test results. Derived by [`crate::lookup::assess`].

use serde::{Deserialize, Serialize};

/// How a test came out, with internet.nl's six states (their names are
/// the JSON values and CSS classes).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum FindingStatus {
    /// Meets what 2026 TLS asks of an XMPP server.
    Passed,
    /// Breaks federation or security now.
    Failed,
    /// Works today but will break, or is weaker than it should be.
    Warning,
    /// A fact without a judgement (software version, DNSSEC).
    Info,
    /// Not measured (no probe identity, address policy, an earlier step failed).
    NotTested,
    /// The test could not be completed (server unreachable, TLS failed).
    Error,
}

/// Which test a finding reports: a stable code (JSON value, the key the
/// advice file `seeds/advice.toml` selects on, the anchor on the page).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum FindingCode {
    /// Peers can reach the s2s service and complete TLS (RFC 6120 §3.2, §5).
    S2sReachable,
    /// The s2s service insists on STARTTLS (RFC 6120 §5.3.1 `<required/>`).
    S2sStarttlsRequired,
    /// The s2s certificate chain verifies for the domain (RFC 6120 §13.7.2).
    S2sCertificate,
    /// This domain's own s2s certificate and strict peers: its EKU class
    /// and the chain's TLS-client purpose (MEASUREMENTS §1, §2).
    S2sCertificatePurpose,
    /// Dialback (XEP-0220) offered: the fallback when certificates fail.
    S2sDialback,
    /// The server accepts peers holding server-only certificates
    /// (MEASUREMENTS §3, the acceptance probe).
    AcceptsServerOnly,
    /// TLS version of the s2s service.
    S2sTlsVersion,
    /// Clients can reach the c2s service and complete TLS.
    C2sReachable,
    /// The c2s service insists on STARTTLS.
    C2sStarttlsRequired,
    /// No SASL mechanism offered before TLS (RFC 6120 §13.8: passwords in
    /// clear).
    C2sPlaintextSasl,
    /// The c2s certificate chain verifies for the domain.
    C2sCertificate,
    /// Plaintext that arrived after `<proceed/>` (RFC 6120 §5.4.3.3).
    StarttlsInjection,
    /// TLSA records (RFC 7673) and whether the chain matched them.
    Dane,
    /// Whether the resolver validated the SRV answer (DNSSEC).
    Dnssec,
    /// The server software as it reported itself (XEP-0092).
    Software,
}

/// One test's result about one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Which test.
    pub code: FindingCode,
    /// The variant of the outcome the advice is chosen by, e.g. the
    /// acceptance verdict's name or `optional` for STARTTLS.
    pub case: String,
    /// How it came out.
    pub status: FindingStatus,
    /// The test's name, e.g. "Accepts peers with server-only certificates".
    pub title: String,
    /// One sentence of what was seen.
    pub seen: String,
    /// The measured facts behind it.
    pub evidence: Vec<Evidence>,
    /// What to do, from the knowledge file; absent when nothing is to be done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
}

/// One measured fact shown with a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What it is, e.g. "SASL EXTERNAL answer".
    pub label: String,
    /// The value as measured.
    pub value: String,
}

/// What to do, with where the knowledge comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advice {
    /// The advice entry's id in `seeds/advice.toml`.
    pub id: String,
    /// The advice, in a few sentences.
    pub text: String,
    /// Sources for the facts the advice rests on.
    pub sources: Vec<AdviceSource>,
}

/// A public source behind an advice entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdviceSource {
    /// What it is, e.g. "ejabberd CHANGELOG 25.07".
    pub title: String,
    /// Where to read it.
    pub url: String,
}
