//! Handlers of the stock query routes, each scoped to its caller.
//!
//! Every route needs a principal (API key or login session, [`crate::access`]):
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /v1/stock/{store_id}[/{sku}]` | the store in scope, or `channel` | else 403 |
//! | `GET /v1/skus/{sku}/availability?near=` | `near` in scope, or `channel` | only stores in scope are listed |
//! | `POST /v1/route` | `hq` or `channel` | plans over every store |
//! | `GET /v1/suggestions/replenish?store_id=` | the store in scope | else 403 |
//! | `GET /v1/suggestions/transfers?region=` | a store role | the transfers between two stores of the scope (∩ `region`) |
//! | `GET /v1/alerts?kind=stock` | a store role (or `risk`) | stock alerts of stores in scope; points alerts only with `member_data` (their stores in scope) or `risk` |
//! | `GET /v1/dlq` | `hq` | dead letters are raw events of any store |
//!
//! **Filters and scope** (here and in [`crate::mart`]): a `region` or
//! `store` filter is intersected with the principal's scope; a filter with
//! no store in the scope (another region, another store) is refused with
//! 403, never answered with an empty 200 that would read as "no sales".

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use storepulse_core::dead_letter::DeadLetter;
use storepulse_core::StoreIdx;
use storepulse_processors::inventory::routing::{GeoPoint, RouteLine};
use storepulse_runtime::Shared;

use crate::access::{AccessTable, Principal, StoreScope};
use storepulse_runtime::alerts::Alert;

/// Reads the newest dead letters (newest first), at most `limit`.
pub type DeadLetterReader = Arc<dyn Fn(usize) -> Result<Vec<DeadLetter>, String> + Send + Sync>;

/// What the handlers read.
#[derive(Clone)]
pub struct QueryState {
    pub shared: Arc<Shared>,
    pub dead_letters: DeadLetterReader,
    /// Keys, users and sessions (every route needs a principal).
    pub access: Arc<AccessTable>,
}

impl axum::extract::FromRef<QueryState> for Arc<AccessTable> {
    fn from_ref(state: &QueryState) -> Self {
        state.access.clone()
    }
}

/// Largest page / list a client may ask for.
const MAX_LIMIT: usize = 1000;

/// Every (method, path) this module serves; the OpenAPI document must
/// describe each (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/stock/{store_id}/{sku}"),
    ("get", "/v1/stock/{store_id}"),
    ("get", "/v1/skus/{sku}/availability"),
    ("post", "/v1/route"),
    ("get", "/v1/suggestions/replenish"),
    ("get", "/v1/suggestions/transfers"),
    ("get", "/v1/dlq"),
];

/// The query routes.
pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/v1/stock/{store_id}/{sku}", get(stock_one))
        .route("/v1/stock/{store_id}", get(stock_page))
        .route("/v1/skus/{sku}/availability", get(availability))
        .route("/v1/route", post(route))
        .route("/v1/suggestions/replenish", get(replenish))
        .route("/v1/suggestions/transfers", get(transfers))
        .route("/v1/dlq", get(dlq))
        .with_state(state)
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error answer with this status and message (for handlers and
    /// extractors outside this module, e.g. [`crate::access::require`]).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        error(status, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

pub(crate) type Answer = Result<Response, ApiError>;

fn store(st: &QueryState, store_id: &str, field: &str) -> Result<StoreIdx, ApiError> {
    st.shared
        .inventory()
        .stores()
        .lookup(store_id)
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("{field}: unknown store {store_id:?}"),
            )
        })
}

/// 403 unless `who` may read stock of `store_id` (its scope, or `channel`).
fn stock_scope(who: &Principal, idx: StoreIdx, store_id: &str) -> Result<(), ApiError> {
    if who.can_read_stock(idx) {
        Ok(())
    } else {
        Err(forbidden_store(store_id))
    }
}

pub(crate) fn forbidden_store(store_id: &str) -> ApiError {
    error(
        StatusCode::FORBIDDEN,
        format!("store {store_id} is outside this principal's scope"),
    )
}

pub(crate) fn forbidden_region(region: &str) -> ApiError {
    error(
        StatusCode::FORBIDDEN,
        format!("region {region} is outside this principal's scope"),
    )
}

/// 403 unless the principal has a store role (`hq`, `region:`, `store:`).
pub(crate) fn require_store_role(who: &Principal) -> Result<(), ApiError> {
    if matches!(who.store_scope(), StoreScope::None) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "role hq, region:<region> or store:<store_id> required",
        ));
    }
    Ok(())
}

/// A page size: `default` when absent; 400 when 0 or above `MAX_LIMIT`.
pub(crate) fn limit(requested: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match requested {
        None => Ok(default),
        Some(0) => Err(error(StatusCode::BAD_REQUEST, "limit: must be > 0")),
        Some(n) if n > MAX_LIMIT => Err(error(
            StatusCode::BAD_REQUEST,
            format!("limit: at most {MAX_LIMIT}"),
        )),
        Some(n) => Ok(n),
    }
}

async fn stock_one(
    State(st): State<QueryState>,
    who: Principal,
    Path((store_id, sku)): Path<(String, String)>,
) -> Answer {
    let idx = store(&st, &store_id, "store_id")?;
    stock_scope(&who, idx, &store_id)?;
    let view = st.shared.inventory().stock(idx, &sku);
    let view = view.ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            format!("no stock known for {sku:?} at {store_id}"),
        )
    })?;
    Ok(Json(view).into_response())
}

#[derive(Deserialize)]
struct PageParams {
    after: Option<String>,
    limit: Option<usize>,
}

async fn stock_page(
    State(st): State<QueryState>,
    who: Principal,
    Path(store_id): Path<String>,
    Query(p): Query<PageParams>,
) -> Answer {
    let idx = store(&st, &store_id, "store_id")?;
    stock_scope(&who, idx, &store_id)?;
    let limit = limit(p.limit, 100)?;
    let body = {
        let inventory = st.shared.inventory();
        let page = inventory.store_stock(idx, p.after.as_deref(), limit);
        json!({ "store_id": store_id, "as_of": inventory.clock_text(), "items": page.items, "next": page.next })
    };
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct AvailabilityParams {
    near: String,
    limit: Option<usize>,
}

async fn availability(
    State(st): State<QueryState>,
    who: Principal,
    Path(sku): Path<String>,
    Query(p): Query<AvailabilityParams>,
) -> Answer {
    let idx = store(&st, &p.near, "near")?;
    stock_scope(&who, idx, &p.near)?;
    let limit = limit(p.limit, 10)?;
    let stores = {
        let inventory = st.shared.inventory();
        if who.can_read_all_stock() {
            inventory.availability(&sku, idx, limit)
        } else {
            let master = inventory.stores();
            let mut all = inventory.availability(&sku, idx, usize::MAX);
            all.retain(|a| {
                master
                    .lookup(&a.store_id)
                    .is_some_and(|i| who.can_read_stock(i))
            });
            all.truncate(limit);
            all
        }
    };
    Ok(Json(json!({ "sku": sku, "near": p.near, "stores": stores })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteRequest {
    lines: Vec<RouteLine>,
    deliver_to: GeoPoint,
}

async fn route(
    State(st): State<QueryState>,
    who: Principal,
    body: Result<Json<RouteRequest>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    crate::access::require(who.can_read_all_stock(), "hq or channel")?;
    let Json(req) =
        body.map_err(|e| error(StatusCode::BAD_REQUEST, format!("body: {}", e.body_text())))?;
    if req.lines.is_empty() || req.lines.len() > 500 {
        return Err(error(StatusCode::BAD_REQUEST, "lines: 1..=500 lines"));
    }
    if let Some((i, _)) = req.lines.iter().enumerate().find(|(_, l)| l.qty <= 0) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("lines[{i}].qty: must be > 0"),
        ));
    }
    let GeoPoint { lat, lon } = req.deliver_to;
    if !((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "deliver_to: lat must be in -90..90 and lon in -180..180",
        ));
    }
    let plan = st.shared.inventory().route(&req.lines, req.deliver_to);
    Ok(match plan {
        Ok(plan) => Json(plan).into_response(),
        Err(unroutable) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": "no store has enough on-hand for these lines", "lines": unroutable.lines })),
        )
            .into_response(),
    })
}

#[derive(Deserialize)]
struct ReplenishParams {
    store_id: String,
}

async fn replenish(
    State(st): State<QueryState>,
    who: Principal,
    Query(p): Query<ReplenishParams>,
) -> Answer {
    let idx = store(&st, &p.store_id, "store_id")?;
    if !who.can_see_store(idx) {
        return Err(forbidden_store(&p.store_id));
    }
    let body = {
        let inventory = st.shared.inventory();
        json!({ "store_id": p.store_id, "as_of": inventory.clock_text(), "suggestions": inventory.replenish(idx) })
    };
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct TransferParams {
    region: Option<String>,
}

async fn transfers(
    State(st): State<QueryState>,
    who: Principal,
    Query(p): Query<TransferParams>,
) -> Answer {
    require_store_role(&who)?;
    let body = {
        let inventory = st.shared.inventory();
        let master = inventory.stores();
        if let Some(region) = &p.region {
            let mut stores = master
                .iter()
                .filter(|(_, s)| &s.region == region)
                .peekable();
            if stores.peek().is_none() {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    format!("region: unknown region {region:?}"),
                ));
            }
            if !stores.any(|(idx, _)| who.can_see_store(idx)) {
                return Err(forbidden_region(region));
            }
        }
        let mut suggestions = inventory.transfers(p.region.as_deref());
        if !matches!(who.store_scope(), StoreScope::All) {
            let visible = |id: &str| master.lookup(id).is_some_and(|i| who.can_see_store(i));
            suggestions.retain(|t| visible(&t.from_store) && visible(&t.to_store));
        }
        json!({ "region": p.region, "as_of": inventory.clock_text(), "suggestions": suggestions })
    };
    Ok(Json(body).into_response())
}

/// The stock and points alerts of the alert book that `who` may see,
/// newest first (the alert-book form of `GET /v1/alerts`, served by
/// [`crate::fraud::fraud_router`] beside the review queue).
pub(crate) fn stock_alerts(
    shared: &Shared,
    who: &Principal,
    kind: Option<&str>,
    limit_param: Option<usize>,
) -> Answer {
    if !who.is_risk() {
        require_store_role(who)?;
    }
    let limit = limit(limit_param, 100)?;
    if let Some(kind) = kind {
        if kind != "stock" {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("kind: unknown alert kind {kind:?} (stock, fraud)"),
            ));
        }
    }
    // The store master is immutable: no inventory lock while reading alerts.
    let master = shared.inventory().stores().clone();
    let in_scope = |id: &str| master.lookup(id).is_some_and(|i| who.can_see_store(i));
    let alerts: Vec<serde_json::Value> = shared
        .alerts()
        .recent_filtered(kind, limit, |record| match &record.alert {
            Alert::Stock(a) => in_scope(&a.store_id),
            Alert::PointsOverdraft(a) => {
                who.is_risk() || (who.can_read_member_data() && in_scope(&a.store_id))
            }
        })
        .into_iter()
        .map(|record| {
            let mut value = serde_json::to_value(&record.alert).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("family".into(), record.family.into());
            }
            value
        })
        .collect();
    Ok(Json(json!({ "alerts": alerts })).into_response())
}

#[derive(Deserialize)]
struct DlqParams {
    limit: Option<usize>,
}

async fn dlq(State(st): State<QueryState>, who: Principal, Query(p): Query<DlqParams>) -> Answer {
    crate::access::require(matches!(who.store_scope(), StoreScope::All), "hq")?;
    let limit = limit(p.limit, 100)?;
    let letters = (st.dead_letters)(limit).map_err(|e| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("dead-letter log: {e}"),
        )
    })?;
    Ok(Json(json!({ "dead_letters": letters })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use storepulse_core::{EventParser, StoreMaster};
    use storepulse_processors::inventory::{InventoryConfig, InventoryProcessor};
    use storepulse_processors::Processor;
    use storepulse_runtime::alerts::AlertBook;
    use tower::ServiceExt;

    fn state() -> QueryState {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        let stores = Arc::new(StoreMaster::load(&path).unwrap());
        let parser = EventParser::new(stores.clone());
        let mut inventory = InventoryProcessor::new(InventoryConfig::default(), stores);
        for json in [
            r#"{"v":1,"event_id":"r1","event_type":"stock_receipt","occurred_at":"2026-11-25T08:00:00+08:00","store_id":"KM-002","channel":"backoffice","lines":[{"sku":"SKU-1","qty":5},{"sku":"SKU-2","qty":1}]}"#,
            r#"{"v":1,"event_id":"s1","event_type":"sale","occurred_at":"2026-11-25T09:00:00+08:00","store_id":"KM-002","channel":"pos","order_id":"o1","lines":[{"sku":"SKU-2","qty":2,"unit_price_cents":100}],"total_cents":200,"payment":{"method":"cash"}}"#,
        ] {
            inventory
                .apply(&parser.parse(json.as_bytes()).unwrap(), &mut Vec::new())
                .unwrap();
        }
        let shared = Arc::new(Shared::new(
            inventory,
            AlertBook::new(10),
            Default::default(),
        ));
        let access = crate::access::test_table(
            &[
                ("k-hq", "hq", &["hq"]),
                ("k-km2", "km2", &["store:KM-002"]),
                ("k-web", "web", &["channel"]),
            ],
            &stores_master(),
        );
        QueryState {
            shared,
            dead_letters: Arc::new(|_| Ok(Vec::new())),
            access: Arc::new(access),
        }
    }

    fn stores_master() -> StoreMaster {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        StoreMaster::load(&path).unwrap()
    }

    async fn call(method: &str, uri: &str, body: &str) -> (StatusCode, serde_json::Value) {
        call_as("k-hq", method, uri, body).await
    }

    async fn call_as(
        key: &str,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router(state()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn stock_of_one_sku() {
        let (status, body) = call("GET", "/v1/stock/KM-002/SKU-1", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["on_hand"], 5);
        assert_eq!(body["updated_at"], "2026-11-25T08:00:00.000+08:00");
        let (status, _) = call("GET", "/v1/stock/KM-002/NOPE", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = call("GET", "/v1/stock/XX-9/SKU-1", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body["error"].as_str().unwrap().contains("unknown store"));
    }

    #[tokio::test]
    async fn paging_availability_route_alerts() {
        let (_, page) = call("GET", "/v1/stock/KM-002?limit=1", "").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        assert_eq!(page["next"], "SKU-1");
        let (_, page2) = call("GET", "/v1/stock/KM-002?limit=1&after=SKU-1", "").await;
        assert_eq!(page2["items"][0]["sku"], "SKU-2");
        assert_eq!(page2["items"][0]["on_hand"], -1);
        let (_, near) = call("GET", "/v1/skus/SKU-1/availability?near=KM-001", "").await;
        assert_eq!(near["stores"][0]["store_id"], "KM-002");
        let (status, plan) = call(
            "POST",
            "/v1/route",
            r#"{"lines":[{"sku":"SKU-1","qty":2}],"deliver_to":{"lat":25.0,"lon":102.7}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{plan}");
        assert_eq!(plan["legs"][0]["store_id"], "KM-002");
        let (status, _) = call(
            "POST",
            "/v1/route",
            r#"{"lines":[{"sku":"SKU-1","qty":99}],"deliver_to":{"lat":25.0,"lon":102.7}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = call("GET", "/v1/stock/KM-002?limit=0", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn stock_routes_are_scoped() {
        // No credentials: 401 everywhere.
        let request = Request::builder()
            .uri("/v1/stock/KM-002")
            .body(Body::empty())
            .unwrap();
        let response = router(state()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        // The store manager of KM-002 reads its store, not another.
        let (status, _) = call_as("k-km2", "GET", "/v1/stock/KM-002/SKU-1", "").await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = call_as("k-km2", "GET", "/v1/stock/KM-001", "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.get("items").is_none());
        // Availability near its own store lists only stores in scope.
        let (status, near) = call_as(
            "k-km2",
            "GET",
            "/v1/skus/SKU-1/availability?near=KM-002",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(near["stores"], serde_json::json!([]));
        let (status, _) = call_as(
            "k-km2",
            "GET",
            "/v1/skus/SKU-1/availability?near=KM-001",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // A channel sees every store's availability and may route, but
        // has no suggestions or dead letters.
        let (status, near) = call_as(
            "k-web",
            "GET",
            "/v1/skus/SKU-1/availability?near=KM-001",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(near["stores"][0]["store_id"], "KM-002");
        let route = r#"{"lines":[{"sku":"SKU-1","qty":2}],"deliver_to":{"lat":25.0,"lon":102.7}}"#;
        assert_eq!(
            call_as("k-web", "POST", "/v1/route", route).await.0,
            StatusCode::OK
        );
        assert_eq!(
            call_as("k-km2", "POST", "/v1/route", route).await.0,
            StatusCode::FORBIDDEN
        );
        for uri in [
            "/v1/suggestions/replenish?store_id=KM-002",
            "/v1/suggestions/transfers",
            "/v1/dlq",
        ] {
            assert_eq!(
                call_as("k-web", "GET", uri, "").await.0,
                StatusCode::FORBIDDEN,
                "{uri}"
            );
        }
        // A region filter outside the scope is refused; the own region is
        // intersected with the scope.
        let (status, _) =
            call_as("k-km2", "GET", "/v1/suggestions/transfers?region=west", "").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = call_as(
            "k-km2",
            "GET",
            "/v1/suggestions/transfers?region=central",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call_as("k-hq", "GET", "/v1/suggestions/transfers?region=west", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            call_as("k-km2", "GET", "/v1/dlq", "").await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call_as("k-hq", "GET", "/v1/dlq", "").await.0,
            StatusCode::OK
        );
    }

    #[test]
    fn openapi_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI_JSON).unwrap();
        for (method, path) in ROUTES
            .iter()
            .chain(crate::members::MEMBER_ROUTES)
            .chain(crate::fraud::FRAUD_ROUTES)
            .chain(crate::login::LOGIN_ROUTES)
            .chain(crate::mart::MART_ROUTES)
            .chain(crate::web::WEB_ROUTES)
            .chain(&[
                ("post", "/v1/events"),
                ("get", "/healthz"),
                ("get", "/metrics"),
                ("get", "/openapi.json"),
            ])
        {
            assert!(
                doc["paths"][path][method].is_object(),
                "openapi.json lacks {method} {path}"
            );
        }
        // The scoped routes take an API key either way or a session, and say so.
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["apiKey"]["scheme"], "bearer");
        assert_eq!(schemes["apiKeyHeader"]["name"], "x-api-key");
        assert_eq!(schemes["sessionCookie"]["name"], "storepulse_session");
        for (method, path) in crate::members::MEMBER_ROUTES
            .iter()
            .chain(ROUTES)
            .chain(crate::mart::MART_ROUTES)
            .chain(&[("get", "/v1/me"), ("get", "/v1/alerts")])
        {
            let operation = &doc["paths"][path][method];
            assert_eq!(
                operation["security"],
                json!([{ "apiKey": [] }, { "apiKeyHeader": [] }, { "sessionCookie": [] }]),
                "{method} {path}"
            );
            for status in ["200", "401", "403"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} lacks {status}"
                );
            }
            // Every path parameter of the route is described.
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let described = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(described, "{method} {path} lacks parameter {name}");
            }
        }
        // Every `$ref` names a schema of the document.
        fn refs<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                        out.push(target);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut targets = Vec::new();
        refs(&doc, &mut targets);
        for target in targets {
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling {target}"
            );
        }
    }
}
