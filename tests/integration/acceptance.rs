//! The acceptance truth test (MEASUREMENTS §3): the testnet's acceptance
//! profiles plus a sample of the others, probed with the testnet's probe
//! identity (both certificates) and our dialback listener; every fact,
//! acceptance evidence included, compared with the manifest.

use crate::support::{probe_manifest, prober, testnet, with_acceptance};
use xmpp_survey::facts::{compare, facts};
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::testnet::profile::{PROFILES, is_acceptance};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptance_profiles_match_the_manifest() {
    let mut names: Vec<&str> = PROFILES
        .iter()
        .filter(|p| is_acceptance(p))
        .map(|p| p.name)
        .collect();
    let acceptance_profiles = names.len();
    // Controls: default lenient s2s, unreachable and TLS-less s2s.
    names.extend([
        "srv_ok",
        "cert_server_only",
        "cert_intermediate_server_only",
        "cert_le_server_only",
        "starttls_injection",
        "refused",
        "nxdomain",
        "c2s_only",
    ]);
    let net = testnet(34, names.len() * 2, &names).await;
    let (prober, listener, _) =
        with_acceptance(&net, prober(&net, AddressPolicy::ALLOW_PRIVATE)).await;

    let manifest = net.manifest();
    let reports = probe_manifest(&prober, &manifest, 16).await;
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut verdicts = std::collections::BTreeMap::new();
    let mut reasons = std::collections::BTreeMap::new();
    for (d, report) in &reports {
        let measured = facts(report);
        compared += d.expect.len();
        verdicts.insert(d.profile.clone(), report.summary.acceptance);
        if let Some(a) = &report.acceptance {
            reasons.insert(d.profile.clone(), a.reason.clone().unwrap_or_default());
        }
        for m in compare(&d.expect, &measured) {
            failures.push(format!(
                "{} [{}] {}: expected {} got {}",
                d.domain, d.profile, m.key, m.expected, m.got
            ));
        }
    }
    listener.shutdown().await;
    net.shutdown().await;
    eprintln!("acceptance verdicts by profile: {verdicts:#?}\nreasons: {reasons:#?}");
    // A hostile target yields a typed verdict with the cause, not a hang.
    assert!(verdicts.len() >= acceptance_profiles);
    assert!(
        failures.is_empty(),
        "{} of {compared} facts differ from the manifest:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "acceptance truth: {} domains, {compared} facts, 0 mismatches",
        reports.len()
    );
}
