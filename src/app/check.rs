//! `config check`: validates the config file and everything it names
//! (identity certificates and keys, extra CAs, source files, the fallback
//! snapshot, opt-out lists, the report's seeds, the database URL and,
//! unless offline, the database itself and its schema). It never sends a
//! packet to a target and never fetches a providers URL: each problem
//! names the key or file at fault.

use super::crawl::open_store;
use super::error_chain;
use super::file::{ConfigFile, ConfigFileError};
use crate::identity::ProbeIdentity;
use crate::sources::{self, ProvidersLocation, SourceSpec};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// One problem: the key (e.g. `identity`, `net.extra_ca[0]`,
/// `database.url`) or file at fault, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, or the file when the file itself is at fault.
    pub key: String,
    /// Why, naming the file it read where there is one.
    pub why: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.why)
    }
}

fn problem(key: impl Into<String>, why: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        why: why.into(),
    }
}

/// What [`check`] looks at besides the file.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Overrides `[database] url` (`--database-url`, `DATABASE_URL`).
    pub database_url: Option<String>,
    /// Skip connecting to the database (its URL is still parsed).
    pub offline: bool,
}

/// Checks the file at `path`; returns every problem found (empty: all
/// good). A file that does not parse is one problem and nothing else is
/// checked.
pub async fn check(path: &Path, opts: &CheckOptions) -> Vec<Problem> {
    let file = match ConfigFile::load(path) {
        Ok(f) => f,
        Err(e) => {
            let why = match e {
                ConfigFileError::Parse { reason, .. } => reason,
                other => error_chain(&other),
            };
            return vec![problem(path.display().to_string(), why)];
        }
    };
    let mut out = check_files(&file);
    match opts.database_url.as_ref().or(file.database.url.as_ref()) {
        None => out.push(problem(
            "database.url",
            "not set (nor --database-url, DATABASE_URL)",
        )),
        Some(url) => {
            if let Err(e) = sqlx::postgres::PgConnectOptions::from_str(url) {
                out.push(problem(
                    "database.url",
                    format!("not a PostgreSQL URL: {e}"),
                ));
            } else if !opts.offline
                && let Err(e) = open_store(url).await
            {
                out.push(problem("database.url", error_chain(&e)));
            }
        }
    }
    out
}

/// Everything local the file names: identity, CAs, sources, fallback,
/// opt-outs, seeds, report folder.
pub fn check_files(file: &ConfigFile) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Err(e) = ProbeIdentity::from_config(&file.identity) {
        out.push(problem("identity", e.to_string()));
    }
    for (i, ca) in file.net.extra_ca.iter().flatten().enumerate() {
        if let Err(e) = crate::tls::verify::load_extra_ca(ca) {
            out.push(problem(format!("net.extra_ca[{i}]"), e.to_string()));
        }
    }
    for (i, s) in file.source_list().iter().enumerate() {
        let key = format!("sources.list[{i}]");
        let spec = match s.parse::<SourceSpec>() {
            Ok(spec) => spec,
            Err(e) => {
                out.push(problem(key, e.to_string()));
                continue;
            }
        };
        let path = match &spec {
            SourceSpec::Text(p)
            | SourceSpec::Csv { path: p, .. }
            | SourceSpec::Providers(ProvidersLocation::File(p)) => p,
            SourceSpec::Providers(ProvidersLocation::Url(_)) | SourceSpec::Database => continue,
        };
        match std::fs::read(path) {
            Err(e) => out.push(problem(key, format!("cannot read {}: {e}", path.display()))),
            Ok(bytes) => {
                if matches!(spec, SourceSpec::Providers(_))
                    && let Err(e) = sources::parse_providers_bytes(&bytes, &spec.label())
                {
                    out.push(problem(key, e.to_string()));
                }
            }
        }
    }
    if let Some(f) = &file.sources.fallback {
        match std::fs::read(f) {
            Err(e) => out.push(problem(
                "sources.fallback",
                format!("cannot read {}: {e}", f.display()),
            )),
            Ok(bytes) => {
                if let Err(e) = sources::parse_providers_bytes(&bytes, &f.display().to_string()) {
                    out.push(problem("sources.fallback", e.to_string()));
                }
            }
        }
    }
    for (i, f) in file.sources.opt_out.iter().flatten().enumerate() {
        if let Err(e) = sources::load_opt_out_file(f) {
            out.push(problem(format!("sources.opt_out[{i}]"), e.to_string()));
        }
    }
    if let Some(seeds) = &file.report.seeds {
        match std::fs::read_to_string(seeds) {
            Err(e) => out.push(problem(
                "report.seeds",
                format!("cannot read {}: {e}", seeds.display()),
            )),
            Ok(text) => {
                if let Err(e) = crate::report::seeds::Seeds::parse(&text) {
                    out.push(problem("report.seeds", format!("{}: {e}", seeds.display())));
                }
            }
        }
    }
    if let Some(dir) = &file.report.out_dir
        && dir.exists()
        && !dir.is_dir()
    {
        out.push(problem(
            "report.out_dir",
            format!("{} is not a folder", dir.display()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn problems_name_their_key_and_file() {
        let dir = std::env::temp_dir().join(format!("xs-check-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad-ca.pem"), "not a pem").unwrap();
        std::fs::write(dir.join("ok.txt"), "a.example\n").unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            r#"
[database]
url = "::not a url"
[sources]
list = ["text:ok.txt", "text:missing.txt", "db"]
fallback = "ok.txt"
[net]
extra_ca = ["bad-ca.pem"]
[identity]
domain = "probe.example"
server_only_cert = "so.pem"
server_only_key = "so.key"
"#,
        )
        .unwrap();
        let p = check(&f, &CheckOptions::default()).await;
        let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "identity",
                "net.extra_ca[0]",
                "sources.list[1]",
                "sources.fallback",
                "database.url"
            ],
            "{shown:#?}"
        );
        assert!(shown[0].contains("so.pem"), "{shown:#?}");
        assert!(shown[1].contains("bad-ca.pem"), "{shown:#?}");
        assert!(shown[2].contains("missing.txt"), "{shown:#?}");
        let good = dir.join("good.toml");
        std::fs::write(&good, "[sources]\nlist = [\"text:ok.txt\"]\n").unwrap();
        let p = check(
            &good,
            &CheckOptions {
                database_url: Some("postgres://u@127.0.0.1:1/x".into()),
                offline: true,
            },
        )
        .await;
        assert!(p.is_empty(), "{p:?}");
    }
}
