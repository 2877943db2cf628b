//! Memory of the member processor with a year of history, and the cost of
//! the day turning over millions of members.
//!
//! Targets (issue 4, "Unified members"): <= 1 KiB per member with a year
//! of history, 5 million members fit on the machine (24 GiB), and the tag
//! re-evaluation when the event-time clock passes a day costs <= 2 s of
//! CPU over 5 million members.
//!
//! `MEMBERS` members (default 1,000,000) live a year: ~24 sales each in 1-3
//! stores (15 % online, some promo lines), ~2 returns and ~2 redemptions;
//! 90 % register (spread over the first 300 days), a tenth of those with an
//! alias id (an app account) that makes ~30 % of the member's sales and
//! registers 30-60 days after the member, merging what it bought before
//! (a late link). Events are generated hour by hour and applied in time
//! order, so no big event vector is held. Then the figures are printed:
//! live heap (a counting allocator) per member, broken down into the
//! persons (`Person::heap_bytes`), the de-duplication window (bounded by the
//! lateness window, not per member) and the rest (id and phone indexes,
//! the slot array and the boxed persons, timers, settlement); peak RSS
//! (`VmHWM`).
//!
//! The day turning is timed twice: inside `apply` (the first event of each
//! of the year's last 30 days fires the timers due that day, with events
//! flowing), and after the year, when the clock moves on one day at a time
//! for `TICK_DAYS` days (default 30) with `on_tick` and no event. The CPU
//! time of each (the thread's `schedstat`, 4 ms granularity here, and wall
//! time) and the tag changes emitted are printed.
//!
//! `MEMBERS=5000000 cargo bench -p storepulse-processors --bench member_memory`
//! (`DEDUP=0`: the embedded configuration, `.without_dedup()`).

#![allow(clippy::unwrap_used)] // a benchmark panics on the first surprise, by design

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use storepulse_core::time::{china_day, DAY, HOUR, MINUTE};
use storepulse_core::*;
use storepulse_processors::members::history::{DayAgg, DayRefund};
use storepulse_processors::members::ledger::{LedgerEntry, Lot};
use storepulse_processors::members::{
    Change, MemberConfig, MemberId, MemberOutput, MemberProcessor, Person,
};
use storepulse_processors::Processor;

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

use counting::live;

/// `VmHWM` (peak RSS) and `VmRSS` in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time of this thread, nanoseconds (first field of schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn mib(bytes: impl Into<f64>) -> f64 {
    bytes.into() / (1024.0 * 1024.0)
}

#[path = "support/rng.rs"]
mod rng;
use rng::{mix, Rng};

const DAYS: i64 = 365;
/// Shops are open 08:00-22:00.
const OPEN_HOURS: std::ops::Range<i64> = 8..22;
const SALES_PER_YEAR: f64 = 24.0;
const RETURNS_PER_YEAR: f64 = 2.0;
const REDEEMS_PER_YEAR: f64 = 2.0;
/// Registrations are spread over the first days of the year.
const REGISTRATION_DAYS: u64 = 300;

/// What a member is, derived from its index.
struct Profile {
    registered: bool,
    alias: bool,
    reg_day: i64,
    alias_day: i64,
}

fn profile(m: u64, members: u64) -> Profile {
    let h = mix(m, 11);
    let reg_day = (m * REGISTRATION_DAYS / members) as i64;
    Profile {
        registered: !h.is_multiple_of(10),
        alias: h % 10 == 1,
        reg_day,
        alias_day: reg_day + 30 + (h >> 8) as i64 % 30,
    }
}

fn phone(m: u64) -> String {
    format!("{:016x}{:016x}{:016x}{:016x}", mix(m, 1), mix(m, 2), m, 9)
}

struct Gen {
    rng: Rng,
    members: u64,
    stores: u64,
    next_event: u64,
    /// Fractional event counts carried between hours.
    carry: [f64; 3],
}

impl Gen {
    fn store_of(&mut self, m: u64) -> StoreIdx {
        let h = mix(m, 3);
        let n = 1 + h % 3;
        let pick = if self.rng.chance(70) {
            0
        } else {
            self.rng.below(n)
        };
        StoreIdx(((h >> 8).wrapping_add(pick * 7) % self.stores) as u16)
    }

    fn event(&mut self, at: Ts, store: StoreIdx, id: String, body: EventBody) -> Event {
        self.next_event += 1;
        Event {
            event_id: format!("e{:011}", self.next_event).into(),
            occurred_at: at,
            store,
            channel: Channel::Pos,
            member_id: Some(id.into()),
            body,
        }
    }

    /// The events of one hour, in time order.
    fn hour(&mut self, start: Ts, out: &mut Vec<Event>) {
        out.clear();
        let per_hour =
            self.members as f64 / DAYS as f64 / (OPEN_HOURS.end - OPEN_HOURS.start) as f64;
        let mut counts = [0u64; 3];
        for (i, per_year) in [SALES_PER_YEAR, RETURNS_PER_YEAR, REDEEMS_PER_YEAR]
            .into_iter()
            .enumerate()
        {
            self.carry[i] += per_hour * per_year;
            counts[i] = self.carry[i] as u64;
            self.carry[i] -= counts[i] as f64;
        }
        let at = |rng: &mut Rng| start + rng.below(HOUR as u64) as i64;
        for _ in 0..counts[0] {
            let m = self.rng.below(self.members);
            let p = profile(m, self.members);
            let id = if p.alias && self.rng.chance(30) {
                format!("A{m:08}")
            } else {
                format!("M{m:08}")
            };
            let store = self.store_of(m);
            let online = self.rng.chance(15);
            // Some members spend much more than others.
            let scale = 1 + mix(m, 5) % 6;
            let lines: Vec<SaleLine> = (0..1 + self.rng.below(3))
                .map(|_| SaleLine {
                    sku: format!("SKU-{:06}", self.rng.below(5000)).into(),
                    qty: 1,
                    unit_price_cents: scale * (1000 + self.rng.below(9000)),
                    promo: self.rng.chance(20),
                })
                .collect();
            let total_cents = lines.iter().map(|l| l.unit_price_cents).sum();
            let at = at(&mut self.rng);
            let mut e = self.event(
                at,
                store,
                id,
                EventBody::Sale(Sale {
                    order_id: "o".into(),
                    lines,
                    total_cents,
                    payment: Payment {
                        method: PaymentMethod::Wechat,
                        account_ref: None,
                    },
                    fulfillment: Fulfillment::InStore,
                }),
            );
            if online {
                e.channel = Channel::App;
            }
            out.push(e);
        }
        for _ in 0..counts[1] {
            let m = self.rng.below(self.members);
            let store = self.store_of(m);
            let refund_cents = 1000 + self.rng.below(9000);
            let at = at(&mut self.rng);
            let e = self.event(
                at,
                store,
                format!("M{m:08}"),
                EventBody::Return(Return {
                    order_id: "o".into(),
                    lines: vec![QtyLine {
                        sku: "SKU-000001".into(),
                        qty: 1,
                    }],
                    refund_cents,
                    restock: true,
                }),
            );
            out.push(e);
        }
        for _ in 0..counts[2] {
            let m = self.rng.below(self.members);
            let store = self.store_of(m);
            let points = 200 + self.rng.below(1300);
            let at = at(&mut self.rng);
            let e = self.event(
                at,
                store,
                format!("M{m:08}"),
                EventBody::PointsRedeem(PointsRedeem {
                    points,
                    reference: "r".into(),
                }),
            );
            out.push(e);
        }
        out.sort_by_key(|e| e.occurred_at);
    }

    /// Registrations of the members (or their aliases) due on `day`.
    fn registrations(&mut self, day: i64, day_start: Ts, out: &mut Vec<Event>) {
        out.clear();
        let first = (day as u64 * self.members).div_ceil(REGISTRATION_DAYS);
        let last = ((day as u64 + 1) * self.members).div_ceil(REGISTRATION_DAYS);
        if (day as u64) < REGISTRATION_DAYS {
            for m in first..last.min(self.members) {
                let p = profile(m, self.members);
                if p.registered && p.reg_day == day {
                    let at = day_start + 8 * HOUR + self.rng.below(14 * HOUR as u64) as i64;
                    let store = self.store_of(m);
                    let e = self.event(
                        at,
                        store,
                        format!("M{m:08}"),
                        EventBody::MemberRegister(MemberRegister {
                            phone_hash: phone(m).into(),
                        }),
                    );
                    out.push(e);
                }
            }
        }
        // Aliases due today belong to members registered 30-59 days ago.
        for back in 30..60 {
            let d = day - back;
            if d < 0 || d as u64 >= REGISTRATION_DAYS {
                continue;
            }
            let first = (d as u64 * self.members).div_ceil(REGISTRATION_DAYS);
            let last = ((d as u64 + 1) * self.members).div_ceil(REGISTRATION_DAYS);
            for m in first..last.min(self.members) {
                let p = profile(m, self.members);
                if p.alias && p.registered && p.reg_day == d && p.alias_day == day {
                    let at = day_start + 8 * HOUR + self.rng.below(14 * HOUR as u64) as i64;
                    let store = self.store_of(m);
                    let e = self.event(
                        at,
                        store,
                        format!("A{m:08}"),
                        EventBody::MemberRegister(MemberRegister {
                            phone_hash: phone(m).into(),
                        }),
                    );
                    out.push(e);
                }
            }
        }
        out.sort_by_key(|e| e.occurred_at);
    }
}

/// Bytes of a hashbrown table holding `n` entries of `slot` bytes, grown
/// by inserts: a power of two of buckets at most 7/8 full, one control
/// byte per bucket.
fn table_bytes(n: usize, slot: usize) -> f64 {
    let buckets = (n * 8 / 7 + 1).next_power_of_two().max(4);
    (buckets * (slot + 1)) as f64
}

/// Sums over the persons.
#[derive(Default)]
struct Census {
    persons: usize,
    heap: usize,
    ids: usize,
    ids_cap: usize,
    phones: usize,
    days: usize,
    days_cap: usize,
    refunds: usize,
    refunds_cap: usize,
    lots: usize,
    lots_cap: usize,
    pending: usize,
    pending_cap: usize,
}

impl Census {
    fn add(&mut self, p: &Person) {
        self.persons += 1;
        self.heap += p.heap_bytes();
        self.ids += p.ids.len();
        self.ids_cap += p.ids.capacity();
        self.phones += usize::from(p.phone.is_some());
        self.days += p.history.days.len();
        self.days_cap += p.history.days.capacity();
        self.refunds += p.history.refunds.len();
        self.refunds_cap += p.history.refunds.len(); // a boxed slice
        self.lots += p.ledger.lots.len();
        self.lots_cap += p.ledger.lots.capacity();
        self.pending += p.ledger.pending.len();
        self.pending_cap += p.ledger.pending.capacity();
    }

    fn n(&self) -> f64 {
        self.persons.max(1) as f64
    }
}

/// Median and maximum (0 for none).
fn median_max(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    match v.last() {
        Some(&max) => (v[v.len() / 2], max),
        None => (0.0, 0.0),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // too, unoptimised: then only a smoke run of a few thousand members.
    let benching = std::env::args().any(|a| a == "--bench");
    let members = env_u64("MEMBERS", if benching { 1_000_000 } else { 2_000 });
    let tick_days = env_u64("TICK_DAYS", if benching { 30 } else { 2 }) as i64;
    let dedup = env_u64("DEDUP", 1) != 0;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    let stores = Arc::new(StoreMaster::load(&path).expect("data/stores.csv"));
    // China midnight of the first day.
    let t0 = storepulse_core::time::parse_rfc3339("2025-11-26T00:00:00+08:00").unwrap();
    let base = live();
    let mut p = MemberProcessor::new(MemberConfig::default(), stores.clone()).unwrap();
    if !dedup {
        p = p.without_dedup();
    }
    let mut g = Gen {
        rng: Rng(0x5EED_4444),
        members,
        stores: stores.len() as u64,
        next_event: 0,
        carry: [0.0; 3],
    };
    let (mut hour_events, mut regs, mut merged) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = Vec::new();
    let (mut applied, mut outputs, mut max_persons) = (0u64, 0u64, 0usize);
    // The day turning inside `apply` over the last 30 days of the year
    // (events flowing): CPU and wall ms, outputs of that one call.
    let (mut turn_cpu, mut turn_wall, mut turn_changes) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    let cpu0 = thread_cpu_ns();
    for day in 0..DAYS {
        let day_start = t0 + day * DAY;
        g.registrations(day, day_start, &mut regs);
        let mut regs_at = 0;
        for h in OPEN_HOURS {
            let start = day_start + h * HOUR;
            g.hour(start, &mut hour_events);
            // Merge in this hour's registrations.
            let end = start + HOUR;
            let n = regs[regs_at..].partition_point(|e: &Event| e.occurred_at < end);
            merged.clear();
            merged.append(&mut hour_events);
            merged.extend(regs[regs_at..regs_at + n].iter().cloned());
            regs_at += n;
            merged.sort_by_key(|e: &Event| e.occurred_at);
            let mut events = merged.iter();
            if h == OPEN_HOURS.start {
                // The day's first event turns the day: the timers of every
                // member due today fire inside this `apply`.
                if let Some(e) = events.next() {
                    let (c0, w0) = (thread_cpu_ns(), Instant::now());
                    p.apply(e, &mut out).unwrap();
                    let (c, w) = (thread_cpu_ns() - c0, w0.elapsed());
                    if day >= DAYS - 30 {
                        turn_cpu.push(c as f64 / 1e6);
                        turn_wall.push(w.as_secs_f64() * 1e3);
                        turn_changes.push(out.len());
                    }
                    applied += 1;
                }
            }
            for e in events {
                p.apply(e, &mut out).unwrap();
                applied += 1;
            }
            outputs += out.len() as u64;
            out.clear();
            // Freed slots are reused, so the slot vector is as long as the
            // most persons alive at once.
            max_persons = max_persons.max(p.len());
        }
        if day % 30 == 29 || day == DAYS - 1 {
            let (hwm, rss) = rss();
            eprintln!(
                "day {:>3}: {} persons, {applied} events applied ({:.0} k/s), heap {:.0} MiB, RSS {:.0} MiB, peak {:.0} MiB",
                day + 1,
                p.len(),
                applied as f64 / started.elapsed().as_secs_f64() / 1e3,
                mib((live() - base) as f64),
                mib(rss as f64),
                mib(hwm as f64)
            );
        }
    }
    let build_wall = started.elapsed().as_secs_f64();
    let build_cpu = (thread_cpu_ns() - cpu0) as f64 / 1e9;
    drop((hour_events, regs, merged));
    out.shrink_to_fit();

    let total = (live() - base) as f64;
    // Per person: every member has its card id `M...`; aliases are merged
    // into it by the end of the year.
    let mut c = Census::default();
    for m in 0..members {
        if let Some(person) = p.person_by_id(&format!("M{m:08}")) {
            c.add(person);
        }
    }
    let (dedup_ids, dedup_heap) = p
        .dedup_window()
        .map_or((0, 0), |d| (d.len(), d.heap_bytes()));
    let persons = p.len() as f64;
    let per = |b: f64| b / persons;
    // Estimates of the parts not visible from outside: hashbrown tables
    // grown by inserts (buckets a power of two, at most 7/8 full) and the
    // slot vector grown by pushes (capacity a power of two; its untouched
    // tail is reserved, not resident).
    // Persons are boxed: a slot is a pointer, each person one allocation.
    let slot_size = std::mem::size_of::<Option<Box<Person>>>();
    let slot_capacity = max_persons.next_power_of_two();
    let person_size = std::mem::size_of::<Person>();
    let slot_array = (slot_capacity * slot_size + p.len() * person_size) as f64;
    let ids_index = table_bytes(c.ids, std::mem::size_of::<(Id, u32)>());
    let phone_index = table_bytes(c.phones, std::mem::size_of::<([u8; 32], u32)>());
    let rest = total - c.heap as f64 - dedup_heap as f64;
    let (hwm, rss_now) = rss();
    println!(
        "members={members} dedup={dedup} persons={} ({} found by card id) events={applied} outputs={outputs} \
         build: {build_wall:.1} s wall, {build_cpu:.1} s CPU ({:.0} k events/s incl. generation)",
        p.len(),
        c.persons,
        applied as f64 / build_cpu / 1e3
    );
    println!(
        "heap total {:.0} MiB = {:.0} B/member; without the dedup window {:.0} B/member",
        mib(total),
        per(total),
        per(total - dedup_heap as f64)
    );
    println!(
        "  persons' own heap (Person::heap_bytes) {:.0} B/member: day aggregates {:.0} (len {:.1}, capacity {:.1} x {} B), \
         refund days {:.0} (len {:.2}, cap {:.2}), ids {:.0} (len {:.2}, cap {:.2} x {} B), \
         lots {:.0} (len {:.2}, cap {:.2} x {} B), pending entries {:.0} (len {:.2}, cap {:.2} x {} B)",
        per(c.heap as f64),
        per(c.days_cap as f64 * std::mem::size_of::<DayAgg>() as f64),
        c.days as f64 / c.n(),
        c.days_cap as f64 / c.n(),
        std::mem::size_of::<DayAgg>(),
        per(c.refunds_cap as f64 * std::mem::size_of::<DayRefund>() as f64),
        c.refunds as f64 / c.n(),
        c.refunds_cap as f64 / c.n(),
        per(c.ids_cap as f64 * std::mem::size_of::<MemberId>() as f64),
        c.ids as f64 / c.n(),
        c.ids_cap as f64 / c.n(),
        std::mem::size_of::<MemberId>(),
        per(c.lots_cap as f64 * std::mem::size_of::<Lot>() as f64),
        c.lots as f64 / c.n(),
        c.lots_cap as f64 / c.n(),
        std::mem::size_of::<Lot>(),
        per(c.pending_cap as f64 * std::mem::size_of::<LedgerEntry>() as f64),
        c.pending as f64 / c.n(),
        c.pending_cap as f64 / c.n(),
        std::mem::size_of::<LedgerEntry>(),
    );
    println!(
        "  dedup window: {dedup_ids} ids, {:.0} MiB = {:.0} B/member (bounded by the lateness window and the event rate, not per member)",
        mib(dedup_heap as f64),
        per(dedup_heap as f64),
    );
    println!(
        "  the rest {:.0} B/member, estimated: slots and boxed persons {:.0} ({} B a slot, {person_size} B a person, {max_persons} slots used at most, \
         capacity {slot_capacity} if grown by doubling), id index {:.0} ({} ids), phone index {:.0} ({} phones), \
         timers, settlement and other {:.0}",
        per(rest),
        per(slot_array),
        slot_size,
        per(ids_index),
        c.ids,
        per(phone_index),
        c.phones,
        per(rest - slot_array - ids_index - phone_index),
    );
    println!(
        "RSS {:.0} MiB, peak RSS (VmHWM) {:.0} MiB = {:.0} B/member (system allocator behind the counting one)",
        mib(rss_now as f64),
        mib(hwm as f64),
        hwm as f64 / persons
    );

    turn_changes.sort_unstable();
    let (cmed, cmax) = median_max(&mut turn_cpu);
    let (wmed, wmax) = median_max(&mut turn_wall);
    println!(
        "day turn inside apply, last 30 days of the year (events flowing): CPU median {cmed:.1} ms, max {cmax:.1} ms; \
         wall median {wmed:.1} ms, max {wmax:.1} ms; outputs median {}",
        turn_changes.get(turn_changes.len() / 2).copied().unwrap_or(0)
    );

    // The day turns with no event: one tick per day.
    let last_day = china_day(p.clock());
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    for k in 1..=tick_days {
        let at = t0 + (i64::from(last_day - china_day(t0)) + k) * DAY + 30 * MINUTE;
        out.clear();
        let (c0, w0) = (thread_cpu_ns(), Instant::now());
        p.on_tick(at, &mut out);
        let (c, w) = (thread_cpu_ns() - c0, w0.elapsed());
        let (mut added, mut removed) = (0, 0);
        for o in &out {
            if let MemberOutput::Tag(t) = o {
                match t.change {
                    Change::Added => added += 1,
                    Change::Removed => removed += 1,
                }
            }
        }
        println!(
            "tick day +{k:>2}: CPU {:>8.1} ms, wall {:>8.1} ms, tag changes {:>8} (+{added} -{removed})",
            c as f64 / 1e6,
            w.as_secs_f64() * 1e3,
            added + removed
        );
        cpu.push(c as f64 / 1e6);
        wall.push(w.as_secs_f64() * 1e3);
    }
    if !cpu.is_empty() {
        let (cmed, cmax) = median_max(&mut cpu);
        let (wmed, wmax) = median_max(&mut wall);
        println!(
            "tick over {tick_days} days: CPU median {cmed:.1} ms, max {cmax:.1} ms; wall median {wmed:.1} ms, max {wmax:.1} ms"
        );
    }
    let (hwm, _) = rss();
    println!("peak RSS at the end {:.0} MiB", mib(hwm as f64));
}
