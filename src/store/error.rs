//! What can go wrong talking to PostgreSQL, split so the crawler can tell
//! "the database is gone, wait and retry" ([`StoreError::Unavailable`])
//! from everything that retrying will not fix.

/// An error of the store. A *measured* failure is never one of these: it
/// is data in the report. These are the database's and the caller's faults.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The server could not be reached or the connection was lost (I/O,
    /// TLS, pool timeout, SQLSTATE class 08, shutdown 57P0x, too many
    /// connections 53300). Transient: the crawler waits and retries.
    #[error("PostgreSQL at {url} is unavailable: {source}")]
    Unavailable {
        /// The database URL, password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database URL does not parse.
    #[error("invalid database URL {url}: {source}")]
    Config {
        /// The URL, password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The database was migrated by a newer xmpp-survey: writing to it with
    /// this binary could corrupt data the newer schema relies on.
    #[error(
        "the database schema is version {db}, newer than this binary knows ({binary}): upgrade xmpp-survey"
    )]
    SchemaTooNew {
        /// Version found in `schema_version`.
        db: i32,
        /// Highest version this binary can apply.
        binary: i32,
    },
    /// A schema version this binary has no migration for was asked for
    /// (`Store::migrate_to`).
    #[error("schema version {version} is unknown to this binary (it knows 1 to {binary})")]
    UnknownSchemaVersion {
        /// The version asked for.
        version: i32,
        /// Highest version this binary can apply.
        binary: i32,
    },
    /// The crawl id does not exist.
    #[error("crawl {0} does not exist")]
    NoSuchCrawl(i64),
    /// The domain is not in this crawl's queue, so it has no place to be
    /// recorded or rescheduled.
    #[error("domain {domain_id} is not queued in crawl {crawl_id}")]
    NotQueued {
        /// The crawl.
        crawl_id: i64,
        /// The domain.
        domain_id: i64,
    },
    /// A report was recorded under another domain's id: a caller bug that
    /// would file evidence under the wrong name.
    #[error("domain id {domain_id} is {stored}, but the report is for {reported}")]
    DomainMismatch {
        /// The id given.
        domain_id: i64,
        /// Its name in the database.
        stored: String,
        /// The report's domain.
        reported: String,
    },
    /// A domain name that is not normalised (lowercase, no trailing dot,
    /// not empty); normalise with `crate::domain` first.
    #[error("domain name {0:?} is not normalised")]
    InvalidDomain(String),
    /// A row could not be put into COPY format (a row type that does not
    /// serialise to columns): that domain's result is unstorable.
    #[error("cannot encode rows for COPY: {0}")]
    Encode(#[from] super::copy::CopyEncodeError),
    /// Any other database error (constraint violation, SQL error, bug).
    #[error("database error at {url}: {source}")]
    Database {
        /// The database URL, password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Whether waiting and retrying may help (connection lost or refused).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The database refused the *data* of a write (SQLSTATE class 22,
    /// data exception: e.g. 22P05 U+0000 in jsonb, 22009 a time zone
    /// displacement out of range; class 23, a constraint such as a CHECK
    /// list): one domain's result is unstorable, the store is fine. Any
    /// other error (a trigger raising, a missing table) concerns every
    /// write and stops the crawl.
    pub fn is_unstorable_data(&self) -> bool {
        match self {
            Self::Database {
                source: sqlx::Error::Database(db),
                ..
            } => db
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
            Self::DomainMismatch { .. } | Self::InvalidDomain(_) | Self::Encode(_) => true,
            _ => false,
        }
    }

    /// Classifies a driver error; `url` must already be redacted.
    pub(crate) fn from_sqlx(url: &str, source: sqlx::Error) -> Self {
        let url = url.to_string();
        if is_connection_error(&source) {
            Self::Unavailable { url, source }
        } else {
            Self::Database { url, source }
        }
    }
}

/// SQLSTATEs that mean the connection, not the statement, failed:
/// class 08 (connection exception), 57P01 admin shutdown, 57P02 crash
/// shutdown, 57P03 cannot connect now (starting up), 53300 too many
/// connections.
fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// The URL with its password (userinfo or `password=` parameter) replaced
/// by `***`, so errors and logs can name the database safely.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = rest_start..rest_start + at;
            if let Some(colon) = out[userinfo.clone()].find(':') {
                out.replace_range(userinfo.start + colon + 1..userinfo.end, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_appear() {
        assert_eq!(
            redact_url("postgres://u:s3cr@t@db.example:5432/x"),
            "postgres://u:***@db.example:5432/x"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:1/x"),
            "postgres://postgres@127.0.0.1:1/x"
        );
        assert_eq!(
            redact_url("postgresql://h/db?user=u&password=pw&sslmode=disable"),
            "postgresql://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
