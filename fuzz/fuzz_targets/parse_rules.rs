//! Fuzz target: the fraud rules file (`fraud-rules.toml`, and the JSON of
//! `PUT /v1/rules/{name}`), which the risk team edits by hand.
//!
//! Arbitrary bytes go to `rules::parse` (TOML, then validation against the
//! shipped store master). It must never panic or hang; a set it accepts must
//! survive `render` and `parse` again unchanged, and every rule in it must
//! validate on its own.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use storepulse_core::StoreMaster;
use storepulse_processors::fraud::rules::{parse, render};

fn stores() -> &'static StoreMaster {
    static STORES: OnceLock<StoreMaster> = OnceLock::new();
    STORES.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        StoreMaster::load(&path).expect("data/stores.csv")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = parse(text, stores()) else {
        return;
    };
    for spec in rules.specs() {
        assert!(spec.validate(stores()).is_ok(), "accepted rule {spec:?} does not validate alone");
    }
    let rendered = render(&rules).expect("an accepted set renders");
    let again = parse(&rendered, stores()).expect("a rendered set parses");
    assert_eq!(again.specs(), rules.specs(), "render/parse changed the rules");
});
