//! A member's activity as compact daily aggregates.
//!
//! One [`DayAgg`] (16 bytes) per (China day, store) with a sale, and one
//! [`DayRefund`] (12 bytes) per day with a refund, kept for
//! `retention_days` (the longest window any rule reads, at least a year).
//! Everything a tag, a feature or `favorite_store` reads is a sum over
//! these, so merging two members (a late alias link) is adding their
//! aggregates: the result does not depend on the order the events came in.
//!
//! Per-day counters saturate (65,535 sales or lines of one member in one
//! store in one day), far beyond any real member; spend sums saturate at
//! `u64::MAX` cents, as [`Wide`] holds them.
//!
//! **Compact layout.** A [`DayAgg`] holds its day as a `u16` offset from
//! the history's `base` day and its spend as a `u32`. The rare (day, store)
//! whose spend passes `u32::MAX` cents (42.9 M CNY) has a second record
//! right after it, an *extension* (`sales == 0`, which no real record has),
//! holding the high 32 bits of the spend. Records only ever add up, so sums
//! over records need no special case but scaling an extension's spend
//! ([`DayAgg::spend`]). One history spans at most 65,535 days (179 years):
//! when a day outside that span arrives, the base moves, and aggregates
//! that still do not fit (older than the newest one by more than that,
//! outside every window, which are at most 3,660 days) are dropped.
//!
//! **Wire format.** Checkpoints and Kafka's member snapshots see the
//! previous, wide layout ([`Wide`] records with an `i32` day and a `u64`
//! spend, refunds with a `u64`): serialising converts, so the format is
//! unchanged by the compact layout.

use serde::{Deserialize, Serialize, Serializer};
use storepulse_core::StoreIdx;
use storepulse_tags::{civil_from_days, quarter_of_day, WindowStats};

/// A member's sales in one store on one China day (or the extension of
/// the record before it: `sales == 0`, `spend` the high 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayAgg {
    /// China day minus the history's `base`.
    off: u16,
    pub store: StoreIdx,
    pub sales: u16,
    pub online_sales: u16,
    pub lines: u16,
    pub promo_lines: u16,
    /// Sum of the sales' `total_cents`: the low 32 bits (the high ones in an
    /// extension).
    spend: u32,
}

const _: () = assert!(std::mem::size_of::<DayAgg>() == 16);

impl DayAgg {
    /// Whether this record extends the one before it (spend only).
    fn is_extension(&self) -> bool {
        self.sales == 0
    }

    /// The spend this record adds to a sum.
    pub fn spend(&self) -> u64 {
        if self.is_extension() {
            u64::from(self.spend) << 32
        } else {
            u64::from(self.spend)
        }
    }
}

/// A (day, store) aggregate as the wire and the export see it: the whole
/// day, the whole spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wide {
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

impl Wide {
    fn add(&mut self, o: &Wide) {
        self.sales = self.sales.saturating_add(o.sales);
        self.online_sales = self.online_sales.saturating_add(o.online_sales);
        self.lines = self.lines.saturating_add(o.lines);
        self.promo_lines = self.promo_lines.saturating_add(o.promo_lines);
        self.spend_cents = self.spend_cents.saturating_add(o.spend_cents);
    }
}

/// A member's refunds on one China day (the cents as two 32-bit halves, so
/// the record is 12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRefund {
    pub day: i32,
    cents: [u32; 2],
}

impl DayRefund {
    fn new(day: i32, refund_cents: u64) -> Self {
        Self {
            day,
            cents: [refund_cents as u32, (refund_cents >> 32) as u32],
        }
    }

    /// The refunds' `refund_cents`, summed.
    pub fn refund_cents(&self) -> u64 {
        u64::from(self.cents[0]) | u64::from(self.cents[1]) << 32
    }
}

/// A refund day as the wire sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct WideRefund {
    day: i32,
    refund_cents: u64,
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "HistoryWire")]
pub struct History {
    /// Sorted by (day, store), an extension right after its record.
    pub days: Vec<DayAgg>,
    /// Sorted by day. A boxed slice (16 bytes, no spare capacity): refund
    /// days are few and rarely added, and 8 bytes less here keep `Person`
    /// at 208 bytes.
    pub refunds: Box<[DayRefund]>,
    /// Sales ever (also those older than the retention).
    pub total_sales: u32,
    /// China day of the latest sale, or `i32::MIN`.
    pub last_sale_day: i32,
    /// The day of offset 0 of `days`.
    base: i32,
}

/// The serialised form of [`History`] (the layout before the compact one).
#[derive(Deserialize)]
struct HistoryWire {
    days: Vec<Wide>,
    refunds: Vec<WideRefund>,
    total_sales: u32,
    last_sale_day: i32,
}

impl From<HistoryWire> for History {
    fn from(w: HistoryWire) -> Self {
        let mut h = History {
            total_sales: w.total_sales,
            last_sale_day: w.last_sale_day,
            ..History::new()
        };
        // Sorted and one per key when this code wrote it; summing keeps
        // anything else meaningful.
        let mut days = w.days;
        days.sort_by_key(|d| (d.day, d.store));
        let mut merged: Vec<Wide> = Vec::with_capacity(days.len());
        for d in days {
            match merged.last_mut() {
                Some(last) if (last.day, last.store) == (d.day, d.store) => last.add(&d),
                _ => merged.push(d),
            }
        }
        h.set_days(&merged);
        for r in w.refunds {
            h.add_refund(r.day, r.refund_cents, i32::MIN);
        }
        h
    }
}

impl Serialize for History {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        struct Days<'a>(&'a History);
        impl Serialize for Days<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let n = self.0.days.iter().filter(|d| !d.is_extension()).count();
                let mut seq = serializer.serialize_seq(Some(n))?;
                for d in self.0.wide() {
                    seq.serialize_element(&d)?;
                }
                seq.end()
            }
        }
        struct Refunds<'a>(&'a [DayRefund]);
        impl Serialize for Refunds<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for r in self.0 {
                    seq.serialize_element(&WideRefund {
                        day: r.day,
                        refund_cents: r.refund_cents(),
                    })?;
                }
                seq.end()
            }
        }
        let mut st = serializer.serialize_struct("History", 4)?;
        st.serialize_field("days", &Days(self))?;
        st.serialize_field("refunds", &Refunds(&self.refunds))?;
        st.serialize_field("total_sales", &self.total_sales)?;
        st.serialize_field("last_sale_day", &self.last_sale_day)?;
        st.end()
    }
}

/// Equal content (the base a history happens to use does not matter).
impl PartialEq for History {
    fn eq(&self, o: &Self) -> bool {
        self.total_sales == o.total_sales
            && self.last_sale_day == o.last_sale_day
            && self.refunds == o.refunds
            && self.days.len() == o.days.len()
            && self.wide().eq(o.wide())
    }
}

impl Eq for History {}

fn sat16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// Makes room for one more element, growing by an eighth (at least 1)
/// instead of doubling: a member's vectors grow one element at a time and
/// live long, so doubling would leave a third of them unused on average,
/// and a quarter plus 2 left ~2.5 elements per vector unused (measured with
/// `benches/member_memory.rs`); a member's vectors hold a few to a few
/// dozen elements, so the extra reallocations are a few per member a year.
pub(crate) fn reserve_one<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 8 + 1);
    }
}

/// Gives back spare capacity after pruning or folding: all of it when the
/// vector is empty, else down to a
/// sixteenth above the length once more than an eighth is unused (for the
/// 1-7 elements of most pending-entry and lot vectors: none spare). Most
/// pending ledger vectors hold 1-3 entries of 48 bytes: a spare slot each
/// was ~30 bytes per member.
pub(crate) fn trim<T>(v: &mut Vec<T>) {
    if v.is_empty() {
        if v.capacity() > 0 {
            *v = Vec::new();
        }
    } else if v.capacity() > v.len() + v.len() / 8 {
        v.shrink_to(v.len() + v.len() / 16);
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

/// The widest span of days one history holds.
const SPAN: i64 = u16::MAX as i64;

/// Where a history's offsets start for its first day: in the middle of the
/// span, so late and new days both fit without moving it.
fn base_for(day: i32) -> i32 {
    clamp_i32(i64::from(day) - SPAN / 2)
}

fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self {
            last_sale_day: i32::MIN,
            ..Self::default()
        }
    }

    /// The China day of a record.
    pub fn day(&self, d: &DayAgg) -> i32 {
        clamp_i32(i64::from(self.base) + i64::from(d.off))
    }

    /// The offset of `day` when it is in the span.
    fn off(&self, day: i32) -> Option<u16> {
        u16::try_from(i64::from(day) - i64::from(self.base)).ok()
    }

    /// The offset of `day` for a search: below every record, or above.
    fn off_bound(&self, day: i64) -> i64 {
        day - i64::from(self.base)
    }

    /// Index of the first record with a day >= `day`.
    fn first_at_or_after(&self, day: i64) -> usize {
        let off = self.off_bound(day);
        self.days.partition_point(|d| i64::from(d.off) < off)
    }

    /// Index of the first record with a day > `day`.
    fn first_after(&self, day: i64) -> usize {
        let off = self.off_bound(day);
        self.days.partition_point(|d| i64::from(d.off) <= off)
    }

    /// The aggregates, one per (day, store), with the whole spend (for the
    /// export and the wire).
    pub fn wide(&self) -> impl Iterator<Item = Wide> + '_ {
        let mut i = 0;
        std::iter::from_fn(move || {
            let d = self.days.get(i)?;
            i += 1;
            let mut w = Wide {
                day: self.day(d),
                store: d.store,
                sales: d.sales,
                online_sales: d.online_sales,
                lines: d.lines,
                promo_lines: d.promo_lines,
                spend_cents: d.spend(),
            };
            while let Some(x) = self.days.get(i).filter(|x| x.is_extension()) {
                w.spend_cents = w.spend_cents.saturating_add(x.spend());
                i += 1;
            }
            Some(w)
        })
    }

    /// The records of one aggregate: its spend in one record, or two when
    /// it passes `u32::MAX` cents; `None` for a day outside the span. (A
    /// record always has a sale; one read from the wire with none, which
    /// this code never writes, counts one.)
    fn encode(&self, w: &Wide) -> Option<(DayAgg, Option<DayAgg>)> {
        let off = self.off(w.day)?;
        let rec = DayAgg {
            off,
            store: w.store,
            sales: w.sales.max(1),
            online_sales: w.online_sales,
            lines: w.lines,
            promo_lines: w.promo_lines,
            spend: w.spend_cents as u32,
        };
        let high = (w.spend_cents >> 32) as u32;
        let ext = (high > 0).then_some(DayAgg {
            sales: 0,
            online_sales: 0,
            lines: 0,
            promo_lines: 0,
            spend: high,
            ..rec
        });
        Some((rec, ext))
    }

    /// Sets the base for days `lo..=hi` and re-encodes `wide` (sorted by
    /// (day, store), one per key) into `capacity` records; the newest
    /// 65,536 days are kept if they span more.
    fn rebuild(&mut self, wide: &[Wide], lo: i64, hi: i64, capacity: usize) {
        self.base = if hi - lo <= SPAN {
            // Centre the room left around the days held.
            clamp_i32(lo - (SPAN - (hi - lo)) / 2)
        } else {
            clamp_i32(hi - SPAN)
        };
        let mut days = Vec::with_capacity(capacity);
        for (rec, ext) in wide.iter().filter_map(|w| self.encode(w)) {
            days.push(rec);
            days.extend(ext);
        }
        self.days = days;
    }

    /// Replaces the records with `wide` (sorted by (day, store), one per
    /// key), with no spare capacity.
    fn set_days(&mut self, wide: &[Wide]) {
        let (Some(first), Some(last)) = (wide.first(), wide.last()) else {
            self.days = Vec::new();
            return;
        };
        let extensions = wide.iter().filter(|w| w.spend_cents >> 32 != 0).count();
        let (lo, hi) = (i64::from(first.day), i64::from(last.day));
        self.rebuild(wide, lo, hi, wide.len() + extensions);
    }

    /// Makes `day` representable, moving the base (and so the offsets) if
    /// needed; aggregates that cannot stay are dropped (see the module
    /// docs), as is a `day` older than the newest aggregate by more than
    /// the span.
    fn make_room(&mut self, day: i32) {
        if self.days.is_empty() {
            self.base = base_for(day);
            return;
        }
        if self.off(day).is_some() {
            return;
        }
        let mut wide: Vec<Wide> = self.wide().collect();
        let d = i64::from(day);
        let hi = wide.last().map_or(d, |w| i64::from(w.day)).max(d);
        wide.retain(|w| i64::from(w.day) >= hi - SPAN);
        let lo = wide.first().map_or(d, |w| i64::from(w.day)).min(d);
        let capacity = self.days.capacity();
        self.rebuild(&wide, lo, hi, capacity);
    }

    /// Records a sale. `oldest_kept` is the first day still retained: an
    /// older sale counts only toward `total_sales` and `last_sale_day`.
    pub fn add_sale(&mut self, sale: SaleFacts, oldest_kept: i32) {
        self.total_sales = self.total_sales.saturating_add(1);
        self.last_sale_day = self.last_sale_day.max(sale.day);
        if sale.day < oldest_kept {
            return;
        }
        self.make_room(sale.day);
        let Some(off) = self.off(sale.day) else {
            return;
        };
        let key = (off, sale.store);
        let at = self.days.partition_point(|d| (d.off, d.store) < key);
        match self.days.get_mut(at) {
            Some(d) if (d.off, d.store) == key => {
                d.sales = d.sales.saturating_add(1);
                d.online_sales = d.online_sales.saturating_add(u16::from(sale.online));
                d.lines = d.lines.saturating_add(sat16(sale.lines));
                d.promo_lines = d.promo_lines.saturating_add(sat16(sale.promo_lines));
                let low = u64::from(d.spend);
                let ext = self
                    .days
                    .get(at + 1)
                    .filter(|x| x.is_extension())
                    .map(|x| x.spend());
                let total = (low + ext.unwrap_or(0)).saturating_add(sale.total_cents);
                let high = (total >> 32) as u32;
                self.days[at].spend = total as u32;
                match ext {
                    Some(_) => self.days[at + 1].spend = high,
                    None if high > 0 => {
                        let rec = self.days[at];
                        reserve_one(&mut self.days);
                        self.days.insert(
                            at + 1,
                            DayAgg {
                                sales: 0,
                                online_sales: 0,
                                lines: 0,
                                promo_lines: 0,
                                spend: high,
                                ..rec
                            },
                        );
                    }
                    None => {}
                }
            }
            _ => {
                let w = Wide {
                    day: sale.day,
                    store: sale.store,
                    sales: 1,
                    online_sales: u16::from(sale.online),
                    lines: sat16(sale.lines),
                    promo_lines: sat16(sale.promo_lines),
                    spend_cents: sale.total_cents,
                };
                if let Some((rec, ext)) = self.encode(&w) {
                    reserve_one(&mut self.days);
                    self.days.insert(at, rec);
                    if let Some(ext) = ext {
                        reserve_one(&mut self.days);
                        self.days.insert(at + 1, ext);
                    }
                }
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
            Some(r) if r.day == day => {
                *r = DayRefund::new(day, r.refund_cents().saturating_add(refund_cents));
            }
            _ => {
                let mut v = std::mem::take(&mut self.refunds).into_vec();
                v.reserve_exact(1);
                v.insert(at, DayRefund::new(day, refund_cents));
                self.refunds = v.into_boxed_slice();
            }
        }
    }

    /// Adds another member's history to this one (an alias link).
    pub fn merge(&mut self, other: History) {
        self.total_sales = self.total_sales.saturating_add(other.total_sales);
        self.last_sale_day = self.last_sale_day.max(other.last_sale_day);
        let mut days: Vec<Wide> = Vec::with_capacity(self.days.len() + other.days.len());
        let (mut a, mut b) = (self.wide().peekable(), other.wide().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => {
                    let (kx, ky) = ((x.day, x.store), (y.day, y.store));
                    if kx == ky {
                        let (mut x, y) = (a.next(), b.next());
                        if let (Some(x), Some(y)) = (x.as_mut(), y) {
                            x.add(&y);
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
        drop((a, b));
        self.set_days(&days);
        for r in other.refunds.iter() {
            self.add_refund(r.day, r.refund_cents(), i32::MIN);
        }
    }

    /// Drops aggregates of days before `oldest_kept`.
    pub fn prune(&mut self, oldest_kept: i32) {
        let cut = self.first_at_or_after(i64::from(oldest_kept));
        if cut > 0 {
            self.days.drain(..cut);
            trim(&mut self.days);
        }
        let cut = self.refunds.partition_point(|r| r.day < oldest_kept);
        if cut > 0 {
            let mut v = std::mem::take(&mut self.refunds).into_vec();
            v.drain(..cut);
            self.refunds = v.into_boxed_slice();
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
        let (start, end) = (
            self.first_at_or_after(first),
            self.first_after(i64::from(today)),
        );
        for d in self.days[start..end.max(start)].iter() {
            let spend = d.spend();
            s.sales += u32::from(d.sales);
            s.online_sales += u32::from(d.online_sales);
            s.lines += u32::from(d.lines);
            s.promo_lines += u32::from(d.promo_lines);
            s.spend_cents = s.spend_cents.saturating_add(spend);
            let q = &mut quarters[usize::from(quarter_of_day(self.day(d)))];
            *q = q.saturating_add(spend);
            match stores[..n_stores].iter_mut().find(|(st, _)| *st == d.store) {
                Some((_, v)) => *v = v.saturating_add(spend),
                None if n_stores < INLINE => {
                    stores[n_stores] = (d.store, spend);
                    n_stores += 1;
                }
                None => match overflow.iter_mut().find(|(st, _)| *st == d.store) {
                    Some((_, v)) => *v = v.saturating_add(spend),
                    None => overflow.push((d.store, spend)),
                },
            }
        }
        let all = stores[..n_stores].iter().chain(overflow.iter());
        s.stores = (n_stores + overflow.len()) as u32;
        s.top_store_spend_cents = all.map(|(_, spend)| *spend).max().unwrap_or(0);
        s.top_quarter_spend_cents = quarters.into_iter().max().unwrap_or(0);
        let rstart = self.refunds.partition_point(|r| i64::from(r.day) < first);
        for r in self.refunds[rstart..].iter().take_while(|r| r.day <= today) {
            s.refund_cents = s.refund_cents.saturating_add(r.refund_cents());
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
    ///
    /// With `skip` > 0, the `skip` longest windows are not computed: their
    /// `out` keeps what the caller put there (see [`History::unchanged`])
    /// but for `refund_cents`, which is always computed; the favorite store
    /// is then returned only if its window is computed (`None` if not).
    pub fn windows_desc<'a>(
        &self,
        today: i32,
        windows: &[u32],
        out: &mut [WindowStats],
        skip: usize,
        favorite: Option<(usize, &dyn Fn(StoreIdx) -> &'a str)>,
    ) -> Option<Option<StoreIdx>> {
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
        let skip = skip.min(n);
        // Windows still open (the shortest first closes), as an index
        // into `windows` counted from the end.
        let mut open = n;
        let end = self.first_after(i64::from(today));
        let mut snapshot = |k: usize,
                            run: &WindowStats,
                            stores: &[(StoreIdx, u64)],
                            overflow: &[(StoreIdx, u64)],
                            quarters: &[u64; 4],
                            fav: &mut Option<Option<StoreIdx>>| {
            let mut s = *run;
            let all = || stores.iter().chain(overflow.iter());
            s.stores = (stores.len() + overflow.len()) as u32;
            s.top_store_spend_cents = all().map(|(_, spend)| *spend).max().unwrap_or(0);
            s.top_quarter_spend_cents = quarters.iter().copied().max().unwrap_or(0);
            out[k] = s;
            if let Some((f, id_of)) = favorite {
                if f == k {
                    *fav = Some(
                        all()
                            .max_by(|(sa, va), (sb, vb)| {
                                va.cmp(vb).then_with(|| id_of(*sb).cmp(id_of(*sa)))
                            })
                            .map(|(s, _)| *s),
                    );
                }
            }
        };
        for d in self.days[..end].iter().rev() {
            let day = i64::from(self.day(d));
            let spend = d.spend();
            // Close every window that starts after this day.
            while open > skip && day < first_of(windows[open - 1]) {
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
            if open == skip {
                break;
            }
            run.sales += u32::from(d.sales);
            run.online_sales += u32::from(d.online_sales);
            run.lines += u32::from(d.lines);
            run.promo_lines += u32::from(d.promo_lines);
            run.spend_cents = run.spend_cents.saturating_add(spend);
            if day < q_start {
                let (y, m, _) = civil_from_days(self.day(d));
                let first_month = (m - 1) / 3 * 3 + 1;
                q = ((m - 1) / 3) as usize;
                q_start = days_from_civil(y, first_month);
            }
            quarters[q] = quarters[q].saturating_add(spend);
            match stores[..n_stores].iter_mut().find(|(st, _)| *st == d.store) {
                Some((_, v)) => *v = v.saturating_add(spend),
                None if n_stores < INLINE => {
                    stores[n_stores] = (d.store, spend);
                    n_stores += 1;
                }
                None => match overflow.iter_mut().find(|(st, _)| *st == d.store) {
                    Some((_, v)) => *v = v.saturating_add(spend),
                    None => overflow.push((d.store, spend)),
                },
            }
        }
        while open > skip {
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
            refund = refund.saturating_add(r.refund_cents());
        }
        while open > 0 {
            open -= 1;
            out[open].refund_cents = refund;
        }
        fav
    }

    /// How many of `windows` (longest first) hold the same aggregates on
    /// day `to` as on day `from` (< `to`), counted from the longest: the
    /// `skip` of [`History::windows_desc`] that lets a walk forward in time
    /// (the timer's probes) recompute only the windows that changed. Refunds
    /// are not considered (`windows_desc` always computes them).
    pub fn unchanged(&self, from: i32, to: i32, windows: &[u32]) -> usize {
        let (from, to) = (i64::from(from), i64::from(to));
        let any_in = |lo: i64, hi: i64| {
            let i = self.first_at_or_after(lo);
            self.days
                .get(i)
                .is_some_and(|d| i64::from(self.day(d)) <= hi)
        };
        if to <= from || any_in(from + 1, to) {
            // Aggregates newer than `from` enter every window.
            return 0;
        }
        windows
            .iter()
            .position(|&w| {
                let w = i64::from(w);
                any_in(from - w + 1, to - w)
            })
            .unwrap_or(windows.len())
    }

    /// Every day whose passing can move a window: the days of the
    /// aggregates and refunds and the last sale, sorted, once each (the
    /// sources of [`History::boundaries`]).
    pub fn source_days(&self, out: &mut Vec<i32>) {
        out.clear();
        let mut last = None;
        for d in &self.days {
            if last != Some(d.off) {
                out.push(self.day(d));
                last = Some(d.off);
            }
        }
        out.extend(self.refunds.iter().map(|r| r.day));
        if self.last_sale_day != i32::MIN {
            out.push(self.last_sale_day);
        }
        if !self.refunds.is_empty() || self.last_sale_day != i32::MIN {
            out.sort_unstable();
        }
        out.dedup();
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
        let (start, end) = (
            self.first_at_or_after(first),
            self.first_after(i64::from(today)),
        );
        for d in self.days[start..end.max(start)].iter() {
            match spend.iter_mut().find(|(s, _)| *s == d.store) {
                Some((_, v)) => *v = v.saturating_add(d.spend()),
                None => spend.push((d.store, d.spend())),
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
            if last != Some(d.off) {
                each_day(self.day(d));
                last = Some(d.off);
            }
        }
        for r in self.refunds.iter() {
            each_day(r.day);
        }
        if self.last_sale_day != i32::MIN {
            each_day(self.last_sale_day);
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.days.capacity() * std::mem::size_of::<DayAgg>()
            + self.refunds.len() * std::mem::size_of::<DayRefund>()
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
                let got = h.windows_desc(today, &windows, &mut out, 0, Some((fav, &id_of)));
                assert_eq!(
                    got.flatten(),
                    h.favorite_store(today, windows[fav], id_of),
                    "favorite over {} days at {today}",
                    windows[fav]
                );
                for (k, &w) in windows.iter().enumerate() {
                    assert_eq!(out[k], h.window(today, w), "{w} days at {today}");
                }
            }
            // A walk forward from `today` that keeps the unchanged windows
            // (the timer's probes) equals computing each day afresh.
            let fav = 2;
            let mut kept = [WindowStats::default(); 7];
            let mut kept_fav = h
                .windows_desc(today, &windows, &mut kept, 0, Some((fav, &id_of)))
                .flatten();
            let mut from = today;
            for step in [1, 2, 5, 29, 30, 31, 60, 200, 366] {
                let to = from + step;
                let skip = h.unchanged(from, to, &windows);
                if let Some(f) = h.windows_desc(to, &windows, &mut kept, skip, Some((fav, &id_of)))
                {
                    kept_fav = f;
                }
                let mut fresh = [WindowStats::default(); 7];
                let fresh_fav = h.windows_desc(to, &windows, &mut fresh, 0, Some((fav, &id_of)));
                assert_eq!(kept, fresh, "from {from} to {to}, {skip} kept");
                assert_eq!(Some(kept_fav), fresh_fav, "favorite from {from} to {to}");
                from = to;
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

    /// The layout before the compact one, as checkpoints hold it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct OldHistory {
        days: Vec<Wide>,
        refunds: Vec<WideRefund>,
        total_sales: u32,
        last_sale_day: i32,
    }

    #[test]
    fn spend_past_32_bits_is_exact_in_sums_merges_and_the_wire() {
        let big = 3 * (1u64 << 32) + 17; // 129 M CNY: two records
        let mut h = History::new();
        h.add_sale(sale(100, 1, big), i32::MIN);
        h.add_sale(sale(100, 2, 5), i32::MIN);
        h.add_sale(sale(100, 1, u64::from(u32::MAX)), i32::MIN);
        assert_eq!(h.days.len(), 3, "one extension record");
        let w = h.window(100, 1);
        assert_eq!(w.sales, 3);
        assert_eq!(w.spend_cents, big + u64::from(u32::MAX) + 5);
        assert_eq!(w.top_store_spend_cents, big + u64::from(u32::MAX));
        assert_eq!(w.stores, 2);
        let mut one = [WindowStats::default()];
        h.windows_desc(100, &[1], &mut one, 0, None);
        assert_eq!(one[0], w);
        // Saturates like a u64 sum.
        h.add_sale(sale(100, 1, u64::MAX), i32::MIN);
        assert_eq!(h.window(100, 1).spend_cents, u64::MAX);
        assert_eq!(h.wide().next().map(|d| d.spend_cents), Some(u64::MAX));
        // Merging: the same as adding in one.
        let (mut a, mut b, mut all) = (History::new(), History::new(), History::new());
        for (i, (day, store, total)) in [(7, 1, big), (7, 1, big), (9, 3, 1), (7, 2, 8)]
            .into_iter()
            .enumerate()
        {
            let s = sale(day, store, total);
            all.add_sale(s, i32::MIN);
            if i % 2 == 0 {
                a.add_sale(s, i32::MIN)
            } else {
                b.add_sale(s, i32::MIN)
            }
        }
        a.merge(b);
        assert_eq!(a, all);
        assert_eq!(a.window(9, 3).spend_cents, 2 * big + 9);
        // The wire keeps the wide layout.
        let bytes = postcard::to_allocvec(&all).unwrap();
        let old: OldHistory = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(old.days.len(), 3);
        assert_eq!(old.days[0].spend_cents, 2 * big);
        let back: History = postcard::from_bytes(&postcard::to_allocvec(&old).unwrap()).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn days_far_apart_move_the_base() {
        let mut h = History::new();
        h.add_sale(sale(20_000, 1, 10), i32::MIN);
        // 164 years later: the base moves.
        h.add_sale(sale(80_000, 2, 20), i32::MIN);
        let days: Vec<i32> = h.wide().map(|d| d.day).collect();
        assert_eq!(days, vec![20_000, 80_000]);
        h.add_sale(sale(90_000, 2, 20), i32::MIN);
        h.add_sale(sale(-10_000, 3, 30), i32::MIN);
        let days: Vec<i32> = h.wide().map(|d| d.day).collect();
        assert_eq!(
            days,
            vec![80_000, 90_000],
            "more than 179 years apart: the oldest go"
        );
        let mut h = History::new();
        h.add_sale(sale(-5, 1, 10), i32::MIN);
        h.add_sale(sale(40_000, 2, 20), i32::MIN);
        h.add_sale(sale(-30_000, 3, 30), i32::MIN);
        let days: Vec<i32> = h.wide().map(|d| d.day).collect();
        assert_eq!(
            days,
            vec![-5, 40_000],
            "a day too old for the span is dropped"
        );
        assert_eq!(h.window(40_000, 1).spend_cents, 20);
        assert_eq!(h.window(-5, 1).spend_cents, 10);
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains("\"day\":-5"), "{json}");
        let back: History = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
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
