//! What the fraud processor emits: an alert raised, or an alert withdrawn
//! because a late sale (or a late alias link) changed which sales make up
//! the key's alerts.

use serde::{Deserialize, Serialize};
use storepulse_core::{Id, Ts};

/// An alert for the risk team (RULES.md "Fraud rules": its rule, its key,
/// the sales that make it fire, their stores, their total and time span).
///
/// `alert_id` is `<rule>:<16 hex>`, a hash of the rule and the alert's
/// event ids: the same sales give the same id whatever the arrival order,
/// and a copy re-emitted after a crash is recognisable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudAlert {
    pub alert_id: String,
    pub rule: String,
    pub key_kind: String,
    /// The member's canonical id, the payment account or the order id.
    pub key: Id,
    /// In event-time order.
    pub event_ids: Vec<Id>,
    /// Distinct, in the order of their first sale.
    pub order_ids: Vec<Id>,
    /// Distinct store ids, sorted.
    pub stores: Vec<String>,
    pub total_cents: u64,
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub first_at: Ts,
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub last_at: Ts,
}

/// An alert that no longer stands: a late sale or link made the key's
/// sales group differently (RULES.md: a sale takes part in at most one
/// alert of a rule and key). `superseded_by` lists the alerts raised in
/// the same re-evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertWithdrawn {
    pub alert_id: String,
    pub rule: String,
    pub key: Id,
    pub superseded_by: Vec<String>,
    /// The event-time clock when it was withdrawn.
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub as_of: Ts,
}

/// Everything the fraud processor emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FraudOutput {
    Raised(Box<FraudAlert>),
    Withdrawn(Box<AlertWithdrawn>),
}
