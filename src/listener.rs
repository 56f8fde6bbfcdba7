//! The probe domain's s2s listener: the crawler acting as its own
//! authoritative server (MEASUREMENTS §3.4, XEP-0220 §2.1.2) and receiving
//! the targets' replies.
//!
//! Without XEP-0288 bidi, a target answers our IQs over *its own* stream to
//! our domain (RFC 6120 §8.1.1, XEP-0220 §1), and a target checking our
//! dialback key connects to our domain's s2s endpoint with `db:verify`.
//! Both land here. The listener is built to be exposed to the internet:
//!
//! - it serves only the probe domain (`host-unknown` for anything else);
//! - it answers `db:verify` for keys we issued and verifies `db:result`
//!   by calling the peer's authoritative server back (dialback proper);
//! - it authenticates peers with EXTERNAL leniently, like Prosody: the
//!   client certificate is validated *as a server certificate* for the
//!   peer's domain (RFC 6120 §13.7.2.2, XEP-0178 §3), so server-only peers
//!   can deliver too;
//! - it hands over IQ results/errors only to a probe that asked for them
//!   ([`ProbeListener::expect_iq`]); it never routes, answers or stores
//!   stanzas from strangers;
//! - bytes per element, time per step, stream lifetime and concurrent
//!   streams ([`MAX_STREAMS`]) are capped.
//!
//! The protocol itself is [`crate::s2s::inbound`]; this module is the
//! policy.

use crate::acceptance::InboundReport;
use crate::dns::resolve::Resolver;
use crate::identity::ProbeIdentity;
use crate::probe::endpoint::ProbeContext;
use crate::s2s::inbound::{self, InboundLimits, InboundPolicy, Stage};
use crate::tls::ChainVerdict;
use crate::tls::server::{ClientAuth, TLS12_AND_13, server_config};
use crate::tls::verify::TlsSetupError;
use crate::xmpp::Service;
use crate::xmpp::dialback;
use crate::xmpp::element::Element;
use crate::xmpp::iq::{self, IqKind};
use crate::xmpp::reader::ReaderLimits;
use crate::xmpp::sasl::SaslOutcome;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Streams served at once when the fd budget allows (see
/// [`crate::budget::MAX_LISTENER_STREAMS`] for why 2048). Further
/// connections are closed at once and counted.
pub const MAX_STREAMS: usize = crate::budget::MAX_LISTENER_STREAMS;
/// Bytes a peer may send per element (and per negotiation step): replies
/// and dialback elements are well under 4 KiB; this cuts off floods.
pub const MAX_ELEMENT_BYTES: u64 = 64 * 1024;
/// Silence allowed on a stream before we close it: replies to one
/// acceptance run arrive within seconds, and closing idle links politely
/// frees slots for the next targets (they reconnect if they need to).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest any one stream may live.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(300);
/// Streams one source address may hold at once. A real target opens one
/// or two (its reply link, a `db:verify` check); a shared host serving
/// many probed domains at once a few more. Beyond this, a connection is
/// closed at once (counted as `refused_address_cap`).
pub const MAX_STREAMS_PER_ADDRESS: usize = 64;
/// Streams one /24 (IPv4) or /48 (IPv6) may hold at once: an attacker
/// with a block of addresses gets a few times one address's share, never
/// the listener.
pub const MAX_STREAMS_PER_PREFIX: usize = 256;
/// The kernel accept queue asked for (Linux caps it at
/// `net.core.somaxconn`, 4096 by default since 5.4): bursts of callbacks
/// wait there instead of being refused by a full 128-entry queue.
pub const ACCEPT_BACKLOG: u32 = 4096;
/// Authenticated inbound reports kept per probed domain (a target opens
/// one or two; more is a misbehaving or hostile peer).
pub const MAX_REPORTS_PER_DOMAIN: usize = 8;
/// Time from accept until an inbound stream must have authenticated:
/// TLS, header, and one dialback verification round trip (the longest
/// legitimate path). Elements do not extend it.
pub fn auth_deadline(limits: &crate::limits::Limits) -> Duration {
    limits.connect_timeout + limits.phase_timeout * 6
}
/// Outstanding [`ProbeListener::expect_iq`] waiters kept; beyond this,
/// abandoned ones are swept.
const WAITER_SWEEP: usize = 1024;
/// How long a run announced by another worker ([`ProbeListener::remote_begin`])
/// is honoured without its end: a worker killed mid-run never says `end`,
/// and one domain's acceptance run is far shorter than this.
pub const REMOTE_RUN_MAX: Duration = Duration::from_secs(300);
/// How long a worker whose evidence is relayed waits, after a target
/// answered its dialback `valid`, for the relayed `db:verify` notice: the
/// target's answer races the relay through PostgreSQL.
pub const RELAY_SETTLE: Duration = Duration::from_millis(750);

/// Evidence the probe domain's listener saw about a domain that another
/// worker of the same crawl is probing, relayed to that worker (several
/// hosts, one database: only one host is where the probe domain's DNS
/// points, but every worker's acceptance probe needs what targets sent
/// there). It comes only from our own workers through the database, never
/// from a target directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Relayed {
    /// We answered a `db:verify` from `domain` `valid`.
    Verified {
        /// The asking (probed) domain.
        domain: String,
    },
    /// A stream from `domain` authenticated (its report as it stood then).
    Inbound {
        /// The probed domain.
        domain: String,
        /// Distinguishes the relaying listener's streams.
        stream: u64,
        /// The stream's report.
        report: Box<InboundReport>,
    },
    /// An IQ result or error `domain` delivered to us.
    Iq {
        /// The probed domain.
        domain: String,
        /// The stanza.
        element: Element,
    },
}

impl Relayed {
    /// The probed domain the evidence is about.
    pub fn domain(&self) -> &str {
        match self {
            Self::Verified { domain } | Self::Inbound { domain, .. } | Self::Iq { domain, .. } => {
                domain
            }
        }
    }
}

/// How a listener talks to the crawl's other workers (implemented over
/// PostgreSQL by [`crate::crawl::relay`]): announcing the runs this worker
/// begins and ends, and forwarding evidence to the worker probing a domain.
pub trait Relay: Send + Sync {
    /// Tells the other workers that this worker begins (`begin`) or ends
    /// a run for `domain`. The notice is sent even if the future is
    /// dropped; awaiting it waits until it is out.
    fn announce(&self, domain: &str, begin: bool) -> futures::future::BoxFuture<'static, ()>;
    /// Sends `evidence` to `worker` (fire and forget, in order).
    fn forward(&self, worker: &str, evidence: Relayed);
}

/// What the listener needs.
#[derive(Clone)]
pub struct ListenerConfig {
    /// The probe identity: domain, certificates, listen address, secret.
    pub identity: Arc<ProbeIdentity>,
    /// Limits, address policy and trust anchors (Mozilla + extra CAs) for
    /// judging peers' certificates and for outbound verification
    /// connections (`probe_domain` is overridden with the identity's).
    pub ctx: ProbeContext,
    /// DNS for finding a dialback peer's authoritative server.
    pub resolver: Arc<Resolver>,
    /// Streams served at once ([`MAX_STREAMS`] unless the process's file
    /// descriptor budget calls for fewer).
    pub max_streams: usize,
}

/// Why the listener could not start.
#[derive(Debug, Error)]
pub enum ListenerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        reason: String,
    },
    /// The server-only certificate or key was refused by rustls.
    #[error("listener TLS: {0}")]
    Tls(#[from] TlsSetupError),
}

/// Per-domain state, kept only while the domain is being probed
/// ([`ProbeListener::begin`] … [`ProbeListener::end`]): nothing about a
/// stranger outlives its stream.
#[derive(Default)]
struct InFlight {
    /// Acceptance runs for this domain in progress (normally one).
    runs: usize,
    /// `db:verify` answered `valid` for keys we issued to it.
    verifies: usize,
    /// Streams that authenticated as this domain.
    inbound: Vec<Arc<Mutex<InboundReport>>>,
    /// Ends those streams when the run ends: a target keeps its link to
    /// us open for reuse, but once its verdict is taken the slot is worth
    /// more to the next target.
    streams: Vec<CancellationToken>,
    /// Relayed streams (by the relaying listener's stream number) and
    /// their place in `inbound`.
    relayed: HashMap<u64, usize>,
}

/// A run another worker of the crawl announced: its domain's streams are
/// admitted here and their evidence forwarded to that worker.
struct RemoteRun {
    worker: String,
    runs: usize,
    since: std::time::Instant,
    /// Reports relayed so far (capped like local ones).
    reports: usize,
    streams: Vec<CancellationToken>,
}

#[derive(Default)]
struct State {
    waiters: HashMap<(String, String), oneshot::Sender<Element>>,
    in_flight: HashMap<String, InFlight>,
    /// Runs announced by the crawl's other workers, by domain.
    remote: HashMap<String, RemoteRun>,
    /// Live streams per source address and per /24 or /48.
    per_address: HashMap<IpAddr, usize>,
    per_prefix: HashMap<IpAddr, usize>,
    live: usize,
}

/// What the listener saw, for the crawl's progress line, summary and row.
/// Every refusal is counted by reason; nothing per stranger is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStats {
    /// Connections accepted and served.
    pub accepted: u64,
    /// Closed at once: the source address held [`MAX_STREAMS_PER_ADDRESS`].
    pub refused_address_cap: u64,
    /// Closed at once: the /24 or /48 held [`MAX_STREAMS_PER_PREFIX`].
    pub refused_prefix_cap: u64,
    /// Closed at once: all stream slots ([`ListenerConfig::max_streams`]) were taken.
    pub refused_slots: u64,
    /// Refused after the header: its `from` is not a domain being probed.
    pub refused_not_in_flight: u64,
    /// Streams that authenticated (EXTERNAL or verified dialback).
    pub authenticated: u64,
    /// Streams that ended without authenticating (deadline, error, close).
    pub unauthenticated: u64,
    /// Dialback verifications we made (outbound connections).
    pub verifications: u64,
    /// Most streams live at once.
    pub peak_streams: u64,
    /// Accept errors (e.g. EMFILE: out of file descriptors).
    pub accept_errors: u64,
}

/// The /24 (IPv4) or /48 (IPv6) an address belongs to, as its first address.
fn prefix_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

/// The probe domain's listener; see the module docs. Stop it with
/// [`Self::shutdown`] (its accept task holds a reference until then).
pub struct ProbeListener {
    identity: Arc<ProbeIdentity>,
    ctx: ProbeContext,
    resolver: Arc<Resolver>,
    domain: String,
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    limits: InboundLimits,
    state: Mutex<State>,
    max_streams: usize,
    stats: Counters,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// The crawl's other workers, once [`Self::set_relay`] was called.
    relay: std::sync::OnceLock<Arc<dyn Relay>>,
}

/// [`ListenerStats`] as atomics, updated without the state lock.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused_address_cap: AtomicU64,
    refused_prefix_cap: AtomicU64,
    refused_slots: AtomicU64,
    refused_not_in_flight: AtomicU64,
    authenticated: AtomicU64,
    unauthenticated: AtomicU64,
    verifications: AtomicU64,
    peak_streams: AtomicU64,
    accept_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    AddressCap,
    PrefixCap,
    Slots,
}

/// A live stream's place in the global count and, until it
/// authenticates, in the per-address and per-prefix counts; released on
/// drop. The per-address caps are for strangers: once a stream proves it
/// is a domain being probed, it no longer counts against its address (a
/// shared host delivering replies for many probed domains at once).
struct Admission {
    listener: Arc<ProbeListener>,
    ip: IpAddr,
    counted: std::cell::Cell<bool>,
    /// The stream authenticated (as a domain being probed).
    authenticated: std::cell::Cell<bool>,
    /// Ends this stream (listener shutdown, or its domain's run ended).
    cancel: CancellationToken,
}

impl Admission {
    /// Takes the stream out of the per-address and per-prefix counts.
    fn release_address(&self) {
        if !self.counted.replace(false) {
            return;
        }
        let mut guard = self.listener.lock();
        let st = &mut *guard;
        let prefix = prefix_of(self.ip);
        for (map, key) in [(&mut st.per_address, self.ip), (&mut st.per_prefix, prefix)] {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release_address();
        self.listener.lock().live -= 1;
    }
}

tokio::task_local! {
    /// The admission of the stream the current task serves (the inbound
    /// engine calls [`InboundPolicy::authenticated`] from that task).
    static ADMISSION: Admission;
}

fn norm(d: &str) -> String {
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl ProbeListener {
    /// Binds `identity.listen` and starts accepting. The TLS certificate is
    /// the identity's server-only one; client certificates are requested
    /// and accepted at the TLS layer, judged at EXTERNAL time.
    pub async fn start(cfg: ListenerConfig) -> Result<Arc<Self>, ListenerError> {
        let id = cfg.identity.clone();
        let provider = cfg.ctx.tls.verifier().provider().clone();
        let tls = server_config(
            &provider,
            id.server_only.chain.clone(),
            id.server_only.key_der.clone_key(),
            &ClientAuth::AcceptAny,
            TLS12_AND_13,
            None,
        )?;
        let socket = bind_with_backlog(id.listen).map_err(|e| ListenerError::Bind {
            addr: id.listen,
            reason: e.to_string(),
        })?;
        let addr = socket.local_addr().map_err(|e| ListenerError::Bind {
            addr: id.listen,
            reason: e.to_string(),
        })?;
        let mut ctx = cfg.ctx;
        ctx.probe_domain = Some(id.domain.clone());
        let limits = InboundLimits {
            reader: ReaderLimits {
                max_phase_bytes: MAX_ELEMENT_BYTES.min(ctx.limits.max_phase_bytes),
                max_depth: ctx.limits.max_xml_depth,
            },
            step: ctx.limits.phase_timeout,
            idle: IDLE_TIMEOUT,
            // connect + two stream openings + TLS + the answer.
            verify: ctx.limits.connect_timeout + ctx.limits.phase_timeout * 4,
            lifetime: STREAM_LIFETIME,
            auth_deadline: auth_deadline(&ctx.limits),
        };
        let me = Arc::new(Self {
            domain: norm(&id.domain),
            identity: id,
            ctx,
            resolver: cfg.resolver,
            addr,
            tls,
            limits,
            state: Mutex::new(State::default()),
            max_streams: cfg.max_streams.max(1),
            stats: Counters::default(),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            relay: std::sync::OnceLock::new(),
        });
        let l = me.clone();
        me.tracker.spawn(async move { l.accept_loop(socket).await });
        Ok(me)
    }

    async fn accept_loop(self: Arc<Self>, socket: TcpListener) {
        loop {
            let accepted = tokio::select! {
                _ = self.cancel.cancelled() => break,
                a = socket.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    bump(&self.stats.accept_errors);
                    tracing::warn!(error = %e, "dialback listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let admission = match self.admit(peer.ip()) {
                Ok(a) => a,
                Err(why) => {
                    self.refused(why);
                    // Closed at once: no TLS, no task, no state.
                    drop(tcp);
                    continue;
                }
            };
            bump(&self.stats.accepted);
            let _ = tcp.set_nodelay(true);
            let l = self.clone();
            let cancel = admission.cancel.clone();
            self.tracker.spawn(ADMISSION.scope(admission, async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = inbound::serve(&*l, tcp, &l.limits) => {}
                };
                if !ADMISSION.with(|a| a.authenticated.get()) {
                    bump(&l.stats.unauthenticated);
                }
            }));
        }
    }

    /// Takes a stream slot for a connection from `ip`, within the global,
    /// per-address and per-prefix caps.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let mut st = self.lock();
        let prefix = prefix_of(ip);
        if st.live >= self.max_streams {
            return Err(Refusal::Slots);
        }
        if st.per_address.get(&ip).copied().unwrap_or(0) >= MAX_STREAMS_PER_ADDRESS {
            return Err(Refusal::AddressCap);
        }
        if st.per_prefix.get(&prefix).copied().unwrap_or(0) >= MAX_STREAMS_PER_PREFIX {
            return Err(Refusal::PrefixCap);
        }
        *st.per_address.entry(ip).or_default() += 1;
        *st.per_prefix.entry(prefix).or_default() += 1;
        st.live += 1;
        self.stats
            .peak_streams
            .fetch_max(st.live as u64, Ordering::Relaxed);
        Ok(Admission {
            listener: self.clone(),
            ip,
            counted: std::cell::Cell::new(true),
            authenticated: std::cell::Cell::new(false),
            cancel: self.cancel.child_token(),
        })
    }

    fn refused(&self, why: Refusal) {
        let (counter, first) = match why {
            Refusal::AddressCap => (&self.stats.refused_address_cap, "per-address"),
            Refusal::PrefixCap => (&self.stats.refused_prefix_cap, "per-prefix"),
            Refusal::Slots => (&self.stats.refused_slots, "global"),
        };
        if counter.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                cap = first,
                "dialback listener: stream cap reached; further connections are closed at once"
            );
        }
    }

    /// What the listener has seen so far.
    pub fn stats(&self) -> ListenerStats {
        let c = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ListenerStats {
            accepted: get(&c.accepted),
            refused_address_cap: get(&c.refused_address_cap),
            refused_prefix_cap: get(&c.refused_prefix_cap),
            refused_slots: get(&c.refused_slots),
            refused_not_in_flight: get(&c.refused_not_in_flight),
            authenticated: get(&c.authenticated),
            unauthenticated: get(&c.unauthenticated),
            verifications: get(&c.verifications),
            peak_streams: get(&c.peak_streams),
            accept_errors: get(&c.accept_errors),
        }
    }

    /// Starts expecting streams from `peer` (an acceptance run begins):
    /// only domains being probed may open streams that count as evidence
    /// or make us verify a dialback key.
    pub fn begin(&self, peer: &str) {
        self.lock().in_flight.entry(norm(peer)).or_default().runs += 1;
    }

    /// Ends a run for `peer`; its state is dropped when no run is left.
    pub fn end(&self, peer: &str) {
        let peer = norm(peer);
        let mut st = self.lock();
        if let Some(f) = st.in_flight.get_mut(&peer) {
            f.runs -= 1;
            if f.runs == 0
                && let Some(f) = st.in_flight.remove(&peer)
            {
                f.streams.iter().for_each(CancellationToken::cancel);
            }
        }
        st.waiters.retain(|(p, _), w| *p != peer && !w.is_closed());
    }

    /// Being probed by this worker, or by another worker of the crawl
    /// that announced it through the relay.
    fn is_in_flight(&self, peer: &str) -> bool {
        let peer = norm(peer);
        let st = self.lock();
        st.in_flight.contains_key(&peer) || st.remote.contains_key(&peer)
    }

    /// Connects this listener to the crawl's other workers (once; later
    /// calls are ignored): runs begun here are announced to them, and
    /// evidence for their runs is forwarded to them.
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        let _ = self.relay.set(relay);
    }

    /// Another worker of the crawl (`worker`) begins probing `domain`: its
    /// streams are admitted here (as for our own runs) and what they
    /// show is forwarded to that worker. Only our own workers can call
    /// this (through the database), never a target.
    pub fn remote_begin(&self, domain: &str, worker: &str) {
        let mut st = self.lock();
        let now = std::time::Instant::now();
        st.remote.retain(|_, r| {
            let keep = now.duration_since(r.since) < REMOTE_RUN_MAX;
            if !keep {
                r.streams.iter().for_each(CancellationToken::cancel);
            }
            keep
        });
        let r = st.remote.entry(norm(domain)).or_insert_with(|| RemoteRun {
            worker: worker.to_owned(),
            runs: 0,
            since: now,
            reports: 0,
            streams: Vec::new(),
        });
        r.runs += 1;
        r.since = now;
        r.worker = worker.to_owned();
    }

    /// The run [`Self::remote_begin`] announced ended.
    pub fn remote_end(&self, domain: &str) {
        let domain = norm(domain);
        let mut st = self.lock();
        if let Some(r) = st.remote.get_mut(&domain) {
            r.runs = r.runs.saturating_sub(1);
            if r.runs == 0
                && let Some(r) = st.remote.remove(&domain)
            {
                r.streams.iter().for_each(CancellationToken::cancel);
            }
        }
    }

    /// Evidence the probe domain's listener (another worker's) saw about a
    /// domain *we* are probing: counted as if it had reached us. Ignored
    /// when the run is over.
    pub fn receive(&self, evidence: Relayed) {
        let domain = norm(evidence.domain());
        let mut st = self.lock();
        match evidence {
            Relayed::Verified { .. } => {
                if let Some(f) = st.in_flight.get_mut(&domain) {
                    f.verifies += 1;
                }
            }
            Relayed::Inbound { stream, report, .. } => {
                if let Some(f) = st.in_flight.get_mut(&domain) {
                    let report = Arc::new(Mutex::new(*report));
                    match f.relayed.get(&stream) {
                        Some(&i) => f.inbound[i] = report,
                        None if f.inbound.len() < MAX_REPORTS_PER_DOMAIN => {
                            f.relayed.insert(stream, f.inbound.len());
                            f.inbound.push(report);
                        }
                        None => {}
                    }
                }
            }
            Relayed::Iq { element, .. } => {
                let Some(id) = iq::parse(&element).map(|q| q.id.to_owned()) else {
                    return;
                };
                if let Some(w) = st.waiters.remove(&(domain, id)) {
                    let _ = w.send(element);
                }
            }
        }
    }

    /// The worker probing `peer` when that is another worker of the crawl.
    fn remote_worker(&self, peer: &str) -> Option<String> {
        let peer = norm(peer);
        let st = self.lock();
        if st.in_flight.contains_key(&peer) {
            return None;
        }
        st.remote.get(&peer).map(|r| r.worker.clone())
    }

    fn forward(&self, worker: &str, evidence: Relayed) {
        if let Some(r) = self.relay.get() {
            r.forward(worker, evidence);
        }
    }

    /// Waits (up to [`RELAY_SETTLE`], only when evidence is relayed) until
    /// `peer`'s `db:verify` count exceeds `before`; returns the count.
    pub async fn settled_verifies(&self, peer: &str, before: usize) -> usize {
        let deadline = tokio::time::Instant::now() + RELAY_SETTLE;
        loop {
            let n = self.verifies_from(peer);
            if n > before || self.relay.get().is_none() || tokio::time::Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The bound address (useful when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The XEP-0185 key for *our* `<db:result/>` to `receiving` on a
    /// stream whose id it gave us (XEP-0220 §2.1.1); it is what this
    /// listener confirms when `receiving` asks with `db:verify`.
    pub fn dialback_key(&self, receiving: &str, stream_id: &str) -> String {
        dialback::key(
            &self.identity.dialback_secret,
            &norm(receiving),
            &self.domain,
            stream_id,
        )
    }

    /// Waits for the IQ reply (result or error) with `id` that `peer`
    /// delivers over an authenticated stream to us (RFC 6120 §8.1.1,
    /// §8.2.3). The receiver errors if the listener shuts down first; drop
    /// it to stop waiting.
    pub fn expect_iq(&self, peer: &str, id: &str) -> oneshot::Receiver<Element> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.lock();
        if st.waiters.len() >= WAITER_SWEEP {
            st.waiters.retain(|_, w| !w.is_closed());
        }
        st.waiters.insert((norm(peer), id.to_owned()), tx);
        rx
    }

    /// `db:verify` requests from `peer` we answered `valid` (XEP-0220
    /// §2.1.2): proof that `peer` checked our dialback key with us.
    pub fn verifies_from(&self, peer: &str) -> usize {
        self.lock()
            .in_flight
            .get(&norm(peer))
            .map_or(0, |f| f.verifies)
    }

    /// Streams `peer` opened to us so far (live streams included, as they
    /// stand now), oldest first.
    pub fn inbound(&self, peer: &str) -> Vec<InboundReport> {
        let peer = norm(peer);
        self.lock().in_flight.get(&peer).map_or_else(Vec::new, |f| {
            f.inbound
                .iter()
                .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .collect()
        })
    }

    /// Stops accepting, ends every stream and waits for their tasks.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl InboundPolicy for ProbeListener {
    type Local = ();

    fn local(&self, to: Option<&str>) -> Option<()> {
        to.is_some_and(|t| norm(t) == self.domain).then_some(())
    }

    /// Only domains being probed: their replies and key checks are what
    /// we wait for; anyone else is closed before TLS.
    fn admits(&self, _: &(), peer: Option<&str>) -> bool {
        let ok = peer.is_some_and(|p| self.is_in_flight(p));
        if !ok {
            bump(&self.stats.refused_not_in_flight);
        }
        ok
    }

    fn domain<'a>(&'a self, _: &'a ()) -> &'a str {
        &self.domain
    }

    fn features(&self, _: &(), stage: Stage) -> String {
        inbound::features(stage, true, true)
    }

    fn tls_config(&self, _: &()) -> Option<Arc<ServerConfig>> {
        Some(self.tls.clone())
    }

    /// Lenient, like Prosody: the client certificate must be trusted (Mozilla
    /// roots + extra CAs) and name `peer` *as a server certificate*.
    fn external(&self, _: &(), peer: &str, chain: &[CertificateDer<'static>]) -> SaslOutcome {
        let (verdict, detail, _) =
            self.ctx
                .tls
                .verifier()
                .verdict_chain(peer, Service::S2s, chain, UnixTime::now());
        if verdict == ChainVerdict::Trusted {
            return SaslOutcome::Success;
        }
        let v = crate::facts::json(verdict);
        let mut text = format!(
            "certificate not trusted for {peer}: {}",
            v.as_str().unwrap_or("invalid")
        );
        if let Some(d) = detail {
            text.push_str(&format!(" ({d})"));
        }
        SaslOutcome::Failure {
            condition: "not-authorized".into(),
            text: Some(text),
        }
    }

    fn dialback(&self, _: &()) -> bool {
        true
    }

    async fn verify_dialback(&self, _: &(), peer: &str, stream_id: &str, key: &str) -> bool {
        // The name comes from a stranger: only a valid domain goes to DNS.
        let Ok(peer) = crate::model::domain::DomainName::parse(peer) else {
            return false;
        };
        let peer = peer.as_str();
        // Only for a domain we are probing: the listener never connects
        // out on a stranger's behalf.
        if !self.is_in_flight(peer) {
            return false;
        }
        bump(&self.stats.verifications);
        let plans = inbound::resolve_plans(&self.resolver, peer).await;
        inbound::verify_key(&self.ctx, &self.domain, peer, &plans, stream_id, key)
            .await
            .unwrap_or(false)
    }

    fn secret<'a>(&'a self, _: &'a ()) -> &'a [u8] {
        &self.identity.dialback_secret
    }

    fn verify_answered(&self, _: &(), peer: &str, valid: bool) {
        if !valid {
            return;
        }
        if let Some(f) = self.lock().in_flight.get_mut(&norm(peer)) {
            f.verifies += 1;
            return;
        }
        if let Some(worker) = self.remote_worker(peer) {
            self.forward(&worker, Relayed::Verified { domain: norm(peer) });
        }
    }

    async fn iq(&self, _: &(), peer: &str, el: &Element) -> Option<String> {
        let q = iq::parse(el)?;
        if matches!(q.kind, IqKind::Result | IqKind::Error { .. }) {
            let waiter = self
                .lock()
                .waiters
                .remove(&(peer.to_owned(), q.id.to_owned()));
            if let Some(w) = waiter {
                let _ = w.send(el.clone());
            } else if let Some(worker) = self.remote_worker(peer) {
                self.forward(
                    &worker,
                    Relayed::Iq {
                        domain: norm(peer),
                        element: el.clone(),
                    },
                );
            }
        }
        // Requests from targets are not answered: we are a probe, not a
        // server, and answering would mean connecting out to strangers.
        None
    }

    fn authenticated(&self, _: &(), report: &Arc<Mutex<InboundReport>>) {
        bump(&self.stats.authenticated);
        let token = ADMISSION
            .try_with(|a| {
                a.authenticated.set(true);
                a.release_address();
                a.cancel.clone()
            })
            .ok();
        let peer = report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peer
            .clone();
        let mut st = self.lock();
        if let Some(f) = st.in_flight.get_mut(&peer) {
            if f.inbound.len() < MAX_REPORTS_PER_DOMAIN {
                f.inbound.push(report.clone());
            }
            f.streams.extend(token);
            return;
        }
        let Some(r) = st.remote.get_mut(&peer) else {
            return;
        };
        r.streams.extend(token);
        if r.reports >= MAX_REPORTS_PER_DOMAIN {
            return;
        }
        r.reports += 1;
        let worker = r.worker.clone();
        drop(st);
        let snapshot = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.forward(
            &worker,
            Relayed::Inbound {
                domain: peer,
                stream: Arc::as_ptr(report) as usize as u64,
                report: Box::new(snapshot),
            },
        );
    }
}

/// The listener is the probe domain's authoritative server for the
/// acceptance probe (MEASUREMENTS §3.4–§3.5).
impl crate::acceptance::probe::Authority for ProbeListener {
    fn dialback_key(&self, receiving: &str, stream_id: &str) -> String {
        Self::dialback_key(self, receiving, stream_id)
    }
    fn expect_iq(&self, peer: &str, id: &str) -> oneshot::Receiver<Element> {
        Self::expect_iq(self, peer, id)
    }
    fn verifies_from(&self, peer: &str) -> usize {
        Self::verifies_from(self, peer)
    }
    fn inbound(&self, peer: &str) -> Vec<InboundReport> {
        Self::inbound(self, peer)
    }
    fn begin(&self, peer: &str) -> futures::future::BoxFuture<'static, ()> {
        Self::begin(self, peer);
        match self.relay.get() {
            Some(r) => r.announce(&norm(peer), true),
            None => Box::pin(std::future::ready(())),
        }
    }
    fn end(&self, peer: &str) {
        Self::end(self, peer);
        if let Some(r) = self.relay.get() {
            drop(r.announce(&norm(peer), false));
        }
    }
    fn settled_verifies<'a>(
        &'a self,
        peer: &'a str,
        before: usize,
    ) -> futures::future::BoxFuture<'a, usize> {
        Box::pin(Self::settled_verifies(self, peer, before))
    }
}

/// Binds `addr` with [`ACCEPT_BACKLOG`] instead of tokio's 1024 default
/// (and std's 128).
fn bind_with_backlog(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

#[cfg(test)]
#[cfg(feature = "testnet")]
mod tests {
    use super::*;
    use crate::acceptance::InboundAuth;
    use crate::probe::report::EndpointOutcome;
    use crate::s2s::inbound::{InboundLimits, OutboundAuth, direct_plan};
    use crate::s2s::steps;
    use crate::testnet::External;
    use crate::testnet::harness::*;
    use crate::testnet::profile::CertShape;
    use crate::tls::EkuClass;
    use crate::tls::client::certified_key;
    use crate::xmpp::dialback::Answer;
    use crate::xmpp::reader::StreamReader;
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const PEER: &str = "peer.xs.test";

    fn key_of(
        net: &crate::testnet::Testnet,
        domain: &str,
        shape: CertShape,
    ) -> Arc<rustls::sign::CertifiedKey> {
        let c = net.issue(domain, shape).expect("issue");
        certified_key(c.chain, c.key).expect("key")
    }

    /// Polls `f` until it holds (the listener updates reports as the stream
    /// goes on, concurrently with the test).
    async fn eventually(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..100 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        false
    }

    /// XEP-0178 at the listener: a trusted *server-only* client certificate
    /// authenticates (lenient, validated as a server certificate), and the
    /// IQ result the peer then delivers reaches `expect_iq`; the inbound
    /// report has the chain's EKU, the auth and the reply count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn xep0178_trusted_server_only_cert_authenticates_and_delivers() {
        let net = testnet(40, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        l.begin(PEER);
        let probe = net.probe_identity().expect("id").domain;
        let plan = direct_plan(&probe, l.local_addr());
        let out = inbound::connect(
            &ctx(&net, PEER),
            PEER,
            &probe,
            &[plan],
            Some(key_of(&net, PEER, CertShape::ServerOnly)),
            b"unused",
        )
        .await
        .expect("authenticated");
        assert_eq!(out.auth, OutboundAuth::External);
        let mut s = out.session;
        let rx = l.expect_iq(PEER, "r1");
        steps::send(&mut s.stream, &iq::empty_result(PEER, &probe, "r1"))
            .await
            .expect("send");
        let got = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("in time")
            .expect("delivered");
        assert_eq!(got.attr("id"), Some("r1"));
        assert!(
            eventually(|| l.inbound(PEER).first().is_some_and(|r| r.replies == 1)).await,
            "{:?}",
            l.inbound(PEER)
        );
        let r = &l.inbound(PEER)[0];
        assert!(r.tls);
        assert_eq!(r.client_eku, Some(EkuClass::ServerOnly));
        assert_eq!(
            r.auth,
            InboundAuth::External {
                outcome: SaslOutcome::Success
            }
        );
        // An IQ result from a domain this stream did not authenticate is
        // not handed over: the stream is closed with invalid-from.
        let mut rx = l.expect_iq("other.xs.test", "r2");
        steps::send(
            &mut s.stream,
            &iq::empty_result("other.xs.test", &probe, "r2"),
        )
        .await
        .expect("send");
        let answer = tokio::time::timeout(Duration::from_secs(5), s.stream.read_element())
            .await
            .expect("in time")
            .expect("stream error");
        assert_eq!(
            crate::xmpp::stream::parse_error(&answer).condition,
            "invalid-from"
        );
        assert!(rx.try_recv().is_err(), "not handed over");
        l.shutdown().await;
        net.shutdown().await;
    }

    /// XEP-0178 §3 step 8 refusal: a certificate from an unknown issuer gets
    /// `not-authorized` with a reason; nothing is authenticated.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn xep0178_untrusted_cert_is_not_authorized() {
        let net = testnet(41, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        l.begin(PEER);
        let probe = net.probe_identity().expect("id").domain;
        let plan = direct_plan(&probe, l.local_addr());
        let cx = ctx(&net, PEER);
        let cert = key_of(&net, PEER, CertShape::UnknownIssuer);
        let (r, s) = session(&cx, &probe, &plan, Some(cert)).await;
        let mut s = s.unwrap_or_else(|| panic!("session: {r:?}"));
        assert!(s.features.sasl_mechanisms.iter().any(|m| m == "EXTERNAL"));
        let (outcome, _) =
            steps::auth_external(&mut s.stream, PEER, &probe, Duration::from_secs(5))
                .await
                .expect("answer");
        match outcome {
            SaslOutcome::Failure { condition, text } => {
                assert_eq!(condition, "not-authorized");
                assert!(text.is_some_and(|t| t.contains("unknown_issuer")));
            }
            other => panic!("expected failure, got {other:?}"),
        }
        // Without a certificate EXTERNAL is not even offered.
        let (_, s2) = session(&cx, &probe, &plan, None).await;
        assert!(s2.expect("session").features.sasl_mechanisms.is_empty());
        l.shutdown().await;
        net.shutdown().await;
    }

    /// XEP-0220 §2.1.2 as authoritative server: our key is confirmed, a
    /// wrong one refused, over TLS and before TLS; only valid ones count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn xep0220_db_verify_answers_with_our_secret() {
        let net = testnet(42, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        l.begin(PEER);
        let probe = net.probe_identity().expect("id").domain;
        let plan = direct_plan(&probe, l.local_addr());
        let (r, s) = session(&ctx(&net, PEER), &probe, &plan, None).await;
        let mut s = s.unwrap_or_else(|| panic!("session: {r:?}"));
        let t = Duration::from_secs(5);
        let good = l.dialback_key(PEER, "sid-1");
        let a = steps::verify(&mut s.stream, PEER, &probe, "sid-1", &good, t).await;
        assert_eq!(a, Ok(Answer::Valid));
        let a = steps::verify(&mut s.stream, PEER, &probe, "sid-2", &good, t).await;
        assert_eq!(a, Ok(Answer::Invalid), "a key is bound to its stream id");
        let a = steps::verify(&mut s.stream, "else.xs.test", &probe, "sid-1", &good, t).await;
        assert_eq!(
            a,
            Ok(Answer::Invalid),
            "a key is bound to the receiving domain"
        );
        assert_eq!(l.verifies_from(PEER), 1);
        // Before TLS (XEP-0220 predates mandatory TLS).
        let tcp = TcpStream::connect(l.local_addr()).await.expect("tcp");
        let mut rd = StreamReader::new(tcp, Default::default());
        rd.write_all(
            crate::xmpp::stream::open_header(&crate::xmpp::stream::HeaderSpec {
                service: Service::S2s,
                from: Some(PEER),
                to: Some(&probe),
                id: None,
                version: Some("1.0"),
                dialback: true,
            })
            .as_bytes(),
        )
        .await
        .expect("header");
        rd.read_header().await.expect("header back");
        rd.read_element().await.expect("features");
        let a = steps::verify(
            &mut rd,
            PEER,
            &probe,
            "sid-3",
            &l.dialback_key(PEER, "sid-3"),
            t,
        )
        .await;
        assert_eq!(a, Ok(Answer::Valid));
        assert_eq!(l.verifies_from(PEER), 2);
        // Streams that only ask `db:verify` never authenticate their
        // `from`: the answers count, the streams are not evidence.
        assert!(l.inbound(PEER).is_empty(), "{:?}", l.inbound(PEER));
        l.shutdown().await;
        net.shutdown().await;
    }

    /// RFC 6120 §4.9.3.6: the listener serves the probe domain only.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rfc6120_4_9_3_6_other_domain_is_host_unknown() {
        let net = testnet(43, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        l.begin(PEER);
        let plan = direct_plan("other.xs.test", l.local_addr());
        let (r, s) = session(&ctx(&net, PEER), "other.xs.test", &plan, None).await;
        assert!(s.is_none());
        assert_eq!(r.outcome, EndpointOutcome::StreamError);
        assert_eq!(
            r.stream_error.map(|e| e.condition).as_deref(),
            Some("host-unknown")
        );
        l.shutdown().await;
        net.shutdown().await;
    }

    /// A flood (one huge element) is cut off by the byte cap with a
    /// `policy-violation`, and the listener goes on serving others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flood_is_cut_off_and_listener_keeps_serving() {
        let net = testnet(44, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        l.begin(PEER);
        let probe = net.probe_identity().expect("id").domain;
        let mut tcp = TcpStream::connect(l.local_addr()).await.expect("tcp");
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
             from='{PEER}' to='{probe}' version='1.0'>"
        );
        tcp.write_all(header.as_bytes()).await.expect("header");
        let (mut rh, mut wh) = tcp.into_split();
        let writer = tokio::spawn(async move {
            let _ = wh.write_all(b"<db:verify from='a' to='b' id='c'>").await;
            let chunk = vec![b'x'; 16 * 1024];
            for _ in 0..64 {
                if wh.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), rh.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the listener must close the flooding stream");
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("policy-violation"), "{text}");
        writer.abort();
        // Still serving.
        let plan = direct_plan(&probe, l.local_addr());
        let (r, s) = session(&ctx(&net, PEER), &probe, &plan, None).await;
        assert!(s.is_some(), "{r:?}");
        l.shutdown().await;
        net.shutdown().await;
    }

    /// Writes a stream header from `from` to the listener over plain TCP
    /// from source address `src` (any 127.x address), returns the socket.
    async fn raw_stream(l: &ProbeListener, src: Ipv4Addr, from: &str, to: &str) -> TcpStream {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(SocketAddr::new(IpAddr::V4(src), 0))
            .expect("bind source");
        let mut tcp = sock.connect(l.local_addr()).await.expect("connect");
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
             from='{from}' to='{to}' version='1.0'>"
        );
        tcp.write_all(header.as_bytes()).await.expect("header");
        tcp
    }

    /// Reads until the listener closes (or `limit`), returning the text.
    async fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> Option<String> {
        let mut got = Vec::new();
        tokio::time::timeout(limit, tcp.read_to_end(&mut got))
            .await
            .ok()
            .map(|_| String::from_utf8_lossy(&got).into_owned())
    }

    /// A stream from a domain that is not being probed is refused right
    /// after its header, before TLS, and makes the listener connect nowhere.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stranger_not_being_probed_is_refused_before_tls() {
        let net = testnet(45, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        l.begin(PEER);
        let probe = net.probe_identity().expect("id").domain;
        let mut tcp = raw_stream(
            &l,
            Ipv4Addr::new(127, 45, 0, 70),
            "stranger.xs.test",
            &probe,
        )
        .await;
        let text = read_until_closed(&mut tcp, Duration::from_secs(5))
            .await
            .expect("closed at once");
        assert!(text.contains("not-authorized"), "{text}");
        assert!(!text.contains("starttls"), "no features offered: {text}");
        let stats = l.stats();
        assert_eq!(stats.refused_not_in_flight, 1, "{stats:?}");
        assert_eq!(stats.verifications, 0);
        // Once its run ends, even the probed domain is a stranger.
        l.end(PEER);
        let mut tcp = raw_stream(&l, Ipv4Addr::new(127, 45, 0, 70), PEER, &probe).await;
        let text = read_until_closed(&mut tcp, Duration::from_secs(5))
            .await
            .expect("closed at once");
        assert!(text.contains("not-authorized"), "{text}");
        l.shutdown().await;
        net.shutdown().await;
    }

    /// Records what a listener relays (the crawl's other workers).
    #[derive(Default)]
    struct Recorder {
        forwarded: Mutex<Vec<(String, Relayed)>>,
        announced: Mutex<Vec<(String, bool)>>,
    }

    impl Relay for Recorder {
        fn announce(&self, domain: &str, begin: bool) -> futures::future::BoxFuture<'static, ()> {
            self.announced
                .lock()
                .unwrap()
                .push((domain.to_owned(), begin));
            Box::pin(std::future::ready(()))
        }
        fn forward(&self, worker: &str, evidence: Relayed) {
            self.forwarded
                .lock()
                .unwrap()
                .push((worker.to_owned(), evidence));
        }
    }

    /// Several hosts: a run another worker announced is served like our
    /// own, and what its streams show goes to that worker, not into our
    /// evidence; strangers are still refused before TLS, and so is the
    /// domain once its run ended. On the receiving side, relayed evidence
    /// counts only for a run of ours.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn announced_runs_of_other_workers_are_served_and_relayed() {
        use crate::acceptance::probe::Authority;
        let net = testnet(158, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        let relay = Arc::new(Recorder::default());
        l.set_relay(relay.clone());
        l.remote_begin(PEER, "worker-2");
        let probe = net.probe_identity().expect("id").domain;
        let plan = direct_plan(&probe, l.local_addr());
        let (r, s) = session(&ctx(&net, PEER), &probe, &plan, None).await;
        let mut s = s.unwrap_or_else(|| panic!("session: {r:?}"));
        let t = Duration::from_secs(5);
        let good = l.dialback_key(PEER, "sid-1");
        let a = steps::verify(&mut s.stream, PEER, &probe, "sid-1", &good, t).await;
        assert_eq!(a, Ok(Answer::Valid));
        let a = steps::verify(&mut s.stream, PEER, &probe, "sid-2", &good, t).await;
        assert_eq!(a, Ok(Answer::Invalid));
        s.close().await;
        assert_eq!(
            l.verifies_from(PEER),
            0,
            "not our run: nothing counted here"
        );
        assert_eq!(
            *relay.forwarded.lock().unwrap(),
            [(
                "worker-2".to_string(),
                Relayed::Verified {
                    domain: PEER.into()
                }
            )],
            "only the valid answer is relayed, to the worker probing it"
        );
        let mut tcp = raw_stream(
            &l,
            Ipv4Addr::new(127, 158, 0, 70),
            "stranger.xs.test",
            &probe,
        )
        .await;
        let text = read_until_closed(&mut tcp, t)
            .await
            .expect("closed at once");
        assert!(
            text.contains("not-authorized") && !text.contains("starttls"),
            "{text}"
        );
        l.remote_end(PEER);
        let mut tcp = raw_stream(&l, Ipv4Addr::new(127, 158, 0, 70), PEER, &probe).await;
        let text = read_until_closed(&mut tcp, t)
            .await
            .expect("closed at once");
        assert!(text.contains("not-authorized"), "{text}");
        assert_eq!(l.stats().refused_not_in_flight, 2, "{:?}", l.stats());

        // The receiving worker: evidence for a domain it does not probe is
        // dropped; for its own run it counts, and an IQ reaches its waiter.
        let mine = "mine.xs.test";
        l.receive(Relayed::Verified {
            domain: mine.into(),
        });
        assert_eq!(l.verifies_from(mine), 0);
        Authority::begin(&*l, mine).await;
        assert_eq!(*relay.announced.lock().unwrap(), [(mine.to_string(), true)]);
        l.receive(Relayed::Verified {
            domain: mine.into(),
        });
        assert_eq!(l.settled_verifies(mine, 0).await, 1);
        let rx = l.expect_iq(mine, "ping-1");
        let mut reply = Element::new(crate::xmpp::NS_SERVER, "iq");
        reply.attrs = vec![
            ("type".into(), "result".into()),
            ("id".into(), "ping-1".into()),
            ("from".into(), mine.into()),
        ];
        l.receive(Relayed::Iq {
            domain: mine.into(),
            element: reply.clone(),
        });
        assert_eq!(rx.await.ok(), Some(reply));
        Authority::end(&*l, mine);
        assert_eq!(relay.announced.lock().unwrap().len(), 2);
        l.shutdown().await;
        net.shutdown().await;
    }

    /// A stream whose header names a probed domain but that cannot prove
    /// it (no certificate, a dialback key its authoritative server does not
    /// confirm) leaves no evidence: forged `from` changes no verdict.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forged_from_leaves_no_evidence() {
        let net = testnet(46, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        // A real testnet domain: its authoritative server exists and will
        // deny a key we make up.
        let target = net.domains().remove(0);
        l.begin(&target);
        let probe = net.probe_identity().expect("id").domain;
        let plan = direct_plan(&probe, l.local_addr());
        let (r, s) = session(&ctx(&net, &target), &probe, &plan, None).await;
        let mut s = s.unwrap_or_else(|| panic!("session: {r:?}"));
        let t = Duration::from_secs(10);
        let a = steps::dialback(&mut s.stream, &target, &probe, "forged-key", t).await;
        assert_eq!(a, Ok(Answer::Invalid));
        s.close().await;
        assert!(
            eventually(|| l.stats().unauthenticated == 1).await,
            "{:?}",
            l.stats()
        );
        assert!(l.inbound(&target).is_empty(), "{:?}", l.inbound(&target));
        assert_eq!(l.stats().authenticated, 0);
        l.shutdown().await;
        net.shutdown().await;
    }

    /// One source address gets [`MAX_STREAMS_PER_ADDRESS`] streams; the
    /// next is closed at once, and other addresses are still served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_address_cannot_take_more_than_its_share() {
        let net = testnet(47, &["lenient"], vec![]).await;
        let l = listener(&net).await;
        l.begin(PEER);
        let probe = net.probe_identity().expect("id").domain;
        let hog = Ipv4Addr::new(127, 47, 0, 66);
        let mut held = Vec::new();
        for _ in 0..MAX_STREAMS_PER_ADDRESS {
            held.push(raw_stream(&l, hog, PEER, &probe).await);
        }
        assert!(
            eventually(|| l.stats().accepted == MAX_STREAMS_PER_ADDRESS as u64).await,
            "{:?}",
            l.stats()
        );
        let mut extra = raw_stream(&l, hog, PEER, &probe).await;
        let text = read_until_closed(&mut extra, Duration::from_secs(5)).await;
        assert_eq!(text.as_deref(), Some(""), "closed without a byte");
        assert_eq!(l.stats().refused_address_cap, 1, "{:?}", l.stats());
        // Another address (another /24 too) is served as usual.
        let mut other = raw_stream(&l, Ipv4Addr::new(127, 47, 9, 9), PEER, &probe).await;
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), other.read(&mut buf))
            .await
            .expect("answered")
            .expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).contains("stream"));
        drop(held);
        l.shutdown().await;
        net.shutdown().await;
    }

    /// An unauthenticated stream ends at the authentication deadline
    /// however busy it keeps the listener (elements do not extend it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unauthenticated_stream_ends_at_the_deadline_however_busy() {
        let net = testnet(48, &["lenient"], vec![]).await;
        let identity = Arc::new(net.probe_identity().expect("identity"));
        let mut cx = ctx(&net, &identity.domain);
        cx.limits.connect_timeout = Duration::from_millis(500);
        cx.limits.phase_timeout = Duration::from_millis(500);
        let deadline = auth_deadline(&cx.limits);
        let l = ProbeListener::start(ListenerConfig {
            max_streams: MAX_STREAMS,
            ctx: cx,
            identity: identity.clone(),
            resolver: resolver(&net),
        })
        .await
        .expect("listener");
        l.begin(PEER);
        let tcp = raw_stream(&l, Ipv4Addr::new(127, 48, 0, 5), PEER, &identity.domain).await;
        let (mut rh, mut wh) = tcp.into_split();
        let t0 = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            // A db:verify every 200 ms: each answered, none authenticates.
            for i in 0..200 {
                let el = format!("<db:verify from='{PEER}' to='x' id='{i}'>k</db:verify>");
                if wh.write_all(el.as_bytes()).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let mut got = Vec::new();
        let closed = tokio::time::timeout(deadline * 3, rh.read_to_end(&mut got)).await;
        writer.abort();
        assert!(closed.is_ok(), "still open after {:?}", deadline * 3);
        let took = t0.elapsed();
        assert!(
            took < deadline + Duration::from_secs(2),
            "closed after {took:?}, deadline {deadline:?}"
        );
        assert!(
            String::from_utf8_lossy(&got).contains("db:verify"),
            "it was served"
        );
        l.shutdown().await;
        net.shutdown().await;
    }

    /// A tiny authoritative server for `auth.xs.test`: answers `db:verify`
    /// with its own secret, through the same inbound engine.
    struct Authoritative {
        domain: String,
        secret: Vec<u8>,
        tls: Arc<ServerConfig>,
    }

    impl InboundPolicy for Authoritative {
        type Local = ();
        fn local(&self, to: Option<&str>) -> Option<()> {
            (to == Some(self.domain.as_str())).then_some(())
        }
        fn domain<'a>(&'a self, _: &'a ()) -> &'a str {
            &self.domain
        }
        fn features(&self, _: &(), stage: Stage) -> String {
            inbound::features(stage, false, true)
        }
        fn tls_config(&self, _: &()) -> Option<Arc<ServerConfig>> {
            Some(self.tls.clone())
        }
        fn external(&self, _: &(), _: &str, _: &[CertificateDer<'static>]) -> SaslOutcome {
            SaslOutcome::Failure {
                condition: "not-authorized".into(),
                text: None,
            }
        }
        fn dialback(&self, _: &()) -> bool {
            false
        }
        async fn verify_dialback(&self, _: &(), _: &str, _: &str, _: &str) -> bool {
            false
        }
        fn secret<'a>(&'a self, _: &'a ()) -> &'a [u8] {
            &self.secret
        }
        async fn iq(&self, _: &(), _: &str, _: &Element) -> Option<String> {
            None
        }
    }

    /// XEP-0220 §2.1.1–§2.1.3 as receiving server: a peer without a
    /// certificate sends `db:result`; the listener finds the peer's
    /// authoritative server through DNS, asks it with `db:verify`, and
    /// answers valid (then accepts the peer's IQ result) or invalid.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn xep0220_db_result_verified_with_peers_authoritative_server() {
        const AUTH: &str = "auth.xs.test";
        let auth_ip = Ipv4Addr::new(127, 45, 0, 9);
        let net = testnet(
            45,
            &["lenient"],
            vec![External {
                domain: AUTH.into(),
                ip: auth_ip,
            }],
        )
        .await;
        let l = listener(&net).await;
        l.begin(AUTH);
        let probe = net.probe_identity().expect("id").domain;
        let cert = net.issue(AUTH, CertShape::ServerOnly).expect("issue");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = server_config(
            &provider,
            cert.chain,
            cert.key,
            &ClientAuth::None,
            TLS12_AND_13,
            None,
        )
        .expect("tls");
        let secret = b"authoritative secret".to_vec();
        let auth = Arc::new(Authoritative {
            domain: AUTH.into(),
            secret: secret.clone(),
            tls,
        });
        let sock = TcpListener::bind((IpAddr::V4(auth_ip), 5269))
            .await
            .expect("bind");
        let a2 = auth.clone();
        let server = tokio::spawn(async move {
            let limits = InboundLimits {
                reader: ReaderLimits::default(),
                step: Duration::from_secs(5),
                idle: Duration::from_secs(5),
                verify: Duration::from_secs(5),
                lifetime: Duration::from_secs(30),
                auth_deadline: Duration::from_secs(30),
            };
            while let Ok((tcp, _)) = sock.accept().await {
                let a3 = a2.clone();
                tokio::spawn(async move { inbound::serve(&*a3, tcp, &limits).await });
            }
        });
        let plan = direct_plan(&probe, l.local_addr());
        let cx = ctx(&net, AUTH);
        let out = inbound::connect(
            &cx,
            AUTH,
            &probe,
            std::slice::from_ref(&plan),
            None,
            &secret,
        )
        .await
        .expect("dialback accepted");
        assert_eq!(out.auth, OutboundAuth::Dialback);
        let mut s = out.session;
        let rx = l.expect_iq(AUTH, "v1");
        steps::send(&mut s.stream, &iq::empty_result(AUTH, &probe, "v1"))
            .await
            .expect("send");
        assert!(
            tokio::time::timeout(Duration::from_secs(5), rx)
                .await
                .expect("in time")
                .is_ok()
        );
        assert!(
            l.inbound(AUTH)
                .iter()
                .any(|r| r.auth == InboundAuth::Dialback { valid: true })
        );
        // A key the authoritative server did not issue.
        let err = inbound::connect(&cx, AUTH, &probe, &[plan], None, b"wrong secret")
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("Invalid"), "{err}");
        server.abort();
        l.shutdown().await;
        net.shutdown().await;
    }
}
