//! Deterministic mart rows for tests and the benchmark, the answers the
//! dashboard's queries must give on them (computed in Rust, independent of
//! any SQL), and the sink loop's de-duplication step in its simplest form.
//!
//! Not used by the pipeline; public so that integration tests, the
//! benchmark example and the end-to-end tests share one generator.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use storepulse_mart::query::{
    DayCount, MartFilter, MartReader, SalesGroup, SalesPoint, SalesTotals, SkuTotal, TagCount,
};
use storepulse_mart::rows::{
    MartBatch, MemberRegistrationRow, ReturnLineRow, SaleLineRow, SourcePos, StockChangeRow,
    StockLevelRow, Table, TagChangeRow,
};
use storepulse_mart::write::StoredPositions;
use storepulse_mart::MartError;

use super::query::date_of;

/// Regions of the generated stores.
pub const REGIONS: [&str; 4] = ["central", "east", "north", "south"];
/// Channels of the generated sales.
pub const CHANNELS: [&str; 3] = ["pos", "online", "mini_program"];
/// Tags of the generated members.
pub const TAGS: [&str; 4] = ["high_value", "new_member", "store_loyal", "seasonal_buyer"];
/// First day of generated data: 2026-11-01 as a ClickHouse `Date`.
pub const FIRST_DAY: u16 = 20_393;

/// Makes rows of synthetic events: sales of 1-5 lines, some returns,
/// registrations and tag changes, over `days` days, on one source
/// partition with consecutive offsets.
#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
    partition: u32,
    next_offset: u64,
    stores: u32,
    skus: u32,
    days: u16,
    members: u32,
    tags_on: BTreeSet<(u32, usize)>,
    events_per_day: Option<u64>,
}

impl Generator {
    /// A generator for `partition` with `stores` stores, `skus` SKUs over
    /// `days` days, seeded.
    pub fn new(seed: u64, partition: u32, stores: u32, skus: u32, days: u16) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed ^ u64::from(partition)),
            partition,
            next_offset: 0,
            stores: stores.max(1),
            skus: skus.max(1),
            days: days.max(1),
            members: 0,
            tags_on: BTreeSet::new(),
            events_per_day: None,
        }
    }

    /// Events in time order, `events_per_day` a day (cycling over the
    /// days), as a live stream arrives; by default each event falls on a
    /// random day and hour (late and out-of-order arrivals).
    pub fn in_time_order(mut self, events_per_day: u64) -> Self {
        self.events_per_day = Some(events_per_day.max(1));
        self
    }

    /// The store id of store `i`.
    pub fn store_id(i: u32) -> String {
        format!("ST-{i:04}")
    }

    /// The region of store `i`.
    pub fn region(i: u32) -> &'static str {
        REGIONS[(i as usize) % REGIONS.len()]
    }

    /// Rows of the next `events` events (about 3 sale lines each).
    pub fn batch(&mut self, events: usize) -> MartBatch {
        let mut b = MartBatch::default();
        for _ in 0..events {
            let offset = self.next_offset;
            self.next_offset += 1;
            let p = self.partition;
            let store = self.rng.gen_range(0..self.stores);
            let store_id = Self::store_id(store);
            let region = Self::region(store).to_owned();
            let (day, hour) = match self.events_per_day {
                Some(epd) => {
                    let d = u16::try_from((offset / epd) % u64::from(self.days)).unwrap_or(0);
                    // (offset % epd) * 24 / epd < 24.
                    let h = ((offset % epd) * 24 / epd) as u8;
                    (FIRST_DAY + d, h)
                }
                None => (
                    FIRST_DAY + self.rng.gen_range(0..self.days),
                    self.rng.gen_range(0..24),
                ),
            };
            let occurred_ms = i64::from(day) * 86_400_000 + i64::from(hour) * 3_600_000
                - 8 * 3_600_000
                + i64::try_from(offset % 3_600_000).unwrap_or(0);
            let event_id = format!("e-{p}-{offset}");
            let kind = self.rng.gen_range(0..100);
            if kind < 85 {
                let lines = self.rng.gen_range(1..=5u32);
                let channel = CHANNELS[self.rng.gen_range(0..CHANNELS.len())].to_owned();
                let member_id = if self.members > 0 && self.rng.gen_bool(0.4) {
                    format!("m-{p}-{}", self.rng.gen_range(0..self.members))
                } else {
                    String::new()
                };
                for line_no in 0..lines {
                    let sku = format!("SKU-{:05}", self.rng.gen_range(0..self.skus));
                    let qty = self.rng.gen_range(1..=4i64);
                    let price = self.rng.gen_range(100..20_000i64);
                    b.sale_lines.push(SaleLineRow {
                        event_id: event_id.clone(),
                        line_no,
                        order_id: format!("o-{p}-{offset}"),
                        store_id: store_id.clone(),
                        region: region.clone(),
                        channel: channel.clone(),
                        fulfillment: "in_store".into(),
                        payment_method: "wechat_pay".into(),
                        member_id: member_id.clone(),
                        sku: sku.clone(),
                        qty,
                        unit_price_cents: price,
                        net_cents: qty * price - i64::from(line_no),
                        promo: u8::from(line_no == 1),
                        occurred_ms,
                        day,
                        hour,
                        src_partition: p,
                        src_offset: offset,
                        src_index: line_no,
                    });
                    b.stock_changes.push(StockChangeRow {
                        event_id: event_id.clone(),
                        line_no,
                        kind: "sale".into(),
                        store_id: store_id.clone(),
                        region: region.clone(),
                        sku: sku.clone(),
                        delta: -qty,
                        counted: -1,
                        occurred_ms,
                        day,
                        hour,
                        src_partition: p,
                        src_offset: offset,
                        src_index: line_no,
                    });
                    b.stock_levels.push(StockLevelRow {
                        store_id: store_id.clone(),
                        region: region.clone(),
                        sku,
                        on_hand: 100 - qty,
                        event_id: event_id.clone(),
                        occurred_ms,
                        day,
                        src_partition: p,
                        src_offset: offset,
                        src_index: line_no,
                    });
                }
            } else if kind < 90 {
                let lines = self.rng.gen_range(1..=2u32);
                for line_no in 0..lines {
                    b.return_lines.push(ReturnLineRow {
                        event_id: event_id.clone(),
                        line_no,
                        order_id: format!("o-{p}-{}", offset / 2),
                        store_id: store_id.clone(),
                        region: region.clone(),
                        channel: "pos".into(),
                        member_id: String::new(),
                        sku: format!("SKU-{:05}", self.rng.gen_range(0..self.skus)),
                        qty: 1,
                        refund_cents: self.rng.gen_range(100..5_000),
                        restock: 1,
                        occurred_ms,
                        day,
                        hour,
                        src_partition: p,
                        src_offset: offset,
                        src_index: line_no,
                    });
                }
            } else if kind < 96 {
                // A new member, now and then a second id of a known person.
                let m = self.members;
                self.members += 1;
                let canonical = if m > 0 && self.rng.gen_bool(0.2) {
                    format!("m-{p}-{}", self.rng.gen_range(0..m))
                } else {
                    format!("m-{p}-{m}")
                };
                b.member_registrations.push(MemberRegistrationRow {
                    member_id: format!("m-{p}-{m}"),
                    person_key: format!("phone-of-{canonical}"),
                    canonical_id: canonical,
                    event_id: event_id.clone(),
                    store_id: store_id.clone(),
                    region: region.clone(),
                    channel: "pos".into(),
                    occurred_ms,
                    day,
                    src_partition: p,
                    src_offset: offset,
                    src_index: 0,
                });
            } else if self.members > 0 {
                // A tag flips for a member: add if off, remove if on.
                let m = self.rng.gen_range(0..self.members);
                let t = self.rng.gen_range(0..TAGS.len());
                let change = if self.tags_on.remove(&(m, t)) {
                    -1
                } else {
                    self.tags_on.insert((m, t));
                    1
                };
                b.tag_changes.push(TagChangeRow {
                    member_id: format!("m-{p}-{m}"),
                    tag: TAGS[t].into(),
                    change,
                    event_id: event_id.clone(),
                    store_id: Self::store_id(m % self.stores),
                    region: Self::region(m % self.stores).into(),
                    as_of_ms: occurred_ms,
                    day,
                    src_partition: p,
                    src_offset: offset,
                    src_index: 0,
                });
            }
        }
        b
    }
}

fn pos_of(p: u32, offset: u64, index: u32) -> SourcePos {
    SourcePos {
        partition: p,
        offset,
        index,
    }
}

/// The sink loop's de-duplication: keeps the rows above the stored
/// position of their (table, source partition).
pub fn drop_stored(batch: &MartBatch, stored: &StoredPositions) -> MartBatch {
    fn keep<T: Clone>(
        rows: &[T],
        table: Table,
        stored: &StoredPositions,
        pos: impl Fn(&T) -> SourcePos,
    ) -> Vec<T> {
        rows.iter()
            .filter(|r| {
                let p = pos(r);
                stored.get(&(table, p.partition)).is_none_or(|s| p > *s)
            })
            .cloned()
            .collect()
    }
    MartBatch {
        sale_lines: keep(&batch.sale_lines, Table::SaleLines, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        return_lines: keep(&batch.return_lines, Table::ReturnLines, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        stock_changes: keep(&batch.stock_changes, Table::StockChanges, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        stock_levels: keep(&batch.stock_levels, Table::StockLevels, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        points_ledger: keep(&batch.points_ledger, Table::PointsLedger, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        member_registrations: keep(
            &batch.member_registrations,
            Table::MemberRegistrations,
            stored,
            |r| pos_of(r.src_partition, r.src_offset, r.src_index),
        ),
        tag_changes: keep(&batch.tag_changes, Table::TagChanges, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        alerts: keep(&batch.alerts, Table::Alerts, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        alert_decisions: keep(&batch.alert_decisions, Table::AlertDecisions, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        rejected_events: keep(&batch.rejected_events, Table::RejectedEvents, stored, |r| {
            pos_of(r.src_partition, r.src_offset, r.src_index)
        }),
        erasures: batch.erasures.clone(),
    }
}

/// Every dashboard answer for one filter: what two stores (or a store and
/// the reference) must agree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    pub sales_by_store: Vec<SalesPoint>,
    pub sales_by_region: Vec<SalesPoint>,
    pub sales_by_channel: Vec<SalesPoint>,
    pub top_skus: Vec<SkuTotal>,
    pub members_by_tag: Vec<TagCount>,
    pub new_members: Vec<DayCount>,
    pub totals: SalesTotals,
}

/// Asks `reader` every dashboard query.
///
/// # Errors
/// The reader's first error.
pub async fn answers(
    reader: &dyn MartReader,
    filter: &MartFilter,
    top: usize,
) -> Result<Answers, MartError> {
    Ok(Answers {
        sales_by_store: reader.sales_by_hour(filter, SalesGroup::Store).await?,
        sales_by_region: reader.sales_by_hour(filter, SalesGroup::Region).await?,
        sales_by_channel: reader.sales_by_hour(filter, SalesGroup::Channel).await?,
        top_skus: reader.top_skus(filter, top).await?,
        members_by_tag: reader.members_by_tag(filter).await?,
        new_members: reader.new_members(filter).await?,
        totals: reader.totals(filter).await?,
    })
}

/// The answers computed from rows in Rust (no SQL): the reference.
pub fn reference(rows: &MartBatch, filter: &MartFilter, top: usize) -> Answers {
    let in_range = |day: u16| {
        let d = date_of(day);
        d >= filter.from && d <= filter.to
    };
    let in_scope = |store: &str| {
        filter
            .stores
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == store))
    };
    let sales: Vec<&SaleLineRow> = rows
        .sale_lines
        .iter()
        .filter(|r| in_range(r.day) && in_scope(&r.store_id))
        .collect();
    let by = |key: &dyn Fn(&SaleLineRow) -> String| {
        let mut m: BTreeMap<(NaiveDate, u8, String), (i64, i64, u64)> = BTreeMap::new();
        for r in &sales {
            let e = m.entry((date_of(r.day), r.hour, key(r))).or_default();
            e.0 += r.net_cents;
            e.1 += r.qty;
            e.2 += 1;
        }
        m.into_iter()
            .map(|((day, hour, key), (net_cents, units, lines))| SalesPoint {
                day,
                hour,
                key,
                net_cents,
                units,
                lines,
            })
            .collect::<Vec<_>>()
    };
    let mut skus: HashMap<&str, (i64, i64)> = HashMap::new();
    for r in &sales {
        let e = skus.entry(&r.sku).or_default();
        e.0 += r.qty;
        e.1 += r.net_cents;
    }
    let mut top_skus: Vec<SkuTotal> = skus
        .into_iter()
        .map(|(sku, (units, net_cents))| SkuTotal {
            sku: sku.to_owned(),
            units,
            net_cents,
        })
        .collect();
    top_skus.sort_by(|a, b| b.units.cmp(&a.units).then_with(|| a.sku.cmp(&b.sku)));
    top_skus.truncate(top);
    let mut on: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for r in rows.tag_changes.iter().filter(|r| in_scope(&r.store_id)) {
        *on.entry((&r.member_id, &r.tag)).or_default() += i64::from(r.change);
    }
    let mut tags: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, tag), n) in on {
        if n > 0 {
            *tags.entry(tag).or_default() += 1;
        }
    }
    let members_by_tag = tags
        .into_iter()
        .map(|(tag, members)| TagCount {
            tag: tag.to_owned(),
            members,
        })
        .collect();
    let mut first: HashMap<&str, u16> = HashMap::new();
    for r in rows
        .member_registrations
        .iter()
        .filter(|r| in_scope(&r.store_id))
    {
        let e = first.entry(&r.person_key).or_insert(u16::MAX);
        *e = (*e).min(r.day);
    }
    let mut days: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    for day in first.into_values().filter(|d| in_range(*d)) {
        *days.entry(date_of(day)).or_default() += 1;
    }
    let new_members = days
        .into_iter()
        .map(|(day, members)| DayCount { day, members })
        .collect();
    let orders: BTreeSet<&str> = sales.iter().map(|r| r.event_id.as_str()).collect();
    let totals = SalesTotals {
        net_cents: sales.iter().map(|r| r.net_cents).sum(),
        units: sales.iter().map(|r| r.qty).sum(),
        lines: sales.len() as u64,
        orders: orders.len() as u64,
        refund_cents: rows
            .return_lines
            .iter()
            .filter(|r| in_range(r.day) && in_scope(&r.store_id))
            .map(|r| r.refund_cents)
            .sum(),
    };
    Answers {
        sales_by_store: by(&|r| r.store_id.clone()),
        sales_by_region: by(&|r| r.region.clone()),
        sales_by_channel: by(&|r| r.channel.clone()),
        top_skus,
        members_by_tag,
        new_members,
        totals,
    }
}
