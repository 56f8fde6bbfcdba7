//! `xmpp-survey status`: a crawl's progress, its live workers (by
//! heartbeat) with their rates, stale ones, and expired leases waiting for
//! takeover. Pure: built from [`StatusRows`] (one thin query,
//! [`crate::store::Store::status_rows`]), rendered as text or JSON.

use crate::store::{StatusRows, WorkerRow};
use serde::Serialize;
use std::time::Duration;

/// How often a worker writes its heartbeat (`workers.heartbeat_at`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Heartbeat intervals a worker may miss before `status` calls it stale:
/// one late write under load is normal, three is a dead or stuck process.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// A worker's state as `status` judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Heartbeat within [`STALE_AFTER_INTERVALS`] intervals.
    Live,
    /// Silent for longer: killed, host lost or stuck; its leases are taken
    /// over once they expire.
    Stale,
    /// Ended its work cleanly.
    Stopped,
}

/// One worker in the status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerView {
    /// Its name in leases.
    pub worker_id: String,
    /// Host and process.
    pub host: String,
    /// Process id on that host.
    pub pid: i32,
    /// Its dialback listener.
    pub listen: Option<String>,
    /// Live, stale or stopped.
    pub state: Liveness,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: f64,
    /// Results it stored.
    pub done: u64,
    /// Results it stored in the last minute.
    pub rate_per_minute: u64,
    /// Leases it holds.
    pub leased: u64,
    /// Of those, expired.
    pub expired: u64,
}

/// The whole status (the `--json` shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusView {
    /// The crawl's label.
    pub crawl: String,
    /// running, finished or interrupted.
    pub status: String,
    /// When it was created (RFC 3339).
    pub started_at: String,
    /// Domains in the queue.
    pub total: u64,
    /// Waiting.
    pub queued: u64,
    /// Held by a worker (expired included).
    pub leased: u64,
    /// Leases expired: their worker is gone or late; taken over at the
    /// next lease round of any worker.
    pub expired_leases: u64,
    /// Results stored.
    pub done: u64,
    /// Given up or excluded.
    pub not_tested: u64,
    /// (done + not tested) / total, in percent.
    pub percent_done: f64,
    /// Results stored in the last minute, all workers.
    pub rate_per_minute: u64,
    /// Seconds left at that rate (`None`: no rate, or nothing left).
    pub eta_s: Option<u64>,
    /// Workers live now.
    pub live_workers: usize,
    /// Every worker that joined, oldest first.
    pub workers: Vec<WorkerView>,
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Judges a worker at the database's `now`.
pub fn liveness(w: &WorkerRow, now: time::OffsetDateTime) -> Liveness {
    if w.stopped_at.is_some() {
        return Liveness::Stopped;
    }
    let age = (now - w.heartbeat_at).as_seconds_f64();
    let limit = f64::from(w.interval_ms.max(1)) / 1000.0 * f64::from(STALE_AFTER_INTERVALS);
    if age <= limit {
        Liveness::Live
    } else {
        Liveness::Stale
    }
}

impl StatusView {
    /// Builds the view from what the database said.
    pub fn from_rows(r: &StatusRows) -> Self {
        let p = r.progress;
        let total = p.total();
        let finished = p.done + p.not_tested;
        let rate = u(r.done_last_minute);
        let left = p.queued + p.leased;
        let workers: Vec<WorkerView> = r
            .workers
            .iter()
            .map(|w| WorkerView {
                worker_id: w.worker_id.clone(),
                host: w.host.clone(),
                pid: w.pid,
                listen: w.listen.clone(),
                state: liveness(w, r.now),
                heartbeat_age_s: ((r.now - w.heartbeat_at).as_seconds_f64() * 10.0).round() / 10.0,
                done: u(w.done),
                rate_per_minute: u(w.done_last_minute),
                leased: u(w.leased),
                expired: u(w.expired),
            })
            .collect();
        Self {
            crawl: r.crawl.label.clone(),
            status: r.crawl.status.clone(),
            started_at: r
                .crawl
                .started_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            total,
            queued: p.queued,
            leased: p.leased,
            expired_leases: u(r.expired_leases),
            done: p.done,
            not_tested: p.not_tested,
            percent_done: if total == 0 {
                0.0
            } else {
                (finished as f64 * 1000.0 / total as f64).round() / 10.0
            },
            rate_per_minute: rate,
            eta_s: (rate > 0 && left > 0).then(|| (left * 60).div_ceil(rate)),
            live_workers: workers.iter().filter(|w| w.state == Liveness::Live).count(),
            workers,
        }
    }

    /// The text `status` prints.
    pub fn render(&self) -> String {
        let mut out = format!(
            "crawl {} ({}, started {})\nprogress: {}/{} finished ({:.1} %): {} done, {} not tested, {} queued, {} leased",
            self.crawl,
            self.status,
            self.started_at,
            self.done + self.not_tested,
            self.total,
            self.percent_done,
            self.done,
            self.not_tested,
            self.queued,
            self.leased,
        );
        if self.expired_leases > 0 {
            out.push_str(&format!(
                " ({} expired, waiting for takeover)",
                self.expired_leases
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "rate: {} result(s) in the last minute; ETA {}\n",
            self.rate_per_minute,
            self.eta_s.map_or_else(|| "unknown".to_string(), eta)
        ));
        let count = |s: Liveness| self.workers.iter().filter(|w| w.state == s).count();
        out.push_str(&format!(
            "workers: {} live, {} stale, {} stopped\n",
            count(Liveness::Live),
            count(Liveness::Stale),
            count(Liveness::Stopped)
        ));
        for w in &self.workers {
            let state = match w.state {
                Liveness::Live => "live",
                Liveness::Stale => "STALE",
                Liveness::Stopped => "stopped",
            };
            out.push_str(&format!(
                "  {} {state} on {} pid {}{}: heartbeat {:.1}s ago, {} done ({}/min), {} leased{}\n",
                w.worker_id,
                w.host,
                w.pid,
                w.listen
                    .as_ref()
                    .map(|l| format!(", listener {l}"))
                    .unwrap_or_default(),
                w.heartbeat_age_s,
                w.done,
                w.rate_per_minute,
                w.leased,
                if w.expired > 0 {
                    format!(" ({} expired)", w.expired)
                } else {
                    String::new()
                }
            ));
        }
        out
    }
}

/// `1h02m`, `3m05s`, `42s`.
fn eta(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CrawlRow, Progress};
    use time::macros::datetime;

    fn worker(
        id: &str,
        beat_s_ago: i64,
        stopped: bool,
        done: i64,
        leased: i64,
        expired: i64,
    ) -> WorkerRow {
        let now = datetime!(2026-12-01 10:00:00 UTC);
        WorkerRow {
            worker_id: id.into(),
            host: "h".into(),
            pid: 7,
            listen: (id == "a").then(|| "127.0.0.1:5269".into()),
            started_at: datetime!(2026-12-01 09:00:00 UTC),
            heartbeat_at: now - time::Duration::seconds(beat_s_ago),
            interval_ms: 5000,
            stopped_at: stopped.then_some(now),
            done,
            done_last_minute: done / 2,
            leased,
            expired,
        }
    }

    fn rows() -> StatusRows {
        StatusRows {
            crawl: CrawlRow {
                id: 1,
                label: "2026-W49".into(),
                status: "running".into(),
                started_at: datetime!(2026-12-01 09:00:00 UTC),
            },
            progress: Progress {
                queued: 50,
                leased: 10,
                done: 130,
                not_tested: 10,
            },
            expired_leases: 4,
            done_last_minute: 30,
            now: datetime!(2026-12-01 10:00:00 UTC),
            workers: vec![
                worker("a", 1, false, 80, 6, 0),
                worker("b", 15, false, 40, 0, 0),
                worker("c", 16, false, 10, 4, 4),
                worker("d", 100, true, 0, 0, 0),
            ],
        }
    }

    #[test]
    fn workers_are_live_within_three_intervals_then_stale_or_stopped() {
        let v = StatusView::from_rows(&rows());
        let states: Vec<Liveness> = v.workers.iter().map(|w| w.state).collect();
        assert_eq!(
            states,
            [
                Liveness::Live,
                Liveness::Live,
                Liveness::Stale,
                Liveness::Stopped
            ]
        );
        assert_eq!(v.live_workers, 2);
    }

    #[test]
    fn progress_rate_and_eta_are_derived_from_the_counts() {
        let v = StatusView::from_rows(&rows());
        assert_eq!(v.total, 200);
        assert_eq!(v.percent_done, 70.0);
        assert_eq!(v.rate_per_minute, 30);
        // 60 left at 30/min: two minutes.
        assert_eq!(v.eta_s, Some(120));
        let mut idle = rows();
        idle.done_last_minute = 0;
        assert_eq!(StatusView::from_rows(&idle).eta_s, None);
        let text = v.render();
        assert!(
            text.starts_with("crawl 2026-W49 (running, started 2026-12-01T09:00:00Z)\n"),
            "{text}"
        );
        assert!(text.contains("140/200 finished (70.0 %)"), "{text}");
        assert!(
            text.contains("10 leased (4 expired, waiting for takeover)"),
            "{text}"
        );
        assert!(text.contains("ETA 2m00s"), "{text}");
        assert!(
            text.contains("workers: 2 live, 1 stale, 1 stopped"),
            "{text}"
        );
        assert!(
            text.contains(
                "  c STALE on h pid 7: heartbeat 16.0s ago, 10 done (5/min), 4 leased (4 expired)"
            ),
            "{text}"
        );
        assert!(
            text.contains("  a live on h pid 7, listener 127.0.0.1:5269: heartbeat 1.0s ago"),
            "{text}"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["workers"][2]["state"], "stale");
        assert_eq!(json["expired_leases"], 4);
    }

    #[test]
    fn an_empty_crawl_has_no_rate_and_no_division_by_zero() {
        let mut r = rows();
        r.progress = Progress::default();
        r.workers.clear();
        let v = StatusView::from_rows(&r);
        assert_eq!(v.percent_done, 0.0);
        assert_eq!(v.eta_s, None);
        assert!(v.render().contains("workers: 0 live, 0 stale, 0 stopped"));
        assert_eq!(eta(3725), "1h02m");
        assert_eq!(eta(42), "42s");
    }
}
