//! The stress test of the dialback listener: a testnet crawl with the
//! acceptance probe while a hostile client runs every attack of the issue
//! "No one outside can change a verdict or stop a crawl" at a bounded rate,
//! from one source address and from several in one /24. Every fact of
//! every domain must equal the manifest (which states what each target
//! presents on its inbound streams, so forged evidence is a mismatch), and
//! the listener's counters must show the attacks were met, not missed.

use crate::support::{probe_manifest, prober, test_limits, testnet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use xmpp_survey::acceptance::probe::AcceptanceProbe;
use xmpp_survey::dns::resolve::{DnsConfig, Resolver};
use xmpp_survey::facts::{compare, facts};
use xmpp_survey::listener::{
    ListenerConfig, MAX_STREAMS, MAX_STREAMS_PER_ADDRESS, MAX_STREAMS_PER_PREFIX, ProbeListener,
};
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
    let identity = Arc::new(net.probe_identity().expect("identity"));
    let base = prober(&net, AddressPolicy::ALLOW_PRIVATE);
    let resolver = Arc::new(
        Resolver::new(&DnsConfig {
            server: Some(net.dns_addr()),
            timeout: test_limits().dns_timeout,
        })
        .expect("resolver"),
    );
    let listener = ProbeListener::start(ListenerConfig {
        max_streams: MAX_STREAMS,
        identity: identity.clone(),
        ctx: base.context().clone(),
        resolver,
    })
    .await
    .expect("listener starts");
    let prober = base.with_acceptance(AcceptanceProbe::new(identity.clone(), listener.clone()));
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
