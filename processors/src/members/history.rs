//! A member's activity as compact daily aggregates.
//!
//! One [`DayAgg`] (24 bytes) per (China day, store) with a sale, and one
//! [`DayRefund`] (16 bytes) per day with a refund, kept for
//! `retention_days` (the longest window any rule reads, at least a year).
//! Everything a tag, a feature or `favorite_store` reads is a sum over
//! these, so merging two members (a late alias link) is adding their
//! aggregates: the result does not depend on the order the events came in.
//!
//! Per-day counters saturate (65,535 sales or lines of one member in one
//! store in one day), far beyond any real member.

use serde::{Deserialize, Serialize};
use storepulse_core::StoreIdx;
use storepulse_tags::{civil_from_days, quarter_of_day, WindowStats};

/// A member's sales in one store on one China day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayAgg {
    /// China day (days since 1970-01-01).
    pub day: i32,
    pub store: StoreIdx,
    pub sales: u16,
    pub online_sales: u16,
    pub lines: u16,
    pub promo_lines: u16,
    /// Sum of the sales' `total_cents`.
    pub spend_cents: u64,
}

const _: () = assert!(std::mem::size_of::<DayAgg>() == 24);

/// A member's refunds on one China day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayRefund {
    pub day: i32,
    pub refund_cents: u64,
}

/// One sale, as the history records it.
#[derive(Debug, Clone, Copy)]
pub struct SaleFacts {
    pub day: i32,
    pub store: StoreIdx,
    pub online: bool,
    pub lines: u32,
    pub promo_lines: u32,
    pub total_cents: u64,
}

/// The aggregates of one member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Sorted by (day, store).
    pub days: Vec<DayAgg>,
    /// Sorted by day.
    pub refunds: Vec<DayRefund>,
    /// Sales ever (also those older than the retention).
    pub total_sales: u32,
    /// China day of the latest sale, or `i32::MIN`.
    pub last_sale_day: i32,
}

fn sat16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// Makes room for one more element, growing by a quarter (at least 2)
/// instead of doubling: a member's vectors grow one element at a time and
/// live long, so doubling would leave a third of them unused on average
/// (measured with `benches/member_memory.rs`).
pub(crate) fn reserve_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 4 + 2);
    }
}

/// Gives back spare capacity after elements were removed: all of it when
/// the vector is empty, else down to an eighth above the length once more
/// than a quarter (plus 2) is unused. A vector at its steady size is not
/// touched, so this does not reallocate on every call.
pub(crate) fn trim<T>(v: &mut Vec<T>) {
    if v.is_empty() {
        if v.capacity() > 0 {
            *v = Vec::new();
        }
    } else if v.capacity() > v.len() + v.len() / 4 + 2 {
        v.shrink_to(v.len() + v.len() / 8);
    }
}

/// Days since 1970-01-01 of the first day of `month` (1-12) of `year`
/// (H. Hinnant's `days_from_civil`, the inverse of `civil_from_days`).
fn days_from_civil(year: i32, month: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self {
            last_sale_day: i32::MIN,
            ..Self::default()
        }
    }

    /// Records a sale. `oldest_kept` is the first day still retained: an
    /// older sale counts only toward `total_sales` and `last_sale_day`.
    pub fn add_sale(&mut self, sale: SaleFacts, oldest_kept: i32) {
        self.total_sales = self.total_sales.saturating_add(1);
        self.last_sale_day = self.last_sale_day.max(sale.day);
        if sale.day < oldest_kept {
            return;
        }
        let key = (sale.day, sale.store);
        let at = self.days.partition_point(|d| (d.day, d.store) < key);
        match self.days.get_mut(at) {
            Some(d) if (d.day, d.store) == key => {
                d.sales = d.sales.saturating_add(1);
                d.online_sales = d.online_sales.saturating_add(u16::from(sale.online));
                d.lines = d.lines.saturating_add(sat16(sale.lines));
                d.promo_lines = d.promo_lines.saturating_add(sat16(sale.promo_lines));
                d.spend_cents = d.spend_cents.saturating_add(sale.total_cents);
            }
            _ => {
                reserve_one(&mut self.days);
                self.days.insert(
                    at,
                    DayAgg {
                        day: sale.day,
                        store: sale.store,
                        sales: 1,
                        online_sales: u16::from(sale.online),
                        lines: sat16(sale.lines),
                        promo_lines: sat16(sale.promo_lines),
                        spend_cents: sale.total_cents,
                    },
                )
            }
        }
    }

    /// Records a refund (a return of this member).
    pub fn add_refund(&mut self, day: i32, refund_cents: u64, oldest_kept: i32) {
        if day < oldest_kept {
            return;
        }
        let at = self.refunds.partition_point(|r| r.day < day);
        match self.refunds.get_mut(at) {
            Some(r) if r.day == day => r.refund_cents = r.refund_cents.saturating_add(refund_cents),
            _ => {
                reserve_one(&mut self.refunds);
                self.refunds.insert(at, DayRefund { day, refund_cents });
            }
        }
    }

    /// Adds another member's history to this one (an alias link).
    pub fn merge(&mut self, other: History) {
        self.total_sales = self.total_sales.saturating_add(other.total_sales);
        self.last_sale_day = self.last_sale_day.max(other.last_sale_day);
        let mut days = Vec::with_capacity(self.days.len() + other.days.len());
        let (mut a, mut b) = (
            std::mem::take(&mut self.days).into_iter().peekable(),
            other.days.into_iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => {
                    let (kx, ky) = ((x.day, x.store), (y.day, y.store));
                    if kx == ky {
                        let (mut x, y) = (a.next(), b.next());
                        if let (Some(x), Some(y)) = (x.as_mut(), y) {
                            x.sales = x.sales.saturating_add(y.sales);
                            x.online_sales = x.online_sales.saturating_add(y.online_sales);
                            x.lines = x.lines.saturating_add(y.lines);
                            x.promo_lines = x.promo_lines.saturating_add(y.promo_lines);
                            x.spend_cents = x.spend_cents.saturating_add(y.spend_cents);
                        }
                        x
                    } else if kx < ky {
                        a.next()
                    } else {
                        b.next()
                    }
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            days.extend(next);
        }
        self.days = days;
        for r in other.refunds {
            self.add_refund(r.day, r.refund_cents, i32::MIN);
        }
    }

    /// Drops aggregates of days before `oldest_kept`.
    pub fn prune(&mut self, oldest_kept: i32) {
        let cut = self.days.partition_point(|d| d.day < oldest_kept);
        if cut > 0 {
            self.days.drain(..cut);
            trim(&mut self.days);
        }
        let cut = self.refunds.partition_point(|r| r.day < oldest_kept);
        if cut > 0 {
            self.refunds.drain(..cut);
            trim(&mut self.refunds);
        }
    }

    /// Aggregates over the `days` China days ending with `today`.
    pub fn window(&self, today: i32, days: u32) -> WindowStats {
        let first = i64::from(today) - i64::from(days) + 1;
        let mut s = WindowStats::default();
        // Stores with a sale in the window and their spend; a member shops
        // in few stores, so a short vector beats a map.
        const INLINE: usize = 16;
        let mut stores: [(StoreIdx, u64); INLINE] = [(StoreIdx(0), 0); INLINE];
        let mut n_stores = 0usize;
        let mut overflow: Vec<(StoreIdx, u64)> = Vec::new();
        let mut quarters = [0u64; 4];
        let start = self.days.partition_point(|d| i64::from(d.day) < first);
        for d in self.days[start..].iter().take_while(|d| d.day <= today) {
            s.sales += u32::from(d.sales);
            s.online_sales += u32::from(d.online_sales);
            s.lines += u32::from(d.lines);
            s.promo_lines += u32::from(d.promo_lines);
            s.spend_cents = s.spend_cents.saturating_add(d.spend_cents);
            let q = &mut quarters[usize::from(quarter_of_day(d.day))];
            *q = q.saturating_add(d.spend_cents);
            match stores[..n_stores].iter_mut().find(|(st, _)| *st == d.store) {
                Some((_, spend)) => *spend = spend.saturating_add(d.spend_cents),
                None if n_stores < INLINE => {
                    stores[n_stores] = (d.store, d.spend_cents);
                    n_stores += 1;
                }
                None => match overflow.iter_mut().find(|(st, _)| *st == d.store) {
                    Some((_, spend)) => *spend = spend.saturating_add(d.spend_cents),
                    None => overflow.push((d.store, d.spend_cents)),
                },
            }
        }
        let all = stores[..n_stores].iter().chain(overflow.iter());
        s.stores = (n_stores + overflow.len()) as u32;
        s.top_store_spend_cents = all.map(|(_, spend)| *spend).max().unwrap_or(0);
        s.top_quarter_spend_cents = quarters.into_iter().max().unwrap_or(0);
        let rstart = self.refunds.partition_point(|r| i64::from(r.day) < first);
        for r in self.refunds[rstart..].iter().take_while(|r| r.day <= today) {
            s.refund_cents = s.refund_cents.saturating_add(r.refund_cents);
        }
        s
    }

    /// [`History::window`] for several windows at once, and the favorite
    /// store ([`History::favorite_store`]) over `windows[favorite]` if
    /// asked: one pass over the aggregates, newest first. `windows` must be
    /// sorted longest first; `out[k]` receives the stats of `windows[k]`.
    /// All windows end with `today`, so each is a prefix of the walk back
    /// from `today`: running sums are copied out as the walk passes each
    /// window's first day (the sums saturate like `window`'s, and saturating
    /// sums of non-negative values do not depend on the order).
    pub fn windows_desc<'a>(
        &self,
        today: i32,
        windows: &[u32],
        out: &mut [WindowStats],
        favorite: Option<(usize, &dyn Fn(StoreIdx) -> &'a str)>,
    ) -> Option<StoreIdx> {
        debug_assert!(windows.windows(2).all(|w| w[0] >= w[1]));
        let first_of = |days: u32| i64::from(today) - i64::from(days) + 1;
        let n = windows.len().min(out.len());
        const INLINE: usize = 16;
        let mut stores: [(StoreIdx, u64); INLINE] = [(StoreIdx(0), 0); INLINE];
        let mut n_stores = 0usize;
        let mut overflow: Vec<(StoreIdx, u64)> = Vec::new();
        let mut quarters = [0u64; 4];
        // The quarter of the aggregate's day, recomputed only when the walk
        // leaves the quarter (days go down).
        let (mut q, mut q_start) = (0usize, i64::MAX);
        let mut run = WindowStats::default();
        let mut fav = None;
        // Windows still open (the shortest first closes), as an index
        // into `windows` counted from the end.
        let mut open = n;
        let end = self.days.partition_point(|d| d.day <= today);
        let mut snapshot = |k: usize,
                            run: &WindowStats,
                            stores: &[(StoreIdx, u64)],
                            overflow: &[(StoreIdx, u64)],
                            quarters: &[u64; 4],
                            fav: &mut Option<StoreIdx>| {
            let mut s = *run;
            let all = || stores.iter().chain(overflow.iter());
            s.stores = (stores.len() + overflow.len()) as u32;
            s.top_store_spend_cents = all().map(|(_, spend)| *spend).max().unwrap_or(0);
            s.top_quarter_spend_cents = quarters.iter().copied().max().unwrap_or(0);
            out[k] = s;
            if let Some((f, id_of)) = favorite {
                if f == k {
                    *fav = all()
                        .max_by(|(sa, va), (sb, vb)| {
                            va.cmp(vb).then_with(|| id_of(*sb).cmp(id_of(*sa)))
                        })
                        .map(|(s, _)| *s);
                }
            }
        };
        for d in self.days[..end].iter().rev() {
            let day = i64::from(d.day);
            // Close every window that starts after this day.
            while open > 0 && day < first_of(windows[open - 1]) {
                open -= 1;
                snapshot(
                    open,
                    &run,
                    &stores[..n_stores],
                    &overflow,
                    &quarters,
                    &mut fav,
                );
            }
            if open == 0 {
                break;
            }
            run.sales += u32::from(d.sales);
            run.online_sales += u32::from(d.online_sales);
            run.lines += u32::from(d.lines);
            run.promo_lines += u32::from(d.promo_lines);
            run.spend_cents = run.spend_cents.saturating_add(d.spend_cents);
            if day < q_start {
                let (y, m, _) = civil_from_days(d.day);
                let first_month = (m - 1) / 3 * 3 + 1;
                q = ((m - 1) / 3) as usize;
                q_start = days_from_civil(y, first_month);
            }
            quarters[q] = quarters[q].saturating_add(d.spend_cents);
            match stores[..n_stores].iter_mut().find(|(st, _)| *st == d.store) {
                Some((_, spend)) => *spend = spend.saturating_add(d.spend_cents),
                None if n_stores < INLINE => {
                    stores[n_stores] = (d.store, d.spend_cents);
                    n_stores += 1;
                }
                None => match overflow.iter_mut().find(|(st, _)| *st == d.store) {
                    Some((_, spend)) => *spend = spend.saturating_add(d.spend_cents),
                    None => overflow.push((d.store, d.spend_cents)),
                },
            }
        }
        while open > 0 {
            open -= 1;
            snapshot(
                open,
                &run,
                &stores[..n_stores],
                &overflow,
                &quarters,
                &mut fav,
            );
        }
        // Refunds: the same walk, one running sum.
        let mut open = n;
        let mut refund = 0u64;
        let rend = self.refunds.partition_point(|r| r.day <= today);
        for r in self.refunds[..rend].iter().rev() {
            let day = i64::from(r.day);
            while open > 0 && day < first_of(windows[open - 1]) {
                open -= 1;
                out[open].refund_cents = refund;
            }
            if open == 0 {
                break;
            }
            refund = refund.saturating_add(r.refund_cents);
        }
        while open > 0 {
            open -= 1;
            out[open].refund_cents = refund;
        }
        fav
    }

    /// The store with the most spend over the `days` days ending with
    /// `today` among stores with a sale there; ties go to the store whose
    /// id sorts first (`id_of` gives it).
    pub fn favorite_store<'a>(
        &self,
        today: i32,
        days: u32,
        id_of: impl Fn(StoreIdx) -> &'a str,
    ) -> Option<StoreIdx> {
        let first = i64::from(today) - i64::from(days) + 1;
        let mut spend: Vec<(StoreIdx, u64)> = Vec::new();
        let start = self.days.partition_point(|d| i64::from(d.day) < first);
        for d in self.days[start..].iter().take_while(|d| d.day <= today) {
            match spend.iter_mut().find(|(s, _)| *s == d.store) {
                Some((_, v)) => *v = v.saturating_add(d.spend_cents),
                None => spend.push((d.store, d.spend_cents)),
            }
        }
        spend
            .into_iter()
            .max_by(|(sa, va), (sb, vb)| va.cmp(vb).then_with(|| id_of(*sb).cmp(id_of(*sa))))
            .map(|(s, _)| s)
    }

    /// Calls `f` with every day after `today` on which an aggregate leaves
    /// a window of `windows` days (the days on which window sums change
    /// with no new event).
    pub fn boundaries(&self, today: i32, windows: &[u32], mut f: impl FnMut(i32)) {
        let mut each_day = |day: i32| {
            if day > today {
                // Not in any window yet (a merged history newer than the
                // clock): it enters on its own day.
                f(day);
            }
            for &w in windows {
                let leaves = i64::from(day) + i64::from(w);
                if leaves > i64::from(today) {
                    f(i32::try_from(leaves).unwrap_or(i32::MAX));
                }
            }
        };
        let mut last = None;
        for d in &self.days {
            if last != Some(d.day) {
                each_day(d.day);
                last = Some(d.day);
            }
        }
        for r in &self.refunds {
            each_day(r.day);
        }
        if self.last_sale_day != i32::MIN {
            each_day(self.last_sale_day);
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.days.capacity() * std::mem::size_of::<DayAgg>()
            + self.refunds.capacity() * std::mem::size_of::<DayRefund>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(day: i32, store: u16, total: u64) -> SaleFacts {
        SaleFacts {
            day,
            store: StoreIdx(store),
            online: store == 9,
            lines: 2,
            promo_lines: 1,
            total_cents: total,
        }
    }

    #[test]
    fn windows_count_whole_days_ending_today() {
        let mut h = History::new();
        h.add_sale(sale(100, 1, 500), i32::MIN);
        h.add_sale(sale(100, 1, 700), i32::MIN);
        h.add_sale(sale(111, 2, 100), i32::MIN);
        h.add_refund(111, 50, i32::MIN);
        let w = h.window(120, 21); // days 100..=120
        assert_eq!(
            (w.sales, w.spend_cents, w.refund_cents, w.stores),
            (3, 1300, 50, 2)
        );
        assert_eq!(w.top_store_spend_cents, 1200);
        let w = h.window(120, 20); // days 101..=120
        assert_eq!((w.sales, w.spend_cents), (1, 100));
        assert_eq!(h.days.len(), 2, "one aggregate per (day, store)");
    }

    #[test]
    fn merge_equals_adding_in_one() {
        let sales = [
            sale(5, 1, 10),
            sale(6, 2, 20),
            sale(5, 1, 30),
            sale(9, 9, 5),
        ];
        let mut one = History::new();
        for s in sales {
            one.add_sale(s, i32::MIN);
        }
        one.add_refund(6, 7, i32::MIN);
        let (mut a, mut b) = (History::new(), History::new());
        a.add_sale(sales[0], i32::MIN);
        a.add_sale(sales[3], i32::MIN);
        b.add_sale(sales[1], i32::MIN);
        b.add_sale(sales[2], i32::MIN);
        b.add_refund(6, 7, i32::MIN);
        a.merge(b);
        assert_eq!(a, one);
    }

    #[test]
    fn one_pass_windows_equal_one_window_at_a_time() {
        // A pseudo-random history over two years, crossing quarter and
        // year boundaries, with ties of spend between stores.
        let mut h = History::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..400 {
            let day = 20_000 + next(730) as i32;
            let store = next(20) as u16;
            let total = 100 * (1 + next(5));
            h.add_sale(sale(day, store, total), i32::MIN);
            if next(4) == 0 {
                h.add_refund(day + next(3) as i32, 50 * next(9), i32::MIN);
            }
        }
        let ids: Vec<String> = (0..20).map(|i| format!("S{:02}", (i * 7) % 20)).collect();
        let id_of = |s: StoreIdx| ids[usize::from(s.0)].as_str();
        let windows = [400, 365, 90, 60, 30, 7, 1];
        for today in (19_990..20_760).step_by(3) {
            let mut out = [WindowStats::default(); 7];
            for fav in 0..windows.len() {
                let got = h.windows_desc(today, &windows, &mut out, Some((fav, &id_of)));
                assert_eq!(
                    got,
                    h.favorite_store(today, windows[fav], id_of),
                    "favorite over {} days at {today}",
                    windows[fav]
                );
                for (k, &w) in windows.iter().enumerate() {
                    assert_eq!(out[k], h.window(today, w), "{w} days at {today}");
                }
            }
        }
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for day in [-800_000, -1, 0, 59, 20_782, 20_819, 2_000_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m) + i64::from(d) - 1, i64::from(day));
        }
    }

    #[test]
    fn favorite_breaks_ties_by_store_id() {
        let mut h = History::new();
        h.add_sale(sale(10, 3, 100), i32::MIN);
        h.add_sale(sale(10, 1, 100), i32::MIN);
        let ids = ["KM-009", "KM-002", "x", "KM-001"];
        let fav = h.favorite_store(10, 90, |s| ids[usize::from(s.0)]);
        assert_eq!(fav, Some(StoreIdx(3)), "KM-001 sorts before KM-002");
        assert_eq!(h.favorite_store(200, 90, |s| ids[usize::from(s.0)]), None);
    }
}
