//! Wire format -> [`Event`]: strict parsing and validation of contract v1.
//!
//! The fast path deserialises the bytes straight into a borrowed wire struct
//! with `sonic-rs` (SIMD JSON; strings without escapes are not copied) and
//! then checks every rule of `EVENTS.md`, building the owned [`Event`]. No
//! intermediate `Value` tree is built.
//!
//! When the JSON does not fit the wire struct at all (a float where an integer
//! belongs, a string for a number, an array for an object ...), the slow path
//! parses the same bytes again with `serde_json` behind `serde_path_to_error`,
//! only to name the field (`lines[2].qty`). Rejections are rare, so the cost
//! of naming them precisely is paid only then.
//!
//! Readings of the contract where it is silent (also in `ARCHITECTURE.md`):
//! - `null` for an optional field (`member_id`, `account_ref`, `promo` ...)
//!   counts as absent: a vendor serialising "no member" as `null` is saying
//!   what the contract means. For a required field `null` is "required".
//! - Type-specific fields on another type (`lines` on `member_register`) are
//!   ignored like unknown fields, as long as they are well-formed.
//! - A stocktake that lists the same SKU twice is rejected: which count
//!   stands would be a guess.
//! - Lists other than sale lines may not be empty and hold at most
//!   [`MAX_OTHER_LINES`] lines.
//! - `points_redeem.points` is capped like money (10^12), and its
//!   `reference` is required (it is not marked optional, unlike the receipt's).
//! - "One JSON object per message, UTF-8" is read strictly: a byte order
//!   mark, invalid UTF-8, anything after the object but whitespace, a key
//!   of the contract given twice, a bad `\u` escape or unpaired surrogate
//!   (in unknown fields too), and arrays or objects nested deeper than
//!   [`MAX_NESTING`] are rejected. Objects must be objects: serde would also
//!   take a struct from an array of its fields in order, which we refuse.
//! - Integers are JSON integers: `1.0` and `1e3` are rejected as "must be an
//!   integer", an integer literal beyond `i64` by the field's own bound
//!   (`lines[0].qty: must be at most 1000000`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use compact_str::CompactString;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_path_to_error::Segment;
use sonic_rs::PointerNode;

use crate::event::*;
use crate::stores::{StoreIdx, StoreMaster};
use crate::time::{parse_rfc3339, Ts};

/// Why an event was not accepted: the field (a JSON path such as
/// `lines[2].qty`, or none for the document as a whole) and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// JSON path of the offending field; `None` when the document itself is
    /// unreadable.
    pub field: Option<String>,
    /// The rule that was broken, in words.
    pub rule: String,
    /// The event's `event_id`, when one could be read at all.
    pub event_id: Option<String>,
}

impl Rejection {
    fn field(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            rule: rule.into(),
            event_id: None,
        }
    }

    fn document(rule: impl Into<String>) -> Self {
        Self {
            field: None,
            rule: rule.into(),
            event_id: None,
        }
    }

    /// A rejection found by a processor after parsing (e.g. a
    /// `member_register` that contradicts an earlier one).
    pub fn semantic(field: impl Into<String>, rule: impl Into<String>, event_id: &str) -> Self {
        Self {
            field: Some(field.into()),
            rule: rule.into(),
            event_id: Some(event_id.to_owned()),
        }
    }

    /// The reason as one line: `lines[2].qty: must be > 0`.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.rule),
            None => f.write_str(&self.rule),
        }
    }
}

impl std::error::Error for Rejection {}

// ---------------------------------------------------------------- wire types

#[derive(Deserialize)]
struct WireEvent<'a> {
    v: Option<i64>,
    #[serde(borrow)]
    event_id: Option<Text<'a>>,
    #[serde(borrow)]
    event_type: Option<Text<'a>>,
    #[serde(borrow)]
    occurred_at: Option<Text<'a>>,
    #[serde(borrow)]
    store_id: Option<Text<'a>>,
    #[serde(borrow)]
    channel: Option<Text<'a>>,
    #[serde(borrow)]
    member_id: Option<Text<'a>>,
    #[serde(borrow)]
    order_id: Option<Text<'a>>,
    #[serde(borrow)]
    lines: Option<Vec<Object<WireLine<'a>>>>,
    total_cents: Option<i64>,
    #[serde(borrow)]
    payment: Option<Object<WirePayment<'a>>>,
    #[serde(borrow)]
    fulfillment: Option<Text<'a>>,
    refund_cents: Option<i64>,
    restock: Option<bool>,
    #[serde(borrow)]
    reference: Option<Text<'a>>,
    #[serde(borrow)]
    transfer_id: Option<Text<'a>>,
    #[serde(borrow)]
    to_store: Option<Text<'a>>,
    #[serde(borrow)]
    from_store: Option<Text<'a>>,
    #[serde(borrow)]
    phone_hash: Option<Text<'a>>,
    points: Option<i64>,
}

#[derive(Deserialize)]
struct WireLine<'a> {
    #[serde(borrow)]
    sku: Option<Text<'a>>,
    qty: Option<i64>,
    unit_price_cents: Option<i64>,
    promo: Option<bool>,
    on_hand: Option<i64>,
}

#[derive(Deserialize)]
struct WirePayment<'a> {
    #[serde(borrow)]
    method: Option<Text<'a>>,
    #[serde(borrow)]
    account_ref: Option<Text<'a>>,
}

/// A JSON string, borrowed from the input unless it has escapes.
///
/// serde's own `Cow<str>` borrows only as a bare field type; inside an
/// `Option` it always copies, which cost one allocation per string field.
struct Text<'a>(Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// A struct that must be written as a JSON object.
///
/// Derived `Deserialize` also takes a struct from a JSON array of its fields
/// in order (`["A",1,100,null,null]` for a line); the contract only has
/// objects, so this wrapper asks the deserializer for a map and nothing else.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

// ---------------------------------------------------------------- parser

/// Deepest nesting of arrays and objects accepted in an event, the event
/// object itself included. The contract's own fields nest three deep
/// (`lines[i].qty`); unknown fields may nest further, up to this bound.
///
/// Deeper documents are rejected before `sonic-rs` sees them: it skips
/// unknown values by recursion without a depth limit (upstream
/// cloudwego/sonic-rs#232), and a stack overflow aborts the process rather
/// than failing one event. It needs about 0.2 KiB of stack per level in an
/// optimised build but about 55 KiB unoptimised, where a 2 MiB thread (a test
/// or a tokio worker) overflows at about 37 levels, hence this low bound.
pub const MAX_NESTING: usize = 32;

/// Parses and validates contract v1 events against a store master.
#[derive(Debug, Clone)]
pub struct EventParser {
    stores: Arc<StoreMaster>,
}

impl EventParser {
    /// A parser that checks stores against `stores`.
    pub fn new(stores: Arc<StoreMaster>) -> Self {
        Self { stores }
    }

    /// The store master this parser validates against.
    pub fn stores(&self) -> &Arc<StoreMaster> {
        &self.stores
    }

    /// Parses one JSON object into a validated event.
    ///
    /// # Errors
    /// A [`Rejection`] naming the field and the rule for anything that is not
    /// a valid contract v1 event.
    pub fn parse(&self, bytes: &[u8]) -> Result<Event, Rejection> {
        let survey = Survey::of(bytes);
        if survey.opening > MAX_NESTING && !nesting_within(bytes, MAX_NESTING) {
            // Not even the event id is sniffed: that walks the document too.
            return Err(Rejection::document(format!(
                "invalid JSON: arrays and objects nested deeper than {MAX_NESTING} levels"
            )));
        }
        let result = match sonic_rs::from_slice::<Object<WireEvent<'_>>>(bytes) {
            Ok(Object(wire)) if survey.backslash => {
                check_escapes(bytes).and_then(|()| self.validate(wire))
            }
            Ok(Object(wire)) => self.validate(wire),
            Err(_) => Err(explain_wire_error(bytes)),
        };
        result.map_err(|mut rejection| {
            if rejection.event_id.is_none() {
                rejection.event_id = sniff_event_id(bytes);
            }
            rejection
        })
    }

    fn validate(&self, w: WireEvent<'_>) -> Result<Event, Rejection> {
        match w.v {
            Some(v) => check_version(v)?,
            None => return Err(Rejection::field("v", "required")),
        }
        let event_id = required(&w.event_id, "event_id")?;
        check_event_id(event_id)?;
        let type_name = required(&w.event_type, "event_type")?;
        let event_type = EventType::from_wire(type_name).ok_or_else(|| {
            Rejection::field(
                "event_type",
                format!("unknown event type {}", quoted(type_name)),
            )
        })?;
        let occurred_at = timestamp(required(&w.occurred_at, "occurred_at")?)?;
        let store = self.store(&w.store_id, "store_id")?;
        let channel_name = required(&w.channel, "channel")?;
        let channel = Channel::from_wire(channel_name).ok_or_else(|| {
            Rejection::field(
                "channel",
                format!("unknown channel {}", quoted(channel_name)),
            )
        })?;
        let member_id = optional_id(&w.member_id, "member_id")?;

        let body = match event_type {
            EventType::Sale => EventBody::Sale(self.sale(&w)?),
            EventType::Return => EventBody::Return(Return {
                order_id: id(required(&w.order_id, "order_id")?, "order_id")?,
                lines: qty_lines(&w.lines, MAX_OTHER_LINES)?,
                refund_cents: amount(Amount::Cents, w.refund_cents, "refund_cents")?,
                restock: w.restock.unwrap_or(true),
            }),
            EventType::StockReceipt => EventBody::StockReceipt(StockReceipt {
                reference: optional_id(&w.reference, "reference")?,
                lines: qty_lines(&w.lines, MAX_OTHER_LINES)?,
            }),
            EventType::StockCount => EventBody::StockCount(StockCount {
                lines: count_lines(&w.lines)?,
            }),
            EventType::TransferOut => {
                EventBody::TransferOut(self.transfer(&w, store, &w.to_store, "to_store")?)
            }
            EventType::TransferIn => {
                EventBody::TransferIn(self.transfer(&w, store, &w.from_store, "from_store")?)
            }
            EventType::MemberRegister => {
                require_member(&member_id)?;
                let hash = required(&w.phone_hash, "phone_hash")?;
                if hash.len() != 64
                    || !hash
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(Rejection::field(
                        "phone_hash",
                        "must be 64 lower-case hex characters (SHA-256)",
                    ));
                }
                EventBody::MemberRegister(MemberRegister {
                    phone_hash: CompactString::from(hash),
                })
            }
            EventType::PointsRedeem => {
                require_member(&member_id)?;
                EventBody::PointsRedeem(PointsRedeem {
                    points: amount(Amount::Points, w.points, "points")?,
                    reference: id(required(&w.reference, "reference")?, "reference")?,
                })
            }
            EventType::MemberErase => {
                require_member(&member_id)?;
                EventBody::MemberErase
            }
        };

        Ok(Event {
            event_id: CompactString::from(event_id),
            occurred_at,
            store,
            channel,
            member_id,
            body,
        })
    }

    fn store(&self, value: &Option<Text<'_>>, field: &str) -> Result<StoreIdx, Rejection> {
        let store_id = required(value, field)?;
        self.stores
            .lookup(store_id)
            .ok_or_else(|| Rejection::field(field, format!("unknown store {}", quoted(store_id))))
    }

    fn sale(&self, w: &WireEvent<'_>) -> Result<Sale, Rejection> {
        let order_id = id(required(&w.order_id, "order_id")?, "order_id")?;
        let wire_lines = w
            .lines
            .as_ref()
            .ok_or_else(|| Rejection::field("lines", "required"))?;
        check_line_count(wire_lines.len(), MAX_SALE_LINES)?;
        let mut lines = Vec::with_capacity(wire_lines.len());
        for (i, Object(line)) in wire_lines.iter().enumerate() {
            let sku = line_sku(line, i)?;
            let qty = line_amount(Amount::Qty, line.qty, i, "qty")?;
            let unit_price_cents =
                line_amount(Amount::Cents, line.unit_price_cents, i, "unit_price_cents")?;
            lines.push(SaleLine {
                sku,
                // `Amount::Qty` caps at 10^6, so the cast is lossless.
                qty: qty as u32,
                unit_price_cents,
                promo: line.promo.unwrap_or(false),
            });
        }
        let total_cents = amount(Amount::Cents, w.total_cents, "total_cents")?;
        let Object(payment) = w
            .payment
            .as_ref()
            .ok_or_else(|| Rejection::field("payment", "required"))?;
        let method_name = required(&payment.method, "payment.method")?;
        let method = PaymentMethod::from_wire(method_name).ok_or_else(|| {
            Rejection::field(
                "payment.method",
                format!("unknown payment method {}", quoted(method_name)),
            )
        })?;
        let account_ref = optional_id(&payment.account_ref, "payment.account_ref")?;
        let fulfillment = match w.fulfillment.as_deref() {
            None => Fulfillment::InStore,
            Some(f) => Fulfillment::from_wire(f).ok_or_else(|| {
                Rejection::field("fulfillment", format!("unknown fulfillment {}", quoted(f)))
            })?,
        };
        Ok(Sale {
            order_id,
            lines,
            total_cents,
            payment: Payment {
                method,
                account_ref,
            },
            fulfillment,
        })
    }

    fn transfer(
        &self,
        w: &WireEvent<'_>,
        store: StoreIdx,
        other: &Option<Text<'_>>,
        other_field: &str,
    ) -> Result<Transfer, Rejection> {
        let transfer_id = id(required(&w.transfer_id, "transfer_id")?, "transfer_id")?;
        let other_store = self.store(other, other_field)?;
        if other_store == store {
            return Err(Rejection::field(
                other_field,
                "must be another store than store_id",
            ));
        }
        Ok(Transfer {
            transfer_id,
            other_store,
            lines: qty_lines(&w.lines, MAX_OTHER_LINES)?,
        })
    }
}

// ---------------------------------------------------------------- rules

fn required<'w>(value: &'w Option<Text<'_>>, field: &str) -> Result<&'w str, Rejection> {
    value
        .as_deref()
        .ok_or_else(|| Rejection::field(field, "required"))
}

fn quoted(s: &str) -> String {
    let shown: String = s.chars().take(80).collect();
    format!("{shown:?}")
}

fn check_version(v: i64) -> Result<(), Rejection> {
    if v == 1 {
        return Ok(());
    }
    Err(version_rejection(v))
}

fn version_rejection(shown: impl fmt::Display) -> Rejection {
    Rejection::field(
        "v",
        format!("unsupported schema version {shown}, expected 1"),
    )
}

fn timestamp(text: &str) -> Result<Ts, Rejection> {
    parse_rfc3339(text).ok_or_else(|| {
        // `parse_rfc3339` also fails for well-formed times that do not fit
        // nanoseconds since 1970 in an i64; say so rather than "not RFC 3339".
        let in_range = text.as_bytes().get(10) != Some(&b'T')
            || chrono::DateTime::parse_from_rfc3339(text)
                .map_or(true, |t| t.timestamp_nanos_opt().is_some());
        let rule = if in_range {
            "is not an RFC 3339 timestamp with offset (e.g. 2026-11-25T10:15:02.120+08:00)"
        } else {
            "is out of range (1677-09-21 to 2262-04-11 UTC)"
        };
        Rejection::field("occurred_at", format!("{} {rule}", quoted(text)))
    })
}

/// An id of 1-64 characters.
fn id(value: &str, field: &str) -> Result<Id, Rejection> {
    id_at(value, || field.to_owned())
}

/// An id of 1-64 characters; the field path is built only for a rejection.
fn id_at(value: &str, field: impl FnOnce() -> String) -> Result<Id, Rejection> {
    // At most 64 bytes is at most 64 characters: count only when longer.
    if value.is_empty() || (value.len() > 64 && value.chars().count() > 64) {
        let chars = value.chars().count();
        return Err(Rejection::field(
            field(),
            format!("must be 1-64 characters, got {chars}"),
        ));
    }
    Ok(CompactString::from(value))
}

fn optional_id(value: &Option<Text<'_>>, field: &str) -> Result<Option<Id>, Rejection> {
    value.as_deref().map(|v| id(v, field)).transpose()
}

fn check_event_id(value: &str) -> Result<(), Rejection> {
    // Characters first: `len()` counts bytes, which is the character count
    // only once every character is known to be ASCII.
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(Rejection::field(
            "event_id",
            format!("character {bad:?} not allowed (only A-Z a-z 0-9 _ . : -)"),
        ));
    }
    if value.is_empty() || value.len() > 64 {
        return Err(Rejection::field(
            "event_id",
            format!("must be 1-64 characters, got {}", value.len()),
        ));
    }
    Ok(())
}

fn require_member(member_id: &Option<Id>) -> Result<(), Rejection> {
    if member_id.is_none() {
        return Err(Rejection::field(
            "member_id",
            "required for this event type",
        ));
    }
    Ok(())
}

/// The kinds of integer the contract bounds, and their bounds.
#[derive(Debug, Clone, Copy)]
enum Amount {
    /// A line quantity: `1..=10^6`.
    Qty,
    /// A counted on-hand quantity: `0..=10^6`.
    OnHand,
    /// Money: `0..=10^12` cents.
    Cents,
    /// Points redeemed: `1..=10^12`.
    Points,
}

impl Amount {
    /// The kind of a wire field, by its name.
    fn of(field_name: &str) -> Option<Self> {
        Some(match field_name {
            "qty" => Self::Qty,
            "on_hand" => Self::OnHand,
            "unit_price_cents" | "total_cents" | "refund_cents" => Self::Cents,
            "points" => Self::Points,
            _ => return None,
        })
    }

    fn check(self, value: i64, field: impl FnOnce() -> String) -> Result<u64, Rejection> {
        let (positive, max, unit) = match self {
            Self::Qty => (true, MAX_QTY, ""),
            Self::OnHand => (false, MAX_QTY, ""),
            Self::Cents => (false, MAX_CENTS, " cents"),
            Self::Points => (true, MAX_CENTS, ""),
        };
        if positive && value <= 0 {
            return Err(Rejection::field(field(), "must be > 0"));
        }
        if value < 0 {
            return Err(Rejection::field(field(), "must be >= 0"));
        }
        if value > max {
            return Err(Rejection::field(
                field(),
                format!("must be at most {max}{unit}"),
            ));
        }
        Ok(value as u64)
    }
}

fn amount(kind: Amount, value: Option<i64>, field: &str) -> Result<u64, Rejection> {
    let value = value.ok_or_else(|| Rejection::field(field, "required"))?;
    kind.check(value, || field.to_owned())
}

fn line_amount(kind: Amount, value: Option<i64>, i: usize, name: &str) -> Result<u64, Rejection> {
    let field = || format!("lines[{i}].{name}");
    let value = value.ok_or_else(|| Rejection::field(field(), "required"))?;
    kind.check(value, field)
}

fn check_line_count(count: usize, max: usize) -> Result<(), Rejection> {
    if count == 0 {
        return Err(Rejection::field("lines", "must have at least 1 line"));
    }
    if count > max {
        return Err(Rejection::field(
            "lines",
            format!("at most {max} lines, got {count}"),
        ));
    }
    Ok(())
}

fn line_sku(line: &WireLine<'_>, i: usize) -> Result<Id, Rejection> {
    let field = || format!("lines[{i}].sku");
    let sku = line
        .sku
        .as_deref()
        .ok_or_else(|| Rejection::field(field(), "required"))?;
    id_at(sku, field)
}

fn qty_lines(
    lines: &Option<Vec<Object<WireLine<'_>>>>,
    max: usize,
) -> Result<Vec<QtyLine>, Rejection> {
    let lines = lines
        .as_ref()
        .ok_or_else(|| Rejection::field("lines", "required"))?;
    check_line_count(lines.len(), max)?;
    lines
        .iter()
        .enumerate()
        .map(|(i, Object(line))| {
            Ok(QtyLine {
                sku: line_sku(line, i)?,
                // `Amount::Qty` caps at 10^6, so the cast is lossless.
                qty: line_amount(Amount::Qty, line.qty, i, "qty")? as u32,
            })
        })
        .collect()
}

/// Below this many lines a stocktake is checked for repeated SKUs by linear
/// search; above, with a hash set.
const LINEAR_DUPLICATE_SEARCH: usize = 16;

fn count_lines(lines: &Option<Vec<Object<WireLine<'_>>>>) -> Result<Vec<CountLine>, Rejection> {
    let lines = lines
        .as_ref()
        .ok_or_else(|| Rejection::field("lines", "required"))?;
    check_line_count(lines.len(), MAX_OTHER_LINES)?;
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out: Vec<CountLine> = Vec::with_capacity(lines.len());
    for (i, Object(line)) in lines.iter().enumerate() {
        let sku = line_sku(line, i)?;
        // `Amount::OnHand` caps at 10^6, so the cast is lossless.
        let on_hand = line_amount(Amount::OnHand, line.on_hand, i, "on_hand")? as u32;
        let repeated = if lines.len() <= LINEAR_DUPLICATE_SEARCH {
            out.iter().any(|counted| counted.sku == sku)
        } else {
            // `line_sku` succeeded, so the SKU is present.
            !seen.insert(line.sku.as_deref().unwrap_or_default())
        };
        if repeated {
            return Err(Rejection::field(
                format!("lines[{i}].sku"),
                format!("{} is counted twice in one stocktake", quoted(&sku)),
            ));
        }
        out.push(CountLine { sku, on_hand });
    }
    Ok(out)
}

/// What one vectorised pass over an event's bytes tells before parsing.
struct Survey {
    /// Count of `{` and `[`, in strings or not: an upper bound of the depth.
    opening: usize,
    /// Whether there is a `\\` at all, that is, any escape in any string.
    backslash: bool,
}

impl Survey {
    fn of(bytes: &[u8]) -> Self {
        let (mut opening, mut backslash) = (0usize, false);
        for chunk in bytes.chunks(64) {
            // Per 64-byte chunk the counts fit a `u8`, which lets the
            // compiler vectorise the loop. `{`/`[` differ only in bit 0x20.
            let (open, escape) = chunk.iter().fold((0u8, 0u8), |(open, escape), &b| {
                (
                    open + u8::from(b | 0x20 == b'{'),
                    escape | u8::from(b == b'\\'),
                )
            });
            opening += usize::from(open);
            backslash |= escape != 0;
        }
        Self { opening, backslash }
    }
}

/// Whether `bytes` nest arrays and objects at most `max` deep outside
/// strings: the exact scan of [`Nesting`], for documents whose [`Survey`]
/// count of opening brackets alone does not settle it (long baskets,
/// stocktakes).
fn nesting_within(bytes: &[u8], max: usize) -> bool {
    let mut scan = Nesting {
        max,
        depth: 0,
        in_string: false,
        escaped: false,
    };
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        let mut whole = [0u8; 64];
        whole.copy_from_slice(block);
        if !scan.block(&whole) {
            return false;
        }
    }
    scan.bytes(blocks.remainder())
}

/// One bit per byte of `block` (bit `i` for byte `i`) that is `wanted`.
/// Written so that it vectorises: one comparison per byte into an array,
/// then eight bytes of 0/1 at a time gathered into one byte by a multiply.
#[inline(always)]
fn bits(block: &[u8; 64], wanted: impl Fn(u8) -> bool) -> u64 {
    let mut flags = [0u8; 64];
    for (flag, &b) in flags.iter_mut().zip(block) {
        *flag = u8::from(wanted(b));
    }
    let mut mask = 0;
    for (i, group) in flags.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(group);
        // Byte k (0 or 1) lands on bit 56 + k; no two partial products meet.
        let gathered = u64::from_le_bytes(word).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= gathered << (8 * i);
    }
    mask
}

/// The exact nesting scan: depth of `[`/`{` outside strings, escapes heeded.
struct Nesting {
    max: usize,
    depth: usize,
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escaped: bool,
}

impl Nesting {
    /// One 64-byte block, with bit masks (one bit per byte) when it has no
    /// backslash: the bytes inside strings are then the prefix parity of the
    /// quotes, and only the brackets outside them are visited.
    fn block(&mut self, block: &[u8; 64]) -> bool {
        let quotes = bits(block, |b| b == b'"');
        let backslashes = bits(block, |b| b == b'\\');
        // `{`/`[` and `}`/`]` differ only in bit 0x20.
        let opening = bits(block, |b| b | 0x20 == b'{');
        let closing = bits(block, |b| b | 0x20 == b'}');
        if self.escaped || backslashes != 0 {
            return self.bytes(block);
        }
        let mut inside = quotes;
        for shift in [1, 2, 4, 8, 16, 32] {
            inside ^= inside << shift;
        }
        if self.in_string {
            inside = !inside;
        }
        self.in_string ^= quotes.count_ones() % 2 == 1;
        let opening = opening & !inside;
        let mut brackets = opening | (closing & !inside);
        while brackets != 0 {
            let bit = brackets & brackets.wrapping_neg();
            if !self.bracket(opening & bit != 0) {
                return false;
            }
            brackets ^= bit;
        }
        true
    }

    /// Any bytes, one at a time.
    fn bytes(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                let fits = match b {
                    b'"' => {
                        self.in_string = true;
                        true
                    }
                    b'{' | b'[' => self.bracket(true),
                    b'}' | b']' => self.bracket(false),
                    _ => true,
                };
                if !fits {
                    return false;
                }
            }
        }
        true
    }

    /// An opening or closing bracket outside strings; false when too deep.
    fn bracket(&mut self, opening: bool) -> bool {
        if opening {
            self.depth += 1;
            self.depth <= self.max
        } else {
            // Unbalanced closers are a syntax error the parser reports.
            self.depth = self.depth.saturating_sub(1);
            true
        }
    }
}

/// Checks every `\\u` escape of a document `sonic-rs` accepted: four hex
/// digits, surrogates in pairs. `sonic-rs` checks them in the strings it
/// reads, but in the values it skips (unknown fields) it steps over any five
/// bytes after `\\u`, so `"note":"\\uZZZZ"` would pass as JSON.
///
/// Every backslash of an accepted document is in a string (anywhere else
/// `sonic-rs` rejects it), and escapes other than `\\u` are two bytes it
/// has checked, so a walk from one backslash to the next sees exactly the
/// escapes a strict parser sees.
fn check_escapes(bytes: &[u8]) -> Result<(), Rejection> {
    let hex4 = |at: usize| -> Option<u16> {
        let digits = bytes.get(at..at + 4)?;
        digits.iter().try_fold(0u16, |unit, &d| {
            let digit = char::from(d).to_digit(16)?;
            // Four digits of at most 15 fit a u16.
            Some(unit << 4 | digit as u16)
        })
    };
    let invalid =
        || Rejection::document("invalid JSON: invalid \\u escape (expected 4 hex digits)");
    let unpaired =
        || Rejection::document("invalid JSON: unpaired UTF-16 surrogate in a \\u escape");
    let mut i = 0;
    while let Some(found) = bytes
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\\'))
    {
        let at = i + found;
        if bytes.get(at + 1) != Some(&b'u') {
            i = at + 2;
            continue;
        }
        let unit = hex4(at + 2).ok_or_else(invalid)?;
        i = at + 6;
        match unit {
            0xD800..=0xDBFF => {
                if bytes.get(i..i + 2) != Some(b"\\u".as_slice()) {
                    return Err(unpaired());
                }
                match hex4(i + 2) {
                    Some(0xDC00..=0xDFFF) => i += 6,
                    Some(_) => return Err(unpaired()),
                    None => return Err(invalid()),
                }
            }
            0xDC00..=0xDFFF => return Err(unpaired()),
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- slow path

/// Names the field of a document that does not fit the wire types.
fn explain_wire_error(bytes: &[u8]) -> Rejection {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Rejection::document("empty event: expected one JSON object");
    }
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Rejection::document(
            "invalid JSON: starts with a byte order mark (U+FEFF); send UTF-8 without one",
        );
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        let at = e.valid_up_to();
        return Rejection::document(format!(
            "invalid JSON: not valid UTF-8 (byte 0x{:02x} at offset {at})",
            bytes[at]
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<Object<WireEvent<'_>>, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(_) => match de.end() {
            Err(trailing) => Rejection::document(format!(
                "invalid JSON: {} (one JSON object per event)",
                strip_position(&trailing.to_string())
            )),
            // serde_json accepted what sonic-rs did not (they differ only at
            // the edges, e.g. escapes of lone surrogates).
            Ok(()) => Rejection::document("invalid JSON: not a well-formed UTF-8 JSON object"),
        },
        Err(err) => {
            let path = err.path().clone();
            let inner = err.into_inner();
            let message = strip_position(&inner.to_string());
            if inner.is_syntax() || inner.is_eof() {
                let message = match message.as_str() {
                    // serde_json's words for `\ud800` not followed by `\udc00`..`\udfff`.
                    "unexpected end of hex escape" | "lone leading surrogate in hex escape" => {
                        "unpaired UTF-16 surrogate in a \\u escape"
                    }
                    other => other,
                };
                return Rejection::document(format!("invalid JSON: {message}"));
            }
            let at_root = path.iter().next().is_none();
            if let Some(key) = message
                .strip_prefix("duplicate field `")
                .and_then(|m| m.strip_suffix('`'))
            {
                let field = if at_root {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                return Rejection::field(field, "appears twice (duplicate key)");
            }
            if let Some(rejection) = explain_out_of_range(bytes, &path, &message) {
                return rejection;
            }
            let rule = describe(&message);
            if at_root {
                Rejection::document(format!("invalid event: {rule}"))
            } else {
                Rejection::field(path.to_string(), rule)
            }
        }
    }
}

/// An integer literal outside `i64` reaches us as a float or an "invalid
/// value"; judge it by the field's own rule, as the fast path would.
fn explain_out_of_range(
    bytes: &[u8],
    path: &serde_path_to_error::Path,
    message: &str,
) -> Option<Rejection> {
    if !(message.starts_with("invalid type: floating point")
        || message.starts_with("invalid value: integer"))
    {
        return None;
    }
    let mut pointer = Vec::new();
    for segment in path.iter() {
        pointer.push(match segment {
            Segment::Seq { index } => PointerNode::Index(*index),
            Segment::Map { key } => PointerNode::from(key.as_str()),
            Segment::Enum { .. } | Segment::Unknown => return None,
        });
    }
    let Some(PointerNode::Key(name)) = pointer.last() else {
        return None;
    };
    let name = name.to_string();
    let raw = sonic_rs::get_from_slice(bytes, &pointer).ok()?;
    let raw = raw.as_raw_str();
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let saturated = if raw.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    };
    if name == "v" && pointer.len() == 1 {
        return Some(version_rejection(raw));
    }
    Amount::of(&name)?
        .check(saturated, || path.to_string())
        .err()
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// serde's "invalid type: X, expected Y" as a rule: "must be Y, got X".
fn describe(message: &str) -> String {
    let Some((got, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    else {
        return message.to_owned();
    };
    let expected = match expected {
        "i64" => "an integer",
        "a sequence" => "an array",
        "a boolean" => "true or false",
        other => other,
    };
    let got = match got {
        "sequence" => Cow::Borrowed("an array"),
        "map" => Cow::Borrowed("an object"),
        // serde quotes a wrong string whole; a reason stays one short line.
        other => clip(other, 80),
    };
    format!("must be {expected}, got {got}")
}

/// `text` cut to at most `max` characters, marked with `...` when cut.
fn clip(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((end, _)) => Cow::Owned(format!("{}...", &text[..end])),
        None => Cow::Borrowed(text),
    }
}

/// The `event_id` of a document we could not parse, if it has a readable one.
fn sniff_event_id(bytes: &[u8]) -> Option<String> {
    let value = sonic_rs::get_from_slice(bytes, &["event_id"]).ok()?;
    let id: String = sonic_rs::from_str(value.as_raw_str()).ok()?;
    (!id.is_empty() && id.len() <= 256).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parser() -> EventParser {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        EventParser::new(Arc::new(StoreMaster::load(&path).unwrap()))
    }

    fn example(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/examples")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn every_contract_example_parses() {
        let p = parser();
        for name in [
            "sale.json",
            "sale_online.json",
            "return.json",
            "stock_receipt.json",
            "stock_count.json",
            "transfer_out.json",
            "transfer_in.json",
            "member_register.json",
            "points_redeem.json",
            "member_erase.json",
        ] {
            let event = p
                .parse(&example(name))
                .unwrap_or_else(|r| panic!("{name}: {r}"));
            assert_eq!(
                format!("{}.json", event.event_type().as_str()).replace("sale.json", "sale.json"),
                {
                    let stem = name.trim_end_matches(".json").trim_end_matches("_online");
                    format!("{stem}.json")
                }
            );
        }
    }

    #[test]
    fn sale_fields_are_typed() {
        let e = parser().parse(&example("sale.json")).unwrap();
        let EventBody::Sale(sale) = &e.body else {
            panic!("not a sale")
        };
        assert_eq!(sale.lines.len(), 2);
        assert_eq!(sale.lines[0].qty, 2);
        assert!(!sale.lines[0].promo);
        assert!(sale.lines[1].promo);
        assert_eq!(sale.total_cents, 16380);
        assert_eq!(sale.payment.account_ref.as_deref(), Some("wx_tok_8f3a"));
        assert_eq!(e.member_id.as_deref(), Some("M00012345"));
    }

    fn reject(json: &str) -> String {
        match parser().parse(json.as_bytes()) {
            Ok(e) => panic!("accepted {e:?}"),
            Err(r) => r.to_string(),
        }
    }

    const SALE: &str = r#"{"v":1,"event_id":"e1","event_type":"sale","occurred_at":"2026-11-25T10:15:02+08:00","store_id":"KM-001","channel":"pos","order_id":"o1","lines":[{"sku":"A","qty":1,"unit_price_cents":100},{"sku":"B","qty":1,"unit_price_cents":100},{"sku":"C","qty":QTY,"unit_price_cents":100}],"total_cents":300,"payment":{"method":"cash"}}"#;

    #[test]
    fn rejections_name_field_and_rule() {
        assert_eq!(
            reject(&SALE.replace("QTY", "0")),
            "lines[2].qty: must be > 0"
        );
        assert!(reject(&SALE.replace("QTY", "1.5")).starts_with("lines[2].qty: must be an integer"));
        assert_eq!(
            reject(&SALE.replace("QTY", "1").replace("KM-001", "XX-9")),
            r#"store_id: unknown store "XX-9""#
        );
        assert!(reject("").contains("empty"));
        assert!(reject("{not json").starts_with("invalid JSON"));
    }

    #[test]
    fn brackets_inside_strings_are_not_nesting() {
        // More than MAX_NESTING opening brackets in all, so the exact scan
        // runs; the ones inside strings (even after an escaped quote) do
        // not count.
        let sku = format!(r#"[\"{}"#, "[{".repeat(20));
        let doc =
            SALE.replace("QTY", "1")
                .replacen(r#""sku":"A""#, &format!(r#""sku":"{sku}""#), 1);
        let nested = format!(
            "{}{}",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        let doc = doc.replacen('{', &format!(r#"{{"x":{nested},"#), 1);
        assert!(nesting_within(doc.as_bytes(), MAX_NESTING));
        let e = parser()
            .parse(doc.as_bytes())
            .unwrap_or_else(|r| panic!("{r}"));
        let EventBody::Sale(sale) = &e.body else {
            panic!("not a sale")
        };
        assert_eq!(sale.lines[0].sku.len(), 42);
        assert!(!nesting_within(format!("[{doc}]").as_bytes(), MAX_NESTING));
    }

    /// The byte-at-a-time scan, as the reference for the block scan.
    fn nesting_by_bytes(bytes: &[u8], max: usize) -> bool {
        Nesting {
            max,
            depth: 0,
            in_string: false,
            escaped: false,
        }
        .bytes(bytes)
    }

    proptest::proptest! {
        #[test]
        fn nesting_scan_by_blocks_matches_by_bytes(
            // Backslashes rare enough that many 64-byte blocks have none.
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    40 => proptest::sample::select(b"[]{}\"ax".to_vec()),
                    1 => proptest::strategy::Just(b'\\'),
                ],
                0..600,
            ),
            max in 0..40usize,
        ) {
            proptest::prop_assert_eq!(nesting_within(&bytes, max), nesting_by_bytes(&bytes, max));
        }
    }

    #[test]
    fn escape_check_needs_hex_and_pairs_and_never_panics() {
        assert!(check_escapes(br#""\u00e9\ud83d\ude00\\u\"""#).is_ok());
        for bad in [
            &br#""\uZZZZ""#[..],
            br#""\u12""#,
            br#""\ud800""#,
            br#""\ud800\u0041""#,
            br#""\udc00""#,
        ] {
            assert!(
                check_escapes(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for cut in [&b"\\"[..], b"\\u", b"\\ud800", b"\\ud800\\", b"\\ud800\\u"] {
            let _ = check_escapes(cut);
        }
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let doc = SALE
            .replace("QTY", "1")
            .replace(r#""e1""#, r#""e\u0031\/""#);
        assert_eq!(
            reject(&doc),
            r#"event_id: character '/' not allowed (only A-Z a-z 0-9 _ . : -)"#
        );
        let doc = SALE.replace("QTY", "1").replace(r#""o1""#, r#""o\"1""#);
        let e = parser()
            .parse(doc.as_bytes())
            .unwrap_or_else(|r| panic!("{r}"));
        let EventBody::Sale(sale) = &e.body else {
            panic!("not a sale")
        };
        assert_eq!(sale.order_id, "o\"1");
    }

    #[test]
    fn rejection_carries_event_id_when_readable() {
        let r = parser()
            .parse(SALE.replace("QTY", "1.5").as_bytes())
            .unwrap_err();
        assert_eq!(r.event_id.as_deref(), Some("e1"));
    }
}
