//! The crawl summary printed at the end of a run, from the database's
//! typed columns (so every worker's results count, not just this one's).

use crate::store::{CrawlSummary, Progress, ServiceCounts};
use std::collections::BTreeMap;
use std::fmt::Write;

fn line<K: std::fmt::Display>(
    out: &mut String,
    title: &str,
    counts: &BTreeMap<Option<K>, u64>,
    of: u64,
) {
    let mut parts: Vec<(u64, String)> = counts
        .iter()
        .map(|(k, n)| {
            let k = k
                .as_ref()
                .map_or_else(|| "-".to_string(), ToString::to_string);
            (*n, k)
        })
        .collect();
    parts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let text: Vec<String> = parts
        .iter()
        .map(|(n, k)| format!("{k} {n} ({:.0}%)", 100.0 * *n as f64 / of.max(1) as f64))
        .collect();
    let _ = writeln!(out, "  {title:<22} {}", text.join(", "));
}

fn service(out: &mut String, name: &str, s: &ServiceCounts, of: u64) {
    line(out, &format!("{name} status"), &s.status, of);
    line(out, &format!("{name} STARTTLS"), &s.starttls, of);
    line(out, &format!("{name} TLS version"), &s.tls_version, of);
    line(out, &format!("{name} chain verdict"), &s.chain_verdict, of);
    line(out, &format!("{name} EKU class"), &s.eku_class, of);
}

/// Renders the summary of one crawl.
pub fn render(label: &str, progress: &Progress, s: &CrawlSummary) -> String {
    let mut out = format!(
        "crawl {label}: {} results, {} not tested, {} still queued, {} leased\n",
        s.results, progress.not_tested, progress.queued, progress.leased
    );
    service(&mut out, "c2s", &s.c2s, s.results);
    service(&mut out, "s2s", &s.s2s, s.results);
    line(&mut out, "acceptance", &s.acceptance, s.results);
    let software: BTreeMap<Option<String>, u64> = s
        .software
        .iter()
        .filter(|((name, _), _)| name.is_some())
        .map(|((name, version), n)| {
            let v = version.as_deref().unwrap_or("?");
            (Some(format!("{} {v}", name.as_deref().unwrap_or("?"))), *n)
        })
        .collect();
    if !software.is_empty() {
        line(&mut out, "software", &software, s.results);
    }
    out
}
