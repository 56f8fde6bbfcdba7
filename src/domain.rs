//! XMPP domain names as untrusted input: normalisation and validation.
//!
//! A domain list comes from files and websites we do not control. Every
//! name is normalised the same way (lowercase, IDNA to A-labels per
//! RFC 5891 / UTS #46, no trailing dot, RFC 7622 §3.2 domainpart) so that
//! results, de-duplication and opt-outs agree; a bad line is reported with
//! its file and line number while the rest is kept.

use std::path::{Path, PathBuf};
use thiserror::Error;

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

/// Normalises one domain: trims, drops one trailing dot, maps IDNA to
/// A-labels, lowercases, and validates host-name syntax.
pub fn normalize(input: &str) -> Result<String, DomainError> {
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
    Ok(ascii)
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
pub fn parse_list(file: &Path, bytes: &[u8]) -> (Vec<String>, Vec<BadLine>) {
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
        match normalize(content) {
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
        assert_eq!(normalize(" Example.ORG. ").unwrap(), "example.org");
        assert_eq!(normalize("jabber.de").unwrap(), "jabber.de");
        assert_eq!(
            normalize("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normalize("XN--BCHER-KVA.example").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn rejects_what_is_not_a_domain() {
        assert_eq!(normalize(""), Err(DomainError::Empty));
        assert_eq!(normalize("  . "), Err(DomainError::Empty));
        assert!(matches!(
            normalize("https://example.org"),
            Err(DomainError::NotADomain(_))
        ));
        assert!(matches!(
            normalize("user@example.org"),
            Err(DomainError::NotADomain(_))
        ));
        assert!(matches!(
            normalize("192.0.2.1"),
            Err(DomainError::NotADomain(_))
        ));
        assert!(matches!(
            normalize("[::1]"),
            Err(DomainError::NotADomain(_))
        ));
        assert!(matches!(
            normalize("a..b"),
            Err(DomainError::BadLabel(_)) | Err(DomainError::Idna(_))
        ));
        assert!(matches!(
            normalize("-a.example"),
            Err(DomainError::BadCharacter(_)) | Err(DomainError::Idna(_))
        ));
        assert!(matches!(
            normalize("a_b.example"),
            Err(DomainError::BadCharacter(_)) | Err(DomainError::Idna(_))
        ));
        assert!(matches!(
            normalize("exa mple.org"),
            Err(DomainError::BadCharacter(_)) | Err(DomainError::Idna(_))
        ));
        assert_eq!(normalize("localhost"), Err(DomainError::SingleLabel));
        let long = format!("{}.example", "a".repeat(64));
        assert!(normalize(&long).is_err());
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
