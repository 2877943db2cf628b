//! Fuzzes [`EventParser::parse`] with arbitrary bytes: it must never panic,
//! overflow the stack or hang, and anything it accepts must carry an
//! `event_id` of 1-64 characters from the contract's alphabet, and be a JSON
//! object that `serde_json` reads too, with that same `event_id` (the fast
//! path is `sonic-rs`; this cross-checks it against a second parser).

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use storepulse_core::{EventParser, StoreMaster};

fn parser() -> &'static EventParser {
    static PARSER: OnceLock<EventParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        let stores = StoreMaster::load(&path).unwrap_or_else(|e| panic!("store master: {e}"));
        EventParser::new(Arc::new(stores))
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = parser().parse(data) {
        let id = event.event_id.as_str();
        assert!(
            (1..=64).contains(&id.len()),
            "accepted event_id of {} bytes",
            id.len()
        );
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)),
            "accepted event_id {id:?}"
        );
        let value: serde_json::Value = serde_json::from_slice(data)
            .unwrap_or_else(|e| panic!("accepted what serde_json rejects: {e}"));
        let wire_id = value.get("event_id").and_then(|v| v.as_str());
        assert_eq!(wire_id, Some(id), "event_id does not round-trip");
    }
});
