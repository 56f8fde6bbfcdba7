//! Every timeout and cap the probe enforces, in one place, with why.
//!
//! A survey talks to thousands of servers it does not control; each limit
//! below bounds what one hostile or broken server can cost us.

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
