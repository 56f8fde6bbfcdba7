//! The truth test: every testnet profile, every domain probed, every
//! measured fact compared with the manifest written by the profile's own
//! declaration. A mismatch names domain, field, expected and got.

use crate::support::{probe_manifest, prober, testnet};
use xmpp_survey::facts::{ACCEPTANCE_PREFIX, compare, facts};
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::testnet::profile::PROFILES;
use xmpp_survey::testnet::{Testnet, TestnetConfig, harness, layout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_matches_the_manifest_field_by_field() {
    // Two domains per profile: every profile appears, and shared hosts
    // carry several tenants.
    let net = testnet(31, PROFILES.len() * 2, &[]).await;
    assert_truth(net).await;
}

/// The benchmark's large testnets place the domains that would each get
/// an address of their own on one address per profile
/// (`--dedicated-by-profile`); every domain must still play its own
/// profile, the servers telling them apart only after the client speaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_profile_matches_the_manifest_with_dedicated_domains_grouped_by_profile() {
    let net = harness::start_config(TestnetConfig {
        domains: PROFILES.len() * 2,
        seed: 42,
        net: 39,
        dns_port: 0,
        profiles: Vec::new(),
        generation: 0,
        external: Vec::new(),
        per_host: layout::SHARED_PER_HOST,
        dedicated_by_profile: true,
    })
    .await;
    // The grouping happened: some IPv4 address serves several unshared
    // domains.
    let mut unshared = std::collections::BTreeMap::new();
    for d in net
        .manifest()
        .domains
        .iter()
        .filter(|d| !d.shared && d.ip.is_ipv4())
    {
        *unshared.entry(d.ip).or_insert(0usize) += 1;
    }
    assert!(
        unshared.values().any(|&n| n > 1),
        "no address holds two unshared domains: {unshared:?}"
    );
    assert_truth(net).await;
}

/// Probes every domain of `net` and compares each measured fact with the
/// manifest (acceptance facts excluded: the passive probe has no identity).
async fn assert_truth(net: Testnet) {
    let prober = prober(&net, AddressPolicy::ALLOW_PRIVATE);
    let manifest = net.manifest();
    let reports = probe_manifest(&prober, &manifest, 64).await;

    let mut failures = Vec::new();
    let mut compared = 0usize;
    let mut profiles_seen = std::collections::BTreeSet::new();
    for (d, report) in &reports {
        profiles_seen.insert(d.profile.clone());
        let measured = facts(report);
        // The passive probe runs without an identity: acceptance facts are
        // checked by the acceptance truth test.
        let expect: xmpp_survey::facts::Facts = d
            .expect
            .iter()
            .filter(|(k, _)| !k.starts_with(ACCEPTANCE_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        compared += expect.len();
        for m in compare(&expect, &measured) {
            failures.push(format!(
                "{} [{}] {}: expected {} got {}",
                d.domain, d.profile, m.key, m.expected, m.got
            ));
        }
    }
    net.shutdown().await;
    assert_eq!(
        profiles_seen.len(),
        PROFILES.len(),
        "every profile must be probed"
    );
    assert!(
        compared > PROFILES.len() * 40,
        "only {compared} facts compared"
    );
    assert!(
        failures.is_empty(),
        "{} of {compared} facts differ from the manifest:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "truth: {} domains, {} profiles, {compared} facts compared, 0 mismatches",
        reports.len(),
        profiles_seen.len()
    );
}
