//! Recording results: one transaction per batch of set-based statements.

use super::rows;
use super::{Store, StoreError};
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

impl Store {
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
}

/// Our row structs always serialise (no maps with non-string keys).
/// JSON text of rows (our row types always serialise).
fn text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
