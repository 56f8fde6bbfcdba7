//! Federation impact (MEASUREMENTS §4): for every ordered pair of
//! reachable domains (initiator → receiver), would s2s authenticate by
//! certificate, only by dialback, or not at all? Computed from class
//! counts: the pairs between an initiator class and a receiver class are
//! the product of the class sizes, less the domains in both (a domain
//! never federates with itself). The cost is the number of classes
//! squared, whatever the number of domains (pure).

use serde::Serialize;
use std::collections::BTreeMap;

/// What a domain presents when it opens s2s: its outbound s2s chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// A publicly trusted chain that passes a strict TLS-client purpose
    /// check (clientAuth on the leaf and every intermediate).
    ClientAuth,
    /// A publicly trusted chain that fails it (server-only leaf or
    /// intermediate): what every Let's Encrypt renewal gives from 2026.
    ServerOnly,
    /// No publicly trusted chain (self-signed, expired, no TLS...):
    /// certificate authentication never works.
    Untrusted,
}

impl Initiator {
    /// Every class, in display order.
    pub const ALL: [Self; 3] = [Self::ClientAuth, Self::ServerOnly, Self::Untrusted];

    /// The class of a domain from its stored s2s columns: the chain
    /// verdict and the client purpose (`results.s2s_client_purpose`).
    pub fn classify(chain_verdict: Option<&str>, client_purpose: Option<&str>) -> Self {
        match (chain_verdict, client_purpose) {
            (Some("trusted"), Some("ok")) => Self::ClientAuth,
            (Some("trusted"), _) => Self::ServerOnly,
            _ => Self::Untrusted,
        }
    }

    /// The class once every certificate has renewed as server-only.
    pub fn renewed(self) -> Self {
        match self {
            Self::ClientAuth => Self::ServerOnly,
            other => other,
        }
    }

    /// Short human name.
    pub fn title(self) -> &'static str {
        match self {
            Self::ClientAuth => "trusted, clientAuth chain",
            Self::ServerOnly => "trusted, server-only chain",
            Self::Untrusted => "no trusted chain",
        }
    }
}

/// How a receiving domain treats an incoming certificate, from its
/// acceptance verdict (MEASUREMENTS §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertPolicy {
    /// `accepts_server_only`: any trusted chain authenticates.
    Lenient,
    /// `rejects_server_only_*`: only a clientAuth chain authenticates.
    Strict,
    /// `no_cert_auth`: never authenticates by certificate.
    NoCertAuth,
    /// No verdict (inconclusive, not run, TLS failed, unreachable).
    Unknown,
}

/// A receiving domain's class: its certificate policy and whether
/// dialback is available on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Receiver {
    /// Certificate policy.
    pub policy: CertPolicy,
    /// Dialback is available (offered, or it succeeded).
    pub dialback: bool,
}

impl Receiver {
    /// Every class, in display order.
    pub const ALL: [Self; 8] = [
        Self::new(CertPolicy::Lenient, true),
        Self::new(CertPolicy::Lenient, false),
        Self::new(CertPolicy::Strict, true),
        Self::new(CertPolicy::Strict, false),
        Self::new(CertPolicy::NoCertAuth, true),
        Self::new(CertPolicy::NoCertAuth, false),
        Self::new(CertPolicy::Unknown, true),
        Self::new(CertPolicy::Unknown, false),
    ];

    /// A class.
    pub const fn new(policy: CertPolicy, dialback: bool) -> Self {
        Self { policy, dialback }
    }

    /// The class of a domain from its acceptance verdict and dialback
    /// evidence. The verdicts `rejects_server_only_dialback` and
    /// `rejects_server_only_no_fallback` decide dialback themselves.
    pub fn classify(acceptance: &str, dialback_offered: bool) -> Self {
        match acceptance {
            "accepts_server_only" => Self::new(CertPolicy::Lenient, dialback_offered),
            "rejects_server_only_dialback" => Self::new(CertPolicy::Strict, true),
            "rejects_server_only_no_fallback" => Self::new(CertPolicy::Strict, false),
            "no_cert_auth" => Self::new(CertPolicy::NoCertAuth, dialback_offered),
            _ => Self::new(CertPolicy::Unknown, dialback_offered),
        }
    }

    /// Short human name.
    pub fn title(self) -> String {
        let p = match self.policy {
            CertPolicy::Lenient => "accepts server-only",
            CertPolicy::Strict => "strict (clientAuth)",
            CertPolicy::NoCertAuth => "no cert auth",
            CertPolicy::Unknown => "verdict unknown",
        };
        format!(
            "{p}, {}",
            if self.dialback {
                "dialback"
            } else {
                "no dialback"
            }
        )
    }
}

/// How one ordered pair would authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// By certificate (SASL EXTERNAL / TLS).
    Certificate,
    /// Only by dialback (XEP-0220).
    DialbackOnly,
    /// Not at all: federation fails.
    Fails,
    /// The receiver's verdict is unknown.
    Unknown,
}

impl Outcome {
    /// Every outcome, in display order.
    pub const ALL: [Self; 4] = [
        Self::Certificate,
        Self::DialbackOnly,
        Self::Fails,
        Self::Unknown,
    ];
}

/// The outcome of a pair from its classes (see [`ASSUMPTIONS`]).
pub fn outcome(i: Initiator, r: Receiver) -> Outcome {
    let by_cert = match (i, r.policy) {
        (_, CertPolicy::Unknown) => return Outcome::Unknown,
        (Initiator::ClientAuth | Initiator::ServerOnly, CertPolicy::Lenient) => true,
        (Initiator::ClientAuth, CertPolicy::Strict) => true,
        _ => false,
    };
    if by_cert {
        Outcome::Certificate
    } else if r.dialback {
        Outcome::DialbackOnly
    } else {
        Outcome::Fails
    }
}

/// The assumptions behind [`outcome`], stated in the report.
pub const ASSUMPTIONS: [&str; 6] = [
    "Pairs are ordered (initiator → receiver) between distinct domains whose s2s service answered; a domain never pairs with itself.",
    "The initiator presents the chain the passive probe saw on its own s2s endpoint when it opens s2s (the same certificate for both directions).",
    "A receiver that accepted the probe's server-only certificate accepts any publicly trusted chain; a strict receiver accepts only a chain that passes the TLS-client purpose check.",
    "When certificate authentication fails, s2s falls back to dialback if the receiver offers it, and every initiator can serve as its own authoritative server.",
    "Receivers without a verdict (inconclusive, not run, TLS failed) are counted apart as unknown, never as failures.",
    "\"Once renewed\": every trusted clientAuth chain becomes server-only; receivers keep their behaviour (no upgrades).",
];

/// Domains by (initiator class, receiver class): the joint histogram the
/// pair counts are computed from.
pub type Joint = BTreeMap<(Initiator, Receiver), u64>;

/// Pair counts by outcome, and by class pair for the matrix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    /// Domains in the population.
    pub domains: u64,
    /// Ordered pairs: domains × (domains − 1).
    pub pairs: u64,
    /// Pairs by outcome.
    pub by_outcome: BTreeMap<Outcome, u64>,
    /// Pairs by (initiator class, receiver class) with their outcome;
    /// only class pairs with at least one pair.
    pub cells: Vec<Cell>,
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Initiator class.
    pub initiator: Initiator,
    /// Receiver class.
    pub receiver: Receiver,
    /// How its pairs authenticate.
    pub outcome: Outcome,
    /// Ordered pairs in it.
    pub pairs: u64,
}

/// The pair counts from the joint histogram; with `renewed`, as if every
/// certificate had renewed as server-only. Never loops over pairs: for
/// classes a and b, pairs = |init a| · |recv b| − |a and b|.
pub fn impact(joint: &Joint, renewed: bool) -> Impact {
    let mut joint_now: Joint = BTreeMap::new();
    for (&(i, r), &n) in joint {
        let i = if renewed { i.renewed() } else { i };
        *joint_now.entry((i, r)).or_default() += n;
    }
    let mut init: BTreeMap<Initiator, u64> = BTreeMap::new();
    let mut recv: BTreeMap<Receiver, u64> = BTreeMap::new();
    for (&(i, r), &n) in &joint_now {
        *init.entry(i).or_default() += n;
        *recv.entry(r).or_default() += n;
    }
    let domains: u64 = init.values().sum();
    let mut out = Impact {
        domains,
        pairs: domains * domains.saturating_sub(1),
        by_outcome: Outcome::ALL.iter().map(|&o| (o, 0)).collect(),
        cells: Vec::new(),
    };
    for (&i, &ni) in &init {
        for (&r, &nr) in &recv {
            let both = joint_now.get(&(i, r)).copied().unwrap_or(0);
            let pairs = ni * nr - both;
            if pairs == 0 {
                continue;
            }
            let o = outcome(i, r);
            *out.by_outcome.entry(o).or_default() += pairs;
            out.cells.push(Cell {
                initiator: i,
                receiver: r,
                outcome: o,
                pairs,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The definition itself: every ordered pair of distinct domains.
    fn brute(domains: &[(Initiator, Receiver)], renewed: bool) -> BTreeMap<Outcome, u64> {
        let mut out: BTreeMap<Outcome, u64> = Outcome::ALL.iter().map(|&o| (o, 0)).collect();
        for (a, &(i, _)) in domains.iter().enumerate() {
            for (b, &(_, r)) in domains.iter().enumerate() {
                if a != b {
                    let i = if renewed { i.renewed() } else { i };
                    *out.entry(outcome(i, r)).or_default() += 1;
                }
            }
        }
        out
    }

    #[test]
    fn class_arithmetic_equals_the_pair_loop() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..300 {
            let n = rng.random_range(0..40);
            let domains: Vec<(Initiator, Receiver)> = (0..n)
                .map(|_| {
                    (
                        Initiator::ALL[rng.random_range(0..Initiator::ALL.len())],
                        Receiver::ALL[rng.random_range(0..Receiver::ALL.len())],
                    )
                })
                .collect();
            let mut joint = Joint::new();
            for &d in &domains {
                *joint.entry(d).or_default() += 1;
            }
            for renewed in [false, true] {
                let fast = impact(&joint, renewed);
                assert_eq!(fast.by_outcome, brute(&domains, renewed), "round {round}");
                assert_eq!(fast.by_outcome.values().sum::<u64>(), fast.pairs);
                assert_eq!(fast.cells.iter().map(|c| c.pairs).sum::<u64>(), fast.pairs);
            }
        }
    }

    #[test]
    fn the_rules() {
        let strict_db = Receiver::classify("rejects_server_only_dialback", false);
        let strict = Receiver::classify("rejects_server_only_no_fallback", true);
        let lenient = Receiver::classify("accepts_server_only", false);
        assert_eq!(outcome(Initiator::ClientAuth, strict), Outcome::Certificate);
        assert_eq!(outcome(Initiator::ServerOnly, strict), Outcome::Fails);
        assert_eq!(
            outcome(Initiator::ServerOnly, strict_db),
            Outcome::DialbackOnly
        );
        assert_eq!(
            outcome(Initiator::ServerOnly, lenient),
            Outcome::Certificate
        );
        assert_eq!(outcome(Initiator::Untrusted, lenient), Outcome::Fails);
        assert_eq!(
            outcome(
                Initiator::ClientAuth,
                Receiver::classify("inconclusive", true)
            ),
            Outcome::Unknown
        );
        assert_eq!(
            Initiator::classify(Some("trusted"), Some("intermediate_lacks_client_auth")),
            Initiator::ServerOnly
        );
        assert_eq!(
            Initiator::classify(Some("expired"), Some("ok")),
            Initiator::Untrusted
        );
    }

    #[test]
    fn a_million_domains_cost_nothing() {
        let mut joint = Joint::new();
        joint.insert((Initiator::ClientAuth, Receiver::ALL[2]), 600_000);
        joint.insert((Initiator::ServerOnly, Receiver::ALL[3]), 400_000);
        let i = impact(&joint, false);
        assert_eq!(i.pairs, 1_000_000 * 999_999);
        assert_eq!(i.by_outcome[&Outcome::Fails], 400_000 * 399_999);
    }
}
