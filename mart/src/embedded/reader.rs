//! [`DataFusionMart`]: the embedded mart's [`MartReader`], DataFusion over
//! the Parquet files, running the SQL of [`crate::sql`].
//!
//! Each query builds a session (cheap) whose tables list exactly the live
//! files at that moment (covered files skipped), under the swap lock's read
//! side, so a merge or erasure never shows a row twice or a file half
//! replaced. The runtime environment (file metadata cache) is shared
//! between queries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use storepulse_core::StoreMaster;

use super::{arrow, live_files, table_dir, SwapLock};
use crate::query::{
    DayCount, MartFilter, MartReader, SalesGroup, SalesPoint, SalesTotals, SkuTotal, TagCount,
};
use crate::rows::Table;
use crate::{sql, MartError};

/// The embedded mart's reader.
#[derive(Clone)]
pub struct DataFusionMart {
    root: PathBuf,
    lock: SwapLock,
    runtime: Arc<RuntimeEnv>,
    stores: Option<Arc<StoreMaster>>,
}

impl std::fmt::Debug for DataFusionMart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFusionMart")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn df_err(e: impl std::fmt::Display) -> MartError {
    MartError::Refused(e.to_string())
}

impl DataFusionMart {
    /// A reader of the mart under `root`; `lock` is the writer's swap lock
    /// (a fresh one when no writer runs in this process).
    pub fn new(root: &Path, lock: SwapLock) -> Self {
        Self {
            root: root.to_owned(),
            lock,
            runtime: Arc::new(RuntimeEnv::default()),
            stores: None,
        }
    }

    /// Store ids in filters are checked against `stores`.
    #[must_use]
    pub fn with_stores(mut self, stores: Arc<StoreMaster>) -> Self {
        self.stores = Some(stores);
        self
    }

    fn stores(&self) -> Result<&StoreMaster, MartError> {
        self.stores
            .as_deref()
            .ok_or_else(|| MartError::InvalidQuery("reader has no store master".into()))
    }

    /// Runs `sql` over the named tables.
    ///
    /// # Errors
    /// Planning or execution errors ([`MartError::Refused`]), I/O.
    pub async fn query(&self, sql: &str, tables: &[Table]) -> Result<Vec<RecordBatch>, MartError> {
        self.query_sources(sql, tables, false).await
    }

    /// Runs `sql` over the named tables and, with `hourly`, the
    /// `sales_hourly` aggregate ([`super::hourly`]) of the live sale lines.
    async fn query_sources(
        &self,
        sql: &str,
        tables: &[Table],
        hourly: bool,
    ) -> Result<Vec<RecordBatch>, MartError> {
        let _reading = self.lock.read().await;
        let config = SessionConfig::new().with_target_partitions(2);
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.clone());
        for table in tables {
            let files = live_files(&table_dir(&self.root, *table))?;
            let paths: Vec<_> = files.into_iter().map(|(_, p)| p).collect();
            register(&ctx, table.name(), arrow::schema(*table), &paths)?;
        }
        if hourly {
            let files = live_files(&table_dir(&self.root, Table::SaleLines))?;
            let paths: Vec<_> = files
                .iter()
                .map(|(r, _)| super::hourly::sidecar_path(&self.root, r))
                .collect();
            register(&ctx, super::hourly::DIR, super::hourly::schema(), &paths)?;
        }
        let df = ctx.sql(sql).await.map_err(df_err)?;
        df.collect().await.map_err(df_err)
    }
}

/// Registers the Parquet files `paths` as table `name` of `ctx`.
fn register(
    ctx: &SessionContext,
    name: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
    paths: &[PathBuf],
) -> Result<(), MartError> {
    {
        if paths.is_empty() {
            let empty = MemTable::try_new(schema, vec![vec![]]).map_err(df_err)?;
            ctx.register_table(name, Arc::new(empty)).map_err(df_err)?;
            return Ok(());
        }
        let urls = paths
            .iter()
            .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(df_err)?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        let listing = ListingTable::try_new(config).map_err(df_err)?;
        ctx.register_table(name, Arc::new(listing))
            .map_err(df_err)?;
        Ok(())
    }
}

/// Column `i` of every batch as `i64` (NULL as 0).
fn ints(batches: &[RecordBatch], i: usize) -> Result<Vec<i64>, MartError> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column(i);
        let col = if col.data_type() == &DataType::Date32 {
            cast(
                &cast(col, &DataType::Int32).map_err(df_err)?,
                &DataType::Int64,
            )
        } else {
            cast(col, &DataType::Int64)
        }
        .map_err(df_err)?;
        let arr = col.as_primitive::<Int64Type>();
        out.extend((0..arr.len()).map(|j| if arr.is_null(j) { 0 } else { arr.value(j) }));
    }
    Ok(out)
}

/// Column `i` of every batch as strings.
fn strings(batches: &[RecordBatch], i: usize) -> Result<Vec<String>, MartError> {
    let mut out = Vec::new();
    for b in batches {
        let col = cast(b.column(i), &DataType::Utf8).map_err(df_err)?;
        let arr = col.as_string::<i32>();
        out.extend((0..arr.len()).map(|j| arr.value(j).to_owned()));
    }
    Ok(out)
}

/// A `Date` as days since 1970 to a calendar date.
pub fn day_from_days(days: i64) -> Result<NaiveDate, MartError> {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days)))
        .ok_or_else(|| MartError::Refused(format!("day {days} out of range")))
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait]
impl MartReader for DataFusionMart {
    async fn sales_by_hour(
        &self,
        filter: &MartFilter,
        group: SalesGroup,
    ) -> Result<Vec<SalesPoint>, MartError> {
        let sql = sql::sales_by_hour(filter, group, self.stores()?)?;
        let b = self.query_sources(&sql, &[], true).await?;
        let (hours, keys, net, units, lines) = (
            ints(&b, 1)?,
            strings(&b, 2)?,
            ints(&b, 3)?,
            ints(&b, 4)?,
            ints(&b, 5)?,
        );
        let mut out = Vec::with_capacity(hours.len());
        for (i, (days, key)) in ints(&b, 0)?.into_iter().zip(keys).enumerate() {
            out.push(SalesPoint {
                day: day_from_days(days)?,
                hour: u8::try_from(hours[i]).unwrap_or(0),
                key,
                net_cents: net[i],
                units: units[i],
                lines: unsigned(lines[i]),
            });
        }
        Ok(out)
    }

    async fn top_skus(
        &self,
        filter: &MartFilter,
        limit: usize,
    ) -> Result<Vec<SkuTotal>, MartError> {
        let sql = sql::top_skus(filter, limit, self.stores()?)?;
        let b = self.query(&sql, &[Table::SaleLines]).await?;
        let (skus, units, net) = (strings(&b, 0)?, ints(&b, 1)?, ints(&b, 2)?);
        Ok(skus
            .into_iter()
            .zip(units)
            .zip(net)
            .map(|((sku, units), net_cents)| SkuTotal {
                sku,
                units,
                net_cents,
            })
            .collect())
    }

    async fn members_by_tag(&self, filter: &MartFilter) -> Result<Vec<TagCount>, MartError> {
        let sql = sql::members_by_tag(filter, self.stores()?)?;
        let b = self.query(&sql, &[Table::TagChanges]).await?;
        Ok(strings(&b, 0)?
            .into_iter()
            .zip(ints(&b, 1)?)
            .map(|(tag, n)| TagCount {
                tag,
                members: unsigned(n),
            })
            .collect())
    }

    async fn new_members(&self, filter: &MartFilter) -> Result<Vec<DayCount>, MartError> {
        let sql = sql::new_members(filter, self.stores()?)?;
        let b = self.query(&sql, &[Table::MemberRegistrations]).await?;
        ints(&b, 0)?
            .into_iter()
            .zip(ints(&b, 1)?)
            .map(|(d, n)| {
                Ok(DayCount {
                    day: day_from_days(d)?,
                    members: unsigned(n),
                })
            })
            .collect()
    }

    async fn totals(&self, filter: &MartFilter) -> Result<SalesTotals, MartError> {
        let stores = self.stores()?;
        let sales = self
            .query_sources(&sql::sales_totals(filter, stores)?, &[], true)
            .await?;
        let refunds = self
            .query(&sql::refund_totals(filter, stores)?, &[Table::ReturnLines])
            .await?;
        let first = |v: Vec<i64>| v.first().copied().unwrap_or(0);
        Ok(SalesTotals {
            net_cents: first(ints(&sales, 0)?),
            units: first(ints(&sales, 1)?),
            lines: unsigned(first(ints(&sales, 2)?)),
            orders: unsigned(first(ints(&sales, 3)?)),
            refund_cents: first(ints(&refunds, 0)?),
        })
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}
