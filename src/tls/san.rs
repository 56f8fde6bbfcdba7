//! Subject Alternative Names relevant to XMPP (RFC 5280 §4.2.1.6,
//! RFC 6120 §13.7.1.2, RFC 7673 / RFC 4985).
//!
//! Besides dNSName and iPAddress, XMPP certificates may carry two otherName
//! forms that webpki ignores but XMPP peers honour:
//! - id-on-xmppAddr (1.3.6.1.5.5.7.8.5), a UTF8String (RFC 6120 §13.7.1.4);
//! - id-on-dnsSRV (1.3.6.1.5.5.7.8.7), an IA5String such as
//!   `_xmpp-server.example.org` (RFC 4985 §2, RFC 7673, RFC 6120 §13.7.1.2.1).

use std::net::{Ipv4Addr, Ipv6Addr};

use x509_parser::asn1_rs::{Any, Class, FromDer, Tag, oid};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::Sans;

/// Errors reading the SAN extension.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SanError {
    /// The extension does not parse, or appears twice (RFC 5280 §4.2).
    #[error("malformed or duplicate subjectAltName extension: {0}")]
    Malformed(String),
}

/// Collects the XMPP-relevant SANs of a parsed certificate; the flag tells
/// whether any name held a U+0000 (see [`escape_nul`]).
///
/// Unknown name forms (rfc822Name, URI, other otherNames) are skipped;
/// an otherName of a known type whose value does not decode is skipped too
/// (it cannot match anything), rather than failing the whole certificate.
/// A dNSName, id-on-xmppAddr or id-on-dnsSRV with a U+0000 (RFC 5280
/// §4.2.1.6 allows none in a DNS name; a NUL is the old truncation trick) is
/// kept with the NUL escaped, so it still shows in the report but matches no
/// real domain and can be stored.
pub fn parse(cert: &X509Certificate<'_>) -> Result<(Sans, bool), SanError> {
    let mut sans = Sans::default();
    let ext = cert
        .subject_alternative_name()
        .map_err(|e| SanError::Malformed(e.to_string()))?;
    let Some(ext) = ext else {
        return Ok((sans, false));
    };
    let mut nul = false;
    let mut keep = |list: &mut Vec<String>, s: &str| {
        let (text, had_nul) = escape_nul(s);
        nul |= had_nul;
        list.push(text);
    };
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(d) => keep(&mut sans.dns, d),
            GeneralName::IPAddress(b) => {
                if let Some(ip) = ip_text(b) {
                    sans.ip.push(ip);
                }
            }
            GeneralName::OtherName(o, value) => {
                if *o == oid!(1.3.6.1.5.5.7.8.5) {
                    if let Some(s) = other_name_string(value, Tag::Utf8String) {
                        keep(&mut sans.xmpp_addr, &s);
                    }
                } else if *o == oid!(1.3.6.1.5.5.7.8.7)
                    && let Some(s) = other_name_string(value, Tag::Ia5String)
                {
                    keep(&mut sans.srv_id, &s);
                }
            }
            _ => {}
        }
    }
    Ok((sans, nul))
}

/// Writes each U+0000 as `\00`, the RFC 4514 §2.4 hex-pair escape that
/// [`super::cert::rfc4514`] uses in DNs (PostgreSQL text and `jsonb` cannot
/// hold U+0000); the flag tells whether there was one.
pub fn escape_nul(s: &str) -> (String, bool) {
    if s.contains('\0') {
        (s.replace('\0', "\\00"), true)
    } else {
        (s.to_string(), false)
    }
}

/// Decodes an otherName value as handed out by x509-parser: the bytes still
/// hold the `[0] EXPLICIT` wrapper (`value [0] EXPLICIT ANY DEFINED BY
/// type-id`, RFC 5280 §4.2.1.6), whose content is the string of type `want`.
pub fn other_name_string(value: &[u8], want: Tag) -> Option<String> {
    let (_, wrapper) = Any::from_der(value).ok()?;
    if wrapper.class() != Class::ContextSpecific
        || wrapper.tag() != Tag(0)
        || !wrapper.header.is_constructed()
    {
        return None;
    }
    let (rest, inner) = Any::from_der(wrapper.data).ok()?;
    if !rest.is_empty() || inner.tag() != want {
        return None;
    }
    let s = std::str::from_utf8(inner.data).ok()?;
    if want == Tag::Ia5String && !s.is_ascii() {
        return None;
    }
    Some(s.to_string())
}

/// iPAddress as text: 4 octets are IPv4, 16 are IPv6 (RFC 5280 §4.2.1.6).
fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => {
            let a: [u8; 4] = b.try_into().ok()?;
            Some(Ipv4Addr::from(a).to_string())
        }
        16 => {
            let a: [u8; 16] = b.try_into().ok()?;
            Some(Ipv6Addr::from(a).to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_name_unwraps_explicit_tag() {
        // [0] { UTF8String "a.test" }
        let v = [0xa0, 0x08, 0x0c, 0x06, b'a', b'.', b't', b'e', b's', b't'];
        assert_eq!(
            other_name_string(&v, Tag::Utf8String).as_deref(),
            Some("a.test")
        );
        // Wrong inner type is refused.
        assert_eq!(other_name_string(&v, Tag::Ia5String), None);
        // Missing wrapper (bare string) is refused.
        assert_eq!(other_name_string(&v[2..], Tag::Utf8String), None);
        // Truncated input is refused, not a panic.
        assert_eq!(other_name_string(&v[..5], Tag::Utf8String), None);
    }

    #[test]
    fn nul_is_escaped_and_flagged() {
        assert_eq!(escape_nul("a.test"), ("a.test".to_string(), false));
        assert_eq!(
            escape_nul("good.test\0.evil.test"),
            ("good.test\\00.evil.test".to_string(), true)
        );
    }

    #[test]
    fn ip_forms() {
        assert_eq!(ip_text(&[127, 0, 0, 1]).as_deref(), Some("127.0.0.1"));
        assert_eq!(ip_text(&[0; 16]).as_deref(), Some("::"));
        assert_eq!(ip_text(&[1, 2, 3]), None);
    }
}
