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
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "schema.sql",
    sql: include_str!("../../schema.sql"),
}];

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

/// Applies the missing migrations; the caller holds [`MIGRATION_LOCK`].
pub(super) async fn apply_missing(
    conn: &mut PgConnection,
    url: &str,
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
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
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

    #[test]
    fn every_table_and_column_of_version_one_is_commented() {
        let sql = MIGRATIONS[0].sql;
        let tables: Vec<&str> = sql
            .lines()
            .filter_map(|l| l.strip_prefix("CREATE TABLE "))
            .map(|l| l.trim_end_matches(" (").trim())
            .collect();
        assert!(tables.len() >= 9, "{tables:?}");
        for t in tables {
            assert!(
                sql.contains(&format!("COMMENT ON TABLE {t} IS")),
                "table {t} has no comment"
            );
        }
        // Column comments are checked against the live catalogue by the
        // integration test `every_column_has_a_comment`.
    }
}
