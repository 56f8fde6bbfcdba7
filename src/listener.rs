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
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Streams served at once. Each costs a task, a TLS session and at most
/// one outbound verification connection; 256 covers a crawl's burst of
/// callbacks (one or two per target in flight) while bounding what a
/// flood of connections can take. Further connections wait in the
/// kernel's accept queue.
pub const MAX_STREAMS: usize = 256;
/// Bytes a peer may send per element (and per negotiation step): replies
/// and dialback elements are well under 4 KiB; this cuts off floods.
pub const MAX_ELEMENT_BYTES: u64 = 64 * 1024;
/// Silence allowed on an authenticated stream before we close it: long
/// enough for a target to deliver both replies of one acceptance run.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest any one stream may live.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(300);
/// Inbound reports kept (oldest dropped first), so strangers cannot grow
/// memory without bound.
pub const MAX_REPORTS: usize = 4096;
/// Outstanding [`ProbeListener::expect_iq`] waiters kept; beyond this,
/// abandoned ones are swept.
const WAITER_SWEEP: usize = 1024;

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

#[derive(Default)]
struct State {
    waiters: HashMap<(String, String), oneshot::Sender<Element>>,
    verifies: HashMap<String, usize>,
    inbound: VecDeque<Arc<Mutex<InboundReport>>>,
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
    cancel: CancellationToken,
    tracker: TaskTracker,
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
        let socket = TcpListener::bind(id.listen)
            .await
            .map_err(|e| ListenerError::Bind {
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
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let l = me.clone();
        me.tracker.spawn(async move { l.accept_loop(socket).await });
        Ok(me)
    }

    async fn accept_loop(self: Arc<Self>, socket: TcpListener) {
        let slots = Arc::new(Semaphore::new(MAX_STREAMS));
        loop {
            let permit = tokio::select! {
                _ = self.cancel.cancelled() => break,
                p = slots.clone().acquire_owned() => p,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                _ = self.cancel.cancelled() => break,
                a = socket.accept() => a,
            };
            let Ok((tcp, _)) = accepted else {
                // EMFILE and friends: back off rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let l = self.clone();
            self.tracker.spawn(async move {
                tokio::select! {
                    _ = l.cancel.cancelled() => {}
                    _ = inbound::serve(&*l, tcp, &l.limits) => {}
                }
                drop(permit);
            });
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
        self.lock().verifies.get(&norm(peer)).copied().unwrap_or(0)
    }

    /// Streams `peer` opened to us so far (live streams included, as they
    /// stand now), oldest first.
    pub fn inbound(&self, peer: &str) -> Vec<InboundReport> {
        let peer = norm(peer);
        self.lock()
            .inbound
            .iter()
            .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .filter(|r| r.peer == peer)
            .collect()
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
        let plans = inbound::resolve_plans(&self.resolver, peer).await;
        inbound::verify_key(&self.ctx, &self.domain, peer, &plans, stream_id, key)
            .await
            .unwrap_or(false)
    }

    fn secret<'a>(&'a self, _: &'a ()) -> &'a [u8] {
        &self.identity.dialback_secret
    }

    fn verify_answered(&self, _: &(), peer: &str, valid: bool) {
        if valid {
            *self.lock().verifies.entry(peer.to_owned()).or_default() += 1;
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
            }
        }
        // Requests from targets are not answered: we are a probe, not a
        // server, and answering would mean connecting out to strangers.
        None
    }

    fn opened(&self, report: &Arc<Mutex<InboundReport>>) {
        let mut st = self.lock();
        if st.inbound.len() >= MAX_REPORTS {
            st.inbound.pop_front();
        }
        st.inbound.push_back(report.clone());
    }
}
