//! The probe identity (MEASUREMENTS §3): a domain the operator controls,
//! with a server-only certificate (and optionally a client-and-server one)
//! the acceptance probe presents, and the dialback secret and listener
//! address that make the crawler that domain's authoritative server.
//!
//! Read from the `[identity]` table of the config file
//! ([`crate::app::file::ConfigFile`], `--config`) and/or CLI flags.

use crate::tls::client::certified_key;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Why an identity could not be loaded; each names the file or field.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// A certificate or key file could not be read or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// Which item (e.g. "server-only certificate chain").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A required field is missing.
    #[error("probe identity: {0}")]
    Missing(String),
    /// `dialback_secret_file` is unreadable or too short.
    #[error("identity.dialback_secret_file {}: {reason}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The domain is not a valid domain.
    #[error("probe identity domain {0:?}: {1}")]
    BadDomain(String, String),
    /// The key file does not go with the certificate file (or rustls
    /// refused the pair): both files are named.
    #[error("{what} {cert} with key {key}: {reason}")]
    Pair {
        /// Which pair.
        what: &'static str,
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key does not match the certificate, or another TLS error.
    #[error("probe identity {what}: {reason}")]
    Tls {
        /// Which pair.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// The `[identity]` table of the config file (paths are relative to the file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The probe domain (sent as `from`).
    pub domain: Option<String>,
    /// PEM chain (end-entity first) whose EKU is serverAuth only.
    pub server_only_cert: Option<PathBuf>,
    /// Its private key (PEM, PKCS#8/PKCS#1/SEC1).
    pub server_only_key: Option<PathBuf>,
    /// Optional PEM chain with serverAuth + clientAuth (labs, testnet).
    pub client_and_server_cert: Option<PathBuf>,
    /// Its key.
    pub client_and_server_key: Option<PathBuf>,
    /// Where the dialback listener binds (default `0.0.0.0:5269`).
    pub listen: Option<SocketAddr>,
    /// Secret for XEP-0185 dialback keys (default: random per run).
    pub dialback_secret: Option<String>,
    /// File holding the XEP-0185 secret (at least [`MIN_SECRET_BYTES`]
    /// bytes, surrounding whitespace ignored): shared by every worker of a
    /// crawl on several hosts, so that the host the probe domain's DNS
    /// points to confirms keys any worker issued.
    pub dialback_secret_file: Option<PathBuf>,
}

/// Shortest dialback secret accepted from a file: 16 bytes (128 bits),
/// e.g. `head -c 32 /dev/urandom | base64 > dialback.secret`.
pub const MIN_SECRET_BYTES: usize = 16;

/// Reads a shared dialback secret; errors name the key and the file.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, IdentityError> {
    let err = |reason: String| IdentityError::SecretFile {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let secret = bytes.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(err(format!(
            "{} byte(s), at least {MIN_SECRET_BYTES} needed (e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
            secret.len()
        )));
    }
    Ok(secret)
}

impl IdentityConfig {
    /// Fields set in `other` override ours (CLI flags over the file).
    pub fn merge(self, other: Self) -> Self {
        Self {
            domain: other.domain.or(self.domain),
            server_only_cert: other.server_only_cert.or(self.server_only_cert),
            server_only_key: other.server_only_key.or(self.server_only_key),
            client_and_server_cert: other.client_and_server_cert.or(self.client_and_server_cert),
            client_and_server_key: other.client_and_server_key.or(self.client_and_server_key),
            listen: other.listen.or(self.listen),
            dialback_secret: other.dialback_secret.or(self.dialback_secret),
            dialback_secret_file: other.dialback_secret_file.or(self.dialback_secret_file),
        }
    }

    /// Whether anything identity-related was given at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A certificate chain with its key, ready to present.
#[derive(Clone)]
pub struct ProbeCert {
    /// The chain, end-entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key, ready for rustls.
    pub key: Arc<CertifiedKey>,
    /// The private key DER (for the listener's server config).
    pub key_der: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ProbeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeCert")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ProbeCert {
    /// Builds from DER.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        what: &'static str,
    ) -> Result<Self, IdentityError> {
        let certified =
            certified_key(chain.clone(), key.clone_key()).map_err(|e| IdentityError::Tls {
                what,
                reason: e.to_string(),
            })?;
        Ok(Self {
            chain,
            key: certified,
            key_der: Arc::new(key),
        })
    }

    /// Loads a PEM chain and key. Every error names the file at fault and
    /// what is wrong with it: unreadable, not PEM, no certificate or key
    /// block, a block that is not an X.509 certificate (by position), or a
    /// key that does not go with the certificate (both files named).
    pub fn load(cert: &Path, key: &Path, what: &'static str) -> Result<Self, IdentityError> {
        let pem_err = |path: &Path, reason: String| IdentityError::Pem {
            what,
            path: path.to_path_buf(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_err(cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_err(cert, "no CERTIFICATE block".into()));
        }
        for (i, der) in chain.iter().enumerate() {
            crate::tls::cert::analyze(der).map_err(|e| {
                pem_err(
                    cert,
                    format!("certificate {} of {} is {e}", i + 1, chain.len()),
                )
            })?;
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            pem_err(
                key,
                match e {
                    rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block".into(),
                    e => e.to_string(),
                },
            )
        })?;
        Self::new(chain, key_der, what).map_err(|e| match e {
            IdentityError::Tls { what, reason } => IdentityError::Pair {
                what,
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                reason,
            },
            other => other,
        })
    }
}

/// A complete probe identity.
#[derive(Debug, Clone)]
pub struct ProbeIdentity {
    /// The probe domain.
    pub domain: String,
    /// The server-only certificate (always).
    pub server_only: ProbeCert,
    /// The client-and-server certificate (optional: sharper verdicts).
    pub client_and_server: Option<ProbeCert>,
    /// Where the dialback listener binds.
    pub listen: SocketAddr,
    /// XEP-0185 secret.
    pub dialback_secret: Vec<u8>,
    /// Whether the secret was configured (shared by several workers) rather
    /// than random for this process.
    pub shared_secret: bool,
}

/// Default listener address: all interfaces, the s2s port (the target must
/// reach it to verify dialback and to deliver replies).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:5269";

impl ProbeIdentity {
    /// Resolves a config into an identity; `Ok(None)` when no identity was
    /// configured at all (the acceptance probe is then not run).
    pub fn from_config(cfg: &IdentityConfig) -> Result<Option<Self>, IdentityError> {
        if cfg.is_empty() {
            return Ok(None);
        }
        let domain = cfg.domain.as_deref().ok_or_else(|| {
            IdentityError::Missing("`domain` (--probe-domain) is required".into())
        })?;
        let domain = crate::model::domain::DomainName::parse(domain)
            .map(String::from)
            .map_err(|e| IdentityError::BadDomain(domain.to_string(), e.to_string()))?;
        let dialback_secret = match (&cfg.dialback_secret, &cfg.dialback_secret_file) {
            (Some(_), Some(_)) => {
                return Err(IdentityError::Missing(
                    "`dialback_secret` and `dialback_secret_file` are exclusive: set one".into(),
                ));
            }
            (Some(s), None) => s.as_bytes().to_vec(),
            (None, Some(path)) => read_secret_file(path)?,
            (None, None) => rand::random::<[u8; 32]>().to_vec(),
        };
        let (Some(c), Some(k)) = (&cfg.server_only_cert, &cfg.server_only_key) else {
            return Err(IdentityError::Missing(
                "`server_only_cert` and `server_only_key` (--probe-cert/--probe-key) are required"
                    .into(),
            ));
        };
        let server_only = ProbeCert::load(c, k, "server-only certificate")?;
        let client_and_server = match (&cfg.client_and_server_cert, &cfg.client_and_server_key) {
            (Some(c), Some(k)) => Some(ProbeCert::load(c, k, "client-and-server certificate")?),
            (None, None) => None,
            _ => {
                return Err(IdentityError::Missing(
                    "`client_and_server_cert` and `client_and_server_key` go together".into(),
                ));
            }
        };
        let listen = match cfg.listen {
            Some(l) => l,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| IdentityError::Missing("listen".into()))?,
        };
        Ok(Some(Self {
            domain,
            server_only,
            client_and_server,
            listen,
            dialback_secret,
            shared_secret: cfg.dialback_secret.is_some() || cfg.dialback_secret_file.is_some(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_file_and_field() {
        let dir = std::env::temp_dir().join(format!("xs-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = IdentityConfig {
            domain: Some("probe.example".into()),
            ..Default::default()
        };
        let e = ProbeIdentity::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("server_only_cert"), "{e}");

        let cfg = IdentityConfig {
            domain: Some("probe.example".into()),
            server_only_cert: Some(dir.join("missing.pem")),
            server_only_key: Some(dir.join("missing.key")),
            ..Default::default()
        };
        let e = ProbeIdentity::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        assert!(
            ProbeIdentity::from_config(&IdentityConfig::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn secret_file_errors_name_the_key_and_file() {
        let dir = std::env::temp_dir().join(format!("xs-secret-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.secret");
        let e = read_secret_file(&missing).unwrap_err().to_string();
        assert!(
            e.contains("identity.dialback_secret_file") && e.contains("missing.secret"),
            "{e}"
        );
        let short = dir.join("short.secret");
        std::fs::write(&short, "tooshort\n").unwrap();
        let e = read_secret_file(&short).unwrap_err().to_string();
        assert!(
            e.contains("short.secret") && e.contains("8 byte(s)") && e.contains("at least 16"),
            "{e}"
        );
        let good = dir.join("good.secret");
        std::fs::write(&good, "  0123456789abcdef0123\n").unwrap();
        assert_eq!(read_secret_file(&good).unwrap(), b"0123456789abcdef0123");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn certificate_and_key_errors_name_their_file() {
        let dir = std::env::temp_dir().join(format!("xs-identity-pem-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let gen_pair = || {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["probe.example".to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (cert_pem, key_pem) = gen_pair();
        let (_, other_key) = gen_pair();
        let write = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let cert = write("so.pem", &cert_pem);
        let key = write("so.key", &key_pem);
        ProbeCert::load(&cert, &key, "server-only certificate").expect("a good pair loads");

        let corrupt = write(
            "corrupt.pem",
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        );
        let e = ProbeCert::load(&corrupt, &key, "server-only certificate")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("corrupt.pem") && e.contains("certificate 1 of 1"),
            "{e}"
        );

        let truncated = write("truncated.pem", "-----BEGIN CERTIFICATE-----\nAAEC\n");
        let e = ProbeCert::load(&truncated, &key, "server-only certificate")
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated.pem"), "{e}");

        let no_key = write("nokey.key", &cert_pem);
        let e = ProbeCert::load(&cert, &no_key, "server-only certificate")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nokey.key") && e.contains("no PRIVATE KEY"),
            "{e}"
        );

        let wrong = write("wrong.key", &other_key);
        let e = ProbeCert::load(&cert, &wrong, "server-only certificate")
            .unwrap_err()
            .to_string();
        assert!(e.contains("so.pem") && e.contains("wrong.key"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
