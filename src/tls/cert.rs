//! Analysis of one X.509 certificate from its DER (RFC 5280), without I/O or
//! clock: everything MEASUREMENTS §2 records per certificate.
//!
//! Every certificate of a presented chain goes through [`analyze`] and is
//! stored once by its SHA-256. Peer data is hostile: nothing here panics,
//! malformed input is a [`CertError`].

use std::sync::LazyLock;

use rustls::crypto::WebPkiSupportedAlgorithms;
use sha2::{Digest, Sha256};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use x509_parser::asn1_rs::Class;
use x509_parser::asn1_rs::{Any, BmpString, FromDer, Oid, Tag, ToDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::public_key::PublicKey;
use x509_parser::time::ASN1Time;
use x509_parser::x509::X509Name;

use super::issuers::{self, IssuerName};
use super::{CertAnomaly, CertInfo, KeyInfo, eku, san};

/// Why a certificate could not be analysed. The survey records the
/// certificate's hash and this text instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The DER does not parse as an X.509 certificate (RFC 5280 §4.1).
    #[error("not a parseable X.509 certificate: {0}")]
    Parse(String),
    /// Bytes follow the certificate's outer SEQUENCE.
    #[error("{0} trailing bytes after the certificate")]
    TrailingData(usize),
    /// An extension the survey reads (EKU, SAN, basicConstraints) is
    /// malformed or duplicated (RFC 5280 §4.2).
    #[error("malformed extension: {0}")]
    Extension(String),
}

/// Analyses one DER certificate into a [`CertInfo`] (MEASUREMENTS §2).
///
/// Hostile but parseable encodings are repaired and flagged in
/// [`CertInfo::anomalies`] rather than refused, so the result can always be
/// serialised and stored: a U+0000 in a DN or SAN is escaped
/// ([`CertAnomaly::NulInName`]); notBefore/notAfter are converted to UTC
/// ([`CertAnomaly::TimeWithOffset`]), checked against RFC 5280 §4.1.2.5
/// ([`CertAnomaly::TimeOutsideRfc5280Profile`]) and clamped to years
/// 0000–9999 ([`CertAnomaly::TimeUnrepresentable`]).
///
/// `renews_server_only` is only ever set on non-CA certificates; whether the
/// certificate is actually the end-entity of a chain is the caller's
/// knowledge, the rule itself is in [`issuers::renews_server_only`].
pub fn analyze(der: &[u8]) -> Result<CertInfo, CertError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::TrailingData(rest.len()));
    }
    let eku = eku::from_cert(&cert).map_err(|e| CertError::Extension(e.to_string()))?;
    let (sans, nul_in_san) = san::parse(&cert).map_err(|e| CertError::Extension(e.to_string()))?;
    let mut anomalies = Vec::new();
    if nul_in_san || name_has_nul(cert.subject()) || name_has_nul(cert.issuer()) {
        anomalies.push(CertAnomaly::NulInName);
    }
    let raw_times = raw_validity(der);
    let not_before = validity_time(
        &cert.validity().not_before,
        raw_times.map(|t| t[0]),
        &mut anomalies,
    );
    let not_after = validity_time(
        &cert.validity().not_after,
        raw_times.map(|t| t[1]),
        &mut anomalies,
    );
    anomalies.sort_unstable();
    anomalies.dedup();
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| CertError::Extension(format!("basicConstraints: {e}")))?
        .is_some_and(|bc| bc.value.ca);
    let issuer_name = issuer_name(cert.issuer());
    let self_signed =
        cert.subject().as_raw() == cert.issuer().as_raw() && verifies_with_own_key(der, &cert);
    Ok(CertInfo {
        sha256: hex::encode(Sha256::digest(der)),
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        serial: serial_hex(cert.raw_serial()),
        not_before,
        not_after,
        key: key_info(&cert),
        signature_algorithm: signature_algorithm_name(&cert.signature_algorithm.algorithm),
        lets_encrypt: issuers::is_lets_encrypt(&issuer_name),
        renews_server_only: issuers::renews_server_only(&issuer_name, eku.class, is_ca, not_after),
        sans,
        eku,
        is_ca,
        self_signed,
        anomalies,
    })
}

/// Whether any string attribute of a DN holds a U+0000 (it is stored
/// escaped by [`rfc4514`]).
fn name_has_nul(name: &X509Name<'_>) -> bool {
    name.iter_attributes()
        .any(|a| attr_value_text(a.attr_value()).is_some_and(|t| t.contains('\0')))
}

/// The raw (tag, content) of notBefore and notAfter: `TBSCertificate ::=
/// SEQUENCE { version [0] EXPLICIT OPTIONAL, serialNumber, signature,
/// issuer, validity SEQUENCE { notBefore Time, notAfter Time }, … }`
/// (RFC 5280 §4.1).
fn raw_validity(der: &[u8]) -> Option<[(Tag, &[u8]); 2]> {
    let (tbs, _, _) = split_certificate(der)?;
    let (_, tbs) = Any::from_der(tbs).ok()?;
    let (mut rest, first) = Any::from_der(tbs.data).ok()?;
    // Skip the optional version, then serialNumber, signature, issuer.
    let skip = if first.class() == Class::ContextSpecific {
        3
    } else {
        2
    };
    for _ in 0..skip {
        rest = Any::from_der(rest).ok()?.0;
    }
    let (_, validity) = Any::from_der(rest).ok()?;
    let (rest, nb) = Any::from_der(validity.data).ok()?;
    let (_, na) = Any::from_der(rest).ok()?;
    Some([(nb.tag(), nb.data), (na.tag(), na.data)])
}

/// RFC 5280 §4.1.2.5: UTCTime `YYMMDDHHMMSSZ` (years through 2049),
/// GeneralizedTime `YYYYMMDDHHMMSSZ` (from 2050).
fn in_rfc5280_profile(tag: Tag, content: &[u8]) -> bool {
    let digits = |n: usize| {
        content.len() == n + 1
            && content.last() == Some(&b'Z')
            && content.iter().take(n).all(u8::is_ascii_digit)
    };
    if tag == Tag::UtcTime {
        digits(12)
    } else if tag == Tag::GeneralizedTime {
        digits(14) && content.get(..4).is_some_and(|y| y >= b"2050".as_slice())
    } else {
        false
    }
}

/// The first and last instants RFC 3339 (and so the report) can carry.
fn representable_range() -> (OffsetDateTime, OffsetDateTime) {
    let first = PrimitiveDateTime::new(
        Date::from_calendar_date(0, Month::January, 1).unwrap_or(Date::MIN),
        Time::MIDNIGHT,
    );
    let last = PrimitiveDateTime::new(
        Date::from_calendar_date(9999, Month::December, 31).unwrap_or(Date::MAX),
        Time::from_hms(23, 59, 59).unwrap_or(Time::MIDNIGHT),
    );
    (first.assume_utc(), last.assume_utc())
}

/// notBefore/notAfter in UTC, with what was wrong recorded in `anomalies`:
/// an offset, a form outside RFC 5280 §4.1.2.5, or an instant outside years
/// 0000–9999 in UTC (clamped).
fn validity_time(
    t: &ASN1Time,
    raw: Option<(Tag, &[u8])>,
    anomalies: &mut Vec<CertAnomaly>,
) -> OffsetDateTime {
    let dt = t.to_datetime();
    if let Some((tag, content)) = raw {
        if content.iter().any(|&b| b == b'+' || b == b'-') {
            anomalies.push(CertAnomaly::TimeWithOffset);
            anomalies.push(CertAnomaly::TimeOutsideRfc5280Profile);
        } else if !in_rfc5280_profile(tag, content) {
            anomalies.push(CertAnomaly::TimeOutsideRfc5280Profile);
        }
    }
    if dt.offset() != UtcOffset::UTC && !anomalies.contains(&CertAnomaly::TimeWithOffset) {
        anomalies.push(CertAnomaly::TimeWithOffset);
        anomalies.push(CertAnomaly::TimeOutsideRfc5280Profile);
    }
    let (first, last) = representable_range();
    match dt.checked_to_offset(UtcOffset::UTC) {
        Some(utc) if utc >= first && utc <= last => utc,
        _ => {
            anomalies.push(CertAnomaly::TimeUnrepresentable);
            if dt.year() >= 5000 { last } else { first }
        }
    }
}

/// The O and CN attributes of an issuer DN, for [`issuers`].
pub fn issuer_name(name: &X509Name<'_>) -> IssuerName {
    IssuerName {
        organization: name
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect(),
        common_name: name
            .iter_common_name()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect(),
    }
}

/// The subject commonName values of a DER certificate (empty if it does not
/// parse). Used only for the deprecated CN fallback report (RFC 6125 §6.4.4).
pub fn subject_common_names(der: &[u8]) -> Vec<String> {
    match X509Certificate::from_der(der) {
        Ok((_, c)) => c
            .subject()
            .iter_common_name()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Serial number as lowercase hex, leading zero octets (DER sign padding)
/// removed; at least one octet is kept.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(raw.get(start..).unwrap_or_default())
}

/// Formats a DN as an RFC 4514 string: RDNs last-to-first, `,` between RDNs,
/// `+` inside a multi-valued RDN, short names from RFC 4514 §3, otherwise the
/// dotted OID; non-string values as `#` + hex of their DER (§2.4).
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<&_> = name.iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            out.push_str(&attr_type_name(atv.attr_type()));
            out.push('=');
            out.push_str(&attr_value_string(atv.attr_value()));
        }
    }
    out
}

/// RFC 4514 §3 short names.
fn attr_type_name(oid: &Oid<'_>) -> String {
    let s = oid.to_id_string();
    let short = match s.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return s,
    };
    short.to_string()
}

/// The text of a string-typed DN attribute value, `None` for other types.
fn attr_value_text(v: &Any<'_>) -> Option<String> {
    match v.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            std::str::from_utf8(v.data).ok().map(str::to_string)
        }
        Tag::BmpString => BmpString::try_from(v.clone()).ok().map(|b| b.string()),
        _ => None,
    }
}

fn attr_value_string(v: &Any<'_>) -> String {
    match attr_value_text(v) {
        Some(t) => escape_rfc4514(&t),
        None => match v.to_der_vec() {
            Ok(d) => format!("#{}", hex::encode(d)),
            Err(_) => format!("#{}", hex::encode(v.data)),
        },
    }
}

/// RFC 4514 §2.4 escaping.
fn escape_rfc4514(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let n = s.chars().count();
    for (i, c) in s.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// Parses the values of one attribute type (e.g. `CN`) back out of an
/// RFC 4514 string produced by [`rfc4514`], undoing §2.4 escapes. Hex
/// (`#…`) values are skipped.
pub fn rfc4514_values(dn: &str, attr: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut cur_type = String::new();
    let mut cur_val = String::new();
    let mut in_value = false;
    let mut chars = dn.chars().peekable();
    let flush = |t: &mut String, v: &mut String, values: &mut Vec<String>| {
        if t.eq_ignore_ascii_case(attr) && !v.starts_with('#') {
            values.push(std::mem::take(v));
        }
        t.clear();
        v.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_value => match chars.next() {
                Some(e) if e.is_ascii_hexdigit() => {
                    let h: String = [e, chars.next().unwrap_or('0')].iter().collect();
                    if let Ok(b) = u8::from_str_radix(&h, 16) {
                        cur_val.push(char::from(b));
                    }
                }
                Some(e) => cur_val.push(e),
                None => {}
            },
            '=' if !in_value => in_value = true,
            ',' | '+' if in_value => {
                flush(&mut cur_type, &mut cur_val, &mut values);
                in_value = false;
            }
            _ if in_value => cur_val.push(c),
            _ => cur_type.push(c),
        }
    }
    if in_value {
        flush(&mut cur_type, &mut cur_val, &mut values);
    }
    values
}

/// Public key algorithm, size and curve (RFC 5480, RFC 8410, RFC 8017).
fn key_info(cert: &X509Certificate<'_>) -> KeyInfo {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => {
            let bits = match spki.parsed() {
                Ok(PublicKey::RSA(k)) => rsa_bits(k.modulus),
                _ => None,
            };
            KeyInfo {
                algorithm: "rsa".into(),
                bits,
                curve: None,
            }
        }
        "1.2.840.10045.2.1" => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| Oid::try_from(p.clone()).ok())
                .map(|o| o.to_id_string());
            let (curve, bits) = match curve_oid.as_deref() {
                Some("1.2.840.10045.3.1.7") => (Some("P-256".to_string()), Some(256)),
                Some("1.3.132.0.34") => (Some("P-384".to_string()), Some(384)),
                Some("1.3.132.0.35") => (Some("P-521".to_string()), Some(521)),
                Some(other) => (Some(other.to_string()), None),
                None => (None, None),
            };
            KeyInfo {
                algorithm: "ec".into(),
                bits,
                curve,
            }
        }
        "1.3.101.112" => KeyInfo {
            algorithm: "ed25519".into(),
            bits: Some(256),
            curve: None,
        },
        "1.3.101.113" => KeyInfo {
            algorithm: "ed448".into(),
            bits: Some(456),
            curve: None,
        },
        _ => KeyInfo {
            algorithm: alg,
            bits: None,
            curve: None,
        },
    }
}

/// Bit length of an RSA modulus given as a DER INTEGER's content.
fn rsa_bits(modulus: &[u8]) -> Option<u32> {
    let start = modulus.iter().position(|&b| b != 0)?;
    let m = modulus.get(start..)?;
    let first = *m.first()?;
    u32::try_from(m.len())
        .ok()?
        .checked_mul(8)?
        .checked_sub(first.leading_zeros())
}

/// Conventional names of common signature algorithms (RFC 5758 §3.2,
/// RFC 4055 §5, RFC 8410 §3); anything else as its dotted OID.
fn signature_algorithm_name(oid: &Oid<'_>) -> String {
    let s = oid.to_id_string();
    let name = match s.as_str() {
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        _ => return s,
    };
    name.to_string()
}

/// The signature algorithms webpki accepts with aws-lc-rs.
static ALGORITHMS: LazyLock<WebPkiSupportedAlgorithms> = LazyLock::new(|| {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
});

/// Whether the certificate's signature verifies with its own public key
/// (the second half of "self-signed"; RFC 5280 §6.1 treats a matching
/// subject/issuer alone only as "self-issued"). Unsupported algorithms or
/// malformed input give `false`.
fn verifies_with_own_key(der: &[u8], cert: &X509Certificate<'_>) -> bool {
    let Some((tbs, sig_alg, sig)) = split_certificate(der) else {
        return false;
    };
    let Some(spki_alg) = Any::from_der(cert.public_key().raw)
        .ok()
        .and_then(|(_, s)| Any::from_der(s.data).ok())
        .map(|(_, a)| a.data)
    else {
        return false;
    };
    let public_key: &[u8] = &cert.public_key().subject_public_key.data;
    ALGORITHMS.all.iter().any(|alg| {
        alg.public_key_alg_id().as_ref() == spki_alg
            && alg.signature_alg_id().as_ref() == sig_alg
            && alg.verify_signature(public_key, tbs, sig).is_ok()
    })
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
/// signatureValue BIT STRING }` → (full TBS DER, algorithm identifier
/// contents, signature octets).
fn split_certificate(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (_, outer) = Any::from_der(der).ok()?;
    let body = outer.data;
    let (after_tbs, _) = Any::from_der(body).ok()?;
    let tbs = body.get(..body.len() - after_tbs.len())?;
    let (after_alg, alg) = Any::from_der(after_tbs).ok()?;
    let (_, sig) = Any::from_der(after_alg).ok()?;
    if sig.tag() != Tag::BitString || sig.data.first() != Some(&0) {
        return None;
    }
    Some((tbs, alg.data, sig.data.get(1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(analyze(b""), Err(CertError::Parse(_))));
        assert!(matches!(
            analyze(&[0x30, 0x03, 1, 2]),
            Err(CertError::Parse(_))
        ));
    }

    #[test]
    fn rfc4514_escaping_round_trip() {
        let v = r#" a,b+c"d\e "#;
        let esc = escape_rfc4514(v);
        assert_eq!(esc, r#"\ a\,b\+c\"d\\e\ "#);
        let dn = format!("CN={esc},O=x");
        assert_eq!(rfc4514_values(&dn, "CN"), vec![v.to_string()]);
        assert_eq!(rfc4514_values(&dn, "O"), vec!["x".to_string()]);
    }

    #[test]
    fn rsa_bit_length() {
        assert_eq!(rsa_bits(&[0x00, 0x80, 0, 0]), Some(24));
        assert_eq!(rsa_bits(&[0x01, 0, 0]), Some(17));
        assert_eq!(rsa_bits(&[]), None);
    }

    #[test]
    fn serial_strips_sign_padding() {
        assert_eq!(serial_hex(&[0x00, 0xab, 0x01]), "ab01");
        assert_eq!(serial_hex(&[0x00]), "00");
    }
}

/// Handcrafted certificates for the hostile-encoding tests: names and
/// times that rcgen will not produce. The signature is a placeholder (the
/// analysis does not need it to verify).
#[cfg(test)]
pub(crate) mod handcrafted {
    /// UTCTime (RFC 5280 §4.1.2.5.1).
    pub const UTC: u8 = 0x17;
    /// GeneralizedTime (RFC 5280 §4.1.2.5.2).
    pub const GENERALIZED: u8 = 0x18;

    /// What goes into one handcrafted certificate.
    #[derive(Debug, Clone)]
    pub struct Spec<'a> {
        pub issuer_cn: &'a [u8],
        pub subject_cn: &'a [u8],
        pub not_before: (u8, &'a str),
        pub not_after: (u8, &'a str),
        pub dns: &'a [&'a [u8]],
        pub xmpp_addr: &'a [&'a [u8]],
        pub srv_id: &'a [&'a [u8]],
    }

    impl Default for Spec<'_> {
        fn default() -> Self {
            Self {
                issuer_cn: b"Handcrafted CA",
                subject_cn: b"xmpp.example.test",
                not_before: (UTC, "260101000000Z"),
                not_after: (UTC, "260401000000Z"),
                dns: &[b"xmpp.example.test"],
                xmpp_addr: &[],
                srv_id: &[],
            }
        }
    }

    /// One DER TLV.
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    fn name(cn: &[u8]) -> Vec<u8> {
        let atv = seq(&[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, cn)]);
        seq(&[tlv(0x31, &atv)])
    }

    fn other_name(oid_last: u8, string_tag: u8, value: &[u8]) -> Vec<u8> {
        let oid = tlv(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, oid_last]);
        tlv(0xa0, &[oid, tlv(0xa0, &tlv(string_tag, value))].concat())
    }

    /// The DER of a certificate per `spec`: ecdsa-with-SHA256, a P-256 key
    /// of placeholder bytes, a SAN extension with the given names.
    pub fn der(spec: &Spec<'_>) -> Vec<u8> {
        let alg = seq(&[tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])]);
        let spki = seq(&[
            seq(&[
                tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
                tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
            ]),
            tlv(0x03, &[&[0x00, 0x04][..], &[0x11; 64]].concat()),
        ]);
        let mut names = Vec::new();
        for d in spec.dns {
            names.push(tlv(0x82, d));
        }
        for x in spec.xmpp_addr {
            names.push(other_name(0x05, 0x0c, x));
        }
        for s in spec.srv_id {
            names.push(other_name(0x07, 0x16, s));
        }
        let san = seq(&[tlv(0x06, &[0x55, 0x1d, 0x11]), tlv(0x04, &seq(&names))]);
        let tbs = seq(&[
            tlv(0xa0, &tlv(0x02, &[0x02])),
            tlv(0x02, &[0x01]),
            alg.clone(),
            name(spec.issuer_cn),
            seq(&[
                tlv(spec.not_before.0, spec.not_before.1.as_bytes()),
                tlv(spec.not_after.0, spec.not_after.1.as_bytes()),
            ]),
            name(spec.subject_cn),
            spki,
            tlv(0xa3, &seq(&[san])),
        ]);
        seq(&[tbs, alg, tlv(0x03, &[0x00, 0x30, 0x00])])
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::handcrafted::{self, GENERALIZED, Spec, UTC};
    use super::*;
    use time::macros::datetime;

    fn anomalies(spec: &Spec<'_>) -> Vec<CertAnomaly> {
        analyze(&handcrafted::der(spec))
            .unwrap_or_else(|e| panic!("{spec:?}: {e}"))
            .anomalies
    }

    #[test]
    fn handcrafted_baseline_is_clean() {
        let info = analyze(&handcrafted::der(&Spec::default())).expect("analyse");
        assert_eq!(info.subject, "CN=xmpp.example.test");
        assert_eq!(info.sans.dns, ["xmpp.example.test"]);
        assert_eq!(info.not_before, datetime!(2026-01-01 0:00 UTC));
        assert!(info.anomalies.is_empty(), "{:?}", info.anomalies);
        let json = serde_json::to_string(&info).expect("json");
        assert!(!json.contains("anomalies"), "empty list is not written");
    }

    /// RFC 5280 §4.2.1.6 / RFC 6125 §6.4: a NUL in any stored name is
    /// escaped as `\00` and flagged.
    #[test]
    fn nul_in_each_name_is_escaped_and_flagged() {
        let dns = analyze(&handcrafted::der(&Spec {
            dns: &[b"good.test\0.evil.test"],
            ..Spec::default()
        }))
        .expect("analyse");
        assert_eq!(dns.sans.dns, ["good.test\\00.evil.test"]);
        assert_eq!(dns.anomalies, [CertAnomaly::NulInName]);
        let x = analyze(&handcrafted::der(&Spec {
            xmpp_addr: &[b"a\0b.test"],
            ..Spec::default()
        }))
        .expect("analyse");
        assert_eq!(x.sans.xmpp_addr, ["a\\00b.test"]);
        assert_eq!(x.anomalies, [CertAnomaly::NulInName]);
        let srv = analyze(&handcrafted::der(&Spec {
            srv_id: &[b"_xmpp-server.a\0.test"],
            ..Spec::default()
        }))
        .expect("analyse");
        assert_eq!(srv.sans.srv_id, ["_xmpp-server.a\\00.test"]);
        assert_eq!(srv.anomalies, [CertAnomaly::NulInName]);
        let subject = analyze(&handcrafted::der(&Spec {
            subject_cn: b"xmpp.example.test\0evil",
            ..Spec::default()
        }))
        .expect("analyse");
        assert_eq!(subject.subject, "CN=xmpp.example.test\\00evil");
        assert_eq!(subject.anomalies, [CertAnomaly::NulInName]);
        let issuer = analyze(&handcrafted::der(&Spec {
            issuer_cn: b"\0",
            ..Spec::default()
        }))
        .expect("analyse");
        assert_eq!(issuer.issuer, "CN=\\00");
        assert_eq!(issuer.anomalies, [CertAnomaly::NulInName]);
    }

    /// RFC 5280 §4.1.2.5: an offset is converted to UTC and flagged, from
    /// +16:00 (PostgreSQL refuses it) to +24:00 and beyond (RFC 3339 cannot
    /// carry it).
    #[test]
    fn offset_times_are_normalised_to_utc() {
        for (time, utc) in [
            ((UTC, "260101000000+1600"), datetime!(2025-12-31 8:00 UTC)),
            ((UTC, "260101000000-0130"), datetime!(2026-01-01 1:30 UTC)),
            ((UTC, "260101000000+2400"), datetime!(2025-12-31 0:00 UTC)),
            ((UTC, "260101000000+2559"), datetime!(2025-12-30 22:01 UTC)),
            ((UTC, "260101000000+0000"), datetime!(2026-01-01 0:00 UTC)),
        ] {
            let info = analyze(&handcrafted::der(&Spec {
                not_before: time,
                ..Spec::default()
            }))
            .unwrap_or_else(|e| panic!("{time:?}: {e}"));
            assert_eq!(info.not_before, utc, "{time:?}");
            assert_eq!(info.not_before.offset(), UtcOffset::UTC, "{time:?}");
            assert_eq!(
                info.anomalies,
                [
                    CertAnomaly::TimeWithOffset,
                    CertAnomaly::TimeOutsideRfc5280Profile
                ],
                "{time:?}"
            );
            serde_json::to_string(&info).expect("serialisable");
        }
    }

    #[test]
    fn times_outside_the_rfc5280_profile_are_flagged() {
        for time in [
            (GENERALIZED, "20260101000000Z"),
            (GENERALIZED, "20600101000000.5Z"),
        ] {
            assert_eq!(
                anomalies(&Spec {
                    not_after: time,
                    ..Spec::default()
                }),
                [CertAnomaly::TimeOutsideRfc5280Profile],
                "{time:?}"
            );
        }
        // In profile: GeneralizedTime from 2050, including 9999-12-31.
        assert!(
            anomalies(&Spec {
                not_after: (GENERALIZED, "99991231235959Z"),
                ..Spec::default()
            })
            .is_empty()
        );
    }

    /// A time that is outside 0000–9999 once in UTC is clamped and flagged
    /// instead of failing the certificate or the report. (x509-parser
    /// refuses offsets in GeneralizedTime and UTCTime only spans 1950–2049,
    /// so this is checked on the conversion itself.)
    #[test]
    fn unrepresentable_times_are_clamped() {
        let late = datetime!(9999-12-31 23:59:59 -23:59);
        let mut found = Vec::new();
        assert_eq!(
            validity_time(&ASN1Time::new(late), None, &mut found),
            datetime!(9999-12-31 23:59:59 UTC)
        );
        assert!(
            found.contains(&CertAnomaly::TimeUnrepresentable),
            "{found:?}"
        );
        assert!(found.contains(&CertAnomaly::TimeWithOffset), "{found:?}");
        let early = datetime!(0000-01-01 0:00 +23:59);
        let mut found = Vec::new();
        assert_eq!(
            validity_time(&ASN1Time::new(early), None, &mut found),
            datetime!(0000-01-01 0:00 UTC)
        );
        assert!(
            found.contains(&CertAnomaly::TimeUnrepresentable),
            "{found:?}"
        );
        let mut found = Vec::new();
        let fine = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(validity_time(&ASN1Time::new(fine), None, &mut found), fine);
        assert!(found.is_empty());
    }

    /// DER forbids offsets in GeneralizedTime: such a certificate is a
    /// typed parse error, not a panic.
    #[test]
    fn generalized_time_with_offset_is_a_parse_error() {
        assert!(matches!(
            analyze(&handcrafted::der(&Spec {
                not_after: (GENERALIZED, "20260401000000+2400"),
                ..Spec::default()
            })),
            Err(CertError::Parse(_))
        ));
    }

    /// The handcrafted certificates kept in `tests/regressions/cert_analyze/`
    /// (replayed by the `regressions` integration test and seeding the
    /// `cert_analyze` fuzz target). Run with `--ignored` to write them again.
    pub(crate) fn regression_certificates() -> Vec<(&'static str, Vec<u8>)> {
        let d = Spec::default;
        vec![
            ("baseline.der", handcrafted::der(&d())),
            (
                "nul-in-dns-san.der",
                handcrafted::der(&Spec {
                    dns: &[b"good.test\0.evil.test"],
                    ..d()
                }),
            ),
            (
                "nul-in-xmppaddr.der",
                handcrafted::der(&Spec {
                    xmpp_addr: &[b"a\0b.test"],
                    ..d()
                }),
            ),
            (
                "nul-in-srvid.der",
                handcrafted::der(&Spec {
                    srv_id: &[b"_xmpp-server.a\0.test"],
                    ..d()
                }),
            ),
            (
                "nul-in-subject-cn.der",
                handcrafted::der(&Spec {
                    subject_cn: b"xmpp.example.test\0evil",
                    ..d()
                }),
            ),
            (
                "nul-in-issuer-cn.der",
                handcrafted::der(&Spec {
                    issuer_cn: b"\0",
                    ..d()
                }),
            ),
            (
                "utctime-offset-plus1600.der",
                handcrafted::der(&Spec {
                    not_before: (UTC, "260101000000+1600"),
                    ..d()
                }),
            ),
            (
                "utctime-offset-plus2400.der",
                handcrafted::der(&Spec {
                    not_after: (UTC, "260401000000+2400"),
                    ..d()
                }),
            ),
            (
                "generalized-before-2050.der",
                handcrafted::der(&Spec {
                    not_after: (GENERALIZED, "20260401000000Z"),
                    ..d()
                }),
            ),
            (
                "generalized-with-offset.der",
                handcrafted::der(&Spec {
                    not_after: (GENERALIZED, "20260401000000+2400"),
                    ..d()
                }),
            ),
            (
                "nul-san-and-offset-time.der",
                handcrafted::der(&Spec {
                    issuer_cn: b"evil\0CA",
                    subject_cn: b"a\0b",
                    not_before: (UTC, "260101000000+1600"),
                    not_after: (UTC, "260401000000+2400"),
                    dns: &[b"good.test\0.evil.test", b"ok.test"],
                    xmpp_addr: &[b"\0"],
                    srv_id: &[b"_xmpp-server.\0"],
                }),
            ),
        ]
    }

    #[test]
    #[ignore = "writes tests/regressions/cert_analyze/"]
    fn write_regression_certificates() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions/cert_analyze");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, der) in regression_certificates() {
            std::fs::write(dir.join(name), der).expect("write");
        }
    }

    /// The files on disk are what the builder makes (so they stay
    /// explainable).
    #[test]
    fn regression_certificates_on_disk_match() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions/cert_analyze");
        for (name, der) in regression_certificates() {
            let on_disk = std::fs::read(dir.join(name)).expect(name);
            assert_eq!(on_disk, der, "{name}");
        }
    }

    /// The report of a certificate with a NUL in a dNSName and an offset
    /// time serialises, holds no U+0000 (raw or `\u0000`), and its times
    /// are UTC.
    #[test]
    fn report_with_hostile_certificate_serialises_without_nul() {
        let der = handcrafted::der(&Spec {
            issuer_cn: b"evil\0CA",
            subject_cn: b"a\0b",
            not_before: (UTC, "260101000000+1600"),
            not_after: (UTC, "260401000000+2400"),
            dns: &[b"good.test\0.evil.test", b"ok.test"],
            xmpp_addr: &[b"\0"],
            srv_id: &[b"_xmpp-server.\0"],
        });
        let info = analyze(&der).expect("analyse");
        let json = serde_json::to_string(&info).expect("serialisable");
        assert!(!json.contains('\0') && !json.contains("\\u0000"), "{json}");
        assert!(
            json.contains("\"not_before\":\"2025-12-31T08:00:00Z\""),
            "{json}"
        );
        assert!(
            json.contains("\"not_after\":\"2026-03-31T00:00:00Z\""),
            "{json}"
        );
        assert!(
            json.contains(
                "\"anomalies\":[\"nul_in_name\",\"time_with_offset\",\"time_outside_rfc5280_profile\"]"
            ),
            "{json}"
        );
        let back: CertInfo = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, info);
    }
}

#[cfg(test)]
#[cfg(feature = "testnet")]
mod pki_tests {
    use super::*;
    use crate::testnet::pki::{self, EkuSpec, KeySpec, LeafSpec, TestCa};
    use crate::tls::EkuClass;
    use time::macros::{date, datetime};

    fn ca(cn: &str) -> TestCa {
        crate::install_crypto_provider();
        TestCa::new(cn).expect("test CA")
    }

    #[test]
    fn rfc5280_4_2_1_12_each_eku_class() {
        let ca = ca("cert-eku CA");
        let cases = [
            (
                EkuSpec::ServerOnly,
                EkuClass::ServerOnly,
                vec!["1.3.6.1.5.5.7.3.1"],
            ),
            (
                EkuSpec::ClientAndServer,
                EkuClass::ClientAndServer,
                vec!["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
            ),
            (
                EkuSpec::ClientOnly,
                EkuClass::ClientOnly,
                vec!["1.3.6.1.5.5.7.3.2"],
            ),
            (EkuSpec::None, EkuClass::Any, vec![]),
            (EkuSpec::AnyPurpose, EkuClass::Any, vec!["2.5.29.37.0"]),
            (EkuSpec::Other, EkuClass::Other, vec!["1.3.6.1.5.5.7.3.4"]),
        ];
        for (spec, class, oids) in cases {
            let leaf = ca
                .issue(&LeafSpec {
                    eku: spec,
                    ..LeafSpec::new("eku.example.test")
                })
                .expect("leaf");
            let info = analyze(leaf.leaf()).expect("analyse");
            assert_eq!(info.eku.class, class, "{spec:?}");
            assert_eq!(info.eku.oids, oids, "{spec:?}");
            assert_eq!(info.eku.present, spec != EkuSpec::None, "{spec:?}");
        }
    }

    /// OpenSSL's client purpose (`X509_PURPOSE_SSL_CLIENT`) fails on any
    /// certificate below the anchor whose EKU lacks clientAuth.
    #[test]
    fn client_purpose_of_leaf_and_intermediates() {
        use crate::tls::ClientPurpose as P;
        use crate::tls::eku::client_purpose;
        let root = ca("purpose root");
        let analyse = |issued: &pki::IssuedCert| -> Vec<CertInfo> {
            issued
                .chain
                .iter()
                .map(|c| analyze(c).expect("analyse"))
                .collect()
        };
        let leaf = |eku| LeafSpec {
            eku,
            ..LeafSpec::new("purpose.example.test")
        };
        let cs = root.issue(&leaf(EkuSpec::ClientAndServer)).expect("leaf");
        assert_eq!(client_purpose(&analyse(&cs)), Some(P::Ok));
        let none = root.issue(&leaf(EkuSpec::None)).expect("leaf");
        assert_eq!(client_purpose(&analyse(&none)), Some(P::Ok));
        for eku in [EkuSpec::ServerOnly, EkuSpec::AnyPurpose, EkuSpec::Other] {
            let so = root.issue(&leaf(eku)).expect("leaf");
            assert_eq!(
                client_purpose(&analyse(&so)),
                Some(P::LeafLacksClientAuth),
                "{eku:?}"
            );
        }
        let mid = root.intermediate_server_only("purpose mid").expect("mid");
        let chain = mid.issue(&leaf(EkuSpec::ClientAndServer)).expect("leaf");
        assert_eq!(chain.chain.len(), 2, "leaf and intermediate presented");
        assert_eq!(
            client_purpose(&analyse(&chain)),
            Some(P::IntermediateLacksClientAuth)
        );
        // The leaf is checked first: it names the nearer fault.
        let both = mid.issue(&leaf(EkuSpec::ServerOnly)).expect("leaf");
        assert_eq!(
            client_purpose(&analyse(&both)),
            Some(P::LeafLacksClientAuth)
        );
        let le = root.lets_encrypt_like("R99-test").expect("le");
        let le_leaf = le.issue(&leaf(EkuSpec::ClientAndServer)).expect("leaf");
        assert_eq!(client_purpose(&analyse(&le_leaf)), Some(P::Ok));
        // A self-signed anchor sent along is not judged.
        let mut with_root = analyse(&chain);
        with_root.truncate(1);
        with_root.push(analyze(root.der()).expect("root"));
        assert_eq!(client_purpose(&with_root), Some(P::Ok));
        assert_eq!(client_purpose(&[]), None);
    }

    #[test]
    fn fields_of_an_issued_leaf() {
        let ca = ca("cert-fields CA");
        let spec = LeafSpec {
            not_before: datetime!(2026-01-01 00:00 UTC),
            not_after: datetime!(2026-04-01 00:00 UTC),
            ..LeafSpec::new("xmpp.example.test")
        };
        let leaf = ca.issue(&spec).expect("leaf");
        let info = analyze(leaf.leaf()).expect("analyse");
        assert_eq!(info.sha256, hex::encode(Sha256::digest(leaf.leaf())));
        assert_eq!(info.sha256.len(), 64);
        assert_eq!(info.subject, "CN=xmpp.example.test");
        assert_eq!(info.issuer, "CN=cert-fields CA,O=xmpp-survey test");
        assert!(!info.serial.is_empty());
        assert_eq!(info.not_before, spec.not_before);
        assert_eq!(info.not_after, spec.not_after);
        assert_eq!(info.key.algorithm, "ec");
        assert_eq!(info.key.bits, Some(256));
        assert_eq!(info.key.curve.as_deref(), Some("P-256"));
        assert_eq!(info.signature_algorithm, "ecdsa-with-SHA256");
        assert_eq!(info.sans.dns, vec!["xmpp.example.test".to_string()]);
        assert!(!info.is_ca);
        assert!(!info.self_signed);
        assert!(!info.lets_encrypt);
        assert_eq!(info.renews_server_only, None);

        let root = analyze(ca.der()).expect("analyse CA");
        assert!(root.is_ca);
        assert!(root.self_signed);
        assert_eq!(root.subject, root.issuer);
    }

    #[test]
    fn key_types() {
        let ca = ca("cert-keys CA");
        for (key, alg, bits, sig) in [
            (KeySpec::EcdsaP384, "ec", 384, "ecdsa-with-SHA256"),
            (KeySpec::Ed25519, "ed25519", 256, "ecdsa-with-SHA256"),
            (KeySpec::Rsa2048, "rsa", 2048, "ecdsa-with-SHA256"),
        ] {
            let leaf = ca
                .issue(&LeafSpec {
                    key,
                    ..LeafSpec::new("k.example.test")
                })
                .expect("leaf");
            let info = analyze(leaf.leaf()).expect("analyse");
            assert_eq!(info.key.algorithm, alg);
            assert_eq!(info.key.bits, Some(bits));
            // Signed by the P-256 CA whatever the leaf key.
            assert_eq!(info.signature_algorithm, sig);
        }
        let own = pki::self_signed(&LeafSpec {
            key: KeySpec::Rsa2048,
            ..LeafSpec::new("rsa.example.test")
        })
        .expect("self-signed");
        let info = analyze(own.leaf()).expect("analyse");
        assert_eq!(info.signature_algorithm, "sha256WithRSAEncryption");
        assert!(info.self_signed);
    }

    #[test]
    fn xmpp_addr_only_and_srv_id_only() {
        let ca = ca("cert-san CA");
        let x = ca
            .issue(&LeafSpec {
                xmpp_addr: vec!["chat.example.test".into()],
                ..LeafSpec::nameless()
            })
            .expect("leaf");
        let info = analyze(x.leaf()).expect("analyse");
        assert!(info.sans.dns.is_empty());
        assert_eq!(info.sans.xmpp_addr, vec!["chat.example.test".to_string()]);
        assert!(info.sans.srv_id.is_empty());

        let s = ca
            .issue(&LeafSpec {
                srv_id: vec!["_xmpp-server.chat.example.test".into()],
                ..LeafSpec::nameless()
            })
            .expect("leaf");
        let info = analyze(s.leaf()).expect("analyse");
        assert!(info.sans.dns.is_empty());
        assert!(info.sans.xmpp_addr.is_empty());
        assert_eq!(
            info.sans.srv_id,
            vec!["_xmpp-server.chat.example.test".to_string()]
        );
    }

    #[test]
    fn same_name_other_key_is_not_self_signed() {
        crate::install_crypto_provider();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "same-name");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.distinguished_name = dn.clone();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let mut leaf_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf_params.distinguished_name = dn;
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf");
        let info = analyze(leaf.der()).expect("analyse");
        assert_eq!(info.subject, info.issuer);
        assert!(!info.self_signed);
    }

    #[test]
    fn lets_encrypt_detection_and_renewal_date() {
        let root = ca("cert-le root");
        let le = root.lets_encrypt_like("R13-test").expect("LE-like");
        let spec = LeafSpec {
            eku: EkuSpec::ClientAndServer,
            not_before: datetime!(2026-01-10 00:00 UTC),
            not_after: datetime!(2026-04-10 00:00 UTC),
            ..LeafSpec::new("le.example.test")
        };
        let leaf = le.issue(&spec).expect("leaf");
        let info = analyze(leaf.leaf()).expect("analyse");
        assert!(info.lets_encrypt);
        assert_eq!(info.renews_server_only, Some(date!(2026 - 04 - 10)));
        // The LE-like intermediate is issued by the (non-LE) test root.
        let inter = analyze(&leaf.chain[1]).expect("analyse");
        assert!(!inter.lets_encrypt);
        assert_eq!(inter.renews_server_only, None);

        // Expiring before the cut-over: nothing to report.
        let early = le
            .issue(&LeafSpec {
                not_after: datetime!(2026-02-01 00:00 UTC),
                ..spec.clone()
            })
            .expect("leaf");
        assert_eq!(analyze(early.leaf()).expect("a").renews_server_only, None);
        // Already server-only.
        let so = le
            .issue(&LeafSpec {
                eku: EkuSpec::ServerOnly,
                ..spec.clone()
            })
            .expect("leaf");
        assert_eq!(analyze(so.leaf()).expect("a").renews_server_only, None);
        // Same leaf from a non-LE CA.
        let other = root.issue(&spec).expect("leaf");
        let info = analyze(other.leaf()).expect("a");
        assert!(!info.lets_encrypt);
        assert_eq!(info.renews_server_only, None);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let ca = ca("cert-trailing CA");
        let mut der = ca.der().to_vec();
        der.push(0);
        assert_eq!(analyze(&der), Err(CertError::TrailingData(1)));
    }
}
