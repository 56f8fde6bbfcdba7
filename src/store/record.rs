//! Recording results: one transaction per batch of set-based statements.

use super::{Store, StoreError};
use super::{copy, rows};
use crate::model::report::DomainReport;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

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

/// Creates this connection's staging tables if they are missing: one per
/// table of the write path, shaped like it (`LIKE … INCLUDING DEFAULTS`, so
/// `results.recorded_at` defaults to the transaction's `now()`; and its
/// compression: a value is compressed once, in staging, and `INSERT …
/// SELECT` moves the compressed datum as it is), emptied at every commit. Temporary tables are per connection, so concurrent writers
/// never see each other's staged rows. One round trip (simple query).
static STAGING_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut sql = String::from("SET LOCAL client_min_messages = warning;\n");
    for t in std::iter::once("results").chain(CHILD_TABLES) {
        sql.push_str(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS stage_{t} (LIKE {t} INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION) ON COMMIT DELETE ROWS;\n"
        ));
    }
    sql
});

/// Moves the staged rows of every [`CHILD_TABLES`] table into place and
/// marks the batch's new domains done (`$1` the crawl, `$2` their ids), in
/// one statement: data-modifying CTEs run once each, and the foreign keys
/// between them (chain_members to endpoints) are checked at its end.
static MERGE_CHILDREN_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut ctes: Vec<String> = CHILD_TABLES
        .iter()
        .map(|t| format!("{t}_in AS (INSERT INTO {t} SELECT * FROM stage_{t} RETURNING 1)"))
        .collect();
    ctes.push(
        "done AS (
            UPDATE crawl_queue
               SET state = 'done', lease_owner = NULL, lease_until = NULL,
                   last_error = NULL, done_at = now()
             WHERE crawl_id = $1 AND domain_id = ANY($2::bigint[])
            RETURNING 1)"
            .to_string(),
    );
    format!("WITH {} SELECT count(*) FROM done", ctes.join(",\n"))
});

impl Store {
    /// Stores probe reports: the whole batch in one transaction (each
    /// domain's result, endpoints, chains, certificates and DNS answers, and
    /// its queue row set to `done`, all commit together). A domain that
    /// already has a result in this crawl writes nothing (not an error): an
    /// expired lease may make two workers probe it. Returns how many
    /// domains were newly recorded. On an error nothing of the batch is
    /// stored and recording it again is safe.
    ///
    /// The rows travel by `COPY` into per-connection staging tables
    /// ([`super::copy`]) and are merged set-based: lock the queue rows, copy
    /// and insert the results (`ON CONFLICT DO NOTHING RETURNING` tells
    /// which domains are new), upsert the certificates, copy the new
    /// domains' rows of every [`CHILD_TABLES`] table, then one statement
    /// moves them into place and updates the queue. (One transaction per
    /// domain capped a crawl near 140 domains/s; the batch as one JSON
    /// document per table cost PostgreSQL ~1.5× the CPU of COPY per row.)
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
        // Each report's rows per table, encoded for COPY table by table.
        let rows: Vec<(i64, rows::Rows)> = batch
            .iter()
            .map(|(id, r)| (*id, rows::from_report(r)))
            .collect();
        let arrays = self.array_columns().await?;
        let no_arrays = HashSet::new();
        let arrays_of = |t: &str| arrays.get(t).unwrap_or(&no_arrays);
        sqlx::raw_sql(sqlx::AssertSqlSafe(STAGING_SQL.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(&e)?;
        let staged = copy::encode(
            "results",
            arrays_of("results"),
            crawl_id,
            rows.iter().map(|(id, r)| (*id, &r.result)),
        )?;
        copy_in(&mut tx, "stage_results", &staged)
            .await
            .map_err(&e)?;
        // The batch's report JSON, encoded: not needed past the COPY.
        drop(staged);
        let new_ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO results SELECT * FROM stage_results ORDER BY domain_id
             ON CONFLICT (crawl_id, domain_id) DO NOTHING
             RETURNING domain_id",
        )
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
        // A shared intermediate is seen by thousands of domains per crawl.
        // `ON CONFLICT DO UPDATE … WHERE` would lock its row in every batch
        // even when the WHERE is false, serialising the writers on it until
        // each commits (measured: 1.4 s waits, half the writer's rate).
        // So: insert the unknown ones (`DO NOTHING` takes no lock on an
        // existing row), then lock, in sha256 order (no deadlock between
        // writers), and update only the rows whose sightings widen;
        // last_seen is kept to 10 minutes.
        sqlx::query(
            "WITH seen AS (
                 SELECT r.* FROM jsonb_array_elements($1::jsonb) x,
                      LATERAL jsonb_populate_record(NULL::certificates, x) r),
             fresh AS (
                 INSERT INTO certificates SELECT * FROM seen ORDER BY sha256
                 ON CONFLICT (sha256) DO NOTHING),
             widen AS (
                 SELECT c.sha256, s.first_seen, s.last_seen
                   FROM certificates c JOIN seen s USING (sha256)
                  WHERE s.first_seen < c.first_seen
                     OR s.last_seen > c.last_seen + interval '10 minutes'
                  ORDER BY c.sha256
                    FOR NO KEY UPDATE OF c)
             UPDATE certificates c
                SET first_seen = LEAST(c.first_seen, w.first_seen),
                    last_seen = GREATEST(c.last_seen, w.last_seen)
               FROM widen w
              WHERE c.sha256 = w.sha256",
        )
        .bind(Value::Array(certs.into_values().collect()))
        .execute(&mut *tx)
        .await
        .map_err(&e)?;
        // Every row of the new domains, table by table, into staging.
        fn stage<'r, T: serde::Serialize + 'r>(
            table: &'static str,
            arrays: &HashSet<String>,
            crawl_id: i64,
            rows: &[&'r (i64, rows::Rows)],
            pick: impl Fn(&'r rows::Rows) -> &'r [T],
        ) -> Result<copy::CopyBatch, copy::CopyEncodeError> {
            copy::encode(
                table,
                arrays,
                crawl_id,
                rows.iter()
                    .flat_map(|(id, r)| pick(r).iter().map(move |x| (*id, x))),
            )
        }
        let children = [
            stage(
                "endpoints",
                arrays_of("endpoints"),
                crawl_id,
                &new_rows,
                |r| &r.endpoints,
            )?,
            stage(
                "chain_members",
                arrays_of("chain_members"),
                crawl_id,
                &new_rows,
                |r| &r.chain_members,
            )?,
            stage(
                "dns_records",
                arrays_of("dns_records"),
                crawl_id,
                &new_rows,
                |r| &r.dns_records,
            )?,
            stage(
                "acceptance_attempts",
                arrays_of("acceptance_attempts"),
                crawl_id,
                &new_rows,
                |r| &r.acceptance_attempts,
            )?,
            stage(
                "acceptance_dialback",
                arrays_of("acceptance_dialback"),
                crawl_id,
                &new_rows,
                |r| r.acceptance_dialback.as_slice(),
            )?,
            stage(
                "inbound_streams",
                arrays_of("inbound_streams"),
                crawl_id,
                &new_rows,
                |r| &r.inbound_streams,
            )?,
        ];
        for (table, staged) in CHILD_TABLES.iter().zip(&children) {
            if staged.rows > 0 {
                copy_in(&mut tx, &format!("stage_{table}"), staged)
                    .await
                    .map_err(&e)?;
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(MERGE_CHILDREN_SQL.as_str()))
            .bind(crawl_id)
            .bind(&new_ids)
            .execute(&mut *tx)
            .await
            .map_err(&e)?;
        tx.commit().await.map_err(&e)?;
        Ok(new_ids.len())
    }
}

/// The most COPY data sent in one CopyData message. sqlx encodes a message
/// whole into the connection's write buffer and keeps that buffer's
/// capacity: one message per batch made each writer connection hold a
/// copy of its largest batch (~1 MB of report JSON; 21.6 MB of the
/// crawler's 84.6 MB peak heap under heaptrack, issue 13 step 8).
const COPY_CHUNK: usize = 64 * 1024;

/// Sends one staged batch with `COPY … FROM STDIN`, in [`COPY_CHUNK`]
/// pieces (PostgreSQL joins CopyData messages: rows may span them).
async fn copy_in(
    conn: &mut sqlx::PgConnection,
    table: &str,
    staged: &copy::CopyBatch,
) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(&staged.statement(table)).await?;
    for chunk in staged.data.chunks(COPY_CHUNK) {
        if let Err(err) = copy.send(chunk).await {
            let _ = copy.abort(err.to_string()).await;
            return Err(err);
        }
    }
    copy.finish().await
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
