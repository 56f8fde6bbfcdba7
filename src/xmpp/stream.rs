//! Stream headers and stream errors (RFC 6120 §4.7, §4.9).

use serde::{Deserialize, Serialize};

/// The attributes of a received `<stream:stream>` open tag (RFC 6120 §4.7).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamHeader {
    /// `version` attribute; `None` when absent (a pre-RFC 3920 server, which
    /// RFC 6120 §4.7.5 says must be treated as version 0.9: no features).
    pub version: Option<String>,
    /// `id` attribute.
    pub id: Option<String>,
    /// `from` attribute.
    pub from: Option<String>,
    /// `to` attribute.
    pub to: Option<String>,
    /// Default content namespace declared on the header.
    pub content_ns: Option<String>,
    /// Whether the dialback namespace prefix `db` was declared (XEP-0220 §2.1).
    pub declares_dialback: bool,
}

/// A received `<stream:error/>` (RFC 6120 §4.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamError {
    /// Defined condition element name, e.g. `host-unknown` (RFC 6120 §4.9.3).
    pub condition: String,
    /// Optional `<text/>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Character data of `<see-other-host/>` (RFC 6120 §4.9.3.19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub see_other_host: Option<String>,
}

use super::element::Element;
use super::{NS_DIALBACK, NS_STREAM_ERRORS, NS_STREAMS, Service};
use quick_xml::escape::escape;

/// Closes a stream (RFC 6120 §4.4).
pub const CLOSE: &str = "</stream:stream>";

/// What to put in an outgoing stream header (RFC 6120 §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSpec<'a> {
    /// c2s or s2s: picks the content namespace (RFC 6120 §4.8.3).
    pub service: Service,
    /// `from` attribute (RFC 6120 §4.7.1).
    pub from: Option<&'a str>,
    /// `to` attribute (RFC 6120 §4.7.2).
    pub to: Option<&'a str>,
    /// `id` attribute; only the receiving entity sends one (RFC 6120 §4.7.3).
    pub id: Option<&'a str>,
    /// `version` attribute, usually `Some("1.0")` (RFC 6120 §4.7.5).
    pub version: Option<&'a str>,
    /// Declare `xmlns:db='jabber:server:dialback'` (XEP-0220 §2.1).
    pub dialback: bool,
}

/// The XML declaration and `<stream:stream …>` open tag for `spec`
/// (RFC 6120 §4.7, §4.8); attribute values are escaped.
pub fn open_header(spec: &HeaderSpec<'_>) -> String {
    let mut out = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}'",
        spec.service.content_ns(),
        NS_STREAMS
    );
    if spec.dialback {
        out.push_str(" xmlns:db='");
        out.push_str(NS_DIALBACK);
        out.push('\'');
    }
    for (name, value) in [
        ("from", spec.from),
        ("to", spec.to),
        ("id", spec.id),
        ("version", spec.version),
    ] {
        if let Some(v) = value {
            out.push(' ');
            out.push_str(name);
            out.push_str("='");
            out.push_str(&escape(v));
            out.push('\'');
        }
    }
    out.push('>');
    out
}

/// True when `el` is `<stream:error/>` (RFC 6120 §4.9).
pub fn is_error(el: &Element) -> bool {
    el.is(NS_STREAMS, "error")
}

/// Reduces a `<stream:error/>` element (RFC 6120 §4.9.2): the condition is
/// the first child in the stream-errors namespace other than `<text/>`,
/// `undefined-condition` when there is none (RFC 6120 §4.9.3.21).
pub fn parse_error(el: &Element) -> StreamError {
    let condition = el
        .children
        .iter()
        .find(|c| c.ns == NS_STREAM_ERRORS && c.name != "text")
        .map_or_else(|| "undefined-condition".to_owned(), |c| c.name.clone());
    let text = el.child(NS_STREAM_ERRORS, "text").map(|t| t.text.clone());
    // RFC 6120 §4.9.3.19: the alternate host is the element's character data.
    let see_other_host = el
        .child(NS_STREAM_ERRORS, "see-other-host")
        .map(|s| s.text.trim().to_owned())
        .filter(|s| !s.is_empty());
    StreamError {
        condition,
        text,
        see_other_host,
    }
}

/// A `<stream:error/>` to send (RFC 6120 §4.9.2), for simulated servers.
/// `condition` must be a defined condition name (RFC 6120 §4.9.3); anything
/// that is not a plain `[a-z-]+` name becomes `undefined-condition`, so the
/// output is always well-formed. `text` is escaped.
pub fn error_xml(condition: &str, text: Option<&str>) -> String {
    let condition = if !condition.is_empty()
        && condition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
    {
        condition
    } else {
        "undefined-condition"
    };
    let mut out = format!("<stream:error><{condition} xmlns='{NS_STREAM_ERRORS}'/>");
    if let Some(t) = text {
        out.push_str("<text xmlns='");
        out.push_str(NS_STREAM_ERRORS);
        out.push_str("'>");
        out.push_str(&escape(t));
        out.push_str("</text>");
    }
    out.push_str("</stream:error>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_without_condition_is_undefined() {
        let text = Element {
            text: "bye".into(),
            ..Element::new(NS_STREAM_ERRORS, "text")
        };
        let el = Element {
            children: vec![text, Element::new("urn:app:specific", "oops")],
            ..Element::new(NS_STREAMS, "error")
        };
        let e = parse_error(&el);
        assert_eq!(e.condition, "undefined-condition");
        assert_eq!(e.text.as_deref(), Some("bye"));
        assert_eq!(e.see_other_host, None);
    }

    #[test]
    fn parse_error_condition_after_text() {
        let el = Element {
            children: vec![
                Element::new(NS_STREAM_ERRORS, "text"),
                Element::new(NS_STREAM_ERRORS, "conflict"),
            ],
            ..Element::new(NS_STREAMS, "error")
        };
        assert_eq!(parse_error(&el).condition, "conflict");
    }

    #[test]
    fn open_header_exact_text() {
        let spec = HeaderSpec {
            service: Service::C2s,
            from: None,
            to: Some("example.org"),
            id: None,
            version: Some("1.0"),
            dialback: false,
        };
        assert_eq!(
            open_header(&spec),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>"
        );
    }

    #[test]
    fn error_xml_rejects_non_condition_names() {
        assert_eq!(
            error_xml("x'/><evil", None),
            "<stream:error><undefined-condition \
             xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        );
        assert!(error_xml("host-unknown", None).contains("<host-unknown "));
    }
}
