//! Per-crawl memo of what many domains share on the real network (issue
//! 13): a few hosting providers' SRV records point thousands of domains at
//! one host, which presents the same chain to every one of them, and a
//! handful of intermediates sign most certificates. Analysing a
//! certificate ([`cert::analyze`]: DER parse, names, EKU, SANs) and
//! validating a chain's path (webpki: a signature check per link) give the
//! same answer every time for the same bytes, so both are kept, keyed by
//! SHA-256 of the DER (of each DER, for a chain).
//!
//! What is **not** memoised: anything that depends on the domain (name
//! matching, the verdict's name part), on the connection (the handshake
//! signature, checked by rustls on every connection), or on the clock
//! beyond the certificates' own validity: a memoised path holds only while
//! `now` lies inside every presented certificate's validity window, and is
//! validated again otherwise. Only successful paths are kept (a failed one
//! is rare per chain and its reason can depend on the time).
//!
//! Memory is bounded: each map holds at most [`MAX_ENTRIES`] and is emptied
//! when full (a crawl's working set of shared chains is far smaller).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::{CertInfo, cert};

/// Entries per map before it is emptied: a certificate analysis is about a
/// kilobyte, so the memo stays under a few MiB.
pub const MAX_ENTRIES: usize = 4096;

/// SHA-256 of one DER certificate, or of a chain's certificates' digests.
pub type Digest32 = [u8; 32];

/// The validity window (Unix seconds, inclusive) within which a memoised
/// successful path still holds: the latest notBefore and the earliest
/// notAfter of the presented certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Latest notBefore.
    pub from: i64,
    /// Earliest notAfter.
    pub until: i64,
}

impl Window {
    /// The window of a chain's analyses; `None` if one did not parse.
    pub fn of(chain: &[Option<Arc<CertInfo>>]) -> Option<Self> {
        let mut w = Self {
            from: i64::MIN,
            until: i64::MAX,
        };
        for c in chain {
            let c = c.as_ref()?;
            w.from = w.from.max(c.not_before.unix_timestamp());
            w.until = w.until.min(c.not_after.unix_timestamp());
        }
        Some(w)
    }

    /// Whether `now` (Unix seconds) lies inside.
    pub fn holds_at(&self, now: i64) -> bool {
        self.from <= now && now <= self.until
    }
}

/// Hits and misses, for the benchmark's "what the caches save".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoStats {
    /// Analyses served from the memo.
    pub analysis_hits: u64,
    /// Analyses computed.
    pub analysis_misses: u64,
    /// Path validations served from the memo.
    pub path_hits: u64,
    /// Path validations computed.
    pub path_misses: u64,
}

/// The memo (shared by every connection of a crawl; cheap to lock: each
/// lookup is one hash-map access).
#[derive(Debug, Default)]
pub struct CertMemo {
    analyses: Mutex<HashMap<Digest32, Arc<CertInfo>>>,
    paths: Mutex<HashMap<Digest32, Window>>,
    analysis_hits: AtomicU64,
    analysis_misses: AtomicU64,
    path_hits: AtomicU64,
    path_misses: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it half-updated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inserts, emptying the map first when it is full (the bound).
fn bounded_insert<V>(map: &mut HashMap<Digest32, V>, key: Digest32, value: V) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

impl CertMemo {
    /// SHA-256 of a DER certificate (the memo's key).
    pub fn digest(der: &[u8]) -> Digest32 {
        Sha256::digest(der).into()
    }

    /// The key of a chain: SHA-256 over its certificates' digests, in order.
    pub fn chain_key(digests: &[Digest32]) -> Digest32 {
        let mut h = Sha256::new();
        for d in digests {
            h.update(d);
        }
        h.finalize().into()
    }

    /// [`cert::analyze`] of `der` (whose digest is `digest`), computed once
    /// per distinct certificate; `None` when it does not parse (not kept:
    /// rare, and the caller drops it as before).
    pub fn analyze(&self, digest: &Digest32, der: &[u8]) -> Option<Arc<CertInfo>> {
        if let Some(hit) = lock(&self.analyses).get(digest) {
            self.analysis_hits.fetch_add(1, Ordering::Relaxed);
            return Some(hit.clone());
        }
        self.analysis_misses.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(cert::analyze(der).ok()?);
        bounded_insert(&mut lock(&self.analyses), *digest, info.clone());
        Some(info)
    }

    /// Whether the chain `key` was validated before and that success still
    /// holds at `now` (Unix seconds). Counts a hit or a miss.
    pub fn path_ok(&self, key: &Digest32, now: i64) -> bool {
        let hit = lock(&self.paths).get(key).is_some_and(|w| w.holds_at(now));
        let counter = if hit {
            &self.path_hits
        } else {
            &self.path_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Remembers that the chain `key` validated, for as long as `window`.
    pub fn remember_path(&self, key: Digest32, window: Window) {
        bounded_insert(&mut lock(&self.paths), key, window);
    }

    /// The counters so far.
    pub fn stats(&self) -> MemoStats {
        MemoStats {
            analysis_hits: self.analysis_hits.load(Ordering::Relaxed),
            analysis_misses: self.analysis_misses.load(Ordering::Relaxed),
            path_hits: self.path_hits.load(Ordering::Relaxed),
            path_misses: self.path_misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_holds_inclusive_and_not_outside() {
        let w = Window {
            from: 10,
            until: 20,
        };
        assert!(w.holds_at(10) && w.holds_at(15) && w.holds_at(20));
        assert!(!w.holds_at(9) && !w.holds_at(21));
    }

    #[test]
    fn path_memo_respects_the_window_and_counts() {
        let m = CertMemo::default();
        let key = CertMemo::chain_key(&[[1; 32], [2; 32]]);
        assert!(!m.path_ok(&key, 15), "nothing remembered yet");
        m.remember_path(
            key,
            Window {
                from: 10,
                until: 20,
            },
        );
        assert!(m.path_ok(&key, 15));
        assert!(!m.path_ok(&key, 21), "expired since: validate again");
        assert!(
            !m.path_ok(&CertMemo::chain_key(&[[2; 32], [1; 32]]), 15),
            "order matters"
        );
        let s = m.stats();
        assert_eq!((s.path_hits, s.path_misses), (1, 3));
    }

    #[test]
    fn bounded_insert_never_exceeds_the_cap() {
        let mut map = HashMap::new();
        for i in 0..(MAX_ENTRIES + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            bounded_insert(&mut map, k, i);
            assert!(map.len() <= MAX_ENTRIES);
        }
    }

    #[test]
    fn garbage_is_not_analysed_nor_kept() {
        let m = CertMemo::default();
        let d = CertMemo::digest(b"not a certificate");
        assert!(m.analyze(&d, b"not a certificate").is_none());
        assert!(m.analyze(&d, b"not a certificate").is_none());
        assert_eq!(m.stats().analysis_misses, 2);
    }
}
