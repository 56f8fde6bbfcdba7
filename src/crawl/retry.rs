//! Which probe outcomes are worth retrying (pure).
//!
//! A measured failure is data and is recorded as such: NXDOMAIN, refused
//! connections, bad certificates, stream errors. Only failures that say
//! "the network did not answer in time" are retried with backoff; when the
//! retries are exhausted the domain ends `not_tested`, which reports never
//! count as a failure of the domain.

use crate::dns::DnsOutcome;
use crate::probe::report::{ConnectOutcome, DomainReport};
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

/// Exponential backoff: `base`, `2·base`, `4·base` … capped at `max`.
pub fn backoff(base: Duration, attempt: u32, max: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

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
