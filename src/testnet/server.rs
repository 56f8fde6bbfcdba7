//! The simulated XMPP servers: listeners on 127.B.x.y (and `::1`), each
//! playing the profile of the domain the client names (shared hosts
//! dispatch on the stream's `to` or the TLS SNI, as real multi-domain
//! servers do). Every accepted connection is counted per address, so tests
//! can prove the probe made none.

use crate::limits::Limits;
use crate::net::policy::AddressPolicy;
use crate::probe::endpoint::{ProbeContext, Session};
use crate::s2s::inbound::{self, InboundLimits, InboundPolicy, Stage};
use crate::s2s::steps;
use crate::testnet::certs::Pki;
use crate::testnet::hostile;
use crate::testnet::layout::Placed;
use crate::testnet::profile::{ClientCertPolicy, PreTls, StreamShape, Tcp, TlsVersions};
use crate::tls::client::{TlsProbe, certified_key};
use crate::tls::server::{ClientAuth, root_store, server_config};
use crate::tls::verify::{ChainVerifier, TlsSetupError};
use crate::tls::{ChainVerdict, cert};
use crate::xmpp::element::Element;
use crate::xmpp::features::StarttlsOffer;
use crate::xmpp::iq::{self, IqKind, NS_PING, NS_VERSION, SoftwareVersion};
use crate::xmpp::reader::{ReaderLimits, StreamReader};
use crate::xmpp::sasl::SaslOutcome;
use crate::xmpp::stream::{self, HeaderSpec};
use crate::xmpp::{
    NS_BIDI_FEATURE, NS_CAPS, NS_DIALBACK_FEATURE, NS_IQ_AUTH_FEATURE, NS_SASL, NS_TLS, Service,
};
use futures::FutureExt;
use rustls::ServerConfig;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a simulated server waits for the client at each step.
const SERVER_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Limits when reading the probe's stream (the probe is trusted here, but
/// keep the server bounded anyway).
const SERVER_READER: ReaderLimits = ReaderLimits {
    max_phase_bytes: 64 * 1024,
    max_depth: 16,
};
/// Size of the padding that pushes `huge_features` past the probe's cap.
const HUGE_FEATURES_BYTES: usize = 256 * 1024;
/// Nesting that pushes `deep_features` past the probe's depth cap.
const DEEP_FEATURES_LEVELS: usize = 200;
/// The s2s streams of the simulated servers ([`crate::s2s::inbound`]).
const S2S_LIMITS: InboundLimits = InboundLimits {
    reader: SERVER_READER,
    step: SERVER_STEP_TIMEOUT,
    idle: SERVER_STEP_TIMEOUT,
    verify: Duration::from_secs(20),
    lifetime: CONNECTION_LIFETIME,
    auth_deadline: CONNECTION_LIFETIME,
};
/// The longest one accepted connection lives.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Limits of the servers' own outbound connections (dialback verification
/// and reply delivery to the probe's listener, all on loopback).
const OUTBOUND_LIMITS: Limits = Limits {
    connect_timeout: Duration::from_secs(5),
    phase_timeout: Duration::from_secs(10),
    max_phase_bytes: 64 * 1024,
    max_xml_depth: 16,
    dns_timeout: Duration::from_secs(5),
};

/// Accept instants kept per address: enough for any test of the crawler's
/// rate limits, bounded so a long-running testnet does not grow forever.
const MAX_ACCEPT_TIMES: usize = 100_000;

/// Connections accepted on one address.
#[derive(Debug, Default)]
struct IpCounter {
    accepted: AtomicU64,
    /// When each connection was accepted (the first [`MAX_ACCEPT_TIMES`]):
    /// what a server operator sees of the crawler's rate.
    times: Mutex<Vec<Instant>>,
}

impl IpCounter {
    fn record(&self, at: Instant) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let mut t = self.times.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() < MAX_ACCEPT_TIMES {
            t.push(at);
        }
    }
}

/// Connections accepted, per listening address.
#[derive(Debug, Default)]
pub struct Counters {
    by_ip: Mutex<HashMap<IpAddr, Arc<IpCounter>>>,
}

impl Counters {
    fn slot(&self, ip: IpAddr) -> Arc<IpCounter> {
        let mut m = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(ip).or_default().clone()
    }
    /// Connections accepted on `ip` so far.
    pub fn get(&self, ip: IpAddr) -> u64 {
        self.slot(ip).accepted.load(Ordering::Relaxed)
    }
    /// Connections accepted on all addresses.
    pub fn total(&self) -> u64 {
        let m = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        m.values().map(|c| c.accepted.load(Ordering::Relaxed)).sum()
    }
    /// When the connections on `ip` were accepted, in order (all listeners
    /// of the address: c2s, s2s, direct TLS).
    pub fn accept_times(&self, ip: IpAddr) -> Vec<Instant> {
        let mut t = self
            .slot(ip)
            .times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Listeners of one address record concurrently.
        t.sort();
        t
    }
}

/// TLS material of one domain, built on first use: one server config per
/// (service, transport), each from that service's shape.
struct Material {
    leaf: CertificateDer<'static>,
    /// The domain's certificate as TLS client certificate, for its own
    /// outbound s2s streams (XEP-0178).
    client_key: Arc<CertifiedKey>,
    starttls_c2s: Arc<ServerConfig>,
    starttls_s2s: Arc<ServerConfig>,
    direct_c2s: Arc<ServerConfig>,
    direct_s2s: Arc<ServerConfig>,
}

/// What the simulated servers know about the federation around them: the
/// probe domain's authoritative server (its dialback listener) and their
/// own XEP-0185 dialback secret.
#[derive(Debug, Clone)]
pub struct Federation {
    /// The probe identity's domain (`probe.<zone>`).
    pub probe_domain: String,
    /// Its s2s endpoint (the probe listener, 127.B.0.2:5269): where keys
    /// are verified (XEP-0220 §2.1.2) and replies delivered.
    pub probe_addr: SocketAddr,
    /// The secret behind every key the simulated servers issue (XEP-0185).
    pub secret: Vec<u8>,
}

/// One live outbound stream (a domain's link to the probe domain).
type Link = Arc<tokio::sync::Mutex<Option<Session>>>;

/// Everything the servers share.
pub struct Shared {
    pki: Pki,
    provider: Arc<rustls::crypto::CryptoProvider>,
    material: Mutex<HashMap<String, Arc<Material>>>,
    federation: Federation,
    /// Testnet root (+ Mozilla, irrelevant here): judges EXTERNAL certificates
    /// as server certificates.
    verifier: ChainVerifier,
    /// The testnet root alone, for the strict clientAuth TLS verifier.
    roots: Arc<rustls::RootCertStore>,
    /// Outbound connections (trusting the testnet root).
    ctx: ProbeContext,
    /// Outbound links by originating domain (all go to the probe domain).
    links: Mutex<HashMap<String, Link>>,
    /// Accept counters.
    pub counters: Counters,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Shared {
    /// Shared state over a PKI, in a federation with the probe domain.
    pub fn new(pki: Pki, federation: Federation) -> Result<Self, String> {
        let root = pki.root.der().clone();
        let tls = TlsProbe::new(vec![root.clone()]).map_err(|e| e.to_string())?;
        Ok(Self {
            verifier: tls.verifier().clone(),
            roots: root_store(&[root]).map_err(|e| e.to_string())?,
            ctx: ProbeContext {
                limits: OUTBOUND_LIMITS,
                policy: AddressPolicy::ALLOW_PRIVATE,
                tls: Arc::new(tls),
                probe_domain: None,
                gate: None,
            },
            pki,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            material: Mutex::new(HashMap::new()),
            federation,
            links: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    /// The PKI.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Stops every listener and connection and waits for them; closes
    /// the outbound links politely.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        let links: Vec<Link> = {
            let mut m = self.links.lock().unwrap_or_else(|e| e.into_inner());
            m.drain().map(|(_, l)| l).collect()
        };
        for l in links {
            if let Some(s) = l.lock().await.take() {
                s.close().await;
            }
        }
    }

    fn material(&self, p: &Placed) -> Result<Arc<Material>, String> {
        let mut cache = self.material.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(&p.domain) {
            return Ok(m.clone());
        }
        let cert = self
            .pki
            .issue(&p.domain, p.profile.cert)
            .map_err(|e| e.to_string())?;
        let build =
            |shape: &StreamShape, alpn: Option<&[u8]>| -> Result<Arc<ServerConfig>, String> {
                let versions: &[&rustls::SupportedProtocolVersion] = match shape.tls {
                    TlsVersions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
                    TlsVersions::Tls12Only => &[&rustls::version::TLS12],
                };
                let auth = match (shape.request_client_cert, shape.client_certs) {
                    (false, _) => ClientAuth::None,
                    (true, ClientCertPolicy::HandshakeReject) => {
                        ClientAuth::RequireClientAuth(self.roots.clone())
                    }
                    (true, _) => ClientAuth::AcceptAny,
                };
                // The offset-time certificate is one rustls cannot parse
                // itself: serve it unchecked, as a broken server would.
                let build = if p.profile.cert == crate::testnet::profile::CertShape::OffsetTime {
                    server_config_unchecked
                } else {
                    server_config
                };
                build(
                    &self.provider,
                    cert.chain.clone(),
                    cert.key.clone_key(),
                    &auth,
                    versions,
                    alpn,
                )
                .map_err(|e| e.to_string())
            };
        let c2s = p.profile.c2s;
        // A domain without s2s never reaches an s2s TLS step; any shape will do.
        let s2s = p.profile.s2s.unwrap_or(c2s);
        let m = Arc::new(Material {
            leaf: cert.chain[0].clone(),
            client_key: if p.profile.cert == crate::testnet::profile::CertShape::OffsetTime {
                // rustls cannot parse it to check the key: take it as is.
                let key = self
                    .provider
                    .key_provider
                    .load_private_key(cert.key.clone_key())
                    .map_err(|e| e.to_string())?;
                Arc::new(CertifiedKey::new(cert.chain.clone(), key))
            } else {
                certified_key(cert.chain.clone(), cert.key.clone_key())
                    .map_err(|e| e.to_string())?
            },
            starttls_c2s: build(&c2s, None)?,
            starttls_s2s: build(&s2s, None)?,
            direct_c2s: build(&c2s, Some(b"xmpp-client"))?,
            direct_s2s: build(&s2s, Some(b"xmpp-server"))?,
        });
        cache.insert(p.domain.clone(), m.clone());
        Ok(m)
    }

    /// The end-entity certificate a domain presents (issued on first use).
    pub fn leaf(&self, p: &Placed) -> Result<CertificateDer<'static>, String> {
        Ok(self.material(p)?.leaf.clone())
    }

    fn config(
        &self,
        p: &Placed,
        service: Service,
        direct: bool,
    ) -> Result<Arc<ServerConfig>, String> {
        let m = self.material(p)?;
        Ok(match (service, direct) {
            (Service::C2s, false) => m.starttls_c2s.clone(),
            (Service::S2s, false) => m.starttls_s2s.clone(),
            (Service::C2s, true) => m.direct_c2s.clone(),
            (Service::S2s, true) => m.direct_s2s.clone(),
        })
    }
}

/// Like [`server_config`](crate::tls::server::server_config), but serves `chain` as it is, without rustls'
/// check that the key matches a certificate it can parse: for the
/// testnet's deliberately malformed certificates (e.g. a UTCTime with an
/// offset, which webpki refuses to parse). Testnet only: the
/// product never serves a certificate it cannot parse.
fn server_config_unchecked(
    provider: &Arc<rustls::crypto::CryptoProvider>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: &ClientAuth,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    let certified = Arc::new(CertifiedKey::new(chain, signing));
    let mut cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsSetupError::Config(e.to_string()))?
        .with_client_cert_verifier(client_auth.verifier(provider)?)
        .with_cert_resolver(Arc::new(FixedCert(certified)));
    if let Some(a) = alpn {
        cfg.alpn_protocols = vec![a.to_vec()];
    }
    Ok(Arc::new(cfg))
}

/// Always the same certificate, whatever the ClientHello asks.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// What one listener serves.
#[derive(Clone)]
pub struct Listener {
    /// c2s or s2s.
    pub service: Service,
    /// Direct TLS (XEP-0368) instead of STARTTLS.
    pub direct: bool,
    /// The domains served on this address.
    pub tenants: Arc<Vec<Arc<Placed>>>,
}

/// Spawns the accept loop of one bound listener.
pub fn spawn(shared: &Arc<Shared>, socket: TcpListener, what: Listener) {
    let sh = shared.clone();
    let counter = match socket.local_addr() {
        Ok(a) => sh.counters.slot(a.ip()),
        Err(_) => return,
    };
    shared.tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = sh.cancel.cancelled() => break,
                a = socket.accept() => a,
            };
            let Ok((tcp, _peer)) = accepted else {
                // EMFILE and friends: back off briefly rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            counter.record(Instant::now());
            let _ = tcp.set_nodelay(true);
            let sh2 = sh.clone();
            let what = what.clone();
            sh.tracker.spawn(async move {
                let cancel = sh2.cancel.clone();
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::timeout(CONNECTION_LIFETIME, serve(&sh2, tcp, &what)) => {}
                }
            });
        }
    });
}

fn shape_of(p: &Placed, service: Service) -> Option<StreamShape> {
    match service {
        Service::C2s => Some(p.profile.c2s),
        Service::S2s => p.profile.s2s,
    }
}

/// Serves one connection; errors just end it (the probe records what it saw).
async fn serve(sh: &Shared, mut tcp: TcpStream, what: &Listener) {
    // A dedicated address knows its domain before the client speaks.
    let dedicated =
        (what.tenants.len() == 1 && !what.tenants[0].shared).then(|| what.tenants[0].clone());
    if let Some(p) = &dedicated {
        let Some(shape) = shape_of(p, what.service) else {
            return;
        };
        match shape.tcp {
            Tcp::Silent => {
                // Never send a byte; hold the connection until shutdown.
                std::future::pending::<()>().await;
            }
            Tcp::ResetAtTls if what.direct => {
                let mut buf = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
                reset(tcp);
                return;
            }
            _ => {}
        }
        if !what.direct && shape.pre_tls == PreTls::Doctype {
            let _ = tcp
                .write_all(b"<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY xxe SYSTEM 'file:///etc/passwd'><!ENTITY lol 'lol'>]>")
                .await;
            let _ = tokio::time::timeout(SERVER_STEP_TIMEOUT, drain(&mut tcp)).await;
            return;
        }
    }
    if what.direct {
        direct_tls(sh, tcp, what).await;
    } else {
        starttls(sh, tcp, what).await;
    }
}

/// Closes with RST (SO_LINGER 0): "connection reset" for the peer.
// tokio deprecates set_linger because a *non-zero* linger blocks the
// thread on drop; a zero linger never blocks, it just sends RST.
#[allow(deprecated)]
fn reset(tcp: TcpStream) {
    let _ = tcp.set_linger(Some(Duration::ZERO));
    drop(tcp);
}

async fn drain<S: AsyncRead + Unpin>(s: &mut S) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

fn tenant<'a>(what: &'a Listener, to: Option<&str>) -> Option<&'a Arc<Placed>> {
    let to = to?.trim_end_matches('.').to_ascii_lowercase();
    what.tenants.iter().find(|p| p.domain == to)
}

fn header(p: &Placed, service: Service, version: bool) -> String {
    stream::open_header(&HeaderSpec {
        service,
        from: Some(&p.domain),
        to: None,
        id: Some(&format!("{:016x}", rand::random::<u64>())),
        version: version.then_some("1.0"),
        dialback: service == Service::S2s,
    })
}

fn mechanisms(list: &[&str]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut s = format!("<mechanisms xmlns='{NS_SASL}'>");
    for m in list {
        s.push_str(&format!("<mechanism>{m}</mechanism>"));
    }
    s.push_str("</mechanisms>");
    s
}

/// The `<stream:features/>` a shape advertises before or after TLS.
pub fn features_xml(shape: &StreamShape, service: Service, after_tls: bool) -> String {
    let mut s = String::from("<stream:features>");
    if !after_tls {
        match shape.starttls {
            StarttlsOffer::Required => s.push_str(&format!(
                "<starttls xmlns='{NS_TLS}'><required/></starttls>"
            )),
            StarttlsOffer::Optional => s.push_str(&format!("<starttls xmlns='{NS_TLS}'/>")),
            StarttlsOffer::Absent => {}
        }
        s.push_str(&mechanisms(shape.sasl_before));
        if shape.iq_auth {
            s.push_str(&format!("<auth xmlns='{NS_IQ_AUTH_FEATURE}'/>"));
        }
    } else {
        s.push_str(&mechanisms(shape.sasl_after));
        if service == Service::S2s && shape.bidi {
            s.push_str(&format!("<bidi xmlns='{NS_BIDI_FEATURE}'/>"));
        }
    }
    if service == Service::S2s && shape.dialback {
        s.push_str(&format!(
            "<dialback xmlns='{NS_DIALBACK_FEATURE}'><errors/></dialback>"
        ));
    }
    if let Some(node) = shape.caps_node {
        s.push_str(&format!(
            "<c xmlns='{NS_CAPS}' hash='sha-1' node='{node}' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
        ));
    }
    s.push_str("</stream:features>");
    s
}

/// Writes `bytes` in 1–3-byte segments (features split across segments).
async fn write_split<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    let mut i = 0;
    let mut k = 0usize;
    while i < bytes.len() {
        let n = 1 + (k % 3);
        let end = (i + n).min(bytes.len());
        s.write_all(&bytes[i..end]).await?;
        s.flush().await?;
        tokio::task::yield_now().await;
        i = end;
        k += 1;
    }
    Ok(())
}

async fn starttls(sh: &Shared, tcp: TcpStream, what: &Listener) {
    let service = what.service;
    let mut rd = StreamReader::new(tcp, SERVER_READER);
    let Ok(Ok(h)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, rd.read_header()).await else {
        return;
    };
    let Some(p) = tenant(what, h.to.as_deref()).cloned() else {
        let any = what.tenants[0].clone();
        let mut out = header(&any, service, true);
        out.push_str(&stream::error_xml(
            "host-unknown",
            Some("no such domain here"),
        ));
        out.push_str(stream::CLOSE);
        let _ = rd.write_all(out.as_bytes()).await;
        return;
    };
    let Some(shape) = shape_of(&p, service) else {
        return;
    };
    if service == Service::S2s && shape.pre_tls == PreTls::Normal && shape.tcp == Tcp::Serve {
        let policy = S2sPolicy { sh, what };
        if let Some(how) = shape.hostile_sasl {
            let local = (p, shape);
            hostile::serve_after_header(&policy, local, rd, h, how, &S2S_LIMITS).await;
            return;
        }
        inbound::serve_after_header(&policy, rd, h, &S2S_LIMITS).await;
        return;
    }
    let hdr = header(&p, service, shape.pre_tls != PreTls::NoVersion);
    let feats = features_xml(&shape, service, false);
    let first: String = match shape.pre_tls {
        PreTls::NoVersion => hdr,
        PreTls::HostUnknown => format!(
            "{hdr}{}{}",
            stream::error_xml(
                "host-unknown",
                Some("this server does not serve that domain")
            ),
            stream::CLOSE
        ),
        PreTls::Huge => {
            let pad = "x".repeat(HUGE_FEATURES_BYTES);
            format!(
                "{hdr}<stream:features><padding xmlns='urn:xmpp-survey:test'>{pad}</padding></stream:features>"
            )
        }
        PreTls::Deep => {
            let open = "<n xmlns='urn:xmpp-survey:test'>".repeat(DEEP_FEATURES_LEVELS);
            let close = "</n>".repeat(DEEP_FEATURES_LEVELS);
            format!("{hdr}<stream:features>{open}{close}</stream:features>")
        }
        PreTls::InvalidXml => format!(
            "{hdr}<stream:features><starttls xmlns='{NS_TLS}'><required></starttls></stream:features>"
        ),
        PreTls::NulInFeatures => format!(
            "{hdr}<stream:features><starttls xmlns='{NS_TLS}'><required/></starttls>\
             <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='evil\u{0}node' ver='x'/>\
             </stream:features>"
        ),
        _ => format!("{hdr}{feats}"),
    };
    let written = if shape.pre_tls == PreTls::Split {
        write_split(rd.get_mut(), first.as_bytes()).await
    } else {
        rd.write_all(first.as_bytes()).await
    };
    if written.is_err() {
        return;
    }
    match shape.pre_tls {
        PreTls::NoVersion
        | PreTls::HostUnknown
        | PreTls::Huge
        | PreTls::Deep
        | PreTls::InvalidXml
        | PreTls::NulInFeatures => {
            let _ = tokio::time::timeout(SERVER_STEP_TIMEOUT, drain(rd.get_mut())).await;
            return;
        }
        _ => {}
    }
    rd.new_phase();
    let Ok(Ok(el)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, rd.read_element()).await else {
        return;
    };
    if !el.is(NS_TLS, "starttls") || shape.starttls == StarttlsOffer::Absent {
        let _ = rd
            .write_all(
                format!(
                    "{}{}",
                    stream::error_xml("policy-violation", None),
                    stream::CLOSE
                )
                .as_bytes(),
            )
            .await;
        return;
    }
    if shape.pre_tls == PreTls::StarttlsFailure {
        let _ = rd
            .write_all(format!("<failure xmlns='{NS_TLS}'/>{}", stream::CLOSE).as_bytes())
            .await;
        return;
    }
    // The injection profile puts forged post-TLS features behind
    // `<proceed/>` in the same segment, then goes on with TLS as an
    // attacker relaying the real server would.
    let injected = match shape.pre_tls {
        PreTls::InjectAfterProceed => features_xml(&shape, service, true),
        _ => String::new(),
    };
    if rd
        .write_all(format!("<proceed xmlns='{NS_TLS}'/>{injected}").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let (tcp, _) = rd.into_inner();
    if shape.tcp == Tcp::ResetAtTls {
        reset(tcp);
        return;
    }
    let Ok(cfg) = sh.config(&p, service, false) else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let Ok(Ok(tls)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, acceptor.accept(tcp)).await else {
        return;
    };
    after_tls(tls, &p, &shape, service).await;
}

async fn direct_tls(sh: &Shared, tcp: TcpStream, what: &Listener) {
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
    let Ok(Ok(start)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, acceptor).await else {
        return;
    };
    let sni = start.client_hello().server_name().map(str::to_string);
    let Some(p) = tenant(what, sni.as_deref()).cloned() else {
        return;
    };
    let Some(shape) = shape_of(&p, what.service) else {
        return;
    };
    let Ok(cfg) = sh.config(&p, what.service, true) else {
        return;
    };
    let Ok(Ok(tls)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, start.into_stream(cfg)).await
    else {
        return;
    };
    if what.service == Service::S2s && shape.pre_tls == PreTls::Normal {
        let policy = S2sPolicy { sh, what };
        if let Some(how) = shape.hostile_sasl {
            hostile::serve_tls(&policy, (p, shape), tls, how, &S2S_LIMITS).await;
            return;
        }
        inbound::serve_tls(&policy, tls, (p, shape), &S2S_LIMITS).await;
        return;
    }
    after_tls(tls, &p, &shape, what.service).await;
}

/// The stream over TLS: header, post-TLS features, then wait for the
/// client to close (answering `</stream:stream>` politely).
async fn after_tls<S: AsyncRead + AsyncWrite + Unpin>(
    tls: S,
    p: &Placed,
    shape: &StreamShape,
    service: Service,
) {
    let mut rd = StreamReader::new(tls, SERVER_READER);
    let Ok(Ok(_)) = tokio::time::timeout(SERVER_STEP_TIMEOUT, rd.read_header()).await else {
        return;
    };
    let out = format!(
        "{}{}",
        header(p, service, true),
        features_xml(shape, service, true)
    );
    if rd.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    loop {
        rd.new_phase();
        match tokio::time::timeout(SERVER_STEP_TIMEOUT, rd.read_element()).await {
            Ok(Ok(_)) => continue,
            _ => break,
        }
    }
    let _ = rd.write_all(stream::CLOSE.as_bytes()).await;
    let _ = rd.get_mut().shutdown().await;
}

/// The s2s behaviour of the simulated servers (TESTNET.md acceptance
/// group) as an [`InboundPolicy`]: features from the profile's shape, the
/// client-certificate policy of [`ClientCertPolicy`] at EXTERNAL time
/// (XEP-0178 §3), dialback verified with the probe domain's listener
/// (XEP-0220 §2.1.2), ping (XEP-0199) and version (XEP-0092) answered over
/// the domain's own outbound stream to the probe (RFC 6120 §8.1.1; no
/// XEP-0288 bidi).
struct S2sPolicy<'a> {
    sh: &'a Shared,
    what: &'a Listener,
}

/// Text of the strict servers' EXTERNAL refusal (ejabberd before 25.08).
pub const UNSUPPORTED_PURPOSE: &str = "unsupported certificate purpose";
/// Text of the untrusting server's EXTERNAL refusal.
pub const NOT_TRUSTED: &str = "certificate not trusted";

fn not_authorized(text: impl Into<String>) -> SaslOutcome {
    SaslOutcome::Failure {
        condition: "not-authorized".into(),
        text: Some(text.into()),
    }
}

impl InboundPolicy for S2sPolicy<'_> {
    type Local = (Arc<Placed>, StreamShape);

    fn local(&self, to: Option<&str>) -> Option<Self::Local> {
        let p = tenant(self.what, to)?;
        Some((p.clone(), p.profile.s2s?))
    }

    fn domain<'a>(&'a self, local: &'a Self::Local) -> &'a str {
        &local.0.domain
    }

    fn features(&self, (_, shape): &Self::Local, stage: Stage) -> String {
        match stage {
            Stage::BeforeTls => features_xml(shape, Service::S2s, false),
            Stage::AfterTls { .. } => features_xml(shape, Service::S2s, true),
            Stage::Authenticated => inbound::features(stage, false, shape.dialback),
        }
    }

    fn tls_config(&self, (p, _): &Self::Local) -> Option<Arc<ServerConfig>> {
        self.sh.config(p, Service::S2s, false).ok()
    }

    fn external(
        &self,
        (_, shape): &Self::Local,
        peer: &str,
        chain: &[CertificateDer<'static>],
    ) -> SaslOutcome {
        match shape.client_certs {
            // RFC 6120 §6.5.6: EXTERNAL is not among the mechanisms.
            ClientCertPolicy::NoRequest => {
                return SaslOutcome::Failure {
                    condition: "invalid-mechanism".into(),
                    text: None,
                };
            }
            ClientCertPolicy::Untrusting => return not_authorized(NOT_TRUSTED),
            ClientCertPolicy::StrictEku => {
                let leaf = chain.first().and_then(|c| cert::analyze(c.as_ref()).ok());
                if leaf.is_some_and(|c| c.eku.present && !c.eku.client_auth && !c.eku.any) {
                    return not_authorized(UNSUPPORTED_PURPOSE);
                }
            }
            ClientCertPolicy::Lenient | ClientCertPolicy::HandshakeReject => {}
        }
        if chain.is_empty() {
            return not_authorized("no client certificate");
        }
        // Validated as a *server* certificate for the peer's domain
        // (RFC 6120 §13.7.2.2), against the testnet root.
        let (verdict, detail, _) =
            self.sh
                .verifier
                .verdict_chain(peer, Service::S2s, chain, UnixTime::now());
        if verdict == ChainVerdict::Trusted {
            SaslOutcome::Success
        } else {
            not_authorized(format!(
                "{NOT_TRUSTED}: {}",
                detail.unwrap_or_else(|| format!("{verdict:?}"))
            ))
        }
    }

    fn dialback(&self, (_, shape): &Self::Local) -> bool {
        shape.dialback
    }

    fn requires_peer_certificate(&self, (_, shape): &Self::Local) -> bool {
        shape.secure_auth
    }

    async fn verify_dialback(
        &self,
        (p, _): &Self::Local,
        peer: &str,
        stream_id: &str,
        key: &str,
    ) -> bool {
        let fed = &self.sh.federation;
        if peer != fed.probe_domain {
            // The only authoritative server the testnet knows is the probe's.
            return false;
        }
        let plan = inbound::direct_plan(peer, fed.probe_addr);
        inbound::verify_key(&self.sh.ctx, &p.domain, peer, &[plan], stream_id, key)
            .await
            .unwrap_or(false)
    }

    fn secret<'a>(&'a self, _: &'a Self::Local) -> &'a [u8] {
        &self.sh.federation.secret
    }

    async fn iq(&self, (p, shape): &Self::Local, peer: &str, el: &Element) -> Option<String> {
        let q = iq::parse(el)?;
        let to = q.from.unwrap_or(peer);
        let reply = match (&q.kind, q.payload) {
            (IqKind::Get, Some(x)) if x.is(NS_PING, "ping") && !shape.refuse_ping => {
                iq::empty_result(&p.domain, to, q.id)
            }
            (IqKind::Get, Some(x)) if x.is(NS_VERSION, "query") && !shape.refuse_version => {
                let (name, version) = shape.software;
                let v = SoftwareVersion {
                    name: Some(name.into()),
                    version: Some(version.into()),
                    os: None,
                };
                iq::version_result(&p.domain, to, q.id, &v)
            }
            (IqKind::Get | IqKind::Set, _) => {
                iq::error_reply(&p.domain, to, q.id, "service-unavailable")
            }
            _ => return None,
        };
        if peer == self.sh.federation.probe_domain {
            self.sh.deliver(p, &reply).await;
        }
        None
    }
}

impl Shared {
    /// Sends `xml` to the probe domain over `p`'s own authenticated
    /// outbound stream (XEP-0178 EXTERNAL with `p`'s certificate, else
    /// XEP-0220 dialback), opening it on first use and reusing it while it
    /// lives; one reconnect if the old one turns out dead.
    async fn deliver(&self, p: &Placed, xml: &str) -> bool {
        let Ok(m) = self.material(p) else {
            return false;
        };
        let link = {
            let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
            links.entry(p.domain.clone()).or_default().clone()
        };
        let mut guard = link.lock().await;
        for _ in 0..2 {
            if guard.as_mut().is_some_and(|s| !alive(s)) {
                *guard = None;
            }
            if guard.is_none() {
                let fed = &self.federation;
                let plan = inbound::direct_plan(&fed.probe_domain, fed.probe_addr);
                match inbound::connect(
                    &self.ctx,
                    &p.domain,
                    &fed.probe_domain,
                    &[plan],
                    Some(m.client_key.clone()),
                    &fed.secret,
                )
                .await
                {
                    Ok(o) => *guard = Some(o.session),
                    Err(e) => {
                        tracing::debug!(domain = %p.domain, "reply delivery: {e}");
                        return false;
                    }
                }
            }
            if let Some(s) = guard.as_mut()
                && steps::send(&mut s.stream, xml).await.is_ok()
            {
                return true;
            }
            *guard = None;
        }
        false
    }
}

/// Whether an idle outbound stream still stands: a read that completes at
/// once means the peer closed it (or sent a stream error); nothing else is
/// expected from the probe's listener on our stream.
fn alive(s: &mut Session) -> bool {
    s.stream.new_phase();
    !matches!(s.stream.read_element().now_or_never(), Some(Err(_)))
}

/// Binds a listener, with a clear error naming the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// The acceptance profiles (TESTNET.md), driven by hand against a real
/// [`crate::listener::ProbeListener`]: each test names the behaviour it
/// proves and fails if the simulated server stops showing it.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ProbeIdentity;
    use crate::listener::ProbeListener;
    use crate::probe::endpoint::ProbeContext;
    use crate::probe::plan::EndpointPlan;
    use crate::probe::report::{EndpointOutcome, EndpointReport};
    use crate::testnet::Testnet;
    use crate::testnet::harness::{ctx, listener, ping_and_version, resolver, session, testnet};
    use crate::tls::{EkuClass, TlsFailure};
    use crate::xmpp::dialback::Answer;

    struct Run {
        net: Testnet,
        l: Arc<ProbeListener>,
        id: ProbeIdentity,
        target: String,
        cx: ProbeContext,
        plan: EndpointPlan,
    }

    impl Run {
        async fn start(octet: u8, profile: &str) -> Self {
            let net = testnet(octet, &[profile], vec![]).await;
            let l = listener(&net).await;
            let id = net.probe_identity().expect("identity");
            let target = net.domains().remove(0);
            l.begin(&target);
            let plan = inbound::resolve_plans(&resolver(&net), &target)
                .await
                .into_iter()
                .next()
                .expect("s2s endpoint");
            Self {
                cx: ctx(&net, &id.domain),
                net,
                l,
                id,
                target,
                plan,
            }
        }

        fn cert(&self, client_and_server: bool) -> Arc<CertifiedKey> {
            if client_and_server {
                self.id
                    .client_and_server
                    .as_ref()
                    .expect("second cert")
                    .key
                    .clone()
            } else {
                self.id.server_only.key.clone()
            }
        }

        async fn connect(&self, client_and_server: bool) -> (EndpointReport, Option<Session>) {
            session(
                &self.cx,
                &self.target,
                &self.plan,
                Some(self.cert(client_and_server)),
            )
            .await
        }

        /// STARTTLS with the chosen certificate, then EXTERNAL.
        async fn external(
            &self,
            client_and_server: bool,
        ) -> (EndpointReport, SaslOutcome, Session) {
            let (r, s) = self.connect(client_and_server).await;
            let mut s = s.unwrap_or_else(|| panic!("session: {r:?}"));
            assert!(
                s.features.sasl_mechanisms.iter().any(|m| m == "EXTERNAL"),
                "EXTERNAL offered"
            );
            let (outcome, _) = steps::auth_external(
                &mut s.stream,
                &self.id.domain,
                &self.target,
                Duration::from_secs(5),
            )
            .await
            .expect("EXTERNAL answered");
            (r, outcome, s)
        }

        /// Dialback with the server-only certificate presented, our listener
        /// as authoritative server.
        async fn dialback(&self) -> (Answer, Session) {
            let (r, s) = self.connect(false).await;
            let mut s = s.unwrap_or_else(|| panic!("session: {r:?}"));
            assert!(s.features.dialback, "dialback offered after TLS");
            let sid = s.stream_id.clone().expect("stream id");
            let key = self.l.dialback_key(&self.target, &sid);
            let a = steps::dialback(
                &mut s.stream,
                &self.id.domain,
                &self.target,
                &key,
                Duration::from_secs(15),
            )
            .await
            .expect("dialback answered");
            (a, s)
        }

        /// Ping and version answered through the listener; returns the
        /// reported software.
        async fn software(&self, s: &mut Session) -> SoftwareVersion {
            let (ping, version) = ping_and_version(s, &self.l, &self.id.domain, &self.target).await;
            assert_eq!(ping.attr("type"), Some("result"));
            let q = iq::parse(&version).expect("iq");
            assert_eq!(q.kind, IqKind::Result);
            iq::parse_version(q.payload.expect("query")).expect("version payload")
        }

        async fn stop(self) {
            self.l.shutdown().await;
            self.net.shutdown().await;
        }
    }

    fn failure(condition: &str, text: &str) -> SaslOutcome {
        SaslOutcome::Failure {
            condition: condition.into(),
            text: Some(text.into()),
        }
    }

    /// `lenient` (Prosody): a server-only client certificate passes
    /// EXTERNAL; ping and version come back over the target's own stream to
    /// the listener (which authenticated the target by EXTERNAL in turn).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lenient_accepts_server_only_and_answers_via_listener() {
        let run = Run::start(50, "lenient").await;
        let (r, outcome, mut s) = run.external(false).await;
        assert!(r.tls.as_ref().is_some_and(|t| t.client_cert_requested));
        assert_eq!(outcome, SaslOutcome::Success);
        let v = run.software(&mut s).await;
        assert_eq!(v.name.as_deref(), Some("Prosody-like"));
        assert_eq!(v.version.as_deref(), Some("0.12.3"));
        let inbound = run.l.inbound(&run.target);
        assert_eq!(inbound.len(), 1, "one reused outbound stream: {inbound:?}");
        assert_eq!(inbound[0].client_eku, Some(EkuClass::ClientAndServer));
        assert_eq!(
            inbound[0].auth,
            crate::acceptance::InboundAuth::External {
                outcome: SaslOutcome::Success
            }
        );
        run.stop().await;
    }

    /// `strict_eku` (ejabberd < 25.08): server-only refused with
    /// `unsupported certificate purpose`, client-and-server accepted,
    /// dialback valid (verified with the listener) and then answering.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strict_eku_refuses_server_only_accepts_client_auth_and_dialback() {
        let run = Run::start(51, "strict_eku").await;
        let (_, outcome, _) = run.external(false).await;
        assert_eq!(outcome, failure("not-authorized", UNSUPPORTED_PURPOSE));
        let (_, outcome, _) = run.external(true).await;
        assert_eq!(outcome, SaslOutcome::Success);
        let (answer, mut s) = run.dialback().await;
        assert_eq!(answer, Answer::Valid);
        assert!(
            run.l.verifies_from(&run.target) >= 1,
            "target asked our listener"
        );
        let v = run.software(&mut s).await;
        assert_eq!(v.name.as_deref(), Some("ejabberd-like"));
        run.stop().await;
    }

    /// `strict_eku_no_dialback`: the same refusal, and no dialback offered
    /// before or after TLS: no fallback for a server-only peer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strict_eku_no_dialback_offers_no_fallback() {
        let run = Run::start(52, "strict_eku_no_dialback").await;
        let (r, outcome, s) = run.external(false).await;
        assert_eq!(outcome, failure("not-authorized", UNSUPPORTED_PURPOSE));
        assert!(!s.features.dialback);
        assert_eq!(r.pre_tls.map(|f| f.dialback), Some(false));
        run.stop().await;
    }

    /// `no_client_cert`: no CertificateRequest, no EXTERNAL, dialback only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_client_cert_relies_on_dialback() {
        let run = Run::start(53, "no_client_cert").await;
        for cs in [false, true] {
            let (r, s) = run.connect(cs).await;
            let s = s.unwrap_or_else(|| panic!("session: {r:?}"));
            assert_eq!(r.tls.map(|t| t.client_cert_requested), Some(false));
            assert!(
                s.features.sasl_mechanisms.is_empty(),
                "EXTERNAL not offered"
            );
        }
        let (answer, mut s) = run.dialback().await;
        assert_eq!(answer, Answer::Valid);
        let v = run.software(&mut s).await;
        assert_eq!(v.name.as_deref(), Some("dialback-only"));
        run.stop().await;
    }

    /// `handshake_reject`: a server-only client certificate ends the TLS
    /// handshake with a fatal alert (seen on the first read with TLS 1.3);
    /// client-and-server passes TLS and EXTERNAL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handshake_reject_alerts_on_server_only() {
        let run = Run::start(54, "handshake_reject").await;
        let (r, s) = run.connect(false).await;
        assert!(s.is_none());
        assert_eq!(r.outcome, EndpointOutcome::TlsFailed);
        let tls = r.tls.expect("tls facts");
        assert_eq!(
            tls.failure,
            Some(TlsFailure::Alert),
            "{:?}",
            tls.failure_detail
        );
        assert!(tls.client_cert_requested);
        let (_, outcome, _) = run.external(true).await;
        assert_eq!(outcome, SaslOutcome::Success);
        run.stop().await;
    }

    /// `untrusting`: EXTERNAL refused whatever the certificate (trust, not
    /// EKU); dialback still works.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn untrusting_refuses_both_certs_dialback_valid() {
        let run = Run::start(55, "untrusting").await;
        for cs in [false, true] {
            let (r, outcome, _) = run.external(cs).await;
            assert!(r.tls.as_ref().is_some_and(|t| t.client_cert_requested));
            assert_eq!(outcome, failure("not-authorized", NOT_TRUSTED));
        }
        let (answer, _) = run.dialback().await;
        assert_eq!(answer, Answer::Valid);
        run.stop().await;
    }
}
