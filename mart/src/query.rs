//! What the dashboard asks the mart.
//!
//! [`MartReader`] is implemented by every mart store (the embedded Parquet
//! mart queried with DataFusion, and ClickHouse). The caller (the
//! dashboard's handlers) has already resolved the principal's scope: a
//! [`MartFilter`] names exactly the stores the answer may cover, so a store
//! cannot leak by a forgotten `WHERE`. Stores are matched by `store_id`;
//! members by tag use the member's preferred store (see
//! [`crate::rows::TagChangeRow`]), new members the store of registration.
//!
//! Days are China calendar days, inclusive ranges.

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::MartError;

/// Longest date range a query may cover (a year and a day).
pub const MAX_RANGE_DAYS: i64 = 367;

/// Most rows a top-N query may ask for.
pub const MAX_TOP: usize = 200;

/// Which days and stores an answer covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MartFilter {
    /// First day, inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    /// The stores the answer may cover; `None`: every store (HQ without a
    /// filter). An empty list matches nothing.
    pub stores: Option<Vec<String>>,
}

impl MartFilter {
    /// Checks the range: `from <= to`, at most [`MAX_RANGE_DAYS`], within
    /// ClickHouse's `Date` range.
    ///
    /// # Errors
    /// [`MartError::InvalidQuery`] naming what is wrong.
    pub fn validate(&self) -> Result<(), MartError> {
        if self.from > self.to {
            return Err(MartError::InvalidQuery(format!(
                "from {} is after to {}",
                self.from, self.to
            )));
        }
        if (self.to - self.from).num_days() >= MAX_RANGE_DAYS {
            return Err(MartError::InvalidQuery(format!(
                "range {}..{} is longer than {MAX_RANGE_DAYS} days",
                self.from, self.to
            )));
        }
        let lo = NaiveDate::from_ymd_opt(1970, 1, 1);
        let hi = NaiveDate::from_ymd_opt(2149, 6, 6);
        if Some(self.from) < lo || Some(self.to) > hi {
            return Err(MartError::InvalidQuery(
                "days must be between 1970-01-01 and 2149-06-06".into(),
            ));
        }
        Ok(())
    }

    /// A one-day filter.
    pub fn day(day: NaiveDate, stores: Option<Vec<String>>) -> Self {
        Self {
            from: day,
            to: day,
            stores,
        }
    }
}

/// How sales are split in [`MartReader::sales_by_hour`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesGroup {
    Store,
    Region,
    Channel,
}

/// Sales of one (day, hour, group key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SalesPoint {
    pub day: NaiveDate,
    pub hour: u8,
    /// The store id, region name or channel.
    pub key: String,
    /// What customers paid (sum of the lines' `net_cents`).
    pub net_cents: i64,
    pub units: i64,
    pub lines: u64,
}

/// Sales of one SKU over the range.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SkuTotal {
    pub sku: String,
    pub units: i64,
    pub net_cents: i64,
}

/// Members currently holding a tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TagCount {
    pub tag: String,
    pub members: u64,
}

/// New members of one day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DayCount {
    pub day: NaiveDate,
    pub members: u64,
}

/// Totals over the range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesTotals {
    pub net_cents: i64,
    pub units: i64,
    pub lines: u64,
    pub orders: u64,
    pub refund_cents: i64,
}

/// The dashboard's queries. Answers are sorted (by day, hour, key; top SKUs
/// by units descending then SKU) so two stores' answers compare equal.
#[async_trait]
pub trait MartReader: Send + Sync {
    /// Sales per (day, hour, group key) over the filter's days.
    async fn sales_by_hour(
        &self,
        filter: &MartFilter,
        group: SalesGroup,
    ) -> Result<Vec<SalesPoint>, MartError>;

    /// The `limit` SKUs with most units sold (ties by SKU).
    async fn top_skus(&self, filter: &MartFilter, limit: usize)
        -> Result<Vec<SkuTotal>, MartError>;

    /// Members holding each tag now (the filter's days are ignored; its
    /// stores select members by preferred store).
    async fn members_by_tag(&self, filter: &MartFilter) -> Result<Vec<TagCount>, MartError>;

    /// Persons whose first registration falls on each day of the range, by
    /// the store of that registration.
    async fn new_members(&self, filter: &MartFilter) -> Result<Vec<DayCount>, MartError>;

    /// Sales and refund totals over the range.
    async fn totals(&self, filter: &MartFilter) -> Result<SalesTotals, MartError>;

    /// A name for logs and `/healthz` (`embedded` or `clickhouse`).
    fn backend(&self) -> &'static str;
}
