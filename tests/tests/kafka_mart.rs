//! The mart in Kafka mode against the real broker and a real ClickHouse:
//! `ingest`, `serve` (the designated mart sink, `mart.kafka_sink`, into
//! ClickHouse) and `process` as separate programs, simulated traffic, the
//! `process` killed with SIGKILL three times mid-stream (each stage resumes
//! from its checkpoints and derives the same rows at the same positions
//! again). At the end
//! - the ClickHouse sales totals equal those of the acknowledged events
//!   themselves (every sale once: nothing lost, nothing doubled),
//! - every dashboard query over ClickHouse answers what the same query
//!   answers over the mart `replay` writes from the acknowledged events
//!   (members by tag scoped to stores too: tags move with the favourite
//!   store, so the order a member partition sees sales in does not matter),
//! - the serve's `/v1/mart/totals` is ClickHouse's.
//!
//! A broker or ClickHouse that does not answer fails the test with the
//! command that starts it (`./deploy/kafka.sh start`,
//! `./deploy/clickhouse.sh start`; or `STOREPULSE_TEST_KAFKA`,
//! `STOREPULSE_TEST_CLICKHOUSE`).

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::time::{Duration, Instant};

use storepulse_mart::query::{MartFilter, MartReader};
use storepulse_tests::kafka::{broker, env_refs, kafka_env, unique_prefix};
use storepulse_tests::mart::{
    acked_sales_totals, answers, clickhouse_mart, clickhouse_url, embedded_reader, spawn_simulate,
    wait_acked_beyond, wait_sale_lines_grow, wait_simulate,
};
use storepulse_tests::{free_port, replay, repo, Server, HQ_KEY};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");

#[tokio::test(flavor = "multi_thread")]
async fn kafka_mart_in_clickhouse_after_kill_9_of_process_equals_replay() {
    let broker = broker();
    let url = clickhouse_url();
    let database = format!("sp_kmart_{}", std::process::id());
    let server = clickhouse_mart(&database).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prefix = unique_prefix("mart");
    let mut env = kafka_env(&broker, &prefix, &dir.path().join("state"));
    for (k, v) in [
        // The machine is shared and the broker is Tansu: a longer session
        // than `kafka_env`'s keeps a loaded broker from costing the group.
        ("STOREPULSE__KAFKA__SESSION_TIMEOUT_MS", "15000"),
        ("STOREPULSE__MART__MAX_BATCH_WAIT_MS", "100"),
        ("STOREPULSE__MART__MAX_BATCH_ROWS", "2000"),
        ("STOREPULSE__MART__CLICKHOUSE__URL", url.as_str()),
        ("STOREPULSE__MART__CLICKHOUSE__DATABASE", database.as_str()),
    ] {
        env.push((k.into(), v.into()));
    }
    let mut serve_env = env.clone();
    serve_env.push(("STOREPULSE__MART__KAFKA_SINK".into(), "true".into()));
    let config = repo().join("storepulse.toml");
    let ingest = Server::start_role(EXE, &config, &data.join("i"), 0, "ingest", &env_refs(&env));
    let serve = Server::start_role(
        EXE,
        &config,
        &data.join("s"),
        0,
        "serve",
        &env_refs(&serve_env),
    );
    let process_port = free_port();
    let start_process = || {
        Server::start_role(
            EXE,
            &config,
            &data.join("p"),
            process_port,
            "process",
            &env_refs(&env),
        )
    };
    let mut process = start_process();

    let acked = dir.path().join("acked.ndjson");
    let total = 20_000;
    let mut sim = spawn_simulate(EXE, &data, &ingest.base, (150, 17, total), &acked);
    let mut last = 0;
    for (kill, wait_ms) in [900u64, 700, 1100].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(wait_ms));
        last = wait_acked_beyond(&acked, last, kill + 1);
        assert!(last < total, "kill {}: the stream already ended", kill + 1);
        // Kill while rows flow: once the sink has written since the start.
        wait_sale_lines_grow(&server, kill + 1, Duration::from_secs(180)).await;
        process.kill9();
        process = start_process();
    }
    wait_simulate(&mut sim);

    // The stages and the sink catch up: wait until ClickHouse's sales
    // totals are the acknowledged events' (replay, which takes both cores,
    // runs after that, so the broker is not starved meanwhile).
    let truth = acked_sales_totals(&acked);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let totals = answers(&server).await.remove(0);
        if totals.contains(&truth) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ClickHouse mart: totals {totals} never reached the acknowledged events' ({truth})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    replay(EXE, &acked, &dir.path().join("replay"));
    let replayed = answers(&embedded_reader(&dir.path().join("replay/mart"))).await;
    assert!(
        replayed[0].contains(&truth),
        "replay's mart: totals {} differ from the acknowledged events' ({truth})",
        replayed[0]
    );
    // The member stage (and so tags, points, registrations) may still be
    // catching up: after a kill its group can take a while to rebalance on
    // Tansu. Poll until every answer equals replay's, then compare.
    let deadline = Instant::now() + Duration::from_secs(300);
    let live = loop {
        let live = answers(&server).await;
        if live == replayed || Instant::now() >= deadline {
            break live;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let half = live.len() / 2;
    for (scope, differs) in [
        (None, live[..half] != replayed[..half]),
        (
            Some(&["KM-001", "KM-007"][..]),
            live[half..] != replayed[half..],
        ),
    ] {
        if differs {
            let replay_mart = dir.path().join("replay/mart");
            eprintln!(
                "{}",
                explain_tag_difference(&server, &replay_mart, scope).await
            );
        }
    }
    compare(&live, &replayed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        answers(&server).await,
        live,
        "ClickHouse changed after it caught up (rows written twice late?)"
    );

    // The serve's dashboard reads ClickHouse.
    let today = chrono::Utc::now().date_naive();
    let all = MartFilter {
        from: today - chrono::Duration::days(10),
        to: today + chrono::Duration::days(10),
        stores: None,
    };
    let api: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/mart/totals?from={}&to={}",
            serve.base, all.from, all.to
        ))
        .bearer_auth(HQ_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let totals = server.totals(&all).await.unwrap();
    assert_eq!(api["net_cents"], totals.net_cents, "{api}");
    assert_eq!(api["lines"], totals.lines, "{api}");

    assert!(process.stop(), "graceful stop of the processor failed");
    assert!(serve.stop(), "graceful stop of serve failed");
    drop(ingest);
    let _ = server
        .client()
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;
}

/// Every answer equal (the sales totals first: nothing lost or doubled).
fn compare(live: &[String], replayed: &[String]) {
    assert_eq!(live.len(), replayed.len());
    for (l, r) in live.iter().zip(replayed) {
        assert_eq!(l, r, "ClickHouse mart (Kafka mode) differs from replay's");
    }
}

/// One `tag_changes` row: member, tag, change, position (partition,
/// offset, index), as-of time, event id, store.
type TagRow = (String, String, i64, u64, u64, u64, i64, String, String);

/// The (member, tag) pairs whose sum of changes differs between ClickHouse
/// and replay's mart, each with its rows in both: what names the cause of
/// a members-by-tag difference (a row doubled, one missing, another id).
async fn explain_tag_difference(
    server: &storepulse_sinks::clickhouse::ClickHouseMart,
    replay_mart: &std::path::Path,
    stores: Option<&[&str]>,
) -> String {
    use datafusion::arrow::array::{Array, Int64Array, StringArray, UInt64Array};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    use std::collections::BTreeMap;

    const COLUMNS: &str =
        "member_id, tag, change, src_partition, src_offset, src_index, as_of_ms, event_id, store_id";
    let live: Vec<TagRow> = server
        .client()
        .query(
            "SELECT member_id, tag, toInt64(change), toUInt64(src_partition), src_offset, \
             toUInt64(src_index), as_of_ms, event_id, store_id FROM tag_changes",
        )
        .fetch_all()
        .await
        .unwrap();
    let batches = embedded_reader(replay_mart)
        .query(
            &format!("SELECT {COLUMNS} FROM tag_changes"),
            &[storepulse_mart::rows::Table::TagChanges],
        )
        .await
        .unwrap();
    let mut replayed: Vec<TagRow> = Vec::new();
    for b in &batches {
        let col = |i: usize, t: &DataType| cast(b.column(i), t).unwrap();
        let (s0, s1, s7, s8) = (
            col(0, &DataType::Utf8),
            col(1, &DataType::Utf8),
            col(7, &DataType::Utf8),
            col(8, &DataType::Utf8),
        );
        let (i2, i6) = (col(2, &DataType::Int64), col(6, &DataType::Int64));
        let (u3, u4, u5) = (
            col(3, &DataType::UInt64),
            col(4, &DataType::UInt64),
            col(5, &DataType::UInt64),
        );
        let s = |a: &dyn Array, r: usize| {
            a.as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(r)
                .to_owned()
        };
        let i = |a: &dyn Array, r: usize| a.as_any().downcast_ref::<Int64Array>().unwrap().value(r);
        let u =
            |a: &dyn Array, r: usize| a.as_any().downcast_ref::<UInt64Array>().unwrap().value(r);
        for r in 0..b.num_rows() {
            replayed.push((
                s(&s0, r),
                s(&s1, r),
                i(&i2, r),
                u(&u3, r),
                u(&u4, r),
                u(&u5, r),
                i(&i6, r),
                s(&s7, r),
                s(&s8, r),
            ));
        }
    }
    let by_pair = |rows: &[TagRow]| {
        let mut m: BTreeMap<(String, String), Vec<TagRow>> = BTreeMap::new();
        for row in rows {
            m.entry((row.0.clone(), row.1.clone()))
                .or_default()
                .push(row.clone());
        }
        m
    };
    let (l, r) = (by_pair(&live), by_pair(&replayed));
    // The changes counted: all, or (scoped) those made at those stores,
    // where a member counts once its sum is positive.
    let in_scope = |row: &TagRow| stores.is_none_or(|st| st.contains(&row.8.as_str()));
    let sum = |rows: Option<&Vec<TagRow>>| {
        let total = rows.map_or(0, |v| {
            v.iter().filter(|x| in_scope(x)).map(|x| x.2).sum::<i64>()
        });
        if stores.is_some() {
            i64::from(total > 0)
        } else {
            total
        }
    };
    let mut out = format!(
        "tag_changes ({}): ClickHouse {} rows, replay {} rows; (member, tag) pairs counted \
         differently (rows: change, partition, offset, index, as_of_ms, event_id, store):\n",
        stores.map_or_else(|| "all stores".to_owned(), |s| s.join(", ")),
        live.len(),
        replayed.len()
    );
    let keys: std::collections::BTreeSet<_> = l.keys().chain(r.keys()).collect();
    for key in keys {
        let (a, b) = (l.get(key), r.get(key));
        if sum(a) == sum(b) {
            continue;
        }
        let show = |rows: Option<&Vec<TagRow>>| {
            rows.map_or_else(String::new, |v| {
                v.iter()
                    .map(|x| {
                        format!(
                            "\n      {:+} p{} o{} i{} at {} {} {}",
                            x.2, x.3, x.4, x.5, x.6, x.7, x.8
                        )
                    })
                    .collect()
            })
        };
        out.push_str(&format!(
            "  {key:?}: ClickHouse sum {}{}\n    replay sum {}{}\n",
            sum(a),
            show(a),
            sum(b),
            show(b)
        ));
    }
    out
}
