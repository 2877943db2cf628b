//! Sales (at the counter and online) and returns (often at another store).

use rand::seq::index;
use rand::Rng;
use storepulse_core::{Channel, Fulfillment, PaymentMethod, Ts};

use super::world::flags;
use super::{yyyymmdd, Generator, PastSale, MAX_REGULAR_SALE_CENTS, MILLI, P_ONLINE, SALES_MEMORY};
use crate::wire::{Body, QtyLine, Record, SaleLine};

impl Generator {
    pub(super) fn sale(&mut self) -> (Record, Option<u32>) {
        let online = self.rng.gen_bool(P_ONLINE);
        let channel = if online {
            match self.rng.gen_range(0..100) {
                0..=44 => Channel::App,
                45..=79 => Channel::MiniProgram,
                _ => Channel::Web,
            }
        } else {
            Channel::Pos
        };
        let mut member = if self.rng.gen_bool(if online { 0.9 } else { 0.28 }) {
            self.pick_member()
        } else {
            None
        };
        let stay = member.and_then(|m| self.stay_store(m));
        let dc = self.world.dc;
        let (store, fulfillment) = if !online {
            let store = match (member, stay) {
                (Some(_), Some(s)) if Some(s) != dc => s,
                (Some(_), Some(_)) => {
                    // Just ordered online from the DC: shops anonymously now.
                    member = None;
                    self.world.random_pos_store(&mut self.rng)
                }
                (Some(m), None) => self.member_store(m),
                (None, _) => self.world.random_pos_store(&mut self.rng),
            };
            (store, Fulfillment::InStore)
        } else if let Some(s) = stay {
            (
                s,
                if Some(s) == dc {
                    Fulfillment::Ship
                } else {
                    Fulfillment::Pickup
                },
            )
        } else if self.rng.gen_bool(0.55) {
            let store = match dc {
                Some(d) => d,
                None => self.home_or_random(member),
            };
            (store, Fulfillment::Ship)
        } else {
            (self.home_or_random(member), Fulfillment::Pickup)
        };

        let lines = self.sale_lines(store);
        let subtotal: u64 = lines
            .iter()
            .map(|l| u64::from(l.qty) * l.unit_price_cents)
            .sum();
        let discount = if self.rng.gen_bool(0.08) {
            match self.rng.gen_range(0..3) {
                0 => subtotal / 20,
                1 => subtotal / 10,
                _ => [500, 1_000, 2_000][self.rng.gen_range(0..3)].min(subtotal / 5),
            }
        } else {
            0
        };
        let total = subtotal - discount;
        let method = self.payment_method(online, member.is_some());
        let account_ref = match member {
            Some(m) => self.member_token(m, method),
            None => self.anonymous_token(method),
        };
        let member_id = member.map(|m| self.member_id_for(m));

        for l in &lines {
            self.world.add_stock(store, l.sku, -i64::from(l.qty));
        }
        if let Some(m) = member {
            self.member_bought(m, store, total);
        }

        let id = self.next_id();
        let at = self.event_time();
        let (event_id, order_id) = self.order_ids(channel, store, at, id);
        let record = Record {
            event_id,
            occurred_at: at,
            store,
            channel,
            member_id,
            body: Body::Sale {
                order_id,
                lines,
                total_cents: total,
                method,
                account_ref,
                fulfillment,
            },
        };
        (record, member)
    }

    pub(super) fn order_ids(
        &mut self,
        channel: Channel,
        store: u16,
        at: Ts,
        id: u64,
    ) -> (String, String) {
        let tag = &self.tag;
        match channel {
            Channel::App => (
                format!("app-ord-{tag}-{id}-paid"),
                format!("APP-{tag}-{id}"),
            ),
            Channel::MiniProgram => (format!("mp-ord-{tag}-{id}-paid"), format!("MP-{tag}-{id}")),
            Channel::Web => (
                format!("web-ord-{tag}-{id}-paid"),
                format!("WEB-{tag}-{id}"),
            ),
            Channel::Pos | Channel::Backoffice => {
                let t = self.terminal();
                let st = self.store_token(store);
                let date = yyyymmdd(at);
                (
                    format!("pos-{st}-t{t}-{}-{id}", self.tag),
                    format!("{st}-{date}-{}-{id}", self.tag),
                )
            }
        }
    }

    pub(super) fn sale_lines(&mut self, store: u16) -> Vec<SaleLine> {
        let n_lines = match self.rng.gen_range(0..100) {
            0..=34 => 1,
            35..=59 => 2,
            60..=77 => 3,
            78..=89 => 4,
            _ => 5,
        };
        let mut lines: Vec<SaleLine> = Vec::with_capacity(n_lines);
        for _ in 0..n_lines {
            // A customer takes what is on the shelf: try a few SKUs; if none
            // has stock the last one oversells (the books were wrong).
            let mut chosen = None;
            for _ in 0..4 {
                let sku = self.cat.sample(&mut self.rng);
                if lines.iter().any(|l| l.sku == sku) {
                    continue;
                }
                let on_hand = self.world.on_hand(store, sku);
                chosen = Some((sku, on_hand));
                if on_hand >= 1 {
                    break;
                }
            }
            let Some((sku, on_hand)) = chosen else {
                continue;
            };
            let max_qty = self.cat.max_qty[sku as usize];
            let mut qty = if max_qty <= 1 || self.rng.gen_bool(0.7) {
                1
            } else {
                self.rng.gen_range(2..=max_qty)
            };
            if on_hand >= 1 {
                qty = qty.min(on_hand as u32);
            }
            let list = self.cat.price[sku as usize];
            let promo = self.rng.gen_bool(0.18);
            let unit_price_cents = if promo {
                list * self.rng.gen_range(70..=90) / 100 / 10 * 10
            } else {
                list
            };
            lines.push(SaleLine {
                sku,
                qty,
                unit_price_cents,
                promo,
            });
        }
        if lines.is_empty() {
            let sku = self.cat.at_rank(0);
            lines.push(SaleLine {
                sku,
                qty: 1,
                unit_price_cents: self.cat.price[sku as usize],
                promo: false,
            });
        }
        let value = |lines: &[SaleLine]| {
            lines
                .iter()
                .map(|l| u64::from(l.qty) * l.unit_price_cents)
                .sum::<u64>()
        };
        while lines.len() > 1 && value(&lines) > MAX_REGULAR_SALE_CENTS {
            lines.pop();
        }
        if value(&lines) > MAX_REGULAR_SALE_CENTS {
            lines[0].qty = 1;
        }
        lines
    }

    pub(super) fn payment_method(&mut self, online: bool, member: bool) -> PaymentMethod {
        let r = self.rng.gen_range(0..100);
        if online {
            return match r {
                0..=44 => PaymentMethod::Wechat,
                45..=79 => PaymentMethod::Alipay,
                _ => PaymentMethod::Card,
            };
        }
        match r {
            0..=14 => PaymentMethod::Cash,
            15..=54 => PaymentMethod::Wechat,
            55..=84 => PaymentMethod::Alipay,
            85..=97 => PaymentMethod::Card,
            98 if member => PaymentMethod::Points,
            98 => PaymentMethod::Wechat,
            _ => PaymentMethod::Other,
        }
    }

    pub(super) fn remember_sale(&mut self, record: Record, member: Option<u32>) {
        let Record {
            store,
            member_id,
            occurred_at,
            body:
                Body::Sale {
                    order_id,
                    lines,
                    total_cents,
                    ..
                },
            ..
        } = record
        else {
            return;
        };
        if self.sales.len() == SALES_MEMORY {
            self.sales.pop_front();
        }
        self.sales.push_back(PastSale {
            order_id,
            store,
            member,
            member_id,
            lines,
            total: total_cents,
            at: occurred_at,
            returned: false,
        });
    }

    pub(super) fn return_event(&mut self) -> Option<Record> {
        if self.sales.is_empty() {
            return None;
        }
        let mut pick = None;
        for _ in 0..3 {
            let i = self.rng.gen_range(0..self.sales.len());
            if !self.sales[i].returned {
                pick = Some(i);
                break;
            }
        }
        let i = pick?;
        self.sales[i].returned = true;
        let (sale_store, sale_at, member, n_lines) = {
            let s = &self.sales[i];
            (s.store, s.at, s.member, s.lines.len())
        };
        let k = if n_lines == 1 || self.rng.gen_bool(0.7) {
            1
        } else {
            self.rng.gen_range(1..=n_lines)
        };
        let picked = index::sample(&mut self.rng, n_lines, k);
        let mut lines = Vec::with_capacity(k);
        let mut value: u64 = 0;
        let mut subtotal: u64 = 0;
        for (j, l) in self.sales[i].lines.iter().enumerate() {
            subtotal += u64::from(l.qty) * l.unit_price_cents;
            if picked.iter().any(|p| p == j) {
                lines.push((l.sku, l.qty, l.unit_price_cents));
            }
        }
        let lines: Vec<QtyLine> = lines
            .into_iter()
            .map(|(sku, sold, price)| {
                let qty = if sold == 1 || self.rng.gen_bool(0.7) {
                    sold
                } else {
                    self.rng.gen_range(1..=sold)
                };
                value += u64::from(qty) * price;
                QtyLine { sku, qty }
            })
            .collect();
        let total = self.sales[i].total;
        // The refund shares the sale's discount pro rata.
        let refund = if subtotal == 0 {
            0
        } else {
            (u128::from(value) * u128::from(total) / u128::from(subtotal)) as u64
        };
        let dc = self.world.dc;
        let store = if self.rng.gen_bool(0.75) {
            if Some(sale_store) == dc && self.rng.gen_bool(0.6) {
                self.home_or_random(member)
            } else {
                sale_store
            }
        } else if self.rng.gen_bool(0.7) {
            self.world.neighbour_pos_store(sale_store, &mut self.rng)
        } else {
            self.world.random_pos_store(&mut self.rng)
        };
        let restock = self.rng.gen_bool(0.9);
        let erased = member.is_some_and(|m| self.world.members[m as usize].has(flags::ERASED));
        let member_id = if erased {
            None
        } else {
            self.sales[i].member_id.clone()
        };
        let order_id = self.sales[i].order_id.clone();

        if restock {
            for l in &lines {
                self.world.add_stock(store, l.sku, i64::from(l.qty));
            }
        }
        if let (Some(m), false) = (member, erased) {
            self.world.members[m as usize].points -= (refund / 100) as i64;
        }
        let id = self.next_id();
        let at = self.event_time().max(sale_at + MILLI);
        let (channel, event_id) = if Some(store) == dc {
            (Channel::Backoffice, format!("rma-{}-{id}", self.tag))
        } else {
            let t = self.terminal();
            (
                Channel::Pos,
                format!("pos-{}-t{t}-{}-{id}", self.store_token(store), self.tag),
            )
        };
        Some(Record {
            event_id,
            occurred_at: at,
            store,
            channel,
            member_id,
            body: Body::Return {
                order_id,
                lines,
                refund_cents: refund,
                restock,
            },
        })
    }
}
