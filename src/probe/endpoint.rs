//! Probing one endpoint: TCP connect, stream header, features, STARTTLS or
//! direct TLS, and the post-TLS stream (RFC 6120 §4–§5, XEP-0368).
//!
//! Each phase has its own timeout and byte budget; every way a server can
//! fail (or attack) ends as a typed [`EndpointOutcome`] in the report.
//!
//! The protocol itself is the pure client machine of
//! [`crate::negotiation::client`]; this is its thin async driver: the
//! TCP connect, the hardened reader, the phase timeouts and the rustls
//! connector (RFC 6120 §5.4.3.3).

use crate::dns::TlsaRecord;
use crate::limits::Limits;
use crate::negotiation::client::{Client, ClientAction, Config, Outcome, Record};
use crate::negotiation::{Action, Event, Expect};
use crate::net::policy::{AddressPolicy, classify};
use crate::net::politeness::{ConnectPermit, Politeness};
use crate::probe::plan::EndpointPlan;
use crate::probe::report::{ConnectOutcome, EndpointOutcome, EndpointReport, Phase, Transport};
use crate::tls::client::{Capture, TlsProbe, classify_error, server_name, tls_info};
use crate::tls::dane;
use crate::tls::{ChainVerdict, TlsFailure, TlsInfo};
use crate::xmpp::Service;
use crate::xmpp::features::Features;
use crate::xmpp::reader::{ReaderLimits, StreamReader};
use crate::xmpp::stream;
use rustls::sign::CertifiedKey;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;

/// How long the polite close (`</stream:stream>`, TLS close_notify) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What every endpoint probe of a run shares.
#[derive(Clone)]
pub struct ProbeContext {
    /// Timeouts and caps.
    pub limits: Limits,
    /// Which addresses may be contacted.
    pub policy: AddressPolicy,
    /// Roots and rustls configuration.
    pub tls: Arc<TlsProbe>,
    /// Our own domain, sent as `from` on s2s streams when configured.
    pub probe_domain: Option<String>,
    /// Rate and concurrency limits per target address and for the whole
    /// run; `None`: connect at once (tests, single-domain probes).
    pub gate: Option<Arc<Politeness>>,
    /// The local address connections leave from (a multi-homed host, or a
    /// simulated server calling back from its own address); `None`: the
    /// OS picks it.
    pub source_ip: Option<IpAddr>,
}

impl ProbeContext {
    /// This context with connections leaving from `ip`.
    pub fn leaving_from(&self, ip: IpAddr) -> Self {
        Self {
            source_ip: Some(ip),
            ..self.clone()
        }
    }
}

/// TCP connect to `to`, from `source` when given and of `to`'s address
/// family (bound to port 0 there); otherwise the OS picks the source.
async fn tcp_connect(to: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = source.filter(|ip| ip.is_ipv4() == to.is_ipv4()) else {
        return TcpStream::connect(to).await;
    };
    let socket = if to.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(to).await
}

/// ALPN protocol ids of XEP-0368 §4.
fn alpn(service: Service) -> &'static [u8] {
    match service {
        Service::C2s => b"xmpp-client",
        Service::S2s => b"xmpp-server",
    }
}

/// The live stream over TLS, after the post-TLS features: what the
/// acceptance probe (SASL EXTERNAL, dialback, ping) and the dialback
/// listener's verification connections continue on.
pub struct Session {
    /// The reader/writer over the TLS connection.
    pub stream: StreamReader<TlsStream<TcpStream>>,
    /// The server's stream id after TLS (dialback keys are bound to it).
    pub stream_id: Option<String>,
    /// The post-TLS features.
    pub features: Features,
    /// What the handshake captured (chain, CertificateRequest).
    pub capture: Arc<Capture>,
    /// The politeness slot of this connection. Declared last: fields drop
    /// in order, so the socket is closed before the slot is released.
    permit: Option<ConnectPermit>,
}

impl Session {
    /// Closes the stream politely (`</stream:stream>`, close_notify).
    pub async fn close(mut self) {
        close(&mut self.stream).await;
    }
}

/// Options of one connection.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Present this certificate when the server asks for one (the
    /// acceptance probe's identity, MEASUREMENTS §3).
    pub client_cert: Option<Arc<CertifiedKey>>,
}

/// Probes one endpoint. Never fails: every failure is in the report.
pub async fn probe_endpoint(
    ctx: &ProbeContext,
    domain: &str,
    plan: &EndpointPlan,
) -> EndpointReport {
    let (r, session) = open_session(ctx, domain, plan, &ConnectOptions::default()).await;
    if let Some(s) = session {
        s.close().await;
    }
    r
}

/// Connects, negotiates TLS (STARTTLS or direct) and opens the post-TLS
/// stream, recording everything in the report; returns the live session
/// when the report's outcome is `Complete`.
pub async fn open_session(
    ctx: &ProbeContext,
    domain: &str,
    plan: &EndpointPlan,
    opts: &ConnectOptions,
) -> (EndpointReport, Option<Session>) {
    let mut r = EndpointReport {
        key: plan.key.clone(),
        source: plan.source,
        connect: ConnectOutcome::BlockedAddress,
        connect_ms: None,
        outcome: EndpointOutcome::BlockedAddress,
        phase: None,
        detail: None,
        header: None,
        pre_tls: None,
        tls: None,
        header_after_tls: None,
        post_tls: None,
        stream_error: None,
        starttls_injected_bytes: None,
    };
    if !ctx.policy.permits(plan.key.ip) {
        let class = crate::model::names::json(classify(plan.key.ip));
        r.detail = Some(format!(
            "{} is in {} address space; refused (pass --allow-private to probe it)",
            plan.key.ip,
            class.as_str().unwrap_or("special")
        ));
        return (r, None);
    }
    // Wait for politeness right before the connect (its rates are granted
    // for this instant; nothing is awaited in between). The permit lives
    // as long as the connection: in the session, or until this returns.
    let permit = match &ctx.gate {
        Some(gate) => Some(gate.acquire(plan.key.ip).await),
        None => None,
    };
    let t0 = Instant::now();
    let tcp = match timeout(
        ctx.limits.connect_timeout,
        tcp_connect(plan.key.addr(), ctx.source_ip),
    )
    .await
    {
        Err(_) => {
            r.connect = ConnectOutcome::Timeout;
            r.outcome = EndpointOutcome::ConnectFailed;
            r.phase = Some(Phase::Connect);
            return (r, None);
        }
        Ok(Err(e)) => {
            let (connect, detail) = connect_error(&e);
            r.connect = connect;
            r.connect_ms = Some(elapsed_ms(t0));
            r.outcome = EndpointOutcome::ConnectFailed;
            r.phase = Some(Phase::Connect);
            r.detail = Some(detail);
            return (r, None);
        }
        Ok(Ok(s)) => s,
    };
    r.connect = ConnectOutcome::Connected;
    r.connect_ms = Some(elapsed_ms(t0));
    let _ = tcp.set_nodelay(true);
    let (record, outcome, session) = negotiate(ctx, domain, plan, tcp, &mut r, opts).await;
    r.header = record.header;
    r.pre_tls = record.pre_tls;
    r.stream_error = record.stream_error;
    r.starttls_injected_bytes = record.starttls_injected_bytes;
    r.header_after_tls = record.header_after_tls;
    r.post_tls = record.post_tls;
    r.outcome = outcome.outcome;
    r.phase = outcome.phase;
    r.detail = outcome.detail;
    match session {
        Some(mut session) => {
            session.permit = permit;
            (r, Some(session))
        }
        None => (r, None),
    }
}

/// Maps a failed TCP connect to its outcome and detail. Running out of
/// descriptors, buffers, memory or local ports is ours
/// ([`ConnectOutcome::LocalResourceExhausted`]), never the target's.
pub fn connect_error(e: &std::io::Error) -> (ConnectOutcome, String) {
    if let Some(kind) = crate::budget::local_exhaustion(e) {
        return (
            ConnectOutcome::LocalResourceExhausted,
            crate::budget::exhaustion_detail(kind, e),
        );
    }
    let outcome = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ConnectOutcome::Refused,
        _ => ConnectOutcome::Unreachable,
    };
    (outcome, e.to_string())
}

fn elapsed_ms(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn reader_limits(l: &Limits) -> ReaderLimits {
    ReaderLimits {
        max_phase_bytes: l.max_phase_bytes,
        max_depth: l.max_xml_depth,
    }
}

/// Where [`pump`] stopped.
enum Halt {
    /// The machine asked for the TLS handshake.
    StartTls,
    /// The machine is done.
    Done(Outcome),
}

/// Carries out `pending` on `rd` and feeds the machine what it reads
/// (each read a reader phase of its own, under the phase timeout) until it
/// asks for TLS or is done.
async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    m: &mut Client,
    rd: &mut StreamReader<S>,
    pending: Vec<ClientAction>,
    limit: Duration,
) -> Halt {
    let mut pending = pending;
    loop {
        let mut fed = None;
        for action in pending {
            match action {
                Action::Send(xml) => {
                    if let Err(e) = rd.write_all(xml.as_bytes()).await {
                        fed = Some(m.handle(Event::WriteFailed(e.to_string())));
                        break;
                    }
                }
                Action::StartTls => return Halt::StartTls,
                Action::Close { .. } => close(rd).await,
                Action::Done(o) => return Halt::Done(o),
            }
        }
        pending = match fed {
            Some(next) => next,
            None => {
                rd.new_phase();
                let ev = match m.expects() {
                    Expect::Header => match timeout(limit, rd.read_header()).await {
                        Err(_) => Event::Timeout,
                        Ok(r) => r.map_or_else(Event::Fault, Event::Header),
                    },
                    Expect::Element => match timeout(limit, rd.read_element()).await {
                        Err(_) => Event::Timeout,
                        Ok(r) => r.map_or_else(Event::Fault, Event::Element),
                    },
                    // The machine always ends with `StartTls` or `Done`
                    // before it expects these.
                    Expect::Tls | Expect::Nothing => Event::Timeout,
                };
                m.handle(ev)
            }
        };
    }
}

/// Runs the client machine ([`crate::negotiation::client`]) over the
/// connection: plain stream and STARTTLS (RFC 6120 §5.4) or direct TLS
/// (XEP-0368), then the post-TLS stream. The TLS facts go into `r.tls`;
/// the stream facts come back in the record.
async fn negotiate(
    ctx: &ProbeContext,
    domain: &str,
    plan: &EndpointPlan,
    tcp: TcpStream,
    r: &mut EndpointReport,
    opts: &ConnectOptions,
) -> (Record, Outcome, Option<Session>) {
    let (mut m, first) = Client::new(Config {
        service: plan.key.service,
        transport: plan.key.transport,
        to: domain.to_owned(),
        from: ctx.probe_domain.clone(),
    });
    let limit = ctx.limits.phase_timeout;
    let mut rd = StreamReader::new(tcp, reader_limits(&ctx.limits));
    if let Halt::Done(o) = pump(&mut m, &mut rd, first, limit).await {
        return (m.into_record(), o, None);
    }
    // Whatever was buffered behind `<proceed/>` is plaintext injected
    // before TLS: dropped with the reader (RFC 6120 §5.4.3.3), counted by
    // the machine, and the measurement goes on over TLS.
    let (tcp, buffered) = rd.into_inner();
    if plan.key.transport == Transport::Starttls {
        m.handle(Event::Buffered(buffered));
    }
    let (tls, capture) = match handshake(ctx, domain, tcp, r, &plan.tlsa, opts).await {
        Ok(x) => x,
        Err(ev) => {
            let o = done(m.handle(ev));
            return (m.into_record(), o, None);
        }
    };
    let up = m.handle(Event::TlsUp {
        peer_chain: tls.get_ref().1.peer_certificates().is_some(),
    });
    let mut rd = StreamReader::new(tls, reader_limits(&ctx.limits));
    let o = match pump(&mut m, &mut rd, up, limit).await {
        Halt::Done(o) => o,
        Halt::StartTls => done(m.handle(Event::TlsFailed {
            detail: Some("TLS requested twice".into()),
        })),
    };
    if o.tls_alert
        && let Some(info) = r.tls.as_mut()
    {
        info.failure = Some(TlsFailure::Alert);
        info.failure_detail = o.detail.clone();
    }
    let record = m.into_record();
    if o.outcome != EndpointOutcome::Complete {
        return (record, o, None);
    }
    let Some(features) = record.post_tls.clone() else {
        return (record, o, None);
    };
    let session = Session {
        stream_id: record.header_after_tls.as_ref().and_then(|h| h.id.clone()),
        stream: rd,
        features,
        capture,
        permit: None,
    };
    (record, o, Some(session))
}

/// The outcome among a machine's last actions.
fn done(actions: Vec<ClientAction>) -> Outcome {
    actions
        .into_iter()
        .find_map(|a| match a {
            Action::Done(o) => Some(o),
            _ => None,
        })
        .unwrap_or(Outcome {
            outcome: EndpointOutcome::TlsFailed,
            phase: Some(Phase::TlsHandshake),
            detail: None,
            tls_alert: false,
        })
}

/// Best-effort polite close: `</stream:stream>` and, for TLS, close_notify.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(rd: &mut StreamReader<S>) {
    let _ = timeout(CLOSE_TIMEOUT, async {
        let _ = rd.write_all(stream::CLOSE.as_bytes()).await;
        let _ = rd.get_mut().shutdown().await;
    })
    .await;
}

/// The TLS handshake (direct TLS carries the XEP-0368 ALPN), under the
/// phase timeout; the TLS facts go into `r.tls`. A failure comes back as
/// the event to feed the machine.
async fn handshake(
    ctx: &ProbeContext,
    domain: &str,
    tcp: TcpStream,
    r: &mut EndpointReport,
    tlsa: &[TlsaRecord],
    opts: &ConnectOptions,
) -> Result<(TlsStream<TcpStream>, Arc<Capture>), Event> {
    let alpn = (r.key.transport == Transport::DirectTls).then(|| alpn(r.key.service));
    let (connector, capture) = ctx
        .tls
        .connector(domain, r.key.service, alpn, opts.client_cert.clone())
        .map_err(|e| Event::TlsFailed {
            detail: Some(e.to_string()),
        })?;
    let name = server_name(domain).ok_or_else(|| Event::TlsFailed {
        detail: Some(format!("{domain} is not a valid TLS server name")),
    })?;
    let tls = match timeout(ctx.limits.phase_timeout, connector.connect(name, tcp)).await {
        Err(_) => {
            r.tls = Some(failed(tls_info(&capture, None), TlsFailure::Timeout, None));
            return Err(Event::Timeout);
        }
        Ok(Err(e)) => {
            let (failure, detail) = classify_error(&e);
            r.tls = Some(failed(
                tls_info(&capture, None),
                failure,
                Some(detail.clone()),
            ));
            return Err(Event::TlsFailed {
                detail: Some(detail),
            });
        }
        Ok(Ok(tls)) => tls,
    };
    let mut info = tls_info(&capture, Some(tls.get_ref().1));
    info.dane_match = dane::matches(
        tlsa,
        &capture.snapshot().chain,
        info.verdict == Some(ChainVerdict::Trusted),
    );
    r.tls = Some(info);
    Ok((tls, capture))
}

fn failed(mut info: TlsInfo, failure: TlsFailure, detail: Option<String>) -> TlsInfo {
    info.failure = Some(failure);
    info.failure_detail = detail;
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The source address is used when its family matches the target's,
    /// and ignored (the OS picks) when it does not: an IPv6-only simulated
    /// server still reaches an IPv4 listener.
    #[tokio::test]
    async fn connects_from_the_source_address_of_the_targets_family() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let to = listener.local_addr().expect("addr");
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
        let _c = tcp_connect(to, Some(from)).await.expect("connect");
        let (_, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip(), from);
        let _c = tcp_connect(to, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)))
            .await
            .expect("connect with a source of the other family");
        let (_, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
