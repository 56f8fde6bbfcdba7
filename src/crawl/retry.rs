//! Which probe outcomes are worth retrying (pure).
//!
//! A measured failure is data and is recorded as such: NXDOMAIN, refused
//! connections, bad certificates, stream errors. Only failures that say
//! "the network did not answer in time" are retried with backoff; when the
//! retries are exhausted the domain ends `not_tested`, which reports never
//! count as a failure of the domain.
//!
//! Running out of a local resource (descriptors, buffers, ports: see
//! [`crate::budget`]) is the crawler's failure, never the target's: any
//! sign of it anywhere in a report (a DNS question, a passive endpoint, an
//! acceptance connection) retries the domain, whose reason then says so.

use crate::dns::DnsOutcome;
use crate::model::report::{ConnectOutcome, DomainReport};
use std::time::Duration;

/// What to do with a finished probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Store the result.
    Record,
    /// Probe again later; the reason says what looked transient.
    Retry(String),
}

/// Decides whether a report shows a transient failure: every SRV question
/// timed out and nothing could be probed, or every endpoint's TCP connect
/// timed out or found no route.
pub fn classify(r: &DomainReport) -> Disposition {
    if let Some(why) = local_exhaustion(r) {
        return Disposition::Retry(why);
    }
    if r.endpoints.is_empty()
        && !r.dns.srv.is_empty()
        && r.dns.srv.iter().all(|l| l.outcome == DnsOutcome::Timeout)
    {
        return Disposition::Retry("every SRV question timed out".into());
    }
    if !r.endpoints.is_empty()
        && r.endpoints.iter().all(|e| {
            matches!(
                e.connect,
                ConnectOutcome::Timeout | ConnectOutcome::Unreachable
            )
        })
    {
        return Disposition::Retry("every endpoint's connect timed out or was unreachable".into());
    }
    Disposition::Record
}

/// The first local resource exhaustion in a report, as the retry reason
/// (`local resource exhausted: EMFILE (…) on …`).
pub fn local_exhaustion(r: &DomainReport) -> Option<String> {
    let dns = r
        .dns
        .srv
        .iter()
        .filter(|l| l.outcome == DnsOutcome::LocalResourceExhausted)
        .map(|l| {
            let d = l.detail.as_deref().unwrap_or("local resource exhausted");
            format!("{d} on DNS {} {}", l.service.label(), r.domain)
        });
    let hosts = r.dns.hosts.iter().filter_map(|h| {
        let a = h.a == DnsOutcome::LocalResourceExhausted;
        let aaaa = h.aaaa == DnsOutcome::LocalResourceExhausted;
        (a || aaaa).then(|| format!("local resource exhausted on DNS A/AAAA {}", h.name))
    });
    let tlsa = r
        .dns
        .tlsa
        .iter()
        .filter(|t| t.outcome == DnsOutcome::LocalResourceExhausted)
        .map(|t| format!("local resource exhausted on DNS TLSA {}", t.name));
    let acceptance = r.acceptance.iter().flat_map(|a| {
        a.attempts
            .iter()
            .map(|x| &x.connection)
            .chain(a.dialback.iter().map(|d| &d.connection))
    });
    let endpoints = r
        .endpoints
        .iter()
        .chain(acceptance)
        .filter(|e| e.connect == ConnectOutcome::LocalResourceExhausted)
        .map(|e| {
            let d = e.detail.as_deref().unwrap_or("local resource exhausted");
            format!("{d} on connect to {}", e.key.addr())
        });
    dns.chain(hosts).chain(tlsa).chain(endpoints).next()
}

/// Exponential backoff: `base`, `2·base`, `4·base` … capped at `max`.
pub fn backoff(base: Duration, attempt: u32, max: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{DnsReport, Dnssec, HostLookup};
    use crate::model::report::{
        EndpointKey, EndpointOutcome, EndpointReport, EndpointSource, Transport,
    };
    use crate::probe::endpoint::connect_error;
    use crate::xmpp::Service;

    fn report(endpoints: Vec<EndpointReport>, hosts: Vec<HostLookup>) -> DomainReport {
        let dns = DnsReport {
            srv: Vec::new(),
            hosts,
            tlsa: Vec::new(),
            dnssec: Dnssec::Unknown,
        };
        let summary = crate::verdict::summarize(&dns, &endpoints);
        DomainReport {
            schema_version: crate::model::report::SCHEMA_VERSION,
            domain: "d.test".into(),
            started_at: time::OffsetDateTime::UNIX_EPOCH,
            duration_ms: 1,
            dns,
            endpoints,
            summary,
            acceptance: None,
        }
    }

    fn endpoint(connect: ConnectOutcome, detail: Option<String>) -> EndpointReport {
        EndpointReport {
            key: EndpointKey {
                service: Service::S2s,
                transport: Transport::Starttls,
                host: "d.test".into(),
                ip: "127.0.0.1".parse().unwrap(),
                port: 5269,
            },
            source: EndpointSource::Fallback,
            connect,
            connect_ms: Some(0),
            outcome: EndpointOutcome::ConnectFailed,
            phase: None,
            detail,
            header: None,
            pre_tls: None,
            tls: None,
            header_after_tls: None,
            post_tls: None,
            stream_error: None,
            starttls_injected_bytes: None,
        }
    }

    #[test]
    fn emfile_on_connect_is_ours_and_retried_with_the_reason() {
        let (c, detail) = connect_error(&std::io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(c, ConnectOutcome::LocalResourceExhausted);
        assert!(
            detail.starts_with("local resource exhausted: EMFILE ("),
            "{detail}"
        );
        for errno in [
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EADDRNOTAVAIL,
        ] {
            let (c, _) = connect_error(&std::io::Error::from_raw_os_error(errno));
            assert_eq!(c, ConnectOutcome::LocalResourceExhausted, "errno {errno}");
        }
        // The target's own answers stay the target's.
        let (c, _) = connect_error(&std::io::Error::from_raw_os_error(libc::ECONNREFUSED));
        assert_eq!(c, ConnectOutcome::Refused);
        let (c, _) = connect_error(&std::io::Error::from_raw_os_error(libc::EHOSTUNREACH));
        assert_eq!(c, ConnectOutcome::Unreachable);

        // One exhausted endpoint beside a refused one: retried, not recorded.
        let r = report(
            vec![
                endpoint(ConnectOutcome::Refused, None),
                endpoint(c_exhausted(), Some(detail.clone())),
            ],
            Vec::new(),
        );
        match classify(&r) {
            Disposition::Retry(why) => {
                assert!(why.starts_with("local resource exhausted: EMFILE"), "{why}");
                assert!(why.contains("127.0.0.1:5269"), "{why}");
            }
            Disposition::Record => panic!("an EMFILE report must not be recorded"),
        }
        // Refused alone is data.
        let r = report(vec![endpoint(ConnectOutcome::Refused, None)], Vec::new());
        assert_eq!(classify(&r), Disposition::Record);
    }

    fn c_exhausted() -> ConnectOutcome {
        ConnectOutcome::LocalResourceExhausted
    }

    #[test]
    fn dns_exhaustion_is_retried_not_recorded_as_no_address() {
        let r = report(
            Vec::new(),
            vec![HostLookup {
                name: "d.test".into(),
                a: DnsOutcome::LocalResourceExhausted,
                aaaa: DnsOutcome::NoData,
                addrs: Vec::new(),
                cnames: Vec::new(),
            }],
        );
        match classify(&r) {
            Disposition::Retry(why) => assert!(why.contains("A/AAAA d.test"), "{why}"),
            Disposition::Record => panic!("must retry"),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(2), 1, s(60)), s(2));
        assert_eq!(backoff(s(2), 2, s(60)), s(4));
        assert_eq!(backoff(s(2), 3, s(60)), s(8));
        assert_eq!(backoff(s(2), 10, s(60)), s(60));
        assert_eq!(backoff(s(2), 40, s(60)), s(60));
    }
}
