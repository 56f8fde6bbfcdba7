//! XMPP domain names as untrusted input: [`DomainName`], the one
//! normalising and validating constructor, and the one JID-domainpart
//! parser ([`jid_domainpart`]).
//!
//! A domain list comes from files and websites we do not control. Every
//! name is normalised the same way (lowercase, IDNA to A-labels per
//! RFC 5891 / UTS #46, no trailing dot, RFC 7622 §3.2 domainpart) so that
//! results, de-duplication and opt-outs agree; a bad line is reported with
//! its file and line number while the rest is kept.
//!
//! Three other comparisons of names exist on purpose and are not this one:
//! - [`fold`]: what a *peer* claims in a stream header or stanza
//!   (`from`, `to`) is evidence, recorded and compared as sent (trimmed,
//!   lowercase, no trailing dots) but never rejected; it is parsed into a
//!   [`DomainName`] only where it would be used for I/O (the listener's
//!   dialback verification);
//! - `dns::srv::normalize_name`: DNS names from answers (SRV targets,
//!   CNAME chains), where the root `"."` is a value;
//! - `tls::identity`: a certificate's presented identifiers, compared per
//!   RFC 6125 §6.4 (one trailing dot, no trimming).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A normalised, valid XMPP domain (lowercase A-labels, no trailing dot,
/// at least two labels, host-name syntax): what the survey probes, stores
/// and reports. Made only by [`DomainName::parse`] (or its
/// [`FromStr`](std::str::FromStr) / `TryFrom<String>` / deserialising
/// forms, which call it); it is a plain JSON string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    /// Normalises and validates one domain: trims, drops one trailing dot,
    /// maps IDNA to A-labels, lowercases, and checks host-name syntax.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.trim();
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(DomainError::Empty);
        }
        if s.contains("://") || s.contains('/') {
            return Err(DomainError::NotADomain(format!(
                "{s:?} looks like a URL; give the bare domain"
            )));
        }
        if s.contains('@') {
            return Err(DomainError::NotADomain(format!(
                "{s:?} looks like a JID with a local part; give the domain after '@'"
            )));
        }
        if s.parse::<std::net::IpAddr>().is_ok() || s.starts_with('[') {
            return Err(DomainError::NotADomain(format!(
                "{s:?} is an IP address; XMPP needs a domain name"
            )));
        }
        let ascii = idna::domain_to_ascii(s).map_err(|e| DomainError::Idna(e.to_string()))?;
        if ascii.len() > 253 {
            return Err(DomainError::TooLong);
        }
        let labels: Vec<&str> = ascii.split('.').collect();
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err(DomainError::BadLabel((*label).to_string()));
            }
            let ok_chars = label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok_chars || label.starts_with('-') || label.ends_with('-') {
                return Err(DomainError::BadCharacter((*label).to_string()));
            }
        }
        if labels.len() < 2 {
            return Err(DomainError::SingleLabel);
        }
        Ok(Self(ascii))
    }

    /// The domainpart of a JID (`local@domain/resource`, see
    /// [`jid_domainpart`]), parsed as [`DomainName::parse`] does.
    pub fn from_jid(jid: &str) -> Result<Self, DomainError> {
        Self::parse(jid_domainpart(jid))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for DomainName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for DomainName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DomainName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DomainName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DomainName {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<DomainName> for String {
    fn from(d: DomainName) -> Self {
        d.0
    }
}

impl PartialEq<str> for DomainName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DomainName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for DomainName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// The domainpart of a JID (RFC 7622 §3.1: the resource starts at the
/// first `/`, the local part ends at the `@` before the domain), as
/// written. A bare domain is returned unchanged. The one JID parser:
/// sources, the inbound stream and the testnet all use it.
pub fn jid_domainpart(jid: &str) -> &str {
    let bare = jid.split('/').next().unwrap_or(jid);
    bare.rsplit('@').next().unwrap_or(bare)
}

/// How a name a peer *claims* (a stream header's `from`/`to`, a stanza's
/// address) is recorded and compared: trimmed, no trailing dots, ASCII
/// lowercase, never rejected. Unlike [`DomainName::parse`] it keeps what
/// was sent, so that a malformed claim is still evidence in the report.
pub fn fold(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// [`fold`] of a JID's domainpart ([`jid_domainpart`]).
pub fn fold_jid(jid: &str) -> String {
    fold(jid_domainpart(jid))
}

/// Whether two claimed names are the same domain after [`fold`].
pub fn same_domain(a: &str, b: &str) -> bool {
    fold(a) == fold(b)
}

/// Why a name is not a usable XMPP domain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// Empty after trimming.
    #[error("empty domain")]
    Empty,
    /// IDNA (UTS #46) processing rejected it.
    #[error("not a valid internationalised domain name: {0}")]
    Idna(String),
    /// Longer than 253 octets in A-label form (RFC 1035 §2.3.4).
    #[error("longer than 253 characters")]
    TooLong,
    /// A label is empty or longer than 63 octets (RFC 1035 §2.3.4).
    #[error("label {0:?} is empty or longer than 63 characters")]
    BadLabel(String),
    /// A character outside letters, digits and hyphen, or a hyphen at a
    /// label's edge (RFC 1123 §2.1 host names).
    #[error("label {0:?} must be letters, digits and inner hyphens")]
    BadCharacter(String),
    /// Looks like an address or a URL or a JID with a local part, not a domain.
    #[error("{0}")]
    NotADomain(String),
    /// A single label: not resolvable as an XMPP service on the Internet.
    #[error("a single label is not a public domain")]
    SingleLabel,
    /// The line is not UTF-8 text (a list saved as Latin-1, a stray byte).
    #[error("not UTF-8: byte 0x{byte:02x} at column {column} (save the list as UTF-8)")]
    NotUtf8 {
        /// The first offending byte.
        byte: u8,
        /// Its 1-based byte column in the line.
        column: usize,
    },
}

impl DomainError {
    /// The error for a line that is not UTF-8, from the decoder's error.
    pub fn not_utf8(line: &[u8], e: &std::str::Utf8Error) -> Self {
        let at = e.valid_up_to();
        Self::NotUtf8 {
            byte: line.get(at).copied().unwrap_or(0),
            column: at + 1,
        }
    }
}

/// A line of a domain list that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}:{line}: {text:?}: {error}", file.display())]
pub struct BadLine {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// Why it was rejected.
    pub error: DomainError,
}

/// Parses a text domain list: one domain a line, `#` starts a comment,
/// blank lines ignored, duplicates dropped (first one kept). Returns the
/// valid domains in order and every bad line.
///
/// The list is bytes, not text: a line that is not UTF-8 is one bad line
/// ([`DomainError::NotUtf8`], with its number) while the rest is read, and
/// bytes in a comment are never looked at. A leading UTF-8 byte-order mark
/// and CRLF line ends are accepted.
pub fn parse_list(file: &Path, bytes: &[u8]) -> (Vec<DomainName>, Vec<BadLine>) {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut seen = std::collections::HashSet::new();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in lines(bytes).enumerate() {
        let bad_line = |error| BadLine {
            file: file.to_path_buf(),
            line: i + 1,
            text: String::from_utf8_lossy(raw).into_owned(),
            error,
        };
        // '#' is ASCII: splitting before decoding leaves comments alone.
        let content = raw.split(|&b| b == b'#').next().unwrap_or(&[]);
        let content = match std::str::from_utf8(content) {
            Ok(c) => c.trim(),
            Err(e) => {
                bad.push(bad_line(DomainError::not_utf8(content, &e)));
                continue;
            }
        };
        if content.is_empty() {
            continue;
        }
        match DomainName::parse(content) {
            Ok(d) => {
                if seen.insert(d.clone()) {
                    good.push(d);
                }
            }
            Err(error) => bad.push(bad_line(error)),
        }
    }
    (good, bad)
}

/// Splits bytes into lines like [`str::lines`]: on `\n`, a trailing `\r`
/// dropped, no empty last line after a final newline.
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|&b| b == b'\n')
        .filter(move |_| !empty)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_dot_and_idna() {
        assert_eq!(DomainName::parse(" Example.ORG. ").unwrap(), "example.org");
        assert_eq!(DomainName::parse("jabber.de").unwrap(), "jabber.de");
        assert_eq!(
            DomainName::parse("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            DomainName::parse("XN--BCHER-KVA.example").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn rejects_what_is_not_a_domain() {
        assert_eq!(DomainName::parse(""), Err(DomainError::Empty));
        assert_eq!(DomainName::parse("  . "), Err(DomainError::Empty));
        assert!(matches!(
            DomainName::parse("https://example.org"),
            Err(DomainError::NotADomain(_))
        ));
        assert!(matches!(
            DomainName::parse("user@example.org"),
            Err(DomainError::NotADomain(_))
        ));
        assert!(matches!(
            DomainName::parse("192.0.2.1"),
            Err(DomainError::NotADomain(_))
        ));
        assert!(matches!(
            DomainName::parse("[::1]"),
            Err(DomainError::NotADomain(_))
        ));
        assert!(matches!(
            DomainName::parse("a..b"),
            Err(DomainError::BadLabel(_)) | Err(DomainError::Idna(_))
        ));
        assert!(matches!(
            DomainName::parse("-a.example"),
            Err(DomainError::BadCharacter(_)) | Err(DomainError::Idna(_))
        ));
        assert!(matches!(
            DomainName::parse("a_b.example"),
            Err(DomainError::BadCharacter(_)) | Err(DomainError::Idna(_))
        ));
        assert!(matches!(
            DomainName::parse("exa mple.org"),
            Err(DomainError::BadCharacter(_)) | Err(DomainError::Idna(_))
        ));
        assert_eq!(
            DomainName::parse("localhost"),
            Err(DomainError::SingleLabel)
        );
        let long = format!("{}.example", "a".repeat(64));
        assert!(DomainName::parse(&long).is_err());
    }

    #[test]
    fn jid_domainpart_and_fold() {
        assert_eq!(jid_domainpart("a@b.example/res/with@at"), "b.example");
        assert_eq!(jid_domainpart("b.example"), "b.example");
        assert_eq!(jid_domainpart("a@B.Example."), "B.Example.");
        assert_eq!(fold(" B.Example.. "), "b.example");
        assert_eq!(fold_jid("u@Über.Example./r"), "Über.example");
        assert!(same_domain("A.example.", "a.example"));
        assert_eq!(
            DomainName::from_jid("u@Bücher.example/r").unwrap(),
            "xn--bcher-kva.example"
        );
        assert!(DomainName::from_jid("u@localhost").is_err());
    }

    #[test]
    fn serialises_as_a_plain_string_and_validates_when_read() {
        let d = DomainName::parse("Example.ORG").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"example.org\"");
        let back: DomainName = serde_json::from_str("\"example.org\"").unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<DomainName>("\"not a domain\"").is_err());
        assert_eq!(d.to_string(), "example.org");
        assert_eq!(d.len(), 11, "derefs to str");
    }

    #[test]
    fn list_reports_bad_lines_with_numbers_and_keeps_the_rest() {
        let text =
            "# comment\nexample.org\n\nbad domain.org # typo\nExample.org.\nxmpp.test # ok\n";
        let (good, bad) = parse_list(Path::new("list.txt"), text.as_bytes());
        assert_eq!(good, vec!["example.org", "xmpp.test"]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 4);
        let msg = bad[0].to_string();
        assert!(msg.starts_with("list.txt:4: "), "{msg}");
        assert!(msg.contains("bad domain.org"), "{msg}");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_one_bad_line_with_its_number() {
        let text =
            b"\xef\xbb\xbfone.example\r\ncaf\xe9.example\nok.example # caf\xe9\n\ntwo.example";
        let (good, bad) = parse_list(Path::new("l.txt"), text);
        assert_eq!(good, vec!["one.example", "ok.example", "two.example"]);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].line, 2);
        assert_eq!(
            bad[0].error,
            DomainError::NotUtf8 {
                byte: 0xe9,
                column: 4
            }
        );
        let msg = bad[0].to_string();
        assert!(msg.starts_with("l.txt:2: "), "{msg}");
        assert!(msg.contains("0xe9"), "{msg}");
        assert_eq!(lines(b"").count(), 0);
        assert_eq!(
            lines(b"a\n\nb").collect::<Vec<_>>(),
            vec![&b"a"[..], b"", b"b"]
        );
    }
}
