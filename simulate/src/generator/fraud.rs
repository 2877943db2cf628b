//! Planted fraud: episodes of one member, or one payment account, buying
//! dear goods in 3-4 stores within 25 minutes of event time. Each sale is
//! scheduled; it goes out when the clock reaches its time or a few events
//! later at the latest, and its `occurred_at` never leaves the episode's span.

use rand::seq::index;
use rand::Rng;
use storepulse_core::{Channel, Fulfillment, PaymentMethod, StoreIdx, Ts};

use super::world::flags;
use super::{
    FraudPlan, Generator, PlantedFraud, Scheduled, ScheduledKind, FRAUD_MIN_TOTAL, FRAUD_SPAN,
    MINUTE,
};
use crate::wire::{Body, Record, SaleLine};

impl Generator {
    pub(super) fn fraud_starts(&mut self) -> bool {
        match self.cfg.fraud {
            FraudPlan::None => false,
            FraudPlan::Share(p) => p > 0.0 && self.rng.gen_bool(p),
            FraudPlan::Count { episodes, .. } => {
                if self.planted.len() < episodes as usize && self.lines >= self.fraud_next_start {
                    self.fraud_next_start =
                        self.fraud_next_start.saturating_add(self.fraud_interval);
                    true
                } else {
                    false
                }
            }
        }
    }

    pub(super) fn start_fraud(&mut self) {
        let episode = self.planted.len();
        let n_sales = if self.rng.gen_bool(0.6) { 3 } else { 4 }.min(self.world.pos_stores.len());
        let stores: Vec<u16> = index::sample(&mut self.rng, self.world.pos_stores.len(), n_sales)
            .into_iter()
            .map(|i| self.world.pos_stores[i])
            .collect();

        // Even episodes: one member in several stores; odd: one card.
        let mut fraud_member = None;
        if episode & 1 == 0 {
            for _ in 0..20 {
                if let Some(m) = self.world.random_member(&mut self.rng) {
                    if self.world.members[m as usize].active() {
                        fraud_member = Some(m);
                        break;
                    }
                }
            }
        }
        let card = format!("card_tok_{:016x}", self.rng.gen::<u64>());
        let (rule, key) = match fraud_member {
            Some(m) => {
                self.world.members[m as usize].flags |= flags::FRAUD;
                ("multi_store_large_purchase", Self::primary_id(m))
            }
            None => ("shared_payment_account", card.clone()),
        };
        let alias_sale = match fraud_member {
            Some(m) if self.world.members[m as usize].has(flags::ALIAS_REGISTERED) => {
                Some(self.rng.gen_range(0..n_sales))
            }
            _ => None,
        };

        let mut offsets: Vec<Ts> = (1..n_sales)
            .map(|_| self.rng.gen_range(MINUTE..=FRAUD_SPAN))
            .collect();
        offsets.sort_unstable();
        offsets.insert(0, 0);
        let t0 = self.clock;
        let mut due_line = self.lines;
        let mut planted = PlantedFraud {
            rule,
            key,
            event_ids: Vec::with_capacity(n_sales),
            order_ids: Vec::with_capacity(n_sales),
            stores: Vec::with_capacity(n_sales),
            total_cents: 0,
            occurred_at: Vec::with_capacity(n_sales),
        };
        let per_sale = FRAUD_MIN_TOTAL.div_ceil(n_sales as u64);
        for (j, (&store, &offset)) in stores.iter().zip(&offsets).enumerate() {
            let target = per_sale + self.rng.gen_range(0..100_000);
            let lines = self.expensive_lines(target);
            let total: u64 = lines
                .iter()
                .map(|l| u64::from(l.qty) * l.unit_price_cents)
                .sum();
            let (member, member_id, method, account_ref) = match fraud_member {
                Some(m) => {
                    let id = if alias_sale == Some(j) {
                        Self::alias_id(m)
                    } else {
                        Self::primary_id(m)
                    };
                    let method = [
                        PaymentMethod::Card,
                        PaymentMethod::Wechat,
                        PaymentMethod::Alipay,
                    ][self.rng.gen_range(0..3)];
                    let token = self.anonymous_token(method);
                    (Some(m), Some(id), method, token)
                }
                None => {
                    // Anonymous, or a member never seen before (and never after).
                    let member = if self.rng.gen_bool(0.5) {
                        self.pick_member()
                    } else {
                        None
                    };
                    if let Some(m) = member {
                        self.world.members[m as usize].flags |= flags::FRAUD;
                    }
                    (
                        member,
                        member.map(Self::primary_id),
                        PaymentMethod::Card,
                        Some(card.clone()),
                    )
                }
            };
            let id = self.next_id();
            let due_time = t0 + offset;
            let (event_id, order_id) = self.order_ids(Channel::Pos, store, due_time, id);
            planted.event_ids.push(event_id.clone());
            planted.order_ids.push(order_id.clone());
            planted
                .stores
                .push(self.stores.id(StoreIdx(store)).to_owned());
            planted.total_cents += total;
            let record = Record {
                event_id,
                occurred_at: due_time,
                store,
                channel: Channel::Pos,
                member_id,
                body: Body::Sale {
                    order_id,
                    lines,
                    total_cents: total,
                    method,
                    account_ref,
                    fulfillment: Fulfillment::InStore,
                },
            };
            self.schedule(Scheduled {
                due_line,
                due_time,
                record,
                kind: ScheduledKind::Fraud { episode, member },
            });
            due_line += self.rng.gen_range(1..=self.fraud_spacing);
        }
        tracing::debug!(
            episode,
            rule,
            sales = n_sales,
            total_cents = planted.total_cents,
            "fraud planted"
        );
        self.planted.push(planted);
        self.stats.fraud_episodes += 1;
    }

    /// Lines of dear SKUs worth at least `target` cents (and under 20,000 yuan).
    pub(super) fn expensive_lines(&mut self, target: u64) -> Vec<SaleLine> {
        let mut lines: Vec<SaleLine> = Vec::new();
        let mut subtotal = 0u64;
        while subtotal < target {
            let sku = self.cat.expensive[self.rng.gen_range(0..self.cat.expensive.len())];
            let price = self.cat.price[sku as usize].max(1);
            let qty = if lines.len() >= 20 {
                ((target - subtotal).div_ceil(price)).min(1_000) as u32
            } else {
                1
            };
            subtotal += u64::from(qty) * price;
            match lines.iter_mut().find(|l| l.sku == sku) {
                Some(l) => l.qty += qty,
                None => lines.push(SaleLine {
                    sku,
                    qty,
                    unit_price_cents: price,
                    promo: false,
                }),
            }
        }
        lines
    }
}
