//! Consumer lag from librdkafka's statistics, without asking the broker.
//!
//! The lag of an owned partition is its high watermark minus the next
//! offset the stage will process. A stage used to ask the broker for each
//! owned partition's watermarks (`ListOffsets`, one round trip per
//! partition, every 2 s) on its own thread, between two batches: on a busy
//! broker those round trips are a pause in processing, and on Tansu 0.6's
//! memory storage, which lists a partition's batches to answer, they grow
//! longer the longer the broker runs.
//!
//! librdkafka already learns every fetched partition's high watermark from
//! each fetch response and reports it in its statistics
//! (`statistics.interval.ms`, JSON: `topics.<name>.partitions.<n>.hi_offset`,
//! see librdkafka's STATISTICS.md). [`HighWatermarks`] keeps the latest of
//! them for one topic; the stage reads them when it updates its lag gauges.
//! The statistics arrive through the consumer's own poll, on the stage's
//! thread, so nothing else waits for them.
//!
//! Freshness: a report is at most `STATISTICS_INTERVAL_MS` old, and its
//! watermark is that of the partition's last fetch. A stage that is behind
//! keeps fetching as it drains librdkafka's prefetch queue (a partition is
//! fetched again once its queue is under `queued.min.messages`), so its
//! watermark stays current and ingest's back-pressure in `run`
//! (`ingest.max_lag_records`, on the sum of these gauges) still sees the
//! backlog. With the broker away no fetch answers and the gauges keep
//! their last values, as they did when the stage asked the broker itself.
//!
//! The same reports say where a stage's input waits ([`ClientReport`]):
//! the round trip of the consumer's requests to the brokers (mostly
//! fetches) and the records fetched but not yet taken by the stage
//! (`fetchq_cnt`). A hop that grows while the fetch queue stays near zero
//! is the broker's; a queue that grows is the stage's own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Deserialize;

/// How often librdkafka reports its statistics to a stage's consumer, in
/// milliseconds (the lag gauges follow them).
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// The newest high watermark per partition of one topic, as librdkafka's
/// statistics reported them.
#[derive(Debug)]
pub struct HighWatermarks {
    topic: String,
    by_partition: Mutex<BTreeMap<i32, i64>>,
}

/// What one statistics report says about where the input waits.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientReport {
    /// The median and 99th percentile round trip, in seconds, of the
    /// requests to the slowest broker over the report's window (librdkafka's
    /// `rtt`); `None` when no request to a broker completed in the window.
    pub broker_rtt: Option<(f64, f64)>,
    /// Records fetched and waiting for the stage in librdkafka's queue,
    /// summed over the topic's partitions.
    pub fetch_queue: i64,
}

/// The part of librdkafka's statistics JSON read here (serde skips the rest).
#[derive(Deserialize)]
struct Statistics {
    #[serde(default)]
    topics: HashMap<String, TopicStatistics>,
    #[serde(default)]
    brokers: HashMap<String, BrokerStatistics>,
}

#[derive(Deserialize)]
struct BrokerStatistics {
    /// -1 for the bootstrap entries, which carry no requests of their own.
    #[serde(default = "unknown_node")]
    nodeid: i32,
    #[serde(default)]
    rtt: Window,
}

fn unknown_node() -> i32 {
    -1
}

/// One of librdkafka's rolling windows, in microseconds.
#[derive(Deserialize, Default)]
struct Window {
    #[serde(default)]
    cnt: i64,
    #[serde(default)]
    p50: i64,
    #[serde(default)]
    p99: i64,
}

/// Microseconds to seconds.
fn seconds(micros: i64) -> f64 {
    micros as f64 / 1e6
}

#[derive(Deserialize)]
struct TopicStatistics {
    #[serde(default)]
    partitions: HashMap<String, PartitionStatistics>,
}

#[derive(Deserialize)]
struct PartitionStatistics {
    partition: i32,
    hi_offset: i64,
    #[serde(default)]
    fetchq_cnt: i64,
}

impl HighWatermarks {
    /// Watermarks of `topic`'s partitions; none known yet.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            by_partition: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes the watermarks of this topic's partitions from one statistics
    /// report (librdkafka's JSON) and returns what else it says about the
    /// input. librdkafka's internal "unassigned" partition (-1) and
    /// partitions whose watermark it does not know yet (negative offsets)
    /// are skipped. A report that does not parse changes nothing and says
    /// why.
    ///
    /// # Errors
    /// The JSON does not have librdkafka's statistics shape.
    pub fn record(&self, statistics_json: &[u8]) -> Result<ClientReport, serde_json::Error> {
        let mut statistics: Statistics = serde_json::from_slice(statistics_json)?;
        let broker_rtt = statistics
            .brokers
            .values()
            .filter(|b| b.nodeid >= 0 && b.rtt.cnt > 0)
            .map(|b| (b.rtt.p50, b.rtt.p99))
            .max_by_key(|(_, p99)| *p99)
            .map(|(p50, p99)| (seconds(p50), seconds(p99)));
        let mut report = ClientReport {
            broker_rtt,
            fetch_queue: 0,
        };
        let Some(topic) = statistics.topics.remove(&self.topic) else {
            return Ok(report);
        };
        let mut known = self
            .by_partition
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for partition in topic.partitions.values() {
            if partition.partition < 0 {
                continue;
            }
            report.fetch_queue += partition.fetchq_cnt.max(0);
            if partition.hi_offset >= 0 {
                known.insert(partition.partition, partition.hi_offset);
            }
        }
        Ok(report)
    }

    /// The lag of `partition` when the next offset to process is `next`:
    /// records the broker holds past it (never negative: the statistics
    /// may be older than the stage's position). `None` while its high
    /// watermark is not known.
    pub fn lag(&self, partition: i32, next: i64) -> Option<i64> {
        let known = self
            .by_partition
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known.get(&partition).map(|high| (high - next).max(0))
    }

    /// Forgets a partition (revoked: its lag is its next owner's to report).
    pub fn forget(&self, partition: i32) {
        self.by_partition
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statistics report in librdkafka's shape (trimmed: the real one has
    /// many more fields per partition, topic and broker).
    fn report(topic: &str, partitions: &[(i32, i64)]) -> Vec<u8> {
        let mut parts = serde_json::Map::new();
        for (partition, hi) in partitions {
            parts.insert(
                partition.to_string(),
                serde_json::json!({"partition": partition, "hi_offset": hi, "lo_offset": 0,
                    "next_offset": 3, "consumer_lag": -1, "fetch_state": "active"}),
            );
        }
        serde_json::to_vec(&serde_json::json!({
            "name": "storepulse-process#consumer-1", "type": "consumer", "ts": 1,
            "brokers": {"127.0.0.1:9092/1": {"name": "127.0.0.1:9092/1", "rtt": {"avg": 900}}},
            "topics": {topic: {"topic": topic, "partitions": parts}},
        }))
        .unwrap()
    }

    #[test]
    fn the_lag_is_the_reported_high_watermark_minus_the_next_offset() {
        let highs = HighWatermarks::new("sp.events");
        assert_eq!(highs.lag(0, 0), None, "nothing reported yet");
        highs
            .record(&report("sp.events", &[(0, 120), (1, 7), (-1, -1001)]))
            .unwrap();
        assert_eq!(highs.lag(0, 100), Some(20));
        assert_eq!(highs.lag(1, 7), Some(0));
        // The stage may be ahead of a report taken before its last fetch.
        assert_eq!(highs.lag(1, 9), Some(0));
        assert_eq!(highs.lag(-1, 0), None, "librdkafka's unassigned partition");
        // A newer report replaces what it names and keeps the rest.
        highs.record(&report("sp.events", &[(0, 150)])).unwrap();
        assert_eq!(highs.lag(0, 100), Some(50));
        assert_eq!(highs.lag(1, 5), Some(2));
    }

    #[test]
    fn other_topics_unknown_watermarks_and_revoked_partitions_are_not_reported() {
        let highs = HighWatermarks::new("sp.events");
        highs.record(&report("sp.fraud-rules", &[(0, 99)])).unwrap();
        assert_eq!(highs.lag(0, 0), None);
        // librdkafka reports -1001 (OFFSET_INVALID) before the first fetch.
        highs.record(&report("sp.events", &[(2, -1001)])).unwrap();
        assert_eq!(highs.lag(2, 0), None);
        highs.record(&report("sp.events", &[(2, 10)])).unwrap();
        highs.forget(2);
        assert_eq!(highs.lag(2, 0), None);
    }

    #[test]
    fn the_report_gives_the_slowest_brokers_round_trip_and_the_fetch_queue() {
        let highs = HighWatermarks::new("sp.events");
        let json = serde_json::json!({
            "brokers": {
                "127.0.0.1:9092/bootstrap": {"nodeid": -1,
                    "rtt": {"cnt": 3, "p50": 900_000, "p99": 9_000_000}},
                "a:9092/1": {"nodeid": 1, "rtt": {"cnt": 40, "p50": 12_000, "p99": 80_000}},
                "b:9092/2": {"nodeid": 2, "rtt": {"cnt": 35, "p50": 20_000, "p99": 150_000}},
                "c:9092/3": {"nodeid": 3, "rtt": {"cnt": 0, "p50": 0, "p99": 0}},
            },
            "topics": {"sp.events": {"partitions": {
                "0": {"partition": 0, "hi_offset": 10, "fetchq_cnt": 120},
                "1": {"partition": 1, "hi_offset": 5, "fetchq_cnt": 3},
                "-1": {"partition": -1, "hi_offset": -1, "fetchq_cnt": 7},
            }}},
        });
        let report = highs.record(&serde_json::to_vec(&json).unwrap()).unwrap();
        // The bootstrap entry and a broker with no request in the window
        // are left out; of the others, the slowest.
        assert_eq!(report.broker_rtt, Some((0.02, 0.15)));
        assert_eq!(report.fetch_queue, 123);
        // No request completed and no topic: nothing to say.
        let quiet = highs
            .record(br#"{"brokers": {"a:9092/1": {"nodeid": 1, "rtt": {"cnt": 0}}}}"#)
            .unwrap();
        assert_eq!(quiet, ClientReport::default());
    }

    #[test]
    fn a_report_of_another_shape_is_an_error_and_changes_nothing() {
        let highs = HighWatermarks::new("sp.events");
        highs.record(&report("sp.events", &[(0, 10)])).unwrap();
        assert!(highs.record(b"not json").is_err());
        assert!(highs
            .record(br#"{"topics": {"sp.events": {"partitions": {"0": {"partition": 0}}}}}"#)
            .is_err());
        assert_eq!(highs.lag(0, 4), Some(6));
        // No topics at all (a client that fetched nothing yet) is fine.
        highs.record(br#"{"name": "c", "ts": 1}"#).unwrap();
        assert_eq!(highs.lag(0, 4), Some(6));
    }
}
