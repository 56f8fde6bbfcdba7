//! The two queries the probe sends once authenticated: ping (XEP-0199) and
//! software version (XEP-0092), and the answers test servers give.

use crate::xmpp::element::Element;
use serde::{Deserialize, Serialize};

/// XEP-0199 namespace.
pub const NS_PING: &str = "urn:xmpp:ping";
/// XEP-0092 namespace.
pub const NS_VERSION: &str = "jabber:iq:version";
/// Stanza error conditions (RFC 6120 §8.3.3).
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// `<iq type='get'><ping/></iq>` (XEP-0199 §4.3, server-to-server ping).
pub fn ping(from: &str, to: &str, id: &str) -> String {
    format!(
        "<iq type='get' from='{}' to='{}' id='{}'><ping xmlns='{NS_PING}'/></iq>",
        esc(from),
        esc(to),
        esc(id)
    )
}

/// `<iq type='get'><query xmlns='jabber:iq:version'/></iq>` (XEP-0092 §2).
pub fn version_query(from: &str, to: &str, id: &str) -> String {
    format!(
        "<iq type='get' from='{}' to='{}' id='{}'><query xmlns='{NS_VERSION}'/></iq>",
        esc(from),
        esc(to),
        esc(id)
    )
}

/// An empty result (the pong of XEP-0199 §4.3).
pub fn empty_result(from: &str, to: &str, id: &str) -> String {
    format!(
        "<iq type='result' from='{}' to='{}' id='{}'/>",
        esc(from),
        esc(to),
        esc(id)
    )
}

/// A stanza error reply (RFC 6120 §8.3).
pub fn error_reply(from: &str, to: &str, id: &str, condition: &str) -> String {
    format!(
        "<iq type='error' from='{}' to='{}' id='{}'><error type='cancel'><{condition} xmlns='{NS_STANZAS}'/></error></iq>",
        esc(from),
        esc(to),
        esc(id)
    )
}

/// What a server says it runs (XEP-0092 §2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SoftwareVersion {
    /// `<name/>`, e.g. `Prosody`.
    pub name: Option<String>,
    /// `<version/>`, e.g. `0.12.3`.
    pub version: Option<String>,
    /// `<os/>`, when disclosed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
}

/// The version result a test server sends.
pub fn version_result(from: &str, to: &str, id: &str, v: &SoftwareVersion) -> String {
    let field = |n: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| format!("<{n}>{}</{n}>", esc(s)))
            .unwrap_or_default()
    };
    format!(
        "<iq type='result' from='{}' to='{}' id='{}'><query xmlns='{NS_VERSION}'>{}{}{}</query></iq>",
        esc(from),
        esc(to),
        esc(id),
        field("name", &v.name),
        field("version", &v.version),
        field("os", &v.os),
    )
}

/// The type of an iq (RFC 6120 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IqKind {
    /// A request for information.
    Get,
    /// A request to change something.
    Set,
    /// A successful answer.
    Result,
    /// An error answer, with its defined condition.
    Error {
        /// e.g. `service-unavailable`.
        condition: String,
    },
}

/// An iq stanza, classified (any content namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iq<'a> {
    /// `id`.
    pub id: &'a str,
    /// `from`, if any.
    pub from: Option<&'a str>,
    /// `to`, if any.
    pub to: Option<&'a str>,
    /// The type.
    pub kind: IqKind,
    /// The first child other than `<error/>`.
    pub payload: Option<&'a Element>,
}

/// Classifies an `<iq/>`; `None` for other elements or a malformed iq.
pub fn parse(el: &Element) -> Option<Iq<'_>> {
    if el.name != "iq" {
        return None;
    }
    let kind = match el.attr("type")? {
        "get" => IqKind::Get,
        "set" => IqKind::Set,
        "result" => IqKind::Result,
        "error" => IqKind::Error {
            condition: el
                .children
                .iter()
                .find(|c| c.name == "error")
                .and_then(|e| {
                    e.children
                        .iter()
                        .find(|c| c.ns == NS_STANZAS && c.name != "text")
                })
                .map_or_else(|| "undefined-condition".into(), |c| c.name.clone()),
        },
        _ => return None,
    };
    Some(Iq {
        id: el.attr("id")?,
        from: el.attr("from"),
        to: el.attr("to"),
        kind,
        payload: el.children.iter().find(|c| c.name != "error"),
    })
}

/// Reads a XEP-0092 answer's payload.
pub fn parse_version(payload: &Element) -> Option<SoftwareVersion> {
    if !payload.is(NS_VERSION, "query") {
        return None;
    }
    let text = |n: &str| {
        payload
            .child(NS_VERSION, n)
            .map(|c| c.text.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    Some(SoftwareVersion {
        name: text("name"),
        version: text("version"),
        os: text("os"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::reader::parse_fragment;

    #[test]
    fn xep0199_ping_and_pong() {
        let p = parse_fragment(&ping("a.test", "b.test", "p1")).unwrap();
        let iq = parse(&p).unwrap();
        assert_eq!((iq.id, iq.kind.clone()), ("p1", IqKind::Get));
        assert!(iq.payload.is_some_and(|c| c.is(NS_PING, "ping")));
        let pong = parse_fragment(&empty_result("b.test", "a.test", "p1")).unwrap();
        assert_eq!(parse(&pong).unwrap().kind, IqKind::Result);
        let err = parse_fragment(&error_reply(
            "b.test",
            "a.test",
            "p1",
            "service-unavailable",
        ))
        .unwrap();
        assert_eq!(
            parse(&err).unwrap().kind,
            IqKind::Error {
                condition: "service-unavailable".into()
            }
        );
    }

    #[test]
    fn xep0092_version_round_trip() {
        let v = SoftwareVersion {
            name: Some("Prosody".into()),
            version: Some("0.12.3 <&>".into()),
            os: None,
        };
        let el = parse_fragment(&version_result("b", "a", "v1", &v)).unwrap();
        let iq = parse(&el).unwrap();
        assert_eq!(iq.kind, IqKind::Result);
        assert_eq!(parse_version(iq.payload.unwrap()), Some(v));
        let q = parse_fragment(&version_query("a", "b", "v1")).unwrap();
        assert!(
            parse(&q)
                .unwrap()
                .payload
                .is_some_and(|c| c.is(NS_VERSION, "query"))
        );
    }
}
