//! The StorePulse data mart, independent of where it is stored.
//!
//! - [`rows`]: the mart's tables as Rust structs, one row per fact (a sale
//!   line, a stock change, a points entry, a tag change, an alert, a
//!   decision, a rejected event). Every row carries its *source position*
//!   ([`rows::SourcePos`]): the partition and offset of the event it came
//!   from and its index among that event's rows of the same table. Positions
//!   only grow within a source partition, which is what makes the sinks
//!   exactly-once: a sink remembers the highest position it has stored per
//!   (table, source partition) and drops anything at or below it.
//! - [`derive`]: pure functions from an applied event (and what the
//!   processors said about it) to rows. No I/O, no clock.
//! - [`query`]: what the dashboard asks the mart ([`query::MartReader`]),
//!   with the scope already resolved on the server. Both stores implement
//!   it: ClickHouse (`storepulse-sinks`) and the embedded Parquet mart.
//!
//! - [`sink`]: the loop that tails the runtime's mart log and writes rows
//!   to a [`write::MartWriter`] exactly once (positions, cursor, retries,
//!   dead letters, erasures).
//! - [`embedded`]: the default store: Parquet files under
//!   `data_dir/mart/<table>/` ([`embedded::ParquetMart`]) queried with
//!   DataFusion ([`embedded::reader::DataFusionMart`]).
//! - [`sql`]: the SQL of every dashboard query, shared with ClickHouse.
//!
//! Calendar days and hours are China time (UTC+8, `storepulse_core::time`),
//! computed once when the row is made, so every store groups by plain
//! columns and the SQL stays portable between ClickHouse and DataFusion.

pub mod derive;
pub mod embedded;
pub mod error;
pub mod query;
pub mod rows;
pub mod sink;
pub mod sql;
pub mod write;

#[cfg(test)]
mod testutil;

pub use error::MartError;
