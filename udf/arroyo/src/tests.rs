//! The UDFs (the functions `#[udf]` keeps) against `storepulse_tags`, and
//! this crate's declarations against Arroyo's own UDF parser. The row
//! semantics are tested again by `row`'s own tests, which run here too.

use super::*;
use arroyo_udf_common::parse::{NullableType, ParsedUdf};
use arroyo_udf_plugin::arrow::datatypes::DataType;
use storepulse_tags as tags;
use syn::{FnArg, Item, ItemFn, Pat};

/// A tag as the Arroyo UDFs answer it.
fn flag(tagged: bool) -> Option<i64> {
    Some(i64::from(tagged))
}

#[test]
fn udfs_agree_with_storepulse_tags_at_the_threshold_and_one_below() {
    let r = tags::TagRules::default();
    let share = |s: f64| tags::share_permille(s).unwrap();

    // High value: RULES.md's 5000.00 net, and a threshold passed in.
    let min = r.high_value_min_net_spend_cents;
    for net in [min - 1, min, min + 1, -1, i64::MIN] {
        assert_eq!(sp_high_value(net), i64::from(tags::high_value(net, min)));
        assert_eq!(
            sp_high_value_with(net, 7),
            i64::from(tags::high_value(net, 7))
        );
    }
    assert_eq!((sp_high_value(min), sp_high_value(min - 1)), (1, 0));

    // Counts: exactly at each default threshold, and one below.
    let t = r.frequent_min_sales;
    assert_eq!(sp_frequent(t.into()), flag(tags::frequent(t, t)));
    assert_eq!(sp_frequent((t - 1).into()), flag(tags::frequent(t - 1, t)));
    assert_eq!((sp_frequent(8), sp_frequent(7)), (Some(1), Some(0)));
    assert_eq!(sp_frequent_with(4, 4), Some(1));
    assert_eq!(sp_frequent_with(3, 4), Some(0));
    let t = r.multi_store_min_stores;
    assert_eq!(sp_multi_store(t.into()), flag(tags::multi_store(t, t)));
    assert_eq!(
        sp_multi_store((t - 1).into()),
        flag(tags::multi_store(t - 1, t))
    );
    assert_eq!(sp_multi_store_with(2, 2), Some(1));
    assert_eq!(sp_multi_store_with(1, 2), Some(0));
    let t = r.churn_risk_min_total_sales;
    assert_eq!(sp_churn_risk(t.into(), 0), flag(tags::churn_risk(t, 0, t)));
    assert_eq!(
        sp_churn_risk((t - 1).into(), 0),
        flag(tags::churn_risk(t - 1, 0, t))
    );
    assert_eq!(sp_churn_risk(t.into(), 1), flag(tags::churn_risk(t, 1, t)));
    assert_eq!(sp_churn_risk_with(2, 0, 2), Some(1));
    assert_eq!(sp_churn_risk_with(1, 0, 2), Some(0));
    let t = r.new_member_days;
    assert_eq!(
        sp_new_member(Some((t - 1).into())),
        flag(tags::new_member(Some(t - 1), t))
    );
    assert_eq!(
        sp_new_member(Some(t.into())),
        flag(tags::new_member(Some(t), t))
    );
    assert_eq!(sp_new_member(None), flag(tags::new_member(None, t)));
    assert_eq!(sp_new_member_with(Some(6), 7), Some(1));
    assert_eq!(sp_new_member_with(Some(7), 7), Some(0));

    // Shares: exactly at the share (7 of 10 at 70%) and one below.
    let (m, p) = (r.online_first_min_sales, share(r.online_first_min_share));
    for (sales, online) in [(10, 7), (10, 6), (m, m), (m - 1, m - 1)] {
        assert_eq!(
            sp_online_first(sales.into(), online.into()),
            flag(tags::online_first(sales, online, m, p))
        );
    }
    assert_eq!(
        (sp_online_first(10, 7), sp_online_first(10, 6)),
        (Some(1), Some(0))
    );
    assert_eq!(sp_online_first_with(4, 2, 4, 500), Some(1));
    assert_eq!(sp_online_first_with(4, 1, 4, 500), Some(0));
    let (m, p) = (
        r.promo_responsive_min_lines,
        share(r.promo_responsive_min_share),
    );
    for (lines, promo) in [(4, 2), (4, 1), (3, 3), (10, 5)] {
        assert_eq!(
            sp_promo_responsive(lines.into(), promo.into()),
            flag(tags::promo_responsive(lines, promo, m, p))
        );
    }
    assert_eq!(sp_promo_responsive_with(10, 3, 1, 300), Some(1));
    assert_eq!(sp_promo_responsive_with(10, 2, 1, 300), Some(0));
    let (m, p) = (
        r.seasonal_buyer_min_sales,
        share(r.seasonal_buyer_min_share),
    );
    for (sales, spend, top) in [(3, 10, 8), (3, 10, 7), (2, 10, 10), (3, 0, 0)] {
        assert_eq!(
            sp_seasonal_buyer(sales.into(), spend, top),
            flag(tags::seasonal_buyer(sales, spend as u64, top as u64, m, p))
        );
    }
    assert_eq!(sp_seasonal_buyer_with(1, 100, 50, 1, 500), Some(1));
    assert_eq!(sp_seasonal_buyer_with(1, 100, 49, 1, 500), Some(0));
    let (m, p) = (r.store_loyal_min_sales, share(r.store_loyal_min_share));
    for (sales, spend, top) in [(3, 1000, 600), (3, 1000, 599), (2, 1000, 1000)] {
        assert_eq!(
            sp_store_loyal(sales.into(), spend, top),
            flag(tags::store_loyal(sales, spend as u64, top as u64, m, p))
        );
    }
    assert_eq!(sp_store_loyal_with(5, 10, 9, 5, 900), Some(1));
    assert_eq!(sp_store_loyal_with(5, 10, 8, 5, 900), Some(0));
    assert_eq!(
        sp_share_at_least(7, 10, 700),
        flag(tags::share_at_least(7, 10, 700))
    );
    assert_eq!(sp_share_at_least(6, 10, 700), Some(0));

    assert_eq!(
        sp_quarter_of_day(20_782),
        Some(i64::from(tags::quarter_of_day(20_782)))
    );
    assert_eq!(sp_quarter_of_day(20_819), Some(0));

    // Outside the domain: NULL, never a clamped answer.
    assert_eq!(sp_frequent(-1), None);
    assert_eq!(sp_online_first_with(10, 7, 3, 1001), None);
}

/// `#[udf]`-annotated functions of a source file, as Arroyo finds them.
fn udf_fns(file: &syn::File) -> Vec<&ItemFn> {
    file.items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(f) if f.sig.ident.to_string().starts_with("sp_") => Some(f),
            _ => None,
        })
        .collect()
}

fn param_names(f: &ItemFn) -> Vec<String> {
    f.sig
        .inputs
        .iter()
        .map(|arg| match arg {
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(i) => i.ident.to_string(),
                _ => panic!("{}: not a plain parameter", f.sig.ident),
            },
            FnArg::Receiver(_) => panic!("{}: self parameter", f.sig.ident),
        })
        .collect()
}

#[test]
fn every_udf_parses_with_arroyos_parser_and_has_its_feature() {
    let file = syn::parse_file(include_str!("lib.rs")).unwrap();
    let fns = udf_fns(&file);
    let names: Vec<String> = fns.iter().map(|f| f.sig.ident.to_string()).collect();
    let listed: Vec<&str> = UDFS.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, listed, "UDFS lists every function, in order");

    let manifest = include_str!("../Cargo.toml");
    for f in fns {
        let name = f.sig.ident.to_string();
        assert!(
            manifest.contains(&format!("\n{name} = []\n")),
            "feature {name} in Cargo.toml"
        );
        let attr = f
            .attrs
            .iter()
            .find(|a| a.path().is_ident("cfg_attr"))
            .unwrap_or_else(|| panic!("{name} has no cfg_attr"));
        let tokens = match &attr.meta {
            syn::Meta::List(l) => l.tokens.to_string(),
            _ => panic!("{name}: cfg_attr without arguments"),
        };
        assert_eq!(
            tokens,
            format!("feature = \"{name}\" , arroyo_udf_plugin :: udf"),
            "{name} is a UDF under the feature of its own name"
        );

        let parsed = ParsedUdf::try_parse(f).unwrap();
        assert_eq!(parsed.name, name);
        assert!(!parsed.udf_type.is_async());
        assert_eq!(
            parsed.vec_arguments, 0,
            "{name} is scalar, not an aggregate"
        );
        for (arg, pname) in parsed.args.iter().zip(param_names(f)) {
            let nullable = pname == "days_since_registration";
            assert_eq!(
                *arg,
                NullableType::new(DataType::Int64, nullable),
                "{name}({pname})"
            );
        }
        let nullable_ret = !matches!(name.as_str(), "sp_high_value" | "sp_high_value_with");
        assert_eq!(
            parsed.ret_type,
            NullableType::new(DataType::Int64, nullable_ret),
            "{name}"
        );
    }
}

#[test]
fn definitions_are_arroyo_udfs_with_the_same_signature() {
    let lib = syn::parse_file(include_str!("lib.rs")).unwrap();
    let dependency = r#"{ git = "https://git.example/storepulse.git", rev = "0123abc" }"#;
    for (f, (name, _, _)) in udf_fns(&lib).into_iter().zip(UDFS) {
        let def = arroyo_definition(name, dependency).unwrap();
        // The shape of Arroyo's dependency comment (`parse_dependencies`).
        assert!(def.starts_with(&format!(
            "/*\n[dependencies]\nstorepulse-arroyo-udf = {dependency}\n*/\n"
        )));
        let file = syn::parse_file(&def).unwrap();
        let udfs: Vec<&ItemFn> = udf_fns(&file)
            .into_iter()
            .filter(|f| f.attrs.iter().any(|a| a.path().is_ident("udf")))
            .collect();
        assert_eq!(udfs.len(), 1, "one #[udf] per definition: {def}");
        let (ours, theirs) = (
            ParsedUdf::try_parse(f).unwrap(),
            ParsedUdf::try_parse(udfs[0]).unwrap(),
        );
        assert_eq!(theirs.name, ours.name);
        assert_eq!(theirs.args, ours.args, "{name}");
        assert_eq!(theirs.ret_type, ours.ret_type, "{name}");
        assert_eq!(param_names(udfs[0]), param_names(f), "{name}");
        assert!(def.contains(&format!(
            "storepulse_arroyo_udf::{name}({})",
            param_names(f).join(", ")
        )));
    }
    assert_eq!(arroyo_definition("sp_nope", dependency), None);
}
