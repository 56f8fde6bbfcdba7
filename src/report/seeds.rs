//! The CA cut-over dates (`seeds/ca-cutover.toml`): when each CA stops
//! putting clientAuth in the certificates it issues. The dates live in the
//! data file only, each with its source.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::Date;

/// The repository's seeds file, built in for runs outside the checkout.
pub const BUILT_IN: &str = include_str!("../../seeds/ca-cutover.toml");

/// The file: a list of cut-over events.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Seeds {
    /// Every event.
    pub cutover: Vec<Cutover>,
}

/// One cut-over event.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Cutover {
    /// The CA as the report names it.
    pub ca: String,
    /// Case-insensitive substrings of the issuer DN identifying the CA.
    #[serde(default)]
    pub issuer_match: Vec<String>,
    /// What happens.
    pub event: String,
    /// When.
    pub date: toml::value::Datetime,
    /// A default renewal on or after `date` is server-only.
    #[serde(default)]
    pub renewal: bool,
    /// Where the date comes from.
    pub source: String,
    /// Caveat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a seeds file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SeedsError {
    /// Not valid TOML of the expected shape.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A date that is not a calendar date.
    #[error("{ca}: invalid date {date}")]
    Date {
        /// The CA.
        ca: String,
        /// The date as written.
        date: String,
    },
}

impl Seeds {
    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, SeedsError> {
        let seeds: Self = toml::from_str(text)?;
        for c in &seeds.cutover {
            c.day()?;
        }
        Ok(seeds)
    }

    /// Per CA with an issuer pattern: the renewal cut-over (the earliest
    /// `renewal = true` date) and its patterns. Sorted by CA name.
    pub fn renewal_dates(&self) -> Result<BTreeMap<String, (Date, Vec<String>)>, SeedsError> {
        let mut out: BTreeMap<String, (Date, Vec<String>)> = BTreeMap::new();
        for c in self
            .cutover
            .iter()
            .filter(|c| c.renewal && !c.issuer_match.is_empty())
        {
            let d = c.day()?;
            let e = out
                .entry(c.ca.clone())
                .or_insert_with(|| (d, c.issuer_match.clone()));
            if d < e.0 {
                e.0 = d;
            }
        }
        Ok(out)
    }
}

impl Cutover {
    /// The date as a calendar date.
    pub fn day(&self) -> Result<Date, SeedsError> {
        let bad = || SeedsError::Date {
            ca: self.ca.clone(),
            date: self.date.to_string(),
        };
        let d = self
            .date
            .date
            .filter(|_| self.date.time.is_none())
            .ok_or_else(bad)?;
        let month = time::Month::try_from(d.month).map_err(|_| bad())?;
        Date::from_calendar_date(i32::from(d.year), month, d.day).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_file_parses_and_every_entry_has_a_source() {
        let s = Seeds::parse(BUILT_IN).expect("seeds parse");
        assert!(s.cutover.len() >= 6);
        for c in &s.cutover {
            assert!(c.source.starts_with("https://"), "{}: {}", c.ca, c.source);
        }
        let r = s.renewal_dates().expect("dates");
        let le = &r["Let's Encrypt"];
        assert_eq!(le.0.to_string(), "2026-02-11");
        assert!(!r.contains_key("Chrome Root Program"));
    }
}
