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

/// A PostgreSQL database of its own for one test: created empty on the
/// server `DATABASE_URL` names, dropped (with its connections) when this
/// value is dropped, even if the test panics.
pub struct TestDb {
    /// URL of the test's database.
    pub url: String,
    server: String,
    name: String,
}

/// Creates a fresh database `xs_test_<random>` for one test. Panics with
/// instructions when `DATABASE_URL` is unset: the tests never fall back to
/// whatever server happens to run on this machine.
pub async fn pg() -> TestDb {
    use sqlx::{Connection, Executor};
    let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: run the tests through scripts/test.sh, which starts a \
             private PostgreSQL cluster (or set DATABASE_URL to a PostgreSQL server URL on \
             which the tests may create and drop databases)"
        )
    });
    let name = format!("xs_test_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("DATABASE_URL server is not reachable: {e}"));
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("CREATE DATABASE");
    let _ = admin.close().await;
    TestDb {
        url: with_database(&server, &name),
        server,
        name,
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        use sqlx::{Connection, Executor};
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs outside any runtime (or inside a finishing one): use a
        // thread with its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&server).await?;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}

/// `url` with its database path replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Probes every domain of a manifest, `concurrency` at a time; returns
/// each manifest entry with its report (in completion order).
pub async fn probe_manifest<'m>(
    prober: &Prober,
    manifest: &'m xmpp_survey::testnet::Manifest,
    concurrency: usize,
) -> Vec<(
    &'m xmpp_survey::testnet::ManifestDomain,
    xmpp_survey::probe::report::DomainReport,
)> {
    use futures::StreamExt;
    futures::stream::iter(manifest.domains.iter())
        .map(|d| {
            let prober = prober.clone();
            async move { (d, prober.probe(&d.domain).await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}
