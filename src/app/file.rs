//! The configuration file (`--config FILE`, TOML): everything the flags of
//! `crawl`, `worker`, `report` and `survey` hold, one section per flag
//! group (docs/operating.md lists every key):
//!
//! ```toml
//! [database]   # url
//! [sources]    # list, fallback, opt_out
//! [net]        # resolver, extra_ca, allow_private, *_timeout
//! [identity]   # the probe identity (docs/probe-identity.md)
//! [work]       # concurrency, rate, per_ip_rate, per_ip_concurrency, no_limits,
//!              # lease, max_attempts, retry_base, worker_id, write_batch, crawl
//! [report]     # out_dir, seeds
//! [survey]     # vantage
//! [retention]  # keep_raw_weeks
//! ```
//!
//! Every table and every key is optional; unknown keys and wrong types are
//! errors naming the key (with line and column). Relative paths are
//! relative to the file's folder. Flags override the file: each flag group
//! fills the same section type ([`NetSection`], [`WorkSection`]) and
//! [`NetSection::merge`] keeps the flag where both are set; the library's
//! defaults apply last ([`NetSection::resolve`], [`WorkSection::resolve`]).

use super::config::{FlagDuration, NetConfig, WorkConfig, default_politeness};
use crate::crawl::WorkerConfig;
use crate::identity::IdentityConfig;
use crate::limits::Limits;
use crate::net::policy::AddressPolicy;
use crate::net::politeness::PolitenessConfig;
use crate::sources::{ProvidersLocation, SourceSpec};
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};

/// The live XMPP Providers list with every provider's `serverTesting`
/// consent: the survey's default source.
pub const PROVIDERS_URL: &str = "https://data.xmpp.net/providers/v2/providers-D.json";

/// `[sources] list` when the file has none: the live providers list and
/// every domain the database already knows.
pub const DEFAULT_SOURCES: [&str; 2] = [
    "providers:https://data.xmpp.net/providers/v2/providers-D.json",
    "db",
];

/// The XMPP Providers snapshot shipped in `seeds/xmpp-providers/`
/// (CC0; provenance in its README), built in: the fallback of a providers
/// URL that cannot be fetched when `[sources] fallback` is not set.
pub const BUILT_IN_PROVIDERS: &[u8] = include_bytes!("../../seeds/xmpp-providers/providers.json");

/// The name the built-in snapshot goes by in messages.
pub const BUILT_IN_PROVIDERS_LABEL: &str = "built-in seeds/xmpp-providers/providers.json";

/// Where `report` and `survey` write reports when neither `--out` nor
/// `[report] out_dir` says: `reports/<label>/` in the working directory.
pub const DEFAULT_REPORTS_DIR: &str = "reports";

/// The vantage recorded with a crawl when none is configured.
pub const DEFAULT_VANTAGE: &str = "default";

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or a wrong type: toml's message names the
    /// key and shows its line and column.
    #[error("config {}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A `[sources] list` entry is not a source.
    #[error("config {}: sources.list[{index}]: {source}", path.display())]
    Source {
        /// The file.
        path: PathBuf,
        /// Position in the list.
        index: usize,
        /// Why.
        #[source]
        source: crate::sources::SourceError,
    },
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[database]`.
    #[serde(default)]
    pub database: DatabaseSection,
    /// `[sources]`.
    #[serde(default)]
    pub sources: SourcesSection,
    /// `[net]`.
    #[serde(default)]
    pub net: NetSection,
    /// `[identity]`: the probe identity (docs/probe-identity.md).
    #[serde(default)]
    pub identity: IdentityConfig,
    /// `[work]`.
    #[serde(default)]
    pub work: WorkSection,
    /// `[report]`.
    #[serde(default)]
    pub report: ReportSection,
    /// `[survey]`.
    #[serde(default)]
    pub survey: SurveySection,
    /// `[retention]`.
    #[serde(default)]
    pub retention: RetentionSection,
}

/// `[database]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// PostgreSQL URL (`--database-url`, `DATABASE_URL` override it).
    pub url: Option<String>,
}

/// `[sources]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesSection {
    /// Domain sources in `--source` syntax (default [`DEFAULT_SOURCES`]).
    pub list: Option<Vec<String>>,
    /// Providers-list file used when a providers URL cannot be fetched
    /// (default: the built-in snapshot, [`BUILT_IN_PROVIDERS`]).
    pub fallback: Option<PathBuf>,
    /// Opt-out files (`--opt-out`), added to the database's list.
    pub opt_out: Option<Vec<PathBuf>>,
}

/// `[net]`: how to reach targets ([`NetConfig`] without the identity).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSection {
    /// DNS server (IP:PORT); default the system resolver.
    pub resolver: Option<SocketAddr>,
    /// Extra trust anchors (PEM files).
    pub extra_ca: Option<Vec<PathBuf>>,
    /// Probe loopback and private addresses too (testnet, labs).
    pub allow_private: Option<bool>,
    /// TCP connect timeout (`"5s"`, `"500ms"`).
    pub connect_timeout: Option<FlagDuration>,
    /// Timeout of each stream phase.
    pub phase_timeout: Option<FlagDuration>,
    /// Timeout of each DNS question.
    pub dns_timeout: Option<FlagDuration>,
}

/// `[work]`: how a worker works ([`WorkConfig`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkSection {
    /// Probes in flight at once in this process.
    pub concurrency: Option<usize>,
    /// Global connection rate (connections/s).
    pub rate: Option<NonZeroU32>,
    /// Connections/s to any one target address.
    pub per_ip_rate: Option<NonZeroU32>,
    /// Simultaneous connections to any one target address.
    pub per_ip_concurrency: Option<NonZeroUsize>,
    /// No rate or concurrency limits at all (testnet benchmarks only).
    pub no_limits: Option<bool>,
    /// Lease duration.
    pub lease: Option<FlagDuration>,
    /// Attempts before a transiently failing domain ends `not_tested`.
    pub max_attempts: Option<u32>,
    /// First retry delay.
    pub retry_base: Option<FlagDuration>,
    /// This worker's name in leases (default host:pid).
    pub worker_id: Option<String>,
    /// Results per write transaction.
    pub write_batch: Option<usize>,
    /// `worker`: the crawl to join, a label or `auto` (this ISO week's).
    pub crawl: Option<String>,
}

/// `[report]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// Reports go to `<out_dir>/<label>/` (default [`DEFAULT_REPORTS_DIR`]).
    pub out_dir: Option<PathBuf>,
    /// CA cut-over dates file (default the built-in seeds/ca-cutover.toml).
    pub seeds: Option<PathBuf>,
}

/// `[survey]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveySection {
    /// Where the crawls run from (recorded with each crawl).
    pub vantage: Option<String>,
}

/// `[retention]`: how long raw evidence is kept (`db prune`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Weeks of raw JSONB evidence to keep (`db prune --keep-raw`
    /// overrides it); when set, `survey` prunes after its report. Unset:
    /// nothing is pruned unless `db prune --keep-raw` says so.
    pub keep_raw_weeks: Option<u32>,
}

fn rebase(base: &Path, p: &mut PathBuf) {
    if p.is_relative() && p.as_os_str() != "-" {
        *p = base.join(&*p);
    }
}

/// A source argument with its file made relative to `base` (URLs and `db`
/// unchanged).
pub fn rebase_source(base: &Path, spec: SourceSpec) -> SourceSpec {
    match spec {
        SourceSpec::Text(mut p) => {
            rebase(base, &mut p);
            SourceSpec::Text(p)
        }
        SourceSpec::Csv { mut path, column } => {
            rebase(base, &mut path);
            SourceSpec::Csv { path, column }
        }
        SourceSpec::Providers(ProvidersLocation::File(mut p)) => {
            rebase(base, &mut p);
            SourceSpec::Providers(ProvidersLocation::File(p))
        }
        other => other,
    }
}

impl ConfigFile {
    /// Reads and parses a config file; relative paths inside it (sources,
    /// fallback, opt-outs, CAs, identity files, report folder and seeds)
    /// are made relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// [`ConfigFile::load`] of text already read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigFileError> {
        let mut cfg: Self = toml::from_str(text).map_err(|e| ConfigFileError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        if let Some(list) = cfg.sources.list.as_mut() {
            for (index, s) in list.iter_mut().enumerate() {
                let spec = s
                    .parse::<SourceSpec>()
                    .map_err(|source| ConfigFileError::Source {
                        path: path.to_path_buf(),
                        index,
                        source,
                    })?;
                *s = rebase_source(base, spec).to_string();
            }
        }
        let id = &mut cfg.identity;
        for p in [
            &mut cfg.sources.fallback,
            &mut cfg.report.out_dir,
            &mut cfg.report.seeds,
            &mut id.server_only_cert,
            &mut id.server_only_key,
            &mut id.client_and_server_cert,
            &mut id.client_and_server_key,
            &mut id.dialback_secret_file,
        ]
        .into_iter()
        .flatten()
        {
            rebase(base, p);
        }
        for p in [&mut cfg.sources.opt_out, &mut cfg.net.extra_ca]
            .into_iter()
            .flatten()
            .flatten()
        {
            rebase(base, p);
        }
        Ok(cfg)
    }

    /// The file at `path`, or an empty one (every default) when `None`.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigFileError> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
    }

    /// The sources to crawl: `[sources] list` or [`DEFAULT_SOURCES`].
    pub fn source_list(&self) -> Vec<String> {
        self.sources
            .list
            .clone()
            .unwrap_or_else(|| DEFAULT_SOURCES.iter().map(ToString::to_string).collect())
    }
}

impl NetSection {
    /// Fields set in `over` win (flags over the file).
    pub fn merge(self, over: Self) -> Self {
        Self {
            resolver: over.resolver.or(self.resolver),
            extra_ca: over.extra_ca.or(self.extra_ca),
            allow_private: over.allow_private.or(self.allow_private),
            connect_timeout: over.connect_timeout.or(self.connect_timeout),
            phase_timeout: over.phase_timeout.or(self.phase_timeout),
            dns_timeout: over.dns_timeout.or(self.dns_timeout),
        }
    }

    /// With the library's defaults ([`Limits::default`], the strict
    /// address policy) where nothing was set.
    pub fn resolve(self, identity: IdentityConfig) -> NetConfig {
        let d = Limits::default();
        NetConfig {
            resolver: self.resolver,
            extra_ca: self.extra_ca.unwrap_or_default(),
            policy: if self.allow_private.unwrap_or(false) {
                AddressPolicy::ALLOW_PRIVATE
            } else {
                AddressPolicy::STRICT
            },
            limits: Limits {
                connect_timeout: self.connect_timeout.map_or(d.connect_timeout, Into::into),
                phase_timeout: self.phase_timeout.map_or(d.phase_timeout, Into::into),
                dns_timeout: self.dns_timeout.map_or(d.dns_timeout, Into::into),
                ..d
            },
            config_file: None,
            identity,
        }
    }
}

impl WorkSection {
    /// Fields set in `over` win (flags over the file).
    pub fn merge(self, over: Self) -> Self {
        Self {
            concurrency: over.concurrency.or(self.concurrency),
            rate: over.rate.or(self.rate),
            per_ip_rate: over.per_ip_rate.or(self.per_ip_rate),
            per_ip_concurrency: over.per_ip_concurrency.or(self.per_ip_concurrency),
            no_limits: over.no_limits.or(self.no_limits),
            lease: over.lease.or(self.lease),
            max_attempts: over.max_attempts.or(self.max_attempts),
            retry_base: over.retry_base.or(self.retry_base),
            worker_id: over.worker_id.or(self.worker_id),
            write_batch: over.write_batch.or(self.write_batch),
            crawl: over.crawl.or(self.crawl),
        }
    }

    /// With the library's defaults ([`WorkerConfig::default`],
    /// [`default_politeness`]) where nothing was set.
    pub fn resolve(self) -> WorkConfig {
        let p = default_politeness();
        let politeness = (!self.no_limits.unwrap_or(false)).then_some(PolitenessConfig {
            global_rate: self.rate.or(p.global_rate),
            per_ip_rate: self.per_ip_rate.or(p.per_ip_rate),
            per_ip_concurrency: self.per_ip_concurrency.or(p.per_ip_concurrency),
        });
        let d = WorkerConfig::default();
        WorkConfig::new(
            politeness,
            WorkerConfig {
                worker_id: self.worker_id.unwrap_or(d.worker_id.clone()),
                concurrency: self.concurrency.unwrap_or(d.concurrency),
                lease_for: self.lease.map_or(d.lease_for, Into::into),
                max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
                retry_base: self.retry_base.map_or(d.retry_base, Into::into),
                write_batch: self.write_batch.unwrap_or(d.write_batch),
                ..d
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tmp(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xs-file-{}-{name}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn every_section_parses_and_paths_follow_the_file() {
        let f = tmp(
            "full",
            r#"
[database]
url = "postgres://survey@localhost/survey"
[sources]
list = ["providers:https://example.org/p.json", "text:domains.txt", "db"]
fallback = "providers.json"
opt_out = ["/etc/xmpp-survey/opt-out.txt"]
[net]
resolver = "127.0.0.1:53"
extra_ca = ["ca.pem"]
allow_private = true
connect_timeout = "2s"
phase_timeout = "500ms"
[identity]
domain = "probe.example"
server_only_cert = "so.pem"
[work]
concurrency = 10
per_ip_rate = 3
lease = "60s"
[report]
out_dir = "out"
[survey]
vantage = "lab"
"#,
        );
        let dir = f.parent().unwrap();
        let c = ConfigFile::load(&f).unwrap();
        assert_eq!(
            c.source_list(),
            vec![
                "providers:https://example.org/p.json".to_string(),
                format!("text:{}", dir.join("domains.txt").display()),
                "db".to_string()
            ]
        );
        assert_eq!(c.sources.fallback, Some(dir.join("providers.json")));
        assert_eq!(
            c.sources.opt_out,
            Some(vec![PathBuf::from("/etc/xmpp-survey/opt-out.txt")])
        );
        assert_eq!(c.identity.server_only_cert, Some(dir.join("so.pem")));
        assert_eq!(c.report.out_dir, Some(dir.join("out")));
        let net = c.net.clone().resolve(c.identity.clone());
        assert_eq!(net.extra_ca, vec![dir.join("ca.pem")]);
        assert_eq!(net.policy, AddressPolicy::ALLOW_PRIVATE);
        assert_eq!(net.limits.connect_timeout, Duration::from_secs(2));
        assert_eq!(net.limits.phase_timeout, Duration::from_millis(500));
        assert_eq!(net.limits.dns_timeout, Limits::default().dns_timeout);
        let w = c.work.clone().resolve();
        assert_eq!(w.worker.concurrency, 10);
        assert_eq!(w.worker.lease_for, Duration::from_secs(60));
        assert_eq!(w.worker.max_attempts, WorkerConfig::default().max_attempts);
        assert_eq!(
            w.politeness.unwrap().per_ip_rate,
            Some(NonZeroU32::new(3).unwrap())
        );
        assert_eq!(c.survey.vantage.as_deref(), Some("lab"));
    }

    #[test]
    fn flags_override_the_file_and_defaults_come_last() {
        let file = WorkSection {
            concurrency: Some(10),
            max_attempts: Some(5),
            ..Default::default()
        };
        let flags = WorkSection {
            concurrency: Some(3),
            ..Default::default()
        };
        let w = file.merge(flags).resolve();
        assert_eq!(w.worker.concurrency, 3);
        assert_eq!(w.worker.max_attempts, 5);
        assert_eq!(w.politeness, Some(default_politeness()));
        let w = WorkSection {
            no_limits: Some(true),
            ..Default::default()
        }
        .resolve();
        assert_eq!(w.politeness, None);
        let empty = ConfigFile::default();
        assert_eq!(empty.source_list(), DEFAULT_SOURCES.to_vec());
        assert_eq!(
            empty.net.resolve(IdentityConfig::default()),
            NetConfig::default()
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key_and_line() {
        for (body, key, line) in [
            ("[work]\nconcurency = 4\n", "concurency", "line 2"),
            ("[work]\nconcurrency = \"lots\"\n", "concurrency", "line 2"),
            (
                "[net]\n\nconnect_timeout = \"soon\"\n",
                "connect_timeout",
                "line 3",
            ),
            ("[databse]\nurl = \"x\"\n", "databse", "line 1"),
            ("[identity]\ndomian = \"p.example\"\n", "domian", "line 2"),
        ] {
            let f = tmp("bad", body);
            let e = ConfigFile::load(&f).unwrap_err().to_string();
            assert!(e.contains("config.toml"), "{e}");
            assert!(e.contains(key) && e.contains(line), "{body}: {e}");
        }
        let f = tmp("src", "[sources]\nlist = [\"db\", \"nonsense\"]\n");
        let e = ConfigFile::load(&f).unwrap_err().to_string();
        assert!(
            e.contains("sources.list[1]") && e.contains("nonsense"),
            "{e}"
        );
        let e = ConfigFile::load(Path::new("/nonexistent/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/c.toml"), "{e}");
    }

    /// docs/operating.md's example, every commented key uncommented:
    /// each key it documents exists with the type it shows.
    #[test]
    fn the_documented_example_parses_with_every_key() {
        let doc = include_str!("../../docs/operating.md");
        let start = doc.find("# /etc/xmpp-survey/config.toml").expect("example");
        let body = &doc[start..];
        let body = &body[..body.find("```").expect("end of example")];
        let mut keys = 0;
        let text: String = body
            .lines()
            .map(|l| {
                let k = l.strip_prefix("# ").unwrap_or(l);
                let is_key = k.split_once(" = ").is_some_and(|(name, _)| {
                    name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
                if is_key {
                    keys += 1;
                    format!("{k}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let c = ConfigFile::parse(&text, Path::new("/etc/xmpp-survey/config.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(keys >= 30, "{keys} keys in the example");
        assert!(c.work.concurrency.is_some() && c.survey.vantage.is_some());
        assert!(c.identity.client_and_server_key.is_some() && c.report.seeds.is_some());
        assert!(c.retention.keep_raw_weeks.is_some());
    }

    /// The Debian package's conffile parses, and says what it should.
    #[test]
    fn the_debian_config_file_parses() {
        let text = include_str!("../../scripts/debian/config.toml");
        let c = ConfigFile::parse(text, Path::new("/etc/xmpp-survey/config.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.retention.keep_raw_weeks, Some(26));
        assert_eq!(
            c.report.out_dir.as_deref(),
            Some(Path::new("/var/lib/xmpp-survey/reports"))
        );
        assert!(c.database.url.is_some());
    }

    #[test]
    fn the_built_in_snapshot_is_a_providers_list() {
        let l = crate::sources::parse_providers_bytes(BUILT_IN_PROVIDERS, BUILT_IN_PROVIDERS_LABEL)
            .unwrap();
        assert_eq!(l.domains.len(), 26);
    }
}
