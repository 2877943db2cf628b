//! Mart rows derived by `replay_with_mart` (the driver's `derive_rows`):
//! amounts add up, stock rows agree with the processor, positions only
//! grow, and deriving again gives the same rows.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use storepulse_core::EventParser;
use storepulse_mart::derive::RowDeriver;
use storepulse_mart::rows::{MartBatch, SourcePos};

use crate::replay::{replay_with_mart, MartReplay, ReplaySetup};

fn parser() -> EventParser {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    EventParser::new(std::sync::Arc::new(
        storepulse_core::StoreMaster::load(&path).unwrap(),
    ))
}

const STORES: [&str; 3] = ["KM-001", "KM-002", "KM-003"];
const SKUS: [&str; 3] = ["A", "B", "C"];

/// One generated event (as JSON).
fn event(
    i: usize,
    kind: u8,
    store: usize,
    member: Option<u8>,
    lines: &[(usize, u32, u64)],
    total: u64,
) -> String {
    let minute = i % 60;
    let hour = 8 + (i / 60) % 12;
    let mut v = serde_json::json!({
        "v": 1, "event_id": format!("e{i}"),
        "occurred_at": format!("2026-11-25T{hour:02}:{minute:02}:00+08:00"),
        "store_id": STORES[store % 3], "channel": "pos",
    });
    let line_json = |with_price: bool| -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|(s, q, p)| {
                let mut l = serde_json::json!({"sku": SKUS[s % 3], "qty": q});
                if with_price {
                    l["unit_price_cents"] = (*p).into();
                }
                l
            })
            .collect()
    };
    match kind % 6 {
        0 | 1 => {
            v["event_type"] = "sale".into();
            v["order_id"] = format!("o{i}").into();
            // Distinct SKUs per sale (duplicates within one sale are allowed,
            // but keep the check on the per-line split simple).
            v["lines"] = line_json(true).into();
            v["total_cents"] = total.into();
            v["payment"] = serde_json::json!({"method": "card"});
        }
        2 => {
            v["event_type"] = "stock_receipt".into();
            v["channel"] = "backoffice".into();
            v["lines"] = line_json(false).into();
        }
        3 => {
            v["event_type"] = "return".into();
            v["order_id"] = format!("o{i}").into();
            v["lines"] = line_json(false).into();
            v["refund_cents"] = total.into();
            v["restock"] = true.into();
        }
        4 => {
            v["event_type"] = "member_register".into();
            v["channel"] = "app".into();
            v["phone_hash"] = format!("{:064x}", member.unwrap_or(0)).into();
            v["member_id"] = format!("M{}", member.unwrap_or(0)).into();
            return v.to_string();
        }
        _ => {
            v["event_type"] = "points_redeem".into();
            v["channel"] = "app".into();
            v["points"] = (total % 50 + 1).into();
            v["reference"] = "r".into();
            v["member_id"] = format!("M{}", member.unwrap_or(0)).into();
            return v.to_string();
        }
    }
    if let Some(m) = member {
        v["member_id"] = format!("M{m}").into();
    }
    v.to_string()
}

fn derive(text: &str) -> (Vec<MartBatch>, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, text).unwrap();
    let parser = parser();
    let setup = ReplaySetup::defaults(parser.stores()).unwrap();
    let mut batches = Vec::new();
    let mut sink = |b: MartBatch| -> Result<(), String> {
        batches.push(b);
        Ok(())
    };
    replay_with_mart(
        &input,
        &dir.path().join("out"),
        &parser,
        &setup,
        1,
        |_, _| {},
        Some(MartReplay {
            deriver: RowDeriver::new(parser.stores().clone()),
            sink: &mut sink,
        }),
    )
    .unwrap();
    let stock = std::fs::read_to_string(dir.path().join("out/stock.csv")).unwrap();
    (batches, stock)
}

type Line = (usize, u32, u64);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn derived_rows_add_up_and_are_stable(
        events in proptest::collection::vec(
            (0u8..6, 0usize..3, proptest::option::of(0u8..4),
             proptest::collection::vec((0usize..3, 1u32..5, 0u64..5000), 1..4),
             0u64..20_000),
            1..60)
    ) {
        let mut text = String::new();
        let mut sales: BTreeMap<String, u64> = BTreeMap::new();
        for (i, (kind, store, member, lines, total)) in events.iter().enumerate() {
            // Distinct SKUs per event.
            let mut seen = std::collections::BTreeSet::new();
            let lines: Vec<Line> = lines.iter().copied().filter(|l| seen.insert(l.0)).collect();
            text.push_str(&event(i, *kind, *store, *member, &lines, *total));
            text.push('\n');
            if kind % 6 < 2 {
                sales.insert(format!("e{i}"), *total);
            }
        }
        let (batches, stock) = derive(&text);
        let mut all = MartBatch::default();
        for b in batches.clone() {
            all.append(b);
        }
        // Sale lines add up to what was paid.
        let mut paid: BTreeMap<String, i64> = BTreeMap::new();
        for r in &all.sale_lines {
            *paid.entry(r.event_id.clone()).or_default() += r.net_cents;
        }
        for (id, total) in &sales {
            prop_assert_eq!(paid.get(id).copied(), Some(*total as i64), "sale {}", id);
        }
        // Earned points are floor(total / 100) for member sales.
        for p in all.points_ledger.iter().filter(|p| p.kind == "earn") {
            let total = sales[&p.event_id];
            prop_assert_eq!(p.points, (total / 100) as i64);
        }
        // No stocktakes here: the deltas add up to the processor's on-hand,
        // and the last stock level of each (store, SKU) is that on-hand.
        let mut sum: BTreeMap<(String, String), i64> = BTreeMap::new();
        for r in &all.stock_changes {
            *sum.entry((r.store_id.clone(), r.sku.clone())).or_default() += r.delta;
        }
        let mut last: BTreeMap<(String, String), i64> = BTreeMap::new();
        for r in &all.stock_levels {
            last.insert((r.store_id.clone(), r.sku.clone()), r.on_hand);
        }
        for line in stock.lines().skip(1) {
            let mut f = line.split(',');
            let (s, k, n) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            let key = (s.to_owned(), k.to_owned());
            let n: i64 = n.parse().unwrap();
            prop_assert_eq!(sum.get(&key).copied().unwrap_or(0), n, "{:?}", key);
            prop_assert_eq!(last.get(&key).copied().unwrap_or(0), n, "{:?}", key);
        }
        // Positions strictly grow per table (one partition here).
        macro_rules! increasing {
            ($($t:ident),*) => {$(
                let pos: Vec<SourcePos> = all.$t.iter().map(|r| SourcePos {
                    partition: r.src_partition, offset: r.src_offset, index: r.src_index,
                }).collect();
                prop_assert!(pos.windows(2).all(|w| w[0] < w[1]), "{} positions", stringify!($t));
            )*};
        }
        increasing!(sale_lines, return_lines, stock_changes, stock_levels, points_ledger,
            member_registrations, tag_changes, alerts, rejected_events);
        // Deriving again gives the same rows.
        let (again, _) = derive(&text);
        prop_assert_eq!(again, batches);
    }
}

/// Two ids of one phone, the earlier-registered one arriving last: the
/// canonical id on the rows depends on arrival order, the person key (what
/// new members are counted by) does not.
#[test]
fn registration_rows_key_the_person_whatever_the_arrival_order() {
    let phone = "ab".repeat(32);
    let reg = |id: &str, event: &str, hour: u32| {
        serde_json::json!({
            "v": 1, "event_id": event, "event_type": "member_register",
            "occurred_at": format!("2026-11-20T{hour:02}:00:00+08:00"),
            "store_id": "KM-001", "channel": "app",
            "member_id": id, "phone_hash": phone,
        })
        .to_string()
    };
    // Within the allowed lateness (an event later than that is rejected).
    let later = reg("M-later", "r-later", 10);
    let earlier = reg("M-earlier", "r-earlier", 9);
    let rows = |text: String| {
        let (batches, _) = derive(&text);
        let mut all = MartBatch::default();
        for b in batches {
            all.append(b);
        }
        let mut rows: Vec<(String, String, String, u16)> = all
            .member_registrations
            .into_iter()
            .map(|r| (r.member_id, r.canonical_id, r.person_key, r.day))
            .collect();
        rows.sort();
        rows
    };
    let in_order = rows(format!("{earlier}\n{later}\n"));
    let late_alias = rows(format!("{later}\n{earlier}\n"));
    assert_eq!(in_order.len(), 2);
    let persons = |r: &[(String, String, String, u16)]| {
        r.iter()
            .map(|(m, _, p, d)| (m.clone(), p.clone(), *d))
            .collect::<Vec<_>>()
    };
    assert_eq!(persons(&in_order), persons(&late_alias));
    assert!(in_order.iter().all(|r| r.2 == phone));
    // The canonical id on the later id's row differs by arrival order.
    assert_ne!(in_order, late_alias);
}
