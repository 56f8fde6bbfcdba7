//! `xmpp-survey lookup` over a real crawl of the testnet: every domain's
//! acceptance finding agrees with the manifest's truth, the history grows
//! with each crawl, `--live` needs no database and agrees with the stored
//! result, and an opted-out domain is neither shown nor probed.

use crate::report::{crawl, run};
use crate::support::{bin, pg, testnet, tmpdir};
use serde_json::Value;

/// Runs `c`, which must succeed, and parses its standard output as JSON.
fn json_of(mut c: std::process::Command) -> Value {
    let out = c.output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

fn lookup(args: &[&str]) -> Value {
    let mut c = bin();
    c.arg("lookup").arg("--json").args(args);
    json_of(c)
}

fn finding<'a>(l: &'a Value, code: &str) -> &'a Value {
    l["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {l}"))
}

/// The status an operator must see for each acceptance verdict.
fn status_of(verdict: &str) -> &'static str {
    match verdict {
        "accepts_server_only" => "passed",
        "rejects_server_only_dialback" => "warning",
        "rejects_server_only_no_fallback" => "failed",
        "no_cert_auth" => "info",
        "inconclusive" | "not_run" => "not_tested",
        "unreachable" | "tls_failed" => "error",
        other => panic!("unknown verdict {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_findings_follow_the_truth_and_the_history() {
    use xmpp_survey::testnet::profile::{PROFILES as ALL, is_acceptance};
    let mut names: Vec<&str> = ALL
        .iter()
        .filter(|p| is_acceptance(p))
        .map(|p| p.name)
        .collect();
    names.extend(["srv_ok", "cert_server_only", "starttls_optional", "refused"]);
    let net = testnet(76, names.len(), &names).await;
    let dir = tmpdir("lookup");
    let tdb = pg().await;
    let db = tdb.url.as_str();
    crawl(&net, &dir, db, "first");

    let mut checked = 0;
    for d in &net.manifest().domains {
        let l = lookup(&[&d.domain, "--database-url", db]);
        assert_eq!(l["domain"], d.domain.as_str());
        assert_eq!(
            l["history"].as_array().map(Vec::len),
            Some(1),
            "{}",
            d.domain
        );
        let Some(verdict) = d.expect.get("acceptance.verdict").and_then(Value::as_str) else {
            continue;
        };
        let f = finding(&l, "accepts_server_only");
        assert_eq!(f["case"], verdict, "{} ({})", d.domain, d.profile);
        assert_eq!(
            f["status"],
            status_of(verdict),
            "{} ({})",
            d.domain,
            d.profile
        );
        if matches!(
            verdict,
            "rejects_server_only_dialback" | "rejects_server_only_no_fallback"
        ) {
            assert!(
                f["advice"]["text"].as_str().is_some_and(|t| !t.is_empty()),
                "{f}"
            );
            assert!(
                f["advice"]["sources"][0]["url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("https://"))
            );
        }
        if let Some(eku) = d
            .expect
            .get("summary.s2s.eku_class")
            .and_then(Value::as_str)
        {
            let own = finding(&l, "s2s_certificate_purpose");
            if eku == "server_only" {
                assert_eq!(
                    (own["case"].as_str(), own["status"].as_str()),
                    (Some("server_only"), Some("warning")),
                    "{}",
                    d.domain
                );
            }
        }
        if d.profile == "starttls_optional" {
            assert_eq!(finding(&l, "c2s_starttls_required")["status"], "failed");
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "only {checked} domains had an acceptance truth"
    );

    // A second crawl: every domain's history has two entries, newest first.
    crawl(&net, &dir, db, "second");
    let some = &net.manifest().domains[0].domain;
    let l = lookup(&[some, "--database-url", db]);
    let labels: Vec<&str> = l["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["crawl_label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["second", "first"]);
    assert_eq!(l["latest"]["crawl_label"], "second");

    // Text output: the verdict and the advice in words.
    let manifest = net.manifest();
    let strict = manifest
        .domains
        .iter()
        .find(|d| d.profile == "strict_eku")
        .expect("strict_eku");
    let mut c = bin();
    c.args(["lookup", &strict.domain, "--database-url", db]);
    let text = run(c);
    assert!(
        text.contains("[warning]    Accepts peers with server-only certificates"),
        "{text}"
    );
    assert!(
        text.contains("What to do:") && text.contains("History (newest first):"),
        "{text}"
    );

    // --live without any database: the same verdict as stored.
    let ids = crate::report::probe_identity_args(&net, &dir);
    let mut c = bin();
    c.env_remove("DATABASE_URL")
        .args([
            "lookup",
            "--json",
            "--live",
            &strict.domain,
            "--allow-private",
            "--resolver",
        ])
        .arg(net.dns_addr().to_string())
        .arg("--extra-ca")
        .arg(dir.join("ca.pem"))
        .args(&ids);
    let live = json_of(c);
    assert_eq!(live["latest"]["crawl_label"], "live");
    assert_eq!(
        finding(&live, "accepts_server_only")["case"],
        "rejects_server_only_dialback"
    );

    // Opted out: nothing shown, and --live refuses to probe.
    let pool = sqlx::PgPool::connect(db).await.expect("db");
    sqlx::query("INSERT INTO opt_outs (domain, reason) VALUES ($1, 'test')")
        .bind(&strict.domain)
        .execute(&pool)
        .await
        .expect("opt out");
    let l = lookup(&[&strict.domain, "--database-url", db]);
    assert_eq!(l["opted_out"], true);
    assert!(
        l["findings"].as_array().unwrap().is_empty() && l["history"].as_array().unwrap().is_empty()
    );
    let mut c = bin();
    c.args([
        "lookup",
        "--live",
        &strict.domain,
        "--database-url",
        db,
        "--allow-private",
    ])
    .args(&ids);
    let out = c.output().expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("opted out"),
        "{out:?}"
    );

    // Bad input: a clear error, no panic.
    for bad in ["x..y", "<script>alert(1)</script>", &"a".repeat(300)] {
        let out = bin()
            .args(["lookup", bad, "--database-url", db])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("invalid domain") && !err.contains("panicked"),
            "{err}"
        );
    }
}
