//! Shared helpers: start a testnet, build a prober pointed at it, with
//! the probe domain's listener for the acceptance probe (on top of the
//! library's [`xmpp_survey::testnet::harness`]), and a database per test.

use std::sync::Arc;
use std::time::Duration;
use xmpp_survey::acceptance::probe::AcceptanceProbe;
use xmpp_survey::identity::ProbeIdentity;
use xmpp_survey::limits::Limits;
use xmpp_survey::listener::ProbeListener;
use xmpp_survey::net::policy::AddressPolicy;
use xmpp_survey::probe::Prober;
use xmpp_survey::probe::endpoint::ProbeContext;
use xmpp_survey::testnet::Testnet;
use xmpp_survey::testnet::harness;

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
    harness::start(net, domains, 42, profiles, Vec::new()).await
}

/// A context trusting the testnet CA with [`test_limits`], allowed on
/// loopback, with `probe_domain` as our s2s domain (if any).
pub fn context(net: &Testnet, probe_domain: Option<String>) -> ProbeContext {
    harness::context(net, test_limits(), probe_domain)
}

/// A prober trusting the testnet CA, asking the testnet DNS.
pub fn prober(net: &Testnet, policy: AddressPolicy) -> Prober {
    Prober::new(
        harness::resolver_with(net, test_limits().dns_timeout),
        ProbeContext {
            policy,
            ..context(net, None)
        },
    )
}

/// `base` with the acceptance probe: the testnet's probe identity and its
/// dialback listener on 127.B.0.2:5269 (sharing `base`'s context). Shut
/// the listener down at the end of the test.
pub async fn with_acceptance(
    net: &Testnet,
    base: Prober,
) -> (Prober, Arc<ProbeListener>, Arc<ProbeIdentity>) {
    let identity = Arc::new(net.probe_identity().expect("probe identity"));
    let listener = harness::probe_listener(
        identity.clone(),
        base.context().clone(),
        harness::resolver_with(net, test_limits().dns_timeout),
    )
    .await;
    let prober = base.with_acceptance(AcceptanceProbe::new(identity.clone(), listener.clone()));
    (prober, listener, identity)
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

/// The binary under test.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_xmpp-survey"))
}

/// A fresh temporary directory `xs-<name>-<pid>-<random>`.
pub fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "xs-{name}-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// PEM of DER items (base64 in 64-column lines).
pub fn pem(label: &str, ders: &[&[u8]]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for der in ders {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
    }
    out
}

/// The PEM label of a private key in its DER form.
pub fn key_label(k: &rustls_pki_types::PrivateKeyDer<'_>) -> &'static str {
    match k {
        rustls_pki_types::PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        rustls_pki_types::PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    }
}
