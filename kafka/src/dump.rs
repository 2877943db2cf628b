//! Reading a whole topic once, for `storepulse replay --from-topic`.
//!
//! Every partition is read from its start until the broker reports its end
//! (records produced while the dump runs may or may not be included), and
//! the records are
//! written as NDJSON ordered by broker timestamp, then partition and offset:
//! replay applies them with one processor, and that order keeps each
//! event's lateness what it was on the live path. The records are held in
//! memory before writing (about the topic's size); a topic larger than
//! memory is replayed from an archive file instead.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::info;

use crate::config::KafkaConfig;
use crate::error::{KafkaError, Result};

/// Consumer context that does not log the end-of-partition signals this
/// reader asks for as errors.
/// What a dump read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpSummary {
    pub partitions: u32,
    pub records: u64,
}

/// Writes every record of `topic` (values only, one per line) to `out`.
///
/// # Errors
/// The broker is unreachable, the topic does not exist, a record holds a
/// newline (not one JSON object), or `out` cannot be written.
pub fn topic_to_ndjson(config: &KafkaConfig, topic: &str, out: &Path) -> Result<DumpSummary> {
    let partitions = crate::topics::partition_count(config, topic)?;
    let group = format!("storepulse-replay-{}", std::process::id());
    let mut client = crate::client::consumer(config, "storepulse-replay", &group);
    // The end of a partition is where the broker says so in a fetch
    // (partition EOF), not the listed high watermark: Tansu 0.6 lists the
    // start of the last batch + 1 there.
    client.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<crate::client::ReadToEndContext> = client
        .create_with_context(crate::client::ReadToEndContext("replay consumer"))
        .map_err(KafkaError::client("replay consumer"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(KafkaError::client("assign"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(KafkaError::client("assign"))?;
    let mut records: Vec<(i64, i32, i64, Vec<u8>)> = Vec::new();
    let mut at_end = vec![false; partitions as usize];
    let mut last_progress = Instant::now();
    while at_end.iter().any(|done| !done) {
        let Some(polled) = consumer.poll(Duration::from_secs(1)) else {
            if last_progress.elapsed() > Duration::from_secs(60) {
                return Err(KafkaError::Timeout(60_000));
            }
            continue;
        };
        last_progress = Instant::now();
        let message = match polled {
            Ok(m) => m,
            Err(RdKafkaError::PartitionEOF(p)) => {
                if let Some(done) = at_end.get_mut(p as usize) {
                    *done = true;
                }
                continue;
            }
            Err(e) => return Err(KafkaError::client("read")(e)),
        };
        let p = message.partition();
        let payload = message.payload().unwrap_or_default();
        if payload.contains(&b'\n') {
            return Err(KafkaError::Topic {
                topic: topic.to_owned(),
                reason: format!(
                    "record {p}/{} spans several lines; replay reads one event per line",
                    message.offset()
                ),
            });
        }
        let ts = message.timestamp().to_millis().unwrap_or(0);
        records.push((ts, p, message.offset(), payload.to_vec()));
    }
    records.sort_unstable_by_key(|a| (a.0, a.1, a.2));
    let io = |source: std::io::Error| KafkaError::Config(format!("{}: {source}", out.display()));
    let mut writer = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    for (_, _, _, payload) in &records {
        writer.write_all(payload).map_err(io)?;
        writer.write_all(b"\n").map_err(io)?;
    }
    writer.flush().map_err(io)?;
    info!(
        topic,
        partitions,
        records = records.len(),
        "topic read for replay"
    );
    Ok(DumpSummary {
        partitions,
        records: records.len() as u64,
    })
}
