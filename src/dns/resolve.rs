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
//!
//! The questions about names many domains share (a SRV target's A/AAAA,
//! its TLSA) go through the run's [`AnswerCache`], which honours TTLs and
//! never keeps failures; the per-domain questions (SRV, DNSSEC) never do.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
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

use super::cache::{self, AnswerCache, Found, Question};
use super::srv::{normalize_name, order};
use super::{
    DnsOutcome, DnsReport, Dnssec, HostLookup, SrvLookup, SrvService, TlsaLookup, TlsaRecord,
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
/// hickory's response cache is disabled (`cache_size` 0): it would keep
/// SERVFAILs and share the per-domain questions, and a survey measures what
/// DNS says now. Only the shared names' answers are reused, through the
/// run's own [`AnswerCache`] (TTL-bound, failures never kept).
/// `/etc/hosts` is never consulted.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    pool: NameServerPool<TokioRuntimeProvider>,
    server_desc: String,
    timeout: Duration,
    shared_answers: Arc<AnswerCache>,
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
                let (config, _) =
                    hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                        DnsSetupError::Config {
                            reason: format!("reading the system resolver configuration: {e}"),
                        }
                    })?;
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
            timeout: cfg.timeout,
            shared_answers: Arc::new(AnswerCache::new()),
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
            Err(NetError::Timeout) => Err(DnsSetupError::Unreachable {
                server: self.server_desc.clone(),
                reason: format!(
                    "no answer to `. SOA` within {:?} over UDP or TCP",
                    self.timeout
                ),
            }),
            Err(e) => Err(DnsSetupError::Unreachable {
                server: self.server_desc.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Hits and questions of the shared-name answer cache so far (this
    /// resolver and its clones: one run).
    pub fn cache_stats(&self) -> cache::CacheStats {
        self.shared_answers.stats()
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
                let records = super::srv::records_from_answers(lookup.answers());
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
            self.lookup_shared(&name, RecordType::A),
            self.lookup_shared(&name, RecordType::AAAA)
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
        match self.lookup_shared(&name, RecordType::TLSA).await {
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
        for (owner, rtype) in [
            (srv_owner.as_str(), RecordType::SRV),
            (&domain, RecordType::A),
        ] {
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
    async fn lookup(&self, owner: &str, rtype: RecordType) -> cache::Answer {
        ask(&self.inner, owner, rtype).await.0
    }

    /// One question about a name other domains may share (an SRV target,
    /// its TLSA owner): answered from the run's cache while a kept answer
    /// is valid, joined to the same question in flight, or asked.
    async fn lookup_shared(&self, owner: &str, rtype: RecordType) -> cache::Answer {
        let q = Question::new(owner, rtype);
        let flight = match self.shared_answers.find(&q, Instant::now()) {
            Found::Ready(answer) => return answer,
            Found::Pending(flight) => flight,
            Found::Absent => {
                // The flight holds the hickory resolver only, not `self`:
                // the cache must not own a handle to itself.
                let inner = self.inner.clone();
                let owner = owner.to_owned();
                let flight = async move {
                    let (answer, negative_ttl) = ask(&inner, &owner, rtype).await;
                    let until = cache::keep_until(&answer, negative_ttl, Instant::now());
                    (answer, until)
                }
                .boxed()
                .shared();
                self.shared_answers.start(q.clone(), flight)
            }
        };
        let (answer, until) = flight.await;
        // Every awaiter settles (idempotent): the task that started the
        // flight may have been cancelled before it finished.
        self.shared_answers.settle(q, &answer, until);
        answer
    }
}

/// Asks `owner rtype` once; the classified answer and, for a negative
/// answer with an SOA, its negative TTL (RFC 2308 §5).
async fn ask(
    inner: &TokioResolver,
    owner: &str,
    rtype: RecordType,
) -> (cache::Answer, Option<u32>) {
    let name = match fqdn(owner) {
        Ok(name) => name,
        Err(e) => {
            let detail = format!("invalid name {owner:?}: {e}");
            return (Err((DnsOutcome::Error, Some(detail))), None);
        }
    };
    match inner.lookup(name, rtype).await {
        Ok(lookup) => (Ok(lookup), None),
        Err(e) => {
            let negative_ttl = match &e {
                NetError::Dns(DnsError::NoRecordsFound(nr)) => nr.negative_ttl,
                _ => None,
            };
            (Err(classify(&e)), negative_ttl)
        }
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
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => (DnsOutcome::Refused, None),
        NetError::Dns(DnsError::ResponseCode(other)) => {
            (DnsOutcome::Error, Some(format!("response code {other}")))
        }
        NetError::Timeout => (DnsOutcome::Timeout, None),
        NetError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => (DnsOutcome::Timeout, None),
        NetError::Io(e) => match crate::budget::local_exhaustion(e) {
            Some(kind) => (
                DnsOutcome::LocalResourceExhausted,
                Some(crate::budget::exhaustion_detail(kind, e)),
            ),
            None => (DnsOutcome::Error, Some(err.to_string())),
        },
        other => (DnsOutcome::Error, Some(other.to_string())),
    }
}

#[cfg(test)]
#[cfg(feature = "testnet")]
mod tests {
    //! Loopback tests: our own test DNS server on 127.0.0.1, never the
    //! system resolver.

    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Instant;

    use super::*;
    use crate::dns::SrvRecord;
    use crate::testnet::dns::{DnsServer, ZoneData, serve};

    /// Short, so the timeout test is fast; loopback answers in microseconds.
    const TEST_TIMEOUT: Duration = Duration::from_millis(300);

    async fn start(zone: ZoneData) -> (DnsServer, Resolver) {
        let server = serve(zone, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind test DNS server");
        let resolver = Resolver::new(&DnsConfig {
            server: Some(server.addr),
            timeout: TEST_TIMEOUT,
        })
        .expect("resolver");
        (server, resolver)
    }

    fn srv_rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[tokio::test]
    async fn rfc2782_srv_priorities_and_weights() {
        let mut z = ZoneData::new();
        let n = "_xmpp-client._tcp.multi.test";
        z.add_srv(n, 20, 0, 5222, "c.multi.test").unwrap();
        z.add_srv(n, 10, 1, 5222, "b.multi.test").unwrap();
        z.add_srv(n, 10, 50, 5223, "A.Multi.Test").unwrap();
        let (_s, r) = start(z).await;
        let got = r.srv("multi.test", SrvService::XmppClient).await;
        assert_eq!(got.outcome, DnsOutcome::Records);
        assert_eq!(
            got.records,
            vec![
                srv_rec(10, 50, 5223, "a.multi.test"),
                srv_rec(10, 1, 5222, "b.multi.test"),
                srv_rec(20, 0, 5222, "c.multi.test"),
            ]
        );
        assert!(!got.decidedly_unavailable);
    }

    #[tokio::test]
    async fn rfc6120_3_2_1_lone_dot_target_is_decidedly_unavailable() {
        let mut z = ZoneData::new();
        z.add_srv("_xmpp-server._tcp.nos2s.test", 0, 0, 0, ".")
            .unwrap();
        let (_s, r) = start(z).await;
        let got = r.srv("nos2s.test", SrvService::XmppServer).await;
        assert_eq!(got.outcome, DnsOutcome::Records);
        assert!(got.decidedly_unavailable);
        assert_eq!(got.records, vec![srv_rec(0, 0, 0, ".")]);
    }

    #[tokio::test]
    async fn nxdomain_and_nodata_are_distinct() {
        let mut z = ZoneData::new();
        // `_xmpp-client._tcp.nodata.test` exists (it owns an A record) but
        // has no SRV: NOERROR with an empty answer.
        z.add_a("_xmpp-client._tcp.nodata.test", Ipv4Addr::new(127, 0, 0, 9));
        z.add_a("exists.test", Ipv4Addr::new(127, 0, 0, 10));
        let (_s, r) = start(z).await;
        let nx = r.srv("nowhere.test", SrvService::XmppClient).await;
        assert_eq!(nx.outcome, DnsOutcome::NxDomain);
        let nodata = r.srv("nodata.test", SrvService::XmppClient).await;
        assert_eq!(nodata.outcome, DnsOutcome::NoData);
        let sibling = r.srv("nodata.test", SrvService::XmppServer).await;
        assert_eq!(sibling.outcome, DnsOutcome::NxDomain);
        let h = r.host("exists.test").await;
        assert_eq!((h.a, h.aaaa), (DnsOutcome::Records, DnsOutcome::NoData));
        // A name with only names below it (empty non-terminal, RFC 8020)
        // exists: NODATA, not NXDOMAIN.
        let h = r.host("_tcp.nodata.test").await;
        assert_eq!((h.a, h.aaaa), (DnsOutcome::NoData, DnsOutcome::NoData));
    }

    #[tokio::test]
    async fn servfail_is_recorded() {
        let mut z = ZoneData::new();
        z.add_srv("_xmpp-client._tcp.broken.test", 0, 0, 5222, "x.broken.test")
            .unwrap();
        z.servfail("broken.test");
        let (_s, r) = start(z).await;
        let got = r.srv("broken.test", SrvService::XmppClient).await;
        assert_eq!(got.outcome, DnsOutcome::ServFail);
        assert!(got.records.is_empty());
        let h = r.host("broken.test").await;
        assert_eq!((h.a, h.aaaa), (DnsOutcome::ServFail, DnsOutcome::ServFail));
    }

    #[tokio::test]
    async fn shared_names_come_from_the_run_cache_and_failures_are_asked_again() {
        let mut z = ZoneData::new();
        z.add_a("xmpp.hosting.test", Ipv4Addr::new(127, 0, 0, 12));
        z.add_srv(
            "_xmpp-client._tcp.customer.test",
            0,
            0,
            5222,
            "xmpp.hosting.test",
        )
        .unwrap();
        z.servfail("broken.test");
        let (server, r) = start(z).await;
        let first = r.host("xmpp.hosting.test").await;
        assert_eq!(
            (first.a, first.aaaa),
            (DnsOutcome::Records, DnsOutcome::NoData)
        );
        for _ in 0..2 {
            let h = r.host("broken.test").await;
            assert_eq!((h.a, h.aaaa), (DnsOutcome::ServFail, DnsOutcome::ServFail));
        }
        // A, AAAA of the shared name; A, AAAA of the broken one twice:
        // a SERVFAIL is never kept.
        assert_eq!(r.cache_stats().asked, 6);
        assert_eq!(r.cache_stats().hits, 0);

        server.shutdown().await;
        // The server is gone: the shared name's A answer and its NODATA
        // (kept for the SOA's negative TTL) come from the cache ...
        let again = r.host("XMPP.Hosting.test.").await;
        assert_eq!(again, first);
        assert_eq!(r.cache_stats().hits, 2);
        // ... while the per-domain SRV question is asked and times out,
        // and so does the name whose last answer was a failure.
        let srv = r.srv("customer.test", SrvService::XmppClient).await;
        assert_eq!(srv.outcome, DnsOutcome::Timeout);
        let broken = r.host("broken.test").await;
        assert_eq!(broken.a, DnsOutcome::Timeout);
        assert_eq!(r.cache_stats().asked, 8);
    }

    #[tokio::test]
    async fn dropped_queries_time_out() {
        let mut z = ZoneData::new();
        z.add_a("slow.test", Ipv4Addr::new(127, 0, 0, 11));
        z.drop_queries("slow.test");
        let (_s, r) = start(z).await;
        let t0 = Instant::now();
        let got = r.srv("slow.test", SrvService::XmppServer).await;
        assert_eq!(got.outcome, DnsOutcome::Timeout);
        let h = r.host("slow.test").await;
        assert_eq!((h.a, h.aaaa), (DnsOutcome::Timeout, DnsOutcome::Timeout));
        assert!(h.addrs.is_empty());
        // Bounded by timeout × (1 + ATTEMPTS) per question, run twice here.
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn cname_chain_to_a_is_followed_and_recorded() {
        let mut z = ZoneData::new();
        z.add_cname("alias.test", "middle.test").unwrap();
        z.add_cname("middle.test", "Real.Test").unwrap();
        z.add_a("real.test", Ipv4Addr::new(127, 0, 3, 1));
        z.add_a("real.test", Ipv4Addr::new(127, 0, 3, 2));
        let (_s, r) = start(z).await;
        let h = r.host("alias.test.").await;
        assert_eq!(h.name, "alias.test");
        assert_eq!(h.a, DnsOutcome::Records);
        assert_eq!(h.aaaa, DnsOutcome::NoData);
        assert_eq!(h.cnames, vec!["middle.test", "real.test"]);
        assert_eq!(
            h.addrs,
            vec![
                IpAddr::from(Ipv4Addr::new(127, 0, 3, 1)),
                IpAddr::from(Ipv4Addr::new(127, 0, 3, 2))
            ]
        );
    }

    #[tokio::test]
    async fn cname_to_a_misbehaving_target_is_followed_by_the_resolver() {
        // The server stops chasing at a target with a behaviour; the
        // resolver then asks for the target itself and gets SERVFAIL.
        let mut z = ZoneData::new();
        z.add_cname("alias2.test", "dead.test").unwrap();
        z.add_a("dead.test", Ipv4Addr::new(127, 0, 3, 3));
        z.servfail("dead.test");
        let (_s, r) = start(z).await;
        let h = r.host("alias2.test").await;
        assert_eq!(h.a, DnsOutcome::ServFail);
        assert!(h.addrs.is_empty());
    }

    #[tokio::test]
    async fn aaaa_only_host() {
        let mut z = ZoneData::new();
        z.add_aaaa("v6.test", "fd00::1".parse::<Ipv6Addr>().unwrap());
        z.add_aaaa("v6.test", Ipv6Addr::LOCALHOST);
        let (_s, r) = start(z).await;
        let h = r.host("v6.test").await;
        assert_eq!(h.a, DnsOutcome::NoData);
        assert_eq!(h.aaaa, DnsOutcome::Records);
        assert_eq!(
            h.addrs,
            vec![
                "fd00::1".parse::<IpAddr>().unwrap(),
                IpAddr::from(Ipv6Addr::LOCALHOST)
            ]
        );
        assert!(h.cnames.is_empty());
    }

    #[tokio::test]
    async fn dual_stack_lists_ipv4_first() {
        let mut z = ZoneData::new();
        z.add_aaaa("dual.test", Ipv6Addr::LOCALHOST);
        z.add_a("dual.test", Ipv4Addr::new(127, 0, 4, 1));
        let (_s, r) = start(z).await;
        let h = r.host("dual.test").await;
        assert_eq!(
            h.addrs,
            vec![
                IpAddr::from(Ipv4Addr::new(127, 0, 4, 1)),
                IpAddr::from(Ipv6Addr::LOCALHOST)
            ]
        );
    }

    #[tokio::test]
    async fn rfc6698_tlsa_at_port_tcp_target() {
        let mut z = ZoneData::new();
        z.add_tlsa("_5269._tcp.xmpp.dane.test", 3, 1, 1, vec![0xAB; 32]);
        z.add_a("xmpp.dane.test", Ipv4Addr::new(127, 0, 5, 1));
        let (_s, r) = start(z).await;
        let t = r.tlsa(5269, "XMPP.dane.test.").await;
        assert_eq!(t.name, "_5269._tcp.xmpp.dane.test");
        assert_eq!(t.outcome, DnsOutcome::Records);
        assert_eq!(
            t.records,
            vec![TlsaRecord {
                usage: 3,
                selector: 1,
                matching: 1,
                data: "ab".repeat(32),
            }]
        );
        let none = r.tlsa(5222, "xmpp.dane.test").await;
        assert_eq!(none.outcome, DnsOutcome::NxDomain);
        assert!(none.records.is_empty());
    }

    #[tokio::test]
    async fn discover_full_domain() {
        let d = "full.test";
        let mut z = ZoneData::new();
        z.add_srv("_xmpp-client._tcp.full.test", 5, 0, 5222, "c2s.full.test")
            .unwrap();
        z.add_srv("_xmpps-client._tcp.full.test", 5, 0, 5223, "c2s.full.test")
            .unwrap();
        z.add_srv(
            "_xmpp-server._tcp.full.test",
            10,
            0,
            5269,
            "s2s-b.full.test",
        )
        .unwrap();
        z.add_srv("_xmpp-server._tcp.full.test", 5, 0, 5269, "s2s-a.full.test")
            .unwrap();
        // No _xmpps-server: NXDOMAIN, and no fallback for direct TLS.
        z.add_a("c2s.full.test", Ipv4Addr::new(127, 0, 6, 1));
        z.add_a("s2s-a.full.test", Ipv4Addr::new(127, 0, 6, 2));
        z.add_aaaa("s2s-b.full.test", Ipv6Addr::LOCALHOST);
        z.add_tlsa("_5269._tcp.s2s-a.full.test", 3, 1, 1, vec![1, 2, 3]);
        z.add_a(d, Ipv4Addr::new(127, 0, 6, 9));
        let (_s, r) = start(z).await;
        let rep = r.discover("Full.Test.").await;

        let services: Vec<SrvService> = rep.srv.iter().map(|s| s.service).collect();
        assert_eq!(services, SrvService::ALL);
        let outcomes: Vec<DnsOutcome> = rep.srv.iter().map(|s| s.outcome).collect();
        assert_eq!(
            outcomes,
            [
                DnsOutcome::Records,
                DnsOutcome::Records,
                DnsOutcome::Records,
                DnsOutcome::NxDomain
            ]
        );
        assert_eq!(rep.srv[2].records[0].target, "s2s-a.full.test");

        // Distinct targets in SRV order; the domain is not asked since both
        // _xmpp-client and _xmpp-server have SRV records.
        let hosts: Vec<&str> = rep.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            hosts,
            ["c2s.full.test", "s2s-a.full.test", "s2s-b.full.test"]
        );
        assert_eq!(rep.hosts[2].aaaa, DnsOutcome::Records);

        let tlsa: Vec<(&str, DnsOutcome)> = rep
            .tlsa
            .iter()
            .map(|t| (t.name.as_str(), t.outcome))
            .collect();
        assert_eq!(
            tlsa,
            [
                ("_5222._tcp.c2s.full.test", DnsOutcome::NxDomain),
                ("_5223._tcp.c2s.full.test", DnsOutcome::NxDomain),
                ("_5269._tcp.s2s-a.full.test", DnsOutcome::Records),
                ("_5269._tcp.s2s-b.full.test", DnsOutcome::NxDomain),
            ]
        );
        assert_eq!(rep.dnssec, Dnssec::NotValidated);
    }

    #[tokio::test]
    async fn rfc6120_3_2_2_discover_falls_back_to_the_domain() {
        let mut z = ZoneData::new();
        z.add_a("plain.test", Ipv4Addr::new(127, 0, 7, 1));
        // c2s explicitly unavailable: no fallback for it.
        z.add_srv("_xmpp-client._tcp.plain.test", 0, 0, 0, ".")
            .unwrap();
        let (_s, r) = start(z).await;
        let rep = r.discover("plain.test").await;
        assert!(rep.srv[0].decidedly_unavailable);
        assert_eq!(rep.srv[2].outcome, DnsOutcome::NxDomain);
        let hosts: Vec<&str> = rep.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(hosts, ["plain.test"]);
        assert_eq!(
            rep.hosts[0].addrs,
            vec![IpAddr::from(Ipv4Addr::new(127, 0, 7, 1))]
        );
        let tlsa: Vec<&str> = rep.tlsa.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tlsa, ["_5269._tcp.plain.test"]);
        // No SRV for s2s: DNSSEC status comes from the domain's A answer.
        assert_eq!(rep.dnssec, Dnssec::NotValidated);
    }

    #[tokio::test]
    async fn rfc4035_3_2_3_ad_bit_gives_validated() {
        let mut z = ZoneData::new();
        for d in ["signed.test", "unsigned.test"] {
            z.add_srv(
                &format!("_xmpp-server._tcp.{d}"),
                0,
                0,
                5269,
                &format!("x.{d}"),
            )
            .unwrap();
            z.add_a(&format!("x.{d}"), Ipv4Addr::new(127, 0, 8, 1));
        }
        z.add_a("signed-a-only.test", Ipv4Addr::new(127, 0, 8, 2));
        z.secure("signed.test");
        z.secure("signed-a-only.test");
        let (_s, r) = start(z).await;
        assert_eq!(r.dnssec("signed.test").await, Dnssec::Validated);
        assert_eq!(r.dnssec("unsigned.test").await, Dnssec::NotValidated);
        assert_eq!(r.dnssec("signed-a-only.test").await, Dnssec::Validated);
        assert_eq!(r.dnssec("missing.test").await, Dnssec::Unknown);
        assert_eq!(r.discover("signed.test").await.dnssec, Dnssec::Validated);
    }

    #[tokio::test]
    async fn check_reachable_against_test_server() {
        let (_s, r) = start(ZoneData::new()).await;
        // `. SOA` is NXDOMAIN here: still an answer, so reachable.
        r.check_reachable().await.expect("reachable");
    }

    #[tokio::test]
    async fn check_reachable_reports_a_dead_server_by_address() {
        let r = Resolver::new(&DnsConfig {
            server: Some("127.0.0.1:1".parse().unwrap()),
            timeout: TEST_TIMEOUT,
        })
        .unwrap();
        let err = r
            .check_reachable()
            .await
            .expect_err("nothing listens on :1");
        assert!(
            matches!(&err, DnsSetupError::Unreachable { server, .. } if server == "127.0.0.1:1"),
            "{err:?}"
        );
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        eprintln!("check_reachable message: {err}");
    }

    #[tokio::test]
    async fn stopped_server_times_out() {
        let mut z = ZoneData::new();
        z.add_a("gone.test", Ipv4Addr::new(127, 0, 9, 1));
        z.add_srv("_xmpp-server._tcp.gone.test", 0, 0, 5269, "gone.test")
            .unwrap();
        let (s, r) = start(z).await;
        let srv = |r: &Resolver| {
            let r = r.clone();
            async move { r.srv("gone.test", SrvService::XmppServer).await.outcome }
        };
        assert_eq!(srv(&r).await, DnsOutcome::Records);
        assert_eq!(r.host("gone.test").await.a, DnsOutcome::Records);
        let addr = s.addr;
        s.shutdown().await;
        // The per-domain question is never reused ...
        assert_ne!(srv(&r).await, DnsOutcome::Records);
        // ... and the next run starts without the last one's answers.
        let next_run = Resolver::new(&DnsConfig {
            server: Some(addr),
            timeout: TEST_TIMEOUT,
        })
        .unwrap();
        assert_ne!(next_run.host("gone.test").await.a, DnsOutcome::Records);
        assert!(r.check_reachable().await.is_err());
    }

    #[test]
    fn classify_maps_every_named_outcome() {
        use hickory_resolver::net::NoRecords;
        let q = Query::query(Name::root(), RecordType::A);
        let nr = |code| NetError::Dns(DnsError::NoRecordsFound(NoRecords::new(q.clone(), code)));
        assert_eq!(
            classify(&nr(ResponseCode::NXDomain)).0,
            DnsOutcome::NxDomain
        );
        assert_eq!(classify(&nr(ResponseCode::NoError)).0, DnsOutcome::NoData);
        let rc = |code| NetError::Dns(DnsError::ResponseCode(code));
        assert_eq!(
            classify(&rc(ResponseCode::ServFail)).0,
            DnsOutcome::ServFail
        );
        assert_eq!(classify(&rc(ResponseCode::Refused)).0, DnsOutcome::Refused);
        let (o, d) = classify(&rc(ResponseCode::FormErr));
        assert_eq!(o, DnsOutcome::Error);
        assert!(d.is_some());
        assert_eq!(classify(&NetError::Timeout).0, DnsOutcome::Timeout);
        assert_eq!(classify(&NetError::Msg("odd".into())).0, DnsOutcome::Error);
    }
}
