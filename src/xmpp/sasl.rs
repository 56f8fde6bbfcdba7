//! SASL EXTERNAL between servers (RFC 6120 §6, XEP-0178 §3).
//!
//! The initiating server authenticates with the certificate it presented
//! as TLS client; the answer (`<success/>` or `<failure/>` with a defined
//! condition and optional text) is the core evidence of MEASUREMENTS §3.

use crate::xmpp::NS_SASL;
use crate::xmpp::element::Element;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The `<auth/>` element for EXTERNAL. XEP-0178 §3 step 7: the initiating
/// server includes its own domain as authorization identity, base64-encoded.
pub fn auth_external(authzid: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(authzid.as_bytes());
    format!("<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{b64}</auth>")
}

/// The answer to `<auth/>` (RFC 6120 §6.4.5–§6.4.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SaslOutcome {
    /// `<success/>`.
    Success,
    /// `<failure/>` with its defined condition (RFC 6120 §6.5) and text.
    Failure {
        /// e.g. `not-authorized`, `invalid-mechanism`.
        condition: String,
        /// The `<text/>`, e.g. `unsupported certificate purpose` (ejabberd < 25.08).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// A server challenge: EXTERNAL has none, so the probe aborts (RFC 6120 §6.4.2).
    Challenge,
}

/// Classifies the element received after `<auth/>`; `None` when it is not
/// a SASL answer at all.
pub fn parse_outcome(el: &Element) -> Option<SaslOutcome> {
    if el.ns != NS_SASL {
        return None;
    }
    match el.name.as_str() {
        "success" => Some(SaslOutcome::Success),
        "challenge" => Some(SaslOutcome::Challenge),
        "failure" => {
            let condition = el
                .children
                .iter()
                .find(|c| c.ns == NS_SASL && c.name != "text")
                .map_or_else(|| "undefined-condition".to_string(), |c| c.name.clone());
            let text = el
                .child(NS_SASL, "text")
                .map(|t| t.text.trim().to_string())
                .filter(|t| !t.is_empty());
            Some(SaslOutcome::Failure { condition, text })
        }
        _ => None,
    }
}

/// `<abort/>`, sent after an unexpected challenge (RFC 6120 §6.4.4).
pub fn abort() -> String {
    format!("<abort xmlns='{NS_SASL}'/>")
}

/// The `<failure/>` a server sends (used by the testnet's strict servers).
pub fn failure_xml(condition: &str, text: Option<&str>) -> String {
    let text = text
        .map(|t| {
            format!(
                "<text xml:lang='en'>{}</text>",
                quick_xml::escape::escape(t)
            )
        })
        .unwrap_or_default();
    format!("<failure xmlns='{NS_SASL}'><{condition}/>{text}</failure>")
}

/// `<success/>`.
pub fn success_xml() -> String {
    format!("<success xmlns='{NS_SASL}'/>")
}

/// The authorization identity carried by an `<auth/>`: `None` for an empty
/// or `=` response, `Some(Err)` for undecodable base64.
pub fn authzid(auth: &Element) -> Option<Result<String, String>> {
    let t = auth.text.trim();
    if t.is_empty() || t == "=" {
        return None;
    }
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|e| e.to_string())
            .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        crate::xmpp::reader::parse_fragment(xml).expect("test XML")
    }

    #[test]
    fn xep0178_auth_carries_base64_domain() {
        let a = el(&auth_external("probe.example"));
        assert!(a.is(NS_SASL, "auth"));
        assert_eq!(a.attr("mechanism"), Some("EXTERNAL"));
        assert_eq!(authzid(&a), Some(Ok("probe.example".into())));
        assert_eq!(
            authzid(&el(&format!("<auth xmlns='{NS_SASL}'>=</auth>"))),
            None
        );
    }

    #[test]
    fn rfc6120_6_4_outcomes() {
        assert_eq!(
            parse_outcome(&el(&success_xml())),
            Some(SaslOutcome::Success)
        );
        let f = el(&failure_xml(
            "not-authorized",
            Some("unsupported certificate purpose"),
        ));
        assert_eq!(
            parse_outcome(&f),
            Some(SaslOutcome::Failure {
                condition: "not-authorized".into(),
                text: Some("unsupported certificate purpose".into())
            })
        );
        let bare = el(&format!("<failure xmlns='{NS_SASL}'/>"));
        assert_eq!(
            parse_outcome(&bare),
            Some(SaslOutcome::Failure {
                condition: "undefined-condition".into(),
                text: None
            })
        );
        let text_first = el(&format!(
            "<failure xmlns='{NS_SASL}'><text>why</text><invalid-mechanism/></failure>"
        ));
        assert!(
            matches!(parse_outcome(&text_first), Some(SaslOutcome::Failure { condition, .. }) if condition == "invalid-mechanism")
        );
        assert_eq!(parse_outcome(&el("<success xmlns='jabber:server'/>")), None);
    }
}
