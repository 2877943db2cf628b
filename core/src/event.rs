//! The validated event: what processors see.
//!
//! Every value here has passed the contract's rules (see [`crate::parse`]):
//! ids are 1-64 characters, quantities are in `1..=10^6` (counts `0..=10^6`),
//! money is in `0..=10^12` cents, stores are known. Strings are
//! [`CompactString`]s, which keep ids of up to 24 bytes inline, so parsing a
//! typical sale allocates only its line vector.

use compact_str::CompactString;
use serde::Serialize;

use crate::stores::StoreIdx;
use crate::time::Ts;

/// Largest quantity on a line (`10^6`).
pub const MAX_QTY: i64 = 1_000_000;
/// Largest money amount in cents (`10^12`).
pub const MAX_CENTS: i64 = 1_000_000_000_000;
/// Most lines on a sale (contract: `1..500`).
pub const MAX_SALE_LINES: usize = 500;
/// Most lines on any other event with lines. The contract caps only sales;
/// a whole-store stocktake can list many SKUs, so other kinds get a generous
/// sanity bound rather than none (the HTTP body limit bounds them anyway).
pub const MAX_OTHER_LINES: usize = 100_000;

/// A short identifier (event, SKU, order, member ...).
pub type Id = CompactString;

/// One validated event of contract v1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event_id: Id,
    /// Event time, nanoseconds since the epoch (UTC).
    pub occurred_at: Ts,
    pub store: StoreIdx,
    pub channel: Channel,
    /// Member card or account id as the emitter knows it (may be an alias).
    pub member_id: Option<Id>,
    pub body: EventBody,
}

/// The emitting channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Pos,
    App,
    MiniProgram,
    Web,
    Backoffice,
}

impl Channel {
    /// The wire name (the inverse of `from_wire`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pos => "pos",
            Self::App => "app",
            Self::MiniProgram => "mini_program",
            Self::Web => "web",
            Self::Backoffice => "backoffice",
        }
    }

    /// Parses the wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "pos" => Self::Pos,
            "app" => Self::App,
            "mini_program" => Self::MiniProgram,
            "web" => Self::Web,
            "backoffice" => Self::Backoffice,
            _ => return None,
        })
    }

    /// Whether this is an online channel (for the `online_first` tag).
    pub fn is_online(self) -> bool {
        matches!(self, Self::App | Self::MiniProgram | Self::Web)
    }
}

/// The event type, without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Sale,
    Return,
    StockReceipt,
    StockCount,
    TransferOut,
    TransferIn,
    MemberRegister,
    PointsRedeem,
    MemberErase,
}

impl EventType {
    /// Every type, in contract order.
    pub const ALL: [EventType; 9] = [
        Self::Sale,
        Self::Return,
        Self::StockReceipt,
        Self::StockCount,
        Self::TransferOut,
        Self::TransferIn,
        Self::MemberRegister,
        Self::PointsRedeem,
        Self::MemberErase,
    ];

    /// Parses the wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "sale" => Self::Sale,
            "return" => Self::Return,
            "stock_receipt" => Self::StockReceipt,
            "stock_count" => Self::StockCount,
            "transfer_out" => Self::TransferOut,
            "transfer_in" => Self::TransferIn,
            "member_register" => Self::MemberRegister,
            "points_redeem" => Self::PointsRedeem,
            "member_erase" => Self::MemberErase,
            _ => return None,
        })
    }

    /// The `event_type` of a raw event that may not be valid, for metrics of
    /// rejected events: the wire name when it names a known type, else
    /// `"unknown"`. Reads only that field.
    pub fn sniff(raw: &[u8]) -> &'static str {
        sonic_rs::get_from_slice(raw, &["event_type"])
            .ok()
            .and_then(|v| sonic_rs::from_str::<String>(v.as_raw_str()).ok())
            .and_then(|name| Self::from_wire(&name))
            .map_or("unknown", Self::as_str)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sale => "sale",
            Self::Return => "return",
            Self::StockReceipt => "stock_receipt",
            Self::StockCount => "stock_count",
            Self::TransferOut => "transfer_out",
            Self::TransferIn => "transfer_in",
            Self::MemberRegister => "member_register",
            Self::PointsRedeem => "points_redeem",
            Self::MemberErase => "member_erase",
        }
    }
}

/// The type-specific part of an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum EventBody {
    Sale(Sale),
    Return(Return),
    StockReceipt(StockReceipt),
    StockCount(StockCount),
    TransferOut(Transfer),
    TransferIn(Transfer),
    MemberRegister(MemberRegister),
    PointsRedeem(PointsRedeem),
    MemberErase,
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match &self.body {
            EventBody::Sale(_) => EventType::Sale,
            EventBody::Return(_) => EventType::Return,
            EventBody::StockReceipt(_) => EventType::StockReceipt,
            EventBody::StockCount(_) => EventType::StockCount,
            EventBody::TransferOut(_) => EventType::TransferOut,
            EventBody::TransferIn(_) => EventType::TransferIn,
            EventBody::MemberRegister(_) => EventType::MemberRegister,
            EventBody::PointsRedeem(_) => EventType::PointsRedeem,
            EventBody::MemberErase => EventType::MemberErase,
        }
    }
}

/// A line with a SKU and a positive quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QtyLine {
    pub sku: Id,
    /// `1..=10^6`.
    pub qty: u32,
}

/// A sale line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleLine {
    pub sku: Id,
    pub qty: u32,
    pub unit_price_cents: u64,
    pub promo: bool,
}

/// A completed purchase (`store` is the fulfilling store for online orders).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sale {
    pub order_id: Id,
    pub lines: Vec<SaleLine>,
    /// What was actually paid, after discounts and points.
    pub total_cents: u64,
    pub payment: Payment,
    pub fulfillment: Fulfillment,
}

/// How a sale was paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    pub method: PaymentMethod,
    /// Tokenised card or wallet id.
    pub account_ref: Option<Id>,
}

/// Payment method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Cash,
    Card,
    Wechat,
    Alipay,
    Points,
    Other,
}

impl PaymentMethod {
    /// The wire name (the inverse of `from_wire`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cash => "cash",
            Self::Card => "card",
            Self::Wechat => "wechat",
            Self::Alipay => "alipay",
            Self::Points => "points",
            Self::Other => "other",
        }
    }

    /// Parses the wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "cash" => Self::Cash,
            "card" => Self::Card,
            "wechat" => Self::Wechat,
            "alipay" => Self::Alipay,
            "points" => Self::Points,
            "other" => Self::Other,
            _ => return None,
        })
    }
}

/// How a sale reaches the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fulfillment {
    InStore,
    Pickup,
    Ship,
}

impl Fulfillment {
    /// The wire name (the inverse of `from_wire`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InStore => "in_store",
            Self::Pickup => "pickup",
            Self::Ship => "ship",
        }
    }

    /// Parses the wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "in_store" => Self::InStore,
            "pickup" => Self::Pickup,
            "ship" => Self::Ship,
            _ => return None,
        })
    }
}

/// A return, possibly at another store than the one that sold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Return {
    /// The original sale.
    pub order_id: Id,
    pub lines: Vec<QtyLine>,
    pub refund_cents: u64,
    /// Whether the goods go back on the shelf of the returning store.
    pub restock: bool,
}

/// Goods arriving at a store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StockReceipt {
    pub reference: Option<Id>,
    pub lines: Vec<QtyLine>,
}

/// One counted SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountLine {
    pub sku: Id,
    /// `0..=10^6`.
    pub on_hand: u32,
}

/// A stocktake: on-hand as of `occurred_at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StockCount {
    pub lines: Vec<CountLine>,
}

/// One side of a transfer between two stores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transfer {
    pub transfer_id: Id,
    /// `to_store` on `transfer_out`, `from_store` on `transfer_in`.
    pub other_store: StoreIdx,
    pub lines: Vec<QtyLine>,
}

/// A member registration (the member id is in the envelope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRegister {
    /// Lower-case hex SHA-256 of the salted phone number (64 characters).
    pub phone_hash: CompactString,
}

/// A points redemption that has happened at the POS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointsRedeem {
    pub points: u64,
    pub reference: Id,
}

#[cfg(test)]
mod tests {
    use super::EventType;

    #[test]
    fn sniffs_the_type_of_invalid_events() {
        assert_eq!(
            EventType::sniff(br#"{"event_type":"sale","lines":3.5}"#),
            "sale"
        );
        assert_eq!(EventType::sniff(br#"{"event_type":"weather"}"#), "unknown");
        assert_eq!(EventType::sniff(b"{not json"), "unknown");
    }
}
