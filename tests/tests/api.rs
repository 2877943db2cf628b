//! The HTTP API end to end, against the real program on 127.0.0.1.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{json, Value};
use storepulse_tests::{all_stock, repo, wait_caught_up, Server};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");
const KEY: &str = "storepulse-demo-key";
/// The contract examples are dated up to two days ahead of the day this was
/// written; allow any skew so they stay valid.
const SKEW: (&str, &str) = ("STOREPULSE__INGEST__MAX_FUTURE_SKEW_SECS", "3153600000");

fn examples() -> Vec<Value> {
    let dir = repo().join("tests/data/examples");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

fn config_with_store_key(dir: &Path) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(repo().join("storepulse.toml")).unwrap();
    let hash = {
        let out = std::process::Command::new(EXE)
            .args(["keys", "hash", "km-001-secret"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    text.push_str(&format!(
        "\n[[ingest.keys]]\nname = \"pos-km-001\"\nsha256 = \"{hash}\"\nstores = [\"KM-001\"]\n"
    ));
    let path = dir.join("storepulse.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// GET with the demo HQ key (every query route needs a principal).
async fn get_json(client: &reqwest::Client, url: String) -> Value {
    let response = client
        .get(&url)
        .bearer_auth(storepulse_tests::HQ_KEY)
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    key: Option<&str>,
    body: String,
    ndjson: bool,
) -> (StatusCode, Value) {
    let mut req = client.post(format!("{base}/v1/events")).body(body);
    req = req.header(
        "content-type",
        if ndjson {
            "application/x-ndjson"
        } else {
            "application/json"
        },
    );
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_query_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_store_key(dir.path());
    let data = dir.path().join("data");
    let server = Server::start_with_config(EXE, &config, &data, 0, &[SKEW]);
    let base = server.base.clone();
    let client = reqwest::Client::new();

    // Authentication.
    let body = serde_json::to_string(&examples()).unwrap();
    let (status, answer) = post(&client, &base, None, body.clone(), false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let (status, _) = post(&client, &base, Some("wrong"), body.clone(), false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Every contract example is accepted, then all are duplicates.
    let (status, answer) = post(&client, &base, Some(KEY), body.clone(), false).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 10, "{answer}");
    assert_eq!(answer["rejected"], json!([]));
    let (_, answer) = post(&client, &base, Some(KEY), body, false).await;
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(0), Some(10)),
        "{answer}"
    );

    // A key bound to KM-001 cannot send for KM-003; NDJSON with a bad line.
    let receipt = json!({"v":1,"event_id":"rcv-km3-2","event_type":"stock_receipt","occurred_at":"2026-11-25T07:31:00+08:00","store_id":"KM-003","channel":"backoffice","lines":[{"sku":"SKU-100234","qty":5}]});
    let own = json!({"v":1,"event_id":"rcv-km1-1","event_type":"stock_receipt","occurred_at":"2026-11-25T07:31:00+08:00","store_id":"KM-001","channel":"backoffice","lines":[{"sku":"SKU-100234","qty":10}]});
    let ndjson = format!(
        "{own}\n{{\"v\":1,\"event_id\":\"bad-1\",\"lines\":[{{\"qty\":1.5}}]}}\n{receipt}\n"
    );
    let (status, answer) = post(&client, &base, Some("km-001-secret"), ndjson, true).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{answer}");
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["event_id"], "bad-1");
    assert_eq!(rejected[1]["index"], 2);
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("store_id: ingest key \"pos-km-001\" is not bound to store \"KM-003\""),
        "{answer}"
    );

    // Unreadable and oversized bodies.
    let (status, answer) = post(&client, &base, Some(KEY), "[1, 2".into(), false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let too_many = format!("[{}]", vec!["{}"; 10_001].join(","));
    let (status, answer) = post(&client, &base, Some(KEY), too_many, false).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("10000"));
    let (status, _) = post(
        &client,
        &base,
        Some(KEY),
        format!("[\"{}\"]", "x".repeat(11 << 20)),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    wait_caught_up(&client, &base).await;
    // sale: KM-001 SKU-100234 -2, then +10 received; count at LJ-001 says 17.
    let stock: Value = get_json(&client, format!("{base}/v1/stock/KM-001/SKU-100234")).await;
    assert_eq!(stock["on_hand"], 8, "{stock}");
    assert!(stock["velocity_per_day"].as_f64().unwrap() > 0.0);
    let lj: Value = get_json(&client, format!("{base}/v1/stock/LJ-001/SKU-100234")).await;
    assert_eq!(lj["on_hand"], 17);
    // transfer: KM-004 -5, KM-009 +5 of SKU-200871.
    let near: Value = get_json(
        &client,
        format!("{base}/v1/skus/SKU-200871/availability?near=KM-001"),
    )
    .await;
    let ids: Vec<&str> = near["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["store_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"KM-009") && ids.contains(&"KM-003"), "{near}");
    // The oversold alert of the first sale, and the dead letters.
    let alerts: Value = get_json(&client, format!("{base}/v1/alerts?kind=stock")).await;
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alert_id"] == "oversold:KM-001:SKU-100234:pos-KM-001-t3-000918"),
        "{alerts}"
    );
    let dlq: Value = get_json(&client, format!("{base}/v1/dlq")).await;
    let letters = dlq["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "{dlq}");
    assert!(letters
        .iter()
        .any(|l| l["event_id"] == "bad-1" && l["reason"].as_str().unwrap().contains("qty")));
    let route: Value = client
        .post(format!("{base}/v1/route"))
        .bearer_auth(storepulse_tests::HQ_KEY)
        .json(&json!({"lines":[{"sku":"SKU-200871","qty":3}],"deliver_to":{"lat":25.02,"lon":102.67}}))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(route["stores_used"], 1, "{route}");
    let metrics = storepulse_tests::metrics_text(&client, &base).await;
    assert!(
        metrics
            .contains("storepulse_ingest_events_total{event_type=\"sale\",outcome=\"accepted\"} 2"),
        "{metrics}"
    );
    assert!(metrics
        .contains("storepulse_ingest_events_total{event_type=\"sale\",outcome=\"duplicate\"} 2"));
    assert!(metrics.contains("storepulse_processing_lag_records"));
    let openapi: Value = get_json(&client, format!("{base}/openapi.json")).await;
    assert!(openapi["paths"]["/v1/events"]["post"].is_object());

    // Graceful stop and restart: the same stock comes back from the checkpoint.
    let before = all_stock(&client, &base).await;
    assert!(
        server.stop(),
        "storepulse run did not exit cleanly on SIGTERM"
    );
    let server = Server::start_with_config(EXE, &config, &data, 0, &[SKEW]);
    wait_caught_up(&client, &server.base).await;
    assert_eq!(all_stock(&client, &server.base).await, before);
    // Both checkpoint generations damaged (disk corruption): the state is
    // rebuilt from the event log, which still starts at offset 0.
    let before = all_stock(&client, &server.base).await;
    assert!(server.stop());
    for name in ["checkpoint.bin", "checkpoint.prev.bin"] {
        std::fs::write(data.join("checkpoint").join(name), b"damaged").unwrap();
    }
    let server = Server::start_with_config(EXE, &config, &data, 0, &[SKEW]);
    wait_caught_up(&client, &server.base).await;
    assert_eq!(all_stock(&client, &server.base).await, before);
    // And ingest still knows the old ids.
    let (_, answer) = post(
        &client,
        &server.base,
        Some(KEY),
        serde_json::to_string(&examples()).unwrap(),
        false,
    )
    .await;
    assert_eq!(answer["duplicates"], 10, "{answer}");
}
