//! The chain verdict (MEASUREMENTS §2): webpki path validation against the
//! Mozilla roots plus the operator's extra CAs, with the **XMPP domain** as
//! reference identity (RFC 6120 §13.7.2), re-deciding webpki's name errors
//! with the XMPP identifiers it does not know (XmppAddr, SRV-ID).
//!
//! EKU: a *server* certificate is validated for serverAuth (RFC 5280
//! §4.2.1.12, as webpki does for any TLS server). A `client_only` end-entity
//! (or a chain whose intermediate excludes serverAuth) therefore gets
//! [`ChainVerdict::Invalid`] with a detail naming the EKU; `any` (no EKU
//! extension) passes.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::memo::{CertMemo, Window};
use super::{CertInfo, ChainVerdict, NameMatch, identity};
use crate::xmpp::Service;

/// Errors setting up TLS: our own configuration faults, not measurements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// An `--extra-ca` file could not be read.
    #[error("cannot read CA file {path}: {reason}")]
    ReadCa {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// An `--extra-ca` file is not valid PEM.
    #[error("CA file {path} is not valid PEM: {reason}")]
    BadPem {
        /// The file.
        path: String,
        /// The parser's words.
        reason: String,
    },
    /// An `--extra-ca` file holds no `CERTIFICATE` block.
    #[error("CA file {path} contains no certificate")]
    NoCertificate {
        /// The file.
        path: String,
    },
    /// A `CERTIFICATE` block of an `--extra-ca` file does not hold a
    /// usable certificate (corrupt DER, or refused as a trust anchor).
    #[error("CA file {path}: certificate {index} of {count} {reason}")]
    BadCertificate {
        /// The file.
        path: String,
        /// 1-based position of the block in the file.
        index: usize,
        /// Certificates in the file.
        count: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra CA certificate cannot be used as a trust anchor.
    #[error("extra CA certificate rejected as trust anchor: {0}")]
    BadTrustAnchor(String),
    /// rustls refused the configuration (protocol versions, key, …).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Reads an `--extra-ca` PEM file holding one or more certificates.
/// Errors name the path, so a typo in the option is obvious, and say what
/// is wrong: unreadable, not PEM (bad base64, a block without its END
/// line), no certificate, or a block whose DER is not an X.509
/// certificate usable as a trust anchor (named by its position).
pub fn load_extra_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| TlsSetupError::ReadCa {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::BadPem {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate { path: shown });
    }
    let count = certs.len();
    for (i, der) in certs.iter().enumerate() {
        let bad = |reason: String| TlsSetupError::BadCertificate {
            path: shown.clone(),
            index: i + 1,
            count,
            reason,
        };
        super::cert::analyze(der).map_err(|e| bad(format!("is {e}")))?;
        webpki::anchor_from_trusted_cert(der)
            .map_err(|e| bad(format!("cannot be a trust anchor: {e}")))?;
    }
    Ok(certs)
}

/// Decides chain verdicts. Holds the trust anchors (webpki-roots, i.e. the
/// Mozilla set pinned by Cargo.lock, so verdicts are reproducible across
/// machines, plus extra CAs) and the aws-lc-rs provider.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    /// Analyses and validated paths shared by every connection of the
    /// crawl (clones share it).
    memo: Arc<CertMemo>,
}

/// The crypto provider of the probe's TLS clients: aws-lc-rs's defaults,
/// with the TLS 1.3 suites in the order Chrome, Firefox and Go offer them
/// on CPUs with AES instructions (`TLS_AES_128_GCM_SHA256` first; rustls'
/// default puts `TLS_AES_256_GCM_SHA384` first). The server still chooses
/// (RFC 8446 §4.1.1) and every suite stays offered, so no server that
/// completes a handshake with a browser fails with us; a server that
/// follows the client's order runs the key schedule on SHA-256, which
/// x86-64 CPUs with SHA extensions compute in hardware, instead of
/// SHA-384, which aws-lc computes in software on this machine (issue 13,
/// docs/benchmarks.md step 11).
pub fn client_provider() -> CryptoProvider {
    use rustls::CipherSuite as S;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    // A stable sort: the TLS 1.2 suites keep rustls' order after these.
    p.cipher_suites.sort_by_key(|s| match s.suite() {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384 => 1,
        S::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        _ => 3,
    });
    p
}

impl ChainVerifier {
    /// Mozilla roots plus `extra_ca` as additional trust anchors; the
    /// probe's [`client_provider`].
    pub fn new(extra_ca: &[CertificateDer<'_>]) -> Result<Self, TlsSetupError> {
        Self::with_provider(extra_ca, client_provider())
    }

    /// [`Self::new`] with another crypto provider (the testnet's servers
    /// connect out with rustls' own defaults, as other servers would).
    pub fn with_provider(
        extra_ca: &[CertificateDer<'_>],
        provider: CryptoProvider,
    ) -> Result<Self, TlsSetupError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for ca in extra_ca {
            roots
                .add(ca.clone())
                .map_err(|e| TlsSetupError::BadTrustAnchor(e.to_string()))?;
        }
        Ok(Self {
            roots: Arc::new(roots),
            provider: Arc::new(provider),
            memo: Arc::new(CertMemo::default()),
        })
    }

    /// The memo of certificate analyses and validated paths.
    pub fn memo(&self) -> &CertMemo {
        &self.memo
    }

    /// The trust anchors.
    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    /// The crypto provider (aws-lc-rs).
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Verdict for a presented chain, end-entity first; an empty chain is
    /// [`ChainVerdict::NoCertificate`].
    pub fn verdict_chain(
        &self,
        domain: &str,
        service: Service,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> (ChainVerdict, Option<String>, NameMatch) {
        match chain.split_first() {
            Some((ee, rest)) => self.verdict(domain, service, ee, rest, now),
            None => (ChainVerdict::NoCertificate, None, NameMatch::None),
        }
    }

    /// The chain verdict for `domain` (MEASUREMENTS §2), webpki's own words
    /// for a non-trusted verdict, and which identifier names the domain.
    ///
    /// Mapping: expired → `Expired`; not yet valid → `NotYetValid`; unknown
    /// issuer with a self-signed end-entity → `SelfSigned`; unknown issuer
    /// (including a missing intermediate) → `UnknownIssuer`; bad signature
    /// → `BadSignature`; valid path but no DNS-ID for the domain →
    /// `Trusted` if an XmppAddr or SRV-ID names it (RFC 6120 §13.7.1.2),
    /// else `NameMismatch`; anything else → `Invalid` with the detail.
    pub fn verdict(
        &self,
        domain: &str,
        service: Service,
        ee: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> (ChainVerdict, Option<String>, NameMatch) {
        let (v, detail, m, _) = self.verdict_analyzed(domain, service, ee, intermediates, now);
        (v, detail, m)
    }

    /// [`verdict`](Self::verdict), also giving the analysis of every
    /// presented certificate (end-entity first; `None` where it does not
    /// parse), taken from the crawl's [`CertMemo`] like the path
    /// validation of a chain seen before.
    pub fn verdict_analyzed(
        &self,
        domain: &str,
        service: Service,
        ee: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> (
        ChainVerdict,
        Option<String>,
        NameMatch,
        Vec<Option<Arc<CertInfo>>>,
    ) {
        let ders: Vec<&CertificateDer<'_>> = std::iter::once(ee).chain(intermediates).collect();
        let digests: Vec<_> = ders.iter().map(|d| CertMemo::digest(d)).collect();
        let infos: Vec<Option<Arc<CertInfo>>> = ders
            .iter()
            .zip(&digests)
            .map(|(der, digest)| self.memo.analyze(digest, der))
            .collect();
        let info = infos.first().cloned().flatten();
        let name_match = info.as_ref().map_or(NameMatch::None, |i| {
            identity::match_domain(i, domain, service)
        });
        let end_entity = match webpki::EndEntityCert::try_from(ee) {
            Ok(c) => c,
            Err(e) => {
                return (
                    ChainVerdict::Invalid,
                    Some(e.to_string()),
                    name_match,
                    infos,
                );
            }
        };
        let key = CertMemo::chain_key(&digests);
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let path = if self.memo.path_ok(&key, now_secs) {
            Ok(())
        } else {
            let path = end_entity
                .verify_for_usage(
                    self.provider.signature_verification_algorithms.all,
                    &self.roots.roots,
                    intermediates,
                    now,
                    webpki::KeyUsage::server_auth(),
                    None,
                    None,
                )
                .map(|_| ());
            if path.is_ok()
                && let Some(window) = Window::of(&infos)
            {
                self.memo.remember_path(key, window);
            }
            path
        };
        if let Err(e) = path {
            let verdict = match e {
                webpki::Error::CertExpired { .. } => ChainVerdict::Expired,
                webpki::Error::CertNotValidYet { .. } => ChainVerdict::NotYetValid,
                webpki::Error::UnknownIssuer if info.as_ref().is_some_and(|i| i.self_signed) => {
                    ChainVerdict::SelfSigned
                }
                webpki::Error::UnknownIssuer => ChainVerdict::UnknownIssuer,
                webpki::Error::InvalidSignatureForPublicKey => ChainVerdict::BadSignature,
                _ => ChainVerdict::Invalid,
            };
            let detail = match e {
                webpki::Error::RequiredEkuNotFoundContext(_) => {
                    format!("EKU does not allow serverAuth (RFC 5280 §4.2.1.12): {e}")
                }
                _ => e.to_string(),
            };
            return (verdict, Some(detail), name_match, infos);
        }
        let dns_ok = ServerName::try_from(domain)
            .map_err(|e| e.to_string())
            .and_then(|n| {
                end_entity
                    .verify_is_valid_for_subject_name(&n)
                    .map_err(|e| e.to_string())
            });
        match dns_ok {
            Ok(()) => (ChainVerdict::Trusted, None, name_match, infos),
            Err(_) if identity::is_trusted_match(name_match) => {
                (ChainVerdict::Trusted, None, name_match, infos)
            }
            Err(detail) => (ChainVerdict::NameMismatch, Some(detail), name_match, infos),
        }
    }
}

#[cfg(test)]
#[cfg(feature = "testnet")]
mod tests {

    #[test]
    fn the_probe_offers_every_default_suite_with_aes_128_first() {
        let ours: Vec<_> = client_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let defaults: Vec<_> = rustls::crypto::aws_lc_rs::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(ours[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(ours[1], rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
        let (mut a, mut b) = (ours.clone(), defaults.clone());
        a.sort_by_key(|s| u16::from(*s));
        b.sort_by_key(|s| u16::from(*s));
        assert_eq!(a, b, "the same suites, reordered");
        // TLS 1.2 suites keep rustls' order, after the TLS 1.3 ones.
        let tls12 = |v: &[rustls::CipherSuite]| -> Vec<_> {
            v.iter()
                .filter(|s| !format!("{s:?}").starts_with("TLS13_"))
                .copied()
                .collect()
        };
        assert_eq!(tls12(&ours), tls12(&defaults));
        assert_eq!(&ours[3..], &tls12(&ours)[..]);
    }

    use super::*;
    use crate::testnet::pki::{self, EkuSpec, LeafSpec, TestCa};
    use time::Duration;

    const DOMAIN: &str = "xmpp.example.test";

    fn setup(cn: &str) -> (TestCa, ChainVerifier) {
        crate::install_crypto_provider();
        let ca = TestCa::new(cn).expect("CA");
        let v = ChainVerifier::new(std::slice::from_ref(ca.der())).expect("verifier");
        (ca, v)
    }

    fn check(
        v: &ChainVerifier,
        service: Service,
        chain: &[CertificateDer<'_>],
    ) -> (ChainVerdict, Option<String>, NameMatch) {
        v.verdict_chain(DOMAIN, service, chain, UnixTime::now())
    }

    #[test]
    fn trusted_dns_id_and_wildcard() {
        let (ca, v) = setup("verify-trusted CA");
        let leaf = ca.issue(&LeafSpec::new(DOMAIN)).expect("leaf");
        assert_eq!(
            check(&v, Service::S2s, &leaf.chain),
            (ChainVerdict::Trusted, None, NameMatch::DnsId)
        );
        let wild = ca.issue(&LeafSpec::new("*.example.test")).expect("leaf");
        assert_eq!(
            check(&v, Service::C2s, &wild.chain),
            (ChainVerdict::Trusted, None, NameMatch::Wildcard)
        );
        // Without the extra CA the same chain is unknown.
        let public_only = ChainVerifier::new(&[]).expect("verifier");
        assert_eq!(
            check(&public_only, Service::S2s, &leaf.chain).0,
            ChainVerdict::UnknownIssuer
        );
    }

    /// Issue 13's memo: a chain seen again is neither re-analysed nor
    /// re-validated, the verdict is the same, the name part is still the
    /// domain's own, and a remembered path no longer counts once `now`
    /// leaves the certificates' validity.
    #[test]
    fn memoised_chain_same_verdict_and_expires_with_the_certificate() {
        let (ca, v) = setup("verify-memo CA");
        let leaf = ca.issue(&LeafSpec::new(DOMAIN)).expect("leaf");
        let first = check(&v, Service::S2s, &leaf.chain);
        let before = v.memo().stats();
        assert_eq!(first, (ChainVerdict::Trusted, None, NameMatch::DnsId));
        assert_eq!((before.path_hits, before.path_misses), (0, 1));
        // Same chain, another domain sharing the host: a memo hit, and the
        // name is judged for that domain.
        let other = v.verdict_chain(
            "other.example.test",
            Service::S2s,
            &leaf.chain,
            UnixTime::now(),
        );
        assert_eq!(other.0, ChainVerdict::NameMismatch);
        assert_eq!(check(&v, Service::S2s, &leaf.chain), first);
        let after = v.memo().stats();
        assert_eq!((after.path_hits, after.path_misses), (2, 1));
        assert_eq!(
            after.analysis_misses, before.analysis_misses,
            "nothing re-analysed"
        );
        // Long after notAfter: validated again, and expired.
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).expect("after 1970")
                + 3 * 365 * 86_400,
        ));
        assert_eq!(
            v.verdict_chain(DOMAIN, Service::S2s, &leaf.chain, later).0,
            ChainVerdict::Expired
        );
        assert_eq!(v.memo().stats().path_misses, 2);
    }

    #[test]
    fn expired_and_not_yet_valid() {
        let (ca, v) = setup("verify-validity CA");
        let now = time::OffsetDateTime::now_utc();
        let expired = ca
            .issue(&LeafSpec {
                not_before: now - Duration::days(100),
                not_after: now - Duration::days(10),
                ..LeafSpec::new(DOMAIN)
            })
            .expect("leaf");
        let (verdict, detail, m) = check(&v, Service::S2s, &expired.chain);
        assert_eq!(verdict, ChainVerdict::Expired);
        assert!(detail.is_some());
        assert_eq!(m, NameMatch::DnsId);
        let future = ca
            .issue(&LeafSpec {
                not_before: now + Duration::days(10),
                not_after: now + Duration::days(100),
                ..LeafSpec::new(DOMAIN)
            })
            .expect("leaf");
        assert_eq!(
            check(&v, Service::S2s, &future.chain).0,
            ChainVerdict::NotYetValid
        );
    }

    #[test]
    fn self_signed_and_unknown_issuer() {
        let (_ca, v) = setup("verify-issuer CA");
        let own = pki::self_signed(&LeafSpec::new(DOMAIN)).expect("leaf");
        assert_eq!(
            check(&v, Service::S2s, &own.chain).0,
            ChainVerdict::SelfSigned
        );
        let wrong = pki::wrong_issuer(&LeafSpec::new(DOMAIN)).expect("leaf");
        let (verdict, detail, _) = check(&v, Service::S2s, &wrong.chain);
        assert_eq!(verdict, ChainVerdict::UnknownIssuer);
        assert!(detail.is_some());
    }

    #[test]
    fn bad_signature() {
        let (ca, v) = setup("verify-badsig CA");
        let leaf = ca.issue(&LeafSpec::new(DOMAIN)).expect("leaf");
        let mut der = leaf.leaf().to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = [CertificateDer::from(der)];
        assert_eq!(
            check(&v, Service::S2s, &tampered).0,
            ChainVerdict::BadSignature
        );
    }

    #[test]
    fn rfc6120_13_7_2_name_mismatch_and_xmpp_identifiers() {
        let (ca, v) = setup("verify-names CA");
        let other = ca
            .issue(&LeafSpec::new("other.example.test"))
            .expect("leaf");
        let (verdict, detail, m) = check(&v, Service::S2s, &other.chain);
        assert_eq!(verdict, ChainVerdict::NameMismatch);
        assert!(detail.is_some());
        assert_eq!(m, NameMatch::None);

        let xmpp = ca
            .issue(&LeafSpec {
                xmpp_addr: vec![DOMAIN.into()],
                ..LeafSpec::nameless()
            })
            .expect("leaf");
        assert_eq!(
            check(&v, Service::S2s, &xmpp.chain),
            (ChainVerdict::Trusted, None, NameMatch::XmppAddr)
        );

        let srv = ca
            .issue(&LeafSpec {
                srv_id: vec![format!("_xmpp-server.{DOMAIN}")],
                ..LeafSpec::nameless()
            })
            .expect("leaf");
        assert_eq!(
            check(&v, Service::S2s, &srv.chain),
            (ChainVerdict::Trusted, None, NameMatch::SrvId)
        );
        assert_eq!(
            check(&v, Service::C2s, &srv.chain).0,
            ChainVerdict::NameMismatch
        );

        // CN only: reported, not trusted.
        let cn = ca
            .issue(&LeafSpec {
                common_name: Some(DOMAIN.into()),
                ..LeafSpec::nameless()
            })
            .expect("leaf");
        let (verdict, _, m) = check(&v, Service::S2s, &cn.chain);
        assert_eq!(verdict, ChainVerdict::NameMismatch);
        assert_eq!(m, NameMatch::CommonName);
    }

    #[test]
    fn missing_intermediate_is_unknown_issuer() {
        let (ca, v) = setup("verify-inter CA");
        let inter = ca
            .intermediate_server_only("verify-inter sub")
            .expect("inter");
        let leaf = inter.issue(&LeafSpec::new(DOMAIN)).expect("leaf");
        assert_eq!(leaf.chain.len(), 2);
        assert_eq!(
            check(&v, Service::S2s, &leaf.chain).0,
            ChainVerdict::Trusted
        );
        assert_eq!(
            check(&v, Service::S2s, &leaf.chain[..1]).0,
            ChainVerdict::UnknownIssuer
        );
    }

    #[test]
    fn client_only_leaf_is_invalid_for_a_server() {
        let (ca, v) = setup("verify-eku CA");
        let leaf = ca
            .issue(&LeafSpec {
                eku: EkuSpec::ClientOnly,
                ..LeafSpec::new(DOMAIN)
            })
            .expect("leaf");
        let (verdict, detail, _) = check(&v, Service::S2s, &leaf.chain);
        assert_eq!(verdict, ChainVerdict::Invalid);
        let detail = detail.unwrap_or_default();
        assert!(
            detail.starts_with("EKU does not allow serverAuth"),
            "{detail}"
        );
        // No EKU at all is fine for a server.
        let any = ca
            .issue(&LeafSpec {
                eku: EkuSpec::None,
                ..LeafSpec::new(DOMAIN)
            })
            .expect("leaf");
        assert_eq!(check(&v, Service::S2s, &any.chain).0, ChainVerdict::Trusted);
    }

    #[test]
    fn no_certificate() {
        let (_ca, v) = setup("verify-none CA");
        assert_eq!(
            check(&v, Service::C2s, &[]),
            (ChainVerdict::NoCertificate, None, NameMatch::None)
        );
    }

    #[test]
    fn load_extra_ca_names_the_path() {
        let (ca, _) = setup("verify-load CA");
        let dir = std::env::temp_dir().join(format!("xmpp-survey-tls-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("tmp dir");

        let missing = dir.join("missing.pem");
        let err = load_extra_ca(&missing).expect_err("missing file");
        assert!(matches!(err, TlsSetupError::ReadCa { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").expect("write");
        let err = load_extra_ca(&empty).expect_err("no cert");
        assert_eq!(
            err,
            TlsSetupError::NoCertificate {
                path: empty.display().to_string()
            }
        );

        let good = dir.join("ca.pem");
        let inter = ca
            .intermediate("verify-load sub", None, pki::CaEku::Unrestricted)
            .expect("inter");
        std::fs::write(&good, ca.pem() + &inter.pem()).expect("write");
        let certs = load_extra_ca(&good).expect("load");
        assert_eq!(certs, vec![ca.der().clone(), inter.der().clone()]);

        // Valid base64 whose DER is no certificate: named by file and position.
        let corrupt = dir.join("corrupt.pem");
        let junk = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        std::fs::write(&corrupt, ca.pem() + junk).expect("write");
        let err = load_extra_ca(&corrupt)
            .expect_err("corrupt DER")
            .to_string();
        assert!(err.contains("corrupt.pem"), "{err}");
        assert!(err.contains("certificate 2 of 2"), "{err}");
        assert!(err.contains("X.509"), "{err}");

        // Broken base64, and a block cut off before its END line.
        for (name, body) in [
            (
                "base64.pem",
                "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
            ),
            (
                "truncated.pem",
                "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n",
            ),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, body).expect("write");
            let err = load_extra_ca(&p).expect_err(name);
            assert!(matches!(err, TlsSetupError::BadPem { .. }), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }

        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}

/// The trust store behind every chain verdict, recorded with each crawl
/// so verdicts from different binaries can be compared: the webpki-roots
/// (Mozilla) version pinned in `Cargo.lock`, and its number of roots.
pub fn roots_version() -> String {
    let lock = include_str!("../../Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"webpki-roots\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "webpki-roots {version} ({} roots)",
        webpki_roots::TLS_SERVER_ROOTS.len()
    )
}

#[cfg(test)]
mod roots_tests {
    #[test]
    fn roots_version_names_the_pinned_crate() {
        let v = super::roots_version();
        assert!(v.starts_with("webpki-roots 1."), "{v}");
        assert!(!v.contains("unknown"), "{v}");
    }
}
