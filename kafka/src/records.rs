//! The records StorePulse writes to its output topics (JSON, so that any
//! client can read them), and the headers it sets.
//!
//! Every output carries a deterministic identity, so a consumer can drop the
//! copies that a processor restart re-sends (see `process` for when that
//! happens):
//! - a stock record's identity is its key and `source` (the input event
//!   that last changed it); on the compacted topic the newest per key wins,
//!   and a reader keeps the greatest `source.offset` per key;
//! - an alert's is its `alert_id` (also the message key);
//! - a processor-stage dead letter's is `(partition, offset)` of the input
//!   (header `storepulse.source`).

use serde::{Deserialize, Serialize};
use storepulse_core::time::rfc3339;
use storepulse_core::Ts;
use storepulse_processors::inventory::StockSnapshot;

/// Header with a dead letter's reason (`field: rule`).
pub const HEADER_REASON: &str = "storepulse.reason";
/// Header with the pipeline stage that rejected it (`ingest`, `processor`).
pub const HEADER_STAGE: &str = "storepulse.stage";
/// Header naming the input a processor-stage output came from:
/// `<topic>/<partition>/<offset>`.
pub const HEADER_SOURCE: &str = "storepulse.source";

/// Where in the events topic an input sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceRef {
    pub partition: u32,
    pub offset: u64,
}

/// The value of a `<prefix>.stock` message (key `store_id/sku`): the
/// stock of one (store, SKU) after the input event `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRecord {
    pub store_id: String,
    pub sku: String,
    pub on_hand: i64,
    /// Event time of the latest change.
    #[serde(with = "rfc3339")]
    pub updated_at: Ts,
    /// China day number (days since 1970-01-01) of the newest slot of `sold`.
    pub sold_day: i32,
    /// Units sold per China day, a ring indexed by `day % 14` (velocity).
    pub sold: [u16; 14],
    /// The event-time clock of the partition when written (velocity is
    /// computed against it).
    #[serde(with = "rfc3339")]
    pub clock: Ts,
    /// The input event that last changed this stock.
    pub source: SourceRef,
    /// Broker timestamp (ms) of that input event: when it entered Kafka.
    pub ingested_at_ms: i64,
}

impl StockRecord {
    /// The message key.
    pub fn key(store_id: &str, sku: &str) -> String {
        format!("{store_id}/{sku}")
    }

    /// The snapshot a read model puts.
    pub fn snapshot(&self) -> StockSnapshot {
        StockSnapshot {
            on_hand: self.on_hand,
            updated_at: self.updated_at,
            sold_day: self.sold_day,
            sold: self.sold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_record_round_trips_as_json() {
        let record = StockRecord {
            store_id: "KM-001".into(),
            sku: "SKU-1".into(),
            on_hand: -3,
            updated_at: 1_764_000_000_000_000_000,
            sold_day: 20_416,
            sold: [1; 14],
            clock: 1_764_000_000_000_000_000,
            source: SourceRef {
                partition: 2,
                offset: 77,
            },
            ingested_at_ms: 1_764_000_000_123,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("\"updated_at\":\"2025-"), "{json}");
        let back: StockRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
    }
}

/// A person of the member read model (`<p>.members`): the processor's
/// whole record of it, with the event-time clock of its partition.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MemberSnapshot {
    pub person: storepulse_processors::members::Person,
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub clock: storepulse_core::Ts,
}

/// A member partition's settlement table (`<p>.members`, key `p<N>`):
/// rows of (China day, owing franchisee index, owed franchisee index,
/// points).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SettlementSnapshot {
    pub partition: u32,
    pub rows: Vec<(i32, u16, u16, i64)>,
}

impl SettlementSnapshot {
    /// The rows of a table.
    pub fn of(partition: u32, table: &storepulse_processors::members::ledger::Settlement) -> Self {
        Self {
            partition,
            rows: table
                .owed
                .iter()
                .map(|(&(d, a, b), &p)| (d, a, b, p))
                .collect(),
        }
    }

    /// The table of the rows.
    pub fn table(&self) -> storepulse_processors::members::ledger::Settlement {
        storepulse_processors::members::ledger::Settlement {
            owed: self
                .rows
                .iter()
                .map(|&(d, a, b, p)| ((d, a, b), p))
                .collect(),
        }
    }
}

/// Header naming the kind of a `<p>.members` record that is not a person.
pub const HEADER_KIND: &str = "storepulse.kind";

#[cfg(test)]
mod member_record_tests {
    use super::SettlementSnapshot;
    use storepulse_processors::members::ledger::Settlement;

    #[test]
    fn settlement_tables_survive_json() {
        let mut table = Settlement::default();
        table.owed.insert((20_000, 1, 3), 120);
        table.owed.insert((20_001, 0, 2), 5);
        let json = serde_json::to_vec(&SettlementSnapshot::of(4, &table)).unwrap();
        let back: SettlementSnapshot = serde_json::from_slice(&json).unwrap();
        assert_eq!((back.partition, back.table()), (4, table));
    }
}
