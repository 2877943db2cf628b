//! The role matrix: every role (none, hq, region, store, risk, channel)
//! against every stock, mart, login and page route, with API keys and with
//! login sessions, over every router the binary serves merged together,
//! and an in-memory [`MartReader`] that records the scope it was given.
//! (The fraud and member routes have their own matrices in their modules;
//! the end-to-end matrix in `tests/tests/roles.rs` runs the real binary.)

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use storepulse_core::{EventParser, StoreMaster};
use storepulse_mart::query::{
    DayCount, MartFilter, MartReader, SalesGroup, SalesPoint, SalesTotals, SkuTotal, TagCount,
};
use storepulse_mart::MartError;
use storepulse_processors::inventory::{
    InventoryConfig, InventoryProcessor, StockAlert, StockAlertKind,
};
use storepulse_processors::Processor;
use storepulse_runtime::alerts::{Alert, AlertBook, AlertRecord};
use storepulse_runtime::Shared;
use tower::ServiceExt;

use crate::access::{AccessConfig, AccessKeyConfig, AccessTable, UserConfig};
use crate::audit::AuditLog;
use crate::fraud::{fraud_router, FraudApiState};
use crate::login::{login_router, LoginState};
use crate::mart::{mart_router, MartApiState};
use crate::query::{router, QueryState};
use crate::session::hash_password;
use crate::web::web_router;

fn stores() -> Arc<StoreMaster> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    Arc::new(StoreMaster::load(&path).unwrap())
}

/// Answers one point / row per store of the filter, and records filters.
#[derive(Default)]
struct FakeMart {
    seen: Mutex<Vec<Option<Vec<String>>>>,
    all: Vec<String>,
}

impl FakeMart {
    fn stores_of(&self, filter: &MartFilter) -> Vec<String> {
        self.seen.lock().unwrap().push(filter.stores.clone());
        filter.stores.clone().unwrap_or_else(|| self.all.clone())
    }
}

#[async_trait]
impl MartReader for FakeMart {
    async fn sales_by_hour(
        &self,
        filter: &MartFilter,
        _group: SalesGroup,
    ) -> Result<Vec<SalesPoint>, MartError> {
        Ok(self
            .stores_of(filter)
            .into_iter()
            .map(|key| SalesPoint {
                day: filter.from,
                hour: 10,
                key,
                net_cents: 100,
                units: 1,
                lines: 1,
            })
            .collect())
    }
    async fn top_skus(&self, filter: &MartFilter, _: usize) -> Result<Vec<SkuTotal>, MartError> {
        Ok(self
            .stores_of(filter)
            .into_iter()
            .map(|s| SkuTotal {
                sku: format!("SKU-of-{s}"),
                units: 1,
                net_cents: 1,
            })
            .collect())
    }
    async fn members_by_tag(&self, filter: &MartFilter) -> Result<Vec<TagCount>, MartError> {
        let n = self.stores_of(filter).len() as u64;
        Ok(vec![TagCount {
            tag: "new_member".into(),
            members: n,
        }])
    }
    async fn new_members(&self, filter: &MartFilter) -> Result<Vec<DayCount>, MartError> {
        let n = self.stores_of(filter).len() as u64;
        Ok(vec![DayCount {
            day: filter.to,
            members: n,
        }])
    }
    async fn totals(&self, filter: &MartFilter) -> Result<SalesTotals, MartError> {
        let n = self.stores_of(filter).len() as i64;
        Ok(SalesTotals {
            net_cents: n * 100,
            ..SalesTotals::default()
        })
    }
    fn backend(&self) -> &'static str {
        "fake"
    }
}

struct Fixture {
    app: Router,
    mart: Arc<FakeMart>,
    audit: AuditLog,
    _dir: tempfile::TempDir,
}

const PASSWORD: &str = "correct horse";

fn key(name: &str, roles: &[&str]) -> AccessKeyConfig {
    use sha2::{Digest, Sha256};
    AccessKeyConfig {
        name: name.into(),
        sha256: Sha256::digest(format!("k-{name}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn fixture() -> Fixture {
    fixture_with(true)
}

fn fixture_with(with_mart: bool) -> Fixture {
    let stores = stores();
    let parser = EventParser::new(stores.clone());
    let mut inventory = InventoryProcessor::new(InventoryConfig::default(), stores.clone());
    for (id, store) in [
        ("r1", "KM-001"),
        ("r2", "DL-001"),
        ("r3", "QJ-001"),
        ("r4", "DL-002"),
    ] {
        let json = format!(
            r#"{{"v":1,"event_id":"{id}","event_type":"stock_receipt","occurred_at":"2026-11-25T08:00:00+08:00","store_id":"{store}","channel":"backoffice","lines":[{{"sku":"SKU-1","qty":5}}]}}"#
        );
        inventory
            .apply(&parser.parse(json.as_bytes()).unwrap(), &mut Vec::new())
            .unwrap();
    }
    let mut book = AlertBook::new(100);
    for store in ["KM-001", "DL-001", "QJ-001"] {
        book.push(AlertRecord {
            family: "stock".into(),
            alert: Alert::Stock(StockAlert {
                alert_id: format!("out_of_stock:{store}:SKU-9:e"),
                kind: StockAlertKind::OutOfStock,
                store_id: store.into(),
                sku: "SKU-9".into(),
                on_hand: 0,
                event_id: "e".into(),
                occurred_at: 0,
            }),
        });
    }
    let shared = Arc::new(Shared::new(inventory, book, Default::default()));
    let config = AccessConfig {
        keys: vec![
            key("hq", &["hq"]),
            key("west", &["region:west"]),
            key("dl1", &["store:DL-001"]),
            key("risk", &["risk"]),
            key("web", &["channel"]),
        ],
        users: vec![
            UserConfig {
                name: "ann".into(),
                password_hash: hash_password(PASSWORD).unwrap(),
                roles: vec!["region:west".into()],
            },
            UserConfig {
                name: "dora".into(),
                password_hash: hash_password(PASSWORD).unwrap(),
                roles: vec!["store:DL-001".into()],
            },
        ],
        ..AccessConfig::default()
    };
    let access = Arc::new(AccessTable::build(&config, &stores).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::open(dir.path()).unwrap();
    let mart = Arc::new(FakeMart {
        seen: Mutex::default(),
        all: stores.iter().map(|(_, s)| s.store_id.clone()).collect(),
    });
    let app = Router::new()
        .merge(router(QueryState {
            shared: shared.clone(),
            dead_letters: Arc::new(|_| Ok(Vec::new())),
            access: access.clone(),
        }))
        .merge(login_router(LoginState {
            access: access.clone(),
            audit: audit.clone(),
            stores: stores.clone(),
        }))
        .merge(mart_router(MartApiState {
            access: access.clone(),
            stores,
            mart: with_mart.then(|| mart.clone() as Arc<dyn MartReader>),
        }))
        .merge(fraud_router(FraudApiState {
            shared,
            access,
            audit: audit.clone(),
            decisions: None,
            rules: None,
            notify: None,
            backtest: None,
            backtest_gate: Arc::new(tokio::sync::Semaphore::new(1)),
        }))
        .merge(web_router());
    Fixture {
        app,
        mart,
        audit,
        _dir: dir,
    }
}

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
enum Auth<'a> {
    None,
    Key(&'a str),
    Cookie(&'a str),
}

impl Fixture {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut request = Request::builder().method(method).uri(uri);
        match auth {
            Auth::None => {}
            Auth::Key(name) => {
                request = request.header("authorization", format!("Bearer k-{name}"))
            }
            Auth::Cookie(token) => {
                request =
                    request.header("cookie", format!("theme=dark; storepulse_session={token}"));
            }
        }
        let body = match body {
            Some(v) => {
                request = request.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            headers,
        )
    }

    async fn login(&self, name: &str, password: &str) -> (StatusCode, Value, Option<String>) {
        let (status, body, headers) = self
            .call(
                "POST",
                "/v1/login",
                Auth::None,
                Some(json!({ "name": name, "password": password })),
            )
            .await;
        let token = headers.get("set-cookie").map(|v| {
            let text = v.to_str().unwrap();
            assert!(
                text.contains("HttpOnly") && text.contains("SameSite=Strict"),
                "{text}"
            );
            text.split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_owned()
        });
        (status, body, token)
    }
}

const OK: StatusCode = StatusCode::OK;
const UNAUTH: StatusCode = StatusCode::UNAUTHORIZED;
const FORBID: StatusCode = StatusCode::FORBIDDEN;
const SEE: StatusCode = StatusCode::SEE_OTHER;

/// Roles in the order of the expectation arrays.
const ROLES: [Option<&str>; 6] = [
    None,
    Some("hq"),
    Some("west"),
    Some("dl1"),
    Some("risk"),
    Some("web"),
];

fn matrix() -> Vec<(&'static str, String, Option<Value>, [StatusCode; 6])> {
    let route = json!({"lines":[{"sku":"SKU-1","qty":2}],"deliver_to":{"lat":25.0,"lon":102.7}});
    let mut rows = vec![
        (
            "GET",
            "/v1/stock/DL-001".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, FORBID, OK],
        ),
        (
            "GET",
            "/v1/stock/DL-001/SKU-1".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, FORBID, OK],
        ),
        (
            "GET",
            "/v1/stock/KM-001".to_owned(),
            None,
            [UNAUTH, OK, FORBID, FORBID, FORBID, OK],
        ),
        (
            "GET",
            "/v1/stock/KM-001/SKU-1".to_owned(),
            None,
            [UNAUTH, OK, FORBID, FORBID, FORBID, OK],
        ),
        (
            "GET",
            "/v1/skus/SKU-1/availability?near=DL-001".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, FORBID, OK],
        ),
        (
            "GET",
            "/v1/skus/SKU-1/availability?near=QJ-001".to_owned(),
            None,
            [UNAUTH, OK, FORBID, FORBID, FORBID, OK],
        ),
        (
            "POST",
            "/v1/route".to_owned(),
            Some(route),
            [UNAUTH, OK, FORBID, FORBID, FORBID, OK],
        ),
        (
            "GET",
            "/v1/suggestions/replenish?store_id=DL-001".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, FORBID, FORBID],
        ),
        (
            "GET",
            "/v1/suggestions/replenish?store_id=QJ-001".to_owned(),
            None,
            [UNAUTH, OK, FORBID, FORBID, FORBID, FORBID],
        ),
        (
            "GET",
            "/v1/suggestions/transfers".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, FORBID, FORBID],
        ),
        (
            "GET",
            "/v1/suggestions/transfers?region=west".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, FORBID, FORBID],
        ),
        (
            "GET",
            "/v1/suggestions/transfers?region=east".to_owned(),
            None,
            [UNAUTH, OK, FORBID, FORBID, FORBID, FORBID],
        ),
        (
            "GET",
            "/v1/dlq".to_owned(),
            None,
            [UNAUTH, OK, FORBID, FORBID, FORBID, FORBID],
        ),
        (
            "GET",
            "/v1/alerts?kind=stock".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, OK, FORBID],
        ),
        (
            "GET",
            "/v1/alerts".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, OK, FORBID],
        ),
        (
            "GET",
            "/v1/me".to_owned(),
            None,
            [UNAUTH, OK, OK, OK, OK, OK],
        ),
        ("GET", "/".to_owned(), None, [SEE; 6]),
        ("GET", "/dashboard".to_owned(), None, [SEE; 6]),
        ("GET", "/dashboard/".to_owned(), None, [OK; 6]),
        ("GET", "/dashboard/assets/app.js".to_owned(), None, [OK; 6]),
        ("GET", "/dashboard/assets/app.css".to_owned(), None, [OK; 6]),
        (
            "GET",
            "/dashboard/assets/echarts.min.js".to_owned(),
            None,
            [OK; 6],
        ),
    ];
    for (method, path) in crate::mart::MART_ROUTES {
        let day = if path.ends_with("sales_by_hour") {
            "day=2026-11-25"
        } else {
            "from=2026-11-19&to=2026-11-25"
        };
        for (filter, expected) in [
            ("", [UNAUTH, OK, OK, OK, FORBID, FORBID]),
            ("&region=west", [UNAUTH, OK, OK, OK, FORBID, FORBID]),
            ("&store=DL-001", [UNAUTH, OK, OK, OK, FORBID, FORBID]),
            (
                "&region=west&store=DL-001",
                [UNAUTH, OK, OK, OK, FORBID, FORBID],
            ),
            // Another region or store, by filter: refused.
            ("&region=east", [UNAUTH, OK, FORBID, FORBID, FORBID, FORBID]),
            (
                "&store=KM-001",
                [UNAUTH, OK, FORBID, FORBID, FORBID, FORBID],
            ),
            ("&store=DL-002", [UNAUTH, OK, OK, FORBID, FORBID, FORBID]),
        ] {
            rows.push((
                method.to_ascii_uppercase().leak(),
                format!("{path}?{day}{filter}"),
                None,
                expected,
            ));
        }
    }
    rows
}

#[tokio::test]
async fn every_route_against_every_role_by_key() {
    let f = fixture();
    for (method, uri, body, expected) in matrix() {
        for (role, want) in ROLES.into_iter().zip(expected) {
            let auth = role.map_or(Auth::None, Auth::Key);
            let (status, answer, _) = f.call(method, &uri, auth, body.clone()).await;
            assert_eq!(status, want, "{method} {uri} as {role:?}: {answer}");
            if status == FORBID || status == UNAUTH {
                assert_eq!(
                    answer.as_object().map(|o| o.len()),
                    Some(1),
                    "only an error: {answer}"
                );
            }
        }
    }
}

#[tokio::test]
async fn sessions_get_what_keys_of_the_same_roles_get() {
    let f = fixture();
    let (status, me, ann) = f.login("ann", PASSWORD).await;
    assert_eq!(status, OK, "{me}");
    assert_eq!(me["roles"], json!(["region:west"]));
    assert_eq!(me["kind"], "user");
    let regions: Vec<&str> = me["scope"]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["west"]);
    let (_, _, dora) = f.login("dora", PASSWORD).await;
    let (ann, dora) = (ann.unwrap(), dora.unwrap());
    for (method, uri, body, expected) in matrix() {
        for (token, want) in [(&ann, expected[2]), (&dora, expected[3])] {
            let (status, answer, _) = f
                .call(method, &uri, Auth::Cookie(token), body.clone())
                .await;
            assert_eq!(status, want, "{method} {uri} with a session: {answer}");
        }
    }
    // Logout ends the session.
    let (status, _, headers) = f.call("POST", "/v1/logout", Auth::Cookie(&ann), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, _, _) = f.call("GET", "/v1/me", Auth::Cookie(&ann), None).await;
    assert_eq!(status, UNAUTH);
    let (status, _, _) = f.call("GET", "/v1/me", Auth::Cookie("forged"), None).await;
    assert_eq!(status, UNAUTH);
}

#[tokio::test]
async fn answers_hold_only_the_scope() {
    let f = fixture();
    let west: Vec<String> = stores()
        .iter()
        .filter(|(_, s)| s.region == "west")
        .map(|(_, s)| s.store_id.clone())
        .collect();
    // The mart gets exactly the resolved scope.
    f.mart.seen.lock().unwrap().clear();
    let (_, body, _) = f
        .call(
            "GET",
            "/v1/mart/sales_by_hour?day=2026-11-25",
            Auth::Key("west"),
            None,
        )
        .await;
    let keys: Vec<&str> = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    let mut sorted: Vec<&str> = west.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "series by key");
    assert_eq!(body["series"][0]["today"][10], 100);
    assert_eq!(body["compare_day"], "2026-11-18");
    let (_, body, _) = f
        .call(
            "GET",
            "/v1/mart/totals?store=DL-001",
            Auth::Key("dl1"),
            None,
        )
        .await;
    assert_eq!(body["net_cents"], 100);
    let (_, _, _) = f
        .call("GET", "/v1/mart/totals", Auth::Key("hq"), None)
        .await;
    let (_, _, _) = f
        .call("GET", "/v1/mart/totals?region=west", Auth::Key("hq"), None)
        .await;
    let seen = f.mart.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            Some(west.clone()),
            Some(west.clone()),
            Some(vec!["DL-001".to_owned()]),
            None,
            Some(west.clone())
        ]
    );
    // New members: every day of the range.
    let (_, body, _) = f
        .call(
            "GET",
            "/v1/mart/new_members?from=2026-11-20&to=2026-11-25",
            Auth::Key("dl1"),
            None,
        )
        .await;
    assert_eq!(body["days"].as_array().unwrap().len(), 6);
    assert_eq!(body["days"][5], json!({"day": "2026-11-25", "members": 1}));
    // Stock alerts of the scope only.
    let (_, body, _) = f
        .call("GET", "/v1/alerts?kind=stock", Auth::Key("dl1"), None)
        .await;
    let alert_stores: Vec<&str> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["store_id"].as_str().unwrap())
        .collect();
    assert_eq!(alert_stores, ["DL-001"]);
    // Availability lists stores in scope only (channel: every store).
    let (_, body, _) = f
        .call(
            "GET",
            "/v1/skus/SKU-1/availability?near=DL-001",
            Auth::Key("dl1"),
            None,
        )
        .await;
    assert_eq!(body["stores"], json!([]));
    let (_, body, _) = f
        .call(
            "GET",
            "/v1/skus/SKU-1/availability?near=DL-001",
            Auth::Key("west"),
            None,
        )
        .await;
    let listed: Vec<&str> = body["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["store_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["DL-002"]);
    let (_, body, _) = f
        .call(
            "GET",
            "/v1/skus/SKU-1/availability?near=DL-001",
            Auth::Key("web"),
            None,
        )
        .await;
    assert_eq!(body["stores"].as_array().unwrap().len(), 3);
    // Bad parameters.
    for uri in [
        "/v1/mart/sales_by_hour?day=2026-13-01",
        "/v1/mart/sales_by_hour?group=sku",
        "/v1/mart/top_skus?limit=0",
        "/v1/mart/totals?from=2026-11-25&to=2026-11-01",
        "/v1/mart/totals?region=central&store=DL-001",
        "/v1/mart/totals?colour=red",
    ] {
        let (status, body, _) = f.call("GET", uri, Auth::Key("hq"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }
    let (status, _, _) = f
        .call("GET", "/v1/mart/totals?region=north", Auth::Key("hq"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn logins_fail_alike_are_limited_and_audited() {
    let f = fixture();
    let (status, wrong, token) = f.login("ann", "wrong").await;
    assert_eq!((status, token), (UNAUTH, None));
    let (status, unknown, _) = f.login("nobody", "wrong").await;
    assert_eq!(status, UNAUTH);
    assert_eq!(
        wrong, unknown,
        "the same answer for a wrong password and an unknown name"
    );
    // Locked after the configured number of failures (default 5).
    for _ in 0..4 {
        f.login("dora", "wrong").await;
    }
    assert_eq!(f.login("dora", "wrong").await.0, UNAUTH);
    let (status, body, _) = f
        .call(
            "POST",
            "/v1/login",
            Auth::None,
            Some(json!({"name": "dora", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Others are not affected; a malformed body is a 400.
    assert_eq!(f.login("ann", PASSWORD).await.0, OK);
    let (status, _, _) = f
        .call(
            "POST",
            "/v1/login",
            Auth::None,
            Some(json!({"name": "ann"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let records = f.audit.recent(100, None).unwrap();
    let actions: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.actor.as_str(), r.action.as_str()))
        .collect();
    assert!(
        actions.contains(&("anonymous", "user.login_failed")),
        "{actions:?}"
    );
    assert!(actions.contains(&("ann", "user.login")), "{actions:?}");
    let failed = records
        .iter()
        .filter(|r| r.action == "user.login_failed")
        .count();
    assert_eq!(failed, 2 + 5 + 1, "every failure, the locked attempt too");
    assert!(records
        .iter()
        .all(|r| !r.detail.to_string().contains(PASSWORD)));
}

#[tokio::test]
async fn without_a_mart_refusals_come_first() {
    let f = fixture_with(false);
    let uri = "/v1/mart/totals?region=east";
    assert_eq!(f.call("GET", uri, Auth::None, None).await.0, UNAUTH);
    assert_eq!(f.call("GET", uri, Auth::Key("west"), None).await.0, FORBID);
    assert_eq!(f.call("GET", uri, Auth::Key("web"), None).await.0, FORBID);
    let (status, body, _) = f.call("GET", uri, Auth::Key("hq"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}
