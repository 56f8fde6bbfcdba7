//! Where the domains to crawl come from: text lists, CSV exports, the XMPP
//! Providers list, and the domains the database already knows.
//!
//! Every source is untrusted input. Each name goes through
//! [`domain::normalize`] so that de-duplication across sources and opt-outs
//! compare like with like; a bad entry is reported with its source and
//! position while the valid rest is kept, and a source that fails as a whole
//! (unreadable file, unreachable URL, broken JSON) becomes one
//! [`SourceProblem`] while the other sources still load. A crawl of
//! thousands of domains should not be lost to one typo or one dead URL.
//!
//! Opt-outs are applied here, before anything is probed: an operator who
//! asked not to be measured is never contacted, whichever source named them.

use crate::domain::{self, BadLine, DomainError};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use thiserror::Error;

pub use crate::limits::{PROVIDERS_MAX_BYTES, PROVIDERS_TIMEOUT};

/// The forms a `--source` argument may take, for error messages.
pub const ACCEPTED_FORMS: &str = "text:FILE, csv:FILE, csv:FILE#COLUMN, providers:URL (http/https), \
     providers:FILE, db, or a bare FILE ending in .txt/.list (text), .csv (csv) or .json (providers)";

/// Why a source, or the opt-out list, could not be used as a whole.
#[derive(Debug, Error)]
pub enum SourceError {
    /// A `--source` argument in none of the accepted forms.
    #[error("unknown source {arg:?}: {why}; accepted forms: {ACCEPTED_FORMS}")]
    UnknownFormat {
        /// The argument as given.
        arg: String,
        /// What was wrong with it.
        why: String,
    },
    /// A local file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CSV file without a usable header or column.
    #[error("{}: {why}", path.display())]
    CsvHeader {
        /// The file.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// The providers URL could not be fetched (connect, timeout, transfer).
    #[error("cannot fetch {url}: {why}")]
    Fetch {
        /// The URL.
        url: String,
        /// The error and its causes, innermost last.
        why: String,
    },
    /// The providers URL answered, but not with success.
    #[error("{url} answered HTTP {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status line's code and reason.
        status: String,
    },
    /// The providers body is larger than [`PROVIDERS_MAX_BYTES`].
    #[error("{url}: body larger than the {} MiB cap", PROVIDERS_MAX_BYTES / (1024 * 1024))]
    TooLarge {
        /// The URL.
        url: String,
    },
    /// The providers document is not JSON, or not a list/object of providers.
    #[error("{origin}: not a providers list: {why}")]
    BadJson {
        /// The URL or file.
        origin: String,
        /// The parser's message (with line and column).
        why: String,
    },
    /// The opt-out file has lines that are not domains. An opt-out we
    /// cannot read is not silently skipped: a typo there would mean probing
    /// someone who asked us not to.
    #[error("opt-out list has invalid lines, nothing loaded:\n  {}", lines.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    OptOut {
        /// Every bad line, with file and line number.
        lines: Vec<BadLine>,
    },
}

impl SourceError {
    /// The message without the file or URL it names, for a
    /// [`SourceProblem`] whose `source` already says which one.
    pub fn detail(&self) -> String {
        match self {
            Self::Read { source, .. } => format!("cannot read: {source}"),
            Self::CsvHeader { why, .. } => why.clone(),
            Self::Fetch { why, .. } => format!("cannot fetch: {why}"),
            Self::HttpStatus { status, .. } => format!("answered HTTP {status}"),
            Self::TooLarge { .. } => format!(
                "body larger than the {} MiB cap",
                PROVIDERS_MAX_BYTES / (1024 * 1024)
            ),
            Self::BadJson { why, .. } => format!("not a providers list: {why}"),
            Self::UnknownFormat { .. } | Self::OptOut { .. } => self.to_string(),
        }
    }
}

/// Where a providers list lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvidersLocation {
    /// Fetched over HTTP(S), e.g. `https://data.xmpp.net/providers/v2/providers.json`.
    Url(String),
    /// A local copy.
    File(PathBuf),
}

/// One `--source` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// One domain a line, `#` comments; see [`domain::parse_list`].
    Text(PathBuf),
    /// A CSV file with a header row; `column` names the domain column
    /// (default: the first of `domain`, `jid`, `host`).
    Csv {
        /// The file.
        path: PathBuf,
        /// The column to read, if not the default.
        column: Option<String>,
    },
    /// An XMPP Providers list (see [`parse_providers`] for the format).
    Providers(ProvidersLocation),
    /// Every domain the database already knows (for re-crawls).
    Database,
}

impl SourceSpec {
    /// The name used for this source in problems and per-source counts.
    pub fn label(&self) -> String {
        match self {
            Self::Text(p) | Self::Csv { path: p, .. } => p.display().to_string(),
            Self::Providers(ProvidersLocation::Url(u)) => u.clone(),
            Self::Providers(ProvidersLocation::File(p)) => p.display().to_string(),
            Self::Database => "db".to_string(),
        }
    }
}

impl SourceSpec {
    /// An argument that names its kind (`text:`, `csv:`, `providers:`, or
    /// an `http(s)://` URL) parsed as a source; `None` for anything else,
    /// such as a bare domain (which never contains `:`). `probe` takes
    /// domains and sources in the same arguments this way.
    pub fn explicit(arg: &str) -> Option<Result<Self, SourceError>> {
        let s = arg.trim();
        let lower = s.to_ascii_lowercase();
        ["text:", "csv:", "providers:", "http://", "https://"]
            .iter()
            .any(|p| lower.starts_with(p))
            .then(|| s.parse())
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(p) => write!(f, "text:{}", p.display()),
            Self::Csv { path, column: None } => write!(f, "csv:{}", path.display()),
            Self::Csv {
                path,
                column: Some(c),
            } => write!(f, "csv:{}#{c}", path.display()),
            Self::Providers(ProvidersLocation::Url(u)) => write!(f, "providers:{u}"),
            Self::Providers(ProvidersLocation::File(p)) => write!(f, "providers:{}", p.display()),
            Self::Database => f.write_str("db"),
        }
    }
}

fn unknown(arg: &str, why: impl Into<String>) -> SourceError {
    SourceError::UnknownFormat {
        arg: arg.to_string(),
        why: why.into(),
    }
}

/// `http://` / `https://` → a URL; any other `scheme://` is refused rather
/// than being taken for a file name.
fn providers_location(arg: &str, rest: &str) -> Result<ProvidersLocation, SourceError> {
    let lower = rest.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(ProvidersLocation::Url(rest.to_string()))
    } else if rest.contains("://") {
        Err(unknown(
            arg,
            "only http:// and https:// URLs can be fetched",
        ))
    } else {
        Ok(ProvidersLocation::File(PathBuf::from(rest)))
    }
}

impl FromStr for SourceSpec {
    type Err = SourceError;

    /// Explicit `kind:` prefixes win; a bare argument is guessed from its
    /// extension so that `--source list.txt` does what it says. Anything
    /// ambiguous is refused with the list of accepted forms, never guessed.
    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let s = arg.trim();
        if s.is_empty() {
            return Err(unknown(arg, "empty"));
        }
        if s == "db" {
            return Ok(Self::Database);
        }
        let nonempty = |rest: &str, kind: &str| {
            if rest.is_empty() {
                Err(unknown(arg, format!("{kind}: needs a file")))
            } else {
                Ok(())
            }
        };
        if let Some(rest) = s.strip_prefix("text:") {
            nonempty(rest, "text")?;
            return Ok(Self::Text(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("csv:") {
            // The column follows the last '#': a column name never
            // contains one, a file name practically never does.
            let (path, column) = match rest.rsplit_once('#') {
                Some((p, c)) if c.trim().is_empty() => {
                    return Err(unknown(
                        arg,
                        format!("empty column name after '#' in {p:?}"),
                    ));
                }
                Some((p, c)) => (p, Some(c.trim().to_string())),
                None => (rest, None),
            };
            nonempty(path, "csv")?;
            return Ok(Self::Csv {
                path: PathBuf::from(path),
                column,
            });
        }
        if let Some(rest) = s.strip_prefix("providers:") {
            if rest.is_empty() {
                return Err(unknown(arg, "providers: needs a URL or a file"));
            }
            return Ok(Self::Providers(providers_location(arg, rest)?));
        }
        if s.contains("://") {
            let lower = s.to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                // A URL can only be a providers list.
                return Ok(Self::Providers(ProvidersLocation::Url(s.to_string())));
            }
            return Err(unknown(
                arg,
                "only http:// and https:// URLs can be fetched",
            ));
        }
        let ext = Path::new(s)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("txt" | "list") => Ok(Self::Text(PathBuf::from(s))),
            Some("csv") => Ok(Self::Csv {
                path: PathBuf::from(s),
                column: None,
            }),
            Some("json") => Ok(Self::Providers(ProvidersLocation::File(PathBuf::from(s)))),
            _ => Err(unknown(
                arg,
                "no kind prefix and no known extension to guess one from",
            )),
        }
    }
}

/// One entry of a source that could not be used, or a source that failed
/// as a whole (then `line`, `entry` are `None` and `text` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProblem {
    /// The source's label ([`SourceSpec::label`]).
    pub source: String,
    /// 1-based line in a text or CSV file (a CSV record's first line).
    pub line: Option<usize>,
    /// 0-based position of the entry in a providers document. JSON has no
    /// useful line numbers once parsed; the index is what `jq '.[N]'` takes.
    pub entry: Option<usize>,
    /// The entry as written.
    pub text: String,
    /// Why it was rejected.
    pub error: String,
}

impl fmt::Display for SourceProblem {
    /// `FILE:LINE: "text": error` for lines, `SOURCE[N]: "text": error` for
    /// providers entries, `SOURCE: error` for a failed source.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(entry) = self.entry {
            write!(f, "[{entry}]")?;
        }
        f.write_str(": ")?;
        if !self.text.is_empty() {
            write!(f, "{:?}: ", self.text)?;
        }
        f.write_str(&self.error)
    }
}

impl std::error::Error for SourceProblem {}

impl SourceProblem {
    /// Whether the whole source failed (unreadable, unreachable, not a
    /// list) rather than one of its entries.
    pub fn is_whole(&self) -> bool {
        self.line.is_none() && self.entry.is_none() && self.text.is_empty()
    }

    fn whole(source: &str, error: impl Into<String>) -> Self {
        Self {
            source: source.to_string(),
            line: None,
            entry: None,
            text: String::new(),
            error: error.into(),
        }
    }

    fn failed(source: &str, e: &SourceError) -> Self {
        Self::whole(source, e.detail())
    }

    fn from_bad_line(source: &str, b: BadLine) -> Self {
        Self {
            source: source.to_string(),
            line: Some(b.line),
            entry: None,
            text: b.text,
            error: b.error.to_string(),
        }
    }
}

/// What [`load`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Normalised domains to crawl, de-duplicated across all sources, in
    /// order of first occurrence, opt-outs and withheld providers removed.
    pub domains: Vec<String>,
    /// Every bad entry and every failed source.
    pub problems: Vec<SourceProblem>,
    /// Per source (label, valid domains it contributed), counted before
    /// cross-source de-duplication and opt-outs, in the order given.
    pub per_source: Vec<(String, usize)>,
    /// Domains named by a source but removed because they opted out.
    pub opted_out: Vec<String>,
    /// Providers-list domains not crawled because `serverTesting` was not
    /// `true` (see [`parse_providers`]).
    pub no_consent: Vec<String>,
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
    let mut out = Loaded::default();
    let mut known = known;
    let mut seen = HashSet::new();
    let mut opted_seen = HashSet::new();
    // Explicit refusals (see `ProvidersList::refused`) are removed from
    // every source, like opt-outs.
    let mut refused = HashSet::new();
    let mut merged: Vec<String> = Vec::new();
    for spec in specs {
        let label = spec.label();
        let (good, problems) = match spec {
            SourceSpec::Text(path) => load_text(path, &label).await,
            SourceSpec::Csv { path, column } => load_csv(path, column.as_deref(), &label).await,
            SourceSpec::Providers(loc) => {
                let body = match loc {
                    ProvidersLocation::Url(url) => fetch(http, url).await,
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
                Some(names) => normalize_all(names, &label),
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
            if opt_out.contains(&d) {
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
        Ok(good.into_iter().collect())
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

async fn load_text(path: &Path, label: &str) -> (Vec<String>, Vec<SourceProblem>) {
    match read(path).await {
        Ok(bytes) => {
            let (good, bad) = domain::parse_list(path, &bytes);
            let bad = bad
                .into_iter()
                .map(|b| SourceProblem::from_bad_line(label, b))
                .collect();
            (good, bad)
        }
        Err(e) => (Vec::new(), vec![SourceProblem::failed(label, &e)]),
    }
}

fn normalize_all(names: Vec<String>, label: &str) -> (Vec<String>, Vec<SourceProblem>) {
    let mut seen = HashSet::new();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for name in names {
        match domain::normalize(&name) {
            Ok(d) => {
                if seen.insert(d.clone()) {
                    good.push(d);
                }
            }
            Err(e) => bad.push(SourceProblem {
                source: label.to_string(),
                line: None,
                entry: None,
                text: name,
                error: e.to_string(),
            }),
        }
    }
    (good, bad)
}

async fn load_csv(
    path: &Path,
    column: Option<&str>,
    label: &str,
) -> (Vec<String>, Vec<SourceProblem>) {
    match read(path).await {
        Ok(bytes) => match parse_csv(path, &bytes, column, label) {
            Ok(r) => r,
            Err(e) => (Vec::new(), vec![SourceProblem::failed(label, &e)]),
        },
        Err(e) => (Vec::new(), vec![SourceProblem::failed(label, &e)]),
    }
}

/// The columns tried, in order, when none is named.
pub const CSV_DEFAULT_COLUMNS: [&str; 3] = ["domain", "jid", "host"];

/// Reduces a JID (`local@domain/resource`) to its domainpart (RFC 7622
/// §3.1: the resource starts at the first `/`, the local part ends at the
/// `@` before the domain). A bare domain is returned unchanged.
pub fn jid_domain(jid: &str) -> &str {
    let bare = jid.split('/').next().unwrap_or(jid);
    bare.rsplit('@').next().unwrap_or(bare)
}

/// Parses a CSV domain list. The header row is required: the column is
/// found by name (exact, then case-insensitive), by default the first of
/// [`CSV_DEFAULT_COLUMNS`]. Only the `jid` column is reduced to the
/// domainpart: elsewhere `user@host` is more likely a mistake (an e-mail
/// address) and is reported. Empty cells are reported, not skipped: a
/// record without its domain is a broken record. Only the domain cell
/// must be UTF-8 (other columns are never decoded; header names are
/// decoded leniently): a cell that is not is reported with its line.
pub fn parse_csv(
    path: &Path,
    text: &[u8],
    column: Option<&str>,
    label: &str,
) -> Result<(Vec<String>, Vec<SourceProblem>), SourceError> {
    let header_err = |why: String| SourceError::CsvHeader {
        path: path.to_path_buf(),
        why,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text));
    let headers: Vec<String> = rdr
        .byte_headers()
        .map_err(|e| header_err(format!("cannot read the header row: {e}")))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(header_err(
            "empty; a header row naming the domain column is required".into(),
        ));
    }
    let shown = || format!("{headers:?}");
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .or_else(|| headers.iter().position(|h| h.eq_ignore_ascii_case(name)))
    };
    let (idx, col_name) = match column {
        Some(c) => (
            find(c).ok_or_else(|| header_err(format!("no column {c:?} in header {}", shown())))?,
            c.to_string(),
        ),
        None => CSV_DEFAULT_COLUMNS
            .iter()
            .find_map(|c| find(c).map(|i| (i, (*c).to_string())))
            .ok_or_else(|| {
                header_err(format!(
                    "no domain, jid or host column in header {} (the first row is the header; \
                     name the column with csv:FILE#COLUMN)",
                    shown()
                ))
            })?,
    };
    let is_jid = headers
        .get(idx)
        .is_some_and(|h| h.eq_ignore_ascii_case("jid"));
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut seen = HashSet::new();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for result in rdr.byte_records() {
        let rec = match result {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                bad.push(SourceProblem {
                    source: label.to_string(),
                    line,
                    entry: None,
                    text: String::new(),
                    error: format!("unreadable CSV record: {e}"),
                });
                if e.is_io_error() {
                    break;
                }
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize);
        let problem = |text: &str, error: String| SourceProblem {
            source: label.to_string(),
            line,
            entry: None,
            text: text.to_string(),
            error,
        };
        let Some(cell) = rec.get(idx) else {
            bad.push(problem(
                &rec.iter().map(lossy).collect::<Vec<_>>().join(","),
                format!("record has no {col_name:?} column"),
            ));
            continue;
        };
        let cell = match std::str::from_utf8(cell) {
            Ok(c) => c,
            Err(e) => {
                bad.push(problem(
                    &lossy(cell),
                    DomainError::not_utf8(cell, &e).to_string(),
                ));
                continue;
            }
        };
        let name = if is_jid { jid_domain(cell) } else { cell };
        match domain::normalize(name) {
            Ok(d) => {
                if seen.insert(d.clone()) {
                    good.push(d);
                }
            }
            Err(DomainError::Empty) => {
                bad.push(problem(cell, format!("empty {col_name:?} cell")));
            }
            Err(e) => bad.push(problem(cell, e.to_string())),
        }
    }
    Ok((good, bad))
}

/// Fetches a providers list with [`PROVIDERS_TIMEOUT`] and
/// [`PROVIDERS_MAX_BYTES`], streaming so that a lying or absent
/// `Content-Length` cannot make us buffer more than the cap.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, SourceError> {
    let fetch_err = |e: reqwest::Error| SourceError::Fetch {
        url: url.to_string(),
        why: describe(&e),
    };
    let mut resp = http
        .get(url)
        .timeout(PROVIDERS_TIMEOUT)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(fetch_err)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(SourceError::HttpStatus {
            url: url.to_string(),
            status: status.to_string(),
        });
    }
    if resp
        .content_length()
        .is_some_and(|n| n > PROVIDERS_MAX_BYTES)
    {
        return Err(SourceError::TooLarge {
            url: url.to_string(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(fetch_err)? {
        if (body.len() + chunk.len()) as u64 > PROVIDERS_MAX_BYTES {
            return Err(SourceError::TooLarge {
                url: url.to_string(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error with its causes ("connection refused" is two levels
/// down), and a plain word for the common cases.
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        format!("timed out after {} s", PROVIDERS_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// A parsed providers document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvidersList {
    /// Providers that consent to server testing, normalised, in order.
    pub domains: Vec<String>,
    /// Providers whose `serverTesting` is not `true`.
    pub no_consent: Vec<String>,
    /// The subset of `no_consent` that refused explicitly: `false` with a
    /// non-empty `source`, i.e. stated in the provider's own provider file.
    pub refused: Vec<String>,
    /// Bad entries, by index.
    pub problems: Vec<SourceProblem>,
}

/// The two shapes a providers document comes in, entries in document order.
enum ProvidersDoc {
    /// `[{"jid": "...", ...}, ...]`
    List(Vec<Value>),
    /// `{"example.org": {...}, ...}`
    Map(Vec<(String, Value)>),
}

impl<'de> Deserialize<'de> for ProvidersDoc {
    /// By hand rather than via `serde_json::Map`, which (without the
    /// `preserve_order` feature) sorts keys: entry indices in problems must
    /// match the document.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProvidersDoc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array of provider objects or an object keyed by JID")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(ProvidersDoc::List(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = map.next_entry()? {
                    v.push(kv);
                }
                Ok(ProvidersDoc::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// What an entry's `serverTesting` says.
enum Consent {
    Yes,
    /// Absent, `null`, or `false` without a source: never stated.
    NotGiven,
    /// `false` with a source: the provider said no.
    Refused,
}

fn consent(v: Option<&Value>) -> Result<Consent, String> {
    match v {
        None | Some(Value::Null) => Ok(Consent::NotGiven),
        Some(Value::Bool(true)) => Ok(Consent::Yes),
        Some(Value::Bool(false)) => Ok(Consent::NotGiven),
        Some(Value::Object(o)) => match o.get("content") {
            Some(Value::Bool(true)) => Ok(Consent::Yes),
            Some(Value::Bool(false)) => {
                let stated = o
                    .get("source")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.trim().is_empty());
                Ok(if stated {
                    Consent::Refused
                } else {
                    Consent::NotGiven
                })
            }
            None | Some(Value::Null) => Ok(Consent::NotGiven),
            Some(other) => Err(format!(
                "serverTesting.content must be true or false, not {other}"
            )),
        },
        Some(other) => Err(format!(
            "serverTesting must be a boolean or {{\"content\": boolean}}, not {other}"
        )),
    }
}

/// Parses an XMPP Providers document (`label` names it in problems).
///
/// # Format
///
/// The XMPP Providers project (<https://invent.kde.org/melvo/xmpp-providers>,
/// served at `https://data.xmpp.net/providers/v2/providers.json`) publishes:
///
/// - `providers.json`: a JSON **object keyed by the provider's JID** (its
///   domain), each value an object of properties, each property wrapped as
///   `{"content": …, "source": "…"}` where `source` is where the value came
///   from. The website's statistics code reads it exactly so
///   (`for provider_jid, provider_data in providers_data.items()`,
///   `provider_data["serverTesting"]["content"]`, xsf/xmpp-providers-website
///   `src/statistics.py`).
/// - the filtered lists `providers-A.json` … `providers-D.json`: a JSON
///   **array** of flat objects with a `"jid"` key and plain property values
///   (the website's templates select `where … ".jid"`).
///
/// Both shapes are accepted; `serverTesting` may be a plain boolean or the
/// wrapped form.
///
/// # Consent
///
/// API v2 added `serverTesting`: "Whether tests against the provider's
/// server are allowed (e.g., certificate checks and uptime monitoring)"
/// (providers.xmpp.net blog, 2023-12-29, "XMPP Providers fully automated").
/// Its default is `false`: the statistics code counts `false` with an empty
/// `source` as "No provider file", `false` with a source as "not allowing
/// server testing". So only `true` is consent; `false`, `null` or a missing
/// property is **no consent** and the entry goes to `no_consent`. The
/// project documents no other default, and a survey should not read
/// silence as permission.
///
/// Most `false` values only mean the provider never published a provider
/// file, so they withhold the domain from *this source* only; another list
/// the operator chose may still name it. A `false` with a non-empty
/// `source` is the provider's own statement: it is also listed in
/// [`ProvidersList::refused`] and [`load`] removes it from every source,
/// like an opt-out. `alternativeJids` are not crawled: consent is given for
/// the provider's server under its main JID.
pub fn parse_providers(text: &str, label: &str) -> Result<ProvidersList, SourceError> {
    parse_providers_doc(text, label, false)
}

/// [`parse_providers`] on bytes as read or fetched. Each line holding bytes
/// that are not UTF-8 is a problem naming that line (JSON strings must be
/// UTF-8, RFC 8259 §8.1); those bytes are read as U+FFFD so the rest of the
/// document still loads, and the entry they fall in is not crawled (it is
/// not reported a second time). Bytes that break the JSON structure make
/// the document unusable, as any other syntax error does.
pub fn parse_providers_bytes(bytes: &[u8], label: &str) -> Result<ProvidersList, SourceError> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return parse_providers(text, label);
    }
    let mut bad_lines = Vec::new();
    for (i, line) in domain::lines(bytes).enumerate() {
        if let Err(e) = std::str::from_utf8(line) {
            bad_lines.push(SourceProblem {
                source: label.to_string(),
                line: Some(i + 1),
                entry: None,
                text: String::from_utf8_lossy(line).trim().to_string(),
                error: format!(
                    "{}; the entry there is not crawled",
                    DomainError::not_utf8(line, &e)
                ),
            });
        }
    }
    let mut list = parse_providers_doc(&String::from_utf8_lossy(bytes), label, true)?;
    bad_lines.append(&mut list.problems);
    list.problems = bad_lines;
    Ok(list)
}

/// Parses a providers document; with `lossy`, entries holding U+FFFD (a
/// replaced byte, already reported by line) are dropped without a problem.
fn parse_providers_doc(text: &str, label: &str, lossy: bool) -> Result<ProvidersList, SourceError> {
    let doc: ProvidersDoc = serde_json::from_str(text).map_err(|e| SourceError::BadJson {
        origin: label.to_string(),
        why: e.to_string(),
    })?;
    let entries: Vec<(Option<String>, Value)> = match doc {
        ProvidersDoc::List(v) => v.into_iter().map(|e| (None, e)).collect(),
        ProvidersDoc::Map(v) => v.into_iter().map(|(k, e)| (Some(k), e)).collect(),
    };
    let mut out = ProvidersList::default();
    let mut seen = HashSet::new();
    for (i, (key, entry)) in entries.into_iter().enumerate() {
        if lossy
            && (key.as_deref().is_some_and(|k| k.contains('\u{FFFD}'))
                || entry.to_string().contains('\u{FFFD}'))
        {
            continue;
        }
        let problem = |text: &str, error: String| SourceProblem {
            source: label.to_string(),
            line: None,
            entry: Some(i),
            text: text.to_string(),
            error,
        };
        let Value::Object(obj) = &entry else {
            let shown = key.clone().unwrap_or_else(|| entry.to_string());
            out.problems
                .push(problem(&shown, "provider entry is not an object".into()));
            continue;
        };
        let jid = match (&key, obj.get("jid")) {
            (Some(k), _) => k.clone(),
            (None, Some(Value::String(s))) => s.clone(),
            (None, Some(other)) => {
                out.problems.push(problem(
                    &other.to_string(),
                    "\"jid\" is not a string".into(),
                ));
                continue;
            }
            (None, None) => {
                out.problems
                    .push(problem("", "provider entry has no \"jid\"".into()));
                continue;
            }
        };
        let d = match domain::normalize(&jid) {
            Ok(d) => d,
            Err(e) => {
                out.problems.push(problem(&jid, e.to_string()));
                continue;
            }
        };
        if !seen.insert(d.clone()) {
            continue;
        }
        match consent(obj.get("serverTesting")) {
            Ok(Consent::Yes) => out.domains.push(d),
            Ok(Consent::NotGiven) => out.no_consent.push(d),
            Ok(Consent::Refused) => {
                out.refused.push(d.clone());
                out.no_consent.push(d);
            }
            Err(why) => {
                out.problems
                    .push(problem(&jid, format!("{why}; not crawled")));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> SourceSpec {
        s.parse().unwrap()
    }

    #[test]
    fn parses_explicit_specs() {
        assert_eq!(spec("text:a.dat"), SourceSpec::Text("a.dat".into()));
        assert_eq!(
            spec("csv:x.csv"),
            SourceSpec::Csv {
                path: "x.csv".into(),
                column: None
            }
        );
        assert_eq!(
            spec("csv:x.csv#Address"),
            SourceSpec::Csv {
                path: "x.csv".into(),
                column: Some("Address".into())
            }
        );
        assert_eq!(
            spec("providers:https://data.xmpp.net/providers/v2/providers.json"),
            SourceSpec::Providers(ProvidersLocation::Url(
                "https://data.xmpp.net/providers/v2/providers.json".into()
            ))
        );
        assert_eq!(
            spec("providers:http://127.0.0.1:8080/p"),
            SourceSpec::Providers(ProvidersLocation::Url("http://127.0.0.1:8080/p".into()))
        );
        assert_eq!(
            spec("providers:local/p.dat"),
            SourceSpec::Providers(ProvidersLocation::File("local/p.dat".into()))
        );
        assert_eq!(spec("db"), SourceSpec::Database);
    }

    #[test]
    fn guesses_bare_paths_by_extension() {
        assert_eq!(spec("d/list.txt"), SourceSpec::Text("d/list.txt".into()));
        assert_eq!(
            spec("servers.LIST"),
            SourceSpec::Text("servers.LIST".into())
        );
        assert_eq!(
            spec("export.csv"),
            SourceSpec::Csv {
                path: "export.csv".into(),
                column: None
            }
        );
        assert_eq!(
            spec("providers.json"),
            SourceSpec::Providers(ProvidersLocation::File("providers.json".into()))
        );
        assert_eq!(
            spec("https://example.org/p.json"),
            SourceSpec::Providers(ProvidersLocation::Url("https://example.org/p.json".into()))
        );
    }

    #[test]
    fn refuses_unknown_forms_naming_the_argument() {
        for bad in [
            "domains",
            "list.xlsx",
            "",
            "csv:",
            "csv:x.csv#",
            "providers:",
            "providers:ftp://example.org/p.json",
            "ftp://example.org/p.json",
            "text:",
        ] {
            let e = bad.parse::<SourceSpec>().unwrap_err();
            assert!(matches!(e, SourceError::UnknownFormat { .. }), "{bad}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("csv:FILE#COLUMN"), "{msg}");
        }
    }

    #[test]
    fn spec_display_round_trips() {
        for s in [
            "text:a.txt",
            "csv:b.csv",
            "csv:b.csv#jid",
            "providers:https://x.example/p.json",
            "providers:p.json",
            "db",
        ] {
            assert_eq!(spec(s).to_string(), s);
            assert_eq!(spec(&spec(s).to_string()), spec(s));
        }
    }

    #[test]
    fn problem_display() {
        let p = SourceProblem {
            source: "l.txt".into(),
            line: Some(4),
            entry: None,
            text: "bad domain".into(),
            error: "oops".into(),
        };
        assert_eq!(p.to_string(), "l.txt:4: \"bad domain\": oops");
        let p = SourceProblem {
            source: "p.json".into(),
            line: None,
            entry: Some(2),
            text: "x".into(),
            error: "oops".into(),
        };
        assert_eq!(p.to_string(), "p.json[2]: \"x\": oops");
        assert_eq!(
            SourceProblem::whole("http://h/p", "down").to_string(),
            "http://h/p: down"
        );
    }

    fn csv(
        text: &str,
        column: Option<&str>,
    ) -> Result<(Vec<String>, Vec<SourceProblem>), SourceError> {
        parse_csv(Path::new("s.csv"), text.as_bytes(), column, "s.csv")
    }

    #[test]
    fn csv_default_column_is_first_of_domain_jid_host() {
        let (good, bad) = csv("name,host,domain\nA,h.example,d.example\n", None).unwrap();
        assert_eq!(good, vec!["d.example"]);
        assert!(bad.is_empty());
        let (good, _) = csv("Host,JID\nh.example,u@j.example\n", None).unwrap();
        assert_eq!(good, vec!["j.example"], "jid wins over host");
        let (good, _) = csv("x,HOST\n1,Host.Example.\n", None).unwrap();
        assert_eq!(good, vec!["host.example"]);
    }

    #[test]
    fn csv_named_column_and_missing_column_errors() {
        let (good, _) = csv("addr,domain\na.example,b.example\n", Some("addr")).unwrap();
        assert_eq!(good, vec!["a.example"]);
        let e = csv("a,b\n1,2\n", Some("zone")).unwrap_err().to_string();
        assert!(e.starts_with("s.csv: no column \"zone\""), "{e}");
        assert!(e.contains("[\"a\", \"b\"]"), "{e}");
        let e = csv("example.org\nexample.net\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.csv") && e.contains("example.org"), "{e}");
        assert!(
            csv("", None)
                .unwrap_err()
                .to_string()
                .contains("header row")
        );
    }

    #[test]
    fn csv_reduces_jids_only_in_the_jid_column() {
        let text = "jid,note\nalice@Example.ORG/phone,x\nexample.net,y\nbob@example.org,z\n";
        let (good, bad) = csv(text, None).unwrap();
        assert_eq!(good, vec!["example.org", "example.net"]);
        assert!(bad.is_empty());
        let (good, bad) = csv("domain\nalice@example.org\nok.example\n", None).unwrap();
        assert_eq!(good, vec!["ok.example"]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, Some(2));
        assert_eq!(jid_domain("a@b.example/res/with@at"), "b.example");
        assert_eq!(jid_domain("b.example"), "b.example");
    }

    #[test]
    fn csv_reports_bad_records_with_their_line() {
        let text =
            "domain,n\n\"multi\nline.example\",1\nbad_name.example,2\n,3\nshort\ngood.example,4\n";
        let (good, bad) = csv(text, None).unwrap();
        assert_eq!(good, vec!["good.example"]);
        let lines: Vec<_> = bad.iter().map(|p| p.line).collect();
        // The quoted multi-line record starts on line 2; "short" is a single label.
        assert_eq!(lines, vec![Some(2), Some(4), Some(5), Some(6)], "{bad:?}");
        assert!(
            bad[2].to_string().contains("empty \"domain\" cell"),
            "{}",
            bad[2]
        );
    }

    #[test]
    fn providers_map_form_with_wrapped_consent() {
        let json = r#"{
          "yes.example": {"serverTesting": {"content": true, "source": "https://yes.example/.well-known/xmpp-provider-v2.json"}},
          "default.example": {"serverTesting": {"content": false, "source": ""}},
          "refused.example": {"serverTesting": {"content": false, "source": "https://refused.example/.well-known/xmpp-provider-v2.json"}},
          "missing.example": {"busFactor": {"content": 2, "source": ""}},
          "bad name.example": {"serverTesting": {"content": true}},
          "weird.example": {"serverTesting": "yes"},
          "Aa.example": {"serverTesting": {"content": true}}
        }"#;
        let p = parse_providers(json, "p.json").unwrap();
        assert_eq!(p.domains, vec!["yes.example", "aa.example"]);
        assert_eq!(
            p.no_consent,
            vec!["default.example", "refused.example", "missing.example"]
        );
        assert_eq!(p.refused, vec!["refused.example"]);
        let at: Vec<_> = p.problems.iter().map(|x| x.entry).collect();
        assert_eq!(at, vec![Some(4), Some(5)], "document order, not sorted");
        assert!(
            p.problems[0]
                .to_string()
                .starts_with("p.json[4]: \"bad name.example\"")
        );
    }

    #[test]
    fn providers_list_form_with_flat_consent() {
        let json = r#"[
          {"jid": "a.example", "serverTesting": true},
          {"jid": "b.example", "serverTesting": false},
          {"jid": "c.example"},
          {"jid": "d.example", "serverTesting": null},
          {"serverTesting": true},
          {"jid": 5, "serverTesting": true},
          "e.example",
          {"jid": "http://f.example", "serverTesting": true},
          {"jid": "a.example", "serverTesting": true}
        ]"#;
        let p = parse_providers(json, "p.json").unwrap();
        assert_eq!(p.domains, vec!["a.example"]);
        assert_eq!(p.no_consent, vec!["b.example", "c.example", "d.example"]);
        assert!(
            p.refused.is_empty(),
            "a flat false cannot tell default from refusal"
        );
        let at: Vec<_> = p.problems.iter().map(|x| x.entry).collect();
        assert_eq!(at, vec![Some(4), Some(5), Some(6), Some(7)]);
    }

    #[test]
    fn providers_broken_json_is_one_error() {
        for bad in ["{", "[1,", "\"just a string\"", "42", ""] {
            let e = parse_providers(bad, "p.json").unwrap_err();
            assert!(matches!(e, SourceError::BadJson { .. }), "{bad}: {e}");
            assert!(
                e.to_string().starts_with("p.json: not a providers list"),
                "{e}"
            );
        }
    }

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

    #[test]
    fn csv_cell_that_is_not_utf8_is_one_problem_with_its_line() {
        let text = b"domain,note\na.example,caf\xe9\nb\xe9.example,x\nc.example,y\n";
        let (good, bad) = parse_csv(Path::new("s.csv"), text, None, "s.csv").unwrap();
        assert_eq!(
            good,
            vec!["a.example", "c.example"],
            "other columns are not decoded"
        );
        assert_eq!(bad.len(), 1, "{bad:?}");
        let msg = bad[0].to_string();
        assert!(msg.starts_with("s.csv:3: "), "{msg}");
        assert!(msg.contains("not UTF-8"), "{msg}");
    }

    #[test]
    fn providers_line_that_is_not_utf8_is_named_and_the_rest_loads() {
        let json = b"{\n  \"a.example\": {\"serverTesting\": true},\n  \"b\xe9.example\": {\"serverTesting\": true},\n  \"c.example\": {\"serverTesting\": true}\n}\n";
        let p = parse_providers_bytes(json, "p.json").unwrap();
        assert_eq!(p.domains, vec!["a.example", "c.example"]);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        let msg = p.problems[0].to_string();
        assert!(msg.starts_with("p.json:3: "), "{msg}");
        assert!(msg.contains("not UTF-8"), "{msg}");
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
