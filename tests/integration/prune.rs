//! `xmpp-survey db prune --keep-raw WEEKS` over two real crawls of the
//! testnet (127.170/16): the raw JSONB of the older crawl goes, except for
//! the domains whose newest result it holds; every typed column of every
//! table and every report file stay byte-identical; a second prune does
//! nothing; a window that covers both crawls touches nothing.

use crate::report::{REPORT_FILES, crawl_domains, run};
use crate::support::{bin, pg, testnet, tmpdir};
use sqlx::PgPool;
use std::path::Path;
use time::format_description::well_known::Rfc3339;

/// Every table's rows without the raw JSONB columns a prune may clear, as
/// one digest per table: equal digests = every typed value unchanged.
async fn typed_digest(pool: &PgPool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (table, raw) in [
        ("crawls", "'raw_pruned_at'"),
        ("domains", "'-'"),
        ("crawl_queue", "'-'"),
        ("results", "'report'"),
        ("endpoints", "'evidence'"),
        ("dns_records", "'data'"),
        ("certificates", "'-'"),
        ("chain_members", "'-'"),
        ("acceptance_attempts", "'-'"),
        ("acceptance_dialback", "'-'"),
        ("inbound_streams", "'-'"),
        ("domain_changes", "'-'"),
        ("workers", "'-'"),
        ("relay_events", "'-'"),
    ] {
        let sql = format!(
            "SELECT count(*)::text || ':' || coalesce(md5(string_agg(x, '|' ORDER BY x)), '') \
             FROM (SELECT (to_jsonb(t) - {raw})::text AS x FROM {table} t) s"
        );
        let d: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        out.push((table.to_string(), d));
    }
    out
}

/// Raw values still present: (results.report, endpoints.evidence,
/// dns_records.data) of one crawl.
async fn raw_left(pool: &PgPool, label: &str) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM results r WHERE r.crawl_id = c.id AND r.report IS NOT NULL), \
                (SELECT count(*) FROM endpoints e WHERE e.crawl_id = c.id AND e.evidence IS NOT NULL), \
                (SELECT count(*) FROM dns_records d WHERE d.crawl_id = c.id AND d.data IS NOT NULL) \
         FROM crawls c WHERE c.label = $1",
    )
    .bind(label)
    .fetch_one(pool)
    .await
    .expect("raw counts")
}

/// Writes the report of `crawl` to `out` (with `--compare` when given);
/// returns its `generated_at`.
fn write_report(db: &str, out: &Path, crawl: &str, compare: Option<&str>) -> String {
    let mut c = bin();
    c.args(["report", "--database-url", db, "--crawl", crawl, "--out"])
        .arg(out);
    if let Some(other) = compare {
        c.args(["--compare", other]);
    }
    run(c);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("json"))
            .expect("json");
    s["generated_at"].as_str().expect("stamp").to_string()
}

fn prune(db: &str, args: &[&str]) -> String {
    let mut c = bin();
    c.args(["db", "prune", "--database-url", db]).args(args);
    run(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_every_typed_column_and_report_identical() {
    let names = [
        "srv_ok",
        "cert_server_only",
        "secure_auth",
        "strict_eku",
        "lenient",
        "no_srv",
        "cert_expired",
        "refused",
        "nxdomain",
    ];
    let net = testnet(170, 24, &names).await;
    let dir = tmpdir("prune");
    let tdb = pg().await;
    let db = tdb.url.clone();
    let all = net.domains();
    // The old crawl has every domain; the new one all but the last six,
    // whose newest result stays in the old crawl.
    let (in_both, old_only) = all.split_at(all.len() - 6);
    crawl_domains(&net, &dir, &db, "old", &all);
    crawl_domains(&net, &dir, &db, "new", in_both);
    let pool = PgPool::connect(&db).await.expect("pool");

    let before = typed_digest(&pool).await;
    let (old_a, new_a) = (dir.join("old-a"), dir.join("new-a"));
    let stamps_a = [
        write_report(&db, &old_a, "old", None),
        write_report(&db, &new_a, "new", Some("old")),
    ];
    let old_raw = raw_left(&pool, "old").await;
    let new_raw = raw_left(&pool, "new").await;
    assert_eq!(old_raw.0, all.len() as i64, "{old_raw:?}");
    assert!(old_raw.1 > 0 && old_raw.2 > 0, "{old_raw:?}");

    // Both crawls started now: a one-week window from now keeps both.
    let now = time::OffsetDateTime::now_utc();
    let in_two_weeks = (now + time::Duration::weeks(2))
        .format(&Rfc3339)
        .expect("time");
    let nothing = prune(&db, &["--keep-raw", "4", "--now", &in_two_weeks]);
    assert!(nothing.contains("no finished crawl is older"), "{nothing}");
    assert_eq!(raw_left(&pool, "old").await, old_raw);

    // A dry run counts what goes and changes nothing.
    let dry = prune(
        &db,
        &["--keep-raw", "1", "--now", &in_two_weeks, "--dry-run"],
    );
    assert!(
        dry.contains(&format!("old: would prune {} report(s)", in_both.len())),
        "{dry}"
    );
    assert!(
        dry.contains(&format!("kept {} newest-of-domain", old_only.len())),
        "{dry}"
    );
    assert_eq!(raw_left(&pool, "old").await, old_raw);

    // The prune itself, in batches of 5 domains.
    let out = prune(
        &db,
        &["--keep-raw", "1", "--now", &in_two_weeks, "--batch", "5"],
    );
    assert!(
        out.contains(&format!("old: pruned {} report(s)", in_both.len())),
        "{out}"
    );
    assert!(
        out.contains("new: pruned 0 report(s), 0 endpoint evidence, 0 DNS answer(s)"),
        "{out}"
    );
    assert!(out.contains("vacuumed"), "{out}");
    let batches = in_both.len().div_ceil(5);
    assert!(out.contains(&format!("{batches} transaction(s)")), "{out}");

    // What is left: the old crawl's newest-of-domain results, whole; the
    // new crawl untouched.
    let left = raw_left(&pool, "old").await;
    assert_eq!(left.0, old_only.len() as i64, "{left:?}");
    let old_only_rows: (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE r.report IS NOT NULL), \
                (SELECT count(*) FROM endpoints e JOIN domains d2 ON d2.id = e.domain_id \
                 WHERE e.crawl_id = c.id AND d2.name = ANY($2) AND e.evidence IS NULL), \
                (SELECT count(*) FROM dns_records x JOIN domains d3 ON d3.id = x.domain_id \
                 WHERE x.crawl_id = c.id AND d3.name = ANY($2) AND x.data IS NULL) \
         FROM crawls c JOIN results r ON r.crawl_id = c.id JOIN domains d ON d.id = r.domain_id \
         WHERE c.label = $1 AND d.name = ANY($2) GROUP BY c.id",
    )
    .bind("old")
    .bind(old_only)
    .fetch_one(&pool)
    .await
    .expect("old-only rows");
    assert_eq!(old_only_rows, (old_only.len() as i64, 0, 0));
    assert!(
        left.1 < old_raw.1 && left.2 < old_raw.2,
        "{left:?} {old_raw:?}"
    );
    assert_eq!(raw_left(&pool, "new").await, new_raw);
    let pruned_at: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT raw_pruned_at FROM crawls WHERE label = 'old'")
            .fetch_one(&pool)
            .await
            .expect("raw_pruned_at");
    assert!(pruned_at.is_some());

    // Every typed value and every report file identical.
    assert_eq!(typed_digest(&pool).await, before);
    let (old_b, new_b) = (dir.join("old-b"), dir.join("new-b"));
    let stamps_b = [
        write_report(&db, &old_b, "old", None),
        write_report(&db, &new_b, "new", Some("old")),
    ];
    for (i, (a, b)) in [(&old_a, &old_b), (&new_a, &new_b)].into_iter().enumerate() {
        for f in REPORT_FILES {
            let x = std::fs::read_to_string(a.join(f))
                .expect(f)
                .replace(&stamps_a[i], "T");
            let y = std::fs::read_to_string(b.join(f))
                .expect(f)
                .replace(&stamps_b[i], "T");
            assert!(x == y, "{f} of {} differs after prune", a.display());
        }
    }

    // The lookup still reads the newest report of a domain only the old
    // crawl holds, and of one both hold.
    for d in [&old_only[0], &in_both[0]] {
        let out = bin()
            .args(["lookup", "--json", "--database-url", &db, d])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lookup JSON");
        assert!(v["latest"].is_object(), "{d}: {v}");
        assert!(
            !v["findings"].as_array().expect("findings").is_empty(),
            "{d}"
        );
    }

    // Pruning again changes nothing.
    let again = prune(&db, &["--keep-raw", "1", "--now", &in_two_weeks]);
    assert!(
        again.contains("pruned 0 raw value(s) in 2 crawl(s), 0 transaction(s)"),
        "{again}"
    );
    assert!(!again.contains("vacuumed"), "{again}");
    assert_eq!(typed_digest(&pool).await, before);

    // No week count anywhere: a clear error.
    let out = bin()
        .args(["db", "prune", "--database-url", &db])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--keep-raw WEEKS"), "{err}");
    pool.close().await;
}
