//! How a crawl was measured (issue "Measurement truth on every real
//! configuration"): every setting that can change a result, recorded with
//! the crawl as `crawls.config` so two crawls' numbers can be compared, or
//! their difference explained.
//!
//! Built from one serialisable struct rather than ad-hoc JSON, and from
//! the library's own config types by exhaustive destructuring: a field
//! added to [`Limits`], [`PolitenessConfig`] or [`WorkerConfig`] does not
//! compile here until it is recorded (or knowingly left out).

use super::{RETRY_CAP, WorkerConfig};
use crate::budget::Budget;
use crate::identity::{ProbeCert, ProbeIdentity};
use crate::limits::{self, Limits};
use crate::net::policy::AddressPolicy;
use crate::net::politeness::PolitenessConfig;
use crate::tls::EkuClass;
use crate::tls::cert::{CertError, analyze};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// This binary's version and source revision, e.g. `0.1.0 (v0.1.0-3-gabc123-dirty)`:
/// the crate version and `git describe --always --dirty --tags` at build
/// time (the crate version again when built outside a git checkout).
pub const SOFTWARE_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("XMPP_SURVEY_REVISION"),
    ")"
);

/// Why the configuration could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A probe certificate's leaf does not parse (it loaded, so this is
    /// only reachable with an identity built in code).
    #[error("probe identity {role} certificate: {source}")]
    ProbeCert {
        /// `server_only` or `client_and_server`.
        role: &'static str,
        /// The parser's error.
        source: CertError,
    },
    /// The identity has an empty chain.
    #[error("probe identity {0} certificate: empty chain")]
    EmptyChain(&'static str),
}

/// `crawls.config`: every setting that can change a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrawlConfig {
    /// Which addresses may be probed.
    pub address_policy: PolicyRecord,
    /// The operator's extra trust anchors (`--extra-ca`), in order.
    pub extra_ca: Vec<ExtraCaRecord>,
    /// The DNS server asked: `IP:PORT`, or `system`.
    pub resolver: String,
    /// Every timeout and cap of one probe.
    pub limits: LimitsRecord,
    /// Rates and concurrency towards targets.
    pub politeness: PolitenessRecord,
    /// How failing domains are retried.
    pub retries: RetriesRecord,
    /// How the crawling process works: concurrency, leases, write batches.
    pub worker: WorkerRecord,
    /// The acceptance probe's identity; `None` when it did not run.
    pub identity: Option<IdentityRecord>,
    /// The trust store ([`crate::tls::verify::roots_version`]).
    pub roots_version: String,
    /// The fd budget the creating process derived ([`Budget::derive`]):
    /// its concurrency is `worker.concurrency`; `None` when not derived.
    pub budget: Option<Budget>,
}

/// [`AddressPolicy`] as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolicyRecord {
    /// `--allow-private`: loopback and private addresses were probed.
    pub allow_private: bool,
}

/// One `--extra-ca` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtraCaRecord {
    /// The path as given.
    pub path: String,
    /// SHA-256 (hex) of each certificate's DER, in file order.
    pub sha256: Vec<String>,
}

/// [`Limits`] and the fixed caps of [`crate::limits`], as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitsRecord {
    /// TCP connect timeout.
    pub connect_timeout_ms: u64,
    /// Timeout of each stream phase.
    pub phase_timeout_ms: u64,
    /// Timeout of each DNS question.
    pub dns_timeout_ms: u64,
    /// Bytes a server may send in one phase.
    pub max_phase_bytes: u64,
    /// XML nesting depth below the stream.
    pub max_xml_depth: usize,
    /// [`limits::MAX_SRV_TARGETS`].
    pub max_srv_targets: usize,
    /// [`limits::MAX_ADDRS_PER_TARGET`].
    pub max_addrs_per_target: usize,
}

/// [`PolitenessConfig`] as recorded (`enabled: false` is `--no-limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PolitenessRecord {
    /// Whether any rate or concurrency limit applied.
    pub enabled: bool,
    /// Connections/s over all targets (`None`: unlimited).
    pub global_rate: Option<u32>,
    /// Connections/s to one target address.
    pub per_ip_rate: Option<u32>,
    /// Connections open at once to one target address.
    pub per_ip_concurrency: Option<usize>,
}

/// Retries of transiently failing domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetriesRecord {
    /// Attempts before a domain ends `not_tested`.
    pub max_attempts: u32,
    /// First retry delay (doubles each attempt).
    pub retry_base_ms: u64,
    /// Longest retry delay ([`RETRY_CAP`]).
    pub retry_cap_ms: u64,
}

/// [`WorkerConfig`] as recorded (without the worker's name, which is
/// per process, not per crawl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkerRecord {
    /// Probes in flight at once in the creating process.
    pub concurrency: usize,
    /// How long a lease lasts.
    pub lease_ms: u64,
    /// Results per write batch.
    pub write_batch: usize,
    /// Longest a result waits before being written.
    pub write_interval_ms: u64,
    /// Domains leased per round trip.
    pub lease_chunk: usize,
    /// Poll interval while the queue is momentarily empty.
    pub idle_poll_ms: u64,
    /// Batch writes in flight at once ([`super::WRITERS`]).
    pub writers: usize,
}

/// The acceptance probe's identity (never its dialback secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityRecord {
    /// The probe domain, sent as `from`.
    pub domain: String,
    /// The configured listen address of the dialback listener.
    pub listen: SocketAddr,
    /// Where it actually listened (differs with port 0).
    pub bound: Option<SocketAddr>,
    /// The certificates presented, server-only first.
    pub certificates: Vec<ProbeCertRecord>,
}

/// One certificate the acceptance probe presents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeCertRecord {
    /// `server_only` or `client_and_server`: the role it was loaded for.
    pub role: &'static str,
    /// The leaf's EKU class as analysed (the role's name is the
    /// operator's claim, this is the certificate's).
    pub eku_class: EkuClass,
    /// SHA-256 (hex) of the leaf's DER.
    pub sha256: String,
    /// Certificates in the chain.
    pub chain_len: usize,
}

/// What [`CrawlConfig::new`] records, as the CLI assembled it.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// The address policy.
    pub policy: AddressPolicy,
    /// Each `--extra-ca` file with the certificates it held.
    pub extra_ca: &'a [(PathBuf, Vec<CertificateDer<'static>>)],
    /// `--resolver` (`None`: the system resolver).
    pub resolver: Option<SocketAddr>,
    /// The probe's limits.
    pub limits: Limits,
    /// Politeness (`None`: `--no-limits`).
    pub politeness: Option<PolitenessConfig>,
    /// The worker.
    pub worker: &'a WorkerConfig,
    /// The acceptance probe's identity, if it runs.
    pub identity: Option<&'a ProbeIdentity>,
    /// Where its listener is bound, if it runs.
    pub bound: Option<SocketAddr>,
    /// The trust store's version.
    pub roots_version: String,
    /// The fd budget, when derived.
    pub budget: Option<Budget>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn probe_cert(role: &'static str, c: &ProbeCert) -> Result<ProbeCertRecord, ConfigError> {
    let leaf = c.chain.first().ok_or(ConfigError::EmptyChain(role))?;
    let info = analyze(leaf).map_err(|source| ConfigError::ProbeCert { role, source })?;
    Ok(ProbeCertRecord {
        role,
        eku_class: info.eku.class,
        sha256: info.sha256,
        chain_len: c.chain.len(),
    })
}

impl CrawlConfig {
    /// Records `s`; fails only if a probe certificate does not parse.
    pub fn new(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let Limits {
            connect_timeout,
            phase_timeout,
            max_phase_bytes,
            max_xml_depth,
            dns_timeout,
        } = s.limits;
        let WorkerConfig {
            worker_id: _,
            concurrency,
            lease_for,
            max_attempts,
            retry_base,
            write_batch,
            write_interval,
            lease_chunk,
            idle_poll,
        } = s.worker.clone();
        let politeness = match s.politeness {
            Some(PolitenessConfig {
                global_rate,
                per_ip_rate,
                per_ip_concurrency,
            }) => PolitenessRecord {
                enabled: true,
                global_rate: global_rate.map(|r| r.get()),
                per_ip_rate: per_ip_rate.map(|r| r.get()),
                per_ip_concurrency: per_ip_concurrency.map(|c| c.get()),
            },
            None => PolitenessRecord {
                enabled: false,
                global_rate: None,
                per_ip_rate: None,
                per_ip_concurrency: None,
            },
        };
        let identity = match s.identity {
            Some(id) => {
                let mut certificates = vec![probe_cert("server_only", &id.server_only)?];
                if let Some(cs) = &id.client_and_server {
                    certificates.push(probe_cert("client_and_server", cs)?);
                }
                Some(IdentityRecord {
                    domain: id.domain.clone(),
                    listen: id.listen,
                    bound: s.bound,
                    certificates,
                })
            }
            None => None,
        };
        Ok(Self {
            address_policy: PolicyRecord {
                allow_private: s.policy.allow_private,
            },
            extra_ca: s
                .extra_ca
                .iter()
                .map(|(path, certs)| ExtraCaRecord {
                    path: path.display().to_string(),
                    sha256: certs.iter().map(|c| sha256_hex(c)).collect(),
                })
                .collect(),
            resolver: s
                .resolver
                .map_or_else(|| "system".to_string(), |a| a.to_string()),
            limits: LimitsRecord {
                connect_timeout_ms: ms(connect_timeout),
                phase_timeout_ms: ms(phase_timeout),
                dns_timeout_ms: ms(dns_timeout),
                max_phase_bytes,
                max_xml_depth,
                max_srv_targets: limits::MAX_SRV_TARGETS,
                max_addrs_per_target: limits::MAX_ADDRS_PER_TARGET,
            },
            politeness,
            retries: RetriesRecord {
                max_attempts,
                retry_base_ms: ms(retry_base),
                retry_cap_ms: ms(RETRY_CAP),
            },
            worker: WorkerRecord {
                concurrency,
                lease_ms: ms(lease_for),
                write_batch,
                write_interval_ms: ms(write_interval),
                lease_chunk,
                idle_poll_ms: ms(idle_poll),
                writers: super::WRITERS,
            },
            identity,
            roots_version: s.roots_version.clone(),
            budget: s.budget,
        })
    }

    /// As JSON for `crawls.config`.
    pub fn to_json(&self) -> serde_json::Value {
        // Plain data: strings, numbers, booleans; serialising cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::{NonZeroU32, NonZeroUsize};

    fn cert(eku: &[rcgen::ExtendedKeyUsagePurpose]) -> ProbeCert {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["probe.example".to_string()]).expect("params");
        params.extended_key_usages = eku.to_vec();
        let c = params.self_signed(&key).expect("cert");
        ProbeCert::new(
            vec![c.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            "test",
        )
        .expect("pair")
    }

    #[test]
    fn records_every_setting_and_the_identity_fingerprints() {
        crate::install_crypto_provider();
        use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let so = cert(&[ServerAuth]);
        let cs = cert(&[ServerAuth, ClientAuth]);
        let so_sha = sha256_hex(&so.chain[0]);
        let id = ProbeIdentity {
            domain: "probe.example".into(),
            server_only: so,
            client_and_server: Some(cs),
            listen: "127.0.0.1:0".parse().unwrap(),
            dialback_secret: b"never recorded".to_vec(),
            shared_secret: false,
        };
        let ca = id.server_only.chain.clone();
        let worker = WorkerConfig {
            concurrency: 7,
            write_batch: 9,
            max_attempts: 4,
            retry_base: Duration::from_millis(250),
            ..WorkerConfig::default()
        };
        let extra = vec![(PathBuf::from("/etc/ca.pem"), ca)];
        let c = CrawlConfig::new(&Settings {
            policy: AddressPolicy::ALLOW_PRIVATE,
            extra_ca: &extra,
            resolver: Some("127.0.0.1:5300".parse().unwrap()),
            limits: Limits {
                phase_timeout: Duration::from_millis(2500),
                ..Limits::default()
            },
            politeness: Some(PolitenessConfig {
                global_rate: None,
                per_ip_rate: NonZeroU32::new(10),
                per_ip_concurrency: NonZeroUsize::new(4),
            }),
            worker: &worker,
            identity: Some(&id),
            bound: Some("127.0.0.1:40000".parse().unwrap()),
            roots_version: "webpki-roots test".into(),
            budget: Some(Budget::derive(1024, 256, true, 8).expect("budget")),
        })
        .expect("config");
        let j = c.to_json();
        assert_eq!(j["address_policy"]["allow_private"], true);
        assert_eq!(j["resolver"], "127.0.0.1:5300");
        assert_eq!(j["extra_ca"][0]["path"], "/etc/ca.pem");
        assert_eq!(j["extra_ca"][0]["sha256"][0], so_sha.as_str());
        assert_eq!(j["limits"]["phase_timeout_ms"], 2500);
        assert_eq!(j["limits"]["connect_timeout_ms"], 5000);
        assert_eq!(j["limits"]["dns_timeout_ms"], 5000);
        assert_eq!(j["limits"]["max_phase_bytes"], limits::MAX_PHASE_BYTES);
        assert_eq!(j["limits"]["max_srv_targets"], limits::MAX_SRV_TARGETS);
        assert_eq!(j["politeness"]["enabled"], true);
        assert_eq!(j["politeness"]["per_ip_rate"], 10);
        assert!(j["politeness"]["global_rate"].is_null());
        assert_eq!(j["retries"]["max_attempts"], 4);
        assert_eq!(j["retries"]["retry_base_ms"], 250);
        assert_eq!(j["worker"]["concurrency"], 7);
        assert_eq!(j["worker"]["write_batch"], 9);
        assert_eq!(j["identity"]["domain"], "probe.example");
        assert_eq!(j["identity"]["listen"], "127.0.0.1:0");
        assert_eq!(j["identity"]["bound"], "127.0.0.1:40000");
        let certs = j["identity"]["certificates"].as_array().expect("certs");
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0]["role"], "server_only");
        assert_eq!(certs[0]["eku_class"], "server_only");
        assert_eq!(certs[0]["sha256"], so_sha.as_str());
        assert_eq!(certs[1]["eku_class"], "client_and_server");
        assert_eq!(j["roots_version"], "webpki-roots test");
        assert_eq!(j["budget"]["nofile"], 1024);
        assert_eq!(j["budget"]["requested_concurrency"], 256);
        assert!(j["budget"]["listener_streams"].as_u64().is_some());
        assert!(
            !j.to_string().contains("never recorded"),
            "the dialback secret is not recorded"
        );
        assert!(!j.to_string().contains(&worker.worker_id));
    }

    #[test]
    fn no_limits_system_resolver_and_no_identity() {
        let c = CrawlConfig::new(&Settings {
            policy: AddressPolicy::STRICT,
            extra_ca: &[],
            resolver: None,
            limits: Limits::default(),
            politeness: None,
            worker: &WorkerConfig::default(),
            identity: None,
            bound: None,
            roots_version: "r".into(),
            budget: None,
        })
        .expect("config");
        let j = c.to_json();
        assert_eq!(j["resolver"], "system");
        assert_eq!(j["address_policy"]["allow_private"], false);
        assert_eq!(j["politeness"]["enabled"], false);
        assert!(j["identity"].is_null());
        assert_eq!(j["extra_ca"], serde_json::json!([]));
    }

    #[test]
    fn software_version_carries_a_revision() {
        let v = SOFTWARE_VERSION;
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        assert!(v.ends_with(')') && v.contains(" ("), "{v}");
        assert!(v.len() > env!("CARGO_PKG_VERSION").len() + 3, "{v}");
    }
}
