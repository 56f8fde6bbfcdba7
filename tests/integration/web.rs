//! `xmpp-survey serve` over a real crawl of the testnet: pages, badges and
//! the API agree with the manifest's truth; the feeds report a verdict
//! changed between two crawls; hostile input gets escaped output or a
//! 4xx, never a 5xx; "test now" probes, refuses private addresses without
//! `--allow-private` and holds its rate limits; the opt-out flow ends with
//! the page saying so; every response carries the security headers; a
//! database that goes away gives 503.
//!
//! Addresses: the testnet on 127.131.0.0/16, the servers on 127.130.0.x,
//! the clients from 127.130.1.x (one address per simulated client).

use crate::report::{crawl, run};
use crate::support::{bin, pg, testnet, tmpdir};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use xmpp_survey::web::view::{BadgeState, verdict_sentence};

/// A running `serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on `ip`.
fn free_port(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).expect("bind");
    l.local_addr().expect("addr")
}

/// Starts `serve` on `ip` with `args`; waits until it answers.
pub(crate) async fn serve(ip: &str, db: &str, args: &[std::ffi::OsString]) -> Server {
    let addr = free_port(ip);
    let child = bin()
        .args(["serve", "--bind", &addr.to_string(), "--database-url", db])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("serve starts");
    let server = Server {
        child,
        base: format!("http://{addr}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return server;
        }
        assert!(Instant::now() < deadline, "serve did not start on {addr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP client from `from` (a loopback address of its own), never
/// following redirects.
pub(crate) fn client(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().expect("ip"))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub(crate) struct Got {
    pub(crate) status: u16,
    headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Got {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Checks what every answer must have: a status below 500 (unless
/// `allow_5xx`) and the security headers.
fn check_common(path: &str, g: &Got, allow_5xx: bool) {
    assert!(
        allow_5xx || g.status < 500,
        "{path}: {} {}",
        g.status,
        g.body
    );
    assert_eq!(
        g.header("content-security-policy"),
        if path.starts_with("/reports/") && path.len() > "/reports/".len() && g.status == 200 {
            xmpp_survey::web::security::REPORT_CSP
        } else {
            xmpp_survey::web::security::CSP
        },
        "{path}"
    );
    assert_eq!(g.header("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(g.header("referrer-policy"), "no-referrer", "{path}");
}

pub(crate) async fn get(c: &reqwest::Client, base: &str, path: &str) -> Got {
    let r = c
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let g = Got {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        // minijinja escapes '/' too; the checks read the text.
        body: r.text().await.expect("body").replace("&#x2f;", "/"),
    };
    check_common(path, &g, false);
    g
}

/// `application/x-www-form-urlencoded` of `form`.
fn urlencoded(form: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn post(c: &reqwest::Client, base: &str, path: &str, form: &[(&str, &str)]) -> Got {
    let r = c
        .post(format!("{base}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(urlencoded(form))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let g = Got {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        // minijinja escapes '/' too; the checks read the text.
        body: r.text().await.expect("body").replace("&#x2f;", "/"),
    };
    check_common(path, &g, false);
    g
}

/// Follows a live probe's page until it stops refreshing; its body.
async fn wait_live(c: &reqwest::Client, base: &str, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let g = get(c, base, path).await;
        assert_eq!(g.status, 200, "{path}: {}", g.body);
        if !g.body.contains("http-equiv=\"refresh\"") {
            return g.body;
        }
        assert!(Instant::now() < deadline, "{path} never finished");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Screenshots `url` (on our loopback server) in Debian's headless
/// Chromium in a `width` × `height` window: an empty profile, a closed proxy, every
/// name but 127.0.0.1 unresolvable (nothing can leave the machine). Fails
/// on a console message (a CSP violation is one) or on a request to any
/// other origin than the page's.
fn screenshot(url: &str, png: &std::path::Path, (width, height): (u32, u32)) {
    let profile = tmpdir("chromium-profile");
    let netlog = profile.join("netlog.json");
    let out = std::process::Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        png.display()
    );
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "{url}: console messages: {console:#?}");
    let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    let log = std::fs::read_to_string(&netlog).expect("net log");
    let foreign: Vec<&str> = log
        .split("\"url\":\"")
        .skip(1)
        .map(|p| p.split('"').next().unwrap_or_default())
        .filter(|u| {
            !u.starts_with(&origin)
                && !u.starts_with("data:")
                && !["google.com/", "googleapis.com/", "gvt1.com/"]
                    .iter()
                    .any(|h| u.contains(h))
        })
        .collect();
    assert!(foreign.is_empty(), "{url} requested {foreign:?}");
    let _ = std::fs::remove_dir_all(&profile);
}

/// Copies crawl `from` as a finished crawl `to` a week later, with
/// `changed`'s acceptance verdict set to `verdict`.
async fn second_crawl(db: &str, from: &str, to: &str, changed: &str, verdict: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(db).await.expect("db");
    let id_from: i64 = sqlx::query_scalar("SELECT id FROM crawls WHERE label = $1")
        .bind(from)
        .fetch_one(&mut c)
        .await
        .expect("crawl");
    let id_to: i64 = sqlx::query_scalar(
        "INSERT INTO crawls (label, started_at, finished_at, status, sources, vantage,
                             probe_domain, software_version, roots_version, config)
         SELECT $2, started_at + interval '7 days', finished_at + interval '7 days', 'finished',
                sources, vantage, probe_domain, software_version, roots_version, config
           FROM crawls WHERE id = $1 RETURNING id",
    )
    .bind(id_from)
    .bind(to)
    .fetch_one(&mut c)
    .await
    .expect("crawl copied");
    sqlx::query(
        "INSERT INTO crawl_queue (crawl_id, domain_id, state, attempts, done_at)
         SELECT $2, domain_id, state, attempts, done_at FROM crawl_queue WHERE crawl_id = $1",
    )
    .bind(id_from)
    .bind(id_to)
    .execute(&mut c)
    .await
    .expect("queue copied");
    sqlx::query(
        "INSERT INTO results
         SELECT (jsonb_populate_record(NULL::results, to_jsonb(r) || jsonb_build_object('crawl_id', $2::bigint))).*
           FROM results r WHERE crawl_id = $1",
    )
    .bind(id_from)
    .bind(id_to)
    .execute(&mut c)
    .await
    .expect("results copied");
    let n = sqlx::query(
        "UPDATE results r SET acceptance = $3,
                report = jsonb_set(report, '{summary,acceptance}', to_jsonb($3::text))
           FROM domains d
          WHERE r.crawl_id = $1 AND d.id = r.domain_id AND d.name = $2",
    )
    .bind(id_to)
    .bind(changed)
    .bind(verdict)
    .execute(&mut c)
    .await
    .expect("verdict changed")
    .rows_affected();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pages_badges_feeds_api_limits_and_opt_out() {
    use xmpp_survey::testnet::profile::{PROFILES as ALL, is_acceptance};
    let mut names: Vec<&str> = ALL
        .iter()
        .filter(|p| is_acceptance(p))
        .map(|p| p.name)
        .collect();
    names.extend(["srv_ok", "cert_server_only", "refused"]);
    let net = testnet(131, names.len(), &names).await;
    let dir = tmpdir("web");
    let tdb = pg().await;
    let db = tdb.url.clone();
    crawl(&net, &dir, &db, "first");
    let reports = dir.join("reports");
    run({
        let mut c = bin();
        c.args(["report", "--crawl", "first", "--database-url", &db, "--out"])
            .arg(reports.join("first"));
        c
    });
    let ca = dir.join("ca.pem");
    let live_args = |allow_private: bool| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec![
            "--reports-dir".into(),
            reports.clone().into(),
            "--resolver".into(),
            net.dns_addr().to_string().into(),
            "--extra-ca".into(),
            ca.clone().into(),
            "--phase-timeout".into(),
            "2s".into(),
            "--connect-timeout".into(),
            "2s".into(),
            "--dns-timeout".into(),
            "800ms".into(),
            "--live-per-ip".into(),
            "3".into(),
            "--live-max-in-flight".into(),
            "10".into(),
        ];
        if allow_private {
            a.push("--allow-private".into());
        }
        a
    };
    let s = serve("127.130.0.1", &db, &live_args(true)).await;
    let base = s.base.as_str();
    let c = client("127.130.1.1");

    // Home: the headline figures of the crawl, the search box.
    let home = get(&c, base, "/").await;
    assert_eq!(home.status, 200);
    for want in [
        "domains tested",
        "first",
        "action=\"/search\"",
        "/reports/first/",
    ] {
        assert!(home.body.contains(want), "home lacks {want}: {}", home.body);
    }
    let css = get(&c, base, "/static/site.css").await;
    assert!(css.header("content-type").starts_with("text/css"));
    assert!(!home.body.contains("style=") && !home.body.contains("<script"));

    // Every domain: page, badge and API agree with the manifest's truth.
    let mut states = std::collections::BTreeSet::new();
    let mut accepting = None;
    for d in &net.manifest().domains {
        let Some(verdict) = d.expect.get("acceptance.verdict").and_then(Value::as_str) else {
            continue;
        };
        let page = get(&c, base, &format!("/domain/{}", d.domain)).await;
        assert_eq!(page.status, 200, "{}", d.domain);
        assert!(
            page.body.contains(verdict_sentence(verdict)),
            "{} ({}): page lacks {:?}",
            d.domain,
            d.profile,
            verdict_sentence(verdict)
        );
        for want in ["Findings", "Endpoints", "Certificate chain", "History"] {
            assert!(page.body.contains(want), "{}: page lacks {want}", d.domain);
        }
        if !matches!(verdict, "unreachable" | "tls_failed") {
            assert!(page.body.contains("EKU:"), "{}: no chain", d.domain);
        }
        assert!(!page.body.contains("style=") && !page.body.contains("<script"));
        let state = BadgeState::from_acceptance(Some(verdict));
        states.insert(state.name());
        let badge = get(&c, base, &format!("/badge/{}.svg", d.domain)).await;
        assert_eq!(badge.status, 200);
        assert!(badge.header("content-type").starts_with("image/svg+xml"));
        assert!(badge.header("cache-control").contains("max-age="));
        assert!(
            badge.body.contains(&format!(">{}</text>", state.text())),
            "{} ({verdict}): badge {}",
            d.domain,
            badge.body
        );
        let api = get(&c, base, &format!("/api/v1/domains/{}", d.domain)).await;
        assert_eq!(api.status, 200);
        let j = api.json();
        assert_eq!(j["domain"], d.domain.as_str());
        assert_eq!(j["opted_out"], false);
        assert_eq!(j["badge"], state.name());
        assert_eq!(j["latest"]["acceptance"], verdict);
        assert_eq!(j["latest"]["crawl_label"], "first");
        let f = j["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["code"] == "accepts_server_only")
            .unwrap_or_else(|| panic!("{j}"));
        for k in ["status", "title", "seen", "evidence", "case"] {
            assert!(!f[k].is_null(), "{k} in {f}");
        }
        if verdict == "accepts_server_only" {
            accepting = Some(d.domain.clone());
        }
    }
    assert!(states.len() >= 3, "badge states seen: {states:?}");
    let accepting = accepting.expect("an accepting domain");
    let unknown = get(&c, base, "/badge/never-tested.example.svg").await;
    assert!(unknown.body.contains(">not tested</text>"));
    let nf = get(&c, base, "/domain/never-tested.example").await;
    assert_eq!(nf.status, 404);
    assert!(nf.body.contains("Test now"), "{}", nf.body);

    // API: lists, filters, pagination, stats, crawls, the OpenAPI document.
    let all = get(&c, base, "/api/v1/domains?per_page=2").await.json();
    assert_eq!(all["domains"].as_array().map(Vec::len), Some(2));
    assert_eq!(all["total"].as_i64(), Some(names.len() as i64));
    let acc = get(&c, base, "/api/v1/domains?acceptance=accepts_server_only")
        .await
        .json();
    assert!(acc["total"].as_i64() >= Some(1));
    for d in acc["domains"].as_array().expect("domains") {
        assert_eq!(d["acceptance"], "accepts_server_only");
    }
    let stats = get(&c, base, "/api/v1/stats").await.json();
    assert_eq!(stats["domains_tested"].as_i64(), Some(names.len() as i64));
    for k in [
        "accepts_server_only",
        "s2s_starttls_required",
        "s2s_server_only_certs",
    ] {
        assert!(stats[k]["count"].is_i64() && stats[k]["of"].is_i64(), "{k}");
    }
    let doc = get(&c, base, "/api/v1/openapi.json").await.json();
    assert!(doc["paths"]["/api/v1/domains/{domain}/history"].is_object());

    // Reports: listed and served, with the report's own policy.
    let list = get(&c, base, "/reports/").await;
    assert!(
        list.body.contains("href=\"/reports/first/\""),
        "{}",
        list.body
    );
    let rep = get(&c, base, "/reports/first/").await;
    assert_eq!(rep.status, 200);
    assert!(rep.body.contains("<svg"));
    assert_eq!(get(&c, base, "/reports/first").await.status, 308);

    // A second crawl where one verdict changed: the feeds say so.
    second_crawl(
        &db,
        "first",
        "second",
        &accepting,
        "rejects_server_only_no_fallback",
    )
    .await;
    let feed = get(&c, base, &format!("/feed/{accepting}.atom")).await;
    assert_eq!(feed.status, 200);
    assert!(
        feed.header("content-type")
            .starts_with("application/atom+xml")
    );
    assert_eq!(feed.body.matches("<entry>").count(), 1, "{}", feed.body);
    assert!(
        feed.body
            .contains("acceptance accepts server only → rejects server only no fallback"),
        "{}",
        feed.body
    );
    let network = get(&c, base, "/feed.atom").await;
    assert_eq!(
        network.body.matches("<entry>").count(),
        1,
        "{}",
        network.body
    );
    assert!(network.body.contains(&accepting));
    let hist = get(&c, base, &format!("/api/v1/domains/{accepting}/history"))
        .await
        .json();
    assert_eq!(hist["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(hist["entries"][0]["crawl_label"], "second");
    // The badge cache holds the old answer for its TTL; a fresh server
    // shows the new verdict.
    let page = get(&c, base, &format!("/domain/{accepting}")).await;
    assert!(
        page.body
            .contains(verdict_sentence("rejects_server_only_no_fallback"))
    );

    // Hostile input: escaped or refused, never a 5xx.
    let long = "a".repeat(300);
    let hostile = [
        "/domain/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/domain/%27%20OR%201=1--",
        "/domain/%22%3E%3Cimg%20src=x%3E.example",
        &format!("/domain/{long}.example"),
        &format!("/domain/{}", "a.".repeat(200)),
        "/domain/%FF%FE",
        "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/search?q=",
        "/search",
        "/badge/%3Cscript%3E.svg",
        "/badge/example.org",
        "/feed/%27%20OR%201=1--.atom",
        "/feed/%3Cb%3E.atom",
        "/reports/..%2f..%2fetc%2fpasswd",
        "/reports/%2e%2e/%2e%2e/etc/passwd",
        "/reports/first/..%2f..%2f..%2fetc%2fpasswd",
        "/domain/x/live/1",
        "/domain/example.org/live/%27",
        "/api/v1/domains/%3Cscript%3E",
        "/api/v1/domains/%27%20OR%201=1--",
        &format!("/api/v1/domains/{long}"),
        "/api/v1/domains?page=abc",
        "/api/v1/domains?page=0",
        "/api/v1/domains?per_page=100000",
        "/api/v1/domains?acceptance=%27%20OR%201=1--",
        "/api/v1/domains?crawl=%27%20OR%201=1--",
        "/api/v1/nothing",
    ];
    for path in hostile {
        let g = get(&c, base, path).await;
        assert!(
            (400..500).contains(&g.status),
            "{path}: {} {}",
            g.status,
            g.body
        );
        assert!(!g.body.contains("<script>alert"), "{path}: unescaped");
        assert!(!g.body.contains("<img src=x>"), "{path}: unescaped");
        assert!(!g.body.contains("root:x:0:0"), "{path}: traversal");
        if path.starts_with("/api/") {
            let j = g.json();
            assert!(
                j["error"].is_string() && j["detail"].is_string(),
                "{path}: {j}"
            );
        }
    }
    let xss = get(&c, base, "/domain/%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert!(xss.body.contains("&lt;script&gt;"), "{}", xss.body);
    let idna = get(&c, base, "/domain/b%C3%BCcher.example").await;
    assert_eq!(idna.status, 308);
    assert_eq!(idna.header("location"), "/domain/xn--bcher-kva.example");
    let upper = get(&c, base, &format!("/domain/{}", accepting.to_uppercase())).await;
    assert_eq!(upper.status, 308);
    let search = get(&c, base, "/search?q=B%C3%BCcher.example").await;
    assert_eq!(search.header("location"), "/domain/xn--bcher-kva.example");
    // (A client of its own: the server closes the connection after 413.)
    let big = client("127.130.1.9")
        .post(format!("{base}/domain/example.org/optout"))
        .body("reason=".to_string() + &"x".repeat(100_000))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .expect("post");
    assert_eq!(big.status().as_u16(), 413);
    assert!(
        big.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "413 is the error page"
    );
    assert!(big.text().await.unwrap().contains("over 16 KiB"));

    // CSRF: a form posted from another site is refused.
    let cross = c
        .post(format!("{base}/domain/{accepting}/test"))
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status().as_u16(), 403);

    // Test now: probes, shows the result; the per-domain limit holds.
    let srv_ok = net
        .manifest()
        .domains
        .iter()
        .find(|d| d.profile == "srv_ok")
        .expect("srv_ok")
        .domain
        .clone();
    let queued = post(&c, base, &format!("/domain/{srv_ok}/test"), &[]).await;
    assert_eq!(queued.status, 303, "{}", queued.body);
    let live_page = queued.header("location").to_string();
    assert!(live_page.starts_with(&format!("/domain/{srv_ok}/live/")));
    let done = wait_live(&c, base, &live_page).await;
    assert!(done.contains("Measured"), "{done}");
    assert!(done.contains("tls_ok"), "{done}");
    let again = post(
        &client("127.130.1.2"),
        base,
        &format!("/domain/{srv_ok}/test"),
        &[],
    )
    .await;
    assert_eq!(again.status, 429, "per-domain limit: {}", again.body);
    // The per-address limit: 3 a minute, the 4th is refused.
    let one = client("127.130.1.3");
    for i in 0..3 {
        let g = post(&one, base, &format!("/domain/nx{i}.example/test"), &[]).await;
        assert_eq!(g.status, 303, "request {i}: {}", g.body);
    }
    let fourth = post(&one, base, "/domain/nx3.example/test", &[]).await;
    assert_eq!(fourth.status, 429, "per-address limit: {}", fourth.body);
    assert!(!fourth.header("retry-after").is_empty());

    // Without --allow-private, test now refuses the testnet's loopback
    // addresses.
    let strict = serve("127.130.0.2", &db, &live_args(false)).await;
    let q = post(&c, &strict.base, &format!("/domain/{srv_ok}/test"), &[]).await;
    assert_eq!(q.status, 303, "{}", q.body);
    let refused = wait_live(&c, &strict.base, q.header("location")).await;
    assert!(refused.contains("Refused"), "{refused}");
    assert!(refused.contains("private, loopback"), "{refused}");

    // In a real browser: the pages render under their CSP without a
    // console message or a request elsewhere (screenshots kept in
    // $XS_WEB_SCREENSHOTS, else a temporary folder).
    let shots = std::env::var_os("XS_WEB_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.join("screenshots"));
    std::fs::create_dir_all(&shots).expect("screenshots dir");
    let dialback = net
        .manifest()
        .domains
        .iter()
        .find(|d| {
            d.expect.get("acceptance.verdict").and_then(Value::as_str)
                == Some("rejects_server_only_dialback")
        })
        .map_or_else(|| accepting.clone(), |d| d.domain.clone());
    // Chromium resolves nothing but 127.0.0.1 (its mandated
    // --host-resolver-rules), so the browser's server listens there, on a
    // port the kernel picks.
    let browser = serve("127.0.0.1", &db, &["--no-live".into()]).await;
    for (name, path, size) in [
        ("home", "/".to_string(), (1280, 1000)),
        ("domain", format!("/domain/{dialback}"), (1280, 4200)),
        (
            "domain-changed",
            format!("/domain/{accepting}"),
            (1280, 5200),
        ),
        ("domain-phone", format!("/domain/{dialback}"), (390, 6000)),
        (
            "not-found",
            "/domain/never-tested.example".to_string(),
            (1280, 700),
        ),
        ("live", live_page.clone(), (1280, 2400)),
        ("reports", "/reports/".to_string(), (1280, 700)),
        (
            "error",
            "/domain/%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_string(),
            (390, 900),
        ),
    ] {
        let png = shots.join(format!("{name}.png"));
        screenshot(&format!("{}{path}", browser.base), &png, size);
        eprintln!("screenshot: {}", png.display());
    }

    drop(browser);

    // Opt-out: request, approve on the command line, the page says so and
    // test now refuses.
    let target = net
        .manifest()
        .domains
        .iter()
        .find(|d| d.profile == "cert_server_only")
        .expect("cert_server_only")
        .domain
        .clone();
    let req = post(
        &client("127.130.1.4"),
        base,
        &format!("/domain/{target}/optout"),
        &[
            ("reason", "<b>please</b> stop"),
            ("contact", "admin@example.org"),
        ],
    )
    .await;
    assert_eq!(req.status, 200, "{}", req.body);
    let listed = run({
        let mut c = bin();
        c.args(["optout", "list", "--database-url", &db]);
        c
    });
    let line = listed
        .lines()
        .find(|l| l.contains(&target))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("pending"), "{line}");
    let id = line
        .trim_start_matches('#')
        .split('\t')
        .next()
        .expect("id")
        .to_string();
    run({
        let mut c = bin();
        c.args(["optout", "approve", &id, "--database-url", &db]);
        c
    });
    let opted = get(&c, base, &format!("/domain/{target}")).await;
    assert_eq!(opted.status, 200);
    assert!(opted.body.contains("The operator opted out; not probed."));
    assert!(!opted.body.contains("Findings") && !opted.body.contains("Test now"));
    let j = get(&c, base, &format!("/api/v1/domains/{target}"))
        .await
        .json();
    assert_eq!(j["opted_out"], true);
    assert!(j["latest"].is_null());
    let t = post(
        &client("127.130.1.5"),
        base,
        &format!("/domain/{target}/test"),
        &[],
    )
    .await;
    assert_eq!(t.status, 403, "{}", t.body);
    let twice = bin()
        .args(["optout", "approve", &id, "--database-url", &db])
        .output()
        .expect("runs");
    assert!(!twice.status.success());
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already approved"));

    // The pages' pool cannot write, even through a bug.
    let ro = xmpp_survey::web::data::reader_pool(db.parse().expect("url"), 1);
    let denied = sqlx::query("INSERT INTO opt_outs (domain) VALUES ('x.example')")
        .execute(&ro)
        .await
        .expect_err("the reader pool is read-only");
    assert!(denied.to_string().contains("read-only"), "{denied}");
    ro.close().await;

    // The database goes away: 503 with a clear message, not a hang.
    {
        use sqlx::{Connection, Executor};
        let server = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let name = db.rsplit('/').next().expect("db name").to_string();
        let mut admin = sqlx::PgConnection::connect(&server).await.expect("admin");
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .expect("drop");
    }
    let r = c
        .get(format!("{base}/api/v1/crawls"))
        .send()
        .await
        .expect("crawls");
    assert_eq!(r.status().as_u16(), 503);
    let j: Value = r.json().await.expect("json");
    assert_eq!(j["error"], "database_unavailable", "{j}");
    let r = c
        .get(format!("{base}/domain/{accepting}"))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status().as_u16(), 503);
    drop(strict);
    drop(s);
    net.shutdown().await;
}
