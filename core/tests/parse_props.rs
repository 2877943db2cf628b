//! Robustness properties of [`EventParser`]:
//!
//! - arbitrary bytes never make it panic;
//! - nor do valid events with a few random edits (a byte deleted, flipped or
//!   inserted, a number swapped for an edge value, a cut);
//! - what it rejects gets a one-line reason of bounded length;
//! - whatever it accepts is a JSON object that `serde_json` reads too, whose
//!   `event_id` is the accepted event's id and satisfies the contract;
//! - for generated sales, it accepts exactly those whose ids and amounts are
//!   inside the contract's bounds.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use storepulse_core::{Event, EventParser, StoreMaster, MAX_CENTS, MAX_QTY};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parser() -> &'static EventParser {
    static PARSER: OnceLock<EventParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        let stores =
            StoreMaster::load(&repo().join("data/stores.csv")).expect("data/stores.csv loads");
        EventParser::new(Arc::new(stores))
    })
}

/// The contract examples, as written (pretty) and compacted.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = repo().join("tests/data/examples");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("tests/data/examples is readable")
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        paths.sort();
        let mut seeds = Vec::new();
        for path in paths {
            let pretty = std::fs::read(&path).expect("example is readable");
            let value: serde_json::Value =
                serde_json::from_slice(&pretty).expect("example is JSON");
            seeds.push(serde_json::to_vec(&value).expect("serialises"));
            seeds.push(pretty);
        }
        seeds
    })
}

/// `cases` per property, unless `PROPTEST_CASES` asks for another number
/// (`PROPTEST_CASES=100000 cargo test --release --test parse_props`).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Checks what the parser says about `bytes`; panics (failing the property)
/// if it accepted something it must not have.
fn check(bytes: &[u8]) -> Option<Event> {
    let event = match parser().parse(bytes) {
        Ok(event) => event,
        Err(rejection) => {
            // A reason is one short line naming the field, whatever the input.
            let shown = rejection.to_string();
            assert!(
                shown.len() <= 1024,
                "reason of {} bytes: {shown:.200}",
                shown.len()
            );
            assert!(!shown.contains('\n'), "multi-line reason {shown:?}");
            if let Some(field) = &rejection.field {
                assert!(shown.starts_with(&format!("{field}: ")), "{shown:?}");
            }
            return None;
        }
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "accepted what serde_json rejects ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    });
    let object = value
        .as_object()
        .expect("accepted a JSON value that is not an object");
    let wire_id = object
        .get("event_id")
        .and_then(|id| id.as_str())
        .expect("accepted without a string event_id");
    assert_eq!(
        event.event_id.as_str(),
        wire_id,
        "event_id does not round-trip"
    );
    assert!(
        (1..=64).contains(&wire_id.len()),
        "accepted event_id of {} bytes",
        wire_id.len()
    );
    assert!(
        wire_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)),
        "accepted event_id {wire_id:?}"
    );
    assert_eq!(
        object.get("v").and_then(|v| v.as_i64()),
        Some(1),
        "accepted without v = 1"
    );
    Some(event)
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Flip(usize, u8),
    Insert(usize, u8),
    Truncate(usize),
    /// Replace the n-th number in the text by another literal.
    Number(usize, &'static str),
    /// Insert a piece of JSON-ish text.
    Snippet(usize, &'static str),
    /// Copy a span of the text to another place.
    Duplicate(usize, usize, usize),
}

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "1000000",
    "1000001",
    "1000000000000",
    "1000000000001",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999",
    "1.0",
    "1.5",
    "1e3",
    "1e30",
    "-1e400",
    "01",
    "true",
    "null",
    "\"1\"",
    "[]",
    "{}",
];

const SNIPPETS: &[&str] = &[
    "\\u",
    "\\ud800",
    "\\udc00",
    "\\u00e9",
    "\\\"",
    "\"note\":\"\\uZZZZ\",",
    "\"note\":\"caf\\ud800\",",
    "\"x\":{\"a\":[1,{\"b\":null}]},",
    "\"x\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]],",
    "\"v\":1,",
    "\"v\":2,",
    "\"member_id\":null,",
    "\"lines\":[],",
    "\"event_id\":\"dup\",",
    "\u{feff}",
    "\u{a0}",
    "null",
    "[]",
    "{}",
];

/// Interesting bytes for JSON: structure, quotes, escapes, UTF-8 lead bytes.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => any::<u8>(),
        2 => prop::sample::select(b"{}[]\",:\\ 0123456789-.eE\ntfnu".to_vec()),
        1 => prop::sample::select(vec![0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xe9, 0xef, 0xf0, 0xff]),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Edit::Flip(at, mask)),
        (any::<usize>(), byte()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), prop::sample::select(NUMBERS)).prop_map(|(n, lit)| Edit::Number(n, lit)),
        (any::<usize>(), prop::sample::select(SNIPPETS))
            .prop_map(|(at, text)| Edit::Snippet(at, text)),
        (any::<usize>(), 1..40usize, any::<usize>())
            .prop_map(|(from, len, to)| Edit::Duplicate(from, len, to)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match *edit {
        Edit::Delete(at) => {
            bytes.remove(at % len);
        }
        Edit::Flip(at, mask) => bytes[at % len] ^= mask,
        Edit::Insert(at, b) => bytes.insert(at % (len + 1), b),
        Edit::Truncate(at) => bytes.truncate(at % len),
        Edit::Number(n, literal) => {
            // Spans of digits (with a leading minus) outside of any string
            // are rare to tell apart cheaply; any digit run will do.
            let mut runs = Vec::new();
            let mut i = 0;
            while i < len {
                if bytes[i].is_ascii_digit() {
                    let start = if i > 0 && bytes[i - 1] == b'-' {
                        i - 1
                    } else {
                        i
                    };
                    while i < len && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    runs.push(start..i);
                } else {
                    i += 1;
                }
            }
            if !runs.is_empty() {
                let run = runs[n % runs.len()].clone();
                bytes.splice(run, literal.bytes());
            }
        }
        Edit::Snippet(at, text) => {
            let at = at % (len + 1);
            bytes.splice(at..at, text.bytes());
        }
        Edit::Duplicate(from, span, to) => {
            let from = from % len;
            let piece = bytes[from..(from + span).min(len)].to_vec();
            let to = to % (len + 1);
            bytes.splice(to..to, piece);
        }
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(byte(), 0..600)) {
        check(&bytes);
    }

    #[test]
    fn edited_events_never_panic(seed in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..4)) {
        let seeds = seeds();
        let mut bytes = seeds[seed.index(seeds.len())].clone();
        for e in &edits {
            apply(&mut bytes, e);
        }
        check(&bytes);
    }
}

// ------------------------------------------------------- generated sales

#[derive(Debug, Clone)]
struct GenLine {
    sku: String,
    qty: i64,
    price: i64,
}

fn qty() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 1..=20i64,
        1 => prop::sample::select(vec![-1, 0, 1, MAX_QTY, MAX_QTY + 1, i64::MAX, i64::MIN]),
        1 => any::<i64>(),
    ]
}

fn cents() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0..=100_000i64,
        1 => prop::sample::select(vec![-1, 0, MAX_CENTS, MAX_CENTS + 1, i64::MAX, i64::MIN]),
        1 => any::<i64>(),
    ]
}

/// Ids: mostly valid, sometimes empty, too long, or with other characters.
fn id(alphabet: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::string::string_regex(&format!("[{alphabet}]{{1,64}}")).expect("regex"),
        1 => proptest::string::string_regex(&format!("[{alphabet}]{{65,70}}")).expect("regex"),
        1 => Just(String::new()),
        1 => proptest::string::string_regex("[ -~é昆\"\\\\/\t]{1,66}").expect("regex"),
    ]
}

fn line() -> impl Strategy<Value = GenLine> {
    (id("A-Za-z0-9-"), qty(), cents()).prop_map(|(sku, qty, price)| GenLine { sku, qty, price })
}

prop_compose! {
    fn sale()(
        event_id in id("A-Za-z0-9_.:-"),
        lines in prop::collection::vec(line(), 0..5),
        total in cents(),
        store in prop::sample::select(vec!["KM-001", "KM-DC", "XX-9"]),
    ) -> (String, Vec<GenLine>, i64, &'static str) {
        (event_id, lines, total, store)
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn generated_sales_are_accepted_exactly_when_valid((event_id, lines, total, store) in sale()) {
        let doc = serde_json::json!({
            "v": 1,
            "event_id": event_id,
            "event_type": "sale",
            "occurred_at": "2026-11-25T10:15:02.120+08:00",
            "store_id": store,
            "channel": "pos",
            "order_id": "KM-001-20261125-0918",
            "lines": lines.iter().map(|l| serde_json::json!({"sku": l.sku, "qty": l.qty, "unit_price_cents": l.price})).collect::<Vec<_>>(),
            "total_cents": total,
            "payment": {"method": "cash"},
        });
        let bytes = serde_json::to_vec(&doc).expect("serialises");
        let id_ok = (1..=64).contains(&event_id.len())
            && event_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        let lines_ok = (1..=500).contains(&lines.len())
            && lines.iter().all(|l| {
                (1..=64).contains(&l.sku.chars().count())
                    && (1..=MAX_QTY).contains(&l.qty)
                    && (0..=MAX_CENTS).contains(&l.price)
            });
        let valid = id_ok && lines_ok && (0..=MAX_CENTS).contains(&total) && store != "XX-9";
        match check(&bytes) {
            Some(event) => {
                prop_assert!(valid, "accepted an invalid sale: {}", String::from_utf8_lossy(&bytes));
                prop_assert_eq!(event.event_id.as_str(), event_id.as_str());
            }
            None => prop_assert!(!valid, "rejected a valid sale: {:?}", parser().parse(&bytes).err()),
        }
    }
}
