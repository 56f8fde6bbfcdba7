//! The per-domain, per-service summary a report or lookup page shows
//! (MEASUREMENTS §4), derived by [`crate::verdict`].

use crate::tls::{ChainVerdict, ClientPurpose, EkuClass, NameMatch};
use crate::xmpp::features::StarttlsOffer;
use serde::{Deserialize, Serialize};
use time::Date;

/// How reachable one service (c2s or s2s) of a domain is, best first.
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
pub enum ServiceStatus {
    /// A TLS session was established on at least one endpoint (its
    /// handshake completed and no alert followed), whatever the stream did
    /// after TLS.
    TlsOk,
    /// An endpoint answered but offered no TLS at all (no `<starttls/>`,
    /// no direct TLS): the service runs in clear text only.
    NoTls,
    /// Endpoints answered, but TLS failed on every one that offered it.
    TlsFailed,
    /// Endpoints answered, but the XMPP stream failed before TLS (stream
    /// error, hostile or broken XML, timeouts after connect).
    StreamFailed,
    /// No endpoint accepted a TCP connection.
    Unreachable,
    /// Every endpoint address is forbidden by the address policy.
    Blocked,
    /// SRV says "decidedly not available" (target `.`, RFC 6120 §3.2.1).
    NotOffered,
    /// DNS gave no address to try (NXDOMAIN, SERVFAIL, timeout, no A/AAAA).
    NoAddress,
}

/// The per-service verdicts a report or lookup page shows (MEASUREMENTS §4).
/// TLS and certificate facts are taken from the *primary* endpoint: the
/// first endpoint, in the order a peer tries them, that completed TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Reachability, see [`ServiceStatus`].
    pub status: ServiceStatus,
    /// Endpoints probed.
    pub endpoints: usize,
    /// Endpoints that reached post-TLS features.
    pub endpoints_tls_ok: usize,
    /// STARTTLS offer of the first endpoint that showed pre-TLS features.
    pub starttls: Option<StarttlsOffer>,
    /// SASL mechanisms offered before TLS on that endpoint (PLAIN here means
    /// passwords can travel in clear, RFC 6120 §13.8).
    pub sasl_before_tls: Option<Vec<String>>,
    /// A direct-TLS endpoint (XEP-0368) completed.
    pub direct_tls: bool,
    /// TLS version of the primary endpoint.
    pub tls_version: Option<String>,
    /// Chain verdict of the primary endpoint.
    pub chain_verdict: Option<ChainVerdict>,
    /// Which identifier matched the XMPP domain on the primary endpoint.
    pub name_match: Option<NameMatch>,
    /// EKU class of the primary endpoint's end-entity certificate.
    pub eku_class: Option<EkuClass>,
    /// Whether the primary chain would pass a strict peer's TLS-client
    /// purpose check when this server presents it on outgoing s2s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_purpose: Option<ClientPurpose>,
    /// The end-entity certificate was issued by Let's Encrypt.
    pub lets_encrypt: Option<bool>,
    /// Date the certificate's successor turns server-only, if it will.
    pub renews_server_only: Option<Date>,
    /// The server asked the probe for a client certificate.
    pub client_cert_requested: Option<bool>,
    /// SASL EXTERNAL offered after TLS (XEP-0178).
    pub external_offered: Option<bool>,
    /// Dialback offered after TLS (XEP-0220); s2s only.
    pub dialback_offered: Option<bool>,
    /// Bidirectional s2s offered (XEP-0288); s2s only.
    pub bidi_offered: Option<bool>,
    /// Whether the primary chain matched a TLSA record (RFC 7673).
    pub dane_match: Option<bool>,
}

/// Both services of one domain, and the acceptance verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSummary {
    /// Client-to-server.
    pub c2s: ServiceSummary,
    /// Server-to-server.
    pub s2s: ServiceSummary,
    /// Acceptance of server-only certificates (MEASUREMENTS §3);
    /// `not_run` without a probe identity.
    pub acceptance: crate::model::acceptance::AcceptanceVerdict,
    /// Server software and version (XEP-0092), when the active probe
    /// authenticated and asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<crate::xmpp::iq::SoftwareVersion>,
}
