//! Per-domain changes between two crawls (issue 12, MEASUREMENTS §4
//! "the domains whose verdict changed since the previous crawl"): the
//! typed state of a domain in one crawl ([`DomainState`]) and the pure
//! diff of two of them ([`diff`]). The store fills `domain_changes` from
//! it when a crawl finishes; the report, lookup and web only read.

use crate::model::acceptance::AcceptanceVerdict;
use crate::model::names::Named;
use crate::tls::EkuClass;
use crate::xmpp::features::StarttlsOffer;
use serde::{Deserialize, Serialize};
use time::Date;

/// What changed about a domain between the previous crawl and this one.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChangeKind {
    /// The acceptance verdict (MEASUREMENTS §3) differs.
    Verdict,
    /// The EKU class of the primary end-entity certificate differs
    /// (e.g. a `client_and_server` certificate renewed as `server_only`).
    EkuClass,
    /// The STARTTLS offer (required / optional / absent) differs.
    Starttls,
    /// The server software or its version (XEP-0092) differs.
    SoftwareVersion,
    /// The primary end-entity certificate was replaced (another SHA-256).
    CertificateRenewed,
    /// The domain is in this crawl but was not in the previous one.
    Appeared,
    /// The domain was in the previous crawl but is not in this one.
    Disappeared,
}

/// Which part of a domain a change is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChangeScope {
    /// The whole domain (verdict, software, appeared, disappeared).
    Domain,
    /// Client-to-server.
    C2s,
    /// Server-to-server.
    S2s,
}

/// The end-entity certificate a service presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafCert {
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    /// Its notAfter date.
    pub not_after: Date,
}

impl LeafCert {
    /// How a change list shows it: notAfter and the hash's first 12 digits.
    pub fn describe(&self) -> String {
        let short: String = self.sha256.chars().take(12).collect();
        format!("{} ({short})", self.not_after)
    }
}

/// One service's comparable state; `None` where it was not observed
/// (no TLS, no pre-TLS features).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceState {
    /// EKU class of the primary end-entity certificate.
    pub eku_class: Option<EkuClass>,
    /// STARTTLS offer of the first endpoint that showed pre-TLS features.
    pub starttls: Option<StarttlsOffer>,
    /// The primary end-entity certificate.
    pub leaf: Option<LeafCert>,
}

/// A domain's comparable state in one crawl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainState {
    /// Acceptance verdict.
    pub verdict: AcceptanceVerdict,
    /// Client-to-server.
    pub c2s: ServiceState,
    /// Server-to-server.
    pub s2s: ServiceState,
    /// Software name and version (XEP-0092), when the server answered.
    pub software: Option<(String, Option<String>)>,
}

/// One change of one domain; `before`/`after` are what a reader sees
/// (`None`: nothing to show, e.g. for appeared/disappeared).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// Where.
    pub scope: ChangeScope,
    /// The previous crawl's value.
    pub before: Option<String>,
    /// This crawl's value.
    pub after: Option<String>,
}

impl Change {
    /// `appeared` or `disappeared`: the domain as a whole, no values.
    pub fn presence(kind: ChangeKind) -> Self {
        Self {
            kind,
            scope: ChangeScope::Domain,
            before: None,
            after: None,
        }
    }
}

fn software_text(s: &(String, Option<String>)) -> String {
    match &s.1 {
        Some(v) => format!("{} {v}", s.0),
        None => s.0.clone(),
    }
}

/// The changes of one domain between the previous crawl and this one.
///
/// Rules (why): the verdict is always compared, since `unreachable` is a
/// verdict too. Everything else is compared only when observed in both
/// crawls: a service that did not complete TLS this week says nothing
/// about its certificate, and a server that did not answer the version
/// query has not changed its software. A new certificate is
/// `certificate_renewed` even when its EKU class changed as well (both
/// rows appear).
pub fn diff(previous: Option<&DomainState>, current: Option<&DomainState>) -> Vec<Change> {
    let change = |kind, scope, before: Option<String>, after: Option<String>| Change {
        kind,
        scope,
        before,
        after,
    };
    let (p, c) = match (previous, current) {
        (None, None) => return vec![],
        (None, Some(_)) => return vec![Change::presence(ChangeKind::Appeared)],
        (Some(_), None) => return vec![Change::presence(ChangeKind::Disappeared)],
        (Some(p), Some(c)) => (p, c),
    };
    let mut out = Vec::new();
    if p.verdict != c.verdict {
        out.push(change(
            ChangeKind::Verdict,
            ChangeScope::Domain,
            Some(p.verdict.as_str().into()),
            Some(c.verdict.as_str().into()),
        ));
    }
    if let (Some(a), Some(b)) = (&p.software, &c.software)
        && a != b
    {
        out.push(change(
            ChangeKind::SoftwareVersion,
            ChangeScope::Domain,
            Some(software_text(a)),
            Some(software_text(b)),
        ));
    }
    for (scope, a, b) in [
        (ChangeScope::C2s, &p.c2s, &c.c2s),
        (ChangeScope::S2s, &p.s2s, &c.s2s),
    ] {
        if let (Some(x), Some(y)) = (a.eku_class, b.eku_class)
            && x != y
        {
            out.push(change(
                ChangeKind::EkuClass,
                scope,
                Some(x.as_str().into()),
                Some(y.as_str().into()),
            ));
        }
        if let (Some(x), Some(y)) = (a.starttls, b.starttls)
            && x != y
        {
            out.push(change(
                ChangeKind::Starttls,
                scope,
                Some(x.as_str().into()),
                Some(y.as_str().into()),
            ));
        }
        if let (Some(x), Some(y)) = (&a.leaf, &b.leaf)
            && x.sha256 != y.sha256
        {
            out.push(change(
                ChangeKind::CertificateRenewed,
                scope,
                Some(x.describe()),
                Some(y.describe()),
            ));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn state() -> DomainState {
        let svc = |sha: &str| ServiceState {
            eku_class: Some(EkuClass::ClientAndServer),
            starttls: Some(StarttlsOffer::Required),
            leaf: Some(LeafCert {
                sha256: sha.repeat(64),
                not_after: date!(2027 - 03 - 01),
            }),
        };
        DomainState {
            verdict: AcceptanceVerdict::RejectsServerOnlyDialback,
            c2s: svc("a"),
            s2s: svc("a"),
            software: Some(("ejabberd".into(), Some("24.12".into()))),
        }
    }

    fn kinds(v: &[Change]) -> Vec<(&'static str, &'static str)> {
        v.iter()
            .map(|c| (c.kind.as_str(), c.scope.as_str()))
            .collect()
    }

    #[test]
    fn the_same_state_has_no_changes() {
        let s = state();
        assert_eq!(diff(Some(&s), Some(&s)), vec![]);
        assert_eq!(diff(None, None), vec![]);
    }

    #[test]
    fn appeared_and_disappeared() {
        let s = state();
        assert_eq!(kinds(&diff(None, Some(&s))), [("appeared", "domain")]);
        assert_eq!(kinds(&diff(Some(&s), None)), [("disappeared", "domain")]);
    }

    #[test]
    fn upgrade_changes_verdict_and_software() {
        let p = state();
        let mut c = state();
        c.verdict = AcceptanceVerdict::AcceptsServerOnly;
        c.software = Some(("ejabberd".into(), Some("25.08".into())));
        let d = diff(Some(&p), Some(&c));
        assert_eq!(
            d,
            vec![
                Change {
                    kind: ChangeKind::Verdict,
                    scope: ChangeScope::Domain,
                    before: Some("rejects_server_only_dialback".into()),
                    after: Some("accepts_server_only".into()),
                },
                Change {
                    kind: ChangeKind::SoftwareVersion,
                    scope: ChangeScope::Domain,
                    before: Some("ejabberd 24.12".into()),
                    after: Some("ejabberd 25.08".into()),
                },
            ]
        );
    }

    #[test]
    fn renewal_as_server_only_is_an_eku_change_and_a_renewal() {
        let p = state();
        let mut c = state();
        c.s2s.eku_class = Some(EkuClass::ServerOnly);
        c.s2s.leaf = Some(LeafCert {
            sha256: "b".repeat(64),
            not_after: date!(2027 - 06 - 01),
        });
        let d = diff(Some(&p), Some(&c));
        assert_eq!(
            kinds(&d),
            [("eku_class", "s2s"), ("certificate_renewed", "s2s")]
        );
        assert_eq!(d[1].before.as_deref(), Some("2027-03-01 (aaaaaaaaaaaa)"));
        assert_eq!(d[1].after.as_deref(), Some("2027-06-01 (bbbbbbbbbbbb)"));
    }

    #[test]
    fn starttls_per_service() {
        let p = state();
        let mut c = state();
        c.c2s.starttls = Some(StarttlsOffer::Optional);
        let d = diff(Some(&p), Some(&c));
        assert_eq!(kinds(&d), [("starttls", "c2s")]);
        assert_eq!(d[0].before.as_deref(), Some("required"));
        assert_eq!(d[0].after.as_deref(), Some("optional"));
    }

    #[test]
    fn unobserved_values_are_not_changes_but_the_verdict_is() {
        let p = state();
        let mut c = state();
        c.verdict = AcceptanceVerdict::Unreachable;
        c.s2s = ServiceState::default();
        c.software = None;
        assert_eq!(kinds(&diff(Some(&p), Some(&c))), [("verdict", "domain")]);
        // And back: nothing but the verdict either.
        assert_eq!(kinds(&diff(Some(&c), Some(&p))), [("verdict", "domain")]);
    }

    #[test]
    fn software_name_without_version() {
        let p = state();
        let mut c = state();
        c.software = Some(("Prosody".into(), None));
        let d = diff(Some(&p), Some(&c));
        assert_eq!(d[0].after.as_deref(), Some("Prosody"));
    }
}
