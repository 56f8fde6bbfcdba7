//! The simulated XMPP servers: listeners on 127.B.x.y (and `::1`), each
//! playing the profile of the domain the client names (shared hosts
//! dispatch on the stream's `to` or the TLS SNI, as real multi-domain
//! servers do). Every accepted connection is counted per address, so tests
//! can prove the probe made none.
//!
//! One file per concern:
//! - this file: the shared state ([`Shared`], [`Federation`]), the accept
//!   counters ([`Counters`]), the listeners' accept loop ([`spawn`]) and
//!   the first dispatch of a connection;
//! - `server/streams.rs`: the streams as served, STARTTLS and direct TLS
//!   (c2s played from the profile's shape, s2s handed to the inbound
//!   engine), and [`features_xml`];
//! - `server/s2s.rs`: the s2s policy of the simulated servers (EXTERNAL,
//!   dialback, IQs) and its acceptance tests;
//! - `server/delivery.rs`: replies delivered over the domains' own
//!   outbound links to the probe domain;
//! - `server/material.rs`: each domain's TLS material (certificate,
//!   server configs, client key), built on first use.

mod delivery;
mod material;
mod s2s;
mod streams;

pub use s2s::{NOT_TRUSTED, UNSUPPORTED_PURPOSE};
pub use streams::features_xml;

use material::Material;
use streams::{direct_tls, starttls};

use crate::limits::Limits;
use crate::net::policy::AddressPolicy;
use crate::probe::endpoint::{ProbeContext, Session};
use crate::s2s::inbound::InboundLimits;
use crate::testnet::certs::Pki;
use crate::testnet::layout::Placed;
use crate::testnet::profile::{PreTls, StreamShape, Tcp};
use crate::tls::client::TlsProbe;
use crate::tls::server::root_store;
use crate::tls::verify::ChainVerifier;
use crate::xmpp::Service;
use crate::xmpp::reader::ReaderLimits;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
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
    /// Issued certificates by domain and certificate epoch (generation).
    certs: Mutex<HashMap<String, Arc<crate::testnet::pki::IssuedCert>>>,
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
        // rustls' default suite order (AES-256 first, like OpenSSL's), not
        // the probe's: the simulated servers connect out as real ones do.
        let tls = TlsProbe::with_provider(
            vec![root.clone()],
            rustls::crypto::aws_lc_rs::default_provider(),
        )
        .map_err(|e| e.to_string())?;
        Ok(Self {
            verifier: tls.verifier().clone(),
            roots: root_store(&[root]).map_err(|e| e.to_string())?,
            ctx: ProbeContext {
                limits: OUTBOUND_LIMITS,
                policy: AddressPolicy::ALLOW_PRIVATE,
                tls: Arc::new(tls),
                probe_domain: None,
                gate: None,
                source_ip: None,
            },
            pki,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            material: Mutex::new(HashMap::new()),
            certs: Mutex::new(HashMap::new()),
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

/// The shape `p` plays now (its profile in the testnet's current generation).
fn shape_of(p: &Placed, service: Service) -> Option<StreamShape> {
    let profile = p.current().0;
    match service {
        Service::C2s => Some(profile.c2s),
        Service::S2s => profile.s2s,
    }
}

/// Serves one connection; errors just end it (the probe records what it saw).
async fn serve(sh: &Shared, mut tcp: TcpStream, what: &Listener) {
    // A dedicated address knows its profile before the client speaks (one
    // domain, or several of one profile: `TestnetConfig::dedicated_by_profile`).
    let dedicated = (!what.tenants[0].shared).then(|| what.tenants[0].clone());
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

/// Binds a listener, with a clear error naming the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
