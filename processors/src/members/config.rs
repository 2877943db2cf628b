//! `[members]` configuration: tag thresholds and windows, custom tags,
//! marketing actions, ledger exactness and lateness.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use storepulse_tags::{Tag, TagRules, MAX_CUSTOM_TAGS};

use super::custom::CustomTags;

/// An operator-defined tag (`[[members.custom_tags]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTagConfig {
    /// Tag name: `[a-z][a-z0-9_]*`, at most 32 characters, not a built-in tag.
    pub name: String,
    /// A CEL expression over the member's features that yields a bool,
    /// e.g. `spend_365d_cents >= 1000000 && sales_90d == 0`. The features
    /// are listed in `members::custom` (and in the README).
    pub expr: String,
    /// The suggested marketing action for members with this tag.
    #[serde(default)]
    pub action: Option<String>,
}

/// `[members]` section of `storepulse.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemberConfig {
    /// Thresholds and windows of the built-in tags (RULES.md defaults).
    pub tags: TagRules,
    /// Operator-defined tags, evaluated like the built-in ones.
    pub custom_tags: Vec<CustomTagConfig>,
    /// Suggested marketing action per tag name, overriding the defaults.
    pub actions: BTreeMap<String, String>,
    /// Days a points ledger entry stays re-orderable by event time before
    /// it is folded into FIFO lots. Late events within this many days land
    /// exactly in place for balance, overdraft and settlement. Default 7.
    pub ledger_exact_days: u32,
    /// When the member processor de-duplicates on its own (Kafka mode),
    /// events later than this behind its clock are rejected. Default 168.
    pub allowed_lateness_hours: u32,
    /// An event of an erased member (any of its ids, or a registration
    /// with its phone) dated up to this long *after* the erasure, arriving
    /// after it, is taken to be in flight from before the request (POS
    /// clocks, offline queues, another partition's path) and ignored, as
    /// the erasure would have removed it had it arrived first. Later events
    /// start a new member. Default 60.
    pub erasure_grace_minutes: u32,
}

impl Default for MemberConfig {
    fn default() -> Self {
        Self {
            tags: TagRules::default(),
            custom_tags: Vec::new(),
            actions: BTreeMap::new(),
            ledger_exact_days: 7,
            allowed_lateness_hours: 168,
            erasure_grace_minutes: 60,
        }
    }
}

/// The default suggested action of each built-in tag.
pub fn default_action(tag: Tag) -> &'static str {
    match tag {
        Tag::HighValue => "VIP invitation: early access and a personal shopper",
        Tag::Frequent => "loyalty bonus: double points next visit",
        Tag::MultiStore => "cross-store offer: order online, pick up in any store",
        Tag::OnlineFirst => "app-only coupon",
        Tag::PromoResponsive => "preview of next week's promotions",
        Tag::SeasonalBuyer => "seasonal pre-sale invitation before the season starts",
        Tag::ChurnRisk => "win-back coupon",
        Tag::NewMember => "welcome offer on the second purchase",
        Tag::StoreLoyal => "invitation to the store's member day",
    }
}

impl MemberConfig {
    /// Checks every field and compiles the custom tags.
    ///
    /// # Errors
    /// A message naming the field: `members.custom_tags[1].expr: ...`.
    pub fn validate(&self) -> Result<CustomTags, String> {
        self.tags.validate()?;
        if self.ledger_exact_days == 0 || self.ledger_exact_days > 366 {
            return Err("members.ledger_exact_days: must be 1..=366".into());
        }
        if self.allowed_lateness_hours == 0 || self.allowed_lateness_hours > 24 * 366 {
            return Err("members.allowed_lateness_hours: must be 1..=8784".into());
        }
        if self.erasure_grace_minutes > 7 * 24 * 60 {
            return Err("members.erasure_grace_minutes: must be 0..=10080 (7 days)".into());
        }
        if self.custom_tags.len() > MAX_CUSTOM_TAGS {
            return Err(format!(
                "members.custom_tags: at most {MAX_CUSTOM_TAGS} custom tags"
            ));
        }
        let custom = CustomTags::compile(&self.custom_tags)?;
        for name in self.actions.keys() {
            if Tag::from_name(name).is_none() && !custom.names().any(|n| n == name) {
                return Err(format!(
                    "members.actions.{name}: no such tag (built-in or custom)"
                ));
            }
        }
        Ok(custom)
    }

    /// The suggested action for a tag name.
    pub fn action(&self, tag: &str) -> Option<String> {
        if let Some(a) = self.actions.get(tag) {
            return Some(a.clone());
        }
        if let Some(t) = Tag::from_name(tag) {
            return Some(default_action(t).to_string());
        }
        self.custom_tags
            .iter()
            .find(|c| c.name == tag)
            .and_then(|c| c.action.clone())
    }
}
