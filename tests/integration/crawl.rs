//! The crawl engine against a real PostgreSQL and the testnet, driven
//! through the real binary: kill -9 and resume, PostgreSQL restarted
//! mid-crawl, two workers on one crawl, bad sources.

use crate::support::{bin, key_label, pem, pg, testnet, tmpdir};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xmpp_survey::testnet::Testnet;

/// Writes the testnet's domains and CA, returns (list, ca).
pub(crate) fn files(net: &Testnet, dir: &Path) -> (PathBuf, PathBuf) {
    let list = dir.join("domains.txt");
    std::fs::write(&list, net.domains().join("\n")).expect("list");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, net.ca_pem()).expect("ca");
    (list, ca)
}

pub(crate) fn migrate(db: &str) {
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
    args_with_resolver(cmd, &net.dns_addr().to_string(), ca, db);
}

/// [`net_args`] with another resolver.
fn args_with_resolver(cmd: &mut Command, resolver: &str, ca: &Path, db: &str) {
    cmd.arg("--database-url")
        .arg(db)
        .arg("--resolver")
        .arg(resolver)
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

pub(crate) async fn wait_ok(child: Child, limit: Duration) -> String {
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

pub(crate) async fn scalar(db: &str, sql: &'static str) -> i64 {
    let pool = sqlx::PgPool::connect(db).await.expect("db");
    let v: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.expect(sql);
    pool.close().await;
    v
}

/// Every domain of the list ended exactly once: done with one result, or
/// not_tested; nothing queued or leased; no result duplicated.
pub(crate) async fn assert_complete(db: &str, n: usize) {
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
    let mut text_list = std::fs::read(&list).expect("list");
    text_list.extend_from_slice(b"\nnot a domain\ncaf\xe9.example\n");
    let latin1_line = text_list.iter().filter(|&&b| b == b'\n').count();
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
    // A line that is not UTF-8 costs that line, named, not the list.
    assert!(
        out.contains(&format!("domains.txt:{latin1_line}: ")) && out.contains("not UTF-8"),
        "{out}"
    );
    assert!(out.contains("127.0.0.1:1"), "{out}");
    assert!(out.contains("providers.json"), "{out}");
    assert_complete(&db, 6).await;
    net.shutdown().await;
}

/// Runs the binary to completion; returns (success, stdout + stderr).
pub(crate) async fn run_cmd(mut cmd: Command) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The testnet's probe identity as files: (domain, listen, cert, key, leaf
/// SHA-256 of the server-only certificate).
pub(crate) fn identity_files(
    net: &Testnet,
    dir: &Path,
) -> (String, String, PathBuf, PathBuf, String) {
    use sha2::Digest;
    let id = net.probe_identity().expect("identity");
    let so = &id.server_only;
    let cert = dir.join("probe.pem");
    let chain: Vec<&[u8]> = so.chain.iter().map(|c| c.as_ref()).collect();
    std::fs::write(&cert, pem("CERTIFICATE", &chain)).expect("cert");
    let key = dir.join("probe.key");
    let label = key_label(so.key_der.as_ref());
    std::fs::write(&key, pem(label, &[so.key_der.secret_der()])).expect("key");
    let sha = hex::encode(sha2::Sha256::digest(so.chain[0].as_ref()));
    (id.domain.clone(), id.listen.to_string(), cert, key, sha)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_that_cannot_start_creates_no_crawl_and_names_the_culprit() {
    let net = testnet(95, 2, &["srv_ok"]).await;
    let dir = tmpdir("nostart");
    let (list, ca) = files(&net, &dir);
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    let crawl = |label: &str| {
        let mut cmd = bin();
        cmd.args(["crawl", "--label", label, "--source"]).arg(&list);
        cmd
    };
    // Unreachable resolver (nothing listens on 127.0.0.1:1).
    let mut cmd = crawl("nostart");
    args_with_resolver(&mut cmd, "127.0.0.1:1", &ca, &db);
    let (ok, text) = run_cmd(cmd).await;
    assert!(!ok, "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM crawls").await,
        0,
        "{text}"
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM crawl_queue").await, 0);

    // A corrupt CA file.
    let corrupt = dir.join("corrupt-ca.pem");
    std::fs::write(
        &corrupt,
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let mut cmd = crawl("nostart");
    net_args(&mut cmd, &net, &corrupt, &db);
    let (ok, text) = run_cmd(cmd).await;
    assert!(!ok, "{text}");
    assert!(text.contains("corrupt-ca.pem"), "{text}");
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM crawls").await,
        0,
        "{text}"
    );

    // The dialback listener cannot bind (its address is taken).
    let (domain, listen, cert, key, _) = identity_files(&net, &dir);
    let taken = std::net::TcpListener::bind(&listen).expect("take the listen address");
    let mut cmd = crawl("nostart");
    net_args(&mut cmd, &net, &ca, &db);
    cmd.args(["--probe-domain", &domain, "--listen", &listen])
        .arg("--probe-cert")
        .arg(&cert)
        .arg("--probe-key")
        .arg(&key);
    let (ok, text) = run_cmd(cmd).await;
    drop(taken);
    assert!(!ok, "{text}");
    assert!(text.contains(&listen), "{text}");
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM crawls").await,
        0,
        "{text}"
    );

    // An existing crawl is not resumed by a run that cannot start.
    let mut cmd = crawl("nostart");
    net_args(&mut cmd, &net, &ca, &db);
    let (ok, text) = run_cmd(cmd).await;
    assert!(ok, "{text}");
    let mut cmd = crawl("nostart");
    args_with_resolver(&mut cmd, "127.0.0.1:1", &ca, &db);
    let (ok, text) = run_cmd(cmd).await;
    assert!(!ok, "{text}");
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM crawls WHERE status = 'finished' AND resumes = 0"
        )
        .await,
        1,
        "{text}"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawls_config_records_how_the_crawl_was_measured() {
    let net = testnet(96, 3, &["srv_ok", "cert_server_only"]).await;
    let dir = tmpdir("config");
    let (list, ca) = files(&net, &dir);
    let (domain, listen, cert, key, so_sha) = identity_files(&net, &dir);
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    let mut cmd = bin();
    cmd.args(["crawl", "--label", "config", "--source"])
        .arg(&list);
    net_args(&mut cmd, &net, &ca, &db);
    cmd.args([
        "--probe-domain",
        &domain,
        "--listen",
        &listen,
        "--per-ip-rate",
        "7",
        "--write-batch",
        "5",
    ])
    .arg("--probe-cert")
    .arg(&cert)
    .arg("--probe-key")
    .arg(&key);
    let (ok, text) = run_cmd(cmd).await;
    assert!(ok, "{text}");
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let (config, version, probe_domain): (serde_json::Value, String, Option<String>) =
        sqlx::query_as("SELECT config, software_version, probe_domain FROM crawls")
            .fetch_one(&pool)
            .await
            .expect("crawl row");
    pool.close().await;
    let c = &config;
    assert_eq!(c["address_policy"]["allow_private"], true, "{c:#}");
    assert_eq!(c["resolver"], net.dns_addr().to_string(), "{c:#}");
    assert_eq!(c["extra_ca"][0]["path"], ca.display().to_string(), "{c:#}");
    assert_eq!(c["extra_ca"][0]["sha256"].as_array().map(Vec::len), Some(1));
    assert_eq!(c["limits"]["phase_timeout_ms"], 2000, "{c:#}");
    assert_eq!(c["limits"]["dns_timeout_ms"], 800, "{c:#}");
    assert_eq!(c["politeness"]["per_ip_rate"], 7, "{c:#}");
    assert_eq!(c["retries"]["max_attempts"], 2, "{c:#}");
    assert_eq!(c["retries"]["retry_base_ms"], 200, "{c:#}");
    assert_eq!(c["worker"]["write_batch"], 5, "{c:#}");
    assert_eq!(c["identity"]["domain"], domain.as_str(), "{c:#}");
    assert_eq!(c["identity"]["listen"], listen.as_str(), "{c:#}");
    let so = &c["identity"]["certificates"][0];
    assert_eq!(so["role"], "server_only", "{c:#}");
    assert_eq!(so["eku_class"], "server_only", "{c:#}");
    assert_eq!(so["sha256"], so_sha.as_str(), "{c:#}");
    assert!(
        c["roots_version"]
            .as_str()
            .is_some_and(|r| r.starts_with("webpki-roots"))
    );
    assert_eq!(probe_domain.as_deref(), Some(domain.as_str()));
    // "0.1.0 (<git describe>)": the crate version and a revision.
    let revision = version
        .strip_prefix(env!("CARGO_PKG_VERSION"))
        .and_then(|r| r.strip_prefix(" ("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("software_version {version:?}"));
    assert!(!revision.is_empty(), "{version}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_that_stops_on_an_error_is_marked_failed_with_it() {
    let net = testnet(97, 3, &["srv_ok"]).await;
    let dir = tmpdir("failed");
    let (list, ca) = files(&net, &dir);
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    // A real PostgreSQL error on every result write (not a lost
    // connection, which the worker waits out): the crawl cannot go on.
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    for sql in [
        "CREATE FUNCTION xs_test_refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected write failure'; END $$",
        "CREATE TRIGGER xs_test_refuse BEFORE INSERT ON results \
         FOR EACH ROW EXECUTE FUNCTION xs_test_refuse()",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    pool.close().await;
    let mut cmd = bin();
    cmd.args(["crawl", "--label", "failed", "--source"])
        .arg(&list);
    net_args(&mut cmd, &net, &ca, &db);
    let (ok, text) = run_cmd(cmd).await;
    assert!(!ok, "{text}");
    assert!(text.contains("injected write failure"), "{text}");
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status::text, error FROM crawls WHERE label = 'failed'")
            .fetch_one(&pool)
            .await
            .expect("crawl row");
    pool.close().await;
    assert_eq!(status, "failed", "{text}");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("injected write failure")),
        "{error:?}"
    );
    net.shutdown().await;
}

/// Runs the binary under `ulimit -n LIMIT` (soft and hard: the binary
/// cannot raise it).
fn bin_with_nofile(limit: u32) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_xmpp-survey"));
    cmd
}

/// The issue "No one outside can change a verdict or stop a crawl": with
/// the shell's 1,024 open files, a 1,000-domain crawl with the acceptance
/// probe recorded 130 verdicts wrongly `unreachable`/`no_address`. Under
/// `ulimit -n 256` the crawl either refuses to start, naming the limit, or
/// fits its concurrency and listener into the budget and records only
/// what the manifest says; the listener's counters land in the crawl's
/// row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_fd_limit_lowers_the_concurrency_and_changes_no_verdict() {
    use xmpp_survey::facts::{compare, facts};
    use xmpp_survey::probe::report::DomainReport;
    use xmpp_survey::testnet::profile::{PROFILES as ALL, is_acceptance};
    let mut names: Vec<&str> = ALL
        .iter()
        .filter(|p| is_acceptance(p))
        .map(|p| p.name)
        .collect();
    names.extend([
        "srv_ok",
        "cert_server_only",
        "no_srv",
        "direct_tls",
        "refused",
        "nxdomain",
    ]);
    let n = names.len() * 4;
    let net = testnet(98, n, &names).await;
    let dir = tmpdir("nofile");
    let (list, ca) = files(&net, &dir);
    let (domain, listen, cert, key, _) = identity_files(&net, &dir);
    // The client-and-server control certificate too (the acceptance
    // profiles' expectations include its attempt).
    let id = net.probe_identity().expect("identity");
    let cs = id.client_and_server.as_ref().expect("control certificate");
    let cs_cert = dir.join("probe-cs.pem");
    let chain: Vec<&[u8]> = cs.chain.iter().map(|c| c.as_ref()).collect();
    std::fs::write(&cs_cert, pem("CERTIFICATE", &chain)).expect("cs cert");
    let cs_key = dir.join("probe-cs.key");
    std::fs::write(&cs_key, pem("PRIVATE KEY", &[cs.key_der.secret_der()])).expect("cs key");
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    let crawl = |limit: u32, label: &str| {
        let mut cmd = bin_with_nofile(limit);
        cmd.args(["crawl", "--label", label, "--source"]).arg(&list);
        net_args(&mut cmd, &net, &ca, &db);
        cmd.args([
            "--probe-domain",
            &domain,
            "--listen",
            &listen,
            "--concurrency",
            "256",
            "--no-limits",
        ])
        .arg("--probe-cert")
        .arg(&cert)
        .arg("--probe-key")
        .arg(&key)
        .arg("--probe-cs-cert")
        .arg(&cs_cert)
        .arg("--probe-cs-key")
        .arg(&cs_key);
        cmd
    };

    // Too low for a minimal crawl: refused before the crawl exists.
    let (ok, text) = run_cmd(crawl(64, "nofile-64")).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("open-file limit (RLIMIT_NOFILE) is 64") && text.contains("ulimit -n"),
        "{text}"
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM crawls").await, 0);

    // 256: the concurrency is lowered to fit, with a warning.
    let (ok, text) = run_cmd(crawl(256, "nofile-256")).await;
    eprintln!("{text}");
    assert!(ok, "{text}");
    assert!(text.contains("fd budget 256: concurrency"), "{text}");
    assert!(text.contains("(asked 256)"), "{text}");
    assert!(
        text.contains("warning: --concurrency 256 does not fit"),
        "{text}"
    );
    assert!(
        text.contains("open files"),
        "the summary shows the fd peak:\n{text}"
    );
    assert_complete(&db, n).await;

    // Every stored report agrees with the manifest; nothing of ours
    // (local exhaustion) was recorded against a target.
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let rows: Vec<serde_json::Value> = sqlx::query_scalar("SELECT report FROM results")
        .fetch_all(&pool)
        .await
        .expect("reports");
    let manifest = net.manifest();
    let by_domain: std::collections::HashMap<_, _> = manifest
        .domains
        .iter()
        .map(|d| (d.domain.clone(), d))
        .collect();
    let mut mismatches = Vec::new();
    let mut inbound_gaps = Vec::new();
    for row in &rows {
        let r: DomainReport = serde_json::from_value(row.clone()).expect("report");
        let d = by_domain[&r.domain];
        for m in compare(&d.expect, &facts(&r)) {
            if m.key.starts_with("acceptance.inbound_") {
                inbound_gaps.push(format!("{} {}", d.domain, m.key));
            }
            mismatches.push(format!(
                "{} [{}] {}: expected {} got {}",
                d.domain, d.profile, m.key, m.expected, m.got
            ));
        }
    }
    let not_tested = scalar(
        &db,
        "SELECT count(*) FROM crawl_queue WHERE state = 'not_tested'",
    )
    .await;
    eprintln!(
        "ulimit -n 256: {} results, {not_tested} not tested, {} mismatches, {} inbound evidence gaps: {inbound_gaps:?}",
        rows.len(),
        mismatches.len(),
        inbound_gaps.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatch(es):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM endpoints WHERE connect = 'local_resource_exhausted'"
        )
        .await,
        0
    );
    // A domain that ran out of descriptors ends not_tested with the reason.
    let reasons: Vec<Option<String>> =
        sqlx::query_scalar("SELECT last_error FROM crawl_queue WHERE state = 'not_tested'")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    for r in &reasons {
        eprintln!("not tested: {r:?}");
    }

    // The crawl's row: the budget in its config, the listener's counters.
    let (config, stats): (serde_json::Value, Option<serde_json::Value>) =
        sqlx::query_as("SELECT config, listener_stats FROM crawls WHERE label = 'nofile-256'")
            .fetch_one(&pool)
            .await
            .expect("crawl row");
    pool.close().await;
    let b = &config["budget"];
    assert_eq!(b["nofile"], 256, "{config:#}");
    assert_eq!(b["requested_concurrency"], 256, "{config:#}");
    let concurrency = b["concurrency"].as_u64().expect("concurrency");
    assert!(concurrency < 256, "{config:#}");
    assert_eq!(config["worker"]["concurrency"], concurrency, "{config:#}");
    let stats = stats.expect("listener_stats written when the crawl ended");
    let (_, mine) = stats
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("one worker's entry");
    let l = &mine["listener"];
    assert!(l["accepted"].as_u64().unwrap_or(0) > 0, "{stats:#}");
    assert!(l["authenticated"].as_u64().is_some(), "{stats:#}");
    assert!(l["peak_streams"].as_u64().unwrap_or(0) > 0, "{stats:#}");
    let peak = mine["fd_peak"].as_u64().expect("fd_peak");
    assert!(peak > 0 && peak <= 256, "{stats:#}");
    assert_eq!(mine["budget"]["nofile"], 256, "{stats:#}");
    net.shutdown().await;
}

/// Hostile bytes never stop a crawl (issue "No one outside can change a
/// verdict or stop a crawl"): servers sending U+0000, a certificate with an
/// offset time and one with U+0000 in a SAN are crawled into PostgreSQL;
/// the crawl finishes, every domain is recorded, and each odd result says
/// what was wrong. Then one domain's result is made unstorable (a real
/// PostgreSQL data error, 22P05, raised for that domain only): its batch
/// is written domain by domain, the others are stored, and it ends
/// `not_tested` with the store's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_and_an_unstorable_result_never_stop_a_crawl() {
    let profiles = [
        "nul_in_features",
        "cert_offset_time",
        "cert_nul_in_san",
        "srv_ok",
    ];
    let net = testnet(99, profiles.len() * 2, &profiles).await;
    let dir = tmpdir("hostile-bytes");
    let (list, ca) = files(&net, &dir);
    let tdb = pg().await;
    let db = tdb.url.clone();
    migrate(&db);
    let manifest = net.manifest();
    let odd = manifest
        .domains
        .iter()
        .find(|d| d.profile == "srv_ok")
        .expect("an srv_ok domain")
        .domain
        .clone();
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    for sql in [
        format!(
            "CREATE FUNCTION xs_test_unstorable() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF (SELECT name FROM domains WHERE id = NEW.domain_id) = '{odd}' THEN \
             RAISE EXCEPTION 'unsupported Unicode escape sequence (injected)' USING ERRCODE = '22P05'; \
             END IF; RETURN NEW; END $$"
        ),
        "CREATE TRIGGER xs_test_unstorable BEFORE INSERT ON results \
         FOR EACH ROW EXECUTE FUNCTION xs_test_unstorable()"
            .to_string(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&pool)
            .await
            .expect("trigger");
    }
    let mut cmd = bin();
    cmd.args([
        "crawl",
        "--label",
        "hostile",
        "--write-batch",
        "64",
        "--source",
    ])
    .arg(&list);
    net_args(&mut cmd, &net, &ca, &db);
    let (ok, text) = run_cmd(cmd).await;
    assert!(ok, "the crawl finishes: {text}");
    let n = manifest.domains.len() as i64;
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM results")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, n - 1, "every other domain is recorded: {text}");
    let (state, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT q.state::text, q.last_error FROM crawl_queue q JOIN domains d ON d.id = q.domain_id \
         WHERE d.name = $1",
    )
    .bind(&odd)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(state, "not_tested");
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("could not be stored") && r.contains("22P05")
                || r.contains("unsupported Unicode")),
        "{reason:?}"
    );
    // What was wrong, in the stored results.
    let outcome: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT e.outcome::text, r.report #>> '{endpoints,0,detail}' FROM endpoints e \
         JOIN domains d ON d.id = e.domain_id \
         JOIN results r ON r.crawl_id = e.crawl_id AND r.domain_id = e.domain_id \
         WHERE d.name LIKE 'nul-in-features-%' AND e.service = 'c2s'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!outcome.is_empty());
    for (o, detail) in &outcome {
        assert_eq!(o, "invalid_xml", "{detail:?}");
        assert!(
            detail.as_deref().is_some_and(|d| d.contains("U+0000")),
            "the detail names the character: {detail:?}"
        );
    }
    let anomalies: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT d.name, r.report #> '{endpoints,0,tls,chain,0,anomalies}' FROM results r \
         JOIN domains d ON d.id = r.domain_id WHERE d.name LIKE 'cert-%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(anomalies.len(), 4, "{anomalies:?}");
    for (name, a) in &anomalies {
        let want = if name.starts_with("cert-offset-time") {
            serde_json::json!(["time_with_offset", "time_outside_rfc5280_profile"])
        } else {
            serde_json::json!(["nul_in_name"])
        };
        assert_eq!(a, &want, "{name}");
    }
    pool.close().await;
    net.shutdown().await;
}
