//! The local test federation (TESTNET.md): a private CA, an authoritative
//! DNS server and many simulated XMPP servers in one process, with a
//! manifest of the expected value of every measured fact.
//!
//! - [`profile`]: the behaviours, one declaration each.
//! - [`layout`]: which domain lives where, and its DNS records.
//! - [`expect`]: the ground truth derived from a placed profile.
//! - [`certs`] / [`pki`]: the private CA and per-profile certificates.
//! - [`dns`]: the authoritative DNS server.
//! - [`server`]: the simulated XMPP servers.

pub mod attack;
pub mod ceiling;
pub mod certs;
pub mod check;
pub mod dns;
pub mod expect;
pub mod harness;
pub mod hostile;
pub mod layout;
pub mod pki;
pub mod profile;
pub mod server;

use crate::facts::Facts;
use crate::testnet::expect::CertDates;
use crate::testnet::layout::{AddressPlan, NameBehaviour, Placed, Ports, ZoneRecord};
use crate::testnet::profile::{DnsShape, PROFILES, Profile, Tcp};
use crate::testnet::server::{Listener, Shared};
use crate::xmpp::Service;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// Version of the manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestnetConfig {
    /// Number of domains.
    pub domains: usize,
    /// Seed of the profile mix.
    pub seed: u64,
    /// Second octet of 127.B.0.0/16.
    pub net: u8,
    /// DNS server port on 127.B.0.1 (0: any free port).
    pub dns_port: u16,
    /// Only these profiles (empty: all).
    pub profiles: Vec<String>,
    /// The generation to start in (0 first; 1: the profiles of
    /// [`profile::GENERATION_1`] play their successors). A running
    /// testnet switches with [`Testnet::set_generation`].
    pub generation: u32,
    /// Real servers outside the testnet that live in its zone (e.g. the
    /// Prosody test): DNS points at them, they get certificates from the
    /// testnet CA, nothing is simulated for them.
    pub external: Vec<External>,
    /// Domains per shared host ([`layout::SHARED_PER_HOST`] is the usual
    /// figure; more shows what sharing saves, as on the real network where
    /// thousands of domains use a few providers).
    pub per_host: usize,
    /// Domains that would get an address of their own (their behaviour
    /// starts before the stream header, or they are IPv6-only) share one
    /// address, or one pair of `::1` ports, per profile instead. Off for
    /// the truth tests; on for testnets larger than the open-file limit
    /// allows (one listening socket per host and port): a 100,000-domain
    /// testnet then needs a few thousand sockets instead of ~30,000.
    /// Every domain still plays its own profile; only addresses change.
    pub dedicated_by_profile: bool,
}

/// A domain in the test zone served by a real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// The domain (inside the test zone or not).
    pub domain: String,
    /// Its server's address.
    pub ip: std::net::Ipv4Addr,
}

/// The probe domain's first label; the domain is `probe.<zone>`.
pub const PROBE_LABEL: &str = "probe";

/// Why the testnet could not start.
#[derive(Debug, Error)]
pub enum TestnetError {
    /// A `--profiles` name that does not exist.
    #[error("unknown testnet profile {0:?} (known: {1})")]
    UnknownProfile(String, String),
    /// Certificate generation failed.
    #[error("testnet PKI: {0}")]
    Pki(String),
    /// A zone record could not be built.
    #[error("testnet zone: {0}")]
    Zone(String),
    /// A socket could not be bound (the message names the address).
    #[error(transparent)]
    Bind(#[from] std::io::Error),
    /// `--domains 0`.
    #[error("--domains must be at least 1")]
    NoDomains,
}

/// One domain of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestDomain {
    /// The XMPP domain.
    pub domain: String,
    /// Profile name.
    pub profile: String,
    /// The server's address.
    pub ip: IpAddr,
    /// Shares its address with other domains.
    pub shared: bool,
    /// Expected facts (see [`crate::facts`]).
    pub expect: Facts,
}

/// The testnet's ground truth, written as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub manifest_version: u32,
    /// Seed used.
    pub seed: u64,
    /// The generation the expectations are for.
    #[serde(default)]
    pub generation: u32,
    /// The DNS server to pass as `--resolver`.
    pub resolver: SocketAddr,
    /// The probe identity's address (for the acceptance probe).
    pub probe_address: IpAddr,
    /// Every domain with its expectations.
    pub domains: Vec<ManifestDomain>,
}

/// A running testnet. Dropping it without [`Testnet::shutdown`] leaves
/// its tasks running until the runtime ends.
pub struct Testnet {
    shared: Arc<Shared>,
    dns: dns::DnsServer,
    seed: u64,
    dead: IpAddr,
    dates: CertDates,
    placed: Vec<Arc<Placed>>,
    probe_domain: String,
    probe_listen: SocketAddr,
    probe_certs: (pki::IssuedCert, pki::IssuedCert),
    generation: layout::GenerationCell,
}

/// One change the testnet expects a crawl to record between two
/// generations (the ground truth of `domain_changes`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ExpectedChange {
    /// The domain.
    pub domain: String,
    /// `verdict`, `eku_class`, ... ([`crate::model::change::ChangeKind`]).
    pub kind: &'static str,
    /// `domain`, `c2s` or `s2s`.
    pub scope: &'static str,
    /// The earlier generation's value, as readers see it.
    pub before: Option<String>,
    /// The later generation's value.
    pub after: Option<String>,
}

fn profile_list(names: &[String]) -> Result<Vec<&'static Profile>, TestnetError> {
    if names.is_empty() {
        return Ok(PROFILES.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            profile::by_name(n.trim()).ok_or_else(|| {
                TestnetError::UnknownProfile(
                    n.clone(),
                    PROFILES
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
        })
        .collect()
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (TLSA 3 1 1, RFC 6698 §2.1).
fn spki_sha256(der: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(sha2::Sha256::digest(cert.tbs_certificate.subject_pki.raw).to_vec())
}

impl Testnet {
    /// Starts DNS and every server; returns once all are listening.
    pub async fn start(cfg: TestnetConfig) -> Result<Self, TestnetError> {
        if cfg.domains == 0 {
            return Err(TestnetError::NoDomains);
        }
        let plan = AddressPlan { net: cfg.net };
        let profiles = layout::assign(&profile_list(&cfg.profiles)?, cfg.domains, cfg.seed);
        let tag = format!("{}-{}-{:08x}", cfg.seed, cfg.net, rand::random::<u32>());
        let pki = certs::Pki::new(&tag).map_err(|e| TestnetError::Pki(e.to_string()))?;
        let dates = CertDates {
            not_after: pki.leaf_not_after().date(),
        };
        let shared = Arc::new(
            Shared::new(
                pki,
                server::Federation {
                    probe_domain: format!("{PROBE_LABEL}.{}", layout::ZONE),
                    probe_addr: SocketAddr::new(IpAddr::V4(plan.probe()), 5269),
                    secret: rand::random::<[u8; 32]>().to_vec(),
                },
            )
            .map_err(TestnetError::Pki)?,
        );

        // IPv6-only domains live on ::1, each on ports of its own.
        let mut v6: Vec<(std::net::TcpListener, std::net::TcpListener)> = Vec::new();
        let mut bind_err = None;
        let placed = layout::place(
            plan,
            &profiles,
            cfg.per_host,
            cfg.dedicated_by_profile,
            || {
                let pair = (|| {
                    let a = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0))?;
                    let b = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0))?;
                    Ok::<_, std::io::Error>((a, b))
                })();
                match pair {
                    Ok((a, b)) => {
                        let ports = Ports {
                            c2s: a.local_addr().map(|x| x.port()).unwrap_or(0),
                            s2s: b.local_addr().map(|x| x.port()).unwrap_or(0),
                            c2s_direct: 0,
                            s2s_direct: 0,
                        };
                        v6.push((a, b));
                        ports
                    }
                    Err(e) => {
                        bind_err = Some(e);
                        layout::STANDARD_PORTS
                    }
                }
            },
        );
        if let Some(e) = bind_err {
            return Err(
                std::io::Error::new(e.kind(), format!("cannot listen on [::1]: {e}")).into(),
            );
        }
        let generation = layout::GenerationCell::default();
        generation.set(cfg.generation);
        let placed: Vec<Arc<Placed>> = placed
            .into_iter()
            .map(|mut p| {
                p.generation = generation.clone();
                Arc::new(p)
            })
            .collect();

        // DNS.
        let mut zone = dns::ZoneData::new();
        for p in &placed {
            let (records, special) = layout::records(p, plan);
            for r in records {
                match r {
                    ZoneRecord::Srv {
                        name,
                        priority,
                        weight,
                        port,
                        target,
                    } => zone
                        .add_srv(&name, priority, weight, port, &target)
                        .map_err(|e| TestnetError::Zone(format!("SRV {name}: {e}")))?,
                    ZoneRecord::A { name, ip } => zone.add_a(&name, ip),
                    ZoneRecord::Aaaa { name, ip } => zone.add_aaaa(&name, ip),
                    ZoneRecord::Cname { name, target } => zone
                        .add_cname(&name, &target)
                        .map_err(|e| TestnetError::Zone(format!("CNAME {name}: {e}")))?,
                    ZoneRecord::TlsaSpki { name } => {
                        let leaf = shared.leaf(p).map_err(TestnetError::Pki)?;
                        let hash = spki_sha256(leaf.as_ref())
                            .ok_or_else(|| TestnetError::Pki("cannot parse own leaf".into()))?;
                        zone.add_tlsa(&name, 3, 1, 1, hash);
                    }
                }
            }
            for (name, b) in special {
                match b {
                    NameBehaviour::ServFail => zone.servfail(&name),
                    NameBehaviour::Drop => zone.drop_queries(&name),
                    NameBehaviour::Secure => zone.secure(&name),
                }
            }
        }
        let probe_domain = format!("{PROBE_LABEL}.{}", layout::ZONE);
        let probe_srv = format!("_xmpp-server._tcp.{probe_domain}");
        zone.add_srv(&probe_srv, 0, 5, 5269, &probe_domain)
            .map_err(|e| TestnetError::Zone(format!("SRV {probe_srv}: {e}")))?;
        zone.add_a(&probe_domain, plan.probe());
        for x in &cfg.external {
            for (svc, port) in [("_xmpp-client._tcp", 5222), ("_xmpp-server._tcp", 5269)] {
                let name = format!("{svc}.{}", x.domain);
                zone.add_srv(&name, 0, 5, port, &x.domain)
                    .map_err(|e| TestnetError::Zone(format!("SRV {name}: {e}")))?;
            }
            zone.add_a(&x.domain, x.ip);
        }
        let dns = dns::serve(zone, SocketAddr::new(IpAddr::V4(plan.dns()), cfg.dns_port))
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start testnet DNS on {}:{}: {e}",
                        plan.dns(),
                        cfg.dns_port
                    ),
                )
            })?;

        // Servers, grouped by address.
        let mut hosts: BTreeMap<IpAddr, Vec<Arc<Placed>>> = BTreeMap::new();
        for p in &placed {
            if p.profile.dns != DnsShape::AaaaOnly {
                hosts.entry(p.ip).or_default().push(p.clone());
            }
        }
        for (ip, tenants) in hosts {
            let first = tenants[0].clone();
            let shared_host = first.shared;
            let tenants = Arc::new(tenants);
            let mut want: Vec<(Service, bool, u16)> = Vec::new();
            let ports = first.ports;
            if shared_host {
                want = vec![
                    (Service::C2s, false, ports.c2s),
                    (Service::S2s, false, ports.s2s),
                    (Service::C2s, true, ports.c2s_direct),
                    (Service::S2s, true, ports.s2s_direct),
                ];
            } else {
                let pr = first.profile;
                if pr.c2s.tcp != Tcp::Refused {
                    want.push((Service::C2s, false, ports.c2s));
                }
                if pr.s2s.is_some_and(|s| s.tcp != Tcp::Refused) {
                    want.push((Service::S2s, false, ports.s2s));
                }
                if pr.dns == DnsShape::SrvAndDirectTls {
                    want.push((Service::C2s, true, ports.c2s_direct));
                    want.push((Service::S2s, true, ports.s2s_direct));
                }
            }
            for (service, direct, port) in want {
                let sock = server::bind(SocketAddr::new(ip, port)).await?;
                server::spawn(
                    &shared,
                    sock,
                    Listener {
                        service,
                        direct,
                        tenants: tenants.clone(),
                    },
                );
            }
        }
        // IPv6-only domains: one pair of listeners per pair of ports (a
        // domain's own, or its profile's with `dedicated_by_profile`), in
        // the order the pairs were bound.
        let mut v6_tenants: Vec<Vec<Arc<Placed>>> = Vec::new();
        let mut v6_group: HashMap<u16, usize> = HashMap::new();
        for p in placed
            .iter()
            .filter(|p| p.profile.dns == DnsShape::AaaaOnly)
        {
            let k = *v6_group.entry(p.ports.c2s).or_insert_with(|| {
                v6_tenants.push(Vec::new());
                v6_tenants.len() - 1
            });
            v6_tenants[k].push(p.clone());
        }
        for (tenants, (a, b)) in v6_tenants.into_iter().zip(v6) {
            let tenants = Arc::new(tenants);
            for (service, l) in [(Service::C2s, a), (Service::S2s, b)] {
                l.set_nonblocking(true)?;
                let sock = tokio::net::TcpListener::from_std(l)?;
                server::spawn(
                    &shared,
                    sock,
                    Listener {
                        service,
                        direct: false,
                        tenants: tenants.clone(),
                    },
                );
            }
        }

        let issue = |shape| {
            shared
                .pki()
                .issue(&probe_domain, shape)
                .map_err(|e| TestnetError::Pki(e.to_string()))
        };
        let probe_certs = (
            issue(profile::CertShape::ServerOnly)?,
            issue(profile::CertShape::ClientAndServer)?,
        );
        Ok(Self {
            shared,
            dns,
            seed: cfg.seed,
            dead: IpAddr::V4(plan.dead()),
            dates,
            placed,
            probe_domain,
            probe_listen: SocketAddr::new(IpAddr::V4(plan.probe()), 5269),
            probe_certs,
            generation,
        })
    }

    /// The generation the servers play now.
    pub fn generation(&self) -> u32 {
        self.generation.get()
    }

    /// Switches every domain to `generation` (see
    /// [`profile::GENERATION_1`]): from the next connection on, the
    /// changed profiles play their successors, with renewed certificates
    /// where the successor says so. DNS and addresses stay as they are.
    pub fn set_generation(&self, generation: u32) {
        self.generation.set(generation);
    }

    /// The certificate `p` presents in `generation`, as a change list shows
    /// it (issued on demand, the same leaf the servers present).
    fn leaf_cert(
        &self,
        p: &Placed,
        generation: u32,
    ) -> Result<crate::model::change::LeafCert, TestnetError> {
        use sha2::Digest;
        let der = self
            .shared
            .leaf_at(p, generation)
            .map_err(TestnetError::Pki)?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| TestnetError::Pki(format!("cannot parse own leaf: {e}")))?;
        Ok(crate::model::change::LeafCert {
            sha256: hex::encode(sha2::Sha256::digest(der.as_ref())),
            not_after: cert.validity().not_after.to_datetime().date(),
        })
    }

    /// The changes a crawl of generation `to` must record against a
    /// crawl of generation `from`, every domain, sorted: derived from the
    /// two generations' expectations ([`expect::expected_changes`]).
    pub fn expected_changes(
        &self,
        from: u32,
        to: u32,
    ) -> Result<Vec<ExpectedChange>, TestnetError> {
        use crate::model::names::Named;
        let mut out = Vec::new();
        for p in &self.placed {
            let (ea, eb) = (p.at(from).1, p.at(to).1);
            let renewed = if ea != eb {
                Some((
                    self.leaf_cert(p, from)?.describe(),
                    self.leaf_cert(p, to)?.describe(),
                ))
            } else {
                None
            };
            let changes = expect::expected_changes(
                &p.in_generation(from),
                &p.in_generation(to),
                self.dead,
                (self.dates_at(ea), self.dates_at(eb)),
                renewed,
            );
            out.extend(changes.into_iter().map(|c| ExpectedChange {
                domain: p.domain.clone(),
                kind: c.kind.as_str(),
                scope: c.scope.as_str(),
                before: c.before,
                after: c.after,
            }));
        }
        out.sort();
        Ok(out)
    }

    fn dates_at(&self, epoch: u32) -> CertDates {
        CertDates {
            not_after: self.shared.pki().leaf_not_after_at(epoch).date(),
        }
    }

    /// The testnet's probe identity: `probe.<zone>` at 127.B.0.2:5269, a
    /// server-only and a client-and-server certificate from the testnet CA.
    pub fn probe_identity(
        &self,
    ) -> Result<crate::identity::ProbeIdentity, crate::identity::IdentityError> {
        use crate::identity::{ProbeCert, ProbeIdentity};
        let (so, cs) = &self.probe_certs;
        Ok(ProbeIdentity {
            domain: self.probe_domain.clone(),
            server_only: ProbeCert::new(
                so.chain.clone(),
                so.key.clone_key(),
                "server-only certificate",
            )?,
            client_and_server: Some(ProbeCert::new(
                cs.chain.clone(),
                cs.key.clone_key(),
                "client-and-server certificate",
            )?),
            listen: self.probe_listen,
            dialback_secret: rand::random::<[u8; 32]>().to_vec(),
            shared_secret: false,
        })
    }

    /// Issues a certificate from the testnet CA (for external real servers).
    pub fn issue(
        &self,
        domain: &str,
        shape: profile::CertShape,
    ) -> Result<pki::IssuedCert, TestnetError> {
        self.shared
            .pki()
            .issue(domain, shape)
            .map_err(|e| TestnetError::Pki(e.to_string()))
    }

    /// One domain's ground truth.
    fn manifest_domain(&self, p: &Placed) -> ManifestDomain {
        let generation = self.generation();
        let epoch = p.at(generation).1;
        let dates = if epoch == 0 {
            self.dates
        } else {
            self.dates_at(epoch)
        };
        ManifestDomain {
            domain: p.domain.clone(),
            profile: p.profile.name.to_string(),
            ip: p.ip,
            shared: p.shared,
            expect: expect::expected(&p.in_generation(generation), self.dead, dates),
        }
    }

    /// The manifest (ground truth), computed from the profiles on demand:
    /// at 10,000 domains it is tens of megabytes the servers never need.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION,
            seed: self.seed,
            generation: self.generation(),
            resolver: self.dns.addr,
            probe_address: self.probe_listen.ip(),
            domains: self
                .placed
                .iter()
                .map(|p| self.manifest_domain(p))
                .collect(),
        }
    }

    /// The DNS server's address (`--resolver`).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.addr
    }

    /// Every domain, in manifest order.
    pub fn domains(&self) -> Vec<String> {
        self.placed.iter().map(|p| p.domain.clone()).collect()
    }

    /// The placed domains.
    pub fn placed(&self) -> &[Arc<Placed>] {
        &self.placed
    }

    /// The root CA certificate, PEM (`--extra-ca`).
    pub fn ca_pem(&self) -> String {
        self.shared.pki().root.pem()
    }

    /// Connections accepted on `ip` so far.
    pub fn connections(&self, ip: IpAddr) -> u64 {
        self.shared.counters.get(ip)
    }

    /// When the connections on `ip` were accepted (sorted): what a server
    /// operator sees of the crawler's connection rate.
    pub fn accept_times(&self, ip: IpAddr) -> Vec<std::time::Instant> {
        self.shared.counters.accept_times(ip)
    }

    /// Connections accepted on every address so far.
    pub fn total_connections(&self) -> u64 {
        self.shared.counters.total()
    }

    /// Writes the manifest (streamed, one domain per line), the root CA
    /// (PEM) and the probe identity beside the manifest: both certificates
    /// and keys, and a `.probe.toml` for `probe --config`.
    pub fn write_manifest(&self, manifest: &Path, ca: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let named = |path: &Path, e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        };
        let write =
            |path: &Path, data: &[u8]| std::fs::write(path, data).map_err(|e| named(path, e));
        let file = std::fs::File::create(manifest).map_err(|e| named(manifest, e))?;
        let mut w = std::io::BufWriter::new(file);
        let head = serde_json::json!({
            "manifest_version": MANIFEST_VERSION,
            "seed": self.seed,
            "generation": self.generation(),
            "resolver": self.dns.addr,
            "probe_address": self.probe_listen.ip(),
        });
        let head = serde_json::to_string(&head)?;
        let head = head.strip_suffix('}').unwrap_or(&head);
        writeln!(w, "{head},\"domains\":[").map_err(|e| named(manifest, e))?;
        for (i, p) in self.placed.iter().enumerate() {
            if i > 0 {
                w.write_all(b",\n").map_err(|e| named(manifest, e))?;
            }
            serde_json::to_writer(&mut w, &self.manifest_domain(p))?;
        }
        w.write_all(b"\n]}\n").map_err(|e| named(manifest, e))?;
        w.flush().map_err(|e| named(manifest, e))?;
        write(ca, self.ca_pem().as_bytes())?;

        let (so, cs) = &self.probe_certs;
        let sibling = |suffix: &str| {
            let mut p = manifest.with_extension("").into_os_string();
            p.push(suffix);
            std::path::PathBuf::from(p)
        };
        let files = [
            (sibling(".probe-server-only.pem"), so.chain_pem()),
            (sibling(".probe-server-only.key"), so.key_pem()),
            (sibling(".probe-client-and-server.pem"), cs.chain_pem()),
            (sibling(".probe-client-and-server.key"), cs.key_pem()),
        ];
        for (path, data) in &files {
            write(path, data.as_bytes())?;
        }
        let base = |p: &Path| {
            p.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let toml = format!(
            "# Probe identity of this testnet: xmpp-survey probe --config THIS_FILE\n\
             [identity]\ndomain = \"{}\"\nserver_only_cert = \"{}\"\nserver_only_key = \"{}\"\n\
             client_and_server_cert = \"{}\"\nclient_and_server_key = \"{}\"\nlisten = \"{}\"\n",
            self.probe_domain,
            base(&files[0].0),
            base(&files[1].0),
            base(&files[2].0),
            base(&files[3].0),
            self.probe_listen,
        );
        write(&sibling(".probe.toml"), toml.as_bytes())
    }

    /// Stops DNS and every server.
    pub async fn shutdown(self) {
        self.shared.shutdown().await;
        self.dns.shutdown().await;
    }
}
