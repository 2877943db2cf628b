//! A realistic sales stream for the fraud benchmarks (`#[path]`-included
//! by `fraud.rs` and `fraud_memory.rs`, with `support/rng.rs` as `rng`).
//!
//! Event time runs at `rate` events per second (the chain's ~40 stores on
//! a busy day: 200/s). Mix, as `storepulse simulate` makes it: 87 % sales,
//! the rest receipts, counts and member events without a sale (they only
//! move the clock for the fraud processor). A sale: 30 % with a member id
//! (out of `members`, a quarter of them making half of those sales, each
//! buying in 1-3 stores of its own), paid 10 % cash (no account), 20 % card,
//! 40 % WeChat, 30 % Alipay; a member pays with its own stable token per
//! method, anyone else with a token never seen again. Totals: mostly 20-500
//! CNY, 1 % up to 15,000 CNY, one in 200,000 over 20,000 CNY (a
//! `large_single_purchase`). Every `FRAUD_EVERY` events a planted episode:
//! one member, or one card, buys 2,000 CNY in each of 3 stores within 20
//! minutes (an alert). `jitter` shifts `occurred_at` back by up to that
//! much (out-of-order arrival).

use std::collections::VecDeque;

use storepulse_core::time::{MINUTE, SECOND};
use storepulse_core::*;

use super::rng::{mix, Rng};

/// A planted episode every this many events.
pub const FRAUD_EVERY: u64 = 50_000;

pub struct FraudStream {
    rng: Rng,
    stores: u64,
    members: u64,
    /// Event time of the next event (before jitter).
    pub clock: Ts,
    step: Ts,
    jitter: Ts,
    next_event: u64,
    /// Sales of planted episodes waiting for their time.
    planted: VecDeque<Event>,
}

impl FraudStream {
    pub fn new(seed: u64, stores: usize, members: u64, start: Ts, rate: u64, jitter: Ts) -> Self {
        Self {
            rng: Rng(seed),
            stores: stores as u64,
            members,
            clock: start,
            step: SECOND / rate.max(1) as i64,
            jitter,
            next_event: 0,
            planted: VecDeque::new(),
        }
    }

    /// A member index, skewed: a quarter of the members make half the sales.
    fn member(&mut self) -> u64 {
        if self.rng.chance(50) {
            self.rng.below(self.members / 4 + 1)
        } else {
            self.rng.below(self.members)
        }
    }

    /// One of a member's 1-3 stores.
    fn member_store(&mut self, m: u64) -> StoreIdx {
        let h = mix(m, 3);
        let pick = if self.rng.chance(70) {
            0
        } else {
            self.rng.below(1 + h % 3)
        };
        StoreIdx(((h >> 8).wrapping_add(pick * 7) % self.stores) as u16)
    }

    fn total(&mut self) -> u64 {
        let r = self.rng.below(200_000);
        if r == 0 {
            2_000_000 + self.rng.below(3_000_000)
        } else if r < 2_000 {
            50_000 + self.rng.below(1_450_000)
        } else {
            2_000 + self.rng.below(48_000)
        }
    }

    fn sale(
        &mut self,
        at: Ts,
        store: StoreIdx,
        member: Option<Id>,
        method: PaymentMethod,
        account: Option<Id>,
        total: u64,
    ) -> Event {
        self.next_event += 1;
        let n = self.next_event;
        Event {
            // Shaped like the simulator's ids (longer than 24 bytes: on the heap).
            event_id: format!("pos-s{:03}-t{}-k3x9q-{n}", store.0, 1 + n % 4).into(),
            occurred_at: at,
            store,
            channel: Channel::Pos,
            member_id: member,
            body: EventBody::Sale(Sale {
                order_id: format!("ord-{:03}-{n:010}", store.0).into(),
                lines: vec![SaleLine {
                    sku: "SKU-100042".into(),
                    qty: 1,
                    unit_price_cents: total,
                    promo: false,
                }],
                total_cents: total,
                payment: Payment {
                    method,
                    account_ref: account,
                },
                fulfillment: Fulfillment::InStore,
            }),
        }
    }

    /// Three sales of 2,000 CNY in three stores within 20 minutes from `at`:
    /// one member (even episodes) or one card (odd).
    fn plant(&mut self, at: Ts) {
        let episode = self.next_event / FRAUD_EVERY;
        let first = self.rng.below(self.stores);
        let member = self.member();
        for j in 0..3u64 {
            let store = StoreIdx(((first + j * 5) % self.stores) as u16);
            let when = at + j as i64 * 9 * MINUTE;
            let e = if episode.is_multiple_of(2) {
                let id = Some(format!("M{member:08}").into());
                self.sale(when, store, id, PaymentMethod::Wechat, None, 200_000)
            } else {
                let card = Some(format!("card_{episode:012}").into());
                self.sale(when, store, None, PaymentMethod::Card, card, 200_000)
            };
            // Kept in time order (episodes overlap).
            let pos = self
                .planted
                .partition_point(|x| x.occurred_at <= e.occurred_at);
            self.planted.insert(pos, e);
        }
    }

    /// The next event.
    pub fn next_event(&mut self) -> Event {
        self.clock += self.step;
        if self
            .planted
            .front()
            .is_some_and(|e| e.occurred_at <= self.clock)
        {
            if let Some(e) = self.planted.pop_front() {
                return e;
            }
        }
        if self.next_event % FRAUD_EVERY == FRAUD_EVERY - 1 {
            self.plant(self.clock);
        }
        let at = if self.jitter > 0 {
            self.clock - self.rng.below(self.jitter as u64) as i64
        } else {
            self.clock
        };
        if self.rng.below(100) >= 87 {
            // A receipt: only moves the fraud clock.
            self.next_event += 1;
            let store = StoreIdx(self.rng.below(self.stores) as u16);
            return Event {
                event_id: format!("bo-s{:03}-k3x9q-{}", store.0, self.next_event).into(),
                occurred_at: at,
                store,
                channel: Channel::Backoffice,
                member_id: None,
                body: EventBody::StockReceipt(StockReceipt {
                    reference: None,
                    lines: vec![QtyLine {
                        sku: "SKU-100042".into(),
                        qty: 10,
                    }],
                }),
            };
        }
        let member = self.rng.chance(30).then(|| self.member());
        let store = match member {
            Some(m) => self.member_store(m),
            None => StoreIdx(self.rng.below(self.stores) as u16),
        };
        let method = match self.rng.below(10) {
            0 => PaymentMethod::Cash,
            1 | 2 => PaymentMethod::Card,
            3..=6 => PaymentMethod::Wechat,
            _ => PaymentMethod::Alipay,
        };
        let account = match (method, member) {
            (PaymentMethod::Cash, _) => None,
            (_, Some(m)) => {
                Some(format!("tok_{:012x}", mix(m, method as u64) & 0xffff_ffff_ffff).into())
            }
            (_, None) => Some(format!("tok_{:016x}", self.rng.next()).into()),
        };
        let total = self.total();
        self.sale(
            at,
            store,
            member.map(|m| format!("M{m:08}").into()),
            method,
            account,
            total,
        )
    }
}
