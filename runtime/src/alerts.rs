//! The book of recent alerts: bounded, newest last, de-duplicated by id.
//!
//! Alert ids are deterministic, so when a restart replays the log tail after
//! a checkpoint and a processor raises an alert again, the book keeps one.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use storepulse_processors::inventory::StockAlert;

/// An alert as kept and served (`kind` family `stock` for now; members and
/// fraud add theirs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// `stock`, later `fraud`, `points`.
    pub family: String,
    pub alert: StockAlert,
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
        if !self.ids.insert(record.alert.alert_id.clone()) {
            return false;
        }
        if self.alerts.len() >= self.capacity {
            if let Some(old) = self.alerts.pop_front() {
                self.ids.remove(&old.alert.alert_id);
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

    /// Number of alerts held.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }
}
