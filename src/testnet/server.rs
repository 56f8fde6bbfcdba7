//! The simulated XMPP servers: listeners on 127.B.x.y (and `::1`), each
//! playing the profile of the domain the client names (shared hosts
//! dispatch on the stream's `to` or the TLS SNI, as real multi-domain
//! servers do). Every accepted connection is counted per address, so tests
//! can prove the probe made none.

use crate::testnet::certs::Pki;
use crate::testnet::layout::Placed;
use crate::testnet::profile::{PreTls, StreamShape, Tcp, TlsVersions};
use crate::xmpp::features::StarttlsOffer;
use crate::xmpp::reader::{ReaderLimits, StreamReader};
use crate::xmpp::stream::{self, HeaderSpec};
use crate::xmpp::{
    NS_BIDI_FEATURE, NS_CAPS, NS_DIALBACK_FEATURE, NS_IQ_AUTH_FEATURE, NS_SASL, NS_TLS, Service,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

/// Connections accepted, per listening address.
#[derive(Debug, Default)]
pub struct Counters {
    by_ip: Mutex<HashMap<IpAddr, Arc<AtomicU64>>>,
}

impl Counters {
    fn slot(&self, ip: IpAddr) -> Arc<AtomicU64> {
        let mut m = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(ip).or_default().clone()
    }
    /// Connections accepted on `ip` so far.
    pub fn get(&self, ip: IpAddr) -> u64 {
        self.slot(ip).load(Ordering::Relaxed)
    }
    /// Connections accepted on all addresses.
    pub fn total(&self) -> u64 {
        let m = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        m.values().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// TLS material of one domain, built on first use: one server config per
/// (service, transport), each from that service's shape.
struct Material {
    leaf: CertificateDer<'static>,
    starttls_c2s: Arc<ServerConfig>,
    starttls_s2s: Arc<ServerConfig>,
    direct_c2s: Arc<ServerConfig>,
    direct_s2s: Arc<ServerConfig>,
}

/// Everything the servers share.
pub struct Shared {
    pki: Pki,
    provider: Arc<rustls::crypto::CryptoProvider>,
    material: Mutex<HashMap<String, Arc<Material>>>,
    /// Accept counters.
    pub counters: Counters,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Shared {
    /// Shared state over a PKI.
    pub fn new(pki: Pki) -> Self {
        Self {
            pki,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            material: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// The PKI.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// Stops every listener and connection and waits for them.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
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
        let build = |shape: &StreamShape,
                     alpn: Option<&[u8]>|
         -> Result<Arc<ServerConfig>, String> {
            let versions: &[&rustls::SupportedProtocolVersion] = match shape.tls {
                TlsVersions::Both => &[&rustls::version::TLS13, &rustls::version::TLS12],
                TlsVersions::Tls12Only => &[&rustls::version::TLS12],
            };
            let builder = ServerConfig::builder_with_provider(self.provider.clone())
                .with_protocol_versions(versions)
                .map_err(|e| e.to_string())?;
            let builder = if shape.request_client_cert {
                builder.with_client_cert_verifier(Arc::new(AnyClientCert(self.provider.clone())))
            } else {
                builder.with_no_client_auth()
            };
            let mut cfg = builder
                .with_single_cert(cert.chain.clone(), cert.key.clone_key())
                .map_err(|e| e.to_string())?;
            if let Some(a) = alpn {
                cfg.alpn_protocols = vec![a.to_vec()];
            }
            Ok(Arc::new(cfg))
        };
        let c2s = p.profile.c2s;
        // A domain without s2s never reaches an s2s TLS step; any shape will do.
        let s2s = p.profile.s2s.unwrap_or(c2s);
        let m = Arc::new(Material {
            leaf: cert.chain[0].clone(),
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

/// Requests a client certificate and accepts any (or none): the passive
/// testnet only needs the CertificateRequest to be visible to the probe.
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
            let sh2 = sh.clone();
            let what = what.clone();
            sh.tracker.spawn(async move {
                let cancel = sh2.cancel.clone();
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::timeout(Duration::from_secs(120), serve(&sh2, tcp, &what)) => {}
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
        | PreTls::InvalidXml => {
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
    match shape.pre_tls {
        PreTls::StarttlsFailure => {
            let _ = rd
                .write_all(format!("<failure xmlns='{NS_TLS}'/>{}", stream::CLOSE).as_bytes())
                .await;
            return;
        }
        PreTls::InjectAfterProceed => {
            let _ = rd
                .write_all(
                    format!(
                        "<proceed xmlns='{NS_TLS}'/>{}",
                        features_xml(&shape, service, true)
                    )
                    .as_bytes(),
                )
                .await;
            let _ = tokio::time::timeout(SERVER_STEP_TIMEOUT, drain(rd.get_mut())).await;
            return;
        }
        _ => {}
    }
    if rd
        .write_all(format!("<proceed xmlns='{NS_TLS}'/>").as_bytes())
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

/// Binds a listener, with a clear error naming the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, std::io::Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}
