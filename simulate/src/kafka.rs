//! Kafka output: events produced straight to `<prefix>.events`, as a POS
//! system producing directly to the cluster would (no HTTP ingest between).
//!
//! Protocol: one record per event, the event's bytes unchanged as the value,
//! its `store_id` as the key, and the partition chosen explicitly with
//! [`partition_for`] (Kafka's murmur2, as the Java client and the
//! processors compute it), so every store's events land in the partition
//! whose processor owns that store. The producer is StorePulse's
//! (`storepulse_kafka::client::producer`): idempotent, `acks=all`, LZ4,
//! 5 ms linger, with a message timeout of [`MESSAGE_TIMEOUT_MS`], and the
//! `[kafka]` section of `--config` (`kafka.client` properties such as
//! security, `compression`, `idempotence`; `--kafka` and `--topic-prefix`
//! give the brokers and the prefix). Missing
//! topics are created first (`storepulse_kafka::topics::ensure`, which also
//! gives the partition count).
//!
//! Malformed events are produced too: the broker does not validate, the
//! processors must reject them to the dead-letter topic. Those whose
//! `store_id` cannot be read (broken JSON, no `store_id`, not a string) get
//! an empty key and partition 0.
//!
//! Acknowledgements: events are produced in batches of `--batch`; a small
//! task per batch awaits the batch's delivery reports (one task per event
//! cost a thread wake-up per event, a fifth of the CPU) and hands them,
//! once all are in, to one collector, batches in the order they complete,
//! as the HTTP output logs a batch when its answer arrives. The collector
//! counts them, samples the produce latency (enqueue to acknowledgement as
//! the batch's task sees it; a uniform sample of at most
//! [`LATENCY_SAMPLES`] events) and, with `--acked-out`, appends each
//! acknowledged event as a line, flushing whenever no batch is waiting.
//! Malformed events are left out of that file, as the HTTP ingest leaves
//! out what it rejects: the file is what `storepulse replay` turns into the
//! expected state. At most [`MAX_IN_FLIGHT`] events wait for
//! acknowledgement at once.
//!
//! Start-up: librdkafka's idempotent producer gets its producer id on a
//! 500 ms timer after it is created, so the events of a run's first half
//! second wait for it (the generator fills up to [`MAX_IN_FLIGHT`] events
//! meanwhile); in a short run that shows in the latency percentiles.
//!
//! Limits: librdkafka retries a broker that is down or slow by itself, up
//! to the message timeout; a delivery that fails after that stops the run
//! with [`SimulateError::Delivery`] once the events in flight are settled.
//! Duplicates are re-sent byte for byte with the same key, as a POS
//! retrying would; the processors drop them by `event_id`.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde::Deserialize;
use storepulse_kafka::partitioner::partition_for;
use storepulse_kafka::{KafkaConfig, Topics};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::args::SimulateArgs;
use crate::error::SimulateError;
use crate::generator::{Emitted, Generator};
use crate::pacing::{until, wait_turn, TokenBucket};
use crate::progress::Counters;

/// librdkafka's `client.id` for the simulator's producer.
pub const CLIENT_ID: &str = "storepulse-simulate";
/// How long librdkafka keeps retrying an event before it reports it failed.
pub const MESSAGE_TIMEOUT_MS: u64 = 30_000;
/// Most events produced and not yet acknowledged. Below the producer's
/// queue (`queue.buffering.max.messages` = 200,000), so a full queue is
/// rare; and at 30-50 ms per acknowledgement it still allows over a
/// million events a second.
pub const MAX_IN_FLIGHT: usize = 50_000;
/// Produce latencies kept for the report's percentiles (4 MiB); beyond
/// that a uniform sample (reservoir sampling).
pub const LATENCY_SAMPLES: usize = 1 << 20;
/// Wait before producing again when librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(5);
/// Batch reports taken from the collector's channel at once.
const REPORTS_AT_ONCE: usize = 64;

/// An event handed to the producer, waiting for its delivery report.
struct Pending {
    delivery: DeliveryFuture,
    sent_at: std::time::Instant,
    /// The event, when it goes to `--acked-out` once acknowledged.
    line: Option<Vec<u8>>,
}

/// One event's delivery report.
struct Delivered {
    /// `Err` holds librdkafka's reason.
    result: Result<(), String>,
    latency: Duration,
    line: Option<Vec<u8>>,
}

/// A batch's delivery reports, on their way to the collector.
struct BatchReport {
    events: Vec<Delivered>,
    /// The batch's in-flight permits, released once the collector has
    /// booked the reports.
    _permits: OwnedSemaphorePermit,
}

impl Pending {
    async fn settle(self) -> Delivered {
        let result = match self.delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((error, _))) => Err(error.to_string()),
            Err(_) => Err("producer closed before the delivery report".to_owned()),
        };
        Delivered {
            result,
            latency: self.sent_at.elapsed(),
            line: self.line,
        }
    }
}

/// The settings the producer uses: the `[kafka]` section of the
/// configuration (librdkafka properties under `kafka.client`, such as
/// security; compression; idempotence) with the brokers and topic prefix
/// of the command line.
fn producer_settings(settings: &KafkaConfig, brokers: &str, topic_prefix: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_owned(),
        topic_prefix: topic_prefix.to_owned(),
        ..settings.clone()
    }
}

/// Runs the Kafka output until the limits or `shutdown`; returns the
/// generator for its statistics.
///
/// # Errors
/// `--acked-out` cannot be written, the topics cannot be created or
/// described (brokers unreachable), librdkafka refuses the settings, or
/// an event is not acknowledged within [`MESSAGE_TIMEOUT_MS`]. The events
/// in flight are settled first.
pub(crate) async fn run(
    args: &SimulateArgs,
    brokers: &str,
    settings: &KafkaConfig,
    mut generator: Generator,
    counters: Arc<Counters>,
    started: Instant,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Generator, SimulateError> {
    tokio::pin!(shutdown);
    let config = producer_settings(settings, brokers, &args.topic_prefix);
    let kafka_error = |source| SimulateError::Kafka {
        brokers: brokers.to_owned(),
        source,
    };
    // Open the acknowledgement file first: a bad path fails before any
    // connection is made.
    let acked = args.acked_out.as_deref().map(AckFile::create).transpose()?;
    let topics = Topics::new(&config.topic_prefix);
    let partitions = tokio::select! {
        biased;
        _ = &mut shutdown => return Ok(generator),
        ensured = storepulse_kafka::topics::ensure(&config, &topics) => {
            ensured.map_err(kafka_error)?
        }
    };
    // Created after the topics, not before: the idempotent producer asks for
    // its producer id on a 500 ms timer, and only of a broker it is already
    // connected to, which happens once the first events are queued.
    let producer: FutureProducer =
        storepulse_kafka::client::producer(&config, CLIENT_ID, MESSAGE_TIMEOUT_MS)
            .create()
            .map_err(|source| {
                kafka_error(storepulse_kafka::KafkaError::Client {
                    operation: "simulate producer",
                    source,
                })
            })?;
    let topic = topics.events;

    let failed = Arc::new(AtomicBool::new(false));
    let (reports, inbox) = mpsc::unbounded_channel::<BatchReport>();
    let collector = tokio::spawn(collect(
        inbox,
        acked,
        counters.clone(),
        failed.clone(),
        topic.clone(),
        args.seed,
    ));

    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let batch_size = args.effective_batch();
    let mut bucket = TokenBucket::new(args.rate, batch_size);
    let deadline = args.duration().map(|d| started + d);
    let mut remaining = args.events.unwrap_or(u64::MAX);
    let keep_lines = args.acked_out.is_some();
    let mut event = Vec::with_capacity(1024);
    let mut failure: Option<SimulateError> = None;

    tracing::info!(%topic, partitions, rate = args.rate, batch = batch_size, "simulate: producing to kafka");
    'produce: while remaining > 0 && !failed.load(Ordering::Relaxed) {
        let n = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(batch_size);
        if !wait_turn(&mut bucket, n, started, deadline, &mut shutdown).await {
            break 'produce;
        }
        let permits = tokio::select! {
            biased;
            _ = &mut shutdown => break 'produce,
            _ = until(deadline) => break 'produce,
            // `n` is at most `--batch` (<= 100,000), far below u32::MAX.
            permits = in_flight.clone().acquire_many_owned(n as u32) => match permits {
                Ok(permits) => permits,
                Err(_) => break 'produce,
            },
        };
        let mut pending = Vec::with_capacity(n);
        'batch: for _ in 0..n {
            event.clear();
            let kind = generator.next_into(&mut event);
            let key = store_id(&event, kind);
            let (key, partition): (&[u8], u32) = match &key {
                Some(id) => (id.as_bytes(), partition_for(id.as_bytes(), partitions)),
                None => (b"", 0),
            };
            let mut record = FutureRecord::to(&topic)
                .key(key)
                .payload(&event)
                // A partition index is < 10,000 (the topic's count).
                .partition(partition as i32);
            let sent_at = std::time::Instant::now();
            let delivery = loop {
                match producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(QUEUE_FULL_WAIT).await;
                    }
                    Err((error, _)) => {
                        failure = Some(SimulateError::Delivery {
                            topic: topic.clone(),
                            detail: error.to_string(),
                        });
                        break 'batch;
                    }
                }
            };
            remaining -= 1;
            pending.push(Pending {
                delivery,
                sent_at,
                line: (keep_lines && kind.is_valid()).then(|| event.clone()),
            });
        }
        Counters::add(&counters.sent, pending.len() as u64);
        let reports = reports.clone();
        tokio::spawn(async move {
            let mut events = Vec::with_capacity(pending.len());
            for p in pending {
                events.push(p.settle().await);
            }
            // The collector is gone only when it failed; its error is reported.
            let _ = reports.send(BatchReport {
                events,
                _permits: permits,
            });
        });
        if failure.is_some() {
            break;
        }
    }
    drop(reports);
    let collected = collector
        .await
        .map_err(|join| SimulateError::Client(format!("acknowledgement task failed: {join}")))
        .and_then(|collected| collected);
    match (failure, collected) {
        (Some(error), _) | (None, Err(error)) => {
            tracing::error!(%error, "simulate: stopping");
            Err(error)
        }
        (None, Ok(())) => Ok(generator),
    }
}

/// Books delivery reports until every sender is done; returns the first
/// failure (a delivery or the acknowledgement file), after which the
/// producing loop stops (`failed`).
async fn collect(
    mut inbox: mpsc::UnboundedReceiver<BatchReport>,
    mut acked: Option<AckFile>,
    counters: Arc<Counters>,
    failed: Arc<AtomicBool>,
    topic: String,
    seed: u64,
) -> Result<(), SimulateError> {
    let mut latencies = Reservoir::new(LATENCY_SAMPLES, seed);
    let mut failure: Option<SimulateError> = None;
    let mut batch = Vec::with_capacity(REPORTS_AT_ONCE);
    while inbox.recv_many(&mut batch, REPORTS_AT_ONCE).await > 0 {
        let mut acknowledged = 0;
        for done in batch.drain(..) {
            for report in done.events {
                match report.result {
                    Ok(()) => {
                        acknowledged += 1;
                        latencies.record(report.latency);
                        if let (Some(file), Some(line), None) = (&mut acked, &report.line, &failure)
                        {
                            if let Err(error) = file.append(line) {
                                failed.store(true, Ordering::Relaxed);
                                failure = Some(error);
                            }
                        }
                    }
                    Err(detail) => {
                        if failure.is_none() {
                            tracing::error!(%topic, %detail, "event not acknowledged");
                            failed.store(true, Ordering::Relaxed);
                            failure = Some(SimulateError::Delivery {
                                topic: topic.clone(),
                                detail,
                            });
                        }
                    }
                }
            }
            // `done`'s permits are released here, once its events are booked.
        }
        Counters::add(&counters.acknowledged, acknowledged);
        if let (Some(file), None) = (&mut acked, &failure) {
            if let Err(error) = file.flush() {
                failed.store(true, Ordering::Relaxed);
                failure = Some(error);
            }
        }
    }
    counters
        .latencies_us
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend(latencies.samples);
    failure.map_or(Ok(()), Err)
}

/// The `--acked-out` file.
struct AckFile {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl AckFile {
    fn create(path: &Path) -> Result<Self, SimulateError> {
        let file = File::create(path).map_err(|source| SimulateError::Output {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            writer: BufWriter::with_capacity(1 << 20, file),
        })
    }

    fn append(&mut self, line: &[u8]) -> Result<(), SimulateError> {
        self.writer
            .write_all(line)
            .and_then(|()| self.writer.write_all(b"\n"))
            .map_err(|source| self.error(source))
    }

    fn flush(&mut self) -> Result<(), SimulateError> {
        self.writer.flush().map_err(|source| self.error(source))
    }

    fn error(&self, source: std::io::Error) -> SimulateError {
        SimulateError::Output {
            path: self.path.clone(),
            source,
        }
    }
}

/// Produce latencies in microseconds: all of them up to the capacity, then
/// a uniform sample of that size (Algorithm R).
struct Reservoir {
    samples: Vec<u32>,
    capacity: usize,
    seen: u64,
    rng: StdRng,
}

impl Reservoir {
    fn new(capacity: usize, seed: u64) -> Self {
        Self {
            samples: Vec::new(),
            capacity: capacity.max(1),
            seen: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn record(&mut self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.seen += 1;
        if self.samples.len() < self.capacity {
            self.samples.push(us);
        } else {
            let slot = self.rng.gen_range(0..self.seen);
            if let Some(kept) = usize::try_from(slot)
                .ok()
                .and_then(|slot| self.samples.get_mut(slot))
            {
                *kept = us;
            }
        }
    }
}

/// The `store_id` of an event, to key and partition it by; `None` when it
/// cannot be read (broken JSON, no `store_id`, not a string).
fn store_id(event: &[u8], kind: Emitted) -> Option<Cow<'_, str>> {
    if kind.is_valid() {
        if let Some(id) = scan_store_id(event) {
            return Some(Cow::Borrowed(id));
        }
    }
    parse_store_id(event)
}

/// The fast path for the generator's own valid events: the value after the
/// first `"store_id":"`. Safe for those only: the writer (`wire`) puts
/// `store_id` right after `v`, `event_id`, `event_type` and `occurred_at`,
/// none of which can hold a quote, so the first match is the top-level
/// field. A value with an escape is left to [`parse_store_id`].
fn scan_store_id(event: &[u8]) -> Option<&str> {
    const FIELD: &[u8] = b"\"store_id\":\"";
    let start = event.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let rest = &event[start..];
    let len = rest.iter().position(|&b| b == b'"')?;
    let value = &rest[..len];
    if value.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(value).ok()
}

/// The `store_id` of any JSON object, read properly (escapes, any key order).
fn parse_store_id(event: &[u8]) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        store_id: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Probe<'_>>(event).ok()?.store_id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::GeneratorConfig;
    use storepulse_core::StoreMaster;

    #[test]
    fn the_producer_keeps_the_configured_settings_and_takes_brokers_and_prefix_from_the_flags() {
        let mut configured = KafkaConfig {
            brokers: "configured:9092".into(),
            topic_prefix: "configured".into(),
            compression: "zstd".into(),
            idempotence: false,
            ..KafkaConfig::default()
        };
        configured
            .client
            .insert("security.protocol".into(), "SASL_SSL".into());
        let used = producer_settings(&configured, "flag:9092", "flagged");
        assert_eq!(used.brokers, "flag:9092");
        assert_eq!(used.topic_prefix, "flagged");
        assert_eq!(used.compression, "zstd");
        assert!(!used.idempotence);
        assert_eq!(
            used.client.get("security.protocol").map(String::as_str),
            Some("SASL_SSL")
        );
    }

    #[test]
    fn store_id_paths_agree_on_generated_events() {
        let stores = Arc::new(
            StoreMaster::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv"))
                .unwrap(),
        );
        let cfg = GeneratorConfig {
            malformed_share: 0.2,
            duplicate_share: 0.05,
            ..GeneratorConfig::default()
        };
        let mut generator = Generator::new(cfg, stores.clone()).unwrap();
        let (mut valid, mut unreadable) = (0, 0);
        for _ in 0..20_000 {
            let mut event = Vec::new();
            let kind = generator.next_into(&mut event);
            let fast = store_id(&event, kind);
            assert_eq!(
                fast.as_deref(),
                parse_store_id(&event).as_deref(),
                "{}",
                String::from_utf8_lossy(&event)
            );
            if kind.is_valid() {
                valid += 1;
                let id = scan_store_id(&event).expect("a valid event has a plain store_id");
                assert!(stores.lookup(id).is_some(), "{id}");
            } else if fast.is_none() {
                unreadable += 1;
            }
        }
        assert!(valid > 10_000);
        assert!(unreadable > 0, "some malformed events hide their store");
    }

    #[test]
    fn store_id_reads_escapes_and_refuses_non_strings() {
        let read = |s: &str| parse_store_id(s.as_bytes()).map(Cow::into_owned);
        assert_eq!(
            read(r#"{"store_id":"KM\u002d001"}"#).as_deref(),
            Some("KM-001")
        );
        assert_eq!(scan_store_id(br#"{"store_id":"KM\u002d001"}"#), None);
        assert_eq!(read(r#"{"store_id":7}"#), None);
        assert_eq!(read(r#"{"event_id":"x"}"#), None);
        assert_eq!(read(r#"{"store_id":"KM-001""#), None);
        assert_eq!(read(r#"[1]"#), None);
    }

    #[test]
    fn reservoir_keeps_all_then_a_sample() {
        let mut r = Reservoir::new(100, 1);
        for us in 0..100 {
            r.record(Duration::from_micros(us));
        }
        assert_eq!(r.samples, (0..100).collect::<Vec<u32>>());
        for _ in 0..10_000 {
            r.record(Duration::from_micros(1_000_000));
        }
        assert_eq!(r.samples.len(), 100);
        // 100 of 10,100 values were small: about one stays.
        assert!(r.samples.iter().filter(|&&us| us < 100).count() < 10);
    }
}
