//! The operator's path in a real browser: Debian's headless Chromium
//! driven through WebDriver (chromedriver, the fantoccini crate) against
//! `xmpp-survey serve` on a crawl of the testnet. Searches a domain, opens
//! its page, checks the verdict text and the badge, follows the feed
//! link; screenshots every page (kept as artefacts, paths printed); no
//! console message; nothing but loopback reached.

use crate::report::crawl;
use crate::support::{bin, pg, testnet, tmpdir};
use fantoccini::{ClientBuilder, Locator};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for(addr: SocketAddr, what: &str) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where screenshots go: `target/screenshots/` (CI keeps `target/`).
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shot(c: &fantoccini::Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.expect("screenshot");
    assert!(
        png.len() > 10_000,
        "{name}: screenshot of {} bytes",
        png.len()
    );
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
    path
}

/// ChromeDriver's browser log (its `POST /session/{id}/se/log` endpoint;
/// `goog:loggingPrefs` asks Chromium to keep every console message):
/// the console messages since the last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &wd_url::Url,
        session: Option<&str>,
    ) -> Result<wd_url::Url, wd_url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &wd_url::Url) -> (wd_http::Method, Option<String>) {
        (wd_http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

async fn console_messages(c: &fantoccini::Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("browser log");
    log.as_array()
        .expect("log entries")
        .iter()
        .map(|e| format!("{} {}", e["level"], e["message"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_searches_opens_the_page_badge_and_feed_in_chromium() {
    let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's chromium-driver is installed (scripts/test.sh installs it)");
    let names = ["strict_eku", "srv_ok", "strict_eku_no_dialback"];
    let net = testnet(77, names.len(), &names).await;
    let dir = tmpdir("browser");
    let tdb = pg().await;
    crawl(&net, &dir, &tdb.url, "first");
    let manifest = net.manifest();
    let strict = manifest
        .domains
        .iter()
        .find(|d| d.profile == "strict_eku")
        .expect("strict_eku domain");

    // The server, on a loopback address of its own.
    let ip = "127.140.0.1";
    let port = free_port(ip);
    let server = Killed(
        bin()
            .args([
                "serve",
                "--bind",
                &format!("{ip}:{port}"),
                "--database-url",
                &tdb.url,
                "--no-live",
            ])
            .arg("--reports-dir")
            .arg(dir.join("reports"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
    wait_for(format!("{ip}:{port}").parse().unwrap(), "serve");
    let base = format!("http://{ip}:{port}");

    // chromedriver, logging Chromium's own output (console messages).
    let driver_port = free_port("127.0.0.1");
    let _driver = Killed(
        Command::new(driver_bin)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    wait_for(
        format!("127.0.0.1:{driver_port}").parse().unwrap(),
        "chromedriver",
    );
    let profile = tmpdir("browser-profile");
    let netlog = dir.join("netlog.json");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:loggingPrefs".into(),
        serde_json::json!({ "browser": "ALL" }),
    );
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions",
                format!("--user-data-dir={}", profile.display()),
                // Everything not loopback goes to a closed proxy; no name resolves.
                "--proxy-server=127.0.0.1:1",
                format!("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {ip}"),
                format!("--log-net-log={}", netlog.display()),
                "--enable-logging=stderr", "--v=0",
                "--window-size=1280,1600",
            ],
        }),
    );
    let c = ClientBuilder::rustls()
        .expect("rustls client")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("WebDriver session");

    // Home: search for the strict domain.
    c.goto(&base).await.expect("home");
    shot(&c, "web-home").await;
    let q = c
        .find(Locator::Css("input[name='q']"))
        .await
        .expect("search box");
    q.send_keys(&strict.domain).await.expect("type");
    let form = c
        .form(Locator::Css("form[action='/search']"))
        .await
        .expect("search form");
    form.submit().await.expect("submit");
    // The home page has an <h1> too: wait for the navigation itself (the
    // search answers with a redirect to the domain page), not for an element.
    let wanted = format!("/domain/{}", strict.domain);
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        let url = c.current_url().await.expect("url");
        if url.path() == wanted || Instant::now() > deadline {
            break url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(url.path(), wanted, "search lands on the domain page");
    c.wait()
        .for_element(Locator::Css("main h1"))
        .await
        .expect("domain page");
    let body = c
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text");
    assert!(body.contains(&strict.domain), "{body}");
    assert!(
        body.contains("Accepts peers with server-only certificates"),
        "{body}"
    );
    assert!(
        body.contains("refused our server-only certificate, but dialback works"),
        "{body}"
    );
    shot(&c, "web-domain").await;

    // The badge: an image the browser loaded, saying "dialback only".
    let badge = c
        .find(Locator::Css("img[src*='/badge/']"))
        .await
        .expect("badge img");
    let src = badge.attr("src").await.expect("src").expect("badge src");
    let loaded = c
        .execute(
            "return arguments[0].complete && arguments[0].naturalWidth > 0;",
            vec![serde_json::to_value(&badge).unwrap()],
        )
        .await
        .expect("badge state");
    assert_eq!(
        loaded,
        serde_json::Value::Bool(true),
        "badge {src} not rendered"
    );
    let badge_url = url.join(&src).expect("badge url");
    c.goto(badge_url.as_str()).await.expect("badge");
    let svg = c.source().await.expect("svg source");
    assert!(svg.to_lowercase().contains("dialback only"), "{svg}");

    // The feed link from the domain page.
    c.goto(url.as_str()).await.expect("back");
    let feed = c
        .find(Locator::Css("a[href*='/feed/']"))
        .await
        .expect("feed link");
    feed.click().await.expect("follow feed");
    let feed_src = c.source().await.expect("feed");
    assert!(
        feed_src.contains("feed") && feed_src.contains(&strict.domain),
        "{feed_src}"
    );

    // Another domain's page, as a phone would show it.
    let refused = manifest
        .domains
        .iter()
        .find(|d| d.profile == "strict_eku_no_dialback")
        .expect("no-dialback domain");
    c.set_window_size(390, 1400).await.expect("phone size");
    c.goto(&format!("{base}/domain/{}", refused.domain))
        .await
        .expect("page");
    let body = c
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text");
    assert!(body.contains("cannot federate with you"), "{body}");
    shot(&c, "web-domain-phone").await;

    // No console message so far ...
    let console = console_messages(&c).await;
    assert!(console.is_empty(), "console messages: {console:#?}");
    // ... and the check sees one when there is one (a missing image).
    c.goto(&format!("{base}/badge/")).await.ok();
    c.execute(
        "var i = document.createElement('img'); i.src = '/static/does-not-exist.png'; document.body.appendChild(i);",
        vec![],
    )
    .await
    .ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let control = console_messages(&c).await;
    c.close().await.expect("close session");
    drop(server);
    assert!(
        control.iter().any(|m| m.contains("does-not-exist.png")),
        "the console check saw nothing for a failed image load ({control:?}): it cannot fail"
    );

    // Nothing but loopback was asked for.
    let log = std::fs::read_to_string(&netlog).unwrap_or_default();
    let mut foreign = Vec::new();
    for part in log.split("\"url\":\"").skip(1) {
        let u = part.split('"').next().unwrap_or_default();
        // Debian's Chromium opens its start page (DuckDuckGo) when
        // ChromeDriver starts it; like Chromium's own Google hosts it only
        // reaches the closed proxy.
        let own = crate::report::CHROMIUM_OWN_HOSTS
            .iter()
            .any(|h| u.contains(h))
            || u.starts_with("https://start.duckduckgo.com/");
        if !(u.starts_with("http://127.")
            || u.starts_with("data:")
            || u.starts_with("about:")
            || own)
        {
            foreign.push(u.to_string());
        }
    }
    assert!(foreign.is_empty(), "the browser requested {foreign:?}");
}
