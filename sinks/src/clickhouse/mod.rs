//! ClickHouse mart: the mart's tables on a ClickHouse server, written by
//! the mart sink loop through [`ClickHouseMart`] (a
//! [`storepulse_mart::write::MartWriter`]) and read by the dashboard (a
//! [`storepulse_mart::query::MartReader`]).
//!
//! # Protocol
//!
//! The official `clickhouse` crate over HTTP (default port 8123): inserts
//! as `INSERT INTO t(cols) FORMAT RowBinary` (LZ4 on the wire), queries as
//! `SELECT .. FORMAT RowBinary`. Schema validation is off, because ClickHouse
//! 18.16 lacks `RowBinaryWithNamesAndTypes`; an integration test checks
//! the row structs against `system.columns` instead.
//!
//! # Files
//!
//! - `config.rs`: `[mart.clickhouse]` ([`ClickHouseConfig`]);
//! - `migrations.rs` + `migrations/*.sql`: versioned schema, applied at
//!   start, recorded with checksums in `schema_migrations`;
//! - `rows.rs`: the insert row of each table (borrowing the mart's rows);
//! - `sink.rs`: [`ClickHouseMart`]: connect, `stored_positions`, `write`,
//!   `erase`;
//! - `query.rs`: the dashboard's queries;
//! - `sql.rs`: string literals, filters, error classification;
//! - `integration_tests.rs`: against a real server
//!   (`STOREPULSE_TEST_CLICKHOUSE`, default `http://127.0.0.1:8123`;
//!   `deploy/clickhouse.sh start` runs one).
//!
//! # Guarantees and limits
//!
//! - **Exactly once** with the sink loop: each row carries its source
//!   position; `stored_positions` is the greatest (offset, index) per
//!   (table, source partition), and the loop drops rows at or below it.
//!   Each table's rows of a batch go in one `INSERT` of at most
//!   [`sink::MAX_INSERT_ROWS`] rows into a table without `PARTITION BY`, so
//!   an insert is one part, all or nothing, and a retry after a lost answer
//!   re-sends nothing that is stored. Aggregate tables are fed by
//!   materialised views from those inserts, so they count each row once
//!   too. Limit: a *server* crash between writing a sale part and the
//!   views' parts (18.16 writes them one after the other) can leave the
//!   aggregates short of that insert; `sale_lines` stays exact.
//! - **Errors**: transport failures, timeouts and overload codes (202, 241,
//!   252, ...) are `Unavailable` (retried); any other exception (53 type
//!   mismatch, 117 bad data, 27 parse, 60 unknown table, ...) is `Refused`
//!   with the server's message (to the dead letters, never retried).
//! - **Erasure** runs `ALTER TABLE .. DELETE` (points, tags,
//!   registrations) and `ALTER TABLE .. UPDATE member_id = ''` (sales,
//!   returns, alerts: the sale stays counted, the person is gone) and waits
//!   until `system.mutations` reports them done: the parts are rewritten.
//! - Versions: ClickHouse 18.16 (tested against a server) and current
//!   releases (migrations and queries tested on chDB 26.x).

pub mod config;
pub mod migrations;
pub mod query;
pub mod rows;
pub mod sink;
pub mod sql;
pub mod testdata;

#[cfg(test)]
mod integration_tests;
#[cfg(test)]
mod row_policies;

pub use config::ClickHouseConfig;
pub use sink::ClickHouseMart;
