//! Matching a certificate's identifiers against the XMPP domain
//! (RFC 6120 §13.7.1.2 and §13.7.2, RFC 6125 §6, RFC 7673).
//!
//! The reference identity is always the **XMPP domain** the probe was
//! asked about, never the SRV target host (RFC 6120 §13.7.2.1).
//!
//! Order of preference when several identifiers match (the first wins):
//! 1. [`NameMatch::DnsId`]: a dNSName equal to the domain (RFC 6125 §6.4.1);
//! 2. [`NameMatch::Wildcard`]: a `*.` dNSName covering it (RFC 6125 §6.4.3);
//! 3. [`NameMatch::XmppAddr`]: id-on-xmppAddr equal to the domain
//!    (RFC 6120 §13.7.1.4);
//! 4. [`NameMatch::SrvId`]: id-on-dnsSRV `_xmpp-client.` / `_xmpps-client.`
//!    (c2s) or `_xmpp-server.` / `_xmpps-server.` (s2s) + domain
//!    (RFC 6120 §13.7.1.2.1, RFC 7673 §3, XEP-0368);
//! 5. [`NameMatch::CommonName`]: the subject CN (reported, never trusted:
//!    RFC 6125 §6.4.4, RFC 6120 §13.7.1.2 does not allow it).
//!
//! DNS-IDs come first because webpki can verify them itself; XmppAddr and
//! SRV-ID are the XMPP-only identifiers that a plain HTTPS client ignores,
//! so reporting them only when no DNS-ID matches keeps that case visible.

use super::{CertInfo, NameMatch, cert};
use crate::xmpp::Service;

/// Which identifier of `cert` matches `domain` for `service`, in the order
/// of preference documented on this module. Comparison is ASCII
/// case-insensitive (Unicode lower-casing for xmppAddr) and ignores one
/// trailing dot.
pub fn match_domain(cert: &CertInfo, domain: &str, service: Service) -> NameMatch {
    let domain = normalize(domain);
    if domain.is_empty() {
        return NameMatch::None;
    }
    if cert.sans.dns.iter().any(|d| normalize(d) == domain) {
        return NameMatch::DnsId;
    }
    if cert.sans.dns.iter().any(|d| wildcard_matches(d, &domain)) {
        return NameMatch::Wildcard;
    }
    if cert.sans.xmpp_addr.iter().any(|x| normalize(x) == domain) {
        return NameMatch::XmppAddr;
    }
    if cert
        .sans
        .srv_id
        .iter()
        .any(|s| srv_id_matches(s, &domain, service))
    {
        return NameMatch::SrvId;
    }
    if cert::rfc4514_values(&cert.subject, "CN")
        .iter()
        .any(|cn| normalize(cn) == domain || wildcard_matches(cn, &domain))
    {
        return NameMatch::CommonName;
    }
    NameMatch::None
}

/// Whether a [`NameMatch`] counts as the certificate naming the domain:
/// everything except `CommonName` and `None`.
pub fn is_trusted_match(m: NameMatch) -> bool {
    !matches!(m, NameMatch::CommonName | NameMatch::None)
}

/// Lower-case and strip one trailing dot (RFC 6125 §6.4.1 compares DNS
/// labels case-insensitively; an absolute name's final dot is not part of it).
///
/// Not [`crate::model::domain::fold`] nor
/// [`crate::model::domain::DomainName::parse`], on purpose: a
/// certificate's presented identifier is compared as written (no
/// trimming, exactly one final dot dropped, wildcards kept), so that a
/// name with stray whitespace or dots never matches.
fn normalize(s: &str) -> String {
    s.strip_suffix('.').unwrap_or(s).to_lowercase()
}

/// RFC 6125 §6.4.3, restricted as webpki and most XMPP servers do: the
/// wildcard must be the entire leftmost label (`*.`), it stands for exactly
/// one non-empty label, it never matches the bare parent, and the parent
/// must have at least two labels (no `*.com`).
fn wildcard_matches(pattern: &str, domain: &str) -> bool {
    let pattern = normalize(pattern);
    let Some(parent) = pattern.strip_prefix("*.") else {
        return false;
    };
    if parent.is_empty() || parent.contains('*') || !parent.contains('.') {
        return false;
    }
    match domain.split_once('.') {
        Some((first, rest)) => !first.is_empty() && rest == parent,
        None => false,
    }
}

/// SRV-ID per RFC 4985 §2 (`_Service.Name`) with the XMPP service names of
/// RFC 6120 §3.2.1 and XEP-0368 (`xmpps-*` for direct TLS). The service
/// label is compared case-insensitively, the name like a DNS-ID.
fn srv_id_matches(srv_id: &str, domain: &str, service: Service) -> bool {
    let srv_id = normalize(srv_id);
    let prefixes: &[&str] = match service {
        Service::C2s => &["_xmpp-client.", "_xmpps-client."],
        Service::S2s => &["_xmpp-server.", "_xmpps-server."],
    };
    prefixes
        .iter()
        .any(|p| srv_id.strip_prefix(p) == Some(domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{Eku, EkuClass, KeyInfo, Sans};
    use time::OffsetDateTime;

    fn info(sans: Sans, subject: &str) -> CertInfo {
        CertInfo {
            sha256: String::new(),
            subject: subject.into(),
            issuer: String::new(),
            serial: String::new(),
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH,
            key: KeyInfo {
                algorithm: "ec".into(),
                bits: None,
                curve: None,
            },
            signature_algorithm: String::new(),
            sans,
            eku: Eku {
                present: false,
                server_auth: false,
                client_auth: false,
                any: false,
                oids: vec![],
                class: EkuClass::Any,
            },
            is_ca: false,
            self_signed: false,
            lets_encrypt: false,
            renews_server_only: None,
            anomalies: Vec::new(),
        }
    }

    fn dns(names: &[&str]) -> CertInfo {
        info(
            Sans {
                dns: names.iter().map(|s| s.to_string()).collect(),
                ..Sans::default()
            },
            "",
        )
    }

    #[test]
    fn rfc6125_6_4_1_exact_dns_id_case_and_dot() {
        let c = dns(&["XMPP.Example.ORG."]);
        assert_eq!(
            match_domain(&c, "xmpp.example.org", Service::S2s),
            NameMatch::DnsId
        );
        assert_eq!(
            match_domain(&c, "xmpp.example.org.", Service::C2s),
            NameMatch::DnsId
        );
        assert_eq!(
            match_domain(&c, "example.org", Service::C2s),
            NameMatch::None
        );
        assert_eq!(match_domain(&c, "", Service::C2s), NameMatch::None);
    }

    #[test]
    fn rfc6125_6_4_3_wildcard_rules() {
        let c = dns(&["*.example.org"]);
        assert_eq!(
            match_domain(&c, "chat.example.org", Service::C2s),
            NameMatch::Wildcard
        );
        assert_eq!(
            match_domain(&c, "CHAT.example.ORG", Service::C2s),
            NameMatch::Wildcard
        );
        // Never the bare parent, never two labels.
        assert_eq!(
            match_domain(&c, "example.org", Service::C2s),
            NameMatch::None
        );
        assert_eq!(
            match_domain(&c, "a.b.example.org", Service::C2s),
            NameMatch::None
        );
        // Partial-label and non-leftmost wildcards, and `*.tld`, are refused.
        assert_eq!(
            match_domain(&dns(&["c*.example.org"]), "chat.example.org", Service::C2s),
            NameMatch::None
        );
        assert_eq!(
            match_domain(&dns(&["chat.*.org"]), "chat.example.org", Service::C2s),
            NameMatch::None
        );
        assert_eq!(
            match_domain(&dns(&["*.org"]), "example.org", Service::C2s),
            NameMatch::None
        );
        // An exact DNS-ID is preferred over a wildcard.
        let both = dns(&["*.example.org", "chat.example.org"]);
        assert_eq!(
            match_domain(&both, "chat.example.org", Service::C2s),
            NameMatch::DnsId
        );
    }

    #[test]
    fn rfc6120_13_7_1_4_xmpp_addr() {
        let c = info(
            Sans {
                xmpp_addr: vec!["Example.org".into(), "user@other.org".into()],
                ..Sans::default()
            },
            "",
        );
        assert_eq!(
            match_domain(&c, "example.org", Service::S2s),
            NameMatch::XmppAddr
        );
        assert_eq!(match_domain(&c, "other.org", Service::S2s), NameMatch::None);
    }

    #[test]
    fn rfc7673_srv_id_per_service() {
        let c = info(
            Sans {
                srv_id: vec!["_xmpp-server.example.org".into()],
                ..Sans::default()
            },
            "",
        );
        assert_eq!(
            match_domain(&c, "example.org", Service::S2s),
            NameMatch::SrvId
        );
        assert_eq!(
            match_domain(&c, "example.org", Service::C2s),
            NameMatch::None
        );
        let c = info(
            Sans {
                srv_id: vec!["_XMPPS-client.example.org".into()],
                ..Sans::default()
            },
            "",
        );
        assert_eq!(
            match_domain(&c, "example.org", Service::C2s),
            NameMatch::SrvId
        );
        assert_eq!(
            match_domain(&c, "example.org", Service::S2s),
            NameMatch::None
        );
        assert_eq!(match_domain(&c, "other.org", Service::C2s), NameMatch::None);
    }

    #[test]
    fn rfc6125_6_4_4_common_name_reported_not_trusted() {
        let c = info(Sans::default(), "CN=example.org,O=Test");
        let m = match_domain(&c, "example.org", Service::C2s);
        assert_eq!(m, NameMatch::CommonName);
        assert!(!is_trusted_match(m));
        assert!(is_trusted_match(NameMatch::XmppAddr));
    }
}
