//! How rows reach a mart store.
//!
//! A [`MartWriter`] is one store (the embedded Parquet mart or ClickHouse).
//! The mart sink loop (which tails the runtime's mart log, batches rows and
//! commits its cursor) talks to it only through this trait:
//!
//! 1. At start it asks [`MartWriter::stored_positions`]: the highest
//!    [`SourcePos`] stored per (table, source partition).
//! 2. It drops every row at or below that position (a row the store already
//!    has, from before a crash or from a retry whose answer was lost), so
//!    the store receives each row once.
//! 3. It calls [`MartWriter::write`] with the rest, table by table in
//!    position order. A write of one table's rows must be atomic (all or
//!    none visible), so that after a crash "highest stored position" is
//!    exact. An error says whether to retry ([`MartError::retry_hint`]):
//!    [`MartError::Unavailable`] is retried with backoff;
//!    [`MartError::Refused`] (a data or type error) is not retried: the
//!    loop sends the refused rows to the dead-letter log with the store's
//!    message.
//! 4. [`MartWriter::erase`] removes a member's rows (PIPL) so that the data
//!    is physically rewritten, after the rows before it are written.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::rows::{Erasure, MartBatch, SourcePos, Table};
use crate::MartError;

/// Highest stored position per (table, source partition).
pub type StoredPositions = BTreeMap<(Table, u32), SourcePos>;

/// A mart store that rows are written to.
#[async_trait]
pub trait MartWriter: Send + Sync {
    /// Highest position stored per (table, source partition).
    async fn stored_positions(&self) -> Result<StoredPositions, MartError>;

    /// Stores the batch's rows (not its erasures). Each table's rows are
    /// stored atomically.
    async fn write(&self, batch: &MartBatch) -> Result<(), MartError>;

    /// Removes or anonymises every row of the erased member ids in every
    /// table with [`Table::has_member`], rewriting the stored data.
    async fn erase(&self, erasure: &Erasure) -> Result<(), MartError>;

    /// A name for logs and metrics (`embedded` or `clickhouse`).
    fn backend(&self) -> &'static str;
}
