//! Invalid events, as buggy emitters send them.
//!
//! Each kind breaks exactly one rule of `EVENTS.md` so that the pipeline's
//! rejection reasons can be checked one by one. Malformed events are rare, so
//! they are built by editing a `serde_json::Value` (or truncating the bytes,
//! for broken JSON): clarity matters more than speed here.

use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use storepulse_core::{Channel, Fulfillment, PaymentMethod};

use super::{hex, write_json, Emitted, Generator};
use crate::wire::{Body, QtyLine, Record, SaleLine, Wire};

/// The ways an emitted event can be invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// Not JSON at all: the object is cut off (a torn write).
    BadJson,
    /// A required field is missing.
    MissingField,
    /// A quantity is a fraction (`1.5`).
    FloatQty,
    /// A quantity is zero or negative.
    NonPositiveQty,
    /// `store_id` is not in the store master.
    UnknownStore,
    /// `occurred_at` is not RFC 3339 with an offset.
    BadTimestamp,
    /// `event_id` has characters outside `[A-Za-z0-9_.:-]` or is too long.
    BadEventId,
    /// `event_type` is not one of the contract's.
    UnknownEventType,
    /// `channel` is not one of the contract's.
    UnknownChannel,
    /// An amount in cents is negative.
    NegativeAmount,
    /// `v` is not the integer 1.
    WrongVersion,
    /// A `points_redeem` without the required `member_id`.
    MissingMember,
}

impl MalformedKind {
    /// Every kind.
    pub const ALL: [MalformedKind; 12] = [
        Self::BadJson,
        Self::MissingField,
        Self::FloatQty,
        Self::NonPositiveQty,
        Self::UnknownStore,
        Self::BadTimestamp,
        Self::BadEventId,
        Self::UnknownEventType,
        Self::UnknownChannel,
        Self::NegativeAmount,
        Self::WrongVersion,
        Self::MissingMember,
    ];

    /// Whether the template should be a sale (the kind needs sale fields).
    pub(crate) fn needs_sale(self) -> bool {
        matches!(
            self,
            Self::FloatQty | Self::NonPositiveQty | Self::NegativeAmount | Self::MissingField
        )
    }

    /// Whether the emitted bytes are still well-formed JSON.
    pub fn is_json(self) -> bool {
        self != Self::BadJson
    }
}

/// Breaks `valid` (one serialised valid event) according to `kind` and
/// appends the result to `out`. `unknown_store` is a store id that is not in
/// the master.
pub(crate) fn corrupt(
    kind: MalformedKind,
    valid: &[u8],
    unknown_store: &str,
    rng: &mut StdRng,
    out: &mut Vec<u8>,
) {
    if kind == MalformedKind::BadJson {
        // Any non-empty proper prefix of a JSON object is invalid JSON (an
        // empty line might be skipped as blank NDJSON, so never cut to zero).
        let len = valid.len();
        let cut = if len > 3 {
            rng.gen_range(len / 3..len - 1)
        } else {
            1
        };
        out.extend_from_slice(&valid[..cut.min(len)]);
        return;
    }
    let mut value: Value = match serde_json::from_slice(valid) {
        Ok(v) => v,
        Err(_) => {
            out.extend_from_slice(valid);
            return;
        }
    };
    if let Some(obj) = value.as_object_mut() {
        match kind {
            MalformedKind::BadJson => {}
            MalformedKind::MissingField => {
                const FIELDS: [&str; 8] = [
                    "occurred_at",
                    "store_id",
                    "channel",
                    "event_type",
                    "order_id",
                    "lines",
                    "total_cents",
                    "payment",
                ];
                obj.remove(FIELDS[rng.gen_range(0..FIELDS.len())]);
            }
            MalformedKind::FloatQty => set_first_line(obj, "qty", json!(1.5)),
            MalformedKind::NonPositiveQty => {
                set_first_line(obj, "qty", json!(if rng.gen_bool(0.5) { 0 } else { -1 }))
            }
            MalformedKind::UnknownStore => {
                obj.insert("store_id".into(), json!(unknown_store));
            }
            MalformedKind::BadTimestamp => {
                let at = obj
                    .get("occurred_at")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let bad = match rng.gen_range(0..4) {
                    0 => at.replacen('T', " ", 1),
                    1 => at.get(..19).unwrap_or("2026-11-25T10:15:02").to_owned(),
                    2 => format!(
                        "{}-13{}",
                        at.get(..4).unwrap_or("2026"),
                        at.get(7..).unwrap_or("")
                    ),
                    _ => "yesterday 10:15".to_owned(),
                };
                obj.insert("occurred_at".into(), json!(bad));
            }
            MalformedKind::BadEventId => {
                let id = obj
                    .get("event_id")
                    .and_then(Value::as_str)
                    .unwrap_or("e")
                    .to_owned();
                let bad = if rng.gen_bool(0.5) {
                    format!("{} /{}", id.replace('-', " "), "retry")
                } else {
                    format!("{id}-{}", "x".repeat(65))
                };
                obj.insert("event_id".into(), json!(bad));
            }
            MalformedKind::UnknownEventType => {
                let bad = ["sales", "refund", "SALE", "stock_receipts"][rng.gen_range(0..4)];
                obj.insert("event_type".into(), json!(bad));
            }
            MalformedKind::UnknownChannel => {
                let bad = ["fax", "POS", "kiosk"][rng.gen_range(0..3)];
                obj.insert("channel".into(), json!(bad));
            }
            MalformedKind::NegativeAmount => {
                obj.insert("total_cents".into(), json!(-rng.gen_range(1..100_000)));
            }
            MalformedKind::WrongVersion => {
                let bad = if rng.gen_bool(0.5) {
                    json!(2)
                } else {
                    json!("1")
                };
                obj.insert("v".into(), bad);
            }
            MalformedKind::MissingMember => {
                obj.remove("member_id");
            }
        }
    }
    // Writing a Value to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &value);
}

fn set_first_line(obj: &mut serde_json::Map<String, Value>, field: &str, value: Value) {
    if let Some(line) = obj
        .get_mut("lines")
        .and_then(Value::as_array_mut)
        .and_then(|lines| lines.first_mut())
        .and_then(Value::as_object_mut)
    {
        line.insert(field.into(), value);
    }
}

/// Templates: plausible events that change nothing in the model, to be broken.
impl Generator {
    pub(super) fn malformed(&mut self, out: &mut Vec<u8>) -> Emitted {
        let kind = MalformedKind::ALL[self.rng.gen_range(0..MalformedKind::ALL.len())];
        let template = if kind == MalformedKind::MissingMember {
            self.template_redeem()
        } else if kind.needs_sale() || self.rng.gen_bool(0.6) {
            self.template_sale()
        } else if self.rng.gen_bool(0.5) {
            self.template_receipt()
        } else {
            self.template_register()
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        write_json(
            &mut scratch,
            &Wire {
                record: &template,
                stores: &self.stores,
                catalogue: &self.cat,
            },
        );
        corrupt(kind, &scratch, &self.unknown_store, &mut self.rng, out);
        self.scratch = scratch;
        Emitted::Malformed(kind)
    }

    /// A plausible sale that changes nothing in the model.
    pub(super) fn template_sale(&mut self) -> Record {
        let store = self.world.random_pos_store(&mut self.rng);
        let n = self.rng.gen_range(1..=3);
        let mut lines: Vec<SaleLine> = Vec::with_capacity(n);
        for _ in 0..n {
            let sku = self.cat.sample(&mut self.rng);
            if !lines.iter().any(|l| l.sku == sku) {
                lines.push(SaleLine {
                    sku,
                    qty: 1,
                    unit_price_cents: self.cat.price[sku as usize],
                    promo: false,
                });
            }
        }
        let total = lines.iter().map(|l| l.unit_price_cents).sum();
        let id = self.next_id();
        let at = self.event_time();
        let (event_id, order_id) = self.order_ids(Channel::Pos, store, at, id);
        Record {
            event_id,
            occurred_at: at,
            store,
            channel: Channel::Pos,
            member_id: None,
            body: Body::Sale {
                order_id,
                lines,
                total_cents: total,
                method: PaymentMethod::Cash,
                account_ref: None,
                fulfillment: Fulfillment::InStore,
            },
        }
    }

    pub(super) fn template_redeem(&mut self) -> Record {
        let store = self.world.random_pos_store(&mut self.rng);
        let m = self.rng.gen_range(0..self.world.members.len().max(1)) as u32;
        let id = self.next_id();
        let at = self.event_time();
        Record {
            event_id: format!("pos-{}-t1-{}-{id}", self.store_token(store), self.tag),
            occurred_at: at,
            store,
            channel: Channel::Pos,
            member_id: Some(Self::primary_id(m)),
            body: Body::PointsRedeem {
                points: 100,
                reference: format!("RDM-{}-{id}", self.tag),
            },
        }
    }

    pub(super) fn template_receipt(&mut self) -> Record {
        let store = self.rng.gen_range(0..self.world.n_stores()) as u16;
        let sku = self.cat.sample(&mut self.rng);
        let id = self.next_id();
        let at = self.event_time();
        Record {
            event_id: format!("wms-rcv-{}-{id}-{}", self.tag, self.store_token(store)),
            occurred_at: at,
            store,
            channel: Channel::Backoffice,
            member_id: None,
            body: Body::StockReceipt {
                reference: None,
                lines: vec![QtyLine { sku, qty: 12 }],
            },
        }
    }

    pub(super) fn template_register(&mut self) -> Record {
        let id = self.next_id();
        let at = self.event_time();
        let store = self.world.dc.unwrap_or(self.world.pos_stores[0]);
        let mut digest = [0u8; 32];
        self.rng.fill(&mut digest);
        Record {
            event_id: format!("mp-reg-{}-{id}", self.tag),
            occurred_at: at,
            store,
            channel: Channel::MiniProgram,
            member_id: Some(format!("MP-{}-{id}", self.tag)),
            body: Body::MemberRegister {
                phone_hash: hex(&digest),
            },
        }
    }
}
