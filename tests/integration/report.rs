//! `xmpp-survey report` over a real crawl: the testnet (truth known from
//! its manifest) crawled with the acceptance probe into PostgreSQL, then
//! the report's headline numbers checked against the manifest and the
//! federation impact against a brute-force pair loop.

use crate::support::{bin, key_label, pem, pg, testnet, tmpdir};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use xmpp_survey::report::federation::{self, Initiator, Outcome, Receiver};
use xmpp_survey::testnet::Testnet;

/// The files every report writes (others appear with `--compare` or
/// recorded changes).
pub(crate) const REPORT_FILES: [&str; 6] = [
    "index.html",
    "report.md",
    "summary.json",
    "domains.csv",
    "endpoints.csv",
    "certificates.csv",
];

pub(crate) fn run(mut cmd: Command) -> String {
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// Crawls the testnet with both probe certificates into `db`.
pub(crate) fn crawl(net: &Testnet, dir: &Path, db: &str, label: &str) {
    crawl_domains(net, dir, db, label, &net.domains());
}

/// [`crawl`] of `domains` only.
pub(crate) fn crawl_domains(net: &Testnet, dir: &Path, db: &str, label: &str, domains: &[String]) {
    let list = dir.join(format!("domains-{label}.txt"));
    std::fs::write(&list, domains.join("\n")).expect("list");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, net.ca_pem()).expect("ca");
    let ids = probe_identity_args(net, dir);
    run({
        let mut c = bin();
        c.args(["db", "migrate", "--database-url", db]);
        c
    });
    let mut cmd = bin();
    cmd.args(["crawl", "--label", label, "--source"])
        .arg(&list)
        .args(["--database-url", db, "--resolver"])
        .arg(net.dns_addr().to_string())
        .arg("--extra-ca")
        .arg(&ca)
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
        ])
        .args(&ids);
    run(cmd);
}

/// The testnet's probe identity written to `dir` as the flags `crawl`,
/// `probe` and `lookup --live` take.
pub(crate) fn probe_identity_args(net: &Testnet, dir: &Path) -> Vec<std::ffi::OsString> {
    let id = net.probe_identity().expect("identity");
    let mut files = Vec::new();
    for (name, cert) in [
        ("so", Some(&id.server_only)),
        ("cs", id.client_and_server.as_ref()),
    ] {
        let cert = cert.expect("probe certificate");
        let c = dir.join(format!("{name}.pem"));
        let chain: Vec<&[u8]> = cert.chain.iter().map(|c| c.as_ref()).collect();
        std::fs::write(&c, pem("CERTIFICATE", &chain)).expect("cert");
        let k = dir.join(format!("{name}.key"));
        std::fs::write(
            &k,
            pem(key_label(&cert.key_der), &[cert.key_der.secret_der()]),
        )
        .expect("key");
        files.push((c, k));
    }
    let mut out: Vec<std::ffi::OsString> = vec![
        "--probe-domain".into(),
        id.domain.clone().into(),
        "--listen".into(),
        id.listen.to_string().into(),
    ];
    for (flag, path) in [
        ("--probe-cert", &files[0].0),
        ("--probe-key", &files[0].1),
        ("--probe-cs-cert", &files[1].0),
        ("--probe-cs-key", &files[1].1),
    ] {
        out.push(flag.into());
        out.push(path.clone().into_os_string());
    }
    out
}

fn report(db: &str, out: &Path, extra: &[&str]) -> String {
    let mut cmd = bin();
    cmd.args(["report", "--database-url", db, "--out"])
        .arg(out)
        .args(extra);
    run(cmd)
}

/// Count of `value` in the summary.json breakdown `key`.
fn shares(summary: &serde_json::Value, key: &str) -> BTreeMap<String, u64> {
    let b = summary["breakdowns"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["key"] == key))
        .unwrap_or_else(|| panic!("breakdown {key}"));
    share_map(b)
}

fn share_map(b: &serde_json::Value) -> BTreeMap<String, u64> {
    b["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .map(|s| {
            (
                s["value"].as_str().expect("value").to_string(),
                s["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

/// Counts of one expected fact over the manifest, for the domains `keep`
/// selects; `None` when some selected domain does not state it.
fn expected(
    net: &Testnet,
    key: &str,
    keep: impl Fn(&xmpp_survey::testnet::ManifestDomain) -> bool,
) -> Option<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for d in net.manifest().domains.iter().filter(|d| keep(d)) {
        let v = d.expect.get(key)?;
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        *out.entry(v).or_default() += 1;
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_figures_match_the_manifest_and_a_pair_loop() {
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
        "refused",
        "nxdomain",
        "cert_expired",
    ]);
    let n = names.len() * 2;
    let net = testnet(74, n, &names).await;
    let dir = tmpdir("figures");
    let tdb = pg().await;
    let db = tdb.url.clone();
    crawl(&net, &dir, &db, "first");

    // Two runs on the same crawl: identical files but for the timestamp.
    let (a, b) = (dir.join("a"), dir.join("b"));
    let out = report(&db, &a, &["--crawl", "first"]);
    assert!(out.contains("index.html"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    report(&db, &b, &["--crawl", "latest"]);
    let stamp = |p: &Path| -> String {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p.join("summary.json")).expect("json"))
                .expect("json");
        s["generated_at"]
            .as_str()
            .expect("generated_at")
            .to_string()
    };
    let (ta, tb) = (stamp(&a), stamp(&b));
    assert_ne!(ta, tb);
    for f in REPORT_FILES {
        let x = std::fs::read_to_string(a.join(f))
            .expect(f)
            .replace(&ta, "T");
        let y = std::fs::read_to_string(b.join(f))
            .expect(f)
            .replace(&tb, "T");
        assert!(x == y, "{f} differs between two runs");
    }
    // Self-contained: no external resource.
    let html = std::fs::read_to_string(a.join("index.html")).expect("html");
    for bad in ["<script", "<link", "src=\"http", "url(http", "@import"] {
        assert!(!html.contains(bad), "index.html contains {bad}");
    }
    assert!(html.contains("<svg") && html.contains("<title"));
    // In a real browser: renders, no console message, no request of its own.
    let shot = std::env::temp_dir().join(format!("xmpp-survey-report-{}.png", std::process::id()));
    open_in_chromium(&a.join("index.html"), &shot);
    eprintln!("report screenshot: {}", shot.display());

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).expect("json"))
            .expect("json");
    assert_eq!(summary["schema_version"], 1);
    let dom = &summary["domains"];
    assert_eq!(dom["queued"], n as u64);
    assert_eq!(
        dom["tested"].as_u64().unwrap_or(0) + dom["not_tested"].as_u64().unwrap_or(0),
        n as u64,
        "{dom}"
    );
    let not_tested = dom["not_tested"].as_u64().unwrap_or(0);
    // Headline numbers against the manifest (every domain tested here).
    if not_tested == 0 {
        let all = |_: &xmpp_survey::testnet::ManifestDomain| true;
        let s2s = expected(&net, "summary.s2s.status", all).expect("manifest states s2s status");
        assert_eq!(shares(&summary, "s2s.status"), s2s);
        if let Some(c2s) = expected(&net, "summary.c2s.status", all) {
            assert_eq!(shares(&summary, "c2s.status"), c2s);
        }
        let tls_ok = |d: &xmpp_survey::testnet::ManifestDomain| {
            d.expect.get("summary.s2s.status").and_then(|v| v.as_str()) == Some("tls_ok")
        };
        if let Some(eku) = expected(&net, "summary.s2s.eku_class", tls_ok) {
            assert_eq!(shares(&summary, "s2s.eku_class"), eku);
        }
        if let Some(v) = expected(&net, "summary.s2s.chain_verdict", tls_ok) {
            assert_eq!(shares(&summary, "s2s.chain_verdict"), v);
        }
        let mut verdicts =
            expected(&net, "acceptance.verdict", all).expect("manifest states verdicts");
        let not_run = verdicts.remove("not_run").unwrap_or(0);
        let unreachable = verdicts.remove("unreachable").unwrap_or(0);
        assert_eq!(share_map(&summary["acceptance"]["verdicts"]), verdicts);
        assert_eq!(summary["acceptance"]["not_run"], not_run);
        assert_eq!(summary["acceptance"]["unreachable"], unreachable);
    }

    // Federation impact: a brute-force loop over every ordered pair of
    // the stored per-domain rows gives the report's numbers.
    let pool = sqlx::PgPool::connect(&db).await.expect("db");
    let rows: Vec<(Option<String>, Option<String>, String, bool)> = sqlx::query_as(
        "SELECT r.s2s_chain_verdict, r.s2s_client_purpose, r.acceptance,
                (coalesce(r.s2s_dialback_offered, false) OR coalesce(d.offered, false)
                 OR d.outcome IS NOT DISTINCT FROM 'valid')
           FROM results r LEFT JOIN acceptance_dialback d USING (crawl_id, domain_id)
          WHERE r.s2s_status IN ('tls_ok','no_tls','tls_failed','stream_failed')",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    pool.close().await;
    let classes: Vec<(Initiator, Receiver)> = rows
        .iter()
        .map(|(v, p, a, db)| {
            (
                Initiator::classify(v.as_deref(), p.as_deref()),
                Receiver::classify(a, *db),
            )
        })
        .collect();
    assert!(classes.len() > 5, "{} reachable domains", classes.len());
    for (which, renewed) in [("now", false), ("renewed", true)] {
        let mut brute: BTreeMap<Outcome, u64> = BTreeMap::new();
        for (x, &(i, _)) in classes.iter().enumerate() {
            for (y, &(_, r)) in classes.iter().enumerate() {
                if x != y {
                    let i = if renewed { i.renewed() } else { i };
                    *brute.entry(federation::outcome(i, r)).or_default() += 1;
                }
            }
        }
        let f = &summary["federation"][which];
        let pairs = f["pairs"].as_u64().expect("pairs");
        assert_eq!(pairs, (classes.len() * (classes.len() - 1)) as u64);
        for o in Outcome::ALL {
            let key = serde_json::to_value(o).expect("name");
            let key = key.as_str().expect("str");
            let want = brute.get(&o).copied().unwrap_or(0);
            assert_eq!(f["by_outcome"][key].as_u64(), Some(want), "{which} {key}");
            let share = &f["shares"][key];
            assert_eq!(share["count"].as_u64(), Some(want));
            assert_eq!(share["denominator"].as_u64(), Some(pairs));
        }
    }
    // Some strict receiver exists in the testnet: renewal makes it worse.
    assert!(
        summary["federation"]["renewed"]["by_outcome"]["certificate"].as_u64()
            <= summary["federation"]["now"]["by_outcome"]["certificate"].as_u64()
    );

    // A second crawl and --compare: the CSV of changes is written.
    crawl(&net, &dir, &db, "second");
    let c = dir.join("c");
    report(&db, &c, &["--crawl", "second", "--compare", "first"]);
    let s2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.join("summary.json")).expect("json"))
            .expect("json");
    assert_eq!(s2["compare"]["label"], "first");
    assert!(c.join("changes.csv").exists());
    assert_eq!(s2["trends"].as_array().map(Vec::len), Some(2));
    let domains_csv = std::fs::read_to_string(c.join("domains.csv")).expect("csv");
    assert_eq!(domains_csv.lines().count(), n + 1);
    net.shutdown().await;
}

/// Hosts Chromium itself contacts at start-up whatever the flags (component
/// updater, account check, spelling dictionary); with the proxy and
/// resolver rules below these requests fail locally and never leave the
/// machine. Any other URL in the net log came from the page.
pub(crate) const CHROMIUM_OWN_HOSTS: [&str; 3] = ["google.com/", "googleapis.com/", "gvt1.com/"];

/// Opens `html` in Debian's headless Chromium (installed by scripts/test.sh)
/// with an empty profile, every request forced to a closed loopback proxy
/// and every name to NXDOMAIN (nothing can leave the machine), saves a
/// full-page screenshot to `png`, and fails on a console message or on a
/// request the page made for anything but itself.
fn open_in_chromium(html: &Path, png: &Path) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's chromium is installed (scripts/test.sh installs it)");
    let profile = tmpdir("chromium-profile");
    let netlog = profile.join("netlog.json");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--proxy-server=127.0.0.1:1",
            "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!(
            "file://{}",
            html.canonicalize().expect("html path").display()
        ))
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 50_000,
        "screenshot {} is {size} bytes",
        png.display()
    );
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let log = std::fs::read_to_string(&netlog).expect("net log");
    let mut foreign = Vec::new();
    for part in log.split("\"url\":\"").skip(1) {
        let url = part.split('"').next().unwrap_or_default();
        let own = CHROMIUM_OWN_HOSTS.iter().any(|h| url.contains(h));
        if !url.starts_with("file://") && !url.starts_with("data:") && !own {
            foreign.push(url.to_string());
        }
    }
    assert!(foreign.is_empty(), "the report requested {foreign:?}");
}
