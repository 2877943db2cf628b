//! Stock alerts and stock changes: what the inventory processor emits.

use serde::{Deserialize, Serialize};
use storepulse_core::{StoreIdx, Ts};

use super::SkuId;

/// The kind of a stock alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockAlertKind {
    /// On-hand went below zero: more was sold than the books hold.
    Oversold,
    /// On-hand reached exactly zero.
    OutOfStock,
}

impl StockAlertKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oversold => "oversold",
            Self::OutOfStock => "out_of_stock",
        }
    }
}

/// A stock alert, raised the moment the change that causes it is applied.
///
/// `alert_id` is deterministic (`kind:store:sku:event_id`), so a consumer
/// that sees an alert twice (after a crash and replay) can drop the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAlert {
    pub alert_id: String,
    pub kind: StockAlertKind,
    pub store_id: String,
    pub sku: String,
    pub on_hand: i64,
    /// The event whose change raised it.
    pub event_id: String,
    /// That event's time.
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub occurred_at: Ts,
}

/// New on-hand of one (store, SKU) after an event (for compacted outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockChange {
    pub store: StoreIdx,
    pub sku: SkuId,
    pub on_hand: i64,
    pub occurred_at: Ts,
}

/// Everything the inventory processor emits. Alerts are rare and large, so
/// they are boxed: the common `Changed` output stays 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryOutput {
    Alert(Box<StockAlert>),
    Changed(StockChange),
}
