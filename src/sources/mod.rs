//! Where the domains to crawl come from: text lists, CSV exports, the XMPP
//! Providers list, and the domains the database already knows.
//!
//! Every source is untrusted input. Each name goes through
//! [`DomainName::parse`] so that de-duplication across sources and opt-outs
//! compare like with like; a bad entry is reported with its source and
//! position while the valid rest is kept, and a source that fails as a whole
//! (unreadable file, unreachable URL, broken JSON) becomes one
//! [`SourceProblem`] while the other sources still load. A crawl of
//! thousands of domains should not be lost to one typo or one dead URL.
//!
//! Opt-outs are applied here, before anything is probed: an operator who
//! asked not to be measured is never contacted, whichever source named them.
//!
//! One file per concern:
//! - `spec.rs`: the `--source` argument forms ([`SourceSpec`]);
//! - `error.rs`: why a source or an entry could not be used
//!   ([`SourceError`], [`SourceProblem`]);
//! - `text.rs`: one-domain-a-line lists and the database's known domains;
//! - `csv.rs`: CSV exports with a header row;
//! - `providers.rs`: the XMPP Providers list, parsed and fetched;
//! - `mod.rs`: [`load`], which reads every source and merges them, and the
//!   opt-out list.

mod csv;
mod error;
mod providers;
mod spec;
mod text;

pub use self::csv::{CSV_DEFAULT_COLUMNS, parse_csv};
pub use error::{SourceError, SourceProblem};
pub use providers::{ProvidersList, parse_providers, parse_providers_bytes};
pub use spec::{ACCEPTED_FORMS, ProvidersLocation, SourceSpec};

use self::csv::load_csv;
use crate::model::domain::{self, DomainName};
use providers::fetch;
use std::collections::HashSet;
use std::path::Path;
use text::{load_text, parse_all};

pub use crate::limits::{PROVIDERS_MAX_BYTES, PROVIDERS_TIMEOUT};

/// What [`load`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Normalised domains to crawl, de-duplicated across all sources, in
    /// order of first occurrence, opt-outs and withheld providers removed.
    pub domains: Vec<DomainName>,
    /// Every bad entry and every failed source.
    pub problems: Vec<SourceProblem>,
    /// Per source (label, valid domains it contributed), counted before
    /// cross-source de-duplication and opt-outs, in the order given.
    pub per_source: Vec<(String, usize)>,
    /// Domains named by a source but removed because they opted out.
    pub opted_out: Vec<DomainName>,
    /// Providers-list domains not crawled because `serverTesting` was not
    /// `true` (see [`parse_providers`]).
    pub no_consent: Vec<DomainName>,
    /// What went wrong but was made up for (a providers URL replaced by
    /// its fallback snapshot), one message each.
    pub warnings: Vec<String>,
}

/// The providers list to read when a providers URL cannot be fetched
/// (the survey's offline fallback: a snapshot file or the built-in copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvidersFallback {
    /// Its name in messages (the file, or what the built-in copy is).
    pub label: String,
    /// The list as published.
    pub bytes: Vec<u8>,
}

/// Loads every source in order and merges them.
///
/// `known` is the `db` source: the caller passes the store's known domains
/// when [`SourceSpec::Database`] is among `specs` (`None` then is reported
/// as a problem). `opt_out` must hold normalised domains, as
/// [`load_opt_out_file`] returns them. Never fails: whatever could not be
/// used is in [`Loaded::problems`].
pub async fn load(
    specs: &[SourceSpec],
    known: Option<Vec<String>>,
    http: &reqwest::Client,
    opt_out: &HashSet<String>,
) -> Loaded {
    load_with_fallback(specs, known, http, opt_out, None).await
}

/// [`load`], where a providers URL that cannot be fetched (connection,
/// HTTP status, size) is replaced by `fallback` with a warning in
/// [`Loaded::warnings`] instead of failing as a source.
pub async fn load_with_fallback(
    specs: &[SourceSpec],
    known: Option<Vec<String>>,
    http: &reqwest::Client,
    opt_out: &HashSet<String>,
    fallback: Option<&ProvidersFallback>,
) -> Loaded {
    let mut out = Loaded::default();
    let mut known = known;
    let mut seen = HashSet::new();
    let mut opted_seen = HashSet::new();
    // Explicit refusals (see `ProvidersList::refused`) are removed from
    // every source, like opt-outs.
    let mut refused = HashSet::new();
    let mut merged: Vec<DomainName> = Vec::new();
    for spec in specs {
        let label = spec.label();
        let (good, problems) = match spec {
            SourceSpec::Text(path) => load_text(path, &label).await,
            SourceSpec::Csv { path, column } => load_csv(path, column.as_deref(), &label).await,
            SourceSpec::Providers(loc) => {
                let body = match loc {
                    ProvidersLocation::Url(url) => match (fetch(http, url).await, fallback) {
                        (Err(e), Some(f)) => {
                            out.warnings.push(format!(
                                "{label}: {}; using the snapshot {} instead",
                                e.detail(),
                                f.label
                            ));
                            Ok(f.bytes.clone())
                        }
                        (body, _) => body,
                    },
                    ProvidersLocation::File(path) => read(path).await,
                };
                match body.and_then(|b| parse_providers_bytes(&b, &label)) {
                    Ok(list) => {
                        for d in list.no_consent {
                            if !out.no_consent.contains(&d) {
                                out.no_consent.push(d);
                            }
                        }
                        refused.extend(list.refused);
                        (list.domains, list.problems)
                    }
                    Err(e) => (Vec::new(), vec![SourceProblem::failed(&label, &e)]),
                }
            }
            SourceSpec::Database => match known.take() {
                Some(names) => parse_all(names, &label),
                None => (
                    Vec::new(),
                    vec![SourceProblem::whole(
                        &label,
                        "the database's known domains were not provided (or `db` was given twice)",
                    )],
                ),
            },
        };
        out.per_source.push((label, good.len()));
        out.problems.extend(problems);
        for d in good {
            if opt_out.contains(d.as_str()) {
                if opted_seen.insert(d.clone()) {
                    out.opted_out.push(d);
                }
            } else if seen.insert(d.clone()) {
                merged.push(d);
            }
        }
    }
    merged.retain(|d| !refused.contains(d));
    out.domains = merged;
    out
}

/// Reads an opt-out list: the same text format as domain lists. Any bad
/// line fails the whole list (see [`SourceError::OptOut`]).
pub fn load_opt_out_file(path: &Path) -> Result<HashSet<String>, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (good, bad) = domain::parse_list(path, &bytes);
    if bad.is_empty() {
        Ok(good.into_iter().map(String::from).collect())
    } else {
        Err(SourceError::OptOut { lines: bad })
    }
}

/// A source file's bytes (`-` is standard input): decoding is per line
/// (or per record), so one byte that is not UTF-8 costs one line, named,
/// not the whole file.
async fn read(path: &Path) -> Result<Vec<u8>, SourceError> {
    let read = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut b)
            .await
            .map(|_| b)
    } else {
        tokio::fs::read(path).await
    };
    read.map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    fn tmp(name: &str, body: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xmpp-survey-sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[tokio::test]
    async fn dedupes_across_sources_applies_opt_outs_and_refusals() {
        let t = tmp(
            "a.txt",
            "one.example\nTWO.example\nbad_x.example\nout.example\n",
        );
        let c = tmp(
            "b.csv",
            "jid\nu@two.example\nthree.example\nrefused.example\n",
        );
        let p = tmp(
            "c.json",
            r#"{"one.example": {"serverTesting": {"content": true}},
                "four.example": {"serverTesting": {"content": true}},
                "nofile.example": {"serverTesting": {"content": false, "source": ""}},
                "refused.example": {"serverTesting": {"content": false, "source": "https://refused.example/.well-known/xmpp-provider-v2.json"}}}"#,
        );
        let specs = vec![
            SourceSpec::Text(t.clone()),
            SourceSpec::Csv {
                path: c.clone(),
                column: None,
            },
            SourceSpec::Providers(ProvidersLocation::File(p.clone())),
            SourceSpec::Database,
            SourceSpec::Text(t.with_file_name("nope.txt")),
        ];
        let opt_out: HashSet<String> = ["out.example".to_string()].into();
        let http = reqwest::Client::new();
        let known = Some(vec![
            "five.example".into(),
            "ONE.example".into(),
            "x".into(),
        ]);
        let l = load(&specs, known, &http, &opt_out).await;
        assert_eq!(
            l.domains,
            vec![
                "one.example",
                "two.example",
                "three.example",
                "four.example",
                "five.example"
            ]
        );
        assert_eq!(l.opted_out, vec!["out.example"]);
        assert_eq!(l.no_consent, vec!["nofile.example", "refused.example"]);
        let counts: Vec<usize> = l.per_source.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, vec![3, 3, 2, 2, 0]);
        assert_eq!(l.per_source[3].0, "db");
        let shown: Vec<String> = l.problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert!(
            shown[0].contains("a.txt:3: \"bad_x.example\": "),
            "{shown:#?}"
        );
        assert!(shown[1].starts_with("db: \"x\": "), "{shown:#?}");
        assert!(
            shown[2].ends_with("nope.txt: cannot read: No such file or directory (os error 2)"),
            "{shown:#?}"
        );
    }

    #[tokio::test]
    async fn a_providers_url_that_fails_falls_back_with_a_warning() {
        // A closed loopback port: the fetch fails at once.
        let spec: SourceSpec = "providers:http://127.0.0.1:9/p.json".parse().unwrap();
        let fallback = ProvidersFallback {
            label: "snapshot.json".into(),
            bytes: br#"{"a.example": {"serverTesting": {"content": true}}}"#.to_vec(),
        };
        let http = reqwest::Client::new();
        let l = load_with_fallback(
            std::slice::from_ref(&spec),
            None,
            &http,
            &HashSet::new(),
            Some(&fallback),
        )
        .await;
        assert_eq!(l.domains, vec!["a.example"]);
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        assert_eq!(l.warnings.len(), 1);
        assert!(
            l.warnings[0].starts_with("http://127.0.0.1:9/p.json: cannot fetch")
                && l.warnings[0].ends_with("using the snapshot snapshot.json instead"),
            "{:?}",
            l.warnings
        );
        // Without a fallback the source fails as before.
        let l = load(&[spec], None, &http, &HashSet::new()).await;
        assert!(l.domains.is_empty());
        assert_eq!(l.problems.len(), 1);
    }

    #[tokio::test]
    async fn db_without_known_domains_is_a_problem() {
        let l = load(
            &[SourceSpec::Database],
            None,
            &reqwest::Client::new(),
            &HashSet::new(),
        )
        .await;
        assert!(l.domains.is_empty());
        assert_eq!(l.problems.len(), 1);
        assert!(l.problems[0].to_string().starts_with("db: "));
    }

    #[test]
    fn opt_out_file_normalises_and_rejects_bad_lines() {
        let ok = tmp("opt.txt", "# who asked\nOut.Example.\nbücher.example\n");
        let set = load_opt_out_file(&ok).unwrap();
        assert!(set.contains("out.example"));
        assert!(set.contains("xn--bcher-kva.example"));
        let bad = tmp("opt-bad.txt", "ok.example\nnot a domain\n");
        let e = load_opt_out_file(&bad).unwrap_err().to_string();
        assert!(e.contains("opt-bad.txt:2: \"not a domain\""), "{e}");
        let e = load_opt_out_file(Path::new("/nonexistent/opt.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read /nonexistent/opt.txt"), "{e}");
    }

    #[tokio::test]
    async fn text_source_line_that_is_not_utf8_is_named_and_the_rest_loads() {
        let t = tmp("latin1.txt", "");
        std::fs::write(&t, b"one.example\ncaf\xe9.example\ntwo.example\n").unwrap();
        let l = load(
            &[SourceSpec::Text(t.clone())],
            None,
            &reqwest::Client::new(),
            &HashSet::new(),
        )
        .await;
        assert_eq!(l.domains, vec!["one.example", "two.example"]);
        assert_eq!(l.problems.len(), 1);
        let msg = l.problems[0].to_string();
        assert!(msg.contains("latin1.txt:2: "), "{msg}");
        let opt = tmp("opt-latin1.txt", "");
        std::fs::write(&opt, b"ok.example\nbad\xff.example\n").unwrap();
        let e = load_opt_out_file(&opt).unwrap_err().to_string();
        assert!(e.contains("opt-latin1.txt:2: "), "{e}");
    }
}
