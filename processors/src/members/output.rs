//! What the member processor emits: tag changes, points-overdraft alerts
//! and erasures.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use storepulse_core::{Id, StoreIdx, Ts};

/// A tag added to or removed from a member (RULES.md: every change is
/// emitted). `as_of` is the event-time clock `T` the change was computed
/// at; `event_id` names the event that caused it, or is absent when the
/// clock moving on did (a member becoming `churn_risk` without buying).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChange {
    /// The canonical member id.
    pub member_id: Id,
    pub tag: CompactString,
    pub change: Change,
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub as_of: Ts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Id>,
    /// The member's favourite store the change counts at in stores'
    /// member counts (the mart): a removal at the store it was counted at,
    /// an addition at the current favourite. Not on the member log.
    #[serde(skip)]
    pub store: Option<StoreIdx>,
}

/// A member kept `tags` while its favourite store moved from `from` to
/// `to`: not a tag change (the member log does not carry it), but stores'
/// member counts move it, so a member is counted at its current favourite
/// store whatever order its events arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsMoved {
    /// The canonical member id.
    pub member_id: Id,
    pub tags: Vec<CompactString>,
    pub from: Option<StoreIdx>,
    pub to: Option<StoreIdx>,
    pub as_of: Ts,
    pub event_id: Option<Id>,
}

/// Added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
}

/// A redemption that took the member's balance below zero, in event-time
/// order of the member's events (RULES.md "Points").
///
/// `alert_id` is `points_overdraft:<event_id>`: deterministic, so a copy
/// re-emitted after a crash is recognisable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsOverdraftAlert {
    pub alert_id: String,
    pub rule: String,
    /// The canonical member id.
    pub member_id: Id,
    /// The redemption.
    pub event_id: Id,
    pub store_id: String,
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub occurred_at: Ts,
    pub points: i64,
    /// Balance right after the redemption, in event-time order.
    pub balance_after: i64,
}

/// A member erased (PIPL): downstream stores delete everything they hold
/// under these ids. No tag change of these ids follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberErased {
    pub member_id: Id,
    pub aliases: Vec<Id>,
    /// The `member_erase` event (or the API request's id).
    pub event_id: Id,
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub erased_at: Ts,
}

/// Everything the member processor emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberOutput {
    Tag(TagChange),
    TagsMoved(TagsMoved),
    Overdraft(Box<PointsOverdraftAlert>),
    Erased(Box<MemberErased>),
}
