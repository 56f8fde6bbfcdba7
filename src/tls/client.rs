//! The probe's rustls client configuration (MEASUREMENTS §2 "TLS", §3.1).
//!
//! One small `ClientConfig` per probe connection, because what we record is
//! per-connection state: the presented chain and its verdict (captured by a
//! [`ServerCertVerifier`] that never aborts the handshake, so that untrusted
//! servers can still be measured), and whether the server sent a
//! CertificateRequest (RFC 8446 §4.3.2, RFC 5246 §7.4.4), which rustls only
//! reveals by calling [`ResolvesClientCert::resolve`].
//!
//! The chain is stored inside the verifier because when the handshake fails
//! tokio-rustls hands back neither the connection nor its state.
//!
//! Note (notes G6): with TLS 1.3 a server's rejection of our client
//! certificate arrives as an alert on the **first read** after the
//! handshake, not from `connect()`. Callers must only record success after
//! that read; [`classify_error`] works on errors from either place.

use std::sync::{Arc, Mutex, MutexGuard};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
use rustls::sign::CertifiedKey;
use rustls::{
    AlertDescription, ClientConfig, DigitallySignedStruct, PeerIncompatible, ProtocolVersion,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::verify::{ChainVerifier, TlsSetupError};
use super::{CertInfo, ChainVerdict, NameMatch, TlsFailure, TlsInfo, cert};
use crate::xmpp::Service;

/// ALPN protocol id for direct-TLS c2s (XEP-0368 §3).
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";
/// ALPN protocol id for direct-TLS s2s (XEP-0368 §3).
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

/// The ALPN id XEP-0368 §3 prescribes for a service.
pub fn alpn_for(service: Service) -> &'static [u8] {
    match service {
        Service::C2s => ALPN_XMPP_CLIENT,
        Service::S2s => ALPN_XMPP_SERVER,
    }
}

/// What one probe connection's TLS handshake revealed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureState {
    /// The presented chain, end-entity first, exactly as sent.
    pub chain: Vec<CertificateDer<'static>>,
    /// The analysis of each certificate of `chain` (same order; `None`
    /// where it does not parse), from the crawl's memo.
    pub analyzed: Vec<Option<Arc<CertInfo>>>,
    /// The chain verdict for the XMPP domain; `None` if the server's
    /// Certificate message was never processed.
    pub verdict: Option<ChainVerdict>,
    /// webpki's words for a non-trusted verdict.
    pub verdict_detail: Option<String>,
    /// Which identifier named the XMPP domain.
    pub name_match: Option<NameMatch>,
    /// Whether the server sent a CertificateRequest.
    pub client_cert_requested: bool,
    /// How many acceptable-CA names (`certificate_authorities`) the request carried.
    pub acceptable_ca_hints: usize,
    /// Whether we answered the request with a certificate.
    pub client_cert_sent: bool,
}

/// Shared per-connection capture, filled during the handshake by the
/// verifier and the client-certificate resolver.
#[derive(Debug, Default)]
pub struct Capture {
    state: Mutex<CaptureState>,
}

impl Capture {
    /// A copy of what has been captured so far.
    pub fn snapshot(&self) -> CaptureState {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, CaptureState> {
        // A poisoned lock only means another thread panicked mid-update;
        // the plain data inside is still the best record we have.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Records the chain and its verdict, then lets the handshake continue
/// whatever the verdict: the survey measures untrusted servers too. The
/// handshake signatures (CertificateVerify, ServerKeyExchange) are still
/// checked for real, so the captured chain is the one the server holds the
/// key for.
#[derive(Debug)]
struct CapturingVerifier {
    verifier: ChainVerifier,
    domain: String,
    service: Service,
    capture: Arc<Capture>,
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Reference identity is the XMPP domain (RFC 6120 §13.7.2), which is
        // also what we sent as SNI.
        let (verdict, detail, name_match, analyzed) = self.verifier.verdict_analyzed(
            &self.domain,
            self.service,
            end_entity,
            intermediates,
            now,
        );
        let mut st = self.capture.lock();
        st.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        st.analyzed = analyzed;
        st.verdict = Some(verdict);
        st.verdict_detail = detail;
        st.name_match = Some(name_match);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.verifier.provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.verifier.provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier
            .provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Notes that a CertificateRequest arrived (rustls calls `resolve` only
/// then) and answers with the optional client certificate (MEASUREMENTS §3).
#[derive(Debug)]
struct CapturingResolver {
    cert: Option<Arc<CertifiedKey>>,
    capture: Arc<Capture>,
}

impl ResolvesClientCert for CapturingResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let mut st = self.capture.lock();
        st.client_cert_requested = true;
        st.acceptable_ca_hints = root_hint_subjects.len();
        st.client_cert_sent = self.cert.is_some();
        self.cert.clone()
    }

    fn has_certs(&self) -> bool {
        self.cert.is_some()
    }
}

/// Builds per-connection TLS connectors for probes.
#[derive(Debug, Clone)]
pub struct TlsProbe {
    verifier: ChainVerifier,
}

impl TlsProbe {
    /// Mozilla roots plus `extra_ca` (the operator's `--extra-ca`), aws-lc-rs.
    pub fn new(extra_ca: Vec<CertificateDer<'static>>) -> Result<Self, TlsSetupError> {
        Ok(Self {
            verifier: ChainVerifier::new(&extra_ca)?,
        })
    }

    /// [`Self::new`] with another crypto provider
    /// ([`ChainVerifier::with_provider`]).
    pub fn with_provider(
        extra_ca: Vec<CertificateDer<'static>>,
        provider: rustls::crypto::CryptoProvider,
    ) -> Result<Self, TlsSetupError> {
        Ok(Self {
            verifier: ChainVerifier::with_provider(&extra_ca, provider)?,
        })
    }

    /// The verifier used for verdicts (also usable outside a handshake).
    pub fn verifier(&self) -> &ChainVerifier {
        &self.verifier
    }

    /// A connector for one connection to `domain`'s `service`, and the
    /// capture it fills. `alpn` is set for direct TLS (XEP-0368 §3, see
    /// [`alpn_for`]); `client_cert` is presented if the server asks.
    /// TLS 1.2 and 1.3 only (rustls; notes G11).
    pub fn connector(
        &self,
        domain: &str,
        service: Service,
        alpn: Option<&'static [u8]>,
        client_cert: Option<Arc<CertifiedKey>>,
    ) -> Result<(tokio_rustls::TlsConnector, Arc<Capture>), TlsSetupError> {
        let capture = Arc::new(Capture::default());
        let verifier = Arc::new(CapturingVerifier {
            verifier: self.verifier.clone(),
            domain: domain.to_string(),
            service,
            capture: capture.clone(),
        });
        let resolver = Arc::new(CapturingResolver {
            cert: client_cert,
            capture: capture.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(self.verifier.provider().clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(resolver);
        if let Some(p) = alpn {
            config.alpn_protocols = vec![p.to_vec()];
        }
        // No session resumption across probes: every probe must see a full
        // handshake with the Certificate message.
        config.resumption = rustls::client::Resumption::disabled();
        Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), capture))
    }
}

/// The SNI / reference name for `domain` (RFC 6120 §13.7.2; RFC 6066 §3).
/// `None` when the domain is neither a DNS name nor an IP literal.
pub fn server_name(domain: &str) -> Option<ServerName<'static>> {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    ServerName::try_from(d.to_string()).ok()
}

/// A client certificate for the acceptance probe (MEASUREMENTS §3), with
/// the aws-lc-rs key loader.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsSetupError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| TlsSetupError::Config(e.to_string()))
}

/// TLS facts of a connection for the report (MEASUREMENTS §2). `conn` is
/// the established connection if there is one; the failure fields are left
/// `None` for the caller. Certificates that do not parse are left out of
/// `chain` (their verdict, from webpki, still stands).
pub fn tls_info(capture: &Capture, conn: Option<&rustls::ClientConnection>) -> TlsInfo {
    let st = capture.snapshot();
    TlsInfo {
        failure: None,
        failure_detail: None,
        version: conn.and_then(|c| c.protocol_version()).map(version_name),
        cipher_suite: conn
            .and_then(|c| c.negotiated_cipher_suite())
            .map(|s| suite_name(s.suite())),
        alpn: conn
            .and_then(|c| c.alpn_protocol())
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        client_cert_requested: st.client_cert_requested,
        client_cert_sent: st.client_cert_sent,
        chain: if st.analyzed.len() == st.chain.len() {
            st.analyzed
                .iter()
                .flatten()
                .map(|c| (**c).clone())
                .collect()
        } else {
            st.chain
                .iter()
                .filter_map(|c| cert::analyze(c).ok())
                .collect()
        },
        verdict: st.verdict,
        verdict_detail: st.verdict_detail,
        name_match: st.name_match,
        dane_match: None,
    }
}

/// `TLSv1.2` / `TLSv1.3` (the names OpenSSL and testssl.sh use).
fn version_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        other => format!("{other:?}"),
    }
}

/// IANA TLS Cipher Suites registry name (rustls prefixes TLS 1.3 suites
/// with `TLS13_` where IANA writes `TLS_`).
fn suite_name(s: rustls::CipherSuite) -> String {
    let n = format!("{s:?}");
    match n.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => n,
    }
}

/// Classifies a handshake or first-read error (MEASUREMENTS §2 "failure
/// reason") and gives a human detail. rustls errors arrive wrapped in
/// `io::Error` by tokio-rustls.
pub fn classify_error(err: &std::io::Error) -> (TlsFailure, String) {
    use std::io::ErrorKind;
    if let Some(e) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return classify_rustls(e);
    }
    let failure = match err.kind() {
        ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe => TlsFailure::Closed,
        ErrorKind::TimedOut => TlsFailure::Timeout,
        _ => TlsFailure::Other,
    };
    (failure, err.to_string())
}

/// [`classify_error`] for a bare rustls error.
pub fn classify_rustls(e: &rustls::Error) -> (TlsFailure, String) {
    use rustls::Error as E;
    let failure = match e {
        // A server limited to TLS ≤ 1.1 answers our ClientHello with a
        // protocol_version alert (RFC 8446 §6.2) or an old ServerHello.
        E::AlertReceived(AlertDescription::ProtocolVersion) => TlsFailure::ProtocolVersionTooOld,
        E::AlertReceived(_) => TlsFailure::Alert,
        E::PeerIncompatible(
            PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled,
        ) => TlsFailure::ProtocolVersionTooOld,
        E::PeerIncompatible(_) => TlsFailure::Incompatible,
        E::InvalidMessage(_)
        | E::PeerMisbehaved(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. } => TlsFailure::ProtocolError,
        _ => TlsFailure::Other,
    };
    (failure, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn wrap(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn classify_rustls_errors_inside_io() {
        let (f, d) = classify_error(&wrap(rustls::Error::AlertReceived(
            AlertDescription::HandshakeFailure,
        )));
        assert_eq!(f, TlsFailure::Alert);
        assert_eq!(d, "received fatal alert: HandshakeFailure");
        let (f, _) = classify_error(&wrap(rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion,
        )));
        assert_eq!(f, TlsFailure::ProtocolVersionTooOld);
        let (f, _) = classify_error(&wrap(rustls::Error::PeerIncompatible(
            PeerIncompatible::ServerDoesNotSupportTls12Or13,
        )));
        assert_eq!(f, TlsFailure::ProtocolVersionTooOld);
        let (f, _) = classify_error(&wrap(rustls::Error::PeerIncompatible(
            PeerIncompatible::NoCipherSuitesInCommon,
        )));
        assert_eq!(f, TlsFailure::Incompatible);
        let (f, _) = classify_error(&wrap(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        )));
        assert_eq!(f, TlsFailure::ProtocolError);
        let (f, _) = classify_error(&wrap(rustls::Error::General("x".into())));
        assert_eq!(f, TlsFailure::Other);
    }

    #[test]
    fn classify_io_errors() {
        let (f, _) = classify_error(&io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(f, TlsFailure::Closed);
        let (f, _) = classify_error(&io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(f, TlsFailure::Closed);
        let (f, _) = classify_error(&io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(f, TlsFailure::Timeout);
    }

    #[test]
    fn names() {
        assert_eq!(version_name(ProtocolVersion::TLSv1_3), "TLSv1.3");
        assert_eq!(
            suite_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            suite_name(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(alpn_for(Service::S2s), b"xmpp-server");
    }
}

/// Loopback handshakes against a tokio-rustls server using the test PKI.
#[cfg(test)]
#[cfg(feature = "testnet")]
mod loopback {
    use super::*;
    use crate::testnet::pki::{self, EkuSpec, IssuedCert, LeafSpec, TestCa};
    use rustls::server::WebPkiClientVerifier;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const DOMAIN: &str = "loop.example.test";

    /// Serves one TLS connection: handshake, write `ok`, close. With
    /// `request_client_cert` the server asks for (but does not require) a
    /// client certificate chaining to `client_ca`.
    async fn serve_once(
        cert: IssuedCert,
        client_ca: Option<&TestCa>,
        alpn: Option<&[u8]>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Option<usize>>) {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der().clone()).expect("root");
                let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .allow_unauthenticated()
                    .build()
                    .expect("client verifier");
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(cert.chain.clone(), cert.key.clone_key())
            .expect("server cert");
        if let Some(p) = alpn {
            config.alpn_protocols = vec![p.to_vec()];
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.ok()?;
            let mut tls = acceptor.accept(tcp).await.ok()?;
            let peer = tls.get_ref().1.peer_certificates().map_or(0, <[_]>::len);
            tls.write_all(b"ok").await.ok()?;
            tls.shutdown().await.ok()?;
            Some(peer)
        });
        (addr, task)
    }

    async fn probe(
        addr: std::net::SocketAddr,
        tls: &TlsProbe,
        alpn: Option<&'static [u8]>,
        client_cert: Option<Arc<CertifiedKey>>,
    ) -> (TlsInfo, CaptureState) {
        let (connector, capture) = tls
            .connector(DOMAIN, Service::S2s, alpn, client_cert)
            .expect("connector");
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut stream = connector
            .connect(server_name(DOMAIN).expect("name"), tcp)
            .await
            .expect("handshake");
        // G6: only a successful first read means the session is up.
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.expect("first read");
        assert_eq!(&buf, b"ok");
        (
            tls_info(&capture, Some(stream.get_ref().1)),
            capture.snapshot(),
        )
    }

    #[tokio::test]
    async fn captures_chain_and_no_certificate_request() {
        crate::install_crypto_provider();
        let ca = TestCa::new("loop-plain CA").expect("CA");
        let inter = ca
            .intermediate_server_only("loop-plain sub")
            .expect("inter");
        let cert = inter.issue(&LeafSpec::new(DOMAIN)).expect("leaf");
        let (addr, server) = serve_once(cert.clone(), None, Some(ALPN_XMPP_SERVER)).await;
        let tls = TlsProbe::new(vec![ca.der().clone()]).expect("probe");
        let (info, st) = probe(addr, &tls, Some(ALPN_XMPP_SERVER), None).await;
        assert_eq!(st.chain, cert.chain);
        assert!(!st.client_cert_requested);
        assert_eq!(info.version.as_deref(), Some("TLSv1.3"));
        assert!(
            info.cipher_suite
                .as_deref()
                .is_some_and(|s| s.starts_with("TLS_"))
        );
        assert_eq!(info.alpn.as_deref(), Some("xmpp-server"));
        assert_eq!(info.verdict, Some(ChainVerdict::Trusted));
        assert_eq!(info.name_match, Some(NameMatch::DnsId));
        assert_eq!(info.chain.len(), 2);
        assert_eq!(info.chain[0].sans.dns, vec![DOMAIN.to_string()]);
        assert_eq!(server.await.expect("server"), Some(0));
    }

    #[tokio::test]
    async fn untrusted_chain_is_captured_not_aborted() {
        crate::install_crypto_provider();
        let cert = pki::wrong_issuer(&LeafSpec::new(DOMAIN)).expect("leaf");
        let (addr, server) = serve_once(cert.clone(), None, None).await;
        let tls = TlsProbe::new(vec![]).expect("probe");
        let (info, st) = probe(addr, &tls, None, None).await;
        assert_eq!(st.chain, cert.chain);
        assert_eq!(info.verdict, Some(ChainVerdict::UnknownIssuer));
        assert!(info.verdict_detail.is_some());
        assert_eq!(info.alpn, None);
        assert!(server.await.expect("server").is_some());
    }

    #[tokio::test]
    async fn certificate_request_is_recorded_and_answered() {
        crate::install_crypto_provider();
        let ca = TestCa::new("loop-mtls CA").expect("CA");
        let server_cert = ca.issue(&LeafSpec::new(DOMAIN)).expect("leaf");
        let tls = TlsProbe::new(vec![ca.der().clone()]).expect("probe");

        // Asked, nothing to give.
        let (addr, server) = serve_once(server_cert.clone(), Some(&ca), None).await;
        let (_, st) = probe(addr, &tls, None, None).await;
        assert!(st.client_cert_requested);
        assert!(!st.client_cert_sent);
        assert_eq!(st.acceptable_ca_hints, 1);
        assert_eq!(server.await.expect("server"), Some(0));

        // Asked, and we present a client-and-server certificate.
        let ours = ca
            .issue(&LeafSpec {
                eku: EkuSpec::ClientAndServer,
                ..LeafSpec::new("prober.example.test")
            })
            .expect("client leaf");
        let key = certified_key(ours.chain.clone(), ours.key.clone_key()).expect("key");
        let (addr, server) = serve_once(server_cert, Some(&ca), None).await;
        let (_, st) = probe(addr, &tls, None, Some(key)).await;
        assert!(st.client_cert_requested);
        assert!(st.client_cert_sent);
        assert_eq!(server.await.expect("server"), Some(1));
    }
}
