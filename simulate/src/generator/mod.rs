//! The pure event generator: a seeded stream of contract v1 events.
//!
//! [`Generator`] does no I/O and reads no clock: the same
//! [`GeneratorConfig`] (seed, start time, options) and store master give the
//! same bytes, event for event. Event time starts at `start` and advances by
//! an exponentially distributed gap per event (mean `mean_gap`), so a stream
//! is the same whether it is written to a file at full speed or paced to a
//! server.
//!
//! The stream:
//! - opens with stock receipts that stock every store with every SKU
//!   (dated one minute before `start`, before any jittered event);
//! - then mixes, per fresh draw, about 87% sales (1-5 lines, ~15% online
//!   orders fulfilled by a store or the distribution centre, ~30% with a
//!   member), 3% returns (a quarter at another store than the sale's), 5%
//!   stock receipts (replenishing what runs low), 0.5% stocktakes, 0.6%
//!   transfers (the `transfer_in` follows its `transfer_out` 20-2000 events
//!   later, or once 30 min-4 h of event time have passed), 2% member
//!   registrations (8% of members also register an app id with the same
//!   phone: an alias), 1% points redemptions and rare erasures;
//! - re-sends a `duplicate_share` of events byte for byte (POS retries),
//!   emits a `malformed_share` of invalid events ([`MalformedKind`]) and
//!   shifts `occurred_at` back by up to `jitter`;
//! - plants fraud episodes on request: one member, or one payment account,
//!   buying >= 5,200 yuan in 3-4 stores within 25 minutes of event time
//!   ([`PlantedFraud`]). Ordinary traffic never matches a fraud rule: a
//!   member's counter sales stay at one store for 31 minutes (plus the
//!   jitter) after each sale, anonymous payment tokens are never reused, and
//!   no ordinary sale reaches 15,000 yuan.

mod fraud;
mod malformed;
mod members;
mod sales;
mod stock;
mod world;

pub use malformed::MalformedKind;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1};
use serde::Serialize;
use storepulse_core::{EventType, PaymentMethod, StoreMaster, Ts};

use crate::catalogue::Catalogue;
use crate::error::SimulateError;
use crate::timefmt;
use crate::wire::{Body, Record, SaleLine, Wire};
use world::World;

use storepulse_core::time::{MINUTE, SECOND};
/// What follows an event (a return its sale) is at least this much later.
const MILLI: Ts = 1_000_000;

// Event mix of fresh draws; sales take the rest.
const P_RETURN: f64 = 0.03;
const P_RECEIPT: f64 = 0.05;
const P_COUNT: f64 = 0.005;
const P_TRANSFER: f64 = 0.006;
const P_REGISTER: f64 = 0.02;
const P_REDEEM: f64 = 0.01;
const P_ERASE: f64 = 0.0002;

/// Share of sales that are online orders.
const P_ONLINE: f64 = 0.15;
/// Lines per opening receipt.
const OPENING_LINES: usize = 250;
/// How many recent sales returns can refer to.
const SALES_MEMORY: usize = 4096;
/// How many recent events a duplicate can copy.
const DUPLICATE_MEMORY: usize = 64;
/// Ordinary sales stay below this (the large-purchase rule is at 20,000 yuan).
const MAX_REGULAR_SALE_CENTS: u64 = 1_500_000;
/// Planted fraud happens within this span of event time (the rule: 30 min).
const FRAUD_SPAN: Ts = 25 * MINUTE;
/// Planted fraud totals at least this (the rule: 500,000 cents).
const FRAUD_MIN_TOTAL: u64 = 520_000;
/// A member's counter shopping stays at one store this long after a sale
/// (plus the jitter): longer than the fraud rules' 30-minute window.
const STAY: Ts = 31 * MINUTE;

/// How planted fraud is spread over the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum FraudPlan {
    /// No planted fraud.
    None,
    /// Each fresh event starts an episode with this probability.
    Share(f64),
    /// Exactly `episodes` episodes, evenly spread over the first
    /// `over_events` events.
    Count { episodes: u32, over_events: u64 },
}

/// Everything that determines a generated stream (with the store master).
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Same seed, same stream.
    pub seed: u64,
    /// Catalogue size.
    pub skus: usize,
    /// Member population.
    pub members: usize,
    /// Share of emitted events that re-send an earlier event byte for byte.
    pub duplicate_share: f64,
    /// Share of emitted events that are invalid.
    pub malformed_share: f64,
    /// `occurred_at` is shifted back by a uniform amount up to this.
    pub jitter: Duration,
    /// Planted fraud.
    pub fraud: FraudPlan,
    /// Event time of the first event (ns since the epoch).
    pub start: Ts,
    /// Mean event time between consecutive events.
    pub mean_gap: Duration,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            skus: 5_000,
            members: 20_000,
            duplicate_share: 0.01,
            malformed_share: 0.0,
            jitter: Duration::ZERO,
            fraud: FraudPlan::None,
            // 2026-11-25T08:00:00+08:00: a fixed default keeps the pure
            // generator reproducible; the CLI defaults to now.
            start: 1_795_651_200 * SECOND,
            mean_gap: Duration::from_millis(5),
        }
    }
}

impl GeneratorConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// The option that is out of range, and why.
    pub fn validate(&self) -> Result<(), SimulateError> {
        let share = |name: &'static str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(SimulateError::option(
                    name,
                    format!("{v} is not a share between 0 and 1"),
                ))
            }
        };
        share("duplicate-share", self.duplicate_share)?;
        share("malformed-share", self.malformed_share)?;
        if self.duplicate_share + self.malformed_share > 1.0 {
            return Err(SimulateError::option(
                "malformed-share",
                "duplicate and malformed shares add up to more than 1",
            ));
        }
        if let FraudPlan::Share(p) = self.fraud {
            share("fraud-share", p)?;
        }
        if !(1..=1_000_000).contains(&self.skus) {
            return Err(SimulateError::option(
                "skus",
                "must be between 1 and 1,000,000",
            ));
        }
        if self.members > 10_000_000 {
            return Err(SimulateError::option(
                "members",
                "must be at most 10,000,000",
            ));
        }
        // Years 2000-2200: four-digit years, and far from the end of `Ts`.
        if !(946_684_800 * SECOND..=7_258_118_400 * SECOND).contains(&self.start) {
            return Err(SimulateError::option(
                "start",
                "must be between the years 2000 and 2200",
            ));
        }
        if self.jitter > Duration::from_secs(365 * 86_400) {
            return Err(SimulateError::option("jitter", "must be at most a year"));
        }
        if self.mean_gap > Duration::from_secs(86_400) {
            return Err(SimulateError::option(
                "speedup",
                "more than a day of event time per event",
            ));
        }
        Ok(())
    }
}

/// What one call of [`Generator::next_into`] emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitted {
    /// A valid event, seen for the first time.
    Event(EventType),
    /// A byte-for-byte copy of an earlier valid event.
    Duplicate(EventType),
    /// An invalid event the pipeline must reject.
    Malformed(MalformedKind),
}

impl Emitted {
    /// Whether the pipeline should accept (or deduplicate) it.
    pub fn is_valid(self) -> bool {
        !matches!(self, Emitted::Malformed(_))
    }

    /// Whether the bytes are well-formed JSON (they can go in a JSON array).
    pub fn is_json(self) -> bool {
        match self {
            Emitted::Malformed(kind) => kind.is_json(),
            _ => true,
        }
    }
}

/// Counts of what the generator emitted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GeneratorStats {
    /// Events emitted, all kinds.
    pub events: u64,
    pub sales: u64,
    pub returns: u64,
    pub stock_receipts: u64,
    pub stock_counts: u64,
    pub transfers_out: u64,
    pub transfers_in: u64,
    pub member_registers: u64,
    pub points_redeems: u64,
    pub member_erases: u64,
    /// Of `stock_receipts`, those that stocked the stores at the start.
    pub opening_receipts: u64,
    /// Re-sent copies.
    pub duplicates: u64,
    /// Invalid events.
    pub malformed: u64,
    pub malformed_by_kind: BTreeMap<MalformedKind, u64>,
    /// Fraud episodes started.
    pub fraud_episodes: u64,
    /// Sales of planted fraud emitted.
    pub fraud_sales: u64,
}

impl GeneratorStats {
    fn count(&mut self, emitted: Emitted) {
        self.events += 1;
        let event_type = match emitted {
            Emitted::Event(t) => t,
            Emitted::Duplicate(_) => {
                self.duplicates += 1;
                return;
            }
            Emitted::Malformed(kind) => {
                self.malformed += 1;
                *self.malformed_by_kind.entry(kind).or_default() += 1;
                return;
            }
        };
        let counter = match event_type {
            EventType::Sale => &mut self.sales,
            EventType::Return => &mut self.returns,
            EventType::StockReceipt => &mut self.stock_receipts,
            EventType::StockCount => &mut self.stock_counts,
            EventType::TransferOut => &mut self.transfers_out,
            EventType::TransferIn => &mut self.transfers_in,
            EventType::MemberRegister => &mut self.member_registers,
            EventType::PointsRedeem => &mut self.points_redeems,
            EventType::MemberErase => &mut self.member_erases,
        };
        *counter += 1;
    }
}

/// A planted fraud episode: what the pipeline's fraud rules should find.
#[derive(Debug, Clone, Serialize)]
pub struct PlantedFraud {
    /// `multi_store_large_purchase` (key: member) or `shared_payment_account`
    /// (key: `payment.account_ref`).
    pub rule: &'static str,
    /// The member id (its first registered id) or the account token.
    pub key: String,
    pub event_ids: Vec<String>,
    pub order_ids: Vec<String>,
    pub stores: Vec<String>,
    pub total_cents: u64,
    /// `occurred_at` of the sales emitted so far.
    pub occurred_at: Vec<String>,
}

impl PlantedFraud {
    /// Whether every sale of the episode has been emitted.
    pub fn complete(&self) -> bool {
        self.occurred_at.len() == self.event_ids.len()
    }
}

/// A sale returns can refer to.
struct PastSale {
    order_id: String,
    store: u16,
    member: Option<u32>,
    member_id: Option<String>,
    lines: Vec<SaleLine>,
    total: u64,
    at: Ts,
    returned: bool,
}

/// An event waiting for its time: the arriving side of a transfer, or a sale
/// of a fraud episode.
struct Scheduled {
    /// Emitted once this many events have been emitted ...
    due_line: u64,
    /// ... or once the clock reaches this, whichever first.
    due_time: Ts,
    record: Record,
    kind: ScheduledKind,
}

enum ScheduledKind {
    /// `occurred_at` is at least this (after the `transfer_out`).
    TransferIn { not_before: Ts },
    /// `occurred_at` is at most `due_time` (the episode stays in its span).
    Fraud { episode: usize, member: Option<u32> },
}

/// What to do with a record after it is written.
enum After {
    Nothing,
    RememberSale(Option<u32>),
}

/// Seeded generator of contract v1 events; see the module documentation.
pub struct Generator {
    cfg: GeneratorConfig,
    rng: StdRng,
    stores: Arc<StoreMaster>,
    cat: Catalogue,
    world: World,
    /// Seed-derived tag inside every id, so that runs with other seeds do not
    /// collide with this one's ids.
    tag: String,
    unknown_store: String,
    phone_offset: u64,
    clock: Ts,
    lines: u64,
    next_id: u64,
    jitter: Ts,
    mean_gap: f64,
    p_malformed: f64,
    opening: Option<(u16, usize)>,
    scheduled: Vec<Scheduled>,
    due_line: u64,
    due_time: Ts,
    sales: VecDeque<PastSale>,
    recent: Vec<(Vec<u8>, EventType)>,
    recent_next: usize,
    register_cursor: usize,
    alias_queue: VecDeque<u32>,
    fraud_next_start: u64,
    fraud_interval: u64,
    fraud_spacing: u64,
    planted: Vec<PlantedFraud>,
    stats: GeneratorStats,
    scratch: Vec<u8>,
}

impl Generator {
    /// A generator over `stores`.
    ///
    /// # Errors
    /// The configuration is out of range, the master has no store that sells
    /// over the counter, or fraud is requested with fewer than 3 of them.
    pub fn new(cfg: GeneratorConfig, stores: Arc<StoreMaster>) -> Result<Self, SimulateError> {
        cfg.validate()?;
        let cells = stores.len().saturating_mul(cfg.skus);
        if cells > 100_000_000 {
            return Err(SimulateError::option(
                "skus",
                format!(
                    "{} stores x {} SKUs is too much stock to track",
                    stores.len(),
                    cfg.skus
                ),
            ));
        }
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let cat = Catalogue::new(cfg.skus, &mut rng);
        let world = World::new(&stores, &cat, cfg.members, &mut rng).ok_or_else(|| {
            SimulateError::UnusableStores {
                reason: "no store sells over the counter (all are distribution centres)".into(),
            }
        })?;
        let fraud_requested = match cfg.fraud {
            FraudPlan::None => false,
            FraudPlan::Share(p) => p > 0.0,
            FraudPlan::Count { episodes, .. } => episodes > 0,
        };
        if fraud_requested && world.pos_stores.len() < 3 {
            return Err(SimulateError::UnusableStores {
                reason: "planted fraud needs at least 3 stores that sell over the counter".into(),
            });
        }
        let (fraud_interval, fraud_spacing) = match cfg.fraud {
            FraudPlan::Count {
                episodes,
                over_events,
            } => {
                let interval = (over_events / (u64::from(episodes) + 1)).max(1);
                (interval, (interval / 8).clamp(1, 200))
            }
            _ => (u64::MAX, 200),
        };
        let tag = base36(mix(cfg.seed ^ 0x05ee_d7a9), 5);
        let mut unknown_store = "ZZ-404".to_owned();
        while stores.lookup(&unknown_store).is_some() {
            unknown_store.push('X');
        }
        let jitter = i64::try_from(cfg.jitter.as_nanos()).unwrap_or(i64::MAX);
        let p_malformed = if cfg.duplicate_share < 1.0 {
            (cfg.malformed_share / (1.0 - cfg.duplicate_share)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        Ok(Self {
            rng,
            cat,
            world,
            tag,
            unknown_store,
            phone_offset: mix(cfg.seed ^ 0x9406e) % 100_000_000,
            clock: cfg.start,
            lines: 0,
            next_id: 1,
            jitter,
            mean_gap: cfg.mean_gap.as_nanos() as f64,
            p_malformed,
            opening: Some((0, 0)),
            scheduled: Vec::new(),
            due_line: u64::MAX,
            due_time: Ts::MAX,
            sales: VecDeque::with_capacity(SALES_MEMORY),
            recent: Vec::new(),
            recent_next: 0,
            register_cursor: 0,
            alias_queue: VecDeque::new(),
            fraud_next_start: fraud_interval,
            fraud_interval,
            fraud_spacing,
            planted: Vec::new(),
            stats: GeneratorStats::default(),
            scratch: Vec::with_capacity(1024),
            stores,
            cfg,
        })
    }

    /// Appends the next event to `out` as one line of JSON, without the
    /// newline, and says what it was.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Emitted {
        let emitted = self.step(out);
        self.lines += 1;
        self.stats.count(emitted);
        emitted
    }

    /// The next event as a JSON line, without the newline.
    pub fn next_event(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.next_into(&mut out);
        out
    }

    /// What has been emitted so far.
    pub fn stats(&self) -> &GeneratorStats {
        &self.stats
    }

    /// The planted fraud episodes started so far.
    pub fn planted_fraud(&self) -> &[PlantedFraud] {
        &self.planted
    }

    /// The event-time clock (before jitter).
    pub fn clock(&self) -> Ts {
        self.clock
    }

    /// The configuration.
    pub fn config(&self) -> &GeneratorConfig {
        &self.cfg
    }

    // ------------------------------------------------------------ dispatch

    fn step(&mut self, out: &mut Vec<u8>) -> Emitted {
        if let Some(record) = self.next_opening() {
            return self.emit(record, out, After::Nothing, false);
        }
        let gap: f64 = Exp1.sample(&mut self.rng);
        self.clock = self.clock.saturating_add((gap * self.mean_gap) as i64);

        if self.cfg.duplicate_share > 0.0
            && !self.recent.is_empty()
            && self.rng.gen_bool(self.cfg.duplicate_share)
        {
            let (bytes, event_type) = &self.recent[self.rng.gen_range(0..self.recent.len())];
            out.extend_from_slice(bytes);
            return Emitted::Duplicate(*event_type);
        }
        if self.p_malformed > 0.0 && self.rng.gen_bool(self.p_malformed) {
            return self.malformed(out);
        }
        if let Some(s) = self.take_due() {
            return self.emit_scheduled(s, out);
        }
        if self.fraud_starts() {
            self.start_fraud();
            if let Some(s) = self.take_due() {
                return self.emit_scheduled(s, out);
            }
        }

        let roll: f64 = self.rng.gen();
        let mut threshold = 0.0;
        let mut next = |p: f64| {
            threshold += p;
            roll < threshold
        };
        let record = if next(P_RETURN) {
            self.return_event()
        } else if next(P_RECEIPT) {
            Some(self.receipt())
        } else if next(P_COUNT) {
            Some(self.stock_count())
        } else if next(P_TRANSFER) {
            self.transfer_out()
        } else if next(P_REGISTER) {
            self.register()
        } else if next(P_REDEEM) {
            self.redeem()
        } else if next(P_ERASE) {
            self.erase()
        } else {
            None
        };
        match record {
            Some(record) => self.emit(record, out, After::Nothing, true),
            None => {
                let (record, member) = self.sale();
                self.emit(record, out, After::RememberSale(member), true)
            }
        }
    }

    /// Serialises a valid record, remembers it for duplicates.
    fn emit(
        &mut self,
        record: Record,
        out: &mut Vec<u8>,
        after: After,
        may_repeat: bool,
    ) -> Emitted {
        let start = out.len();
        write_json(
            out,
            &Wire {
                record: &record,
                stores: &self.stores,
                catalogue: &self.cat,
            },
        );
        let event_type = record.body.event_type();
        if may_repeat && self.cfg.duplicate_share > 0.0 {
            let bytes = &out[start..];
            if self.recent.len() < DUPLICATE_MEMORY {
                self.recent.push((bytes.to_vec(), event_type));
            } else {
                let slot = &mut self.recent[self.recent_next];
                slot.0.clear();
                slot.0.extend_from_slice(bytes);
                slot.1 = event_type;
                self.recent_next = (self.recent_next + 1) % DUPLICATE_MEMORY;
            }
        }
        if let After::RememberSale(member) = after {
            self.remember_sale(record, member);
        }
        Emitted::Event(event_type)
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The clock, shifted back by the jitter.
    fn event_time(&mut self) -> Ts {
        if self.jitter > 0 {
            self.clock - self.rng.gen_range(0..=self.jitter)
        } else {
            self.clock
        }
    }

    fn store_token(&self, store: u16) -> &str {
        &self.world.store_token[usize::from(store)]
    }

    fn terminal(&mut self) -> u32 {
        self.rng.gen_range(1..=4)
    }

    // ------------------------------------------------------------ scheduled

    fn schedule(&mut self, s: Scheduled) {
        self.due_line = self.due_line.min(s.due_line);
        self.due_time = self.due_time.min(s.due_time);
        self.scheduled.push(s);
    }

    /// The due scheduled event with the smallest `due_line`, if any is due.
    fn take_due(&mut self) -> Option<Scheduled> {
        if self.lines < self.due_line && self.clock < self.due_time {
            return None;
        }
        let (lines, clock) = (self.lines, self.clock);
        let at = self
            .scheduled
            .iter()
            .enumerate()
            .filter(|(_, s)| lines >= s.due_line || clock >= s.due_time)
            .min_by_key(|(_, s)| s.due_line)
            .map(|(i, _)| i)?;
        let s = self.scheduled.swap_remove(at);
        self.due_line = self
            .scheduled
            .iter()
            .map(|s| s.due_line)
            .min()
            .unwrap_or(u64::MAX);
        self.due_time = self
            .scheduled
            .iter()
            .map(|s| s.due_time)
            .min()
            .unwrap_or(Ts::MAX);
        Some(s)
    }

    fn emit_scheduled(&mut self, s: Scheduled, out: &mut Vec<u8>) -> Emitted {
        let mut record = s.record;
        match s.kind {
            ScheduledKind::TransferIn { not_before } => {
                record.occurred_at = self.event_time().max(not_before);
                if let Body::TransferIn { lines, .. } = &record.body {
                    for l in lines {
                        self.world.add_stock(record.store, l.sku, i64::from(l.qty));
                    }
                }
            }
            ScheduledKind::Fraud { episode, member } => {
                record.occurred_at = self.clock.min(s.due_time);
                if let Body::Sale {
                    lines, total_cents, ..
                } = &record.body
                {
                    for l in lines {
                        self.world.add_stock(record.store, l.sku, -i64::from(l.qty));
                    }
                    if let Some(m) = member {
                        self.member_bought(m, record.store, *total_cents);
                    }
                }
                let at = timefmt::format(record.occurred_at);
                if let Some(p) = self.planted.get_mut(episode) {
                    p.occurred_at
                        .push(String::from_utf8_lossy(&at).into_owned());
                }
                self.stats.fraud_sales += 1;
            }
        }
        self.emit(record, out, After::Nothing, true)
    }
}

impl Iterator for Generator {
    type Item = Vec<u8>;

    /// Never ends.
    fn next(&mut self) -> Option<Vec<u8>> {
        Some(self.next_event())
    }
}

/// Writes `value` as JSON to `out`. Our records serialise infallibly (string
/// keys, finite integers); should that ever change, the partial output is
/// dropped rather than emitted.
fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    let start = out.len();
    if let Err(error) = serde_json::to_writer(&mut *out, value) {
        tracing::error!(%error, "event failed to serialise");
        out.truncate(start);
        out.extend_from_slice(b"{}");
    }
}

/// `qty` rounded up to whole packs, at least one pack.
fn pack_up(qty: i32, pack: u32) -> u32 {
    let qty = qty.max(1) as u32;
    qty.div_ceil(pack) * pack
}

/// `YYYYMMDD` of an event time in China time.
fn yyyymmdd(at: Ts) -> String {
    let t = timefmt::format(at);
    let mut s = String::with_capacity(8);
    for &b in t[0..4].iter().chain(&t[5..7]).chain(&t[8..10]) {
        s.push(char::from(b));
    }
    s
}

fn token_prefix(method: PaymentMethod) -> Option<(&'static str, u64)> {
    match method {
        PaymentMethod::Wechat => Some(("wx_tok_", 1)),
        PaymentMethod::Alipay => Some(("ali_tok_", 2)),
        PaymentMethod::Card => Some(("card_tok_", 3)),
        PaymentMethod::Cash | PaymentMethod::Points | PaymentMethod::Other => None,
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn base36(mut x: u64, len: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| {
            let d = DIGITS[(x % 36) as usize];
            x /= 36;
            char::from(d)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
pub(crate) mod tests;
