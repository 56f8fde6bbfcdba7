//! The TLS material of each simulated domain, built on first use: its
//! certificate from the testnet PKI, one server config per (service,
//! transport) from that service's shape, and the client key for its own
//! outbound s2s streams.

use super::Shared;
use crate::testnet::layout::Placed;
use crate::testnet::profile::{ClientCertPolicy, StreamShape, TlsVersions};
use crate::tls::client::certified_key;
use crate::tls::server::{ClientAuth, server_config};
use crate::tls::verify::TlsSetupError;
use crate::xmpp::Service;
use rustls::ServerConfig;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// TLS material of one domain, built on first use: one server config per
/// (service, transport), each from that service's shape.
pub(super) struct Material {
    pub(super) leaf: CertificateDer<'static>,
    /// The domain's certificate as TLS client certificate, for its own
    /// outbound s2s streams (XEP-0178).
    pub(super) client_key: Arc<CertifiedKey>,
    pub(super) starttls_c2s: Arc<ServerConfig>,
    pub(super) starttls_s2s: Arc<ServerConfig>,
    pub(super) direct_c2s: Arc<ServerConfig>,
    pub(super) direct_s2s: Arc<ServerConfig>,
}

impl Shared {
    pub(super) fn material(&self, p: &Placed) -> Result<Arc<Material>, String> {
        // What the domain plays now; each certificate epoch (testnet
        // generation) has its own material, so a renewal is a new leaf.
        // A successor that keeps its certificate keeps the very same leaf.
        let (profile, epoch) = p.current();
        let variant = u8::from(profile != p.profile);
        let key = format!("{}#{variant}#{epoch}", p.domain);
        let mut cache = self.material.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(&key) {
            return Ok(m.clone());
        }
        let cert = self.cert_at(p, profile.cert, epoch)?;
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
                let build = if profile.cert == crate::testnet::profile::CertShape::OffsetTime {
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
        let c2s = profile.c2s;
        // A domain without s2s never reaches an s2s TLS step; any shape will do.
        let s2s = profile.s2s.unwrap_or(c2s);
        let m = Arc::new(Material {
            leaf: cert.chain[0].clone(),
            client_key: if profile.cert == crate::testnet::profile::CertShape::OffsetTime {
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
        cache.insert(key, m.clone());
        Ok(m)
    }

    /// The end-entity certificate `p` presents in `generation` (issued
    /// on first use; the same one the servers present then).
    pub fn leaf_at(&self, p: &Placed, generation: u32) -> Result<CertificateDer<'static>, String> {
        let (profile, epoch) = p.at(generation);
        Ok(self.cert_at(p, profile.cert, epoch)?.chain[0].clone())
    }

    fn cert_at(
        &self,
        p: &Placed,
        shape: crate::testnet::profile::CertShape,
        epoch: u32,
    ) -> Result<Arc<crate::testnet::pki::IssuedCert>, String> {
        let mut certs = self.certs.lock().unwrap_or_else(|e| e.into_inner());
        let key = format!("{}#{epoch}", p.domain);
        if let Some(c) = certs.get(&key) {
            return Ok(c.clone());
        }
        let c = Arc::new(
            self.pki
                .issue_at(&p.domain, shape, epoch)
                .map_err(|e| e.to_string())?,
        );
        certs.insert(key, c.clone());
        Ok(c)
    }

    /// The end-entity certificate a domain presents (issued on first use).
    pub fn leaf(&self, p: &Placed) -> Result<CertificateDer<'static>, String> {
        Ok(self.material(p)?.leaf.clone())
    }

    pub(super) fn config(
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
