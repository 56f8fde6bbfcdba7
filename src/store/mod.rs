//! The PostgreSQL store of a crawl: the schema (`schema.sql`), its
//! migrations, the work queue workers lease domains from, and the results.
//!
//! Why PostgreSQL and a queue in the database: a crawl of tens of thousands
//! of domains runs for hours, may be interrupted and resumed, and may be
//! shared by several workers; `FOR UPDATE SKIP LOCKED` leases give each
//! domain to exactly one worker at a time, expired leases are taken again
//! after a crash, and the results' primary key makes a duplicate impossible.
//!
//! The mapping from a report to rows is pure ([`rows::from_report`]); the
//! SQL here stays thin, runtime-checked (`sqlx::query`, no macros); the
//! write path sends those rows with `COPY` ([`copy`]) named by the row
//! structs' fields, so column names are written once, in `schema.sql` and
//! the row structs.

pub mod changes;
mod copy;
mod crawls;
mod error;
pub mod migrate;
mod prune;
mod queue;
mod record;
pub mod rows;
mod workers;

pub use crawls::{Counts, Crawl, CrawlMeta, CrawlStatus, CrawlSummary, Progress, ServiceCounts};
pub use error::{StoreError, redact_url};
pub use prune::{CrawlPrune, DEFAULT_PRUNE_BATCH, PrunePlan, PruneSummary};
pub use queue::Lease;
pub use record::CHILD_TABLES;
pub use workers::{CrawlRow, StatusRows, WorkerInfo, WorkerRow, relay_channel};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Connections in the pool: workers lease and record in batches, so a few
/// connections serve many probing tasks.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How long to wait for a pooled connection (or to open one) before the
/// operation fails as [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Handle on the database; cheap to clone (a shared pool).
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    /// The URL without its password, for error messages.
    url: String,
    /// Per table, its PostgreSQL array columns (the COPY encoding of a
    /// JSON array differs for them); read from the catalogue once.
    array_columns: Arc<tokio::sync::OnceCell<ArrayColumns>>,
}

/// Table name → its array columns.
type ArrayColumns = HashMap<String, HashSet<String>>;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

impl Store {
    /// Opens a pool on `url` and checks one connection works, so a wrong
    /// URL or a down server is reported at start-up, not mid-crawl. The
    /// error names the URL without its password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let redacted = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| StoreError::Config {
                url: redacted.clone(),
                source,
            })?
            .application_name("xmpp-survey");
        // One direct connection first: the pool would retry a refused
        // connection until ACQUIRE_TIMEOUT, this fails at once with the
        // real cause.
        let probe = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(|e| StoreError::from_sqlx(&redacted, e))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::from_sqlx(&redacted, e))?;
        Ok(Self {
            pool,
            url: redacted,
            array_columns: Arc::default(),
        })
    }

    /// The pool, for queries the store does not wrap (reports, tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The array columns of every table of the public schema, read once
    /// per store (after migrations: the write path is the first to ask).
    async fn array_columns(&self) -> Result<&ArrayColumns, StoreError> {
        self.array_columns
            .get_or_try_init(|| async {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns
                     WHERE table_schema = 'public' AND data_type = 'ARRAY'",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(self.err())?;
                let mut map = ArrayColumns::new();
                for (table, column) in rows {
                    map.entry(table).or_default().insert(column);
                }
                Ok(map)
            })
            .await
    }

    fn err(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        |e| StoreError::from_sqlx(&self.url, e)
    }

    /// Brings the schema to this binary's version; returns the versions
    /// applied now (empty when already current). Holds a session advisory
    /// lock so concurrent callers apply each version once; refuses a
    /// database newer than the binary ([`StoreError::SchemaTooNew`]).
    pub async fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        self.migrate_to(migrate::BINARY_VERSION).await
    }

    /// Like [`Store::migrate`], but stops at `version` (a staged upgrade,
    /// or a test that needs a database at an older schema): applies the
    /// missing migrations up to it and never downgrades (a database
    /// already past `version` is left alone). A version this binary does
    /// not know is [`StoreError::UnknownSchemaVersion`].
    pub async fn migrate_to(&self, version: i32) -> Result<Vec<i32>, StoreError> {
        if !migrate::MIGRATIONS.iter().any(|m| m.version == version) {
            return Err(StoreError::UnknownSchemaVersion {
                version,
                binary: migrate::BINARY_VERSION,
            });
        }
        let mut conn = self.pool.acquire().await.map_err(self.err())?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(migrate::MIGRATION_LOCK)
            .execute(&mut *conn)
            .await
            .map_err(self.err())?;
        let result = migrate::apply_missing(&mut conn, &self.url, version).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(migrate::MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // Never return a connection that may still hold the lock.
            conn.close_on_drop();
        }
        result
    }

    /// The database's schema version (`None` before the first migration).
    pub async fn schema_version(&self) -> Result<Option<i32>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(self.err())?;
        migrate::current_version(&mut conn)
            .await
            .map_err(self.err())
    }
}
