//! The DataFusion UDFs through SQL: thresholds, `NULL`, coercion, and a grid
//! of boundary inputs against `storepulse_tags` called directly; and the
//! names and arguments against the docs and the Arroyo plugin.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;
use storepulse_tags::{self as tags, TagRules};

use crate::{register_tag_udfs, TagFunction};

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    register_tag_udfs(&ctx);
    ctx
}

/// Every value of every output column, row by row.
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<ScalarValue>> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = vec![];
    for batch in batches {
        for i in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, i).unwrap())
                    .collect(),
            );
        }
    }
    out
}

/// The first output column.
async fn column(ctx: &SessionContext, sql: &str) -> Vec<ScalarValue> {
    rows(ctx, sql)
        .await
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect()
}

fn boolean(v: Option<bool>) -> ScalarValue {
    ScalarValue::Boolean(v)
}

#[tokio::test]
async fn high_value_at_the_threshold_and_null_in_null_out() {
    let ctx = context();
    let out = column(
        &ctx,
        "SELECT sp_high_value(x) FROM (VALUES (1, 499999), (2, 500000), (3, 500001), (4, NULL)) \
         AS t(k, x) ORDER BY k",
    )
    .await;
    assert_eq!(
        out,
        [
            boolean(Some(false)),
            boolean(Some(true)),
            boolean(Some(true)),
            boolean(None)
        ]
    );
}

#[tokio::test]
async fn literal_thresholds_with_columns_and_int_coercion() {
    let ctx = context();
    let sql = "SELECT sp_online_first_with(s, o, 3, 700) AS a, \
                      sp_online_first_with(CAST(s AS INT), CAST(o AS SMALLINT), 3, 700) AS b, \
                      sp_online_first(s, o) AS c \
               FROM (VALUES (1, 10, 7), (2, 10, 6), (3, 2, 2), (4, 3, 3), (5, NULL, 1), (6, 10, NULL)) \
                    AS t(k, s, o) \
               ORDER BY k";
    let expected = [Some(true), Some(false), Some(false), Some(true), None, None];
    let got = rows(&ctx, sql).await;
    assert_eq!(got.len(), expected.len());
    for (got, want) in got.iter().zip(expected) {
        assert_eq!(got, &vec![boolean(want); 3]);
    }
}

#[tokio::test]
async fn literals_null_and_the_domain() {
    let ctx = context();
    let sql = "SELECT sp_frequent(8), sp_frequent(7), sp_frequent(NULL), sp_frequent(-1), \
                      sp_frequent(4294967296), sp_new_member(NULL), sp_new_member(29), \
                      sp_new_member(30), sp_new_member(-1), \
                      sp_online_first_with(10, 7, 3, 1001), sp_churn_risk(5, 0), \
                      sp_quarter_of_day(20782), sp_quarter_of_day(NULL), \
                      sp_quarter_of_day(2147483648), sp_share_at_least(7, 10, 700)";
    let b = |v| boolean(Some(v));
    assert_eq!(
        rows(&ctx, sql).await,
        [vec![
            b(true),
            b(false),
            boolean(None),
            boolean(None),
            boolean(None),
            b(false), // never registered: not new, as in the processor
            b(true),
            b(false),
            boolean(None),
            boolean(None),
            b(true),
            ScalarValue::Int64(Some(3)),
            ScalarValue::Int64(None),
            ScalarValue::Int64(None),
            b(true),
        ]]
    );
}

/// Boundary values of an argument, by its name: around RULES.md's
/// thresholds and the share edges; all inside the predicate's domain.
fn boundary_values(arg: &str) -> Vec<i64> {
    match arg {
        "net_spend_cents" | "min_net_spend_cents" => {
            vec![i64::MIN, -1, 0, 499_999, 500_000, 500_001, i64::MAX]
        }
        "days_since_registration" | "window_days" => vec![0, 1, 29, 30, 31],
        "day" => vec![
            i64::from(i32::MIN),
            -1,
            0,
            89,
            90,
            20_782,
            20_819,
            i64::from(i32::MAX),
        ],
        a if a.ends_with("permille") => vec![0, 500, 600, 700, 800, 1000],
        a if a.ends_with("cents") || a == "part" || a == "whole" => {
            vec![0, 1, 5, 8, 10, 599, 600, 1000]
        }
        _ => vec![0, 1, 2, 3, 4, 5, 7, 8, 9, 10],
    }
}

/// Every combination of the arguments' boundary values.
fn grid(f: TagFunction) -> Vec<Vec<Option<i64>>> {
    f.args().iter().fold(vec![vec![]], |acc, arg| {
        let values = boundary_values(arg);
        acc.iter()
            .flat_map(|row| {
                values.iter().map(move |v| {
                    let mut row = row.clone();
                    row.push(Some(*v));
                    row
                })
            })
            .collect()
    })
}

/// The answer of `storepulse_tags` itself, called directly (arguments are
/// in the domain; `None` is SQL `NULL`).
fn direct(f: TagFunction, a: &[Option<i64>]) -> ScalarValue {
    use TagFunction as F;
    let r = TagRules::default();
    let share = |s: f64| tags::share_permille(s).unwrap();
    let n = |i: usize| a[i].map(|v| u32::try_from(v).unwrap());
    let c = |i: usize| a[i].map(|v| u64::try_from(v).unwrap());
    if f == F::QuarterOfDay {
        return ScalarValue::Int64(
            a[0].map(|d| i64::from(tags::quarter_of_day(i32::try_from(d).unwrap()))),
        );
    }
    let tagged = || -> Option<bool> {
        Some(match f {
            F::HighValue => tags::high_value(a[0]?, r.high_value_min_net_spend_cents),
            F::HighValueWith => tags::high_value(a[0]?, a[1]?),
            F::Frequent => tags::frequent(n(0)?, r.frequent_min_sales),
            F::FrequentWith => tags::frequent(n(0)?, n(1)?),
            F::MultiStore => tags::multi_store(n(0)?, r.multi_store_min_stores),
            F::MultiStoreWith => tags::multi_store(n(0)?, n(1)?),
            F::OnlineFirst => tags::online_first(
                n(0)?,
                n(1)?,
                r.online_first_min_sales,
                share(r.online_first_min_share),
            ),
            F::OnlineFirstWith => tags::online_first(n(0)?, n(1)?, n(2)?, n(3)?),
            F::PromoResponsive => tags::promo_responsive(
                n(0)?,
                n(1)?,
                r.promo_responsive_min_lines,
                share(r.promo_responsive_min_share),
            ),
            F::PromoResponsiveWith => tags::promo_responsive(n(0)?, n(1)?, n(2)?, n(3)?),
            F::SeasonalBuyer => tags::seasonal_buyer(
                n(0)?,
                c(1)?,
                c(2)?,
                r.seasonal_buyer_min_sales,
                share(r.seasonal_buyer_min_share),
            ),
            F::SeasonalBuyerWith => tags::seasonal_buyer(n(0)?, c(1)?, c(2)?, n(3)?, n(4)?),
            F::ChurnRisk => tags::churn_risk(n(0)?, n(1)?, r.churn_risk_min_total_sales),
            F::ChurnRiskWith => tags::churn_risk(n(0)?, n(1)?, n(2)?),
            F::NewMember => tags::new_member(n(0), r.new_member_days),
            F::NewMemberWith => tags::new_member(n(0), n(1)?),
            F::StoreLoyal => tags::store_loyal(
                n(0)?,
                c(1)?,
                c(2)?,
                r.store_loyal_min_sales,
                share(r.store_loyal_min_share),
            ),
            F::StoreLoyalWith => tags::store_loyal(n(0)?, c(1)?, c(2)?, n(3)?, n(4)?),
            F::ShareAtLeast => tags::share_at_least(c(0)?, c(1)?, n(2)? as tags::Permille),
            F::QuarterOfDay => unreachable!("answered above"),
        })
    };
    boolean(tagged())
}

#[tokio::test]
async fn every_function_agrees_with_storepulse_tags_over_a_boundary_grid() {
    for f in TagFunction::ALL {
        let mut inputs = grid(f);
        // A NULL in each position of a row at the threshold.
        let base = inputs[inputs.len() / 2].clone();
        for i in 0..f.args().len() {
            let mut row = base.clone();
            row[i] = None;
            inputs.push(row);
        }

        let fields: Vec<Field> = f
            .args()
            .iter()
            .map(|a| Field::new(*a, DataType::Int64, true))
            .collect();
        let columns: Vec<ArrayRef> = (0..f.args().len())
            .map(|i| Arc::new(inputs.iter().map(|r| r[i]).collect::<Int64Array>()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        let ctx = context();
        ctx.register_batch("member_windows", batch).unwrap();

        // The arguments come back beside the answer: the plan may reorder rows.
        let sql = format!(
            "SELECT {}({args}), {args} FROM member_windows",
            f.name(),
            args = f.args().join(", ")
        );
        let out = rows(&ctx, &sql).await;
        assert_eq!(out.len(), inputs.len(), "{sql}");
        let (mut tagged, mut null_rows) = (0, 0);
        for row in &out {
            let args: Vec<Option<i64>> = row[1..]
                .iter()
                .map(|v| match v {
                    ScalarValue::Int64(v) => *v,
                    other => panic!("{other:?} is not BIGINT"),
                })
                .collect();
            let got = &row[0];
            assert_eq!(got, &direct(f, &args), "{}{args:?}", f.name());
            tagged += usize::from(got == &boolean(Some(true)));
            // NULL in, NULL out, except "never registered".
            for (i, _) in args.iter().enumerate().filter(|(_, a)| a.is_none()) {
                null_rows += 1;
                if f.args()[i] == "days_since_registration" {
                    assert_eq!(got, &boolean(Some(false)), "{}", f.name());
                } else {
                    assert!(
                        got.is_null(),
                        "{}: NULL {} gives {got:?}",
                        f.name(),
                        f.args()[i]
                    );
                }
            }
        }
        assert_eq!(null_rows, f.args().len(), "{}", f.name());
        if f != TagFunction::QuarterOfDay {
            assert!(
                tagged > 0 && tagged < inputs.len(),
                "{}: the grid crosses the threshold",
                f.name()
            );
        }
    }
}

#[test]
fn register_tag_udfs_registers_every_function_with_its_signature() {
    let ctx = context();
    let state = ctx.state();
    for f in TagFunction::ALL {
        let udf = state
            .scalar_functions()
            .get(f.name())
            .unwrap_or_else(|| panic!("{} registered", f.name()));
        let args = vec![DataType::Int64; f.args().len()];
        assert_eq!(
            udf.return_type(&args).unwrap(),
            f.return_type(),
            "{}",
            f.name()
        );
    }
}

#[test]
fn the_docs_and_the_arroyo_plugin_have_the_same_functions() {
    let doc = include_str!("lib.rs");
    let arroyo = include_str!("../arroyo/src/lib.rs");
    let arroyo_manifest = include_str!("../arroyo/Cargo.toml");
    for f in TagFunction::ALL {
        let name = f.name();
        assert!(
            doc.contains(&format!("//! {}\n", f.sql_signature())),
            "{name} in the doc"
        );
        assert!(
            arroyo_manifest.contains(&format!("\n{name} = []\n")),
            "{name} feature"
        );
        assert!(
            arroyo.contains(&format!(
                "#[cfg_attr(feature = \"{name}\", arroyo_udf_plugin::udf)]"
            )),
            "{name} is an Arroyo UDF"
        );
        let start = arroyo
            .find(&format!("pub fn {name}("))
            .unwrap_or_else(|| panic!("pub fn {name} in the plugin"));
        let params = &arroyo[start + name.len() + 8..];
        let params = &params[..params.find(')').unwrap()];
        let names: Vec<&str> = params
            .split(',')
            .filter_map(|p| p.split(':').next())
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        assert_eq!(names, f.args(), "{name}: same arguments in Arroyo");
    }
}

#[test]
fn result_arrays_have_the_batch_length() {
    // A direct call, as DataFusion makes it, with one column and one literal.
    use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl};
    let udf = crate::TagUdf::new(TagFunction::FrequentWith);
    let sales: ArrayRef = Arc::new(Int64Array::from(vec![Some(8), Some(7), None]));
    let args = ScalarFunctionArgs {
        args: vec![
            ColumnarValue::Array(sales),
            ColumnarValue::Scalar(ScalarValue::Int64(Some(8))),
        ],
        arg_fields: vec![
            Arc::new(Field::new("sales", DataType::Int64, true)),
            Arc::new(Field::new("min_sales", DataType::Int64, false)),
        ],
        number_rows: 3,
        return_field: Arc::new(Field::new("out", DataType::Boolean, true)),
        config_options: Arc::default(),
    };
    let ColumnarValue::Array(out) = udf.invoke_with_args(args).unwrap() else {
        panic!("an array for an array argument");
    };
    assert_eq!(out.len(), 3);
    assert_eq!(out.null_count(), 1);
    assert_eq!(
        ScalarValue::try_from_array(&out, 0).unwrap(),
        boolean(Some(true))
    );
    assert_eq!(
        ScalarValue::try_from_array(&out, 1).unwrap(),
        boolean(Some(false))
    );
}
