//! Helpers of the mart end-to-end tests (`tests/tests/mart.rs`): simulated
//! traffic with an acknowledged-events file, waiting for the mart sink,
//! every dashboard query as comparable text, and the sales totals of the
//! acknowledged events themselves.

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use storepulse_core::StoreMaster;
use storepulse_mart::embedded::reader::DataFusionMart;
use storepulse_mart::query::{MartFilter, MartReader, SalesGroup};

use crate::{repo, storepulse};

/// The ClickHouse server of the tests (`STOREPULSE_TEST_CLICKHOUSE`, or the
/// one `./deploy/clickhouse.sh start` runs).
pub fn clickhouse_url() -> String {
    std::env::var("STOREPULSE_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// The test server's mart in `database` (created and migrated); fails
/// with the command that starts a server when none answers.
///
/// # Panics
/// When ClickHouse is not usable.
pub async fn clickhouse_mart(database: &str) -> storepulse_sinks::clickhouse::ClickHouseMart {
    use storepulse_sinks::clickhouse::{ClickHouseConfig, ClickHouseMart};
    let url = clickhouse_url();
    ClickHouseMart::connect(ClickHouseConfig::new(&url, database))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "ClickHouse at {url} is not usable ({e}); start one with \
                 `./deploy/clickhouse.sh start` or set STOREPULSE_TEST_CLICKHOUSE"
            )
        })
}

/// Waits until ClickHouse holds more sale lines than now (`timeout` at
/// most; `kill` names the round in failures): the sink is inserting.
///
/// # Panics
/// On a query error or when nothing is inserted in time.
pub async fn wait_sale_lines_grow(
    ch: &storepulse_sinks::clickhouse::ClickHouseMart,
    kill: usize,
    timeout: Duration,
) {
    let count = || async {
        ch.client()
            .query("SELECT count() FROM sale_lines")
            .fetch_one::<u64>()
            .await
            .expect("count sale lines")
    };
    let before = count().await;
    let deadline = Instant::now() + timeout;
    while count().await == before {
        assert!(
            Instant::now() < deadline,
            "kill {kill}: no sale lines reached ClickHouse in {} s",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lines of the acknowledged-events file so far.
pub fn acked_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The sales totals of the acknowledged events, each sale once by
/// `event_id`, as the mart's totals print them: `net_cents: N, units: N,
/// lines: N, orders: N`. The ground truth a mart must equal.
///
/// # Panics
/// When the file is unreadable or a sale lacks its lines or total.
pub fn acked_sales_totals(acked: &Path) -> String {
    let text = std::fs::read_to_string(acked).expect("acknowledged events");
    let mut sales = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if e["event_type"] == "sale" {
            let id = e["event_id"].as_str().expect("event_id").to_owned();
            sales.entry(id).or_insert(e);
        }
    }
    let (mut net, mut units, mut lines) = (0i64, 0i64, 0usize);
    for e in sales.values() {
        net += e["total_cents"].as_i64().expect("total_cents");
        let l = e["lines"].as_array().expect("lines");
        lines += l.len();
        units += l
            .iter()
            .map(|l| l["qty"].as_i64().expect("qty"))
            .sum::<i64>();
    }
    format!(
        "net_cents: {net}, units: {units}, lines: {lines}, orders: {}",
        sales.len()
    )
}

/// The embedded mart under `root`, read with DataFusion.
pub fn embedded_reader(root: &Path) -> DataFusionMart {
    let stores = Arc::new(
        StoreMaster::load(&repo().join("data/stores.csv")).expect("data/stores.csv loads"),
    );
    DataFusionMart::new(root, Arc::default()).with_stores(stores)
}

/// Every dashboard query over the 21 days around today, for all stores and
/// for two stores, as one comparable text each.
pub async fn answers(mart: &dyn MartReader) -> Vec<String> {
    let today = chrono::Utc::now().date_naive();
    let mut out = Vec::new();
    for stores in [None, Some(vec!["KM-001".to_owned(), "KM-007".to_owned()])] {
        let f = MartFilter {
            from: today - chrono::Duration::days(10),
            to: today + chrono::Duration::days(10),
            stores,
        };
        out.push(format!(
            "totals {:?}",
            mart.totals(&f).await.expect("totals")
        ));
        for g in [SalesGroup::Store, SalesGroup::Region, SalesGroup::Channel] {
            out.push(format!(
                "{g:?} {:?}",
                mart.sales_by_hour(&f, g).await.expect("sales_by_hour")
            ));
        }
        out.push(format!(
            "top {:?}",
            mart.top_skus(&f, 50).await.expect("top_skus")
        ));
        out.push(format!(
            "tags {:?}",
            mart.members_by_tag(&f).await.expect("members_by_tag")
        ));
        out.push(format!(
            "new {:?}",
            mart.new_members(&f).await.expect("new_members")
        ));
    }
    out
}

/// Starts `simulate` against `base`: `total` events at `rate`/s with 3 %
/// duplicates and 30 s of jitter, retrying through restarts, writing the
/// acknowledged events to `acked`.
pub fn spawn_simulate(
    exe: &str,
    data: &Path,
    base: &str,
    (rate, seed, total): (u32, u64, usize),
    acked: &Path,
) -> Child {
    storepulse(exe, data)
        .args(["simulate", "--url", base, "--quiet"])
        .args(["--rate", &rate.to_string(), "--seed", &seed.to_string()])
        .args([
            "--events",
            &total.to_string(),
            "--duplicate-share",
            "0.03",
            "--jitter",
            "30",
        ])
        .args(["--max-retries", "1000", "--stores"])
        .arg(repo().join("data/stores.csv"))
        .arg("--acked-out")
        .arg(acked)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn simulate")
}

/// Waits until at least one more event than `last` is acknowledged (60 s
/// at most) and returns the new count; `kill` names the round in failures.
pub fn wait_acked_beyond(acked: &Path, last: usize, kill: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_lines(acked) <= last {
        assert!(Instant::now() < deadline, "kill {kill}: no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    acked_lines(acked)
}

/// Waits (240 s at most) for `simulate` to end, and checks it succeeded.
pub fn wait_simulate(sim: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = sim.try_wait().expect("simulate's status") {
            break status;
        }
        assert!(Instant::now() < deadline, "simulate did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "simulate failed: {status}");
}

/// Waits until the mart holds every event acknowledged so far: processing
/// caught up (`lag` 0; the runtime appends a batch's mart rows to the mart
/// log before it counts the batch as applied), then the mart sink wrote
/// everything in the mart log (`mart_lag` 0 in `/healthz`, 180 s at most).
pub async fn wait_mart_caught_up(client: &reqwest::Client, base: &str) {
    crate::wait_caught_up(client, base).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let health: serde_json::Value = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("GET /healthz")
            .json()
            .await
            .expect("/healthz is JSON");
        if health["mart_lag"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mart sink did not catch up: {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
