//! The stress test of the dialback listener: a testnet crawl with the
//! acceptance probe while a hostile client runs every attack of the issue
//! "No one outside can change a verdict or stop a crawl" at a bounded rate,
//! from one source address and from several in one /24. Every fact of
//! every domain must equal the manifest (which states what each target
//! presents on its inbound streams, so forged evidence is a mismatch), and
//! the listener's counters must show the attacks were met, not missed.

use crate::support::{probe_manifest, prober, testnet, with_acceptance};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use xmpp_survey::facts::{compare, facts};
use xmpp_survey::listener::{MAX_STREAMS_PER_ADDRESS, MAX_STREAMS_PER_PREFIX};
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::testnet::attack::{self, AttackConfig, AttackKind};
use xmpp_survey::testnet::profile::{PROFILES, is_acceptance};

/// This test's block.
const NET: u8 = 35;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_at_once_changes_no_fact() {
    let mut names: Vec<&str> = PROFILES
        .iter()
        .filter(|p| is_acceptance(p))
        .map(|p| p.name)
        .collect();
    names.extend([
        "srv_ok",
        "cert_server_only",
        "cert_intermediate_server_only",
        "direct_tls",
        "first_target_down",
    ]);
    let net = testnet(NET, names.len() * 3, &names).await;
    let (prober, listener, identity) =
        with_acceptance(&net, prober(&net, AddressPolicy::ALLOW_PRIVATE)).await;
    let manifest = net.manifest();
    let targets: Vec<String> = manifest.domains.iter().map(|d| d.domain.clone()).collect();

    // Each attack from one address (more connections than its cap) and
    // from eight addresses of one /24 (more than the prefix cap).
    let one = vec![IpAddr::V4(Ipv4Addr::new(127, NET, 200, 1))];
    let several: Vec<IpAddr> = (1..=8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, NET, 201, i)))
        .collect();
    let duration = Duration::from_secs(20);
    let mut attacks = Vec::new();
    for kind in AttackKind::ALL {
        for (sources, connections) in [
            (one.clone(), MAX_STREAMS_PER_ADDRESS + 40),
            (several.clone(), MAX_STREAMS_PER_PREFIX / 4),
        ] {
            let cfg = AttackConfig {
                kind,
                listener: listener.local_addr(),
                probe_domain: identity.domain.clone(),
                targets: targets.clone(),
                sources,
                connections,
                rate: 100,
                duration,
            };
            attacks.push(tokio::spawn(async move { (kind, attack::run(cfg).await) }));
        }
    }
    // Let the attacks fill the listener first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reports = probe_manifest(&prober, &manifest, 16).await;
    let stats = listener.stats();
    let mut done = Vec::new();
    for a in attacks {
        let (kind, r) = a.await.expect("attack task");
        done.push((kind, r.expect("attack runs")));
    }
    listener.shutdown().await;
    net.shutdown().await;

    let mut failures = Vec::new();
    let mut compared = 0;
    for (d, report) in &reports {
        compared += d.expect.len();
        for m in compare(&d.expect, &facts(report)) {
            failures.push(format!(
                "{} [{}] {}: expected {} got {}",
                d.domain, d.profile, m.key, m.expected, m.got
            ));
        }
    }
    eprintln!("listener under attack: {stats:?}");
    for (kind, r) in &done {
        eprintln!("attack {kind:?}: {r:?}");
    }
    // The attacks happened and met the caps.
    for (kind, r) in &done {
        assert!(r.connected > 0, "{kind:?} never connected: {r:?}");
    }
    assert!(stats.refused_address_cap > 0, "{stats:?}");
    assert!(stats.unauthenticated > 0, "{stats:?}");
    assert!(
        done.iter()
            .filter(|(k, _)| *k == AttackKind::BigClientChain)
            .all(|(_, r)| r.post_tls_features == 0),
        "a 64 KB client chain must not get a TLS session"
    );
    assert!(
        failures.is_empty(),
        "{} of {compared} facts differ from the manifest under attack:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Peak RSS of this process in KiB since the last [`reset_peak_rss`].
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak RSS (Linux: `5` to `/proc/self/clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// The figures of `docs/benchmarks.md` ("Listener under attack"): for no
/// attack and for each attack alone (from one address, then from a /24 at
/// once), a testnet crawl with the acceptance probe: manifest mismatches,
/// peak RSS and open fds of this process (crawler, listener and testnet
/// together: compare each row with the no-attack row), and the listener's
/// counters. Run by `scripts/bench.sh attacks`; ignored in `cargo test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench.sh attacks"]
async fn attack_figures() {
    let domains: usize = std::env::var("ATTACK_DOMAINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let secs: u64 = std::env::var("ATTACK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // One case per process (ATTACK_ONLY=none|verify_flood|…), so that no
    // case inherits memory the allocator kept from another.
    let only = std::env::var("ATTACK_ONLY").ok();
    let mut runs: Vec<Option<AttackKind>> = vec![None];
    runs.extend(AttackKind::ALL.map(Some));
    runs.retain(|k| {
        only.as_deref()
            .is_none_or(|o| o == k.map_or("none".to_string(), xmpp_survey::facts::label))
    });
    if only.as_deref() != Some("none") && only.is_some() && runs.is_empty() {
        panic!("ATTACK_ONLY={only:?} names no attack");
    }
    if std::env::var("ATTACK_HEADER").is_ok() {
        println!(
            "{:<16} {:>10} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>6}",
            "attack",
            "mismatch",
            "RSS MiB",
            "fd peak",
            "accepted",
            "refused",
            "unauth",
            "auth",
            "peak"
        );
    }
    for (i, kind) in runs.into_iter().enumerate() {
        let net = 120 + i as u8;
        let t = testnet(net, domains, &[]).await;
        let (prober, listener, identity) =
            with_acceptance(&t, prober(&t, AddressPolicy::ALLOW_PRIVATE)).await;
        let manifest = t.manifest();
        let targets: Vec<String> = manifest.domains.iter().map(|d| d.domain.clone()).collect();
        reset_peak_rss();
        let fd_peak = Arc::new(std::sync::atomic::AtomicU64::new(open_fds()));
        let sampler = {
            let fd_peak = fd_peak.clone();
            tokio::spawn(async move {
                loop {
                    fd_peak.fetch_max(open_fds(), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        // The attacker runs as separate processes (`xmpp-survey testnet
        // attack`): the RSS measured here is the crawler's, listener and
        // testnet included, not the attacker's buffers.
        let mut attackers = Vec::new();
        if let Some(kind) = kind {
            let list =
                std::env::temp_dir().join(format!("xs-attack-{}-{net}.txt", std::process::id()));
            std::fs::write(&list, targets.join("\n")).expect("targets file");
            let one = format!("127.{net}.200.1");
            let several: Vec<String> = (1..=16).map(|i| format!("127.{net}.201.{i}")).collect();
            for sources in [one, several.join(",")] {
                let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_xmpp-survey"))
                    .args(["testnet", "attack", "--kind"])
                    .arg(xmpp_survey::facts::label(kind).replace('_', "-"))
                    .arg("--listener")
                    .arg(listener.local_addr().to_string())
                    .args(["--probe-domain", &identity.domain, "--targets"])
                    .arg(&list)
                    .args([
                        "--sources",
                        &sources,
                        "--connections",
                        "3000",
                        "--rate",
                        "500",
                    ])
                    .args(["--duration", &format!("{secs}s")])
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("attacker starts");
                attackers.push(child);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let reports = probe_manifest(&prober, &manifest, 64).await;
        for a in attackers {
            let out = a.wait_with_output().await.expect("attacker ends");
            assert!(out.status.success(), "attacker failed");
        }
        sampler.abort();
        let stats = listener.stats();
        listener.shutdown().await;
        t.shutdown().await;
        let mismatches: usize = reports
            .iter()
            .map(|(d, r)| compare(&d.expect, &facts(r)).len())
            .sum();
        let refused = stats.refused_address_cap
            + stats.refused_prefix_cap
            + stats.refused_slots
            + stats.refused_not_in_flight;
        println!(
            "{:<16} {:>10} {:>9.1} {:>8} {:>9} {:>8} {:>8} {:>8} {:>6}",
            kind.map_or("none".to_string(), xmpp_survey::facts::label),
            mismatches,
            peak_rss_kib() as f64 / 1024.0,
            fd_peak.load(std::sync::atomic::Ordering::Relaxed),
            stats.accepted,
            refused,
            stats.unauthenticated,
            stats.authenticated,
            stats.peak_streams
        );
    }
}
