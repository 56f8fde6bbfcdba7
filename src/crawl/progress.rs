//! Crawl progress for people: a bar on a terminal (done/total, rate, ETA,
//! counts by outcome), plain log lines otherwise (cron, CI, `| tee`).

use crate::crawl::{ProgressSink, WorkerStats};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds between log lines when not on a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

fn outcomes(stats: &WorkerStats) -> String {
    stats
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// More to show on each progress line, asked for each time (the
/// listener's counters and the open-file count: see
/// [`crate::crawl::resources::Monitor::compact`]).
pub type Extra = Arc<dyn Fn() -> String + Send + Sync>;

fn with_extra(text: String, extra: Option<&Extra>) -> String {
    match extra {
        Some(f) if text.is_empty() => f(),
        Some(f) => format!("{text}; {}", f()),
        None => text,
    }
}

/// Chooses a bar on a terminal, log lines otherwise.
pub fn for_stderr(total: u64, already_done: u64, extra: Option<Extra>) -> Box<dyn ProgressSink> {
    if std::io::stderr().is_terminal() {
        let mut b = Bar::new(total, already_done);
        b.extra = extra;
        Box::new(b)
    } else {
        let mut l = Lines::new(total, already_done);
        l.extra = extra;
        Box::new(l)
    }
}

/// An indicatif progress bar.
pub struct Bar {
    bar: ProgressBar,
    base: u64,
    extra: Option<Extra>,
}

impl Bar {
    /// A bar for `total` domains of which `already_done` were done before.
    pub fn new(total: u64, already_done: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(already_done);
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            base: already_done,
            extra: None,
        }
    }
}

impl ProgressSink for Bar {
    fn tick(&self, stats: &WorkerStats) {
        self.bar
            .set_position(self.base + stats.recorded.max(stats.probed - stats.retried));
        self.bar
            .set_message(with_extra(outcomes(stats), self.extra.as_ref()));
    }
    fn waiting_for_db(&self, error: &str) {
        self.bar
            .set_message(format!("database unavailable, waiting: {error}"));
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish();
    }
}

/// Log lines at most every [`LOG_EVERY`].
pub struct Lines {
    total: u64,
    base: u64,
    start: Instant,
    last: Mutex<Instant>,
    extra: Option<Extra>,
}

impl Lines {
    /// Lines for `total` domains of which `already_done` were done before.
    pub fn new(total: u64, already_done: u64) -> Self {
        let now = Instant::now();
        Self {
            total,
            base: already_done,
            start: now,
            last: Mutex::new(now),
            extra: None,
        }
    }
}

impl ProgressSink for Lines {
    fn tick(&self, stats: &WorkerStats) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < LOG_EVERY {
            return;
        }
        *last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let done = self.base + stats.probed - stats.retried;
        eprintln!(
            "progress: {done}/{} domains, {:.1}/s, {}",
            self.total,
            (stats.probed as f64) / secs,
            with_extra(outcomes(stats), self.extra.as_ref())
        );
    }
    fn waiting_for_db(&self, error: &str) {
        eprintln!("database unavailable, waiting: {error}");
    }
}
