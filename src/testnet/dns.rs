//! The testnet's DNS server (TESTNET.md "Shape"): one in-process server on a
//! loopback port that answers for every name the testnet defines, with
//! per-name misbehaviours that zone data cannot express.
//!
//! It implements [`RequestHandler`] over a `HashMap` instead of using
//! hickory's `Catalog`, because SERVFAIL, silently dropped queries (client
//! timeout) and a per-name AD bit are properties of a *server*, not of zone
//! content. Lookups are one hash probe per name, so 10,000 domains with a
//! handful of records each build and start in milliseconds.
//!
//! Behaviour follows an authoritative server (RFC 1034 §4.3.2):
//! - records of the asked type: NOERROR with them;
//! - the name owns other records, or has names below it (an "empty
//!   non-terminal", RFC 8020): NOERROR with no answer (NODATA) and a SOA in
//!   the authority section (RFC 2308 §2.2);
//! - otherwise NXDOMAIN with a SOA (RFC 2308 §2.1);
//! - a CNAME at the name (and a question for another type): the CNAME, then
//!   the chain is chased within the answer while its targets are known, as
//!   RFC 1034 §4.3.2 step 3.a describes; the RCODE is that of the last name
//!   (RFC 6604 §3).
//!
//! There is no zone cut: the server answers for any name, with a synthetic
//! SOA owned by the name's top-level label.
//!
//! Avoid `localhost`, `invalid`, `local` and `onion` names in the testnet:
//! hickory-resolver answers those itself (RFC 6761) without asking.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV, TLSA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// TTL of every record served. Short, so nothing downstream caches the
/// testnet for long; the survey's resolver has no cache anyway.
const TTL: u32 = 60;

/// Longest CNAME chain chased inside one answer (loops are cut as well).
const MAX_CHASE: usize = 8;

/// How long an idle TCP client may stay connected to the test server.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Payload size advertised in EDNS answers (the DNS Flag Day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// How often binding UDP and TCP to one free port is retried when another
/// process grabbed the TCP port between the two binds.
const BIND_TRIES: usize = 16;

/// The content of the test zone plus per-name behaviours. Build it once,
/// then hand it to [`serve`].
///
/// Names are case-insensitive and may be written with or without the
/// trailing dot.
#[derive(Debug, Default, Clone)]
pub struct ZoneData {
    nodes: HashMap<String, Vec<RData>>,
    /// Names that exist only because a name below them has records.
    non_terminals: HashSet<String>,
    servfail: HashSet<String>,
    dropped: HashSet<String>,
    secure: HashSet<String>,
}

impl ZoneData {
    /// An empty zone: every name is NXDOMAIN.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record at `name`. Any [`RData`] is accepted; the typed
    /// helpers below cover the records XMPP discovery uses.
    pub fn add(&mut self, name: &str, rdata: RData) {
        let key = key(name);
        let mut parent = parent_of(&key);
        while let Some(p) = parent {
            if !self.non_terminals.insert(p.to_owned()) {
                break; // its ancestors are already there
            }
            parent = parent_of(p);
        }
        let records = self.nodes.entry(key).or_default();
        // Domains sharing a host name add its address once each: one
        // record in the answer (RFC 2181 §5: an RRset has no duplicates).
        if !records.contains(&rdata) {
            records.push(rdata);
        }
    }

    /// Adds an SRV record (RFC 2782). `target` `"."` is the "decidedly not
    /// available" record of RFC 6120 §3.2.1.
    pub fn add_srv(
        &mut self,
        name: &str,
        priority: u16,
        weight: u16,
        port: u16,
        target: &str,
    ) -> Result<(), ProtoError> {
        let target = fqdn(target)?;
        self.add(name, RData::SRV(SRV::new(priority, weight, port, target)));
        Ok(())
    }

    /// Adds an A record.
    pub fn add_a(&mut self, name: &str, ip: Ipv4Addr) {
        self.add(name, RData::A(A(ip)));
    }

    /// Adds an AAAA record.
    pub fn add_aaaa(&mut self, name: &str, ip: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(ip)));
    }

    /// Adds a CNAME (alias) from `name` to `target` (RFC 1034 §3.6.2).
    pub fn add_cname(&mut self, name: &str, target: &str) -> Result<(), ProtoError> {
        let target = fqdn(target)?;
        self.add(name, RData::CNAME(CNAME(target)));
        Ok(())
    }

    /// Adds a TLSA record (RFC 6698 §2.1) with the raw field values.
    pub fn add_tlsa(&mut self, name: &str, usage: u8, selector: u8, matching: u8, data: Vec<u8>) {
        let rdata = TLSA::new(
            CertUsage::from(usage),
            Selector::from(selector),
            Matching::from(matching),
            data,
        );
        self.add(name, RData::TLSA(rdata));
    }

    /// Every question for `name` or any name below it is answered SERVFAIL
    /// (RCODE 2), as a broken or lame delegation looks to a client.
    pub fn servfail(&mut self, name: &str) {
        self.servfail.insert(key(name));
    }

    /// Questions for `name` or any name below it are never answered, so the
    /// client times out (an unreachable or filtered name server).
    pub fn drop_queries(&mut self, name: &str) {
        self.dropped.insert(key(name));
    }

    /// Answers for `name` or any name below it carry the AD bit, as a
    /// validating resolver sets it for DNSSEC-secure data (RFC 4035
    /// §3.2.3). Like such a resolver, the bit is only set when the query
    /// asked for it with AD or DO (RFC 6840 §5.7).
    pub fn secure(&mut self, name: &str) {
        self.secure.insert(key(name));
    }

    /// Number of names that own records.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no name owns a record.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn behaviour(&self, key: &str) -> Behaviour {
        let mut b = Behaviour::default();
        let mut cur = Some(key);
        while let Some(k) = cur {
            b.drop |= self.dropped.contains(k);
            b.servfail |= self.servfail.contains(k);
            b.secure |= self.secure.contains(k);
            cur = parent_of(k);
        }
        b
    }

    /// The answer section and RCODE for `qname qtype`, chasing CNAMEs.
    fn resolve(&self, qname: &Name, qtype: RecordType) -> (ResponseCode, Vec<Record>) {
        let mut answers = Vec::new();
        let mut owner = qname.clone();
        let mut seen = HashSet::new();
        for hop in 0..MAX_CHASE {
            let k = key(&owner.to_ascii());
            if !seen.insert(k.clone()) {
                break; // CNAME loop: return what we have
            }
            if hop > 0 && !self.behaviour(&k).is_plain() {
                // Let the client ask for the misbehaving target itself.
                break;
            }
            let Some(rdatas) = self.nodes.get(&k) else {
                let code = if self.non_terminals.contains(&k) {
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                };
                return (code, answers);
            };
            let matching: Vec<&RData> = rdatas
                .iter()
                .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
                .collect();
            if !matching.is_empty() {
                answers.extend(
                    matching
                        .into_iter()
                        .map(|r| Record::from_rdata(owner.clone(), TTL, r.clone())),
                );
                break;
            }
            let cname = rdatas.iter().find_map(|r| match r {
                RData::CNAME(c) => Some(c.0.clone()),
                _ => None,
            });
            match cname {
                Some(target) => {
                    answers.push(Record::from_rdata(
                        owner.clone(),
                        TTL,
                        RData::CNAME(CNAME(target.clone())),
                    ));
                    owner = target;
                }
                None => break, // NODATA
            }
        }
        (ResponseCode::NoError, answers)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Behaviour {
    drop: bool,
    servfail: bool,
    secure: bool,
}

impl Behaviour {
    fn is_plain(self) -> bool {
        !self.drop && !self.servfail
    }
}

/// Lowercase, fully qualified map key.
fn key(name: &str) -> String {
    let mut k = name.to_ascii_lowercase();
    if !k.ends_with('.') {
        k.push('.');
    }
    k
}

/// The parent of a key (`a.b.` → `b.`, `b.` → `.`, `.` → none).
fn parent_of(key: &str) -> Option<&str> {
    if key == "." {
        return None;
    }
    match key.find('.') {
        Some(i) if i + 1 < key.len() => Some(&key[i + 1..]),
        _ => Some("."),
    }
}

fn fqdn(name: &str) -> Result<Name, ProtoError> {
    let mut n = Name::from_utf8(name)?;
    n.set_fqdn(true);
    Ok(n)
}

/// The synthetic SOA for negative answers (RFC 2308 §3), owned by the
/// question's top-level label.
fn soa_for(qname: &Name) -> Record {
    let apex = if qname.num_labels() == 0 {
        Name::root()
    } else {
        qname.trim_to(1)
    };
    let host = |label: &str| {
        Name::from_ascii(label)
            .and_then(|l| l.append_domain(&apex))
            .unwrap_or_else(|_| apex.clone())
    };
    let soa = SOA::new(host("ns"), host("hostmaster"), 1, 3600, 600, 86400, TTL);
    Record::from_rdata(apex.clone(), TTL, RData::SOA(soa))
}

/// The request handler: reads [`ZoneData`], never changes it.
struct Handler {
    zone: Arc<ZoneData>,
}

impl Handler {
    async fn answer<R: ResponseHandler>(&self, request: &Request, mut rh: R) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = true;
        meta.recursion_available = true;

        let mut resp_edns = Edns::new();
        resp_edns.set_max_payload(EDNS_PAYLOAD);
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if request.edns.is_some() {
            builder.edns(&resp_edns);
        }

        let query = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => info.query,
            Ok(_) => {
                return send(
                    rh,
                    builder.error_msg(&request.metadata, ResponseCode::NotImp),
                )
                .await;
            }
            Err(_) => {
                return send(
                    rh,
                    builder.error_msg(&request.metadata, ResponseCode::FormErr),
                )
                .await;
            }
        };
        let qname: Name = query.name().into();
        let behaviour = self.zone.behaviour(&key(&qname.to_ascii()));
        if behaviour.drop {
            // Never answer: the client times out.
            meta.response_code = ResponseCode::ServFail;
            return ResponseInfo::from(Header {
                metadata: meta,
                counts: HeaderCounts::default(),
            });
        }
        if behaviour.servfail {
            return send(
                rh,
                builder.error_msg(&request.metadata, ResponseCode::ServFail),
            )
            .await;
        }

        let (code, answers) = self.zone.resolve(&qname, query.query_type());
        let soa = answers.is_empty().then(|| soa_for(&qname));
        let wants_ad = request.metadata.authentic_data
            || request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        meta.response_code = code;
        meta.authentic_data = behaviour.secure && wants_ad;
        let response = builder.build(
            meta,
            answers.iter(),
            std::iter::empty(),
            soa.iter(),
            std::iter::empty(),
        );
        match rh.send_response(response).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header {
                metadata: meta,
                counts: HeaderCounts::default(),
            }),
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    mut rh: R,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    let mut metadata = *response.metadata();
    match rh.send_response(response).await {
        Ok(info) => info,
        Err(_) => {
            metadata.message_type = MessageType::Response;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}

// `RequestHandler` is declared with `#[async_trait]`; this is the signature
// that macro expects, written out so the crate needs no `async-trait`
// dependency of its own.
impl RequestHandler for Handler {
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: ResponseHandler + 'async_trait,
        T: Time + 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.answer(request, response_handle))
    }
}

/// A running test DNS server. Dropping it stops the server too; call
/// [`shutdown`](Self::shutdown) to wait until the sockets are closed.
#[derive(Debug)]
pub struct DnsServer {
    /// UDP and TCP are both bound on this address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Stops the server and waits for its tasks to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the test DNS server on `bind` (UDP and TCP on the same port; port
/// 0 picks a free one) and returns once both sockets are bound. Must be
/// called inside a Tokio runtime; the server runs as tasks on it.
pub async fn serve(zone: ZoneData, bind: SocketAddr) -> std::io::Result<DnsServer> {
    let (udp, tcp) = bind_pair(bind).await?;
    let addr = udp.local_addr()?;
    let mut server = Server::new(Handler {
        zone: Arc::new(zone),
    });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE, 4096);
    let token = server.shutdown_token().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        // Fires on `shutdown()` and when the `DnsServer` is dropped.
        let _ = stopped.await;
        token.cancel();
    });
    let task = tokio::spawn(async move {
        if let Err(e) = server.block_until_done().await {
            tracing::warn!(error = %e, "test DNS server stopped with an error");
        }
    });
    Ok(DnsServer {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Receive buffer of the DNS server's UDP socket. A crawl with hundreds
/// of probes in flight sends bursts of thousands of questions; with the
/// default (~208 KiB) the kernel dropped them (13,667 `RcvbufErrors` in a
/// 10,000-domain run), turning testnet answers into 1 s timeouts.
const UDP_RECV_BUFFER: usize = 8 * 1024 * 1024;

/// A UDP socket with a large receive buffer (capped by `net.core.rmem_max`).
fn udp_socket(bind: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps it at rmem_max.
    let _ = s.set_recv_buffer_size(UDP_RECV_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&bind.into())?;
    UdpSocket::from_std(s.into())
}

/// Binds UDP and TCP to the same address and port.
async fn bind_pair(bind: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..BIND_TRIES {
        let udp = udp_socket(bind)?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if bind.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("could not bind UDP and TCP together")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_walk_to_root() {
        assert_eq!(parent_of("a.b.test."), Some("b.test."));
        assert_eq!(parent_of("test."), Some("."));
        assert_eq!(parent_of("."), None);
    }

    #[test]
    fn rfc8020_empty_non_terminals_exist() {
        let mut z = ZoneData::new();
        z.add_a("host.sub.example.test", Ipv4Addr::LOCALHOST);
        assert!(z.non_terminals.contains("sub.example.test."));
        assert!(z.non_terminals.contains("example.test."));
        assert!(z.non_terminals.contains("test."));
        let q = fqdn("sub.example.test").unwrap();
        assert_eq!(
            z.resolve(&q, RecordType::A),
            (ResponseCode::NoError, vec![])
        );
        let q = fqdn("other.example.test").unwrap();
        assert_eq!(
            z.resolve(&q, RecordType::A),
            (ResponseCode::NXDomain, vec![])
        );
    }

    #[test]
    fn behaviours_apply_to_the_subtree() {
        let mut z = ZoneData::new();
        z.servfail("Broken.Test.");
        assert!(z.behaviour("_xmpp-server._tcp.broken.test.").servfail);
        assert!(!z.behaviour("fine.test.").servfail);
    }

    #[test]
    fn cname_loop_is_cut() {
        let mut z = ZoneData::new();
        z.add_cname("a.test", "b.test").unwrap();
        z.add_cname("b.test", "a.test").unwrap();
        let (code, answers) = z.resolve(&fqdn("a.test").unwrap(), RecordType::A);
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(answers.len(), 2);
    }
}

#[cfg(test)]
mod loopback_tests {
    use std::time::Instant;

    use super::*;
    use crate::dns::resolve::{DnsConfig, Resolver};
    use crate::dns::{DnsOutcome, SrvService};

    /// TESTNET.md "Scale": `--domains 10000` must start in seconds. Builds
    /// a zone of 10,000 domains with 8 records each, starts the server,
    /// prints the time taken (not asserted: machines differ) and checks
    /// that the first and last domains are served.
    #[tokio::test]
    async fn scale_10000_domains() {
        const DOMAINS: u32 = 10_000;
        let t0 = Instant::now();
        let mut z = ZoneData::new();
        for i in 0..DOMAINS {
            let d = format!("d{i}.scale.test");
            let ip = Ipv4Addr::new(127, 1, (i >> 8) as u8, i as u8);
            z.add_srv(
                &format!("_xmpp-client._tcp.{d}"),
                5,
                0,
                5222,
                &format!("xmpp.{d}"),
            )
            .unwrap();
            z.add_srv(
                &format!("_xmpps-client._tcp.{d}"),
                5,
                0,
                5223,
                &format!("xmpp.{d}"),
            )
            .unwrap();
            z.add_srv(
                &format!("_xmpp-server._tcp.{d}"),
                5,
                0,
                5269,
                &format!("xmpp.{d}"),
            )
            .unwrap();
            z.add_srv(
                &format!("_xmpps-server._tcp.{d}"),
                5,
                0,
                5270,
                &format!("xmpp.{d}"),
            )
            .unwrap();
            z.add_a(&format!("xmpp.{d}"), ip);
            z.add_aaaa(&format!("xmpp.{d}"), Ipv6Addr::LOCALHOST);
            z.add_tlsa(&format!("_5269._tcp.xmpp.{d}"), 3, 1, 1, vec![0; 32]);
            z.add_a(&d, ip);
        }
        let built = t0.elapsed();
        let server = serve(z, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let started = t0.elapsed();
        eprintln!(
            "scale: {DOMAINS} domains x 8 records: built in {built:?}, built+started in {started:?}"
        );

        let r = Resolver::new(&DnsConfig {
            server: Some(server.addr),
            timeout: Duration::from_secs(2),
        })
        .unwrap();
        for i in [0, DOMAINS - 1] {
            let rep = r.discover(&format!("d{i}.scale.test")).await;
            assert!(rep.srv.iter().all(|s| s.outcome == DnsOutcome::Records));
            assert_eq!(rep.hosts.len(), 1);
            assert_eq!(rep.hosts[0].addrs.len(), 2);
            assert_eq!(rep.tlsa.len(), 4);
        }
        let s = r.srv("d10000.scale.test", SrvService::XmppServer).await;
        assert_eq!(s.outcome, DnsOutcome::NxDomain);
        server.shutdown().await;
    }

    /// The server speaks TCP as well as UDP on the same port (a resolver
    /// falls back to TCP on truncation, RFC 7766).
    #[tokio::test]
    async fn tcp_and_udp_share_the_port() {
        use hickory_proto::op::{Message, Query};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let mut z = ZoneData::new();
        z.add_a("tcp.test", Ipv4Addr::new(127, 0, 10, 1));
        let server = serve(z, "127.0.0.1:0".parse().unwrap()).await.unwrap();

        let mut q = Message::query();
        q.add_query(Query::query(fqdn("tcp.test").unwrap(), RecordType::A));
        let bytes = q.to_vec().unwrap();

        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&(bytes.len() as u16).to_be_bytes())
            .await
            .unwrap();
        tcp.write_all(&bytes).await.unwrap();
        let len = tcp.read_u16().await.unwrap();
        let mut buf = vec![0; usize::from(len)];
        tcp.read_exact(&mut buf).await.unwrap();
        let answer = Message::from_vec(&buf).unwrap();
        assert_eq!(answer.response_code, ResponseCode::NoError);
        assert_eq!(answer.answers.len(), 1);

        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.send_to(&bytes, server.addr).await.unwrap();
        let mut buf = [0u8; 512];
        let n = udp.recv(&mut buf).await.unwrap();
        let answer = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(answer.answers.len(), 1);
        assert!(answer.metadata.authoritative);
        assert!(!answer.metadata.authentic_data);
        server.shutdown().await;
    }
}
