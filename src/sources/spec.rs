//! The `--source` argument: its accepted forms ([`ACCEPTED_FORMS`]),
//! parsing ([`SourceSpec`]'s `FromStr`, explicit `kind:` prefixes or a
//! guess from the extension), display and the label used in problems.

use super::SourceError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The forms a `--source` argument may take, for error messages.
pub const ACCEPTED_FORMS: &str = "text:FILE, csv:FILE, csv:FILE#COLUMN, providers:URL (http/https), \
     providers:FILE, db, or a bare FILE ending in .txt/.list (text), .csv (csv) or .json (providers)";

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
    /// One domain a line, `#` comments; see [`crate::model::domain::parse_list`].
    Text(PathBuf),
    /// A CSV file with a header row; `column` names the domain column
    /// (default: the first of `domain`, `jid`, `host`).
    Csv {
        /// The file.
        path: PathBuf,
        /// The column to read, if not the default.
        column: Option<String>,
    },
    /// An XMPP Providers list (see [`parse_providers`](super::parse_providers) for the format).
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
}
