//! `domain_changes` (schema version 4): per-domain changes between a
//! finished crawl and the previous finished crawl of the same vantage.
//! Reads each crawl's typed state, diffs it with the pure
//! [`crate::model::change::diff`] and replaces the crawl's rows, inside
//! the transaction that marks the crawl finished.

use crate::model::change::{
    Change, ChangeKind, ChangeScope, DomainState, LeafCert, ServiceState, diff,
};
use crate::model::names::Named;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, BTreeSet};
use time::Date;

/// Per-domain state of one crawl: the result's typed columns plus the
/// primary endpoint's leaf (the first endpoint per service, in trial
/// order, whose TLS session completed: as [`crate::verdict`] chooses it).
const STATE_SQL: &str = "
SELECT r.domain_id, r.acceptance, r.software_name, r.software_version,
       r.c2s_eku_class, r.c2s_starttls, c2.leaf_sha256, (c2.not_after AT TIME ZONE 'UTC')::date,
       r.s2s_eku_class, r.s2s_starttls, s2.leaf_sha256, (s2.not_after AT TIME ZONE 'UTC')::date
  FROM results r
  LEFT JOIN LATERAL (
       SELECT e.leaf_sha256, c.not_after FROM endpoints e JOIN certificates c ON c.sha256 = e.leaf_sha256
        WHERE e.crawl_id = r.crawl_id AND e.domain_id = r.domain_id AND e.service = 'c2s'
          AND e.tls_version IS NOT NULL AND e.tls_failure IS NULL
        ORDER BY e.ordinal LIMIT 1) c2 ON true
  LEFT JOIN LATERAL (
       SELECT e.leaf_sha256, c.not_after FROM endpoints e JOIN certificates c ON c.sha256 = e.leaf_sha256
        WHERE e.crawl_id = r.crawl_id AND e.domain_id = r.domain_id AND e.service = 's2s'
          AND e.tls_version IS NOT NULL AND e.tls_failure IS NULL
        ORDER BY e.ordinal LIMIT 1) s2 ON true
 WHERE r.crawl_id = $1";

type StateRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Date>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Date>,
);

/// Parses a stored enum name back into its type (the CHECK lists
/// guarantee it is one; an unknown one is treated as not observed).
fn parse<T: serde::de::DeserializeOwned>(s: Option<String>) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s?)).ok()
}

fn service(
    eku: Option<String>,
    starttls: Option<String>,
    sha: Option<String>,
    until: Option<Date>,
) -> ServiceState {
    ServiceState {
        eku_class: parse(eku),
        starttls: parse(starttls),
        leaf: match (sha, until) {
            (Some(sha256), Some(not_after)) => Some(LeafCert { sha256, not_after }),
            _ => None,
        },
    }
}

async fn states(
    conn: &mut PgConnection,
    crawl_id: i64,
) -> Result<BTreeMap<i64, Option<DomainState>>, sqlx::Error> {
    // Every queued domain: None until (unless) it has a result.
    let queued: Vec<(i64,)> =
        sqlx::query_as("SELECT domain_id FROM crawl_queue WHERE crawl_id = $1")
            .bind(crawl_id)
            .fetch_all(&mut *conn)
            .await?;
    let mut out: BTreeMap<i64, Option<DomainState>> =
        queued.into_iter().map(|(d,)| (d, None)).collect();
    let rows: Vec<StateRow> = sqlx::query_as(STATE_SQL)
        .bind(crawl_id)
        .fetch_all(&mut *conn)
        .await?;
    for (
        domain,
        acceptance,
        sw_name,
        sw_version,
        c_eku,
        c_tls,
        c_sha,
        c_until,
        s_eku,
        s_tls,
        s_sha,
        s_until,
    ) in rows
    {
        let Some(verdict) = parse(Some(acceptance)) else {
            continue;
        };
        out.insert(
            domain,
            Some(DomainState {
                verdict,
                c2s: service(c_eku, c_tls, c_sha, c_until),
                s2s: service(s_eku, s_tls, s_sha, s_until),
                software: sw_name.map(|n| (n, sw_version)),
            }),
        );
    }
    Ok(out)
}

/// The newest finished crawl of `crawl_id`'s vantage created before it.
pub(super) async fn previous_crawl(
    conn: &mut PgConnection,
    crawl_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT p.id FROM crawls p JOIN crawls c ON c.id = $1
          WHERE p.vantage = c.vantage AND p.status = 'finished' AND p.id < c.id
          ORDER BY p.id DESC LIMIT 1",
    )
    .bind(crawl_id)
    .fetch_optional(&mut *conn)
    .await
}

/// Recomputes `crawl_id`'s rows of `domain_changes` (deleting the old
/// ones first, so finishing a resumed crawl again never duplicates);
/// returns how many were written. No previous crawl: none.
pub(super) async fn record_changes(
    conn: &mut PgConnection,
    crawl_id: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM domain_changes WHERE crawl_id = $1")
        .bind(crawl_id)
        .execute(&mut *conn)
        .await?;
    let Some(previous) = previous_crawl(conn, crawl_id).await? else {
        return Ok(0);
    };
    let before = states(conn, previous).await?;
    let after = states(conn, crawl_id).await?;
    let domains: BTreeSet<i64> = before.keys().chain(after.keys()).copied().collect();
    let (mut ids, mut kinds, mut scopes, mut olds, mut news) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for d in domains {
        let changes = match (before.get(&d), after.get(&d)) {
            // In both crawls, with a result in both: compare.
            (Some(Some(p)), Some(Some(c))) => diff(Some(p), Some(c)),
            // Queued in one crawl only: appeared or disappeared.
            (None, Some(_)) => vec![Change::presence(ChangeKind::Appeared)],
            (Some(_), None) => vec![Change::presence(ChangeKind::Disappeared)],
            // Queued in both, not tested in one: nothing is known.
            _ => vec![],
        };
        for ch in changes {
            ids.push(d);
            kinds.push(ch.kind.as_str());
            scopes.push(ch.scope.as_str());
            olds.push(ch.before);
            news.push(ch.after);
        }
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let n = sqlx::query(
        "INSERT INTO domain_changes (crawl_id, previous_crawl_id, domain_id, kind, scope, before, after)
         SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])",
    )
    .bind(crawl_id)
    .bind(previous)
    .bind(&ids)
    .bind(&kinds)
    .bind(&scopes)
    .bind(&olds)
    .bind(&news)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n)
}

/// One stored change, as readers show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChangeRow {
    /// The domain.
    pub domain: String,
    /// The crawl it was seen in.
    pub crawl: String,
    /// The crawl it is relative to.
    pub previous_crawl: String,
    /// What changed.
    pub kind: ChangeKind,
    /// Where (domain, c2s, s2s).
    pub scope: ChangeScope,
    /// The previous value as shown to readers.
    pub before: Option<String>,
    /// The new value.
    pub after: Option<String>,
}

const ROW_SQL: &str = "
SELECT d.name, c.label, p.label, x.kind, x.scope, x.before, x.after
  FROM domain_changes x
  JOIN domains d ON d.id = x.domain_id
  JOIN crawls c ON c.id = x.crawl_id
  JOIN crawls p ON p.id = x.previous_crawl_id";

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn rows(rows: Vec<Row>) -> Vec<ChangeRow> {
    rows.into_iter()
        .filter_map(
            |(domain, crawl, previous_crawl, kind, scope, before, after)| {
                Some(ChangeRow {
                    domain,
                    crawl,
                    previous_crawl,
                    kind: parse(Some(kind))?,
                    scope: parse(Some(scope))?,
                    before,
                    after,
                })
            },
        )
        .collect()
}

/// Every change seen in a crawl, by domain, kind and scope.
pub async fn crawl_changes(pool: &PgPool, crawl_id: i64) -> Result<Vec<ChangeRow>, sqlx::Error> {
    let q = format!(
        "{ROW_SQL} WHERE x.crawl_id = $1 ORDER BY d.name, array_position($2::text[], x.kind), x.scope"
    );
    Ok(rows(
        sqlx::query_as(sqlx::AssertSqlSafe(q))
            .bind(crawl_id)
            .bind(ChangeKind::names())
            .fetch_all(pool)
            .await?,
    ))
}

/// A domain's changes across crawls, newest crawl first (at most `limit`).
pub async fn domain_changes(
    pool: &PgPool,
    domain: &str,
    limit: i64,
) -> Result<Vec<ChangeRow>, sqlx::Error> {
    let q = format!(
        "{ROW_SQL} WHERE d.name = $1 \
         ORDER BY x.crawl_id DESC, array_position($3::text[], x.kind), x.scope LIMIT $2"
    );
    Ok(rows(
        sqlx::query_as(sqlx::AssertSqlSafe(q))
            .bind(domain)
            .bind(limit)
            .bind(ChangeKind::names())
            .fetch_all(pool)
            .await?,
    ))
}
