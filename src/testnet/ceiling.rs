//! The machine's raw TLS handshake ceiling against the testnet: a minimal
//! rustls client loop (TCP connect, full handshake, close) with the same
//! certificate verification as the probe. The crawl benchmark reports its
//! own handshake rate as a ratio to this, measured in the same run, so the
//! figure survives a noisy shared machine.

use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// One handshake target: a direct-TLS port and the name to send as SNI.
#[derive(Debug, Clone)]
pub struct Target {
    /// Address and port (a shared host's 5223).
    pub addr: SocketAddr,
    /// SNI: a domain hosted there.
    pub name: String,
}

/// What the loop measured.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    /// Completed handshakes.
    pub handshakes: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl Ceiling {
    /// Handshakes per second.
    pub fn rate(&self) -> f64 {
        self.handshakes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `concurrency` loops of connect+handshake+close over `targets`
/// (round robin) for `duration`, trusting `roots`.
pub async fn measure(
    targets: &[Target],
    roots: Vec<CertificateDer<'static>>,
    concurrency: usize,
    duration: Duration,
) -> Result<Ceiling, String> {
    if targets.is_empty() {
        return Err("no direct-TLS targets".into());
    }
    // The probe's own provider: the ceiling is of the handshakes the crawl makes.
    let provider = Arc::new(crate::tls::verify::client_provider());
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r).map_err(|e| e.to_string())?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"xmpp-client".to_vec()];
    // Full handshakes only, like the crawler (which never resumes).
    cfg.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let targets = Arc::new(targets.to_vec());
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (connector, done, failed, next, targets) = (
            connector.clone(),
            done.clone(),
            failed.clone(),
            next.clone(),
            targets.clone(),
        );
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % targets.len();
                let t = &targets[i];
                let ok = async {
                    let tcp = TcpStream::connect(t.addr).await.ok()?;
                    let name = ServerName::try_from(t.name.clone()).ok()?;
                    let mut tls = connector.connect(name, tcp).await.ok()?;
                    let _ = tls.shutdown().await;
                    Some(())
                }
                .await;
                match ok {
                    Some(()) => done.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(Ceiling {
        handshakes: done.load(Ordering::Relaxed),
        failures: failed.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    })
}
