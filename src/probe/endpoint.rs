//! Probing one endpoint: TCP connect, stream header, features, STARTTLS or
//! direct TLS, and the post-TLS stream (RFC 6120 §4–§5, XEP-0368).
//!
//! Each phase has its own timeout and byte budget; every way a server can
//! fail (or attack) ends as a typed [`EndpointOutcome`] in the report.

use crate::dns::TlsaRecord;
use crate::limits::Limits;
use crate::net::policy::{AddressPolicy, classify};
use crate::net::politeness::{ConnectPermit, Politeness};
use crate::probe::plan::EndpointPlan;
use crate::probe::report::{ConnectOutcome, EndpointOutcome, EndpointReport, Phase, Transport};
use crate::tls::client::{Capture, TlsProbe, classify_error, server_name, tls_info};
use crate::tls::dane;
use crate::tls::{ChainVerdict, TlsFailure, TlsInfo};
use crate::xmpp::element::Element;
use crate::xmpp::features::{self, Features, StarttlsOffer};
use crate::xmpp::reader::{ReadFault, ReaderLimits, StreamReader};
use crate::xmpp::stream::{self, HeaderSpec};
use crate::xmpp::{NS_STREAMS, NS_TLS, Service};
use rustls::sign::CertifiedKey;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
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
}

/// Why the exchange stopped early; becomes the report's outcome.
struct Stop {
    outcome: EndpointOutcome,
    phase: Phase,
    detail: Option<String>,
}

impl Stop {
    fn new(outcome: EndpointOutcome, phase: Phase, detail: impl Into<Option<String>>) -> Self {
        Self {
            outcome,
            phase,
            detail: detail.into(),
        }
    }

    /// Maps a reader fault in `phase` to an outcome.
    fn read(phase: Phase, fault: ReadFault) -> Self {
        let (outcome, detail) = match fault {
            ReadFault::ByteLimit => (EndpointOutcome::ByteLimit, None),
            ReadFault::DepthLimit => (EndpointOutcome::DepthLimit, None),
            ReadFault::InvalidXml(m) => (EndpointOutcome::InvalidXml, Some(m)),
            ReadFault::NotStream(m) => (EndpointOutcome::InvalidXml, Some(m)),
            ReadFault::Doctype => (EndpointOutcome::ForbiddenXml, Some("DOCTYPE".into())),
            ReadFault::ProcessingInstruction => (
                EndpointOutcome::ForbiddenXml,
                Some("processing instruction".into()),
            ),
            ReadFault::Eof => (EndpointOutcome::Closed, Some("connection closed".into())),
            ReadFault::StreamClosed => (EndpointOutcome::Closed, Some("</stream:stream>".into())),
            ReadFault::Io(m) => (EndpointOutcome::Closed, Some(m)),
        };
        Self::new(outcome, phase, detail)
    }

    fn io(phase: Phase, e: &std::io::Error) -> Self {
        Self::new(EndpointOutcome::Closed, phase, e.to_string())
    }
}

/// Runs one read step of `phase` under the phase timeout.
async fn step<T>(
    limit: Duration,
    phase: Phase,
    fut: impl Future<Output = Result<T, ReadFault>>,
) -> Result<T, Stop> {
    match timeout(limit, fut).await {
        Err(_) => Err(Stop::new(EndpointOutcome::Timeout, phase, None)),
        Ok(r) => r.map_err(|f| Stop::read(phase, f)),
    }
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
    pub async fn close(self) {
        close(self.stream).await;
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
        service: plan.service,
        transport: plan.transport,
        host: plan.host.clone(),
        ip: plan.ip,
        port: plan.port,
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
    if !ctx.policy.permits(plan.ip) {
        let class = crate::model::names::json(classify(plan.ip));
        r.detail = Some(format!(
            "{} is in {} address space; refused (pass --allow-private to probe it)",
            plan.ip,
            class.as_str().unwrap_or("special")
        ));
        return (r, None);
    }
    // Wait for politeness right before the connect (its rates are granted
    // for this instant; nothing is awaited in between). The permit lives
    // as long as the connection: in the session, or until this returns.
    let permit = match &ctx.gate {
        Some(gate) => Some(gate.acquire(plan.ip).await),
        None => None,
    };
    let t0 = Instant::now();
    let tcp = match timeout(
        ctx.limits.connect_timeout,
        TcpStream::connect((plan.ip, plan.port)),
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
    let result = match plan.transport {
        Transport::Starttls => starttls(ctx, domain, tcp, &mut r, &plan.tlsa, opts).await,
        Transport::DirectTls => tls_and_stream(ctx, domain, tcp, &mut r, &plan.tlsa, opts).await,
    };
    match result {
        Ok(mut session) => {
            r.outcome = EndpointOutcome::Complete;
            session.permit = permit;
            (r, Some(session))
        }
        Err(stop) => {
            r.outcome = stop.outcome;
            r.phase = Some(stop.phase);
            r.detail = stop.detail;
            (r, None)
        }
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

/// Our stream header: `to` is the XMPP domain (RFC 6120 §4.7.2); on s2s
/// `from` is the probe's own domain when one is configured.
fn our_header(ctx: &ProbeContext, domain: &str, service: Service) -> String {
    let from = match service {
        Service::S2s => ctx.probe_domain.as_deref(),
        Service::C2s => None,
    };
    stream::open_header(&HeaderSpec {
        service,
        from,
        to: Some(domain),
        id: None,
        version: Some("1.0"),
        dialback: service == Service::S2s,
    })
}

/// Opens a stream and reads the header and features. A `<stream:error/>`
/// instead of features ends the probe with `StreamError`.
async fn open_stream<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    domain: &str,
    rd: &mut StreamReader<S>,
    r: &mut EndpointReport,
    phases: (Phase, Phase),
) -> Result<Features, Stop> {
    let (header_phase, features_phase) = phases;
    rd.write_all(our_header(ctx, domain, r.service).as_bytes())
        .await
        .map_err(|e| Stop::io(header_phase, &e))?;
    let header = step(ctx.limits.phase_timeout, header_phase, rd.read_header()).await?;
    let versionless = header.version.is_none();
    if header_phase == Phase::StreamHeader {
        r.header = Some(header);
    } else {
        r.header_after_tls = Some(header);
    }
    if versionless {
        return Err(Stop::new(
            EndpointOutcome::NoVersion,
            header_phase,
            Some("stream header has no version attribute (pre-XMPP 1.0)".into()),
        ));
    }
    rd.new_phase();
    let el = read_element(ctx, rd, r, features_phase).await?;
    if !el.is(NS_STREAMS, "features") {
        return Err(Stop::new(
            EndpointOutcome::UnexpectedElement,
            features_phase,
            Some(format!(
                "expected <stream:features/>, got {{{}}}{}",
                el.ns, el.name
            )),
        ));
    }
    Ok(features::parse(&el))
}

/// Reads the next element of `phase`; a `<stream:error/>` (RFC 6120 §4.9)
/// is recorded in the report and ends the probe with `StreamError`.
async fn read_element<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &ProbeContext,
    rd: &mut StreamReader<S>,
    r: &mut EndpointReport,
    phase: Phase,
) -> Result<Element, Stop> {
    let el = step(ctx.limits.phase_timeout, phase, rd.read_element()).await?;
    if el.is(NS_STREAMS, "error") {
        let err = stream::parse_error(&el);
        let detail = err.text.clone();
        r.stream_error = Some(err);
        return Err(Stop::new(EndpointOutcome::StreamError, phase, detail));
    }
    Ok(el)
}

/// Best-effort polite close: `</stream:stream>` and, for TLS, close_notify.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(rd: StreamReader<S>) {
    let mut rd = rd;
    let _ = timeout(CLOSE_TIMEOUT, async {
        let _ = rd.write_all(stream::CLOSE.as_bytes()).await;
        let _ = rd.get_mut().shutdown().await;
    })
    .await;
}

/// RFC 6120 §5.4: plain stream, `<starttls/>`, `<proceed/>`, then TLS.
async fn starttls(
    ctx: &ProbeContext,
    domain: &str,
    tcp: TcpStream,
    r: &mut EndpointReport,
    tlsa: &[TlsaRecord],
    opts: &ConnectOptions,
) -> Result<Session, Stop> {
    let mut rd = StreamReader::new(tcp, reader_limits(&ctx.limits));
    let opened = open_stream(
        ctx,
        domain,
        &mut rd,
        r,
        (Phase::StreamHeader, Phase::Features),
    )
    .await;
    let feats = match opened {
        Ok(x) => x,
        Err(stop) => {
            close(rd).await;
            return Err(stop);
        }
    };
    let offer = feats.starttls;
    r.pre_tls = Some(feats);
    if offer == StarttlsOffer::Absent {
        close(rd).await;
        return Err(Stop::new(
            EndpointOutcome::NoStarttls,
            Phase::Features,
            None,
        ));
    }
    rd.new_phase();
    rd.write_all(format!("<starttls xmlns='{NS_TLS}'/>").as_bytes())
        .await
        .map_err(|e| Stop::io(Phase::Starttls, &e))?;
    let el = read_element(ctx, &mut rd, r, Phase::Starttls).await?;
    if el.is(NS_TLS, "failure") {
        return Err(Stop::new(
            EndpointOutcome::StarttlsFailure,
            Phase::Starttls,
            None,
        ));
    }
    if !el.is(NS_TLS, "proceed") {
        return Err(Stop::new(
            EndpointOutcome::UnexpectedElement,
            Phase::Starttls,
            Some(format!("expected <proceed/>, got {{{}}}{}", el.ns, el.name)),
        ));
    }
    // Whatever was buffered behind `<proceed/>` is plaintext injected
    // before TLS: dropped with the reader (RFC 6120 §5.4.3.3), counted,
    // and the measurement goes on over TLS.
    let (tcp, leftover) = rd.into_inner();
    if leftover > 0 {
        r.starttls_injected_bytes = Some(leftover as u64);
    }
    tls_and_stream(ctx, domain, tcp, r, tlsa, opts).await
}

/// TLS handshake (direct TLS carries the XEP-0368 ALPN), then the stream
/// header and features over TLS.
async fn tls_and_stream(
    ctx: &ProbeContext,
    domain: &str,
    tcp: TcpStream,
    r: &mut EndpointReport,
    tlsa: &[TlsaRecord],
    opts: &ConnectOptions,
) -> Result<Session, Stop> {
    let alpn = (r.transport == Transport::DirectTls).then(|| alpn(r.service));
    let (connector, capture) = ctx
        .tls
        .connector(domain, r.service, alpn, opts.client_cert.clone())
        .map_err(|e| {
            Stop::new(
                EndpointOutcome::TlsFailed,
                Phase::TlsHandshake,
                e.to_string(),
            )
        })?;
    let name = server_name(domain).ok_or_else(|| {
        Stop::new(
            EndpointOutcome::TlsFailed,
            Phase::TlsHandshake,
            Some(format!("{domain} is not a valid TLS server name")),
        )
    })?;
    let tls = match timeout(ctx.limits.phase_timeout, connector.connect(name, tcp)).await {
        Err(_) => {
            r.tls = Some(failed(tls_info(&capture, None), TlsFailure::Timeout, None));
            return Err(Stop::new(
                EndpointOutcome::TlsFailed,
                Phase::TlsHandshake,
                None,
            ));
        }
        Ok(Err(e)) => {
            let (failure, detail) = classify_error(&e);
            r.tls = Some(failed(
                tls_info(&capture, None),
                failure,
                Some(detail.clone()),
            ));
            return Err(Stop::new(
                EndpointOutcome::TlsFailed,
                Phase::TlsHandshake,
                Some(detail),
            ));
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
    let mut rd = StreamReader::new(tls, reader_limits(&ctx.limits));
    let opened = open_stream(
        ctx,
        domain,
        &mut rd,
        r,
        (Phase::StreamHeaderAfterTls, Phase::FeaturesAfterTls),
    )
    .await;
    match opened {
        Ok(feats) => {
            r.post_tls = Some(feats.clone());
            Ok(Session {
                stream_id: r.header_after_tls.as_ref().and_then(|h| h.id.clone()),
                stream: rd,
                features: feats,
                capture,
                permit: None,
            })
        }
        Err(stop) => {
            // The first read after the handshake is where TLS 1.3 reports
            // a rejected session: count it as a TLS failure, not a stream one.
            let alert = stop.phase == Phase::StreamHeaderAfterTls
                && stop.outcome == EndpointOutcome::Closed
                && stop.detail.as_deref().is_some_and(|d| d.contains("alert"));
            if alert && let Some(tls) = r.tls.as_mut() {
                tls.failure = Some(TlsFailure::Alert);
                tls.failure_detail = stop.detail.clone();
                return Err(Stop::new(
                    EndpointOutcome::TlsFailed,
                    Phase::StreamHeaderAfterTls,
                    stop.detail,
                ));
            }
            close(rd).await;
            Err(stop)
        }
    }
}

fn failed(mut info: TlsInfo, failure: TlsFailure, detail: Option<String>) -> TlsInfo {
    info.failure = Some(failure);
    info.failure_detail = detail;
    info
}
