//! The mart routes the dashboard's charts read, scoped on the server.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/mart/sales_by_hour?day=&group=store\|region\|channel&region=&store=` | per group key, net sales (cents) of each hour of `day` and of the same day a week earlier |
//! | `GET /v1/mart/top_skus?from=&to=&region=&store=&limit=` | the SKUs with most units sold |
//! | `GET /v1/mart/members_by_tag?region=&store=` | members holding each tag now, by preferred store |
//! | `GET /v1/mart/new_members?from=&to=&region=&store=` | new members per day (every day of the range, zeros included), by store of registration |
//! | `GET /v1/mart/totals?from=&to=&region=&store=` | net sales, units, lines, orders, refunds |
//!
//! Who: a store role (`hq`, `region:`, `store:`); other principals get 403
//! (`channel` reads no sales, `risk` the review queue only). Days are China
//! calendar days, `YYYY-MM-DD`; `to` and `day` default to today, `from` to
//! six days before `to`.
//!
//! **Scope**: the handler resolves the principal's stores ∩ the `region`
//! and `store` filters into [`MartFilter::stores`] (`None` only for `hq`
//! without a filter), so the mart store never sees a request wider than
//! the scope. A filter with no store in the scope (another region or
//! store) is refused with 403, as in [`crate::query`]. A `store` outside
//! the given `region` is a 400.
//!
//! The mart is queried through [`storepulse_mart::query::MartReader`]
//! (embedded Parquet + DataFusion, or ClickHouse); without one, 503, but
//! only after the request was authorised (401 and 403 come first).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRef, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Days, NaiveDate};
use serde::Deserialize;
use serde_json::json;
use storepulse_core::StoreMaster;
pub use storepulse_mart::query::MartReader;
use storepulse_mart::query::{MartFilter, SalesGroup, MAX_TOP};
use storepulse_mart::MartError;

use crate::access::{AccessTable, Principal, StoreScope};
use crate::query::{forbidden_region, forbidden_store, require_store_role, Answer, ApiError};

/// Every (method, path) of [`mart_router`] (described in `openapi.json`).
pub const MART_ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/mart/sales_by_hour"),
    ("get", "/v1/mart/top_skus"),
    ("get", "/v1/mart/members_by_tag"),
    ("get", "/v1/mart/new_members"),
    ("get", "/v1/mart/totals"),
];

/// Default number of top SKUs.
const DEFAULT_TOP: usize = 10;

/// What the mart routes need.
#[derive(Clone)]
pub struct MartApiState {
    pub access: Arc<AccessTable>,
    pub stores: Arc<StoreMaster>,
    /// The mart (`None`: not configured here, 503).
    pub mart: Option<Arc<dyn MartReader>>,
}

impl FromRef<MartApiState> for Arc<AccessTable> {
    fn from_ref(state: &MartApiState) -> Self {
        state.access.clone()
    }
}

/// The mart routes.
pub fn mart_router(state: MartApiState) -> Router {
    Router::new()
        .route("/v1/mart/sales_by_hour", get(sales_by_hour))
        .route("/v1/mart/top_skus", get(top_skus))
        .route("/v1/mart/members_by_tag", get(members_by_tag))
        .route("/v1/mart/new_members", get(new_members))
        .route("/v1/mart/totals", get(totals))
        .with_state(state)
}

/// The query parameters of every mart route (each uses some).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    day: Option<String>,
    from: Option<String>,
    to: Option<String>,
    region: Option<String>,
    store: Option<String>,
    group: Option<String>,
    limit: Option<usize>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

fn mart_failed(error: &MartError) -> ApiError {
    match error {
        MartError::InvalidQuery(_) => bad(error.to_string()),
        MartError::Unavailable(_) | MartError::Io(_) => {
            tracing::warn!(%error, "mart query failed");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        MartError::Refused(_) => {
            tracing::error!(%error, "mart refused a query");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
        }
    }
}

fn mart(st: &MartApiState) -> Result<&Arc<dyn MartReader>, ApiError> {
    st.mart.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the data mart is not served by this process",
        )
    })
}

/// Today in China (UTC+8).
fn china_today() -> NaiveDate {
    storepulse_core::time::china_datetime(storepulse_core::time::now()).date_naive()
}

fn day(field: &str, text: Option<&str>, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    match text {
        None | Some("") => Ok(default),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| bad(format!("{field}: {text:?} is not a day (YYYY-MM-DD)"))),
    }
}

fn non_empty(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|t| !t.is_empty())
}

/// The stores an answer may cover: the principal's scope ∩ the filters.
/// `None`: every store (`hq` without a filter).
///
/// # Errors
/// 403 without a store role or for a filter wholly outside the scope; 404
/// for an unknown region or store; 400 for a store outside the region.
pub fn resolve_stores(
    who: &Principal,
    stores: &StoreMaster,
    region: Option<&str>,
    store: Option<&str>,
) -> Result<Option<Vec<String>>, ApiError> {
    require_store_role(who)?;
    if let Some(region) = region {
        if !stores.iter().any(|(_, s)| s.region == region) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("region: unknown region {region:?}"),
            ));
        }
    }
    if let Some(store_id) = store {
        let idx = stores.lookup(store_id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("store: unknown store {store_id:?}"),
            )
        })?;
        if !who.can_see_store(idx) {
            return Err(forbidden_store(store_id));
        }
        if let Some(region) = region {
            if stores.get(idx).region != region {
                return Err(bad(format!("store {store_id} is not in region {region}")));
            }
        }
        return Ok(Some(vec![store_id.to_owned()]));
    }
    if region.is_none() && matches!(who.store_scope(), StoreScope::All) {
        return Ok(None);
    }
    let chosen: Vec<String> = stores
        .iter()
        .filter(|(idx, s)| who.can_see_store(*idx) && region.is_none_or(|r| s.region == r))
        .map(|(_, s)| s.store_id.clone())
        .collect();
    if chosen.is_empty() {
        return Err(forbidden_region(region.unwrap_or("(none)")));
    }
    Ok(Some(chosen))
}

/// The filter of a range route: days and stores resolved.
fn range_filter(who: &Principal, st: &MartApiState, p: &Params) -> Result<MartFilter, ApiError> {
    let to = day("to", p.to.as_deref(), china_today())?;
    let from = day(
        "from",
        p.from.as_deref(),
        to.checked_sub_days(Days::new(6)).unwrap_or(to),
    )?;
    let stores = resolve_stores(who, &st.stores, non_empty(&p.region), non_empty(&p.store))?;
    let filter = MartFilter { from, to, stores };
    filter.validate().map_err(|e| mart_failed(&e))?;
    Ok(filter)
}

type RawParams = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

fn params(p: RawParams) -> Result<Params, ApiError> {
    p.map(|Query(p)| p).map_err(|e| bad(e.body_text()))
}

async fn sales_by_hour(State(st): State<MartApiState>, who: Principal, p: RawParams) -> Answer {
    let p = params(p)?;
    let group = match non_empty(&p.group).unwrap_or("store") {
        "store" => SalesGroup::Store,
        "region" => SalesGroup::Region,
        "channel" => SalesGroup::Channel,
        other => {
            return Err(bad(format!(
                "group: {other:?} is not store, region or channel"
            )))
        }
    };
    let day = day("day", p.day.as_deref(), china_today())?;
    let compare = day
        .checked_sub_days(Days::new(7))
        .ok_or_else(|| bad("day: too early"))?;
    let stores = resolve_stores(&who, &st.stores, non_empty(&p.region), non_empty(&p.store))?;
    let mart = mart(&st)?;
    let today = MartFilter::day(day, stores.clone());
    let before = MartFilter::day(compare, stores);
    today.validate().map_err(|e| mart_failed(&e))?;
    before.validate().map_err(|e| mart_failed(&e))?;
    let (now, then) = tokio::join!(
        mart.sales_by_hour(&today, group),
        mart.sales_by_hour(&before, group)
    );
    let (now, then) = (
        now.map_err(|e| mart_failed(&e))?,
        then.map_err(|e| mart_failed(&e))?,
    );
    // key -> (today per hour, last week per hour)
    let mut series: BTreeMap<String, ([i64; 24], [i64; 24])> = BTreeMap::new();
    for (points, last_week) in [(now, false), (then, true)] {
        for point in points {
            let hours = series.entry(point.key).or_default();
            let slot = if last_week {
                &mut hours.1
            } else {
                &mut hours.0
            };
            if let Some(cell) = slot.get_mut(usize::from(point.hour)) {
                *cell += point.net_cents;
            }
        }
    }
    let label = |key: &str| match group {
        SalesGroup::Store => st
            .stores
            .lookup(key)
            .map_or_else(|| key.to_owned(), |i| st.stores.get(i).name.clone()),
        SalesGroup::Region | SalesGroup::Channel => key.to_owned(),
    };
    let series: Vec<_> = series
        .into_iter()
        .map(|(key, (today, last_week))| {
            json!({ "key": key, "label": label(&key), "today": today, "last_week": last_week })
        })
        .collect();
    Ok(Json(json!({
        "day": day.to_string(),
        "compare_day": compare.to_string(),
        "group": group,
        "series": series,
    }))
    .into_response())
}

async fn top_skus(State(st): State<MartApiState>, who: Principal, p: RawParams) -> Answer {
    let p = params(p)?;
    let limit = match p.limit {
        None => DEFAULT_TOP,
        Some(n) if (1..=MAX_TOP).contains(&n) => n,
        Some(_) => return Err(bad(format!("limit: 1..={MAX_TOP}"))),
    };
    let filter = range_filter(&who, &st, &p)?;
    let mart = mart(&st)?;
    let items = mart
        .top_skus(&filter, limit)
        .await
        .map_err(|e| mart_failed(&e))?;
    Ok(Json(json!({
        "from": filter.from.to_string(),
        "to": filter.to.to_string(),
        "items": items,
    }))
    .into_response())
}

async fn members_by_tag(State(st): State<MartApiState>, who: Principal, p: RawParams) -> Answer {
    let p = params(p)?;
    let filter = range_filter(&who, &st, &p)?;
    let mart = mart(&st)?;
    let tags = mart
        .members_by_tag(&filter)
        .await
        .map_err(|e| mart_failed(&e))?;
    Ok(Json(json!({ "tags": tags })).into_response())
}

async fn new_members(State(st): State<MartApiState>, who: Principal, p: RawParams) -> Answer {
    let p = params(p)?;
    let filter = range_filter(&who, &st, &p)?;
    let mart = mart(&st)?;
    let counts: BTreeMap<NaiveDate, u64> = mart
        .new_members(&filter)
        .await
        .map_err(|e| mart_failed(&e))?
        .into_iter()
        .map(|d| (d.day, d.members))
        .collect();
    let days: Vec<_> = filter
        .from
        .iter_days()
        .take_while(|d| *d <= filter.to)
        .map(|d| json!({ "day": d.to_string(), "members": counts.get(&d).copied().unwrap_or(0) }))
        .collect();
    Ok(Json(json!({
        "from": filter.from.to_string(),
        "to": filter.to.to_string(),
        "days": days,
    }))
    .into_response())
}

async fn totals(State(st): State<MartApiState>, who: Principal, p: RawParams) -> Answer {
    let p = params(p)?;
    let filter = range_filter(&who, &st, &p)?;
    let mart = mart(&st)?;
    let totals = mart.totals(&filter).await.map_err(|e| mart_failed(&e))?;
    Ok(Json(json!({
        "from": filter.from.to_string(),
        "to": filter.to.to_string(),
        "net_cents": totals.net_cents,
        "units": totals.units,
        "lines": totals.lines,
        "orders": totals.orders,
        "refund_cents": totals.refund_cents,
    }))
    .into_response())
}
