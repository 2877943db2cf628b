use std::collections::BTreeSet;

use proptest::prelude::*;
use storepulse_core::time::{HOUR, MINUTE, SECOND};
use storepulse_core::*;

use super::*;
use crate::test_support::stores;

const T0: Ts = 1_764_000_000 * SECOND;

struct SaleSpec<'a> {
    id: &'a str,
    member: Option<&'a str>,
    account: Option<&'a str>,
    at: Ts,
    store: &'a str,
    total: u64,
}

fn sale(s: SaleSpec<'_>) -> Event {
    Event {
        event_id: s.id.into(),
        occurred_at: s.at,
        store: stores().lookup(s.store).expect("known store"),
        channel: Channel::Pos,
        member_id: s.member.map(Into::into),
        body: EventBody::Sale(Sale {
            order_id: format!("o-{}", s.id).into(),
            lines: vec![SaleLine {
                sku: "SKU".into(),
                qty: 1,
                unit_price_cents: s.total,
                promo: false,
            }],
            total_cents: s.total,
            payment: Payment {
                method: PaymentMethod::Card,
                account_ref: s.account.map(Into::into),
            },
            fulfillment: Fulfillment::InStore,
        }),
    }
}

fn member_sale(id: &str, member: &str, at: Ts, store: &str, total: u64) -> Event {
    sale(SaleSpec {
        id,
        member: Some(member),
        account: None,
        at,
        store,
        total,
    })
}

fn processor() -> FraudProcessor {
    let stores = stores();
    FraudProcessor::new(
        FraudConfig::default(),
        RuleSet::defaults(&stores).expect("defaults"),
        stores,
    )
}

fn run(p: &mut FraudProcessor, events: &[Event]) -> Vec<FraudOutput> {
    let mut out = Vec::new();
    for e in events {
        p.apply(e, &mut out).expect("fraud never rejects");
    }
    out
}

/// Alerts standing after the outputs: raised minus withdrawn.
fn standing(outputs: &[FraudOutput]) -> BTreeSet<(String, Vec<Id>)> {
    let mut set = std::collections::BTreeMap::new();
    for o in outputs {
        match o {
            FraudOutput::Raised(a) => {
                set.insert(a.alert_id.clone(), a.event_ids.clone());
            }
            FraudOutput::Withdrawn(w) => {
                set.remove(&w.alert_id);
            }
        }
    }
    set.into_iter().collect()
}

fn raised(outputs: &[FraudOutput]) -> Vec<&FraudAlert> {
    outputs
        .iter()
        .filter_map(|o| match o {
            FraudOutput::Raised(a) => Some(&**a),
            FraudOutput::Withdrawn(_) => None,
        })
        .collect()
}

#[test]
fn boundary_exactly_thirty_minutes_and_exactly_the_total_fires() {
    let mut p = processor();
    let out = run(
        &mut p,
        &[
            member_sale("s1", "m1", T0, "KM-001", 200_000),
            member_sale("s2", "m1", T0 + 10 * MINUTE, "KM-002", 200_000),
            member_sale("s3", "m1", T0 + 30 * MINUTE, "KM-003", 100_000),
        ],
    );
    let alerts = raised(&out);
    assert_eq!(alerts.len(), 1, "{out:?}");
    let a = alerts[0];
    assert_eq!(a.rule, "multi_store_large_purchase");
    assert_eq!(a.key, "m1");
    assert_eq!(a.event_ids, vec!["s1", "s2", "s3"]);
    assert_eq!(a.order_ids, vec!["o-s1", "o-s2", "o-s3"]);
    assert_eq!(a.stores, vec!["KM-001", "KM-002", "KM-003"]);
    assert_eq!(a.total_cents, 500_000);
    assert_eq!((a.first_at, a.last_at), (T0, T0 + 30 * MINUTE));
    assert!(a.alert_id.starts_with("multi_store_large_purchase:"));
}

#[test]
fn near_misses_do_not_fire() {
    // A cent under the total.
    let mut p = processor();
    let out = run(
        &mut p,
        &[
            member_sale("a1", "m1", T0, "KM-001", 200_000),
            member_sale("a2", "m1", T0 + MINUTE, "KM-002", 200_000),
            member_sale("a3", "m1", T0 + 2 * MINUTE, "KM-003", 99_999),
        ],
    );
    assert!(raised(&out).is_empty(), "a cent under: {out:?}");
    // Two stores.
    let mut p = processor();
    let out = run(
        &mut p,
        &[
            member_sale("b1", "m1", T0, "KM-001", 300_000),
            member_sale("b2", "m1", T0 + MINUTE, "KM-002", 300_000),
            member_sale("b3", "m1", T0 + 2 * MINUTE, "KM-001", 300_000),
        ],
    );
    assert!(raised(&out).is_empty(), "two stores: {out:?}");
    // 31 minutes.
    let mut p = processor();
    let out = run(
        &mut p,
        &[
            member_sale("c1", "m1", T0, "KM-001", 300_000),
            member_sale("c2", "m1", T0 + 10 * MINUTE, "KM-002", 100_000),
            member_sale("c3", "m1", T0 + 31 * MINUTE, "KM-003", 100_000),
        ],
    );
    assert!(raised(&out).is_empty(), "31 minutes: {out:?}");
    // Exactly 30 minutes and one millisecond.
    let mut p = processor();
    let out = run(
        &mut p,
        &[
            member_sale("d1", "m1", T0, "KM-001", 300_000),
            member_sale("d2", "m1", T0 + 10 * MINUTE, "KM-002", 100_000),
            member_sale("d3", "m1", T0 + 30 * MINUTE + 1_000_000, "KM-003", 100_000),
        ],
    );
    assert!(raised(&out).is_empty(), "30 min + 1 ms: {out:?}");
}

#[test]
fn a_sale_is_in_at_most_one_alert_per_rule_and_key() {
    let mut p = processor();
    let mut events = Vec::new();
    // Six sales in six stores, 2 minutes apart, 200,000 each: the first
    // alert takes s0..s2 (600,000 in 3 stores); s3..s5 meet the rule on
    // their own and fire a second one.
    let shops = ["KM-001", "KM-002", "KM-003", "KM-004", "KM-005", "KM-006"];
    for (i, shop) in shops.iter().enumerate() {
        events.push(member_sale(
            &format!("s{i}"),
            "m1",
            T0 + i as i64 * 2 * MINUTE,
            shop,
            200_000,
        ));
    }
    // A seventh sale alone does not meet the rule with taken sales.
    events.push(member_sale("s6", "m1", T0 + 13 * MINUTE, "KM-007", 200_000));
    let out = run(&mut p, &events);
    let alerts = raised(&out);
    assert_eq!(alerts.len(), 2, "{out:?}");
    assert_eq!(alerts[0].event_ids, vec!["s0", "s1", "s2"]);
    assert_eq!(alerts[1].event_ids, vec!["s3", "s4", "s5"]);
}

#[test]
fn large_single_purchase_fires_at_the_amount_and_not_a_cent_under() {
    let mut p = processor();
    let out = run(
        &mut p,
        &[
            member_sale("big", "m1", T0, "KM-001", 2_000_000),
            member_sale("almost", "m2", T0 + MINUTE, "KM-001", 1_999_999),
        ],
    );
    let alerts: Vec<_> = raised(&out)
        .into_iter()
        .filter(|a| a.rule == "large_single_purchase")
        .collect();
    assert_eq!(alerts.len(), 1, "{out:?}");
    assert_eq!(alerts[0].key, "o-big");
    assert_eq!(alerts[0].key_kind, "order");
}

#[test]
fn shared_payment_account_counts_whoever_the_member() {
    let mut p = processor();
    let card = Some("card_tok_1");
    let out = run(
        &mut p,
        &[
            sale(SaleSpec {
                id: "p1",
                member: Some("m1"),
                account: card,
                at: T0,
                store: "KM-001",
                total: 200_000,
            }),
            sale(SaleSpec {
                id: "p2",
                member: None,
                account: card,
                at: T0 + 5 * MINUTE,
                store: "DL-001",
                total: 200_000,
            }),
            sale(SaleSpec {
                id: "p3",
                member: Some("m2"),
                account: card,
                at: T0 + 9 * MINUTE,
                store: "YX-001",
                total: 100_000,
            }),
        ],
    );
    let alerts = raised(&out);
    assert_eq!(alerts.len(), 1, "{out:?}");
    assert_eq!(alerts[0].rule, "shared_payment_account");
    assert_eq!(alerts[0].key, "card_tok_1");
}

#[test]
fn a_late_alias_link_still_produces_the_alert() {
    let mut p = processor();
    let mut out = run(
        &mut p,
        &[
            member_sale("l1", "canon", T0, "KM-001", 200_000),
            member_sale("l2", "alias", T0 + 5 * MINUTE, "KM-002", 200_000),
            member_sale("l3", "canon", T0 + 9 * MINUTE, "KM-003", 100_000),
        ],
    );
    assert!(raised(&out).is_empty(), "unlinked ids are two members");
    p.relink(&["canon".into(), "alias".into()], &"canon".into(), &mut out);
    let alerts = raised(&out);
    assert_eq!(alerts.len(), 1, "{out:?}");
    assert_eq!(alerts[0].key, "canon");
    assert_eq!(alerts[0].event_ids, vec!["l1", "l2", "l3"]);
    assert!(p.window("multi_store_large_purchase", "alias").is_none());
}

#[test]
fn an_alert_raised_under_an_alias_is_re_keyed_by_the_late_link() {
    let mut p = processor();
    let mut out = run(
        &mut p,
        &[
            member_sale("k1", "alias", T0, "KM-001", 200_000),
            member_sale("k2", "alias", T0 + MINUTE, "KM-002", 200_000),
            member_sale("k3", "alias", T0 + 2 * MINUTE, "KM-003", 100_000),
        ],
    );
    let first = raised(&out)[0].clone();
    assert_eq!(first.key, "alias");
    out.clear();
    p.relink(&["canon".into(), "alias".into()], &"canon".into(), &mut out);
    let again = raised(&out);
    assert_eq!(again.len(), 1, "{out:?}");
    assert_eq!(
        again[0].alert_id, first.alert_id,
        "the same sales, the same alert"
    );
    assert_eq!(again[0].key, "canon");
    assert!(!out.iter().any(|o| matches!(o, FraudOutput::Withdrawn(_))));
}

#[test]
fn a_late_sale_regroups_and_withdraws_what_no_longer_stands() {
    // In order: s1 s2 s3 s4, the alert is {s1..s3} at s3. Without s2, the
    // first three to arrive (s1 s3 s4) make {s1, s3, s4}; s2 arriving late
    // regroups to {s1, s2, s3} and withdraws the other.
    let events = [
        member_sale("s1", "m", T0, "KM-001", 200_000),
        member_sale("s2", "m", T0 + MINUTE, "KM-002", 200_000),
        member_sale("s3", "m", T0 + 2 * MINUTE, "KM-003", 200_000),
        member_sale("s4", "m", T0 + 3 * MINUTE, "KM-004", 200_000),
    ];
    let mut in_order = processor();
    let expected = standing(&run(&mut in_order, &events));
    let mut late = processor();
    let out = run(
        &mut late,
        &[
            events[0].clone(),
            events[2].clone(),
            events[3].clone(),
            events[1].clone(),
        ],
    );
    assert_eq!(standing(&out), expected);
    assert!(out.iter().any(|o| matches!(o, FraudOutput::Withdrawn(_))));
    assert_eq!(late.stats().withdrawn, 1);
}

#[test]
fn sales_later_than_lateness_plus_window_are_counted_not_evaluated() {
    let mut p = processor();
    run(
        &mut p,
        &[
            member_sale("now", "x", T0 + 3 * HOUR, "KM-001", 1),
            member_sale("late", "m", T0 + 3 * HOUR - 70 * MINUTE, "KM-001", 1),
            member_sale("too-late", "m", T0, "KM-001", 1),
        ],
    );
    assert_eq!(p.stats().late_evaluated, 1);
    assert_eq!(p.stats().late_dropped, 1);
}

#[test]
fn windows_are_dropped_once_out_of_the_horizon() {
    let mut p = processor();
    let mut events = Vec::new();
    for i in 0..1000 {
        events.push(member_sale(
            &format!("e{i}"),
            &format!("m{i}"),
            T0 + i64::from(i) * SECOND,
            "KM-001",
            100,
        ));
    }
    run(&mut p, &events);
    assert_eq!(p.state().keys(), 1000);
    p.advance(T0 + 3 * HOUR);
    assert_eq!(p.state().keys(), 0);
    assert_eq!(p.state().sales(), 0);
}

#[test]
fn a_rule_changed_at_run_time_applies_to_the_next_events() {
    let stores = stores();
    let mut p = processor();
    let first = run(
        &mut p,
        &[
            member_sale("r1", "m", T0, "KM-001", 100_000),
            member_sale("r2", "m", T0 + MINUTE, "KM-002", 100_000),
            member_sale("r3", "m", T0 + 2 * MINUTE, "KM-003", 100_000),
        ],
    );
    assert!(raised(&first).is_empty());
    let mut lower = RuleSpec::multi_store_large_purchase();
    lower.when.total_cents = 250_000;
    let rules = p.rules().with_rule(lower, &stores).expect("valid rule");
    p.set_rules(rules);
    let out = run(
        &mut p,
        &[
            member_sale("r4", "m", T0 + 3 * MINUTE, "KM-001", 100_000),
            member_sale("r5", "m", T0 + 4 * MINUTE, "KM-002", 100_000),
            member_sale("r6", "m", T0 + 5 * MINUTE, "KM-003", 100_000),
        ],
    );
    let alerts = raised(&out);
    assert_eq!(alerts.len(), 1, "{out:?}");
    // The changed rule starts empty: only the sales after the change.
    assert_eq!(alerts[0].event_ids, vec!["r4", "r5", "r6"]);
}

#[test]
fn bad_rules_are_refused_with_a_reason() {
    let stores = stores();
    let mut r = RuleSpec::multi_store_large_purchase();
    r.window_minutes = 5000;
    assert!(r.validate(&stores).unwrap_err().contains("window_minutes"));
    let mut r = RuleSpec::multi_store_large_purchase();
    r.filter.regions = vec!["atlantis".into()];
    assert!(r.validate(&stores).unwrap_err().contains("atlantis"));
    let mut r = RuleSpec::multi_store_large_purchase();
    r.name = "Bad Name".into();
    assert!(r.validate(&stores).unwrap_err().contains("name"));
    let mut r = RuleSpec::shared_payment_account();
    r.when = Thresholds::default();
    assert!(r.validate(&stores).is_err(), "a rule every sale meets");
    let dup = [RuleSpec::points_overdraft(), RuleSpec::points_overdraft()];
    assert!(RuleSet::compile(&dup, &stores)
        .unwrap_err()
        .contains("used twice"));
}

#[test]
fn filters_restrict_sales_by_region_and_channel() {
    let stores = stores();
    let mut r = RuleSpec::multi_store_large_purchase();
    r.filter.regions = vec!["west".into()];
    let rule = r.compile(&stores).expect("valid");
    assert!(rule.admits(&member_sale("w", "m", T0, "DL-001", 1)));
    assert!(!rule.admits(&member_sale("c", "m", T0, "KM-001", 1)));
    let mut r = RuleSpec::multi_store_large_purchase();
    r.filter.channels = vec!["app".into()];
    let rule = r.compile(&stores).expect("valid");
    assert!(!rule.admits(&member_sale("p", "m", T0, "KM-001", 1)));
}

#[test]
fn state_survives_a_checkpoint_round_trip() {
    let stores = stores();
    let mut p = processor();
    run(
        &mut p,
        &[
            member_sale("c1", "m", T0, "KM-001", 200_000),
            member_sale("c2", "m", T0 + MINUTE, "KM-002", 200_000),
        ],
    );
    let bytes = postcard::to_stdvec(p.state()).expect("encodes");
    let state: FraudState = postcard::from_bytes(&bytes).expect("decodes");
    let mut q = FraudProcessor::from_state(
        state,
        FraudConfig::default(),
        RuleSet::defaults(&stores).expect("defaults"),
        stores,
    );
    let out = run(
        &mut q,
        &[member_sale("c3", "m", T0 + 2 * MINUTE, "KM-003", 100_000)],
    );
    assert_eq!(raised(&out).len(), 1);
}

/// Random sales of a few members and cards, dense enough to group.
fn stream() -> impl Strategy<Value = Vec<Event>> {
    let shops = ["KM-001", "KM-002", "KM-003", "DL-001", "YX-001"];
    prop::collection::vec((0u8..4, 0u8..3, 0i64..180, 0usize..5, 1u64..4), 1..60).prop_map(
        move |rows| {
            rows.into_iter()
                .enumerate()
                .map(|(i, (m, c, minute, shop, hundreds))| {
                    let member = format!("m{m}");
                    let card = format!("card{c}");
                    sale(SaleSpec {
                        id: &format!("e{i}"),
                        member: Some(&member),
                        account: Some(&card),
                        at: T0 + minute * MINUTE,
                        store: shops[shop],
                        total: hundreds * 100_000,
                    })
                })
                .collect()
        },
    )
}

/// Event-time order: the reference.
fn by_time(events: &[Event]) -> Vec<Event> {
    let mut v = events.to_vec();
    v.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    v
}

proptest! {
    /// Any arrival order within the allowed lateness (the stream spans 3
    /// hours, lateness is raised to cover it), with duplicates and a
    /// checkpoint in the middle, gives the same standing alerts as event
    /// time order.
    #[test]
    fn arrival_order_and_duplicates_do_not_change_the_alerts(
        events in stream(),
        seed in any::<u64>(),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let stores = stores();
        let config = FraudConfig { allowed_lateness_minutes: 240 };
        let new = || FraudProcessor::new(
            config.clone(),
            RuleSet::defaults(&stores).expect("defaults"),
            stores.clone(),
        );
        let mut reference = new();
        let expected = standing(&run(&mut reference, &by_time(&events)));

        let mut shuffled = events.clone();
        for d in &dups {
            shuffled.push(d.get(&events).clone());
        }
        // Fisher-Yates with a SplitMix64 of the seed.
        let mut x = seed;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            shuffled.swap(i, (z % (i as u64 + 1)) as usize);
        }
        let cut = cut.index(shuffled.len());
        let mut p = new();
        let mut out = run(&mut p, &shuffled[..cut]);
        let bytes = postcard::to_stdvec(p.state()).expect("encodes");
        let state: FraudState = postcard::from_bytes(&bytes).expect("decodes");
        let mut p = FraudProcessor::from_state(
            state,
            config.clone(),
            RuleSet::defaults(&stores).expect("defaults"),
            stores.clone(),
        );
        out.extend(run(&mut p, &shuffled[cut..]));
        prop_assert_eq!(standing(&out), expected);
    }

    /// A late link (the alias's sales first, the link after) gives the
    /// alerts of the stream where the alias was the canonical id all along.
    #[test]
    fn a_late_link_equals_linked_from_the_start(events in stream()) {
        let stores = stores();
        let config = FraudConfig { allowed_lateness_minutes: 240 };
        let new = || FraudProcessor::new(
            config.clone(),
            RuleSet::defaults(&stores).expect("defaults"),
            stores.clone(),
        );
        let ordered = by_time(&events);
        // Reference: m1's sales are m0's from the start.
        let merged: Vec<Event> = ordered
            .iter()
            .cloned()
            .map(|mut e| {
                if e.member_id.as_deref() == Some("m1") {
                    e.member_id = Some("m0".into());
                }
                e
            })
            .collect();
        let mut reference = new();
        let expected: BTreeSet<_> = standing(&run(&mut reference, &merged))
            .into_iter()
            .filter(|(id, _)| id.starts_with("multi_store"))
            .collect();
        let mut p = new();
        let mut out = run(&mut p, &ordered);
        p.relink(&["m0".into(), "m1".into()], &"m0".into(), &mut out);
        let got: BTreeSet<_> = standing(&out)
            .into_iter()
            .filter(|(id, _)| id.starts_with("multi_store"))
            .collect();
        prop_assert_eq!(got, expected);
    }
}

/// The shipped rules file, as the risk team starts from it.
const SHIPPED_RULES: &str = include_str!("../../../fraud-rules.toml");

proptest! {
    /// The rules parser (a file people edit by hand) never panics on an
    /// edited file; what it accepts validates rule by rule and survives a
    /// render/parse round trip unchanged. (The `parse_rules` fuzz target
    /// does the same with coverage guidance under nightly.)
    #[test]
    fn edited_rules_files_never_panic_and_accepted_ones_round_trip(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, ".{0,12}"), 1..6),
    ) {
        let stores = stores();
        let mut text = SHIPPED_RULES.to_owned();
        for (at, op, piece) in edits {
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            match op {
                0 => text.insert_str(cut, &piece),
                1 => {
                    let mut end = (cut + piece.len()).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(cut..end, "");
                }
                _ => {
                    let mut end = (cut + piece.len()).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(cut..end, &piece);
                }
            }
        }
        if let Ok(set) = rules::parse(&text, &stores) {
            for spec in set.specs() {
                prop_assert!(spec.validate(&stores).is_ok());
            }
            let again = rules::parse(&rules::render(&set).expect("renders"), &stores).expect("parses");
            prop_assert_eq!(again.specs(), set.specs());
        }
    }
}

#[test]
fn the_shipped_rules_file_is_the_defaults() {
    let stores = stores();
    let shipped = rules::parse(SHIPPED_RULES, &stores).expect("valid");
    assert_eq!(
        shipped.specs(),
        RuleSet::defaults(&stores).expect("defaults").specs()
    );
}
