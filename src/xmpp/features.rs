//! Stream features (RFC 6120 §4.3) as a survey sees them.

use serde::{Deserialize, Serialize};

/// STARTTLS as advertised in features (RFC 6120 §5.3.1, §5.4.1).
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

use super::element::Element;
use super::{
    NS_BIDI_FEATURE, NS_CAPS, NS_DIALBACK_FEATURE, NS_IQ_AUTH_FEATURE, NS_SASL, NS_STREAMS, NS_TLS,
};

/// True when `el` is `<stream:features/>` (RFC 6120 §4.3.2).
pub fn is_features(el: &Element) -> bool {
    el.is(NS_STREAMS, "features")
}

/// Reduces a `<stream:features/>` element to [`Features`] (RFC 6120
/// §4.3.2). Pure: the caller checks the element is features
/// ([`is_features`]). Unknown children only show up in `raw`.
pub fn parse(el: &Element) -> Features {
    // RFC 6120 §5.4.1: `<required/>` inside `<starttls/>`.
    let starttls = match el.child(NS_TLS, "starttls") {
        Some(s) if s.child(NS_TLS, "required").is_some() => StarttlsOffer::Required,
        Some(_) => StarttlsOffer::Optional,
        None => StarttlsOffer::Absent,
    };
    // RFC 6120 §6.4.1: `<mechanisms><mechanism>NAME</mechanism>…`.
    let sasl_mechanisms = el
        .child(NS_SASL, "mechanisms")
        .map(|m| {
            m.children_named(NS_SASL, "mechanism")
                .map(|x| x.text.trim())
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // XEP-0115 §6.3: `<c xmlns='http://jabber.org/protocol/caps' …/>`.
    let caps = el.child(NS_CAPS, "c").map(|c| Caps {
        node: c.attr("node").map(str::to_owned),
        ver: c.attr("ver").map(str::to_owned),
        hash: c.attr("hash").map(str::to_owned),
    });
    Features {
        starttls,
        sasl_mechanisms,
        // XEP-0078 §3: `<auth xmlns='http://jabber.org/features/iq-auth'/>`.
        iq_auth: el.children.iter().any(|c| c.ns == NS_IQ_AUTH_FEATURE),
        // XEP-0220 §2.4.
        dialback: el.child(NS_DIALBACK_FEATURE, "dialback").is_some(),
        // XEP-0288 §2.
        bidi: el.child(NS_BIDI_FEATURE, "bidi").is_some(),
        caps,
        raw: el.children.iter().map(Element::expanded_name).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_children(children: Vec<Element>) -> Element {
        Element {
            children,
            ..Element::new(NS_STREAMS, "features")
        }
    }

    fn mech(text: &str) -> Element {
        Element {
            text: text.into(),
            ..Element::new(NS_SASL, "mechanism")
        }
    }

    #[test]
    fn empty_features() {
        let f = parse(&with_children(vec![]));
        assert_eq!(f.starttls, StarttlsOffer::Absent);
        assert!(f.sasl_mechanisms.is_empty());
        assert!(!f.iq_auth && !f.dialback && !f.bidi);
        assert_eq!(f.caps, None);
        assert!(f.raw.is_empty());
    }

    #[test]
    fn optional_starttls_iq_auth_and_mechanism_order() {
        let mechs = Element {
            children: vec![mech("\n SCRAM-SHA-256 "), mech("  "), mech("PLAIN")],
            ..Element::new(NS_SASL, "mechanisms")
        };
        let f = parse(&with_children(vec![
            Element::new(NS_TLS, "starttls"),
            mechs,
            Element::new(NS_IQ_AUTH_FEATURE, "auth"),
        ]));
        assert_eq!(f.starttls, StarttlsOffer::Optional);
        assert_eq!(f.sasl_mechanisms, ["SCRAM-SHA-256", "PLAIN"]);
        assert!(f.iq_auth);
    }

    #[test]
    fn names_must_match_in_namespace() {
        // `<required/>` outside the TLS namespace does not make it required;
        // features in the wrong namespace do not count.
        let starttls = Element {
            children: vec![Element::new("urn:other", "required")],
            ..Element::new(NS_TLS, "starttls")
        };
        let f = parse(&with_children(vec![
            starttls,
            Element::new("urn:other", "dialback"),
            Element::new(NS_DIALBACK_FEATURE, "bidi"),
        ]));
        assert_eq!(f.starttls, StarttlsOffer::Optional);
        assert!(!f.dialback && !f.bidi);
        assert_eq!(
            f.raw,
            [
                "{urn:ietf:params:xml:ns:xmpp-tls}starttls",
                "{urn:other}dialback",
                "{urn:xmpp:features:dialback}bidi"
            ]
        );
    }

    #[test]
    fn caps_without_attributes() {
        let f = parse(&with_children(vec![Element::new(NS_CAPS, "c")]));
        assert_eq!(
            f.caps,
            Some(Caps {
                node: None,
                ver: None,
                hash: None
            })
        );
    }
}
