//! Shares with their uncertainty: every figure of a report is a count, its
//! denominator, the percentage and a 95% Wilson score interval (pure).

use serde::Serialize;

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of `k` successes in `n` trials, as
/// proportions in [0, 1]; `None` when `n` is 0 (no share to estimate).
/// Unlike the normal approximation it stays inside [0, 1] and is useful
/// for the small and extreme counts a crawl has (0 of 40, 40 of 40).
pub fn wilson(k: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let k = k.min(n) as f64;
    let n = n as f64;
    let p = k / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Rounds a percentage to two decimals, so the JSON is stable and short.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One figure: `count` of `denominator`, in percent, with the 95% Wilson
/// interval in percent. Percentages are `None` when the denominator is 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figure {
    /// Domains (or pairs, certificates) with the property.
    pub count: u64,
    /// The population the share is taken of.
    pub denominator: u64,
    /// 100 · count / denominator, two decimals.
    pub percent: Option<f64>,
    /// Lower bound of the 95% Wilson interval, percent.
    pub ci95_low: Option<f64>,
    /// Upper bound of the 95% Wilson interval, percent.
    pub ci95_high: Option<f64>,
}

impl Figure {
    /// The figure of `count` out of `denominator`.
    pub fn new(count: u64, denominator: u64) -> Self {
        let interval = wilson(count, denominator, Z95);
        Self {
            count,
            denominator,
            percent: (denominator > 0).then(|| round2(100.0 * count as f64 / denominator as f64)),
            ci95_low: interval.map(|(lo, _)| round2(100.0 * lo)),
            ci95_high: interval.map(|(_, hi)| round2(100.0 * hi)),
        }
    }

    /// "12.5 %" or "–" without a denominator.
    pub fn percent_text(&self) -> String {
        self.percent
            .map_or_else(|| "–".into(), |p| format!("{p:.1} %"))
    }

    /// "[8.1, 18.7]" or "–".
    pub fn interval_text(&self) -> String {
        match (self.ci95_low, self.ci95_high) {
            (Some(lo), Some(hi)) => format!("{lo:.1}–{hi:.1} %"),
            _ => "–".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263 -> 0.2553-0.3662.
        let (lo, hi) = wilson(81, 263, Z95).expect("n > 0");
        assert!(close(lo, 0.2553) && close(hi, 0.3662), "{lo} {hi}");
        // 15/148 -> 0.0624-0.1605.
        let (lo, hi) = wilson(15, 148, Z95).expect("n > 0");
        assert!(close(lo, 0.0624) && close(hi, 0.1605), "{lo} {hi}");
        // 0/20 -> 0-0.1611; 20/20 -> 0.8389-1.
        let (lo, hi) = wilson(0, 20, Z95).expect("n > 0");
        assert!(close(lo, 0.0) && close(hi, 0.1611), "{lo} {hi}");
        let (lo, hi) = wilson(20, 20, Z95).expect("n > 0");
        assert!(close(lo, 0.8389) && close(hi, 1.0), "{lo} {hi}");
    }

    #[test]
    fn wilson_is_empty_without_trials_and_contains_the_share() {
        assert_eq!(wilson(0, 0, Z95), None);
        for n in 1..60u64 {
            for k in 0..=n {
                let (lo, hi) = wilson(k, n, Z95).expect("n > 0");
                let p = k as f64 / n as f64;
                assert!(lo <= p + 1e-12 && p <= hi + 1e-12, "{k}/{n}: {lo} {hi}");
                assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
                // Symmetric: k of n mirrors n-k of n.
                let (lo2, hi2) = wilson(n - k, n, Z95).expect("n > 0");
                assert!(close(lo, 1.0 - hi2) && close(hi, 1.0 - lo2));
            }
        }
    }

    #[test]
    fn figure_in_percent() {
        let f = Figure::new(1, 4);
        assert_eq!(f.percent, Some(25.0));
        assert_eq!(f.percent_text(), "25.0 %");
        assert!(f.ci95_low.unwrap_or(0.0) > 0.0 && f.ci95_high.unwrap_or(0.0) < 100.0);
        let none = Figure::new(0, 0);
        assert_eq!(none.percent, None);
        assert_eq!(none.percent_text(), "–");
    }
}
