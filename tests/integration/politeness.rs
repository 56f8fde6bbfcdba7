//! Issue "Crawl engine with PostgreSQL", item 3: a global connection rate,
//! a per-IP rate and a per-IP concurrency cap, proven from the *servers'*
//! side: the testnet records when each connection was accepted on each
//! address, which is what a server operator would see of the crawler.
//!
//! Windows are **closed**: `[t, t + 1 s]` counts an accept exactly one
//! second later too, which is stricter than the half-open window a
//! per-second limit strictly needs. Timer and scheduling jitter is not
//! tolerated by the assertions; the gate absorbs it instead (its spacing
//! carries `JITTER_ALLOWANCE`, 20 ms per window), and the tests print the
//! margin that was left.

use crate::support::{test_limits, testnet};
use futures::future::join_all;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xmpp_survey::limits::Limits;
use xmpp_survey::net::politeness::{Politeness, PolitenessConfig};
use xmpp_survey::probe::Prober;
use xmpp_survey::probe::endpoint::{ProbeContext, probe_endpoint};
use xmpp_survey::probe::plan::EndpointPlan;
use xmpp_survey::probe::report::{EndpointKey, EndpointOutcome, EndpointSource, Transport};
use xmpp_survey::testnet::{Testnet, harness};
use xmpp_survey::xmpp::Service;

const SECOND: Duration = Duration::from_secs(1);

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero")
}

/// A probe context trusting the testnet CA, allowed on loopback, behind `gate`.
fn context(net: &Testnet, limits: Limits, gate: Option<Arc<Politeness>>) -> ProbeContext {
    ProbeContext {
        gate,
        source_ip: None,
        ..harness::context(net, limits, None)
    }
}

fn gated_prober(net: &Testnet, gate: Arc<Politeness>) -> Prober {
    let limits = test_limits();
    Prober::new(
        harness::resolver_with(net, limits.dns_timeout),
        context(net, limits, Some(gate)),
    )
}

/// The testnet's server addresses.
fn addresses(net: &Testnet) -> BTreeSet<IpAddr> {
    net.manifest().domains.iter().map(|d| d.ip).collect()
}

/// The most accepts in any closed window `[t, t + len]` (windows start at
/// an accept: a window holding the most accepts can always be slid until
/// its first one sits on its left edge). `times` is sorted.
fn max_in_window(times: &[Instant], len: Duration) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] <= len)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The shortest time spanned by `k + 1` consecutive accepts: with at most
/// `k` per closed window of length `len`, this must exceed `len`.
fn min_span(times: &[Instant], k: usize) -> Option<Duration> {
    times.windows(k + 1).map(|w| w[k] - w[0]).min()
}

/// Probes every domain of `net` at once through `gate`; returns how long
/// the whole crawl took.
async fn crawl_all(net: &Testnet, gate: &Arc<Politeness>) -> Duration {
    let prober = gated_prober(net, gate.clone());
    let t0 = Instant::now();
    let reports = join_all(net.domains().iter().map(|d| prober.probe(d))).await;
    let took = t0.elapsed();
    for r in &reports {
        assert!(!r.endpoints.is_empty(), "{}: no endpoint", r.domain);
        for e in &r.endpoints {
            assert_eq!(
                e.outcome,
                EndpointOutcome::Complete,
                "{} {}",
                r.domain,
                e.key.ip
            );
        }
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_rate_holds_in_every_one_second_window_of_every_shared_host() {
    const R: u32 = 5;
    // 40 domains, 8 per shared address: 5 addresses, 16 connections each
    // (c2s and s2s per domain), all wanted at the same instant.
    let net = testnet(80, 40, &["srv_ok", "cert_server_only"]).await;
    let gate = Arc::new(Politeness::new(PolitenessConfig {
        per_ip_rate: Some(nz(R)),
        ..PolitenessConfig::default()
    }));
    let took = crawl_all(&net, &gate).await;

    let mut most = 0;
    for ip in addresses(&net) {
        let times = net.accept_times(ip);
        assert!(
            times.len() > 2 * R as usize,
            "{ip}: {} accepts",
            times.len()
        );
        let peak = max_in_window(&times, SECOND);
        let span = min_span(&times, R as usize).expect("enough accepts");
        let gap = min_span(&times, 1).expect("enough accepts");
        eprintln!(
            "per-IP {R}/s: {ip}: {} accepts, at most {peak} in a closed 1 s window, \
             {} consecutive span >= {span:?}, gaps >= {gap:?}",
            times.len(),
            R + 1
        );
        assert!(
            peak <= R as usize,
            "{ip} saw {peak} connections within one second"
        );
        most = most.max(times.len());
    }
    // n attempts on one address need n-1 gaps of at least 1/R second.
    let implied = SECOND * (most as u32 - 1) / R;
    eprintln!("per-IP {R}/s: crawl took {took:?}; the limit implies >= {implied:?}");
    assert!(took >= implied, "took {took:?}, limit implies {implied:?}");
    let s = gate.stats();
    eprintln!("per-IP {R}/s: {s:?}");
    assert_eq!(s.acquired, net.total_connections());
    assert!(s.rate_waits > 0);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_and_per_ip_rates_hold_together() {
    const G: u32 = 6;
    const R: u32 = 4;
    // 12 domains on 2 shared addresses (8 + 4): 24 connections, 16 and 8
    // per address. Both limits bind: the two addresses together want 8/s
    // against a global 6/s, and the busier one ends alone at its 4/s. An
    // attempt that waited for one limit and then for the other would reach
    // the wire late and could break the first one.
    let net = testnet(82, 12, &["srv_ok"]).await;
    let gate = Arc::new(Politeness::new(PolitenessConfig {
        global_rate: Some(nz(G)),
        per_ip_rate: Some(nz(R)),
        ..PolitenessConfig::default()
    }));
    let took = crawl_all(&net, &gate).await;

    let mut all = Vec::new();
    let mut most = 0;
    for ip in addresses(&net) {
        let times = net.accept_times(ip);
        let peak = max_in_window(&times, SECOND);
        eprintln!(
            "global {G}/s + per-IP {R}/s: {ip}: {} accepts, at most {peak} in a closed 1 s \
             window, {} consecutive span >= {:?}",
            times.len(),
            R + 1,
            min_span(&times, R as usize)
        );
        assert!(peak <= R as usize, "{ip} saw {peak} connections in 1 s");
        most = most.max(times.len());
        all.extend(times);
    }
    all.sort();
    let peak = max_in_window(&all, SECOND);
    eprintln!(
        "global {G}/s: {} accepts on all addresses, at most {peak} in a closed 1 s window, \
         {} consecutive span >= {:?}",
        all.len(),
        G + 1,
        min_span(&all, G as usize)
    );
    assert!(
        peak <= G as usize,
        "the testnet saw {peak} connections in 1 s"
    );
    let implied = (SECOND * (all.len() as u32 - 1) / G).max(SECOND * (most as u32 - 1) / R);
    eprintln!("global {G}/s + per-IP {R}/s: crawl took {took:?}; limits imply >= {implied:?}");
    assert!(took >= implied, "took {took:?}, limits imply {implied:?}");
    net.shutdown().await;
}

/// Per-IP concurrency, measured with silent servers (`slowloris`: accept,
/// never send a byte). Each probe connection then lives from its connect
/// `c` until its header timeout has run, so beyond `c + PHASE`; its accept
/// `a` lies in between. If the server accepts within `ACCEPT_LAG` of the
/// connect, the interval `[a, a + PHASE - ACCEPT_LAG]` lies inside the
/// connection's life. Three accepts inside one such window would mean
/// three connections open at one instant, so with a cap of 2 every
/// `PHASE - ACCEPT_LAG` window holds at most 2 accepts. The method is
/// checked against an ungated probe of the same servers, which breaks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_concurrency_cap_holds_against_silent_servers() {
    const CAP: usize = 2;
    const ATTEMPTS: usize = 8;
    const PHASE: Duration = Duration::from_millis(800);
    const ACCEPT_LAG: Duration = Duration::from_millis(300);
    let net = testnet(81, 2, &["slowloris"]).await;
    let ips: Vec<IpAddr> = addresses(&net).into_iter().collect();
    assert_eq!(ips.len(), 2, "slowloris domains have an address each");
    let (gated_ip, control_ip) = (ips[0], ips[1]);
    let limits = Limits {
        connect_timeout: Duration::from_secs(2),
        phase_timeout: PHASE,
        ..test_limits()
    };
    let gate = Arc::new(Politeness::new(PolitenessConfig {
        per_ip_concurrency: NonZeroUsize::new(CAP),
        ..PolitenessConfig::default()
    }));
    let gated = context(&net, limits, Some(gate.clone()));
    let ungated = context(&net, limits, None);
    let plan = |ip: IpAddr| EndpointPlan {
        key: EndpointKey {
            service: Service::C2s,
            transport: Transport::Starttls,
            host: "silent".into(),
            ip,
            port: 5222,
        },
        source: EndpointSource::Fallback,
        tlsa: Vec::new(),
    };
    let (gated_plan, control_plan) = (plan(gated_ip), plan(control_ip));
    let t0 = Instant::now();
    let gated_run = async {
        let r =
            join_all((0..ATTEMPTS).map(|_| probe_endpoint(&gated, "silent.example", &gated_plan)))
                .await;
        (r, t0.elapsed())
    };
    let control_run =
        join_all((0..ATTEMPTS).map(|_| probe_endpoint(&ungated, "silent.example", &control_plan)));
    let ((reports, took), control) = tokio::join!(gated_run, control_run);
    for r in reports.iter().chain(&control) {
        assert_eq!(r.outcome, EndpointOutcome::Timeout, "{r:?}");
    }

    let window = PHASE - ACCEPT_LAG;
    let times = net.accept_times(gated_ip);
    assert_eq!(times.len(), ATTEMPTS);
    let peak = max_in_window(&times, window);
    let span = min_span(&times, CAP).expect("enough accepts");
    let control_times = net.accept_times(control_ip);
    let control_peak = max_in_window(&control_times, window);
    eprintln!(
        "per-IP cap {CAP}: {gated_ip}: at most {peak} accepts in a closed {window:?} window, \
         {} consecutive span >= {span:?}; ungated control {control_ip}: {control_peak} in one \
         window; gated run took {took:?}; {:?}",
        CAP + 1,
        gate.stats()
    );
    assert!(peak <= CAP, "{peak} connections open at once to {gated_ip}");
    assert!(
        control_peak > CAP,
        "the method must see the ungated probe's {control_peak} simultaneous connections"
    );
    // ATTEMPTS / CAP rounds, each at least one header timeout long.
    let implied = PHASE * (ATTEMPTS / CAP) as u32;
    assert!(took >= implied, "took {took:?}, cap implies {implied:?}");
    assert_eq!(gate.stats().concurrency_waits, (ATTEMPTS - CAP) as u64);
    net.shutdown().await;
}
