//! What one probe of one domain produced: the JSON output (schema in
//! `docs/probe-json-schema.md`) and, later, what the crawl stores.
//!
//! A measured failure is data: every way an endpoint can go wrong is an
//! [`EndpointOutcome`] variant, never an `Err`.

use crate::dns::DnsReport;
use crate::tls::TlsInfo;
use crate::xmpp::Service;
use crate::xmpp::features::Features;
use crate::xmpp::stream::{StreamError, StreamHeader};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use time::OffsetDateTime;

/// Version of the `--json` schema. Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

/// How the endpoint starts TLS.
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
pub enum Transport {
    /// Plain TCP, then STARTTLS (RFC 6120 §5).
    Starttls,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
}

/// Where the endpoint came from.
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
pub enum EndpointSource {
    /// An SRV record (priority/weight kept in the DNS report).
    Srv,
    /// RFC 6120 §3.2.2 fallback: the domain's own A/AAAA on the default port.
    Fallback,
}

/// Result of the TCP connect.
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
pub enum ConnectOutcome {
    /// TCP connection established.
    Connected,
    /// RST in answer to SYN.
    Refused,
    /// No answer before the connect timeout.
    Timeout,
    /// Network or host unreachable, or another OS error.
    Unreachable,
    /// Not attempted: the address policy forbids it (MEASUREMENTS §5).
    BlockedAddress,
    /// Our side ran out of a resource before a packet left (`EMFILE`,
    /// `ENFILE`, `ENOBUFS`, `ENOMEM`, `EADDRNOTAVAIL`; see `detail`): says
    /// nothing about the target. A crawl retries such a domain and ends it
    /// `not_tested` when the retries run out ([`crate::budget`]).
    LocalResourceExhausted,
}

/// The phase of the exchange an outcome refers to.
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
pub enum Phase {
    /// TCP connect.
    Connect,
    /// Waiting for the server's stream header before TLS.
    StreamHeader,
    /// Waiting for the features before TLS.
    Features,
    /// Waiting for `<proceed/>` after `<starttls/>`.
    Starttls,
    /// The TLS handshake (and first read: TLS 1.3 client-cert rejections).
    TlsHandshake,
    /// Waiting for the stream header after TLS.
    StreamHeaderAfterTls,
    /// Waiting for the features after TLS.
    FeaturesAfterTls,
}

/// The final, typed outcome of probing one endpoint. Everything except
/// `Complete` says exactly where and why the probe stopped.
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
pub enum EndpointOutcome {
    /// Reached post-TLS features.
    Complete,
    /// The address policy forbade connecting.
    BlockedAddress,
    /// TCP connect failed (see `connect`).
    ConnectFailed,
    /// The server sent `<stream:error/>` (see `stream_error`).
    StreamError,
    /// The stream header has no `version` (pre-XMPP 1.0): no features, no TLS.
    NoVersion,
    /// Features before TLS lack `<starttls/>`: TLS impossible on this endpoint.
    NoStarttls,
    /// The server answered `<starttls/>` with `<failure/>`.
    StarttlsFailure,
    /// Bytes were buffered after `<proceed/>` and the probe stopped there.
    /// Written by schema-1 probes only: since schema 2 the bytes are
    /// discarded (RFC 6120 §5.4.3.3), counted in `starttls_injected_bytes`,
    /// and the measurement goes on.
    InjectionAfterProceed,
    /// TLS failed (see `tls.failure`).
    TlsFailed,
    /// A phase exceeded its timeout (see `phase`).
    Timeout,
    /// A phase exceeded its byte cap.
    ByteLimit,
    /// The XML nesting exceeded the depth cap.
    DepthLimit,
    /// The XML was not well-formed.
    InvalidXml,
    /// DOCTYPE or processing instruction (RFC 6120 §11.1 forbids them).
    ForbiddenXml,
    /// The server closed the connection (or `</stream:stream>`) early.
    Closed,
    /// The server sent something the protocol does not allow here.
    UnexpectedElement,
}

/// What names one endpoint: service, transport, host, address and port.
/// Declared once; the report ([`EndpointReport`]), the probe's plan, the
/// store's `endpoints` rows and the testnet's expectations embed it (its
/// fields flattened, so the JSON and the rows keep their shape).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EndpointKey {
    /// c2s or s2s.
    pub service: Service,
    /// STARTTLS or direct TLS.
    pub transport: Transport,
    /// SRV target (or the domain, for fallback), lowercase, no trailing dot.
    pub host: String,
    /// The address.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
}

impl EndpointKey {
    /// The address and port connected to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// Everything measured on one endpoint ([`EndpointKey`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointReport {
    /// Which endpoint: service, transport, host, address, port.
    #[serde(flatten)]
    pub key: EndpointKey,
    /// SRV or fallback.
    pub source: EndpointSource,
    /// TCP connect result.
    pub connect: ConnectOutcome,
    /// Milliseconds the connect took (when attempted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// Final outcome.
    pub outcome: EndpointOutcome,
    /// The phase the outcome happened in (for timeouts, limits, closes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Free-text detail of the outcome (parser message, OS error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stream header before TLS (STARTTLS transport only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<StreamHeader>,
    /// Features before TLS (STARTTLS transport only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_tls: Option<Features>,
    /// TLS facts, once TLS was attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// Stream header after TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_after_tls: Option<StreamHeader>,
    /// Features after TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_tls: Option<Features>,
    /// A stream error received in any phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_error: Option<StreamError>,
    /// Plaintext bytes that arrived after `<proceed/>` (a STARTTLS
    /// injection attempt, CVE-2011-0411 class), discarded before the TLS
    /// handshake as RFC 6120 §5.4.3.3 requires; `None`: none arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starttls_injected_bytes: Option<u64>,
}

/// One domain's whole probe: the `--json` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The XMPP domain, normalised (lowercase A-labels, no trailing dot).
    pub domain: String,
    /// When the probe started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Wall time of the whole probe.
    pub duration_ms: u64,
    /// DNS discovery.
    pub dns: DnsReport,
    /// Every endpoint probed, c2s then s2s, in the order a peer would try them.
    pub endpoints: Vec<EndpointReport>,
    /// Per-domain verdicts derived from the above (see [`crate::verdict`]).
    pub summary: crate::model::summary::DomainSummary,
    /// The active probe's evidence (MEASUREMENTS §3); absent when no probe
    /// identity was configured (`summary.acceptance` is then `not_run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<crate::model::acceptance::AcceptanceReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_key_is_flattened_into_the_endpoint_json() {
        let text = r#"{"service":"s2s","transport":"direct_tls","host":"xmpp.example.test","ip":"2001:db8::7","port":5270,"source":"srv","connect":"connected","outcome":"complete"}"#;
        let e: EndpointReport = serde_json::from_str(text).unwrap();
        assert_eq!(
            e.key,
            EndpointKey {
                service: Service::S2s,
                transport: Transport::DirectTls,
                host: "xmpp.example.test".into(),
                ip: "2001:db8::7".parse().unwrap(),
                port: 5270,
            }
        );
        assert_eq!(e.key.addr().to_string(), "[2001:db8::7]:5270");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            text,
            "same keys, same order"
        );
    }
}
