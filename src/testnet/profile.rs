//! Testnet profiles: each simulated domain's behaviour *and* the expected
//! value of every fact the probe measures, derived from one declaration
//! (TESTNET.md: "a new behaviour is one entry, not three edits").
//!
//! A [`Profile`] is plain data: a DNS shape, a certificate shape and, per
//! service, a TCP/stream/TLS shape. [`crate::testnet::expect`] turns a
//! placed profile into expectations; [`crate::testnet::server`] plays it.

use crate::xmpp::features::StarttlsOffer;

/// How the domain appears in DNS (RFC 6120 §3.2, XEP-0368, RFC 7673).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsShape {
    /// `_xmpp-client` and `_xmpp-server` SRV → `xmpp.DOMAIN` → A.
    Srv,
    /// As `Srv`, plus `_xmpps-client`/`_xmpps-server` SRV on 5223/5270 (XEP-0368).
    SrvAndDirectTls,
    /// No SRV at all: the domain's own A record (RFC 6120 §3.2.2 fallback).
    NoSrv,
    /// `_xmpp-client` SRV target `.`: c2s decidedly not offered; s2s by SRV.
    C2sDeclined,
    /// Two s2s SRV targets: priority 0 points at an address where nothing
    /// listens, priority 10 at the real server.
    FirstTargetDown,
    /// SRV targets are CNAMEs chained twice before the A record.
    CnameChain,
    /// The SRV target has only an AAAA record (`::1`, on a port of its own).
    AaaaOnly,
    /// As `Srv`, with a DANE-EE TLSA record matching the s2s certificate.
    Tlsa,
    /// As `Srv`, answered with the AD bit (a validating resolver's view).
    Secure,
    /// Nothing exists under the domain: NXDOMAIN.
    NxDomain,
    /// Every question about the domain answers SERVFAIL.
    ServFail,
    /// Every question about the domain goes unanswered.
    Timeout,
}

/// The server certificate the domain presents (MEASUREMENTS §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertShape {
    /// EKU serverAuth + clientAuth, DNS-ID for the domain, from the test CA.
    ClientAndServer,
    /// EKU serverAuth only (Let's Encrypt's default since 2026-02-11).
    ServerOnly,
    /// EKU clientAuth only.
    ClientOnly,
    /// No EKU extension.
    NoEku,
    /// Expired a month ago.
    Expired,
    /// Valid from next month.
    NotYetValid,
    /// Self-signed, not from any CA.
    SelfSigned,
    /// From a CA the probe does not trust.
    UnknownIssuer,
    /// The domain only in id-on-xmppAddr (RFC 6120 §13.7.1.4).
    XmppAddrOnly,
    /// The domain only in id-on-dnsSRV (RFC 7673 / RFC 6120 §13.7.1.2.1).
    SrvIdOnly,
    /// `*.PARENT` covering the domain.
    Wildcard,
    /// Names another domain.
    WrongName,
    /// Issued by an intermediate the server does not send.
    MissingIntermediate,
    /// Issued by an intermediate whose own EKU lacks clientAuth.
    IntermediateServerOnly,
    /// client_and_server from an issuer named like Let's Encrypt's:
    /// "will renew as server-only".
    LetsEncryptClientAndServer,
    /// server_only from a Let's Encrypt-like issuer.
    LetsEncryptServerOnly,
    /// client_and_server whose notAfter is a UTCTime with a `+1600`
    /// offset (outside RFC 5280 §4.1.2.5.1): stored in UTC and flagged.
    OffsetTime,
    /// client_and_server with a second dNSName holding U+0000: stored
    /// escaped and flagged, never as NUL (PostgreSQL refuses it in jsonb).
    NulInSan,
}

/// TCP-level behaviour of one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tcp {
    /// Accept and speak XMPP per the [`StreamShape`].
    Serve,
    /// Nothing listens: connection refused.
    Refused,
    /// Accept, then never send a byte (slowloris).
    Silent,
    /// Accept, then reset the connection when TLS should start.
    ResetAtTls,
}

/// What the server does with the stream before TLS (RFC 6120 §4–§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTls {
    /// Header with version 1.0, then features per [`StreamShape`].
    Normal,
    /// Features written in 1–3-byte TCP segments.
    Split,
    /// Header without `version` (pre-XMPP 1.0).
    NoVersion,
    /// `<stream:error><host-unknown/>` instead of features.
    HostUnknown,
    /// Features padded past the probe's byte cap.
    Huge,
    /// Features nested past the probe's depth cap.
    Deep,
    /// Not well-formed XML in the features.
    InvalidXml,
    /// A DOCTYPE with an entity declaration before the header.
    Doctype,
    /// `<proceed/>` followed by plaintext features in the same segment.
    InjectAfterProceed,
    /// Features with U+0000 in an attribute value (not a legal XML
    /// character, XML 1.0 §2.2).
    NulInFeatures,
    /// `<failure/>` in answer to `<starttls/>`.
    StarttlsFailure,
}

/// Which TLS versions the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersions {
    /// 1.2 and 1.3 (rustls default): 1.3 is negotiated.
    Both,
    /// TLS 1.2 only.
    Tls12Only,
}

/// How an s2s server treats the certificate a peer presents as TLS client
/// (TESTNET.md "Acceptance of the probe's certificate", MEASUREMENTS §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertPolicy {
    /// Requests a certificate, validates it *as a server certificate*
    /// against its roots (Prosody's behaviour); EXTERNAL succeeds when it is
    /// trusted and names the peer.
    Lenient,
    /// Requests a certificate, accepts it at the TLS layer, but EXTERNAL
    /// requires clientAuth: `not-authorized` + "unsupported certificate
    /// purpose" (ejabberd before 25.08).
    StrictEku,
    /// Never sends a CertificateRequest; EXTERNAL is never offered.
    NoRequest,
    /// Requests a certificate and aborts the handshake with a fatal alert
    /// when a presented one lacks clientAuth (a strict OpenSSL verify).
    HandshakeReject,
    /// Requests a certificate but trusts no probe CA: EXTERNAL always
    /// fails `not-authorized` ("certificate not trusted").
    Untrusting,
}

/// One service's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamShape {
    /// TCP behaviour.
    pub tcp: Tcp,
    /// Pre-TLS stream behaviour.
    pub pre_tls: PreTls,
    /// STARTTLS offer before TLS.
    pub starttls: StarttlsOffer,
    /// SASL mechanisms before TLS.
    pub sasl_before: &'static [&'static str],
    /// iq-auth before TLS.
    pub iq_auth: bool,
    /// Caps node advertised (before and after TLS).
    pub caps_node: Option<&'static str>,
    /// SASL mechanisms after TLS.
    pub sasl_after: &'static [&'static str],
    /// Dialback offered (before and after TLS; s2s).
    pub dialback: bool,
    /// Bidi offered after TLS (s2s).
    pub bidi: bool,
    /// TLS versions spoken.
    pub tls: TlsVersions,
    /// Send a CertificateRequest (optional client auth).
    pub request_client_cert: bool,
    /// What the server makes of a presented client certificate (s2s).
    pub client_certs: ClientCertPolicy,
    /// XEP-0092 name and version it reports once a peer is authenticated.
    pub software: (&'static str, &'static str),
    /// Breaks SASL on purpose (s2s acceptance hostile profiles).
    pub hostile_sasl: Option<crate::testnet::hostile::HostileSasl>,
    /// Refuses a peer that presented no certificate, after TLS, with
    /// `<not-authorized/>` (Prosody's `s2s_secure_auth = true`, Debian's
    /// default).
    pub secure_auth: bool,
    /// Answers the ping (XEP-0199) with `service-unavailable`.
    pub refuse_ping: bool,
    /// Answers the version query (XEP-0092) with `service-unavailable`
    /// (servers that hide their software).
    pub refuse_version: bool,
}

/// A server that requires STARTTLS and offers SCRAM after TLS.
pub const C2S_GOOD: StreamShape = StreamShape {
    tcp: Tcp::Serve,
    pre_tls: PreTls::Normal,
    starttls: StarttlsOffer::Required,
    sasl_before: &[],
    iq_auth: false,
    caps_node: Some("https://xmpp-survey.test/testnet"),
    sasl_after: &["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"],
    dialback: false,
    bidi: false,
    tls: TlsVersions::Both,
    request_client_cert: false,
    client_certs: ClientCertPolicy::NoRequest,
    software: ("xmpp-survey testnet", "1.0"),
    hostile_sasl: None,
    secure_auth: false,
    refuse_ping: false,
    refuse_version: false,
};

/// An s2s endpoint that requires STARTTLS and offers EXTERNAL and dialback.
pub const S2S_GOOD: StreamShape = StreamShape {
    tcp: Tcp::Serve,
    pre_tls: PreTls::Normal,
    starttls: StarttlsOffer::Required,
    sasl_before: &[],
    iq_auth: false,
    caps_node: None,
    sasl_after: &["EXTERNAL"],
    dialback: true,
    bidi: false,
    tls: TlsVersions::Both,
    request_client_cert: true,
    client_certs: ClientCertPolicy::Lenient,
    software: ("xmpp-survey testnet", "1.0"),
    hostile_sasl: None,
    secure_auth: false,
    refuse_ping: false,
    refuse_version: false,
};

/// An acceptance profile's s2s behaviour (TESTNET.md acceptance group).
const fn accepting(
    client_certs: ClientCertPolicy,
    dialback: bool,
    software: (&'static str, &'static str),
) -> StreamShape {
    let external: &'static [&'static str] = match client_certs {
        ClientCertPolicy::NoRequest => &[],
        _ => &["EXTERNAL"],
    };
    StreamShape {
        sasl_after: external,
        dialback,
        request_client_cert: !matches!(client_certs, ClientCertPolicy::NoRequest),
        client_certs,
        software,
        ..S2S_GOOD
    }
}

const fn acceptance(name: &'static str, s2s: StreamShape) -> Profile {
    Profile {
        name,
        weight: 3,
        dns: DnsShape::Srv,
        cert: CertShape::ClientAndServer,
        c2s: C2S_GOOD,
        s2s: Some(s2s),
    }
}

/// One testnet profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Name, used in domain names (with `_` as `-`) and in the manifest.
    pub name: &'static str,
    /// Relative weight in the mix.
    pub weight: u32,
    /// DNS shape.
    pub dns: DnsShape,
    /// Certificate shape (both services present the same certificate).
    pub cert: CertShape,
    /// c2s behaviour.
    pub c2s: StreamShape,
    /// s2s behaviour; `None`: nothing listens on the s2s port.
    pub s2s: Option<StreamShape>,
}

impl Profile {
    /// Whether the profile needs an address of its own: its behaviour starts
    /// before the client's stream header tells a shared host which domain
    /// is meant (refused/silent/reset ports, DOCTYPE before the header, no
    /// s2s port at all), or DNS points at special addresses.
    pub fn dedicated(&self) -> bool {
        let odd = |s: &StreamShape| s.tcp != Tcp::Serve || s.pre_tls == PreTls::Doctype;
        odd(&self.c2s)
            || self.s2s.as_ref().is_none_or(odd)
            || matches!(self.dns, DnsShape::AaaaOnly)
    }
}

const fn with_cert(name: &'static str, weight: u32, cert: CertShape) -> Profile {
    Profile {
        name,
        weight,
        dns: DnsShape::Srv,
        cert,
        c2s: C2S_GOOD,
        s2s: Some(S2S_GOOD),
    }
}

const fn with_dns(name: &'static str, weight: u32, dns: DnsShape) -> Profile {
    Profile {
        name,
        weight,
        dns,
        cert: CertShape::ClientAndServer,
        c2s: C2S_GOOD,
        s2s: Some(S2S_GOOD),
    }
}

const fn with_c2s(name: &'static str, weight: u32, c2s: StreamShape) -> Profile {
    Profile {
        name,
        weight,
        dns: DnsShape::Srv,
        cert: CertShape::ClientAndServer,
        c2s,
        s2s: Some(S2S_GOOD),
    }
}

const fn pre(pre_tls: PreTls) -> StreamShape {
    StreamShape {
        pre_tls,
        ..C2S_GOOD
    }
}

/// Every profile of issue "Probe engine and local test federation"
/// (TESTNET.md, all but the acceptance group).
pub const PROFILES: &[Profile] = &[
    // Transport and DNS.
    with_dns("srv_ok", 20, DnsShape::Srv),
    with_dns("direct_tls", 6, DnsShape::SrvAndDirectTls),
    with_dns("no_srv", 6, DnsShape::NoSrv),
    with_dns("c2s_declined", 3, DnsShape::C2sDeclined),
    with_dns("first_target_down", 3, DnsShape::FirstTargetDown),
    with_dns("cname_chain", 3, DnsShape::CnameChain),
    with_dns("aaaa_only", 1, DnsShape::AaaaOnly),
    with_dns("tlsa", 3, DnsShape::Tlsa),
    with_dns("dnssec_ad", 2, DnsShape::Secure),
    with_dns("nxdomain", 3, DnsShape::NxDomain),
    with_dns("servfail", 2, DnsShape::ServFail),
    with_dns("dns_timeout", 1, DnsShape::Timeout),
    Profile {
        c2s: StreamShape {
            tcp: Tcp::Refused,
            ..C2S_GOOD
        },
        s2s: Some(StreamShape {
            tcp: Tcp::Refused,
            ..S2S_GOOD
        }),
        ..with_dns("refused", 3, DnsShape::Srv)
    },
    Profile {
        c2s: StreamShape {
            tcp: Tcp::Silent,
            ..C2S_GOOD
        },
        ..with_dns("slowloris", 1, DnsShape::Srv)
    },
    Profile {
        c2s: StreamShape {
            tcp: Tcp::ResetAtTls,
            ..C2S_GOOD
        },
        ..with_dns("reset_at_tls", 2, DnsShape::Srv)
    },
    // Streams.
    with_c2s(
        "starttls_optional",
        6,
        StreamShape {
            starttls: StarttlsOffer::Optional,
            ..C2S_GOOD
        },
    ),
    with_c2s(
        "starttls_absent",
        3,
        StreamShape {
            starttls: StarttlsOffer::Absent,
            sasl_before: &["PLAIN", "DIGEST-MD5"],
            iq_auth: true,
            ..C2S_GOOD
        },
    ),
    with_c2s(
        "plain_before_tls",
        4,
        StreamShape {
            starttls: StarttlsOffer::Optional,
            sasl_before: &["PLAIN"],
            ..C2S_GOOD
        },
    ),
    with_c2s("host_unknown", 2, pre(PreTls::HostUnknown)),
    with_c2s("no_version", 1, pre(PreTls::NoVersion)),
    with_c2s("split_segments", 3, pre(PreTls::Split)),
    with_c2s("huge_features", 1, pre(PreTls::Huge)),
    with_c2s("deep_features", 1, pre(PreTls::Deep)),
    with_c2s("invalid_xml", 1, pre(PreTls::InvalidXml)),
    with_c2s("doctype_entities", 1, pre(PreTls::Doctype)),
    with_c2s("starttls_injection", 1, pre(PreTls::InjectAfterProceed)),
    with_c2s("starttls_failure", 1, pre(PreTls::StarttlsFailure)),
    with_c2s("nul_in_features", 1, pre(PreTls::NulInFeatures)),
    with_c2s(
        "tls12_only",
        3,
        StreamShape {
            tls: TlsVersions::Tls12Only,
            ..C2S_GOOD
        },
    ),
    Profile {
        s2s: None,
        ..with_dns("c2s_only", 2, DnsShape::NoSrv)
    },
    Profile {
        s2s: Some(StreamShape {
            dialback: false,
            bidi: true,
            request_client_cert: false,
            ..S2S_GOOD
        }),
        ..with_dns("s2s_bidi_no_dialback", 2, DnsShape::Srv)
    },
    // Certificates.
    with_cert("cert_client_and_server", 8, CertShape::ClientAndServer),
    with_cert("cert_server_only", 10, CertShape::ServerOnly),
    with_cert("cert_client_only", 1, CertShape::ClientOnly),
    with_cert("cert_no_eku", 2, CertShape::NoEku),
    with_cert("cert_expired", 3, CertShape::Expired),
    with_cert("cert_not_yet_valid", 1, CertShape::NotYetValid),
    with_cert("cert_self_signed", 3, CertShape::SelfSigned),
    with_cert("cert_unknown_issuer", 2, CertShape::UnknownIssuer),
    with_cert("cert_xmppaddr_only", 2, CertShape::XmppAddrOnly),
    with_cert("cert_srvid_only", 2, CertShape::SrvIdOnly),
    with_cert("cert_wildcard", 2, CertShape::Wildcard),
    with_cert("cert_wrong_name", 2, CertShape::WrongName),
    with_cert(
        "cert_missing_intermediate",
        2,
        CertShape::MissingIntermediate,
    ),
    with_cert(
        "cert_intermediate_server_only",
        2,
        CertShape::IntermediateServerOnly,
    ),
    with_cert(
        "cert_le_client_and_server",
        4,
        CertShape::LetsEncryptClientAndServer,
    ),
    with_cert("cert_le_server_only", 6, CertShape::LetsEncryptServerOnly),
    with_cert("cert_offset_time", 1, CertShape::OffsetTime),
    with_cert("cert_nul_in_san", 1, CertShape::NulInSan),
    // Acceptance of the probe's certificate (issue "Active probe").
    acceptance(
        "lenient",
        accepting(ClientCertPolicy::Lenient, true, ("Prosody-like", "0.12.3")),
    ),
    acceptance(
        "strict_eku",
        accepting(
            ClientCertPolicy::StrictEku,
            true,
            ("ejabberd-like", "24.12"),
        ),
    ),
    acceptance(
        "strict_eku_no_dialback",
        accepting(
            ClientCertPolicy::StrictEku,
            false,
            ("ejabberd-like", "24.10"),
        ),
    ),
    acceptance(
        "no_client_cert",
        accepting(ClientCertPolicy::NoRequest, true, ("dialback-only", "2.0")),
    ),
    acceptance(
        "handshake_reject",
        accepting(
            ClientCertPolicy::HandshakeReject,
            true,
            ("openssl-strict", "3.1"),
        ),
    ),
    acceptance(
        "untrusting",
        accepting(ClientCertPolicy::Untrusting, true, ("untrusting", "0.9")),
    ),
    acceptance(
        "secure_auth",
        StreamShape {
            secure_auth: true,
            ..accepting(ClientCertPolicy::Lenient, true, ("Prosody-like", "0.12.3"))
        },
    ),
    acceptance(
        "secure_auth_strict_eku",
        StreamShape {
            secure_auth: true,
            ..accepting(
                ClientCertPolicy::StrictEku,
                true,
                ("ejabberd-like", "25.03"),
            )
        },
    ),
    acceptance(
        "version_refused",
        StreamShape {
            refuse_version: true,
            ..accepting(ClientCertPolicy::Lenient, true, ("discreet", "1.0"))
        },
    ),
    acceptance(
        "ping_refused",
        StreamShape {
            refuse_ping: true,
            ..accepting(ClientCertPolicy::Lenient, true, ("no-ping", "1.0"))
        },
    ),
    acceptance(
        "sasl_silent",
        hostile(crate::testnet::hostile::HostileSasl::Silence),
    ),
    acceptance(
        "sasl_garbage",
        hostile(crate::testnet::hostile::HostileSasl::Garbage),
    ),
    acceptance(
        "sasl_close",
        hostile(crate::testnet::hostile::HostileSasl::Close),
    ),
];

/// A lenient s2s server that breaks SASL in the given way.
const fn hostile(how: crate::testnet::hostile::HostileSasl) -> StreamShape {
    StreamShape {
        hostile_sasl: Some(how),
        ..accepting(ClientCertPolicy::Lenient, true, ("hostile", "6.6.6"))
    }
}

/// Whether a profile belongs to the acceptance group (its expected
/// acceptance verdict is in the manifest).
pub fn is_acceptance(p: &Profile) -> bool {
    matches!(
        p.name,
        "lenient"
            | "strict_eku"
            | "strict_eku_no_dialback"
            | "no_client_cert"
            | "handshake_reject"
            | "untrusting"
            | "secure_auth"
            | "secure_auth_strict_eku"
            | "version_refused"
            | "ping_refused"
            | "sasl_silent"
            | "sasl_garbage"
            | "sasl_close"
    )
}

/// How the domains of one profile differ in testnet generation 1 (a
/// second crawl's week): [`GENERATION_1`] lists them. A successor keeps
/// the DNS shape, the address and whether an s2s port exists, so the
/// running servers can switch without rebinding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Successor {
    /// The generation-0 profile's name.
    pub from: &'static str,
    /// What its domains play in generation 1 (same name).
    pub to: Profile,
    /// A new certificate even though its shape is unchanged (a renewal);
    /// a changed shape always means a new certificate.
    pub new_certificate: bool,
}

/// The known differences between testnet generations 0 and 1 (issue 12,
/// "changes between crawls"); the expected change list is derived from
/// these by [`crate::testnet::expect::expected_changes`]:
///
/// - `strict_eku`: upgraded to an ejabberd that accepts server-only
///   peers (24.12 → 25.08): verdict and software version change.
/// - `lenient`: software version bump only (0.12.3 → 13.0.1).
/// - `cert_le_client_and_server`: renewed as server-only (Let's Encrypt's
///   default since 2026): EKU class change and a renewed certificate.
/// - `cert_server_only`: renewed, same class: a renewed certificate only.
/// - `srv_ok`: c2s STARTTLS required → optional.
pub const GENERATION_1: &[Successor] = &[
    Successor {
        from: "strict_eku",
        to: acceptance(
            "strict_eku",
            accepting(ClientCertPolicy::Lenient, true, ("ejabberd-like", "25.08")),
        ),
        new_certificate: false,
    },
    Successor {
        from: "lenient",
        to: acceptance(
            "lenient",
            accepting(ClientCertPolicy::Lenient, true, ("Prosody-like", "13.0.1")),
        ),
        new_certificate: false,
    },
    Successor {
        from: "cert_le_client_and_server",
        to: with_cert(
            "cert_le_client_and_server",
            4,
            CertShape::LetsEncryptServerOnly,
        ),
        new_certificate: true,
    },
    Successor {
        from: "cert_server_only",
        to: with_cert("cert_server_only", 10, CertShape::ServerOnly),
        new_certificate: true,
    },
    Successor {
        from: "srv_ok",
        to: with_c2s(
            "srv_ok",
            20,
            StreamShape {
                starttls: StarttlsOffer::Optional,
                ..C2S_GOOD
            },
        ),
        new_certificate: false,
    },
];

/// The generation-1 successor of a profile, if it changes.
pub fn successor(name: &str) -> Option<&'static Successor> {
    GENERATION_1.iter().find(|s| s.from == name)
}

/// Looks a profile up by name.
pub fn by_name(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A successor can be switched to in a running testnet: same DNS
    /// shape, same ports, same placement; and it really differs.
    #[test]
    fn successors_keep_placement_and_differ() {
        for s in GENERATION_1 {
            let from = by_name(s.from).expect("known profile");
            assert_eq!(s.to.name, from.name);
            assert_eq!(s.to.dns, from.dns, "{}", s.from);
            assert_eq!(s.to.dedicated(), from.dedicated(), "{}", s.from);
            assert_eq!(s.to.s2s.is_some(), from.s2s.is_some(), "{}", s.from);
            assert!(s.new_certificate || s.to != *from, "{}", s.from);
        }
    }

    #[test]
    fn names_are_unique_and_domain_safe() {
        let mut names: Vec<_> = PROFILES.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROFILES.len());
        for n in names {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
    }
}
