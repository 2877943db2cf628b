//! The book of recent alerts: bounded, newest last, de-duplicated by id.
//!
//! Alert ids are deterministic, so when a restart replays the log tail after
//! a checkpoint and a processor raises an alert again, the book keeps one.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use storepulse_processors::inventory::StockAlert;
use storepulse_processors::members::PointsOverdraftAlert;

/// An alert as kept and served: `family` is `stock` or `points` (fraud
/// adds its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub family: String,
    pub alert: Alert,
}

impl AlertRecord {
    /// The alert's deterministic id.
    pub fn alert_id(&self) -> &str {
        match &self.alert {
            Alert::Stock(a) => &a.alert_id,
            Alert::PointsOverdraft(a) => &a.alert_id,
        }
    }
}

/// The body of an alert.
///
/// In JSON (API, Kafka topic) it is the bare alert object, as before
/// points alerts existed (`{"alert_id": ..., "kind": ...}`); which kind it
/// is shows from its fields (`kind` for stock, `rule` for points). In
/// checkpoints (postcard, not self-describing) it is an ordinary tagged enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    Stock(StockAlert),
    PointsOverdraft(PointsOverdraftAlert),
}

#[derive(Serialize, Deserialize)]
enum TaggedAlert {
    Stock(StockAlert),
    PointsOverdraft(PointsOverdraftAlert),
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self {
                Alert::Stock(a) => a.serialize(s),
                Alert::PointsOverdraft(a) => a.serialize(s),
            }
        } else {
            match self.clone() {
                Alert::Stock(a) => TaggedAlert::Stock(a),
                Alert::PointsOverdraft(a) => TaggedAlert::PointsOverdraft(a),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Alert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let value = serde_json::Value::deserialize(d)?;
            if value.get("rule").is_some() {
                serde_json::from_value(value)
                    .map(Alert::PointsOverdraft)
                    .map_err(serde::de::Error::custom)
            } else {
                serde_json::from_value(value)
                    .map(Alert::Stock)
                    .map_err(serde::de::Error::custom)
            }
        } else {
            Ok(match TaggedAlert::deserialize(d)? {
                TaggedAlert::Stock(a) => Alert::Stock(a),
                TaggedAlert::PointsOverdraft(a) => Alert::PointsOverdraft(a),
            })
        }
    }
}

/// Recent alerts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AlertBook {
    capacity: usize,
    alerts: VecDeque<AlertRecord>,
    ids: HashSet<String>,
}

impl AlertBook {
    /// A book keeping the newest `capacity` alerts.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            alerts: VecDeque::new(),
            ids: HashSet::new(),
        }
    }

    /// Adds an alert; returns false when it was already in the book.
    pub fn push(&mut self, record: AlertRecord) -> bool {
        if !self.ids.insert(record.alert_id().to_string()) {
            return false;
        }
        if self.alerts.len() >= self.capacity {
            if let Some(old) = self.alerts.pop_front() {
                self.ids.remove(old.alert_id());
            }
        }
        self.alerts.push_back(record);
        true
    }

    /// The newest alerts first, filtered by family, at most `limit`.
    pub fn recent(&self, family: Option<&str>, limit: usize) -> Vec<AlertRecord> {
        self.alerts
            .iter()
            .rev()
            .filter(|a| family.is_none_or(|f| a.family == f))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The newest alerts first, filtered by family and by `keep`, at most
    /// `limit` (those `keep` refuses do not count).
    pub fn recent_filtered(
        &self,
        family: Option<&str>,
        limit: usize,
        keep: impl Fn(&AlertRecord) -> bool,
    ) -> Vec<AlertRecord> {
        self.alerts
            .iter()
            .rev()
            .filter(|a| family.is_none_or(|f| a.family == f) && keep(a))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Number of alerts held.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storepulse_processors::inventory::StockAlertKind;

    fn records() -> Vec<AlertRecord> {
        vec![
            AlertRecord {
                family: "stock".into(),
                alert: Alert::Stock(StockAlert {
                    alert_id: "oversold:KM-001:A:e1".into(),
                    kind: StockAlertKind::Oversold,
                    store_id: "KM-001".into(),
                    sku: "A".into(),
                    on_hand: -1,
                    event_id: "e1".into(),
                    occurred_at: 0,
                }),
            },
            AlertRecord {
                family: "points".into(),
                alert: Alert::PointsOverdraft(PointsOverdraftAlert {
                    alert_id: "points_overdraft:p1".into(),
                    rule: "points_overdraft".into(),
                    member_id: "M1".into(),
                    event_id: "p1".into(),
                    store_id: "KM-002".into(),
                    occurred_at: 0,
                    points: 80,
                    balance_after: -60,
                }),
            },
        ]
    }

    #[test]
    fn alerts_are_bare_objects_in_json_and_tagged_in_checkpoints() {
        for record in records() {
            let json = serde_json::to_value(&record).unwrap();
            assert_eq!(json["alert"]["alert_id"], record.alert_id());
            let back: AlertRecord = serde_json::from_value(json).unwrap();
            assert_eq!(back, record);
            let bytes = postcard::to_stdvec(&record).unwrap();
            let back: AlertRecord = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, record);
        }
        let mut book = AlertBook::new(10);
        for r in records() {
            assert!(book.push(r));
        }
        assert!(
            !book.push(records()[1].clone()),
            "de-duplicated by alert_id"
        );
        assert_eq!(book.recent(Some("points"), 10).len(), 1);
    }
}
