//! Interoperability with a Kafka client nobody here wrote: confluent-kafka
//! (Python, librdkafka bundled) produces contract events straight to the
//! events topic of `storepulse run` and reads the alerts topic back
//! (`tests/python/interop.py`).
//!
//! The client keeps its default partitioner (librdkafka `consistent_random`,
//! CRC32 of the key), not the murmur2 one StorePulse's own producers use, so
//! some stores' events land in another partition than their store's and the
//! processors must forward them. The served stock must still equal an
//! offline `replay` of the same file, and the Python consumer must see
//! exactly the alerts the replay raises.
//!
//! Needs `python3` with `confluent-kafka` (`python3 -m pip install
//! confluent-kafka`; `deploy/test.sh` installs it) and the broker of
//! `deploy/kafka.sh`. Either missing is a failure, never a skip.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use storepulse_tests::kafka::{broker, env_refs, kafka_env, unique_prefix, wait_stock_equals};
use storepulse_tests::{free_port, get_json_as, metric, replay, repo, Server};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");

/// Fails (never skips) when python3 or confluent-kafka is missing.
fn require_confluent_kafka() {
    let out = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 cannot import confluent_kafka ({}); install it with \
             `python3 -m pip install confluent-kafka` (deploy/test.sh does)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run python3 ({e}); install Python 3, then \
             `python3 -m pip install confluent-kafka`"
        ),
    }
}

/// The events: every contract example (one line each, as emitters send
/// them), plus a receipt and a sale that take KM-002's SKU-100234 to exactly
/// zero (an `out_of_stock` alert), plus a retried copy of the POS sale (a
/// duplicate that must change nothing). The examples' sales and transfer out
/// of unstocked SKUs raise `oversold` alerts.
///
/// Stores whose murmur2 and CRC32 partitions differ among 4 (KM-001,
/// KM-002, KM-009, LJ-001, ...) land in a foreign partition.
fn write_events(path: &Path) {
    let dir = repo().join("tests/data/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut lines: Vec<String> = files
        .iter()
        .map(|p| {
            let value: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            serde_json::to_string(&value).unwrap()
        })
        .collect();
    lines.push(
        r#"{"v":1,"event_id":"interop-rcv-KM-002-1","event_type":"stock_receipt","occurred_at":"2026-11-25T08:00:00+08:00","store_id":"KM-002","channel":"backoffice","reference":"PO-INTEROP-1","lines":[{"sku":"SKU-100234","qty":3}]}"#.into(),
    );
    lines.push(
        r#"{"v":1,"event_id":"interop-pos-KM-002-1","event_type":"sale","occurred_at":"2026-11-25T12:30:00+08:00","store_id":"KM-002","channel":"pos","order_id":"KM-002-20261125-0001","lines":[{"sku":"SKU-100234","qty":3,"unit_price_cents":1990}],"total_cents":5970,"payment":{"method":"alipay"},"fulfillment":"in_store"}"#.into(),
    );
    let pos_sale = lines
        .iter()
        .find(|l| l.contains("\"pos-KM-001-t3-000918\""))
        .expect("tests/data/examples/sale.json")
        .clone();
    lines.push(pos_sale);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The `alert_id`s of a `replay`'s `alerts.ndjson`.
fn replayed_alerts(out: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(out.join("alerts.ndjson"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["alert_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_kafka_python_produces_events_and_reads_alerts() {
    require_confluent_kafka();
    let broker = broker();
    let prefix = unique_prefix("pyinterop");
    let dir = tempfile::tempdir().unwrap();
    let env = kafka_env(&broker, &prefix, &dir.path().join("state"));
    let server = Server::start_role(
        EXE,
        &repo().join("storepulse.toml"),
        &dir.path().join("data"),
        free_port(),
        "run",
        &env_refs(&env),
    );

    let events = dir.path().join("events.ndjson");
    write_events(&events);
    let replay_out = dir.path().join("replay");
    let expected_stock = replay(EXE, &events, &replay_out);
    let mut expected_alerts = replayed_alerts(&replay_out);
    expected_alerts.retain(|a| !a.starts_with("points_overdraft:"));
    assert!(
        expected_alerts.iter().any(|a| a.starts_with("oversold:"))
            && expected_alerts
                .iter()
                .any(|a| a.starts_with("out_of_stock:")),
        "the events must raise both alert kinds in replay: {expected_alerts:?}"
    );

    // The Python client: produce with its default partitioner, then read
    // the alerts topic from the beginning until every expected alert shows.
    let script = repo().join("tests/python/interop.py");
    let mut python = Command::new("python3");
    python
        .arg(&script)
        .args(["--brokers", &broker, "--prefix", &prefix, "--timeout", "90"])
        .arg("--events")
        .arg(&events);
    for id in &expected_alerts {
        python.args(["--expect-alert", id]);
    }
    let out = tokio::task::spawn_blocking(move || python.output().expect("spawn python3"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("[interop.py stderr]\n{stderr}");
    assert!(
        out.status.success(),
        "interop.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let summary: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("interop.py printed no JSON summary ({e}):\n{stdout}"));

    let produced = summary["produced"].as_u64().unwrap();
    let lines = std::fs::read_to_string(&events).unwrap().lines().count() as u64;
    assert_eq!(produced, lines, "every event acknowledged by the broker");
    assert_eq!(
        summary["partitions"], 4,
        "the events topic storepulse created"
    );

    // The stock served over HTTP equals the offline replay of the same file.
    let client = reqwest::Client::new();
    wait_stock_equals(
        &client,
        &server.base,
        &expected_stock,
        Duration::from_secs(90),
    )
    .await;

    // The Python consumer saw exactly the replay's stock alerts, well
    // formed. Points alerts are left out: the examples' erasure of
    // M00012345 (dated 11-27) comes first in the file, so `replay` erases
    // before the member's redemption (11-25) and raises no overdraft, while
    // on Kafka the redemption may reach the member partition first (the
    // stock stage's partition order decides) and overdraw, as RULES.md's
    // event-time order says. Which one happens varies with timing.
    let alerts = summary["alerts"].as_array().unwrap();
    let mut seen = BTreeSet::new();
    for a in alerts.iter().filter(|a| a["family"] != "points") {
        let id = a["alert_id"].as_str().unwrap();
        let kind = a["kind"].as_str().unwrap();
        assert!(
            kind == "oversold" || kind == "out_of_stock",
            "unknown alert kind: {a}"
        );
        assert_eq!(
            id,
            format!(
                "{kind}:{}:{}:{}",
                a["store_id"].as_str().unwrap(),
                a["sku"].as_str().unwrap(),
                a["event_id"].as_str().unwrap()
            ),
            "alert_id is kind:store:sku:event_id"
        );
        assert_eq!(a["key"].as_str(), Some(id), "alerts are keyed by alert_id");
        assert_eq!(a["family"], "stock");
        seen.insert(id.to_owned());
    }
    assert_eq!(
        seen, expected_alerts,
        "alerts read by confluent-kafka vs replay"
    );

    // Events in a partition other than their store's were forwarded, not lost.
    let foreign = summary["foreign"].as_u64().unwrap();
    let placed: Vec<String> = summary["placements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}(home {})",
                p["store_id"].as_str().unwrap(),
                p["partition"],
                p["murmur2_partition"]
            )
        })
        .collect();
    eprintln!(
        "confluent-kafka {}: {foreign} of {produced} events in a foreign partition; \
         store@partition(home): {}",
        summary["client"]["confluent_kafka"],
        placed.join(" ")
    );
    assert!(
        foreign > 0,
        "no event landed outside its store's partition, so forwarding went untested; \
         librdkafka's default partitioner (CRC32) was expected to differ from murmur2 \
         for KM-001 and KM-002: {placed:?}"
    );
    let forwarded = metric(
        &client,
        &server.base,
        "storepulse_kafka_forwarded_events_total",
    )
    .await;
    eprintln!("storepulse_kafka_forwarded_events_total {forwarded}");
    assert!(
        forwarded >= foreign as f64,
        "{foreign} events landed in a foreign partition, but only {forwarded} were forwarded"
    );

    // Nothing the Python client sent was rejected.
    let dlq = get_json_as(
        &client,
        &format!("{}/v1/dlq", server.base),
        storepulse_tests::HQ_KEY,
    )
    .await;
    assert_eq!(
        dlq["dead_letters"],
        serde_json::json!([]),
        "dead letters: {dlq}"
    );

    assert!(server.stop(), "storepulse run did not stop cleanly");
}
