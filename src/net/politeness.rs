//! Politeness: how fast and how wide the crawler may knock on doors.
//!
//! Thousands of XMPP domains can share one host (hosting providers, shared
//! servers), so limits per *domain* protect nobody. The gate limits by the
//! **target IP address**, plus one global rate for the whole crawl:
//!
//! - a **per-IP concurrency cap**: at most N connections to one address are
//!   open at the same time (a [`Semaphore`] per address: a rate limiter
//!   bounds how often, not how many at once);
//! - a **per-IP rate**: at most R connection attempts to one address in any
//!   one-second window;
//! - a **global rate**: at most G connection attempts in any one-second
//!   window, all targets together (a `governor` direct limiter).
//!
//! Every TCP connect of the probe (passive probe, acceptance attempts, the
//! dialback listener's verification connections) goes through
//! [`crate::probe::endpoint::open_session`], which calls [`Politeness::acquire`]
//! right before the connect and keeps the [`ConnectPermit`] for as long as
//! the connection lives.
//!
//! # Why the rates hold literally
//!
//! A rate limiter that allows a burst of R per second lets R connections
//! through at the end of one second and R more at the start of the next:
//! 2R inside one window. Both rates are therefore a GCRA with **burst 1**
//! and one cell every [`spacing`]`(R)`, so consecutive attempts are at
//! least `1 s / R` apart and R+1 of them span at least one second.
//!
//! Two limiters in a row are only sound if **both grants happen at the
//! instant of the connect**. Waiting for one and then for the other would
//! let the first grant age while the second is awaited: attempts granted
//! 200 ms apart by the per-IP limiter can reach the wire 1 ms apart after
//! different global waits. `governor` has no way to ask "would you allow
//! it?" without consuming a cell, so the per-IP rate is kept here as the
//! one instant a burst-1 GCRA needs ("next attempt not before"), inside the
//! address's entry and behind an async lock that queues that address's
//! attempts in order. Holding it, a task waits for that instant, then for
//! the global limiter; the global grant is the last step and the connect
//! follows it without an `await` in between. No cell is wasted, and one
//! address's queue never blocks another's.
//!
//! The spacing also carries [`JITTER_ALLOWANCE`]: the limits are enforced
//! at our side, but the target sees our SYNs after a delay that varies
//! (scheduling between the grant and `connect(2)`, the network path). With
//! a spacing of `(1 s + 20 ms) / R`, R+1 attempts span at least 1.02 s, so
//! the target still sees at most R in any one-second window — closed or
//! half-open — unless the delay of two of them differs by more than 20 ms.

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Added to every window before it is divided among R attempts, so the
/// promise "at most R per second" survives up to this much variation in
/// the delay between our grant and the target's view of the SYN (see the
/// module documentation). It costs 2% of throughput.
pub const JITTER_ALLOWANCE: Duration = Duration::from_millis(20);

/// Housekeeping runs by itself every this many acquisitions, so a crawl
/// that never calls [`Politeness::housekeeping`] still does not keep one
/// entry per address it ever saw.
const HOUSEKEEPING_EVERY: u64 = 1024;

/// The limits of one crawl. `None` disables that limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolitenessConfig {
    /// Connection attempts per second, all targets together.
    pub global_rate: Option<NonZeroU32>,
    /// Connection attempts per second to one target IP address.
    pub per_ip_rate: Option<NonZeroU32>,
    /// Connections open at the same time to one target IP address.
    ///
    /// Use at least 2 with the acceptance probe: while its session to a
    /// server is open, that server's dialback verification makes our
    /// listener connect to the same address again; with a cap of 1 that
    /// connection waits for the session, which waits for it, until the
    /// phase timeout ends both.
    pub per_ip_concurrency: Option<NonZeroUsize>,
}

/// The minimum time between two attempts under a rate of `rate` per
/// second: `(1 s + JITTER_ALLOWANCE) / rate`, never below 1 ns.
pub fn spacing(rate: NonZeroU32) -> Duration {
    ((Duration::from_secs(1) + JITTER_ALLOWANCE) / rate.get()).max(Duration::from_nanos(1))
}

/// The `governor` quota for `rate` per second: one cell every
/// [`spacing`]`(rate)` and a burst of 1, never a burst of `rate` (which
/// would allow 2·`rate` across a window boundary).
pub fn quota(rate: NonZeroU32) -> Quota {
    // `with_period` only refuses a zero period; `spacing` is at least 1 ns.
    Quota::with_period(spacing(rate))
        .unwrap_or_else(|| Quota::per_second(rate))
        .allow_burst(NonZeroU32::MIN)
}

/// The global limiter: `std::time::Instant` (the clock the tests and the
/// testnet measure with) rather than governor's TSC-based default.
type GlobalLimiter = RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<Instant>>;

/// One target address's state: its connection slots and when its next
/// attempt may start.
#[derive(Debug)]
struct Host {
    /// `None` without a concurrency cap.
    slots: Option<Arc<Semaphore>>,
    /// The per-IP burst-1 GCRA: the earliest instant of the next attempt
    /// (`None`: no attempt yet). The async lock queues this address's
    /// attempts in arrival order.
    next: tokio::sync::Mutex<Option<Instant>>,
}

impl Host {
    /// Forgetting this entry changes nothing: no attempt is due to wait on
    /// it any more. (Callers also check that nobody holds it.)
    fn idle(&self, now: Instant) -> bool {
        self.next
            .try_lock()
            .is_ok_and(|next| next.is_none_or(|n| n <= now))
    }
}

type Table = Mutex<HashMap<IpAddr, Arc<Host>>>;

/// How often the gate made the crawl wait (for the crawl summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolitenessStats {
    /// Calls to [`Politeness::acquire`] (connection attempts; one whose
    /// caller gave up while waiting counts too).
    pub acquired: u64,
    /// Attempts that waited for a rate (per-IP or global).
    pub rate_waits: u64,
    /// Attempts that waited for a free per-IP connection slot.
    pub concurrency_waits: u64,
    /// Addresses currently tracked (open connections or a recent attempt).
    pub tracked_addresses: usize,
}

/// The gate every connection of a crawl passes. Share it in an `Arc`.
pub struct Politeness {
    cfg: PolitenessConfig,
    global: Option<GlobalLimiter>,
    per_ip_spacing: Option<Duration>,
    hosts: Arc<Table>,
    acquired: AtomicU64,
    rate_waits: AtomicU64,
    concurrency_waits: AtomicU64,
}

impl std::fmt::Debug for Politeness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Politeness")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The right to one connection: keeps its per-IP slot until dropped. Keep
/// it for as long as the connection is open.
#[must_use = "the connection slot is released when the permit is dropped"]
#[derive(Debug)]
pub struct ConnectPermit {
    slot: Option<OwnedSemaphorePermit>,
    host: Option<(Arc<Host>, Arc<Table>)>,
}

impl Drop for ConnectPermit {
    fn drop(&mut self) {
        drop(self.slot.take());
        let Some((host, table)) = self.host.take() else {
            return;
        };
        // Forget the address at once when this was its last user and its
        // rate window is over; otherwise housekeeping will.
        let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&host) == 2 && host.idle(Instant::now()) {
            let ip = t
                .iter()
                .find(|(_, h)| Arc::ptr_eq(h, &host))
                .map(|(ip, _)| *ip);
            if let Some(ip) = ip {
                t.remove(&ip);
            }
        }
    }
}

impl Politeness {
    /// A gate enforcing `cfg`.
    pub fn new(cfg: PolitenessConfig) -> Self {
        Self {
            cfg,
            global: cfg
                .global_rate
                .map(|r| RateLimiter::direct_with_clock(quota(r), MonotonicClock)),
            per_ip_spacing: cfg.per_ip_rate.map(spacing),
            hosts: Arc::new(Mutex::new(HashMap::new())),
            acquired: AtomicU64::new(0),
            rate_waits: AtomicU64::new(0),
            concurrency_waits: AtomicU64::new(0),
        }
    }

    /// The limits.
    pub fn config(&self) -> PolitenessConfig {
        self.cfg
    }

    /// The address's entry, created on first use.
    fn host(&self, ip: IpAddr) -> Arc<Host> {
        let mut t = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        t.entry(ip)
            .or_insert_with(|| {
                Arc::new(Host {
                    slots: self
                        .cfg
                        .per_ip_concurrency
                        .map(|n| Arc::new(Semaphore::new(n.get()))),
                    next: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    /// Waits until a connection to `ip` is allowed: first a free slot of
    /// the address (concurrency), then its rate, then the global rate.
    /// **Connect immediately** after this returns, without awaiting
    /// anything else: the rates are granted for this instant.
    pub async fn acquire(&self, ip: IpAddr) -> ConnectPermit {
        if self.acquired.fetch_add(1, Ordering::Relaxed) % HOUSEKEEPING_EVERY
            == HOUSEKEEPING_EVERY - 1
        {
            self.housekeeping();
        }
        let per_ip = self.cfg.per_ip_concurrency.is_some() || self.per_ip_spacing.is_some();
        let host = per_ip.then(|| self.host(ip));
        let slot = match host.as_ref().and_then(|h| h.slots.clone()) {
            None => None,
            Some(sem) => Some(match sem.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    self.concurrency_waits.fetch_add(1, Ordering::Relaxed);
                    sem.acquire_owned()
                        .await
                        .expect("per-IP semaphores are never closed")
                }
            }),
        };
        let waited = self.admit(host.as_deref()).await;
        if waited {
            self.rate_waits.fetch_add(1, Ordering::Relaxed);
        }
        ConnectPermit {
            slot,
            host: host.map(|h| (h, self.hosts.clone())),
        }
    }

    /// Waits for the per-IP rate, then the global rate, so that both are
    /// granted at the same instant (see the module documentation); returns
    /// whether it had to wait.
    async fn admit(&self, host: Option<&Host>) -> bool {
        let mut waited = false;
        let mut next = match (host, self.per_ip_spacing) {
            (Some(h), Some(_)) => Some(match h.next.try_lock() {
                Ok(g) => g,
                Err(_) => {
                    // Another attempt on this address is being admitted.
                    waited = true;
                    h.next.lock().await
                }
            }),
            _ => None,
        };
        loop {
            if let Some(due) = next.as_ref().and_then(|g| **g)
                && Instant::now() < due
            {
                waited = true;
                tokio::time::sleep_until(due.into()).await;
                continue;
            }
            if let Some(global) = &self.global
                && let Err(not_until) = global.check()
            {
                waited = true;
                tokio::time::sleep(not_until.wait_time_from(MonotonicClock.now())).await;
                // Only this task touches this address's instant while it
                // holds the lock, so the per-IP check above passes again.
                continue;
            }
            if let (Some(g), Some(s)) = (next.as_mut(), self.per_ip_spacing) {
                **g = Some(Instant::now() + s);
            }
            return waited;
        }
    }

    /// How often the gate made the crawl wait.
    pub fn stats(&self) -> PolitenessStats {
        PolitenessStats {
            acquired: self.acquired.load(Ordering::Relaxed),
            rate_waits: self.rate_waits.load(Ordering::Relaxed),
            concurrency_waits: self.concurrency_waits.load(Ordering::Relaxed),
            tracked_addresses: self.hosts.lock().unwrap_or_else(|e| e.into_inner()).len(),
        }
    }

    /// Forgets every address with no open connection, nobody waiting and
    /// no attempt due to wait on it, so memory follows the active addresses
    /// rather than every address ever seen. Runs by itself every 1024
    /// acquisitions; a crawl may also call it on a timer.
    pub fn housekeeping(&self) {
        let now = Instant::now();
        let mut t = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        t.retain(|_, h| Arc::strong_count(h) > 1 || !h.idle(now));
        t.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn spacing_divides_one_second_plus_the_allowance() {
        assert_eq!(spacing(nz(1)), Duration::from_millis(1020));
        assert_eq!(spacing(nz(5)), Duration::from_millis(204));
        assert_eq!(spacing(nz(1000)), Duration::from_micros(1020));
        // Absurd rates still give a usable quota.
        assert_eq!(spacing(nz(u32::MAX)), Duration::from_nanos(1));
    }

    #[test]
    fn quota_has_burst_one_never_burst_r() {
        for r in [1, 5, 100, u32::MAX] {
            let q = quota(nz(r));
            assert_eq!(q.burst_size(), NonZeroU32::MIN, "rate {r}");
            assert_eq!(q.replenish_interval(), spacing(nz(r)), "rate {r}");
        }
    }

    #[test]
    fn r_plus_one_attempts_span_more_than_a_second() {
        for r in [1u32, 2, 5, 7, 100, 999] {
            assert!(spacing(nz(r)) * r > Duration::from_secs(1), "rate {r}");
        }
    }

    #[tokio::test]
    async fn no_limits_never_wait_and_track_nothing() {
        let g = Politeness::new(PolitenessConfig::default());
        let t0 = Instant::now();
        let permits: Vec<_> = futures::future::join_all((0..100).map(|_| g.acquire(ip(1)))).await;
        assert!(t0.elapsed() < Duration::from_millis(100));
        let s = g.stats();
        assert_eq!((s.acquired, s.rate_waits, s.concurrency_waits), (100, 0, 0));
        assert_eq!(s.tracked_addresses, 0);
        drop(permits);
    }

    #[tokio::test]
    async fn per_ip_rate_spaces_attempts_per_address_only() {
        let g = Politeness::new(PolitenessConfig {
            per_ip_rate: Some(nz(50)),
            ..PolitenessConfig::default()
        });
        let t0 = Instant::now();
        let times: Vec<Instant> = futures::future::join_all((0..6).map(|_| async {
            let _p = g.acquire(ip(1)).await;
            Instant::now()
        }))
        .await;
        // Six attempts on one address: five spacings of 20.4 ms.
        assert!(t0.elapsed() >= spacing(nz(50)) * 5);
        let mut sorted = times.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(w[1] - w[0] >= spacing(nz(50)) - Duration::from_millis(1));
        }
        // Other addresses are not held back by the first one's queue.
        let t1 = Instant::now();
        let _others: Vec<_> = futures::future::join_all((2..40).map(|i| g.acquire(ip(i)))).await;
        assert!(t1.elapsed() < Duration::from_millis(50));
        assert_eq!(g.stats().rate_waits, 5);
    }

    #[tokio::test]
    async fn concurrency_cap_holds_slots_until_permits_drop() {
        let g = Arc::new(Politeness::new(PolitenessConfig {
            per_ip_concurrency: NonZeroUsize::new(2),
            ..PolitenessConfig::default()
        }));
        let a = g.acquire(ip(1)).await;
        let _b = g.acquire(ip(1)).await;
        let _other = g.acquire(ip(2)).await;
        let g2 = g.clone();
        let third = tokio::spawn(async move { g2.acquire(ip(1)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "a third connection waits for a slot");
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("released slot is handed over")
            .expect("task");
        assert_eq!(g.stats().concurrency_waits, 1);
        assert_eq!(g.stats().rate_waits, 0);
    }

    #[tokio::test]
    async fn global_rate_spans_all_addresses() {
        let g = Politeness::new(PolitenessConfig {
            global_rate: Some(nz(100)),
            ..PolitenessConfig::default()
        });
        let t0 = Instant::now();
        let _p: Vec<_> = futures::future::join_all((0..11).map(|i| g.acquire(ip(i)))).await;
        assert!(t0.elapsed() >= spacing(nz(100)) * 10);
        assert_eq!(g.stats().rate_waits, 10);
    }

    #[tokio::test]
    async fn idle_addresses_are_forgotten() {
        let g = Politeness::new(PolitenessConfig {
            per_ip_rate: Some(nz(100)),
            per_ip_concurrency: NonZeroUsize::new(4),
            ..PolitenessConfig::default()
        });
        let permits: Vec<_> = futures::future::join_all((0..50).map(|i| g.acquire(ip(i)))).await;
        assert_eq!(g.stats().tracked_addresses, 50);
        // Open connections keep their address.
        g.housekeeping();
        assert_eq!(g.stats().tracked_addresses, 50);
        tokio::time::sleep(spacing(nz(100))).await;
        drop(permits);
        // The rate window is over: the last permit's drop forgets each one.
        assert_eq!(g.stats().tracked_addresses, 0);
        // Dropped inside the window: kept until housekeeping after it.
        let p = g.acquire(ip(1)).await;
        drop(p);
        assert_eq!(g.stats().tracked_addresses, 1);
        tokio::time::sleep(spacing(nz(100))).await;
        g.housekeeping();
        assert_eq!(g.stats().tracked_addresses, 0);
    }
}
