//! A lookup as text for the terminal: the verdict first, then each finding
//! with its status, what was seen, the evidence and what to do, then the
//! history.

use super::DomainLookup;
use crate::model::finding::{Finding, FindingStatus};
use crate::model::names::Named;
use std::fmt::Write;
use strum::VariantArray;

/// The status as a fixed-width tag.
fn tag(s: FindingStatus) -> &'static str {
    match s {
        FindingStatus::Passed => "[passed]    ",
        FindingStatus::Failed => "[FAILED]    ",
        FindingStatus::Warning => "[warning]   ",
        FindingStatus::Info => "[info]      ",
        FindingStatus::NotTested => "[not tested]",
        FindingStatus::Error => "[error]     ",
    }
}

fn finding(out: &mut String, f: &Finding) {
    let _ = writeln!(out, "{} {}", tag(f.status), f.title);
    let _ = writeln!(out, "             {}", f.seen);
    for e in &f.evidence {
        let _ = writeln!(out, "               {}: {}", e.label, e.value);
    }
    if let Some(a) = &f.advice {
        let _ = writeln!(out, "             What to do: {}", a.text);
        for s in &a.sources {
            let _ = writeln!(out, "               source: {} <{}>", s.title, s.url);
        }
    }
}

/// The whole lookup as text.
pub fn text(l: &DomainLookup) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", l.domain);
    if l.opted_out {
        let _ = writeln!(
            out,
            "  The operator of this domain opted out: it is not probed and no result is shown."
        );
        return out;
    }
    match &l.latest {
        None => {
            let _ = writeln!(
                out,
                "  No stored result. Run `xmpp-survey lookup --live {}` to probe it now.",
                l.domain
            );
        }
        Some(r) => {
            let _ = writeln!(
                out,
                "  measured {} ({})",
                r.probed_at.date(),
                if r.crawl_id.is_some() {
                    format!("crawl {}", r.crawl_label)
                } else {
                    "live probe".into()
                }
            );
            let counts = FindingStatus::VARIANTS
                .iter()
                .map(|s| (s, l.findings.iter().filter(|f| f.status == *s).count()))
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| format!("{n} {}", s.as_str().replace('_', " ")))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(out, "  {counts}\n");
            for f in &l.findings {
                finding(&mut out, f);
                out.push('\n');
            }
        }
    }
    if !l.history.is_empty() {
        let _ = writeln!(out, "History (newest first):");
        let _ = writeln!(
            out,
            "  {:<16} {:<10} {:<32} {:<18} {:<12} software",
            "crawl", "probed", "acceptance", "s2s certificate", "s2s"
        );
        for h in &l.history {
            let _ = writeln!(
                out,
                "  {:<16} {:<10} {:<32} {:<18} {:<12} {}",
                h.crawl_label,
                h.probed_at.date().to_string(),
                h.acceptance,
                h.s2s_eku_class.as_deref().unwrap_or("-"),
                h.s2s_status,
                h.software.as_deref().unwrap_or("-")
            );
        }
    }
    if !l.changes.is_empty() {
        let _ = writeln!(out, "Changes between crawls (newest first):");
        for c in &l.changes {
            let _ = writeln!(
                out,
                "  {:<16} since {:<16} {:<20} {:<6} {} -> {}",
                c.crawl,
                c.previous_crawl,
                c.kind.as_str(),
                c.scope.as_str(),
                c.before.as_deref().unwrap_or("-"),
                c.after.as_deref().unwrap_or("-")
            );
        }
    }
    out
}
