//! Fraud end to end, on the real program: a multi-store pattern whose alias
//! link arrives late is caught, near misses are not, the risk team reads
//! and decides through the review queue (roles enforced, audited), a rule
//! changed at run time applies to the next events without a restart, and a
//! webhook that is down and comes back receives every alert once, in
//! order, signed, even across a `kill -9` while it was down; decisions
//! survive crashes and restarts.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::StatusCode;
use serde_json::{json, Value};
use storepulse_tests::{
    free_port, wait_caught_up, Server, HQ_KEY, INGEST_KEY, RISK_KEY, STORE_KEY,
};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");
const SKEW: (&str, &str) = ("STOREPULSE__INGEST__MAX_FUTURE_SKEW_SECS", "3153600000");
const SECRET: &str = "webhook-test-secret";
const PHONE: &str = "9a1c2d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

fn sale(id: &str, at: &str, store: &str, member: &str, total: u64) -> Value {
    json!({
        "v": 1, "event_id": id, "event_type": "sale", "occurred_at": at,
        "store_id": store, "channel": "pos", "member_id": member,
        "order_id": format!("o-{id}"),
        "lines": [{"sku": "SKU-1", "qty": 1, "unit_price_cents": total}],
        "total_cents": total,
        "payment": {"method": "card", "account_ref": format!("card-{member}")},
    })
}

fn register(id: &str, at: &str, member: &str) -> Value {
    json!({
        "v": 1, "event_id": id, "event_type": "member_register", "occurred_at": at,
        "store_id": "KM-001", "channel": "app", "member_id": member, "phone_hash": PHONE,
    })
}

/// What the webhook received: (delivery id, body), in arrival order.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on `port` that checks every signature.
async fn start_webhook(port: u16, received: Received) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let timestamp: u64 = header("x-storepulse-timestamp").parse().unwrap_or(0);
                let signature = header("x-storepulse-signature");
                if !storepulse_sinks::webhook::signature::verify(
                    SECRET.as_bytes(),
                    timestamp,
                    &body,
                    &signature,
                ) {
                    return AxumStatus::UNAUTHORIZED;
                }
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                received
                    .lock()
                    .unwrap()
                    .push((header("x-storepulse-delivery"), value));
                AxumStatus::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

/// The shipped config plus one webhook at `port` with quick retries.
fn config_with_webhook(dir: &Path, port: u16) -> std::path::PathBuf {
    let shipped =
        std::fs::read_to_string(storepulse_tests::repo().join("storepulse.toml")).unwrap();
    let path = dir.join("storepulse.toml");
    std::fs::write(
        &path,
        format!(
            "{shipped}\n[[fraud.webhooks]]\nname = \"risk\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\ninitial_backoff_ms = 50\nmax_backoff_secs = 1\n"
        ),
    )
    .unwrap();
    path
}

async fn post_events(client: &reqwest::Client, base: &str, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let r = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .bearer_auth(INGEST_KEY)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["rejected"], json!([]), "{answer}");
    wait_caught_up(client, base).await;
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The open review queue, as (rule, key, event ids) per alert.
async fn open_alerts(
    client: &reqwest::Client,
    base: &str,
) -> Vec<(String, String, Vec<String>, String)> {
    let (status, body) = call(
        client,
        reqwest::Method::GET,
        format!("{base}/v1/alerts?status=open&limit=100"),
        Some(RISK_KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap().to_owned(),
                a["key"].as_str().unwrap().to_owned(),
                a["event_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_owned())
                    .collect(),
                a["alert_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fraud_is_caught_reviewed_retuned_and_delivered_to_a_webhook_that_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hook_port = free_port();
    let config = config_with_webhook(dir.path(), hook_port);
    let port = free_port();
    let server = Server::start_with_config(EXE, &config, &data, port, &[SKEW]);
    let base = server.base.clone();
    let client = reqwest::Client::new();

    // M1 buys in three stores within exactly 30 minutes, 5,000 CNY in all;
    // the middle sale is under its app account APP-9, whose registration
    // (same phone) arrives after the sales. N1 is a cent short; N2 spans
    // 31 minutes; N3 uses two stores. One sale of 20,000 CNY.
    post_events(
        &client,
        &base,
        &[
            register("r1", "2026-11-25T09:00:00+08:00", "M1"),
            sale("a1", "2026-11-25T10:00:00+08:00", "KM-001", "M1", 200_000),
            sale(
                "a2",
                "2026-11-25T10:10:00+08:00",
                "DL-001",
                "APP-9",
                200_000,
            ),
            sale("a3", "2026-11-25T10:30:00+08:00", "YX-001", "M1", 100_000),
            sale("n1", "2026-11-25T10:00:00+08:00", "KM-001", "N1", 200_000),
            sale("n2", "2026-11-25T10:05:00+08:00", "KM-002", "N1", 200_000),
            sale("n3", "2026-11-25T10:06:00+08:00", "KM-003", "N1", 99_999),
            sale("t1", "2026-11-25T10:00:00+08:00", "KM-001", "N2", 300_000),
            sale("t2", "2026-11-25T10:15:00+08:00", "KM-002", "N2", 100_000),
            sale("t3", "2026-11-25T10:31:00+08:00", "KM-003", "N2", 100_000),
            sale("u1", "2026-11-25T10:00:00+08:00", "KM-001", "N3", 300_000),
            sale("u2", "2026-11-25T10:01:00+08:00", "KM-002", "N3", 300_000),
            sale("u3", "2026-11-25T10:02:00+08:00", "KM-001", "N3", 300_000),
            sale(
                "big",
                "2026-11-25T10:40:00+08:00",
                "QJ-001",
                "N4",
                2_000_000,
            ),
        ],
    )
    .await;
    let alerts = open_alerts(&client, &base).await;
    assert!(
        alerts
            .iter()
            .all(|(rule, ..)| rule != "multi_store_large_purchase"),
        "before the link M1 and APP-9 are two members: {alerts:?}"
    );
    post_events(
        &client,
        &base,
        &[register("r2", "2026-11-25T09:30:00+08:00", "APP-9")],
    )
    .await;
    let alerts = open_alerts(&client, &base).await;
    let multi: Vec<_> = alerts
        .iter()
        .filter(|(rule, ..)| rule == "multi_store_large_purchase")
        .collect();
    assert_eq!(multi.len(), 1, "{alerts:?}");
    assert_eq!(multi[0].1, "M1");
    assert_eq!(multi[0].2, vec!["a1", "a2", "a3"]);
    let large: Vec<_> = alerts
        .iter()
        .filter(|(rule, ..)| rule == "large_single_purchase")
        .collect();
    assert_eq!(large.len(), 1, "{alerts:?}");
    assert_eq!(large[0].1, "o-big");
    assert!(
        !alerts
            .iter()
            .any(|(_, key, ..)| key.starts_with('N') || key.starts_with("card-N")),
        "near misses fire nothing: {alerts:?}"
    );
    let m1_alert = multi[0].3.clone();

    // Roles: no key and a store manager's key get nothing.
    let url = format!("{base}/v1/alerts?status=open");
    let (status, _) = call(&client, reqwest::Method::GET, url.clone(), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&client, reqwest::Method::GET, url, Some(STORE_KEY), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The stock alert book needs a principal now, and is scoped.
    let (status, _) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/alerts?kind=stock"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/alerts?kind=stock"),
        Some(STORE_KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The detail has the member's recent history; that read is audited.
    let (status, detail) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/alerts/{m1_alert}"),
        Some(RISK_KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["status"], "open");
    assert_eq!(detail["stores"], json!(["DL-001", "KM-001", "YX-001"]));
    assert_eq!(detail["total_cents"], 500_000);
    assert_eq!(detail["member"]["profile"]["member_id"], "M1");
    assert_eq!(detail["member"]["profile"]["aliases"], json!(["APP-9"]));

    // Before changing a rule, the risk team backtests it on the stored
    // events: a lower threshold would also flag N1 (a cent short of the
    // old one, 499,999 in three stores).
    let (status, report) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/backtest"),
        Some(RISK_KEY),
        Some(
            json!({"rule": {"name": "multi_store_large_purchase", "key": "member",
            "window_minutes": 30, "when": {"total_cents": 400_000, "distinct_stores": 3}}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let multi_report = &report["rules"]["multi_store_large_purchase"];
    assert_eq!(multi_report["current"], 1, "{report}");
    assert_eq!(multi_report["candidate"], 2, "{report}");
    assert_eq!(multi_report["both"], 1, "{report}");
    assert!(
        report["candidate_alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "N1"),
        "{report}"
    );

    // A rule changed at run time: a store manager may not, a bad rule is
    // refused with the reason, a good one applies to the next events.
    let lower = json!({
        "key": "member", "window_minutes": 30,
        "when": {"total_cents": 100_000, "distinct_stores": 3, "sales": 1},
    });
    let rule_url = format!("{base}/v1/rules/multi_store_large_purchase");
    let (status, _) = call(
        &client,
        reqwest::Method::PUT,
        rule_url.clone(),
        Some(STORE_KEY),
        Some(lower.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let bad = json!({"key": "member", "window_minutes": 99_999});
    let (status, body) = call(
        &client,
        reqwest::Method::PUT,
        rule_url.clone(),
        Some(RISK_KEY),
        Some(bad),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("window_minutes"),
        "{body}"
    );
    let (status, body) = call(
        &client,
        reqwest::Method::PUT,
        rule_url.clone(),
        Some(RISK_KEY),
        Some(lower),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, rule) = call(
        &client,
        reqwest::Method::GET,
        rule_url,
        Some(RISK_KEY),
        None,
    )
    .await;
    assert_eq!(rule["when"]["total_cents"], 100_000);
    post_events(
        &client,
        &base,
        &[
            sale("q1", "2026-11-25T11:00:00+08:00", "KM-001", "Q1", 40_000),
            sale("q2", "2026-11-25T11:05:00+08:00", "KM-002", "Q1", 40_000),
            sale("q3", "2026-11-25T11:10:00+08:00", "KM-003", "Q1", 40_000),
        ],
    )
    .await;
    let alerts = open_alerts(&client, &base).await;
    assert!(
        alerts
            .iter()
            .any(|(rule, key, ids, _)| rule == "multi_store_large_purchase"
                && key == "Q1"
                && ids == &["q1", "q2", "q3"]),
        "the lowered threshold applies without a restart: {alerts:?}"
    );

    // A decision by the risk team (not by HQ analysts).
    let decision_url = format!("{base}/v1/alerts/{m1_alert}/decision");
    let decision = json!({"decision": "confirmed_fraud", "comment": "同一张会员卡三家店刷卡"});
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        decision_url.clone(),
        Some(HQ_KEY),
        Some(decision.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &client,
        reqwest::Method::POST,
        decision_url,
        Some(RISK_KEY),
        Some(decision),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alert"]["status"], "confirmed_fraud");
    assert_eq!(body["alert"]["decision"]["decided_by"], "demo-risk");
    assert_eq!(body["notified"], true);

    // A crash (no final checkpoint): the tail is replayed and its alerts
    // raised again, which the outbox must keep once.
    server.kill9();
    let server = Server::start_with_config(EXE, &config, &data, port, &[SKEW]);
    let base = server.base.clone();
    wait_caught_up(&client, &base).await;

    // The webhook was down all along; now it comes up and gets every
    // notification once, in order, signed.
    let received: Received = Arc::default();
    let hook = start_webhook(hook_port, received.clone()).await;
    let expected: BTreeSet<String> = open_alerts(&client, &base)
        .await
        .iter()
        .map(|(.., id)| format!("raised:{id}"))
        .chain([format!("raised:{m1_alert}")])
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        let decided = got
            .iter()
            .any(|id| id.starts_with(&format!("decided:{m1_alert}:")));
        if expected.is_subset(&got) && decided {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhook got {got:?}, expected {expected:?} and a decision"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // In order: the decision after the alert it decides.
    let order: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let raised_at = order
        .iter()
        .position(|id| id == &format!("raised:{m1_alert}"))
        .unwrap();
    let decided_at = order
        .iter()
        .position(|id| id.starts_with("decided:"))
        .unwrap();
    assert!(raised_at < decided_at, "{order:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let delivered =
            storepulse_tests::metric(&client, &base, "storepulse_webhook_delivered").await;
        if delivered as usize == order.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics counts {delivered} deliveries, the webhook got {}",
            order.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(storepulse_tests::metric(&client, &base, "storepulse_fraud_alerts_total").await >= 3.0);

    // A restart: the decision stands, nothing is delivered twice.
    assert!(server.stop(), "clean stop");
    let server = Server::start_with_config(EXE, &config, &data, port, &[SKEW]);
    wait_caught_up(&client, &server.base).await;
    let (status, detail) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/alerts/{m1_alert}", server.base),
        Some(RISK_KEY),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["status"], "confirmed_fraud");
    assert_eq!(detail["decision"]["comment"], "同一张会员卡三家店刷卡");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ids: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a notification delivered twice: {ids:?}"
    );

    // The audit log has the rule change, the decision and the member read.
    let (_, audit) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/audit?limit=200", server.base),
        Some(HQ_KEY),
        None,
    )
    .await;
    let records = audit["records"].as_array().unwrap();
    let has = |actor: &str, action: &str| {
        records
            .iter()
            .any(|r| r["actor"] == actor && r["action"] == action)
    };
    assert!(has("demo-risk", "rules.change"), "{audit}");
    assert!(has("demo-risk", "alert.decision"), "{audit}");
    assert!(has("demo-risk", "member.read"), "{audit}");
    hook.abort();
}
