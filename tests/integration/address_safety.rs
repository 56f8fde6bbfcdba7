//! MEASUREMENTS §5: without the operator's opt-in the probe never connects
//! to loopback or private addresses. Proven with the testnet's own accept
//! counters: zero connections.

use crate::support::{prober, testnet};
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::probe::report::{ConnectOutcome, EndpointOutcome};
use xmpp_survey::verdict::ServiceStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_policy_makes_zero_connections_to_the_testnet() {
    let net = testnet(32, 12, &["srv_ok", "no_srv", "direct_tls", "aaaa_only"]).await;
    let strict = prober(&net, AddressPolicy::STRICT);
    let mut endpoints = 0;
    for d in net.domains() {
        let r = strict.probe(&d).await;
        assert!(!r.endpoints.is_empty(), "{d}: DNS still answers");
        for e in &r.endpoints {
            endpoints += 1;
            assert_eq!(
                e.connect,
                ConnectOutcome::BlockedAddress,
                "{d} {}",
                e.key.ip
            );
            assert_eq!(
                e.outcome,
                EndpointOutcome::BlockedAddress,
                "{d} {}",
                e.key.ip
            );
            assert!(
                e.detail
                    .as_deref()
                    .unwrap_or("")
                    .contains("--allow-private")
            );
        }
        assert_eq!(r.summary.c2s.status, ServiceStatus::Blocked, "{d}");
    }
    assert!(endpoints >= 24);
    assert_eq!(
        net.total_connections(),
        0,
        "the strict probe connected to the testnet"
    );

    // The same probe with the opt-in does connect: the counter works.
    let open = prober(&net, AddressPolicy::ALLOW_PRIVATE);
    let d = &net.domains()[0];
    let r = open.probe(d).await;
    assert!(
        r.endpoints
            .iter()
            .any(|e| e.connect == ConnectOutcome::Connected)
    );
    let ip = r.endpoints[0].key.ip;
    assert!(net.connections(ip) > 0);
    net.shutdown().await;
}
