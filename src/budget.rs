//! The process's resource budget (issue "No one outside can change a
//! verdict or stop a crawl"): how many file descriptors the crawler may
//! hold, and what it can do with them.
//!
//! Running out of descriptors is *our* failure, never the target's: a
//! connect that fails with `EMFILE` says nothing about the server. Two
//! defences, in this order:
//! 1. at start, [`raise_nofile`] lifts the soft `RLIMIT_NOFILE` to the hard
//!    limit and [`Budget::derive`] sizes the crawl's concurrency, the
//!    dialback listener's streams and its outbound verifications to fit;
//!    a limit too small for a minimal crawl refuses to start;
//! 2. whatever still runs out (a domain with many more endpoints than the
//!    budget's typical one, other processes filling the system table) is
//!    recognised by [`local_exhaustion`] and reported as
//!    `local_resource_exhausted`, which the crawl retries and, when the
//!    retries run out, ends `not_tested` with the reason.
//!
//! The fd cost of one in-flight domain, and why (the phases of one probe
//! run one after the other, so a domain holds the largest phase's
//! descriptors, not their sum):
//! - DNS discovery ([`DNS_FDS`]): hickory opens one UDP socket per
//!   question (a random source port each time). The four SRV questions run
//!   concurrently; then A and AAAA of every target, one TLSA question per
//!   endpoint name and the DNSSEC question run concurrently: for the usual
//!   domain (one target, c2s and s2s) 2 + 3 + 1 = 6, for two targets 8.
//! - Endpoints ([`ENDPOINT_FDS`]): every planned endpoint is probed at the
//!   same time: c2s and s2s, STARTTLS and direct TLS, an IPv4 and an IPv6
//!   address ([`crate::limits::MAX_ADDRS_PER_TARGET`]) = 8 for a domain
//!   publishing all four services on one dual-stack host. The cap is 32
//!   ([`crate::limits::MAX_SRV_TARGETS`] targets per service); such domains
//!   are rare, and when many of them coincide, defence 2 applies.
//! - Acceptance attempts: one connection at a time (the attempts and the
//!   dialback attempt run in sequence, after the passive endpoints closed):
//!   within the endpoint phase's 8.
//! - The listener's streams: a probed target connects back to the
//!   dialback listener (its `db:verify`, its own s2s stream towards the
//!   probe domain), and those streams outlive the domain's probe (a server
//!   keeps an s2s link open; the listener closes it after
//!   [`crate::listener::IDLE_TIMEOUT`], 20 s, several probes' time):
//!   [`LISTENER_STREAMS_PER_DOMAIN`] per in-flight domain, each costing
//!   [`FDS_PER_LISTENER_STREAM`] (the stream, and the at most one outbound
//!   verification connection it can make us open). The listener gets
//!   every descriptor the domains leave, up to
//!   [`crate::listener::MAX_STREAMS`]. Measured on the testnet's
//!   acceptance profiles under `ulimit -n 256`: with 2 per domain the cap
//!   was hit (57 refusals, dialback verdicts wrong); a crawl also retries
//!   every domain during whose probe the listener refused a connection
//!   ([`crate::crawl::run_worker_watched`]).
//! - Fixed costs: the database pool (one socket per connection) and
//!   [`RESERVE_FDS`].

use serde::Serialize;

/// The dialback listener's stream slots when the fd budget allows them all
/// (`crate::listener::MAX_STREAMS` is this). Each costs a task, a TLS
/// session (tens of KiB) and at most one outbound verification
/// connection. Targets keep their link to us open after delivering
/// replies, so a crawl holds roughly (targets probed per second × the
/// listener's idle timeout) links: 2048 covers 100 acceptance probes per
/// second while bounding what a flood of connections can take. (256 was
/// measured to stall a 300-domain crawl: later targets could not call back
/// for dialback.) Defined here, not in the listener, so the budget (used by
/// DNS and the prober too) depends on nothing above it.
pub const MAX_LISTENER_STREAMS: usize = 2048;
use std::fmt;
use std::io;

/// Descriptors held outside the per-domain costs: stdin/out/err, the
/// runtime's epoll, eventfd and signal pipe, the listener's own socket,
/// the CA and identity files while loading, `/proc/self/fd` while
/// sampling, the resolver's TCP fallback for truncated answers, the
/// source loader's HTTP client, and headroom for a late library socket.
pub const RESERVE_FDS: u64 = 64;

/// DNS sockets of one in-flight domain at its peak (see the module doc).
pub const DNS_FDS: u64 = 8;

/// Connections of one in-flight domain's endpoint phase (see the module
/// doc): four services on one dual-stack host.
pub const ENDPOINT_FDS: u64 = 8;

/// Descriptors of one in-flight domain, passive probe: its largest phase.
pub const DOMAIN_FDS: u64 = if DNS_FDS > ENDPOINT_FDS {
    DNS_FDS
} else {
    ENDPOINT_FDS
};

/// Listener streams one in-flight domain accounts for while the
/// acceptance probe runs: the target's `db:verify` connection and its own
/// s2s stream towards the probe domain (2), held up to the listener's idle
/// timeout after the probe ended, about four probes' time (× 4).
pub const LISTENER_STREAMS_PER_DOMAIN: u64 = 8;

/// Descriptors of one listener stream: its socket and the at most one
/// outbound verification connection it makes us open (XEP-0220 §2.3).
pub const FDS_PER_LISTENER_STREAM: u64 = 2;

/// The listener's floor: streams of strangers (refused after their
/// header, but holding a slot until then) must not starve the targets'.
pub const MIN_LISTENER_STREAMS: u64 = 16;

/// Fewer domains in flight than this is not a crawl worth starting.
pub const MIN_CONCURRENCY: usize = 1;

/// Why no crawl can run within the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The open-file limit cannot hold a minimal crawl.
    #[error(
        "the open-file limit (RLIMIT_NOFILE) is {nofile}, too low for even {MIN_CONCURRENCY} domain(s) in flight{with}: at least {needed} are needed. Raise it (`ulimit -n {needed}` or more in the shell; the hard limit is raised by root: /etc/security/limits.conf, or LimitNOFILE= in a systemd unit)",
        with = if *.acceptance { " with the acceptance probe's listener" } else { "" }
    )]
    TooLow {
        /// The soft limit in force.
        nofile: u64,
        /// The smallest limit that holds a minimal crawl.
        needed: u64,
        /// Whether the acceptance probe (and its listener) was on.
        acceptance: bool,
    },
    /// The limit could not be read or set.
    #[error("cannot read or raise the open-file limit (RLIMIT_NOFILE): {0}")]
    Rlimit(String),
}

/// The open-file limit before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Nofile {
    /// The soft limit the process started with.
    pub soft_before: u64,
    /// The soft limit now in force (the hard limit when raising worked).
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the shell's usual
/// soft 1,024 is far below what a crawl can use; the hard limit is the
/// administrator's real bound) and returns both.
pub fn raise_nofile() -> Result<Nofile, BudgetError> {
    let (soft_before, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map_err(|e| BudgetError::Rlimit(e.to_string()))?;
    if soft_before >= hard {
        return Ok(Nofile {
            soft_before,
            soft: soft_before,
            hard,
        });
    }
    let soft =
        rlimit::increase_nofile_limit(hard).map_err(|e| BudgetError::Rlimit(e.to_string()))?;
    Ok(Nofile {
        soft_before,
        soft,
        hard,
    })
}

/// What the budget allows; recorded in `crawls.config` as `budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// The open-file limit the budget was derived from.
    pub nofile: u64,
    /// Domains in flight asked for (`--concurrency`).
    pub requested_concurrency: usize,
    /// Domains in flight allowed.
    pub concurrency: usize,
    /// Descriptors counted per in-flight domain (passive probe, plus the
    /// listener streams it can cause when the acceptance probe runs).
    pub fds_per_domain: u64,
    /// The listener's `max_streams` (`None`: no acceptance probe).
    pub listener_streams: Option<usize>,
    /// Outbound verification connections the listener may hold (one per
    /// stream at most; `None`: no acceptance probe).
    pub verification_capacity: Option<usize>,
    /// Database connections counted.
    pub db_pool: u32,
    /// Descriptors kept for everything else ([`RESERVE_FDS`]).
    pub reserve: u64,
}

impl Budget {
    /// Derives the budget from the open-file limit `nofile` (pure):
    /// `fixed = RESERVE_FDS + db_pool`; per in-flight domain
    /// `DOMAIN_FDS`, plus `LISTENER_STREAMS_PER_DOMAIN ×
    /// FDS_PER_LISTENER_STREAM` with the acceptance probe, whose listener
    /// also keeps a floor of `MIN_LISTENER_STREAMS` streams;
    /// `concurrency = min(requested, (nofile − fixed − floor) / per_domain)`;
    /// the listener then gets what the domains leave (at least its share
    /// and its floor, at most [`crate::listener::MAX_STREAMS`]).
    pub fn derive(
        nofile: u64,
        requested_concurrency: usize,
        acceptance_on: bool,
        db_pool: u32,
    ) -> Result<Self, BudgetError> {
        let requested = requested_concurrency.max(MIN_CONCURRENCY);
        let fixed = RESERVE_FDS + u64::from(db_pool);
        let (per_domain, floor) = if acceptance_on {
            (
                DOMAIN_FDS + LISTENER_STREAMS_PER_DOMAIN * FDS_PER_LISTENER_STREAM,
                MIN_LISTENER_STREAMS * FDS_PER_LISTENER_STREAM,
            )
        } else {
            (DOMAIN_FDS, 0)
        };
        let needed = fixed + floor + per_domain * MIN_CONCURRENCY as u64;
        if nofile < needed {
            return Err(BudgetError::TooLow {
                nofile,
                needed,
                acceptance: acceptance_on,
            });
        }
        let room = (nofile - fixed - floor) / per_domain;
        let concurrency = usize::try_from(room).unwrap_or(usize::MAX).min(requested);
        let (listener_streams, verification_capacity) = if acceptance_on {
            let left = nofile - fixed - concurrency as u64 * DOMAIN_FDS;
            let streams = (left / FDS_PER_LISTENER_STREAM)
                .min(MAX_LISTENER_STREAMS as u64)
                .max(MIN_LISTENER_STREAMS);
            let streams = usize::try_from(streams).unwrap_or(MAX_LISTENER_STREAMS);
            (Some(streams), Some(streams))
        } else {
            (None, None)
        };
        Ok(Self {
            nofile,
            requested_concurrency: requested,
            concurrency,
            fds_per_domain: per_domain,
            listener_streams,
            verification_capacity,
            db_pool,
            reserve: RESERVE_FDS,
        })
    }

    /// Whether the concurrency asked for was lowered to fit.
    pub fn lowered(&self) -> bool {
        self.concurrency < self.requested_concurrency
    }
}

impl fmt::Display for Budget {
    /// One line: `fd budget 1024: concurrency 64 (asked 256), …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fd budget {}: concurrency {}",
            self.nofile, self.concurrency
        )?;
        if self.lowered() {
            write!(f, " (asked {})", self.requested_concurrency)?;
        }
        write!(f, " × {} fds", self.fds_per_domain)?;
        match (self.listener_streams, self.verification_capacity) {
            (Some(s), Some(v)) => {
                write!(f, ", listener {s} streams and {v} outbound verifications")?
            }
            _ => write!(f, ", no listener")?,
        }
        write!(f, ", database {}, reserve {}", self.db_pool, self.reserve)
    }
}

/// A local resource that ran out, recognised from an OS error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Exhausted {
    /// `EMFILE`: this process's open-file limit.
    Emfile,
    /// `ENFILE`: the system's open-file table.
    Enfile,
    /// `ENOBUFS`: no socket buffer space.
    Enobufs,
    /// `ENOMEM`: no kernel memory for the socket.
    Enomem,
    /// `EADDRNOTAVAIL` on connect: no free local port for the destination.
    Eaddrnotavail,
}

impl Exhausted {
    /// The errno's name, e.g. `EMFILE`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Emfile => "EMFILE",
            Self::Enfile => "ENFILE",
            Self::Enobufs => "ENOBUFS",
            Self::Enomem => "ENOMEM",
            Self::Eaddrnotavail => "EADDRNOTAVAIL",
        }
    }
}

/// Recognises a local resource exhaustion in an OS error from socket
/// creation, bind or connect: it says nothing about the remote side.
pub fn local_exhaustion(e: &io::Error) -> Option<Exhausted> {
    match e.raw_os_error()? {
        libc::EMFILE => Some(Exhausted::Emfile),
        libc::ENFILE => Some(Exhausted::Enfile),
        libc::ENOBUFS => Some(Exhausted::Enobufs),
        libc::ENOMEM => Some(Exhausted::Enomem),
        libc::EADDRNOTAVAIL => Some(Exhausted::Eaddrnotavail),
        _ => None,
    }
}

/// The detail recorded with a `local_resource_exhausted` outcome, e.g.
/// `local resource exhausted: EMFILE (Too many open files (os error 24))`.
pub fn exhaustion_detail(kind: Exhausted, e: &io::Error) -> String {
    format!("local resource exhausted: {} ({e})", kind.name())
}

/// Descriptors this process has open now (entries of `/proc/self/fd`,
/// less the one reading it); `None` where there is no `/proc`.
pub fn open_fds() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generous_limit_grants_what_was_asked() {
        let b = Budget::derive(20_000, 256, true, 8).expect("fits");
        assert_eq!(b.concurrency, 256);
        assert!(!b.lowered());
        assert_eq!(b.fds_per_domain, DOMAIN_FDS + 16);
        // Capped by the listener's own maximum.
        assert_eq!(b.listener_streams, Some(crate::listener::MAX_STREAMS));
        assert_eq!(b.verification_capacity, b.listener_streams);
        let total = RESERVE_FDS
            + 8
            + b.concurrency as u64 * DOMAIN_FDS
            + b.listener_streams.unwrap() as u64 * FDS_PER_LISTENER_STREAM;
        assert!(total <= 20_000, "{total}");
    }

    #[test]
    fn the_shells_1024_lowers_the_concurrency_and_everything_fits() {
        let b = Budget::derive(1024, 256, true, 8).expect("fits");
        // (1024 − 64 − 8 − 16·2) / (8 + 8·2) = 920 / 24 = 38.
        assert_eq!(b.concurrency, 38);
        assert!(b.lowered());
        let streams = b.listener_streams.expect("listener") as u64;
        assert!(streams >= b.concurrency as u64 * LISTENER_STREAMS_PER_DOMAIN);
        assert!(streams >= MIN_LISTENER_STREAMS);
        let total =
            RESERVE_FDS + 8 + b.concurrency as u64 * DOMAIN_FDS + streams * FDS_PER_LISTENER_STREAM;
        assert!(total <= 1024, "{total}");
        let line = b.to_string();
        assert!(
            line.starts_with("fd budget 1024: concurrency 38 (asked 256)"),
            "{line}"
        );
        assert!(line.contains("listener"), "{line}");
    }

    #[test]
    fn without_the_acceptance_probe_there_is_no_listener() {
        let b = Budget::derive(1024, 1000, false, 8).expect("fits");
        assert_eq!(b.concurrency, (1024 - 64 - 8) / DOMAIN_FDS as usize);
        assert_eq!(b.listener_streams, None);
        assert_eq!(b.verification_capacity, None);
        assert!(b.to_string().contains("no listener"));
        // `probe` has no database pool.
        let p = Budget::derive(1024, 32, false, 0).expect("fits");
        assert_eq!(p.concurrency, 32);
        assert!(!p.lowered());
    }

    #[test]
    fn a_limit_below_a_minimal_crawl_is_refused_naming_it() {
        let needed = RESERVE_FDS
            + 8
            + MIN_LISTENER_STREAMS * FDS_PER_LISTENER_STREAM
            + DOMAIN_FDS
            + LISTENER_STREAMS_PER_DOMAIN * FDS_PER_LISTENER_STREAM;
        let e = Budget::derive(needed - 1, 64, true, 8).expect_err("too low");
        assert_eq!(
            e,
            BudgetError::TooLow {
                nofile: needed - 1,
                needed,
                acceptance: true
            }
        );
        let text = e.to_string();
        assert!(text.contains(&format!("is {}", needed - 1)), "{text}");
        assert!(text.contains(&format!("ulimit -n {needed}")), "{text}");
        assert!(Budget::derive(needed, 64, true, 8).is_ok());
        assert_eq!(Budget::derive(needed, 64, true, 8).unwrap().concurrency, 1);
        assert!(Budget::derive(10, 1, false, 0).is_err());
    }

    #[test]
    fn a_zero_request_still_means_one() {
        let b = Budget::derive(1024, 0, false, 0).expect("fits");
        assert_eq!(b.concurrency, 1);
        assert_eq!(b.requested_concurrency, 1);
    }

    #[test]
    fn os_errors_of_local_exhaustion_are_recognised() {
        for (errno, kind) in [
            (libc::EMFILE, Exhausted::Emfile),
            (libc::ENFILE, Exhausted::Enfile),
            (libc::ENOBUFS, Exhausted::Enobufs),
            (libc::ENOMEM, Exhausted::Enomem),
            (libc::EADDRNOTAVAIL, Exhausted::Eaddrnotavail),
        ] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(local_exhaustion(&e), Some(kind), "{e}");
        }
        let emfile = io::Error::from_raw_os_error(24);
        assert!(
            exhaustion_detail(Exhausted::Emfile, &emfile)
                .starts_with("local resource exhausted: EMFILE (")
        );
        for other in [libc::ECONNREFUSED, libc::EHOSTUNREACH, libc::ENETUNREACH] {
            assert_eq!(local_exhaustion(&io::Error::from_raw_os_error(other)), None);
        }
        assert_eq!(local_exhaustion(&io::Error::other("x")), None);
    }

    #[test]
    fn open_fds_counts_this_process() {
        // Other tests open and close descriptors meanwhile: only bounds.
        let f = std::fs::File::open("/proc/self/status").expect("open");
        let during = open_fds().expect("/proc");
        drop(f);
        assert!(during >= 4, "stdin, stdout, stderr and the file: {during}");
    }
}
