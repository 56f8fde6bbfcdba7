//! Shared helpers: start a testnet, build a prober pointed at it.

use std::sync::Arc;
use std::time::Duration;
use xmpp_survey::dns::resolve::{DnsConfig, Resolver};
use xmpp_survey::limits::Limits;
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::probe::Prober;
use xmpp_survey::probe::endpoint::ProbeContext;
use xmpp_survey::testnet::{Testnet, TestnetConfig};
use xmpp_survey::tls::client::TlsProbe;

/// Limits short enough for tests: hostile profiles (slowloris, DNS
/// timeout) cost at most a couple of seconds.
pub fn test_limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        phase_timeout: Duration::from_secs(2),
        dns_timeout: Duration::from_millis(800),
        ..Limits::default()
    }
}

/// Starts a testnet on 127.`net`.0.0/16 with a free DNS port.
pub async fn testnet(net: u8, domains: usize, profiles: &[&str]) -> Testnet {
    xmpp_survey::install_crypto_provider();
    Testnet::start(TestnetConfig {
        domains,
        seed: 42,
        net,
        dns_port: 0,
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        external: Vec::new(),
    })
    .await
    .expect("testnet starts")
}

/// A prober trusting the testnet CA, asking the testnet DNS.
pub fn prober(net: &Testnet, policy: AddressPolicy) -> Prober {
    let ca = rustls_pki_types::pem::PemObject::pem_slice_iter(net.ca_pem().as_bytes())
        .collect::<Result<Vec<rustls_pki_types::CertificateDer<'static>>, _>>()
        .expect("testnet CA parses");
    let limits = test_limits();
    let resolver = Resolver::new(&DnsConfig {
        server: Some(net.dns_addr()),
        timeout: limits.dns_timeout,
    })
    .expect("resolver");
    Prober::new(
        Arc::new(resolver),
        ProbeContext {
            limits,
            policy,
            tls: Arc::new(TlsProbe::new(ca).expect("tls")),
            probe_domain: None,
            gate: None,
        },
    )
}
