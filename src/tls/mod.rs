//! TLS facts and certificate analysis (RFC 6120 §5, §13.7; RFC 6125; XEP-0178).
//!
//! Certificate analysis ([`cert`], [`eku`], [`san`], [`identity`]) is pure
//! over DER bytes. [`verify`] decides the chain verdict with webpki against
//! the Mozilla roots (plus optional extra CAs) while capturing the chain even
//! when it is rejected; [`client`] builds the per-probe rustls client config.

pub mod cert;
pub mod client;
pub mod dane;
pub mod eku;
pub mod identity;
pub mod issuers;
pub mod memo;
pub mod san;
pub mod server;
pub mod verify;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

/// EKU class of a certificate (MEASUREMENTS §2 table).
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
pub enum EkuClass {
    /// serverAuth without clientAuth: Let's Encrypt's default since 2026-02-11.
    ServerOnly,
    /// Both serverAuth and clientAuth.
    ClientAndServer,
    /// clientAuth without serverAuth.
    ClientOnly,
    /// No EKU extension, or anyExtendedKeyUsage.
    Any,
    /// An EKU extension with neither purpose.
    Other,
}

/// Whether a chain can serve as a TLS *client* certificate at a strict
/// receiver (OpenSSL's `X509_PURPOSE_SSL_CLIENT`, Erlang's TLS): every
/// certificate below the trust anchor that carries an EKU extension must list
/// clientAuth (OpenSSL `xku_reject` applies to intermediates too, and
/// anyExtendedKeyUsage alone does not satisfy it). Let's Encrypt's newer
/// intermediates carry serverAuth only, so a leaf with clientAuth can still
/// fail here.
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
pub enum ClientPurpose {
    /// Every certificate with an EKU lists clientAuth (or has no EKU).
    Ok,
    /// The end-entity certificate's EKU lacks clientAuth.
    LeafLacksClientAuth,
    /// The leaf passes, but an intermediate's EKU lacks clientAuth.
    IntermediateLacksClientAuth,
}

/// The Extended Key Usage extension as found (RFC 5280 §4.2.1.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eku {
    /// Whether the extension is present at all.
    pub present: bool,
    /// id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
    pub server_auth: bool,
    /// id-kp-clientAuth (1.3.6.1.5.5.7.3.2).
    pub client_auth: bool,
    /// anyExtendedKeyUsage (2.5.29.37.0).
    pub any: bool,
    /// Every purpose OID, dotted, in certificate order.
    pub oids: Vec<String>,
    /// The derived class.
    pub class: EkuClass,
}

/// Subject Alternative Names relevant to XMPP (RFC 6120 §13.7.1.2, RFC 7673).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Sans {
    /// dNSName entries (may contain a leading `*.`).
    pub dns: Vec<String>,
    /// id-on-xmppAddr (1.3.6.1.5.5.7.8.5) UTF8String values.
    pub xmpp_addr: Vec<String>,
    /// id-on-dnsSRV (1.3.6.1.5.5.7.8.7) IA5String values, e.g. `_xmpp-server.example.org`.
    pub srv_id: Vec<String>,
    /// iPAddress entries, textual.
    pub ip: Vec<String>,
}

/// Public key facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// `rsa`, `ec`, `ed25519`, `ed448` or the algorithm OID.
    pub algorithm: String,
    /// Key size in bits (RSA modulus, EC field size).
    pub bits: Option<u32>,
    /// Named curve, for EC keys (`P-256`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

/// One certificate of a presented chain, analysed (MEASUREMENTS §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// SHA-256 of the DER, lowercase hex: the certificate's identity in storage.
    pub sha256: String,
    /// Subject DN (RFC 4514 string).
    pub subject: String,
    /// Issuer DN (RFC 4514 string).
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// notBefore.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// notAfter.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Public key.
    pub key: KeyInfo,
    /// Signature algorithm name (`ecdsa-with-SHA256`, `sha256WithRSAEncryption`, …) or OID.
    pub signature_algorithm: String,
    /// SANs.
    pub sans: Sans,
    /// EKU.
    pub eku: Eku,
    /// basicConstraints cA.
    pub is_ca: bool,
    /// Subject == issuer and the signature verifies with its own key.
    pub self_signed: bool,
    /// Issued by Let's Encrypt (by issuer organisation / known intermediates).
    pub lets_encrypt: bool,
    /// MEASUREMENTS §2 "will renew as server-only": the date this
    /// certificate's successor turns server-only (only for a
    /// `client_and_server` end-entity from a CA known to have dropped
    /// clientAuth, expiring after the CA's cut-over date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renews_server_only: Option<Date>,
    /// What was wrong with the certificate's encoding and had to be
    /// repaired to store it (each kind once, in [`CertAnomaly`] order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<CertAnomaly>,
}

/// Something hostile or out of profile in a certificate that [`cert::analyze`]
/// repaired rather than refusing the certificate, so the report can say so.
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
pub enum CertAnomaly {
    /// A U+0000 in the subject or issuer DN or in a dNSName, id-on-xmppAddr
    /// or id-on-dnsSRV SAN (a classic name-truncation trick); it is stored
    /// escaped as `\00` (the RFC 4514 §2.4 hex-pair form).
    NulInName,
    /// notBefore or notAfter carries a UTC offset (e.g. UTCTime
    /// `…+1600`); stored converted to UTC. Always comes with
    /// [`Self::TimeOutsideRfc5280Profile`].
    TimeWithOffset,
    /// notBefore or notAfter is not in the RFC 5280 §4.1.2.5 form: UTCTime
    /// `YYMMDDHHMMSSZ` through 2049, GeneralizedTime `YYYYMMDDHHMMSSZ` from
    /// 2050 (seconds present, `Z`, no fraction, no offset).
    TimeOutsideRfc5280Profile,
    /// notBefore or notAfter is outside years 0000–9999 once in UTC, which
    /// the report (RFC 3339) cannot carry; stored clamped to that range.
    TimeUnrepresentable,
}

/// The chain verdict against the public roots and any extra CA
/// (MEASUREMENTS §2), with the XMPP domain as reference identity
/// (RFC 6120 §13.7.2).
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
pub enum ChainVerdict {
    /// Chains to a trusted root, in validity, and names the XMPP domain.
    Trusted,
    /// The end-entity (or a chain certificate) has expired.
    Expired,
    /// notBefore is in the future.
    NotYetValid,
    /// A single self-signed certificate not among the trust anchors.
    SelfSigned,
    /// No path to a trust anchor (includes a missing intermediate).
    UnknownIssuer,
    /// Chains fine, but no identifier matches the XMPP domain.
    NameMismatch,
    /// A certificate's signature does not verify.
    BadSignature,
    /// webpki rejected the chain for another reason (see `verdict_detail`).
    Invalid,
    /// The server presented no certificate.
    NoCertificate,
}

/// Which identifier in the end-entity certificate matched the XMPP domain
/// (RFC 6120 §13.7.1.2, RFC 6125 §6).
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
pub enum NameMatch {
    /// A dNSName equal to the domain.
    DnsId,
    /// A `*.` dNSName covering the domain.
    Wildcard,
    /// An id-on-xmppAddr equal to the domain.
    XmppAddr,
    /// An id-on-dnsSRV `_xmpp-client.DOMAIN` / `_xmpp-server.DOMAIN` (or xmpps-).
    SrvId,
    /// The subject CN only (deprecated by RFC 6125 §6.4.4; reported, not trusted).
    CommonName,
    /// Nothing matches.
    None,
}

/// Why a TLS handshake (or the first read after it) failed.
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
pub enum TlsFailure {
    /// The server sent a fatal alert (description in `detail`).
    Alert,
    /// The server only speaks TLS ≤ 1.1 (rustls speaks 1.2 and 1.3).
    ProtocolVersionTooOld,
    /// No common cipher suite / group / signature scheme.
    Incompatible,
    /// The handshake did not finish in time.
    Timeout,
    /// The connection was closed or reset during the handshake.
    Closed,
    /// The server's messages violated TLS.
    ProtocolError,
    /// Anything else (see `detail`).
    Other,
}

/// TLS session facts for one endpoint (MEASUREMENTS §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// `None` when the session is up (handshake and first read succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<TlsFailure>,
    /// Detail of the failure (alert description, error text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_detail: Option<String>,
    /// Negotiated version, e.g. `TLSv1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Negotiated cipher suite IANA name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// ALPN protocol selected by the server (XEP-0368 §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// Whether the server sent a CertificateRequest.
    pub client_cert_requested: bool,
    /// Whether we answered it with a certificate (the acceptance probe).
    #[serde(default)]
    pub client_cert_sent: bool,
    /// The presented chain, end-entity first.
    pub chain: Vec<CertInfo>,
    /// The chain verdict for the XMPP domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<ChainVerdict>,
    /// webpki's own words for a non-trusted verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_detail: Option<String>,
    /// Which identifier matched the XMPP domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_match: Option<NameMatch>,
    /// Whether the chain matches a TLSA record of this endpoint (RFC 6698 §2.1);
    /// `None` when there were no TLSA records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dane_match: Option<bool>,
}
