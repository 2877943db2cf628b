//! Stock events: the opening receipts that stock every store, replenishing
//! receipts, stocktakes with shrinkage, and transfers between stores of a
//! region (the `transfer_in` is scheduled to follow its `transfer_out`).

use rand::Rng;
use storepulse_core::Channel;

use super::{pack_up, Generator, Scheduled, ScheduledKind, MILLI, MINUTE, OPENING_LINES};
use crate::wire::{Body, CountLine, QtyLine, Record};

impl Generator {
    pub(super) fn next_opening(&mut self) -> Option<Record> {
        let (store, from) = self.opening?;
        let n_skus = self.world.n_skus;
        let to = (from + OPENING_LINES).min(n_skus);
        self.opening = if to < n_skus {
            Some((store, to))
        } else if usize::from(store) + 1 < self.world.n_stores() {
            Some((store + 1, 0))
        } else {
            None
        };
        let mut lines = Vec::with_capacity(to - from);
        for sku in from as u32..to as u32 {
            let qty = pack_up(self.world.target(store, sku), self.pack(sku));
            self.world.add_stock(store, sku, i64::from(qty));
            lines.push(QtyLine { sku, qty });
        }
        self.stats.opening_receipts += 1;
        let id = self.next_id();
        let st = self.store_token(store);
        Some(Record {
            event_id: format!("wms-open-{st}-{}-{id}", self.tag),
            occurred_at: self.cfg.start - self.jitter - MINUTE,
            store,
            channel: Channel::Backoffice,
            member_id: None,
            body: Body::StockReceipt {
                reference: Some(format!("OPEN-{}-{id}", self.tag)),
                lines,
            },
        })
    }

    /// The case pack a SKU is received in.
    pub(super) fn pack(&self, sku: u32) -> u32 {
        match self.cat.max_qty[sku as usize] {
            q if q >= 6 => 6,
            q if q >= 3 => 3,
            _ => 1,
        }
    }

    pub(super) fn receipt(&mut self) -> Record {
        let (store, skus) = match self.world.take_pending(80, &mut self.rng) {
            Some(found) => found,
            None => {
                let store = self.rng.gen_range(0..self.world.n_stores()) as u16;
                let top = (0..20.min(self.world.n_skus))
                    .map(|r| self.cat.at_rank(r))
                    .collect();
                (store, top)
            }
        };
        let mut lines = Vec::with_capacity(skus.len());
        for sku in skus {
            let need = self.world.target(store, sku) - self.world.on_hand(store, sku);
            if need > 0 {
                let qty = pack_up(need, self.pack(sku));
                self.world.add_stock(store, sku, i64::from(qty));
                lines.push(QtyLine { sku, qty });
            }
        }
        if lines.is_empty() {
            let sku = self
                .cat
                .at_rank(self.rng.gen_range(0..self.world.n_skus.min(50)));
            let qty = self.pack(sku);
            self.world.add_stock(store, sku, i64::from(qty));
            lines.push(QtyLine { sku, qty });
        }
        let id = self.next_id();
        let at = self.event_time();
        let reference = self
            .rng
            .gen_bool(0.9)
            .then(|| format!("PO-{}-{id}", self.tag));
        Record {
            event_id: format!("wms-rcv-{}-{id}-{}", self.tag, self.store_token(store)),
            occurred_at: at,
            store,
            channel: Channel::Backoffice,
            member_id: None,
            body: Body::StockReceipt { reference, lines },
        }
    }

    pub(super) fn stock_count(&mut self) -> Record {
        let store = self.rng.gen_range(0..self.world.n_stores()) as u16;
        let n_skus = self.world.n_skus;
        let want = self.rng.gen_range(10..=40).min(n_skus);
        let mut skus: Vec<u32> = Vec::with_capacity(want);
        for _ in 0..want * 4 {
            if skus.len() == want {
                break;
            }
            let sku = if self.rng.gen_bool(0.5) {
                self.cat.sample(&mut self.rng)
            } else {
                self.rng.gen_range(0..n_skus as u32)
            };
            if !skus.contains(&sku) {
                skus.push(sku);
            }
        }
        let mut lines = Vec::with_capacity(skus.len());
        for sku in skus {
            let mut on_hand = self.world.on_hand(store, sku).max(0) as u32;
            if on_hand > 0 && self.rng.gen_bool(0.12) {
                // Shrinkage: the shelf has less than the books.
                on_hand -= self.rng.gen_range(1..=2).min(on_hand);
            }
            self.world.set_stock(store, sku, on_hand);
            lines.push(CountLine { sku, on_hand });
        }
        let id = self.next_id();
        let at = self.event_time();
        Record {
            event_id: format!("count-{}-{}-{id}", self.store_token(store), self.tag),
            occurred_at: at,
            store,
            channel: Channel::Backoffice,
            member_id: None,
            body: Body::StockCount { lines },
        }
    }

    pub(super) fn transfer_out(&mut self) -> Option<Record> {
        for _ in 0..3 {
            let giver = self.rng.gen_range(0..self.world.n_stores()) as u16;
            let Some(receiver) = self.world.region_peer(giver, &mut self.rng) else {
                continue;
            };
            let want = self.rng.gen_range(1..=4usize);
            let mut skus: Vec<u32> = Vec::with_capacity(want);
            // What the receiver runs short of first (a transfer suggestion),
            // then popular SKUs the giver has plenty of.
            let pending: Vec<u32> = self
                .world
                .pending_of(receiver)
                .iter()
                .take(8)
                .copied()
                .collect();
            for sku in pending {
                if skus.len() < want && self.world.on_hand(giver, sku) >= 6 && !skus.contains(&sku)
                {
                    skus.push(sku);
                }
            }
            for _ in 0..8 {
                if skus.len() >= want {
                    break;
                }
                let sku = self.cat.sample(&mut self.rng);
                if self.world.on_hand(giver, sku) >= 6 && !skus.contains(&sku) {
                    skus.push(sku);
                }
            }
            if skus.is_empty() {
                continue;
            }
            let lines: Vec<QtyLine> = skus
                .into_iter()
                .map(|sku| QtyLine {
                    sku,
                    qty: (self.world.on_hand(giver, sku) / 3).clamp(1, 48) as u32,
                })
                .collect();
            for l in &lines {
                self.world.add_stock(giver, l.sku, -i64::from(l.qty));
            }
            let id = self.next_id();
            let at = self.event_time();
            let transfer_id = format!("XFER-{}-{id}", self.tag);
            let incoming = Record {
                event_id: format!("xfer-{}-{id}-in", self.tag),
                occurred_at: at,
                store: receiver,
                channel: Channel::Backoffice,
                member_id: None,
                body: Body::TransferIn {
                    transfer_id: transfer_id.clone(),
                    from_store: giver,
                    lines: lines.clone(),
                },
            };
            let due_line = self.lines + self.rng.gen_range(20..=2_000);
            let due_time = self.clock + self.rng.gen_range(30 * MINUTE..=240 * MINUTE);
            self.schedule(Scheduled {
                due_line,
                due_time,
                record: incoming,
                kind: ScheduledKind::TransferIn {
                    not_before: at + MILLI,
                },
            });
            return Some(Record {
                event_id: format!("xfer-{}-{id}-out", self.tag),
                occurred_at: at,
                store: giver,
                channel: Channel::Backoffice,
                member_id: None,
                body: Body::TransferOut {
                    transfer_id,
                    to_store: receiver,
                    lines,
                },
            });
        }
        None
    }
}
