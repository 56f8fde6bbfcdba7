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
//! SQL here stays thin, runtime-checked (`sqlx::query`, no macros), and
//! hands those rows to `jsonb_populate_record` so column names are written
//! once, in `schema.sql` and the row structs.

mod error;
pub mod migrate;
pub mod rows;

pub use error::{StoreError, redact_url};

use crate::model::report::DomainReport;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

/// Connections in the pool: workers lease and record in batches, so a few
/// connections serve many probing tasks.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How long to wait for a pooled connection (or to open one) before the
/// operation fails as [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Domains per `enqueue` statement: bounds the locks and memory of one
/// statement when a list has hundreds of thousands of names.
const ENQUEUE_CHUNK: usize = 10_000;

/// The tables holding per-domain rows of a result besides `results`
/// itself, in the order `Store::record` binds them (`$2, $3` for the first,
/// `$4, $5` for the second, ...): each takes the rows as one JSON text and
/// the domain id of each row.
pub const CHILD_TABLES: [&str; 6] = [
    "endpoints",
    "chain_members",
    "dns_records",
    "acceptance_attempts",
    "acceptance_dialback",
    "inbound_streams",
];

/// The statement that inserts every [`CHILD_TABLES`] row of a batch and
/// marks its domains done: `$1` the crawl, then (rows, ids) per table, then
/// the ids of the domains recorded. Data-modifying CTEs run once each;
/// the foreign keys between them (chain_members to endpoints) are checked
/// at the end of the statement.
static CHILDREN_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut ctes: Vec<String> = CHILD_TABLES
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let (data, ids) = (2 + 2 * k, 3 + 2 * k);
            format!(
                "{name}_in AS (
                    INSERT INTO {name}
                    SELECT r.* FROM jsonb_array_elements(${data}::text::jsonb) WITH ORDINALITY AS e(x, i),
                         LATERAL jsonb_populate_record(NULL::{name},
                             x || jsonb_build_object('crawl_id', $1::bigint, 'domain_id', (${ids}::bigint[])[i])) r
                    RETURNING 1)"
            )
        })
        .collect();
    let done = 2 + 2 * CHILD_TABLES.len();
    ctes.push(format!(
        "done AS (
            UPDATE crawl_queue
               SET state = 'done', lease_owner = NULL, lease_until = NULL,
                   last_error = NULL, done_at = now()
             WHERE crawl_id = $1 AND domain_id = ANY(${done}::bigint[])
            RETURNING 1)"
    ));
    format!("WITH {} SELECT count(*) FROM done", ctes.join(",\n"))
});

/// Handle on the database; cheap to clone (a shared pool).
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    /// The URL without its password, for error messages.
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// What identifies a crawl's conditions (stored in `crawls`; see the
/// column comments in `schema.sql`).
#[derive(Debug, Clone, PartialEq)]
pub struct CrawlMeta {
    /// Unique label, e.g. `2026-W47`; an existing label is resumed.
    pub label: String,
    /// Where the domain list came from.
    pub sources: Value,
    /// Where the crawler runs from.
    pub vantage: String,
    /// The probe identity, if the acceptance probe runs.
    pub probe_domain: Option<String>,
    /// xmpp-survey version.
    pub software_version: String,
    /// webpki-roots version.
    pub roots_version: String,
    /// Effective configuration.
    pub config: Value,
}

/// A crawl as created or resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crawl {
    /// Its id, for every other call.
    pub id: i64,
    /// Its label.
    pub label: String,
    /// Whether the label existed: the queue already holds earlier work.
    pub resumed: bool,
}

/// The lifecycle state of a crawl (`crawls.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrawlStatus {
    /// Being worked on.
    Running,
    /// Every queued domain is done or not tested.
    Finished,
    /// Stopped early; resuming the label continues it.
    Interrupted,
}

impl CrawlStatus {
    /// The value stored in `crawls.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Interrupted => "interrupted",
        }
    }
}

/// One domain given to one worker until the lease expires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// For `record`, `retry_later`, `not_tested`.
    pub domain_id: i64,
    /// The domain to probe.
    pub domain: String,
    /// How many times it has been leased in this crawl, this one included:
    /// the crawler gives up after its retry budget.
    pub attempts: u32,
}

/// Queue counts of a crawl, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Waiting (possibly until `not_before`).
    pub queued: u64,
    /// Held by a worker (possibly expired).
    pub leased: u64,
    /// Result stored.
    pub done: u64,
    /// Given up or excluded.
    pub not_tested: u64,
}

impl Progress {
    /// Every domain of the crawl.
    pub fn total(&self) -> u64 {
        self.queued + self.leased + self.done + self.not_tested
    }

    /// Nothing left to lease or wait for.
    pub fn is_complete(&self) -> bool {
        self.queued == 0 && self.leased == 0
    }
}

/// Counts of results by one column's value (`None`: NULL, e.g. no TLS).
pub type Counts = BTreeMap<Option<String>, u64>;

/// Per-service counts of a crawl's results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    /// By `*_status`.
    pub status: Counts,
    /// By `*_starttls` (required / optional / absent).
    pub starttls: Counts,
    /// By `*_tls_version`.
    pub tls_version: Counts,
    /// By `*_chain_verdict`.
    pub chain_verdict: Counts,
    /// By `*_eku_class`.
    pub eku_class: Counts,
}

/// The headline counts of one crawl (MEASUREMENTS §4), from the typed
/// result columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrawlSummary {
    /// Results stored.
    pub results: u64,
    /// Client-to-server.
    pub c2s: ServiceCounts,
    /// Server-to-server.
    pub s2s: ServiceCounts,
    /// By acceptance verdict.
    pub acceptance: Counts,
    /// By (software name, version) from XEP-0092.
    pub software: BTreeMap<(Option<String>, Option<String>), u64>,
}

/// One query for every dimension of [`CrawlSummary`]: (dimension, value,
/// second value, count).
const SUMMARY_SQL: &str = "
SELECT 'c2s_status', c2s_status, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'c2s_starttls', c2s_starttls, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'c2s_tls_version', c2s_tls_version, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'c2s_chain_verdict', c2s_chain_verdict, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'c2s_eku_class', c2s_eku_class, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_status', s2s_status, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_starttls', s2s_starttls, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_tls_version', s2s_tls_version, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_chain_verdict', s2s_chain_verdict, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 's2s_eku_class', s2s_eku_class, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'acceptance', acceptance, NULL, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2
UNION ALL SELECT 'software', software_name, software_version, count(*) FROM results WHERE crawl_id = $1 GROUP BY 2, 3
";

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
        })
    }

    /// The pool, for queries the store does not wrap (reports, tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
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

    /// Creates the crawl, or resumes the one with the same label: its
    /// status goes back to `running` and its queue is kept, so finished
    /// domains are not probed again. The stored metadata is the one of the
    /// first start.
    pub async fn create_or_resume_crawl(&self, meta: &CrawlMeta) -> Result<Crawl, StoreError> {
        let (id, label, resumes): (i64, String, i32) = sqlx::query_as(
            "INSERT INTO crawls (label, sources, vantage, probe_domain, software_version, roots_version, config)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (label) DO UPDATE
                SET status = 'running', finished_at = NULL, error = NULL,
                    resumes = crawls.resumes + 1, resumed_at = now()
             RETURNING id, label, resumes",
        )
        .bind(&meta.label)
        .bind(&meta.sources)
        .bind(&meta.vantage)
        .bind(&meta.probe_domain)
        .bind(&meta.software_version)
        .bind(&meta.roots_version)
        .bind(&meta.config)
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(Crawl {
            id,
            label,
            resumed: resumes > 0,
        })
    }

    /// The crawl with this label, for `worker --crawl LABEL` (which joins a
    /// crawl someone else created and filled).
    pub async fn find_crawl(&self, label: &str) -> Result<Option<Crawl>, StoreError> {
        let row: Option<(i64, String, i32)> =
            sqlx::query_as("SELECT id, label, resumes FROM crawls WHERE label = $1")
                .bind(label)
                .fetch_optional(&self.pool)
                .await
                .map_err(self.err())?;
        Ok(row.map(|(id, label, resumes)| Crawl {
            id,
            label,
            resumed: resumes > 0,
        }))
    }

    /// Adds domains to a crawl; returns how many were newly queued. Each
    /// name is upserted into `domains` (`last_seen` refreshed); opted-out
    /// names are skipped entirely; a domain already in this crawl is never
    /// queued again (whatever its state). Names must be normalised.
    pub async fn enqueue(&self, crawl_id: i64, domains: &[String]) -> Result<u64, StoreError> {
        if let Some(bad) = domains.iter().find(|d| !is_normalised(d)) {
            return Err(StoreError::InvalidDomain(bad.clone()));
        }
        let mut queued = 0;
        for chunk in domains.chunks(ENQUEUE_CHUNK) {
            queued += sqlx::query(
                "WITH input AS (
                    SELECT DISTINCT n AS name FROM unnest($2::text[]) AS n
                    WHERE NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.domain = n)
                 ), upserted AS (
                    INSERT INTO domains (name) SELECT name FROM input ORDER BY name
                    ON CONFLICT (name) DO UPDATE SET last_seen = now()
                    RETURNING id
                 )
                 INSERT INTO crawl_queue (crawl_id, domain_id)
                 SELECT $1, id FROM upserted
                 ON CONFLICT (crawl_id, domain_id) DO NOTHING",
            )
            .bind(crawl_id)
            .bind(chunk)
            .execute(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                    StoreError::NoSuchCrawl(crawl_id)
                }
                _ => self.err()(e),
            })?
            .rows_affected();
        }
        Ok(queued)
    }

    /// Gives `worker` up to `max` domains for `lease_for`: queued ones whose
    /// `not_before` has passed and leased ones whose lease expired (a worker
    /// that died). `FOR UPDATE SKIP LOCKED` means concurrent callers never
    /// get the same domain. Each lease counts as an attempt.
    pub async fn lease(
        &self,
        crawl_id: i64,
        worker: &str,
        max: usize,
        lease_for: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let rows: Vec<(i64, String, i32)> = sqlx::query_as(
            "WITH picked AS (
                SELECT domain_id FROM crawl_queue
                WHERE crawl_id = $1
                  AND ((state = 'queued' AND not_before <= now())
                       OR (state = 'leased' AND lease_until <= now()))
                LIMIT $3
                FOR UPDATE SKIP LOCKED
             )
             UPDATE crawl_queue q
                SET state = 'leased', lease_owner = $2,
                    lease_until = now() + $4::interval, attempts = q.attempts + 1
               FROM picked JOIN domains d ON d.id = picked.domain_id
              WHERE q.crawl_id = $1 AND q.domain_id = picked.domain_id
             RETURNING q.domain_id, d.name, q.attempts",
        )
        .bind(crawl_id)
        .bind(worker)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .bind(lease_for)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        let mut leases: Vec<Lease> = rows
            .into_iter()
            .map(|(domain_id, domain, attempts)| Lease {
                domain_id,
                domain,
                attempts: u32::try_from(attempts).unwrap_or(0),
            })
            .collect();
        leases.sort_by_key(|l| l.domain_id);
        Ok(leases)
    }

    /// Stores probe reports: the whole batch in one transaction of a few
    /// set-based statements (each domain's result, endpoints, chains,
    /// certificates and DNS answers, and its queue row set to `done`, all
    /// commit together). A domain that already has a result in this crawl
    /// writes nothing (not an error): an expired lease may make two workers
    /// probe it. Returns how many domains were newly recorded. On an error
    /// nothing of the batch is stored and recording it again is safe.
    ///
    /// (One transaction per domain cost nine round trips each and capped a
    /// crawl near 140 domains/s. A batch costs four statements, plus BEGIN
    /// and COMMIT: lock the queue rows, insert the results, upsert the
    /// certificates, then one statement for every per-domain table of
    /// [`CHILD_TABLES`] and the queue update.)
    pub async fn record(
        &self,
        crawl_id: i64,
        batch: &[(i64, DomainReport)],
    ) -> Result<usize, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let e = self.err();
        let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
        let mut tx = self.pool.begin().await.map_err(&e)?;
        // Locks the queue rows (in id order: no deadlock between writers);
        // a concurrent record of the same domain waits here and then finds
        // the result already present.
        let stored: Vec<(i64, String)> = sqlx::query_as(
            "SELECT q.domain_id, d.name FROM crawl_queue q JOIN domains d ON d.id = q.domain_id
             WHERE q.crawl_id = $1 AND q.domain_id = ANY($2)
             ORDER BY q.domain_id FOR UPDATE OF q",
        )
        .bind(crawl_id)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(&e)?;
        let names: HashMap<i64, String> = stored.into_iter().collect();
        for (domain_id, report) in batch {
            match names.get(domain_id) {
                None => {
                    return Err(StoreError::NotQueued {
                        crawl_id,
                        domain_id: *domain_id,
                    });
                }
                Some(stored) if *stored != report.domain => {
                    return Err(StoreError::DomainMismatch {
                        domain_id: *domain_id,
                        stored: stored.clone(),
                        reported: report.domain.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        // Rows go over the wire as one JSON text per table (no JSON value
        // trees in memory: a batch of reports is large), with the domain id
        // of the i-th element in the i-th element of an id array.
        let rows: Vec<(i64, rows::Rows)> = batch
            .iter()
            .map(|(id, r)| (*id, rows::from_report(r)))
            .collect();
        let results: Vec<&rows::ResultRow> = rows.iter().map(|(_, r)| &r.result).collect();
        let new_ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO results
             SELECT r.* FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS e(x, i),
                  LATERAL jsonb_populate_record(NULL::results,
                      x || jsonb_build_object('crawl_id', $2::bigint, 'domain_id', ($3::bigint[])[i],
                                              'recorded_at', now())) r
             ON CONFLICT (crawl_id, domain_id) DO NOTHING
             RETURNING domain_id",
        )
        .bind(text(&results))
        .bind(crawl_id)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(&e)?;
        if new_ids.is_empty() {
            tx.rollback().await.map_err(&e)?;
            return Ok(0);
        }
        let fresh: HashSet<i64> = new_ids.iter().copied().collect();
        let new_rows: Vec<&(i64, rows::Rows)> =
            rows.iter().filter(|(id, _)| fresh.contains(id)).collect();
        // Certificates once per batch, sorted (lock order), sightings merged.
        let mut certs: BTreeMap<String, Value> = BTreeMap::new();
        for (_, r) in &new_rows {
            for c in &r.certificates {
                let v = json(c);
                let sha = v["sha256"].as_str().unwrap_or_default().to_string();
                match certs.get_mut(&sha) {
                    None => {
                        certs.insert(sha, v);
                    }
                    Some(seen) => {
                        let at = |x: &Value| {
                            x.as_str().and_then(|s| {
                                time::OffsetDateTime::parse(
                                    s,
                                    &time::format_description::well_known::Rfc3339,
                                )
                                .ok()
                            })
                        };
                        for (k, keep_min) in [("first_seen", true), ("last_seen", false)] {
                            if let (Some(a), Some(b)) = (at(&seen[k]), at(&v[k]))
                                && ((keep_min && b < a) || (!keep_min && b > a))
                            {
                                seen[k] = v[k].clone();
                            }
                        }
                    }
                }
            }
        }
        sqlx::query(
            "INSERT INTO certificates
             SELECT r.* FROM jsonb_array_elements($1::jsonb) x,
                  LATERAL jsonb_populate_record(NULL::certificates, x) r
             ORDER BY r.sha256
             ON CONFLICT (sha256) DO UPDATE
                SET first_seen = LEAST(certificates.first_seen, EXCLUDED.first_seen),
                    last_seen = GREATEST(certificates.last_seen, EXCLUDED.last_seen)
              -- A shared intermediate is seen by thousands of domains per
              -- crawl: touching its row every time serialises the writers on
              -- one row lock and bloats it. last_seen is kept to 10 minutes.
              WHERE EXCLUDED.first_seen < certificates.first_seen
                 OR EXCLUDED.last_seen > certificates.last_seen + interval '10 minutes'",
        )
        .bind(Value::Array(certs.into_values().collect()))
        .execute(&mut *tx)
        .await
        .map_err(&e)?;
        // (text, ids) for one table: every row of the new domains.
        fn table<'r, T: serde::Serialize + 'r>(
            rows: &[&'r (i64, rows::Rows)],
            pick: impl Fn(&'r rows::Rows) -> &'r [T],
        ) -> (String, Vec<i64>) {
            let mut ids = Vec::new();
            let mut items: Vec<&T> = Vec::new();
            for (id, r) in rows {
                for x in pick(r) {
                    ids.push(*id);
                    items.push(x);
                }
            }
            (text(&items), ids)
        }
        // Every per-domain table and the queue update in one statement
        // (the order of CHILD_TABLES; foreign keys are checked at its end).
        let children = [
            table(&new_rows, |r| &r.endpoints),
            table(&new_rows, |r| &r.chain_members),
            table(&new_rows, |r| &r.dns_records),
            table(&new_rows, |r| &r.acceptance_attempts),
            table(&new_rows, |r| r.acceptance_dialback.as_slice()),
            table(&new_rows, |r| &r.inbound_streams),
        ];
        let mut query = sqlx::query(sqlx::AssertSqlSafe(CHILDREN_SQL.as_str())).bind(crawl_id);
        for (data, data_ids) in children {
            query = query.bind(data).bind(data_ids);
        }
        query.bind(&new_ids).execute(&mut *tx).await.map_err(&e)?;
        tx.commit().await.map_err(&e)?;
        Ok(new_ids.len())
    }

    /// Puts a leased domain back in the queue, leasable again `after` from
    /// now (retry backoff), keeping `error` as the reason. A domain already
    /// done is left alone (another worker recorded it).
    pub async fn retry_later(
        &self,
        crawl_id: i64,
        domain_id: i64,
        after: Duration,
        error: &str,
    ) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawl_queue
                SET state = 'queued', not_before = now() + $3::interval, last_error = $4,
                    lease_owner = NULL, lease_until = NULL
              WHERE crawl_id = $1 AND domain_id = $2 AND state <> 'done'",
        )
        .bind(crawl_id)
        .bind(domain_id)
        .bind(after)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        self.ensure_queued(changed, crawl_id, domain_id).await
    }

    /// Marks a domain as not tested (retry budget spent, excluded), with the
    /// reason: it counts as handled but has no result. A domain already done
    /// is left alone.
    pub async fn not_tested(
        &self,
        crawl_id: i64,
        domain_id: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawl_queue
                SET state = 'not_tested', last_error = $3, done_at = now(),
                    lease_owner = NULL, lease_until = NULL
              WHERE crawl_id = $1 AND domain_id = $2 AND state <> 'done'",
        )
        .bind(crawl_id)
        .bind(domain_id)
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        self.ensure_queued(changed, crawl_id, domain_id).await
    }

    /// After an update that changed nothing: fine if the domain is in the
    /// queue (it was done), [`StoreError::NotQueued`] if it is not.
    async fn ensure_queued(
        &self,
        changed: u64,
        crawl_id: i64,
        domain_id: i64,
    ) -> Result<(), StoreError> {
        if changed > 0 {
            return Ok(());
        }
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM crawl_queue WHERE crawl_id = $1 AND domain_id = $2)",
        )
        .bind(crawl_id)
        .bind(domain_id)
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        if exists {
            Ok(())
        } else {
            Err(StoreError::NotQueued {
                crawl_id,
                domain_id,
            })
        }
    }

    /// Queue counts by state: what a progress bar and the "is it over"
    /// check need.
    pub async fn progress(&self, crawl_id: i64) -> Result<Progress, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, count(*) FROM crawl_queue WHERE crawl_id = $1 GROUP BY state",
        )
        .bind(crawl_id)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        let mut p = Progress::default();
        for (state, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match state.as_str() {
                "queued" => p.queued = n,
                "leased" => p.leased = n,
                "done" => p.done = n,
                _ => p.not_tested += n,
            }
        }
        Ok(p)
    }

    /// The headline counts of a crawl (MEASUREMENTS §4) from the typed
    /// result columns; percentages are the report's job.
    pub async fn summary(&self, crawl_id: i64) -> Result<CrawlSummary, StoreError> {
        type Row = (String, Option<String>, Option<String>, i64);
        let rows: Vec<Row> = sqlx::query_as(SUMMARY_SQL)
            .bind(crawl_id)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        let mut s = CrawlSummary::default();
        for (dim, value, second, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            let counts = match dim.as_str() {
                "acceptance" => {
                    // Every result has exactly one acceptance verdict.
                    s.results += n;
                    &mut s.acceptance
                }
                "software" => {
                    s.software.insert((value, second), n);
                    continue;
                }
                _ => match dim.split_once('_') {
                    Some(("c2s", column)) => service_counts(&mut s.c2s, column),
                    Some(("s2s", column)) => service_counts(&mut s.s2s, column),
                    _ => None,
                }
                .expect("SUMMARY_SQL only names known dimensions"),
            };
            counts.insert(value, n);
        }
        Ok(s)
    }

    /// Ends (or re-opens, with `Running`) a crawl; `finished_at` is set for
    /// `Finished` and `Interrupted`; the error of an earlier
    /// [`Store::fail_crawl`] is cleared.
    pub async fn finish_crawl(&self, crawl_id: i64, status: CrawlStatus) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawls
                SET status = $2, error = NULL,
                    finished_at = CASE WHEN $2 = 'running' THEN NULL ELSE now() END
              WHERE id = $1",
        )
        .bind(crawl_id)
        .bind(status.as_str())
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NoSuchCrawl(crawl_id));
        }
        Ok(())
    }

    /// Marks a crawl as stopped on an error: status `failed`, `finished_at`
    /// now, and `error` saying why (kept until the crawl is resumed, which
    /// clears it). Its queue is kept: resuming the label continues it.
    pub async fn fail_crawl(&self, crawl_id: i64, error: &str) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawls SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1",
        )
        .bind(crawl_id)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NoSuchCrawl(crawl_id));
        }
        Ok(())
    }

    /// Records one process's resource use on a crawl
    /// (`crawls.listener_stats`, keyed by worker id: each process of a
    /// crawl has its own listener and descriptors; a later run of the same
    /// worker id replaces its entry).
    pub async fn record_listener_stats(
        &self,
        crawl_id: i64,
        worker_id: &str,
        stats: &Value,
    ) -> Result<(), StoreError> {
        let changed = sqlx::query(
            "UPDATE crawls
                SET listener_stats = coalesce(listener_stats, '{}'::jsonb) || jsonb_build_object($2::text, $3::jsonb)
              WHERE id = $1",
        )
        .bind(crawl_id)
        .bind(worker_id)
        .bind(stats)
        .execute(&self.pool)
        .await
        .map_err(self.err())?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NoSuchCrawl(crawl_id));
        }
        Ok(())
    }

    /// Every domain ever enqueued, minus opt-outs, sorted: the "db" domain
    /// source, so a weekly crawl re-measures everything seen before.
    pub async fn known_domains(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT name FROM domains d
             WHERE NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.domain = d.name)
             ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())
    }

    /// The opted-out domains (MEASUREMENTS §5).
    pub async fn opt_outs(&self) -> Result<HashSet<String>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT domain FROM opt_outs")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(names.into_iter().collect())
    }

    /// Records an opt-out (or updates its reason) and, in the same
    /// transaction, marks the domain `not_tested` wherever it is still
    /// queued, so a running crawl stops before probing it. A lease already
    /// handed out is not revoked.
    pub async fn add_opt_out(&self, domain: &str, reason: &str) -> Result<(), StoreError> {
        if !is_normalised(domain) {
            return Err(StoreError::InvalidDomain(domain.to_string()));
        }
        let e = self.err();
        let mut tx = self.pool.begin().await.map_err(&e)?;
        sqlx::query(
            "INSERT INTO opt_outs (domain, reason) VALUES ($1, $2)
             ON CONFLICT (domain) DO UPDATE SET reason = EXCLUDED.reason",
        )
        .bind(domain)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(&e)?;
        sqlx::query(
            "UPDATE crawl_queue q
                SET state = 'not_tested', done_at = now(), last_error = 'opted out: ' || $2
               FROM domains d
              WHERE d.name = $1 AND q.domain_id = d.id AND q.state = 'queued'",
        )
        .bind(domain)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(&e)?;
        tx.commit().await.map_err(&e)
    }
}

/// Our row structs always serialise (no maps with non-string keys).
/// JSON text of rows (our row types always serialise).
fn text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn service_counts<'a>(s: &'a mut ServiceCounts, column: &str) -> Option<&'a mut Counts> {
    Some(match column {
        "status" => &mut s.status,
        "starttls" => &mut s.starttls,
        "tls_version" => &mut s.tls_version,
        "chain_verdict" => &mut s.chain_verdict,
        "eku_class" => &mut s.eku_class,
        _ => return None,
    })
}

/// The form `domains.name` requires (its CHECK): non-empty, lowercase, no
/// trailing dot. `crate::domain` produces it.
fn is_normalised(d: &str) -> bool {
    !d.is_empty() && !d.ends_with('.') && d.to_lowercase() == d
}
