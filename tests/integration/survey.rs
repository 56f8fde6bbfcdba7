//! `xmpp-survey survey` and `config check` over the testnet (127.79/16):
//! one config file holds everything; two runs in one ISO week make one
//! crawl, one report and no duplicate results; the next week makes a
//! second crawl; a broken config fails naming the key or file before any
//! packet reaches a target.

use crate::report::{probe_identity_args, run};
use crate::support::{bin, pg, testnet, tmpdir};
use std::path::Path;
use std::process::Output;
use xmpp_survey::testnet::Testnet;

/// A loopback port nothing listens on (bound, then closed).
pub(crate) fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The `[identity]`, `[net]` and `[work]` tables for the testnet, with
/// the identity's files written to `dir`.
pub(crate) fn testnet_tables(net: &Testnet, dir: &Path) -> String {
    std::fs::write(dir.join("ca.pem"), net.ca_pem()).expect("ca");
    // Writes so.pem/so.key and cs.pem/cs.key to `dir`.
    let _ = probe_identity_args(net, dir);
    let id = net.probe_identity().expect("identity");
    format!(
        r#"
[net]
resolver = "{dns}"
extra_ca = ["ca.pem"]
allow_private = true
connect_timeout = "2s"
phase_timeout = "2s"
dns_timeout = "800ms"

[identity]
domain = "{domain}"
listen = "{listen}"
server_only_cert = "so.pem"
server_only_key = "so.key"
client_and_server_cert = "cs.pem"
client_and_server_key = "cs.key"

[work]
retry_base = "200ms"
max_attempts = 2
"#,
        dns = net.dns_addr(),
        domain = id.domain,
        listen = id.listen,
    )
}

/// Runs the binary with `args` and the config file, without the test
/// runner's `DATABASE_URL` (the file's `[database] url` counts).
pub(crate) fn xs(config: &Path, args: &[&str]) -> Output {
    let mut c = bin();
    c.env_remove("DATABASE_URL")
        .env_remove("XMPP_SURVEY_CONFIG")
        .args(args)
        .arg("--config")
        .arg(config);
    c.output().expect("runs")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `dir/providers.json`: an XMPP Providers list in which every
/// one of `domains` consents to server testing.
pub(crate) fn write_consenting_providers(dir: &Path, domains: &[String]) {
    let providers: serde_json::Map<String, serde_json::Value> = domains
        .iter()
        .map(|d| {
            (
                d.clone(),
                serde_json::json!({"serverTesting": {"content": true}}),
            )
        })
        .collect();
    std::fs::write(
        dir.join("providers.json"),
        serde_json::to_string(&providers).expect("json"),
    )
    .expect("providers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weekly_survey_resumes_within_a_week_and_bad_configs_fail_first() {
    let profiles = ["srv_ok", "cert_server_only", "no_srv", "starttls_optional"];
    let net = testnet(79, 8, &profiles).await;
    let domains = net.domains();
    let dir = tmpdir("survey");
    let tdb = pg().await;
    let db = tdb.url.clone();
    let tables = testnet_tables(&net, &dir);

    // The providers list URL is a closed loopback port: the survey falls
    // back to the snapshot file, which lists the testnet's domains.
    write_consenting_providers(&dir, &domains);
    let good = dir.join("config.toml");
    std::fs::write(
        &good,
        format!(
            r#"[database]
url = "{db}"

[sources]
list = ["providers:http://127.0.0.1:{port}/providers-D.json"]
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

    // --- config check: broken files fail naming the key or file, and
    // nothing is probed (neither by `config check` nor by `survey`).
    let bad = |name: &str, body: String| {
        let p = dir.join(name);
        std::fs::write(&p, body).expect("bad config");
        p
    };
    let no_schema = xs(&good, &["config", "check"]);
    assert_eq!(no_schema.status.code(), Some(1), "{}", text(&no_schema));
    assert!(
        text(&no_schema).contains("database.url") && text(&no_schema).contains("db migrate"),
        "{}",
        text(&no_schema)
    );
    let cases = [
        (
            bad(
                "unknown-key.toml",
                format!("[database]\nurl = \"{db}\"\n[work]\nconcurency = 4\n"),
            ),
            vec!["unknown-key.toml", "concurency", "line 4"],
        ),
        (
            bad(
                "wrong-type.toml",
                format!("[database]\nurl = \"{db}\"\n[work]\nconcurrency = \"lots\"\n"),
            ),
            vec!["wrong-type.toml", "concurrency", "line 4"],
        ),
        (
            bad(
                "missing-identity.toml",
                format!(
                    "[database]\nurl = \"{db}\"\n{}",
                    tables.replace("\"so.pem\"", "\"missing-so.pem\"")
                ),
            ),
            vec!["identity", "missing-so.pem"],
        ),
        (
            bad(
                "no-database.toml",
                format!(
                    "[database]\nurl = \"postgres://postgres@127.0.0.1:{}/postgres\"\n{tables}",
                    closed_port()
                ),
            ),
            vec!["database.url", "127.0.0.1"],
        ),
    ];
    for (file, words) in &cases {
        let o = xs(file, &["config", "check"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        for w in words {
            assert!(
                text(&o).contains(w),
                "{} lacks {w}:\n{}",
                file.display(),
                text(&o)
            );
        }
        // `survey` with the same file fails too, before probing.
        let o = xs(file, &["survey", "--now", "2026-12-02T10:00:00Z"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    }
    assert_eq!(
        net.total_connections(),
        0,
        "a broken config probed something"
    );

    run({
        let mut c = bin();
        c.args(["db", "migrate", "--database-url", &db]);
        c
    });
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let (none,): (i64,) = sqlx::query_as("SELECT count(*) FROM crawls")
        .fetch_one(&pool)
        .await
        .expect("crawls");
    assert_eq!(none, 0, "a broken config created a crawl");
    let ok = xs(&good, &["config", "check"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert_eq!(net.total_connections(), 0, "config check probed something");

    // --- two runs in ISO week 2026-W49: one crawl, one report, no duplicates.
    let first = xs(&good, &["survey", "--now", "2026-12-02T10:00:00Z"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        text(&first).contains("survey 2026-W49: finished")
            && text(&first).contains("using the snapshot"),
        "{}",
        text(&first)
    );
    let second = xs(&good, &["survey", "--now", "2026-12-02T10:00:00Z"]);
    assert_eq!(second.status.code(), Some(3), "{}", text(&second));
    assert!(
        text(&second).contains("survey 2026-W49: resumed and finished"),
        "{}",
        text(&second)
    );
    let crawls: Vec<(String, String, String)> =
        sqlx::query_as("SELECT label, status, vantage FROM crawls ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("crawls");
    assert_eq!(
        crawls,
        vec![("2026-W49".into(), "finished".into(), "testnet".into())]
    );
    let counts = |label: &'static str| {
        let pool = pool.clone();
        async move {
            let (rows, distinct): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(DISTINCT r.domain_id) FROM results r
                   JOIN crawls c ON c.id = r.crawl_id WHERE c.label = $1",
            )
            .bind(label)
            .fetch_one(&pool)
            .await
            .expect("results");
            (rows, distinct)
        }
    };
    let n = domains.len() as i64;
    assert_eq!(counts("2026-W49").await, (n, n));
    let reports = dir.join("reports");
    let listed = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .expect("reports dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listed(&reports), vec!["2026-W49"]);
    assert!(reports.join("2026-W49/index.html").is_file());
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join("2026-W49/summary.json")).expect("summary"),
    )
    .expect("summary json");
    assert!(
        summary.to_string().contains("2026-12-02T10:00:00Z"),
        "the report's timestamp is the survey's clock"
    );

    // --- the next week: a second crawl (the `db` source adds every known
    // domain, the fallback the rest).
    let next = xs(&good, &["survey", "--now", "2026-12-09T10:00:00Z"]);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next));
    let labels: Vec<(String,)> = sqlx::query_as("SELECT label FROM crawls ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("crawls");
    assert_eq!(
        labels,
        vec![("2026-W49".to_string(),), ("2026-W50".to_string(),)]
    );
    assert_eq!(counts("2026-W49").await, (n, n));
    assert_eq!(counts("2026-W50").await, (n, n));
    assert_eq!(listed(&reports), vec!["2026-W49", "2026-W50"]);
    pool.close().await;
    net.shutdown().await;
}
