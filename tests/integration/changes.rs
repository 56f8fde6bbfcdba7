//! Changes between crawls (issue 12) over the testnet (127.150/16):
//! `survey` twice in one ISO week at testnet generation 0 makes one
//! crawl, one report, no duplicate results and no change rows; switched
//! to generation 1, the next week's survey makes a second crawl whose
//! `domain_changes` equal the testnet's expected change list exactly, and
//! the report and the lookup show them.

use crate::report::run;
use crate::support::{bin, pg, testnet, tmpdir};
use crate::survey::{closed_port, testnet_tables, text, write_consenting_providers, xs};
use std::collections::BTreeSet;

type Row = (String, String, String, Option<String>, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_records_the_testnets_changes_between_generations() {
    // Every profile GENERATION_1 changes, plus two that stay the same.
    let profiles = [
        "strict_eku",
        "lenient",
        "cert_le_client_and_server",
        "cert_server_only",
        "srv_ok",
        "cert_client_and_server",
        "starttls_optional",
    ];
    let net = testnet(150, profiles.len(), &profiles).await;
    let domains = net.domains();
    let dir = tmpdir("changes");
    let tdb = pg().await;
    let db = tdb.url.clone();
    let tables = testnet_tables(&net, &dir);
    write_consenting_providers(&dir, &domains);
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[database]
url = "{db}"

[sources]
list = ["providers:http://127.0.0.1:{port}/providers.json"]
fallback = "providers.json"

[report]
out_dir = "reports"

[survey]
vantage = "testnet"
{tables}"#,
            port = closed_port()
        ),
    )
    .expect("config");
    run({
        let mut c = bin();
        c.args(["db", "migrate", "--database-url", &db]);
        c
    });
    let pool = sqlx::PgPool::connect(&db).await.expect("db");

    // --- week 2026-W49, generation 0, twice.
    assert_eq!(net.generation(), 0);
    let first = xs(&config, &["survey", "--now", "2026-12-02T10:00:00Z"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let again = xs(&config, &["survey", "--now", "2026-12-03T10:00:00Z"]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again));
    let (crawls, results, distinct, changes): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM crawls), (SELECT count(*) FROM results),
                (SELECT count(DISTINCT (crawl_id, domain_id)) FROM results),
                (SELECT count(*) FROM domain_changes)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    let n = domains.len() as i64;
    assert_eq!((crawls, results, distinct, changes), (1, n, n, 0));
    let reports = dir.join("reports");
    assert_eq!(std::fs::read_dir(&reports).expect("reports").count(), 1);

    // --- generation 1, week 2026-W50.
    net.set_generation(1);
    let expected: BTreeSet<Row> = net
        .expected_changes(0, 1)
        .expect("expected changes")
        .into_iter()
        .map(|c| {
            (
                c.domain,
                c.kind.to_string(),
                c.scope.to_string(),
                c.before,
                c.after,
            )
        })
        .collect();
    // The ground truth covers every kind the generation changes.
    let kinds: BTreeSet<&str> = expected.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "certificate_renewed",
            "eku_class",
            "software_version",
            "starttls",
            "verdict"
        ]),
        "{expected:#?}"
    );
    let next = xs(&config, &["survey", "--now", "2026-12-09T10:00:00Z"]);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next));
    let got_rows: Vec<Row> = sqlx::query_as(
        "SELECT d.name, x.kind, x.scope, x.before, x.after
           FROM domain_changes x JOIN domains d ON d.id = x.domain_id
           JOIN crawls c ON c.id = x.crawl_id JOIN crawls p ON p.id = x.previous_crawl_id
          WHERE c.label = '2026-W50' AND p.label = '2026-W49'",
    )
    .fetch_all(&pool)
    .await
    .expect("changes");
    let got: BTreeSet<Row> = got_rows.iter().cloned().collect();
    assert_eq!(got.len(), got_rows.len(), "duplicate change rows");
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    let (all,): (i64,) = sqlx::query_as("SELECT count(*) FROM domain_changes")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(all as usize, expected.len());

    // Resuming the finished week again recomputes, never duplicates.
    let resume = xs(&config, &["survey", "--now", "2026-12-10T10:00:00Z"]);
    assert_eq!(resume.status.code(), Some(3), "{}", text(&resume));
    let (all,): (i64,) = sqlx::query_as("SELECT count(*) FROM domain_changes")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(all as usize, expected.len());

    // The report shows them.
    let md = std::fs::read_to_string(reports.join("2026-W50/report.md")).expect("report.md");
    assert!(md.contains("Changes since 2026-W49"), "{md}");
    let html = std::fs::read_to_string(reports.join("2026-W50/index.html")).expect("html");
    assert!(html.contains("Changes since 2026-W49"));
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join("2026-W50/summary.json")).expect("json"),
    )
    .expect("summary");
    assert_eq!(
        summary["changes"]["previous"].as_str(),
        Some("2026-W49"),
        "{}",
        summary["changes"]
    );
    assert_eq!(
        summary["changes"]["total"].as_u64(),
        Some(expected.len() as u64)
    );
    let csv = std::fs::read_to_string(reports.join("2026-W50/domain_changes.csv")).expect("csv");
    assert_eq!(csv.lines().count(), expected.len() + 1, "{csv}");
    for (domain, kind, ..) in &expected {
        assert!(md.contains(domain.as_str()) && html.contains(domain.as_str()));
        assert!(md.contains(kind.as_str()));
    }

    // The lookup's history shows the domain's changes (text and JSON).
    let (domain, kind, _, before, after) = expected
        .iter()
        .find(|r| r.1 == "verdict")
        .expect("a verdict change")
        .clone();
    let lookup = bin()
        .args(["lookup", "--database-url", &db, &domain])
        .output()
        .expect("lookup");
    let out = text(&lookup);
    assert_eq!(lookup.status.code(), Some(0), "{out}");
    assert!(out.contains(&kind), "{out}");
    assert!(out.contains(before.as_deref().unwrap_or("?")), "{out}");
    assert!(out.contains(after.as_deref().unwrap_or("?")), "{out}");
    let json = bin()
        .args(["lookup", "--json", "--database-url", &db, &domain])
        .output()
        .expect("lookup --json");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("lookup json");
    let listed: Vec<&serde_json::Value> =
        v["changes"].as_array().expect("changes").iter().collect();
    assert!(
        listed
            .iter()
            .any(|c| c["kind"] == "verdict" && c["crawl"] == "2026-W50"),
        "{v}"
    );
    // Within a crawl, the verdict comes first (ChangeKind's order, not
    // the alphabet, which would put software_version before it).
    assert_eq!(
        listed.first().map(|c| &c["kind"]),
        Some(&serde_json::json!("verdict")),
        "{v}"
    );

    // The web: the domain page, the API history and both Atom feeds.
    let server = crate::web::serve("127.151.0.1", &db, &[]).await;
    let c = crate::web::client("127.151.0.2");
    let base = server.base.as_str();
    let page = crate::web::get(&c, base, &format!("/domain/{domain}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Changes between crawls"),
        "{}",
        page.body
    );
    assert!(page.body.contains("accepts_server_only"), "{}", page.body);
    let (verdict_at, software_at) = (
        page.body.find("verdict <code>"),
        page.body.find("software version <code>"),
    );
    assert!(
        verdict_at.is_some() && verdict_at < software_at,
        "the page lists the verdict change first: {}",
        page.body
    );
    let hist = crate::web::get(&c, base, &format!("/api/v1/domains/{domain}/history"))
        .await
        .json();
    assert_eq!(
        hist["changes"].as_array().map(Vec::len),
        Some(expected.iter().filter(|r| r.0 == domain).count()),
        "{hist}"
    );
    let feed = crate::web::get(&c, base, &format!("/feed/{domain}.atom")).await;
    assert_eq!(feed.body.matches("<entry>").count(), 1, "{}", feed.body);
    assert!(
        feed.body.contains(
            "acceptance rejects server only dialback → accepts server only, \
             software version ejabberd-like 24.12 → ejabberd-like 25.08"
        ),
        "{}",
        feed.body
    );
    // One entry per changed domain on the network feed.
    let changed: BTreeSet<&str> = expected.iter().map(|r| r.0.as_str()).collect();
    let network = crate::web::get(&c, base, "/feed.atom").await;
    assert_eq!(
        network.body.matches("<entry>").count(),
        changed.len(),
        "{}",
        network.body
    );
    for d in &changed {
        assert!(network.body.contains(d), "{d}: {}", network.body);
    }
    drop(server);
    pool.close().await;
    net.shutdown().await;
}
