//! Per-domain, per-endpoint and per-certificate CSV files, streamed row by
//! row from PostgreSQL into the `csv` writer (never held in memory).

use super::ReportError;
use futures::TryStreamExt;
use sqlx::{PgPool, Row};
use std::path::Path;

/// One CSV: its file name, its columns (name, SQL expression) and the
/// FROM/WHERE/ORDER BY clause (`$1` the crawl, `$2` the compared crawl).
pub struct CsvSpec {
    /// File name.
    pub file: &'static str,
    /// (column, expression) pairs.
    pub columns: &'static [(&'static str, &'static str)],
    /// The rest of the statement.
    pub from: &'static str,
}

/// The per-domain file (results left-joined to the queue: not tested
/// domains appear with their reason).
pub const DOMAINS: CsvSpec = CsvSpec {
    file: "domains.csv",
    columns: &[
        ("domain", "d.name"),
        ("state", "q.state"),
        (
            "not_tested_reason",
            "CASE WHEN q.state = 'not_tested' THEN q.last_error END",
        ),
        (
            "probed_at",
            "to_char(r.probed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        ),
        ("dnssec", "r.dnssec"),
        ("c2s_status", "r.c2s_status"),
        ("c2s_starttls", "r.c2s_starttls"),
        (
            "c2s_sasl_before_tls",
            "array_to_string(r.c2s_sasl_before_tls, ' ')",
        ),
        ("c2s_direct_tls", "r.c2s_direct_tls::text"),
        ("c2s_tls_version", "r.c2s_tls_version"),
        ("c2s_chain_verdict", "r.c2s_chain_verdict"),
        ("c2s_eku_class", "r.c2s_eku_class"),
        ("c2s_client_purpose", "r.c2s_client_purpose"),
        ("s2s_status", "r.s2s_status"),
        ("s2s_starttls", "r.s2s_starttls"),
        (
            "s2s_sasl_before_tls",
            "array_to_string(r.s2s_sasl_before_tls, ' ')",
        ),
        ("s2s_direct_tls", "r.s2s_direct_tls::text"),
        ("s2s_tls_version", "r.s2s_tls_version"),
        ("s2s_chain_verdict", "r.s2s_chain_verdict"),
        ("s2s_eku_class", "r.s2s_eku_class"),
        ("s2s_client_purpose", "r.s2s_client_purpose"),
        ("s2s_lets_encrypt", "r.s2s_lets_encrypt::text"),
        ("s2s_renews_server_only", "r.s2s_renews_server_only::text"),
        ("s2s_dialback_offered", "r.s2s_dialback_offered::text"),
        ("s2s_dane_match", "r.s2s_dane_match::text"),
        ("acceptance", "r.acceptance"),
        ("acceptance_reason", "r.acceptance_reason"),
        ("software_name", "r.software_name"),
        ("software_version", "r.software_version"),
    ],
    from: "FROM crawl_queue q JOIN domains d ON d.id = q.domain_id
           LEFT JOIN results r ON r.crawl_id = q.crawl_id AND r.domain_id = q.domain_id
          WHERE q.crawl_id = $1 ORDER BY d.name",
};

/// The per-endpoint file.
pub const ENDPOINTS: CsvSpec = CsvSpec {
    file: "endpoints.csv",
    columns: &[
        ("domain", "d.name"),
        ("ordinal", "e.ordinal::text"),
        ("service", "e.service"),
        ("transport", "e.transport"),
        ("host", "e.host"),
        ("ip", "host(e.ip)"),
        ("port", "e.port::text"),
        ("source", "e.source"),
        ("connect", "e.connect"),
        ("outcome", "e.outcome"),
        ("phase", "e.phase"),
        ("starttls", "e.starttls"),
        ("tls_failure", "e.tls_failure"),
        ("tls_version", "e.tls_version"),
        ("cipher_suite", "e.cipher_suite"),
        ("client_cert_requested", "e.client_cert_requested::text"),
        ("chain_verdict", "e.chain_verdict"),
        ("name_match", "e.name_match"),
        ("client_purpose", "e.client_purpose"),
        ("dane_match", "e.dane_match::text"),
        ("leaf_sha256", "e.leaf_sha256"),
    ],
    from: "FROM endpoints e JOIN domains d ON d.id = e.domain_id
          WHERE e.crawl_id = $1 ORDER BY d.name, e.ordinal",
};

/// The per-certificate file: every certificate some endpoint of the crawl
/// presented, once.
pub const CERTIFICATES: CsvSpec = CsvSpec {
    file: "certificates.csv",
    columns: &[
        ("sha256", "c.sha256"),
        ("subject", "c.subject"),
        ("issuer", "c.issuer"),
        (
            "not_before",
            "to_char(c.not_before AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        ),
        (
            "not_after",
            "to_char(c.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        ),
        ("key_algorithm", "c.key_algorithm"),
        ("key_bits", "c.key_bits::text"),
        ("eku_class", "c.eku_class"),
        ("eku_oids", "array_to_string(c.eku_oids, ' ')"),
        ("is_ca", "c.is_ca::text"),
        ("self_signed", "c.self_signed::text"),
        ("lets_encrypt", "c.lets_encrypt::text"),
        ("renews_server_only", "c.renews_server_only::text"),
        ("endpoints", "count(*)::text"),
    ],
    from: "FROM chain_members m JOIN certificates c ON c.sha256 = m.sha256
          WHERE m.crawl_id = $1 GROUP BY c.sha256 ORDER BY c.sha256",
};

/// The per-domain changes since the previous finished crawl
/// (`domain_changes`); only the header when there are none.
pub const DOMAIN_CHANGES: CsvSpec = CsvSpec {
    file: "domain_changes.csv",
    columns: &[
        ("domain", "d.name"),
        ("previous_crawl", "p.label"),
        ("kind", "x.kind"),
        ("scope", "x.scope"),
        ("before", "x.before"),
        ("after", "x.after"),
    ],
    from: "FROM domain_changes x JOIN domains d ON d.id = x.domain_id
           JOIN crawls p ON p.id = x.previous_crawl_id
          WHERE x.crawl_id = $1 ORDER BY d.name, x.kind, x.scope",
};

/// Streams `spec` for `crawl_id` into `dir/spec.file`; returns the rows
/// written.
pub async fn write(
    pool: &PgPool,
    spec: &CsvSpec,
    crawl_id: i64,
    dir: &Path,
) -> Result<u64, ReportError> {
    let path = dir.join(spec.file);
    let cols = spec
        .columns
        .iter()
        .map(|(name, expr)| format!("({expr})::text AS {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {cols} {}", spec.from);
    stream(
        pool,
        &sql,
        &[crawl_id],
        &path,
        spec.columns.iter().map(|c| c.0),
    )
    .await
}

/// Streams any all-text query (binding `ids` as `$1`, `$2`...) to `path`.
pub async fn stream<'a>(
    pool: &PgPool,
    sql: &str,
    ids: &[i64],
    path: &Path,
    header: impl IntoIterator<Item = &'a str>,
) -> Result<u64, ReportError> {
    let csv_err = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(csv_err)?;
    let header: Vec<&str> = header.into_iter().collect();
    w.write_record(&header).map_err(csv_err)?;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for id in ids {
        q = q.bind(*id);
    }
    let mut rows = q.fetch(pool);
    let mut n = 0u64;
    while let Some(row) = rows.try_next().await? {
        let record: Vec<String> = (0..header.len())
            .map(|i| {
                row.try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            })
            .collect();
        w.write_record(&record).map_err(csv_err)?;
        n += 1;
    }
    w.flush().map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(n)
}
