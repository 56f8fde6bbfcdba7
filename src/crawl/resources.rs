//! What the crawling process used, where users see it: the dialback
//! listener's counters and the open-descriptor high-water mark, in the
//! progress line (compact), the end-of-crawl summary and the crawl's row
//! (`crawls.listener_stats`), with a warning the first time a cap is hit.

use crate::budget::{Budget, open_fds};
use crate::listener::{ListenerStats, ProbeListener};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the monitor counts `/proc/self/fd` and reads the listener.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Share of the open-file limit above which the descriptor count is
/// reported as a cap hit.
pub const FD_WARN_RATIO: f64 = 0.9;

/// One process's resource use over a crawl: `crawls.listener_stats`
/// holds one per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResourceStats {
    /// The listener's counters (`None`: no acceptance probe).
    pub listener: Option<ListenerStats>,
    /// Most descriptors open at once (sampled every [`SAMPLE_EVERY`]).
    pub fd_peak: u64,
    /// The budget the process ran with.
    pub budget: Budget,
}

impl ResourceStats {
    /// One compact clause for the progress line, e.g.
    /// `listener 40 in/2 refused/12 verif/peak 9 of 172; fds 140 of 1024`.
    pub fn compact(&self, fds_now: Option<u64>) -> String {
        let mut out = String::new();
        if let Some(l) = &self.listener {
            let _ = write!(
                out,
                "listener {} in/{} refused/{} verif/peak {} of {}; ",
                l.accepted,
                refused(l),
                l.verifications,
                l.peak_streams,
                self.budget.listener_streams.unwrap_or(0)
            );
        }
        let _ = write!(
            out,
            "fds {} (peak {}) of {}",
            fds_now.map_or_else(|| "?".to_string(), |n| n.to_string()),
            self.fd_peak,
            self.budget.nofile
        );
        out
    }

    /// Lines for the end-of-crawl summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(l) = &self.listener {
            let _ = writeln!(
                out,
                "  {:<22} {} accepted, {} authenticated, {} unauthenticated, {} outbound verifications, peak {} of {} streams",
                "listener",
                l.accepted,
                l.authenticated,
                l.unauthenticated,
                l.verifications,
                l.peak_streams,
                self.budget.listener_streams.unwrap_or(0)
            );
            let _ = writeln!(
                out,
                "  {:<22} {} stream cap, {} address cap, {} prefix cap, {} not in flight; {} accept errors",
                "listener refused",
                l.refused_slots,
                l.refused_address_cap,
                l.refused_prefix_cap,
                l.refused_not_in_flight,
                l.accept_errors
            );
        }
        let _ = writeln!(
            out,
            "  {:<22} peak {} of {} (concurrency {}{})",
            "open files",
            self.fd_peak,
            self.budget.nofile,
            self.budget.concurrency,
            if self.budget.lowered() {
                format!(", asked {}", self.budget.requested_concurrency)
            } else {
                String::new()
            }
        );
        out
    }

    /// Every cap that was hit, as a warning each (stable keys first, for
    /// warning once per cap).
    pub fn caps_hit(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(l) = &self.listener {
            let streams = self.budget.listener_streams.unwrap_or(0);
            if l.refused_slots > 0 {
                out.push((
                    "slots",
                    format!(
                        "the dialback listener's stream cap ({streams}, from the fd budget) was hit: {} connection(s) refused",
                        l.refused_slots
                    ),
                ));
            }
            if l.refused_address_cap > 0 {
                out.push((
                    "address",
                    format!(
                        "the dialback listener's per-address cap ({}) was hit: {} connection(s) refused",
                        crate::listener::MAX_STREAMS_PER_ADDRESS,
                        l.refused_address_cap
                    ),
                ));
            }
            if l.refused_prefix_cap > 0 {
                out.push((
                    "prefix",
                    format!(
                        "the dialback listener's per-prefix cap ({}) was hit: {} connection(s) refused",
                        crate::listener::MAX_STREAMS_PER_PREFIX,
                        l.refused_prefix_cap
                    ),
                ));
            }
            if l.accept_errors > 0 {
                out.push((
                    "accept",
                    format!(
                        "the dialback listener failed to accept {} connection(s) (out of file descriptors?)",
                        l.accept_errors
                    ),
                ));
            }
        }
        if self.fd_peak as f64 >= self.budget.nofile as f64 * FD_WARN_RATIO {
            out.push((
                "fds",
                format!(
                    "open files reached {} of the limit {}: domains that ran out are retried, not recorded",
                    self.fd_peak, self.budget.nofile
                ),
            ));
        }
        out
    }
}

fn refused(l: &ListenerStats) -> u64 {
    l.refused_slots + l.refused_address_cap + l.refused_prefix_cap + l.refused_not_in_flight
}

/// Samples the descriptor count once a second, keeps its high-water mark
/// and warns (on stderr, once per cap) when a cap is hit. Stops when
/// dropped.
pub struct Monitor {
    listener: Option<Arc<ProbeListener>>,
    budget: Budget,
    peak: Arc<AtomicU64>,
    now: Arc<AtomicU64>,
    warned: Arc<Mutex<BTreeSet<&'static str>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    /// Starts sampling (inside a tokio runtime).
    pub fn start(listener: Option<Arc<ProbeListener>>, budget: Budget) -> Self {
        let first = open_fds().unwrap_or(0);
        let peak = Arc::new(AtomicU64::new(first));
        let now = Arc::new(AtomicU64::new(first));
        let warned = Arc::new(Mutex::new(BTreeSet::new()));
        let (p, n, w, l) = (peak.clone(), now.clone(), warned.clone(), listener.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                if let Ok(Some(count)) = tokio::task::spawn_blocking(open_fds).await {
                    n.store(count, Ordering::Relaxed);
                    p.fetch_max(count, Ordering::Relaxed);
                }
                let stats = ResourceStats {
                    listener: l.as_ref().map(|l| l.stats()),
                    fd_peak: p.load(Ordering::Relaxed),
                    budget,
                };
                warn_new(&w, &stats);
            }
        });
        Self {
            listener,
            budget,
            peak,
            now,
            warned,
            task,
        }
    }

    /// What was used so far (the descriptors counted now too).
    pub fn snapshot(&self) -> ResourceStats {
        if let Some(n) = open_fds() {
            self.now.store(n, Ordering::Relaxed);
            self.peak.fetch_max(n, Ordering::Relaxed);
        }
        ResourceStats {
            listener: self.listener.as_ref().map(|l| l.stats()),
            fd_peak: self.peak.load(Ordering::Relaxed),
            budget: self.budget,
        }
    }

    /// The compact clause for the progress line (no `/proc` read: the
    /// last sample).
    pub fn compact(&self) -> String {
        let stats = ResourceStats {
            listener: self.listener.as_ref().map(|l| l.stats()),
            fd_peak: self.peak.load(Ordering::Relaxed),
            budget: self.budget,
        };
        stats.compact(Some(self.now.load(Ordering::Relaxed)))
    }

    /// The listener's refusals at its caps and accept errors, read live
    /// (`None` without a listener): see [`crate::crawl::run_worker_watched`].
    pub fn refusal_count(&self) -> Option<crate::crawl::RefusalCount> {
        let l = self.listener.clone()?;
        Some(Arc::new(move || {
            let s = l.stats();
            s.refused_slots + s.refused_address_cap + s.refused_prefix_cap + s.accept_errors
        }))
    }

    /// Warns about caps hit since the last sample (end of the crawl).
    pub fn warn_now(&self) -> ResourceStats {
        let s = self.snapshot();
        warn_new(&self.warned, &s);
        s
    }
}

fn warn_new(warned: &Mutex<BTreeSet<&'static str>>, stats: &ResourceStats) {
    let mut w = warned.lock().unwrap_or_else(|e| e.into_inner());
    for (key, text) in stats.caps_hit() {
        if w.insert(key) {
            eprintln!("warning: {text}");
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(listener: Option<ListenerStats>, fd_peak: u64) -> ResourceStats {
        ResourceStats {
            listener,
            fd_peak,
            budget: Budget::derive(1024, 256, listener.is_some(), 8).expect("budget"),
        }
    }

    #[test]
    fn caps_hit_name_each_cap_and_nothing_when_none_was() {
        let quiet = ListenerStats {
            accepted: 10,
            authenticated: 4,
            ..ListenerStats::default()
        };
        assert!(stats(Some(quiet), 100).caps_hit().is_empty());
        let busy = ListenerStats {
            refused_slots: 3,
            accept_errors: 1,
            ..quiet
        };
        let keys: Vec<_> = stats(Some(busy), 1000)
            .caps_hit()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["slots", "accept", "fds"]);
    }

    #[test]
    fn compact_and_render_show_the_counters() {
        let l = ListenerStats {
            accepted: 40,
            refused_not_in_flight: 2,
            verifications: 12,
            peak_streams: 9,
            ..ListenerStats::default()
        };
        let s = stats(Some(l), 140);
        let c = s.compact(Some(120));
        assert!(
            c.contains("listener 40 in/2 refused/12 verif/peak 9 of"),
            "{c}"
        );
        assert!(c.contains("fds 120 (peak 140) of 1024"), "{c}");
        let r = s.render();
        assert!(r.contains("40 accepted"), "{r}");
        assert!(r.contains("peak 140 of 1024"), "{r}");
        assert!(r.contains("asked 256"), "{r}");
        let j = serde_json::to_value(s).expect("json");
        assert_eq!(j["listener"]["accepted"], 40);
        assert_eq!(j["fd_peak"], 140);
        assert_eq!(j["budget"]["nofile"], 1024);
        assert!(!stats(None, 5).compact(None).contains("listener"));
    }
}
