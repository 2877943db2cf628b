use proptest::prelude::*;
use storepulse_core::time::{DAY, HOUR, MINUTE};
use storepulse_core::*;

use super::routing::{GeoPoint, RouteLine};
use super::*;

use crate::test_support::stores;

fn processor() -> InventoryProcessor {
    InventoryProcessor::new(InventoryConfig::default(), stores())
}

const T0: Ts = 1_764_000_000 * 1_000_000_000; // 2025-11-24

fn ev(id: &str, at: Ts, store: &str, body: EventBody) -> Event {
    Event {
        event_id: id.into(),
        occurred_at: at,
        store: stores().lookup(store).unwrap(),
        channel: Channel::Pos,
        member_id: None,
        body,
    }
}

fn qty(sku: &str, qty: u32) -> QtyLine {
    QtyLine {
        sku: sku.into(),
        qty,
    }
}

fn sale(lines: &[(&str, u32)]) -> EventBody {
    EventBody::Sale(Sale {
        order_id: "o".into(),
        lines: lines
            .iter()
            .map(|(s, q)| SaleLine {
                sku: (*s).into(),
                qty: *q,
                unit_price_cents: 100,
                promo: false,
            })
            .collect(),
        total_cents: 100,
        payment: Payment {
            method: PaymentMethod::Cash,
            account_ref: None,
        },
        fulfillment: Fulfillment::InStore,
    })
}

fn receipt(lines: &[(&str, u32)]) -> EventBody {
    EventBody::StockReceipt(StockReceipt {
        reference: None,
        lines: lines.iter().map(|(s, q)| qty(s, *q)).collect(),
    })
}

fn count(lines: &[(&str, u32)]) -> EventBody {
    EventBody::StockCount(StockCount {
        lines: lines
            .iter()
            .map(|(s, q)| CountLine {
                sku: (*s).into(),
                on_hand: *q,
            })
            .collect(),
    })
}

fn apply(p: &mut InventoryProcessor, e: &Event) -> (Outcome, Vec<InventoryOutput>) {
    let mut out = Vec::new();
    let outcome = p.apply(e, &mut out).unwrap();
    (outcome, out)
}

fn on_hand(p: &InventoryProcessor, store: &str, sku: &str) -> i64 {
    p.stock(p.stores().lookup(store).unwrap(), sku)
        .map_or(0, |v| v.on_hand)
}

#[test]
fn sales_receipts_transfers_and_returns_move_stock() {
    let mut p = processor();
    let km4 = p.stores().lookup("KM-004").unwrap();
    let km9 = p.stores().lookup("KM-009").unwrap();
    let events = [
        ev("r1", T0, "KM-004", receipt(&[("A", 10), ("B", 5)])),
        ev("s1", T0 + 1, "KM-004", sale(&[("A", 3)])),
        ev(
            "x-out",
            T0 + 2,
            "KM-004",
            EventBody::TransferOut(Transfer {
                transfer_id: "x".into(),
                other_store: km9,
                lines: vec![qty("B", 2)],
            }),
        ),
        ev(
            "x-in",
            T0 + 3,
            "KM-009",
            EventBody::TransferIn(Transfer {
                transfer_id: "x".into(),
                other_store: km4,
                lines: vec![qty("B", 2)],
            }),
        ),
        ev(
            "ret1",
            T0 + 4,
            "KM-009",
            EventBody::Return(Return {
                order_id: "o".into(),
                lines: vec![qty("A", 1)],
                refund_cents: 0,
                restock: true,
            }),
        ),
        ev(
            "ret2",
            T0 + 5,
            "KM-009",
            EventBody::Return(Return {
                order_id: "o".into(),
                lines: vec![qty("A", 7)],
                refund_cents: 0,
                restock: false,
            }),
        ),
    ];
    for e in &events {
        apply(&mut p, e);
    }
    assert_eq!(on_hand(&p, "KM-004", "A"), 7);
    assert_eq!(on_hand(&p, "KM-004", "B"), 3);
    assert_eq!(on_hand(&p, "KM-009", "B"), 2);
    assert_eq!(on_hand(&p, "KM-009", "A"), 1, "restock=false must not add");
}

#[test]
fn duplicates_change_nothing() {
    let mut p = processor();
    let e = ev("r1", T0, "KM-001", receipt(&[("A", 10)]));
    assert_eq!(apply(&mut p, &e).0, Outcome::Applied);
    assert_eq!(apply(&mut p, &e).0, Outcome::Duplicate);
    assert_eq!(on_hand(&p, "KM-001", "A"), 10);
}

#[test]
fn stocktake_is_as_of_its_time_whatever_the_arrival_order() {
    let mut p = processor();
    // A count at T0+10m of 20; a sale before it (in the count) and after it.
    let count_ev = ev("c1", T0 + 10 * MINUTE, "KM-001", count(&[("A", 20)]));
    let before = ev("s-before", T0 + 5 * MINUTE, "KM-001", sale(&[("A", 4)]));
    let at = ev("s-at", T0 + 10 * MINUTE, "KM-001", sale(&[("A", 1)]));
    let after = ev("s-after", T0 + 20 * MINUTE, "KM-001", sale(&[("A", 3)]));
    // after arrives first, then the count (late), then the earlier sale (late).
    apply(&mut p, &after);
    assert_eq!(on_hand(&p, "KM-001", "A"), -3);
    apply(&mut p, &count_ev);
    assert_eq!(
        on_hand(&p, "KM-001", "A"),
        17,
        "count 20 minus the later sale"
    );
    apply(&mut p, &before);
    apply(&mut p, &at);
    assert_eq!(
        on_hand(&p, "KM-001", "A"),
        17,
        "changes at or before the count are in it"
    );
}

#[test]
fn same_instant_counts_resolved_by_greater_event_id() {
    for order in [[0, 1], [1, 0]] {
        let mut p = processor();
        let counts = [
            ev("count-a", T0, "KM-001", count(&[("A", 5)])),
            ev("count-b", T0, "KM-001", count(&[("A", 9)])),
        ];
        for i in order {
            apply(&mut p, &counts[i]);
        }
        assert_eq!(on_hand(&p, "KM-001", "A"), 9);
    }
}

#[test]
fn older_count_does_not_replace_newer() {
    let mut p = processor();
    apply(&mut p, &ev("c2", T0 + HOUR, "KM-001", count(&[("A", 9)])));
    apply(&mut p, &ev("s", T0 + 2 * HOUR, "KM-001", sale(&[("A", 1)])));
    apply(&mut p, &ev("c1", T0, "KM-001", count(&[("A", 100)])));
    assert_eq!(on_hand(&p, "KM-001", "A"), 8);
}

#[test]
fn oversold_and_out_of_stock_alerts() {
    let mut p = processor();
    apply(&mut p, &ev("r", T0, "KM-001", receipt(&[("A", 2)])));
    let (_, out) = apply(&mut p, &ev("s1", T0 + 1, "KM-001", sale(&[("A", 2)])));
    let kinds: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            InventoryOutput::Alert(a) => Some(a.kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![StockAlertKind::OutOfStock]);
    let (_, out) = apply(&mut p, &ev("s2", T0 + 2, "KM-001", sale(&[("A", 1)])));
    let alert = out
        .iter()
        .find_map(|o| match o {
            InventoryOutput::Alert(a) => Some((**a).clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(alert.kind, StockAlertKind::Oversold);
    assert_eq!(alert.on_hand, -1);
    assert_eq!(alert.alert_id, "oversold:KM-001:A:s2");
    // Staying below zero raises nothing new.
    let (_, out) = apply(&mut p, &ev("s3", T0 + 3, "KM-001", sale(&[("A", 1)])));
    assert!(!out.iter().any(|o| matches!(o, InventoryOutput::Alert(_))));
}

#[test]
fn velocity_cover_and_replenish() {
    let mut p = processor();
    apply(&mut p, &ev("r", T0, "KM-001", receipt(&[("A", 10)])));
    // 28 units over 14 days -> 2/day.
    for d in 0..14 {
        apply(
            &mut p,
            &ev(
                &format!("s{d}"),
                T0 + d * DAY + HOUR,
                "KM-001",
                sale(&[("A", 2)]),
            ),
        );
    }
    apply(
        &mut p,
        &ev(
            "r2",
            T0 + 13 * DAY + 2 * HOUR,
            "KM-001",
            receipt(&[("A", 22)]),
        ),
    );
    let v = p.stock(p.stores().lookup("KM-001").unwrap(), "A").unwrap();
    assert_eq!(v.on_hand, 4);
    assert_eq!(v.velocity_per_day, 2.0);
    assert_eq!(v.days_of_cover, Some(2.0));
    let rep = p.replenish(p.stores().lookup("KM-001").unwrap());
    assert_eq!(rep.len(), 1);
    assert_eq!(rep[0].suggested_qty, 10, "to 7 days of cover: 14 - 4");
    // Two weeks later with no sales, velocity is zero.
    apply(
        &mut p,
        &ev("late-clock", T0 + 40 * DAY, "KM-002", receipt(&[("Z", 1)])),
    );
    let v = p.stock(p.stores().lookup("KM-001").unwrap(), "A").unwrap();
    assert_eq!(v.velocity_per_day, 0.0);
    assert_eq!(v.days_of_cover, None);
}

#[test]
fn transfer_suggestion_within_region() {
    let mut p = processor();
    // KM-001 sells 1/day and has 1 (cover 1). KM-002 has 100 and sells nothing.
    apply(&mut p, &ev("r1", T0, "KM-001", receipt(&[("A", 15)])));
    apply(&mut p, &ev("r2", T0, "KM-002", receipt(&[("A", 100)])));
    apply(&mut p, &ev("r3", T0, "DL-001", receipt(&[("A", 100)])));
    apply(&mut p, &ev("s", T0 + HOUR, "KM-001", sale(&[("A", 14)])));
    let t = p.transfers(Some("central"));
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(
        (t[0].from_store.as_str(), t[0].to_store.as_str(), t[0].qty),
        ("KM-002", "KM-001", 6)
    );
    assert!(p.transfers(Some("west")).is_empty());
}

#[test]
fn availability_nearest_first_and_routing() {
    let mut p = processor();
    apply(
        &mut p,
        &ev("r1", T0, "KM-002", receipt(&[("A", 5), ("B", 5)])),
    );
    apply(&mut p, &ev("r2", T0, "DL-001", receipt(&[("A", 5)])));
    apply(&mut p, &ev("r3", T0, "KM-003", receipt(&[("A", 1)])));
    let near = p.availability("A", p.stores().lookup("KM-001").unwrap(), 10);
    let ids: Vec<_> = near.iter().map(|a| a.store_id.as_str()).collect();
    assert_eq!(ids[2], "DL-001", "Dali is farthest from Kunming: {ids:?}");
    assert_eq!(ids.len(), 3);
    // Order A x2 + B x1 to central Kunming: KM-002 has both -> one store.
    let plan = p
        .route(
            &[
                RouteLine {
                    sku: "A".into(),
                    qty: 2,
                },
                RouteLine {
                    sku: "B".into(),
                    qty: 1,
                },
            ],
            GeoPoint {
                lat: 25.04,
                lon: 102.70,
            },
        )
        .unwrap();
    assert_eq!(plan.stores_used, 1);
    assert_eq!(plan.legs[0].store_id, "KM-002");
    assert!(p
        .route(
            &[RouteLine {
                sku: "A".into(),
                qty: 50
            }],
            GeoPoint {
                lat: 25.0,
                lon: 102.7
            }
        )
        .is_err());
}

#[test]
fn too_late_stocktake_is_rejected_not_guessed() {
    let mut p = processor();
    apply(
        &mut p,
        &ev("r", T0 + 10 * DAY, "KM-001", receipt(&[("A", 1)])),
    );
    let late = ev("c", T0, "KM-001", count(&[("A", 5)]));
    let err = p.apply(&late, &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("occurred_at: stocktake is more than 168h behind"),
        "{err}"
    );
    let late_sale = ev("s", T0, "KM-001", sale(&[("A", 1)]));
    assert!(p.apply(&late_sale, &mut Vec::new()).is_err());
    assert_eq!(on_hand(&p, "KM-001", "A"), 1);
}

// ---------------------------------------------------------------- properties

const STORES: [&str; 3] = ["KM-001", "KM-002", "DL-001"];
const SKUS: [&str; 4] = ["A", "B", "C", "D"];

#[derive(Debug, Clone)]
enum Gen {
    Sale(usize, usize, u32),
    Receipt(usize, usize, u32),
    Count(usize, Vec<(usize, u32)>),
    Transfer(usize, usize, usize, u32),
    Return(usize, usize, u32, bool),
}

fn gen_event() -> impl Strategy<Value = (Gen, i64)> {
    let s = 0..STORES.len();
    let k = 0..SKUS.len();
    let q = 1u32..20;
    let kind = prop_oneof![
        4 => (s.clone(), k.clone(), q.clone()).prop_map(|(s, k, q)| Gen::Sale(s, k, q)),
        2 => (s.clone(), k.clone(), q.clone()).prop_map(|(s, k, q)| Gen::Receipt(s, k, q)),
        1 => (s.clone(), proptest::collection::vec((k.clone(), 0u32..30), 1..4)).prop_map(|(s, l)| Gen::Count(s, l)),
        1 => (s.clone(), 1..STORES.len(), k.clone(), q.clone()).prop_map(|(s, d, k, q)| Gen::Transfer(s, d, k, q)),
        1 => (s, k, q, any::<bool>()).prop_map(|(s, k, q, r)| Gen::Return(s, k, q, r)),
    ];
    // Minutes within two days; coarse so that same-instant ties happen.
    (kind, 0i64..(2 * 24 * 60 / 10))
}

fn build(i: usize, g: &Gen, minute10: i64) -> Vec<Event> {
    let at = T0 + minute10 * 10 * MINUTE;
    let id = format!("e{i}");
    match g {
        Gen::Sale(s, k, q) => vec![ev(&id, at, STORES[*s], sale(&[(SKUS[*k], *q)]))],
        Gen::Receipt(s, k, q) => vec![ev(&id, at, STORES[*s], receipt(&[(SKUS[*k], *q)]))],
        Gen::Count(s, lines) => {
            let mut seen = std::collections::HashSet::new();
            let lines: Vec<(&str, u32)> = lines
                .iter()
                .filter(|(k, _)| seen.insert(*k))
                .map(|(k, v)| (SKUS[*k], *v))
                .collect();
            vec![ev(&id, at, STORES[*s], count(&lines))]
        }
        Gen::Transfer(s, d, k, q) => {
            let from = STORES[*s];
            let to = STORES[(*s + *d) % STORES.len()];
            let (fi, ti) = (stores().lookup(from).unwrap(), stores().lookup(to).unwrap());
            vec![
                ev(
                    &format!("{id}-out"),
                    at,
                    from,
                    EventBody::TransferOut(Transfer {
                        transfer_id: id.clone().into(),
                        other_store: ti,
                        lines: vec![qty(SKUS[*k], *q)],
                    }),
                ),
                ev(
                    &format!("{id}-in"),
                    at + HOUR,
                    to,
                    EventBody::TransferIn(Transfer {
                        transfer_id: id.clone().into(),
                        other_store: fi,
                        lines: vec![qty(SKUS[*k], *q)],
                    }),
                ),
            ]
        }
        Gen::Return(s, k, q, restock) => vec![ev(
            &id,
            at,
            STORES[*s],
            EventBody::Return(Return {
                order_id: "o".into(),
                lines: vec![qty(SKUS[*k], *q)],
                refund_cents: 0,
                restock: *restock,
            }),
        )],
    }
}

fn run(p: &mut InventoryProcessor, events: &[Event]) {
    let mut out = Vec::new();
    for e in events {
        p.apply(e, &mut out).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The same events, shuffled and duplicated, give the same stock.
    #[test]
    fn arrival_order_and_duplicates_do_not_matter(
        gens in proptest::collection::vec(gen_event(), 1..80),
        seed in any::<u64>(),
        dup_every in 2usize..6,
        checkpoint_at in any::<prop::sample::Index>(),
    ) {
        let mut events: Vec<Event> = gens.iter().enumerate().flat_map(|(i, (g, m))| build(i, g, *m)).collect();
        // Reference: in event-time order, ties by event id.
        let mut ordered = events.clone();
        ordered.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
        let mut reference = processor();
        run(&mut reference, &ordered);

        // Shuffled (deterministically from the seed) with duplicates mixed in.
        let mut rng = seed;
        let mut next = || { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; rng };
        let dups: Vec<Event> = events.iter().step_by(dup_every).cloned().collect();
        events.extend(dups);
        for i in (1..events.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            events.swap(i, j);
        }
        // Checkpoint and restore in the middle, as the runtime does.
        let cut = checkpoint_at.index(events.len());
        let mut first = processor();
        run(&mut first, &events[..cut]);
        let bytes = postcard::to_stdvec(first.state()).unwrap();
        let state: InventoryState = postcard::from_bytes(&bytes).unwrap();
        let mut resumed = InventoryProcessor::from_state(state, InventoryConfig::default(), stores()).unwrap();
        run(&mut resumed, &events[cut..]);

        prop_assert_eq!(resumed.all_stock(), reference.all_stock());
    }
}

#[test]
fn a_materialised_copy_answers_like_the_original() {
    let mut live = processor();
    let mut copy = processor();
    let mut out = Vec::new();
    let events = [
        ev("m1", T0, "KM-001", receipt(&[("SKU-A", 50), ("SKU-B", 3)])),
        ev("m2", T0 + HOUR, "KM-001", sale(&[("SKU-A", 7)])),
        ev("m3", T0 + DAY, "KM-002", receipt(&[("SKU-A", 4)])),
        ev(
            "m4",
            T0 + DAY + HOUR,
            "KM-001",
            sale(&[("SKU-A", 30), ("SKU-B", 3)]),
        ),
        ev("m5", T0 + 2 * DAY, "KM-001", count(&[("SKU-A", 10)])),
    ];
    for e in &events {
        live.apply(e, &mut out).unwrap();
    }
    let mut changed = 0;
    for o in &out {
        if let InventoryOutput::Changed(c) = o {
            let (store_id, sku, snap) = live.snapshot_of(c).unwrap();
            let store = stores().lookup(store_id).unwrap();
            copy.put_snapshot(store, sku, &snap, live.clock().unwrap());
            changed += 1;
        }
    }
    assert!(changed >= 5, "{changed}");
    assert_eq!(copy.all_stock(), live.all_stock());
    let km1 = stores().lookup("KM-001").unwrap();
    assert_eq!(copy.stock(km1, "SKU-A"), live.stock(km1, "SKU-A"));
    assert!(copy.stock(km1, "SKU-A").unwrap().velocity_per_day > 0.0);
    assert_eq!(copy.replenish(km1), live.replenish(km1));
    assert_eq!(copy.clock(), live.clock());
}
