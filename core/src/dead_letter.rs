//! The dead-letter record: an event that was not applied, unchanged, with
//! the reason and the time it was rejected (EVENTS.md "Rejection").
//!
//! Written by ingest (contract violations, store not bound to the key),
//! by the runtime (events a processor cannot apply, or bad records read from
//! a log that emitters write to directly) and by `replay`. The embedded
//! mode keeps them in a durable log; Kafka mode sends them to
//! `storepulse.dlq`.

use serde::{Deserialize, Serialize};

/// Where in the pipeline an event was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectedAt {
    /// At HTTP ingest, before the event log.
    Ingest,
    /// By the processing runtime, after the event log.
    Processor,
}

/// One rejected event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Wall-clock time of the rejection (RFC 3339, China time).
    pub rejected_at: String,
    pub stage: RejectedAt,
    /// `field: rule`.
    pub reason: String,
    /// The event's id, when it had a readable one.
    pub event_id: Option<String>,
    /// Partition of the events topic it was read from (Kafka mode).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub partition: Option<u32>,
    /// Offset in the event log (processor stage); with `partition`, the
    /// deterministic id of a processor-stage dead letter.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<u64>,
    /// The event exactly as received (lossy UTF-8 if it was not UTF-8).
    pub raw: String,
}

impl DeadLetter {
    /// A record for `raw`, rejected now.
    pub fn new(stage: RejectedAt, reason: String, event_id: Option<String>, raw: &[u8]) -> Self {
        Self {
            rejected_at: crate::time::format_china(crate::time::now()),
            stage,
            reason,
            event_id,
            partition: None,
            offset: None,
            raw: String::from_utf8_lossy(raw).into_owned(),
        }
    }
}
