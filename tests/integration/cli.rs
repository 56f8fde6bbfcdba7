//! The command line: bad input fails with a message naming the culprit,
//! and `--json` prints one versioned object per domain.

use crate::support::{bin, testnet};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().expect("binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn tmp(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xmpp-survey-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let p = dir.join(name);
    std::fs::write(&p, content).expect("tmp file");
    p
}

#[test]
fn bad_line_in_domain_list_is_named_with_file_and_line() {
    let list = tmp(
        "list.txt",
        "# test list\nexample.test\nnot a domain\nuser@example.test\n",
    );
    // The resolver is never asked: validation happens first.
    let (out, text) = run(bin()
        .args(["probe", "--resolver", "127.0.0.1:1", "--file"])
        .arg(&list));
    assert!(!out.status.success());
    assert!(text.contains("list.txt:3:"), "{text}");
    assert!(text.contains("\"not a domain\""), "{text}");
    assert!(text.contains("list.txt:4:"), "{text}");
    assert!(text.contains("--skip-invalid"), "{text}");
}

#[test]
fn a_line_that_is_not_utf8_is_named_with_file_and_line_or_skipped() {
    let list = tmp("latin1.txt", "");
    std::fs::write(&list, b"one.example\ncaf\xe9.example\ntwo.example\n").expect("write");
    let (out, text) = run(bin()
        .args(["probe", "--resolver", "127.0.0.1:1", "--file"])
        .arg(&list));
    assert!(!out.status.success());
    assert!(text.contains("latin1.txt:2:"), "{text}");
    assert!(text.contains("not UTF-8"), "{text}");
    assert!(
        !text.contains("latin1.txt:1:") && !text.contains("latin1.txt:3:"),
        "{text}"
    );
    // --skip-invalid: that line is skipped with a warning, the rest goes on
    // (to the resolver check, which this unreachable resolver fails).
    let (out, text) = run(bin()
        .args([
            "probe",
            "--skip-invalid",
            "--resolver",
            "127.0.0.1:1",
            "--dns-timeout",
            "300ms",
            "--file",
        ])
        .arg(&list));
    assert!(!out.status.success());
    assert!(text.contains("warning: skipped"), "{text}");
    assert!(text.contains("latin1.txt:2:"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
}

#[test]
fn unreachable_resolver_is_named() {
    let (out, text) = run(bin().args([
        "probe",
        "--resolver",
        "127.0.0.1:1",
        "--dns-timeout",
        "300ms",
        "example.test",
    ]));
    assert!(!out.status.success());
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.to_lowercase().contains("unreachable"), "{text}");
}

#[test]
fn unreadable_or_empty_ca_file_is_named() {
    let missing = std::env::temp_dir().join("xmpp-survey-no-such-ca.pem");
    let (out, text) = run(bin()
        .args(["probe", "--resolver", "127.0.0.1:1", "--extra-ca"])
        .arg(&missing)
        .arg("example.test"));
    assert!(!out.status.success());
    assert!(text.contains("xmpp-survey-no-such-ca.pem"), "{text}");

    let empty = tmp("empty-ca.pem", "not a certificate\n");
    let (out, text) = run(bin()
        .args(["probe", "--resolver", "127.0.0.1:1", "--extra-ca"])
        .arg(&empty)
        .arg("example.test"));
    assert!(!out.status.success());
    assert!(text.contains("empty-ca.pem"), "{text}");

    // Valid PEM, corrupt DER: the file, the block and what is wrong.
    let corrupt = tmp(
        "corrupt-ca.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    );
    let (out, text) = run(bin()
        .args(["probe", "--resolver", "127.0.0.1:1", "--extra-ca"])
        .arg(&corrupt)
        .arg("example.test"));
    assert!(!out.status.success());
    assert!(text.contains("corrupt-ca.pem"), "{text}");
    assert!(text.contains("certificate 1 of 1"), "{text}");
    assert!(text.contains("X.509"), "{text}");
}

#[test]
fn corrupt_probe_identity_files_are_named() {
    let cert = tmp(
        "corrupt-probe.pem",
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    );
    let key = tmp("probe.key", "no key here\n");
    let (out, text) = run(bin()
        .args([
            "probe",
            "--resolver",
            "127.0.0.1:1",
            "--dns-timeout",
            "300ms",
            "--probe-domain",
            "probe.example",
            "--probe-cert",
        ])
        .arg(&cert)
        .arg("--probe-key")
        .arg(&key)
        .arg("example.test"));
    assert!(!out.status.success());
    assert!(text.contains("corrupt-probe.pem"), "{text}");
    assert!(text.contains("X.509"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_one_versioned_object_per_domain() {
    let net = testnet(33, 3, &["srv_ok", "cert_server_only", "nxdomain"]).await;
    let ca = tmp("testnet-ca.pem", &net.ca_pem());
    let mut cmd = bin();
    cmd.args([
        "probe",
        "--json",
        "--allow-private",
        "--phase-timeout",
        "2s",
    ])
    .arg("--resolver")
    .arg(net.dns_addr().to_string())
    .arg("--extra-ca")
    .arg(&ca)
    .args(net.domains());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("runs");
    net.shutdown().await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
        assert_eq!(
            v["schema_version"],
            xmpp_survey::probe::report::SCHEMA_VERSION
        );
        assert!(
            v["domain"]
                .as_str()
                .is_some_and(|d| d.ends_with(".xs.test"))
        );
        assert!(v["summary"]["s2s"]["status"].is_string());
    }
}

/// Runs `probe --json` against a testnet with `args`; returns the exit
/// status, the domains reported (in order) and stderr.
async fn probe_json(
    net: &xmpp_survey::testnet::Testnet,
    ca: &std::path::Path,
    args: Vec<std::ffi::OsString>,
) -> (bool, Vec<String>, String) {
    let mut cmd = bin();
    cmd.args([
        "probe",
        "--json",
        "--allow-private",
        "--phase-timeout",
        "2s",
    ])
    .arg("--resolver")
    .arg(net.dns_addr().to_string())
    .arg("--extra-ca")
    .arg(ca)
    .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("runs");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let domains = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
            v["domain"].as_str().expect("domain").to_string()
        })
        .collect();
    (
        out.status.success(),
        domains,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reads_a_csv_source_like_crawl() {
    let net = testnet(36, 2, &["srv_ok", "cert_server_only"]).await;
    let ca = tmp("csv-testnet-ca.pem", &net.ca_pem());
    let d = net.domains();
    let csv = tmp(
        "probe-source.csv",
        &format!(
            "name,host\nfirst,{}\nbad,not a domain\nsecond,{}\nagain,{}\n",
            d[0], d[1], d[0]
        ),
    );
    let source = format!("csv:{}#host", csv.display());
    // A bad entry is an error naming file and line; nothing is probed.
    let (ok, domains, stderr) = probe_json(&net, &ca, vec![source.clone().into()]).await;
    assert!(!ok, "{stderr}");
    assert!(domains.is_empty(), "{domains:?}");
    assert!(stderr.contains("probe-source.csv:3:"), "{stderr}");
    assert!(stderr.contains("--skip-invalid"), "{stderr}");
    // --skip-invalid: the rest is probed, each domain once.
    let (ok, domains, stderr) =
        probe_json(&net, &ca, vec!["--skip-invalid".into(), source.into()]).await;
    net.shutdown().await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("warning: skipped"), "{stderr}");
    assert_eq!(domains, d, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reads_a_providers_source_honouring_consent() {
    let net = testnet(37, 3, &["srv_ok", "cert_server_only", "nxdomain"]).await;
    let ca = tmp("providers-testnet-ca.pem", &net.ca_pem());
    let d = net.domains();
    let providers = tmp(
        "probe-providers.json",
        &format!(
            r#"{{
  "{}": {{"serverTesting": {{"content": true, "source": ""}}}},
  "{}": {{"serverTesting": {{"content": false, "source": ""}}}},
  "{}": {{"serverTesting": {{"content": true, "source": ""}}}}
}}"#,
            d[0], d[1], d[2]
        ),
    );
    // A bare domain argument beside the source; the provider without
    // consent is not probed.
    let (ok, domains, stderr) = probe_json(
        &net,
        &ca,
        vec![
            d[2].clone().into(),
            format!("providers:{}", providers.display()).into(),
        ],
    )
    .await;
    net.shutdown().await;
    assert!(ok, "{stderr}");
    assert_eq!(domains, vec![d[2].clone(), d[0].clone()], "{stderr}");
    assert!(
        stderr.contains("1 provider(s) without serverTesting consent"),
        "{stderr}"
    );
}

#[test]
fn probe_refuses_an_unusable_source_naming_it() {
    let (out, text) = run(bin().args([
        "probe",
        "--resolver",
        "127.0.0.1:1",
        "csv:/nonexistent/xmpp-survey-list.csv",
    ]));
    assert!(!out.status.success());
    assert!(text.contains("xmpp-survey-list.csv"), "{text}");
    let (out, text) = run(bin().args([
        "probe",
        "--resolver",
        "127.0.0.1:1",
        "providers:ftp://example.test/list.json",
    ]));
    assert!(!out.status.success());
    assert!(text.contains("only http:// and https://"), "{text}");
}
