//! Stream features (RFC 6120 §4.3) as a survey sees them.

use serde::{Deserialize, Serialize};

/// STARTTLS as advertised in features (RFC 6120 §5.3.1, §5.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StarttlsOffer {
    /// `<starttls><required/></starttls>`.
    Required,
    /// `<starttls/>` without `<required/>`.
    Optional,
    /// No `<starttls/>` feature.
    Absent,
}

/// Entity capabilities advertised as a stream feature (XEP-0115 §6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caps {
    /// `node` attribute: identifies the server software's website.
    pub node: Option<String>,
    /// `ver` attribute: the capabilities hash.
    pub ver: Option<String>,
    /// `hash` attribute: the hash function name.
    pub hash: Option<String>,
}

/// One `<stream:features/>` element, reduced to the facts MEASUREMENTS §2
/// asks for. The namespaces of every child are kept in `raw` so a reader
/// can see features this struct does not name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// STARTTLS offer.
    pub starttls: StarttlsOffer,
    /// SASL mechanisms in advertised order (RFC 6120 §6.4.1).
    pub sasl_mechanisms: Vec<String>,
    /// Legacy `iq-auth` feature (XEP-0078).
    pub iq_auth: bool,
    /// Dialback feature (XEP-0220 §2.4).
    pub dialback: bool,
    /// Bidirectional s2s (XEP-0288).
    pub bidi: bool,
    /// Entity capabilities, when advertised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Caps>,
    /// `{namespace}name` of every child, in order.
    pub raw: Vec<String>,
}
