//! Why a report could not be written.

use std::path::PathBuf;

/// A report error.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A query failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// No crawl has that label (or the database holds no crawl).
    #[error("no crawl labelled {0:?} in the database")]
    NoCrawl(String),
    /// The CA cut-over file is unusable.
    #[error("CA cut-over seeds: {0}")]
    Seeds(#[from] super::seeds::SeedsError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing a CSV file failed.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// A template failed to render (a bug).
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    /// JSON serialisation failed (a bug).
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
