//! `sales_hourly`: the embedded mart's aggregate of sale lines per (day,
//! hour, store, region, channel), one Parquet file beside each sale-lines
//! file (`sales_hourly/<the same file name>`), as ClickHouse's
//! `sales_hourly` table fed by a materialised view.
//!
//! Why: sales per hour and the totals are the dashboard's most frequent
//! queries, and over 10 M sale lines a scan of the lines costs ~1 s; the
//! aggregate holds a few thousand rows per million lines.
//!
//! Exactly the lines, always: a sidecar is written (tmp, fsync, rename)
//! *before* its sale-lines file appears, a merge writes the merged file's
//! sidecar before the swap, and readers take the sidecars of exactly the
//! live sale-lines files (under the swap lock), so a sidecar counts the
//! same lines as its file. A sidecar without its file (a crash between
//! the two renames) is never read and is removed at open; a file without
//! its sidecar (a mart written before sidecars existed) gets one at open.
//! Erasure blanks member ids in sale lines, which the aggregate does not
//! hold, so it never rewrites a sidecar.
//!
//! `orders` counts each sale's line 0 (a sale has exactly one), so orders
//! add up across hours and files without a `count(DISTINCT event_id)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Array, RecordBatch, StringArray, UInt8Array,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Int64Type, Schema, SchemaRef, UInt32Type, UInt8Type,
};

use super::FileRange;
use crate::MartError;

/// The directory of the sidecars under the mart's root.
pub const DIR: &str = "sales_hourly";

/// The sidecar of the sale-lines file of `range`.
pub fn sidecar_path(root: &Path, range: &FileRange) -> PathBuf {
    root.join(DIR).join(range.file_name())
}

/// The aggregate's schema.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, false),
        Field::new("hour", DataType::UInt8, false),
        Field::new("store_id", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("net_cents", DataType::Int64, false),
        Field::new("units", DataType::Int64, false),
        Field::new("lines", DataType::Int64, false),
        Field::new("orders", DataType::Int64, false),
    ]))
}

#[derive(Default)]
struct Sums {
    net_cents: i64,
    units: i64,
    lines: i64,
    orders: i64,
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, MartError> {
    b.column_by_name(name)
        .ok_or_else(|| MartError::Refused(format!("sale_lines: column {name} missing")))
}

fn strings<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a StringArray, MartError> {
    column(b, name)?
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| MartError::Refused(format!("sale_lines: column {name} is not a string")))
}

/// The aggregate of sale-lines batches (one row per key, sorted by key).
///
/// # Errors
/// A batch without the sale-lines columns.
pub fn aggregate(batches: &[RecordBatch]) -> Result<RecordBatch, MartError> {
    let mut groups: HashMap<(i32, u8, String, String, String), Sums> = HashMap::new();
    for b in batches {
        let day = column(b, "day")?
            .as_primitive_opt::<Date32Type>()
            .ok_or_else(|| MartError::Refused("sale_lines: day is not a date".into()))?;
        let hour = column(b, "hour")?
            .as_primitive_opt::<UInt8Type>()
            .ok_or_else(|| MartError::Refused("sale_lines: hour is not u8".into()))?;
        let line_no = column(b, "line_no")?
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| MartError::Refused("sale_lines: line_no is not u32".into()))?;
        let qty = column(b, "qty")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| MartError::Refused("sale_lines: qty is not i64".into()))?;
        let net = column(b, "net_cents")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| MartError::Refused("sale_lines: net_cents is not i64".into()))?;
        let (store, region, channel) = (
            strings(b, "store_id")?,
            strings(b, "region")?,
            strings(b, "channel")?,
        );
        for i in 0..b.num_rows() {
            let key = (
                day.value(i),
                hour.value(i),
                store.value(i).to_owned(),
                region.value(i).to_owned(),
                channel.value(i).to_owned(),
            );
            let s = groups.entry(key).or_default();
            s.net_cents += net.value(i);
            s.units += qty.value(i);
            s.lines += 1;
            s.orders += i64::from(line_no.value(i) == 0);
        }
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.0 .0))),
        Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| r.0 .1))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0 .2))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0 .3))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0 .4))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.1.net_cents),
        )),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1.units))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1.lines))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.1.orders),
        )),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| MartError::Refused(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::rows::MartBatch;
    use crate::testutil::sale;

    #[test]
    fn sums_lines_and_counts_each_sale_once() {
        let b = MartBatch {
            sale_lines: vec![
                sale(1, 0, "KM-001", "central", "A", "m1", 2, 1000, 5, 9),
                sale(1, 1, "KM-001", "central", "B", "m1", 1, 500, 5, 9),
                sale(2, 0, "KM-001", "central", "A", "", 3, 1500, 5, 9),
                sale(3, 0, "KM-002", "central", "C", "m2", 5, 250, 5, 9),
                sale(4, 0, "KM-001", "central", "C", "m2", 1, 100, 5, 10),
            ],
            ..MartBatch::default()
        };
        let rb = super::super::arrow::record_batch(&b, crate::rows::Table::SaleLines)
            .unwrap()
            .unwrap();
        let agg = aggregate(&[rb]).unwrap();
        assert_eq!(agg.num_rows(), 3);
        let ints = |name: &str| -> Vec<i64> {
            agg.column_by_name(name)
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        };
        // (9h, KM-001), (9h, KM-002), (10h, KM-001) in key order.
        assert_eq!(ints("net_cents"), vec![3000, 250, 100]);
        assert_eq!(ints("units"), vec![6, 5, 1]);
        assert_eq!(ints("lines"), vec![3, 1, 1]);
        assert_eq!(ints("orders"), vec![2, 1, 1]);
        let stores = agg.column_by_name("store_id").unwrap().as_string::<i32>();
        assert_eq!(stores.value(1), "KM-002");
        assert_eq!(aggregate(&[]).unwrap().num_rows(), 0);
    }
}
