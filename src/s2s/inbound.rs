//! The receiving side of a server-to-server stream, written once for the
//! probe's dialback listener ([`crate::listener`]) and the testnet's
//! simulated servers ([`crate::testnet::server`]). The outbound helpers
//! both of them need ([`connect`], [`verify_key`], …) live in
//! [`super::outbound`] and are re-exported here.
//!
//! The protocol is fixed here; what differs between the two users (which
//! domains are served, which features are offered, which TLS config, how a
//! client certificate is judged, how a dialback key is verified, what to do
//! with an IQ) is an [`InboundPolicy`].
//!
//! Flow of one stream (RFC 6120 §4–§6, XEP-0178, XEP-0220):
//! 1. the peer's header; ours with a fresh stream id (RFC 6120 §4.7.3) and
//!    the pre-TLS features, or `host-unknown` (RFC 6120 §4.9.3.6) when we do
//!    not serve its `to`;
//! 2. `<starttls/>` → `<proceed/>` → TLS accept (RFC 6120 §5.4.3.3); a
//!    `db:verify` (XEP-0220 §2.1.2) is also answered before TLS, anything
//!    else is a `policy-violation`;
//! 3. the peer's header over TLS; ours with the post-TLS features;
//! 4. elements: `<auth mechanism='EXTERNAL'>` (XEP-0178 §3; success restarts
//!    the stream, RFC 6120 §6.4.6), `db:result` (XEP-0220 §2.1.1–§2.1.3:
//!    the policy verifies the key with the peer's authoritative server),
//!    `db:verify` (XEP-0220 §2.1.2: a key *we* issued, checked against our
//!    XEP-0185 secret), `<iq/>` from an authenticated peer (handed to the
//!    policy); message and presence are dropped, never routed.
//!
//! Steps 1–3 are the pure server machine of
//! [`crate::negotiation::server`] (the policy answers its questions
//! through an adapter); this file drives it and runs step 4's loop, whose
//! element handlers (`<auth/>`, dialback, stanzas) are in
//! `inbound/elements.rs`.
//!
//! Every read has a byte budget ([`InboundLimits::reader`], reset per
//! element) and a timeout; the whole stream has a lifetime cap. Closing is
//! polite: `</stream:stream>` then TLS close_notify (RFC 6120 §4.4).

use crate::model::acceptance::{InboundAuth, InboundReport};
use crate::model::domain::{fold, same_domain};
use crate::negotiation::server::{self, Host, Outcome, Server, ServerAction, fault_condition};
use crate::negotiation::{Action, Event, Expect};
use crate::tls::cert;
use crate::xmpp::dialback;
use crate::xmpp::element::Element;
use crate::xmpp::reader::{ReaderLimits, StreamReader};
use crate::xmpp::sasl::SaslOutcome;
use crate::xmpp::stream::{self, StreamHeader};
use crate::xmpp::{NS_DIALBACK_FEATURE, NS_SASL, NS_SERVER, NS_STREAMS, NS_TLS};
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_rustls::server::TlsStream;

mod elements;

use elements::{auth, dialback_element, stanza};

pub use super::outbound::{
    Outbound, OutboundAuth, OutboundError, connect, direct_plan, resolve_plans, verify_key,
};
/// How long the polite close (`</stream:stream>`, close_notify) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The limits of one inbound stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundLimits {
    /// Byte budget per element and depth cap; the budget is reset before
    /// every read, so one huge element is cut off (RFC 6120 §13.12 item 4:
    /// limit the size of stanzas a peer may send).
    pub reader: ReaderLimits,
    /// Each negotiation step (header, STARTTLS, handshake, an element
    /// before the peer is authenticated).
    pub step: Duration,
    /// Silence allowed between elements once the peer is authenticated
    /// (an idle federation link).
    pub idle: Duration,
    /// One dialback verification round trip (XEP-0220 §2.1.2: connect to the
    /// peer's authoritative server, TLS, `db:verify`) or one IQ callback.
    pub verify: Duration,
    /// The whole stream, however active.
    pub lifetime: Duration,
    /// From the first byte until the peer authenticates (EXTERNAL success
    /// or a verified dialback): elements do not extend it, so a stranger
    /// cannot hold a stream by trickling bytes. Streams that only ask
    /// `db:verify` never authenticate and end here too.
    pub auth_deadline: Duration,
}

pub use crate::negotiation::server::{SECURE_AUTH_REFUSAL, Stage};

/// What differs between receiving servers; the protocol lives in [`serve`].
///
/// Async methods return `Send` futures so a stream can run in a spawned
/// task.
pub trait InboundPolicy: Sync {
    /// One domain we serve (the listener has one; a shared testnet host
    /// several).
    type Local: Send + Sync;

    /// The domain the peer's `to` names (RFC 6120 §4.7.2), or `None`: the
    /// stream is refused with `host-unknown` (RFC 6120 §4.9.3.6).
    fn local(&self, to: Option<&str>) -> Option<Self::Local>;

    /// The domain name of `local` (our `from`, the originating/receiving
    /// name in dialback keys).
    fn domain<'a>(&'a self, local: &'a Self::Local) -> &'a str;

    /// The `<stream:features/>` element for `stage`.
    fn features(&self, local: &Self::Local, stage: Stage) -> String;

    /// The TLS config for `local` (RFC 6120 §5.4.3.3); `None` answers
    /// `<starttls/>` with `<failure/>`.
    fn tls_config(&self, local: &Self::Local) -> Option<Arc<ServerConfig>>;

    /// The answer to `<auth mechanism='EXTERNAL'/>` (XEP-0178 §3 step 8)
    /// from `peer` (the header's `from`, equal to the authzid if one was
    /// given) with the chain it presented as TLS client (end-entity first;
    /// may be empty).
    fn external(
        &self,
        local: &Self::Local,
        peer: &str,
        chain: &[CertificateDer<'static>],
    ) -> SaslOutcome;

    /// Whether a stream whose peer presented no certificate is refused
    /// after TLS with `<not-authorized/>` (Prosody's `s2s_secure_auth`,
    /// on in Debian's stock configuration). A behaviour of real receiving
    /// servers, not a test hook: the probe's listener keeps the default
    /// (no); the testnet's `secure_auth` profiles turn it on to play
    /// Prosody as deployed.
    fn requires_peer_certificate(&self, _local: &Self::Local) -> bool {
        false
    }

    /// Whether `db:result` requests are served (XEP-0220); when not, they
    /// are answered `invalid`.
    fn dialback(&self, local: &Self::Local) -> bool;

    /// XEP-0220 §2.1.2: is `key` genuine for `peer` on our stream `stream_id`?
    /// Asks the peer's authoritative server with `db:verify`.
    fn verify_dialback(
        &self,
        local: &Self::Local,
        peer: &str,
        stream_id: &str,
        key: &str,
    ) -> impl Future<Output = bool> + Send;

    /// Our XEP-0185 secret, for answering `db:verify` about keys we issued
    /// when *we* connected to the asking server.
    fn secret<'a>(&'a self, local: &'a Self::Local) -> &'a [u8];

    /// Told after every `db:verify` we answered (XEP-0220 §2.1.2), with the
    /// asking (receiving) server's domain.
    fn verify_answered(&self, _local: &Self::Local, _peer: &str, _valid: bool) {}

    /// An `<iq/>` from authenticated `peer` (its `from` domain). Returns XML
    /// to send back on this stream, or `None` (e.g. the answer goes over
    /// our own outbound stream, as RFC 6120 §8.1.1 expects without
    /// XEP-0288 bidi).
    fn iq(
        &self,
        local: &Self::Local,
        peer: &str,
        iq: &Element,
    ) -> impl Future<Output = Option<String>> + Send;

    /// Whether to serve a stream whose header names `peer` as its `from`
    /// (`None`: absent). Refused streams get `<not-authorized/>` before
    /// TLS, costing us no handshake. Default: all.
    fn admits(&self, _local: &Self::Local, _peer: Option<&str>) -> bool {
        true
    }

    /// Called once per stream, when the peer first authenticates as the
    /// domain in `report.peer` (EXTERNAL with a certificate valid for it, or
    /// dialback verified with its authoritative server), with the report
    /// the stream keeps updating (TLS chain, auth, replies). Nothing from a
    /// stream that never authenticates reaches the policy.
    fn authenticated(&self, _local: &Self::Local, _report: &Arc<Mutex<InboundReport>>) {}
}

/// Serves one accepted TCP connection to the end (or the lifetime cap).
/// Returns whether the peer authenticated at some point.
pub async fn serve<P: InboundPolicy>(policy: &P, tcp: TcpStream, limits: &InboundLimits) -> bool {
    let deadline = Instant::now() + limits.auth_deadline;
    let authenticated = std::sync::atomic::AtomicBool::new(false);
    let _ = timeout(limits.lifetime, async {
        let mut rd = StreamReader::new(tcp, limits.reader);
        let Ok(Ok(header)) = timeout(until(deadline, limits.step), rd.read_header()).await else {
            return;
        };
        plain(policy, rd, header, limits, deadline, &authenticated).await;
    })
    .await;
    authenticated.load(std::sync::atomic::Ordering::Relaxed)
}

/// Continues a stream whose header the caller already read (a host that
/// dispatches on `to` before choosing this engine).
pub async fn serve_after_header<P: InboundPolicy>(
    policy: &P,
    rd: StreamReader<TcpStream>,
    header: StreamHeader,
    limits: &InboundLimits,
) {
    let deadline = Instant::now() + limits.auth_deadline;
    let flag = std::sync::atomic::AtomicBool::new(false);
    let _ = timeout(
        limits.lifetime,
        plain(policy, rd, header, limits, deadline, &flag),
    )
    .await;
}

/// Serves a stream on an already accepted TLS connection (direct TLS,
/// XEP-0368), for `local` (chosen by SNI).
pub async fn serve_tls<P: InboundPolicy>(
    policy: &P,
    tls: TlsStream<TcpStream>,
    local: P::Local,
    limits: &InboundLimits,
) {
    let deadline = Instant::now() + limits.auth_deadline;
    let flag = std::sync::atomic::AtomicBool::new(false);
    let m = Server::direct_tls(policy.domain(&local).to_owned());
    let host = Adapter {
        policy,
        local: Some(local),
        tls: None,
        report: new_report(None),
    };
    let _ = timeout(
        limits.lifetime,
        secure(tls, m, host, limits, deadline, &flag),
    )
    .await;
}

/// The wait for the next step: `step`, but never past `deadline` (the
/// unauthenticated stream's end).
fn until(deadline: Instant, step: Duration) -> Duration {
    deadline.saturating_duration_since(Instant::now()).min(step)
}

fn new_report(peer: Option<&str>) -> Arc<Mutex<InboundReport>> {
    Arc::new(Mutex::new(InboundReport {
        peer: peer.map(fold).unwrap_or_default(),
        at: OffsetDateTime::now_utc(),
        tls: false,
        client_chain: Vec::new(),
        client_eku: None,
        client_purpose: None,
        auth: InboundAuth::None,
        replies: 0,
    }))
}

fn update(report: &Mutex<InboundReport>, f: impl FnOnce(&mut InboundReport)) {
    f(&mut report.lock().unwrap_or_else(|e| e.into_inner()));
}

/// A fresh stream id: 128 random bits (RFC 6120 §4.7.3 asks for
/// unpredictability; dialback keys are bound to it, XEP-0220 §2.1.1).
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn our_header(from: &str, to: Option<&str>, id: &str) -> String {
    server::our_header(Some(from), to, id)
}

/// Closes politely: the stream error if any, `</stream:stream>`, then TLS
/// close_notify / FIN (RFC 6120 §4.4), within a short timeout.
pub async fn close<S: AsyncRead + AsyncWrite + Unpin>(rd: StreamReader<S>, error: Option<&str>) {
    let mut rd = rd;
    close_with(&mut rd, error, None).await;
}

/// [`close`] on a borrowed reader, with the error's `<text/>`.
async fn close_with<S: AsyncRead + AsyncWrite + Unpin>(
    rd: &mut StreamReader<S>,
    error: Option<&str>,
    text: Option<&str>,
) {
    let mut out = String::new();
    if let Some(condition) = error {
        out.push_str(&stream::error_xml(condition, text));
    }
    out.push_str(stream::CLOSE);
    let _ = timeout(CLOSE_TIMEOUT, async {
        let _ = rd.write_all(out.as_bytes()).await;
        let _ = rd.get_mut().shutdown().await;
    })
    .await;
}

/// Reads one element with a fresh byte budget; on a fault, timeout or
/// peer stream error the stream is closed and `None` returned.
pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(
    rd: &mut StreamReader<S>,
    wait: Duration,
) -> Result<Element, Option<&'static str>> {
    rd.new_phase();
    match timeout(wait, rd.read_element()).await {
        // RFC 6120 §4.9.3.4 connection-timeout.
        Err(_) => Err(Some("connection-timeout")),
        Ok(Err(f)) => Err(fault_condition(&f)),
        Ok(Ok(el)) if el.is(NS_STREAMS, "error") => Err(None),
        Ok(Ok(el)) => Ok(el),
    }
}

/// Answers a `db:verify` about a key we issued (XEP-0220 §2.1.2, keys per
/// XEP-0185 §2): valid iff `key` is ours for (receiving = the asker,
/// originating = us, stream id).
pub fn answer_verify<P: InboundPolicy>(
    policy: &P,
    local: &P::Local,
    from: &str,
    to: &str,
    id: &str,
    key: &str,
) -> String {
    let me = policy.domain(local);
    let valid =
        same_domain(to, me) && dialback::key(policy.secret(local), &fold(from), me, id) == key;
    policy.verify_answered(local, &fold(from), valid);
    dialback::verify_answer(me, from, id, valid)
}

/// The policy as the server machine's [`Host`]: it remembers the domain
/// chosen by the header's `to` and the TLS config, and keeps the report's
/// `db:verify` evidence.
struct Adapter<'a, P: InboundPolicy> {
    policy: &'a P,
    local: Option<P::Local>,
    tls: Option<Arc<ServerConfig>>,
    report: Arc<Mutex<InboundReport>>,
}

impl<P: InboundPolicy> Host for Adapter<'_, P> {
    fn serve(&mut self, to: Option<&str>) -> Option<String> {
        self.local = self.policy.local(to);
        let local = self.local.as_ref()?;
        Some(self.policy.domain(local).to_owned())
    }

    fn admits(&mut self, peer: Option<&str>) -> bool {
        self.local
            .as_ref()
            .is_some_and(|l| self.policy.admits(l, peer))
    }

    fn features(&mut self, stage: Stage) -> String {
        self.local
            .as_ref()
            .map(|l| self.policy.features(l, stage))
            .unwrap_or_default()
    }

    fn tls(&mut self) -> bool {
        self.tls = self.local.as_ref().and_then(|l| self.policy.tls_config(l));
        self.tls.is_some()
    }

    fn verify(&mut self, from: &str, to: &str, id: &str, key: &str) -> String {
        let Some(local) = self.local.as_ref() else {
            return String::new();
        };
        let out = answer_verify(self.policy, local, from, to, id, key);
        update(&self.report, |r| {
            if r.auth == InboundAuth::None {
                r.auth = InboundAuth::VerifyOnly;
            }
        });
        out
    }

    fn requires_peer_certificate(&mut self) -> bool {
        self.local
            .as_ref()
            .is_some_and(|l| self.policy.requires_peer_certificate(l))
    }

    fn new_id(&mut self) -> String {
        new_id()
    }
}

/// Where [`pump`] stopped.
enum Halt {
    /// The machine asked for the TLS handshake.
    StartTls,
    /// The machine is done.
    Done(Outcome),
}

/// Carries out the server machine's actions on `rd` and feeds it what it
/// reads (each read with a fresh byte budget, within the step timeout and
/// the authentication deadline) until it asks for TLS or is done.
async fn pump<P: InboundPolicy, S: AsyncRead + AsyncWrite + Unpin>(
    m: &mut Server,
    host: &mut Adapter<'_, P>,
    rd: &mut StreamReader<S>,
    pending: Vec<ServerAction>,
    limits: &InboundLimits,
    deadline: Instant,
) -> Halt {
    let mut pending = pending;
    loop {
        let mut fed = None;
        for action in pending {
            match action {
                Action::Send(xml) => {
                    if let Err(e) = rd.write_all(xml.as_bytes()).await {
                        fed = Some(m.handle(Event::WriteFailed(e.to_string()), host));
                        break;
                    }
                }
                Action::StartTls => return Halt::StartTls,
                Action::Close { condition, text } => close_with(rd, condition, text).await,
                Action::Done(o) => return Halt::Done(o),
            }
        }
        pending = match fed {
            Some(next) => next,
            None => {
                rd.new_phase();
                let wait = until(deadline, limits.step);
                let ev = match m.expects() {
                    Expect::Header => match timeout(wait, rd.read_header()).await {
                        Err(_) => Event::Timeout,
                        Ok(r) => r.map_or_else(Event::Fault, Event::Header),
                    },
                    Expect::Element => match timeout(wait, rd.read_element()).await {
                        Err(_) => Event::Timeout,
                        Ok(r) => r.map_or_else(Event::Fault, Event::Element),
                    },
                    // The machine ends with `StartTls` or `Done` first.
                    Expect::Tls | Expect::Nothing => Event::Timeout,
                };
                m.handle(ev, host)
            }
        };
    }
}

/// Before TLS: the server machine ([`crate::negotiation::server`])
/// answers the header with ours and the features, then `<starttls/>` (or
/// `db:verify`); after `<proceed/>` the TLS handshake, unless plaintext
/// was buffered behind `<starttls/>` (RFC 6120 §5.4.3.3).
async fn plain<P: InboundPolicy>(
    policy: &P,
    mut rd: StreamReader<TcpStream>,
    header: StreamHeader,
    limits: &InboundLimits,
    deadline: Instant,
    authenticated: &std::sync::atomic::AtomicBool,
) {
    let mut host = Adapter {
        policy,
        local: None,
        tls: None,
        report: new_report(header.from.as_deref()),
    };
    let mut m = Server::new();
    let first = m.handle(Event::Header(header), &mut host);
    if let Halt::Done(_) = pump(&mut m, &mut host, &mut rd, first, limits, deadline).await {
        return;
    }
    let (tcp, leftover) = rd.into_inner();
    if !m.handle(Event::Buffered(leftover), &mut host).is_empty() {
        // Plaintext behind <starttls/> would be processed as if it came
        // over TLS (the STARTTLS injection class): drop it all.
        return;
    }
    let Some(cfg) = host.tls.take() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let Ok(Ok(tls)) = timeout(until(deadline, limits.step), acceptor.accept(tcp)).await else {
        return;
    };
    secure(tls, m, host, limits, deadline, authenticated).await;
}

/// The peer's chain as analysed certificates (unparsable ones left out)
/// and its end-entity's EKU class.
fn record_chain(report: &Mutex<InboundReport>, chain: &[CertificateDer<'static>]) {
    // Each certificate analysed once; the end entity's EKU only when the
    // first one parsed (an unparsable end entity has no class).
    let mut analysed = chain.iter().map(|c| cert::analyze(c.as_ref()).ok());
    let end_entity = analysed.next().flatten();
    let client_eku = end_entity.as_ref().map(|i| i.eku.class);
    let infos: Vec<_> = end_entity.into_iter().chain(analysed.flatten()).collect();
    update(report, |r| {
        r.tls = true;
        r.client_eku = client_eku;
        r.client_purpose = crate::tls::eku::client_purpose(&infos);
        r.client_chain = infos;
    });
}

/// What the stream has established so far.
struct Secure {
    me: String,
    /// The peer's header `from`.
    peer: Option<String>,
    /// Our current stream id (dialback keys are bound to it).
    id: String,
    /// Domains authenticated on this stream (SASL or dialback).
    authed: Vec<String>,
    sasl_done: bool,
    /// `db:result` requests seen.
    dialbacks: usize,
    /// The policy was told this stream authenticated.
    published: bool,
}

/// After TLS: the machine reads the header and sends ours with the
/// features (or refuses the stream); then the element loop.
async fn secure<P: InboundPolicy>(
    tls: TlsStream<TcpStream>,
    mut m: Server,
    mut host: Adapter<'_, P>,
    limits: &InboundLimits,
    deadline: Instant,
    authenticated: &std::sync::atomic::AtomicBool,
) {
    let policy = host.policy;
    let report = host.report.clone();
    let chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    record_chain(&report, &chain);
    let mut rd = StreamReader::new(tls, limits.reader);
    let up = m.handle(
        Event::TlsUp {
            peer_chain: !chain.is_empty(),
        },
        &mut host,
    );
    let secured = match pump(&mut m, &mut host, &mut rd, up, limits, deadline).await {
        Halt::Done(Outcome::Secured(s)) => s,
        Halt::Done(Outcome::Ended(_)) | Halt::StartTls => return,
    };
    let Some(local) = host.local.take() else {
        return;
    };
    let mut st = Secure {
        me: secured.me,
        peer: secured.peer,
        id: secured.id,
        authed: Vec::new(),
        sasl_done: false,
        dialbacks: 0,
        published: false,
    };
    if let Some(p) = &st.peer {
        update(&report, |r| p.clone_into(&mut r.peer));
    }
    loop {
        let wait = if st.authed.is_empty() {
            until(deadline, limits.step)
        } else {
            limits.idle
        };
        let el = match next(&mut rd, wait).await {
            Ok(el) => el,
            Err(condition) => return close(rd, condition).await,
        };
        let step = if el.is(NS_SASL, "auth") {
            auth(
                policy, &local, &mut rd, &mut st, &el, &chain, &report, limits,
            )
            .await
        } else if let Some(db) = dialback::parse(&el) {
            dialback_element(policy, &local, &mut st, db, &report, limits).await
        } else if el.ns == NS_SERVER && matches!(el.name.as_str(), "iq" | "message" | "presence") {
            stanza(policy, &local, &st, &el, &report, limits).await
        } else {
            // Unknown top-level elements are ignored.
            Ok(None)
        };
        if st.published {
            authenticated.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        match step {
            Ok(Some(out)) => {
                if rd.write_all(out.as_bytes()).await.is_err() {
                    return;
                }
            }
            Ok(None) => {}
            Err(condition) => return close(rd, condition).await,
        }
    }
}

/// `<stream:features/>` for a receiving s2s server: STARTTLS required
/// before TLS (RFC 6120 §5.3.1), EXTERNAL after TLS when the peer presented
/// a certificate and `external` allows (XEP-0178 §3 step 5), dialback
/// (XEP-0220 §2.4) before and after TLS when `dialback`, nothing but
/// dialback after SASL (RFC 6120 §6.4.6).
pub fn features(stage: Stage, external: bool, dialback: bool) -> String {
    let mut s = String::from("<stream:features>");
    match stage {
        Stage::BeforeTls => {
            s.push_str(&format!(
                "<starttls xmlns='{NS_TLS}'><required/></starttls>"
            ));
        }
        Stage::AfterTls { peer_chain } => {
            if external && peer_chain {
                s.push_str(&format!(
                    "<mechanisms xmlns='{NS_SASL}'><mechanism>EXTERNAL</mechanism></mechanisms>"
                ));
            }
        }
        Stage::Authenticated => {}
    }
    if dialback {
        s.push_str(&format!(
            "<dialback xmlns='{NS_DIALBACK_FEATURE}'><errors/></dialback>"
        ));
    }
    s.push_str("</stream:features>");
    s
}
