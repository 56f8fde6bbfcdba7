//! Server Dialback (XEP-0220) with keys per XEP-0185.
//!
//! Dialback authenticates a server through DNS instead of a certificate:
//! when EXTERNAL refuses a server-only certificate, federation lives or dies
//! on it (MEASUREMENTS §1). Pure: key derivation, element builders, parser.

use crate::xmpp::NS_DIALBACK;
use crate::xmpp::element::Element;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// XEP-0185 §2: `HMAC-SHA256(SHA256(secret), receiving ' ' originating ' ' stream-id)`,
/// lowercase hex; the SHA-256 of the secret enters the HMAC in its
/// hexadecimal form (note 4, and the worked example of §3). Only the
/// authoritative server (who knows the secret) can confirm a key, which is
/// what `db:verify` asks it to do.
pub fn key(secret: &[u8], receiving: &str, originating: &str, stream_id: &str) -> String {
    let hashed = hex::encode(Sha256::digest(secret));
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(hashed.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(format!("{receiving} {originating} {stream_id}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// `<db:result from=O to=R>KEY</db:result>` (XEP-0220 §2.1.1): the
/// originating server asks to be accepted.
pub fn result_request(from: &str, to: &str, key: &str) -> String {
    format!(
        "<db:result from='{}' to='{}'>{}</db:result>",
        esc(from),
        esc(to),
        esc(key)
    )
}

/// `<db:result type=valid|invalid/>` (XEP-0220 §2.1.3): the receiving
/// server's answer.
pub fn result_answer(from: &str, to: &str, valid: bool) -> String {
    format!(
        "<db:result from='{}' to='{}' type='{}'/>",
        esc(from),
        esc(to),
        if valid { "valid" } else { "invalid" }
    )
}

/// `<db:verify id=SID>KEY</db:verify>` (XEP-0220 §2.1.2): the receiving
/// server asks the authoritative server whether KEY is genuine.
pub fn verify_request(from: &str, to: &str, id: &str, key: &str) -> String {
    format!(
        "<db:verify from='{}' to='{}' id='{}'>{}</db:verify>",
        esc(from),
        esc(to),
        esc(id),
        esc(key)
    )
}

/// The authoritative server's answer to `db:verify` (XEP-0220 §2.1.2).
pub fn verify_answer(from: &str, to: &str, id: &str, valid: bool) -> String {
    format!(
        "<db:verify from='{}' to='{}' id='{}' type='{}'/>",
        esc(from),
        esc(to),
        esc(id),
        if valid { "valid" } else { "invalid" }
    )
}

/// The `type` of a dialback answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Answer {
    /// `type='valid'`.
    Valid,
    /// `type='invalid'`.
    Invalid,
    /// `type='error'` with its stanza error condition (XEP-0220 §2.4).
    Error {
        /// e.g. `remote-server-not-found`.
        condition: String,
    },
}

/// A dialback element, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialback {
    /// `db:result` carrying a key: "please accept me".
    ResultRequest {
        /// Originating domain.
        from: String,
        /// Receiving domain.
        to: String,
        /// The key.
        key: String,
    },
    /// `db:result` with a type: the verdict.
    ResultAnswer {
        /// Receiving domain.
        from: String,
        /// Originating domain.
        to: String,
        /// Valid, invalid or error.
        answer: Answer,
    },
    /// `db:verify` carrying a key.
    VerifyRequest {
        /// Receiving domain.
        from: String,
        /// Originating (authoritative) domain.
        to: String,
        /// Stream id the key was made for.
        id: String,
        /// The key.
        key: String,
    },
    /// `db:verify` with a type.
    VerifyAnswer {
        /// Authoritative domain.
        from: String,
        /// Receiving domain.
        to: String,
        /// Stream id.
        id: String,
        /// Valid, invalid or error.
        answer: Answer,
    },
}

fn answer(el: &Element) -> Option<Answer> {
    match el.attr("type")? {
        "valid" => Some(Answer::Valid),
        "invalid" => Some(Answer::Invalid),
        "error" => Some(Answer::Error {
            condition: el
                .children
                .iter()
                .find(|c| c.name == "error")
                .and_then(|e| e.children.first())
                .map_or_else(|| "undefined-condition".into(), |c| c.name.clone()),
        }),
        _ => None,
    }
}

/// Classifies a dialback element; `None` for anything else or a malformed one.
pub fn parse(el: &Element) -> Option<Dialback> {
    if el.ns != NS_DIALBACK {
        return None;
    }
    let from = el.attr("from")?.to_string();
    let to = el.attr("to")?.to_string();
    let key = el.text.trim().to_string();
    match el.name.as_str() {
        "result" => Some(match answer(el) {
            Some(answer) => Dialback::ResultAnswer { from, to, answer },
            None if !key.is_empty() => Dialback::ResultRequest { from, to, key },
            None => return None,
        }),
        "verify" => {
            let id = el.attr("id")?.to_string();
            Some(match answer(el) {
                Some(answer) => Dialback::VerifyAnswer {
                    from,
                    to,
                    id,
                    answer,
                },
                None if !key.is_empty() => Dialback::VerifyRequest { from, to, id, key },
                None => return None,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::reader::parse_fragment;

    #[test]
    fn xep0185_key_is_hmac_sha256_of_hashed_secret() {
        // XEP-0185 §3 worked example: secret "s3cr3tf0rd14lb4ck", receiving
        // xmpp.example.com, originating example.org, stream id D60000229F.
        let k = key(
            b"s3cr3tf0rd14lb4ck",
            "xmpp.example.com",
            "example.org",
            "D60000229F",
        );
        assert_eq!(
            k,
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
        assert_ne!(
            k,
            key(b"other", "xmpp.example.com", "example.org", "D60000229F")
        );
        assert_ne!(
            k,
            key(
                b"s3cr3tf0rd14lb4ck",
                "example.org",
                "xmpp.example.com",
                "D60000229F"
            )
        );
    }

    #[test]
    fn xep0220_elements_round_trip() {
        let p = |s: String| parse(&parse_fragment(&s).expect("xml")).expect("dialback");
        assert_eq!(
            p(result_request("a.test", "b.test", "k1")),
            Dialback::ResultRequest {
                from: "a.test".into(),
                to: "b.test".into(),
                key: "k1".into()
            }
        );
        assert_eq!(
            p(result_answer("b.test", "a.test", true)),
            Dialback::ResultAnswer {
                from: "b.test".into(),
                to: "a.test".into(),
                answer: Answer::Valid
            }
        );
        assert_eq!(
            p(verify_request("b.test", "a.test", "sid", "k2")),
            Dialback::VerifyRequest {
                from: "b.test".into(),
                to: "a.test".into(),
                id: "sid".into(),
                key: "k2".into()
            }
        );
        assert_eq!(
            p(verify_answer("a.test", "b.test", "sid", false)),
            Dialback::VerifyAnswer {
                from: "a.test".into(),
                to: "b.test".into(),
                id: "sid".into(),
                answer: Answer::Invalid
            }
        );
        let err = parse_fragment(
            "<db:result from='b.test' to='a.test' type='error'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
        )
        .unwrap();
        assert_eq!(
            parse(&err),
            Some(Dialback::ResultAnswer {
                from: "b.test".into(),
                to: "a.test".into(),
                answer: Answer::Error {
                    condition: "remote-server-not-found".into()
                }
            })
        );
        assert_eq!(
            parse(&parse_fragment("<db:result from='a' to='b'/>").unwrap()),
            None
        );
        assert_eq!(
            parse(&parse_fragment("<result xmlns='x' from='a' to='b'>k</result>").unwrap()),
            None
        );
    }
}
