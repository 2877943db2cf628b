//! Kafka mode against a real Kafka-protocol broker (Tansu, started by
//! `deploy/test.sh`): end to end, crashes, scale-out, a broker restart and
//! poison messages, fraud rules. In every test the stock served over HTTP
//! must end equal to an offline `replay` of exactly the events the pipeline
//! acknowledged: nothing lost, nothing counted twice; where fraud is
//! planted, the standing fraud alerts equal the embedded program's.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use storepulse_tests::kafka::{
    broker, env_refs, healthz, kafka_env, unique_prefix, wait_stock_equals, OwnBroker,
};
use storepulse_tests::{
    free_port, get_json_as, metric, metric_samples, metrics_text, read_stock_csv, replay, repo,
    storepulse, Server, INGEST_KEY,
};

const EXE: &str = env!("CARGO_BIN_EXE_storepulse-e2e");

/// One test at a time: each starts several processes and a stream, and the
/// CI machine has two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config() -> std::path::PathBuf {
    repo().join("storepulse.toml")
}

/// What every test against the shared broker starts from: its own temp
/// directory, topic prefix and the roles' environment.
struct Setup {
    dir: tempfile::TempDir,
    broker: String,
    prefix: String,
    env: Vec<(String, String)>,
    /// Parent of the roles' data directories.
    data: std::path::PathBuf,
}

fn setup(name: &str) -> Setup {
    let broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix(name);
    let env = kafka_env(&broker, &prefix, &dir.path().join("state"));
    let data = dir.path().join("data");
    Setup {
        dir,
        broker,
        prefix,
        env,
        data,
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// `storepulse simulate` posting to `base`, recording acknowledged events.
fn simulate(
    data: &Path,
    base: &str,
    events: usize,
    rate: u32,
    extra: &[&str],
    acked: &Path,
) -> Sim {
    let child = storepulse(EXE, data)
        .args([
            "simulate",
            "--url",
            base,
            "--quiet",
            "--max-retries",
            "100000",
        ])
        .args(["--events", &events.to_string(), "--rate", &rate.to_string()])
        .args(extra)
        .arg("--stores")
        .arg(repo().join("data/stores.csv"))
        .arg("--acked-out")
        .arg(acked)
        .stdout(std::fs::File::create(acked.with_extension("report.json")).expect("report file"))
        .spawn()
        .expect("spawn simulate");
    Sim(child)
}

/// A running `simulate`, killed if the test ends first (a failed test must
/// not leave it retrying against a server that is gone).
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JSON report `simulate` printed when it finished.
fn report(acked: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(acked.with_extension("report.json")).unwrap();
    serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap()
}

fn wait_exit(sim: &mut Sim, timeout: Duration, what: &str) {
    let child = &mut sim.0;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not finish within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{what} failed: {status}");
}

/// Waits until `path` has more than `after` lines.
fn wait_progress(path: &Path, after: usize, what: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n = lines(path);
        if n > after {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no acknowledged events for 90 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `run` on Kafka, fed 20,000 simulated events (with `extra` options), once
/// the served stock equals the replay of the acknowledged events.
struct Streamed {
    setup: Setup,
    server: Server,
    client: reqwest::Client,
    /// The replay's stock (its files are in `<dir>/replay`).
    expected: std::collections::BTreeMap<(String, String), i64>,
}

async fn stream_until_stock_equals_replay(name: &str, extra: &[&str]) -> Streamed {
    let setup = setup(name);
    let server = Server::start_role(EXE, &config(), &setup.data, 0, "run", &env_refs(&setup.env));
    let acked = setup.dir.path().join("acked.ndjson");
    let mut sim = simulate(&setup.data, &server.base, 20_000, 0, extra, &acked);
    wait_exit(&mut sim, Duration::from_secs(180), "simulate");
    let expected = replay(EXE, &acked, &setup.dir.path().join("replay"));
    let client = reqwest::Client::new();
    wait_stock_equals(&client, &server.base, &expected, Duration::from_secs(120)).await;
    Streamed {
        setup,
        server,
        client,
        expected,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_to_kafka_to_api_equals_replay_with_duplicates_and_disorder() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Streamed {
        setup:
            Setup {
                dir,
                broker,
                prefix,
                data,
                ..
            },
        server,
        client,
        expected,
    } = stream_until_stock_equals_replay(
        "e2e",
        &[
            "--duplicate-share",
            "0.05",
            "--jitter",
            "600",
            "--malformed-share",
            "0.01",
            "--seed",
            "11",
        ],
    )
    .await;
    assert!(expected.len() > 1000, "{} pairs", expected.len());
    // Malformed events were refused at ingest and reached the DLQ topic,
    // which the read model serves.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dlq: serde_json::Value = client
            .get(format!("{}/v1/dlq?limit=1000", server.base))
            .bearer_auth(storepulse_tests::HQ_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let letters = dlq["dead_letters"].as_array().cloned().unwrap_or_default();
        if !letters.is_empty() {
            assert!(letters
                .iter()
                .all(|l| l["reason"].as_str().is_some_and(|r| !r.is_empty())));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letters served: {}",
            dlq.to_string().chars().take(300).collect::<String>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health = healthz(&client, &server.base).await;
    assert_eq!(health["mode"], "kafka", "{health}");
    assert_eq!(health["owned_partitions"], 4, "{health}");
    wait_lag_drained(&client, &server.base, 4).await;
    // `replay --from-topic` reads the events topic itself (duplicates and
    // all) and gets the same stock.
    let from_topic = dir.path().join("from-topic");
    let status = storepulse(EXE, &data)
        .envs(kafka_env(&broker, &prefix, &dir.path().join("state")))
        .args([
            "replay",
            "--from-topic",
            &format!("{prefix}.events"),
            "--out",
        ])
        .arg(&from_topic)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "replay --from-topic failed: {status}");
    assert_eq!(
        read_stock_csv(&from_topic.join("stock.csv")),
        expected,
        "replay of the topic differs from replay of the acknowledged events"
    );
    assert!(server.stop(), "graceful stop failed");
}

/// Waits until every stage of a `run` reports a consumer lag gauge for each
/// of its `partitions` and all of them read 0 (everything applied), and its
/// fetches' broker round trip (median and p99, above 0) and fetch queue.
/// The gauges come from librdkafka's statistics (`kafka::lag`), so a stage
/// whose statistics are not wired reports none and this fails.
async fn wait_lag_drained(client: &reqwest::Client, base: &str, partitions: usize) {
    let stages = ["", "members_", "accounts_"];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics_text(client, base).await;
        let of = |stage: &str, metric: &str| {
            metric_samples(&text, &format!("{stage}storepulse_kafka_{metric}"))
        };
        let gauges: Vec<Vec<f64>> = stages.iter().map(|s| of(s, "consumer_lag")).collect();
        let rtts: Vec<Vec<f64>> = stages.iter().map(|s| of(s, "broker_rtt_seconds")).collect();
        let queues: Vec<Vec<f64>> = stages
            .iter()
            .map(|s| of(s, "fetch_queue_records"))
            .collect();
        if gauges
            .iter()
            .all(|g| g.len() == partitions && g.iter().all(|lag| *lag == 0.0))
            && rtts
                .iter()
                .all(|r| r.len() == 2 && r.iter().all(|s| *s > 0.0))
            && queues.iter().all(|q| q.len() == 1 && q[0] >= 0.0)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "per stage {stages:?}: consumer lag {gauges:?}, expected {partitions} partitions each at 0; \
             broker round trip {rtts:?}, expected a median and a p99 above 0; fetch queue {queues:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Separate roles; the processor is killed with SIGKILL five times while
/// events flow (with planted fraud), and restarted each time: the stock
/// equals replay, and the fraud alerts standing on `<p>.alerts` and open on
/// `serve` equal the embedded program's on the same events.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_processor_five_times_loses_and_doubles_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Setup { dir, env, data, .. } = setup("crash");
    let env = env_refs(&env);
    let ingest = Server::start_role(EXE, &config(), &data.join("i"), 0, "ingest", &env);
    let serve = Server::start_role(EXE, &config(), &data.join("s"), 0, "serve", &env);
    let process_port = free_port();
    let mut process = Server::start_role(
        EXE,
        &config(),
        &data.join("p"),
        process_port,
        "process",
        &env,
    );
    let acked = dir.path().join("acked.ndjson");
    let total = 30_000;
    let mut sim = simulate(
        &data,
        &ingest.base,
        total,
        3000,
        &[
            "--duplicate-share",
            "0.03",
            "--jitter",
            "60",
            "--seed",
            "5",
            "--plant-fraud",
            "8",
        ],
        &acked,
    );
    let mut seen = 0;
    for (kill, wait_ms) in [900u64, 700, 1100, 600, 800].into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(wait_ms));
        seen = wait_progress(&acked, seen, &format!("kill {}", kill + 1));
        assert!(seen < total, "kill {}: the stream already ended", kill + 1);
        process.kill9();
        process = Server::start_role(
            EXE,
            &config(),
            &data.join("p"),
            process_port,
            "process",
            &env,
        );
    }
    wait_exit(&mut sim, Duration::from_secs(240), "simulate");
    let expected = replay(EXE, &acked, &dir.path().join("replay"));
    let client = reqwest::Client::new();
    wait_stock_equals(&client, &serve.base, &expected, Duration::from_secs(120)).await;
    // The fraud windows were checkpointed with each stage's partitions: the
    // alerts standing after the crashes are those of the embedded program
    // (re-sent raises and withdrawals carry the same ids).
    let lines: Vec<String> = std::fs::read_to_string(&acked)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let fraud = embedded_fraud(&client, &dir.path().join("embedded"), &[&lines]).await;
    assert!(
        !fraud.is_empty(),
        "the planted fraud raised no alert embedded"
    );
    let prefix = env
        .iter()
        .find(|(k, _)| *k == "STOREPULSE__KAFKA__TOPIC_PREFIX")
        .map(|(_, v)| v.to_string())
        .unwrap();
    wait_fraud_equals(
        &client,
        &storepulse_tests::kafka::broker(),
        &prefix,
        &serve.base,
        &fraud,
        Duration::from_secs(60),
    )
    .await;
    assert!(process.stop(), "graceful stop of the processor failed");
    drop((ingest, serve));
}

/// Two processors in one group; one is killed mid-stream and the survivor
/// takes its partitions over from their checkpoints.
#[tokio::test(flavor = "multi_thread")]
async fn scale_out_two_processors_one_killed_survivor_takes_over() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Setup { dir, env, data, .. } = setup("scale");
    let env = env_refs(&env);
    let ingest = Server::start_role(EXE, &config(), &data.join("i"), 0, "ingest", &env);
    let serve = Server::start_role(EXE, &config(), &data.join("s"), 0, "serve", &env);
    let first = Server::start_role(EXE, &config(), &data.join("p1"), 0, "process", &env);
    let second = Server::start_role(EXE, &config(), &data.join("p2"), 0, "process", &env);
    let client = reqwest::Client::new();
    // Both take part: the group splits the 4 partitions between them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = healthz(&client, &first.base).await["owned_partitions"]
            .as_i64()
            .unwrap_or(0);
        let b = healthz(&client, &second.base).await["owned_partitions"]
            .as_i64()
            .unwrap_or(0);
        if a > 0 && b > 0 && a + b == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not split between two processors: {a} + {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let acked = dir.path().join("acked.ndjson");
    let total = 24_000;
    let mut sim = simulate(
        &data,
        &ingest.base,
        total,
        3000,
        &["--duplicate-share", "0.03", "--jitter", "60", "--seed", "9"],
        &acked,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let seen = wait_progress(&acked, 0, "before the kill");
    assert!(seen < total, "the stream already ended");
    second.kill9();
    wait_exit(&mut sim, Duration::from_secs(240), "simulate");
    let deadline = Instant::now() + Duration::from_secs(60);
    while healthz(&client, &first.base).await["owned_partitions"] != 4 {
        assert!(
            Instant::now() < deadline,
            "the survivor did not take over all 4 partitions"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expected = replay(EXE, &acked, &dir.path().join("replay"));
    wait_stock_equals(&client, &serve.base, &expected, Duration::from_secs(120)).await;
    drop((ingest, serve, first));
}

/// The broker is killed and restarted mid-stream (sqlite storage keeps
/// what it acknowledged). Ingest answers 503 meanwhile, simulate retries;
/// every acknowledged event is counted once.
#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_mid_stream_loses_nothing_acknowledged() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut own = OwnBroker::start(&dir.path().join("broker"));
    let prefix = unique_prefix("restart");
    let mut env = kafka_env(&own.addr, &prefix, &dir.path().join("state"));
    // Quick 503s while the broker is away.
    env.push((
        "STOREPULSE__KAFKA__PRODUCE_TIMEOUT_MS".into(),
        "3000".into(),
    ));
    // Tansu 0.6's sqlite storage panics when an idempotent producer id from
    // before its restart comes back (tansu-storage lite.rs "more or less
    // than one row"); StorePulse does not need idempotence for its
    // guarantees (see `kafka.idempotence`).
    env.push(("STOREPULSE__KAFKA__IDEMPOTENCE".into(), "false".into()));
    let data = dir.path().join("data");
    let server = Server::start_role(EXE, &config(), &data, 0, "run", &env_refs(&env));
    let acked = dir.path().join("acked.ndjson");
    let total = 12_000;
    let mut sim = simulate(
        &data,
        &server.base,
        total,
        1500,
        &[
            "--duplicate-share",
            "0.02",
            "--seed",
            "3",
            "--timeout",
            "10",
        ],
        &acked,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let seen = wait_progress(&acked, 0, "before the broker restart");
    assert!(seen < total, "the stream already ended");
    own.kill9();
    std::thread::sleep(Duration::from_secs(3));
    own.restart();
    wait_exit(&mut sim, Duration::from_secs(300), "simulate");
    assert!(
        lines(&acked) >= total * 9 / 10,
        "only {} acknowledged",
        lines(&acked)
    );
    // While the broker was away, ingest answered 503 + Retry-After (which
    // simulate honours and counts), not errors or hangs.
    let report = report(&acked);
    assert!(
        report["retried_503"].as_u64().unwrap_or(0) > 0,
        "no 503 while the broker was down: {report}"
    );
    assert_eq!(report["abandoned"], 0, "{report}");
    let expected = replay(EXE, &acked, &dir.path().join("replay"));
    let client = reqwest::Client::new();
    wait_stock_equals(&client, &server.base, &expected, Duration::from_secs(180)).await;
    drop(server);
}

/// The test's client settings and a producer of its own, for records
/// written straight to the topics (as a POS producing directly would).
fn direct_producer(
    broker: &str,
    prefix: &str,
    client_id: &str,
) -> (
    storepulse_kafka::KafkaConfig,
    storepulse_kafka::Topics,
    rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
) {
    let kafka = storepulse_kafka::KafkaConfig {
        brokers: broker.to_owned(),
        topic_prefix: prefix.to_owned(),
        ..Default::default()
    };
    let topics = storepulse_kafka::Topics::new(prefix);
    let producer = storepulse_kafka::client::producer(&kafka, client_id, 30_000)
        .create()
        .unwrap();
    (kafka, topics, producer)
}

/// Queues one record keyed by `store_id` to partition `partition` of the
/// events topic.
fn send_event(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topics: &storepulse_kafka::Topics,
    store_id: &str,
    partition: i32,
    payload: &str,
) {
    producer
        .send(
            rdkafka::producer::BaseRecord::to(&topics.events)
                .key(store_id)
                .payload(payload)
                .partition(partition),
        )
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Polls `GET /v1/stock/{store_sku}` until its `on_hand` is `expected`;
/// fails after 60 s with `what` and the last answer.
async fn wait_on_hand(
    client: &reqwest::Client,
    base: &str,
    store_sku: &str,
    expected: i64,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stock = get_json_as(
            client,
            &format!("{base}/v1/stock/{store_sku}"),
            storepulse_tests::HQ_KEY,
        )
        .await;
        if stock["on_hand"] == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: on hand {}, expected {expected}: {stock}",
            stock["on_hand"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Bad JSON and wrong-schema records produced straight to the events topic
/// go to the DLQ topic with the reason in a header and the body; the
/// partition keeps flowing (the valid events around them are applied).
#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_go_to_the_dlq_and_the_partition_keeps_flowing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::producer::Producer;

    let Setup {
        dir: _dir,
        broker,
        prefix,
        env,
        data,
    } = setup("poison");
    let server = Server::start_role(EXE, &config(), &data, 0, "run", &env_refs(&env));
    let (kafka, topics, producer) = direct_producer(&broker, &prefix, "poison-test");
    let valid = |i: usize, qty: u32| {
        format!(
            r#"{{"v":1,"event_id":"ok-{i}","event_type":"stock_receipt","occurred_at":"2026-11-20T10:00:{:02}+08:00","store_id":"KM-001","channel":"backoffice","lines":[{{"sku":"SKU-P","qty":{qty}}}]}}"#,
            i % 60
        )
    };
    let poison = [
        "{not json".to_owned(),
        r#"{"v":1,"event_id":"bad-1","event_type":"stock_receipt","occurred_at":"2026-11-20T10:00:00+08:00","store_id":"KM-001","channel":"backoffice","lines":[{"sku":"SKU-P","qty":0}]}"#.to_owned(),
        r#"{"v":1,"event_id":"bad-2","event_type":"teleport","occurred_at":"2026-11-20T10:00:00+08:00","store_id":"KM-001","channel":"pos"}"#.to_owned(),
        r#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]"#.to_owned(),
    ];
    let partition = storepulse_kafka::partitioner::partition_for(b"KM-001", 4) as i32;
    let mut records = Vec::new();
    let mut expected_total = 0;
    for i in 0..40 {
        let qty = (i % 5 + 1) as u32;
        expected_total += i64::from(qty);
        records.push(valid(i, qty));
        if i % 10 == 5 {
            records.push(poison[i / 10].clone());
        }
    }
    for payload in &records {
        send_event(&producer, &topics, "KM-001", partition, payload);
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let client = reqwest::Client::new();
    wait_on_hand(
        &client,
        &server.base,
        "KM-001/SKU-P",
        expected_total,
        "valid events after the poison were not all applied",
    )
    .await;
    // The DLQ topic: one letter per poison record, reason in header and body.
    let consumer: BaseConsumer =
        storepulse_kafka::client::consumer(&kafka, "poison-test", &format!("{prefix}-check"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
    consumer.subscribe(&[&topics.dlq]).unwrap();
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while letters.len() < poison.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} dead letters: {letters:?}",
            letters.len(),
            poison.len()
        );
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let header = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "storepulse.reason"))
            .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()));
        let body: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
        letters.push((header, body));
    }
    for (header, body) in &letters {
        let header = header.as_deref().expect("storepulse.reason header");
        assert_eq!(body["reason"], header, "reason in body and header");
        assert_eq!(body["stage"], "processor");
        assert!(
            body["offset"].is_u64() && body["partition"].is_u64(),
            "{body}"
        );
    }
    let reasons: Vec<&str> = letters.iter().filter_map(|(h, _)| h.as_deref()).collect();
    assert!(reasons.iter().any(|r| r.contains("qty")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("event_type")),
        "{reasons:?}"
    );
    let dead = metric(
        &client,
        &server.base,
        "storepulse_processor_dead_letters_total",
    )
    .await;
    assert_eq!(dead as usize, poison.len());
    drop(server);
}

/// `run` on Kafka answers 503 with `Retry-After` while its processors are
/// more than `ingest.max_lag_records` behind, and accepts again once they
/// caught up. The backlog is written straight to the events topic (POS
/// terminals producing directly), so only the processors' lag gauges,
/// which come from librdkafka's statistics (`kafka::lag`), can show it.
#[tokio::test(flavor = "multi_thread")]
async fn ingest_refuses_while_the_processors_lag_and_accepts_once_they_caught_up() {
    let _turn = ONE_AT_A_TIME.lock().await;
    use rdkafka::producer::Producer;

    const BACKLOG: usize = 250_000;
    const MAX_LAG: f64 = 5_000.0;
    let Setup {
        dir: _dir,
        broker,
        prefix,
        mut env,
        data,
    } = setup("backlog");
    env.push((
        "STOREPULSE__INGEST__MAX_LAG_RECORDS".into(),
        (MAX_LAG as u64).to_string(),
    ));
    let server = Server::start_role(EXE, &config(), &data, 0, "run", &env_refs(&env));
    let client = reqwest::Client::new();
    let receipt = |id: &str| {
        format!(
            r#"{{"v":1,"event_id":"{id}","event_type":"stock_receipt","occurred_at":"2026-11-20T10:00:00+08:00","store_id":"KM-001","channel":"backoffice","lines":[{{"sku":"SKU-BACKLOG","qty":1}}]}}"#
        )
    };
    let post = |id: String| {
        let client = client.clone();
        let url = format!("{}/v1/events", server.base);
        let body = receipt(&id);
        async move {
            client
                .post(url)
                .bearer_auth(INGEST_KEY)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        post("before".into()).await.status(),
        200,
        "an idle pipeline"
    );

    let (_kafka, topics, producer) = direct_producer(&broker, &prefix, "backlog-test");
    let partition = storepulse_kafka::partitioner::partition_for(b"KM-001", 4) as i32;
    // Large enough that the processors take seconds to drain it (a first
    // statistics report comes after `kafka::lag::STATISTICS_INTERVAL_MS`);
    // flushed every 50,000 records, within the producer's queue.
    for i in 0..BACKLOG {
        send_event(
            &producer,
            &topics,
            "KM-001",
            partition,
            &receipt(&format!("backlog-{i}")),
        );
        if i % 50_000 == 49_999 {
            producer.flush(Duration::from_secs(60)).unwrap();
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    // Refused while behind, with the lag that made it so.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut accepted_meanwhile = 0;
    let mut attempt = 0;
    let refused_at_lag = loop {
        let answer = post(format!("during-{attempt}")).await;
        attempt += 1;
        if answer.status() == 503 {
            assert_eq!(
                answer
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("1")
            );
            break metric(&client, &server.base, "storepulse_kafka_consumer_lag").await;
        }
        assert_eq!(answer.status(), 200);
        accepted_meanwhile += 1;
        assert!(
            Instant::now() < deadline,
            "ingest never refused while {BACKLOG} records were written straight to the events topic (lag gauges: {})",
            metric(&client, &server.base, "storepulse_kafka_consumer_lag").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused_at_lag > MAX_LAG,
        "refused at a lag of {refused_at_lag}, not over {MAX_LAG}"
    );
    // Accepted again once the processors caught up, and nothing was lost.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let answer = post(format!("after-{attempt}")).await;
        attempt += 1;
        if answer.status() == 200 {
            accepted_meanwhile += 1;
            break;
        }
        assert_eq!(answer.status(), 503);
        assert!(
            Instant::now() < deadline,
            "still refused after 180 s (lag gauges: {})",
            metric(&client, &server.base, "storepulse_kafka_consumer_lag").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expected = (1 + BACKLOG + accepted_meanwhile) as i64;
    wait_on_hand(
        &client,
        &server.base,
        "KM-001/SKU-BACKLOG",
        expected,
        "the backlog and the accepted posts were not all applied",
    )
    .await;
    drop(server);
}

/// A member card used for sale after sale (a store's house card) is sent
/// to `<p>.members` about once per `kafka.member_snapshot_interval_ms`,
/// not once per applied batch: each record is the whole person, ledger
/// entries included. Thirty waves of sales 100 ms apart would give about
/// thirty records without the coalescing; the last record still holds
/// every sale.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_member_card_is_sent_to_the_members_topic_coalesced() {
    let _turn = ONE_AT_A_TIME.lock().await;
    use rdkafka::producer::Producer;

    let Setup {
        dir: _dir,
        broker,
        prefix,
        mut env,
        data,
    } = setup("housecard");
    const INTERVAL_MS: u64 = 2000;
    env.push((
        "STOREPULSE__KAFKA__MEMBER_SNAPSHOT_INTERVAL_MS".into(),
        INTERVAL_MS.to_string(),
    ));
    // Checkpoints send what is pending too; keep them out of the window.
    env.push((
        "STOREPULSE__RUNTIME__CHECKPOINT_INTERVAL_SECS".into(),
        "60".into(),
    ));
    let server = Server::start_role(EXE, &config(), &data, 0, "run", &env_refs(&env));
    let (_, topics, producer) = direct_producer(&broker, &prefix, "housecard-test");
    let partition = storepulse_kafka::partitioner::partition_for(b"KM-001", 4) as i32;
    const WAVES: usize = 30;
    const PER_WAVE: usize = 10;
    let sending = Instant::now();
    for wave in 0..WAVES {
        for i in 0..PER_WAVE {
            let n = wave * PER_WAVE + i;
            let sale = format!(
                r#"{{"v":1,"event_id":"house-{n}","event_type":"sale","occurred_at":"2026-11-20T10:{:02}:{:02}+08:00","store_id":"KM-001","channel":"pos","member_id":"HOUSE-1","order_id":"house-o-{n}","lines":[{{"sku":"SKU-H","qty":1,"unit_price_cents":1000}}],"total_cents":1000,"payment":{{"method":"cash"}}}}"#,
                n / 60,
                n % 60
            );
            send_event(&producer, &topics, "KM-001", partition, &sale);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At most one record per interval while the sales arrive, one at the
    // first batch and the last; a slow machine stretches the sending, so
    // the bound follows it (each wave would be a record of its own without
    // the coalescing).
    let bound = (sending.elapsed().as_millis() as u64).div_ceil(INTERVAL_MS) as usize + 3;
    assert!(
        bound < WAVES / 2,
        "sending {WAVES} waves took {:?}: too slow for this test to tell coalescing from none",
        sending.elapsed()
    );

    // Every record of the person on `<p>.members`, until one holds all
    // the sales (a person's records share its key, so one partition, in
    // order).
    let all_sales = (WAVES * PER_WAVE) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let sales_seen = loop {
        let seen: Vec<u64> = storepulse_tests::kafka::read_topic(&broker, &topics.members)
            .into_iter()
            .filter_map(|(_, _, _, value)| serde_json::from_slice::<serde_json::Value>(&value).ok())
            .filter(|record| {
                record["person"]["ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|i| i["id"] == "HOUSE-1"))
            })
            .map(|record| {
                record["person"]["history"]["total_sales"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .collect();
        if seen.last() == Some(&all_sales) {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "no record of HOUSE-1 with all {all_sales} sales; records seen had {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        sales_seen.len() <= bound,
        "{} records of one person for {WAVES} waves of sales, more than {bound} (coalescing off?): {sales_seen:?}",
        sales_seen.len()
    );
    assert!(
        sales_seen.windows(2).all(|w| w[0] <= w[1]),
        "records out of order: {sales_seen:?}"
    );
    drop(server);
}

/// Members on Kafka: member events go through `<p>.events.by-member`
/// (handovers for late links, forwarding, erasures); the member API of
/// `serve` equals `replay`'s members of the same events, and every tag was
/// announced on `<p>.member-tags`.
#[tokio::test(flavor = "multi_thread")]
async fn member_tags_on_kafka_equal_replay() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Streamed {
        setup:
            Setup {
                dir,
                broker,
                prefix,
                ..
            },
        server,
        client,
        ..
    } = stream_until_stock_equals_replay(
        "members",
        &[
            "--duplicate-share",
            "0.03",
            "--jitter",
            "600",
            "--seed",
            "5",
        ],
    )
    .await;
    let members = storepulse_tests::read_members(&dir.path().join("replay/members.ndjson"));
    let expected: std::collections::BTreeMap<String, Vec<String>> = members
        .into_iter()
        .filter(|(_, m)| !m.2.is_empty())
        .map(|(id, m)| (id, m.2))
        .collect();
    assert!(
        expected.len() > 50,
        "only {} tagged members",
        expected.len()
    );
    let topic = format!("{prefix}.member-tags");
    // The member API of `serve` (read from `<p>.members`) answers as replay.
    let replayed = storepulse_tests::read_members(&dir.path().join("replay/members.ndjson"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let served =
            storepulse_tests::all_members(&client, &server.base, storepulse_tests::HQ_KEY).await;
        if served == replayed {
            break;
        }
        if Instant::now() > deadline {
            let differing: Vec<_> = replayed
                .iter()
                .filter(|(k, v)| served.get(*k) != Some(*v))
                .take(5)
                .map(|(k, v)| (k.clone(), v.clone(), served.get(k).cloned()))
                .collect();
            let extra: Vec<_> = served
                .iter()
                .filter(|(k, _)| !replayed.contains_key(*k))
                .take(5)
                .collect();
            panic!(
                "members served on Kafka differ from replay ({} vs {}): differing {differing:?}; served only: {extra:?}",
                served.len(),
                replayed.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The settlement report of `serve` (each member partition's table on
    // `<p>.members`, sent when it changed) answers as replay, every day.
    let settlement = std::fs::read_to_string(dir.path().join("replay/settlement.csv"))
        .expect("replay wrote settlement.csv");
    let mut replay_days: std::collections::BTreeMap<String, Vec<(String, String, i64)>> =
        Default::default();
    for line in settlement.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        replay_days.entry(f[0].to_owned()).or_default().push((
            f[1].to_owned(),
            f[2].to_owned(),
            f[3].parse().expect("points"),
        ));
    }
    assert!(
        !replay_days.is_empty(),
        "no points moved between franchisees in this stream"
    );
    for (date, mut rows) in replay_days {
        let r = client
            .get(format!("{}/v1/reports/settlement?date={date}", server.base))
            .bearer_auth(storepulse_tests::HQ_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let report: serde_json::Value = r.json().await.unwrap();
        let mut served: Vec<(String, String, i64)> = report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r["from_franchisee"].as_str().unwrap_or_default().to_owned(),
                    r["to_franchisee"].as_str().unwrap_or_default().to_owned(),
                    r["points"].as_i64().unwrap_or_default(),
                )
            })
            .collect();
        rows.sort();
        served.sort();
        assert_eq!(served, rows, "settlement of {date} on Kafka vs replay");
    }
    // Every tag a member holds was announced on `<p>.member-tags`. (The
    // topic is a change log delivered at least once: a partition that
    // moves re-sends its changes since its checkpoint, so replaying the
    // log in order is not the state; `<p>.members` is.)
    let records = storepulse_tests::kafka::read_topic(&broker, &topic);
    let mut announced: std::collections::BTreeSet<(String, String)> = Default::default();
    for (_, _, _, value) in &records {
        let v: serde_json::Value = serde_json::from_slice(value).unwrap_or_default();
        if v["type"] == "tag_change" && v["change"] == "added" {
            announced.insert((
                v["member_id"].as_str().unwrap_or_default().to_owned(),
                v["tag"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    let missing: Vec<_> = expected
        .iter()
        .flat_map(|(m, tags)| tags.iter().map(move |t| (m.clone(), t.clone())))
        .filter(|k| !announced.contains(k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "tags never announced on {topic}: {missing:?}"
    );
    // An erasure through the API goes through the events topic.
    let (erased, line) = replayed
        .iter()
        .find(|(_, m)| !m.0.is_empty())
        .expect("a member with an alias");
    let r = client
        .delete(format!("{}/v1/members/{}", server.base, line.0[0]))
        .bearer_auth(storepulse_tests::HQ_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for id in std::iter::once(erased).chain(line.0.iter()) {
        let r = client
            .get(format!("{}/v1/members/{id}", server.base))
            .bearer_auth(storepulse_tests::HQ_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{id} after erasure");
    }
    let tags = storepulse_tests::kafka::read_topic(&broker, &topic);
    assert!(
        tags.iter().any(|r| r.2 == *erased
            && String::from_utf8_lossy(&r.3).contains(r#""type":"member_erased""#)),
        "the erasure is on {topic}"
    );
    // The points alerts reached the alerts topic as they do in replay.
    let replayed = std::fs::read_to_string(dir.path().join("replay/alerts.ndjson")).unwrap();
    let points = replayed.matches("points_overdraft:").count();
    let alerts = storepulse_tests::kafka::read_topic(&broker, &format!("{prefix}.alerts"));
    let on_topic = alerts
        .iter()
        .filter(|r| r.2.starts_with("points_overdraft:"))
        .map(|r| r.2.clone())
        .collect::<std::collections::BTreeSet<_>>();
    assert!(
        on_topic.len() >= points.min(1),
        "{} points alerts on the topic, replay has {points}",
        on_topic.len()
    );
    assert!(server.stop(), "clean stop");
}

/// The fraud review queue of `base` with `status` (`open`, `all`...):
/// alert id -> (rule, event ids), every page.
async fn review_queue(
    client: &reqwest::Client,
    base: &str,
    status: &str,
) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    let mut out = std::collections::BTreeMap::new();
    let mut before = String::new();
    loop {
        let r = client
            .get(format!(
                "{base}/v1/alerts?status={status}&limit=100{before}"
            ))
            .bearer_auth(storepulse_tests::RISK_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "review queue of {base}");
        let page: serde_json::Value = r.json().await.unwrap();
        for a in page["alerts"].as_array().unwrap() {
            let ids = a["event_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_owned())
                .collect();
            out.insert(
                a["alert_id"].as_str().unwrap().to_owned(),
                (a["rule"].as_str().unwrap().to_owned(), ids),
            );
        }
        match page["next"].as_u64() {
            Some(seq) => before = format!("&before={seq}"),
            None => return out,
        }
    }
}

/// The fraud alerts standing on `<p>.alerts`: the last record of each
/// fraud alert id is a raise (alert id -> (rule, event ids)).
fn standing_on_topic(
    broker: &str,
    topic: &str,
) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    let mut out = std::collections::BTreeMap::new();
    for (_, _, key, value) in storepulse_tests::kafka::read_topic(broker, topic) {
        let v: serde_json::Value = serde_json::from_slice(&value).unwrap_or_default();
        match v["type"].as_str() {
            Some("alert.raised") => {
                let ids = v["alert"]["event_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_owned())
                    .collect();
                out.insert(key, (v["rule"].as_str().unwrap().to_owned(), ids));
            }
            Some("alert.withdrawn") => {
                out.remove(&key);
            }
            _ => {}
        }
    }
    out
}

/// Posts NDJSON lines to `base` in chunks; every event must be accepted
/// (a duplicate is accepted too).
async fn post_lines(client: &reqwest::Client, base: &str, lines: &[String]) {
    for chunk in lines.chunks(500) {
        let body: String = chunk.iter().map(|l| format!("{l}\n")).collect();
        let r = client
            .post(format!("{base}/v1/events"))
            .header("content-type", "application/x-ndjson")
            .bearer_auth(INGEST_KEY)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let answer: serde_json::Value = r.json().await.unwrap_or_default();
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["rejected"], serde_json::json!([]), "{answer}");
    }
}

/// The open fraud review queue (points overdrafts aside) of an embedded
/// `storepulse run` fed `batches` of events in order, each batch processed
/// before the next is sent.
async fn embedded_fraud(
    client: &reqwest::Client,
    data: &Path,
    batches: &[&[String]],
) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    let embedded = Server::start(
        EXE,
        data,
        0,
        &[("STOREPULSE__INGEST__MAX_FUTURE_SKEW_SECS", "100000000")],
    );
    for batch in batches {
        post_lines(client, &embedded.base, batch).await;
        storepulse_tests::wait_caught_up(client, &embedded.base).await;
    }
    let mut expected = review_queue(client, &embedded.base, "open").await;
    expected.retain(|_, (rule, _)| rule != "points_overdraft");
    assert!(embedded.stop(), "embedded: clean stop");
    expected
}

/// Waits until the fraud alerts standing on `<prefix>.alerts` and open on
/// `serve` (points overdrafts aside) equal `expected`.
async fn wait_fraud_equals(
    client: &reqwest::Client,
    broker: &str,
    prefix: &str,
    serve: &str,
    expected: &std::collections::BTreeMap<String, (String, Vec<String>)>,
    timeout: Duration,
) {
    let topic = format!("{prefix}.alerts");
    let deadline = Instant::now() + timeout;
    loop {
        let on_topic = standing_on_topic(broker, &topic);
        let mut served = review_queue(client, serve, "open").await;
        served.retain(|_, (rule, _)| rule != "points_overdraft");
        if &on_topic == expected && &served == expected {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, _)| !on_topic.contains_key(*k))
                .collect();
            let extra: Vec<_> = on_topic
                .iter()
                .filter(|(k, _)| !expected.contains_key(*k))
                .collect();
            let served_differs: Vec<_> = served
                .keys()
                .filter(|k| !expected.contains_key(*k))
                .chain(expected.keys().filter(|k| !served.contains_key(*k)))
                .collect();
            panic!(
                "fraud alerts on Kafka != embedded after {timeout:?}: {} expected, {} standing on {topic}, {} open on serve; missing on the topic {missing:?}; extra on the topic {extra:?}; differing on serve {served_differs:?}",
                expected.len(),
                on_topic.len(),
                served.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fraud on Kafka: a simulated stream with planted fraud, a large single
/// purchase, a payment account shared by three members, and a member whose
/// alias buys in a by-member partition other than its phone's and whose
/// registration arrives after its sales were processed (the handover must
/// carry the alias's fraud windows). The standing fraud alerts on
/// `<p>.alerts`, and serve's open review queue, equal the review queue of
/// the embedded `storepulse run` fed the same acknowledged events; a
/// decision taken on serve is on `<p>.alert-decisions` and in the queue.
#[tokio::test(flavor = "multi_thread")]
async fn fraud_alerts_on_kafka_equal_embedded() {
    use serde_json::json;
    use storepulse_kafka::partitioner::partition_for;
    let _turn = ONE_AT_A_TIME.lock().await;
    let setup = setup("fraud");
    let server = Server::start_role(EXE, &config(), &setup.data, 0, "run", &env_refs(&setup.env));
    let client = reqwest::Client::new();
    let acked = setup.dir.path().join("acked.ndjson");
    let mut sim = simulate(
        &setup.data,
        &server.base,
        6_000,
        0,
        &[
            "--plant-fraud",
            "6",
            "--duplicate-share",
            "0.03",
            "--jitter",
            "300",
            "--seed",
            "9",
        ],
        &acked,
    );
    wait_exit(&mut sim, Duration::from_secs(180), "simulate");
    // Every simulated event went through the stock stage (and was
    // forwarded, before any later clock record of the same producer)
    // before the hand-made events move the clock on by hours: embedded
    // sees them in that order too.
    let stock = replay(EXE, &acked, &setup.dir.path().join("replay"));
    wait_stock_equals(&client, &server.base, &stock, Duration::from_secs(120)).await;

    // Hand-made fraud, hours after the simulated stream (so that nothing
    // simulated is late against it).
    let t0 = storepulse_core::time::now() + 3 * storepulse_core::time::HOUR;
    let at = |minutes: i64| {
        storepulse_core::time::format_china(t0 + minutes * storepulse_core::time::MINUTE)
    };
    let phone = "5b1c2d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";
    let home = partition_for(phone.as_bytes(), 4);
    let alias = (0..100)
        .map(|i| format!("KF-ALIAS-{i}"))
        .find(|id| partition_for(id.as_bytes(), 4) != home)
        .unwrap();
    let sale = |id: &str, minutes: i64, store: &str, member: &str, total: u64, account: &str| {
        json!({
            "v": 1, "event_id": id, "event_type": "sale", "occurred_at": at(minutes),
            "store_id": store, "channel": "pos", "member_id": member,
            "order_id": format!("o-{id}"),
            "lines": [{"sku": "SKU-1", "qty": 1, "unit_price_cents": total}],
            "total_cents": total,
            "payment": {"method": "card", "account_ref": account},
        })
        .to_string()
    };
    let register = |id: &str, minutes: i64, member: &str| {
        json!({
            "v": 1, "event_id": id, "event_type": "member_register", "occurred_at": at(minutes),
            "store_id": "KM-001", "channel": "app", "member_id": member, "phone_hash": phone,
        })
        .to_string()
    };
    let first: Vec<String> = vec![
        register("kf-r0", -60, "KF-M"),
        sale("kf-s1", 0, "KM-001", "KF-M", 200_000, "card-kf-m"),
        sale("kf-s2", 10, "DL-001", &alias, 200_000, "card-kf-a"),
        sale("kf-s3", 20, "MZ-001", &alias, 200_000, "card-kf-a"),
        sale("kf-big", 25, "KM-002", "KF-BIG", 2_500_000, "card-kf-big"),
        sale("kf-sh1", 30, "KM-003", "KF-S1", 200_000, "card-kf-shared"),
        sale("kf-sh2", 35, "DL-002", "KF-S2", 200_000, "card-kf-shared"),
        sale("kf-sh3", 40, "MZ-002", "KF-S3", 200_000, "card-kf-shared"),
    ];
    let late = vec![register("kf-r1", -30, &alias)];
    post_lines(&client, &server.base, &first).await;
    // The alias's sales are processed in its own partition before its
    // registration is sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = client
            .get(format!("{}/v1/members/{alias}", server.base))
            .bearer_auth(storepulse_tests::HQ_KEY)
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = if r.status() == 200 {
            r.json().await.unwrap_or_default()
        } else {
            serde_json::Value::Null
        };
        if v["orders_90d"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alias's two sales were not processed within 60 s: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    post_lines(&client, &server.base, &late).await;

    // The embedded program fed the same acknowledged events, in the same
    // order, is the reference.
    let simulated: Vec<String> = std::fs::read_to_string(&acked)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let expected = embedded_fraud(
        &client,
        &setup.dir.path().join("embedded"),
        &[&simulated, &first, &late],
    )
    .await;
    let rules: std::collections::BTreeSet<&str> =
        expected.values().map(|(r, _)| r.as_str()).collect();
    for rule in [
        "multi_store_large_purchase",
        "shared_payment_account",
        "large_single_purchase",
    ] {
        assert!(
            rules.contains(rule),
            "embedded raised no {rule}: {expected:?}"
        );
    }
    eprintln!(
        "fraud e2e: {} standing fraud alerts in embedded ({:?})",
        expected.len(),
        expected.values().fold(
            std::collections::BTreeMap::<&str, usize>::new(),
            |mut m, (r, _)| {
                *m.entry(r.as_str()).or_default() += 1;
                m
            }
        )
    );
    let linked: Vec<String> = ["kf-s1", "kf-s2", "kf-s3"].map(String::from).to_vec();
    assert!(
        expected.values().any(|(_, ids)| *ids == linked),
        "embedded: the late link's alert {expected:?}"
    );

    // Kafka: the topic, then serve's queue, converge to the same alerts.
    wait_fraud_equals(
        &client,
        &setup.broker,
        &setup.prefix,
        &server.base,
        &expected,
        Duration::from_secs(90),
    )
    .await;

    // The rules are served; a decision goes through the decisions topic.
    let r = client
        .get(format!("{}/v1/rules", server.base))
        .bearer_auth(storepulse_tests::RISK_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (decided, _) = expected
        .iter()
        .find(|(_, (rule, _))| rule == "large_single_purchase")
        .unwrap();
    let r = client
        .post(format!("{}/v1/alerts/{decided}/decision", server.base))
        .bearer_auth(storepulse_tests::RISK_KEY)
        .json(&json!({"decision": "confirmed_fraud", "comment": "card reported stolen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let decisions = storepulse_tests::kafka::read_topic(
        &setup.broker,
        &format!("{}.alert-decisions", setup.prefix),
    );
    assert!(
        decisions.iter().any(|d| d.2 == *decided),
        "the decision is on the decisions topic"
    );
    let r: serde_json::Value = client
        .get(format!("{}/v1/alerts/{decided}", server.base))
        .bearer_auth(storepulse_tests::RISK_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "confirmed_fraud", "{r}");

    // A rule changed on serve is written to the rules file, which the
    // processors re-read: a purchase of 15,000 CNY becomes "large".
    let lower = json!({
        "key": "order", "window_minutes": 0,
        "filter": {"min_sale_total_cents": 1_000_000},
        "when": {"total_cents": 1_000_000, "distinct_stores": 1, "sales": 1},
    });
    let r = client
        .put(format!("{}/v1/rules/large_single_purchase", server.base))
        .bearer_auth(storepulse_tests::RISK_KEY)
        .json(&lower)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    'caught: loop {
        // A new sale each round: one processed before the processors
        // re-read the file is judged by the old rule.
        let id = format!("kf-rule-{n}");
        n += 1;
        post_lines(
            &client,
            &server.base,
            &[sale(&id, 50 + n, "KM-004", "KF-R", 1_500_000, "card-kf-r")],
        )
        .await;
        let round = Instant::now() + Duration::from_secs(2);
        while Instant::now() < round {
            let open = review_queue(&client, &server.base, "open").await;
            if open.values().any(|(rule, ids)| {
                rule == "large_single_purchase" && ids.iter().any(|e| e.starts_with("kf-rule-"))
            }) {
                break 'caught;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            Instant::now() < deadline,
            "no alert under the changed rule within 30 s ({n} sales of 15,000 CNY)"
        );
    }
    // The rules reached the other processes through `<p>.fraud-rules`: a
    // second serve, whose own rules file does not exist (defaults), serves
    // the changed rule.
    let rules_topic = format!("{}.fraud-rules", setup.prefix);
    let published = storepulse_tests::kafka::read_topic(&setup.broker, &rules_topic);
    assert!(
        published.iter().any(|r| r.2 == "rules"),
        "nothing published on {rules_topic}"
    );
    let env = env_refs(&setup.env);
    let second = Server::start_role(
        EXE,
        &config(),
        &setup.data.join("serve-2"),
        0,
        "serve",
        &env,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get_json_as(
            &client,
            &format!("{}/v1/rules/large_single_purchase", second.base),
            storepulse_tests::RISK_KEY,
        )
        .await;
        if r.to_string().contains("1000000") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a second serve does not serve the changed rule: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(second.stop(), "second serve: clean stop");
    assert!(server.stop(), "kafka: clean stop");
}

/// What a webhook receiver got: (delivery id, body), in arrival order.
type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;

const HOOK_SECRET: &str = "kafka-webhook-secret";

/// A webhook receiver on 127.0.0.1:0 that refuses (401) a bad signature
/// and records the rest. Returns its port.
async fn start_receiver(received: Deliveries) -> u16 {
    use axum::http::{HeaderMap, StatusCode};
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
                if !storepulse_sinks::webhook::signature::verify(
                    HOOK_SECRET.as_bytes(),
                    timestamp,
                    &body,
                    &header("x-storepulse-signature"),
                ) {
                    eprintln!(
                        "webhook: bad signature on {}",
                        header("x-storepulse-delivery")
                    );
                    return StatusCode::UNAUTHORIZED;
                }
                let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                received
                    .lock()
                    .unwrap()
                    .push((header("x-storepulse-delivery"), value));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    port
}

/// Waits until the webhook got exactly `expected` (delivery ids), then a
/// second more to see that nothing else follows; panics on a missing, an
/// extra or a repeated delivery.
async fn wait_deliveries(received: &Deliveries, expected: &std::collections::BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<String> = received
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.0.clone())
            .collect();
        let distinct: std::collections::BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(
            got.len(),
            distinct.len(),
            "a notification was delivered twice: {got:?}"
        );
        let extra: Vec<_> = distinct.difference(expected).collect();
        assert!(
            extra.is_empty(),
            "unexpected deliveries {extra:?} (expected {expected:?})"
        );
        if &distinct == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "within 60 s the webhook got {distinct:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.0.clone())
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "deliveries after the expected ones: {got:?}"
    );
}

/// The fraud raises on `<p>.alerts` whose sales are among `event_ids`:
/// alert id -> the record (the webhook body).
fn raised_on_topic(
    broker: &str,
    topic: &str,
    event_ids: &[&str],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut out = std::collections::BTreeMap::new();
    for (_, _, key, value) in storepulse_tests::kafka::read_topic(broker, topic) {
        let v: serde_json::Value = serde_json::from_slice(&value).unwrap_or_default();
        if v["type"] == "alert.raised"
            && v["alert"]["event_ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| event_ids.contains(&e.as_str().unwrap()))
        {
            out.insert(key, v);
        }
    }
    out
}

/// Webhooks on Kafka: `run` (ingest, process and a serve without webhooks)
/// and one designated `serve` with a webhook (a local receiver checking
/// signatures). Fraud raised before that serve's first start is history
/// and not sent; fraud planted afterwards reaches the webhook once per
/// alert, the record of `<p>.alerts` as the body; a decision taken on the
/// other instance reaches it as `alert.decided` through
/// `<p>.alert-decisions`. Then the webhook serve is killed (-9), fraud and
/// a decision arrive while it is down, and after its restart the webhook
/// has each of them once and nothing it had before again.
#[tokio::test(flavor = "multi_thread")]
async fn fraud_webhooks_on_kafka_once_across_kill_9() {
    use serde_json::json;
    let _turn = ONE_AT_A_TIME.lock().await;
    let setup = setup("webhooks");
    let env = env_refs(&setup.env);
    let client = reqwest::Client::new();
    let received: Deliveries = Default::default();
    let port = start_receiver(received.clone()).await;
    let hook_config = setup.dir.path().join("storepulse-hook.toml");
    let shipped = std::fs::read_to_string(config()).unwrap();
    std::fs::write(
        &hook_config,
        format!(
            "{shipped}\n[[fraud.webhooks]]\nname = \"risk\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{HOOK_SECRET}\"\ninitial_backoff_ms = 50\nmax_backoff_secs = 1\n"
        ),
    )
    .unwrap();
    let run = Server::start_role(EXE, &config(), &setup.data, 0, "run", &env);
    let alerts_topic = format!("{}.alerts", setup.prefix);

    let t0 = storepulse_core::time::now() + 3 * storepulse_core::time::HOUR;
    let at = |minutes: i64| {
        storepulse_core::time::format_china(t0 + minutes * storepulse_core::time::MINUTE)
    };
    let sale = |id: &str, minutes: i64, store: &str, member: &str, total: u64| {
        json!({
            "v": 1, "event_id": id, "event_type": "sale", "occurred_at": at(minutes),
            "store_id": store, "channel": "pos", "member_id": member,
            "order_id": format!("o-{id}"),
            "lines": [{"sku": "SKU-1", "qty": 1, "unit_price_cents": total}],
            "total_cents": total,
            "payment": {"method": "card", "account_ref": format!("card-{id}")},
        })
        .to_string()
    };
    // One batch of planted fraud: two large single purchases and a member
    // buying 6,000 CNY in three stores within 20 minutes.
    let batch = |tag: &str, minutes: i64| -> (Vec<String>, Vec<String>) {
        let ids: Vec<String> = ["big1", "big2", "m1", "m2", "m3"]
            .iter()
            .map(|s| format!("wh-{tag}-{s}"))
            .collect();
        let member = format!("WH-{tag}");
        let lines = vec![
            sale(
                &ids[0],
                minutes,
                "KM-001",
                &format!("{member}-B1"),
                2_500_000,
            ),
            sale(
                &ids[1],
                minutes + 1,
                "DL-001",
                &format!("{member}-B2"),
                3_000_000,
            ),
            sale(&ids[2], minutes + 2, "KM-002", &member, 200_000),
            sale(&ids[3], minutes + 12, "DL-002", &member, 200_000),
            sale(&ids[4], minutes + 22, "MZ-001", &member, 200_000),
        ];
        (lines, ids)
    };
    // Waits until the batch's alerts (three) are on the topic.
    let on_topic = |ids: Vec<String>| {
        let broker = setup.broker.clone();
        let topic = alerts_topic.clone();
        async move {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let raised = raised_on_topic(&broker, &topic, &refs);
                if raised.len() >= 3 {
                    return raised;
                }
                assert!(
                    Instant::now() < deadline,
                    "the planted fraud {ids:?} is not on {topic} within 60 s: {raised:?}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let decide = |alert_id: String, verdict: &'static str| {
        let (client, base) = (client.clone(), run.base.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let r = client
                    .post(format!("{base}/v1/alerts/{alert_id}/decision"))
                    .bearer_auth(storepulse_tests::RISK_KEY)
                    .json(&json!({"decision": verdict, "comment": "checked with the store"}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                if status == 200 {
                    return body;
                }
                assert!(
                    status == 404 && Instant::now() < deadline,
                    "decision on {alert_id}: {status} {body}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    // History: on the topic before the webhook serve ever started.
    let (history, history_ids) = batch("h", 0);
    post_lines(&client, &run.base, &history).await;
    let old = on_topic(history_ids).await;

    let hook_data = setup.data.join("serve-hook");
    let serve = Server::start_role(EXE, &hook_config, &hook_data, 0, "serve", &env);
    let (live, live_ids) = batch("l", 120);
    post_lines(&client, &run.base, &live).await;
    let raised = on_topic(live_ids).await;
    let mut expected: std::collections::BTreeSet<String> =
        raised.keys().map(|id| format!("raised:{id}")).collect();
    wait_deliveries(&received, &expected).await;
    // The body is the record on the topic, as embedded sends it.
    for (id, body) in received.lock().unwrap().iter() {
        let alert_id = id.strip_prefix("raised:").unwrap();
        assert_eq!(body, &raised[alert_id], "body of {id}");
    }
    assert!(
        old.keys().all(|id| !received
            .lock()
            .unwrap()
            .iter()
            .any(|d| d.0.contains(id.as_str()))),
        "history was sent"
    );
    // A decision on the other instance reaches the webhook via the topic.
    let first = raised.keys().next().unwrap().clone();
    let answer = decide(first.clone(), "confirmed_fraud").await;
    assert_eq!(
        answer["notified"], false,
        "the run instance has no webhooks"
    );
    let decided: Vec<String> = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ids: Vec<String> = received
                .lock()
                .unwrap()
                .iter()
                .filter(|d| d.0.starts_with(&format!("decided:{first}:")))
                .map(|d| d.0.clone())
                .collect();
            if !ids.is_empty() {
                break ids;
            }
            assert!(
                Instant::now() < deadline,
                "the decision on {first} did not reach the webhook"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    expected.extend(decided);
    wait_deliveries(&received, &expected).await;
    let body = received
        .lock()
        .unwrap()
        .iter()
        .find(|d| d.0.starts_with("decided:"))
        .unwrap()
        .1
        .clone();
    assert_eq!(body["type"], "alert.decided", "{body}");
    assert_eq!(body["decision"]["decision"], "confirmed_fraud", "{body}");
    assert_eq!(body["rule"], raised[&first]["rule"], "{body}");
    let delivered =
        storepulse_tests::metric(&client, &serve.base, "storepulse_webhook_delivered").await;
    assert_eq!(
        delivered as usize,
        expected.len(),
        "/metrics of the webhook serve"
    );

    // kill -9; fraud and a decision arrive while the webhook serve is down.
    serve.kill9();
    let (down, down_ids) = batch("d", 240);
    post_lines(&client, &run.base, &down).await;
    let raised_down = on_topic(down_ids).await;
    let second = raised.keys().nth(1).unwrap().clone();
    decide(second.clone(), "false_alarm").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        received.lock().unwrap().len(),
        expected.len(),
        "nothing is sent while the webhook serve is down"
    );
    let serve = Server::start_role(EXE, &hook_config, &hook_data, 0, "serve", &env);
    let before = expected.len();
    expected.extend(raised_down.keys().map(|id| format!("raised:{id}")));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = received.lock().unwrap().clone();
        if let Some(d) = got
            .iter()
            .find(|d| d.0.starts_with(&format!("decided:{second}:")))
        {
            expected.insert(d.0.clone());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the decision taken while the webhook serve was down did not arrive: {:?}",
            got.iter().map(|d| &d.0).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_deliveries(&received, &expected).await;
    assert_eq!(expected.len(), before + raised_down.len() + 1);
    let health = healthz(&client, &serve.base).await;
    assert_eq!(
        health["webhook_forward"]["appended"],
        (raised_down.len() + 1) as u64,
        "after the restart only what arrived meanwhile is new in the outbox: {health}"
    );
    // The serve was quiet for a second before the kill, so its forward
    // checkpoint covered everything: nothing was even offered twice.
    assert_eq!(health["webhook_forward"]["duplicates"], 0, "{health}");
    assert!(serve.stop(), "webhook serve: clean stop");
    assert!(run.stop(), "run: clean stop");
}
