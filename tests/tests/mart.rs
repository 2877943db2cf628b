//! The mart after `kill -9`: simulated traffic, the binary killed three
//! times mid-stream, and at the end
//! - the sales totals equal those of the acknowledged events themselves
//!   (every sale once: nothing lost, nothing doubled), and
//! - every dashboard query over the live mart answers exactly what the same
//!   query answers over the mart `replay` writes from the acknowledged
//!   events.
//!
//! It runs on the embedded mart (`data_dir/mart`, written by the sink loop
//! from the mart log), and with `[mart.clickhouse]` set: the binary's sink
//! writes to a real ClickHouse server (`./deploy/clickhouse.sh start`, or
//! `STOREPULSE_TEST_CLICKHOUSE`), each kill lands while the sink is
//! inserting, and the dashboard's `/v1/mart/totals` must be the server's.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::path::Path;
use std::time::Duration;

use storepulse_mart::query::{MartFilter, MartReader};
use storepulse_sinks::clickhouse::ClickHouseMart;
use storepulse_tests::mart::{
    acked_sales_totals, answers, clickhouse_mart, clickhouse_url, embedded_reader, spawn_simulate,
    wait_acked_beyond, wait_mart_caught_up, wait_sale_lines_grow, wait_simulate,
};
use storepulse_tests::{free_port, metric, replay, Server, HQ_KEY};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");

#[tokio::test(flavor = "multi_thread")]
async fn mart_after_kill_9_equals_replay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    kill_three_times(dir.path(), (2000, 8_000), &[], None).await;
    let live = answers(&embedded_reader(&data.join("mart"))).await;
    let replayed = answers(&embedded_reader(&dir.path().join("replay/mart"))).await;
    compare(
        &live,
        &replayed,
        &dir.path().join("acked.ndjson"),
        "live mart",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_mart_after_kill_9_equals_replay() {
    let url = clickhouse_url();
    let database = format!("sp_e2e_{}", std::process::id());
    let server = clickhouse_mart(&database).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("STOREPULSE__MART__CLICKHOUSE__URL", url.as_str()),
        ("STOREPULSE__MART__CLICKHOUSE__DATABASE", database.as_str()),
    ];
    // A slower, longer stream: each kill first waits for the sink to insert
    // (after a restart it connects and catches up while events flow), and
    // three rounds must fit before the stream ends.
    let api_totals = kill_three_times(dir.path(), (1000, 24_000), &env, Some(&server)).await;
    let live = answers(&server).await;
    let replayed = answers(&embedded_reader(&dir.path().join("replay/mart"))).await;
    compare(
        &live,
        &replayed,
        &dir.path().join("acked.ndjson"),
        "ClickHouse mart",
    );
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

/// The live answers against the acknowledged events' own sales totals, and
/// each against replay's.
fn compare(live: &[String], replayed: &[String], acked: &Path, what: &str) {
    assert!(
        live[0].contains("lines: ") && !live[0].contains("lines: 0,"),
        "{}",
        live[0]
    );
    let truth = acked_sales_totals(acked);
    assert!(
        live[0].contains(&truth),
        "{what}: totals {} differ from the acknowledged events' ({truth})",
        live[0]
    );
    assert!(
        replayed[0].contains(&truth),
        "replay's mart: totals {} differ from the acknowledged events' ({truth})",
        replayed[0]
    );
    for (l, r) in live.iter().zip(replayed) {
        assert_eq!(l, r, "{what} differs from replay's");
    }
}

/// Simulated traffic (`total` events at `rate`/s) with three `kill -9`s of the binary
/// (started with `extra_env`); with `clickhouse`, each kill waits until
/// the sink has inserted since the start (killed mid-insert). Then waits
/// until the mart sink has written everything, asks the dashboard for
/// `/v1/mart/totals` over the 21 days around today as HQ, stops, and
/// replays the acknowledged events into `dir/replay`.
async fn kill_three_times(
    dir: &Path,
    (rate, total): (u32, usize),
    extra_env: &[(&str, &str)],
    clickhouse: Option<&ClickHouseMart>,
) -> serde_json::Value {
    let data = dir.join("data");
    let acked = dir.join("acked.ndjson");
    let port = free_port();
    let mut env = vec![
        ("STOREPULSE__RUNTIME__CHECKPOINT_INTERVAL_SECS", "0.3"),
        ("STOREPULSE__INGEST__MAX_FUTURE_SKEW_SECS", "3153600000"),
        ("STOREPULSE__MART__MAX_BATCH_WAIT_MS", "100"),
        ("STOREPULSE__MART__MAX_BATCH_ROWS", "2000"),
    ];
    env.extend_from_slice(extra_env);
    let mut server = Server::start(EXE, &data, port, &env);
    let base = server.base.clone();
    let mut sim = spawn_simulate(EXE, &data, &base, (rate, 11, total), &acked);
    let mut last = 0;
    for (kill, wait_ms) in [900u64, 700, 1100].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(wait_ms));
        last = wait_acked_beyond(&acked, last, kill + 1);
        assert!(last < total, "kill {}: the stream already ended", kill + 1);
        if let Some(ch) = clickhouse {
            // Kill while the sink is inserting: once the server has grown
            // since this start (the sink writes every 100 ms while events
            // flow).
            wait_sale_lines_grow(ch, kill + 1, Duration::from_secs(30)).await;
        }
        server.kill9();
        server = Server::start(EXE, &data, port, &env);
    }
    wait_simulate(&mut sim);

    let client = reqwest::Client::new();
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
