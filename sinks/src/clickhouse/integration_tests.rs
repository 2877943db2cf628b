//! Integration tests against a real ClickHouse server:
//! `STOREPULSE_TEST_CLICKHOUSE` (default `http://127.0.0.1:8123`), which
//! `deploy/clickhouse.sh start` runs (18.16 from Debian). Each test works in
//! a database of its own (`sp_test_<random>`), dropped at the end, so tests
//! run in parallel and again. A missing server fails the test with the
//! command that starts one; nothing is skipped.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rand::Rng;
use storepulse_mart::query::MartFilter;
use storepulse_mart::rows::{Erasure, MartBatch, SourcePos, Table};
use storepulse_mart::write::MartWriter;
use storepulse_mart::MartError;

use super::config::ClickHouseConfig;
use super::migrations::{checksum, MIGRATIONS};
use super::query::date_of;
use super::rows::schemas;
use super::sink::ClickHouseMart;
use super::testdata::{answers, drop_stored, reference, Generator, FIRST_DAY};
use crate::error::SinkError;

/// The server under test.
pub fn server_url() -> String {
    std::env::var("STOREPULSE_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A fresh database name.
fn fresh_db() -> String {
    format!("sp_test_{:016x}", rand::thread_rng().gen::<u64>())
}

/// Connects to a fresh database, or fails saying how to start a server.
async fn fresh_mart() -> ClickHouseMart {
    let url = server_url();
    match ClickHouseMart::connect(ClickHouseConfig::new(&url, fresh_db())).await {
        Ok(m) => m,
        Err(e) => panic!(
            "ClickHouse at {url} is not usable ({e}); start one with `./deploy/clickhouse.sh start` \
             or point STOREPULSE_TEST_CLICKHOUSE at a server"
        ),
    }
}

async fn drop_db(mart: &ClickHouseMart) {
    let _ = mart
        .exec(&format!(
            "DROP DATABASE IF EXISTS {}",
            mart.config().database
        ))
        .await;
}

/// Rows of `table` as JSON objects in position order (`day` as a number,
/// like the mart's rows).
async fn read_json(mart: &ClickHouseMart, table: &str) -> Vec<serde_json::Value> {
    let sql = format!(
        "SELECT * FROM {table} ORDER BY src_partition, src_offset, src_index FORMAT JSONEachRow"
    );
    let mut cursor = mart
        .client()
        .query_raw(&sql)
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_bytes("JSONEachRow")
        .expect("query");
    let bytes = cursor.collect().await.expect("rows");
    let epoch = NaiveDate::default();
    std::str::from_utf8(&bytes)
        .expect("utf8")
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json row");
            if let Some(d) = v.get("day").and_then(|d| d.as_str()) {
                let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date");
                v["day"] = serde_json::json!((day - epoch).num_days());
            }
            v
        })
        .collect()
}

fn json_rows<T: serde::Serialize>(rows: &[T]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect()
}

fn whole_range(stores: Option<Vec<String>>) -> MartFilter {
    MartFilter {
        from: date_of(FIRST_DAY),
        to: date_of(FIRST_DAY + 40),
        stores,
    }
}

async fn count(mart: &ClickHouseMart, sql: &str) -> u64 {
    mart.client()
        .query_raw(sql)
        .fetch_one::<u64>()
        .await
        .expect(sql)
}

#[tokio::test]
async fn migrations_apply_once_and_refuse_changed_or_unknown_ones() {
    let mart = fresh_mart().await;
    let db = mart.config().database.clone();
    // Again: nothing new is applied, nothing fails.
    let again = ClickHouseMart::connect(ClickHouseConfig::new(server_url(), &db))
        .await
        .expect("second start");
    assert_eq!(
        count(&again, "SELECT count() FROM schema_migrations").await,
        MIGRATIONS.len() as u64
    );
    let sums: Vec<(u32, String)> = mart
        .client()
        .query_raw("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .expect("records");
    for (m, (v, s)) in MIGRATIONS.iter().zip(&sums) {
        assert_eq!((m.version, checksum(m.sql)), (*v, s.clone()));
    }
    // A recorded checksum that differs: refused, naming the migration.
    mart.exec("INSERT INTO schema_migrations VALUES (1, '0001_tables', 'edited', 0)")
        .await
        .expect("insert");
    let err = ClickHouseMart::connect(ClickHouseConfig::new(server_url(), &db))
        .await
        .expect_err("changed migration");
    assert!(
        matches!(err, SinkError::MigrationChanged { version: 1, .. }),
        "{err}"
    );
    drop_db(&mart).await;

    // A version this binary does not know: refused.
    let db2 = fresh_db();
    let m2 = ClickHouseMart::connect(ClickHouseConfig::new(server_url(), &db2))
        .await
        .expect("connect");
    m2.exec("INSERT INTO schema_migrations VALUES (99, '0099_future', 'x', 0)")
        .await
        .expect("insert");
    let err = ClickHouseMart::connect(ClickHouseConfig::new(server_url(), &db2))
        .await
        .expect_err("unknown migration");
    assert!(
        matches!(err, SinkError::MigrationUnknown { version: 99, .. }),
        "{err}"
    );
    drop_db(&m2).await;
}

/// A start that died after a migration's `ALTER TABLE ... ADD COLUMN` but
/// before recording it runs the migration again, and the column that is
/// already there is skipped (18.16 has no `ADD COLUMN IF NOT EXISTS`).
#[tokio::test]
async fn a_migration_that_died_after_adding_its_column_runs_again() {
    let mart = fresh_mart().await;
    let db = mart.config().database.clone();
    let last = MIGRATIONS.last().expect("migrations");
    assert!(
        last.sql.contains("ADD COLUMN"),
        "the last migration adds a column"
    );
    // Forget that the last migration was recorded; its column stays.
    mart.exec("DROP TABLE schema_migrations")
        .await
        .expect("drop");
    mart.exec("CREATE TABLE schema_migrations (version UInt32, name String, checksum String, applied_ms Int64) ENGINE = MergeTree() ORDER BY version")
        .await
        .expect("create");
    for m in &MIGRATIONS[..MIGRATIONS.len() - 1] {
        mart.exec(&format!(
            "INSERT INTO schema_migrations VALUES ({}, '{}', '{}', 0)",
            m.version,
            m.name,
            checksum(m.sql)
        ))
        .await
        .expect("record");
    }
    let again = ClickHouseMart::connect(ClickHouseConfig::new(server_url(), &db))
        .await
        .expect("the interrupted migration runs again");
    assert_eq!(
        count(&again, "SELECT count() FROM schema_migrations").await,
        MIGRATIONS.len() as u64
    );
    drop_db(&mart).await;
}

#[tokio::test]
async fn row_structs_match_system_columns() {
    let mart = fresh_mart().await;
    for (table, names, types) in schemas() {
        let cols: Vec<(String, String)> = mart
            .client()
            .query_raw(&format!(
                "SELECT name, type FROM system.columns WHERE database = '{}' AND table = '{table}'",
                mart.config().database
            ))
            .fetch_all()
            .await
            .expect("columns");
        let ours: Vec<(String, String)> = names
            .iter()
            .zip(types.iter())
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        assert_eq!(cols, ours, "{table}");
    }
    drop_db(&mart).await;
}

#[tokio::test]
async fn writer_round_trip_and_queries_equal_the_reference() {
    let mart = fresh_mart().await;
    let mut g = Generator::new(7, 0, 20, 300, 10);
    let batch = g.batch(3_000);
    mart.write(&batch).await.expect("write");
    assert_eq!(
        read_json(&mart, "sale_lines").await,
        json_rows(&batch.sale_lines)
    );
    assert_eq!(
        read_json(&mart, "return_lines").await,
        json_rows(&batch.return_lines)
    );
    assert_eq!(
        read_json(&mart, "stock_changes").await,
        json_rows(&batch.stock_changes)
    );
    assert_eq!(
        read_json(&mart, "member_registrations").await,
        json_rows(&batch.member_registrations)
    );
    assert_eq!(
        read_json(&mart, "tag_changes").await,
        json_rows(&batch.tag_changes)
    );
    for filter in [
        whole_range(None),
        whole_range(Some(vec![Generator::store_id(1), Generator::store_id(5)])),
        whole_range(Some(vec![])),
        MartFilter::day(date_of(FIRST_DAY + 3), Some(vec![Generator::store_id(2)])),
    ] {
        let got = answers(&mart, &filter, 20).await.expect("answers");
        assert_eq!(got, reference(&batch, &filter, 20), "{filter:?}");
    }
    // The aggregate tables hold the raw tables' sums.
    let raw: (i64, i64, u64) = mart
        .client()
        .query_raw("SELECT sum(net_cents), sum(qty), count() FROM sale_lines")
        .fetch_one()
        .await
        .expect("raw");
    let agg: (i64, i64, u64) = mart
        .client()
        .query_raw("SELECT sum(net_cents), sum(units), sum(lines) FROM sales_hourly")
        .fetch_one()
        .await
        .expect("agg");
    assert_eq!(raw, agg);
    drop_db(&mart).await;
}

#[tokio::test]
async fn stored_positions_are_the_lexicographic_max_per_partition() {
    let mart = fresh_mart().await;
    assert!(mart.stored_positions().await.expect("empty").is_empty());
    let mut g0 = Generator::new(1, 0, 5, 50, 3);
    let mut g1 = Generator::new(1, 1, 5, 50, 3);
    let (a, b) = (g0.batch(200), g1.batch(100));
    mart.write(&a).await.expect("write a");
    mart.write(&b).await.expect("write b");
    let pos = mart.stored_positions().await.expect("positions");
    for (p, batch) in [(0u32, &a), (1, &b)] {
        let last = batch.sale_lines.last().expect("sales");
        assert_eq!(
            pos.get(&(Table::SaleLines, p)),
            Some(&SourcePos {
                partition: p,
                offset: last.src_offset,
                index: last.src_index
            })
        );
    }
    // Lexicographic: an event with 5 lines then one with 1 line at a later
    // offset: the max is (later offset, 0), not (later offset, 4).
    let mut c = Generator::new(2, 0, 5, 50, 3).batch(0);
    let mut row = a.sale_lines[0].clone();
    row.src_offset = 1_000_000;
    row.src_index = 0;
    c.sale_lines.push(row);
    mart.write(&c).await.expect("write c");
    let pos = mart.stored_positions().await.expect("positions");
    assert_eq!(
        pos.get(&(Table::SaleLines, 0)),
        Some(&SourcePos {
            partition: 0,
            offset: 1_000_000,
            index: 0
        })
    );
    drop_db(&mart).await;
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_counts_nothing_twice() {
    let mart = fresh_mart().await;
    let mut g = Generator::new(3, 0, 10, 100, 5);
    let first = g.batch(500);
    let second = g.batch(500);
    mart.write(&first).await.expect("write");
    // The answer to `second` is lost: the loop does not know it landed.
    mart.write(&second).await.expect("write");
    // Restart: positions, drop what is stored, send the rest of both.
    let stored = mart.stored_positions().await.expect("positions");
    let mut all = first.clone();
    all.append(second.clone());
    let resend = drop_stored(&all, &stored);
    assert_eq!(resend.rows(), 0, "everything was stored");
    mart.write(&resend).await.expect("resend");
    // A partial restart: only `first` was stored, the loop resends both.
    let m2 = fresh_mart().await;
    m2.write(&first).await.expect("write");
    let stored = m2.stored_positions().await.expect("positions");
    let resend = drop_stored(&all, &stored);
    assert_eq!(resend.sale_lines.len(), second.sale_lines.len());
    m2.write(&resend).await.expect("resend");
    let f = whole_range(None);
    let want = reference(&all, &f, 50);
    assert_eq!(answers(&mart, &f, 50).await.expect("answers"), want);
    assert_eq!(answers(&m2, &f, 50).await.expect("answers"), want);
    drop_db(&mart).await;
    drop_db(&m2).await;
}

#[tokio::test]
async fn data_errors_are_refused_with_the_message_and_transport_errors_are_unavailable() {
    let mart = fresh_mart().await;
    mart.exec("ALTER TABLE return_lines DROP COLUMN restock")
        .await
        .expect("alter");
    let mut g = Generator::new(4, 0, 5, 50, 3);
    let mut batch = g.batch(400);
    assert!(!batch.return_lines.is_empty());
    batch.sale_lines.clear();
    let err = mart.write(&batch).await.expect_err("schema mismatch");
    match &err {
        MartError::Refused(m) => assert!(m.contains("restock"), "{m}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    let err = mart.exec("SELECT 1 + 'a'").await.expect_err("type error");
    assert!(
        matches!(&err, MartError::Refused(m) if m.contains("Code: ")),
        "{err:?}"
    );
    drop_db(&mart).await;

    // Nothing listens on port 1.
    let mut cfg = ClickHouseConfig::new("http://127.0.0.1:1", "nowhere");
    cfg.query_timeout_ms = 2_000;
    let err = ClickHouseMart::connect(cfg).await.expect_err("no server");
    assert!(
        matches!(&err, SinkError::Mart(MartError::Unavailable(_))),
        "{err:?}"
    );
    assert!(err.retryable());
}

#[tokio::test]
async fn erasure_rewrites_every_member_table() {
    let mart = fresh_mart().await;
    let mut g = Generator::new(5, 0, 10, 100, 5);
    let mut batch = g.batch(4_000);
    // The member with most rows, and one of their sales.
    let mut rows_of: BTreeMap<String, usize> = BTreeMap::new();
    for r in &batch.tag_changes {
        *rows_of.entry(r.member_id.clone()).or_default() += 1;
    }
    let (victim, _) = rows_of
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(m, n)| (m.clone(), *n))
        .expect("a member with tags");
    batch.sale_lines[0].member_id = victim.clone();
    mart.write(&batch).await.expect("write");
    let before = answers(&mart, &whole_range(None), 20)
        .await
        .expect("answers");
    let q = |t: &str| format!("SELECT count() FROM {t} WHERE member_id = '{victim}'");
    assert!(count(&mart, &q("tag_changes")).await > 0);
    mart.erase(&Erasure {
        member_ids: vec![victim.clone()],
        event_id: "erase-1".into(),
        src_partition: 0,
        src_offset: 99_999,
    })
    .await
    .expect("erase");
    for table in Table::ALL.iter().filter(|t| t.has_member()) {
        assert_eq!(count(&mart, &q(table.name())).await, 0, "{}", table.name());
    }
    assert_eq!(
        count(
            &mart,
            &format!("SELECT count() FROM member_registrations WHERE canonical_id = '{victim}'")
        )
        .await,
        0
    );
    // The mutations are done, so the active parts were rewritten.
    let db = mart.config().database.clone();
    assert_eq!(
        count(
            &mart,
            &format!(
                "SELECT count() FROM system.mutations WHERE database = '{db}' AND is_done = 0"
            )
        )
        .await,
        0
    );
    assert!(
        count(
            &mart,
            &format!(
                "SELECT count() FROM system.mutations WHERE database = '{db}' AND is_done = 1"
            )
        )
        .await
            >= 6
    );
    // Sales stay counted (anonymised, not deleted).
    let after = answers(&mart, &whole_range(None), 20)
        .await
        .expect("answers");
    assert_eq!(after.totals, before.totals);
    assert_eq!(after.sales_by_store, before.sales_by_store);
    drop_db(&mart).await;
}

/// The rows of `sql` as JSONCompact `data` arrays.
async fn compact_rows(mart: &ClickHouseMart, sql: &str) -> serde_json::Value {
    let mut cursor = mart
        .client()
        .query_raw(sql)
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_bytes("JSONCompact")
        .expect("query");
    let bytes = cursor.collect().await.expect(sql);
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    v["data"].clone()
}

#[tokio::test]
async fn chdb_answers_equal_the_18_16_server() {
    use super::query::dashboard_queries;
    let mart = fresh_mart().await;
    let mut g = Generator::new(11, 0, 12, 200, 8);
    let batch = g.batch(4_000);
    mart.write(&batch).await.expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    for table in Table::ALL {
        let mut cursor = mart
            .client()
            .query_raw(&format!(
                "SELECT * FROM {} ORDER BY src_partition, src_offset, src_index",
                table.name()
            ))
            .with_setting("output_format_json_quote_64bit_integers", "0")
            .fetch_bytes("JSONEachRow")
            .expect("query");
        let bytes = cursor.collect().await.expect("rows");
        std::fs::write(dir.path().join(format!("{}.ndjson", table.name())), &bytes)
            .expect("write rows");
    }
    let filters = [
        whole_range(None),
        whole_range(Some(vec![Generator::store_id(3), Generator::store_id(4)])),
        MartFilter::day(date_of(FIRST_DAY + 2), None),
    ];
    let mut queries = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        for (name, sql) in dashboard_queries(f, 20) {
            queries.push((format!("{name}#{i}"), sql));
        }
    }
    // Every row policy's filter, on this schema and data, on both engines
    // (what the rows add up to: the number of rows of a Replacing or
    // Summing table depends on merges).
    let policies = super::row_policies::parse(&super::row_policies::file_text());
    for p in &policies {
        let sql = match p.table.as_str() {
            "stock_levels" | "alerts" => {
                format!("SELECT count() FROM {} FINAL WHERE {}", p.table, p.using)
            }
            "sales_hourly" | "sku_day_totals" => {
                format!("SELECT sum(lines) FROM {} WHERE {}", p.table, p.using)
            }
            _ => format!("SELECT count() FROM {} WHERE {}", p.table, p.using),
        };
        queries.push((format!("policy {} on {}", p.name, p.table), sql));
    }
    let qfile = dir.path().join("queries.json");
    std::fs::write(&qfile, serde_json::to_vec(&queries).expect("json")).expect("write queries");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(root.join("../tests/python/chdb_mart.py"))
        .arg("--migrations")
        .arg(root.join("src/clickhouse/migrations"))
        .arg("--data")
        .arg(dir.path())
        .arg("--queries")
        .arg(&qfile)
        .arg("--parse")
        .arg(root.join("../deploy/clickhouse/row-policies.sql"))
        .output()
        .expect("python3 runs");
    match out.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "chdb is not installed: `python3 -m pip install chdb` (deploy/test.sh installs it)"
        ),
        _ => panic!(
            "chdb_mart.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    let chdb: serde_json::Value = serde_json::from_slice(&out.stdout).expect("chdb json");
    let version = chdb["version"].as_str().unwrap_or("?").to_owned();
    assert!(
        !version.starts_with("18."),
        "chDB should be a current ClickHouse, got {version}"
    );
    let statements = super::migrations::statements(&super::row_policies::file_text()).len();
    assert_eq!(
        chdb["parsed"].as_u64(),
        Some(statements as u64),
        "chDB parsed every statement of row-policies.sql"
    );
    // Each sale line of a policy region is seen by exactly one region
    // manager (the generated data also has a region no store has).
    let mut by_region = 0u64;
    let mut regions = Vec::new();
    for p in policies
        .iter()
        .filter(|p| p.table == "sale_lines" && p.using.starts_with("region = "))
    {
        by_region += count(
            &mart,
            &format!("SELECT count() FROM sale_lines WHERE {}", p.using),
        )
        .await;
        regions.push(p.using.trim_start_matches("region = ").to_owned());
    }
    assert!(by_region > 0);
    assert_eq!(
        by_region,
        count(
            &mart,
            &format!(
                "SELECT count() FROM sale_lines WHERE region IN ({})",
                regions.join(", ")
            )
        )
        .await
    );
    let mut nonempty = 0;
    for (name, sql) in &queries {
        let ours = compact_rows(&mart, sql).await;
        if ours.as_array().is_some_and(|a| !a.is_empty()) {
            nonempty += 1;
        }
        assert_eq!(
            chdb["results"][name], ours,
            "{name} differs between ClickHouse 18.16 and chDB {version}:\n{sql}"
        );
    }
    let empty_policies = policies
        .iter()
        .filter(|p| p.using.starts_with("store_id = "))
        .count();
    assert!(
        nonempty >= queries.len() - 3 - empty_policies,
        "too many empty answers"
    );
    drop_db(&mart).await;
}

/// Events of the kill test's stream, in batches of this many.
const FEED_BATCH_EVENTS: usize = 8_000;
/// Batches in the kill test's stream.
const FEED_BATCHES: usize = 12;

/// The kill test's stream (deterministic).
fn feed_generator() -> Generator {
    Generator::new(42, 0, 30, 500, 14)
}

/// The child process of the kill test: a minimal sink loop (positions,
/// drop what is stored, write the rest batch by batch). Does nothing
/// unless `STOREPULSE_CH_FEED_DB` names the database.
#[tokio::test]
async fn kill_feeder_child() {
    let Ok(db) = std::env::var("STOREPULSE_CH_FEED_DB") else {
        return;
    };
    let mart = ClickHouseMart::connect(ClickHouseConfig::new(server_url(), db))
        .await
        .expect("connect");
    let stored = mart.stored_positions().await.expect("positions");
    let mut g = feed_generator();
    for _ in 0..FEED_BATCHES {
        let batch = g.batch(FEED_BATCH_EVENTS);
        let rest = drop_stored(&batch, &stored);
        if rest.rows() > 0 {
            mart.write(&rest).await.expect("write");
        }
    }
}

#[tokio::test]
async fn killing_the_sink_mid_batch_loses_and_doubles_nothing() {
    let mart = fresh_mart().await;
    let db = mart.config().database.clone();
    let exe = std::env::current_exe().expect("test binary");
    let spawn = || {
        std::process::Command::new(&exe)
            .args([
                "clickhouse::integration_tests::kill_feeder_child",
                "--exact",
                "--test-threads=1",
            ])
            .env("STOREPULSE_CH_FEED_DB", &db)
            .env("STOREPULSE_TEST_CLICKHOUSE", server_url())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn feeder")
    };
    let mut all = MartBatch::default();
    let mut g = feed_generator();
    for _ in 0..FEED_BATCHES {
        all.append(g.batch(FEED_BATCH_EVENTS));
    }
    let total = all.sale_lines.len() as u64;
    let mut killed_mid_stream = 0;
    let mut rng = rand::thread_rng();
    for round in 0..5 {
        let before = count(&mart, "SELECT count() FROM sale_lines").await;
        let mut child = spawn();
        // Kill once this run has stored something, a random moment later,
        // so the kill lands among inserts.
        let started = std::time::Instant::now();
        while count(&mart, "SELECT count() FROM sale_lines").await == before
            && started.elapsed() < std::time::Duration::from_secs(60)
            && child.try_wait().expect("wait").is_none()
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let extra_ms = rng.gen_range(0..400);
        tokio::time::sleep(std::time::Duration::from_millis(extra_ms)).await;
        let running = child.try_wait().expect("wait").is_none();
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        let lines = count(&mart, "SELECT count() FROM sale_lines").await;
        if running && lines < total {
            killed_mid_stream += 1;
        }
        eprintln!("round {round}: SIGKILL {extra_ms} ms after its first insert ({status}), {lines}/{total} sale lines stored");
    }
    let mut child = spawn();
    assert!(child.wait().expect("wait").success(), "last run completes");
    assert!(
        killed_mid_stream >= 2,
        "only {killed_mid_stream} kills landed mid-stream"
    );
    assert_eq!(
        count(&mart, "SELECT count() FROM sale_lines").await,
        all.sale_lines.len() as u64
    );
    assert_eq!(
        count(&mart, "SELECT count() FROM stock_changes").await,
        all.stock_changes.len() as u64
    );
    for f in [
        whole_range(None),
        whole_range(Some(vec![Generator::store_id(7)])),
    ] {
        assert_eq!(
            answers(&mart, &f, 30).await.expect("answers"),
            reference(&all, &f, 30),
            "{f:?}"
        );
    }
    drop_db(&mart).await;
}

/// Every SQL text of a Grafana dashboard: panel targets and template
/// variable queries.
fn grafana_sql(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = v["query"].as_str() {
            out.push((format!("variable {}", v["name"]), q.to_owned()));
        }
    }
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let sql = t["rawSql"].as_str().expect("every target has rawSql");
            out.push((format!("panel {}", p["title"]), sql.to_owned()));
        }
    }
    out
}

/// The plugin's macros and the template variables, as Grafana would
/// expand them for a week and two regions.
fn expand_grafana(sql: &str) -> String {
    let mut s = sql.to_owned();
    while let Some(at) = s.find("$__dateFilter(") {
        let end = at + s[at..].find(')').expect("closing paren");
        let col = s[at + "$__dateFilter(".len()..end].to_owned();
        s.replace_range(
            at..=end,
            &format!("{col} >= toDate('2026-11-01') AND {col} <= toDate('2026-11-08')"),
        );
    }
    s.replace("${region:singlequote}", "'central','east'")
        .replace(
            "${store:singlequote}",
            &format!("'{}','{}'", Generator::store_id(0), Generator::store_id(1)),
        )
}

#[tokio::test]
async fn grafana_dashboards_parse_and_their_sql_runs_on_the_server() {
    let mart = fresh_mart().await;
    let mut g = Generator::new(9, 0, 4, 50, 10);
    let mut batch = g.batch(2_000);
    batch.alerts.push(storepulse_mart::rows::AlertRow {
        alert_id: "oversold:ST-0000:SKU-00001:e".into(),
        family: "stock".into(),
        rule: "oversold".into(),
        status: "raised".into(),
        member_id: String::new(),
        store_ids: "ST-0000".into(),
        store_id: "ST-0000".into(),
        region: "central".into(),
        sku: "SKU-00001".into(),
        total_cents: 0,
        first_ms: 0,
        last_ms: 0,
        day: FIRST_DAY,
        src_partition: 0,
        src_offset: 1,
        src_index: 0,
    });
    mart.write(&batch).await.expect("write");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/grafana");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards/grafana")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut ran = 0;
    for f in files {
        let d: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&f).expect("read")).expect("dashboard JSON");
        assert!(
            d["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{f:?}: uid"
        );
        for p in d["panels"].as_array().expect("panels") {
            assert_eq!(
                p["datasource"]["uid"], "storepulse-clickhouse",
                "{f:?}: {}",
                p["title"]
            );
        }
        for (what, sql) in grafana_sql(&d) {
            let sql = expand_grafana(&sql);
            assert!(
                !sql.contains('$'),
                "{f:?} {what}: unexpanded macro in {sql}"
            );
            let mut c = mart
                .client()
                .query_raw(&sql)
                .fetch_bytes("TabSeparated")
                .expect("query");
            if let Err(e) = c.collect().await {
                panic!("{f:?} {what}: {e}\n{sql}");
            }
            ran += 1;
        }
    }
    assert!(ran >= 12, "{ran} queries");
    drop_db(&mart).await;
}
