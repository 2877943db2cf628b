//! The generator's own event records and their contract v1 JSON.
//!
//! Records keep stores and SKUs as indexes; serialising goes through
//! [`Wire`], which borrows the store master and catalogue to write the ids.
//! Serialisation is hand-written over `serialize_map`, so an event goes to
//! JSON in one pass without a `serde_json::Value` tree, with the fields in
//! the order of `EVENTS.md` (envelope first) and optional fields left out
//! rather than written as `null`.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use storepulse_core::{Channel, EventType, Fulfillment, PaymentMethod, StoreIdx, StoreMaster, Ts};

use crate::catalogue::Catalogue;
use crate::timefmt::ChinaTime;

/// One generated event, before serialisation.
#[derive(Debug, Clone)]
pub struct Record {
    pub event_id: String,
    pub occurred_at: Ts,
    pub store: u16,
    pub channel: Channel,
    pub member_id: Option<String>,
    pub body: Body,
}

/// A sale line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleLine {
    pub sku: u32,
    pub qty: u32,
    pub unit_price_cents: u64,
    pub promo: bool,
}

/// A line with a quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QtyLine {
    pub sku: u32,
    pub qty: u32,
}

/// A stocktake line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountLine {
    pub sku: u32,
    pub on_hand: u32,
}

/// The type-specific part.
#[derive(Debug, Clone)]
pub enum Body {
    Sale {
        order_id: String,
        lines: Vec<SaleLine>,
        total_cents: u64,
        method: PaymentMethod,
        account_ref: Option<String>,
        fulfillment: Fulfillment,
    },
    Return {
        order_id: String,
        lines: Vec<QtyLine>,
        refund_cents: u64,
        restock: bool,
    },
    StockReceipt {
        reference: Option<String>,
        lines: Vec<QtyLine>,
    },
    StockCount {
        lines: Vec<CountLine>,
    },
    TransferOut {
        transfer_id: String,
        to_store: u16,
        lines: Vec<QtyLine>,
    },
    TransferIn {
        transfer_id: String,
        from_store: u16,
        lines: Vec<QtyLine>,
    },
    MemberRegister {
        phone_hash: String,
    },
    PointsRedeem {
        points: u64,
        reference: String,
    },
    MemberErase,
}

impl Body {
    /// The contract event type.
    pub fn event_type(&self) -> EventType {
        match self {
            Body::Sale { .. } => EventType::Sale,
            Body::Return { .. } => EventType::Return,
            Body::StockReceipt { .. } => EventType::StockReceipt,
            Body::StockCount { .. } => EventType::StockCount,
            Body::TransferOut { .. } => EventType::TransferOut,
            Body::TransferIn { .. } => EventType::TransferIn,
            Body::MemberRegister { .. } => EventType::MemberRegister,
            Body::PointsRedeem { .. } => EventType::PointsRedeem,
            Body::MemberErase => EventType::MemberErase,
        }
    }
}

/// A record with what it takes to write its ids.
pub struct Wire<'a> {
    pub record: &'a Record,
    pub stores: &'a StoreMaster,
    pub catalogue: &'a Catalogue,
}

impl Wire<'_> {
    fn store_id(&self, idx: u16) -> &str {
        self.stores.id(StoreIdx(idx))
    }
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("v", &1u8)?;
        map.serialize_entry("event_id", &r.event_id)?;
        map.serialize_entry("event_type", r.body.event_type().as_str())?;
        map.serialize_entry("occurred_at", &ChinaTime(r.occurred_at))?;
        map.serialize_entry("store_id", self.store_id(r.store))?;
        map.serialize_entry("channel", &r.channel)?;
        if let Some(member) = &r.member_id {
            map.serialize_entry("member_id", member)?;
        }
        let cat = self.catalogue;
        match &r.body {
            Body::Sale {
                order_id,
                lines,
                total_cents,
                method,
                account_ref,
                fulfillment,
            } => {
                map.serialize_entry("order_id", order_id)?;
                map.serialize_entry("lines", &SaleLines { lines, cat })?;
                map.serialize_entry("total_cents", total_cents)?;
                map.serialize_entry(
                    "payment",
                    &PaymentOut {
                        method: *method,
                        account_ref: account_ref.as_deref(),
                    },
                )?;
                map.serialize_entry("fulfillment", fulfillment)?;
            }
            Body::Return {
                order_id,
                lines,
                refund_cents,
                restock,
            } => {
                map.serialize_entry("order_id", order_id)?;
                map.serialize_entry("lines", &QtyLines { lines, cat })?;
                map.serialize_entry("refund_cents", refund_cents)?;
                map.serialize_entry("restock", restock)?;
            }
            Body::StockReceipt { reference, lines } => {
                if let Some(reference) = reference {
                    map.serialize_entry("reference", reference)?;
                }
                map.serialize_entry("lines", &QtyLines { lines, cat })?;
            }
            Body::StockCount { lines } => {
                map.serialize_entry("lines", &CountLines { lines, cat })?;
            }
            Body::TransferOut {
                transfer_id,
                to_store,
                lines,
            } => {
                map.serialize_entry("transfer_id", transfer_id)?;
                map.serialize_entry("to_store", self.store_id(*to_store))?;
                map.serialize_entry("lines", &QtyLines { lines, cat })?;
            }
            Body::TransferIn {
                transfer_id,
                from_store,
                lines,
            } => {
                map.serialize_entry("transfer_id", transfer_id)?;
                map.serialize_entry("from_store", self.store_id(*from_store))?;
                map.serialize_entry("lines", &QtyLines { lines, cat })?;
            }
            Body::MemberRegister { phone_hash } => {
                map.serialize_entry("phone_hash", phone_hash)?;
            }
            Body::PointsRedeem { points, reference } => {
                map.serialize_entry("points", points)?;
                map.serialize_entry("reference", reference)?;
            }
            Body::MemberErase => {}
        }
        map.end()
    }
}

#[derive(Serialize)]
struct PaymentOut<'a> {
    method: PaymentMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_ref: Option<&'a str>,
}

struct SaleLines<'a> {
    lines: &'a [SaleLine],
    cat: &'a Catalogue,
}

#[derive(Serialize)]
struct SaleLineOut<'a> {
    sku: &'a str,
    qty: u32,
    unit_price_cents: u64,
    #[serde(skip_serializing_if = "is_false")]
    promo: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Serialize for SaleLines<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.lines.len()))?;
        for l in self.lines {
            seq.serialize_element(&SaleLineOut {
                sku: &self.cat.ids[l.sku as usize],
                qty: l.qty,
                unit_price_cents: l.unit_price_cents,
                promo: l.promo,
            })?;
        }
        seq.end()
    }
}

struct QtyLines<'a> {
    lines: &'a [QtyLine],
    cat: &'a Catalogue,
}

#[derive(Serialize)]
struct QtyLineOut<'a> {
    sku: &'a str,
    qty: u32,
}

impl Serialize for QtyLines<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.lines.len()))?;
        for l in self.lines {
            seq.serialize_element(&QtyLineOut {
                sku: &self.cat.ids[l.sku as usize],
                qty: l.qty,
            })?;
        }
        seq.end()
    }
}

struct CountLines<'a> {
    lines: &'a [CountLine],
    cat: &'a Catalogue,
}

#[derive(Serialize)]
struct CountLineOut<'a> {
    sku: &'a str,
    on_hand: u32,
}

impl Serialize for CountLines<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.lines.len()))?;
        for l in self.lines {
            seq.serialize_element(&CountLineOut {
                sku: &self.cat.ids[l.sku as usize],
                on_hand: l.on_hand,
            })?;
        }
        seq.end()
    }
}
