//! The survey's DNS client: a thin wrapper over hickory-resolver that turns
//! every answer into a measured [`DnsOutcome`] instead of an error
//! (MEASUREMENTS §2, RFC 6120 §3.2, XEP-0368, RFC 7673).
//!
//! Two hickory objects share one configuration:
//! - a [`TokioResolver`] with its cache disabled, for the ordinary questions
//!   (it follows CNAME chains and keeps the intermediate records);
//! - a bare [`NameServerPool`] for the two questions whose *header* matters:
//!   the reachability check (any RCODE means "reachable") and the DNSSEC
//!   question, which must carry the AD bit in the query (RFC 6840 §5.7) so a
//!   validating resolver reports AD in its answer (RFC 4035 §3.2.3).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequest, DnsRequestOptions, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, TlsConfig, TokioResolver};

use super::srv::{normalize_name, order};
use super::{
    DnsOutcome, DnsReport, Dnssec, HostLookup, SrvLookup, SrvRecord, SrvService, TlsaLookup,
    TlsaRecord,
};

/// Retries after a failed question (timeout, SERVFAIL). Small on purpose: a
/// survey of thousands of domains must not wait minutes on broken ones, and
/// "SERVFAIL twice" is as informative as "SERVFAIL five times".
const ATTEMPTS: usize = 1;

/// Where to send questions and how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The recursive resolver (or, on the testnet, the authoritative test
    /// server) to ask. `None` reads the system configuration
    /// (`/etc/resolv.conf`). Both UDP and TCP are used on this address.
    pub server: Option<SocketAddr>,
    /// Time allowed for one attempt of one question; after it the outcome is
    /// [`DnsOutcome::Timeout`].
    pub timeout: Duration,
}

/// Why the resolver cannot be used at all. Distinct from [`DnsOutcome`]:
/// these are faults of *our* set-up, not measurements of a domain, so a
/// crawl stops on them instead of recording thousands of false timeouts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsSetupError {
    /// The system resolver configuration could not be read or used.
    #[error("cannot configure the DNS resolver: {reason}")]
    Config {
        /// What went wrong.
        reason: String,
    },
    /// No DNS answer (of any kind) came back from the configured server.
    #[error("DNS server {server} is unreachable: {reason}")]
    Unreachable {
        /// The server(s) asked, e.g. `127.0.0.1:5353`.
        server: String,
        /// What the transport reported (timeout, connection refused, ...).
        reason: String,
    },
}

/// The survey's resolver. Cheap to clone; clones share connections.
///
/// The response cache is disabled (`cache_size` 0) so that every probe asks
/// the server again: a survey measures what DNS says now, and a cached
/// SERVFAIL from another task would be a false measurement. `/etc/hosts` is
/// never consulted for the same reason.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    pool: NameServerPool<TokioRuntimeProvider>,
    server_desc: String,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("server", &self.server_desc)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Builds the resolver. No packet is sent; call
    /// [`check_reachable`](Self::check_reachable) to find out whether the
    /// server answers before starting a crawl.
    pub fn new(cfg: &DnsConfig) -> Result<Self, DnsSetupError> {
        let (config, server_desc) = match cfg.server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                (
                    ResolverConfig::from_parts(None, vec![], vec![ns]),
                    addr.to_string(),
                )
            }
            None => {
                let (config, _) = hickory_resolver::system_conf::read_system_conf().map_err(
                    |e| DnsSetupError::Config {
                        reason: format!("reading the system resolver configuration: {e}"),
                    },
                )?;
                let desc = config
                    .name_servers
                    .iter()
                    .map(|ns| ns.ip.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                if desc.is_empty() {
                    return Err(DnsSetupError::Config {
                        reason: "the system resolver configuration lists no name server".into(),
                    });
                }
                (config, format!("system resolver ({desc})"))
            }
        };

        let opts = Self::options(cfg.timeout);
        let pool_cx = PoolContext::new(
            opts.clone(),
            TlsConfig::new().map_err(|e| DnsSetupError::Config {
                reason: e.to_string(),
            })?,
        );
        let pool = NameServerPool::from_config(
            config.name_servers.clone(),
            Arc::new(pool_cx),
            TokioRuntimeProvider::default(),
        );
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| DnsSetupError::Config {
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner,
            pool,
            server_desc,
        })
    }

    fn options(timeout: Duration) -> ResolverOpts {
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = ATTEMPTS;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        // Keep CNAMEs in answers so `HostLookup::cnames` can be filled.
        opts.preserve_intermediates = true;
        opts.ndots = 0;
        opts
    }

    /// Asks one question (`. SOA`) and reports whether any DNS answer came
    /// back. NXDOMAIN, REFUSED or SERVFAIL all prove that a DNS server is
    /// listening; only a timeout or a transport error does not. Run once
    /// before a crawl so a wrong `--dns-server` fails loudly instead of
    /// turning every domain into "timeout".
    pub async fn check_reachable(&self) -> Result<(), DnsSetupError> {
        let query = Query::query(Name::root(), RecordType::SOA);
        let request = DnsRequest::from_query(query, DnsRequestOptions::default());
        match self.pool.send(request).first_answer().await {
            Ok(_) | Err(NetError::Dns(_)) => Ok(()),
            Err(e) => Err(DnsSetupError::Unreachable {
                server: self.server_desc.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Looks up `service._tcp.DOMAIN SRV` (RFC 6120 §3.2.1, XEP-0368 §3) and
    /// orders the records as a client tries them ([`order`]).
    pub async fn srv(&self, domain: &str, service: SrvService) -> SrvLookup {
        let owner = format!("{}.{}", service.label(), normalize_name(domain));
        let mut out = SrvLookup {
            service,
            outcome: DnsOutcome::Error,
            detail: None,
            records: Vec::new(),
            decidedly_unavailable: false,
        };
        match self.lookup(&owner, RecordType::SRV).await {
            Ok(lookup) => {
                let records: Vec<SrvRecord> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::SRV(s) => Some(SrvRecord {
                            priority: s.priority,
                            weight: s.weight,
                            port: s.port,
                            target: s.target.to_ascii(),
                        }),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    out.outcome = DnsOutcome::NoData;
                } else {
                    out.outcome = DnsOutcome::Records;
                    (out.records, out.decidedly_unavailable) = order(records);
                }
            }
            Err((outcome, detail)) => {
                out.outcome = outcome;
                out.detail = detail;
            }
        }
        out
    }

    /// Looks up A and AAAA of `name` concurrently (the addresses a client
    /// connects to, RFC 6120 §3.2.1 step 4 / §3.2.2). Addresses are IPv4 then
    /// IPv6, each in answer order. `cnames` is the alias chain followed from
    /// `name` (taken from the A answer, or the AAAA answer when A failed).
    pub async fn host(&self, name: &str) -> HostLookup {
        let name = normalize_name(name);
        let (a, aaaa) = tokio::join!(
            self.lookup(&name, RecordType::A),
            self.lookup(&name, RecordType::AAAA)
        );
        let mut addrs = Vec::new();
        let mut cnames = Vec::new();
        let a_outcome = Self::collect_addrs(&name, &a, &mut addrs, &mut cnames);
        let aaaa_outcome = Self::collect_addrs(&name, &aaaa, &mut addrs, &mut cnames);
        HostLookup {
            name,
            a: a_outcome,
            aaaa: aaaa_outcome,
            addrs,
            cnames,
        }
    }

    fn collect_addrs(
        name: &str,
        result: &Result<Lookup, (DnsOutcome, Option<String>)>,
        addrs: &mut Vec<IpAddr>,
        cnames: &mut Vec<String>,
    ) -> DnsOutcome {
        let lookup = match result {
            Ok(l) => l,
            Err((outcome, _)) => return *outcome,
        };
        let before = addrs.len();
        addrs.extend(lookup.answers().iter().filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        }));
        if cnames.is_empty() {
            *cnames = cname_chain(name, lookup.message());
        }
        if addrs.len() > before {
            DnsOutcome::Records
        } else {
            DnsOutcome::NoData
        }
    }

    /// Looks up `_PORT._tcp.TARGET TLSA` (RFC 6698 §3, RFC 7673 §3: the TLSA
    /// owner for an XMPP endpoint is built from the SRV *target* and port).
    pub async fn tlsa(&self, port: u16, target: &str) -> TlsaLookup {
        let name = format!("_{port}._tcp.{}", normalize_name(target));
        let mut out = TlsaLookup {
            name: name.clone(),
            outcome: DnsOutcome::Error,
            records: Vec::new(),
        };
        match self.lookup(&name, RecordType::TLSA).await {
            Ok(lookup) => {
                out.records = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TLSA(t) => Some(TlsaRecord {
                            usage: t.cert_usage.into(),
                            selector: t.selector.into(),
                            matching: t.matching.into(),
                            data: hex::encode(&t.cert_data),
                        }),
                        _ => None,
                    })
                    .collect();
                out.outcome = if out.records.is_empty() {
                    DnsOutcome::NoData
                } else {
                    DnsOutcome::Records
                };
            }
            Err((outcome, _)) => out.outcome = outcome,
        }
        out
    }

    /// Reports whether the configured (validating, recursive) resolver
    /// vouches for the domain's answers, from the AD bit of its reply
    /// (RFC 4035 §3.2.3).
    ///
    /// The question is `_xmpp-server._tcp.DOMAIN SRV`; if that has no
    /// records, `DOMAIN A`. It is sent with the AD bit set in the *query*,
    /// which RFC 6840 §5.7 defines as the signal that the client wants the AD
    /// bit in the answer (validating resolvers such as Unbound and BIND only
    /// set AD in replies to queries with AD or DO). The ordinary lookups
    /// cannot be reused for this: hickory-resolver sends neither AD nor DO
    /// unless it validates itself, which fails outright on unsigned zones.
    ///
    /// `Validated`/`NotValidated` come from a positive answer's header;
    /// `Unknown` when neither question had records (hickory turns negative
    /// answers into errors and drops their header) or failed. The AD bit is
    /// only as trustworthy as the path to the resolver (RFC 4035 §4.9.3):
    /// use a resolver on localhost.
    pub async fn dnssec(&self, domain: &str) -> Dnssec {
        let domain = normalize_name(domain);
        let srv_owner = format!("{}.{domain}", SrvService::XmppServer.label());
        for (owner, rtype) in [(srv_owner.as_str(), RecordType::SRV), (&domain, RecordType::A)] {
            if let Some(ad) = self.ad_bit(owner, rtype).await {
                return if ad {
                    Dnssec::Validated
                } else {
                    Dnssec::NotValidated
                };
            }
        }
        Dnssec::Unknown
    }

    /// The AD bit of a positive answer to `owner rtype`, asked with AD=1.
    async fn ad_bit(&self, owner: &str, rtype: RecordType) -> Option<bool> {
        let name = fqdn(owner).ok()?;
        let mut request =
            DnsRequest::from_query(Query::query(name, rtype), DnsRequestOptions::default());
        request.metadata.authentic_data = true;
        let response = self.pool.send(request).first_answer().await.ok()?;
        let has_answer = response.answers.iter().any(|r| r.record_type() == rtype);
        has_answer.then_some(response.metadata.authentic_data)
    }

    /// Everything DNS says about one XMPP domain (MEASUREMENTS §2):
    /// 1. the four SRV questions concurrently;
    /// 2. A/AAAA of every distinct SRV target (except `.`), and of the domain
    ///    itself when `_xmpp-client` or `_xmpp-server` has no usable SRV
    ///    (no records, or the question failed), because a client then falls
    ///    back to the domain on 5222/5269 (RFC 6120 §3.2.2). A lone `.`
    ///    target means no fallback (RFC 6120 §3.2.1). `_xmpps-*` has no
    ///    fallback (XEP-0368 §3);
    /// 3. TLSA at `_PORT._tcp.TARGET` for every (port, target) of the SRV
    ///    records (RFC 7673 §3) and for the fallback endpoints (RFC 6698 §3);
    /// 4. the DNSSEC status ([`dnssec`](Self::dnssec)).
    ///
    /// Steps 2, 3 and 4 run concurrently. Output order is deterministic:
    /// hosts and TLSA names in the order they first appear in the SRV
    /// answers, fallback entries last.
    pub async fn discover(&self, domain: &str) -> DnsReport {
        let domain = normalize_name(domain);
        let srv = join_all(SrvService::ALL.iter().map(|&s| self.srv(&domain, s))).await;

        let mut host_names: Vec<String> = Vec::new();
        let mut tlsa_pairs: Vec<(u16, String)> = Vec::new();
        for lookup in &srv {
            for r in &lookup.records {
                if r.target == "." {
                    continue;
                }
                if !host_names.contains(&r.target) {
                    host_names.push(r.target.clone());
                }
                let pair = (r.port, r.target.clone());
                if !tlsa_pairs.contains(&pair) {
                    tlsa_pairs.push(pair);
                }
            }
        }
        for lookup in &srv {
            let fallback = matches!(
                lookup.service,
                SrvService::XmppClient | SrvService::XmppServer
            ) && lookup.outcome != DnsOutcome::Records;
            if fallback {
                if !host_names.contains(&domain) {
                    host_names.push(domain.clone());
                }
                let pair = (lookup.service.default_port(), domain.clone());
                if !tlsa_pairs.contains(&pair) {
                    tlsa_pairs.push(pair);
                }
            }
        }

        let hosts = join_all(host_names.iter().map(|h| self.host(h)));
        let tlsa = join_all(tlsa_pairs.iter().map(|(p, t)| self.tlsa(*p, t)));
        let (hosts, tlsa, dnssec) = tokio::join!(hosts, tlsa, self.dnssec(&domain));
        DnsReport {
            srv,
            hosts,
            tlsa,
            dnssec,
        }
    }

    /// One question through the (cache-less) resolver, classified.
    async fn lookup(
        &self,
        owner: &str,
        rtype: RecordType,
    ) -> Result<Lookup, (DnsOutcome, Option<String>)> {
        let name = fqdn(owner).map_err(|e| {
            (
                DnsOutcome::Error,
                Some(format!("invalid name {owner:?}: {e}")),
            )
        })?;
        self.inner
            .lookup(name, rtype)
            .await
            .map_err(|e| classify(&e))
    }
}

/// The fully qualified (trailing-dot) form of `owner`, so no search domain
/// is ever appended.
fn fqdn(owner: &str) -> Result<Name, String> {
    let mut name = Name::from_utf8(owner).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// Follows the CNAME records of `message` from `start`, returning each alias
/// target in order (normalised). Stops on loops and at 16 hops.
fn cname_chain(start: &str, message: &Message) -> Vec<String> {
    const MAX_HOPS: usize = 16;
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let mut current = normalize_name(start);
    seen.insert(current.clone());
    while chain.len() < MAX_HOPS {
        let next = message.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if normalize_name(&r.name.to_ascii()) == current => {
                Some(normalize_name(&c.0.to_ascii()))
            }
            _ => None,
        });
        match next {
            Some(n) if seen.insert(n.clone()) => {
                chain.push(n.clone());
                current = n;
            }
            _ => break,
        }
    }
    chain
}

/// Maps a hickory error to the survey's outcome (MEASUREMENTS §2): NXDOMAIN,
/// NODATA, SERVFAIL, REFUSED and timeout are distinct; anything else is
/// `Error` with the message kept as detail.
fn classify(err: &NetError) -> (DnsOutcome, Option<String>) {
    match err {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => (DnsOutcome::NxDomain, None),
            ResponseCode::NoError => (DnsOutcome::NoData, None),
            ResponseCode::ServFail => (DnsOutcome::ServFail, None),
            ResponseCode::Refused => (DnsOutcome::Refused, None),
            other => (DnsOutcome::Error, Some(format!("response code {other}"))),
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            (DnsOutcome::ServFail, None)
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => {
            (DnsOutcome::Refused, None)
        }
        NetError::Dns(DnsError::ResponseCode(other)) => {
            (DnsOutcome::Error, Some(format!("response code {other}")))
        }
        NetError::Timeout => (DnsOutcome::Timeout, None),
        NetError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => (DnsOutcome::Timeout, None),
        other => (DnsOutcome::Error, Some(other.to_string())),
    }
}
