//! DNS discovery of XMPP endpoints (RFC 6120 §3.2, XEP-0368, RFC 7673).
//!
//! The types here are the *measured outcomes*; they are data, never errors:
//! NXDOMAIN, SERVFAIL, timeout and "no records" are distinct answers a
//! survey must keep apart (MEASUREMENTS §2).

pub mod cache;
pub mod resolve;
pub mod srv;

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The four SRV service names an XMPP domain may publish.
///
/// `_xmpp-*` are STARTTLS endpoints (RFC 6120 §3.2.1), `_xmpps-*` direct TLS
/// endpoints (XEP-0368 §3).
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
pub enum SrvService {
    /// `_xmpp-client._tcp`: c2s with STARTTLS.
    XmppClient,
    /// `_xmpps-client._tcp`: c2s with direct TLS.
    XmppsClient,
    /// `_xmpp-server._tcp`: s2s with STARTTLS.
    XmppServer,
    /// `_xmpps-server._tcp`: s2s with direct TLS.
    XmppsServer,
}

impl SrvService {
    /// All four, in the order they are looked up and reported.
    pub const ALL: [Self; 4] = [
        Self::XmppClient,
        Self::XmppsClient,
        Self::XmppServer,
        Self::XmppsServer,
    ];

    /// The owner-name label pair, e.g. `_xmpp-server._tcp`.
    pub fn label(self) -> &'static str {
        match self {
            Self::XmppClient => "_xmpp-client._tcp",
            Self::XmppsClient => "_xmpps-client._tcp",
            Self::XmppServer => "_xmpp-server._tcp",
            Self::XmppsServer => "_xmpps-server._tcp",
        }
    }

    /// Default port used when no SRV record exists (RFC 6120 §3.2.2 / XEP-0368).
    pub fn default_port(self) -> u16 {
        match self {
            Self::XmppClient => 5222,
            Self::XmppsClient => 5223,
            Self::XmppServer => 5269,
            Self::XmppsServer => 5270,
        }
    }
}

/// What a single DNS question returned. Stored as-is: each variant means
/// something different to an operator (MEASUREMENTS §2).
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
pub enum DnsOutcome {
    /// At least one record of the asked type.
    Records,
    /// NOERROR with an empty answer ("no records" / NODATA).
    NoData,
    /// The name does not exist (RCODE 3).
    NxDomain,
    /// The server failed (RCODE 2).
    ServFail,
    /// The query was refused (RCODE 5).
    Refused,
    /// No answer before the timeout.
    Timeout,
    /// Anything else (other RCODE, malformed answer, I/O error); see `detail`.
    Error,
    /// No question left: our side ran out of a resource creating the
    /// socket (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`, `EADDRNOTAVAIL`).
    /// Says nothing about the domain; a crawl retries it ([`crate::budget`]).
    LocalResourceExhausted,
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative weight among equal priorities.
    pub weight: u16,
    /// Target port.
    pub port: u16,
    /// Target host name, lowercase, without trailing dot; `.` stays `"."`.
    pub target: String,
}

/// The answer to one `_service._tcp.DOMAIN SRV` question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrvLookup {
    /// Which of the four names was asked.
    pub service: SrvService,
    /// How the question was answered.
    pub outcome: DnsOutcome,
    /// Free-text detail for `Error` (and anything worth keeping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Records in the order a client tries them: priority ascending, then
    /// weight descending, then target (deterministic instead of RFC 2782's
    /// weighted random, so two probes of one domain agree).
    pub records: Vec<SrvRecord>,
    /// A lone record with target `.`: "service decidedly not available"
    /// (RFC 2782, RFC 6120 §3.2.1).
    pub decidedly_unavailable: bool,
}

/// A/AAAA answers for one host name (SRV target or the domain itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLookup {
    /// The name asked, lowercase, no trailing dot.
    pub name: String,
    /// Outcome of the A question.
    pub a: DnsOutcome,
    /// Outcome of the AAAA question.
    pub aaaa: DnsOutcome,
    /// IPv4 then IPv6 addresses, each group in answer order.
    pub addrs: Vec<IpAddr>,
    /// CNAME chain followed to reach the addresses (empty when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cnames: Vec<String>,
}

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsaRecord {
    /// Certificate usage (0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE).
    pub usage: u8,
    /// Selector (0 full certificate, 1 SubjectPublicKeyInfo).
    pub selector: u8,
    /// Matching type (0 exact, 1 SHA-256, 2 SHA-512).
    pub matching: u8,
    /// Association data, lowercase hex.
    pub data: String,
}

/// The answer to `_PORT._tcp.TARGET TLSA` (RFC 7673 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsaLookup {
    /// The name asked, e.g. `_5269._tcp.xmpp.example.org`.
    pub name: String,
    /// How the question was answered.
    pub outcome: DnsOutcome,
    /// The records found.
    pub records: Vec<TlsaRecord>,
}

/// Whether answers were DNSSEC-validated, as reported by the resolver's
/// AD bit (RFC 4035 §3.2.3) on the SRV answer for `_xmpp-server._tcp`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Dnssec {
    /// The resolver set AD: it validated the answer.
    Validated,
    /// The resolver answered without AD.
    NotValidated,
    /// Not determined (question failed or not asked).
    Unknown,
}

/// Everything DNS said about one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsReport {
    /// The four SRV questions, in [`SrvService::ALL`] order.
    pub srv: Vec<SrvLookup>,
    /// A/AAAA of every SRV target and, for fallback, of the domain.
    pub hosts: Vec<HostLookup>,
    /// TLSA of every endpoint name/port that was looked up.
    pub tlsa: Vec<TlsaLookup>,
    /// DNSSEC status as seen by the resolver.
    pub dnssec: Dnssec,
}
