//! One validated configuration per run. The CLI's flag groups each map
//! into one struct here ([`NetConfig`], [`WorkConfig`]); their defaults are
//! the library's own ([`Limits::default`], [`WorkerConfig::default`],
//! [`default_politeness`]), never restated by the CLI.

use crate::crawl::WorkerConfig;
use crate::identity::IdentityConfig;
use crate::limits::{self, Limits};
use crate::net::policy::AddressPolicy;
use crate::net::politeness::PolitenessConfig;
use crate::store::DEFAULT_MAX_CONNECTIONS;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How to reach targets and who we are (`probe`, `crawl`, `worker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// DNS server to ask; `None`: the system resolver.
    pub resolver: Option<SocketAddr>,
    /// Extra trust anchors (PEM files), in order.
    pub extra_ca: Vec<PathBuf>,
    /// Which addresses may be probed.
    pub policy: AddressPolicy,
    /// Timeouts and caps of one probe.
    pub limits: Limits,
    /// Config file (TOML) with the acceptance probe's `[identity]`.
    pub config_file: Option<PathBuf>,
    /// Identity settings given directly; they override the file's.
    pub identity: IdentityConfig,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            extra_ca: Vec::new(),
            policy: AddressPolicy::STRICT,
            limits: Limits::default(),
            config_file: None,
            identity: IdentityConfig::default(),
        }
    }
}

/// Politeness unless told otherwise: no global rate,
/// [`limits::DEFAULT_PER_IP_RATE`] and [`limits::DEFAULT_PER_IP_CONCURRENCY`]
/// per target address.
pub fn default_politeness() -> PolitenessConfig {
    PolitenessConfig {
        global_rate: None,
        per_ip_rate: Some(limits::DEFAULT_PER_IP_RATE),
        per_ip_concurrency: Some(limits::DEFAULT_PER_IP_CONCURRENCY),
    }
}

/// How a worker works (`crawl`, `worker`).
#[derive(Debug, Clone)]
pub struct WorkConfig {
    /// Rates and concurrency towards targets; `None`: no limits at all.
    pub politeness: Option<PolitenessConfig>,
    /// The worker; its `concurrency` is the one requested (the fd budget
    /// may lower it, see [`WorkConfig::worker_for`]).
    pub worker: WorkerConfig,
}

impl Default for WorkConfig {
    fn default() -> Self {
        Self {
            politeness: Some(default_politeness()),
            worker: WorkerConfig::default(),
        }
    }
}

impl WorkConfig {
    /// Validates: at least one attempt and one result per batch.
    pub fn new(politeness: Option<PolitenessConfig>, worker: WorkerConfig) -> Self {
        Self {
            politeness,
            worker: WorkerConfig {
                max_attempts: worker.max_attempts.max(1),
                write_batch: worker.write_batch.max(1),
                ..worker
            },
        }
    }

    /// The worker as it runs: with the budget's concurrency.
    pub fn worker_for(&self, budget: &crate::budget::Budget) -> WorkerConfig {
        WorkerConfig {
            concurrency: budget.concurrency.max(1),
            ..self.worker.clone()
        }
    }
}

/// Everything [`super::setup()`] builds a run from.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Targets, trust, identity, limits.
    pub net: NetConfig,
    /// Politeness of the probes (`None`: none).
    pub politeness: Option<PolitenessConfig>,
    /// Domains probed at once, as requested (the fd budget may lower it).
    pub concurrency: usize,
    /// Database connections the process holds (for the fd budget).
    pub db_pool: u32,
}

impl RunConfig {
    /// `probe`: no politeness gate, no database.
    pub fn probe(net: NetConfig, concurrency: usize) -> Self {
        Self {
            net,
            politeness: None,
            concurrency,
            db_pool: 0,
        }
    }

    /// `crawl` and `worker`: the work's politeness and concurrency, the
    /// store's pool.
    pub fn crawl(net: NetConfig, work: &WorkConfig) -> Self {
        Self {
            net,
            politeness: work.politeness,
            concurrency: work.worker.concurrency,
            db_pool: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Parses `5`, `2.5`, `5s` or `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 0.001)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 5, 2.5s or 500ms)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// A duration as flags take and show it (`5s`, `500ms`, `2.5s`): the type
/// of duration flags, so that their defaults are the library's
/// [`Duration`]s, shown in `--help` as written.
/// In the config file it is a string in the same syntax (`"5s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct FlagDuration(pub Duration);

impl TryFrom<String> for FlagDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for FlagDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Self)
    }
}

impl fmt::Display for FlagDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}s", d.as_secs_f64())
        }
    }
}

impl From<FlagDuration> for Duration {
    fn from(d: FlagDuration) -> Self {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_show_as_written() {
        for (s, d) in [
            ("5", Duration::from_secs(5)),
            ("5s", Duration::from_secs(5)),
            ("2.5s", Duration::from_millis(2500)),
            ("500ms", Duration::from_millis(500)),
        ] {
            assert_eq!(parse_duration(s), Ok(d), "{s}");
        }
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        for s in ["300s", "500ms", "5s"] {
            assert_eq!(s.parse::<FlagDuration>().expect(s).to_string(), s);
        }
        // Round trip of a default: what --help shows parses back to it.
        let d = FlagDuration(Duration::from_millis(2500));
        assert_eq!(d.to_string().parse::<FlagDuration>(), Ok(d));
    }

    #[test]
    fn work_config_keeps_at_least_one_attempt_and_one_result_per_batch() {
        let w = WorkConfig::new(
            None,
            WorkerConfig {
                max_attempts: 0,
                write_batch: 0,
                ..WorkerConfig::default()
            },
        );
        assert_eq!(w.worker.max_attempts, 1);
        assert_eq!(w.worker.write_batch, 1);
    }
}
