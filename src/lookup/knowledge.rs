//! The advice file (`seeds/advice.toml`): what to do about a finding, each
//! entry with its sources. No advice text lives in the code; the file is
//! built in and can be replaced at run time (`--advice FILE`).

use crate::model::finding::{Advice, AdviceSource, FindingCode};
use crate::model::names::Named;
use serde::Deserialize;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// The repository's advice file, built in for runs outside the checkout.
pub const BUILT_IN: &str = include_str!("../../seeds/advice.toml");

/// Every advice entry, in file order.
#[derive(Debug, Clone)]
pub struct Knowledge {
    entries: Vec<AdviceEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct AdviceFile {
    advice: Vec<AdviceEntry>,
}

/// One `[[advice]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdviceEntry {
    id: String,
    finding: String,
    #[serde(default)]
    cases: Vec<String>,
    #[serde(default)]
    software: Option<String>,
    #[serde(default)]
    version_from: Option<String>,
    #[serde(default)]
    version_below: Option<String>,
    text: String,
    sources: Vec<SourceEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceEntry {
    title: String,
    url: String,
}

/// Why an advice file is unusable (names the file and the entry).
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The file could not be read.
    #[error("cannot read advice file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML of the expected shape.
    #[error("advice file {origin}: {source}")]
    Parse {
        /// The file, or `built-in`.
        origin: String,
        /// The parser's message (with line and column).
        #[source]
        source: toml::de::Error,
    },
    /// An entry that cannot apply to anything.
    #[error("advice file {origin}: entry {id:?}: {problem}")]
    Entry {
        /// The file, or `built-in`.
        origin: String,
        /// The entry's id.
        id: String,
        /// What is wrong.
        problem: String,
    },
}

/// What a finding is, for choosing its advice.
#[derive(Debug, Clone, Copy)]
pub struct AdviceQuery<'a> {
    /// The finding.
    pub code: FindingCode,
    /// Its case (e.g. the acceptance verdict's name).
    pub case: &'a str,
    /// The software name the server reported, if any.
    pub software: Option<&'a str>,
    /// Its version, if any.
    pub version: Option<&'a str>,
}

impl Knowledge {
    /// The built-in file ([`BUILT_IN`]); it is checked by a unit test, so
    /// this cannot fail in a released binary.
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN, "built-in").unwrap_or(Self {
            entries: Vec::new(),
        })
    }

    /// Reads an advice file.
    pub fn load(path: &Path) -> Result<Self, KnowledgeError> {
        let text = std::fs::read_to_string(path).map_err(|source| KnowledgeError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks an advice file's text: every entry names a known
    /// finding, has text and at least one http(s) source, and its version
    /// bounds are versions.
    pub fn parse(text: &str, origin: &str) -> Result<Self, KnowledgeError> {
        let file: AdviceFile = toml::from_str(text).map_err(|source| KnowledgeError::Parse {
            origin: origin.to_string(),
            source,
        })?;
        let codes = FindingCode::names();
        let mut seen = std::collections::HashSet::new();
        for e in &file.advice {
            let bad = |problem: String| KnowledgeError::Entry {
                origin: origin.to_string(),
                id: e.id.clone(),
                problem,
            };
            if !seen.insert(e.id.as_str()) {
                return Err(bad("id used twice".into()));
            }
            if !codes.contains(&e.finding.as_str()) {
                return Err(bad(format!(
                    "unknown finding {:?} (known: {})",
                    e.finding,
                    codes.join(", ")
                )));
            }
            if e.text.trim().is_empty() {
                return Err(bad("empty text".into()));
            }
            if e.sources.is_empty() {
                return Err(bad("no source".into()));
            }
            if let Some(s) = e.sources.iter().find(|s| {
                s.title.trim().is_empty()
                    || !(s.url.starts_with("https://") || s.url.starts_with("http://"))
            }) {
                return Err(bad(format!(
                    "source {:?} needs a title and an http(s) URL",
                    s.url
                )));
            }
            for v in [&e.version_from, &e.version_below].into_iter().flatten() {
                if version_parts(v).is_none() {
                    return Err(bad(format!("{v:?} is not a dotted numeric version")));
                }
            }
            if (e.version_from.is_some() || e.version_below.is_some()) && e.software.is_none() {
                return Err(bad("a version bound needs `software`".into()));
            }
        }
        Ok(Self {
            entries: file.advice,
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file had no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The advice for a finding: an entry for the reported software (and
    /// version range) wins over a general one; otherwise the first match
    /// in file order. `None` when no entry applies.
    pub fn advise(&self, q: AdviceQuery<'_>) -> Option<Advice> {
        let code = q.code.as_str();
        let applies = |e: &&AdviceEntry| {
            e.finding == code
                && (e.cases.is_empty() || e.cases.iter().any(|c| c == q.case))
                && e.software
                    .as_deref()
                    .is_none_or(|s| q.software.is_some_and(|r| r.eq_ignore_ascii_case(s)))
                && e.version_from.as_deref().is_none_or(|from| {
                    version_cmp(q.version, from).is_some_and(|o| o != Ordering::Less)
                })
                && e.version_below.as_deref().is_none_or(|below| {
                    version_cmp(q.version, below).is_some_and(|o| o == Ordering::Less)
                })
        };
        let chosen = self
            .entries
            .iter()
            .filter(applies)
            .find(|e| e.software.is_some())
            .or_else(|| self.entries.iter().find(applies))?;
        Some(Advice {
            id: chosen.id.clone(),
            text: chosen.text.split_whitespace().collect::<Vec<_>>().join(" "),
            sources: chosen
                .sources
                .iter()
                .map(|s| AdviceSource {
                    title: s.title.clone(),
                    url: s.url.clone(),
                })
                .collect(),
        })
    }
}

/// The numeric parts of a dotted version (`25.07` → [25, 7]); a reported
/// version may carry a suffix after the numbers (`0.12.3-1`, `23.01+dfsg`),
/// which is ignored. `None` when it does not start with a number.
fn version_parts(v: &str) -> Option<Vec<u64>> {
    let numeric: String = v
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let parts: Vec<u64> = numeric
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then_some(parts)
}

/// Compares a reported version with a bound, missing parts as 0;
/// `None` when there is no reported version or it is not numeric.
fn version_cmp(reported: Option<&str>, bound: &str) -> Option<Ordering> {
    let mut a = version_parts(reported?)?;
    let mut b = version_parts(bound)?;
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    Some(a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<'a>(
        code: FindingCode,
        case: &'a str,
        software: Option<&'a str>,
        version: Option<&'a str>,
    ) -> AdviceQuery<'a> {
        AdviceQuery {
            code,
            case,
            software,
            version,
        }
    }

    #[test]
    fn built_in_file_parses_and_every_entry_is_checked() {
        let k = Knowledge::parse(BUILT_IN, "built-in").expect("seeds/advice.toml");
        assert!(k.len() >= 15, "{}", k.len());
        assert_eq!(Knowledge::built_in().len(), k.len());
    }

    #[test]
    fn software_and_version_select_the_specific_entry() {
        let k = Knowledge::built_in();
        let a = FindingCode::AcceptsServerOnly;
        let pick = |s, v, case| k.advise(q(a, case, s, v)).map(|x| x.id);
        let dialback = "rejects_server_only_dialback";
        assert_eq!(
            pick(Some("ejabberd"), Some("23.01"), dialback).as_deref(),
            Some("ejabberd-unsupported-purpose")
        );
        assert_eq!(
            pick(
                Some("ejabberd"),
                Some("24.12"),
                "rejects_server_only_no_fallback"
            )
            .as_deref(),
            Some("ejabberd-unsupported-purpose")
        );
        // Fixed versions fall back to the general entry.
        assert_eq!(
            pick(Some("ejabberd"), Some("25.07"), dialback).as_deref(),
            Some("refuses-with-dialback")
        );
        assert_eq!(
            pick(Some("Prosody"), Some("13.0.0"), dialback).as_deref(),
            Some("prosody-13.0.0-handshake")
        );
        assert_eq!(
            pick(Some("prosody"), Some("13.0.1"), dialback).as_deref(),
            Some("refuses-with-dialback")
        );
        assert_eq!(
            pick(None, None, dialback).as_deref(),
            Some("refuses-with-dialback")
        );
        assert_eq!(
            pick(Some("Prosody"), Some("0.12.3"), "accepts_server_only"),
            None
        );
    }

    #[test]
    fn versions_compare_numerically_and_ignore_suffixes() {
        assert_eq!(version_cmp(Some("25.07"), "25.7"), Some(Ordering::Equal));
        assert_eq!(
            version_cmp(Some("23.01+dfsg"), "25.07"),
            Some(Ordering::Less)
        );
        assert_eq!(
            version_cmp(Some("0.12.3-1"), "0.12"),
            Some(Ordering::Greater)
        );
        assert_eq!(version_cmp(Some("trunk"), "1"), None);
        assert_eq!(version_cmp(None, "1"), None);
    }

    #[test]
    fn bad_files_name_the_entry_and_the_problem() {
        let entry = |extra: &str| {
            format!(
                "[[advice]]\nid = \"x\"\nfinding = \"dane\"\ntext = \"t\"\n{extra}\nsources = [{{ title = \"t\", url = \"https://e.org\" }}]\n"
            )
        };
        assert!(Knowledge::parse(&entry(""), "f").is_ok());
        let err = |text: String| Knowledge::parse(&text, "f.toml").unwrap_err().to_string();
        assert!(err(entry("").replace("dane", "dnssecx")).contains("unknown finding"));
        assert!(err(entry("version_below = \"1.0\"")).contains("needs `software`"));
        assert!(err(entry("software = \"x\"\nversion_below = \"one\"")).contains("not a dotted"));
        assert!(err(entry("").replace("https://e.org", "javascript:x")).contains("http(s) URL"));
        assert!(err(format!("{}{}", entry(""), entry(""))).contains("used twice"));
        assert!(err("[[advice]]\nid = 1".into()).contains("f.toml"));
    }
}
