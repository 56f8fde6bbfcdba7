//! The XMPP stream layer (RFC 6120 §4–§6), kept free of sockets.
//!
//! [`reader::StreamReader`] turns bytes from any `AsyncBufRead` into a
//! stream header and whole top-level [`element::Element`]s while enforcing
//! the hostile-server limits (byte cap per phase, depth cap, no DOCTYPE or
//! processing instructions, RFC 6120 §11.1). Everything else here is a pure
//! function over those elements; [`crate::negotiation`] holds the pure state
//! machines of stream negotiation (RFC 6120 §4.3, §5.4) that consume them.

pub mod dialback;
pub mod element;
pub mod features;
pub mod iq;
pub mod reader;
pub mod sasl;
pub mod stream;

use serde::{Deserialize, Serialize};

/// `jabber:client`, the c2s content namespace (RFC 6120 §4.8.3).
pub const NS_CLIENT: &str = "jabber:client";
/// `jabber:server`, the s2s content namespace (RFC 6120 §4.8.3).
pub const NS_SERVER: &str = "jabber:server";
/// The stream namespace (RFC 6120 §4.8.1).
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// STARTTLS namespace (RFC 6120 §5.4).
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL namespace (RFC 6120 §6.4).
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Stream error conditions (RFC 6120 §4.9.3).
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Dialback stream feature (XEP-0220 §2.4).
pub const NS_DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
/// Dialback namespace for `db:` elements (XEP-0220 §2.1).
pub const NS_DIALBACK: &str = "jabber:server:dialback";
/// Bidirectional s2s feature (XEP-0288 §2).
pub const NS_BIDI_FEATURE: &str = "urn:xmpp:features:bidi";
/// Legacy non-SASL authentication feature (XEP-0078 §3).
pub const NS_IQ_AUTH_FEATURE: &str = "http://jabber.org/features/iq-auth";
/// Entity capabilities (XEP-0115 §6.3).
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";

/// Which kind of stream: client-to-server or server-to-server.
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
pub enum Service {
    /// c2s, `jabber:client`, port 5222/5223.
    C2s,
    /// s2s, `jabber:server`, port 5269/5270.
    S2s,
}

impl Service {
    /// The default content namespace for this kind of stream.
    pub fn content_ns(self) -> &'static str {
        match self {
            Self::C2s => NS_CLIENT,
            Self::S2s => NS_SERVER,
        }
    }
}
