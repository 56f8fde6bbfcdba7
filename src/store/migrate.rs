//! Versioned schema migrations: each version is applied once, in its own
//! transaction, under an advisory lock, and a database newer than the
//! binary is refused rather than written to.

use super::StoreError;
use sqlx::PgConnection;

/// One schema version: the SQL that takes the previous version to it.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version number, from 1, without gaps.
    pub version: i32,
    /// Where the SQL comes from (for messages).
    pub name: &'static str,
    /// The statements, run with `sqlx::raw_sql` inside one transaction.
    pub sql: &'static str,
}

/// Every migration this binary knows, in order. Version 1 is the whole
/// schema; later versions go in `migrations/NNNN_name.sql` and are added
/// here with `include_str!`, never by editing an applied file.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema.sql",
        sql: include_str!("../../schema.sql"),
    },
    Migration {
        version: 2,
        name: "migrations/0002_acceptance_evidence.sql",
        sql: include_str!("../../migrations/0002_acceptance_evidence.sql"),
    },
    Migration {
        version: 3,
        name: "migrations/0003_web.sql",
        sql: include_str!("../../migrations/0003_web.sql"),
    },
    Migration {
        version: 4,
        name: "migrations/0004_changes.sql",
        sql: include_str!("../../migrations/0004_changes.sql"),
    },
    Migration {
        version: 5,
        name: "migrations/0005_workers.sql",
        sql: include_str!("../../migrations/0005_workers.sql"),
    },
    Migration {
        version: 6,
        name: "migrations/0006_raw_retention.sql",
        sql: include_str!("../../migrations/0006_raw_retention.sql"),
    },
    Migration {
        version: 7,
        name: "migrations/0007_lz4_reports.sql",
        sql: include_str!("../../migrations/0007_lz4_reports.sql"),
    },
];

/// The schema version this binary writes.
pub const BINARY_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Advisory lock key ("xmppsurv" in ASCII) held while migrating, so two
/// crawlers starting together do not both apply version 1.
pub const MIGRATION_LOCK: i64 = 0x786d_7070_7375_7276;

/// Reads the database's schema version (`None`: no `schema_version` table).
pub(super) async fn current_version(conn: &mut PgConnection) -> Result<Option<i32>, sqlx::Error> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass('schema_version')::text")
        .fetch_one(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT max(version) FROM schema_version")
        .fetch_one(&mut *conn)
        .await
}

/// Applies the missing migrations up to `target` (never past it, never
/// down); the caller holds [`MIGRATION_LOCK`] and checked `target` is a
/// known version.
pub(super) async fn apply_missing(
    conn: &mut PgConnection,
    url: &str,
    target: i32,
) -> Result<Vec<i32>, StoreError> {
    let e = |err| StoreError::from_sqlx(url, err);
    let current = current_version(conn).await.map_err(e)?.unwrap_or(0);
    if current > BINARY_VERSION {
        return Err(StoreError::SchemaTooNew {
            db: current,
            binary: BINARY_VERSION,
        });
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > current && m.version <= target)
    {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(e)?;
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(e)?;
        sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
            .bind(m.version)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        tx.commit().await.map_err(e)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
        applied.push(m.version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "{}", m.name);
        }
    }

    /// Tables created and columns created, added or renamed by one
    /// migration, as `table.column` (tables alone for `CREATE TABLE`).
    fn declared(sql: &str) -> (Vec<String>, Vec<String>) {
        let (mut tables, mut columns) = (Vec::new(), Vec::new());
        let mut in_table: Option<String> = None;
        let mut altering: Option<String> = None;
        for line in sql.lines() {
            let trimmed = line.trim();
            if let Some(t) = line.strip_prefix("CREATE TABLE ") {
                let t = t.trim_end_matches(" (").trim().to_string();
                tables.push(t.clone());
                in_table = Some(t);
                continue;
            }
            if let Some(t) = &in_table {
                if line.starts_with(");") {
                    in_table = None;
                } else if line.starts_with("    ") && !line.starts_with("     ") {
                    let word = trimmed.split_whitespace().next().unwrap_or_default();
                    let constraint = ["PRIMARY", "FOREIGN", "CHECK", "UNIQUE", "CONSTRAINT", "--"]
                        .iter()
                        .any(|k| word.starts_with(k));
                    if !constraint {
                        columns.push(format!("{t}.{word}"));
                    }
                }
                continue;
            }
            if let Some(t) = line.strip_prefix("ALTER TABLE ") {
                let t = t.split_whitespace().next().unwrap_or_default().to_string();
                if let Some((_, rest)) = line.split_once(" RENAME COLUMN ") {
                    let new = rest.rsplit(" TO ").next().unwrap_or_default();
                    columns.push(format!("{t}.{}", new.trim_end_matches(';')));
                }
                altering = Some(t);
            }
            if let Some(t) = &altering {
                if let Some((_, rest)) = trimmed.split_once("ADD COLUMN ") {
                    let c = rest.split_whitespace().next().unwrap_or_default();
                    columns.push(format!("{t}.{c}"));
                }
                if trimmed.ends_with(';') {
                    altering = None;
                }
            }
        }
        (tables, columns)
    }

    #[test]
    fn every_table_and_column_of_every_migration_is_commented() {
        for m in MIGRATIONS {
            let (tables, columns) = declared(m.sql);
            if m.version == 1 {
                assert!(tables.len() >= 9, "{tables:?}");
                assert!(columns.len() >= 100, "{columns:?}");
            }
            for t in &tables {
                assert!(
                    m.sql.contains(&format!("COMMENT ON TABLE {t} IS")),
                    "{}: table {t} has no comment",
                    m.name
                );
            }
            for c in &columns {
                assert!(
                    m.sql.contains(&format!("COMMENT ON COLUMN {c} IS")),
                    "{}: column {c} has no comment",
                    m.name
                );
            }
        }
        // The live catalogue is checked too, by the integration test
        // `every_column_has_a_comment`.
    }

    #[test]
    fn version_two_declares_its_tables_and_columns() {
        let (tables, columns) = declared(MIGRATIONS[1].sql);
        assert_eq!(
            tables,
            [
                "acceptance_attempts",
                "acceptance_dialback",
                "inbound_streams"
            ]
        );
        for c in [
            "crawls.error",
            "results.acceptance_reason_text",
            "results.acceptance_reason",
            "results.s2s_client_purpose",
            "endpoints.starttls_injected_bytes",
            "endpoints.client_purpose",
            "acceptance_attempts.external_condition",
            "inbound_streams.client_purpose",
        ] {
            assert!(
                columns.iter().any(|x| x == c),
                "{c} not parsed: {columns:?}"
            );
        }
    }
}
