//! The tag functions for one SQL row: `BIGINT` arguments in, the
//! `storepulse_tags` predicate's answer out.
//!
//! This file is the single definition of what the SQL functions mean. It is
//! compiled twice: here (vectorised by the DataFusion UDFs in `df.rs`) and in
//! the Arroyo plugin (`udf/arroyo`, via `#[path]`, because that crate cannot
//! depend on this one: see the crate doc). It depends on nothing but
//! `storepulse_tags`, so it compiles in both dependency trees.
//!
//! **Every argument is `BIGINT` (`i64`).** SQL counts (`COUNT(*)`), sums of
//! cents and day numbers are `BIGINT` in both engines. The predicates take
//! `u32` counts, `u64` cents and a permille share; an argument outside the
//! predicate's domain (a negative count, a count above `u32::MAX`, a share
//! outside 0..=1000 permille, a day outside `i32`) gives `NULL` (`None`)
//! rather than a clamped answer that could differ from the processor's.
//!
//! **Shares are permille** (`700` = 70%), as in `storepulse_tags`, so a member
//! exactly at the threshold gets the tag here too; `min_share` 0.7 of the
//! configuration is `700` in SQL.
//!
//! **Defaults.** The functions without `_with` use `TagRules::default()`
//! (RULES.md), with shares converted exactly as `storepulse_tags::evaluate`
//! does; the `_with` functions take every threshold as an argument.
//!
//! **NULL.** A `NULL` argument gives `NULL`, except the first argument of
//! `sp_new_member` / `sp_new_member_with`: `NULL` days since registration
//! means "never registered", which the predicate answers with `false`.

use std::sync::LazyLock;

use storepulse_tags::{self as tags, Permille, TagRules};

/// RULES.md's thresholds, built once.
static RULES: LazyLock<TagRules> = LazyLock::new(TagRules::default);

/// A default share in permille, as `storepulse_tags::evaluate` reads it (an
/// invalid share reads as 100%; the defaults are valid, see the tests).
fn default_share(share: f64) -> Permille {
    tags::share_permille(share).unwrap_or(1000)
}

/// A count (sales, lines, stores, days) as the predicates take it.
fn count(v: i64) -> Option<u32> {
    u32::try_from(v).ok()
}

/// An amount of gross spend in cents (never negative).
fn cents(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

/// A share threshold in permille, 0..=1000.
fn permille(v: i64) -> Option<Permille> {
    u32::try_from(v).ok().filter(|p| *p <= 1000)
}

/// `sp_high_value(net_spend_cents)`: net spend at least RULES.md's minimum.
pub fn sp_high_value(net_spend_cents: i64) -> bool {
    sp_high_value_with(net_spend_cents, RULES.high_value_min_net_spend_cents)
}

/// `sp_high_value_with(net_spend_cents, min_net_spend_cents)`.
pub fn sp_high_value_with(net_spend_cents: i64, min_net_spend_cents: i64) -> bool {
    tags::high_value(net_spend_cents, min_net_spend_cents)
}

/// `sp_frequent(sales)`.
pub fn sp_frequent(sales: i64) -> Option<bool> {
    sp_frequent_with(sales, RULES.frequent_min_sales.into())
}

/// `sp_frequent_with(sales, min_sales)`.
pub fn sp_frequent_with(sales: i64, min_sales: i64) -> Option<bool> {
    Some(tags::frequent(count(sales)?, count(min_sales)?))
}

/// `sp_multi_store(stores)`.
pub fn sp_multi_store(stores: i64) -> Option<bool> {
    sp_multi_store_with(stores, RULES.multi_store_min_stores.into())
}

/// `sp_multi_store_with(stores, min_stores)`.
pub fn sp_multi_store_with(stores: i64, min_stores: i64) -> Option<bool> {
    Some(tags::multi_store(count(stores)?, count(min_stores)?))
}

/// `sp_online_first(sales, online_sales)`.
pub fn sp_online_first(sales: i64, online_sales: i64) -> Option<bool> {
    sp_online_first_with(
        sales,
        online_sales,
        RULES.online_first_min_sales.into(),
        default_share(RULES.online_first_min_share).into(),
    )
}

/// `sp_online_first_with(sales, online_sales, min_sales, min_share_permille)`.
pub fn sp_online_first_with(
    sales: i64,
    online_sales: i64,
    min_sales: i64,
    min_share_permille: i64,
) -> Option<bool> {
    Some(tags::online_first(
        count(sales)?,
        count(online_sales)?,
        count(min_sales)?,
        permille(min_share_permille)?,
    ))
}

/// `sp_promo_responsive(lines, promo_lines)`.
pub fn sp_promo_responsive(lines: i64, promo_lines: i64) -> Option<bool> {
    sp_promo_responsive_with(
        lines,
        promo_lines,
        RULES.promo_responsive_min_lines.into(),
        default_share(RULES.promo_responsive_min_share).into(),
    )
}

/// `sp_promo_responsive_with(lines, promo_lines, min_lines, min_share_permille)`.
pub fn sp_promo_responsive_with(
    lines: i64,
    promo_lines: i64,
    min_lines: i64,
    min_share_permille: i64,
) -> Option<bool> {
    Some(tags::promo_responsive(
        count(lines)?,
        count(promo_lines)?,
        count(min_lines)?,
        permille(min_share_permille)?,
    ))
}

/// `sp_seasonal_buyer(sales, spend_cents, top_quarter_spend_cents)`.
pub fn sp_seasonal_buyer(
    sales: i64,
    spend_cents: i64,
    top_quarter_spend_cents: i64,
) -> Option<bool> {
    sp_seasonal_buyer_with(
        sales,
        spend_cents,
        top_quarter_spend_cents,
        RULES.seasonal_buyer_min_sales.into(),
        default_share(RULES.seasonal_buyer_min_share).into(),
    )
}

/// `sp_seasonal_buyer_with(sales, spend_cents, top_quarter_spend_cents,
/// min_sales, min_share_permille)`.
pub fn sp_seasonal_buyer_with(
    sales: i64,
    spend_cents: i64,
    top_quarter_spend_cents: i64,
    min_sales: i64,
    min_share_permille: i64,
) -> Option<bool> {
    Some(tags::seasonal_buyer(
        count(sales)?,
        cents(spend_cents)?,
        cents(top_quarter_spend_cents)?,
        count(min_sales)?,
        permille(min_share_permille)?,
    ))
}

/// `sp_churn_risk(total_sales, sales_in_quiet_window)`.
pub fn sp_churn_risk(total_sales: i64, sales_in_quiet_window: i64) -> Option<bool> {
    sp_churn_risk_with(
        total_sales,
        sales_in_quiet_window,
        RULES.churn_risk_min_total_sales.into(),
    )
}

/// `sp_churn_risk_with(total_sales, sales_in_quiet_window, min_total_sales)`.
pub fn sp_churn_risk_with(
    total_sales: i64,
    sales_in_quiet_window: i64,
    min_total_sales: i64,
) -> Option<bool> {
    Some(tags::churn_risk(
        count(total_sales)?,
        count(sales_in_quiet_window)?,
        count(min_total_sales)?,
    ))
}

/// `sp_new_member(days_since_registration)`: `NULL` days (never registered)
/// is `false`, as in the processor.
pub fn sp_new_member(days_since_registration: Option<i64>) -> Option<bool> {
    sp_new_member_with(days_since_registration, RULES.new_member_days.into())
}

/// `sp_new_member_with(days_since_registration, window_days)`.
pub fn sp_new_member_with(days_since_registration: Option<i64>, window_days: i64) -> Option<bool> {
    let days = match days_since_registration {
        Some(d) => Some(count(d)?),
        None => None,
    };
    Some(tags::new_member(days, count(window_days)?))
}

/// `sp_store_loyal(sales, spend_cents, top_store_spend_cents)`.
pub fn sp_store_loyal(sales: i64, spend_cents: i64, top_store_spend_cents: i64) -> Option<bool> {
    sp_store_loyal_with(
        sales,
        spend_cents,
        top_store_spend_cents,
        RULES.store_loyal_min_sales.into(),
        default_share(RULES.store_loyal_min_share).into(),
    )
}

/// `sp_store_loyal_with(sales, spend_cents, top_store_spend_cents, min_sales,
/// min_share_permille)`.
pub fn sp_store_loyal_with(
    sales: i64,
    spend_cents: i64,
    top_store_spend_cents: i64,
    min_sales: i64,
    min_share_permille: i64,
) -> Option<bool> {
    Some(tags::store_loyal(
        count(sales)?,
        cents(spend_cents)?,
        cents(top_store_spend_cents)?,
        count(min_sales)?,
        permille(min_share_permille)?,
    ))
}

/// `sp_share_at_least(part, whole, permille)`: `part / whole >= permille / 1000`,
/// exactly (in integers). Negative amounts are outside the domain (`NULL`).
pub fn sp_share_at_least(part: i64, whole: i64, share_permille: i64) -> Option<bool> {
    Some(tags::share_at_least(
        cents(part)?,
        cents(whole)?,
        permille(share_permille)?,
    ))
}

/// `sp_quarter_of_day(day)`: quarter of the year, 0-3, of a China day (days
/// since 1970-01-01).
pub fn sp_quarter_of_day(day: i64) -> Option<i64> {
    Some(tags::quarter_of_day(i32::try_from(day).ok()?).into())
}

#[cfg(test)]
mod tests {
    //! Row semantics against `storepulse_tags`: thresholds at and one below,
    //! the defaults against `evaluate` with RULES.md, and the domain. These
    //! run in both crates that include this file.

    use super::*;
    use storepulse_tags::{evaluate, RuleInputs, Tag, WindowStats};

    /// Whether `evaluate` with RULES.md tags these inputs with `tag`.
    fn tagged(x: &RuleInputs, tag: Tag) -> bool {
        evaluate(&TagRules::default(), x).has(tag)
    }

    fn sales_stats(sales: u32, spend_cents: u64, top_cents: u64) -> WindowStats {
        WindowStats {
            sales,
            spend_cents,
            top_quarter_spend_cents: top_cents,
            top_store_spend_cents: top_cents,
            ..WindowStats::default()
        }
    }

    #[test]
    fn thresholds_at_and_one_below_agree_with_the_predicates() {
        for t in [1_i64, 3, 5, 8, 30, 1000] {
            for x in [t - 1, t, t + 1] {
                let (xu, tu) = (x as u32, t as u32);
                assert_eq!(sp_frequent_with(x, t), Some(tags::frequent(xu, tu)));
                assert_eq!(sp_multi_store_with(x, t), Some(tags::multi_store(xu, tu)));
                assert_eq!(
                    sp_churn_risk_with(x, 0, t),
                    Some(tags::churn_risk(xu, 0, tu))
                );
                assert_eq!(
                    sp_churn_risk_with(x, 1, t),
                    Some(tags::churn_risk(xu, 1, tu))
                );
                assert_eq!(
                    sp_new_member_with(Some(x), t),
                    Some(tags::new_member(Some(xu), tu))
                );
            }
            assert_eq!(
                sp_frequent_with(t, t),
                Some(true),
                "exactly at the threshold"
            );
            assert_eq!(sp_frequent_with(t - 1, t), Some(false), "one below");
        }
        for min in [-1_i64, 0, 500_000] {
            for net in [min - 1, min, min + 1] {
                assert_eq!(sp_high_value_with(net, min), tags::high_value(net, min));
            }
        }
        // Shares: every part of small wholes, so exact thresholds are hit.
        for whole in 0_i64..=12 {
            for part in 0..=whole {
                for p in [0_i64, 500, 600, 700, 800, 1000] {
                    for min in [0_i64, 3, 4] {
                        let (w, q, m, pu) = (whole as u32, part as u32, min as u32, p as u32);
                        assert_eq!(
                            sp_online_first_with(whole, part, min, p),
                            Some(tags::online_first(w, q, m, pu))
                        );
                        assert_eq!(
                            sp_promo_responsive_with(whole, part, min, p),
                            Some(tags::promo_responsive(w, q, m, pu))
                        );
                        assert_eq!(
                            sp_seasonal_buyer_with(min, whole, part, 3, p),
                            Some(tags::seasonal_buyer(m, w.into(), q.into(), 3, pu))
                        );
                        assert_eq!(
                            sp_store_loyal_with(min, whole, part, 3, p),
                            Some(tags::store_loyal(m, w.into(), q.into(), 3, pu))
                        );
                    }
                    assert_eq!(
                        sp_share_at_least(part, whole, p),
                        Some(tags::share_at_least(part as u64, whole as u64, p as u32))
                    );
                }
            }
        }
        assert_eq!(sp_online_first_with(10, 7, 3, 700), Some(true));
        assert_eq!(sp_online_first_with(10, 6, 3, 700), Some(false));
        assert_eq!(sp_store_loyal_with(3, 1000, 600, 3, 600), Some(true));
        assert_eq!(sp_store_loyal_with(3, 1000, 599, 3, 600), Some(false));
    }

    #[test]
    fn defaults_agree_with_evaluate_and_rules_md() {
        for net in [i64::MIN, -1, 0, 499_999, 500_000, 500_001, i64::MAX] {
            let x = RuleInputs {
                high_value: WindowStats {
                    spend_cents: net.max(0).unsigned_abs(),
                    refund_cents: net.min(0).unsigned_abs(),
                    ..WindowStats::default()
                },
                ..RuleInputs::default()
            };
            assert_eq!(sp_high_value(net), tagged(&x, Tag::HighValue), "net {net}");
        }
        assert!(sp_high_value(500_000) && !sp_high_value(499_999));
        for n in 0_u32..=12 {
            let s = |sales| WindowStats {
                sales,
                stores: sales,
                ..WindowStats::default()
            };
            let x = RuleInputs {
                frequent: s(n),
                multi_store: s(n),
                ..RuleInputs::default()
            };
            assert_eq!(sp_frequent(n.into()), Some(tagged(&x, Tag::Frequent)));
            assert_eq!(sp_multi_store(n.into()), Some(tagged(&x, Tag::MultiStore)));
            for k in 0..=n {
                let x = RuleInputs {
                    online_first: WindowStats {
                        sales: n,
                        online_sales: k,
                        ..WindowStats::default()
                    },
                    promo_responsive: WindowStats {
                        lines: n,
                        promo_lines: k,
                        ..WindowStats::default()
                    },
                    ..RuleInputs::default()
                };
                assert_eq!(
                    sp_online_first(n.into(), k.into()),
                    Some(tagged(&x, Tag::OnlineFirst))
                );
                assert_eq!(
                    sp_promo_responsive(n.into(), k.into()),
                    Some(tagged(&x, Tag::PromoResponsive))
                );
            }
            for quiet in 0_u32..=2 {
                let x = RuleInputs {
                    total_sales: n,
                    churn_quiet: WindowStats {
                        sales: quiet,
                        ..WindowStats::default()
                    },
                    ..RuleInputs::default()
                };
                assert_eq!(
                    sp_churn_risk(n.into(), quiet.into()),
                    Some(tagged(&x, Tag::ChurnRisk))
                );
            }
        }
        for sales in [2_u32, 3, 4] {
            for spend in [0_u64, 1, 5, 10, 1000] {
                for top in (0..=spend.min(10)).chain([599, 600, 799, 800, 1000]) {
                    if top > spend {
                        continue;
                    }
                    let x = RuleInputs {
                        seasonal_buyer: sales_stats(sales, spend, top),
                        store_loyal: sales_stats(sales, spend, top),
                        ..RuleInputs::default()
                    };
                    let (s, c, t) = (sales.into(), spend as i64, top as i64);
                    assert_eq!(
                        sp_seasonal_buyer(s, c, t),
                        Some(tagged(&x, Tag::SeasonalBuyer))
                    );
                    assert_eq!(sp_store_loyal(s, c, t), Some(tagged(&x, Tag::StoreLoyal)));
                }
            }
        }
        for days in [None, Some(0_u32), Some(1), Some(29), Some(30), Some(31)] {
            let x = RuleInputs {
                days_since_registration: days,
                ..RuleInputs::default()
            };
            assert_eq!(
                sp_new_member(days.map(i64::from)),
                Some(tagged(&x, Tag::NewMember))
            );
        }
        // RULES.md, spelled out at the edges.
        assert_eq!(sp_frequent(8), Some(true));
        assert_eq!(sp_frequent(7), Some(false));
        assert_eq!(sp_online_first(10, 7), Some(true));
        assert_eq!(sp_online_first(10, 6), Some(false));
        assert_eq!(sp_seasonal_buyer(3, 1000, 800), Some(true));
        assert_eq!(sp_seasonal_buyer(3, 1000, 799), Some(false));
        assert_eq!(sp_new_member(Some(29)), Some(true));
        assert_eq!(sp_new_member(Some(30)), Some(false));
    }

    #[test]
    fn outside_the_domain_is_null_and_no_registration_is_false() {
        assert_eq!(sp_frequent(-1), None);
        assert_eq!(sp_frequent_with(8, -1), None);
        assert_eq!(sp_frequent(i64::from(u32::MAX) + 1), None);
        assert_eq!(sp_frequent(i64::from(u32::MAX)), Some(true));
        assert_eq!(sp_online_first_with(10, 7, 3, 1001), None);
        assert_eq!(sp_online_first_with(10, 7, 3, -1), None);
        assert_eq!(sp_seasonal_buyer(3, -1, 0), None);
        assert_eq!(sp_store_loyal(3, 10, -1), None);
        assert_eq!(sp_share_at_least(-1, 10, 500), None);
        assert_eq!(sp_new_member(Some(-1)), None);
        assert_eq!(sp_new_member(None), Some(false));
        assert_eq!(sp_new_member_with(None, -1), None);
        assert_eq!(sp_quarter_of_day(i64::from(i32::MAX) + 1), None);
        assert!(!sp_high_value(i64::MIN));
    }

    #[test]
    fn quarter_of_day_is_the_calendar_quarter() {
        assert_eq!(sp_quarter_of_day(20_782), Some(3), "2026-11-25");
        assert_eq!(sp_quarter_of_day(20_819), Some(0), "2027-01-01");
        assert_eq!(sp_quarter_of_day(-1), Some(3), "1969-12-31");
        for day in (-800_i32..800).chain([i32::MIN, i32::MAX]) {
            assert_eq!(
                sp_quarter_of_day(day.into()),
                Some(i64::from(tags::quarter_of_day(day)))
            );
        }
    }
}
