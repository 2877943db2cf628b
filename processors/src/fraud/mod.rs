//! Fraud rules on event time (RULES.md "Fraud rules"): sliding windows of
//! sales per key, rules as data, alerts in event-time order whatever the
//! arrival order.
//!
//! **Keys.** A rule groups sales by member, payment account or order
//! ([`KeyKind`]). Member keys are *canonical* member ids: the caller (the
//! runtime, which runs the member processor first) passes the canonical id
//! of each sale's member to [`FraudProcessor::apply_sale`], and calls
//! [`FraudProcessor::relink`] after a registration, which moves the windows
//! of a person's other ids under its canonical id and re-evaluates them, so
//! an alias link that arrives late still produces the alert.
//!
//! **Time.** `T` is the latest `occurred_at` seen (every event moves it).
//! A rule keeps a key's sales for `allowed lateness + window` behind `T`,
//! so any sale up to the allowed lateness late finds every partner it can
//! have. A sale later than that still counts for stock and points (other
//! processors) and is counted here ([`FraudStats`]); it is evaluated if it
//! is within `lateness + window` (its window state is still kept), and
//! otherwise not. Keys are filed in a minute-bucket expiry wheel and
//! dropped when their last sale leaves the horizon, so memory stays bounded
//! on an endless stream (the `fraud_memory` benchmark shows it).
//!
//! **Grouping** is in [`window`]: a sale is in at most one alert per rule
//! and key, alert ids are hashes of their sales, and the same set of sales
//! gives the same alerts in any order; a late sale that regroups them
//! withdraws the alerts that no longer stand ([`AlertWithdrawn`]).
//!
//! **On Kafka** each rule runs in the stage whose partitioning keeps its
//! key whole ([`RuleSet::only`]): order rules beside inventory, member rules
//! in each member partition (fed by [`FraudProcessor::apply_with_members`],
//! as embedded; a late link across partitions moves the id's windows with
//! [`FraudProcessor::take_member_windows`] and
//! [`FraudProcessor::absorb_member_windows`]), account rules in a stage of
//! their own.
//!
//! **Rules** ([`rules`]) are data and can be replaced while running
//! ([`FraudProcessor::set_rules`]): a rule whose definition is unchanged
//! keeps its windows; a new or changed rule starts empty and applies to the
//! events that follow.
//!
//! **Duplicates.** Embedded, inventory de-duplicates before this processor
//! sees an event; within a key a sale with an `event_id` already kept is
//! also ignored.
//!
//! **Erasure.** [`FraudProcessor::forget_member`] drops the windows of
//! erased member ids. Alerts already raised stay with the risk team (a
//! fraud case is kept under the legal-obligation ground of PIPL art. 13).

pub mod output;
pub mod rules;
pub mod window;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use storepulse_core::time::MINUTE;
use storepulse_core::{Event, EventBody, Id, Rejection, StoreMaster, Ts};

use crate::members::{MemberOutput, MemberProcessor};
use crate::processor::{Outcome, Processor};
pub use output::{AlertWithdrawn, FraudAlert, FraudOutput};
pub use rules::{CompiledRule, KeyKind, RuleKind, RuleSet, RuleSpec, SaleFilter, Thresholds};
use window::{alert_id, Diff, KeyWindow, Scratch, WindowSale, UNSCHEDULED};

/// `[fraud]` settings the processor needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FraudConfig {
    /// How late (behind the clock `T`) a sale may arrive and still be
    /// grouped exactly. Default 60 minutes.
    pub allowed_lateness_minutes: u32,
}

impl Default for FraudConfig {
    fn default() -> Self {
        Self {
            allowed_lateness_minutes: 60,
        }
    }
}

impl FraudConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// A message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.allowed_lateness_minutes > 7 * 24 * 60 {
            return Err("fraud.allowed_lateness_minutes: must be 0..=10080 (7 days)".into());
        }
        Ok(())
    }

    fn lateness(&self) -> Ts {
        Ts::from(self.allowed_lateness_minutes) * MINUTE
    }
}

/// Counters since the processor was created (checkpointed with it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudStats {
    /// Sales seen.
    pub sales: u64,
    /// Sales later than the allowed lateness, still evaluated.
    pub late_evaluated: u64,
    /// Sales later than the allowed lateness plus the window: not evaluated.
    pub late_dropped: u64,
    pub raised: u64,
    pub withdrawn: u64,
}

/// The windows of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RuleState {
    name: String,
    fingerprint: u64,
    keys: FxHashMap<Id, KeyWindow>,
    /// Minute bucket -> keys to look at then.
    expiry: BTreeMap<i64, Vec<Id>>,
}

/// The checkpointable state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudState {
    rules: Vec<RuleState>,
    clock: Ts,
    stats: FraudStats,
}

impl FraudState {
    /// Keys held, over all rules (for memory accounting).
    pub fn keys(&self) -> usize {
        self.rules.iter().map(|r| r.keys.len()).sum()
    }

    /// Sales held, over all rules.
    pub fn sales(&self) -> usize {
        self.rules
            .iter()
            .flat_map(|r| r.keys.values())
            .map(|w| w.sales.len())
            .sum()
    }
}

/// The fraud processor.
#[derive(Debug)]
pub struct FraudProcessor {
    config: FraudConfig,
    rules: RuleSet,
    stores: Arc<StoreMaster>,
    state: FraudState,
    scratch: Scratch,
}

fn bucket(at: Ts) -> i64 {
    at.div_euclid(MINUTE)
}

impl FraudProcessor {
    /// An empty processor running `rules`.
    pub fn new(config: FraudConfig, rules: RuleSet, stores: Arc<StoreMaster>) -> Self {
        let mut p = Self {
            config,
            rules: RuleSet::empty(),
            stores,
            state: FraudState::default(),
            scratch: Scratch::default(),
        };
        p.set_rules(rules);
        p
    }

    /// A processor resumed from a checkpoint. Windows of rules that are no
    /// longer defined the same way are dropped.
    pub fn from_state(
        state: FraudState,
        config: FraudConfig,
        rules: RuleSet,
        stores: Arc<StoreMaster>,
    ) -> Self {
        let mut p = Self::new(config, RuleSet::empty(), stores);
        p.state = state;
        p.set_rules(rules);
        p
    }

    /// Replaces the rules. A rule with the same name and definition keeps
    /// its windows; any other starts empty, for the events that follow.
    pub fn set_rules(&mut self, rules: RuleSet) {
        let mut old = std::mem::take(&mut self.state.rules);
        self.state.rules = rules
            .rules()
            .iter()
            .map(|r| {
                match old
                    .iter()
                    .position(|s| s.name == r.spec.name && s.fingerprint == r.fingerprint)
                {
                    Some(i) => old.swap_remove(i),
                    None => RuleState {
                        name: r.spec.name.clone(),
                        fingerprint: r.fingerprint,
                        ..RuleState::default()
                    },
                }
            })
            .collect();
        self.rules = rules;
    }

    /// The rules in force.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The state, for checkpoints.
    pub fn state(&self) -> &FraudState {
        &self.state
    }

    /// Counters.
    pub fn stats(&self) -> &FraudStats {
        &self.state.stats
    }

    /// The event-time clock `T`.
    pub fn clock(&self) -> Ts {
        self.state.clock
    }

    /// The sales a rule currently holds for a key (for the review queue).
    pub fn window(&self, rule: &str, key: &str) -> Option<&KeyWindow> {
        self.state
            .rules
            .iter()
            .find(|r| r.name == rule)
            .and_then(|r| r.keys.get(key))
    }

    /// Moves the clock to `at` (if later) and drops what left the horizon.
    pub fn advance(&mut self, at: Ts) {
        if at <= self.state.clock {
            return;
        }
        self.state.clock = at;
        let lateness = self.config.lateness();
        let now = bucket(at);
        for (rule, rs) in self.rules.rules().iter().zip(&mut self.state.rules) {
            let keep = lateness + rule.window;
            while let Some(entry) = rs.expiry.first_entry() {
                if *entry.key() > now {
                    break;
                }
                let (b, ids) = entry.remove_entry();
                for id in ids {
                    // One probe of the table per expiring key.
                    let std::collections::hash_map::Entry::Occupied(mut entry) = rs.keys.entry(id)
                    else {
                        continue;
                    };
                    let w = entry.get_mut();
                    if w.due != b {
                        continue;
                    }
                    w.prune(at - keep);
                    match w.last_at() {
                        None => {
                            entry.remove();
                        }
                        Some(last) => {
                            let due = bucket(last + keep) + 1;
                            w.due = due;
                            let id = entry.key().clone();
                            rs.expiry.entry(due).or_default().push(id);
                        }
                    }
                }
            }
        }
    }

    /// Applies an event, with the canonical id of its member (`None`: no
    /// member, or member rules should not see it).
    pub fn apply_sale(
        &mut self,
        event: &Event,
        member_key: Option<&Id>,
        out: &mut Vec<FraudOutput>,
    ) -> Outcome {
        self.advance(event.occurred_at);
        let EventBody::Sale(sale) = &event.body else {
            return Outcome::Ignored;
        };
        self.state.stats.sales += 1;
        let clock = self.state.clock;
        let lateness = self.config.lateness();
        let mut late_counted = false;
        for (rule, rs) in self.rules.rules().iter().zip(&mut self.state.rules) {
            if !rule.is_active_window() || !rule.admits(event) {
                continue;
            }
            let key = match rule.key {
                KeyKind::Member => match member_key {
                    Some(k) => k,
                    None => continue,
                },
                KeyKind::PaymentAccount => match &sale.payment.account_ref {
                    Some(k) => k,
                    None => continue,
                },
                KeyKind::Order => &sale.order_id,
            };
            let keep = lateness + rule.window;
            if event.occurred_at < clock - lateness && !late_counted {
                late_counted = true;
                if event.occurred_at < clock - keep {
                    self.state.stats.late_dropped += 1;
                } else {
                    self.state.stats.late_evaluated += 1;
                }
            }
            if event.occurred_at < clock - keep {
                continue;
            }
            // One probe: most keys are new (payment tokens seen once), and
            // cloning an id of up to 24 bytes copies it inline.
            let w = rs.keys.entry(key.clone()).or_default();
            let Some(pos) = w.insert(WindowSale {
                at: event.occurred_at,
                event_id: event.event_id.clone(),
                order_id: sale.order_id.clone(),
                store: event.store,
                total: sale.total_cents,
                alert: 0,
            }) else {
                continue;
            };
            let diff = w.reevaluate(pos, rule, &mut self.scratch);
            if !diff.raised.is_empty() || !diff.withdrawn.is_empty() {
                emit(
                    rule,
                    key,
                    w,
                    diff,
                    clock,
                    &self.stores,
                    &mut self.state.stats,
                    out,
                );
            }
            if w.due == UNSCHEDULED {
                if let Some(last) = w.last_at() {
                    let due = bucket(last + keep) + 1;
                    w.due = due;
                    rs.expiry.entry(due).or_default().push(key.clone());
                }
            }
        }
        Outcome::Applied
    }

    /// After a registration: the person now known by `canonical` also owns
    /// `ids`. Their windows under member rules move under `canonical` and
    /// are grouped again from the earliest sale that moved.
    pub fn relink(&mut self, ids: &[Id], canonical: &Id, out: &mut Vec<FraudOutput>) {
        let clock = self.state.clock;
        for (rule, rs) in self.rules.rules().iter().zip(&mut self.state.rules) {
            if rule.key != KeyKind::Member || !rule.is_active_window() {
                continue;
            }
            let moved: Vec<KeyWindow> = ids
                .iter()
                .filter(|id| *id != canonical)
                .filter_map(|id| rs.keys.remove(id))
                .collect();
            if moved.is_empty() {
                continue;
            }
            let keep = self.config.lateness() + rule.window;
            // Alerts raised under an alias: if the regrouping keeps them as
            // they are, they are raised again under the canonical id (same
            // alert id), so the review queue and replay re-key them.
            let mut moved_alerts: Vec<u64> = moved.iter().flat_map(KeyWindow::alerts).collect();
            moved_alerts.sort_unstable();
            moved_alerts.dedup();
            let w = rs.keys.entry(canonical.clone()).or_default();
            let mut from: Option<usize> = None;
            for m in moved {
                if let Some(pos) = w.absorb(m) {
                    from = Some(from.map_or(pos, |f: usize| f.min(pos)));
                }
            }
            if let Some(from) = from {
                let mut diff = w.reevaluate(from, rule, &mut self.scratch);
                let standing = w.alerts();
                for h in moved_alerts {
                    let kept = standing.binary_search(&h).is_ok();
                    if kept && !diff.raised.iter().any(|f| f.hash == h) {
                        diff.raised.push(w.found(h));
                    }
                }
                emit(
                    rule,
                    canonical,
                    w,
                    diff,
                    clock,
                    &self.stores,
                    &mut self.state.stats,
                    out,
                );
            }
            if let Some(last) = w.last_at() {
                let due = bucket(last + keep) + 1;
                if w.due < due {
                    w.due = due;
                    rs.expiry.entry(due).or_default().push(canonical.clone());
                }
            }
        }
    }

    /// Feeds one event the way every runtime does (embedded driver, Kafka
    /// member partitions): the canonical id of its member (`members` has
    /// just applied it; `member_outputs` is what that produced), re-linking
    /// after a registration, forgetting after an erasure.
    pub fn apply_with_members(
        &mut self,
        members: Option<&MemberProcessor>,
        event: &Event,
        member_outputs: &[MemberOutput],
        out: &mut Vec<FraudOutput>,
    ) {
        let canonical: Option<Id> = match (&event.member_id, members) {
            (Some(id), Some(m)) => Some(m.canonical_of(id).cloned().unwrap_or_else(|| id.clone())),
            (id, _) => id.clone(),
        };
        self.apply_sale(event, canonical.as_ref(), out);
        if let (EventBody::MemberRegister(_), Some(id), Some(m)) =
            (&event.body, &event.member_id, members)
        {
            self.relink_person(m, id, out);
        }
        self.forget_erased(member_outputs);
    }

    /// Re-links the person that owns `id` (after its registration): the
    /// windows of its ids move under its canonical id.
    pub fn relink_person(
        &mut self,
        members: &MemberProcessor,
        id: &str,
        out: &mut Vec<FraudOutput>,
    ) {
        if let Some(person) = members.person_by_id(id) {
            let ids: Vec<Id> = person.ids.iter().map(|x| x.id.clone()).collect();
            self.relink(&ids, person.canonical(), out);
        }
    }

    /// Forgets the ids of every erasure among `member_outputs`.
    pub fn forget_erased(&mut self, member_outputs: &[MemberOutput]) {
        for o in member_outputs {
            if let MemberOutput::Erased(e) = o {
                let mut ids = e.aliases.clone();
                ids.push(e.member_id.clone());
                self.forget_member(&ids);
            }
        }
    }

    /// Takes the member windows of `id` out (a Kafka member partition hands
    /// the id's history over to its phone's partition).
    pub fn take_member_windows(&mut self, id: &str) -> Vec<MovedWindow> {
        let mut moved = Vec::new();
        for (rule, rs) in self.rules.rules().iter().zip(&mut self.state.rules) {
            if rule.key != KeyKind::Member {
                continue;
            }
            if let Some(mut window) = rs.keys.remove(id) {
                window.due = UNSCHEDULED;
                moved.push(MovedWindow {
                    rule: rs.name.clone(),
                    fingerprint: rs.fingerprint,
                    window,
                });
            }
        }
        moved
    }

    /// Puts windows taken by [`Self::take_member_windows`] (elsewhere) under
    /// `key`. Where `key` holds nothing yet under that rule, the window is
    /// put as it is (its alerts were raised where it comes from); otherwise
    /// the sales are merged and grouped again. Windows of rules not in force
    /// here with the same definition are dropped.
    pub fn absorb_member_windows(
        &mut self,
        key: &Id,
        windows: Vec<MovedWindow>,
        out: &mut Vec<FraudOutput>,
    ) {
        let clock = self.state.clock;
        let lateness = self.config.lateness();
        for moved in windows {
            let Some((rule, rs)) =
                self.rules
                    .rules()
                    .iter()
                    .zip(&mut self.state.rules)
                    .find(|(r, s)| {
                        r.key == KeyKind::Member
                            && r.is_active_window()
                            && s.name == moved.rule
                            && s.fingerprint == moved.fingerprint
                    })
            else {
                continue;
            };
            let keep = lateness + rule.window;
            let w = rs.keys.entry(key.clone()).or_default();
            if w.sales.is_empty() {
                w.sales = moved.window.sales;
            } else if let Some(from) = w.absorb(moved.window) {
                let diff = w.reevaluate(from, rule, &mut self.scratch);
                emit(
                    rule,
                    key,
                    w,
                    diff,
                    clock,
                    &self.stores,
                    &mut self.state.stats,
                    out,
                );
            }
            match w.last_at() {
                Some(last) => {
                    let due = bucket(last + keep) + 1;
                    if w.due < due {
                        w.due = due;
                        rs.expiry.entry(due).or_default().push(key.clone());
                    }
                }
                None => {
                    rs.keys.remove(key);
                }
            }
        }
    }

    /// Drops the member windows of erased ids (PIPL).
    pub fn forget_member(&mut self, ids: &[Id]) {
        for (rule, rs) in self.rules.rules().iter().zip(&mut self.state.rules) {
            if rule.key == KeyKind::Member {
                for id in ids {
                    rs.keys.remove(id);
                }
            }
        }
    }
}

/// One key's window under one rule, moved between processors (a Kafka
/// member handover); the rule is named and fingerprinted so that a receiver
/// running another definition drops it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedWindow {
    pub rule: String,
    pub fingerprint: u64,
    pub window: KeyWindow,
}

/// Turns a window's diff into outputs.
#[allow(clippy::too_many_arguments)]
fn emit(
    rule: &CompiledRule,
    key: &Id,
    w: &KeyWindow,
    diff: Diff,
    clock: Ts,
    stores: &StoreMaster,
    stats: &mut FraudStats,
    out: &mut Vec<FraudOutput>,
) {
    let superseded_by: Vec<String> = diff
        .raised
        .iter()
        .map(|f| alert_id(rule.name(), f.hash))
        .collect();
    for h in diff.withdrawn {
        stats.withdrawn += 1;
        out.push(FraudOutput::Withdrawn(Box::new(AlertWithdrawn {
            alert_id: alert_id(rule.name(), h),
            rule: rule.name().to_owned(),
            key: key.clone(),
            superseded_by: superseded_by.clone(),
            as_of: clock,
        })));
    }
    for found in diff.raised {
        stats.raised += 1;
        let sales: Vec<&WindowSale> = found.sales.iter().filter_map(|&i| w.sales.get(i)).collect();
        let mut order_ids: Vec<Id> = Vec::new();
        for s in &sales {
            if !order_ids.contains(&s.order_id) {
                order_ids.push(s.order_id.clone());
            }
        }
        let mut store_ids: Vec<String> = sales
            .iter()
            .map(|s| stores.id(s.store).to_owned())
            .collect();
        store_ids.sort_unstable();
        store_ids.dedup();
        out.push(FraudOutput::Raised(Box::new(FraudAlert {
            alert_id: alert_id(rule.name(), found.hash),
            rule: rule.name().to_owned(),
            key_kind: rule.key.as_str().to_owned(),
            key: key.clone(),
            event_ids: sales.iter().map(|s| s.event_id.clone()).collect(),
            order_ids,
            stores: store_ids,
            total_cents: sales.iter().map(|s| s.total).fold(0, u64::saturating_add),
            first_at: sales.first().map_or(0, |s| s.at),
            last_at: sales.last().map_or(0, |s| s.at),
        })));
    }
}

impl Processor for FraudProcessor {
    type Output = FraudOutput;

    /// Alone (tests, benchmarks), member keys are the raw `member_id`s;
    /// the runtime calls [`FraudProcessor::apply_sale`] with canonical ids.
    fn apply(&mut self, event: &Event, out: &mut Vec<FraudOutput>) -> Result<Outcome, Rejection> {
        let member = event.member_id.clone();
        Ok(self.apply_sale(event, member.as_ref(), out))
    }

    fn on_tick(&mut self, event_time: Ts, _out: &mut Vec<FraudOutput>) {
        self.advance(event_time);
    }
}
