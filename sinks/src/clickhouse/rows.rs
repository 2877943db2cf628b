//! The insert shape of each mart table: a struct borrowing a
//! `storepulse_mart::rows` row, serialized as RowBinary by the
//! `clickhouse` crate (no copy of the strings).
//!
//! The crate's schema validation needs `RowBinaryWithNamesAndTypes`, which
//! ClickHouse 18.16 lacks, so it is off; instead each struct lists its
//! ClickHouse column types ([`ChRow::COLUMN_TYPES`]) and an integration
//! test compares names and types with `system.columns`, and a unit test
//! checks that the struct's fields are the mart row's fields in order.

use clickhouse::Row;
use serde::Serialize;
use storepulse_mart::rows::{
    AlertDecisionRow, AlertRow, MemberRegistrationRow, PointsRow, RejectedEventRow, ReturnLineRow,
    SaleLineRow, StockChangeRow, StockLevelRow, TagChangeRow,
};

/// A borrowed insert row of one mart table.
pub trait ChRow<'a>: Row + Serialize + Send + Sync {
    /// The mart row it borrows.
    type Source: 'a;
    /// The table it is inserted into.
    const TABLE: &'static str;
    /// Column types, in column order, as `system.columns.type` spells them.
    const COLUMN_TYPES: &'static [&'static str];
    /// Borrows a mart row.
    fn of(row: &'a Self::Source) -> Self;
}

/// Turns a field of a mart row into its insert form.
trait Field<'a> {
    type Out;
    fn field(&'a self) -> Self::Out;
}
impl<'a> Field<'a> for String {
    type Out = &'a str;
    fn field(&'a self) -> &'a str {
        self.as_str()
    }
}
macro_rules! copy_field {
    ($($t:ty),*) => {$(
        impl<'a> Field<'a> for $t {
            type Out = $t;
            fn field(&'a self) -> $t {
                *self
            }
        }
    )*};
}
copy_field!(i8, u8, u16, u32, u64, i64);

macro_rules! ch_row {
    ($name:ident, $src:ty, $table:literal, { $($field:ident : $ty:ty = $chty:literal),* $(,)? }) => {
        #[doc = concat!("Insert row of `", $table, "`.")]
        #[derive(Debug, Row, Serialize)]
        pub struct $name<'a> {
            $(pub $field: $ty,)*
        }
        impl<'a> ChRow<'a> for $name<'a> {
            type Source = $src;
            const TABLE: &'static str = $table;
            const COLUMN_TYPES: &'static [&'static str] = &[$($chty),*];
            fn of(row: &'a $src) -> Self {
                Self { $($field: Field::field(&row.$field),)* }
            }
        }
    };
}

ch_row!(SaleLineCh, SaleLineRow, "sale_lines", {
    event_id: &'a str = "String",
    line_no: u32 = "UInt32",
    order_id: &'a str = "String",
    store_id: &'a str = "String",
    region: &'a str = "String",
    channel: &'a str = "String",
    fulfillment: &'a str = "String",
    payment_method: &'a str = "String",
    member_id: &'a str = "String",
    sku: &'a str = "String",
    qty: i64 = "Int64",
    unit_price_cents: i64 = "Int64",
    net_cents: i64 = "Int64",
    promo: u8 = "UInt8",
    occurred_ms: i64 = "Int64",
    day: u16 = "Date",
    hour: u8 = "UInt8",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(ReturnLineCh, ReturnLineRow, "return_lines", {
    event_id: &'a str = "String",
    line_no: u32 = "UInt32",
    order_id: &'a str = "String",
    store_id: &'a str = "String",
    region: &'a str = "String",
    channel: &'a str = "String",
    member_id: &'a str = "String",
    sku: &'a str = "String",
    qty: i64 = "Int64",
    refund_cents: i64 = "Int64",
    restock: u8 = "UInt8",
    occurred_ms: i64 = "Int64",
    day: u16 = "Date",
    hour: u8 = "UInt8",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(StockChangeCh, StockChangeRow, "stock_changes", {
    event_id: &'a str = "String",
    line_no: u32 = "UInt32",
    kind: &'a str = "String",
    store_id: &'a str = "String",
    region: &'a str = "String",
    sku: &'a str = "String",
    delta: i64 = "Int64",
    counted: i64 = "Int64",
    occurred_ms: i64 = "Int64",
    day: u16 = "Date",
    hour: u8 = "UInt8",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(StockLevelCh, StockLevelRow, "stock_levels", {
    store_id: &'a str = "String",
    region: &'a str = "String",
    sku: &'a str = "String",
    on_hand: i64 = "Int64",
    event_id: &'a str = "String",
    occurred_ms: i64 = "Int64",
    day: u16 = "Date",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(PointsCh, PointsRow, "points_ledger", {
    member_id: &'a str = "String",
    event_id: &'a str = "String",
    kind: &'a str = "String",
    store_id: &'a str = "String",
    region: &'a str = "String",
    points: i64 = "Int64",
    occurred_ms: i64 = "Int64",
    day: u16 = "Date",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(MemberRegistrationCh, MemberRegistrationRow, "member_registrations", {
    member_id: &'a str = "String",
    canonical_id: &'a str = "String",
    person_key: &'a str = "String",
    event_id: &'a str = "String",
    store_id: &'a str = "String",
    region: &'a str = "String",
    channel: &'a str = "String",
    occurred_ms: i64 = "Int64",
    day: u16 = "Date",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(TagChangeCh, TagChangeRow, "tag_changes", {
    member_id: &'a str = "String",
    tag: &'a str = "String",
    change: i8 = "Int8",
    event_id: &'a str = "String",
    store_id: &'a str = "String",
    region: &'a str = "String",
    as_of_ms: i64 = "Int64",
    day: u16 = "Date",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(AlertCh, AlertRow, "alerts", {
    alert_id: &'a str = "String",
    family: &'a str = "String",
    rule: &'a str = "String",
    status: &'a str = "String",
    member_id: &'a str = "String",
    store_ids: &'a str = "String",
    store_id: &'a str = "String",
    region: &'a str = "String",
    sku: &'a str = "String",
    total_cents: i64 = "Int64",
    first_ms: i64 = "Int64",
    last_ms: i64 = "Int64",
    day: u16 = "Date",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(AlertDecisionCh, AlertDecisionRow, "alert_decisions", {
    alert_id: &'a str = "String",
    decision: &'a str = "String",
    decided_by: &'a str = "String",
    comment: &'a str = "String",
    decided_ms: i64 = "Int64",
    day: u16 = "Date",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

ch_row!(RejectedEventCh, RejectedEventRow, "rejected_events", {
    event_id: &'a str = "String",
    stage: &'a str = "String",
    reason: &'a str = "String",
    store_id: &'a str = "String",
    raw: &'a str = "String",
    rejected_ms: i64 = "Int64",
    day: u16 = "Date",
    src_partition: u32 = "UInt32",
    src_offset: u64 = "UInt64",
    src_index: u32 = "UInt32",
});

/// `(table, column names, column types)` of every insert row, for the
/// schema check.
pub fn schemas() -> Vec<(
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)> {
    fn one<'a, R: ChRow<'a>>() -> (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    ) {
        (R::TABLE, R::COLUMN_NAMES, R::COLUMN_TYPES)
    }
    vec![
        one::<SaleLineCh<'_>>(),
        one::<ReturnLineCh<'_>>(),
        one::<StockChangeCh<'_>>(),
        one::<StockLevelCh<'_>>(),
        one::<PointsCh<'_>>(),
        one::<MemberRegistrationCh<'_>>(),
        one::<TagChangeCh<'_>>(),
        one::<AlertCh<'_>>(),
        one::<AlertDecisionCh<'_>>(),
        one::<RejectedEventCh<'_>>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use storepulse_mart::rows::Table;

    #[test]
    fn every_table_has_an_insert_row_with_the_mart_rows_fields() {
        let s = schemas();
        let names: Vec<&str> = s.iter().map(|(t, _, _)| *t).collect();
        let tables: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, tables);
        for (table, cols, types) in &s {
            assert_eq!(cols.len(), types.len(), "{table}");
        }
    }

    #[test]
    fn insert_rows_carry_the_mart_rows_fields() {
        // Same names and values (as a map; the server check covers the order).
        let sale = storepulse_mart::rows::SaleLineRow {
            event_id: "e".into(),
            line_no: 1,
            order_id: "o".into(),
            store_id: "s".into(),
            region: "r".into(),
            channel: "c".into(),
            fulfillment: "f".into(),
            payment_method: "p".into(),
            member_id: "m".into(),
            sku: "k".into(),
            qty: 2,
            unit_price_cents: 3,
            net_cents: 4,
            promo: 1,
            occurred_ms: 5,
            day: 6,
            hour: 7,
            src_partition: 8,
            src_offset: 9,
            src_index: 10,
        };
        let a = serde_json::to_value(&sale).expect("json");
        let b = serde_json::to_value(SaleLineCh::of(&sale)).expect("json");
        assert_eq!(a, b);
    }
}
