//! `status`: a crawl's progress, its workers (live by heartbeat, stale,
//! stopped) with their rates, and expired leases waiting for takeover
//! ([`crate::crawl::status`] formats; this reads and prints).

use super::AppError;
use super::crawl::{AUTO_LABEL, open_store};
use crate::crawl::iso_week_label;
use crate::crawl::status::StatusView;

/// `status --crawl latest`: the latest started crawl.
pub const LATEST_LABEL: &str = "latest";

/// What `status` shows.
#[derive(Debug, Clone)]
pub struct StatusRun {
    /// PostgreSQL URL.
    pub database_url: String,
    /// A label, `auto` (this ISO week's) or `latest`.
    pub crawl: String,
    /// Print JSON ([`StatusView`]) instead of text.
    pub json: bool,
}

/// Reads the crawl's status.
pub async fn status_view(a: &StatusRun) -> Result<StatusView, AppError> {
    let store = open_store(&a.database_url).await?;
    let label = match a.crawl.as_str() {
        AUTO_LABEL => iso_week_label(time::OffsetDateTime::now_utc()),
        LATEST_LABEL => store
            .latest_label()
            .await?
            .ok_or_else(|| AppError::NoCrawl(LATEST_LABEL.into()))?,
        l => l.to_string(),
    };
    let row = store
        .crawl_row(&label)
        .await?
        .ok_or(AppError::NoCrawl(label))?;
    Ok(StatusView::from_rows(&store.status_rows(row).await?))
}

/// `status`: prints the view.
pub async fn status(a: StatusRun) -> Result<(), AppError> {
    let v = status_view(&a).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", v.render());
    }
    Ok(())
}
