//! The SQL of every dashboard query, in one place, for both stores.
//!
//! The same strings run on DataFusion (the embedded mart) and on ClickHouse
//! (18.16 and current releases), so they keep to the subset both read the
//! same way: plain `SELECT ... FROM ... WHERE ... GROUP BY ... ORDER BY`,
//! `sum`, `count(*)`, `count(DISTINCT x)`, `min`, subqueries in `FROM`,
//! `Date` columns compared with `'YYYY-MM-DD'` literals, integer math only,
//! no `FINAL`, no window functions, and no alias that reuses the name of a
//! column aggregated beside it (ClickHouse 18.16 refuses that).
//!
//! Result columns are positional and documented per query; types differ
//! (`count` is `UInt64` in ClickHouse, `Int64` in DataFusion; `sum` of an
//! empty set is `0` in ClickHouse and `NULL` in DataFusion), so readers
//! convert by position and read `NULL` as 0.
//!
//! Store filters are `store_id IN ('a','b')` built from ids that are in the
//! store master and contain no quote or backslash, never from raw text.

use storepulse_core::StoreMaster;

use crate::query::{MartFilter, SalesGroup, MAX_TOP};
use crate::MartError;

/// `WHERE` conditions for the filter's days and stores on a table with a
/// `day` and a `store_id` column.
///
/// # Errors
/// An invalid range, or a store id not in the master (or unsafe to quote).
pub fn where_days_stores(filter: &MartFilter, stores: &StoreMaster) -> Result<String, MartError> {
    filter.validate()?;
    let mut w = format!(
        "day >= '{}' AND day <= '{}'",
        filter.from.format("%Y-%m-%d"),
        filter.to.format("%Y-%m-%d")
    );
    if let Some(s) = store_condition(filter, stores)? {
        w.push_str(" AND ");
        w.push_str(&s);
    }
    Ok(w)
}

/// `store_id IN (...)` for the filter's stores (`None`: every store;
/// an empty list becomes a condition that matches nothing).
///
/// # Errors
/// A store id not in the master, or one with a quote or backslash.
pub fn store_condition(
    filter: &MartFilter,
    stores: &StoreMaster,
) -> Result<Option<String>, MartError> {
    let Some(ids) = &filter.stores else {
        return Ok(None);
    };
    if ids.is_empty() {
        return Ok(Some("1 = 0".into()));
    }
    let mut quoted = Vec::with_capacity(ids.len());
    for id in ids {
        if stores.lookup(id).is_none()
            || id.contains(['\'', '\\'])
            || id.chars().any(char::is_control)
        {
            return Err(MartError::InvalidQuery(format!("unknown store {id:?}")));
        }
        quoted.push(format!("'{id}'"));
    }
    Ok(Some(format!("store_id IN ({})", quoted.join(","))))
}

/// Sales per (day, hour, key), from the `sales_hourly` aggregate
/// ([`crate::embedded::hourly`]). Columns: `day`, `hour`, `grp`, `net`,
/// `units`, `line_count`.
///
/// # Errors
/// See [`where_days_stores`].
pub fn sales_by_hour(
    filter: &MartFilter,
    group: SalesGroup,
    stores: &StoreMaster,
) -> Result<String, MartError> {
    let column = match group {
        SalesGroup::Store => "store_id",
        SalesGroup::Region => "region",
        SalesGroup::Channel => "channel",
    };
    Ok(format!(
        "SELECT day, hour, {column} AS grp, sum(net_cents) AS net, sum(units) AS units, sum(lines) AS line_count \
         FROM sales_hourly WHERE {} GROUP BY day, hour, {column} ORDER BY day, hour, grp",
        where_days_stores(filter, stores)?
    ))
}

/// The top SKUs by units. Columns: `sku`, `units`, `net`.
///
/// # Errors
/// See [`where_days_stores`]; a limit above [`MAX_TOP`].
pub fn top_skus(
    filter: &MartFilter,
    limit: usize,
    stores: &StoreMaster,
) -> Result<String, MartError> {
    if limit == 0 || limit > MAX_TOP {
        return Err(MartError::InvalidQuery(format!(
            "limit must be 1..={MAX_TOP}"
        )));
    }
    Ok(format!(
        "SELECT sku, sum(qty) AS units, sum(net_cents) AS net FROM sale_lines WHERE {} \
         GROUP BY sku ORDER BY units DESC, sku LIMIT {limit}",
        where_days_stores(filter, stores)?
    ))
}

/// Members holding each tag now: `sum(change)` per (member, tag) is 1
/// while the tag is on (changes alternate). With stores, only the changes
/// made while the member preferred one of them count. Columns: `tag`,
/// `member_count`.
///
/// # Errors
/// See [`store_condition`].
pub fn members_by_tag(filter: &MartFilter, stores: &StoreMaster) -> Result<String, MartError> {
    let w = store_condition(filter, stores)?
        .map(|c| format!(" WHERE {c}"))
        .unwrap_or_default();
    Ok(format!(
        "SELECT tag, count(*) AS member_count FROM \
         (SELECT member_id, tag, sum(change) AS tag_on FROM tag_changes{w} GROUP BY member_id, tag) \
         WHERE tag_on > 0 GROUP BY tag ORDER BY tag"
    ))
}

/// Persons whose first registration (at the filter's stores) falls on each
/// day of the range. Columns: `first_day`, `member_count`.
///
/// # Errors
/// See [`where_days_stores`].
pub fn new_members(filter: &MartFilter, stores: &StoreMaster) -> Result<String, MartError> {
    filter.validate()?;
    let w = store_condition(filter, stores)?
        .map(|c| format!(" WHERE {c}"))
        .unwrap_or_default();
    Ok(format!(
        "SELECT first_day, count(*) AS member_count FROM \
         (SELECT person_key, min(day) AS first_day FROM member_registrations{w} GROUP BY person_key) \
         WHERE first_day >= '{}' AND first_day <= '{}' GROUP BY first_day ORDER BY first_day",
        filter.from.format("%Y-%m-%d"),
        filter.to.format("%Y-%m-%d")
    ))
}

/// Sales totals, from the `sales_hourly` aggregate (orders: each sale's
/// line 0). Columns: `net`, `units`, `line_count`, `order_count`.
///
/// # Errors
/// See [`where_days_stores`].
pub fn sales_totals(filter: &MartFilter, stores: &StoreMaster) -> Result<String, MartError> {
    Ok(format!(
        "SELECT sum(net_cents) AS net, sum(units) AS units, sum(lines) AS line_count, \
         sum(orders) AS order_count FROM sales_hourly WHERE {}",
        where_days_stores(filter, stores)?
    ))
}

/// Refund total. Columns: `refund`.
///
/// # Errors
/// See [`where_days_stores`].
pub fn refund_totals(filter: &MartFilter, stores: &StoreMaster) -> Result<String, MartError> {
    Ok(format!(
        "SELECT sum(refund_cents) AS refund FROM return_lines WHERE {}",
        where_days_stores(filter, stores)?
    ))
}
