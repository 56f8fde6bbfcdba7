//! Several hosts, one database (issue 12, item 3), through the real
//! binary: three worker processes with their own listen addresses, only
//! one of them where the probe domain's DNS points (127.155.0.2:5269, the
//! testnet's probe address), crawl one testnet with the acceptance probe
//! and a shared dialback secret. Every domain ends probed once, dialback
//! is verified for domains each worker probed (the targets' `db:verify`
//! reach only the first worker's listener, which relays the evidence),
//! kill -9 of one worker loses nothing, `status` shows the workers, and
//! every stored report matches the manifest.

use crate::crawl::{assert_complete, files, identity_files, migrate, run_cmd, scalar, wait_ok};
use crate::support::{bin, pem, pg, testnet, tmpdir};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xmpp_survey::facts::{compare, facts};
use xmpp_survey::model::acceptance::DialbackOutcome;
use xmpp_survey::probe::report::DomainReport;
use xmpp_survey::testnet::profile::{PROFILES, is_acceptance};

/// The listen addresses of workers b and c: other blocks of ours, where
/// no DNS name points.
const LISTEN_B: &str = "127.156.0.2:5269";
const LISTEN_C: &str = "127.157.0.2:5269";

/// The binary, its database from the config file only (the tests'
/// `DATABASE_URL` names the server, not the test's database).
fn xs() -> Command {
    let mut cmd = bin();
    cmd.env_remove("DATABASE_URL");
    cmd
}

/// Polls `sql` (a count) until it is at least `min`, up to `limit`.
async fn until_count(db: &str, sql: &'static str, min: i64, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if scalar(db, sql).await >= min {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `status --json` of this week's crawl.
async fn status(config: &Path) -> serde_json::Value {
    let mut cmd = xs();
    cmd.args(["status", "--crawl", "auto", "--json", "--config"])
        .arg(config);
    let (ok, text) = run_cmd(cmd).await;
    assert!(ok, "status failed:\n{text}");
    let json = &text[text.find('{').expect("JSON")..];
    let end = json.rfind('}').expect("JSON end");
    serde_json::from_str(&json[..=end]).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

fn state_of<'a>(s: &'a serde_json::Value, worker: &str) -> &'a str {
    s["workers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["worker_id"] == worker))
        .and_then(|w| w["state"].as_str())
        .unwrap_or("absent")
}

fn spawn(mut cmd: Command, reaper: &mut Reaper) -> Child {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    reaper.0.push(child.id());
    child
}

/// Kills the workers this test started if it fails half-way, so that none
/// outlives it (by their own process ids, only while panicking).
struct Reaper(Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for pid in &self.0 {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_probe_listener_kill_9_loses_nothing() {
    let mut names: Vec<&str> = PROFILES
        .iter()
        .filter(|p| is_acceptance(p))
        .map(|p| p.name)
        .collect();
    names.extend([
        "srv_ok",
        "cert_server_only",
        "no_srv",
        "refused",
        "nxdomain",
    ]);
    let n = names.len() * 5;
    let net = testnet(155, n, &names).await;
    let dir = tmpdir("workers");
    let (list, ca) = files(&net, &dir);
    let (domain, listen_a, cert, key, _) = identity_files(&net, &dir);
    assert_eq!(listen_a, "127.155.0.2:5269", "the probe domain's address");
    let id = net.probe_identity().expect("identity");
    let cs = id.client_and_server.as_ref().expect("control certificate");
    let chain: Vec<&[u8]> = cs.chain.iter().map(|c| c.as_ref()).collect();
    std::fs::write(dir.join("probe-cs.pem"), pem("CERTIFICATE", &chain)).expect("cs");
    std::fs::write(
        dir.join("probe-cs.key"),
        pem("PRIVATE KEY", &[cs.key_der.secret_der()]),
    )
    .expect("cs key");
    std::fs::write(
        dir.join("dialback.secret"),
        "c2hhcmVkIGJ5IHRocmVlIHdvcmtlcnM=\n",
    )
    .expect("secret");
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    let config = |secret: &str| {
        format!(
            r#"[database]
url = "{db}"
[net]
resolver = "{dns}"
extra_ca = ["{ca}"]
allow_private = true
connect_timeout = "2s"
phase_timeout = "2s"
dns_timeout = "800ms"
[identity]
domain = "{domain}"
server_only_cert = "{cert}"
server_only_key = "{key}"
client_and_server_cert = "probe-cs.pem"
client_and_server_key = "probe-cs.key"
dialback_secret_file = "{secret}"
[work]
crawl = "auto"
concurrency = 4
per_ip_rate = 4
lease = "6s"
retry_base = "200ms"
max_attempts = 2
"#,
            dns = net.dns_addr(),
            ca = ca.display(),
            cert = cert.display(),
            key = key.display(),
        )
    };
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config("dialback.secret")).expect("config");

    // Before any crawl exists, `worker --crawl auto` names this week's label.
    let week = xmpp_survey::crawl::iso_week_label(time::OffsetDateTime::now_utc());
    let mut early = xs();
    early.args(["worker", "--config"]).arg(&cfg);
    let (ok, text) = run_cmd(early).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("no crawl labelled \"{week}\"")) && text.contains("--crawl auto"),
        "{text}"
    );
    // A missing shared secret stops a crawl before it exists, naming the
    // key and the file.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, config("missing.secret")).expect("bad config");
    let mut c = xs();
    c.args(["crawl", "--config"])
        .arg(&bad)
        .arg("--source")
        .arg(&list);
    let (ok, text) = run_cmd(c).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("identity.dialback_secret_file") && text.contains("missing.secret"),
        "{text}"
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM crawls").await, 0);

    let mut reaper = Reaper(Vec::new());
    // a: creates this week's crawl; its listener is the probe domain's.
    let mut cmd = xs();
    cmd.args(["crawl", "--config"])
        .arg(&cfg)
        .arg("--source")
        .arg(&list)
        .args(["--worker-id", "a", "--listen", &listen_a]);
    let a = spawn(cmd, &mut reaper);
    assert!(
        until_count(
            &db,
            "SELECT count(*) FROM crawl_queue",
            n as i64,
            Duration::from_secs(30)
        )
        .await,
        "the crawl was not created"
    );
    // b joins with --crawl auto, c through the file's `[work] crawl`.
    let mut cmd = xs();
    cmd.args(["worker", "--crawl", "auto", "--config"])
        .arg(&cfg)
        .args(["--worker-id", "b", "--listen", LISTEN_B]);
    let b = spawn(cmd, &mut reaper);
    let mut cmd = xs();
    cmd.args(["worker", "--config"])
        .arg(&cfg)
        .args(["--worker-id", "c", "--listen", LISTEN_C]);
    let mut c = spawn(cmd, &mut reaper);

    // status while they work: at least two live workers.
    assert!(
        until_count(
            &db,
            "SELECT count(*) FROM workers",
            3,
            Duration::from_secs(30)
        )
        .await,
        "three workers registered"
    );
    let during = status(&cfg).await;
    eprintln!("status during the crawl: {during:#}");
    assert!(
        during["live_workers"].as_u64().unwrap_or(0) >= 2,
        "{during:#}"
    );
    assert_eq!(during["crawl"], week.as_str());

    // c probes until one of its domains had dialback verified, then dies
    // mid-crawl holding leases.
    assert!(
        until_count(
            &db,
            "SELECT count(*) FROM results r JOIN crawl_queue q USING (crawl_id, domain_id)
              WHERE q.done_by = 'c' AND r.report #>> '{acceptance,dialback,outcome,result}' = 'valid'
                AND (r.report #> '{acceptance,dialback,verify_received}')::boolean",
            1,
            Duration::from_secs(90),
        )
        .await,
        "worker c never had a dialback verified"
    );
    assert!(
        until_count(
            &db,
            "SELECT count(*) FROM crawl_queue WHERE state = 'leased' AND lease_owner = 'c'",
            1,
            Duration::from_secs(30)
        )
        .await,
        "c holds leases when killed"
    );
    c.kill().expect("SIGKILL");
    let _ = c.wait();
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let orphans: Vec<String> = sqlx::query_scalar(
        "SELECT d.name FROM crawl_queue q JOIN domains d ON d.id = q.domain_id
          WHERE q.state = 'leased' AND q.lease_owner = 'c'",
    )
    .fetch_all(&pool)
    .await
    .expect("orphans");
    eprintln!("c killed holding {} lease(s): {orphans:?}", orphans.len());
    let after_kill = status(&cfg).await;
    eprintln!("status after the kill: {after_kill:#}");

    let out_a = wait_ok(a, Duration::from_secs(300)).await;
    let out_b = wait_ok(b, Duration::from_secs(300)).await;
    eprintln!("a:\n{out_a}\nb:\n{out_b}");
    assert_complete(&db, n).await;
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM crawls WHERE status = 'finished'").await,
        1
    );
    // Nothing c held was lost: each taken over and stored by a or b.
    let taken: Vec<(String, String, Option<String>, i32)> = sqlx::query_as(
        "SELECT d.name, q.state, q.done_by, q.attempts FROM crawl_queue q
           JOIN domains d ON d.id = q.domain_id WHERE d.name = ANY($1)",
    )
    .bind(&orphans)
    .fetch_all(&pool)
    .await
    .expect("orphans' rows");
    for (name, state, by, attempts) in &taken {
        assert!(
            state == "not_tested" || (state == "done" && by.as_deref() != Some("c")),
            "{name}: {state} by {by:?}"
        );
        assert!(*attempts >= 2, "{name} was leased again: {attempts}");
    }
    // Every other domain was probed once.
    let twice: Vec<String> = sqlx::query_scalar(
        "SELECT d.name FROM crawl_queue q JOIN domains d ON d.id = q.domain_id
          WHERE q.state = 'done' AND q.attempts <> 1 AND NOT (d.name = ANY($1))",
    )
    .bind(&orphans)
    .fetch_all(&pool)
    .await
    .expect("attempts");
    assert!(twice.is_empty(), "probed more than once: {twice:?}");

    // Each worker's domains: the verdicts match the manifest, and dialback
    // was verified (db:verify answered by a's listener) for each worker.
    let rows: Vec<(Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT q.done_by, r.report FROM results r JOIN crawl_queue q USING (crawl_id, domain_id)",
    )
    .fetch_all(&pool)
    .await
    .expect("reports");
    pool.close().await;
    let manifest = net.manifest();
    let by_domain: std::collections::HashMap<_, _> = manifest
        .domains
        .iter()
        .map(|d| (d.domain.clone(), d))
        .collect();
    let mut mismatches = Vec::new();
    let mut per_worker: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for (by, report) in &rows {
        let r: DomainReport = serde_json::from_value(report.clone()).expect("report");
        let by = by.clone().unwrap_or_else(|| "?".into());
        let e = per_worker.entry(by.clone()).or_default();
        e.0 += 1;
        if r.acceptance
            .as_ref()
            .and_then(|a| a.dialback.as_ref())
            .is_some_and(|d| d.outcome == DialbackOutcome::Valid && d.verify_received)
        {
            e.1 += 1;
        }
        let d = by_domain[&r.domain];
        for m in compare(&d.expect, &facts(&r)) {
            mismatches.push(format!(
                "{} [{}] by {by} {}: expected {} got {}",
                d.domain, d.profile, m.key, m.expected, m.got
            ));
        }
    }
    eprintln!("results by worker (stored, dialback verified): {per_worker:?}");
    for w in ["a", "b", "c"] {
        let (stored, verified) = per_worker.get(w).copied().unwrap_or_default();
        assert!(stored > 0 && verified > 0, "worker {w}: {per_worker:?}");
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatch(es):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // status after: a and b stopped cleanly, c (killed) never did, and
    // turns stale once three heartbeats are missed.
    let t = Instant::now();
    let end = loop {
        let s = status(&cfg).await;
        if state_of(&s, "c") == "stale" || t.elapsed() > Duration::from_secs(30) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("status at the end: {end:#}");
    assert_eq!(state_of(&end, "a"), "stopped");
    assert_eq!(state_of(&end, "b"), "stopped");
    assert_eq!(state_of(&end, "c"), "stale");
    assert_eq!(end["status"], "finished");
    assert_eq!(end["percent_done"], 100.0);
    assert_eq!(end["live_workers"], 0);
    let mut text = xs();
    text.args(["status", "--config"]).arg(&cfg);
    let (ok, text) = run_cmd(text).await;
    assert!(
        ok && text.contains("workers: 0 live, 1 stale, 2 stopped"),
        "{text}"
    );
    net.shutdown().await;
}

/// `worker` with a bad config fails before any packet, naming the key,
/// file or database: an unknown key, a wrong type, a secret file too
/// short, an unreachable database (a closed port in our block).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_worker_config_fails_first_naming_its_culprit() {
    let dir = tmpdir("workers-bad");
    std::fs::write(dir.join("short.secret"), "0123456789\n").expect("secret");
    let db = "postgres://postgres@127.159.0.9:1/none";
    for (body, expect) in [
        (
            "[work]\ncrawll = \"auto\"\n".to_string(),
            vec!["crawll", "line 2"],
        ),
        ("[work]\ncrawl = 5\n".to_string(), vec!["crawl", "line 2"]),
        (
            format!("[database]\nurl = \"{db}\"\n[work]\ncrawl = \"auto\"\n"),
            vec!["127.159.0.9"],
        ),
    ] {
        let cfg = dir.join("c.toml");
        std::fs::write(&cfg, &body).expect("config");
        let mut cmd = xs();
        cmd.args(["worker", "--config"]).arg(&cfg);
        let (ok, text) = run_cmd(cmd).await;
        assert!(!ok, "{body}: {text}");
        for e in expect {
            assert!(text.contains(e), "{body}: wanted {e:?} in {text}");
        }
    }
    // The shared secret is checked with the rest of the file.
    let cfg = dir.join("check.toml");
    std::fs::write(
        &cfg,
        "[database]\nurl = \"postgres://u@127.159.0.9:1/x\"\n[identity]\ndomain = \"probe.example\"\nserver_only_cert = \"so.pem\"\nserver_only_key = \"so.key\"\ndialback_secret_file = \"short.secret\"\n",
    )
    .expect("config");
    let mut cmd = xs();
    cmd.args(["config", "check", "--offline", "--config"])
        .arg(&cfg);
    let (ok, text) = run_cmd(cmd).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("identity.dialback_secret_file") && text.contains("short.secret"),
        "{text}"
    );
}
