//! Rows as Arrow record batches: one schema per table, the columns in the
//! order of the row structs (and the same names as in ClickHouse).
//!
//! `day` is `Date32` (days since 1970, as ClickHouse `Date`), so SQL compares
//! it with `'2026-12-01'` literals the same way in both stores.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Date32Array, Int64Array, Int8Array, RecordBatch, StringArray, UInt32Array,
    UInt64Array, UInt8Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use crate::rows::{MartBatch, Table};

macro_rules! data_type {
    (Str) => {
        DataType::Utf8
    };
    (I64) => {
        DataType::Int64
    };
    (I8) => {
        DataType::Int8
    };
    (U8) => {
        DataType::UInt8
    };
    (U32) => {
        DataType::UInt32
    };
    (U64) => {
        DataType::UInt64
    };
    (Day) => {
        DataType::Date32
    };
}

macro_rules! column {
    (Str, $rows:expr, $f:ident) => {
        Arc::new(StringArray::from_iter_values(
            $rows.iter().map(|r| r.$f.as_str()),
        )) as ArrayRef
    };
    (I64, $rows:expr, $f:ident) => {
        Arc::new(Int64Array::from_iter_values($rows.iter().map(|r| r.$f))) as ArrayRef
    };
    (I8, $rows:expr, $f:ident) => {
        Arc::new(Int8Array::from_iter_values($rows.iter().map(|r| r.$f))) as ArrayRef
    };
    (U8, $rows:expr, $f:ident) => {
        Arc::new(UInt8Array::from_iter_values($rows.iter().map(|r| r.$f))) as ArrayRef
    };
    (U32, $rows:expr, $f:ident) => {
        Arc::new(UInt32Array::from_iter_values($rows.iter().map(|r| r.$f))) as ArrayRef
    };
    (U64, $rows:expr, $f:ident) => {
        Arc::new(UInt64Array::from_iter_values($rows.iter().map(|r| r.$f))) as ArrayRef
    };
    (Day, $rows:expr, $f:ident) => {
        Arc::new(Date32Array::from_iter_values(
            $rows.iter().map(|r| i32::from(r.$f)),
        )) as ArrayRef
    };
}

macro_rules! tables {
    ($( $table:ident => $field:ident [ $( $col:ident : $kind:ident ),* $(,)? ] ;)*) => {
        /// The Arrow schema of a table.
        pub fn schema(table: Table) -> SchemaRef {
            match table {
                $( Table::$table => Arc::new(Schema::new(vec![
                    $( Field::new(stringify!($col), data_type!($kind), false) ),*
                ])), )*
            }
        }

        /// The batch's rows of `table` as a record batch (`None`: no rows).
        ///
        /// # Errors
        /// Never in practice (columns are built from the schema's own types).
        pub fn record_batch(batch: &MartBatch, table: Table) -> Result<Option<RecordBatch>, ArrowError> {
            match table {
                $( Table::$table => {
                    let rows = &batch.$field;
                    if rows.is_empty() {
                        return Ok(None);
                    }
                    let columns: Vec<ArrayRef> = vec![ $( column!($kind, rows, $col) ),* ];
                    RecordBatch::try_new(schema(table), columns).map(Some)
                } )*
            }
        }
    };
}

tables! {
    SaleLines => sale_lines [
        event_id: Str, line_no: U32, order_id: Str, store_id: Str, region: Str,
        channel: Str, fulfillment: Str, payment_method: Str, member_id: Str, sku: Str,
        qty: I64, unit_price_cents: I64, net_cents: I64, promo: U8, occurred_ms: I64,
        day: Day, hour: U8, src_partition: U32, src_offset: U64, src_index: U32,
    ];
    ReturnLines => return_lines [
        event_id: Str, line_no: U32, order_id: Str, store_id: Str, region: Str,
        channel: Str, member_id: Str, sku: Str, qty: I64, refund_cents: I64, restock: U8,
        occurred_ms: I64, day: Day, hour: U8, src_partition: U32, src_offset: U64,
        src_index: U32,
    ];
    StockChanges => stock_changes [
        event_id: Str, line_no: U32, kind: Str, store_id: Str, region: Str, sku: Str,
        delta: I64, counted: I64, occurred_ms: I64, day: Day, hour: U8,
        src_partition: U32, src_offset: U64, src_index: U32,
    ];
    StockLevels => stock_levels [
        store_id: Str, region: Str, sku: Str, on_hand: I64, event_id: Str,
        occurred_ms: I64, day: Day, src_partition: U32, src_offset: U64, src_index: U32,
    ];
    PointsLedger => points_ledger [
        member_id: Str, event_id: Str, kind: Str, store_id: Str, region: Str,
        points: I64, occurred_ms: I64, day: Day, src_partition: U32, src_offset: U64,
        src_index: U32,
    ];
    MemberRegistrations => member_registrations [
        member_id: Str, canonical_id: Str, person_key: Str, event_id: Str, store_id: Str,
        region: Str, channel: Str, occurred_ms: I64, day: Day, src_partition: U32, src_offset: U64,
        src_index: U32,
    ];
    TagChanges => tag_changes [
        member_id: Str, tag: Str, change: I8, event_id: Str, store_id: Str, region: Str,
        as_of_ms: I64, day: Day, src_partition: U32, src_offset: U64, src_index: U32,
    ];
    Alerts => alerts [
        alert_id: Str, family: Str, rule: Str, status: Str, member_id: Str,
        store_ids: Str, store_id: Str, region: Str, sku: Str, total_cents: I64,
        first_ms: I64, last_ms: I64, day: Day, src_partition: U32, src_offset: U64,
        src_index: U32,
    ];
    AlertDecisions => alert_decisions [
        alert_id: Str, decision: Str, decided_by: Str, comment: Str, decided_ms: I64,
        day: Day, src_partition: U32, src_offset: U64, src_index: U32,
    ];
    RejectedEvents => rejected_events [
        event_id: Str, stage: Str, reason: Str, store_id: Str, raw: Str,
        rejected_ms: I64, day: Day, src_partition: U32, src_offset: U64, src_index: U32,
    ];
}

/// Columns that hold member ids (erasure looks in these).
pub fn member_columns(table: Table) -> &'static [&'static str] {
    match table {
        Table::MemberRegistrations => &["member_id", "canonical_id"],
        t if t.has_member() => &["member_id"],
        _ => &[],
    }
}
