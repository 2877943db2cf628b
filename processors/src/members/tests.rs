use std::collections::BTreeSet;

use proptest::prelude::*;
use storepulse_core::time::{DAY, HOUR, MINUTE};
use storepulse_core::*;

use super::*;

pub(super) use crate::test_support::stores;

/// China day 20_000 is 2024-10-04; events are placed at `day_at(d, h)`.
pub(super) const D0: i32 = 20_000;

fn day_at(day: i32, hour: i64) -> Ts {
    i64::from(day) * DAY - 8 * HOUR + hour * HOUR
}

pub(super) fn phone(n: u32) -> String {
    format!("{n:064x}")
}

fn ev(id: &str, member: &str, at: Ts, store: &str, body: EventBody) -> Event {
    Event {
        event_id: id.into(),
        occurred_at: at,
        store: stores().lookup(store).unwrap(),
        channel: Channel::Pos,
        member_id: Some(member.into()),
        body,
    }
}

fn sale_body(total: u64, lines: usize, promo: usize) -> EventBody {
    EventBody::Sale(Sale {
        order_id: "o".into(),
        lines: (0..lines)
            .map(|i| SaleLine {
                sku: "SKU".into(),
                qty: 1,
                unit_price_cents: 1,
                promo: i < promo,
            })
            .collect(),
        total_cents: total,
        payment: Payment {
            method: PaymentMethod::Cash,
            account_ref: None,
        },
        fulfillment: Fulfillment::InStore,
    })
}

pub(super) fn sale(id: &str, member: &str, at: Ts, store: &str, total: u64) -> Event {
    ev(id, member, at, store, sale_body(total, 1, 0))
}

pub(super) fn register(id: &str, member: &str, at: Ts, n: u32) -> Event {
    ev(
        id,
        member,
        at,
        "KM-001",
        EventBody::MemberRegister(MemberRegister {
            phone_hash: phone(n).into(),
        }),
    )
}

fn redeem(id: &str, member: &str, at: Ts, store: &str, points: u64) -> Event {
    ev(
        id,
        member,
        at,
        store,
        EventBody::PointsRedeem(PointsRedeem {
            points,
            reference: "r".into(),
        }),
    )
}

fn refund(id: &str, member: &str, at: Ts, store: &str, cents: u64) -> Event {
    ev(
        id,
        member,
        at,
        store,
        EventBody::Return(Return {
            order_id: "o".into(),
            lines: vec![QtyLine {
                sku: "SKU".into(),
                qty: 1,
            }],
            refund_cents: cents,
            restock: true,
        }),
    )
}

pub(super) fn erase(id: &str, member: &str, at: Ts) -> Event {
    ev(id, member, at, "KM-001", EventBody::MemberErase)
}

/// A processor and everything it emitted.
struct Harness {
    p: MemberProcessor,
    out: Vec<MemberOutput>,
}

impl Harness {
    fn new() -> Self {
        Self::with(MemberConfig::default())
    }

    fn with(config: MemberConfig) -> Self {
        Self {
            p: MemberProcessor::new(config, stores()).unwrap(),
            out: Vec::new(),
        }
    }

    fn apply(&mut self, e: &Event) -> Result<Outcome, Rejection> {
        let r = self.p.apply(e, &mut self.out);
        self.p.assert_timers_exact();
        r
    }

    fn all(&mut self, events: &[Event]) {
        for e in events {
            self.apply(e).unwrap();
        }
    }

    fn tick(&mut self, at: Ts) {
        self.p.on_tick(at, &mut self.out);
        self.p.assert_timers_exact();
    }

    fn tags(&self, id: &str) -> Vec<String> {
        self.p.member(id).map(|m| m.tags).unwrap_or_default()
    }

    fn has(&self, id: &str, tag: &str) -> bool {
        self.tags(id).iter().any(|t| t == tag)
    }

    /// Tag changes since the last call: (member, tag, added, as_of, by event).
    fn changes(&mut self) -> Vec<(String, String, bool, Ts, bool)> {
        let mut v = Vec::new();
        self.out.retain(|o| match o {
            MemberOutput::Tag(c) => {
                v.push((
                    c.member_id.to_string(),
                    c.tag.to_string(),
                    c.change == Change::Added,
                    c.as_of,
                    c.event_id.is_some(),
                ));
                false
            }
            _ => true,
        });
        v
    }

    fn alerts(&self) -> BTreeSet<String> {
        self.out
            .iter()
            .filter_map(|o| match o {
                MemberOutput::Overdraft(a) => Some(a.alert_id.clone()),
                _ => None,
            })
            .collect()
    }
}

impl MemberProcessor {
    /// Every member's stored tags and favorite equal a fresh evaluation at
    /// `T`: the timer wheel missed no change.
    fn assert_timers_exact(&self) {
        let today = self.today();
        for p in self.state.persons.iter().flatten() {
            let (tags, fav) = self.evaluate(p, today);
            assert_eq!(
                (tags, fav),
                (p.tags, p.favorite),
                "member {} is stale at day {today}",
                p.canonical()
            );
        }
    }

    /// Redemptions that overdraw in the final event-time order.
    fn overdrafts_now(&self) -> BTreeSet<String> {
        let mut set = BTreeSet::new();
        for p in self.state.persons.iter().flatten() {
            let mut l = p.ledger.clone();
            for e in &mut l.pending {
                e.alerted = false;
            }
            let mut found = Vec::new();
            l.find_overdrafts(&mut found);
            set.extend(
                found
                    .into_iter()
                    .map(|o| format!("points_overdraft:{}", o.event_id)),
            );
        }
        set
    }

    fn sorted_members(&self) -> Vec<query::MemberView> {
        let mut v: Vec<_> = self.all_members().collect();
        v.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        v
    }
}

#[test]
fn a_late_registration_merges_two_histories() {
    let mut h = Harness::new();
    h.all(&[
        register("r1", "M1", day_at(D0, 9), 1),
        sale("s1", "M1", day_at(D0, 10), "KM-001", 100_000),
        sale("s2", "M1", day_at(D0, 11), "KM-002", 100_000),
        sale("s3", "APP-1", day_at(D0, 12), "DL-001", 200_000),
        sale("s4", "APP-1", day_at(D0, 13), "MZ-001", 200_000),
    ]);
    assert_eq!(h.p.len(), 2);
    assert!(!h.has("M1", "high_value") && !h.has("APP-1", "high_value"));
    h.changes();
    // The app id is registered with the same phone: one member.
    h.apply(&register("r2", "APP-1", day_at(D0, 9) + MINUTE, 1))
        .unwrap();
    assert_eq!(h.p.len(), 1);
    let m = h.p.member("APP-1").unwrap();
    assert_eq!(m, h.p.member("M1").unwrap());
    assert_eq!(m.member_id, "M1", "the earliest registration is canonical");
    assert_eq!(m.aliases, vec![Id::from("APP-1")]);
    assert_eq!(m.spend_90d_cents, 600_000);
    assert_eq!(m.orders_90d, 4);
    assert_eq!(m.points_balance, 6000);
    assert!(h.has("M1", "high_value"));
    assert!(h.has("M1", "multi_store"), "4 stores now");
    let changes = h.changes();
    assert!(changes.contains(&("M1".into(), "high_value".into(), true, day_at(D0, 13), true)));
    // An id registered earlier than M1 becomes the canonical id.
    h.apply(&register("r3", "CARD-9", day_at(D0, 8), 1))
        .unwrap();
    let m = h.p.member("M1").unwrap();
    assert_eq!(m.member_id, "CARD-9");
    assert_eq!(m.aliases, vec![Id::from("M1"), Id::from("APP-1")]);
    let changes = h.changes();
    assert!(changes.contains(&(
        "M1".into(),
        "high_value".into(),
        false,
        day_at(D0, 13),
        true
    )));
    assert!(changes.contains(&(
        "CARD-9".into(),
        "high_value".into(),
        true,
        day_at(D0, 13),
        true
    )));
}

#[test]
fn a_second_phone_for_a_registered_id_is_rejected() {
    let mut h = Harness::new();
    h.apply(&register("r1", "M1", day_at(D0, 9), 1)).unwrap();
    let err = h
        .apply(&register("r2", "M1", day_at(D0, 10), 2))
        .unwrap_err();
    assert!(
        err.reason().contains("different phone_hash"),
        "{}",
        err.reason()
    );
    // The same phone again is fine: the earliest time stands.
    h.apply(&register("r3", "M1", day_at(D0, 8), 1)).unwrap();
    assert_eq!(
        h.p.person_by_id("M1").unwrap().registered_at(),
        Some(day_at(D0, 8))
    );
}

#[test]
fn points_move_across_stores_and_franchisees_with_fifo_settlement() {
    let mut h = Harness::new();
    h.all(&[
        // 300 points at a direct store, then 200 at dianxi-retail.
        sale("s1", "M1", day_at(D0, 10), "KM-001", 30_000),
        sale("s2", "M1", day_at(D0, 11), "DL-001", 20_099),
        // 400 redeemed at diannan-trading: 300 from direct, 100 from dianxi.
        redeem("p1", "M1", day_at(D0 + 1, 10), "MZ-001", 400),
        // Redeemed at a dianxi store: its own 100 left, no settlement.
        redeem("p2", "M1", day_at(D0 + 1, 11), "DL-002", 100),
    ]);
    let l = h.p.ledger("M1").unwrap();
    assert_eq!((l.points_balance, l.earned, l.redeemed), (0, 500, 500));
    let rep = h.p.settlement(D0 + 1);
    let rows: Vec<_> = rep
        .rows
        .iter()
        .map(|r| {
            (
                r.from_franchisee.as_str(),
                r.to_franchisee.as_str(),
                r.points,
                r.amount_cents,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("dianxi-retail", "diannan-trading", 100, 100),
            ("direct", "diannan-trading", 300, 300)
        ]
    );
    assert!(!rep.is_final);
    // A return takes points back, and a late earning lands first in FIFO.
    h.apply(&sale("s0", "M1", day_at(D0 - 1, 10), "ZT-001", 10_000))
        .unwrap();
    let rep = h.p.settlement(D0 + 1);
    let rows: Vec<_> = rep
        .rows
        .iter()
        .map(|r| (r.from_franchisee.as_str(), r.points))
        .collect();
    assert_eq!(
        rows,
        vec![("diandong-co", 100), ("direct", 300)],
        "oldest points first"
    );
    // The report becomes final once the clock is past the exact window.
    h.tick(day_at(D0 + 10, 0));
    assert!(h.p.settlement(D0 + 1).is_final);
    // Old entries fold into lots on the member's next event (the new sale
    // earns nothing: 99 cents).
    h.apply(&sale("s9", "M1", day_at(D0 + 10, 9), "KM-001", 99))
        .unwrap();
    assert_eq!(
        h.p.settlement(D0 + 1).rows.len(),
        2,
        "folding keeps the report"
    );
    assert_eq!(
        h.p.ledger("M1").unwrap().recent.len(),
        0,
        "entries folded into lots"
    );
    assert_eq!(h.p.ledger("M1").unwrap().points_balance, 100);
}

#[test]
fn overdraft_is_raised_in_event_time_order_once() {
    let mut h = Harness::new();
    h.all(&[
        sale("s1", "M1", day_at(D0, 10), "KM-001", 10_000),
        redeem("p1", "M1", day_at(D0, 12), "KM-002", 80),
        redeem("p2", "M1", day_at(D0, 12) + MINUTE, "DL-001", 80),
    ]);
    assert_eq!(
        h.alerts(),
        BTreeSet::from(["points_overdraft:p2".to_string()])
    );
    assert_eq!(h.p.member("M1").unwrap().points_balance, -60);
    // A late redemption earlier than both: now p1 overdraws too.
    h.apply(&redeem("p0", "M1", day_at(D0, 11), "KM-003", 50))
        .unwrap();
    assert_eq!(
        h.alerts(),
        BTreeSet::from([
            "points_overdraft:p1".to_string(),
            "points_overdraft:p2".to_string()
        ])
    );
    let a = h
        .out
        .iter()
        .find_map(|o| match o {
            MemberOutput::Overdraft(a) if a.event_id == "p1" => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((a.balance_after, a.store_id.as_str()), (-30, "KM-002"));
}

/// Runs the clock to a day, one day at a time.
fn run_to(h: &mut Harness, day: i32) {
    let mut d = china_day(h.p.clock()) + 1;
    while d <= day {
        h.tick(day_at(d, 0));
        d += 1;
    }
}

fn first_change(h: &mut Harness, member: &str, tag: &str, added: bool, until: i32) -> Option<i32> {
    let mut d = china_day(h.p.clock());
    while d < until {
        d += 1;
        h.tick(day_at(d, 0));
        if h.changes()
            .iter()
            .any(|c| c.0 == member && c.1 == tag && c.2 == added && !c.4)
        {
            return Some(d);
        }
    }
    None
}

#[test]
fn churn_risk_comes_by_the_passing_of_time_and_goes_with_a_sale() {
    let mut h = Harness::new();
    for i in 0..5 {
        h.apply(&sale(
            &format!("s{i}"),
            "M1",
            day_at(D0 + i, 10),
            "KM-001",
            100,
        ))
        .unwrap();
    }
    assert!(!h.has("M1", "churn_risk"));
    // Last sale on D0+4: quiet window (T-60d, T] has no sale from D0+64.
    assert_eq!(
        first_change(&mut h, "M1", "churn_risk", true, D0 + 100),
        Some(D0 + 64)
    );
    h.apply(&sale("s9", "M1", day_at(D0 + 70, 10), "KM-001", 100))
        .unwrap();
    assert!(!h.has("M1", "churn_risk"));
    assert!(h
        .changes()
        .iter()
        .any(|c| c.1 == "churn_risk" && !c.2 && c.4));
    // Four sales are not enough.
    let mut h = Harness::new();
    for i in 0..4 {
        h.apply(&sale(
            &format!("s{i}"),
            "M2",
            day_at(D0 + i, 10),
            "KM-001",
            100,
        ))
        .unwrap();
    }
    assert_eq!(
        first_change(&mut h, "M2", "churn_risk", true, D0 + 200),
        None
    );
}

#[test]
fn high_value_at_the_threshold_and_until_the_window_passes() {
    let mut h = Harness::new();
    h.apply(&sale("s1", "M1", day_at(D0, 10), "KM-001", 300_000))
        .unwrap();
    h.apply(&sale("s2", "M1", day_at(D0 + 10, 10), "KM-001", 199_999))
        .unwrap();
    assert!(!h.has("M1", "high_value"), "a cent short");
    h.apply(&sale("s3", "M1", day_at(D0 + 11, 10), "KM-001", 1))
        .unwrap();
    assert!(h.has("M1", "high_value"), "exactly 500000");
    h.apply(&refund("r1", "M1", day_at(D0 + 12, 10), "KM-002", 1))
        .unwrap();
    assert!(!h.has("M1", "high_value"), "net of refunds");
    h.apply(&sale("s4", "M1", day_at(D0 + 13, 10), "KM-001", 1))
        .unwrap();
    assert!(h.has("M1", "high_value"));
    h.changes();
    // s1 (D0) leaves the 90-day window on D0+90.
    assert_eq!(
        first_change(&mut h, "M1", "high_value", false, D0 + 200),
        Some(D0 + 90)
    );
}

#[test]
fn frequent_multi_store_online_promo_loyal_seasonal_and_new_member() {
    let mut h = Harness::new();
    h.apply(&register("r1", "M1", day_at(D0, 9), 1)).unwrap();
    assert!(h.has("M1", "new_member"));
    for i in 0..7 {
        h.apply(&sale(
            &format!("f{i}"),
            "M1",
            day_at(D0 + i, 10),
            "KM-001",
            1000,
        ))
        .unwrap();
    }
    assert!(!h.has("M1", "frequent"));
    assert!(h.has("M1", "store_loyal"));
    h.apply(&sale("f7", "M1", day_at(D0 + 7, 10), "KM-002", 1000))
        .unwrap();
    assert!(h.has("M1", "frequent"), "8 sales in 30 days");
    assert!(!h.has("M1", "multi_store"));
    h.apply(&sale("f8", "M1", day_at(D0 + 8, 10), "KM-003", 1000))
        .unwrap();
    assert!(h.has("M1", "multi_store"), "3 stores");
    assert!(h.has("M1", "store_loyal"), "7000 of 9000 in KM-001");
    h.changes();
    // Frequent lapses when f1 (D0+1) leaves the 30-day window (f0 leaving
    // still leaves 8), new_member when D0 does.
    let mut lapsed = BTreeSet::new();
    for d in D0 + 1..=D0 + 31 {
        h.tick(day_at(d, 0));
        for c in h.changes() {
            lapsed.insert((c.1, c.2, d));
        }
    }
    assert!(
        lapsed.contains(&("frequent".into(), false, D0 + 31)),
        "{lapsed:?}"
    );
    assert!(
        lapsed.contains(&("new_member".into(), false, D0 + 30)),
        "{lapsed:?}"
    );
    // Online first: 3 sales, 70% online.
    let mut h = Harness::new();
    for i in 0..3 {
        let mut e = sale(&format!("o{i}"), "M2", day_at(D0, 10 + i), "KM-001", 100);
        e.channel = Channel::MiniProgram;
        h.apply(&e).unwrap();
    }
    assert!(h.has("M2", "online_first"));
    h.apply(&sale("o3", "M2", day_at(D0, 14), "KM-001", 100))
        .unwrap();
    assert!(h.has("M2", "online_first"), "3 of 4 is 75%");
    h.apply(&sale("o4", "M2", day_at(D0, 15), "KM-001", 100))
        .unwrap();
    assert!(!h.has("M2", "online_first"), "3 of 5 is 60%");
    let mut h2 = Harness::new();
    h2.all(&[
        ev("q1", "M3", day_at(D0, 10), "KM-001", sale_body(100, 3, 1)),
        ev("q2", "M3", day_at(D0, 11), "KM-001", sale_body(100, 1, 1)),
    ]);
    assert!(h2.has("M3", "promo_responsive"), "2 of 4 lines on promo");
    h2.apply(&ev(
        "q3",
        "M3",
        day_at(D0, 12),
        "KM-001",
        sale_body(100, 1, 0),
    ))
    .unwrap();
    assert!(!h2.has("M3", "promo_responsive"));
    // Seasonal: three sales in one quarter of the year.
    let mut h3 = Harness::new();
    // D0 = 2024-10-04 (Q4).
    for i in 0..3 {
        h3.apply(&sale(
            &format!("z{i}"),
            "M4",
            day_at(D0 + i * 20, 10),
            "KM-001",
            1000,
        ))
        .unwrap();
    }
    assert!(h3.has("M4", "seasonal_buyer"));
    h3.apply(&sale("z9", "M4", day_at(D0 + 100, 10), "KM-001", 1000))
        .unwrap();
    assert!(!h3.has("M4", "seasonal_buyer"), "75% in Q4");
}

#[test]
fn favorite_store_moves_as_spend_leaves_the_window() {
    let mut h = Harness::new();
    h.all(&[
        sale("a", "M1", day_at(D0, 10), "KM-002", 500),
        sale("b", "M1", day_at(D0 + 5, 10), "KM-001", 300),
    ]);
    assert_eq!(
        h.p.member("M1").unwrap().favorite_store.as_deref(),
        Some("KM-002")
    );
    run_to(&mut h, D0 + 90);
    assert_eq!(
        h.p.member("M1").unwrap().favorite_store.as_deref(),
        Some("KM-001")
    );
    let m = h.p.marketing(stores().lookup("KM-001").unwrap());
    assert_eq!(m.regulars, 1);
    let m = h.p.marketing(stores().lookup("KM-002").unwrap());
    assert_eq!(m.regulars, 0);
}

#[test]
fn custom_tags_from_config_work_and_change_with_time() {
    let config = MemberConfig {
        custom_tags: vec![CustomTagConfig {
            name: "lapsed_big_spender".into(),
            expr: "spend_365d_cents >= 100000 && sales_30d == 0".into(),
            action: Some("call them".into()),
        }],
        ..MemberConfig::default()
    };
    let mut h = Harness::with(config);
    h.apply(&sale("s1", "M1", day_at(D0, 10), "KM-001", 100_000))
        .unwrap();
    assert!(!h.has("M1", "lapsed_big_spender"));
    h.changes();
    assert_eq!(
        first_change(&mut h, "M1", "lapsed_big_spender", true, D0 + 60),
        Some(D0 + 30)
    );
    let page = h.p.list(Some("lapsed_big_spender"), None, 0, 10).unwrap();
    assert_eq!(page.members.len(), 1);
    let m = h.p.marketing(stores().lookup("KM-001").unwrap());
    let s = m
        .by_tag
        .iter()
        .find(|t| t.tag == "lapsed_big_spender")
        .unwrap();
    assert_eq!((s.members, s.action.as_deref()), (1, Some("call them")));
    let churn = m.by_tag.iter().find(|t| t.tag == "churn_risk").unwrap();
    assert_eq!(churn.action.as_deref(), Some("win-back coupon"));
}

#[test]
fn an_erased_member_is_gone_and_stays_gone() {
    let mut h = Harness::new();
    h.all(&[
        register("r1", "M1", day_at(D0, 9), 1),
        register("r2", "APP-1", day_at(D0, 9), 1),
        sale("s1", "APP-1", day_at(D0, 10), "KM-001", 100_000),
    ]);
    assert!(h.p.export("APP-1").unwrap().to_string().contains(&phone(1)));
    h.changes();
    h.apply(&erase("e1", "APP-1", day_at(D0, 12))).unwrap();
    assert!(h.p.member("M1").is_none() && h.p.member("APP-1").is_none());
    assert!(h.p.export("M1").is_none());
    assert_eq!(h.p.len(), 0);
    assert!(h.changes().is_empty(), "no tag events for an erased member");
    assert!(
        h.out.iter().any(|o| matches!(o, MemberOutput::Erased(e)
        if e.member_id == "APP-1" && e.aliases == vec![Id::from("M1")])),
        "same registration time: the smaller id is canonical"
    );
    // A late event from before the erasure does not bring it back.
    h.apply(&sale("s0", "M1", day_at(D0, 11), "KM-001", 100))
        .unwrap();
    assert!(h.p.member("M1").is_none());
    let ser = format!("{:?}", h.p.state());
    assert!(
        !ser.contains("APP-1") && !ser.contains(&phone(1)),
        "nothing left in state"
    );
    // Time passing emits nothing for it.
    run_to(&mut h, D0 + 100);
    assert!(h.changes().is_empty());
    // A new purchase after the erasure starts a new member.
    h.apply(&sale("s2", "M1", day_at(D0 + 101, 10), "KM-001", 100))
        .unwrap();
    assert_eq!(h.p.member("M1").unwrap().orders_90d, 1);
}

/// The members a processor holds after `events` in this order, and the
/// ids its erasures named.
fn after(events: &[Event]) -> (Vec<String>, BTreeSet<String>) {
    let mut h = Harness::new();
    for e in events {
        let _ = h.apply(e);
    }
    let mut members: Vec<String> = h.p.all_members().map(|m| m.member_id.to_string()).collect();
    members.sort();
    let erased = h
        .out
        .iter()
        .filter_map(|o| match o {
            MemberOutput::Erased(e) => Some(
                std::iter::once(e.member_id.to_string())
                    .chain(e.aliases.iter().map(ToString::to_string))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    (members, erased)
}

#[test]
fn an_alias_registration_arriving_after_the_erasure_does_not_bring_the_person_back() {
    // M1 registers, APP-1 buys, then registers with the same phone, then
    // M1 is erased. Arriving in that order, everything goes; the alias's
    // sale and registration arriving after the erasure (another partition's
    // path in Kafka mode) must give the same.
    let events = [
        register("r1", "M1", day_at(D0, 9), 1),
        sale("s1", "APP-1", day_at(D0, 10), "KM-001", 100_000),
        register("r2", "APP-1", day_at(D0, 11), 1),
        erase("x1", "M1", day_at(D0, 12)),
    ];
    let in_order = after(&events);
    assert_eq!(in_order.0, Vec::<String>::new());
    for late in [[1, 2], [2, 1]] {
        let reordered = [
            events[0].clone(),
            events[3].clone(),
            events[late[0]].clone(),
            events[late[1]].clone(),
        ];
        let (members, erased) = after(&reordered);
        assert_eq!(members, in_order.0, "order {late:?}");
        if late == [1, 2] {
            // It had history of its own: erased, and named so.
            assert!(erased.contains("APP-1"), "{erased:?}");
        }
    }
    // Within the grace after the erasure an event of it is still one in
    // flight; a registration with the phone after the grace is a new member.
    let mut h = Harness::new();
    h.all(&events[..1]);
    h.all(&events[3..]);
    assert_eq!(
        h.apply(&sale(
            "s2",
            "M1",
            day_at(D0, 12) + 59 * MINUTE,
            "KM-001",
            100
        ))
        .unwrap(),
        Outcome::Ignored
    );
    assert_eq!(
        h.apply(&register("r3", "APP-1", day_at(D0, 12) + 59 * MINUTE, 1))
            .unwrap(),
        Outcome::Ignored
    );
    assert_eq!(h.p.len(), 0);
    h.apply(&register("r4", "APP-2", day_at(D0, 14), 1))
        .unwrap();
    assert!(
        h.p.member("APP-2").is_some(),
        "a new member after the grace"
    );
    let ser = format!("{:?}", h.p.state());
    assert!(
        !ser.contains("APP-1"),
        "nothing of the erased alias in state"
    );
}

#[test]
fn erasing_an_id_before_its_registration_arrives_erases_the_person_it_links_to() {
    // In time order APP-1 joins M1's person, then an erasure through APP-1
    // takes the whole person. The erasure arriving before APP-1's
    // registration must too.
    let events = [
        register("r1", "M1", day_at(D0, 9), 1),
        sale("s1", "M1", day_at(D0, 9) + MINUTE, "KM-001", 100_000),
        register("r2", "APP-1", day_at(D0, 11), 1),
        erase("x1", "APP-1", day_at(D0, 12)),
    ];
    assert_eq!(after(&events).0, Vec::<String>::new());
    let (members, erased) = after(&[
        events[0].clone(),
        events[1].clone(),
        events[3].clone(),
        events[2].clone(),
    ]);
    assert_eq!(members, Vec::<String>::new());
    assert!(erased.contains("M1"), "{erased:?}");
    // And before the person registered at all: its registration, dated
    // before the erasure, is erased when it comes.
    let (members, _) = after(&[
        events[3].clone(),
        events[2].clone(),
        events[0].clone(),
        events[1].clone(),
    ]);
    assert_eq!(members, Vec::<String>::new());
    // The grace is configurable; 0 keeps only what is dated up to the
    // erasure.
    let mut h = Harness::with(MemberConfig {
        erasure_grace_minutes: 0,
        ..MemberConfig::default()
    });
    h.all(&[events[3].clone()]);
    h.apply(&sale("s2", "APP-1", day_at(D0, 12) + MINUTE, "KM-001", 100))
        .unwrap();
    assert!(h.p.member("APP-1").is_some());
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    Register(u8, u8),
    Sale(u8, u8, u32, bool, u8),
    Return(u8, u32),
    Redeem(u8, u8, u16),
    /// An erasure of an id, dated after every other event (nothing of the
    /// person follows it, as in life: with the grace, the order they
    /// arrive in does not matter).
    Erase(u8),
}

impl Op {
    pub(super) fn is_erase(&self) -> bool {
        matches!(self, Op::Erase(_))
    }
}

const IDS: [&str; 6] = ["M1", "APP-1", "M2", "APP-2", "M3", "CARD-3"];
const STORES: [&str; 6] = ["KM-001", "KM-002", "DL-001", "MZ-001", "ZT-001", "LJ-001"];

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Each id registers with its person's phone (ids 2k and 2k+1 share).
        (0u8..6, 0u8..2).prop_map(|(i, _)| Op::Register(i, i / 2)),
        (0u8..6, 0u8..6, 0u32..400_000, any::<bool>(), 1u8..4)
            .prop_map(|(i, s, t, o, l)| Op::Sale(i, s, t, o, l)),
        (0u8..6, 0u32..100_000).prop_map(|(i, r)| Op::Return(i, r)),
        (0u8..6, 0u8..6, 1u16..3000).prop_map(|(i, s, p)| Op::Redeem(i, s, p)),
        (0u8..6).prop_map(Op::Erase),
    ]
}

pub(super) fn build(ops: &[(Op, u32)], span_hours: u32) -> Vec<Event> {
    ops.iter()
        .enumerate()
        .map(|(n, (op, at))| {
            let at = day_at(D0, 0) + i64::from(at % span_hours) * HOUR + n as i64;
            let id = format!("e{n}");
            match *op {
                Op::Register(i, p) => register(&id, IDS[i as usize], at, u32::from(p)),
                Op::Sale(i, s, total, online, lines) => {
                    let mut e = ev(
                        &id,
                        IDS[i as usize],
                        at,
                        STORES[s as usize],
                        sale_body(u64::from(total), lines as usize, (lines / 2) as usize),
                    );
                    if online {
                        e.channel = Channel::App;
                    }
                    e
                }
                Op::Return(i, r) => refund(&id, IDS[i as usize], at, "KM-003", u64::from(r)),
                Op::Redeem(i, s, p) => {
                    redeem(&id, IDS[i as usize], at, STORES[s as usize], u64::from(p))
                }
                Op::Erase(i) => erase(
                    &id,
                    IDS[i as usize],
                    day_at(D0, 0) + i64::from(span_hours) * HOUR + n as i64,
                ),
            }
        })
        .collect()
}

/// A deterministic shuffle of `events` by `seed`.
pub(super) fn shuffle(mut events: Vec<Event>, seed: u64) -> Vec<Event> {
    let mut rng = seed;
    for i in (1..events.len()).rev() {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        events.swap(i, (rng >> 33) as usize % (i + 1));
    }
    events
}

fn run(config: &MemberConfig, events: &[Event], dedup: bool) -> Harness {
    let mut h = Harness::with(config.clone());
    if !dedup {
        h.p = MemberProcessor::new(config.clone(), stores())
            .unwrap()
            .without_dedup();
    }
    for e in events {
        h.p.apply(e, &mut h.out).unwrap();
    }
    h.p.assert_timers_exact();
    h
}

/// What stores' member counts (the mart's tag rows) make of `outputs`:
/// the sum of changes per (member, tag, store), zeros left out, the
/// members named erased left out (the mart deletes their rows).
pub(super) fn counted_by_store(
    outputs: &[MemberOutput],
) -> std::collections::BTreeMap<(String, String, String), i64> {
    let store = |s: Option<StoreIdx>| s.map(|s| stores().id(s).to_owned()).unwrap_or_default();
    let mut erased = BTreeSet::new();
    let mut sums = std::collections::BTreeMap::new();
    for o in outputs {
        match o {
            MemberOutput::Tag(c) => {
                let d = if c.change == Change::Added { 1 } else { -1 };
                *sums
                    .entry((c.member_id.to_string(), c.tag.to_string(), store(c.store)))
                    .or_insert(0) += d;
            }
            MemberOutput::TagsMoved(m) => {
                for tag in &m.tags {
                    let key = |s| (m.member_id.to_string(), tag.to_string(), store(s));
                    *sums.entry(key(m.from)).or_insert(0) -= 1;
                    *sums.entry(key(m.to)).or_insert(0) += 1;
                }
            }
            MemberOutput::Erased(e) => {
                erased.insert(e.member_id.to_string());
                erased.extend(e.aliases.iter().map(ToString::to_string));
            }
            MemberOutput::Overdraft(_) => {}
        }
    }
    sums.retain(|(m, _, _), v| *v != 0 && !erased.contains(m));
    sums
}

/// Every member's tags counted once, at its favourite store, by the
/// outputs, whatever order the events came in.
pub(super) fn assert_counted_at_favourite<'a>(
    members: impl Iterator<Item = query::MemberView>,
    outputs: impl Iterator<Item = &'a MemberOutput>,
) {
    let outputs: Vec<MemberOutput> = outputs.cloned().collect();
    let counted = counted_by_store(&outputs);
    let mut expected = std::collections::BTreeMap::new();
    for m in members {
        for tag in &m.tags {
            let store = m.favorite_store.clone().unwrap_or_default();
            expected.insert((m.member_id.to_string(), tag.clone(), store), 1i64);
        }
    }
    assert_eq!(
        counted, expected,
        "tag rows by store against the members now"
    );
}

/// Same members, overdrafts and (`with_settlement`) settlement. Settlement
/// differs with erasures: points of an erased member's events that arrive
/// after its erasure never reach the table (its ledger is gone).
fn assert_same(a: &Harness, b: &Harness, with_settlement: bool) {
    assert_eq!(a.p.sorted_members(), b.p.sorted_members());
    assert_counted_at_favourite(a.p.all_members(), a.out.iter());
    assert_counted_at_favourite(b.p.all_members(), b.out.iter());
    if with_settlement {
        assert_eq!(a.p.state.settlement, b.p.state.settlement);
    }
    assert_eq!(a.p.overdrafts_now(), b.p.overdrafts_now());
    assert!(
        b.p.overdrafts_now().is_subset(&b.alerts()),
        "every overdraft alerted"
    );
    assert!(a.p.overdrafts_now().is_subset(&a.alerts()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Months of events with late links, shuffled: the same members, tags,
    /// balances, settlement and overdrafts as in event-time order.
    #[test]
    fn shuffled_months_equal_event_time_order(
        ops in prop::collection::vec((op(), 0u32..200 * 24), 1..80),
        seed in any::<u64>(),
    ) {
        let config = MemberConfig { ledger_exact_days: 366, ..MemberConfig::default() };
        let mut events = build(&ops, 200 * 24);
        events.sort_by_key(|e| e.occurred_at);
        let in_order = run(&config, &events, false);
        let mut shuffled = events.clone();
        let mut rng = seed;
        for i in (1..shuffled.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let any_order = run(&config, &shuffled, false);
        assert_same(&in_order, &any_order, !ops.iter().any(|(op, _)| op.is_erase()));
    }

    /// A week of events, shuffled and re-sent, with the default config and
    /// the processor's own de-duplication.
    #[test]
    fn shuffled_duplicated_week_equals_event_time_order(
        ops in prop::collection::vec((op(), 0u32..6 * 24), 1..80),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        seed in any::<u64>(),
    ) {
        let config = MemberConfig::default();
        let mut events = build(&ops, 6 * 24);
        events.sort_by_key(|e| e.occurred_at);
        let in_order = run(&config, &events, true);
        let mut shuffled = events.clone();
        for ix in &order {
            shuffled.push(ix.get(&events).clone());
        }
        let mut rng = seed;
        for i in (1..shuffled.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let any_order = run(&config, &shuffled, true);
        assert_same(&in_order, &any_order, !ops.iter().any(|(op, _)| op.is_erase()));
    }
}

#[test]
fn phone_hex_round_trips_and_keys_find_their_person() {
    let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
    let hex = phone_hex(&bytes);
    assert_eq!(hex.len(), 64);
    assert_eq!(
        hex,
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    assert_eq!(phone_bytes(&hex), Some(bytes));

    // A processor publishes; a read model puts what it publishes, twice:
    // every key must replace its person, never add a second one.
    let mut h = Harness::new();
    h.p = MemberProcessor::new(MemberConfig::default(), stores())
        .unwrap()
        .tracking_changes();
    h.all(&[
        register("r1", "M1", day_at(D0, 9), 1),
        sale("s1", "M1", day_at(D0, 10), "KM-001", 100_000),
        sale("s2", "GUEST-7", day_at(D0, 11), "KM-002", 50_000),
    ]);
    let mut published = Vec::new();
    h.p.drain_changes(|change| {
        if let PersonChange::Put(key, person) = change {
            published.push((key, person.clone()));
        }
    });
    assert_eq!(published.len(), 2, "{published:?}");
    assert!(published
        .iter()
        .any(|(k, _)| k.starts_with(PHONE_KEY_PREFIX)));
    assert!(published.iter().any(|(k, _)| k == "GUEST-7"));
    let mut served = MemberProcessor::new(MemberConfig::default(), stores()).unwrap();
    for _ in 0..2 {
        for (key, person) in &published {
            served.put_person(key, Some(person.clone()), h.p.clock());
        }
    }
    assert_eq!(served.len(), 2);
    assert_eq!(served.member("M1"), h.p.member("M1"));
    assert_eq!(served.member("GUEST-7"), h.p.member("GUEST-7"));
    // A tombstone under each key removes its person.
    for (key, _) in &published {
        served.put_person(key, None, day_at(D0, 12));
    }
    assert_eq!(served.len(), 0);
}
