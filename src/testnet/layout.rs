//! Where each testnet domain lives: profile assignment (seeded), addresses
//! in 127.B.0.0/16, and the DNS records that point at them.
//!
//! Domains whose behaviour starts only after the client's stream header
//! share hosts (up to [`SHARED_PER_HOST`] domains per address by default,
//! as shared hosting does in the wild); the rest get an address of their
//! own. Shared domains whose SRV records are plain (no TLSA, no odd
//! target) also share the host's *name*, `xmpp.hosting-K.xs.test`, as the
//! customers of one provider do on the real network: their SRV targets, A
//! and AAAA questions are the same.

use crate::dns::SrvService;
use crate::testnet::profile::{DnsShape, Profile};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Domains per shared host, unless the testnet is started with another
/// figure ([`crate::testnet::TestnetConfig::per_host`]).
pub const SHARED_PER_HOST: usize = 8;
/// The zone every testnet domain lives under (RFC 6761 reserves `.test`).
pub const ZONE: &str = "xs.test";

/// A DNS record of the test zone, independent of the DNS server's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneRecord {
    /// SRV.
    Srv {
        /// Owner.
        name: String,
        /// Priority.
        priority: u16,
        /// Weight.
        weight: u16,
        /// Port.
        port: u16,
        /// Target (`.` for "not available").
        target: String,
    },
    /// A.
    A {
        /// Owner.
        name: String,
        /// Address.
        ip: Ipv4Addr,
    },
    /// AAAA.
    Aaaa {
        /// Owner.
        name: String,
        /// Address.
        ip: Ipv6Addr,
    },
    /// CNAME.
    Cname {
        /// Owner.
        name: String,
        /// Target.
        target: String,
    },
    /// TLSA 3 1 1 (DANE-EE, SPKI, SHA-256) for the placed s2s certificate;
    /// the data is filled in once the certificate exists.
    TlsaSpki {
        /// Owner, `_PORT._tcp.HOST`.
        name: String,
    },
}

/// Special per-name DNS behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameBehaviour {
    /// SERVFAIL every question.
    ServFail,
    /// Never answer.
    Drop,
    /// Answer with the AD bit.
    Secure,
}

/// Ports of one placed domain's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// c2s STARTTLS.
    pub c2s: u16,
    /// s2s STARTTLS.
    pub s2s: u16,
    /// c2s direct TLS.
    pub c2s_direct: u16,
    /// s2s direct TLS.
    pub s2s_direct: u16,
}

/// The standard ports (RFC 6120 §3.2, XEP-0368).
pub const STANDARD_PORTS: Ports = Ports {
    c2s: 5222,
    s2s: 5269,
    c2s_direct: 5223,
    s2s_direct: 5270,
};

/// One domain, placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The XMPP domain.
    pub domain: String,
    /// Its profile.
    pub profile: &'static Profile,
    /// The host name endpoints use (SRV target, or the domain for fallback).
    pub host: String,
    /// The server's address.
    pub ip: IpAddr,
    /// The server's ports.
    pub ports: Ports,
    /// Shares its address with other domains.
    pub shared: bool,
    /// `FirstTargetDown`: the name of the dead first target.
    pub dead_host: Option<String>,
    /// The testnet's current generation (shared by every domain of one
    /// instance): in generation 1 the domains of a profile with a
    /// [`Successor`](crate::testnet::profile::Successor) play it instead.
    pub generation: GenerationCell,
}

impl Placed {
    /// The profile this domain plays in `generation`, and its certificate
    /// epoch there (0: the generation-0 certificate; 1: a new one).
    pub fn at(&self, generation: u32) -> (&'static Profile, u32) {
        match crate::testnet::profile::successor(self.profile.name) {
            Some(s) if generation >= 1 => {
                let renewed = s.new_certificate || s.to.cert != self.profile.cert;
                (&s.to, u32::from(renewed))
            }
            _ => (self.profile, 0),
        }
    }

    /// [`Placed::at`] the current generation: what the servers play now.
    pub fn current(&self) -> (&'static Profile, u32) {
        self.at(self.generation.get())
    }

    /// This domain as it is in `generation` (its profile swapped), for
    /// the expectations of that generation.
    pub fn in_generation(&self, generation: u32) -> Self {
        Self {
            profile: self.at(generation).0,
            ..self.clone()
        }
    }
}

/// The generation number every domain of one testnet shares; switching
/// it changes what the running servers play from the next connection on.
#[derive(Debug, Clone, Default)]
pub struct GenerationCell(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl GenerationCell {
    /// The current generation.
    pub fn get(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Switches the generation.
    pub fn set(&self, generation: u32) {
        self.0
            .store(generation, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Every domain's cell is the same shared counter: equal by definition.
impl PartialEq for GenerationCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for GenerationCell {}

/// The addresses of one testnet instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPlan {
    /// Second octet B of 127.B.0.0/16.
    pub net: u8,
}

impl AddressPlan {
    /// The DNS server's address.
    pub fn dns(self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, 0, 1)
    }
    /// The probe identity's address (dialback listener, issue 3).
    pub fn probe(self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, 0, 2)
    }
    /// An address where nothing ever listens (dead SRV targets).
    pub fn dead(self) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, 0, 3)
    }
    /// The k-th host address: hosts go round the /24s 127.B.1.0 to
    /// 127.B.250.0 (host 0 is 127.B.1.1, host 1 127.B.2.1, host 250
    /// 127.B.1.2), as hosting providers' servers sit in many networks. Filled
    /// /24 by /24, a 100,000-domain testnet put 16,000 domains behind each
    /// /24, and an unthrottled crawl's dialback callbacks from one /24 met
    /// the listener's per-/24 cap (issue 13 step 10).
    pub fn host(self, k: usize) -> Ipv4Addr {
        let third = 1 + (k % 250) as u32;
        let fourth = 1 + (k / 250) as u32;
        Ipv4Addr::new(127, self.net, third as u8, fourth.min(254) as u8)
    }
}

/// Picks `n` profiles by weight, deterministically for a seed: every
/// profile appears at least once when `n` allows, the rest by weight.
pub fn assign(from: &[&'static Profile], n: usize, seed: u64) -> Vec<&'static Profile> {
    let mut out: Vec<&'static Profile> = from.iter().copied().take(n).collect();
    let total: u32 = from.iter().map(|p| p.weight.max(1)).sum::<u32>().max(1);
    let mut i = 0usize;
    while out.len() < n {
        // Deterministic weighted round-robin: profile p gets weight/total of the rest.
        let slot = (i as u32) % total;
        let mut acc = 0;
        for &p in from {
            acc += p.weight.max(1);
            if slot < acc {
                out.push(p);
                break;
            }
        }
        i += 1;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    out.shuffle(&mut rng);
    out
}

/// The domain name of the i-th domain with a profile.
pub fn domain_name(profile: &Profile, i: usize) -> String {
    format!("{}-{i}.{ZONE}", profile.name.replace('_', "-"))
}

/// The SRV target name every plainly configured domain of shared host
/// number `host` uses.
pub fn hosting_name(host: usize) -> String {
    format!("xmpp.hosting-{host}.{ZONE}")
}

/// Whether a shared domain of this DNS shape points at its host's shared
/// name: plain SRV records only. TLSA owners are per certificate, and the
/// other shapes' targets are part of what they test.
fn uses_hosting_name(dns: DnsShape) -> bool {
    matches!(
        dns,
        DnsShape::Srv | DnsShape::Secure | DnsShape::SrvAndDirectTls
    )
}

/// Places domains on addresses, `per_host` domains per shared host (at
/// least 1). `aaaa_port` gives each IPv6-only domain its ports on `::1`
/// (bound by the caller before placement). With `dedicated_by_profile`,
/// the domains that would each get an address (or `::1` ports) of their
/// own share one per profile: their behaviour is the profile's, so the
/// servers serve them alike, and far fewer sockets are needed.
pub fn place(
    plan: AddressPlan,
    profiles: &[&'static Profile],
    per_host: usize,
    dedicated_by_profile: bool,
    mut aaaa_ports: impl FnMut() -> Ports,
) -> Vec<Placed> {
    let per_host = per_host.max(1);
    let mut next_host = 0usize;
    // Profile name -> its address and ports (dedicated_by_profile).
    let mut by_profile: std::collections::HashMap<&str, (IpAddr, Ports)> = Default::default();
    let mut shared_fill = per_host;
    let mut shared_host = 0usize;
    let mut out = Vec::with_capacity(profiles.len());
    for (i, &profile) in profiles.iter().enumerate() {
        let domain = domain_name(profile, i);
        let mut host = match profile.dns {
            DnsShape::NoSrv => domain.clone(),
            _ => format!("xmpp.{domain}"),
        };
        let (ip, ports, shared) = if profile.dedicated() {
            // An address (IPv6-only: ports on ::1) of its own, or its
            // profile's.
            let mut own = || {
                if profile.dns == DnsShape::AaaaOnly {
                    (IpAddr::V6(Ipv6Addr::LOCALHOST), aaaa_ports())
                } else {
                    next_host += 1;
                    (IpAddr::V4(plan.host(next_host - 1)), STANDARD_PORTS)
                }
            };
            let (ip, ports) = if dedicated_by_profile {
                *by_profile.entry(profile.name).or_insert_with(own)
            } else {
                own()
            };
            (ip, ports, false)
        } else {
            if shared_fill == per_host {
                shared_host = next_host;
                next_host += 1;
                shared_fill = 0;
            }
            shared_fill += 1;
            if uses_hosting_name(profile.dns) {
                host = hosting_name(shared_host);
            }
            (IpAddr::V4(plan.host(shared_host)), STANDARD_PORTS, true)
        };
        let dead_host =
            (profile.dns == DnsShape::FirstTargetDown).then(|| format!("down.{domain}"));
        out.push(Placed {
            domain,
            profile,
            host,
            ip,
            ports,
            shared,
            dead_host,
            generation: GenerationCell::default(),
        });
    }
    out
}

fn srv_name(service: SrvService, domain: &str) -> String {
    format!("{}.{domain}", service.label())
}

/// The DNS records and special name behaviours of one placed domain.
pub fn records(p: &Placed, plan: AddressPlan) -> (Vec<ZoneRecord>, Vec<(String, NameBehaviour)>) {
    let d = &p.domain;
    let h = &p.host;
    let srv = |service: SrvService, priority: u16, port: u16, target: &str| ZoneRecord::Srv {
        name: srv_name(service, d),
        priority,
        weight: 5,
        port,
        target: target.to_string(),
    };
    let addr = |name: &str| match p.ip {
        IpAddr::V4(ip) => ZoneRecord::A {
            name: name.to_string(),
            ip,
        },
        IpAddr::V6(ip) => ZoneRecord::Aaaa {
            name: name.to_string(),
            ip,
        },
    };
    let mut recs = Vec::new();
    let mut special = Vec::new();
    let standard = |recs: &mut Vec<ZoneRecord>| {
        recs.push(srv(SrvService::XmppClient, 0, p.ports.c2s, h));
        recs.push(srv(SrvService::XmppServer, 0, p.ports.s2s, h));
        recs.push(addr(h));
    };
    match p.profile.dns {
        DnsShape::Srv | DnsShape::AaaaOnly => standard(&mut recs),
        DnsShape::Secure => {
            standard(&mut recs);
            for s in SrvService::ALL {
                special.push((srv_name(s, d), NameBehaviour::Secure));
            }
        }
        DnsShape::Tlsa => {
            standard(&mut recs);
            recs.push(ZoneRecord::TlsaSpki {
                name: format!("_{}._tcp.{h}", p.ports.s2s),
            });
        }
        DnsShape::SrvAndDirectTls => {
            standard(&mut recs);
            recs.push(srv(SrvService::XmppsClient, 0, p.ports.c2s_direct, h));
            recs.push(srv(SrvService::XmppsServer, 0, p.ports.s2s_direct, h));
        }
        DnsShape::NoSrv => recs.push(addr(d)),
        DnsShape::C2sDeclined => {
            recs.push(srv(SrvService::XmppClient, 0, 0, "."));
            recs.push(srv(SrvService::XmppServer, 0, p.ports.s2s, h));
            recs.push(addr(h));
        }
        DnsShape::FirstTargetDown => {
            let dead = p.dead_host.clone().unwrap_or_default();
            recs.push(srv(SrvService::XmppClient, 0, p.ports.c2s, h));
            recs.push(srv(SrvService::XmppServer, 0, p.ports.s2s, &dead));
            recs.push(srv(SrvService::XmppServer, 10, p.ports.s2s, h));
            recs.push(addr(h));
            recs.push(ZoneRecord::A {
                name: dead,
                ip: plan.dead(),
            });
        }
        DnsShape::CnameChain => {
            recs.push(srv(SrvService::XmppClient, 0, p.ports.c2s, h));
            recs.push(srv(SrvService::XmppServer, 0, p.ports.s2s, h));
            let c1 = format!("alias1.{d}");
            let c2 = format!("alias2.{d}");
            recs.push(ZoneRecord::Cname {
                name: h.clone(),
                target: c1.clone(),
            });
            recs.push(ZoneRecord::Cname {
                name: c1,
                target: c2.clone(),
            });
            recs.push(addr(&c2));
        }
        DnsShape::NxDomain => {}
        DnsShape::ServFail | DnsShape::Timeout => {
            let b = if p.profile.dns == DnsShape::ServFail {
                NameBehaviour::ServFail
            } else {
                NameBehaviour::Drop
            };
            for s in SrvService::ALL {
                special.push((srv_name(s, d), b));
            }
            special.push((d.clone(), b));
        }
    }
    (recs, special)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet::profile::by_name;

    fn placed(names: &[&str], by_profile: bool) -> (Vec<Placed>, u16) {
        let profiles: Vec<&'static Profile> =
            names.iter().map(|n| by_name(n).expect("profile")).collect();
        let mut next_port = 40_000u16;
        let out = place(AddressPlan { net: 150 }, &profiles, 2, by_profile, || {
            next_port += 2;
            Ports {
                c2s: next_port,
                s2s: next_port + 1,
                c2s_direct: 0,
                s2s_direct: 0,
            }
        });
        (out, next_port)
    }

    const MIX: [&str; 8] = [
        "refused",
        "srv_ok",
        "refused",
        "aaaa_only",
        "slowloris",
        "aaaa_only",
        "srv_ok",
        "refused",
    ];

    /// Without `dedicated_by_profile` every dedicated domain has an
    /// address (or ports) of its own; with it, one per profile, while
    /// shared domains are placed exactly as before.
    #[test]
    fn dedicated_domains_share_one_address_per_profile_only_when_asked() {
        let (own, own_ports) = placed(&MIX, false);
        let (grouped, grouped_ports) = placed(&MIX, true);
        let ip = |v: &[Placed], i: usize| v[i].ip;
        // Own addresses: the three `refused` domains differ.
        assert_ne!(ip(&own, 0), ip(&own, 2));
        assert_ne!(ip(&own, 2), ip(&own, 7));
        assert_ne!(own[3].ports, own[5].ports);
        assert_eq!(
            own_ports, 40_004,
            "one pair of ::1 ports per IPv6-only domain"
        );
        // By profile: one address per profile, different across profiles.
        assert_eq!(ip(&grouped, 0), ip(&grouped, 2));
        assert_eq!(ip(&grouped, 0), ip(&grouped, 7));
        assert_ne!(ip(&grouped, 0), ip(&grouped, 4));
        assert_eq!(grouped[3].ports, grouped[5].ports);
        assert_eq!(
            grouped_ports, 40_002,
            "one pair of ::1 ports for the profile"
        );
        // Grouped domains are not marked shared (the servers treat them as
        // dedicated), and the shared domains keep sharing their host.
        assert!(grouped.iter().all(|p| p.shared != p.profile.dedicated()));
        assert_eq!(ip(&grouped, 1), ip(&grouped, 6));
        // Every domain keeps its own name and profile.
        for (a, b) in own.iter().zip(&grouped) {
            assert_eq!(a.domain, b.domain);
            assert_eq!(a.profile.name, b.profile.name);
        }
    }

    #[test]
    fn hosts_go_round_the_24s() {
        let plan = AddressPlan { net: 150 };
        assert_eq!(plan.host(0), Ipv4Addr::new(127, 150, 1, 1));
        assert_eq!(plan.host(1), Ipv4Addr::new(127, 150, 2, 1));
        assert_eq!(plan.host(249), Ipv4Addr::new(127, 150, 250, 1));
        assert_eq!(plan.host(250), Ipv4Addr::new(127, 150, 1, 2));
        let distinct: std::collections::HashSet<Ipv4Addr> =
            (0..62_500).map(|k| plan.host(k)).collect();
        assert_eq!(distinct.len(), 62_500);
    }
}
