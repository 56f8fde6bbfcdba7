//! Why a source could not be used: [`SourceError`] for a source (or the
//! opt-out list) that failed as a whole, [`SourceProblem`] for one bad
//! entry or one failed source in what [`load`](super::load) reports.

use super::ACCEPTED_FORMS;
use crate::limits::PROVIDERS_MAX_BYTES;
use crate::model::domain::BadLine;
use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// Why a source, or the opt-out list, could not be used as a whole.
#[derive(Debug, Error)]
pub enum SourceError {
    /// A `--source` argument in none of the accepted forms.
    #[error("unknown source {arg:?}: {why}; accepted forms: {ACCEPTED_FORMS}")]
    UnknownFormat {
        /// The argument as given.
        arg: String,
        /// What was wrong with it.
        why: String,
    },
    /// A local file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CSV file without a usable header or column.
    #[error("{}: {why}", path.display())]
    CsvHeader {
        /// The file.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// The providers URL could not be fetched (connect, timeout, transfer).
    #[error("cannot fetch {url}: {why}")]
    Fetch {
        /// The URL.
        url: String,
        /// The error and its causes, innermost last.
        why: String,
    },
    /// The providers URL answered, but not with success.
    #[error("{url} answered HTTP {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status line's code and reason.
        status: String,
    },
    /// The providers body is larger than [`PROVIDERS_MAX_BYTES`].
    #[error("{url}: body larger than the {} MiB cap", PROVIDERS_MAX_BYTES / (1024 * 1024))]
    TooLarge {
        /// The URL.
        url: String,
    },
    /// The providers document is not JSON, or not a list/object of providers.
    #[error("{origin}: not a providers list: {why}")]
    BadJson {
        /// The URL or file.
        origin: String,
        /// The parser's message (with line and column).
        why: String,
    },
    /// The opt-out file has lines that are not domains. An opt-out we
    /// cannot read is not silently skipped: a typo there would mean probing
    /// someone who asked us not to.
    #[error("opt-out list has invalid lines, nothing loaded:\n  {}", lines.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    OptOut {
        /// Every bad line, with file and line number.
        lines: Vec<BadLine>,
    },
}

impl SourceError {
    /// The message without the file or URL it names, for a
    /// [`SourceProblem`] whose `source` already says which one.
    pub fn detail(&self) -> String {
        match self {
            Self::Read { source, .. } => format!("cannot read: {source}"),
            Self::CsvHeader { why, .. } => why.clone(),
            Self::Fetch { why, .. } => format!("cannot fetch: {why}"),
            Self::HttpStatus { status, .. } => format!("answered HTTP {status}"),
            Self::TooLarge { .. } => format!(
                "body larger than the {} MiB cap",
                PROVIDERS_MAX_BYTES / (1024 * 1024)
            ),
            Self::BadJson { why, .. } => format!("not a providers list: {why}"),
            Self::UnknownFormat { .. } | Self::OptOut { .. } => self.to_string(),
        }
    }
}

/// One entry of a source that could not be used, or a source that failed
/// as a whole (then `line`, `entry` are `None` and `text` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// The source's label ([`SourceSpec::label`]).
    pub source: String,
    /// 1-based line in a text or CSV file (a CSV record's first line).
    pub line: Option<usize>,
    /// 0-based position of the entry in a providers document. JSON has no
    /// useful line numbers once parsed; the index is what `jq '.[N]'` takes.
    pub entry: Option<usize>,
    /// The entry as written.
    pub text: String,
    /// Why it was rejected.
    pub error: String,
}

impl fmt::Display for SourceProblem {
    /// `FILE:LINE: "text": error` for lines, `SOURCE[N]: "text": error` for
    /// providers entries, `SOURCE: error` for a failed source.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(entry) = self.entry {
            write!(f, "[{entry}]")?;
        }
        f.write_str(": ")?;
        if !self.text.is_empty() {
            write!(f, "{:?}: ", self.text)?;
        }
        f.write_str(&self.error)
    }
}

impl std::error::Error for SourceProblem {}

impl SourceProblem {
    /// Whether the whole source failed (unreadable, unreachable, not a
    /// list) rather than one of its entries.
    pub fn is_whole(&self) -> bool {
        self.line.is_none() && self.entry.is_none() && self.text.is_empty()
    }

    pub(super) fn whole(source: &str, error: impl Into<String>) -> Self {
        Self {
            source: source.to_string(),
            line: None,
            entry: None,
            text: String::new(),
            error: error.into(),
        }
    }

    pub(super) fn failed(source: &str, e: &SourceError) -> Self {
        Self::whole(source, e.detail())
    }

    pub(super) fn from_bad_line(source: &str, b: BadLine) -> Self {
        Self {
            source: source.to_string(),
            line: Some(b.line),
            entry: None,
            text: b.text,
            error: b.error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display() {
        let p = SourceProblem {
            source: "l.txt".into(),
            line: Some(4),
            entry: None,
            text: "bad domain".into(),
            error: "oops".into(),
        };
        assert_eq!(p.to_string(), "l.txt:4: \"bad domain\": oops");
        let p = SourceProblem {
            source: "p.json".into(),
            line: None,
            entry: Some(2),
            text: "x".into(),
            error: "oops".into(),
        };
        assert_eq!(p.to_string(), "p.json[2]: \"x\": oops");
        assert_eq!(
            SourceProblem::whole("http://h/p", "down").to_string(),
            "http://h/p: down"
        );
    }
}
