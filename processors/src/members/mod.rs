//! Unified members: identity, points ledger, tags and privacy (RULES.md
//! "Points" and "Member tags", EVENTS.md `member_register`, `points_redeem`,
//! `member_erase`).
//!
//! **Identity.** All member ids registered with the same `phone_hash` are
//! one *person*; its canonical id is the id of the earliest registration
//! (`occurred_at`, then the smaller id); the others are aliases. An id never
//! registered is a person of its own. A registration that arrives late and
//! links an id that already has history merges that history into the
//! person: every aggregate is a sum (see [`history`]), and the pending
//! ledger entries merge in event-time order (see [`ledger`]), so the result
//! equals in-order processing (the property test in `tests` checks it). A
//! registration of an id already registered with another `phone_hash` is
//! rejected (the first one to arrive stands).
//!
//! **Tags** are evaluated as of the event-time clock `T` (the latest
//! `occurred_at` seen) on every event of the member, and as `T` crosses
//! China midnights. A *timer wheel* (day -> members) holds, per member, the
//! next day on which its tags or favorite store can change with no new
//! event: the first day an aggregate leaves a window, found by walking
//! those candidate days and re-evaluating only there. A member with no
//! pending change has no timer and costs nothing when the day turns.
//!
//! **Erasure.** `member_erase` removes the person and all its ids from
//! state and emits [`MemberErased`]; no tag change follows. Settlement
//! totals between franchisees keep the points (no member id in them). To
//! stop a late event from before the erasure re-creating the member, a
//! 64-bit hash of each erased id, and of the person's phone, is kept with
//! the erasure time; events of those ids dated up to that time plus
//! `erasure_grace_minutes` (in flight when the erasure was requested) are
//! ignored, and so is a registration with that phone (an alias whose
//! registration, or in Kafka mode whose handover, arrives after the
//! erasure): its id is erased too. So the outcome does not depend on
//! whether such an event arrives before the erasure or after it.
//!
//! **De-duplication.** Embedded, the inventory processor sees every event
//! first and de-duplicates; the member processor then runs with
//! [`MemberProcessor::without_dedup`]. Alone (Kafka mode, replay of member
//! events) it de-duplicates itself with the same window as inventory.
//!
//! Layout: [`config`], [`custom`] (CEL tags), [`history`] (daily
//! aggregates), [`ledger`] (points and settlement), [`output`], [`query`]
//! (read-only views for the API and replay).

pub mod config;
pub mod custom;
pub mod history;
pub mod ledger;
pub mod output;
pub mod partitioned;
pub mod query;

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use storepulse_core::time::{china_day, format_china, DAY, HOUR};
use storepulse_core::{Event, EventBody, Id, Rejection, StoreIdx, StoreMaster, Ts};
use storepulse_tags::{evaluate, RuleInputs, TagSet, WindowStats};
use xxhash_rust::xxh3::xxh3_64;

use crate::dedup::{DedupVerdict, DedupWindow};
use crate::processor::{Outcome, Processor};
pub use config::{CustomTagConfig, MemberConfig};
pub use custom::{CelMemo, CustomTags, Features};
use history::{History, SaleFacts};
use ledger::{EntryKind, Flow, Franchisees, Ledger, LedgerEntry, Overdraft, Settlement};
pub use output::{Change, MemberErased, MemberOutput, PointsOverdraftAlert, TagChange, TagsMoved};

/// Slot of a person in the state.
type Slot = u32;

/// No timer pending.
const NO_TIMER: i32 = i32::MAX;

/// Most candidate days walked when looking for the next change.
const MAX_TIMER_PROBES: usize = 64;

/// One member id of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberId {
    pub id: Id,
    /// Earliest registration of this id, if registered.
    pub registered_at: Option<Ts>,
}

/// One unified member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Sorted: registered ids by (registration, id), then the unregistered
    /// one. The first is the canonical id.
    pub ids: Vec<MemberId>,
    /// The raw bytes of the phone hash, once registered.
    pub phone: Option<[u8; 32]>,
    pub history: History,
    pub ledger: Ledger,
    pub tags: TagSet,
    pub favorite: Option<StoreIdx>,
    /// Day of this person's timer, or `NO_TIMER`.
    due_day: i32,
}

/// Each person is one allocation of this size (a year of a member's
/// memory budget is 1 KiB).
const _: () = assert!(std::mem::size_of::<Person>() == 208);

impl Person {
    fn new(id: &str) -> Self {
        Self {
            ids: vec![MemberId {
                id: id.into(),
                registered_at: None,
            }],
            phone: None,
            history: History::new(),
            ledger: Ledger::default(),
            tags: TagSet::default(),
            favorite: None,
            due_day: NO_TIMER,
        }
    }

    /// The canonical id.
    pub fn canonical(&self) -> &Id {
        // A person always has at least one id.
        &self.ids[0].id
    }

    /// How stores count it now: canonical id, tags, favourite store.
    fn counted(&self) -> Counted {
        (self.canonical().clone(), self.tags, self.favorite)
    }

    /// The earliest registration of any of its ids.
    pub fn registered_at(&self) -> Option<Ts> {
        self.ids.iter().filter_map(|m| m.registered_at).min()
    }

    fn sort_ids(&mut self) {
        self.ids.sort_by(|a, b| {
            (a.registered_at.unwrap_or(Ts::MAX), &a.id)
                .cmp(&(b.registered_at.unwrap_or(Ts::MAX), &b.id))
        });
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * std::mem::size_of::<MemberId>()
            + self
                .ids
                .iter()
                .map(|m| {
                    if m.id.is_heap_allocated() {
                        m.id.capacity()
                    } else {
                        0
                    }
                })
                .sum::<usize>()
            + self.history.heap_bytes()
            + self.ledger.lots.capacity() * std::mem::size_of::<ledger::Lot>()
            + self.ledger.pending.capacity() * std::mem::size_of::<LedgerEntry>()
    }
}

/// Regular members of a store (favorite store), counted by tag bit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Regulars {
    pub members: u32,
    /// Index: tag bit (0..64).
    pub by_tag: Vec<u32>,
}

/// A person as stores count it: canonical id, tags, favourite store.
type Counted = (Id, TagSet, Option<StoreIdx>);

/// The checkpointable state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberState {
    ids: FxHashMap<Id, Slot>,
    phones: FxHashMap<[u8; 32], Slot>,
    /// By slot; boxed, so a free or not yet used slot of the vector (which
    /// grows by doubling) costs 8 bytes, not a whole `Person`.
    persons: Vec<Option<Box<Person>>>,
    free: Vec<Slot>,
    /// xxh3 of an erased id, or [`erased_phone_key`] of an erased
    /// person's phone -> erasure time.
    erased: FxHashMap<u64, Ts>,
    timers: BTreeMap<i32, Vec<Slot>>,
    settlement: Settlement,
    /// Per store index.
    regulars: Vec<Regulars>,
    dedup: Option<DedupWindow>,
    clock: Ts,
    /// Kafka mode: ids registered with a phone homed on another partition.
    redirects: FxHashMap<Id, partitioned::Redirect>,
}

/// Store -> franchisee index.
struct FranchiseeOf<'a>(&'a [u16]);

impl Franchisees for FranchiseeOf<'_> {
    fn franchisee(&self, store: StoreIdx) -> u16 {
        self.0
            .get(usize::from(store.0))
            .copied()
            .unwrap_or(u16::MAX)
    }
}

/// The windows one evaluation reads, computed together in one pass over a
/// member's aggregates: distinct, longest first, with where each rule's,
/// each custom feature's and the favorite store's window is in that list.
#[derive(Debug, Clone)]
struct EvalPlan {
    windows: Vec<u32>,
    /// Index in `windows` of the window of `high_value`, `frequent`,
    /// `multi_store`, `online_first`, `promo_responsive`, `seasonal_buyer`,
    /// `churn_risk` (quiet days) and `store_loyal`.
    rules: [u8; 8],
    /// Of the custom features' 30, 60, 90 and 365 days (0 without custom tags).
    custom: [u8; 4],
    favorite: usize,
}

impl EvalPlan {
    /// 8 rule windows, 4 feature windows and the favorite store's.
    const MAX_WINDOWS: usize = 13;

    fn new(r: &storepulse_tags::TagRules, custom: bool) -> Self {
        let rule_days = [
            r.high_value_days,
            r.frequent_days,
            r.multi_store_days,
            r.online_first_days,
            r.promo_responsive_days,
            r.seasonal_buyer_days,
            r.churn_risk_quiet_days,
            r.store_loyal_days,
        ];
        let mut windows: Vec<u32> = rule_days.to_vec();
        if custom {
            windows.extend(custom::FEATURE_WINDOWS);
        }
        windows.push(r.favorite_store_days);
        windows.sort_unstable_by(|a, b| b.cmp(a));
        windows.dedup();
        let at = |days: u32| windows.iter().position(|&w| w == days).unwrap_or(0) as u8;
        let rules = rule_days.map(at);
        let custom = if custom {
            custom::FEATURE_WINDOWS.map(at)
        } else {
            [0; 4]
        };
        let favorite = usize::from(at(r.favorite_store_days));
        Self {
            windows,
            rules,
            custom,
            favorite,
        }
    }
}

/// The member processor.
#[derive(Debug)]
pub struct MemberProcessor {
    config: MemberConfig,
    custom: CustomTags,
    stores: Arc<StoreMaster>,
    franchisee_of: Vec<u16>,
    franchisees: Vec<String>,
    /// Every window (days) after which an aggregate can change a tag.
    windows: Vec<u32>,
    retention_days: u32,
    state: MemberState,
    flows: Vec<Flow>,
    overdrafts: Vec<Overdraft>,
    /// Persons changed since the last [`MemberProcessor::drain_changes`]
    /// (Kafka mode publishes them), when tracking.
    changes: Option<ChangeLog>,
    plan: EvalPlan,
    /// Scratch of evaluations and the timer (taken out while in use).
    scratch: Scratch,
}

/// Reused between evaluations: no allocation per event or probe.
#[derive(Debug, Default)]
struct Scratch {
    /// The custom tags' last inputs and results.
    memo: CelMemo,
    /// The days whose passing can move a window ([`History::source_days`]).
    days: Vec<i32>,
    /// Per stream of candidate days (a day, or a day plus a window): the
    /// next index into `days`.
    cursors: Vec<usize>,
    probe: Probe,
}

/// The window stats of the timer's previous probe of one member, so that
/// the next probe (a later day) recomputes only the windows whose
/// aggregates changed ([`History::unchanged`]).
#[derive(Debug)]
struct Probe {
    /// Day of the stats, `None` before the first probe.
    day: Option<i32>,
    stats: [WindowStats; EvalPlan::MAX_WINDOWS],
    favorite: Option<StoreIdx>,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            day: None,
            stats: [WindowStats::default(); EvalPlan::MAX_WINDOWS],
            favorite: None,
        }
    }
}

/// What changed since the last drain.
#[derive(Debug, Default)]
struct ChangeLog {
    dirty: rustc_hash::FxHashSet<Slot>,
    /// Keys of persons that are gone (erased, merged, moved away).
    retired: Vec<String>,
}

/// A change of the member read model (Kafka mode's `<p>.members` topic).
#[derive(Debug)]
pub enum PersonChange<'a> {
    /// The person under its key now.
    Put(String, &'a Person),
    /// Nobody under this key any more.
    Retire(String),
}

pub(crate) fn phone_bytes(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Prefix of a registered person's key in the read model: 69 characters
/// with the hash, longer than any member id (1-64), so keys cannot collide.
pub const PHONE_KEY_PREFIX: &str = "phone:";

/// The key a person is published under: `phone:<hash>` once registered
/// (stable when its canonical id changes), else its only id.
pub fn snapshot_key(p: &Person) -> String {
    match &p.phone {
        Some(phone) => {
            let mut key = String::with_capacity(PHONE_KEY_PREFIX.len() + 64);
            key.push_str(PHONE_KEY_PREFIX);
            key.push_str(&phone_hex(phone));
            key
        }
        None => p.canonical().to_string(),
    }
}

/// Hex of a phone hash (for the export).
pub fn phone_hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}

impl MemberProcessor {
    /// A processor with empty state that de-duplicates events itself.
    ///
    /// # Errors
    /// An invalid configuration (the message names the field).
    pub fn new(config: MemberConfig, stores: Arc<StoreMaster>) -> Result<Self, String> {
        let dedup = Some(DedupWindow::new(
            i64::from(config.allowed_lateness_hours) * HOUR,
        ));
        let state = MemberState {
            ids: FxHashMap::default(),
            phones: FxHashMap::default(),
            persons: Vec::new(),
            free: Vec::new(),
            erased: FxHashMap::default(),
            timers: BTreeMap::new(),
            settlement: Settlement::default(),
            regulars: vec![Regulars::default(); stores.len()],
            dedup,
            clock: Ts::MIN,
            redirects: FxHashMap::default(),
        };
        Self::from_state(state, config, stores)
    }

    /// Drops the processor's own de-duplication: the caller guarantees each
    /// event is applied once (embedded mode, behind the inventory processor).
    pub fn without_dedup(mut self) -> Self {
        self.state.dedup = None;
        self
    }

    /// A processor around a restored state.
    ///
    /// # Errors
    /// An invalid configuration, or a state that does not fit the store master.
    pub fn from_state(
        mut state: MemberState,
        config: MemberConfig,
        stores: Arc<StoreMaster>,
    ) -> Result<Self, String> {
        let custom = config.validate()?;
        let mut franchisees: Vec<String> =
            stores.iter().map(|(_, s)| s.franchisee.clone()).collect();
        franchisees.sort();
        franchisees.dedup();
        let franchisee_of = stores
            .iter()
            .map(|(_, s)| {
                franchisees
                    .binary_search(&s.franchisee)
                    .map_or(u16::MAX, |i| i as u16)
            })
            .collect();
        if state.regulars.len() != stores.len() {
            if state.persons.iter().any(Option::is_some) {
                return Err(format!(
                    "member state was saved with {} stores, the store master has {}",
                    state.regulars.len(),
                    stores.len()
                ));
            }
            state.regulars = vec![Regulars::default(); stores.len()];
        }
        let mut windows: Vec<u32> = config.tags.windows().collect();
        if !custom.is_empty() {
            windows.extend(custom::FEATURE_WINDOWS);
        }
        windows.sort_unstable();
        windows.dedup();
        let retention_days = windows.iter().copied().max().unwrap_or(365).max(365);
        let plan = EvalPlan::new(&config.tags, !custom.is_empty());
        Ok(Self {
            config,
            custom,
            stores,
            franchisee_of,
            franchisees,
            windows,
            retention_days,
            state,
            flows: Vec::new(),
            overdrafts: Vec::new(),
            changes: None,
            plan,
            scratch: Scratch::default(),
        })
    }

    /// Records which persons change, for [`MemberProcessor::drain_changes`].
    pub fn tracking_changes(mut self) -> Self {
        self.changes = Some(ChangeLog::default());
        self
    }

    fn mark_dirty(&mut self, slot: Slot) {
        if let Some(c) = &mut self.changes {
            c.dirty.insert(slot);
        }
    }

    fn mark_retired(&mut self, key: String) {
        if let Some(c) = &mut self.changes {
            c.retired.push(key);
        }
    }

    /// Hands every change since the last call to `f`: retired keys first,
    /// then the persons as they are now.
    pub fn drain_changes(&mut self, mut f: impl FnMut(PersonChange<'_>)) {
        let Some(changes) = self.changes.take() else {
            return;
        };
        for key in changes.retired {
            if self.slot_of_key(&key).is_none() {
                f(PersonChange::Retire(key));
            }
        }
        let mut dirty: Vec<Slot> = changes.dirty.into_iter().collect();
        dirty.sort_unstable();
        for slot in dirty {
            if let Some(p) = self.person(slot) {
                f(PersonChange::Put(snapshot_key(p), p));
            }
        }
        self.changes = Some(ChangeLog::default());
    }

    /// The slot of the person published under `key` ([`snapshot_key`]):
    /// a lookup in the phone or id index, never a scan of all persons.
    fn slot_of_key(&self, key: &str) -> Option<Slot> {
        match key.strip_prefix(PHONE_KEY_PREFIX) {
            Some(hex) => phone_bytes(hex).and_then(|b| self.state.phones.get(&b).copied()),
            None => self.slot_by_id(key).filter(|&slot| {
                self.person(slot)
                    .is_some_and(|p| p.phone.is_none() && p.canonical().as_str() == key)
            }),
        }
    }

    /// Read-model mode (Kafka `serve`): puts a person published under `key`
    /// (or removes it), keeping ids, regulars and the clock consistent.
    /// A stale snapshot of an unregistered id that is now an alias of a
    /// registered person is ignored; such a person evicts the stale one.
    pub fn put_person(&mut self, key: &str, person: Option<Person>, clock: Ts) {
        self.state.clock = self.state.clock.max(clock);
        // Remove the person held under this key.
        if let Some(slot) = self.slot_of_key(key) {
            self.remove_slot(slot);
        }
        let Some(person) = person else { return };
        let registered = person.phone.is_some();
        for m in &person.ids {
            if let Some(&other) = self.state.ids.get(m.id.as_str()) {
                let other_registered = self.person(other).is_some_and(|p| p.phone.is_some());
                if !registered && other_registered {
                    return; // stale: the id was linked since
                }
                self.remove_slot(other);
            }
        }
        let slot = self.alloc_slot(person);
        if let Some(p) = self.person(slot) {
            let ids: Vec<Id> = p.ids.iter().map(|m| m.id.clone()).collect();
            let phone = p.phone;
            for id in ids {
                self.state.ids.insert(id, slot);
            }
            if let Some(phone) = phone {
                self.state.phones.insert(phone, slot);
            }
        }
        self.count(slot, 1);
    }

    /// Puts a person in a free slot.
    fn alloc_slot(&mut self, person: Person) -> Slot {
        match self.state.free.pop() {
            Some(slot) => {
                self.state.persons[slot as usize] = Some(Box::new(person));
                slot
            }
            None => {
                self.state.persons.push(Some(Box::new(person)));
                (self.state.persons.len() - 1) as Slot
            }
        }
    }

    /// Takes a person out of its slot (and out of the regulars counts).
    fn take_slot(&mut self, slot: Slot) -> Option<Person> {
        self.count(slot, -1);
        let person = *self.state.persons.get_mut(slot as usize)?.take()?;
        self.state.free.push(slot);
        Some(person)
    }

    fn remove_slot(&mut self, slot: Slot) {
        let Some(p) = self.take_slot(slot) else {
            return;
        };
        for m in &p.ids {
            if self.state.ids.get(m.id.as_str()) == Some(&slot) {
                self.state.ids.remove(m.id.as_str());
            }
        }
        if let Some(phone) = p.phone {
            if self.state.phones.get(&phone) == Some(&slot) {
                self.state.phones.remove(&phone);
            }
        }
    }

    /// Read-model mode: the settlement table of one processing partition
    /// (the served table is their sum).
    pub fn put_settlement(&mut self, tables: &BTreeMap<u32, Settlement>) {
        let mut sum = Settlement::default();
        for t in tables.values() {
            for (k, v) in &t.owed {
                *sum.owed.entry(*k).or_insert(0) += v;
            }
        }
        sum.owed.retain(|_, v| *v != 0);
        self.state.settlement = sum;
    }

    /// This processor's settlement table (Kafka mode publishes it).
    pub fn settlement_table(&self) -> &Settlement {
        &self.state.settlement
    }

    /// The state, for checkpoints.
    pub fn state(&self) -> &MemberState {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &MemberConfig {
        &self.config
    }

    /// The compiled custom tags.
    pub fn custom_tags(&self) -> &CustomTags {
        &self.custom
    }

    /// The store master.
    pub fn stores(&self) -> &StoreMaster {
        &self.stores
    }

    /// The event-time clock `T`.
    pub fn clock(&self) -> Ts {
        self.state.clock
    }

    /// Number of persons (unified members).
    pub fn len(&self) -> usize {
        self.persons_alive()
    }

    fn persons_alive(&self) -> usize {
        self.state.persons.len() - self.state.free.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.persons_alive() == 0
    }

    /// The ids remembered for de-duplication, if the processor de-duplicates.
    pub fn dedup_window(&self) -> Option<&DedupWindow> {
        self.state.dedup.as_ref()
    }

    fn today(&self) -> i32 {
        if self.state.clock == Ts::MIN {
            i32::MIN
        } else {
            china_day(self.state.clock)
        }
    }

    fn oldest_kept(&self) -> i32 {
        self.today().saturating_sub(self.retention_days as i32 - 1)
    }

    fn fold_before(&self) -> Ts {
        self.state
            .clock
            .saturating_sub(i64::from(self.config.ledger_exact_days) * DAY)
    }

    /// Whether events of `id` dated `at` are gone with an erasure: dated
    /// up to the erasure plus `erasure_grace_minutes`.
    fn is_erased(&self, id: &str, at: Ts) -> bool {
        self.id_erased_at(id, at).is_some()
    }

    /// The erasure of the person that held `phone`, if a registration with
    /// it dated `at` falls under it (see [`MemberProcessor::is_erased`]).
    fn phone_erased_at(&self, phone: &[u8; 32], at: Ts) -> Option<Ts> {
        self.erased_at(erased_phone_key(phone), at)
    }

    fn erased_at(&self, key: u64, at: Ts) -> Option<Ts> {
        let grace = i64::from(self.config.erasure_grace_minutes) * storepulse_core::time::MINUTE;
        self.state
            .erased
            .get(&key)
            .copied()
            .filter(|&erased_at| at <= erased_at.saturating_add(grace))
    }

    fn person(&self, slot: Slot) -> Option<&Person> {
        self.state
            .persons
            .get(slot as usize)
            .and_then(Option::as_deref)
    }

    fn person_mut(&mut self, slot: Slot) -> Option<&mut Person> {
        self.state
            .persons
            .get_mut(slot as usize)
            .and_then(Option::as_deref_mut)
    }

    /// The slot of an id's person, creating a person of its own if new.
    fn slot_of(&mut self, id: &str) -> Slot {
        if let Some(&slot) = self.state.ids.get(id) {
            return slot;
        }
        let person = Person::new(id);
        let slot = self.alloc_slot(person);
        self.state.ids.insert(id.into(), slot);
        slot
    }

    /// Advances the clock, firing the timers of the days it crosses.
    fn advance_clock(&mut self, at: Ts, out: &mut Vec<MemberOutput>) {
        if at <= self.state.clock {
            return;
        }
        let old_day = self.today();
        self.state.clock = at;
        if let Some(d) = &mut self.state.dedup {
            d.expire(at);
        }
        let today = self.today();
        if today == old_day {
            return;
        }
        while let Some(entry) = self.state.timers.first_entry() {
            if *entry.key() > today {
                break;
            }
            let (day, slots) = entry.remove_entry();
            for slot in slots {
                if self.person(slot).is_some_and(|p| p.due_day == day) {
                    if let Some(p) = self.person_mut(slot) {
                        p.due_day = NO_TIMER;
                    }
                    self.touch(slot, None, out);
                    self.schedule(slot, true);
                }
            }
        }
    }

    /// Evaluates the built-in and custom tags and the favorite store of a
    /// person as of `today` (the tests' fresh evaluation).
    #[cfg(test)]
    fn evaluate(&self, p: &Person, today: i32) -> (TagSet, Option<StoreIdx>) {
        self.evaluate_memo(p, today, &mut CelMemo::default(), None)
    }

    /// [`MemberProcessor::evaluate`] with the custom tags' memo (CEL runs
    /// only when a variable it reads changed since its last run). Every
    /// window is computed in one pass over the aggregates
    /// ([`History::windows_desc`]).
    fn evaluate_memo(
        &self,
        p: &Person,
        today: i32,
        memo: &mut CelMemo,
        probe: Option<&mut Probe>,
    ) -> (TagSet, Option<StoreIdx>) {
        let r = &self.config.tags;
        let h = &p.history;
        let plan = &self.plan;
        let stores = &self.stores;
        let id_of = |s: StoreIdx| stores.id(s);
        let mut own = [WindowStats::default(); EvalPlan::MAX_WINDOWS];
        let (stats, favorite) = match probe {
            Some(pr) => {
                // A later probe of the same member: keep the windows that
                // hold the same aggregates as on the previous probe's day.
                let skip = pr.day.map_or(0, |d| h.unchanged(d, today, &plan.windows));
                let fav = h.windows_desc(
                    today,
                    &plan.windows,
                    &mut pr.stats,
                    skip,
                    Some((plan.favorite, &id_of)),
                );
                if let Some(fav) = fav {
                    pr.favorite = fav;
                }
                pr.day = Some(today);
                (&pr.stats, pr.favorite)
            }
            None => {
                let fav = h.windows_desc(
                    today,
                    &plan.windows,
                    &mut own,
                    0,
                    Some((plan.favorite, &id_of)),
                );
                (&own, fav.flatten())
            }
        };
        let w = |i: u8| stats[usize::from(i)];
        let inputs = RuleInputs {
            high_value: w(plan.rules[0]),
            frequent: w(plan.rules[1]),
            multi_store: w(plan.rules[2]),
            online_first: w(plan.rules[3]),
            promo_responsive: w(plan.rules[4]),
            seasonal_buyer: w(plan.rules[5]),
            churn_quiet: w(plan.rules[6]),
            store_loyal: w(plan.rules[7]),
            total_sales: h.total_sales,
            days_since_registration: p
                .registered_at()
                .map(|at| (i64::from(today) - i64::from(china_day(at))).max(0) as u32),
        };
        let mut set = evaluate(r, &inputs);
        if !self.custom.is_empty() {
            let features = Features {
                w30: w(plan.custom[0]),
                w60: w(plan.custom[1]),
                w90: w(plan.custom[2]),
                w365: w(plan.custom[3]),
                total_sales: h.total_sales,
                points_balance: p.ledger.balance(),
                registered: p.registered_at().is_some(),
                builtin: set,
            };
            self.custom.evaluate_memo(&features, &mut set, memo);
        }
        (set, favorite)
    }

    fn count(&mut self, slot: Slot, sign: i64) {
        let Some(p) = self.person(slot) else { return };
        let (Some(store), tags) = (p.favorite, p.tags) else {
            return;
        };
        let Some(reg) = self.state.regulars.get_mut(usize::from(store.0)) else {
            return;
        };
        let add = |v: &mut u32| {
            *v = if sign > 0 {
                v.saturating_add(1)
            } else {
                v.saturating_sub(1)
            }
        };
        add(&mut reg.members);
        if reg.by_tag.len() < 64 {
            reg.by_tag.resize(64, 0);
        }
        for bit in tags.bits() {
            add(&mut reg.by_tag[bit as usize]);
        }
    }

    fn tag_name(&self, bit: u32) -> compact_str::CompactString {
        self.custom
            .bit_name(bit)
            .map_or_else(|| format!("tag_{bit}").into(), Into::into)
    }

    /// Re-evaluates a person after a change and emits the tag changes
    /// against its own values before.
    fn touch(&mut self, slot: Slot, cause: Option<&Id>, out: &mut Vec<MemberOutput>) {
        let Some(p) = self.person(slot) else { return };
        let before = [p.counted()];
        self.reevaluate(slot, &before, cause, out);
    }

    /// Re-evaluates a person and emits its tag changes against `before`
    /// (canonical id, tags and favourite store of each person the change
    /// touched): removals at the store each was counted at, additions at
    /// the new favourite, and, when the favourite moved, the tags kept
    /// moving with it ([`TagsMoved`]).
    fn reevaluate(
        &mut self,
        slot: Slot,
        before: &[Counted],
        cause: Option<&Id>,
        out: &mut Vec<MemberOutput>,
    ) {
        let today = self.today();
        let oldest = self.oldest_kept();
        let fold_before = self.fold_before();
        // Fold old ledger entries and prune old aggregates first.
        let fr = FranchiseeOf(&self.franchisee_of);
        let mut folded = std::mem::take(&mut self.flows);
        folded.clear();
        if let Some(p) = self
            .state
            .persons
            .get_mut(slot as usize)
            .and_then(Option::as_deref_mut)
        {
            p.history.prune(oldest);
            // Folding moves flows from "pending" to "folded": the table
            // already holds them, so it does not change.
            p.ledger.fold(fold_before, &fr, &mut folded);
        }
        self.flows = folded;
        let mut memo = std::mem::take(&mut self.scratch.memo);
        let evaluated = self.person(slot).map(|p| {
            (
                self.evaluate_memo(p, today, &mut memo, None),
                p.canonical().clone(),
            )
        });
        self.scratch.memo = memo;
        let Some(((tags, favorite), canonical)) = evaluated else {
            return;
        };
        self.mark_dirty(slot);
        self.count(slot, -1);
        if let Some(p) = self.person_mut(slot) {
            p.tags = tags;
            p.favorite = favorite;
        }
        self.count(slot, 1);
        let as_of = self.state.clock;
        let mut emit =
            |member_id: &Id, bits: u64, change: Change, store: Option<StoreIdx>, this: &Self| {
                for bit in TagSet(bits).bits() {
                    out.push(MemberOutput::Tag(TagChange {
                        member_id: member_id.clone(),
                        tag: this.tag_name(bit),
                        change,
                        as_of,
                        event_id: cause.cloned(),
                        store,
                    }));
                }
            };
        let mut old_of_canonical = (TagSet::default(), favorite);
        for (id, old, old_favorite) in before {
            if *id == canonical {
                old_of_canonical = (*old, *old_favorite);
            } else {
                emit(id, old.0, Change::Removed, *old_favorite, self);
            }
        }
        let (old, old_favorite) = old_of_canonical;
        emit(
            &canonical,
            old.0 & !tags.0,
            Change::Removed,
            old_favorite,
            self,
        );
        emit(&canonical, tags.0 & !old.0, Change::Added, favorite, self);
        let kept = old.0 & tags.0;
        if kept != 0 && old_favorite != favorite {
            out.push(MemberOutput::TagsMoved(TagsMoved {
                member_id: canonical,
                tags: TagSet(kept).bits().map(|bit| self.tag_name(bit)).collect(),
                from: old_favorite,
                to: favorite,
                as_of,
                event_id: cause.cloned(),
            }));
        }
    }

    /// Sets a person's timer: the first candidate day (cheap, on events),
    /// or the first day its tags actually change (`exact`, on timers).
    fn schedule(&mut self, slot: Slot, exact: bool) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let due = self.next_due(slot, exact, &mut scratch);
        self.scratch = scratch;
        let Some(due) = due else { return };
        let Some(p) = self.person(slot) else { return };
        let current = p.due_day;
        if due != current {
            if let Some(p) = self.person_mut(slot) {
                p.due_day = due;
            }
            if due != NO_TIMER {
                self.state.timers.entry(due).or_default().push(slot);
            }
        }
    }

    /// The day of a person's next timer (see [`MemberProcessor::schedule`]),
    /// `None` for no person.
    ///
    /// The candidate days are every day after today that is a source day
    /// ([`History::source_days`]) or a source day plus a window, and the
    /// end of `new_member`. `exact` walks them in order, merging the sorted
    /// stream of each window lazily (usually only the first few are
    /// needed), and probes each until the tags or the favorite store
    /// change; successive probes reuse the windows that did not change.
    fn next_due(&self, slot: Slot, exact: bool, sc: &mut Scratch) -> Option<i32> {
        let today = self.today();
        let p = self.person(slot)?;
        let new_member = p.registered_at().and_then(|reg| {
            let d = china_day(reg).saturating_add(self.config.tags.new_member_days as i32);
            (d > today).then_some(d)
        });
        // Folding old points entries needs no timer: it changes no answer
        // (balance and settlement are the same either way) and happens on
        // the member's next event or timer, so quiet members cost nothing.
        let mut due = NO_TIMER;
        if !exact {
            p.history
                .boundaries(today, &self.windows, |d| due = due.min(d));
            if let Some(d) = new_member {
                due = due.min(d);
            }
            return Some(due);
        }
        let Scratch {
            memo,
            days,
            cursors,
            probe,
        } = sc;
        p.history.source_days(days);
        let today64 = i64::from(today);
        // Stream 0: the source days themselves (a merged history newer
        // than the clock enters on its own day); stream 1 + i: plus
        // `windows[i]`.
        let offset = |j: usize| {
            j.checked_sub(1)
                .and_then(|i| self.windows.get(i))
                .map_or(0, |&w| i64::from(w))
        };
        let streams = self.windows.len() + 1;
        cursors.clear();
        for j in 0..streams {
            let o = offset(j);
            cursors.push(days.partition_point(|&d| i64::from(d) + o <= today64));
        }
        let mut new_member = new_member.map(i64::from);
        probe.day = None;
        let now = (p.tags, p.favorite);
        let (mut probes, mut last) = (0usize, None::<i32>);
        loop {
            let mut next = new_member;
            for (j, &c) in cursors.iter().enumerate() {
                if let Some(&d) = days.get(c) {
                    let cand = i64::from(d) + offset(j);
                    next = Some(next.map_or(cand, |n| n.min(cand)));
                }
            }
            let Some(next) = next else { break };
            for (j, c) in cursors.iter_mut().enumerate() {
                if days
                    .get(*c)
                    .is_some_and(|&d| i64::from(d) + offset(j) == next)
                {
                    *c += 1;
                }
            }
            if new_member == Some(next) {
                new_member = None;
            }
            let day = i32::try_from(next).unwrap_or(i32::MAX);
            if last == Some(day) {
                continue; // several past i32::MAX
            }
            if probes == MAX_TIMER_PROBES {
                // More candidates than probes: come back on the last one.
                due = last.unwrap_or(NO_TIMER);
                break;
            }
            probes += 1;
            if self.evaluate_memo(p, day, memo, Some(probe)) != now {
                due = day;
                break;
            }
            last = Some(day);
        }
        Some(due)
    }

    /// Changes a person's ledger, keeping the settlement table equal to the
    /// flows of all folded entries plus every member's pending flows, and
    /// emits new overdraft alerts.
    fn with_ledger(
        &mut self,
        slot: Slot,
        out: &mut Vec<MemberOutput>,
        change: impl FnOnce(&mut Ledger, Ts, &FranchiseeOf<'_>, &mut Vec<Flow>, &mut Vec<Overdraft>),
    ) {
        let fold_before = self.fold_before();
        let fr = FranchiseeOf(&self.franchisee_of);
        let Some(p) = self
            .state
            .persons
            .get_mut(slot as usize)
            .and_then(Option::as_deref_mut)
        else {
            return;
        };
        let flows = &mut self.flows;
        flows.clear();
        p.ledger.pending_flows(&fr, flows);
        self.state.settlement.apply(flows, &fr, -1);
        flows.clear();
        self.overdrafts.clear();
        change(&mut p.ledger, fold_before, &fr, flows, &mut self.overdrafts);
        p.ledger.fold(fold_before, &fr, flows);
        self.state.settlement.apply(flows, &fr, 1);
        flows.clear();
        p.ledger.pending_flows(&fr, flows);
        self.state.settlement.apply(flows, &fr, 1);
        p.ledger.find_overdrafts(&mut self.overdrafts);
        let member_id = p.canonical().clone();
        for o in self.overdrafts.drain(..) {
            out.push(MemberOutput::Overdraft(Box::new(PointsOverdraftAlert {
                alert_id: format!("points_overdraft:{}", o.event_id),
                rule: "points_overdraft".into(),
                member_id: member_id.clone(),
                store_id: self.stores.id(o.store).to_string(),
                event_id: o.event_id,
                occurred_at: o.at,
                points: o.points,
                balance_after: o.balance_after,
            })));
        }
    }

    fn add_entry(&mut self, slot: Slot, entry: LedgerEntry, out: &mut Vec<MemberOutput>) {
        self.with_ledger(slot, out, |ledger, fold_before, fr, flows, overdrafts| {
            ledger.add(entry, fold_before, fr, flows, overdrafts);
        });
    }

    /// Registers `id` with `phone` at `at` (a `member_register`, or a
    /// handover from another partition in Kafka mode). Returns false when
    /// the phone's person was erased after `at` (within the grace): the
    /// registration is one the erasure would have removed had it arrived
    /// first, so `id` is erased with it instead (its history, if it had
    /// any, goes, and [`MemberErased`] names it).
    pub(crate) fn register(
        &mut self,
        event_id: &Id,
        at: Ts,
        id: &Id,
        phone: [u8; 32],
        out: &mut Vec<MemberOutput>,
    ) -> bool {
        let id_slot = self.state.ids.get(id.as_str()).copied();
        let phone_slot = self.state.phones.get(&phone).copied();
        if phone_slot.is_none() {
            if let Some(erased_at) = self.phone_erased_at(&phone, at) {
                self.erase(id, erased_at, event_id, out);
                return false;
            }
        }
        // Already registered with this phone: keep the earliest time.
        if let Some(slot) = id_slot {
            if self.person(slot).is_some_and(|p| p.phone == Some(phone)) {
                // An earlier registration can make this id the canonical
                // one: the changes are against the person as it was.
                let before: Vec<_> = self.person(slot).map(Person::counted).into_iter().collect();
                if let Some(p) = self.person_mut(slot) {
                    if let Some(m) = p.ids.iter_mut().find(|m| m.id == *id) {
                        m.registered_at = Some(m.registered_at.map_or(at, |t| t.min(at)));
                    }
                    p.sort_ids();
                }
                self.reevaluate(slot, &before, Some(event_id), out);
                self.schedule(slot, false);
                return true;
            }
        }
        match (id_slot, phone_slot) {
            (_, None) => {
                // The first id of this phone: the id's person (new or with
                // history) becomes the phone's person.
                let slot = self.slot_of(id);
                let before = self.person(slot).map(Person::counted);
                if let Some(p) = self.person_mut(slot) {
                    p.phone = Some(phone);
                    if let Some(m) = p.ids.iter_mut().find(|m| m.id == *id) {
                        m.registered_at = Some(at);
                    }
                    p.sort_ids();
                }
                self.state.phones.insert(phone, slot);
                // Published under its id until now, under its phone from now.
                self.mark_retired(id.to_string());
                let before: Vec<_> = before.into_iter().collect();
                self.reevaluate(slot, &before, Some(event_id), out);
                self.schedule(slot, false);
            }
            (None, Some(slot)) => {
                // A new alias of a known person.
                let before = self.person(slot).map(Person::counted);
                if let Some(p) = self.person_mut(slot) {
                    p.ids.push(MemberId {
                        id: id.clone(),
                        registered_at: Some(at),
                    });
                    p.ids.shrink_to_fit();
                    p.sort_ids();
                }
                self.state.ids.insert(id.clone(), slot);
                let before: Vec<_> = before.into_iter().collect();
                self.reevaluate(slot, &before, Some(event_id), out);
                self.schedule(slot, false);
            }
            (Some(own), Some(slot)) => {
                // An id with history of its own joins the phone's person:
                // merge (the late link).
                self.merge(own, slot, id, at, event_id, out);
            }
        }
        true
    }

    /// Merges person `from` (an unregistered id with history) into person
    /// `into`, registering `id` at `at`.
    fn merge(
        &mut self,
        from: Slot,
        into: Slot,
        id: &Id,
        at: Ts,
        cause: &Id,
        out: &mut Vec<MemberOutput>,
    ) {
        let before: Vec<Counted> = [from, into]
            .iter()
            .filter_map(|&s| self.person(s).map(Person::counted))
            .collect();
        let Some(absorbed) = self.take_slot(from) else {
            return;
        };
        self.mark_retired(absorbed.canonical().to_string());
        // Take `from`'s pending flows out of the table; `into`'s are taken
        // out by `with_ledger` below.
        let fr = FranchiseeOf(&self.franchisee_of);
        self.flows.clear();
        absorbed.ledger.pending_flows(&fr, &mut self.flows);
        let flows = std::mem::take(&mut self.flows);
        self.state.settlement.apply(&flows, &fr, -1);
        self.flows = flows;
        let Person {
            ids,
            history,
            ledger,
            ..
        } = absorbed;
        for m in &ids {
            self.state.ids.insert(m.id.clone(), into);
        }
        if let Some(p) = self.person_mut(into) {
            for mut m in ids {
                if m.id == *id {
                    m.registered_at = Some(at);
                }
                p.ids.push(m);
            }
            p.ids.shrink_to_fit();
            p.sort_ids();
            p.history.merge(history);
        }
        self.with_ledger(into, out, |mine, _, fr, flows, _| {
            mine.merge(ledger, fr, flows);
        });
        self.reevaluate(into, &before, Some(cause), out);
        self.schedule(into, false);
    }

    fn erase(&mut self, id: &str, at: Ts, event_id: &Id, out: &mut Vec<MemberOutput>) {
        self.state.mark_erased(xxh3_64(id.as_bytes()), at);
        let Some(&slot) = self.state.ids.get(id) else {
            return;
        };
        let Some(p) = self.take_slot(slot) else {
            return;
        };
        for m in &p.ids {
            self.state.ids.remove(m.id.as_str());
            self.state.mark_erased(xxh3_64(m.id.as_bytes()), at);
        }
        if let Some(phone) = p.phone {
            self.state.phones.remove(&phone);
            // A registration with this phone from before the erasure that
            // arrives after it (an alias's, through another partition in
            // Kafka mode) must not bring the person back.
            self.state.mark_erased(erased_phone_key(&phone), at);
        }
        let canonical = p.canonical().clone();
        self.mark_retired(snapshot_key(&p));
        out.push(MemberOutput::Erased(Box::new(MemberErased {
            member_id: canonical,
            aliases: p.ids.iter().skip(1).map(|m| m.id.clone()).collect(),
            event_id: event_id.clone(),
            erased_at: at,
        })));
    }

    /// Erases a member on request (`DELETE /v1/members/{id}`), as a
    /// `member_erase` at the current clock would. Returns whether it existed.
    pub fn erase_now(&mut self, id: &str, request_id: &Id, out: &mut Vec<MemberOutput>) -> bool {
        let existed = self.state.ids.contains_key(id);
        let at = self.state.clock.max(0);
        self.erase(id, at, request_id, out);
        existed
    }

    fn apply_member_event(
        &mut self,
        event: &Event,
        id: &Id,
        out: &mut Vec<MemberOutput>,
    ) -> Outcome {
        let at = event.occurred_at;
        let day = china_day(at);
        match &event.body {
            EventBody::Sale(sale) => {
                let slot = self.slot_of(id);
                let facts = SaleFacts {
                    day,
                    store: event.store,
                    online: event.channel.is_online(),
                    lines: sale.lines.len() as u32,
                    promo_lines: sale.lines.iter().filter(|l| l.promo).count() as u32,
                    total_cents: sale.total_cents,
                };
                let oldest = self.oldest_kept();
                if let Some(p) = self.person_mut(slot) {
                    p.history.add_sale(facts, oldest);
                }
                let points = (sale.total_cents / 100) as i64;
                if points > 0 {
                    self.add_entry(slot, self.entry(event, EntryKind::Earn, points), out);
                }
                self.touch(slot, Some(&event.event_id), out);
                self.schedule(slot, false);
            }
            EventBody::Return(ret) => {
                let slot = self.slot_of(id);
                let oldest = self.oldest_kept();
                if let Some(p) = self.person_mut(slot) {
                    p.history.add_refund(day, ret.refund_cents, oldest);
                }
                let points = (ret.refund_cents / 100) as i64;
                if points > 0 {
                    self.add_entry(slot, self.entry(event, EntryKind::TakeBack, points), out);
                }
                self.touch(slot, Some(&event.event_id), out);
                self.schedule(slot, false);
            }
            EventBody::PointsRedeem(redeem) => {
                let slot = self.slot_of(id);
                let points = i64::try_from(redeem.points).unwrap_or(i64::MAX);
                self.add_entry(slot, self.entry(event, EntryKind::Redeem, points), out);
                self.touch(slot, Some(&event.event_id), out);
                self.schedule(slot, false);
            }
            EventBody::MemberRegister(reg) => {
                // The parser checked 64 lower-case hex characters.
                if let Some(phone) = phone_bytes(&reg.phone_hash) {
                    if !self.register(&event.event_id, at, id, phone, out) {
                        return Outcome::Ignored;
                    }
                }
            }
            EventBody::MemberErase => self.erase(id, at, &event.event_id, out),
            _ => return Outcome::Ignored,
        }
        Outcome::Applied
    }

    fn entry(&self, event: &Event, kind: EntryKind, points: i64) -> LedgerEntry {
        LedgerEntry {
            at: event.occurred_at,
            event_id: event.event_id.clone(),
            kind,
            points,
            store: event.store,
            alerted: false,
        }
    }

    /// Checks what would make a registration fail, before any state changes.
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        let (EventBody::MemberRegister(reg), Some(id)) = (&event.body, &event.member_id) else {
            return Ok(());
        };
        let Some(phone) = phone_bytes(&reg.phone_hash) else {
            return Ok(());
        };
        let Some(p) = self
            .state
            .ids
            .get(id.as_str())
            .and_then(|&s| self.person(s))
        else {
            return Ok(());
        };
        let registered = p
            .ids
            .iter()
            .any(|m| m.id == *id && m.registered_at.is_some());
        if registered && p.phone.is_some_and(|known| known != phone) {
            return Err(Rejection::semantic(
                "phone_hash",
                "member_id is already registered with a different phone_hash",
                &event.event_id,
            ));
        }
        Ok(())
    }

    /// The franchisee names, by index (settlement rows use the index).
    pub fn franchisee_name(&self, index: u16) -> &str {
        self.franchisees
            .get(usize::from(index))
            .map_or("", String::as_str)
    }

    /// Text of the clock for answers.
    pub fn clock_text(&self) -> Option<String> {
        (self.state.clock != Ts::MIN).then(|| format_china(self.state.clock))
    }
}

impl MemberProcessor {
    /// The first half of [`Processor::apply`]: checks the event, de-duplicates
    /// it and advances the clock. `Ok(false)` for a duplicate.
    ///
    /// # Errors
    /// A registration with a second phone, or an event too late to tell
    /// from a duplicate.
    pub fn admit(&mut self, event: &Event, out: &mut Vec<MemberOutput>) -> Result<bool, Rejection> {
        self.check(event)?;
        if let Some(dedup) = &mut self.state.dedup {
            match dedup.check(&event.event_id, event.occurred_at, self.state.clock) {
                DedupVerdict::New => {}
                DedupVerdict::Duplicate => return Ok(false),
                DedupVerdict::TooLate => {
                    return Err(Rejection::semantic(
                        "occurred_at",
                        format!(
                            "event is more than {}h behind the member clock ({}); too late to tell from a duplicate: raise members.allowed_lateness_hours to accept it",
                            self.config.allowed_lateness_hours,
                            format_china(self.state.clock)
                        ),
                        &event.event_id,
                    ))
                }
            }
        }
        self.advance_clock(event.occurred_at, out);
        Ok(true)
    }

    /// The second half of [`Processor::apply`], for an admitted event.
    pub fn apply_admitted(&mut self, event: &Event, out: &mut Vec<MemberOutput>) -> Outcome {
        let Some(id) = &event.member_id else {
            return Outcome::Ignored;
        };
        if let Some(erased_at) = self.id_erased_at(id, event.occurred_at) {
            // A registration of an id erased before its link was known: the
            // person it links to goes too (as had it arrived first).
            if let EventBody::MemberRegister(reg) = &event.body {
                if let Some(phone) = phone_bytes(&reg.phone_hash) {
                    self.erase_phone(&phone, erased_at, &event.event_id, out);
                }
            }
            return Outcome::Ignored;
        }
        self.apply_member_event(event, id, out)
    }

    /// When `id` was erased, if events of it dated `at` fall under the
    /// erasure ([`MemberProcessor::is_erased`]).
    pub(crate) fn id_erased_at(&self, id: &str, at: Ts) -> Option<Ts> {
        self.erased_at(xxh3_64(id.as_bytes()), at)
    }

    /// Erases the person registered with `phone` as of `at` (an id of it
    /// was erased before its registration arrived), or, with no such
    /// person here yet, marks the phone erased so that its registrations
    /// from before are ignored.
    pub(crate) fn erase_phone(
        &mut self,
        phone: &[u8; 32],
        at: Ts,
        cause: &Id,
        out: &mut Vec<MemberOutput>,
    ) {
        let holder = self
            .state
            .phones
            .get(phone)
            .and_then(|&slot| self.person(slot))
            .map(|p| p.canonical().clone());
        match holder {
            Some(id) => self.erase(&id, at, cause, out),
            None => self.state.mark_erased(erased_phone_key(phone), at),
        }
    }

    /// Remembers a control record's id (Kafka mode); false when seen before.
    pub(crate) fn remember(&mut self, id: &str, at: Ts) -> bool {
        match &mut self.state.dedup {
            Some(dedup) => dedup.check(id, at, self.state.clock) != DedupVerdict::Duplicate,
            None => true,
        }
    }

    /// Whether an id is a member of its own with no registration (the only
    /// kind of person that moves between partitions).
    pub(crate) fn is_unregistered(&self, id: &str) -> bool {
        self.person_by_id(id)
            .is_some_and(|p| p.phone.is_none() && p.ids.len() == 1)
    }

    /// Takes an unregistered member out of this processor (Kafka mode: its
    /// registration belongs to another partition), emitting the removal of
    /// its tags here. Its pending points flows leave this settlement table
    /// with it.
    pub(crate) fn take_unregistered(
        &mut self,
        id: &str,
        cause: &Id,
        out: &mut Vec<MemberOutput>,
    ) -> Option<PersonParts> {
        if !self.is_unregistered(id) {
            return None;
        }
        let slot = *self.state.ids.get(id)?;
        let person = self.take_slot(slot)?;
        self.state.ids.remove(id);
        self.mark_retired(id.to_string());
        let fr = FranchiseeOf(&self.franchisee_of);
        self.flows.clear();
        person.ledger.pending_flows(&fr, &mut self.flows);
        self.state.settlement.apply(&self.flows, &fr, -1);
        for bit in person.tags.bits() {
            out.push(MemberOutput::Tag(TagChange {
                member_id: person.canonical().clone(),
                tag: self.tag_name(bit),
                change: Change::Removed,
                as_of: self.state.clock,
                event_id: Some(cause.clone()),
                store: person.favorite,
            }));
        }
        Some(PersonParts {
            history: person.history,
            ledger: person.ledger,
        })
    }

    /// Adds a moved member's history and ledger under `id` (a person of its
    /// own until its registration, which follows, merges it).
    pub(crate) fn insert_parts(&mut self, id: &str, parts: PersonParts) {
        let slot = self.slot_of(id);
        if let Some(p) = self.person_mut(slot) {
            p.history.merge(parts.history);
        }
        let mut ignored = Vec::new();
        self.with_ledger(slot, &mut ignored, |mine, _, fr, flows, _| {
            mine.merge(parts.ledger, fr, flows);
        });
    }

    /// Marks an id erased at `at` (an alias erased on another partition).
    pub(crate) fn forget(&mut self, id: &str, at: Ts) {
        self.state.mark_erased(xxh3_64(id.as_bytes()), at);
    }

    /// Advances the clock (Kafka mode ticks every partition with the
    /// instance's clock, so quiet partitions' tags move on too).
    pub fn tick(&mut self, at: Ts, out: &mut Vec<MemberOutput>) {
        self.advance_clock(at, out);
    }
}

impl MemberState {
    /// Records an erasure at `at` under `key` (an id's `xxh3`, or
    /// [`erased_phone_key`]), keeping the latest.
    fn mark_erased(&mut self, key: u64, at: Ts) {
        let e = self.erased.entry(key).or_insert(at);
        *e = (*e).max(at);
    }
}

/// The key of an erased person's phone in [`MemberState`]'s erasure map
/// (beside the ids' `xxh3`; its own seed keeps the two apart).
fn erased_phone_key(phone: &[u8; 32]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(phone, 0x5068_6f6e_6545_7261)
}

/// A member's history and ledger as they move between partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonParts {
    pub history: History,
    pub ledger: Ledger,
}

impl Processor for MemberProcessor {
    type Output = MemberOutput;

    fn apply(&mut self, event: &Event, out: &mut Vec<MemberOutput>) -> Result<Outcome, Rejection> {
        if !self.admit(event, out)? {
            return Ok(Outcome::Duplicate);
        }
        Ok(self.apply_admitted(event, out))
    }

    fn on_tick(&mut self, event_time: Ts, out: &mut Vec<MemberOutput>) {
        self.advance_clock(event_time, out);
    }
}

#[cfg(test)]
mod tests;
