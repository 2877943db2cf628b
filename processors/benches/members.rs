//! Criterion benchmark of `MemberProcessor::apply` on a realistic stream.
//!
//! Target (issue 4, "Unified members"): >= 1,000,000 events/s on one core.
//!
//! The stream (deterministic, built once): 100,000 member ids over the 40
//! stores of `data/stores.csv`, each with 1-3 stores of its own; in time
//! order with a few minutes of jitter. Mix: 60 % sales (half with a member
//! id; 1-5 lines, 20 % promo lines, 15 % online), 5 % returns of members,
//! 3 % points redemptions, 2 % registrations (new members, new alias ids of
//! a known phone, alias ids that already bought: a late link that merges
//! two histories; a quarter of the registrations arrive up to 36 h late),
//! 30 % stock receipts and transfers without a member.
//!
//! A processor is warmed with 60 days of that stream (600,000 events, so
//! members have history, tags, timers and ledgers), then each measured
//! batch applies the next 200,000 events (3 days: the day turns, timers
//! fire inside `apply`) to a clone of it (the clone is not timed).
//!
//! Cases: `dedup` (`MemberProcessor::new`, it de-duplicates itself),
//! `embedded` (`.without_dedup()`, behind the inventory processor), and
//! `dedup_cel` (`new` plus one custom CEL tag), to show the cost of CEL.
//! mimalloc is the global allocator, as in the `storepulse` binary.
//!
//! `cargo bench -p storepulse-processors --bench members`
//!
//! `CPU_TIME=1` measures the CPU time of the benchmark thread
//! (`/proc/thread-self/schedstat`, updated at scheduler ticks: a few ms,
//! ~1 % of a batch) instead of wall time: on a shared machine whose other
//! core is busy, wall time measures the neighbours, CPU time the code.

#![allow(clippy::unwrap_used)] // a benchmark panics on the first surprise, by design

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput};
use storepulse_core::time::{DAY, HOUR, MINUTE};
use storepulse_core::*;
use storepulse_processors::members::{CustomTagConfig, MemberConfig, MemberProcessor};
use storepulse_processors::Processor;

/// The allocator of the `storepulse` binary: the processor allocates and
/// frees small vectors on every event, so the allocator is part of the cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MEMBERS: u64 = 100_000;
/// Members below this index register during the warm-up; the others buy
/// unregistered and may register later.
const REGISTERED: u64 = 90_000;
const WARM_EVENTS: usize = 600_000;
const WARM_DAYS: i64 = 60;
const EVENTS: usize = 200_000;
const DAYS: i64 = 3;

fn stores() -> Arc<StoreMaster> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    Arc::new(StoreMaster::load(&path).expect("data/stores.csv"))
}

#[path = "support/rng.rs"]
mod rng;
use rng::{mix, Rng};

fn phone(m: u64) -> String {
    format!("{:016x}{:016x}{:016x}{:016x}", mix(m, 1), mix(m, 2), m, 7)
}

/// The stream generator: remembers which ids are registered and which
/// alias ids exist, so registrations make sense.
struct Gen {
    rng: Rng,
    stores: u16,
    next_event: u64,
    /// Members `0..registered` have registered (index order).
    registered: u64,
    /// Alias ids handed out so far: `APP-<m>` for m in `0..aliases`.
    aliases: u64,
    /// Alias ids that bought before any registration (`CARD-<m>`),
    /// waiting for their late link.
    unlinked_cards: Vec<u64>,
    next_card: u64,
}

impl Gen {
    fn new(stores: usize, seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            stores: stores as u16,
            next_event: 0,
            registered: 0,
            aliases: 0,
            unlinked_cards: Vec::new(),
            next_card: 0,
        }
    }

    /// One of a member's 1-3 stores (the first one most often).
    fn member_store(&mut self, m: u64) -> StoreIdx {
        let h = mix(m, 3);
        let n = 1 + h % 3;
        let pick = if self.rng.chance(70) {
            0
        } else {
            self.rng.below(n)
        };
        StoreIdx(((h >> 8).wrapping_add(pick * 7) % u64::from(self.stores)) as u16)
    }

    fn any_store(&mut self) -> StoreIdx {
        StoreIdx(self.rng.below(u64::from(self.stores)) as u16)
    }

    /// A member index, skewed: a quarter of the members make half the events.
    fn member(&mut self) -> u64 {
        if self.rng.chance(50) {
            self.rng.below(MEMBERS / 4)
        } else {
            self.rng.below(MEMBERS)
        }
    }

    /// The id a member buys with: mostly its card, sometimes its app alias
    /// or a card that is not linked yet.
    fn member_id(&mut self, m: u64) -> Id {
        let r = self.rng.below(100);
        if r < 10 && m < self.aliases {
            format!("APP-{m:06}").into()
        } else if r < 12 {
            // A new card that will be linked later (a late link).
            let c = self.next_card;
            self.next_card += 1;
            self.unlinked_cards.push(c);
            format!("CARD-{c:06}").into()
        } else {
            format!("M{m:06}").into()
        }
    }

    fn event(&mut self, at: Ts, store: StoreIdx, member: Option<Id>, body: EventBody) -> Event {
        self.next_event += 1;
        let channel = match &body {
            EventBody::Sale(_) if self.rng.chance(15) => Channel::App,
            EventBody::StockReceipt(_) | EventBody::TransferOut(_) => Channel::Backoffice,
            _ => Channel::Pos,
        };
        Event {
            event_id: format!("ev-{:010}", self.next_event).into(),
            occurred_at: at,
            store,
            channel,
            member_id: member,
            body,
        }
    }

    fn sale(&mut self, at: Ts) -> Event {
        let member = self.rng.chance(50).then(|| self.member());
        let store = match member {
            Some(m) => self.member_store(m),
            None => self.any_store(),
        };
        let id = member.map(|m| self.member_id(m));
        let n = 1 + self.rng.below(5) as usize;
        let lines: Vec<SaleLine> = (0..n)
            .map(|_| SaleLine {
                sku: format!("SKU-{:06}", 100_000 + self.rng.below(5000)).into(),
                qty: 1 + self.rng.below(3) as u32,
                unit_price_cents: 500 + self.rng.below(20_000),
                promo: self.rng.chance(20),
            })
            .collect();
        let total_cents = lines
            .iter()
            .map(|l| l.unit_price_cents * u64::from(l.qty))
            .sum();
        let body = EventBody::Sale(Sale {
            order_id: format!("o-{}", self.next_event).into(),
            lines,
            total_cents,
            payment: Payment {
                method: PaymentMethod::Wechat,
                account_ref: None,
            },
            fulfillment: Fulfillment::InStore,
        });
        self.event(at, store, id, body)
    }

    fn ret(&mut self, at: Ts) -> Event {
        let m = self.member();
        let store = self.member_store(m);
        let id = format!("M{m:06}").into();
        let body = EventBody::Return(Return {
            order_id: format!("o-{}", self.rng.below(self.next_event + 1)).into(),
            lines: vec![QtyLine {
                sku: format!("SKU-{:06}", 100_000 + self.rng.below(5000)).into(),
                qty: 1,
            }],
            refund_cents: 500 + self.rng.below(10_000),
            restock: true,
        });
        self.event(at, store, Some(id), body)
    }

    fn redeem(&mut self, at: Ts) -> Event {
        let m = self.member();
        let store = self.member_store(m);
        let id = format!("M{m:06}").into();
        let body = EventBody::PointsRedeem(PointsRedeem {
            points: 100 + self.rng.below(1500),
            reference: format!("r-{}", self.next_event).into(),
        });
        self.event(at, store, Some(id), body)
    }

    /// A registration: a new member, a new alias of a known phone, or the
    /// late link of a card that already bought. A quarter arrive late.
    fn register(&mut self, at: Ts) -> Event {
        let late = if self.rng.chance(25) {
            self.rng.below(36) as i64 * HOUR
        } else {
            0
        };
        let r = self.rng.below(100);
        let (m, id) = if r < 30 && !self.unlinked_cards.is_empty() {
            let i = self.rng.below(self.unlinked_cards.len() as u64) as usize;
            let c = self.unlinked_cards.swap_remove(i);
            (
                self.rng.below(self.registered.max(1)),
                format!("CARD-{c:06}"),
            )
        } else if r < 60 && self.aliases < self.registered {
            let m = self.aliases;
            self.aliases += 1;
            (m, format!("APP-{m:06}"))
        } else {
            // The next member registers (those past REGISTERED bought
            // unregistered before: their history becomes the person's).
            let m = self.registered.min(MEMBERS - 1);
            self.registered = (self.registered + 1).min(MEMBERS);
            (m, format!("M{m:06}"))
        };
        let store = self.member_store(m);
        let body = EventBody::MemberRegister(MemberRegister {
            phone_hash: phone(m).into(),
        });
        self.event(at - late, store, Some(id.into()), body)
    }

    fn stock(&mut self, at: Ts) -> Event {
        let store = self.any_store();
        let lines: Vec<QtyLine> = (0..1 + self.rng.below(8))
            .map(|_| QtyLine {
                sku: format!("SKU-{:06}", 100_000 + self.rng.below(5000)).into(),
                qty: 1 + self.rng.below(50) as u32,
            })
            .collect();
        let body = if self.rng.chance(70) {
            EventBody::StockReceipt(StockReceipt {
                reference: None,
                lines,
            })
        } else {
            EventBody::TransferOut(Transfer {
                transfer_id: format!("t-{}", self.next_event).into(),
                other_store: self.any_store(),
                lines,
            })
        };
        self.event(at, store, None, body)
    }

    /// `n` events spread over `[from, from + span)`, a few minutes of jitter.
    fn stream(&mut self, from: Ts, span: Ts, n: usize) -> Vec<Event> {
        let step = span / n as i64;
        (0..n)
            .map(|i| {
                let jitter = self.rng.below(10 * MINUTE as u64) as i64 - 5 * MINUTE;
                let at = from + i as i64 * step + jitter;
                match self.rng.below(100) {
                    0..60 => self.sale(at),
                    60..65 => self.ret(at),
                    65..68 => self.redeem(at),
                    68..70 => self.register(at),
                    _ => self.stock(at),
                }
            })
            .collect()
    }

    /// Registrations of members `0..REGISTERED` over `[from, from + span)`.
    fn registrations(&mut self, from: Ts, span: Ts) -> Vec<Event> {
        let step = span / REGISTERED as i64;
        (0..REGISTERED)
            .map(|m| {
                self.registered = m + 1;
                let store = self.member_store(m);
                let body = EventBody::MemberRegister(MemberRegister {
                    phone_hash: phone(m).into(),
                });
                self.event(
                    from + m as i64 * step,
                    store,
                    Some(format!("M{m:06}").into()),
                    body,
                )
            })
            .collect()
    }
}

fn warm(mut p: MemberProcessor, warm: &[Event]) -> MemberProcessor {
    let mut out = Vec::new();
    for e in warm {
        out.clear();
        let _ = p.apply(e, &mut out);
    }
    p
}

/// CPU time of this thread, nanoseconds (first field of schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Criterion measurement: CPU time of the benchmark thread.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, started: u64) -> u64 {
        thread_cpu_ns().saturating_sub(started)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Nanoseconds of CPU, shown as "ms cpu" and elements per CPU second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        for v in values {
            *v /= 1e6;
        }
        "ms cpu"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match t {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => *n,
        };
        for v in values {
            *v = n as f64 / (*v / 1e9) / 1e3;
        }
        "Kelem/cpu-s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn main() {
    if std::env::var_os("CPU_TIME").is_some_and(|v| v != "0") {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpu)
            .configure_from_args();
        bench_apply(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::<WallTime>::default().configure_from_args();
        bench_apply(&mut c);
        c.final_summary();
    }
}

fn bench_apply<M: Measurement>(c: &mut Criterion<M>) {
    let stores = stores();
    let t0 = storepulse_core::time::parse_rfc3339("2026-09-01T00:00:00+08:00").unwrap();
    let mut g = Gen::new(stores.len(), 0x5EED_0004);
    // Registrations over the first 30 days, then 60 days of the mix; the
    // registrations are merged in by time.
    let mut warm_events = g.registrations(t0, 30 * DAY);
    warm_events.extend(g.stream(t0, WARM_DAYS * DAY, WARM_EVENTS));
    warm_events.sort_by_key(|e| e.occurred_at);
    let events = g.stream(t0 + WARM_DAYS * DAY, DAYS * DAY, EVENTS);
    let kinds = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    eprintln!(
        "members bench stream: {} events over {DAYS} days after {} warm-up events; \
         sales {} (with member {}), returns {}, redeems {}, registrations {}, stock {}",
        events.len(),
        warm_events.len(),
        kinds(|e| matches!(e.body, EventBody::Sale(_))),
        kinds(|e| matches!(e.body, EventBody::Sale(_)) && e.member_id.is_some()),
        kinds(|e| matches!(e.body, EventBody::Return(_))),
        kinds(|e| matches!(e.body, EventBody::PointsRedeem(_))),
        kinds(|e| matches!(e.body, EventBody::MemberRegister(_))),
        kinds(|e| e.member_id.is_none()),
    );

    let custom = MemberConfig {
        custom_tags: vec![CustomTagConfig {
            name: "lapsed_big_spender".into(),
            expr: "spend_365d_cents >= 100000 && sales_30d == 0".into(),
            action: Some("call them".into()),
        }],
        ..MemberConfig::default()
    };
    let cases = [
        (
            "dedup",
            MemberProcessor::new(MemberConfig::default(), stores.clone()).unwrap(),
        ),
        (
            "embedded",
            MemberProcessor::new(MemberConfig::default(), stores.clone())
                .unwrap()
                .without_dedup(),
        ),
        (
            "dedup_cel",
            MemberProcessor::new(custom, stores.clone()).unwrap(),
        ),
    ];

    let mut group = c.benchmark_group("members");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    for (name, fresh) in cases {
        let warmed = warm(fresh, &warm_events);
        // One untimed pass: the stream must apply cleanly.
        // The processor is not `Clone`; its state is (checkpoints).
        let copy = || {
            MemberProcessor::from_state(
                warmed.state().clone(),
                warmed.config().clone(),
                stores.clone(),
            )
            .unwrap()
        };
        let (mut p, mut out, mut outputs) = (copy(), Vec::new(), 0usize);
        for e in &events {
            out.clear();
            p.apply(e, &mut out).unwrap();
            outputs += out.len();
        }
        eprintln!(
            "members/{name}: {} persons after warm-up, {} after the stream, {outputs} outputs in the stream",
            warmed.len(),
            p.len()
        );
        drop(p);
        group.bench_function(name, |b| {
            b.iter_batched(
                copy,
                |mut p| {
                    let mut out = Vec::with_capacity(64);
                    for e in &events {
                        out.clear();
                        black_box(p.apply(e, &mut out).ok());
                    }
                    p
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}
