//! Helpers for the tests against a real Kafka-protocol broker.
//!
//! The broker is started by `deploy/test.sh` (`deploy/kafka.sh start`, Tansu
//! on 127.0.0.1:9092); `STOREPULSE_TEST_KAFKA` points the tests elsewhere.
//! A test that cannot reach it fails with the command to run, never skips.
//! Each test uses its own topic prefix and consumer group, so tests share
//! one broker and run in parallel.

use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

/// The broker's `host:port`, checked to accept connections.
///
/// # Panics
/// When nothing listens there, with the command that starts it.
pub fn broker() -> String {
    let addr = std::env::var("STOREPULSE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "no Kafka-protocol broker at {addr}: start one with `./deploy/kafka.sh start` \
         (deploy/test.sh does), or set STOREPULSE_TEST_KAFKA=host:port"
    );
    addr
}

/// A topic prefix of its own for one test (`sp<pid>-<name>`).
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("sp{}-{nanos}-{name}", std::process::id())
}

/// Environment for a `storepulse` role in Kafka mode: brokers, prefix,
/// group, 4 partitions, frequent checkpoints, state in `state_dir`.
pub fn kafka_env(broker: &str, prefix: &str, state_dir: &Path) -> Vec<(String, String)> {
    vec![
        ("STOREPULSE__KAFKA__BROKERS".into(), broker.to_owned()),
        ("STOREPULSE__KAFKA__TOPIC_PREFIX".into(), prefix.to_owned()),
        (
            "STOREPULSE__KAFKA__GROUP_ID".into(),
            format!("{prefix}-processors"),
        ),
        ("STOREPULSE__KAFKA__PARTITIONS".into(), "4".into()),
        (
            "STOREPULSE__KAFKA__SESSION_TIMEOUT_MS".into(),
            "6000".into(),
        ),
        (
            "STOREPULSE__KAFKA__STATE_DIR".into(),
            state_dir.display().to_string(),
        ),
        (
            "STOREPULSE__RUNTIME__CHECKPOINT_INTERVAL_SECS".into(),
            "0.5".into(),
        ),
        (
            "STOREPULSE__TELEMETRY__LEVEL".into(),
            std::env::var("STOREPULSE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ),
        // The contract examples and simulated streams may be dated ahead.
        (
            "STOREPULSE__INGEST__MAX_FUTURE_SKEW_SECS".into(),
            "100000000".into(),
        ),
    ]
}

/// Borrowed form of [`kafka_env`] for [`crate::Server::start_role`].
pub fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Polls the served stock until it equals `expected` (the read model is
/// eventually consistent), then checks it stays equal for a second (nothing
/// counted twice late).
///
/// # Panics
/// When it does not converge within `timeout`, with a summary of the
/// differences.
pub async fn wait_stock_equals(
    client: &reqwest::Client,
    base: &str,
    expected: &BTreeMap<(String, String), i64>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let served = crate::all_stock(client, base).await;
        if &served == expected {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let again = crate::all_stock(client, base).await;
            assert_eq!(
                &again, expected,
                "stock changed after it matched the replay"
            );
            return;
        }
        if Instant::now() >= deadline {
            let missing = expected.keys().filter(|k| !served.contains_key(*k)).count();
            let extra = served.keys().filter(|k| !expected.contains_key(*k)).count();
            let differ: Vec<_> = expected
                .iter()
                .filter_map(|(k, v)| {
                    served
                        .get(k)
                        .filter(|s| *s != v)
                        .map(|s| (k.clone(), *v, *s))
                })
                .take(5)
                .collect();
            panic!(
                "served stock != replay after {timeout:?}: {} expected pairs, {} served, {missing} missing, {extra} extra, first differences (key, replay, served): {differ:?}",
                expected.len(),
                served.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `GET {base}/healthz` as JSON (Null when unreachable).
pub async fn healthz(client: &reqwest::Client, base: &str) -> serde_json::Value {
    match client.get(format!("{base}/healthz")).send().await {
        Ok(r) => r.json().await.unwrap_or(serde_json::Value::Null),
        Err(_) => serde_json::Value::Null,
    }
}

/// A broker of a test's own (Tansu with sqlite storage, which keeps its
/// data and committed offsets across a restart), for the broker-restart
/// test. Stopped when dropped.
pub struct OwnBroker {
    child: Option<std::process::Child>,
    dir: std::path::PathBuf,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

fn tansu_bin() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("tansu"))
            .find(|p| p.is_file())
    }) {
        return path;
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let cached = Path::new(&home).join(".cargo/bin/tansu");
    assert!(
        cached.is_file(),
        "tansu is not installed: run `./deploy/kafka.sh install` (deploy/test.sh does)"
    );
    cached
}

impl OwnBroker {
    /// Starts Tansu on a free port with its sqlite database in `dir`.
    ///
    /// # Panics
    /// When tansu is missing or does not listen within 20 s.
    pub fn start(dir: &Path) -> OwnBroker {
        let port = crate::free_port();
        let mut broker = OwnBroker {
            child: None,
            dir: dir.to_owned(),
            addr: format!("127.0.0.1:{port}"),
        };
        broker.restart();
        broker
    }

    /// Starts (again) on the same port and database.
    ///
    /// # Panics
    /// As [`OwnBroker::start`].
    pub fn restart(&mut self) {
        std::fs::create_dir_all(&self.dir).expect("broker dir");
        let url = format!("tcp://{}", self.addr);
        let log = std::fs::File::create(self.dir.join("tansu.log")).expect("broker log");
        // Tansu reads the sqlite path relative to its working directory.
        let child = std::process::Command::new(tansu_bin())
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = self
            .addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .expect("addr");
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within 20 s; see {}",
                self.addr,
                self.dir.join("tansu.log").display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL (no clean shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One record of a topic: partition, offset, key, value.
pub type TopicRecord = (i32, i64, String, Vec<u8>);

/// Every record of `topic` from its beginning to its end now, in
/// (partition, offset) order.
///
/// # Panics
/// When the broker cannot be read within a minute.
pub fn read_topic(broker: &str, topic: &str) -> Vec<TopicRecord> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", format!("read-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .expect("metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    assert!(!partitions.is_empty(), "topic {topic} has no partitions");
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut at_end = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions.len() {
        assert!(
            Instant::now() < deadline,
            "reading {topic} took over a minute"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                records.push((
                    m.partition(),
                    m.offset(),
                    m.key()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_default(),
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(_)) | None => {}
        }
    }
    records.sort_by_key(|r| (r.0, r.1));
    records
}
