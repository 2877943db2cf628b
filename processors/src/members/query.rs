//! Read-only views of the member state: the API's answers, the replay's
//! files and the PIPL export.

use serde::Serialize;
use serde_json::json;
use storepulse_core::time::{china_day, format_china, DAY};
use storepulse_core::{Id, StoreIdx, Ts};
use storepulse_tags::{civil_from_days, TagSet};

use super::ledger::{EntryKind, LedgerEntry};
use super::{phone_hex, MemberProcessor, Person, Slot};

/// `GET /v1/members/{id}` and a line of `members.ndjson`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub member_id: Id,
    pub aliases: Vec<Id>,
    pub points_balance: i64,
    pub tags: Vec<String>,
    pub favorite_store: Option<String>,
    /// Gross spend (sales' `total_cents`) in the 90 days ending with `T`'s day.
    pub spend_90d_cents: u64,
    /// Net of refunds.
    pub net_spend_90d_cents: i64,
    pub orders_90d: u32,
    /// The event-time clock `T` the answer was computed at.
    pub as_of: Option<String>,
}

/// One ledger line of `GET /v1/members/{id}/ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerLine {
    pub at: String,
    pub event_id: Id,
    pub kind: EntryKind,
    /// Signed: earnings positive, take-backs and redemptions negative.
    pub points: i64,
    pub store_id: String,
    /// Balance after this line, in event-time order.
    pub balance_after: i64,
}

/// One FIFO lot: points earned in (or owed to) a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LotView {
    pub store_id: Option<String>,
    pub franchisee: Option<String>,
    pub points: i64,
    pub since: String,
}

/// `GET /v1/members/{id}/ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerView {
    pub member_id: Id,
    pub points_balance: i64,
    pub earned: i64,
    pub taken_back: i64,
    pub redeemed: i64,
    /// Points still to spend (or owed), oldest first, before `recent`.
    pub lots: Vec<LotView>,
    /// Entries of the last `ledger_exact_days`, in event-time order.
    pub recent: Vec<LedgerLine>,
    pub as_of: Option<String>,
}

/// One row of the settlement report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettlementRow {
    /// The franchisee that owes (where the points were earned).
    pub from_franchisee: String,
    /// The franchisee owed (where they were spent).
    pub to_franchisee: String,
    pub points: i64,
    /// 0.01 CNY per point.
    pub amount_cents: i64,
}

/// `GET /v1/reports/settlement?date=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettlementReport {
    pub date: String,
    /// Whether late events can no longer change it (the clock is past the
    /// day by more than `ledger_exact_days`).
    #[serde(rename = "final")]
    pub is_final: bool,
    pub rows: Vec<SettlementRow>,
    pub as_of: Option<String>,
}

/// Regulars of a store with one tag, and what to do about them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagSuggestion {
    pub tag: String,
    pub members: u32,
    pub action: Option<String>,
}

/// `GET /v1/stores/{id}/marketing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarketingView {
    pub store_id: String,
    /// Members whose favorite store this is.
    pub regulars: u32,
    pub by_tag: Vec<TagSuggestion>,
    pub as_of: Option<String>,
}

/// A page of members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberPage {
    pub members: Vec<MemberView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<u64>,
}

/// `YYYY-MM-DD` of a China day.
pub fn day_text(day: i32) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The China day of `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Option<i32> {
    let ts = storepulse_core::time::parse_rfc3339(&format!("{text}T00:00:00+08:00"))?;
    (text.len() == 10).then(|| china_day(ts))
}

impl MemberProcessor {
    pub(super) fn slot_by_id(&self, id: &str) -> Option<Slot> {
        self.state.ids.get(id).copied()
    }

    /// The person an id (canonical or alias) belongs to.
    pub fn person_by_id(&self, id: &str) -> Option<&Person> {
        self.slot_by_id(id).and_then(|s| self.person(s))
    }

    /// The canonical id of any id.
    pub fn canonical_of(&self, id: &str) -> Option<&Id> {
        self.person_by_id(id).map(Person::canonical)
    }

    fn tag_names(&self, tags: TagSet) -> Vec<String> {
        tags.bits().map(|b| self.tag_name(b).to_string()).collect()
    }

    fn view(&self, p: &Person) -> MemberView {
        let w = p.history.window(self.today(), 90);
        MemberView {
            member_id: p.canonical().clone(),
            aliases: p.ids.iter().skip(1).map(|m| m.id.clone()).collect(),
            points_balance: p.ledger.balance(),
            tags: self.tag_names(p.tags),
            favorite_store: p.favorite.map(|s| self.stores.id(s).to_string()),
            spend_90d_cents: w.spend_cents,
            net_spend_90d_cents: w.net_spend_cents(),
            orders_90d: w.sales,
            as_of: self.clock_text(),
        }
    }

    /// The member of any of its ids.
    pub fn member(&self, id: &str) -> Option<MemberView> {
        self.person_by_id(id).map(|p| self.view(p))
    }

    /// Every member, in slot order (for `members.ndjson`).
    pub fn all_members(&self) -> impl Iterator<Item = MemberView> + '_ {
        self.state.persons.iter().flatten().map(|p| self.view(p))
    }

    /// The ledger of any of a member's ids.
    pub fn ledger(&self, id: &str) -> Option<LedgerView> {
        let p = self.person_by_id(id)?;
        let l = &p.ledger;
        let mut balance: i64 = l.lots.iter().map(|x| x.points).sum();
        let recent = l
            .pending
            .iter()
            .map(|e: &LedgerEntry| {
                let signed = match e.kind {
                    EntryKind::Earn => e.points,
                    EntryKind::TakeBack | EntryKind::Redeem => -e.points,
                };
                balance += signed;
                LedgerLine {
                    at: format_china(e.at),
                    event_id: e.event_id.clone(),
                    kind: e.kind,
                    points: signed,
                    store_id: self.stores.id(e.store).to_string(),
                    balance_after: balance,
                }
            })
            .collect();
        let lots = l
            .lots
            .iter()
            .map(|lot| LotView {
                store_id: lot.store.map(|s| self.stores.id(s).to_string()),
                franchisee: lot.store.map(|s| self.stores.get(s).franchisee.clone()),
                points: lot.points,
                since: format_china(lot.since),
            })
            .collect();
        Some(LedgerView {
            member_id: p.canonical().clone(),
            points_balance: l.balance(),
            earned: l.earned,
            taken_back: l.taken_back,
            redeemed: l.redeemed,
            lots,
            recent,
            as_of: self.clock_text(),
        })
    }

    /// Members with a tag (by name) and/or a favorite store, a page at a
    /// time. `cursor` is the slot to start at.
    pub fn list(
        &self,
        tag: Option<&str>,
        store: Option<StoreIdx>,
        cursor: u64,
        limit: usize,
    ) -> Result<MemberPage, String> {
        let bit = match tag {
            Some(name) => Some(
                self.custom
                    .bit_of(name)
                    .ok_or_else(|| format!("unknown tag \"{name}\""))?,
            ),
            None => None,
        };
        let mut members = Vec::new();
        let start = usize::try_from(cursor).unwrap_or(usize::MAX);
        for (slot, p) in self.state.persons.iter().enumerate().skip(start) {
            let Some(p) = p else { continue };
            if bit.is_some_and(|b| !p.tags.has_bit(b))
                || store.is_some_and(|s| p.favorite != Some(s))
            {
                continue;
            }
            if members.len() == limit {
                return Ok(MemberPage {
                    members,
                    next_cursor: Some(slot as u64),
                });
            }
            members.push(self.view(p));
        }
        Ok(MemberPage {
            members,
            next_cursor: None,
        })
    }

    /// A store's regulars by tag, with the suggested action per tag.
    pub fn marketing(&self, store: StoreIdx) -> MarketingView {
        let reg = self.state.regulars.get(usize::from(store.0));
        let mut by_tag = Vec::new();
        let bits = storepulse_tags::Tag::ALL.iter().map(|t| *t as u32).chain(
            (0..self.custom.names().count() as u32).map(|i| storepulse_tags::CUSTOM_TAG_BASE + i),
        );
        for bit in bits {
            let name = self.tag_name(bit).to_string();
            let members = reg
                .and_then(|r| r.by_tag.get(bit as usize).copied())
                .unwrap_or(0);
            by_tag.push(TagSuggestion {
                action: self.config.action(&name),
                tag: name,
                members,
            });
        }
        MarketingView {
            store_id: self.stores.id(store).to_string(),
            regulars: reg.map_or(0, |r| r.members),
            by_tag,
            as_of: self.clock_text(),
        }
    }

    /// The settlement report of a China day.
    pub fn settlement(&self, day: i32) -> SettlementReport {
        let rows = self
            .state
            .settlement
            .day(day)
            .map(|(a, b, points)| SettlementRow {
                from_franchisee: self.franchisee_name(a).to_string(),
                to_franchisee: self.franchisee_name(b).to_string(),
                points,
                amount_cents: points,
            })
            .collect();
        let exact = i64::from(self.config.ledger_exact_days) * DAY;
        let day_end: Ts = i64::from(day + 1) * DAY - 8 * storepulse_core::time::HOUR;
        SettlementReport {
            date: day_text(day),
            is_final: self.state.clock != Ts::MIN && self.state.clock >= day_end + exact,
            rows,
            as_of: self.clock_text(),
        }
    }

    /// Every day with settlement, oldest first (for `settlement.csv`).
    pub fn settlement_days(&self) -> Vec<i32> {
        let mut days: Vec<i32> = self.state.settlement.owed.keys().map(|k| k.0).collect();
        days.dedup();
        days
    }

    /// Every datum held on a member (PIPL export), or `None`.
    pub fn export(&self, id: &str) -> Option<serde_json::Value> {
        let p = self.person_by_id(id)?;
        let ids: Vec<_> = p
            .ids
            .iter()
            .map(|m| {
                json!({
                    "member_id": m.id,
                    "registered_at": m.registered_at.map(format_china),
                })
            })
            .collect();
        let days: Vec<_> = p
            .history
            .wide()
            .map(|d| {
                json!({
                    "date": day_text(d.day),
                    "store_id": self.stores.id(d.store),
                    "sales": d.sales,
                    "online_sales": d.online_sales,
                    "lines": d.lines,
                    "promo_lines": d.promo_lines,
                    "spend_cents": d.spend_cents,
                })
            })
            .collect();
        let refunds: Vec<_> = p
            .history
            .refunds
            .iter()
            .map(|r| json!({"date": day_text(r.day), "refund_cents": r.refund_cents()}))
            .collect();
        Some(json!({
            "member": self.view(p),
            "ids": ids,
            "phone_hash": p.phone.as_ref().map(phone_hex),
            "total_sales": p.history.total_sales,
            "last_sale_date": (p.history.last_sale_day != i32::MIN).then(|| day_text(p.history.last_sale_day)),
            "daily_activity": days,
            "refunds": refunds,
            "ledger": self.ledger(id),
            "held_since_note": "StorePulse keeps daily aggregates for the longest tag window (at least 365 days) and the exact points entries of the last ledger_exact_days; raw events are kept by the event log until its retention",
        }))
    }
}
