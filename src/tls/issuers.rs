//! Known issuers and their clientAuth policies (MEASUREMENTS §2,
//! "will renew as server-only").
//!
//! Why: a `client_and_server` certificate today says little about next
//! quarter. If its CA has stopped putting clientAuth into new certificates,
//! the server's next renewal will be `server_only`, and every peer that
//! demands clientAuth on s2s (XEP-0178 §3) will then refuse it. The table
//! below lets the survey report *when* that happens for each certificate.
//!
//! To add a CA: add a matcher function and one [`CaPolicy`] entry to
//! [`POLICIES`], citing the CA's announcement in its doc comment.

use time::macros::date;
use time::{Date, OffsetDateTime};

use super::EkuClass;

/// The parts of an issuer DN that issuer detection looks at (RFC 5280 §4.1.2.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerName {
    /// organizationName (2.5.4.10) values.
    pub organization: Vec<String>,
    /// commonName (2.5.4.3) values.
    pub common_name: Vec<String>,
}

/// A CA's announced clientAuth policy.
#[derive(Debug, Clone, Copy)]
pub struct CaPolicy {
    /// Short name, for reports.
    pub name: &'static str,
    /// Whether a certificate with this issuer DN comes from this CA.
    pub matcher: fn(&IssuerName) -> bool,
    /// First day on which the CA's *default* issuance no longer includes
    /// clientAuth. A renewal done with default settings on or after this day
    /// is server-only.
    pub client_auth_dropped_on: Date,
    /// First day on which no clientAuth certificate can be obtained at all,
    /// even by opting in.
    pub client_auth_unobtainable_on: Date,
    /// Where the dates come from.
    pub source: &'static str,
}

/// Let's Encrypt: "Ending TLS Client Authentication Certificate Support in
/// 2026", <https://letsencrypt.org/2025/05/14/ending-tls-client-authentication/>:
/// the default `classic` ACME profile drops the clientAuth EKU on
/// 2026-02-11; the opt-in `tlsclient` profile is no longer available from
/// 2026-05-13. The Generation Y intermediates (YE1–YE3, YR1–YR3,
/// <https://letsencrypt.org/2025/11/24/gen-y-hierarchy.html>) cannot issue
/// clientAuth at all.
pub const LETS_ENCRYPT: CaPolicy = CaPolicy {
    name: "Let's Encrypt",
    matcher: is_lets_encrypt,
    client_auth_dropped_on: date!(2026 - 02 - 11),
    client_auth_unobtainable_on: date!(2026 - 05 - 13),
    source: "https://letsencrypt.org/2025/05/14/ending-tls-client-authentication/",
};

/// Every CA with a known clientAuth cut-over. First match wins.
pub const POLICIES: &[CaPolicy] = &[LETS_ENCRYPT];

/// Issuer organisation names used by Let's Encrypt / ISRG intermediates
/// (<https://letsencrypt.org/certificates/>).
const LE_ORGANIZATIONS: &[&str] = &["Let's Encrypt", "ISRG", "Internet Security Research Group"];

/// Let's Encrypt intermediate CNs, used when the issuer has no O attribute:
/// the 2024 set (R10–R14, E5–E9) and the 2025 Generation Y set.
const LE_INTERMEDIATE_CNS: &[&str] = &[
    "R10", "R11", "R12", "R13", "R14", "E5", "E6", "E7", "E8", "E9", "YE1", "YE2", "YE3", "YR1",
    "YR2", "YR3",
];

/// Whether an issuer DN is a Let's Encrypt intermediate: organisation
/// "Let's Encrypt" (or ISRG), or, lacking any O, one of the known
/// intermediate CNs.
pub fn is_lets_encrypt(issuer: &IssuerName) -> bool {
    if issuer
        .organization
        .iter()
        .any(|o| LE_ORGANIZATIONS.contains(&o.as_str()))
    {
        return true;
    }
    issuer.organization.is_empty()
        && issuer
            .common_name
            .iter()
            .any(|cn| LE_INTERMEDIATE_CNS.contains(&cn.as_str()))
}

/// The policy of the CA that issued a certificate, if known.
pub fn policy_for(issuer: &IssuerName) -> Option<&'static CaPolicy> {
    POLICIES.iter().find(|p| (p.matcher)(issuer))
}

/// MEASUREMENTS §2 "will renew as server-only".
///
/// Applies to a non-CA certificate of class `client_and_server` whose issuer
/// has a [`CaPolicy`] and whose notAfter is after the policy's
/// `client_auth_dropped_on`: its replacement has to be issued by notAfter at
/// the latest, and with default settings it will then be server-only.
///
/// Returned date (a documented choice): the **notAfter date**, i.e. the last
/// day the current certificate still works and so the latest day by which
/// the server is presenting a server-only certificate. Earlier renewals
/// (certbot renews ~30 days before expiry) only move the change forward.
pub fn renews_server_only(
    issuer: &IssuerName,
    class: EkuClass,
    is_ca: bool,
    not_after: OffsetDateTime,
) -> Option<Date> {
    if is_ca || class != EkuClass::ClientAndServer {
        return None;
    }
    let policy = policy_for(issuer)?;
    (not_after.date() > policy.client_auth_dropped_on).then(|| not_after.date())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn le() -> IssuerName {
        IssuerName {
            organization: vec!["Let's Encrypt".into()],
            common_name: vec!["R13".into()],
        }
    }

    #[test]
    fn le_detection() {
        assert!(is_lets_encrypt(&le()));
        let isrg = IssuerName {
            organization: vec!["ISRG".into()],
            common_name: vec!["YE2".into()],
        };
        assert!(is_lets_encrypt(&isrg));
        let cn_only = IssuerName {
            organization: vec![],
            common_name: vec!["E7".into()],
        };
        assert!(is_lets_encrypt(&cn_only));
        let other = IssuerName {
            organization: vec!["Other CA".into()],
            common_name: vec!["R10".into()],
        };
        assert!(!is_lets_encrypt(&other));
        assert!(!is_lets_encrypt(&IssuerName::default()));
    }

    #[test]
    fn le_dates() {
        assert_eq!(
            LETS_ENCRYPT.client_auth_dropped_on,
            time::macros::date!(2026 - 02 - 11)
        );
        assert_eq!(
            LETS_ENCRYPT.client_auth_unobtainable_on,
            time::macros::date!(2026 - 05 - 13)
        );
    }

    #[test]
    fn renews_server_only_rule() {
        let late = datetime!(2026-04-01 12:00 UTC);
        assert_eq!(
            renews_server_only(&le(), EkuClass::ClientAndServer, false, late),
            Some(time::macros::date!(2026 - 04 - 01))
        );
        // Expiring before the cut-over: its successor may still carry clientAuth.
        let early = datetime!(2026-02-10 12:00 UTC);
        assert_eq!(
            renews_server_only(&le(), EkuClass::ClientAndServer, false, early),
            None
        );
        // Already server-only, CA certificates, unknown CAs: nothing to report.
        assert_eq!(
            renews_server_only(&le(), EkuClass::ServerOnly, false, late),
            None
        );
        assert_eq!(
            renews_server_only(&le(), EkuClass::ClientAndServer, true, late),
            None
        );
        assert_eq!(
            renews_server_only(
                &IssuerName::default(),
                EkuClass::ClientAndServer,
                false,
                late
            ),
            None
        );
    }
}
