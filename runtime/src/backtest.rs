//! Backtest over stored events: what a candidate rule set would have
//! flagged on the events the pipeline already holds (the embedded event
//! log), next to what the rules in force flag, for `POST /v1/backtest`.
//!
//! The same processors as [`crate::replay`] run over the records in log
//! order: inventory (for its de-duplication), members (for canonical ids
//! and late links) and two fraud processors, the rules in force and the
//! candidate. Events dated after `to` are left out; an alert counts when
//! its last sale is at or after `from` (its earlier sales may be before:
//! a pattern that straddles the start is still the one it was). The whole
//! history up to `to` is applied so that member links made before `from`
//! hold. It runs on the caller's thread (the API runs it on the blocking
//! pool) and holds no lock of the live pipeline.

use serde::Serialize;
use storepulse_core::{EventParser, Ts};
use storepulse_processors::fraud::FraudAlert;
use storepulse_processors::inventory::InventoryProcessor;
use storepulse_processors::members::MemberProcessor;
use storepulse_processors::{Outcome, Processor};

use crate::replay::{backtest, Backtest, FraudRun, ReplaySetup};

/// Most candidate alerts listed in an answer (counts are always whole).
pub const MAX_LISTED_ALERTS: usize = 1000;

/// The answer of a backtest over stored events.
#[derive(Debug, Serialize)]
pub struct StoredBacktest {
    /// Records read (valid or not).
    pub records: u64,
    /// Events applied (valid, not duplicates, not after `to`).
    pub events: u64,
    /// Per rule: the rules in force against the candidate.
    pub rules: Backtest,
    /// The candidate's alerts in the range, by (`first_at`, `alert_id`), at
    /// most [`MAX_LISTED_ALERTS`].
    pub candidate_alerts: Vec<FraudAlert>,
}

/// Runs the backtest over `records` (raw event payloads, in log order).
///
/// # Errors
/// A setup without a candidate, or member settings that do not compile.
pub fn backtest_stored(
    records: impl Iterator<Item = Vec<u8>>,
    parser: &EventParser,
    setup: &ReplaySetup,
    from: Option<Ts>,
    to: Option<Ts>,
) -> Result<StoredBacktest, String> {
    let candidate_rules = setup
        .candidate
        .as_ref()
        .ok_or("a backtest needs a candidate rule set")?;
    let stores = parser.stores();
    let mut inventory = InventoryProcessor::new(setup.inventory.clone(), stores.clone());
    let mut members = MemberProcessor::new(setup.members.clone(), stores.clone())?.without_dedup();
    let mut current = FraudRun::new(&setup.fraud, &setup.rules, stores);
    let mut candidate = FraudRun::new(&setup.fraud, candidate_rules, stores);
    let (mut stock_outputs, mut member_outputs) = (Vec::new(), Vec::new());
    let (mut read, mut applied) = (0u64, 0u64);
    for payload in records {
        read += 1;
        let Ok(event) = parser.parse(&payload) else {
            continue;
        };
        if to.is_some_and(|to| event.occurred_at > to) {
            continue;
        }
        stock_outputs.clear();
        member_outputs.clear();
        match inventory.apply(&event, &mut stock_outputs) {
            Ok(Outcome::Applied | Outcome::Ignored) => {}
            Ok(Outcome::Duplicate) | Err(_) => continue,
        }
        if members.apply(&event, &mut member_outputs).is_err() {
            continue;
        }
        applied += 1;
        current.apply(&members, &event, &member_outputs);
        candidate.apply(&members, &event, &member_outputs);
    }
    if let Some(from) = from {
        current.keep_from(from);
        candidate.keep_from(from);
    }
    let rules = backtest(&current, &candidate);
    let candidate_alerts = candidate
        .sorted()
        .into_iter()
        .take(MAX_LISTED_ALERTS)
        .cloned()
        .collect();
    Ok(StoredBacktest {
        records: read,
        events: applied,
        rules,
        candidate_alerts,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

    use std::path::Path;
    use std::sync::Arc;

    use storepulse_core::time::parse_rfc3339;
    use storepulse_core::StoreMaster;
    use storepulse_processors::fraud::{RuleSet, RuleSpec};

    use super::*;

    fn sale(id: &str, at: &str, store: &str, member: &str, total: u64) -> Vec<u8> {
        serde_json::json!({
            "v": 1, "event_id": id, "event_type": "sale", "occurred_at": at,
            "store_id": store, "channel": "pos", "member_id": member, "order_id": format!("o-{id}"),
            "lines": [{"sku": "S", "qty": 1, "unit_price_cents": total}],
            "total_cents": total, "payment": {"method": "cash"},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_lower_threshold_flags_more_within_the_range_only() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        let stores = Arc::new(StoreMaster::load(&path).unwrap());
        let parser = EventParser::new(stores.clone());
        let mut lower = RuleSpec::multi_store_large_purchase();
        lower.when.total_cents = 300_000;
        let mut setup = ReplaySetup::defaults(&stores).unwrap();
        setup.candidate = Some(RuleSet::compile(&[lower], &stores).unwrap());
        let records = vec![
            // Day 1: 300,000 in three stores (only the candidate flags it).
            sale("a1", "2026-11-01T10:00:00+08:00", "KM-001", "A", 100_000),
            sale("a2", "2026-11-01T10:05:00+08:00", "KM-002", "A", 100_000),
            sale("a3", "2026-11-01T10:10:00+08:00", "KM-003", "A", 100_000),
            // Day 2: 600,000 in three stores (both flag it).
            sale("b1", "2026-11-02T10:00:00+08:00", "KM-001", "B", 200_000),
            sale("b2", "2026-11-02T10:05:00+08:00", "KM-002", "B", 200_000),
            sale("b3", "2026-11-02T10:10:00+08:00", "KM-003", "B", 200_000),
            b"not json".to_vec(),
            // Day 3: after `to`.
            sale("c1", "2026-11-03T10:00:00+08:00", "KM-001", "C", 100_000),
            sale("c2", "2026-11-03T10:05:00+08:00", "KM-002", "C", 100_000),
            sale("c3", "2026-11-03T10:10:00+08:00", "KM-003", "C", 100_000),
        ];
        let all =
            backtest_stored(records.clone().into_iter(), &parser, &setup, None, None).unwrap();
        let rule = &all.rules["multi_store_large_purchase"];
        assert_eq!(
            (rule.current, rule.candidate, rule.both),
            (1, 3, 1),
            "{rule:?}"
        );
        assert_eq!(all.records, 10);
        assert_eq!(all.events, 9);
        let from = parse_rfc3339("2026-11-02T00:00:00+08:00");
        let to = parse_rfc3339("2026-11-02T23:59:59+08:00");
        let day2 = backtest_stored(records.into_iter(), &parser, &setup, from, to).unwrap();
        let rule = &day2.rules["multi_store_large_purchase"];
        assert_eq!((rule.current, rule.candidate), (1, 1), "{rule:?}");
        assert_eq!(day2.candidate_alerts.len(), 1);
        assert_eq!(day2.candidate_alerts[0].key, "B");
        assert_eq!(day2.events, 6, "day 3 is left out");
    }
}
