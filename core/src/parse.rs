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

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;
use serde::Deserialize;

use crate::event::*;
use crate::stores::{StoreIdx, StoreMaster};
use crate::time::parse_rfc3339;

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
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    store_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow)]
    member_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    order_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    lines: Option<Vec<WireLine<'a>>>,
    total_cents: Option<i64>,
    #[serde(borrow)]
    payment: Option<WirePayment<'a>>,
    #[serde(borrow)]
    fulfillment: Option<Cow<'a, str>>,
    refund_cents: Option<i64>,
    restock: Option<bool>,
    #[serde(borrow)]
    reference: Option<Cow<'a, str>>,
    #[serde(borrow)]
    transfer_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    to_store: Option<Cow<'a, str>>,
    #[serde(borrow)]
    from_store: Option<Cow<'a, str>>,
    #[serde(borrow)]
    phone_hash: Option<Cow<'a, str>>,
    points: Option<i64>,
}

#[derive(Deserialize)]
struct WireLine<'a> {
    #[serde(borrow)]
    sku: Option<Cow<'a, str>>,
    qty: Option<i64>,
    unit_price_cents: Option<i64>,
    promo: Option<bool>,
    on_hand: Option<i64>,
}

#[derive(Deserialize)]
struct WirePayment<'a> {
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    account_ref: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------- parser

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
        let result = match sonic_rs::from_slice::<WireEvent<'_>>(bytes) {
            Ok(wire) => self.validate(wire),
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
            Some(1) => {}
            Some(other) => {
                return Err(Rejection::field("v", format!("unsupported schema version {other}, expected 1")))
            }
            None => return Err(Rejection::field("v", "required")),
        }
        let event_id = required(&w.event_id, "event_id")?;
        check_event_id(event_id)?;
        let type_name = required(&w.event_type, "event_type")?;
        let event_type = EventType::from_wire(type_name).ok_or_else(|| {
            Rejection::field("event_type", format!("unknown event type {}", quoted(type_name)))
        })?;
        let occurred_at_text = required(&w.occurred_at, "occurred_at")?;
        let occurred_at = parse_rfc3339(occurred_at_text).ok_or_else(|| {
            Rejection::field(
                "occurred_at",
                format!("{} is not an RFC 3339 timestamp with offset", quoted(occurred_at_text)),
            )
        })?;
        let store = self.store(&w.store_id, "store_id")?;
        let channel_name = required(&w.channel, "channel")?;
        let channel = Channel::from_wire(channel_name)
            .ok_or_else(|| Rejection::field("channel", format!("unknown channel {}", quoted(channel_name))))?;
        let member_id = match &w.member_id {
            Some(m) => Some(id(m, "member_id")?),
            None => None,
        };

        let body = match event_type {
            EventType::Sale => EventBody::Sale(self.sale(&w)?),
            EventType::Return => EventBody::Return(Return {
                order_id: id(required(&w.order_id, "order_id")?, "order_id")?,
                lines: qty_lines(&w.lines, MAX_OTHER_LINES)?,
                refund_cents: cents(w.refund_cents, "refund_cents")?,
                restock: w.restock.unwrap_or(true),
            }),
            EventType::StockReceipt => EventBody::StockReceipt(StockReceipt {
                reference: optional_id(&w.reference, "reference")?,
                lines: qty_lines(&w.lines, MAX_OTHER_LINES)?,
            }),
            EventType::StockCount => EventBody::StockCount(StockCount {
                lines: count_lines(&w.lines)?,
            }),
            EventType::TransferOut => EventBody::TransferOut(self.transfer(&w, store, &w.to_store, "to_store")?),
            EventType::TransferIn => {
                EventBody::TransferIn(self.transfer(&w, store, &w.from_store, "from_store")?)
            }
            EventType::MemberRegister => {
                require_member(&member_id)?;
                let hash = required(&w.phone_hash, "phone_hash")?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
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
                let points = w.points.ok_or_else(|| Rejection::field("points", "required"))?;
                if points <= 0 {
                    return Err(Rejection::field("points", "must be > 0"));
                }
                if points > MAX_CENTS {
                    return Err(Rejection::field("points", format!("must be at most {MAX_CENTS}")));
                }
                EventBody::PointsRedeem(PointsRedeem {
                    points: points as u64,
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

    fn store(&self, value: &Option<Cow<'_, str>>, field: &str) -> Result<StoreIdx, Rejection> {
        let store_id = required(value, field)?;
        self.stores
            .lookup(store_id)
            .ok_or_else(|| Rejection::field(field, format!("unknown store {}", quoted(store_id))))
    }

    fn sale(&self, w: &WireEvent<'_>) -> Result<Sale, Rejection> {
        let order_id = id(required(&w.order_id, "order_id")?, "order_id")?;
        let wire_lines = w.lines.as_ref().ok_or_else(|| Rejection::field("lines", "required"))?;
        check_line_count(wire_lines.len(), MAX_SALE_LINES)?;
        let mut lines = Vec::with_capacity(wire_lines.len());
        for (i, line) in wire_lines.iter().enumerate() {
            let unit_price_cents = match line.unit_price_cents {
                Some(c) => cents_value(c, || format!("lines[{i}].unit_price_cents"))?,
                None => return Err(Rejection::field(format!("lines[{i}].unit_price_cents"), "required")),
            };
            lines.push(SaleLine {
                sku: line_sku(line, i)?,
                qty: line_qty(line, i)?,
                unit_price_cents,
                promo: line.promo.unwrap_or(false),
            });
        }
        let total_cents = cents(w.total_cents, "total_cents")?;
        let payment = w.payment.as_ref().ok_or_else(|| Rejection::field("payment", "required"))?;
        let method_name = required(&payment.method, "payment.method")?;
        let method = PaymentMethod::from_wire(method_name).ok_or_else(|| {
            Rejection::field("payment.method", format!("unknown payment method {}", quoted(method_name)))
        })?;
        let account_ref = optional_id(&payment.account_ref, "payment.account_ref")?;
        let fulfillment = match &w.fulfillment {
            None => Fulfillment::InStore,
            Some(f) => Fulfillment::from_wire(f)
                .ok_or_else(|| Rejection::field("fulfillment", format!("unknown fulfillment {}", quoted(f))))?,
        };
        Ok(Sale {
            order_id,
            lines,
            total_cents,
            payment: Payment { method, account_ref },
            fulfillment,
        })
    }

    fn transfer(
        &self,
        w: &WireEvent<'_>,
        store: StoreIdx,
        other: &Option<Cow<'_, str>>,
        other_field: &str,
    ) -> Result<Transfer, Rejection> {
        let transfer_id = id(required(&w.transfer_id, "transfer_id")?, "transfer_id")?;
        let other_store = self.store(other, other_field)?;
        if other_store == store {
            return Err(Rejection::field(other_field, "must be another store than store_id"));
        }
        Ok(Transfer {
            transfer_id,
            other_store,
            lines: qty_lines(&w.lines, MAX_OTHER_LINES)?,
        })
    }
}

// ---------------------------------------------------------------- rules

fn required<'w>(value: &'w Option<Cow<'_, str>>, field: &str) -> Result<&'w str, Rejection> {
    value.as_deref().ok_or_else(|| Rejection::field(field, "required"))
}

fn quoted(s: &str) -> String {
    let shown: String = s.chars().take(80).collect();
    format!("{shown:?}")
}

/// An id of 1-64 characters.
fn id(value: &str, field: &str) -> Result<Id, Rejection> {
    let chars = value.chars().count();
    if chars == 0 || chars > 64 {
        return Err(Rejection::field(field, format!("must be 1-64 characters, got {chars}")));
    }
    Ok(CompactString::from(value))
}

fn optional_id(value: &Option<Cow<'_, str>>, field: &str) -> Result<Option<Id>, Rejection> {
    value.as_deref().map(|v| id(v, field)).transpose()
}

fn check_event_id(value: &str) -> Result<(), Rejection> {
    if value.is_empty() || value.len() > 64 {
        return Err(Rejection::field(
            "event_id",
            format!("must be 1-64 characters, got {}", value.chars().count()),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(Rejection::field(
            "event_id",
            format!("character {bad:?} not allowed (only A-Z a-z 0-9 _ . : -)"),
        ));
    }
    Ok(())
}

fn require_member(member_id: &Option<Id>) -> Result<(), Rejection> {
    if member_id.is_none() {
        return Err(Rejection::field("member_id", "required for this event type"));
    }
    Ok(())
}

fn cents(value: Option<i64>, field: &str) -> Result<u64, Rejection> {
    let value = value.ok_or_else(|| Rejection::field(field, "required"))?;
    cents_value(value, || field.to_owned())
}

fn cents_value(value: i64, field: impl Fn() -> String) -> Result<u64, Rejection> {
    if value < 0 {
        return Err(Rejection::field(field(), "must be >= 0"));
    }
    if value > MAX_CENTS {
        return Err(Rejection::field(field(), format!("must be at most {MAX_CENTS} cents")));
    }
    Ok(value as u64)
}

fn check_line_count(count: usize, max: usize) -> Result<(), Rejection> {
    if count == 0 {
        return Err(Rejection::field("lines", "must have at least 1 line"));
    }
    if count > max {
        return Err(Rejection::field("lines", format!("at most {max} lines, got {count}")));
    }
    Ok(())
}

fn line_sku(line: &WireLine<'_>, i: usize) -> Result<Id, Rejection> {
    let field = || format!("lines[{i}].sku");
    let sku = line.sku.as_deref().ok_or_else(|| Rejection::field(field(), "required"))?;
    id(sku, &field())
}

fn line_qty(line: &WireLine<'_>, i: usize) -> Result<u32, Rejection> {
    let field = || format!("lines[{i}].qty");
    let qty = line.qty.ok_or_else(|| Rejection::field(field(), "required"))?;
    if qty <= 0 {
        return Err(Rejection::field(field(), "must be > 0"));
    }
    if qty > MAX_QTY {
        return Err(Rejection::field(field(), format!("must be at most {MAX_QTY}")));
    }
    Ok(qty as u32)
}

fn qty_lines(lines: &Option<Vec<WireLine<'_>>>, max: usize) -> Result<Vec<QtyLine>, Rejection> {
    let lines = lines.as_ref().ok_or_else(|| Rejection::field("lines", "required"))?;
    check_line_count(lines.len(), max)?;
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            Ok(QtyLine {
                sku: line_sku(line, i)?,
                qty: line_qty(line, i)?,
            })
        })
        .collect()
}

fn count_lines(lines: &Option<Vec<WireLine<'_>>>) -> Result<Vec<CountLine>, Rejection> {
    let lines = lines.as_ref().ok_or_else(|| Rejection::field("lines", "required"))?;
    check_line_count(lines.len(), MAX_OTHER_LINES)?;
    let mut seen = HashSet::with_capacity(lines.len());
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let sku = line_sku(line, i)?;
        let field = || format!("lines[{i}].on_hand");
        let on_hand = line.on_hand.ok_or_else(|| Rejection::field(field(), "required"))?;
        if on_hand < 0 {
            return Err(Rejection::field(field(), "must be >= 0"));
        }
        if on_hand > MAX_QTY {
            return Err(Rejection::field(field(), format!("must be at most {MAX_QTY}")));
        }
        if !seen.insert(sku.clone()) {
            return Err(Rejection::field(
                format!("lines[{i}].sku"),
                format!("{} is counted twice in one stocktake", quoted(&sku)),
            ));
        }
        out.push(CountLine {
            sku,
            on_hand: on_hand as u32,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------- slow path

/// Names the field of a document that does not fit the wire types.
fn explain_wire_error(bytes: &[u8]) -> Rejection {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Rejection::document("empty event: expected one JSON object");
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<WireEvent<'_>, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(_) => match de.end() {
            Err(trailing) => Rejection::document(format!(
                "invalid JSON: {} (one JSON object per event)",
                strip_position(&trailing.to_string())
            )),
            // serde_json accepted what sonic-rs did not (they differ only at
            // the edges, e.g. lone surrogates in \u escapes).
            Ok(()) => Rejection::document("invalid JSON: not a well-formed UTF-8 JSON object"),
        },
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = strip_position(&inner.to_string());
            let syntax = inner.is_syntax() || inner.is_eof();
            if syntax || path == "." || path.is_empty() {
                let what = if syntax { "invalid JSON" } else { "invalid event" };
                Rejection::document(format!("{what}: {message}"))
            } else {
                Rejection::field(path, friendly(&message))
            }
        }
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn friendly(message: &str) -> String {
    if message.starts_with("invalid type: floating point") {
        format!("must be an integer ({message})")
    } else if message.contains("invalid type: null") {
        "required".to_owned()
    } else {
        message.to_owned()
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
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/examples").join(name);
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
            let event = p.parse(&example(name)).unwrap_or_else(|r| panic!("{name}: {r}"));
            assert_eq!(format!("{}.json", event.event_type().as_str()).replace("sale.json", "sale.json"), {
                let stem = name.trim_end_matches(".json").trim_end_matches("_online");
                format!("{stem}.json")
            });
        }
    }

    #[test]
    fn sale_fields_are_typed() {
        let e = parser().parse(&example("sale.json")).unwrap();
        let EventBody::Sale(sale) = &e.body else { panic!("not a sale") };
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
        assert_eq!(reject(&SALE.replace("QTY", "0")), "lines[2].qty: must be > 0");
        assert!(reject(&SALE.replace("QTY", "1.5")).starts_with("lines[2].qty: must be an integer"));
        assert_eq!(
            reject(&SALE.replace("QTY", "1").replace("KM-001", "XX-9")),
            r#"store_id: unknown store "XX-9""#
        );
        assert!(reject("").contains("empty"));
        assert!(reject("{not json").starts_with("invalid JSON"));
    }

    #[test]
    fn rejection_carries_event_id_when_readable() {
        let r = parser().parse(SALE.replace("QTY", "1.5").as_bytes()).unwrap_err();
        assert_eq!(r.event_id.as_deref(), Some("e1"));
    }
}
