//! `testnet check`: a manifest's expectations against probe results, fact
//! by fact (the same comparison as the truth tests).

use crate::facts::{Mismatch, compare, facts};
use crate::model::report::DomainReport;

/// One manifest domain whose measured facts differ from its expectations.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainMismatches {
    /// The domain.
    pub domain: String,
    /// Its testnet profile.
    pub profile: String,
    /// Every differing fact.
    pub mismatches: Vec<Mismatch>,
}

/// What [`check_manifest`] found (`testnet check`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestCheck {
    /// Manifest domains that had a report.
    pub domains: usize,
    /// Manifest domains without a report (not probed).
    pub missing: usize,
    /// Expectations compared over all checked domains.
    pub facts_compared: usize,
    /// The domains with mismatches, in manifest order.
    pub differing: Vec<DomainMismatches>,
}

/// Compares each manifest domain's expectations with the facts of its
/// report, fact by fact (see [`compare`]).
pub fn check_manifest(
    manifest: &super::Manifest,
    reports: &std::collections::HashMap<String, DomainReport>,
) -> ManifestCheck {
    let mut out = ManifestCheck::default();
    for d in &manifest.domains {
        let Some(r) = reports.get(&d.domain) else {
            out.missing += 1;
            continue;
        };
        out.domains += 1;
        out.facts_compared += d.expect.len();
        let mismatches = compare(&d.expect, &facts(r));
        if !mismatches.is_empty() {
            out.differing.push(DomainMismatches {
                domain: d.domain.clone(),
                profile: d.profile.clone(),
                mismatches,
            });
        }
    }
    out
}
