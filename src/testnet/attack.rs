//! A hostile client for the probe's dialback listener: the attacks that
//! once changed verdicts or exhausted the crawler (issue "No one outside can
//! change a verdict or stop a crawl"), each at a bounded rate, for a bounded
//! time, from one or several loopback source addresses.
//!
//! Used by the stress test (`tests/integration/attack.rs`) during a testnet
//! crawl with the acceptance probe, and by `xmpp-survey testnet attack`
//! for the before/after figures in `docs/benchmarks.md`. Loopback only:
//! [`AttackConfig::listener`] and every source must be loopback addresses.

use crate::tls::client::{TlsProbe, certified_key};
use crate::xmpp::Service;
use crate::xmpp::stream::{self, HeaderSpec};
use rcgen::{CertificateParams, KeyPair};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// One attack (the table of the issue, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackKind {
    /// Streams sending `<db:verify>` with random keys every 0.5 s.
    VerifyFlood,
    /// Idle connections after the header, reconnecting when closed.
    IdleHold,
    /// ~60 KB of text inside one element, then nothing.
    SlowText,
    /// STARTTLS presenting a ~64 KB client certificate chain, repeatedly.
    BigClientChain,
    /// Streams whose `from` names the targets, trying to authenticate as
    /// them (EXTERNAL with a self-made certificate, dialback with a made-up
    /// key) so that their "inbound evidence" would be forged.
    ForgedFrom,
}

impl AttackKind {
    /// Every attack.
    pub const ALL: [Self; 5] = [
        Self::VerifyFlood,
        Self::IdleHold,
        Self::SlowText,
        Self::BigClientChain,
        Self::ForgedFrom,
    ];
}

/// What to attack and how hard.
#[derive(Debug, Clone)]
pub struct AttackConfig {
    /// The attack.
    pub kind: AttackKind,
    /// The listener (loopback).
    pub listener: SocketAddr,
    /// The probe domain (the `to` of every stream).
    pub probe_domain: String,
    /// Domains to name as `from` (the crawl's targets: public knowledge).
    pub targets: Vec<String>,
    /// Source addresses, used round-robin (loopback).
    pub sources: Vec<IpAddr>,
    /// Connections kept open at once.
    pub connections: usize,
    /// New connections per second, at most (all workers together).
    pub rate: u32,
    /// How long the attack runs.
    pub duration: Duration,
}

/// What the attack did (its own view; the listener counts the rest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AttackReport {
    /// TCP connections established.
    pub connected: u64,
    /// Connect attempts that failed.
    pub connect_failed: u64,
    /// Connections the listener closed before answering a byte.
    pub closed_silently: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Streams whose TLS handshake completed on our side (in TLS 1.3 the
    /// server may still refuse our certificate right after).
    pub tls: u64,
    /// Streams that got the listener's post-TLS features: the server
    /// accepted the TLS session, client certificate included.
    pub post_tls_features: u64,
}

/// Why an attack could not start.
#[derive(Debug, Error)]
pub enum AttackError {
    /// A non-loopback address was given.
    #[error("attacks run on loopback only; {0} is not a loopback address")]
    NotLoopback(IpAddr),
    /// No source address or no target.
    #[error("an attack needs at least one source address and one target domain")]
    Empty,
    /// The hostile certificates could not be made.
    #[error("making the attack's certificates: {0}")]
    Certificate(String),
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    connect_failed: AtomicU64,
    closed_silently: AtomicU64,
    bytes_sent: AtomicU64,
    tls: AtomicU64,
    post_tls_features: AtomicU64,
}

/// Runs one attack to its end.
pub async fn run(cfg: AttackConfig) -> Result<AttackReport, AttackError> {
    for ip in cfg.sources.iter().copied().chain([cfg.listener.ip()]) {
        if !ip.is_loopback() {
            return Err(AttackError::NotLoopback(ip));
        }
    }
    if cfg.sources.is_empty() || cfg.targets.is_empty() {
        return Err(AttackError::Empty);
    }
    let certs = Arc::new(Certs::new(&cfg)?);
    let cfg = Arc::new(cfg);
    let counters = Arc::new(Counters::default());
    let end = Instant::now() + cfg.duration;
    let gap = Duration::from_secs(1) / cfg.rate.max(1);
    let next_slot = Arc::new(tokio::sync::Mutex::new(Instant::now()));
    let mut workers = Vec::new();
    for w in 0..cfg.connections.max(1) {
        let (cfg, certs, counters, next_slot) = (
            cfg.clone(),
            certs.clone(),
            counters.clone(),
            next_slot.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < end {
                // The global rate: one new connection per `gap`.
                let at = {
                    let mut slot = next_slot.lock().await;
                    let at = (*slot).max(Instant::now());
                    *slot = at + gap;
                    at
                };
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at).await;
                let source = cfg.sources[n % cfg.sources.len()];
                let target = &cfg.targets[n % cfg.targets.len()];
                n += cfg.connections.max(1);
                let _ = tokio::time::timeout_at(
                    end,
                    one_connection(&cfg, &certs, &counters, source, target),
                )
                .await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Ok(AttackReport {
        connected: get(&counters.connected),
        connect_failed: get(&counters.connect_failed),
        closed_silently: get(&counters.closed_silently),
        bytes_sent: get(&counters.bytes_sent),
        tls: get(&counters.tls),
        post_tls_features: get(&counters.post_tls_features),
    })
}

/// The certificates the TLS attacks present.
struct Certs {
    /// A ~64 KB chain (a leaf and padding certificates).
    big: Option<Arc<CertifiedKey>>,
    /// A self-made certificate naming the first target.
    forged: Option<Arc<CertifiedKey>>,
    tls: TlsProbe,
}

impl Certs {
    fn new(cfg: &AttackConfig) -> Result<Self, AttackError> {
        let e = |x: &dyn std::fmt::Display| AttackError::Certificate(x.to_string());
        let tls = TlsProbe::new(Vec::new()).map_err(|x| e(&x))?;
        let big = (cfg.kind == AttackKind::BigClientChain)
            .then(|| big_chain(&cfg.targets[0]).map_err(|x| e(&x)))
            .transpose()?;
        let forged = (cfg.kind == AttackKind::ForgedFrom)
            .then(|| self_made(&cfg.targets, 0).map_err(|x| e(&x)))
            .transpose()?
            .map(|(c, k)| certified_key(vec![c], k).map_err(|x| e(&x)))
            .transpose()?;
        Ok(Self { big, forged, tls })
    }
}

/// A self-signed certificate naming `names` (dNSName SANs), padded with
/// `pad` extra names.
fn self_made(
    names: &[String],
    pad: usize,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    let mut sans: Vec<String> = names.iter().take(4).cloned().collect();
    sans.extend((0..pad).map(|i| format!("padding-{i:04}.attacker.invalid")));
    let params = CertificateParams::new(sans)?;
    let key = KeyPair::generate()?;
    let der = params.self_signed(&key)?.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((der, key))
}

/// A leaf naming `target` followed by padding certificates: about 64 KB.
fn big_chain(target: &str) -> Result<Arc<CertifiedKey>, Box<dyn std::error::Error>> {
    let (leaf, key) = self_made(&[target.to_string()], 0)?;
    let mut chain = vec![leaf];
    while chain.iter().map(|c| c.len()).sum::<usize>() < 64 * 1024 {
        chain.push(self_made(&[], 90)?.0);
    }
    Ok(certified_key(chain, key)?)
}

async fn connect_from(source: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = if source.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.bind(SocketAddr::new(source, 0))?;
    sock.connect(to).await
}

fn header(from: &str, to: &str) -> String {
    stream::open_header(&HeaderSpec {
        service: Service::S2s,
        from: Some(from),
        to: Some(to),
        id: None,
        version: Some("1.0"),
        dialback: true,
    })
}

/// Reads until `needle` shows up, the peer closes, or 10 s pass; returns
/// what was read (empty: closed without a byte).
async fn read_until<S: AsyncRead + Unpin>(s: &mut S, needle: &str) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                got.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&got).contains(needle) {
                    return Some(String::from_utf8_lossy(&got).into_owned());
                }
            }
            _ => {
                return (!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned());
            }
        }
    }
}

/// Holds a connection until the peer closes it (or the attack ends).
async fn hold<S: AsyncRead + Unpin>(s: &mut S) {
    let mut buf = [0u8; 4096];
    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
}

async fn one_connection(
    cfg: &AttackConfig,
    certs: &Certs,
    c: &Counters,
    source: IpAddr,
    target: &str,
) {
    let Ok(mut tcp) = connect_from(source, cfg.listener).await else {
        c.connect_failed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        return;
    };
    c.connected.fetch_add(1, Ordering::Relaxed);
    let sent = |n: usize| {
        c.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    };
    let h = header(target, &cfg.probe_domain);
    if tcp.write_all(h.as_bytes()).await.is_err() {
        return;
    }
    sent(h.len());
    let Some(_features) = read_until(&mut tcp, "</stream:features>").await else {
        c.closed_silently.fetch_add(1, Ordering::Relaxed);
        return;
    };
    match cfg.kind {
        AttackKind::VerifyFlood => {
            let (mut rd, mut wr) = tcp.into_split();
            let drain = tokio::spawn(async move { hold(&mut rd).await });
            loop {
                let el = format!(
                    "<db:verify from='{target}' to='{}' id='{:016x}'>{:032x}</db:verify>",
                    cfg.probe_domain,
                    rand::random::<u64>(),
                    rand::random::<u128>()
                );
                if wr.write_all(el.as_bytes()).await.is_err() || drain.is_finished() {
                    break;
                }
                sent(el.len());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        AttackKind::IdleHold => hold(&mut tcp).await,
        AttackKind::SlowText => {
            let mut el = format!("<db:verify from='{target}' to='x' id='y'>");
            el.push_str(&"x".repeat(60 * 1024));
            if tcp.write_all(el.as_bytes()).await.is_ok() {
                sent(el.len());
                hold(&mut tcp).await;
            }
        }
        AttackKind::BigClientChain | AttackKind::ForgedFrom => {
            tls_attack(cfg, certs, c, tcp, target).await;
        }
    }
}

async fn tls_attack(
    cfg: &AttackConfig,
    certs: &Certs,
    c: &Counters,
    mut tcp: TcpStream,
    target: &str,
) {
    let starttls = format!("<starttls xmlns='{}'/>", crate::xmpp::NS_TLS);
    if tcp.write_all(starttls.as_bytes()).await.is_err() {
        return;
    }
    if read_until(&mut tcp, "<proceed").await.is_none() {
        return;
    }
    let cert = match cfg.kind {
        AttackKind::BigClientChain => certs.big.clone(),
        _ => certs.forged.clone(),
    };
    let Ok((connector, _)) = certs
        .tls
        .connector(&cfg.probe_domain, Service::S2s, None, cert)
    else {
        return;
    };
    let Some(name) = crate::tls::client::server_name(&cfg.probe_domain) else {
        return;
    };
    let Ok(Ok(mut tls)) =
        tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await
    else {
        return;
    };
    c.tls.fetch_add(1, Ordering::Relaxed);
    let h = header(target, &cfg.probe_domain);
    if tls.write_all(h.as_bytes()).await.is_err() {
        return;
    }
    match read_until(&mut tls, "</stream:features>").await {
        Some(f) if f.contains("</stream:features>") => {
            c.post_tls_features.fetch_add(1, Ordering::Relaxed);
        }
        _ => return,
    }
    if cfg.kind == AttackKind::ForgedFrom {
        // EXTERNAL with a self-made certificate naming the target, then
        // dialback with a key its authoritative server never issued.
        let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>";
        let db = format!(
            "<db:result from='{target}' to='{}'>{:032x}</db:result>",
            cfg.probe_domain,
            rand::random::<u128>()
        );
        for el in [auth.to_string(), db] {
            if tls.write_all(el.as_bytes()).await.is_err() {
                return;
            }
            let _ = read_until(&mut tls, ">").await;
        }
    }
    hold(&mut tls).await;
}
