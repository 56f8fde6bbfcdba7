//! Set-up shared by every test that runs against a testnet: the unit tests
//! of the listener and of the simulated servers, and `tests/integration`
//! (through its `support` module). A testnet, a probe context and a
//! resolver pointed at it, the probe domain's listener, and the IQ round
//! trip through that listener.

use crate::dns::resolve::{DnsConfig, Resolver};
use crate::identity::ProbeIdentity;
use crate::limits::Limits;
use crate::listener::{ListenerConfig, MAX_STREAMS, ProbeListener};
use crate::net::policy::AddressPolicy;
use crate::probe::endpoint::{ConnectOptions, ProbeContext, Session, open_session};
use crate::probe::plan::EndpointPlan;
use crate::probe::report::EndpointReport;
use crate::testnet::{External, Testnet, TestnetConfig};
use crate::tls::client::TlsProbe;
use crate::xmpp::element::Element;
use crate::xmpp::iq;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;

/// Short limits: every failure in the unit tests costs seconds at most.
pub fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        phase_timeout: Duration::from_secs(5),
        dns_timeout: Duration::from_secs(2),
        ..Limits::default()
    }
}

/// Starts a testnet of `domains` domains drawn from `profiles` (all
/// profiles when empty) on 127.`net`.0.0/16 with a free DNS port.
pub async fn start(
    net: u8,
    domains: usize,
    seed: u64,
    profiles: &[&str],
    external: Vec<External>,
) -> Testnet {
    start_config(TestnetConfig {
        domains,
        seed,
        net,
        dns_port: 0,
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        generation: 0,
        per_host: crate::testnet::layout::SHARED_PER_HOST,
        dedicated_by_profile: false,
        external,
    })
    .await
}

/// Starts a testnet from a whole configuration (e.g. with
/// [`TestnetConfig::dedicated_by_profile`]).
pub async fn start_config(cfg: TestnetConfig) -> Testnet {
    crate::install_crypto_provider();
    Testnet::start(cfg).await.expect("testnet starts")
}

/// A testnet of `profiles` on 127.`net`.0.0/16 (one domain each).
pub async fn testnet(net: u8, profiles: &[&str], external: Vec<External>) -> Testnet {
    start(net, profiles.len(), 7, profiles, external).await
}

/// The testnet CA, as trust anchors.
pub fn roots(net: &Testnet) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(net.ca_pem().as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("testnet CA parses")
}

/// A context trusting the testnet CA, allowed to reach loopback, with
/// `limits` and `probe_domain` as our s2s domain (if any); no gate.
pub fn context(net: &Testnet, limits: Limits, probe_domain: Option<String>) -> ProbeContext {
    ProbeContext {
        limits,
        policy: AddressPolicy::ALLOW_PRIVATE,
        tls: Arc::new(TlsProbe::new(roots(net)).expect("tls")),
        probe_domain,
        gate: None,
        source_ip: None,
    }
}

/// [`context`] with the unit tests' [`limits`] and `from` as our s2s domain.
pub fn ctx(net: &Testnet, from: &str) -> ProbeContext {
    context(net, limits(), Some(from.to_owned()))
}

/// A resolver asking the testnet DNS, waiting `timeout` for an answer.
pub fn resolver_with(net: &Testnet, timeout: Duration) -> Arc<Resolver> {
    Arc::new(
        Resolver::new(&DnsConfig {
            server: Some(net.dns_addr()),
            timeout,
        })
        .expect("resolver"),
    )
}

/// A resolver asking the testnet DNS, with the unit tests' [`limits`].
pub fn resolver(net: &Testnet) -> Arc<Resolver> {
    resolver_with(net, limits().dns_timeout)
}

/// The listener of `identity` (the testnet's probe identity listens on
/// 127.B.0.2:5269), verifying dialback with `ctx` and `resolver`.
pub async fn probe_listener(
    identity: Arc<ProbeIdentity>,
    ctx: ProbeContext,
    resolver: Arc<Resolver>,
) -> Arc<ProbeListener> {
    ProbeListener::start(ListenerConfig {
        max_streams: MAX_STREAMS,
        ctx,
        identity,
        resolver,
    })
    .await
    .expect("listener starts")
}

/// The listener for the testnet's probe identity, with the unit tests'
/// [`limits`].
pub async fn listener(net: &Testnet) -> Arc<ProbeListener> {
    let identity = Arc::new(net.probe_identity().expect("identity"));
    let ctx = ctx(net, &identity.domain);
    probe_listener(identity, ctx, resolver(net)).await
}

/// Connects to `to` at `plan`, presenting `cert`.
pub async fn session(
    ctx: &ProbeContext,
    to: &str,
    plan: &EndpointPlan,
    cert: Option<Arc<rustls::sign::CertifiedKey>>,
) -> (EndpointReport, Option<Session>) {
    open_session(ctx, to, plan, &ConnectOptions { client_cert: cert }).await
}

/// Sends ping and version from `from` to `to` on `s` and waits for both
/// answers *at the listener* (delivered over `to`'s own stream).
pub async fn ping_and_version(
    s: &mut Session,
    l: &ProbeListener,
    from: &str,
    to: &str,
) -> (Element, Element) {
    let ping = l.expect_iq(to, "ping-1");
    let version = l.expect_iq(to, "version-1");
    crate::s2s::steps::send(&mut s.stream, &iq::ping(from, to, "ping-1"))
        .await
        .expect("send ping");
    crate::s2s::steps::send(&mut s.stream, &iq::version_query(from, to, "version-1"))
        .await
        .expect("send version");
    let wait = Duration::from_secs(15);
    let ping = tokio::time::timeout(wait, ping)
        .await
        .expect("pong delivered in time")
        .expect("pong");
    let version = tokio::time::timeout(wait, version)
        .await
        .expect("version delivered in time")
        .expect("version");
    (ping, version)
}
