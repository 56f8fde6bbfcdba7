//! Every timeout and cap the crawler enforces, with why, and where each
//! lives.
//!
//! A survey talks to thousands of servers it does not control; each limit
//! bounds what one hostile or broken server (or a hostile peer of our
//! dialback listener) can cost us. The limits of one probe and the
//! defaults of the CLI are defined here; a limit that belongs to one
//! module's protocol or data structure is defined there, next to the code
//! that enforces it, and listed below so that this is the one place to
//! look. Values are the same everywhere: none is restated.
//!
//! # Defined here
//!
//! | Limit | Value | Bounds |
//! |---|---|---|
//! | [`CONNECT_TIMEOUT`] | 5 s | one TCP connect (`--connect-timeout`) |
//! | [`PHASE_TIMEOUT`] | 10 s | one stream phase (`--phase-timeout`) |
//! | [`DNS_TIMEOUT`] | 5 s | one DNS question (`--dns-timeout`) |
//! | [`MAX_PHASE_BYTES`] | 64 KiB | bytes a server sends in one phase |
//! | [`MAX_XML_DEPTH`] | 16 | XML nesting below the stream |
//! | [`MAX_SRV_TARGETS`] | 4 | SRV targets probed per service |
//! | [`MAX_ADDRS_PER_TARGET`] | 2 | addresses probed per SRV target |
//! | [`DEFAULT_CONCURRENCY`] | 32 | domains `probe` probes at once |
//! | [`DEFAULT_PER_IP_RATE`] | 10/s | connections to one target address (`--per-ip-rate`) |
//! | [`DEFAULT_PER_IP_CONCURRENCY`] | 4 | connections open to one target address (`--per-ip-concurrency`) |
//! | [`PROVIDERS_TIMEOUT`] | 10 s | fetching a providers list |
//! | [`PROVIDERS_MAX_BYTES`] | 16 MiB | a providers list's body |
//!
//! # Defined where they are enforced
//!
//! | Limit | Value | Where | Bounds |
//! |---|---|---|---|
//! | `ATTEMPTS` | 1 retry | `src/dns/resolve.rs` | retries of one DNS question |
//! | `MAX_HOPS` | 16 | `src/dns/resolve.rs` | CNAME chain followed |
//! | `CLOSE_TIMEOUT` | 1 s | `src/probe/endpoint.rs` | the polite close of a probe's stream |
//! | [`crate::tls::server::MAX_CLIENT_CHAIN_BYTES`] | 32 KiB | `src/tls/server.rs` | a peer's client certificate chain |
//! | [`crate::listener::MAX_STREAMS`] | 2048 | `src/listener.rs` | the dialback listener's streams (the fd budget may lower it) |
//! | [`crate::listener::MAX_ELEMENT_BYTES`] | 64 KiB | `src/listener.rs` | one inbound element or negotiation step |
//! | [`crate::listener::IDLE_TIMEOUT`] | 20 s | `src/listener.rs` | silence on an inbound stream |
//! | [`crate::listener::STREAM_LIFETIME`] | 300 s | `src/listener.rs` | one inbound stream's life |
//! | [`crate::listener::MAX_STREAMS_PER_ADDRESS`] | 64 | `src/listener.rs` | inbound streams from one address |
//! | [`crate::listener::MAX_STREAMS_PER_PREFIX`] | 256 | `src/listener.rs` | inbound streams from one /24 or /48 |
//! | [`crate::listener::ACCEPT_BACKLOG`] | 4096 | `src/listener.rs` | the kernel accept queue |
//! | [`crate::listener::MAX_REPORTS_PER_DOMAIN`] | 8 | `src/listener.rs` | inbound reports kept per probed domain |
//! | [`crate::listener::auth_deadline`] | connect + 6 × phase | `src/listener.rs` | accept until an inbound stream authenticates |
//! | verification timeout | connect + 4 × phase | `src/listener.rs` (`ProbeListener::start`) | one outbound `db:verify` |
//! | accept back-off | 50 ms | `src/listener.rs` (accept loop) | spinning on EMFILE |
//! | `MAX_DIALBACK_PER_STREAM` | 1 | `src/s2s/inbound.rs` | `db:result` requests per inbound stream (XEP-0220 §8) |
//! | `CLOSE_TIMEOUT` | 1 s | `src/s2s/inbound.rs` | the polite close of an inbound stream |
//! | [`crate::net::politeness::JITTER_ALLOWANCE`] | 20 ms | `src/net/politeness.rs` | slack added to each rate window |
//! | `HOUSEKEEPING_EVERY` | 1024 | `src/net/politeness.rs` | per-address entries kept between sweeps |
//! | [`crate::crawl::WorkerConfig::default`] | lease 300 s, 3 attempts, retry 30 s, batch 128, write every 500 ms, lease chunk 32, idle poll 1 s, 64 in flight | `src/crawl/mod.rs` | one worker (`--lease`, `--max-attempts`, `--retry-base`, `--write-batch`, `--concurrency`) |
//! | [`crate::crawl::RETRY_CAP`] | 1 h | `src/crawl/mod.rs` | the longest retry delay |
//! | [`crate::crawl::WRITERS`] | 4 | `src/crawl/mod.rs` | batch writes in flight |
//! | [`crate::crawl::REFUSAL_GRACE`] | 1 s | `src/crawl/mod.rs` | late listener refusals still counted against a probe |
//! | database back-off | 200 ms doubling to 5 s | `src/crawl/mod.rs` (`with_db`) | waiting for a lost database |
//! | [`crate::crawl::resources::SAMPLE_EVERY`] | 1 s | `src/crawl/resources.rs` | resource sampling |
//! | `LOG_EVERY` | 5 s | `src/crawl/progress.rs` | progress log lines |
//! | [`crate::store::DEFAULT_MAX_CONNECTIONS`] | 8 | `src/store/mod.rs` | the database pool |
//! | [`crate::store::ACQUIRE_TIMEOUT`] | 5 s | `src/store/mod.rs` | waiting for a pooled connection |
//! | `ENQUEUE_CHUNK` | 10,000 | `src/store/mod.rs` | domains queued per statement |
//! | [`crate::budget`] `RESERVE_FDS`, `DNS_FDS`, `ENDPOINT_FDS`, `LISTENER_STREAMS_PER_DOMAIN`, `FDS_PER_LISTENER_STREAM`, `MIN_LISTENER_STREAMS` | 64, 8, 8, 8, 2, 16 | `src/budget.rs` | the file-descriptor budget |
//!
//! The testnet's simulated servers and DNS (`src/testnet/`) have limits of
//! their own; they bound the test federation, not the crawler.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// TCP connect: a live server answers a SYN in well under a second; 5 s
/// covers slow intercontinental paths without letting a blackhole stall us.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Each stream phase (header, features, proceed, handshake): generous for
/// slow servers, short enough that a slowloris costs seconds, not minutes.
pub const PHASE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a server may send in one phase. Real feature lists are < 4 KiB;
/// 64 KiB leaves room for large caps/extension lists and cuts off floods.
pub const MAX_PHASE_BYTES: u64 = 64 * 1024;
/// XML nesting depth below `<stream:stream>`. Real features nest 3–4 deep.
pub const MAX_XML_DEPTH: usize = 16;
/// DNS query timeout per question.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// SRV targets probed per service name; protects against SRV lists that
/// would turn one domain into a scan.
pub const MAX_SRV_TARGETS: usize = 4;
/// Addresses probed per target (the first IPv4 and the first IPv6).
pub const MAX_ADDRS_PER_TARGET: usize = 2;
/// Domains probed at once by `xmpp-survey probe`.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Connections/s to any one target address unless `--per-ip-rate` says
/// otherwise: a shared hosting address serves many domains, and ten new
/// connections a second is far below what any server refuses.
pub const DEFAULT_PER_IP_RATE: NonZeroU32 = NonZeroU32::new(10).unwrap();
/// Connections open at once to any one target address unless
/// `--per-ip-concurrency` says otherwise: one domain's c2s and s2s
/// endpoints over STARTTLS and direct TLS, without looking like a flood.
pub const DEFAULT_PER_IP_CONCURRENCY: NonZeroUsize = NonZeroUsize::new(4).unwrap();

/// Whole-request timeout for fetching a providers list. data.xmpp.net
/// answers in well under a second; 10 s covers a slow link without letting
/// a stalled server hold up the start of a crawl.
pub const PROVIDERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest providers list body we accept. The list holds a few hundred
/// providers of a few KiB each at most, far below this; 16 MiB leaves ample
/// room for growth and still stops a misconfigured or hostile server from
/// filling memory.
pub const PROVIDERS_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The limits one probe runs with; defaults are the constants above, the
/// CLI can override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`PHASE_TIMEOUT`].
    pub phase_timeout: Duration,
    /// See [`MAX_PHASE_BYTES`].
    pub max_phase_bytes: u64,
    /// See [`MAX_XML_DEPTH`].
    pub max_xml_depth: usize,
    /// See [`DNS_TIMEOUT`].
    pub dns_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: CONNECT_TIMEOUT,
            phase_timeout: PHASE_TIMEOUT,
            max_phase_bytes: MAX_PHASE_BYTES,
            max_xml_depth: MAX_XML_DEPTH,
            dns_timeout: DNS_TIMEOUT,
        }
    }
}
