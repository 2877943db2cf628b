//! Generator tests: determinism, contract validity (checked with the core
//! parser), the business shape of the stream, malformed and duplicate
//! shares, jitter, and planted fraud against a reference fraud check.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use storepulse_core::{Event, EventBody, EventParser};

use super::*;

fn stores() -> Arc<StoreMaster> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    Arc::new(StoreMaster::load(&path).unwrap())
}

fn generator(cfg: GeneratorConfig) -> Generator {
    Generator::new(cfg, stores()).unwrap()
}

/// The next `n` events as bytes, with what each one is.
pub(crate) fn lines(g: &mut Generator, n: usize) -> Vec<(Vec<u8>, Emitted)> {
    (0..n)
        .map(|_| {
            let mut out = Vec::new();
            let e = g.next_into(&mut out);
            (out, e)
        })
        .collect()
}

fn is_event_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

#[test]
fn same_seed_same_stream_other_seed_other_stream() {
    let cfg = GeneratorConfig {
        malformed_share: 0.02,
        jitter: Duration::from_secs(60),
        fraud: FraudPlan::Share(0.001),
        ..GeneratorConfig::default()
    };
    let a: Vec<Vec<u8>> = generator(cfg.clone()).take(20_000).collect();
    let b: Vec<Vec<u8>> = generator(cfg.clone()).take(20_000).collect();
    assert!(a == b, "same seed must give the same bytes");
    let c: Vec<Vec<u8>> = generator(GeneratorConfig { seed: 43, ..cfg })
        .take(20_000)
        .collect();
    assert_ne!(a, c);
    // Other seeds use other ids, so two runs never collide on event_id.
    let ids = |v: &[Vec<u8>]| -> HashSet<String> {
        v.iter()
            .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
            .filter_map(|v| v["event_id"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(ids(&a).is_disjoint(&ids(&c)));
}

#[test]
fn every_event_is_valid_contract_json() {
    let stores = stores();
    let parser = EventParser::new(stores.clone());
    let mut g = Generator::new(GeneratorConfig::default(), stores.clone()).unwrap();
    let mut seen_ids = HashSet::new();
    let mut types: HashMap<String, usize> = HashMap::new();
    let channels = ["pos", "app", "mini_program", "web", "backoffice"];
    for (bytes, emitted) in lines(&mut g, 10_000) {
        assert!(emitted.is_valid());
        assert!(!bytes.contains(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["v"], 1);
        let id = v["event_id"].as_str().unwrap();
        assert!(is_event_id(id), "{id}");
        let event_type = v["event_type"].as_str().unwrap();
        assert!(EventType::from_wire(event_type).is_some(), "{event_type}");
        let at = v["occurred_at"].as_str().unwrap();
        assert!(at.ends_with("+08:00") && at.len() == 29, "{at}");
        assert!(stores.lookup(v["store_id"].as_str().unwrap()).is_some());
        assert!(channels.contains(&v["channel"].as_str().unwrap()));
        if let Some(m) = v.get("member_id") {
            assert!((1..=64).contains(&m.as_str().unwrap().len()));
        }
        let event = parser
            .parse(&bytes)
            .unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(&bytes)));
        if matches!(emitted, Emitted::Event(_)) {
            assert!(
                seen_ids.insert(event.event_id.to_string()),
                "event_id {id} repeats"
            );
        }
        *types.entry(event_type.to_owned()).or_default() += 1;
    }
    for t in EventType::ALL {
        if t != EventType::MemberErase {
            assert!(
                types.get(t.as_str()).copied().unwrap_or(0) > 0,
                "no {}: {types:?}",
                t.as_str()
            );
        }
    }
}

/// The stream's business shape: mix, totals, returns, transfers, aliases.
#[test]
fn stream_is_plausible() {
    let stores = stores();
    let parser = EventParser::new(stores.clone());
    let cfg = GeneratorConfig {
        duplicate_share: 0.0,
        ..GeneratorConfig::default()
    };
    let mut g = Generator::new(cfg, stores).unwrap();
    let opening = g.stats().opening_receipts;
    assert_eq!(opening, 0);
    let events: Vec<Event> = lines(&mut g, 60_000)
        .iter()
        .map(|(b, _)| parser.parse(b).unwrap())
        .collect();
    let opening = g.stats().opening_receipts as usize;
    assert_eq!(opening, 40 * 5_000usize.div_ceil(OPENING_LINES));
    let regular = &events[opening..];
    let share = |t: EventType| {
        regular.iter().filter(|e| e.event_type() == t).count() as f64 / regular.len() as f64
    };
    assert!(
        (0.84..0.90).contains(&share(EventType::Sale)),
        "sales {}",
        share(EventType::Sale)
    );
    assert!((0.02..0.04).contains(&share(EventType::Return)));
    assert!((0.04..0.06).contains(&share(EventType::StockReceipt)));
    assert!((0.015..0.025).contains(&share(EventType::MemberRegister)));

    let mut orders = HashMap::new();
    let mut outs = HashMap::new();
    let mut phones: HashMap<String, HashSet<String>> = HashMap::new();
    let (mut sales, mut with_member, mut online, mut oversold_lines, mut sale_lines) =
        (0, 0, 0, 0, 0);
    let mut on_hand: HashMap<(u16, String), i64> = HashMap::new();
    for e in &events {
        match &e.body {
            EventBody::Sale(s) => {
                sales += 1;
                with_member += usize::from(e.member_id.is_some());
                online += usize::from(e.channel.is_online());
                let subtotal: u64 = s
                    .lines
                    .iter()
                    .map(|l| u64::from(l.qty) * l.unit_price_cents)
                    .sum();
                assert!(s.total_cents <= subtotal && s.total_cents * 5 >= subtotal * 4);
                assert!(s.total_cents < 2_000_000);
                orders.insert(s.order_id.to_string(), e.occurred_at);
                for l in &s.lines {
                    let stock = on_hand.entry((e.store.0, l.sku.to_string())).or_default();
                    *stock -= i64::from(l.qty);
                    sale_lines += 1;
                    oversold_lines += usize::from(*stock < 0);
                }
            }
            EventBody::Return(r) => {
                let sold_at = orders
                    .get(r.order_id.as_str())
                    .expect("return refers to an earlier order");
                assert!(e.occurred_at > *sold_at);
                if r.restock {
                    for l in &r.lines {
                        *on_hand.entry((e.store.0, l.sku.to_string())).or_default() +=
                            i64::from(l.qty);
                    }
                }
            }
            EventBody::StockReceipt(r) => {
                for l in &r.lines {
                    *on_hand.entry((e.store.0, l.sku.to_string())).or_default() += i64::from(l.qty);
                }
            }
            EventBody::StockCount(c) => {
                for l in &c.lines {
                    on_hand.insert((e.store.0, l.sku.to_string()), i64::from(l.on_hand));
                }
            }
            EventBody::TransferOut(t) => {
                outs.insert(
                    t.transfer_id.to_string(),
                    (e.store, t.other_store, e.occurred_at),
                );
                for l in &t.lines {
                    *on_hand.entry((e.store.0, l.sku.to_string())).or_default() -= i64::from(l.qty);
                }
            }
            EventBody::TransferIn(t) => {
                let (from, to, out_at) = outs
                    .get(t.transfer_id.as_str())
                    .expect("transfer_in after its transfer_out");
                assert_eq!((*from, *to), (t.other_store, e.store));
                assert!(e.occurred_at > *out_at);
                for l in &t.lines {
                    *on_hand.entry((e.store.0, l.sku.to_string())).or_default() += i64::from(l.qty);
                }
            }
            EventBody::MemberRegister(r) => {
                phones
                    .entry(r.phone_hash.to_string())
                    .or_default()
                    .insert(e.member_id.as_deref().unwrap().to_owned());
            }
            _ => {}
        }
    }
    let member_share = with_member as f64 / sales as f64;
    assert!(
        (0.2..0.4).contains(&member_share),
        "member share {member_share}"
    );
    let online_share = online as f64 / sales as f64;
    assert!(
        (0.1..0.2).contains(&online_share),
        "online share {online_share}"
    );
    assert!(
        phones.values().any(|ids| ids.len() == 2),
        "some member registers an alias"
    );
    assert!(!outs.is_empty());
    let oversold = oversold_lines as f64 / sale_lines as f64;
    assert!(oversold < 0.02, "oversold share of sale lines {oversold}");
}

#[test]
fn malformed_events_are_invalid_at_the_requested_share() {
    let stores = stores();
    let parser = EventParser::new(stores.clone());
    let cfg = GeneratorConfig {
        malformed_share: 0.05,
        ..GeneratorConfig::default()
    };
    let mut g = Generator::new(cfg, stores).unwrap();
    let all = lines(&mut g, 40_000);
    let mut kinds = HashSet::new();
    let mut malformed = 0;
    for (bytes, emitted) in &all {
        let parsed = parser.parse(bytes);
        match emitted {
            Emitted::Malformed(kind) => {
                malformed += 1;
                kinds.insert(*kind);
                assert!(
                    parsed.is_err(),
                    "{kind:?} accepted: {}",
                    String::from_utf8_lossy(bytes)
                );
                assert_eq!(
                    serde_json::from_slice::<serde_json::Value>(bytes).is_ok(),
                    kind.is_json()
                );
                assert!(!bytes.is_empty() && !bytes.contains(&b'\n'));
            }
            _ => assert!(parsed.is_ok()),
        }
    }
    let share = malformed as f64 / all.len() as f64;
    assert!((0.045..0.055).contains(&share), "malformed share {share}");
    assert_eq!(kinds.len(), MalformedKind::ALL.len());
    assert_eq!(g.stats().malformed, malformed);
}

#[test]
fn duplicates_resend_identical_bytes() {
    let cfg = GeneratorConfig {
        duplicate_share: 0.05,
        ..GeneratorConfig::default()
    };
    let mut g = generator(cfg);
    let all = lines(&mut g, 30_000);
    let mut earlier: HashSet<&[u8]> = HashSet::new();
    let mut duplicates = 0;
    for (bytes, emitted) in &all {
        if let Emitted::Duplicate(_) = emitted {
            duplicates += 1;
            assert!(
                earlier.contains(bytes.as_slice()),
                "duplicate of nothing earlier"
            );
        }
        earlier.insert(bytes);
    }
    let regular = all.len() as u64 - g.stats().opening_receipts;
    let share = duplicates as f64 / regular as f64;
    assert!((0.045..0.055).contains(&share), "duplicate share {share}");
}

#[test]
fn jitter_shifts_event_time_back_only() {
    let cfg = GeneratorConfig {
        jitter: Duration::from_secs(30),
        duplicate_share: 0.0,
        ..GeneratorConfig::default()
    };
    let parser = EventParser::new(stores());
    let mut g = generator(cfg);
    let mut out_of_order = 0;
    let mut latest = Ts::MIN;
    for _ in 0..5_000 {
        let bytes = g.next_event();
        let e = parser.parse(&bytes).unwrap();
        // Returns and transfer_ins follow what they refer to by at least 1 ms.
        assert!(
            e.occurred_at <= g.clock() + MILLI,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        out_of_order += usize::from(e.occurred_at < latest);
        latest = latest.max(e.occurred_at);
    }
    assert!(out_of_order > 1_000, "{out_of_order}");
}

/// Sales per key, as the fraud rules see them: (time, store, cents, event_id).
type Sales = HashMap<String, Vec<(Ts, u16, u64, String)>>;

/// Keys whose sales within some 30-minute span are in >= 3 stores and sum
/// to >= 500000 cents, with the event ids of one such span.
fn fraud_keys(sales: &Sales) -> HashMap<String, HashSet<String>> {
    let mut fired = HashMap::new();
    for (key, list) in sales {
        let mut list = list.clone();
        list.sort();
        for i in 0..list.len() {
            let window: Vec<_> = list[i..]
                .iter()
                .take_while(|s| s.0 - list[i].0 <= 30 * MINUTE)
                .collect();
            let stores: HashSet<u16> = window.iter().map(|s| s.1).collect();
            let total: u64 = window.iter().map(|s| s.2).sum();
            if stores.len() >= 3 && total >= 500_000 {
                fired.insert(key.clone(), window.iter().map(|s| s.3.clone()).collect());
                break;
            }
        }
    }
    fired
}

fn check_planted_fraud(cfg: GeneratorConfig, n: usize) {
    let parser = EventParser::new(stores());
    let mut g = generator(cfg);
    let events: Vec<Event> = (0..n)
        .filter_map(|_| parser.parse(&g.next_event()).ok())
        .collect();
    let planted = g.planted_fraud().to_vec();
    assert!(!planted.is_empty());

    // Canonical member: the id of the earliest registration of each phone.
    let mut first_by_phone: HashMap<String, (Ts, String)> = HashMap::new();
    let mut phone_of: HashMap<String, String> = HashMap::new();
    for e in &events {
        if let EventBody::MemberRegister(r) = &e.body {
            let id = e.member_id.as_deref().unwrap().to_owned();
            phone_of.insert(id.clone(), r.phone_hash.to_string());
            let entry = first_by_phone
                .entry(r.phone_hash.to_string())
                .or_insert((e.occurred_at, id.clone()));
            if (e.occurred_at, &id) < (entry.0, &entry.1) {
                *entry = (e.occurred_at, id);
            }
        }
    }
    let canonical = |id: &str| -> String {
        phone_of
            .get(id)
            .and_then(|p| first_by_phone.get(p))
            .map_or_else(|| id.to_owned(), |(_, c)| c.clone())
    };
    let (mut by_member, mut by_account) = (Sales::new(), Sales::new());
    for e in &events {
        if let EventBody::Sale(s) = &e.body {
            let sale = (
                e.occurred_at,
                e.store.0,
                s.total_cents,
                e.event_id.to_string(),
            );
            if let Some(m) = &e.member_id {
                by_member
                    .entry(canonical(m))
                    .or_default()
                    .push(sale.clone());
            }
            if let Some(a) = &s.payment.account_ref {
                by_account.entry(a.to_string()).or_default().push(sale);
            }
        }
    }
    let fired_members = fraud_keys(&by_member);
    let fired_accounts = fraud_keys(&by_account);
    let mut expected_members = HashSet::new();
    let mut expected_accounts = HashSet::new();
    for p in planted.iter().filter(|p| p.complete()) {
        assert!(p.total_cents >= 500_000);
        assert!(p.stores.iter().collect::<HashSet<_>>().len() >= 3);
        match p.rule {
            "multi_store_large_purchase" => {
                let key = canonical(&p.key);
                assert!(
                    fired_members.contains_key(&key),
                    "planted {p:?} does not fire"
                );
                expected_members.insert(key);
            }
            _ => {
                assert!(
                    fired_accounts.contains_key(&p.key),
                    "planted {p:?} does not fire"
                );
                expected_accounts.insert(p.key.clone());
            }
        }
    }
    let unexpected: Vec<_> = fired_members
        .keys()
        .filter(|k| !expected_members.contains(*k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "ordinary traffic fires the member rule: {unexpected:?}"
    );
    let unexpected: Vec<_> = fired_accounts
        .keys()
        .filter(|k| !expected_accounts.contains(*k))
        .collect();
    assert!(
        unexpected.is_empty(),
        "ordinary traffic fires the account rule: {unexpected:?}"
    );
}

#[test]
fn planted_fraud_fires_and_ordinary_traffic_does_not() {
    // Default pace: the whole stream is a few minutes of event time, so every
    // member's sales fall in one 30-minute window.
    check_planted_fraud(
        GeneratorConfig {
            fraud: FraudPlan::Count {
                episodes: 6,
                over_events: 60_000,
            },
            jitter: Duration::from_secs(120),
            ..GeneratorConfig::default()
        },
        60_000,
    );
    // An hour of event time per 200 events: days of trading.
    check_planted_fraud(
        GeneratorConfig {
            fraud: FraudPlan::Share(0.0005),
            mean_gap: Duration::from_secs(18),
            seed: 7,
            ..GeneratorConfig::default()
        },
        60_000,
    );
}

#[test]
fn plant_count_plants_exactly_that_many() {
    let mut g = generator(GeneratorConfig {
        fraud: FraudPlan::Count {
            episodes: 5,
            over_events: 10_000,
        },
        ..GeneratorConfig::default()
    });
    for _ in 0..10_000 {
        g.next_event();
    }
    assert_eq!(g.planted_fraud().len(), 5);
    assert!(g.planted_fraud().iter().all(PlantedFraud::complete));
    assert_eq!(
        g.stats().fraud_sales as usize,
        g.planted_fraud()
            .iter()
            .map(|p| p.event_ids.len())
            .sum::<usize>()
    );
}

#[test]
fn config_is_validated() {
    let bad = [
        GeneratorConfig {
            duplicate_share: 1.5,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            duplicate_share: 0.6,
            malformed_share: 0.6,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            skus: 0,
            ..GeneratorConfig::default()
        },
        GeneratorConfig {
            start: 0,
            ..GeneratorConfig::default()
        },
    ];
    for cfg in bad {
        assert!(Generator::new(cfg, stores()).is_err());
    }
}

#[test]
fn small_and_odd_store_masters() {
    let header = "store_id,name,region,city,lat,lon,franchisee\n";
    let master = |rows: &str| {
        Arc::new(StoreMaster::from_csv(&format!("{header}{rows}"), Path::new("t.csv")).unwrap())
    };
    let only_dc = master("KM-DC,昆明配送中心,central,昆明,24.98,102.79,direct\n");
    assert!(Generator::new(GeneratorConfig::default(), only_dc).is_err());

    // One counter store per region, odd ids: no transfers possible, no fraud.
    let odd = master("A B/1,甲,r1,x,25.0,102.0,f\nB-2,乙,r2,y,25.1,102.1,f\n");
    let fraud = GeneratorConfig {
        fraud: FraudPlan::Share(0.01),
        ..GeneratorConfig::default()
    };
    assert!(Generator::new(fraud, odd.clone()).is_err());
    let parser = EventParser::new(odd.clone());
    let cfg = GeneratorConfig {
        skus: 7,
        members: 3,
        ..GeneratorConfig::default()
    };
    let mut g = Generator::new(cfg, odd).unwrap();
    for _ in 0..5_000 {
        let bytes = g.next_event();
        let e = parser
            .parse(&bytes)
            .unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(&bytes)));
        assert!(is_event_id(&e.event_id));
    }
    assert_eq!(g.stats().transfers_out, 0);
}
