//! The embedded mart after `kill -9`: simulated traffic, the binary killed
//! three times mid-stream, and at the end every dashboard query over the
//! live mart (`data_dir/mart`, written by the sink loop from the mart log)
//! answers exactly what the same query answers over the mart `replay`
//! writes from the acknowledged events. No row missing, none twice.
//!
//! The same scenario runs with `[mart.clickhouse]` set: the binary's sink
//! writes to a real ClickHouse server (`./deploy/clickhouse.sh start`,
//! or `STOREPULSE_TEST_CLICKHOUSE`), killed mid-batch, and the server's
//! answers, and the dashboard's `/v1/mart/totals`, must equal replay's.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::time::Duration;

use storepulse_mart::query::{MartFilter, MartReader};
use storepulse_sinks::clickhouse::{ClickHouseConfig, ClickHouseMart};
use storepulse_tests::mart::{
    answers, clickhouse_url, embedded_reader, spawn_simulate, wait_acked_beyond,
    wait_mart_caught_up, wait_simulate,
};
use storepulse_tests::{free_port, metric, replay, wait_caught_up, Server, HQ_KEY};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");

#[tokio::test(flavor = "multi_thread")]
async fn mart_after_kill_9_equals_replay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    kill_three_times(dir.path(), &[]).await;
    let live = answers(&embedded_reader(&data.join("mart"))).await;
    let replayed = answers(&embedded_reader(&dir.path().join("replay/mart"))).await;
    assert!(
        live[0].contains("lines: ") && !live[0].contains("lines: 0,"),
        "{}",
        live[0]
    );
    for (l, r) in live.iter().zip(&replayed) {
        assert_eq!(l, r, "live mart differs from replay's");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_mart_after_kill_9_equals_replay() {
    let url = clickhouse_url();
    let database = format!("sp_e2e_{}", std::process::id());
    let ping = reqwest::get(format!("{url}/ping")).await;
    assert!(
        ping.is_ok_and(|r| r.status().is_success()),
        "ClickHouse at {url} is not reachable; start it with `./deploy/clickhouse.sh start` \
         (or set STOREPULSE_TEST_CLICKHOUSE)"
    );
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("STOREPULSE__MART__CLICKHOUSE__URL", url.as_str()),
        ("STOREPULSE__MART__CLICKHOUSE__DATABASE", database.as_str()),
    ];
    let api_totals = kill_three_times(dir.path(), &env).await;
    let server = ClickHouseMart::connect(ClickHouseConfig::new(&url, &database))
        .await
        .unwrap();
    let live = answers(&server).await;
    let replayed = answers(&embedded_reader(&dir.path().join("replay/mart"))).await;
    assert!(
        live[0].contains("lines: ") && !live[0].contains("lines: 0,"),
        "{}",
        live[0]
    );
    for (l, r) in live.iter().zip(&replayed) {
        assert_eq!(l, r, "ClickHouse mart differs from replay's");
    }
    // The dashboard read ClickHouse: its totals are the server's.
    let today = chrono::Utc::now().date_naive();
    let all = MartFilter {
        from: today - chrono::Duration::days(10),
        to: today + chrono::Duration::days(10),
        stores: None,
    };
    let totals = server.totals(&all).await.unwrap();
    assert_eq!(api_totals["net_cents"], totals.net_cents, "{api_totals}");
    assert_eq!(api_totals["lines"], totals.lines, "{api_totals}");
    let _ = server
        .client()
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;
}

/// Simulated traffic with three `kill -9`s of the binary (started with
/// `extra_env`), waits until the mart sink has written everything, asks
/// the dashboard for `/v1/mart/totals` over the 21 days around today as HQ,
/// stops, and replays the acknowledged events into `dir/replay`.
async fn kill_three_times(dir: &std::path::Path, extra_env: &[(&str, &str)]) -> serde_json::Value {
    let data = dir.join("data");
    let acked = dir.join("acked.ndjson");
    let port = free_port();
    let mut env = vec![
        ("STOREPULSE__RUNTIME__CHECKPOINT_INTERVAL_SECS", "0.3"),
        ("STOREPULSE__INGEST__MAX_FUTURE_SKEW_SECS", "3153600000"),
        ("STOREPULSE__MART__MAX_BATCH_WAIT_MS", "150"),
        ("STOREPULSE__MART__MAX_BATCH_ROWS", "3000"),
    ];
    env.extend_from_slice(extra_env);
    let mut server = Server::start(EXE, &data, port, &env);
    let base = server.base.clone();
    let total = 8_000;
    let mut sim = spawn_simulate(EXE, &data, &base, (2000, 11, total), &acked);
    let mut last = 0;
    for (kill, wait_ms) in [900u64, 700, 1100].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(wait_ms));
        last = wait_acked_beyond(&acked, last, kill + 1);
        assert!(last < total, "kill {}: the stream already ended", kill + 1);
        server.kill9();
        server = Server::start(EXE, &data, port, &env);
    }
    wait_simulate(&mut sim);

    let client = reqwest::Client::new();
    wait_caught_up(&client, &server.base).await;
    // The sink has written everything in the mart log (the runtime appends
    // a batch's rows before it counts the batch as applied).
    wait_mart_caught_up(&client, &server.base).await;
    let rows = metric(&client, &server.base, "storepulse_mart_rows_written_total").await;
    assert!(rows > 0.0);
    let today = chrono::Utc::now().date_naive();
    let totals: serde_json::Value = client
        .get(format!(
            "{}/v1/mart/totals?from={}&to={}",
            server.base,
            today - chrono::Duration::days(10),
            today + chrono::Duration::days(10)
        ))
        .bearer_auth(HQ_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(server.stop(), "graceful stop failed");
    replay(EXE, &acked, &dir.join("replay"));
    totals
}
