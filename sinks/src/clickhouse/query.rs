//! The dashboard's queries ([`MartReader`]) on ClickHouse.
//!
//! The SQL is the portable subset shared with the embedded mart
//! (DataFusion) and every ClickHouse release from 18.16: plain `SELECT`,
//! `sum`/`count`, `COUNT(DISTINCT ..)`, `GROUP BY`/`ORDER BY`/`LIMIT`,
//! subqueries in `FROM`, date literals as `'YYYY-MM-DD'`. No alias reuses the
//! name of a column aggregated beside it (18.16 resolves it to the
//! aggregate). Sales, totals and top SKUs read the aggregate tables
//! (`sales_hourly`, `sku_day_totals`, fed by materialised
//! views): they hold the same sums as `sale_lines`, which the tests check
//! against answers computed from the rows.
//!
//! [`dashboard_queries`] gives each query's text for a filter, so the chDB
//! test runs exactly the same SQL on a current ClickHouse.

use async_trait::async_trait;
use chrono::{Days, NaiveDate};
use storepulse_mart::query::{
    DayCount, MartFilter, MartReader, SalesGroup, SalesPoint, SalesTotals, SkuTotal, TagCount,
    MAX_TOP,
};
use storepulse_mart::MartError;

use super::sink::ClickHouseMart;
use super::sql::{store_scope, where_clause};

/// `sales_by_hour`: day, hour, key, net, units, lines.
pub fn sales_by_hour_sql(filter: &MartFilter, group: SalesGroup) -> String {
    let col = match group {
        SalesGroup::Store => "store_id",
        SalesGroup::Region => "region",
        SalesGroup::Channel => "channel",
    };
    format!(
        "SELECT day, hour, {col} AS k, sum(net_cents) AS n, sum(units) AS u, sum(lines) AS l \
         FROM sales_hourly WHERE {} GROUP BY day, hour, {col} ORDER BY day, hour, k",
        where_clause(filter, "", "store_id")
    )
}

/// `top_skus`: sku, units, net. Every store: `sku_day_totals` (one row
/// per day and SKU); some stores: `sale_lines`, whose primary key starts
/// with (day, store_id), so only their lines are read.
pub fn top_skus_sql(filter: &MartFilter, limit: usize) -> String {
    let (table, units) = if filter.stores.is_none() {
        ("sku_day_totals", "units")
    } else {
        ("sale_lines", "qty")
    };
    format!(
        "SELECT sku, sum({units}) AS u, sum(net_cents) AS n FROM {table} WHERE {} \
         GROUP BY sku ORDER BY u DESC, sku LIMIT {limit}",
        where_clause(filter, "", "store_id")
    )
}

/// `members_by_tag`: tag, members. A (member, tag) is on while the sum of
/// its changes is 1 (changes alternate); with stores, only the changes
/// made while the member preferred one of them count. Same text as the
/// embedded mart's (`storepulse_mart::sql`) when stores are given. For
/// every store the per-member sums are 0 or 1, so their count is the plain
/// sum of the changes per tag: one pass, no per-member grouping.
pub fn members_by_tag_sql(filter: &MartFilter) -> String {
    if filter.stores.is_none() {
        return "SELECT tag, sum(change) AS member_count FROM tag_changes \
                GROUP BY tag HAVING sum(change) > 0 ORDER BY tag"
            .into();
    }
    format!(
        "SELECT tag, count(*) AS member_count FROM \
         (SELECT member_id, tag, sum(change) AS tag_on FROM tag_changes WHERE 1 = 1{} GROUP BY member_id, tag) \
         WHERE tag_on > 0 GROUP BY tag ORDER BY tag",
        store_scope(filter, "store_id")
    )
}

/// `new_members`: day, members: persons whose first registration at the
/// filter's stores falls on each day of the range (as the embedded mart).
pub fn new_members_sql(filter: &MartFilter) -> String {
    format!(
        "SELECT first_day, count(*) AS member_count FROM \
         (SELECT person_key, min(day) AS first_day FROM member_registrations WHERE 1 = 1{} GROUP BY person_key) \
         WHERE first_day >= '{}' AND first_day <= '{}' GROUP BY first_day ORDER BY first_day",
        store_scope(filter, "store_id"),
        filter.from.format("%Y-%m-%d"),
        filter.to.format("%Y-%m-%d")
    )
}

/// `totals`, sales part: net, units, lines, orders (distinct sale events:
/// `sales_hourly.orders` counts each sale's line 0).
pub fn totals_sales_sql(filter: &MartFilter) -> String {
    format!(
        "SELECT sum(net_cents) AS n, sum(units) AS u, sum(lines) AS l, sum(orders) AS o \
         FROM sales_hourly WHERE {}",
        where_clause(filter, "", "store_id")
    )
}

/// `totals`, refunds.
pub fn totals_refunds_sql(filter: &MartFilter) -> String {
    format!(
        "SELECT sum(refund_cents) AS r FROM return_lines WHERE {}",
        where_clause(filter, "", "store_id")
    )
}

/// Every dashboard query for `filter` with a name: the texts the chDB test
/// runs on a current ClickHouse.
pub fn dashboard_queries(filter: &MartFilter, top: usize) -> Vec<(String, String)> {
    let mut q = vec![
        (
            "sales_by_hour_store".into(),
            sales_by_hour_sql(filter, SalesGroup::Store),
        ),
        (
            "sales_by_hour_region".into(),
            sales_by_hour_sql(filter, SalesGroup::Region),
        ),
        (
            "sales_by_hour_channel".into(),
            sales_by_hour_sql(filter, SalesGroup::Channel),
        ),
        ("top_skus".into(), top_skus_sql(filter, top)),
        ("members_by_tag".into(), members_by_tag_sql(filter)),
        ("new_members".into(), new_members_sql(filter)),
    ];
    q.push(("totals_sales".into(), totals_sales_sql(filter)));
    q.push(("totals_refunds".into(), totals_refunds_sql(filter)));
    q
}

/// A ClickHouse `Date` (days since 1970-01-01) as a date.
pub fn date_of(day: u16) -> NaiveDate {
    NaiveDate::default() + Days::new(u64::from(day))
}

#[async_trait]
impl MartReader for ClickHouseMart {
    async fn sales_by_hour(
        &self,
        filter: &MartFilter,
        group: SalesGroup,
    ) -> Result<Vec<SalesPoint>, MartError> {
        filter.validate()?;
        let sql = sales_by_hour_sql(filter, group);
        let rows: Vec<(u16, u8, String, i64, i64, u64)> = self
            .timed(self.client().query_raw(&sql).fetch_all())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(day, hour, key, net_cents, units, lines)| SalesPoint {
                day: date_of(day),
                hour,
                key,
                net_cents,
                units,
                lines,
            })
            .collect())
    }

    async fn top_skus(
        &self,
        filter: &MartFilter,
        limit: usize,
    ) -> Result<Vec<SkuTotal>, MartError> {
        filter.validate()?;
        if limit == 0 || limit > MAX_TOP {
            return Err(MartError::InvalidQuery(format!(
                "limit {limit} must be 1..={MAX_TOP}"
            )));
        }
        let sql = top_skus_sql(filter, limit);
        let rows: Vec<(String, i64, i64)> = self
            .timed(self.client().query_raw(&sql).fetch_all())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(sku, units, net_cents)| SkuTotal {
                sku,
                units,
                net_cents,
            })
            .collect())
    }

    async fn members_by_tag(&self, filter: &MartFilter) -> Result<Vec<TagCount>, MartError> {
        let sql = members_by_tag_sql(filter);
        let c = self.client().query_raw(&sql);
        let rows: Vec<(String, u64)> = if filter.stores.is_none() {
            // sum(Int8) is Int64; positive by the HAVING.
            let signed: Vec<(String, i64)> = self.timed(c.fetch_all()).await?;
            signed
                .into_iter()
                .map(|(t, n)| (t, n.unsigned_abs()))
                .collect()
        } else {
            self.timed(c.fetch_all()).await?
        };
        Ok(rows
            .into_iter()
            .map(|(tag, members)| TagCount { tag, members })
            .collect())
    }

    async fn new_members(&self, filter: &MartFilter) -> Result<Vec<DayCount>, MartError> {
        filter.validate()?;
        let sql = new_members_sql(filter);
        let rows: Vec<(u16, u64)> = self
            .timed(self.client().query_raw(&sql).fetch_all())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(day, members)| DayCount {
                day: date_of(day),
                members,
            })
            .collect())
    }

    async fn totals(&self, filter: &MartFilter) -> Result<SalesTotals, MartError> {
        filter.validate()?;
        let (s, r) = (totals_sales_sql(filter), totals_refunds_sql(filter));
        let c = self.client();
        let ((net_cents, units, lines, orders), refund_cents) = tokio::try_join!(
            self.timed(c.query_raw(&s).fetch_one::<(i64, i64, u64, u64)>()),
            self.timed(c.query_raw(&r).fetch_one::<i64>()),
        )?;
        Ok(SalesTotals {
            net_cents,
            units,
            lines,
            orders,
            refund_cents,
        })
    }

    fn backend(&self) -> &'static str {
        "clickhouse"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert() {
        assert_eq!(
            date_of(0),
            NaiveDate::from_ymd_opt(1970, 1, 1).expect("date")
        );
        assert_eq!(
            date_of(20_000),
            NaiveDate::from_ymd_opt(2024, 10, 4).expect("date")
        );
    }

    #[test]
    fn no_alias_reuses_an_aggregated_column() {
        let f = MartFilter::day(NaiveDate::default(), Some(vec!["a".into()]));
        for (name, sql) in dashboard_queries(&f, 10) {
            for col in [
                "net_cents",
                "units",
                "lines",
                "change",
                "refund_cents",
                "day",
            ] {
                assert!(!sql.contains(&format!(" AS {col},")), "{name}: {sql}");
                assert!(!sql.contains(&format!(" AS {col} ")), "{name}: {sql}");
            }
        }
    }
}
