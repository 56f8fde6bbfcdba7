//! Server-side TLS for the s2s receiving side: the probe's dialback
//! listener and the testnet's simulated servers (MEASUREMENTS §3,
//! TESTNET.md acceptance group).
//!
//! What a receiving server does with the certificate a peer presents as
//! TLS client decides whether a server-only certificate federates
//! (XEP-0178 §3, RFC 6120 §13.7.2.2). Two verifiers cover the behaviours we
//! need at the TLS layer; everything finer (validating the chain *as a
//! server certificate*, refusing EXTERNAL for a missing clientAuth) happens
//! after the handshake, at SASL time, on the chain rustls keeps in
//! [`rustls::ServerConnection::peer_certificates`]:
//!
//! - [`ClientAuth::AcceptAny`]: send a CertificateRequest, accept whatever
//!   comes (or nothing). Signatures are still checked, so the peer holds the
//!   key of the chain it sent.
//! - [`ClientAuth::RequireClientAuth`]: rustls' [`WebPkiClientVerifier`]
//!   over given roots with `allow_unauthenticated()`: a peer sending no
//!   certificate still connects, but a certificate whose EKU lacks clientAuth
//!   gets a fatal alert (`unsupported_certificate`): a strict OpenSSL-style
//!   server (crate notes, "the fake servers").

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use super::verify::TlsSetupError;

/// The largest client certificate chain accepted (bytes of DER, all
/// certificates): a Let's Encrypt leaf and intermediate take ~3 KiB, five
/// RSA-4096 certificates ~10 KiB.
pub const MAX_CLIENT_CHAIN_BYTES: usize = 32 * 1024;

/// A client chain over [`MAX_CLIENT_CHAIN_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error("client certificate chain of {0} bytes exceeds the {MAX_CLIENT_CHAIN_BYTES}-byte cap")]
pub struct ChainTooLarge(pub usize);

/// Requests a client certificate and accepts any chain, or none. The chain
/// is judged later (SASL EXTERNAL, XEP-0178 §3) from
/// `ServerConnection::peer_certificates()`; the handshake signatures are
/// verified for real, so the peer provably holds the end-entity's key.
#[derive(Debug)]
pub struct AcceptAnyClientCert(Arc<CryptoProvider>);

impl AcceptAnyClientCert {
    /// A verifier using `provider`'s signature algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self(provider)
    }
}

impl ClientCertVerifier for AcceptAnyClientCert {
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
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let bytes: usize = end_entity.len() + intermediates.iter().map(|c| c.len()).sum::<usize>();
        if bytes > MAX_CLIENT_CHAIN_BYTES {
            // Analysing and keeping a stranger's huge chain is what a
            // memory attack wants; no real peer sends one.
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(ChainTooLarge(bytes)))),
            ));
        }
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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

/// What the TLS layer of a receiving server does about client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No CertificateRequest at all (a dialback-only server).
    None,
    /// CertificateRequest; any chain (or none) is accepted at the TLS layer.
    AcceptAny,
    /// CertificateRequest; a presented chain must verify to these roots
    /// *for clientAuth* (webpki: clientAuth required when an EKU is present)
    /// or the handshake ends in a fatal alert. No certificate is allowed.
    RequireClientAuth(Arc<RootCertStore>),
}

impl ClientAuth {
    /// The rustls verifier for this policy.
    pub fn verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Arc<dyn ClientCertVerifier>, TlsSetupError> {
        Ok(match self {
            Self::None => WebPkiClientVerifier::no_client_auth(),
            Self::AcceptAny => Arc::new(AcceptAnyClientCert::new(provider.clone())),
            Self::RequireClientAuth(roots) => {
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsSetupError::Config(e.to_string()))?
            }
        })
    }
}

/// The TLS versions a server speaks.
pub const TLS12_AND_13: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Builds a server config from a chain (end-entity first) and its key,
/// with a client-certificate policy, protocol versions and, for direct TLS
/// (XEP-0368 §3), an ALPN id. Session resumption stays at rustls' default;
/// the peer chain is available on resumed TLS 1.3 sessions too.
pub fn server_config(
    provider: &Arc<CryptoProvider>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: &ClientAuth,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsSetupError::Config(e.to_string()))?
        .with_client_cert_verifier(client_auth.verifier(provider)?)
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    if let Some(a) = alpn {
        cfg.alpn_protocols = vec![a.to_vec()];
    }
    Ok(Arc::new(cfg))
}

/// A root store holding exactly `roots` (e.g. the testnet CA).
pub fn root_store(roots: &[CertificateDer<'_>]) -> Result<Arc<RootCertStore>, TlsSetupError> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store
            .add(r.clone().into_owned())
            .map_err(|e| TlsSetupError::BadTrustAnchor(e.to_string()))?;
    }
    Ok(Arc::new(store))
}
