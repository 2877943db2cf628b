//! `simulate --kafka` against a real Kafka-protocol broker.
//!
//! The broker is Tansu on 127.0.0.1:9092 (`./deploy/kafka.sh start`);
//! `STOREPULSE_TEST_KAFKA=host:port` points the tests elsewhere. Without a
//! broker they fail with the command to run; they never skip. Each test
//! uses a topic prefix of its own, so they run in parallel and again.
//!
//! The records are read back twice: by a consumer that reads each
//! partition to its end as the Fetch answers say (`enable.partition.eof`),
//! and by `storepulse_kafka::dump::topic_to_ndjson`, which `replay
//! --from-topic` uses and which takes each partition's end from ListOffsets.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use storepulse_core::StoreMaster;
use storepulse_kafka::partitioner::partition_for;
use storepulse_kafka::{KafkaConfig, Topics};
use storepulse_simulate::{Emitted, Generator, SimulateArgs};

const EVENTS: u64 = 2_000;

/// A finished `simulate --kafka` run.
struct Run {
    report: storepulse_simulate::SimulateReport,
    args: SimulateArgs,
    config: KafkaConfig,
    topic: String,
    dir: tempfile::TempDir,
}

/// Produces [`EVENTS`] events (5% duplicates, 5% malformed) to a topic
/// prefix of the test's own, with `--acked-out` in a temporary directory.
fn simulate(name: &str) -> Run {
    let brokers = broker();
    let prefix = unique_prefix(name);
    let dir = tempfile::tempdir().unwrap();
    let mut args = SimulateArgs::to_kafka(&brokers);
    args.topic_prefix = prefix.clone();
    args.stores = stores_path();
    args.start = storepulse_core::time::parse_rfc3339("2026-11-25T08:00:00+08:00");
    args.skus = 300;
    args.rate = 0.0;
    args.events = Some(EVENTS);
    args.duplicate_share = 0.05;
    args.malformed_share = 0.05;
    args.acked_out = Some(dir.path().join("acked.ndjson"));
    args.quiet = true;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(storepulse_simulate::run(
            args.clone(),
            std::future::pending(),
        ))
        .unwrap();
    let config = KafkaConfig {
        brokers,
        topic_prefix: prefix.clone(),
        ..KafkaConfig::default()
    };
    Run {
        report,
        args,
        config,
        topic: Topics::new(&prefix).events,
        dir,
    }
}

/// What `args` should have produced, generated offline with the same seed.
fn offline(args: &SimulateArgs) -> Vec<(Vec<u8>, Emitted)> {
    let stores = Arc::new(StoreMaster::load(&args.stores).unwrap());
    let mut generator = Generator::new(args.generator_config(args.start.unwrap()), stores).unwrap();
    (0..EVENTS)
        .map(|_| {
            let mut event = Vec::new();
            let kind = generator.next_into(&mut event);
            (event, kind)
        })
        .collect()
}

/// The broker's `host:port`, checked to accept connections.
fn broker() -> String {
    let addr = std::env::var("STOREPULSE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "no Kafka-protocol broker at {addr}: start one with `./deploy/kafka.sh start`, \
         or set STOREPULSE_TEST_KAFKA=host:port"
    );
    addr
}

fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("sim{}-{nanos}-{name}", std::process::id())
}

fn stores_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv")
}

/// A multiset of byte strings.
fn bag<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> BTreeMap<&'a [u8], usize> {
    let mut bag = BTreeMap::new();
    for item in items {
        *bag.entry(item).or_insert(0) += 1;
    }
    bag
}

fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

/// The `store_id` a reader can get out of an event, if any.
fn readable_store(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value.get("store_id")?.as_str().map(str::to_owned)
}

/// Every record of `topic`: (partition, key, value), each partition read
/// to the end the broker's Fetch answers report.
fn read_topic(config: &KafkaConfig, topic: &str) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let partitions = storepulse_kafka::topics::partition_count(config, topic).unwrap();
    let consumer: BaseConsumer =
        storepulse_kafka::client::consumer(config, "simulate-test", &format!("{topic}-check"))
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut at_end = BTreeSet::new();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(message)) => records.push((
                message.partition() as u32,
                message.key().unwrap_or_default().to_vec(),
                message.payload().unwrap_or_default().to_vec(),
            )),
        }
    }
    records
}

#[test]
fn events_land_in_their_store_partition_and_acked_out_lists_the_valid_ones() {
    let Run {
        report,
        args,
        config,
        topic,
        dir: _dir,
    } = simulate("out");
    assert_eq!(report.mode, "kafka");
    assert_eq!(report.sent, EVENTS);
    assert_eq!(report.acknowledged, EVENTS);
    assert!(report.generated.malformed > 0 && report.generated.duplicates > 0);
    let latency = report.produce_latency.as_ref().expect("produce latency");
    assert_eq!(latency.requests, EVENTS);
    assert!(latency.p50_ms <= latency.p99_ms);
    assert!(report.ingest_latency.is_none());
    let offline = offline(&args);

    // The topic holds exactly the generated events, malformed ones included.
    let partitions = storepulse_kafka::topics::partition_count(&config, &topic).unwrap();
    let records = read_topic(&config, &topic);
    assert_eq!(records.len() as u64, report.acknowledged);
    assert_eq!(
        bag(records.iter().map(|r| r.2.as_slice())),
        bag(offline.iter().map(|(e, _)| e.as_slice())),
    );

    // Each record sits in its store's partition, keyed by the store.
    let mut unreadable = 0;
    for (partition, key, payload) in &records {
        let text = String::from_utf8_lossy(payload);
        match readable_store(payload) {
            Some(store) => {
                assert_eq!(key, store.as_bytes(), "key of {text}");
                assert_eq!(
                    *partition,
                    partition_for(store.as_bytes(), partitions),
                    "partition of {text}"
                );
            }
            None => {
                unreadable += 1;
                assert!(key.is_empty(), "key of {text}");
                assert_eq!(*partition, 0, "partition of {text}");
            }
        }
    }
    assert!(unreadable > 0, "some malformed events hide their store");
    let used: BTreeSet<u32> = records.iter().map(|r| r.0).collect();
    assert!(used.len() > 1, "stores spread over partitions: {used:?}");

    // --acked-out: every acknowledged event but the malformed ones.
    let acked = std::fs::read(args.acked_out.as_ref().unwrap()).unwrap();
    let acked = lines(&acked);
    assert_eq!(
        acked.len() as u64,
        report.acknowledged - report.generated.malformed
    );
    assert_eq!(
        bag(acked),
        bag(offline
            .iter()
            .filter(|(_, kind)| kind.is_valid())
            .map(|(e, _)| e.as_slice()))
    );
}

#[test]
fn dump_reads_back_every_acknowledged_event() {
    let run = simulate("dump");
    let dumped = run.dir.path().join("events.ndjson");
    let summary =
        storepulse_kafka::dump::topic_to_ndjson(&run.config, &run.topic, &dumped).unwrap();
    assert_eq!(
        summary.records, run.report.acknowledged,
        "dump::topic_to_ndjson read {} of the {} acknowledged records of {}. It stops \
         each partition at the end ListOffsets reports; Tansu 0.6's memory storage \
         answers the last batch's base offset + 1 there, not its last offset + 1 \
         (tansu-storage dynostore.rs list_offsets), so a batch of many records is \
         cut to its first one",
        summary.records, run.report.acknowledged, run.topic
    );
    let dumped = std::fs::read(&dumped).unwrap();
    assert_eq!(
        bag(lines(&dumped)),
        bag(offline(&run.args).iter().map(|(e, _)| e.as_slice())),
    );
}
