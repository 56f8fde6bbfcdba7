//! Which endpoints to probe, from DNS answers alone (pure).
//!
//! RFC 6120 §3.2.1 (SRV), §3.2.2 (fallback to the domain's A/AAAA on the
//! default port when there are no SRV records) and XEP-0368 §3 (direct TLS
//! SRV records are tried alongside STARTTLS ones).

use crate::dns::{DnsOutcome, DnsReport, SrvLookup, SrvService, TlsaRecord};
use crate::limits::{MAX_ADDRS_PER_TARGET, MAX_SRV_TARGETS};
use crate::model::report::{EndpointKey, EndpointSource, Transport};
use crate::xmpp::Service;
use std::net::IpAddr;

/// One endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlan {
    /// Which endpoint: service, transport, host (SRV target or the
    /// domain), address, port.
    pub key: EndpointKey,
    /// SRV or fallback.
    pub source: EndpointSource,
    /// TLSA records of `_PORT._tcp.HOST` (RFC 7673 §3), to match the
    /// presented chain against.
    pub tlsa: Vec<TlsaRecord>,
}

fn tlsa(dns: &DnsReport, port: u16, host: &str) -> Vec<TlsaRecord> {
    let name = format!("_{port}._tcp.{host}");
    dns.tlsa
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.records.clone())
        .unwrap_or_default()
}

fn srv_for(service: Service, transport: Transport) -> SrvService {
    match (service, transport) {
        (Service::C2s, Transport::Starttls) => SrvService::XmppClient,
        (Service::C2s, Transport::DirectTls) => SrvService::XmppsClient,
        (Service::S2s, Transport::Starttls) => SrvService::XmppServer,
        (Service::S2s, Transport::DirectTls) => SrvService::XmppsServer,
    }
}

fn usable(l: Option<&SrvLookup>) -> bool {
    l.is_some_and(|l| l.outcome == DnsOutcome::Records && !l.decidedly_unavailable)
}

/// Up to [`MAX_ADDRS_PER_TARGET`] addresses of a host: its first IPv4 and
/// its first IPv6 address, so both families are measured.
fn addresses(dns: &DnsReport, host: &str) -> Vec<IpAddr> {
    let Some(h) = dns.hosts.iter().find(|h| h.name == host) else {
        return Vec::new();
    };
    let v4 = h.addrs.iter().find(|a| a.is_ipv4());
    let v6 = h.addrs.iter().find(|a| a.is_ipv6());
    v4.into_iter()
        .chain(v6)
        .copied()
        .take(MAX_ADDRS_PER_TARGET)
        .collect()
}

/// Plans every endpoint of a domain: c2s before s2s, STARTTLS before
/// direct TLS, SRV order within each. When neither SRV name of a service
/// has usable records and neither says "decidedly not available", the
/// domain itself is tried on the default STARTTLS port (RFC 6120 §3.2.2).
pub fn plan(domain: &str, dns: &DnsReport) -> Vec<EndpointPlan> {
    let mut out = Vec::new();
    for service in [Service::C2s, Service::S2s] {
        let lookup = |t| dns.srv.iter().find(|l| l.service == srv_for(service, t));
        let (starttls, direct) = (lookup(Transport::Starttls), lookup(Transport::DirectTls));
        for (transport, l) in [
            (Transport::Starttls, starttls),
            (Transport::DirectTls, direct),
        ] {
            let Some(l) = l.filter(|l| usable(Some(l))) else {
                continue;
            };
            for rec in l.records.iter().take(MAX_SRV_TARGETS) {
                for ip in addresses(dns, &rec.target) {
                    out.push(EndpointPlan {
                        key: EndpointKey {
                            service,
                            transport,
                            host: rec.target.clone(),
                            ip,
                            port: rec.port,
                        },
                        source: EndpointSource::Srv,
                        tlsa: tlsa(dns, rec.port, &rec.target),
                    });
                }
            }
        }
        let declined = [starttls, direct]
            .into_iter()
            .flatten()
            .any(|l| l.decidedly_unavailable);
        if !usable(starttls) && !usable(direct) && !declined {
            let port = srv_for(service, Transport::Starttls).default_port();
            for ip in addresses(dns, domain) {
                out.push(EndpointPlan {
                    key: EndpointKey {
                        service,
                        transport: Transport::Starttls,
                        host: domain.to_string(),
                        ip,
                        port,
                    },
                    source: EndpointSource::Fallback,
                    tlsa: tlsa(dns, port, domain),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Dnssec, HostLookup, SrvRecord};

    fn srv(service: SrvService, outcome: DnsOutcome, recs: &[(u16, u16, &str)]) -> SrvLookup {
        let unavailable = recs.len() == 1 && recs[0].2 == ".";
        SrvLookup {
            service,
            outcome,
            detail: None,
            records: recs
                .iter()
                .map(|&(priority, port, target)| SrvRecord {
                    priority,
                    weight: 0,
                    port,
                    target: target.into(),
                })
                .collect(),
            decidedly_unavailable: unavailable,
        }
    }

    fn host(name: &str, addrs: &[&str]) -> HostLookup {
        HostLookup {
            name: name.into(),
            a: DnsOutcome::Records,
            aaaa: DnsOutcome::NoData,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            cnames: vec![],
        }
    }

    fn report(srv: Vec<SrvLookup>, hosts: Vec<HostLookup>) -> DnsReport {
        DnsReport {
            srv,
            hosts,
            tlsa: vec![],
            dnssec: Dnssec::Unknown,
        }
    }

    #[test]
    fn rfc6120_3_2_1_srv_order_and_both_families() {
        let dns = report(
            vec![
                srv(
                    SrvService::XmppServer,
                    DnsOutcome::Records,
                    &[(5, 5269, "a.test"), (10, 5269, "b.test")],
                ),
                srv(
                    SrvService::XmppsServer,
                    DnsOutcome::Records,
                    &[(5, 5270, "a.test")],
                ),
                srv(
                    SrvService::XmppClient,
                    DnsOutcome::Records,
                    &[(0, ".".len() as u16, ".")],
                ),
                srv(SrvService::XmppsClient, DnsOutcome::NxDomain, &[]),
            ],
            vec![
                host("a.test", &["127.0.0.2", "127.0.0.3", "::1"]),
                host("b.test", &["127.0.0.4"]),
            ],
        );
        let p = plan("d.test", &dns);
        let got: Vec<_> = p
            .iter()
            .map(|e| {
                (
                    e.key.service,
                    e.key.transport,
                    e.key.host.as_str(),
                    e.key.ip.to_string(),
                    e.key.port,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Service::S2s,
                    Transport::Starttls,
                    "a.test",
                    "127.0.0.2".into(),
                    5269
                ),
                (
                    Service::S2s,
                    Transport::Starttls,
                    "a.test",
                    "::1".into(),
                    5269
                ),
                (
                    Service::S2s,
                    Transport::Starttls,
                    "b.test",
                    "127.0.0.4".into(),
                    5269
                ),
                (
                    Service::S2s,
                    Transport::DirectTls,
                    "a.test",
                    "127.0.0.2".into(),
                    5270
                ),
                (
                    Service::S2s,
                    Transport::DirectTls,
                    "a.test",
                    "::1".into(),
                    5270
                ),
            ],
            "c2s is decidedly unavailable: no c2s endpoint, no fallback"
        );
    }

    #[test]
    fn rfc6120_3_2_2_fallback_without_srv() {
        let dns = report(
            vec![
                srv(SrvService::XmppClient, DnsOutcome::NxDomain, &[]),
                srv(SrvService::XmppsClient, DnsOutcome::NxDomain, &[]),
                srv(SrvService::XmppServer, DnsOutcome::NoData, &[]),
                srv(SrvService::XmppsServer, DnsOutcome::ServFail, &[]),
            ],
            vec![host("d.test", &["127.0.0.9"])],
        );
        let p = plan("d.test", &dns);
        assert_eq!(p.len(), 2);
        assert!(
            p.iter()
                .all(|e| e.source == EndpointSource::Fallback && e.key.host == "d.test")
        );
        assert_eq!((p[0].key.service, p[0].key.port), (Service::C2s, 5222));
        assert_eq!((p[1].key.service, p[1].key.port), (Service::S2s, 5269));
    }

    #[test]
    fn srv_targets_are_capped() {
        let many: Vec<(u16, u16, &str)> = vec![(1, 5269, "t.test"); MAX_SRV_TARGETS + 3];
        let dns = report(
            vec![srv(SrvService::XmppServer, DnsOutcome::Records, &many)],
            vec![host("t.test", &["127.0.0.5"])],
        );
        assert_eq!(plan("d.test", &dns).len(), MAX_SRV_TARGETS);
    }
}
