//! `survey`: the weekly run in one command. Takes this ISO week's label
//! (running twice in a week resumes that crawl, never duplicates a
//! result), loads the sources (a providers URL that cannot be fetched
//! falls back to the snapshot; `db` adds every domain already known),
//! crawls to the end, writes the report to `<out_dir>/<label>/` and prints
//! a summary. Its exit status says how it went ([`SurveyOutcome`]).

use super::crawl::{CrawlRun, open_store, run_crawl};
use super::file::{BUILT_IN_PROVIDERS, BUILT_IN_PROVIDERS_LABEL};
use super::{AppError, NetConfig, WorkConfig};
use crate::crawl::iso_week_label;
use crate::report::{ReportOptions, write_report};
use crate::sources::ProvidersFallback;
use crate::store::{CrawlStatus, PrunePlan, PruneSummary};
use std::path::PathBuf;
use time::OffsetDateTime;

/// Exit status: the crawl was created and finished, the report written.
pub const EXIT_FINISHED: i32 = 0;
/// Exit status: the run failed (configuration, database, crawl or
/// report); why is on stderr. A crawl that had started is marked
/// `failed` and the next run of the week resumes it.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: the week's crawl existed (an earlier run started it) and
/// was resumed and finished, the report written.
pub const EXIT_RESUMED: i32 = 3;
/// Exit status: the crawl did not finish (SIGINT, or domains
/// still leased by other workers); no report was written, the next run of
/// the week resumes it.
pub const EXIT_UNFINISHED: i32 = 4;

/// What `survey` runs: the config file and flags already merged.
#[derive(Debug, Clone)]
pub struct SurveyRun {
    /// `auto` or `None`: the ISO week of `now` (e.g. `2026-W49`).
    pub label: Option<String>,
    /// The clock: the week's label and the report's timestamp.
    pub now: OffsetDateTime,
    /// PostgreSQL URL.
    pub database_url: String,
    /// Domain sources (`--source` syntax); `db` is added when missing.
    pub sources: Vec<String>,
    /// Providers list used when a providers URL cannot be fetched;
    /// `None`: the built-in snapshot.
    pub fallback: Option<PathBuf>,
    /// Opt-out files.
    pub opt_out: Vec<PathBuf>,
    /// Where the crawl runs from.
    pub vantage: String,
    /// Reports go to `<reports_dir>/<label>/`.
    pub reports_dir: PathBuf,
    /// CA cut-over file for the report (`None`: built in).
    pub seeds: Option<PathBuf>,
    /// Weeks of raw evidence to keep: when set, a finished survey prunes
    /// older raw evidence after its report (`[retention] keep_raw_weeks`).
    pub keep_raw_weeks: Option<u32>,
    /// How the worker works.
    pub work: WorkConfig,
    /// Targets, trust, identity, limits.
    pub net: NetConfig,
}

/// How a survey that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyOutcome {
    /// Crawl created and finished ([`EXIT_FINISHED`]).
    Finished,
    /// Crawl resumed and finished ([`EXIT_RESUMED`]).
    Resumed,
    /// Crawl not finished ([`EXIT_UNFINISHED`]).
    Unfinished,
}

impl SurveyOutcome {
    /// The process's exit status for this outcome.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Finished => EXIT_FINISHED,
            Self::Resumed => EXIT_RESUMED,
            Self::Unfinished => EXIT_UNFINISHED,
        }
    }
}

/// What a survey did.
#[derive(Debug, Clone)]
pub struct SurveySummary {
    /// The crawl's label.
    pub label: String,
    /// How it ended.
    pub outcome: SurveyOutcome,
    /// Domains the sources gave.
    pub domains: usize,
    /// Results the crawl holds.
    pub results: u64,
    /// The report's folder (when finished).
    pub report: Option<PathBuf>,
    /// What the retention prune did (when configured and finished).
    pub pruned: Option<PruneSummary>,
}

impl std::fmt::Display for SurveySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.outcome {
            SurveyOutcome::Finished => "finished",
            SurveyOutcome::Resumed => "resumed and finished",
            SurveyOutcome::Unfinished => "not finished (the next run resumes it)",
        };
        write!(
            f,
            "survey {}: {how}; {} domain(s) from the sources, {} result(s)",
            self.label, self.domains, self.results
        )?;
        if let Some(r) = &self.report {
            write!(f, "; report {}", r.join("index.html").display())?;
        }
        if let Some(p) = &self.pruned {
            let values: u64 = p.crawls.iter().map(|c| c.total()).sum();
            write!(
                f,
                "; raw evidence pruned: {values} value(s) in {} crawl(s)",
                p.crawls.len()
            )?;
        }
        Ok(())
    }
}

/// The crawl's label: `auto` (or none) is the ISO week of `now`.
pub fn survey_label(label: Option<&str>, now: OffsetDateTime) -> String {
    match label {
        None | Some("auto") => iso_week_label(now),
        Some(l) => l.to_string(),
    }
}

/// Runs the week's survey: crawl (created or resumed) to the end, then the
/// report. Errors are failures ([`EXIT_FAILED`]).
pub async fn survey(a: SurveyRun) -> Result<SurveySummary, AppError> {
    let fallback = match &a.fallback {
        Some(path) => ProvidersFallback {
            label: path.display().to_string(),
            bytes: std::fs::read(path).map_err(|source| {
                AppError::Source(crate::sources::SourceError::Read {
                    path: path.clone(),
                    source,
                })
            })?,
        },
        None => ProvidersFallback {
            label: BUILT_IN_PROVIDERS_LABEL.to_string(),
            bytes: BUILT_IN_PROVIDERS.to_vec(),
        },
    };
    let store = open_store(&a.database_url).await?;
    let label = survey_label(a.label.as_deref(), a.now);
    let mut sources = a.sources.clone();
    if !sources.iter().any(|s| s.trim() == "db") {
        sources.push("db".to_string());
    }
    let run = CrawlRun {
        sources,
        label: Some(label.clone()),
        opt_out: a.opt_out.clone(),
        vantage: a.vantage.clone(),
        database_url: a.database_url.clone(),
        work: a.work.clone(),
        net: a.net.clone(),
    };
    let done = run_crawl(&store, &run, Some(&fallback)).await?;
    let results = store.summary(done.crawl.id).await?.results;
    let outcome = match (done.status, done.crawl.resumed) {
        (CrawlStatus::Finished, false) => SurveyOutcome::Finished,
        (CrawlStatus::Finished, true) => SurveyOutcome::Resumed,
        _ => SurveyOutcome::Unfinished,
    };
    let report = if outcome == SurveyOutcome::Unfinished {
        None
    } else {
        let generated_at = a
            .now
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| AppError::Clock(e.to_string()))?;
        let w = write_report(
            store.pool(),
            &ReportOptions {
                crawl: Some(label.clone()),
                compare: None,
                out: None,
                reports_dir: Some(a.reports_dir.clone()),
                seeds: a.seeds.clone(),
                generated_at,
            },
        )
        .await?;
        Some(w.dir)
    };
    // Retention runs only after a finished crawl's report is written, so
    // the report always reads a crawl whose raw evidence is whole.
    let pruned = match (a.keep_raw_weeks, &report) {
        (Some(weeks), Some(_)) => {
            let summary = store.prune_raw(PrunePlan::keep_weeks(weeks, a.now)).await?;
            if summary.batches > 0 {
                store.vacuum_raw_tables().await?;
            }
            Some(summary)
        }
        _ => None,
    };
    Ok(SurveySummary {
        label,
        outcome,
        domains: done.domains,
        results,
        report,
        pruned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_the_iso_week_of_the_clock() {
        let now = time::macros::datetime!(2026-12-02 10:00 UTC);
        assert_eq!(survey_label(None, now), "2026-W49");
        assert_eq!(survey_label(Some("auto"), now), "2026-W49");
        assert_eq!(survey_label(Some("lab-1"), now), "lab-1");
        // The ISO year, not the calendar year, at the turn of the year.
        let now = time::macros::datetime!(2027-01-01 10:00 UTC);
        assert_eq!(survey_label(None, now), "2026-W53");
    }

    #[test]
    fn exit_codes_are_distinct() {
        let codes = [
            EXIT_FINISHED,
            EXIT_FAILED,
            EXIT_RESUMED,
            EXIT_UNFINISHED,
            2, // clap's usage errors
        ];
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), codes.len());
        assert_eq!(SurveyOutcome::Resumed.exit_code(), 3);
    }
}
