//! Per-run cache of DNS answers for the names many domains share: SRV
//! targets (`xmpp.hosting-provider.example`) and their TLSA owners. On the
//! real network thousands of XMPP domains delegate to a handful of hosting
//! providers, so a crawl would otherwise ask the same A, AAAA and TLSA
//! questions once per domain.
//!
//! What is kept, and for how long (the survey measures what DNS says now,
//! so the cache may only save questions whose answer cannot differ):
//! - positive answers until their `valid_until` (the smallest TTL of the
//!   records, RFC 1035 §3.2.1, RFC 2181 §5.2);
//! - NXDOMAIN and NODATA for the negative TTL of the SOA that came with
//!   them (RFC 2308 §5: min of the SOA's TTL and MINIMUM); without an SOA
//!   they are not kept;
//! - never SERVFAIL, REFUSED, timeouts or transport errors: those are
//!   faults of a moment, and a cached one would be a false measurement of
//!   every later domain.
//!
//! Concurrent askers of one question share the one question in flight
//! (they asked at the same instant, so they get the same answer, failure
//! included); the next asker after a failure asks again.
//!
//! The map is pure bookkeeping on [`Instant`]s, tested without sockets;
//! [`super::resolve::Resolver`] wires it to the network.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Shared};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::proto::rr::RecordType;

use super::DnsOutcome;

/// Entries kept at most, in two generations of half as many each: new
/// entries go to the current one; when it is full it becomes the previous
/// one and the old previous one is dropped; a hit in the previous
/// generation moves the entry back to the current one. So the names many
/// domains share stay while the single-use targets of dedicated hosts age
/// out, and the memory is the same for a crawl of 10,000 domains as of
/// 1,000,000 (issue 13 step 10: the emptied-when-full map of 16,384
/// entries held twice as many at 100,000 domains as at 10,000).
pub const CAPACITY: usize = 4_096;

/// One classified answer: the records, or the measured outcome with its
/// detail. What [`super::resolve::Resolver`] works with.
pub type Answer = Result<Lookup, (DnsOutcome, Option<String>)>;

/// A finished question: its answer and until when it may be reused
/// ([`keep_until`]; `None`: not at all).
pub type Settled = (Answer, Option<Instant>);

/// A question in flight, awaited by everyone who asks it meanwhile.
pub type InFlight = Shared<BoxFuture<'static, Settled>>;

/// How long a finished answer may be reused from `now`, or `None` when it
/// must not be kept (see the module documentation).
pub fn keep_until(answer: &Answer, negative_ttl: Option<u32>, now: Instant) -> Option<Instant> {
    let until = match answer {
        Ok(lookup) if !lookup.answers().is_empty() => lookup.valid_until(),
        Ok(_) => return None,
        Err((DnsOutcome::NxDomain | DnsOutcome::NoData, _)) => {
            now + Duration::from_secs(u64::from(negative_ttl?))
        }
        Err(_) => return None,
    };
    (until > now).then_some(until)
}

/// The question as the cache knows it: owner (lower case, no trailing dot)
/// and type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    owner: String,
    rtype: RecordType,
}

impl Question {
    /// `owner` is normalised: DNS names compare case-insensitively
    /// (RFC 4343) and the trailing dot is implied.
    pub fn new(owner: &str, rtype: RecordType) -> Self {
        Self {
            owner: owner.trim_end_matches('.').to_ascii_lowercase(),
            rtype,
        }
    }
}

enum Entry {
    Pending(InFlight),
    Ready { answer: Answer, until: Instant },
}

/// What a lookup in the cache found.
pub enum Found {
    /// A kept answer, still valid.
    Ready(Answer),
    /// The same question is in flight: await it.
    Pending(InFlight),
    /// Nothing: ask, and [`AnswerCache::start`] the question.
    Absent,
}

/// Hits and misses of one run, for the crawl's closing line and the
/// benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Questions answered from a kept answer.
    pub hits: u64,
    /// Questions that joined one already in flight.
    pub joined: u64,
    /// Questions sent to the server.
    pub asked: u64,
}

/// The two generations of entries (see [`CAPACITY`]).
#[derive(Default)]
struct Generations {
    current: HashMap<Question, Entry>,
    previous: HashMap<Question, Entry>,
}

impl Generations {
    /// Inserts into the current generation, turning it into the previous
    /// one first when it is full.
    fn insert(&mut self, q: Question, entry: Entry) {
        if self.current.len() >= CAPACITY / 2 && !self.current.contains_key(&q) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.previous.remove(&q);
        self.current.insert(q, entry);
    }

    /// Entries held in both generations.
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// The cache. Shared by every task of one run (behind the resolver's `Arc`).
#[derive(Default)]
pub struct AnswerCache {
    entries: Mutex<Generations>,
    hits: AtomicU64,
    joined: AtomicU64,
    asked: AtomicU64,
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AnswerCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock leaves only bookkeeping behind.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `q` up at `now`; an expired answer is dropped and reported as
    /// absent.
    pub fn find(&self, q: &Question, now: Instant) -> Found {
        let mut entries = self.entries();
        let in_current = entries.current.contains_key(q);
        let generation = if in_current {
            &mut entries.current
        } else {
            &mut entries.previous
        };
        match generation.get(q) {
            Some(Entry::Ready { answer, until }) if *until > now => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                let answer = answer.clone();
                if !in_current {
                    // Still in use: back into the current generation.
                    if let Some(entry) = entries.previous.remove(q) {
                        entries.insert(q.clone(), entry);
                    }
                }
                Found::Ready(answer)
            }
            Some(Entry::Ready { .. }) => {
                generation.remove(q);
                Found::Absent
            }
            Some(Entry::Pending(flight)) => {
                self.joined.fetch_add(1, Ordering::Relaxed);
                Found::Pending(flight.clone())
            }
            None => Found::Absent,
        }
    }

    /// Entries held (both generations): at most [`CAPACITY`].
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records that `q` is being asked by `flight`, so concurrent askers
    /// join it. Returns the flight to await: `flight` itself, or the one
    /// another task started in between.
    pub fn start(&self, q: Question, flight: InFlight) -> InFlight {
        let mut entries = self.entries();
        let pending = [&entries.current, &entries.previous]
            .into_iter()
            .find_map(|g| match g.get(&q) {
                Some(Entry::Pending(other)) => Some(other.clone()),
                _ => None,
            });
        if let Some(other) = pending {
            self.joined.fetch_add(1, Ordering::Relaxed);
            return other;
        }
        self.asked.fetch_add(1, Ordering::Relaxed);
        entries.insert(q, Entry::Pending(flight.clone()));
        flight
    }

    /// Settles `q` with its finished answer: kept until `until` when
    /// [`keep_until`] allowed it, otherwise forgotten so the next asker
    /// asks again.
    pub fn settle(&self, q: Question, answer: &Answer, until: Option<Instant>) {
        let mut entries = self.entries();
        match until {
            Some(until) => {
                entries.insert(
                    q,
                    Entry::Ready {
                        answer: answer.clone(),
                        until,
                    },
                );
            }
            None => {
                let entries = &mut *entries;
                for generation in [&mut entries.current, &mut entries.previous] {
                    if matches!(generation.get(&q), Some(Entry::Pending(_))) {
                        generation.remove(&q);
                    }
                }
            }
        }
    }

    /// Hits, joins and questions asked so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            joined: self.joined.load(Ordering::Relaxed),
            asked: self.asked.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use hickory_resolver::proto::op::Query;
    use hickory_resolver::proto::rr::rdata::A;
    use hickory_resolver::proto::rr::{Name, RData, Record};
    use std::net::Ipv4Addr;

    fn positive(ttl: Duration, now: Instant) -> Answer {
        let name = Name::from_ascii("xmpp.hosting.example.").unwrap();
        let record = Record::from_rdata(name.clone(), 60, RData::A(A(Ipv4Addr::LOCALHOST)));
        Ok(Lookup::new_with_deadline(
            Query::query(name, RecordType::A),
            [record],
            now + ttl,
        ))
    }

    fn ready(answer: Answer) -> InFlight {
        async move { (answer, None) }.boxed().shared()
    }

    #[test]
    fn positive_answers_are_kept_until_their_ttl_and_not_after() {
        let now = Instant::now();
        let answer = positive(Duration::from_secs(60), now);
        assert_eq!(
            keep_until(&answer, None, now),
            Some(now + Duration::from_secs(60))
        );
        let cache = AnswerCache::new();
        let q = Question::new("XMPP.Hosting.example.", RecordType::A);
        drop(cache.start(q.clone(), ready(answer.clone())));
        cache.settle(q.clone(), &answer, keep_until(&answer, None, now));
        let same = Question::new("xmpp.hosting.example", RecordType::A);
        assert!(matches!(
            cache.find(&same, now + Duration::from_secs(59)),
            Found::Ready(Ok(_))
        ));
        assert!(matches!(
            cache.find(&same, now + Duration::from_secs(60)),
            Found::Absent
        ));
        // Expired entries are dropped, not kept forever.
        assert!(matches!(cache.find(&same, now), Found::Absent));
        assert!(matches!(
            cache.find(
                &Question::new("xmpp.hosting.example", RecordType::AAAA),
                now
            ),
            Found::Absent
        ));
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 1,
                joined: 0,
                asked: 1
            }
        );
    }

    #[test]
    fn failures_are_never_kept_and_negative_answers_only_with_an_soa_ttl() {
        let now = Instant::now();
        for outcome in [
            DnsOutcome::ServFail,
            DnsOutcome::Refused,
            DnsOutcome::Timeout,
            DnsOutcome::Error,
            DnsOutcome::LocalResourceExhausted,
        ] {
            assert_eq!(
                keep_until(&Err((outcome, None)), Some(300), now),
                None,
                "{outcome:?}"
            );
        }
        assert_eq!(
            keep_until(&Err((DnsOutcome::NoData, None)), None, now),
            None
        );
        assert_eq!(
            keep_until(&Err((DnsOutcome::NxDomain, None)), Some(30), now),
            Some(now + Duration::from_secs(30))
        );
        assert_eq!(
            keep_until(&Err((DnsOutcome::NoData, None)), Some(0), now),
            None
        );
        // An already expired positive answer is not kept either.
        let stale = positive(Duration::ZERO, now);
        assert_eq!(keep_until(&stale, None, now), None);
    }

    #[test]
    fn a_failed_question_is_forgotten_so_the_next_asker_asks_again() {
        let cache = AnswerCache::new();
        let q = Question::new("xmpp.hosting.example", RecordType::A);
        let failed: Answer = Err((DnsOutcome::ServFail, None));
        drop(cache.start(q.clone(), ready(failed.clone())));
        assert!(matches!(cache.find(&q, Instant::now()), Found::Pending(_)));
        cache.settle(q.clone(), &failed, None);
        assert!(matches!(cache.find(&q, Instant::now()), Found::Absent));
        assert_eq!(cache.stats().joined, 1);
    }

    #[tokio::test]
    async fn concurrent_askers_share_one_question_in_flight() {
        let cache = AnswerCache::new();
        let q = Question::new("xmpp.hosting.example", RecordType::A);
        let now = Instant::now();
        let first = cache.start(q.clone(), ready(positive(Duration::from_secs(5), now)));
        // A second task that raced past `find` gets the first one's flight.
        let second = cache.start(q.clone(), ready(Err((DnsOutcome::Timeout, None))));
        assert!(first.await.0.is_ok());
        assert!(
            second.await.0.is_ok(),
            "joined the first flight, not its own"
        );
        assert_eq!(cache.stats().asked, 1);
        assert_eq!(cache.stats().joined, 1);
    }

    #[test]
    fn names_in_use_stay_while_single_use_names_age_out_within_the_capacity() {
        let cache = AnswerCache::new();
        let now = Instant::now();
        let answer = positive(Duration::from_secs(600), now);
        let until = now + Duration::from_secs(600);
        let hot = Question::new("xmpp.hosting.example", RecordType::A);
        cache.settle(hot.clone(), &answer, Some(until));
        let first_cold = Question::new("xmpp.d0.example", RecordType::A);
        for i in 0..3 * CAPACITY {
            let cold = Question::new(&format!("xmpp.d{i}.example"), RecordType::A);
            cache.settle(cold, &answer, Some(until));
            assert!(cache.len() <= CAPACITY, "{} entries", cache.len());
            if i % 100 == 0 {
                assert!(
                    matches!(cache.find(&hot, now), Found::Ready(Ok(_))),
                    "the shared name was dropped after {i} others"
                );
            }
        }
        assert!(cache.len() >= CAPACITY / 2);
        assert!(matches!(cache.find(&first_cold, now), Found::Absent));
        assert_eq!(cache.stats().hits, (3 * CAPACITY as u64).div_ceil(100));
    }
}
