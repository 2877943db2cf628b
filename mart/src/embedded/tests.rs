#![allow(clippy::unwrap_used, clippy::field_reassign_with_default)]

use std::sync::Arc;

use chrono::NaiveDate;
use storepulse_core::StoreMaster;

use super::*;
use crate::query::{DayCount, MartFilter, MartReader, SalesGroup, SalesPoint, SkuTotal, TagCount};
use crate::rows::{MemberRegistrationRow, ReturnLineRow, TagChangeRow};
use crate::testutil::sale;

fn stores() -> Arc<StoreMaster> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
    Arc::new(StoreMaster::load(&path).unwrap())
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn days(d: NaiveDate) -> u16 {
    u16::try_from((d - day("1970-01-01")).num_days()).unwrap()
}

fn tag(offset: u64, member: &str, name: &str, change: i8, store: &str) -> TagChangeRow {
    TagChangeRow {
        member_id: member.into(),
        tag: name.into(),
        change,
        event_id: String::new(),
        store_id: store.into(),
        region: String::new(),
        as_of_ms: 0,
        day: 0,
        src_partition: 0,
        src_offset: offset,
        src_index: 0,
    }
}

fn registration(
    offset: u64,
    id: &str,
    canonical: &str,
    store: &str,
    d: u16,
) -> MemberRegistrationRow {
    MemberRegistrationRow {
        member_id: id.into(),
        canonical_id: canonical.into(),
        // One phone per person in these rows.
        person_key: format!("phone-of-{canonical}"),
        event_id: format!("r{offset}"),
        store_id: store.into(),
        region: "central".into(),
        channel: "app".into(),
        occurred_ms: 0,
        day: d,
        src_partition: 0,
        src_offset: offset,
        src_index: 0,
    }
}

/// A small mart with answers worked out by hand.
fn sample() -> MartBatch {
    let d1 = days(day("2026-12-01"));
    let d2 = days(day("2026-12-02"));
    let mut b = MartBatch::default();
    b.sale_lines = vec![
        sale(1, 0, "KM-001", "central", "A", "m1", 2, 1000, d1, 9),
        sale(1, 1, "KM-001", "central", "B", "m1", 1, 500, d1, 9),
        sale(2, 0, "KM-002", "central", "A", "", 3, 1500, d1, 10),
        sale(3, 0, "KM-001", "central", "C", "m2", 5, 250, d2, 9),
        sale(4, 0, "KM-002", "central", "B", "m2", 1, 100, d2, 23),
    ];
    b.return_lines = vec![ReturnLineRow {
        event_id: "ret".into(),
        line_no: 0,
        order_id: "o1".into(),
        store_id: "KM-001".into(),
        region: "central".into(),
        channel: "pos".into(),
        member_id: "m1".into(),
        sku: "A".into(),
        qty: 1,
        refund_cents: 400,
        restock: 1,
        occurred_ms: 0,
        day: d2,
        hour: 12,
        src_partition: 0,
        src_offset: 5,
        src_index: 0,
    }];
    b.tag_changes = vec![
        tag(1, "m1", "high_value", 1, "KM-001"),
        tag(2, "m2", "high_value", 1, "KM-002"),
        tag(3, "m2", "high_value", -1, "KM-002"),
        tag(4, "m2", "new_member", 1, "KM-002"),
        tag(5, "m1", "new_member", 1, "KM-001"),
    ];
    b.member_registrations = vec![
        registration(1, "m1", "m1", "KM-001", d1),
        registration(2, "m2", "m2", "KM-002", d1),
        registration(3, "m3", "m1", "KM-002", d2), // a second id of m1's person
        registration(4, "m4", "m4", "KM-002", d2),
        // m5 is another id of m2's person whose row has its own canonical
        // id, as a live mart holds when rows were derived before a late
        // alias changed the canonical id: counted once, by person.
        MemberRegistrationRow {
            member_id: "m5".into(),
            canonical_id: "m5".into(),
            ..registration(6, "m5", "m2", "KM-002", d2)
        },
    ];
    b
}

fn all(from: &str, to: &str) -> MartFilter {
    MartFilter {
        from: day(from),
        to: day(to),
        stores: None,
    }
}

#[tokio::test]
async fn queries_answer_what_was_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let mart = ParquetMart::open(dir.path()).unwrap().with_inline_merges();
    mart.write(&sample()).await.unwrap();
    let reader = mart.reader().with_stores(stores());
    let f = all("2026-12-01", "2026-12-02");

    let totals = reader.totals(&f).await.unwrap();
    assert_eq!(
        (
            totals.net_cents,
            totals.units,
            totals.lines,
            totals.orders,
            totals.refund_cents
        ),
        (3350, 12, 5, 4, 400)
    );
    let by_store = reader.sales_by_hour(&f, SalesGroup::Store).await.unwrap();
    let point = |d: &str, hour, key: &str, net, units, lines| SalesPoint {
        day: day(d),
        hour,
        key: key.into(),
        net_cents: net,
        units,
        lines,
    };
    assert_eq!(
        by_store,
        vec![
            point("2026-12-01", 9, "KM-001", 1500, 3, 2),
            point("2026-12-01", 10, "KM-002", 1500, 3, 1),
            point("2026-12-02", 9, "KM-001", 250, 5, 1),
            point("2026-12-02", 23, "KM-002", 100, 1, 1),
        ]
    );
    let by_channel = reader.sales_by_hour(&f, SalesGroup::Channel).await.unwrap();
    assert_eq!(by_channel.len(), 4);
    assert!(by_channel.iter().all(|p| p.key == "pos"));

    let top = reader.top_skus(&f, 2).await.unwrap();
    let sku = |s: &str, units, net| SkuTotal {
        sku: s.into(),
        units,
        net_cents: net,
    };
    assert_eq!(top, vec![sku("A", 5, 2500), sku("C", 5, 250)]);

    let one_store = MartFilter {
        stores: Some(vec!["KM-002".into()]),
        ..all("2026-12-01", "2026-12-01")
    };
    let t = reader.totals(&one_store).await.unwrap();
    assert_eq!(
        (t.net_cents, t.units, t.lines, t.refund_cents),
        (1500, 3, 1, 0)
    );

    let tags = reader.members_by_tag(&f).await.unwrap();
    let tc = |t: &str, n| TagCount {
        tag: t.into(),
        members: n,
    };
    assert_eq!(tags, vec![tc("high_value", 1), tc("new_member", 2)]);
    let tags_km2 = reader.members_by_tag(&one_store).await.unwrap();
    assert_eq!(tags_km2, vec![tc("new_member", 1)]);

    let new = reader.new_members(&f).await.unwrap();
    let dc = |d: &str, n| DayCount {
        day: day(d),
        members: n,
    };
    // m1's person registered first on 12-01 (m3 is a later id of it).
    assert_eq!(new, vec![dc("2026-12-01", 2), dc("2026-12-02", 1)]);

    // Scope: an unknown store or a quote is refused, an empty list is nothing.
    let bad = MartFilter {
        stores: Some(vec!["KM-001') OR ('1'='1".into()]),
        ..f.clone()
    };
    assert!(matches!(
        reader.totals(&bad).await,
        Err(MartError::InvalidQuery(_))
    ));
    let none = MartFilter {
        stores: Some(vec![]),
        ..f.clone()
    };
    assert_eq!(reader.totals(&none).await.unwrap().lines, 0);
}

#[tokio::test]
async fn an_empty_mart_answers_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mart = ParquetMart::open(dir.path()).unwrap().with_inline_merges();
    let reader = mart.reader().with_stores(stores());
    let f = all("2026-12-01", "2026-12-02");
    assert_eq!(reader.totals(&f).await.unwrap(), Default::default());
    assert!(reader
        .sales_by_hour(&f, SalesGroup::Region)
        .await
        .unwrap()
        .is_empty());
    assert!(reader.members_by_tag(&f).await.unwrap().is_empty());
    assert!(mart.stored_positions().await.unwrap().is_empty());
}

fn raw_bytes_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                return true;
            }
        }
    }
    false
}

#[tokio::test]
async fn erasure_rewrites_the_files_without_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let mart = ParquetMart::open(dir.path()).unwrap().with_inline_merges();
    let d1 = days(day("2026-12-01"));
    let secret = "member-7f3a9c-secret";
    let mut b = sample();
    b.sale_lines
        .push(sale(9, 0, "KM-003", "central", "Z", secret, 1, 777, d1, 8));
    b.tag_changes
        .push(tag(9, secret, "high_value", 1, "KM-003"));
    b.member_registrations
        .push(registration(9, secret, secret, "KM-003", d1));
    mart.write(&b).await.unwrap();
    let before = mart.stored_positions().await.unwrap();
    assert!(raw_bytes_contain(dir.path(), secret.as_bytes()));

    mart.erase(&Erasure {
        member_ids: vec![secret.into()],
        event_id: "erase-1".into(),
        src_partition: 0,
        src_offset: 10,
    })
    .await
    .unwrap();
    assert!(
        !raw_bytes_contain(dir.path(), secret.as_bytes()),
        "bytes still on disk"
    );
    // The positions stay (the rows were stored; a re-sent copy is dropped).
    assert_eq!(mart.stored_positions().await.unwrap(), before);
    let reader = mart.reader().with_stores(stores());
    // The erased member's sale stays counted, without the member id
    // (EVENTS.md `member_erase`); its registration and tag are deleted.
    let t = reader
        .totals(&all("2026-12-01", "2026-12-02"))
        .await
        .unwrap();
    assert_eq!(t.net_cents, 3350 + 777);
    let blanked = reader
        .top_skus(
            &MartFilter {
                stores: Some(vec!["KM-003".into()]),
                ..all("2026-12-01", "2026-12-02")
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        blanked,
        vec![SkuTotal {
            sku: "Z".into(),
            units: 1,
            net_cents: 777
        }]
    );
    let tags = reader
        .members_by_tag(&all("2026-12-01", "2026-12-02"))
        .await
        .unwrap();
    assert_eq!(tags.iter().map(|t| t.members).sum::<u64>(), 3, "{tags:?}");
    for table in Table::ALL {
        for (_, path) in live_files(&table_dir(dir.path(), table)).unwrap() {
            for rb in read_parquet(&path).unwrap() {
                for col in arrow::member_columns(table) {
                    let c = rb.column_by_name(col).unwrap();
                    let s = c.as_any().downcast_ref::<StringArray>().unwrap();
                    assert!(s.iter().all(|v| v != Some(secret)));
                }
            }
        }
    }
    // A row of the same id after the erasure (a member that started after
    // it) survives the erasure applied again (as after a crash).
    let mut later = MartBatch::default();
    later
        .sale_lines
        .push(sale(20, 0, "KM-003", "central", "Z", secret, 1, 5, d1, 8));
    mart.write(&later).await.unwrap();
    mart.erase(&Erasure {
        member_ids: vec![secret.into()],
        event_id: "erase-1".into(),
        src_partition: 0,
        src_offset: 10,
    })
    .await
    .unwrap();
    let t = reader
        .totals(&all("2026-12-01", "2026-12-02"))
        .await
        .unwrap();
    assert_eq!(t.net_cents, 3350 + 777 + 5);
    let before = mart.stored_positions().await.unwrap();
    // A reopened mart agrees.
    drop(mart);
    let again = ParquetMart::open(dir.path()).unwrap().with_inline_merges();
    assert_eq!(again.stored_positions().await.unwrap(), before);
}

#[tokio::test]
async fn compaction_merges_small_files_and_a_crash_leftover_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mart = ParquetMart::open(dir.path()).unwrap().with_inline_merges();
    let d1 = days(day("2026-12-01"));
    let tdir = table_dir(dir.path(), Table::SaleLines);
    let mut first_file = None;
    for i in 0..(COMPACT_FILES as u64 + 3) {
        let mut b = MartBatch::default();
        b.sale_lines = vec![
            sale(i * 10, 0, "KM-001", "central", "A", "", 1, 100, d1, 9),
            sale(i * 10, 1, "KM-001", "central", "B", "", 2, 200, d1, 9),
        ];
        mart.write(&b).await.unwrap();
        if i == 0 {
            let (_, p) = live_files(&tdir).unwrap().remove(0);
            first_file = Some((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    let files = live_files(&tdir).unwrap();
    assert_eq!(files.len(), 4, "{files:?}");
    let reader = mart.reader().with_stores(stores());
    let f = all("2026-12-01", "2026-12-01");
    let t = reader.totals(&f).await.unwrap();
    assert_eq!((t.lines, t.net_cents), (38, 19 * 300));
    let top = mart.stored_positions().await.unwrap();

    // A merge that crashed after its rename but before deleting its inputs.
    let (path, bytes) = first_file.unwrap();
    std::fs::write(&path, bytes).unwrap();
    std::fs::write(tdir.join(".leftover.parquet.tmp"), b"junk").unwrap();
    // Readers skip the covered file even before the writer cleans up.
    assert_eq!(reader.totals(&f).await.unwrap().lines, 38);
    drop(mart);
    let mart = ParquetMart::open(dir.path()).unwrap().with_inline_merges();
    assert!(!path.exists());
    assert!(!tdir.join(".leftover.parquet.tmp").exists());
    assert_eq!(mart.stored_positions().await.unwrap(), top);
    assert_eq!(reader.totals(&f).await.unwrap().lines, 38);
    // The hourly aggregate: one sidecar per live file, none left of the
    // merged inputs, and the same answer as the lines themselves.
    let sidecars = |root: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join(hourly::DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let live: Vec<String> = live_files(&tdir)
        .unwrap()
        .into_iter()
        .map(|(r, _)| r.file_name())
        .collect();
    assert_eq!(sidecars(dir.path()), live);
    let by_hour = reader.sales_by_hour(&f, SalesGroup::Store).await.unwrap();
    assert_eq!(by_hour.len(), 1);
    assert_eq!(
        (by_hour[0].lines, by_hour[0].net_cents, by_hour[0].units),
        (38, 19 * 300, 57)
    );
    assert_eq!(reader.totals(&f).await.unwrap().orders, 19);

    // A crash between a sidecar's rename and its file's (an orphan
    // sidecar), and a file whose sidecar is missing (written before
    // sidecars existed): the open removes the one and builds the other.
    let orphan = hourly::sidecar_path(
        dir.path(),
        &FileRange {
            from: SourcePos {
                partition: 0,
                offset: 9_000,
                index: 0,
            },
            to: SourcePos {
                partition: 0,
                offset: 9_001,
                index: 0,
            },
        },
    );
    std::fs::copy(dir.path().join(hourly::DIR).join(&live[0]), &orphan).unwrap();
    std::fs::remove_file(dir.path().join(hourly::DIR).join(&live[1])).unwrap();
    drop(mart);
    let _mart = ParquetMart::open(dir.path()).unwrap().with_inline_merges();
    assert_eq!(sidecars(dir.path()), live);
    let t = reader.totals(&f).await.unwrap();
    assert_eq!((t.lines, t.net_cents, t.orders), (38, 19 * 300, 19));
}

#[test]
fn file_names_round_trip_and_cover() {
    let r = FileRange {
        from: SourcePos {
            partition: 7,
            offset: 10,
            index: 2,
        },
        to: SourcePos {
            partition: 7,
            offset: 99,
            index: 0,
        },
    };
    assert_eq!(FileRange::parse(&r.file_name()), Some(r));
    let inner = FileRange {
        from: SourcePos {
            offset: 11,
            ..r.from
        },
        ..r
    };
    assert!(r.covers(&inner));
    assert!(!inner.covers(&r));
    assert!(!r.covers(&r));
    assert_eq!(FileRange::parse(".x.parquet.tmp"), None);
}

/// Merges on their own thread: every answer is exact while they run, an
/// erasure waits for a merge in flight (it must not rewrite a file being
/// merged), and the files end up merged.
#[tokio::test(flavor = "multi_thread")]
async fn background_merges_keep_answers_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mart = ParquetMart::open(dir.path()).unwrap();
    let d1 = days(day("2026-12-01"));
    let reader = mart.reader().with_stores(stores());
    let f = all("2026-12-01", "2026-12-01");
    let secret = "member-merged-away";
    for i in 0..(3 * COMPACT_FILES as u64) {
        let mut b = MartBatch::default();
        b.sale_lines = vec![
            sale(i * 10, 0, "KM-001", "central", "A", secret, 1, 100, d1, 9),
            sale(i * 10, 1, "KM-001", "central", "B", "", 2, 200, d1, 9),
        ];
        mart.write(&b).await.unwrap();
        let t = reader.totals(&f).await.unwrap();
        assert_eq!((t.lines, t.orders), (2 * (i + 1), i + 1));
    }
    mart.erase(&Erasure {
        member_ids: vec![secret.into()],
        event_id: "erase".into(),
        src_partition: 0,
        src_offset: 10_000,
    })
    .await
    .unwrap();
    mart.wait_merges();
    let n = 3 * COMPACT_FILES as u64;
    let t = reader.totals(&f).await.unwrap();
    assert_eq!((t.lines, t.net_cents, t.orders), (2 * n, 300 * n as i64, n));
    let tdir = table_dir(dir.path(), Table::SaleLines);
    let files = live_files(&tdir).unwrap();
    assert!(
        files.len() < COMPACT_FILES,
        "not merged: {} files",
        files.len()
    );
    assert!(!raw_bytes_contain(dir.path(), secret.as_bytes()));
}
