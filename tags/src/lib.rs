//! Member features and the default tag rules of RULES.md, as pure functions.
//!
//! One definition of what `high_value`, `churn_risk` ... mean, used by three
//! engines so that they cannot drift apart:
//! - the member processor (`storepulse-processors`, `members`), which keeps
//!   daily aggregates per member and evaluates these predicates on every
//!   event of the member and as the event-time clock moves on;
//! - the Arroyo UDF plugin (`udf/`), for teams that compute tags in Arroyo
//!   SQL pipelines;
//! - the embedded mart's DataFusion scalar UDFs (`udf/`, same functions).
//!
//! **Windows are whole China days.** RULES.md writes windows as
//! `(T-90d, T]`; the member processor keeps *daily* aggregates (the memory
//! target allows no raw events), so a window of `n` days is the `n` China
//! calendar days ending with `T`'s day. A sale 89 days before `T`'s day is
//! inside a 90-day window, one 90 days before is not. The same reading is
//! used for stock velocity.
//!
//! **Shares are exact.** A share threshold such as 70% is held in permille
//! and compared in integers (`online * 1000 >= 700 * sales`), so a member at
//! exactly the threshold gets the tag on every engine.
//!
//! **Seasonal.** "80% of their spend in one calendar quarter" is read as a
//! quarter of the year (Jan-Mar, Apr-Jun, Jul-Sep, Oct-Dec, China time):
//! a buyer of winter goods every December and January of a 365-day window
//! is seasonal. The spend that counts is the gross spend of the sales.

use serde::{Deserialize, Serialize};

/// The built-in tags, in the order of RULES.md. The discriminant is the bit
/// of a [`TagSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tag {
    HighValue = 0,
    Frequent = 1,
    MultiStore = 2,
    OnlineFirst = 3,
    PromoResponsive = 4,
    SeasonalBuyer = 5,
    ChurnRisk = 6,
    NewMember = 7,
    StoreLoyal = 8,
}

impl Tag {
    /// Every built-in tag.
    pub const ALL: [Tag; 9] = [
        Tag::HighValue,
        Tag::Frequent,
        Tag::MultiStore,
        Tag::OnlineFirst,
        Tag::PromoResponsive,
        Tag::SeasonalBuyer,
        Tag::ChurnRisk,
        Tag::NewMember,
        Tag::StoreLoyal,
    ];

    /// The tag's name (as in RULES.md and on the wire).
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::HighValue => "high_value",
            Tag::Frequent => "frequent",
            Tag::MultiStore => "multi_store",
            Tag::OnlineFirst => "online_first",
            Tag::PromoResponsive => "promo_responsive",
            Tag::SeasonalBuyer => "seasonal_buyer",
            Tag::ChurnRisk => "churn_risk",
            Tag::NewMember => "new_member",
            Tag::StoreLoyal => "store_loyal",
        }
    }

    /// Parses a built-in tag name.
    pub fn from_name(name: &str) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// A set of tags as bits: built-in tags use bits 0-8 (their discriminant),
/// custom tags from configuration use bits 16.. in their configured order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TagSet(pub u64);

/// First bit of the custom tags.
pub const CUSTOM_TAG_BASE: u32 = 16;
/// Most custom tags a configuration may define.
pub const MAX_CUSTOM_TAGS: usize = 48;

impl TagSet {
    /// Whether bit `bit` is set.
    pub fn has_bit(self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }

    /// Whether the built-in tag is set.
    pub fn has(self, tag: Tag) -> bool {
        self.has_bit(tag as u32)
    }

    /// Sets or clears a bit.
    pub fn set_bit(&mut self, bit: u32, on: bool) {
        if on {
            self.0 |= 1 << bit;
        } else {
            self.0 &= !(1 << bit);
        }
    }

    /// The bits set, lowest first (one step per bit set, not per bit).
    pub fn bits(self) -> impl Iterator<Item = u32> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let bit = rest.trailing_zeros();
            rest &= rest - 1;
            Some(bit)
        })
    }
}

/// A share threshold in permille (700 = 70%).
pub type Permille = u32;

/// Aggregates of a member's activity over one window of whole days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Sales (events of type `sale` with this member).
    pub sales: u32,
    /// Sales via `app`, `mini_program` or `web`.
    pub online_sales: u32,
    /// Sale lines, and those with `promo`.
    pub lines: u32,
    pub promo_lines: u32,
    /// Gross spend: the sales' `total_cents`.
    pub spend_cents: u64,
    /// `refund_cents` of the member's returns in the window.
    pub refund_cents: u64,
    /// Distinct stores with a sale.
    pub stores: u32,
    /// Spend in the store with the most spend.
    pub top_store_spend_cents: u64,
    /// Spend in the quarter of the year with the most spend.
    pub top_quarter_spend_cents: u64,
}

impl WindowStats {
    /// Net spend: sales minus refunds (may be negative).
    pub fn net_spend_cents(&self) -> i64 {
        clamp_i64(i128::from(self.spend_cents) - i128::from(self.refund_cents))
    }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// `a * 1000 >= permille * b`, in integers that cannot overflow.
pub fn share_at_least(part: u64, whole: u64, permille: Permille) -> bool {
    u128::from(part) * 1000 >= u128::from(permille) * u128::from(whole)
}

/// `high_value`: net spend in the window at least `min_net_spend_cents`.
pub fn high_value(net_spend_cents: i64, min_net_spend_cents: i64) -> bool {
    net_spend_cents >= min_net_spend_cents
}

/// `frequent`: at least `min_sales` sales in the window.
pub fn frequent(sales: u32, min_sales: u32) -> bool {
    sales >= min_sales
}

/// `multi_store`: sales in at least `min_stores` distinct stores.
pub fn multi_store(stores: u32, min_stores: u32) -> bool {
    stores >= min_stores
}

/// `online_first`: at least `min_sales` sales, of which at least `share`
/// online.
pub fn online_first(sales: u32, online_sales: u32, min_sales: u32, share: Permille) -> bool {
    sales >= min_sales && sales > 0 && share_at_least(online_sales.into(), sales.into(), share)
}

/// `promo_responsive`: at least `min_lines` sale lines, of which at least
/// `share` on promotion.
pub fn promo_responsive(lines: u32, promo_lines: u32, min_lines: u32, share: Permille) -> bool {
    lines >= min_lines && lines > 0 && share_at_least(promo_lines.into(), lines.into(), share)
}

/// `seasonal_buyer`: at least `min_sales` sales and at least `share` of their
/// (positive) spend in one quarter of the year.
pub fn seasonal_buyer(
    sales: u32,
    spend_cents: u64,
    top_quarter_spend_cents: u64,
    min_sales: u32,
    share: Permille,
) -> bool {
    sales >= min_sales
        && spend_cents > 0
        && share_at_least(top_quarter_spend_cents, spend_cents, share)
}

/// `store_loyal`: at least `min_sales` sales and at least `share` of their
/// (positive) spend in one store.
pub fn store_loyal(
    sales: u32,
    spend_cents: u64,
    top_store_spend_cents: u64,
    min_sales: u32,
    share: Permille,
) -> bool {
    sales >= min_sales
        && spend_cents > 0
        && share_at_least(top_store_spend_cents, spend_cents, share)
}

/// `churn_risk`: at least `min_total_sales` sales ever, none in the quiet
/// window.
pub fn churn_risk(total_sales: u32, sales_in_quiet_window: u32, min_total_sales: u32) -> bool {
    total_sales >= min_total_sales && sales_in_quiet_window == 0
}

/// `new_member`: registered (earliest registration) within the last
/// `window_days` days, counting today as day 0.
pub fn new_member(days_since_registration: Option<u32>, window_days: u32) -> bool {
    days_since_registration.is_some_and(|d| d < window_days)
}

/// Quarter of the year (0-3) of a China day (days since 1970-01-01).
pub fn quarter_of_day(day: i32) -> u8 {
    let (_, month, _) = civil_from_days(day);
    ((month - 1) / 3) as u8
}

/// (year, month 1-12, day 1-31) of days since 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

/// The thresholds and windows of the built-in tags (`[members.tags]`).
/// Defaults are RULES.md's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TagRules {
    /// `high_value`: net spend (sales minus refunds) in the window, cents.
    pub high_value_min_net_spend_cents: i64,
    pub high_value_days: u32,
    /// `frequent`: sales in the window.
    pub frequent_min_sales: u32,
    pub frequent_days: u32,
    /// `multi_store`: distinct stores with a sale in the window.
    pub multi_store_min_stores: u32,
    pub multi_store_days: u32,
    /// `online_first`: sales in the window, and the online share (0-1).
    pub online_first_min_sales: u32,
    pub online_first_min_share: f64,
    pub online_first_days: u32,
    /// `promo_responsive`: sale lines in the window, and the promo share.
    pub promo_responsive_min_lines: u32,
    pub promo_responsive_min_share: f64,
    pub promo_responsive_days: u32,
    /// `seasonal_buyer`: sales in the window, and the share of spend in one
    /// quarter of the year.
    pub seasonal_buyer_min_sales: u32,
    pub seasonal_buyer_min_share: f64,
    pub seasonal_buyer_days: u32,
    /// `churn_risk`: sales ever, and the quiet window with no sale.
    pub churn_risk_min_total_sales: u32,
    pub churn_risk_quiet_days: u32,
    /// `new_member`: days since the earliest registration.
    pub new_member_days: u32,
    /// `store_loyal`: sales in the window, and the share of spend in one store.
    pub store_loyal_min_sales: u32,
    pub store_loyal_min_share: f64,
    pub store_loyal_days: u32,
    /// `favorite_store`: the store with the most spend in this window.
    pub favorite_store_days: u32,
}

impl Default for TagRules {
    fn default() -> Self {
        Self {
            high_value_min_net_spend_cents: 500_000,
            high_value_days: 90,
            frequent_min_sales: 8,
            frequent_days: 30,
            multi_store_min_stores: 3,
            multi_store_days: 90,
            online_first_min_sales: 3,
            online_first_min_share: 0.7,
            online_first_days: 90,
            promo_responsive_min_lines: 4,
            promo_responsive_min_share: 0.5,
            promo_responsive_days: 90,
            seasonal_buyer_min_sales: 3,
            seasonal_buyer_min_share: 0.8,
            seasonal_buyer_days: 365,
            churn_risk_min_total_sales: 5,
            churn_risk_quiet_days: 60,
            new_member_days: 30,
            store_loyal_min_sales: 3,
            store_loyal_min_share: 0.6,
            store_loyal_days: 90,
            favorite_store_days: 90,
        }
    }
}

/// Longest window a rule may use, in days (history is kept this long).
pub const MAX_WINDOW_DAYS: u32 = 3660;

/// A share (0-1) as permille, when it is a multiple of 0.001.
pub fn share_permille(share: f64) -> Option<Permille> {
    if !(0.0..=1.0).contains(&share) {
        return None;
    }
    let permille = (share * 1000.0).round();
    ((share * 1000.0 - permille).abs() < 1e-6).then_some(permille as Permille)
}

impl TagRules {
    /// Checks every field; the error names it (`members.tags.<field>: ...`).
    ///
    /// # Errors
    /// A window of 0 or more than [`MAX_WINDOW_DAYS`], a share outside 0-1
    /// or finer than 0.001.
    pub fn validate(&self) -> Result<(), String> {
        for (name, days) in self.windows_named() {
            if days == 0 || days > MAX_WINDOW_DAYS {
                return Err(format!(
                    "members.tags.{name}: must be 1..={MAX_WINDOW_DAYS} days"
                ));
            }
        }
        for (name, share) in [
            ("online_first_min_share", self.online_first_min_share),
            (
                "promo_responsive_min_share",
                self.promo_responsive_min_share,
            ),
            ("seasonal_buyer_min_share", self.seasonal_buyer_min_share),
            ("store_loyal_min_share", self.store_loyal_min_share),
        ] {
            if share_permille(share).is_none() {
                return Err(format!(
                    "members.tags.{name}: must be between 0 and 1 in steps of 0.001"
                ));
            }
        }
        Ok(())
    }

    fn windows_named(&self) -> [(&'static str, u32); 10] {
        [
            ("high_value_days", self.high_value_days),
            ("frequent_days", self.frequent_days),
            ("multi_store_days", self.multi_store_days),
            ("online_first_days", self.online_first_days),
            ("promo_responsive_days", self.promo_responsive_days),
            ("seasonal_buyer_days", self.seasonal_buyer_days),
            ("churn_risk_quiet_days", self.churn_risk_quiet_days),
            ("new_member_days", self.new_member_days),
            ("store_loyal_days", self.store_loyal_days),
            ("favorite_store_days", self.favorite_store_days),
        ]
    }

    /// Every window the rules use, in days (with repeats).
    pub fn windows(&self) -> impl Iterator<Item = u32> + '_ {
        self.windows_named().into_iter().map(|(_, d)| d)
    }
}

/// What the built-in rules read about one member at one day `T`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleInputs {
    pub high_value: WindowStats,
    pub frequent: WindowStats,
    pub multi_store: WindowStats,
    pub online_first: WindowStats,
    pub promo_responsive: WindowStats,
    pub seasonal_buyer: WindowStats,
    pub churn_quiet: WindowStats,
    pub store_loyal: WindowStats,
    pub total_sales: u32,
    pub days_since_registration: Option<u32>,
}

/// Evaluates the built-in tags. Shares must have passed
/// [`TagRules::validate`] (an invalid share reads as 100%).
pub fn evaluate(rules: &TagRules, x: &RuleInputs) -> TagSet {
    let p = |s: f64| share_permille(s).unwrap_or(1000);
    let mut set = TagSet::default();
    set.set_bit(
        Tag::HighValue as u32,
        high_value(
            x.high_value.net_spend_cents(),
            rules.high_value_min_net_spend_cents,
        ),
    );
    set.set_bit(
        Tag::Frequent as u32,
        frequent(x.frequent.sales, rules.frequent_min_sales),
    );
    set.set_bit(
        Tag::MultiStore as u32,
        multi_store(x.multi_store.stores, rules.multi_store_min_stores),
    );
    set.set_bit(
        Tag::OnlineFirst as u32,
        online_first(
            x.online_first.sales,
            x.online_first.online_sales,
            rules.online_first_min_sales,
            p(rules.online_first_min_share),
        ),
    );
    set.set_bit(
        Tag::PromoResponsive as u32,
        promo_responsive(
            x.promo_responsive.lines,
            x.promo_responsive.promo_lines,
            rules.promo_responsive_min_lines,
            p(rules.promo_responsive_min_share),
        ),
    );
    set.set_bit(
        Tag::SeasonalBuyer as u32,
        seasonal_buyer(
            x.seasonal_buyer.sales,
            x.seasonal_buyer.spend_cents,
            x.seasonal_buyer.top_quarter_spend_cents,
            rules.seasonal_buyer_min_sales,
            p(rules.seasonal_buyer_min_share),
        ),
    );
    set.set_bit(
        Tag::ChurnRisk as u32,
        churn_risk(
            x.total_sales,
            x.churn_quiet.sales,
            rules.churn_risk_min_total_sales,
        ),
    );
    set.set_bit(
        Tag::NewMember as u32,
        new_member(x.days_since_registration, rules.new_member_days),
    );
    set.set_bit(
        Tag::StoreLoyal as u32,
        store_loyal(
            x.store_loyal.sales,
            x.store_loyal.spend_cents,
            x.store_loyal.top_store_spend_cents,
            rules.store_loyal_min_sales,
            p(rules.store_loyal_min_share),
        ),
    );
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_exact_at_the_threshold() {
        assert!(online_first(10, 7, 3, 700));
        assert!(!online_first(10, 6, 3, 700));
        assert!(!online_first(2, 2, 3, 700));
        assert!(promo_responsive(4, 2, 4, 500));
        assert!(!promo_responsive(3, 3, 4, 500));
        assert!(store_loyal(3, 1000, 600, 3, 600));
        assert!(!store_loyal(3, 1000, 599, 3, 600));
        assert!(!store_loyal(3, 0, 0, 3, 600), "no spend, no loyalty");
        assert!(seasonal_buyer(3, 10, 8, 3, 800));
        assert_eq!(share_permille(0.7), Some(700));
        assert_eq!(share_permille(0.7005), None);
        assert_eq!(share_permille(1.5), None);
    }

    #[test]
    fn churn_and_new_member_windows() {
        assert!(churn_risk(5, 0, 5));
        assert!(!churn_risk(5, 1, 5));
        assert!(!churn_risk(4, 0, 5));
        assert!(new_member(Some(29), 30));
        assert!(!new_member(Some(30), 30));
        assert!(!new_member(None, 30));
    }

    #[test]
    fn calendar_quarters() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2026-11-25 is day 20_782.
        assert_eq!(civil_from_days(20_782), (2026, 11, 25));
        assert_eq!(quarter_of_day(20_782), 3);
        assert_eq!(civil_from_days(20_819), (2027, 1, 1));
        assert_eq!(quarter_of_day(20_819), 0);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn defaults_are_valid_and_bad_values_named() {
        assert!(TagRules::default().validate().is_ok());
        let bad = TagRules {
            frequent_days: 0,
            ..TagRules::default()
        };
        assert!(bad.validate().unwrap_err().contains("frequent_days"));
        let bad = TagRules {
            store_loyal_min_share: 0.6001,
            ..TagRules::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("store_loyal_min_share"));
    }

    #[test]
    fn bits_lists_the_set_bits_lowest_first() {
        assert_eq!(TagSet(0).bits().count(), 0);
        let set = TagSet(1 | 1 << 6 | 1 << 16 | 1 << 63);
        assert_eq!(set.bits().collect::<Vec<_>>(), vec![0, 6, 16, 63]);
    }

    #[test]
    fn tag_names_round_trip() {
        for t in Tag::ALL {
            assert_eq!(Tag::from_name(t.as_str()), Some(t));
        }
    }
}
