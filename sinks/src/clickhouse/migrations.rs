//! Versioned schema migrations: SQL files applied in order at start and
//! recorded in `schema_migrations` with a checksum of their text.
//!
//! - A migration is a file `migrations/NNNN_name.sql` of statements ended
//!   by `;` (lines starting with `--` are comments). Every statement is
//!   idempotent, so a start that died half-way through a migration simply
//!   runs it again: `CREATE ... IF NOT EXISTS`, or `ALTER TABLE t ADD
//!   COLUMN c ...`, which the runner skips when `t` already has `c`
//!   (ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`).
//! - Applied migrations are never edited: at start, an applied version
//!   whose recorded checksum differs from this binary's text refuses the
//!   start ([`SinkError::MigrationChanged`]); so does a version this binary
//!   does not know ([`SinkError::MigrationUnknown`], a newer StorePulse
//!   migrated the database). Change the schema with a new file.
//! - The same text runs on ClickHouse 18.16 and on current releases (the
//!   chDB test applies these files too).

use clickhouse::{Client, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};
use storepulse_mart::MartError;

use super::sql::classify;
use crate::error::{Result, SinkError};

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number; applied in increasing order.
    pub version: u32,
    /// The file name without `.sql`.
    pub name: &'static str,
    /// The file's text.
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_tables",
        sql: include_str!("migrations/0001_tables.sql"),
    },
    Migration {
        version: 2,
        name: "0002_aggregates",
        sql: include_str!("migrations/0002_aggregates.sql"),
    },
    Migration {
        version: 3,
        name: "0003_person_key",
        sql: include_str!("migrations/0003_person_key.sql"),
    },
];

/// The table recording applied migrations.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version UInt32, name String, checksum String, applied_ms Int64\
     ) ENGINE = MergeTree() ORDER BY version";

/// A row of `schema_migrations`.
#[derive(Debug, Row, Serialize)]
struct MigrationRecord<'a> {
    version: u32,
    name: &'a str,
    checksum: &'a str,
    applied_ms: i64,
}

/// SHA-256 of a migration's text, hex.
pub fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The statements of a migration: `--` comment lines dropped, split at `;`.
/// (Migrations hold no `;` inside literals.)
pub fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `(table, column)` of a statement `ALTER TABLE table ADD COLUMN column ...`.
pub fn added_column(stmt: &str) -> Option<(&str, &str)> {
    let mut words = stmt.split_whitespace();
    let head: Vec<&str> = words.by_ref().take(2).collect();
    if !head
        .iter()
        .map(|w| w.to_ascii_uppercase())
        .eq(["ALTER", "TABLE"])
    {
        return None;
    }
    let table = words.next()?;
    let add: Vec<&str> = words.by_ref().take(2).collect();
    if !add
        .iter()
        .map(|w| w.to_ascii_uppercase())
        .eq(["ADD", "COLUMN"])
    {
        return None;
    }
    Some((table, words.next()?))
}

/// Whether `table` of the client's database has `column`.
async fn has_column(client: &Client, table: &str, column: &str) -> Result<bool> {
    let n: u64 = client
        .query(
            "SELECT count() FROM system.columns \
             WHERE database = currentDatabase() AND table = ? AND name = ?",
        )
        .bind(table)
        .bind(column)
        .fetch_one()
        .await
        .map_err(|e| SinkError::Mart(classify(&e)))?;
    Ok(n > 0)
}

/// Applies every migration not yet recorded, in order, after checking the
/// recorded ones. Returns the versions applied now.
///
/// # Errors
/// [`SinkError::MigrationChanged`] / [`SinkError::MigrationUnknown`] as
/// above; [`SinkError::Mart`] when the server refuses a statement or is
/// away.
pub async fn apply(client: &Client) -> Result<Vec<u32>> {
    exec(client, CREATE_MIGRATIONS_TABLE).await?;
    let applied: Vec<(u32, String, String)> = client
        .query_raw("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .map_err(|e| SinkError::Mart(classify(&e)))?;
    for (version, name, sum) in &applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            None => {
                return Err(SinkError::MigrationUnknown {
                    version: *version,
                    name: name.clone(),
                })
            }
            Some(m) if checksum(m.sql) != *sum => {
                return Err(SinkError::MigrationChanged {
                    version: *version,
                    name: m.name.into(),
                    recorded: sum.clone(),
                    ours: checksum(m.sql),
                })
            }
            Some(_) => {}
        }
    }
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if applied.iter().any(|(v, _, _)| *v == m.version) {
            continue;
        }
        for stmt in statements(m.sql) {
            if let Some((table, column)) = added_column(&stmt) {
                if has_column(client, table, column).await? {
                    tracing::info!(table, column, "clickhouse column already added");
                    continue;
                }
            }
            exec(client, &stmt).await?;
        }
        let sum = checksum(m.sql);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let record = MigrationRecord {
            version: m.version,
            name: m.name,
            checksum: &sum,
            applied_ms: now_ms,
        };
        let run = async {
            let mut ins = client
                .insert::<MigrationRecord<'_>>(MIGRATIONS_TABLE)
                .await?;
            ins.write(&record).await?;
            ins.end().await
        };
        run.await.map_err(|e| SinkError::Mart(classify(&e)))?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "clickhouse migration applied"
        );
        done.push(m.version);
    }
    Ok(done)
}

async fn exec(client: &Client, sql: &str) -> Result<()> {
    client.query_raw(sql).execute().await.map_err(|e| {
        SinkError::Mart(match classify(&e) {
            MartError::Refused(m) => MartError::Refused(format!("{m} (in: {})", first_line(sql))),
            other => other,
        })
    })
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_split() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
            let stmts = statements(m.sql);
            assert!(!stmts.is_empty());
            for s in stmts {
                let idempotent = (s.starts_with("CREATE ") && s.contains("IF NOT EXISTS"))
                    || added_column(&s).is_some();
                assert!(idempotent, "not idempotent: {s}");
            }
        }
        assert_eq!(
            statements("-- a; b\nSELECT 1;\n\nSELECT 2;"),
            vec!["SELECT 1", "SELECT 2"]
        );
        assert_eq!(checksum("x").len(), 64);
        assert_eq!(
            added_column("ALTER TABLE t ADD COLUMN c String DEFAULT a AFTER a"),
            Some(("t", "c"))
        );
        assert_eq!(
            added_column("alter table t add column c String"),
            Some(("t", "c"))
        );
        assert_eq!(added_column("ALTER TABLE t DROP COLUMN c"), None);
        assert_eq!(added_column("ALTER TABLE t"), None);
    }
}
