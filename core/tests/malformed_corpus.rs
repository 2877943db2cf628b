//! The malformed-event corpus: every file in `tests/data/malformed/` is one
//! event as an emitter might send it (raw bytes, not necessarily JSON or
//! UTF-8), and `expected.tsv` names the part of the rejection reason it must
//! produce: the field and the rule (`lines[2].qty: must be > 0`), or for an
//! unreadable document the reason (`invalid JSON: ...`).
//!
//! Each case is parsed and must be rejected, without a panic, with that
//! reason. The contract examples in `tests/data/examples/` are the other side:
//! each must be accepted.
//!
//! To add a case: add `NNN-short-name.json` and a line in `expected.tsv`.

#![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use storepulse_core::{EventParser, StoreMaster};

/// The corpus is meant to cover every rule of the contract and more.
const MIN_CASES: usize = 60;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn parser() -> EventParser {
    let stores = StoreMaster::load(&repo().join("data/stores.csv")).expect("data/stores.csv loads");
    EventParser::new(Arc::new(stores))
}

/// The `.json` files of a directory, sorted by name.
fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// `expected.tsv`: file name -> expected substring of the rejection.
fn manifest(dir: &Path) -> BTreeMap<String, String> {
    let path = dir.join("expected.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut expected = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, reason) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("expected.tsv line {}: no tab in {line:?}", n + 1));
        assert!(
            !reason.trim().is_empty(),
            "expected.tsv line {}: empty reason",
            n + 1
        );
        let previous = expected.insert(file.to_owned(), reason.to_owned());
        assert!(
            previous.is_none(),
            "expected.tsv line {}: {file} listed twice",
            n + 1
        );
    }
    expected
}

#[test]
fn manifest_lists_every_case() {
    let dir = repo().join("tests/data/malformed");
    let files = json_files(&dir);
    let expected = manifest(&dir);
    assert!(
        files.len() >= MIN_CASES,
        "only {} malformed cases",
        files.len()
    );
    let unlisted: Vec<&String> = files
        .iter()
        .filter(|f| !expected.contains_key(*f))
        .collect();
    let missing: Vec<&String> = expected.keys().filter(|f| !files.contains(f)).collect();
    assert!(
        unlisted.is_empty(),
        "files without an expected reason: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "expected.tsv names files that do not exist: {missing:?}"
    );
}

#[test]
fn every_malformed_event_is_rejected_with_its_reason() {
    let dir = repo().join("tests/data/malformed");
    let parser = parser();
    let mut failures = Vec::new();
    for (file, reason) in manifest(&dir) {
        let bytes = std::fs::read(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        match catch_unwind(AssertUnwindSafe(|| parser.parse(&bytes))) {
            Err(_) => failures.push(format!("{file}: parser panicked")),
            Ok(Ok(event)) => failures.push(format!("{file}: accepted as {event:?}")),
            Ok(Err(rejection)) => {
                let shown = rejection.to_string();
                if !shown.contains(&reason) {
                    failures.push(format!(
                        "{file}: rejected with {shown:?}, expected it to contain {reason:?}"
                    ));
                }
                // A rejection names a field, or is about the whole document.
                if let Some(field) = &rejection.field {
                    assert!(
                        shown.starts_with(&format!("{field}: ")),
                        "{file}: {shown:?}"
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the corpus failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_contract_example_is_accepted() {
    let dir = repo().join("tests/data/examples");
    let parser = parser();
    let files = json_files(&dir);
    assert!(
        files.len() >= 10,
        "expected one example per event type, found {files:?}"
    );
    for file in files {
        let bytes = std::fs::read(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let event = parser
            .parse(&bytes)
            .unwrap_or_else(|r| panic!("{file}: rejected: {r}"));
        let stem = file.trim_end_matches(".json");
        // `sale_online.json` is a sale; every other example is named after its type.
        assert!(
            stem.starts_with(event.event_type().as_str()),
            "{file} parsed as {:?}",
            event.event_type()
        );
    }
}

#[test]
fn nesting_at_the_limit_is_accepted() {
    // The deepest unknown field still accepted: the event object is level 1.
    let depth = storepulse_core::parse::MAX_NESTING - 1;
    let event = std::fs::read_to_string(repo().join("tests/data/examples/member_erase.json"))
        .expect("example");
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let doc = event.replacen('{', &format!("{{\"x\":{nested},"), 1);
    let parser = parser();
    assert!(parser.parse(doc.as_bytes()).is_ok());
    let too_deep = event.replacen('{', &format!("{{\"x\":[{nested}],"), 1);
    let rejection = parser
        .parse(too_deep.as_bytes())
        .expect_err("one level too deep");
    assert!(
        rejection.to_string().contains("nested deeper than"),
        "{rejection}"
    );
}
