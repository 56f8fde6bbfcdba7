//! Expected facts of a placed testnet domain, derived from its profile
//! alone (never from the probe's code): the ground truth of the manifest.
//!
//! Every endpoint fact ([`EndpointField::ALL`]) is stated for every
//! endpoint, `null` where it cannot apply, so the truth test compares the
//! whole measurement, not a sample.

use crate::dns::SrvService;
use crate::facts::{
    DNSSEC_KEY, ENDPOINTS_KEY, EndpointField as F, Facts, TLSA_KEY, endpoint_fact_key,
    endpoint_key, json, srv_keys,
};
use crate::model::report::EndpointKey;
use crate::testnet::layout::Placed;
use crate::testnet::profile::{CertShape, DnsShape, PreTls, StreamShape, Tcp, TlsVersions};
use crate::xmpp::Service;
use crate::xmpp::features::StarttlsOffer;
use serde_json::{Value, json as j};
use std::net::IpAddr;
use time::Date;

/// What the expectation needs to know about the issued certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertDates {
    /// notAfter date of the domain's end-entity certificate.
    pub not_after: Date,
}

/// One endpoint a placed domain exposes, in probe order.
struct Ep {
    /// Which endpoint.
    key: EndpointKey,
    /// Nothing listens there.
    dead: bool,
}

fn endpoints(p: &Placed, dead_ip: IpAddr) -> Vec<Ep> {
    use crate::probe::report::Transport::{DirectTls, Starttls};
    let ep = |service, transport, host: &str, ip, port, dead| Ep {
        key: EndpointKey {
            service,
            transport,
            host: host.to_string(),
            ip,
            port,
        },
        dead,
    };
    let (h, ip, ports) = (&p.host, p.ip, p.ports);
    let no_s2s = p.profile.s2s.is_none();
    match p.profile.dns {
        DnsShape::NxDomain | DnsShape::ServFail | DnsShape::Timeout => vec![],
        DnsShape::C2sDeclined => vec![ep(Service::S2s, Starttls, h, ip, ports.s2s, false)],
        DnsShape::FirstTargetDown => vec![
            ep(Service::C2s, Starttls, h, ip, ports.c2s, false),
            ep(
                Service::S2s,
                Starttls,
                p.dead_host.as_deref().unwrap_or_default(),
                dead_ip,
                ports.s2s,
                true,
            ),
            ep(Service::S2s, Starttls, h, ip, ports.s2s, false),
        ],
        DnsShape::SrvAndDirectTls => vec![
            ep(Service::C2s, Starttls, h, ip, ports.c2s, false),
            ep(Service::C2s, DirectTls, h, ip, ports.c2s_direct, false),
            ep(Service::S2s, Starttls, h, ip, ports.s2s, false),
            ep(Service::S2s, DirectTls, h, ip, ports.s2s_direct, false),
        ],
        _ => vec![
            ep(Service::C2s, Starttls, h, ip, ports.c2s, false),
            ep(Service::S2s, Starttls, h, ip, ports.s2s, no_s2s),
        ],
    }
}

/// Expected end-entity facts of a certificate shape:
/// (chain length, verdict, name match, EKU classes of the chain, Let's Encrypt).
fn cert_facts(
    shape: CertShape,
) -> (
    usize,
    &'static str,
    &'static str,
    &'static [&'static str],
    bool,
) {
    use CertShape::*;
    match shape {
        ClientAndServer => (2, "trusted", "dns_id", &["client_and_server", "any"], false),
        ServerOnly => (2, "trusted", "dns_id", &["server_only", "any"], false),
        ClientOnly => (2, "invalid", "dns_id", &["client_only", "any"], false),
        NoEku => (2, "trusted", "dns_id", &["any", "any"], false),
        Expired => (2, "expired", "dns_id", &["client_and_server", "any"], false),
        NotYetValid => (
            2,
            "not_yet_valid",
            "dns_id",
            &["client_and_server", "any"],
            false,
        ),
        SelfSigned => (1, "self_signed", "dns_id", &["client_and_server"], false),
        UnknownIssuer => (
            2,
            "unknown_issuer",
            "dns_id",
            &["client_and_server", "any"],
            false,
        ),
        XmppAddrOnly => (
            2,
            "trusted",
            "xmpp_addr",
            &["client_and_server", "any"],
            false,
        ),
        SrvIdOnly => (2, "trusted", "srv_id", &["client_and_server", "any"], false),
        Wildcard => (
            2,
            "trusted",
            "wildcard",
            &["client_and_server", "any"],
            false,
        ),
        WrongName => (
            2,
            "name_mismatch",
            "none",
            &["client_and_server", "any"],
            false,
        ),
        MissingIntermediate => (1, "unknown_issuer", "dns_id", &["client_and_server"], false),
        IntermediateServerOnly => (
            2,
            "trusted",
            "dns_id",
            &["client_and_server", "server_only"],
            false,
        ),
        LetsEncryptClientAndServer => (
            2,
            "trusted",
            "dns_id",
            &["client_and_server", "client_and_server"],
            true,
        ),
        LetsEncryptServerOnly => (
            2,
            "trusted",
            "dns_id",
            &["server_only", "client_and_server"],
            true,
        ),
        OffsetTime => (2, "invalid", "dns_id", &["client_and_server", "any"], false),
        NulInSan => (2, "trusted", "dns_id", &["client_and_server", "any"], false),
    }
}

/// What the probe must flag on the end-entity certificate.
fn cert_anomalies(shape: CertShape) -> &'static [&'static str] {
    match shape {
        CertShape::OffsetTime => &["time_with_offset", "time_outside_rfc5280_profile"],
        CertShape::NulInSan => &["nul_in_name"],
        _ => &[],
    }
}

/// OpenSSL's TLS-client purpose of a chain from its EKU classes (leaf
/// first): `any` is "no EKU" in every testnet certificate and passes;
/// server-only and other lack clientAuth. The testnet's self-signed
/// certificates are leaves, so no anchor is ever skipped.
fn client_purpose(classes: &[&str]) -> &'static str {
    let lacks = |c: &&str| matches!(*c, "server_only" | "other");
    match classes.split_first() {
        Some((leaf, _)) if lacks(leaf) => "leaf_lacks_client_auth",
        Some((_, rest)) if rest.iter().any(lacks) => "intermediate_lacks_client_auth",
        _ => "ok",
    }
}

/// Sets every field of one endpoint; starts from all-`null`.
fn endpoint_facts(p: &Placed, e: &Ep, dates: CertDates, out: &mut Facts) {
    use crate::probe::report::Transport;
    let key = endpoint_key(&e.key);
    let mut f: Vec<(F, Value)> = F::ALL.iter().map(|&k| (k, Value::Null)).collect();
    let mut set = |k: F, v: Value| {
        if let Some(slot) = f.iter_mut().find(|(x, _)| *x == k) {
            slot.1 = v;
        }
    };
    let shape: Option<StreamShape> = match e.key.service {
        Service::C2s => Some(p.profile.c2s),
        Service::S2s => p.profile.s2s,
    };
    let shape = match shape {
        Some(s) if !e.dead && s.tcp != Tcp::Refused => s,
        _ => {
            set(F::Connect, j!("refused"));
            set(F::Outcome, j!("connect_failed"));
            set(F::Phase, j!("connect"));
            return flush(&key, f, out);
        }
    };
    set(F::Connect, j!("connected"));
    let starttls = e.key.transport == Transport::Starttls;
    if shape.tcp == Tcp::Silent {
        if starttls {
            set(F::Outcome, j!("timeout"));
            set(F::Phase, j!("stream_header"));
        } else {
            tls_fail(&mut set, "timeout");
        }
        return flush(&key, f, out);
    }
    if starttls {
        let stop = |set: &mut dyn FnMut(F, Value), outcome: &str, phase: &str| {
            set(F::Outcome, j!(outcome));
            set(F::Phase, j!(phase));
        };
        match shape.pre_tls {
            PreTls::Doctype => {
                stop(&mut set, "forbidden_xml", "stream_header");
                return flush(&key, f, out);
            }
            PreTls::NoVersion => {
                stop(&mut set, "no_version", "stream_header");
                return flush(&key, f, out);
            }
            _ => set(F::HeaderVersion, j!("1.0")),
        }
        let early = match shape.pre_tls {
            PreTls::HostUnknown => {
                set(F::StreamError, j!("host-unknown"));
                Some(("stream_error", "features"))
            }
            PreTls::Huge => Some(("byte_limit", "features")),
            PreTls::Deep => Some(("depth_limit", "features")),
            PreTls::InvalidXml | PreTls::NulInFeatures => Some(("invalid_xml", "features")),
            _ => None,
        };
        if let Some((outcome, phase)) = early {
            stop(&mut set, outcome, phase);
            return flush(&key, f, out);
        }
        let s2s = e.key.service == Service::S2s;
        set(F::Starttls, json(shape.starttls));
        set(F::SaslBeforeTls, json(shape.sasl_before));
        set(F::DialbackBeforeTls, j!(s2s && shape.dialback));
        set(F::IqAuth, j!(shape.iq_auth));
        set(F::CapsNode, json(shape.caps_node));
        if shape.starttls == StarttlsOffer::Absent {
            stop(&mut set, "no_starttls", "features");
            return flush(&key, f, out);
        }
        match shape.pre_tls {
            // The forged features behind `<proceed/>` are discarded and
            // counted; TLS goes on (RFC 6120 §5.4.3.3).
            PreTls::InjectAfterProceed => {
                let forged = crate::testnet::server::features_xml(&shape, e.key.service, true);
                set(F::StarttlsInjectedBytes, j!(forged.len()));
            }
            PreTls::StarttlsFailure => {
                stop(&mut set, "starttls_failure", "starttls");
                return flush(&key, f, out);
            }
            _ => {}
        }
    } else {
        set(F::CapsNode, json(shape.caps_node));
    }
    if shape.tcp == Tcp::ResetAtTls {
        tls_fail(&mut set, "closed");
        return flush(&key, f, out);
    }
    // TLS is up.
    let (chain_len, verdict, name_match, classes, le) = cert_facts(p.profile.cert);
    set(
        F::TlsVersion,
        j!(match shape.tls {
            TlsVersions::Both => "TLSv1.3",
            TlsVersions::Tls12Only => "TLSv1.2",
        }),
    );
    set(
        F::Alpn,
        if starttls {
            Value::Null
        } else {
            j!(match e.key.service {
                Service::C2s => "xmpp-client",
                Service::S2s => "xmpp-server",
            })
        },
    );
    set(F::ClientCertRequested, j!(shape.request_client_cert));
    set(F::ChainLen, j!(chain_len));
    set(F::Verdict, j!(verdict));
    set(F::NameMatch, j!(name_match));
    set(F::EkuClass, j!(classes[0]));
    set(F::ChainEkuClasses, j!(classes));
    set(F::LetsEncrypt, j!(le));
    set(
        F::RenewsServerOnly,
        if p.profile.cert == CertShape::LetsEncryptClientAndServer {
            json(dates.not_after)
        } else {
            Value::Null
        },
    );
    set(F::KeyAlgorithm, j!("ec"));
    set(F::CertAnomalies, j!(cert_anomalies(p.profile.cert)));
    let s2s = e.key.service == Service::S2s;
    if s2s && shape.secure_auth {
        // The passive probe presents no certificate: refused after TLS.
        set(F::Outcome, j!("stream_error"));
        set(F::Phase, j!("features_after_tls"));
        set(F::StreamError, j!("not-authorized"));
        return flush(&key, f, out);
    }
    set(F::SaslAfterTls, json(shape.sasl_after));
    set(F::DialbackAfterTls, j!(s2s && shape.dialback));
    set(F::Bidi, j!(s2s && shape.bidi));
    let tlsa = p.profile.dns == DnsShape::Tlsa && s2s && starttls;
    set(F::DaneMatch, if tlsa { j!(true) } else { Value::Null });
    set(F::Outcome, j!("complete"));
    flush(&key, f, out)
}

fn tls_fail(set: &mut dyn FnMut(F, Value), failure: &str) {
    set(F::Outcome, j!("tls_failed"));
    set(F::Phase, j!("tls_handshake"));
    set(F::TlsFailure, j!(failure));
    set(F::ClientCertRequested, j!(false));
    set(F::ChainLen, j!(0));
    set(F::ChainEkuClasses, j!([]));
}

fn flush(key: &str, fields: Vec<(F, Value)>, out: &mut Facts) {
    for (k, v) in fields {
        out.insert(endpoint_fact_key(key, k), v);
    }
}

/// Expected DNS facts.
fn dns_facts(p: &Placed, out: &mut Facts) {
    let shape = p.profile.dns;
    let h = &p.host;
    for s in SrvService::ALL {
        let [outcome, records, unavailable] = srv_keys(s);
        let recs: Vec<String> = match (shape, s) {
            (DnsShape::NxDomain | DnsShape::ServFail | DnsShape::Timeout | DnsShape::NoSrv, _) => {
                vec![]
            }
            (DnsShape::C2sDeclined, SrvService::XmppClient) => vec!["0 5 0 .".into()],
            (DnsShape::FirstTargetDown, SrvService::XmppServer) => vec![
                format!(
                    "0 5 {} {}",
                    p.ports.s2s,
                    p.dead_host.as_deref().unwrap_or_default()
                ),
                format!("10 5 {} {h}", p.ports.s2s),
            ],
            (_, SrvService::XmppClient) => vec![format!("0 5 {} {h}", p.ports.c2s)],
            (_, SrvService::XmppServer) => vec![format!("0 5 {} {h}", p.ports.s2s)],
            (DnsShape::SrvAndDirectTls, SrvService::XmppsClient) => {
                vec![format!("0 5 {} {h}", p.ports.c2s_direct)]
            }
            (DnsShape::SrvAndDirectTls, SrvService::XmppsServer) => {
                vec![format!("0 5 {} {h}", p.ports.s2s_direct)]
            }
            _ => vec![],
        };
        let o = match shape {
            DnsShape::ServFail => "serv_fail",
            DnsShape::Timeout => "timeout",
            _ if recs.is_empty() => "nx_domain",
            _ => "records",
        };
        out.insert(outcome, j!(o));
        out.insert(unavailable, j!(recs.len() == 1 && recs[0].ends_with(" .")));
        out.insert(records, j!(recs));
    }
    out.insert(
        DNSSEC_KEY.into(),
        j!(match shape {
            DnsShape::Secure => "validated",
            DnsShape::NxDomain | DnsShape::ServFail | DnsShape::Timeout => "unknown",
            _ => "not_validated",
        }),
    );
    let tlsa: Vec<String> = if shape == DnsShape::Tlsa {
        vec![format!("_{}._tcp.{h}", p.ports.s2s)]
    } else {
        vec![]
    };
    out.insert(TLSA_KEY.into(), j!(tlsa));
}

/// Expected per-service summary facts that follow directly from the profile.
fn summary_facts(p: &Placed, eps: &[Ep], out: &mut Facts) {
    for service in [Service::C2s, Service::S2s] {
        let name = json(service);
        let name = name.as_str().unwrap_or_default();
        let mine: Vec<&Ep> = eps.iter().filter(|e| e.key.service == service).collect();
        let shape = match service {
            Service::C2s => Some(p.profile.c2s),
            Service::S2s => p.profile.s2s,
        };
        let status = if mine.is_empty() {
            if p.profile.dns == DnsShape::C2sDeclined && service == Service::C2s {
                "not_offered"
            } else {
                "no_address"
            }
        } else {
            match shape {
                None => "unreachable",
                Some(s) => match (s.tcp, s.pre_tls, s.starttls) {
                    (Tcp::Refused, _, _) => "unreachable",
                    (Tcp::Silent, _, _) => "stream_failed",
                    (Tcp::ResetAtTls, _, _) => "tls_failed",
                    (_, PreTls::NoVersion, _) => "no_tls",
                    (
                        _,
                        PreTls::Doctype
                        | PreTls::HostUnknown
                        | PreTls::Huge
                        | PreTls::Deep
                        | PreTls::InvalidXml
                        | PreTls::NulInFeatures
                        | PreTls::StarttlsFailure,
                        _,
                    ) => "stream_failed",
                    (_, _, StarttlsOffer::Absent) => "no_tls",
                    _ => "tls_ok",
                },
            }
        };
        out.insert(format!("summary.{name}.status"), j!(status));
        if service == Service::S2s {
            acceptance_facts(p, status, out);
        }
        out.insert(format!("summary.{name}.endpoints"), j!(mine.len()));
        if status == "tls_ok" {
            let (_, verdict, _, classes, le) = cert_facts(p.profile.cert);
            out.insert(format!("summary.{name}.chain_verdict"), j!(verdict));
            out.insert(format!("summary.{name}.eku_class"), j!(classes[0]));
            out.insert(
                format!("summary.{name}.client_purpose"),
                j!(client_purpose(classes)),
            );
            out.insert(format!("summary.{name}.lets_encrypt"), j!(le));
            out.insert(
                format!("summary.{name}.direct_tls"),
                j!(p.profile.dns == DnsShape::SrvAndDirectTls),
            );
        }
    }
}

/// All expected facts of one placed domain.
pub fn expected(p: &Placed, dead_ip: IpAddr, dates: CertDates) -> Facts {
    let mut out = Facts::new();
    dns_facts(p, &mut out);
    let eps = endpoints(p, dead_ip);
    let mut keys: Vec<String> = eps.iter().map(|e| endpoint_key(&e.key)).collect();
    keys.sort();
    out.insert(ENDPOINTS_KEY.into(), json(keys));
    for e in &eps {
        endpoint_facts(p, e, dates, &mut out);
    }
    summary_facts(p, &eps, &mut out);
    out
}

/// The target connects back to our listener (replies over its own
/// authenticated stream, dialback verification) presenting its own
/// certificate as TLS client: the EKU class and client purpose of that
/// chain are what strict peers will judge (MEASUREMENTS §3.3).
fn inbound_facts(p: &Placed, out: &mut Facts) {
    use crate::facts::acceptance_key as k;
    let (_, _, _, classes, _) = cert_facts(p.profile.cert);
    out.insert(k("inbound_client_eku"), j!([classes[0]]));
    out.insert(k("inbound_client_purpose"), j!([client_purpose(classes)]));
}

/// Expected acceptance facts (MEASUREMENTS §3) when the testnet's own probe
/// identity (both certificates) probes the domain. Acceptance profiles
/// state every fact; the others state the verdict that follows from their
/// reachability (and `accepts_server_only` for the default lenient s2s).
fn acceptance_facts(p: &Placed, s2s_status: &str, out: &mut Facts) {
    use crate::facts::acceptance_key as k;
    use crate::testnet::profile::{ClientCertPolicy as P, S2S_GOOD, is_acceptance};
    let verdict = match s2s_status {
        "tls_ok" => None,
        "stream_failed" | "no_tls" | "tls_failed" => Some(("tls_failed", "no_tls_session")),
        "unreachable" => Some(("unreachable", "s2s_unreachable")),
        _ => Some(("unreachable", "no_s2s_address")),
    };
    if let Some((v, reason)) = verdict {
        out.insert(k("verdict"), j!(v));
        out.insert(k("reason_code"), j!(reason));
        // Nothing reached the target: it never connects back.
        out.insert(k("inbound_client_eku"), j!([]));
        out.insert(k("inbound_client_purpose"), j!([]));
        return;
    }
    let Some(s2s) = p.profile.s2s else {
        return;
    };
    if !is_acceptance(p.profile) {
        if s2s == S2S_GOOD {
            out.insert(k("verdict"), j!("accepts_server_only"));
            out.insert(k("reason_code"), j!("external_succeeded"));
            inbound_facts(p, out);
        } else if !s2s.request_client_cert {
            out.insert(k("verdict"), j!("no_cert_auth"));
            out.insert(k("reason_code"), j!("no_certificate_request"));
        }
        return;
    }
    let success = j!({"result": "success"});
    let refused =
        |text: &str| j!({"result": "failure", "condition": "not-authorized", "text": text});
    let requested = s2s.request_client_cert;
    let attempt =
        |out: &mut Facts, cert: &str, tls_failure: Value, offered: Value, external: Value| {
            for (name, v) in [
                ("client_cert_requested", j!(requested)),
                ("client_cert_sent", j!(requested)),
                ("tls_failure", tls_failure),
                ("external_offered", offered),
                ("external", external),
            ] {
                out.insert(k(&format!("{cert}.{name}")), v);
            }
        };
    let (so_ext, cs_ext, verdict, reason) = match s2s.client_certs {
        // SASL never answers properly: no outcome, the attempt is broken.
        _ if s2s.hostile_sasl.is_some() => (
            Value::Null,
            Value::Null,
            "inconclusive",
            "attempt_incomplete",
        ),
        P::Lenient => (
            success.clone(),
            success.clone(),
            "accepts_server_only",
            "external_succeeded",
        ),
        P::StrictEku => (
            refused("unsupported certificate purpose"),
            success.clone(),
            if s2s.dialback {
                "rejects_server_only_dialback"
            } else {
                "rejects_server_only_no_fallback"
            },
            "external_refused",
        ),
        P::NoRequest => (
            Value::Null,
            Value::Null,
            "no_cert_auth",
            "no_certificate_request",
        ),
        P::HandshakeReject => (
            Value::Null,
            success.clone(),
            "rejects_server_only_no_fallback",
            "tls_alert_on_server_only",
        ),
        P::Untrusting => (
            refused("certificate not trusted"),
            refused("certificate not trusted"),
            "inconclusive",
            "both_certificates_refused",
        ),
    };
    out.insert(k("reason_code"), j!(reason));
    inbound_facts(p, out);
    let offered = j!(s2s.sasl_after.contains(&"EXTERNAL"));
    // How a hostile server's broken SASL shows (both attempts meet it).
    let fault = j!(s2s.hostile_sasl.map(|h| match h {
        crate::testnet::hostile::HostileSasl::Silence => "timeout",
        crate::testnet::hostile::HostileSasl::Garbage => "invalid_xml",
        crate::testnet::hostile::HostileSasl::Close => "closed",
    }));
    for cert in ["server_only", "client_and_server"] {
        out.insert(k(&format!("{cert}.external_fault")), fault.clone());
    }
    if s2s.client_certs == P::HandshakeReject {
        attempt(out, "server_only", j!("alert"), Value::Null, so_ext);
    } else {
        attempt(out, "server_only", Value::Null, offered.clone(), so_ext);
    }
    attempt(out, "client_and_server", Value::Null, offered, cs_ext);
    out.insert(k("verdict"), j!(verdict));
    out.insert(k("dialback_offered"), j!(s2s.dialback));
    let dialback = match (s2s.dialback, s2s.client_certs) {
        (false, _) => Value::Null,
        // The dialback attempt presents the server-only certificate too.
        (true, P::HandshakeReject) => j!({"result": "connection_failed"}),
        (true, _) => j!({"result": "valid"}),
    };
    let verified = dialback == j!({"result": "valid"});
    out.insert(k("dialback"), dialback);
    out.insert(
        k("dialback_verify_received"),
        if s2s.dialback {
            j!(verified)
        } else {
            Value::Null
        },
    );
    let refusal = j!({"result": "error", "condition": "service-unavailable"});
    let answered = j!({"result": "result"});
    out.insert(
        k("ping"),
        if s2s.refuse_ping {
            refusal.clone()
        } else {
            answered.clone()
        },
    );
    if s2s.refuse_version {
        out.insert(k("version_query"), refusal);
        out.insert(k("software"), Value::Null);
        out.insert(k("software_version"), Value::Null);
    } else {
        out.insert(k("version_query"), answered);
        out.insert(k("software"), j!(s2s.software.0));
        out.insert(k("software_version"), j!(s2s.software.1));
    }
}

/// The changes a crawl of `b` (a domain in a later testnet generation)
/// must record against a crawl of `a` (the same domain earlier), derived
/// from the two generations' expected facts, independently of
/// [`crate::model::change::diff`]: the acceptance verdict, the software
/// (when stated in both), and per service the EKU class and STARTTLS offer
/// (when expected in both) and, when `renewed` gives the certificate
/// before and after as readers see it, a renewal where TLS completes.
pub fn expected_changes(
    a: &Placed,
    b: &Placed,
    dead_ip: IpAddr,
    dates: (CertDates, CertDates),
    renewed: Option<(String, String)>,
) -> Vec<crate::model::change::Change> {
    use crate::model::change::{Change, ChangeKind as K, ChangeScope as S};
    let fa = expected(a, dead_ip, dates.0);
    let fb = expected(b, dead_ip, dates.1);
    let text = |v: Option<&Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let mut out = Vec::new();
    let mut push = |kind, scope, before: Option<String>, after: Option<String>| {
        out.push(Change {
            kind,
            scope,
            before,
            after,
        });
    };
    let verdict = |f: &Facts| text(f.get("acceptance.verdict"));
    if verdict(&fa) != verdict(&fb) {
        push(K::Verdict, S::Domain, verdict(&fa), verdict(&fb));
    }
    let software = |f: &Facts| {
        let name = text(f.get("acceptance.software"))?;
        Some(match text(f.get("acceptance.software_version")) {
            Some(v) => format!("{name} {v}"),
            None => name,
        })
    };
    if let (Some(x), Some(y)) = (software(&fa), software(&fb))
        && x != y
    {
        push(K::SoftwareVersion, S::Domain, Some(x), Some(y));
    }
    for (service, scope) in [(Service::C2s, S::C2s), (Service::S2s, S::S2s)] {
        let name = json(service);
        let name = name.as_str().unwrap_or_default();
        let eku = |f: &Facts| text(f.get(&format!("summary.{name}.eku_class")));
        if let (Some(x), Some(y)) = (eku(&fa), eku(&fb))
            && x != y
        {
            push(K::EkuClass, scope, Some(x), Some(y));
        }
        let starttls = |p: &Placed, f: &Facts| {
            endpoints(p, dead_ip)
                .iter()
                .filter(|e| e.key.service == service)
                .find_map(|e| text(f.get(&endpoint_fact_key(&endpoint_key(&e.key), F::Starttls))))
        };
        if let (Some(x), Some(y)) = (starttls(a, &fa), starttls(b, &fb))
            && x != y
        {
            push(K::Starttls, scope, Some(x), Some(y));
        }
        let tls_ok =
            |f: &Facts| text(f.get(&format!("summary.{name}.status"))).as_deref() == Some("tls_ok");
        if let Some((x, y)) = &renewed
            && tls_ok(&fa)
            && tls_ok(&fb)
        {
            push(
                K::CertificateRenewed,
                scope,
                Some(x.clone()),
                Some(y.clone()),
            );
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod change_tests {
    use super::*;
    use crate::testnet::layout::{AddressPlan, place};
    use crate::testnet::profile::by_name;

    fn one(name: &str) -> Placed {
        let plan = AddressPlan { net: 150 };
        let profile = by_name(name).expect("profile");
        place(
            plan,
            &[profile],
            crate::testnet::layout::SHARED_PER_HOST,
            false,
            || crate::testnet::layout::STANDARD_PORTS,
        )
        .pop()
        .expect("placed")
    }

    fn kinds(p: &Placed, renewed: Option<(String, String)>) -> Vec<(&'static str, &'static str)> {
        use crate::model::names::Named;
        let d = CertDates {
            not_after: time::macros::date!(2027 - 03 - 01),
        };
        expected_changes(
            &p.in_generation(0),
            &p.in_generation(1),
            "127.150.0.3".parse().expect("ip"),
            (d, d),
            renewed,
        )
        .iter()
        .map(|c| (c.kind.as_str(), c.scope.as_str()))
        .collect()
    }

    /// Each successor of GENERATION_1 yields the changes its doc comment
    /// promises; an unchanged profile yields none.
    #[test]
    fn generation_one_changes_what_it_says() {
        let r = Some(("x".to_string(), "y".to_string()));
        assert_eq!(
            kinds(&one("strict_eku"), None),
            [("verdict", "domain"), ("software_version", "domain")]
        );
        assert_eq!(
            kinds(&one("lenient"), None),
            [("software_version", "domain")]
        );
        assert_eq!(kinds(&one("srv_ok"), None), [("starttls", "c2s")]);
        assert_eq!(
            kinds(&one("cert_le_client_and_server"), r.clone()),
            [
                ("eku_class", "c2s"),
                ("eku_class", "s2s"),
                ("certificate_renewed", "c2s"),
                ("certificate_renewed", "s2s")
            ]
        );
        assert_eq!(
            kinds(&one("cert_server_only"), r),
            [
                ("certificate_renewed", "c2s"),
                ("certificate_renewed", "s2s")
            ]
        );
        assert_eq!(kinds(&one("cert_client_and_server"), None), []);
        // Certificate epochs: a new certificate only where GENERATION_1 says.
        assert_eq!(one("cert_server_only").at(1).1, 1);
        assert_eq!(one("cert_le_client_and_server").at(1).1, 1);
        assert_eq!(one("strict_eku").at(1).1, 0);
        assert_eq!(one("strict_eku").at(0).1, 0);
    }
}
