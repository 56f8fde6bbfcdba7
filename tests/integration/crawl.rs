//! The crawl engine against a real PostgreSQL and the testnet, driven
//! through the real binary: kill -9 and resume, PostgreSQL restarted
//! mid-crawl, two workers on one crawl, bad sources.

use crate::support::{pg, testnet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xmpp_survey::testnet::Testnet;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xmpp-survey"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "xs-crawl-{name}-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// Writes the testnet's domains and CA, returns (list, ca).
fn files(net: &Testnet, dir: &Path) -> (PathBuf, PathBuf) {
    let list = dir.join("domains.txt");
    std::fs::write(&list, net.domains().join("\n")).expect("list");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, net.ca_pem()).expect("ca");
    (list, ca)
}

fn migrate(db: &str) {
    let out = bin()
        .args(["db", "migrate", "--database-url", db])
        .output()
        .expect("db migrate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `crawl` (or `worker`) arguments pointed at the testnet.
fn net_args(cmd: &mut Command, net: &Testnet, ca: &Path, db: &str) {
    cmd.arg("--database-url")
        .arg(db)
        .arg("--resolver")
        .arg(net.dns_addr().to_string())
        .arg("--extra-ca")
        .arg(ca)
        .args([
            "--allow-private",
            "--phase-timeout",
            "2s",
            "--connect-timeout",
            "2s",
            "--dns-timeout",
            "800ms",
            "--retry-base",
            "200ms",
            "--max-attempts",
            "2",
        ]);
}

fn spawn_crawl(
    net: &Testnet,
    list: &Path,
    ca: &Path,
    db: &str,
    label: &str,
    extra: &[&str],
) -> Child {
    let mut cmd = bin();
    cmd.args(["crawl", "--label", label, "--source"]).arg(list);
    net_args(&mut cmd, net, ca, db);
    cmd.args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("crawl starts")
}

async fn wait_ok(child: Child, limit: Duration) -> String {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = limit;
    assert!(out.status.success(), "crawl failed:\n{text}");
    text
}

async fn scalar(db: &str, sql: &'static str) -> i64 {
    let pool = sqlx::PgPool::connect(db).await.expect("db");
    let v: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.expect(sql);
    pool.close().await;
    v
}

/// Every domain of the list ended exactly once: done with one result, or
/// not_tested; nothing queued or leased; no result duplicated.
async fn assert_complete(db: &str, n: usize) {
    assert_eq!(
        scalar(db, "SELECT count(*) FROM crawl_queue").await,
        n as i64
    );
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM crawl_queue WHERE state NOT IN ('done','not_tested')"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(db, "SELECT count(*) FROM crawl_queue WHERE state = 'done'").await,
        scalar(db, "SELECT count(*) FROM results").await,
        "every done domain has exactly one result"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM (SELECT crawl_id, domain_id FROM results GROUP BY 1, 2 HAVING count(*) > 1) d"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM crawl_queue q WHERE q.state = 'done' AND NOT EXISTS (SELECT 1 FROM results r WHERE r.crawl_id = q.crawl_id AND r.domain_id = q.domain_id)"
        )
        .await,
        0,
        "no done domain lost its result"
    );
}

const PROFILES: &[&str] = &[
    "srv_ok",
    "cert_server_only",
    "no_srv",
    "direct_tls",
    "refused",
    "nxdomain",
    "cert_expired",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_three_times_then_resume_every_domain_once() {
    let net = testnet(91, 120, PROFILES).await;
    let dir = tmpdir("kill");
    let (list, ca) = files(&net, &dir);
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    // Slow enough to be killed mid-crawl: 3 connections/s per address.
    let slow = ["--per-ip-rate", "3", "--concurrency", "16", "--lease", "2s"];
    let mut seen = Vec::new();
    for round in 0..3 {
        let mut child = spawn_crawl(&net, &list, &ca, &db, "kill", &slow);
        let ms = 700 + (rand::random::<u64>() % 1300);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        let _ = child.wait();
        let done = scalar(&db, "SELECT count(*) FROM results").await;
        eprintln!("round {round}: killed after {ms} ms, {done} results so far");
        seen.push(done);
    }
    assert!(
        *seen.last().unwrap_or(&0) < 120,
        "the kills must land mid-crawl: {seen:?}"
    );
    let t0 = Instant::now();
    let out = wait_ok(
        spawn_crawl(
            &net,
            &list,
            &ca,
            &db,
            "kill",
            &["--lease", "2s", "--per-ip-rate", "50"],
        ),
        Duration::from_secs(120),
    )
    .await;
    eprintln!("resumed run took {:?}:\n{out}", t0.elapsed());
    assert!(out.contains("resumed"), "{out}");
    assert_complete(&db, 120).await;
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM crawls WHERE status = 'finished'").await,
        1
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_probe_the_same_domain_twice() {
    let net = testnet(92, 80, PROFILES).await;
    let dir = tmpdir("two");
    let (list, ca) = files(&net, &dir);
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    let args = ["--per-ip-rate", "20", "--concurrency", "8", "--worker-id"];
    let a = spawn_crawl(
        &net,
        &list,
        &ca,
        &db,
        "two",
        &[&args[..], &["worker-a"]].concat(),
    );
    // Let the crawl create and fill the queue, then join with a second worker.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut cmd = bin();
    cmd.args([
        "worker",
        "--crawl",
        "two",
        "--worker-id",
        "worker-b",
        "--per-ip-rate",
        "20",
        "--concurrency",
        "8",
    ]);
    net_args(&mut cmd, &net, &ca, &db);
    let b = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker");
    let out_a = wait_ok(a, Duration::from_secs(120)).await;
    let out_b = wait_ok(b, Duration::from_secs(120)).await;
    assert_complete(&db, 80).await;
    // One probe per domain: nothing was leased twice.
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM crawl_queue WHERE attempts <> 1 AND state = 'done'"
        )
        .await,
        0
    );
    // Both workers probed some domains, and together exactly the 80.
    let probed = |out: &str, id: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("worker {id}: ")))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no worker line for {id} in:\n{out}"))
    };
    let (pa, pb) = (probed(&out_a, "worker-a"), probed(&out_b, "worker-b"));
    eprintln!("worker-a probed {pa}, worker-b probed {pb}");
    assert!(pa > 0 && pb > 0, "both workers worked: {pa} + {pb}");
    assert_eq!(pa + pb, 80, "no domain probed twice, none skipped");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_crawl_the_crawl_waits_and_loses_nothing() {
    let net = testnet(93, 80, PROFILES).await;
    let dir = tmpdir("pgstop");
    let (list, ca) = files(&net, &dir);
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
    let data = dir.join("pg");
    // Below the ephemeral range (32768+): no outgoing socket can hold it.
    let port = 20000 + rand::random::<u16>() % 12000;
    let pg = |args: &[&str]| {
        let out = Command::new(&scripts).args(args).output().expect("pg.sh");
        assert!(
            out.status.success(),
            "pg.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let url = pg(&["start", &data.to_string_lossy(), &port.to_string()]);
    migrate(&url);
    let child = spawn_crawl(
        &net,
        &list,
        &ca,
        &url,
        "pgstop",
        &["--per-ip-rate", "4", "--concurrency", "16"],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg(&["stop", &data.to_string_lossy()]);
    // Longer than the pool's acquire timeout (5 s), so the worker's own
    // wait-and-retry path runs, not just the pool's patience.
    tokio::time::sleep(Duration::from_secs(7)).await;
    pg(&["start", &data.to_string_lossy(), &port.to_string()]);
    let out = wait_ok(child, Duration::from_secs(120)).await;
    eprintln!("{out}");
    assert!(
        out.contains("waited"),
        "the worker noticed the database was gone:\n{out}"
    );
    assert_complete(&url, 80).await;
    pg(&["stop", &data.to_string_lossy()]);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_are_named_and_the_valid_rest_still_crawls() {
    let net = testnet(94, 6, &["srv_ok"]).await;
    let dir = tmpdir("bad");
    let (list, ca) = files(&net, &dir);
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    // Unknown format: refused up front, naming the argument.
    let mut cmd = bin();
    cmd.args(["crawl", "--label", "bad", "--source", "gopher:list"]);
    net_args(&mut cmd, &net, &ca, &db);
    let out = cmd.output().expect("runs");
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(text.contains("gopher:list"), "{text}");
    // Invalid lines, an unreachable providers URL and broken JSON: warnings,
    // the valid domains still crawl.
    let mut text_list = std::fs::read_to_string(&list).expect("list");
    text_list.push_str("\nnot a domain\n");
    std::fs::write(&list, &text_list).expect("write");
    let broken = dir.join("providers.json");
    std::fs::write(&broken, "[{\"jid\": ").expect("write");
    let child = spawn_crawl(
        &net,
        &list,
        &ca,
        &db,
        "bad",
        &[
            "--source",
            "providers:http://127.0.0.1:1/providers.json",
            "--source",
            &format!("providers:{}", broken.display()),
        ],
    );
    let out = wait_ok(child, Duration::from_secs(60)).await;
    assert!(out.contains("not a domain"), "{out}");
    assert!(out.contains("127.0.0.1:1"), "{out}");
    assert!(out.contains("providers.json"), "{out}");
    assert_complete(&db, 6).await;
    net.shutdown().await;
}
