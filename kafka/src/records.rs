//! The records StorePulse writes to its output topics (JSON, so that any
//! client can read them), and the headers it sets.
//!
//! Every output carries a deterministic identity, so a consumer can drop the
//! copies that a processor restart re-sends (see `process` for when that
//! happens):
//! - a stock record's identity is its key and `source` (the input event
//!   that last changed it); on the compacted topic the newest per key wins,
//!   and a reader keeps the greatest `source.offset` per key;
//! - an alert's is its `alert_id` (also the message key); `<p>.alerts`
//!   holds stock and points alerts ([`AlertRecord`]) and fraud alerts
//!   raised or withdrawn (the webhook bodies), told apart by
//!   [`AlertsTopicRecord::parse`];
//! - a processor-stage dead letter's is `(partition, offset)` of the input
//!   (header `storepulse.source`).

use serde::{Deserialize, Serialize};
use storepulse_core::time::rfc3339;
use storepulse_core::Ts;
use storepulse_processors::fraud::{AlertWithdrawn, FraudAlert};
use storepulse_processors::inventory::StockSnapshot;
use storepulse_runtime::alerts::AlertRecord;

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

impl MemberSnapshot {
    /// The JSON of a person's snapshot, without copying the person.
    pub fn encode(
        person: &storepulse_processors::members::Person,
        clock: storepulse_core::Ts,
    ) -> serde_json::Result<Vec<u8>> {
        #[derive(serde::Serialize)]
        struct Borrowed<'a> {
            person: &'a storepulse_processors::members::Person,
            #[serde(with = "storepulse_core::time::rfc3339")]
            clock: storepulse_core::Ts,
        }
        serde_json::to_vec(&Borrowed { person, clock })
    }
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

/// A record of `<p>.alerts`: a stock or points alert (an [`AlertRecord`],
/// `{"family":..,"alert":..}`), or a fraud alert raised or withdrawn
/// (`{"type":"alert.raised","rule":..,"alert":{..}}`,
/// `{"type":"alert.withdrawn","rule":..,"withdrawn":{..}}`, the same bodies
/// as the webhooks). Both are keyed by `alert_id`; on the compacted topic the
/// last record of a fraud alert id says whether it stands.
#[derive(Debug, Clone)]
pub enum AlertsTopicRecord {
    Alert(Box<AlertRecord>),
    Raised(Box<FraudAlert>),
    Withdrawn(Box<AlertWithdrawn>),
}

impl AlertsTopicRecord {
    /// Reads a record of either kind.
    ///
    /// # Errors
    /// Not JSON, or neither kind.
    pub fn parse(payload: &[u8]) -> Result<Self, serde_json::Error> {
        let mut value: serde_json::Value = serde_json::from_slice(payload)?;
        let kind = value
            .get("type")
            .and_then(|t| t.as_str())
            .map(str::to_owned);
        match kind.as_deref() {
            Some("alert.raised") => {
                let alert = value.get_mut("alert").map(serde_json::Value::take);
                serde_json::from_value(alert.unwrap_or_default()).map(|a| Self::Raised(Box::new(a)))
            }
            Some("alert.withdrawn") => {
                let w = value.get_mut("withdrawn").map(serde_json::Value::take);
                serde_json::from_value(w.unwrap_or_default()).map(|w| Self::Withdrawn(Box::new(w)))
            }
            _ => serde_json::from_value(value).map(|a| Self::Alert(Box::new(a))),
        }
    }
}

#[cfg(test)]
mod alerts_topic_tests {
    use super::AlertsTopicRecord;
    use storepulse_processors::fraud::{AlertWithdrawn, FraudAlert};
    use storepulse_runtime::driver::AlertNotice;

    #[test]
    fn fraud_records_are_told_apart_from_stock_alerts() {
        let alert = FraudAlert {
            alert_id: "large_single_purchase:00000000000000ab".into(),
            rule: "large_single_purchase".into(),
            key_kind: "order".into(),
            key: "o-1".into(),
            event_ids: vec!["e1".into()],
            order_ids: vec!["o-1".into()],
            stores: vec!["KM-001".into()],
            total_cents: 2_500_000,
            first_at: 1_764_000_000_000_000_000,
            last_at: 1_764_000_000_000_000_000,
        };
        let raised = AlertNotice::raised(&alert).body;
        match AlertsTopicRecord::parse(&raised).unwrap() {
            AlertsTopicRecord::Raised(a) => assert_eq!(*a, alert),
            other => panic!("{other:?}"),
        }
        let w = AlertWithdrawn {
            alert_id: alert.alert_id.clone(),
            rule: alert.rule.clone(),
            key: alert.key.clone(),
            superseded_by: vec![],
            as_of: alert.last_at,
        };
        match AlertsTopicRecord::parse(&AlertNotice::withdrawn(&w).body).unwrap() {
            AlertsTopicRecord::Withdrawn(back) => assert_eq!(*back, w),
            other => panic!("{other:?}"),
        }
        assert!(AlertsTopicRecord::parse(br#"{"type":"alert.raised"}"#).is_err());
        assert!(AlertsTopicRecord::parse(b"not json").is_err());
    }
}
