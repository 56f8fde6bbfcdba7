//! Domain-list sources against a loopback HTTP server: the providers list
//! served fine, and every way fetching it can fail (404, connection
//! refused, broken JSON, a body over the cap, with and without a
//! Content-Length) is one clear problem while the other sources still load.

use std::collections::HashSet;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xmpp_survey::sources::{
    PROVIDERS_MAX_BYTES, ProvidersLocation, SourceProblem, SourceSpec, load,
};

/// The providers document as data.xmpp.net serves it: an object keyed by
/// JID, properties wrapped in `{content, source}`.
const PROVIDERS: &str = r#"{
  "served.example": {"serverTesting": {"content": true, "source": "https://served.example/.well-known/xmpp-provider-v2.json"}},
  "Shared.Example": {"serverTesting": {"content": true, "source": ""}},
  "nofile.example": {"serverTesting": {"content": false, "source": ""}},
  "not a domain": {"serverTesting": {"content": true, "source": ""}}
}"#;

/// Serves canned HTTP/1.1 responses by path, one request per connection.
async fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(respond(sock));
        }
    });
    format!("http://{addr}")
}

async fn respond(mut sock: TcpStream) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let req = String::from_utf8_lossy(&req);
    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
    let ok = |body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let _ = match path.as_str() {
        "/providers.json" => sock.write_all(&ok(PROVIDERS.as_bytes())).await,
        "/broken.json" => sock.write_all(&ok(b"{\"served.example\": {")).await,
        "/huge-declared.json" => {
            // Claims more than the cap; the client must refuse before reading.
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n[",
                PROVIDERS_MAX_BYTES + 1
            );
            sock.write_all(head.as_bytes()).await
        }
        "/huge-undeclared.json" => {
            // No Content-Length, body delimited by close: only the
            // streaming cap stops it.
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 1024 * 1024];
            for _ in 0..=(PROVIDERS_MAX_BYTES / (1024 * 1024)) + 1 {
                if sock.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            Ok(())
        }
        _ => {
            sock.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
            )
            .await
        }
    };
    let _ = sock.shutdown().await;
}

fn text_list(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xmpp-survey-it-sources-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn url(base: &str, path: &str) -> SourceSpec {
    SourceSpec::Providers(ProvidersLocation::Url(format!("{base}{path}")))
}

fn client() -> reqwest::Client {
    xmpp_survey::install_crypto_provider();
    reqwest::Client::builder().build().unwrap()
}

/// Runs `failing` between two good sources and returns its one problem.
async fn lone_failure(failing: SourceSpec, list_name: &str) -> SourceProblem {
    let list = text_list(list_name, "first.example\nshared.example\n");
    let base = serve().await;
    let specs = vec![
        SourceSpec::Text(list),
        failing.clone(),
        url(&base, "/providers.json"),
    ];
    let l = load(&specs, None, &client(), &HashSet::new()).await;
    assert_eq!(
        l.domains,
        vec!["first.example", "shared.example", "served.example"],
        "the other sources still load"
    );
    let failed: Vec<_> = l
        .problems
        .iter()
        .filter(|p| p.source == failing.label())
        .cloned()
        .collect();
    assert_eq!(failed.len(), 1, "{:#?}", l.problems);
    assert_eq!(l.per_source[1], (failing.label(), 0));
    failed.into_iter().next().unwrap()
}

#[tokio::test]
async fn providers_served_over_http_are_merged_with_consent() {
    let base = serve().await;
    let list = text_list("ok.txt", "first.example\nshared.example\nout.example\n");
    let specs = vec![SourceSpec::Text(list), url(&base, "/providers.json")];
    let opt_out: HashSet<String> = ["out.example".to_string()].into();
    let l = load(&specs, None, &client(), &opt_out).await;
    assert_eq!(
        l.domains,
        vec!["first.example", "shared.example", "served.example"]
    );
    assert_eq!(l.no_consent, vec!["nofile.example"]);
    assert_eq!(l.opted_out, vec!["out.example"]);
    assert_eq!(l.per_source[1], (format!("{base}/providers.json"), 2));
    assert_eq!(l.problems.len(), 1, "{:#?}", l.problems);
    let p = l.problems[0].to_string();
    assert!(
        p.starts_with(&format!("{base}/providers.json[3]: \"not a domain\": ")),
        "{p}"
    );
}

#[tokio::test]
async fn http_404_is_a_problem_naming_the_url() {
    let base = serve().await;
    let spec = url(&base, "/gone.json");
    let p = lone_failure(spec, "404.txt").await.to_string();
    assert_eq!(p, format!("{base}/gone.json: answered HTTP 404 Not Found"));
}

#[tokio::test]
async fn connection_refused_is_a_problem_naming_the_url() {
    let spec = SourceSpec::Providers(ProvidersLocation::Url(
        "http://127.0.0.1:1/providers.json".into(),
    ));
    let p = lone_failure(spec, "refused.txt").await.to_string();
    assert!(
        p.starts_with("http://127.0.0.1:1/providers.json: cannot fetch: cannot connect: "),
        "{p}"
    );
    assert!(p.to_lowercase().contains("refused"), "{p}");
}

#[tokio::test]
async fn broken_json_is_a_problem_naming_the_url() {
    let base = serve().await;
    let spec = url(&base, "/broken.json");
    let p = lone_failure(spec, "broken.txt").await.to_string();
    assert!(
        p.starts_with(&format!("{base}/broken.json: not a providers list: ")),
        "{p}"
    );
    assert!(p.contains("line 1 column"), "{p}");
}

#[tokio::test]
async fn body_over_the_cap_is_refused_declared_or_not() {
    let base = serve().await;
    for path in ["/huge-declared.json", "/huge-undeclared.json"] {
        let spec = url(&base, path);
        let p = lone_failure(spec, &format!("huge{}.txt", path.len()))
            .await
            .to_string();
        assert!(
            p == format!("{base}{path}: body larger than the 16 MiB cap"),
            "{p}"
        );
    }
}

#[tokio::test]
async fn providers_from_a_local_file_and_an_unreadable_one() {
    let base = serve().await;
    let file = text_list("local-providers.json", PROVIDERS);
    let missing = file.with_file_name("absent.json");
    let specs = vec![
        SourceSpec::Providers(ProvidersLocation::File(missing.clone())),
        SourceSpec::Providers(ProvidersLocation::File(file)),
        url(&base, "/providers.json"),
    ];
    let l = load(&specs, None, &client(), &HashSet::new()).await;
    assert_eq!(l.domains, vec!["served.example", "shared.example"]);
    assert_eq!(l.no_consent, vec!["nofile.example"]);
    let first = l.problems[0].to_string();
    assert!(
        first.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{first}"
    );
}

/// The repository's real providers snapshot (`seeds/xmpp-providers/`,
/// CC0) loads as a source: only the 26 providers with `serverTesting`
/// consent become domains, the other 3 are set apart, nothing is invalid.
#[tokio::test]
async fn the_shipped_providers_snapshot_loads_with_consent() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds/xmpp-providers/providers.json");
    let specs = vec![SourceSpec::Providers(ProvidersLocation::File(file))];
    let l = load(&specs, None, &client(), &HashSet::new()).await;
    assert!(
        l.problems.is_empty(),
        "{:?}",
        l.problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        (l.domains.len(), l.no_consent.len()),
        (26, 3),
        "{:?} / {:?}",
        l.domains,
        l.no_consent
    );
    assert!(
        l.domains
            .iter()
            .all(|d| d == &d.to_lowercase() && d.contains('.'))
    );
}
