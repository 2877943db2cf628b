//! Inventory rules as configuration (RULES.md "Stock"; every number is a
//! default the operator can change, the meaning stays).

use serde::{Deserialize, Serialize};
use storepulse_core::time::{Ts, HOUR};

/// Longest sales-velocity window the state keeps per (store, SKU).
pub const MAX_VELOCITY_DAYS: u32 = 14;

/// `[inventory]` section of `storepulse.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// How late (behind the event-time clock, the latest `occurred_at` seen)
    /// an event may arrive and still be placed exactly: de-duplicated, and
    /// ordered against stocktakes. Older events go to the dead-letter log
    /// with that reason. Memory grows with it (see `dedup` and the per-store
    /// change history). Hours; default 168 (7 days).
    pub allowed_lateness_hours: u32,
    /// Sales velocity window in days (units sold in the window / days).
    /// At most 14. Default 14.
    pub velocity_days: u32,
    /// Replenish when days of cover fall below this. Default 3.
    pub replenish_below_days: f64,
    /// A store may give stock of a SKU when its days of cover exceed this
    /// (or it has stock and no sales). Default 30.
    pub transfer_giver_above_days: f64,
    /// A transfer brings the receiver up to this many days of cover. Default 7.
    pub transfer_target_days: f64,
    /// A transfer never takes the giver below this many days of cover.
    /// Default 14.
    pub transfer_giver_keep_days: f64,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_hours: 168,
            velocity_days: 14,
            replenish_below_days: 3.0,
            transfer_giver_above_days: 30.0,
            transfer_target_days: 7.0,
            transfer_giver_keep_days: 14.0,
        }
    }
}

impl InventoryConfig {
    /// Checks the values; the error names the field.
    ///
    /// # Errors
    /// A message `inventory.<field>: <rule>`.
    pub fn validate(&self) -> Result<(), String> {
        if self.allowed_lateness_hours == 0 {
            return Err("inventory.allowed_lateness_hours: must be > 0".into());
        }
        if self.velocity_days == 0 || self.velocity_days > MAX_VELOCITY_DAYS {
            return Err(format!(
                "inventory.velocity_days: must be 1..={MAX_VELOCITY_DAYS}"
            ));
        }
        for (name, v) in [
            ("replenish_below_days", self.replenish_below_days),
            ("transfer_giver_above_days", self.transfer_giver_above_days),
            ("transfer_target_days", self.transfer_target_days),
            ("transfer_giver_keep_days", self.transfer_giver_keep_days),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("inventory.{name}: must be a number >= 0"));
            }
        }
        Ok(())
    }

    /// The allowed lateness as a duration.
    pub fn allowed_lateness(&self) -> Ts {
        Ts::from(self.allowed_lateness_hours) * HOUR
    }
}
