//! The tag functions as DataFusion scalar UDFs, for the embedded mart.
//!
//! One [`ScalarUDFImpl`] ([`TagUdf`]) serves every function of
//! [`TagFunction::ALL`]: the signature is exact `BIGINT` arguments (DataFusion
//! coerces `INT`, `SMALLINT` and untyped `NULL` to them), the body runs the
//! row function of [`crate::row`] over the batch's `Int64Array`s into a
//! `BooleanArray` (an `Int64Array` for `sp_quarter_of_day`). When every
//! argument is a literal the function is evaluated once and returns a scalar.
//! The functions are `Immutable`, so DataFusion may fold them on literals.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanBuilder, Int64Array, Int64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_int64_array;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::row;

/// One SQL function of this crate. The same names, arguments and meanings
/// as the Arroyo plugin's (`udf/arroyo`), since both run [`crate::row`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagFunction {
    HighValue,
    HighValueWith,
    Frequent,
    FrequentWith,
    MultiStore,
    MultiStoreWith,
    OnlineFirst,
    OnlineFirstWith,
    PromoResponsive,
    PromoResponsiveWith,
    SeasonalBuyer,
    SeasonalBuyerWith,
    ChurnRisk,
    ChurnRiskWith,
    NewMember,
    NewMemberWith,
    StoreLoyal,
    StoreLoyalWith,
    ShareAtLeast,
    QuarterOfDay,
}

/// How a function computes one row from its (possibly `NULL`) arguments.
/// The arity is that of [`TagFunction::args`], which the signature enforces.
#[derive(Clone, Copy)]
enum RowFn {
    Bool(fn(&[Option<i64>]) -> Option<bool>),
    Int(fn(&[Option<i64>]) -> Option<i64>),
}

impl TagFunction {
    /// Every function, in the order of the crate doc.
    pub const ALL: [TagFunction; 20] = [
        TagFunction::HighValue,
        TagFunction::HighValueWith,
        TagFunction::Frequent,
        TagFunction::FrequentWith,
        TagFunction::MultiStore,
        TagFunction::MultiStoreWith,
        TagFunction::OnlineFirst,
        TagFunction::OnlineFirstWith,
        TagFunction::PromoResponsive,
        TagFunction::PromoResponsiveWith,
        TagFunction::SeasonalBuyer,
        TagFunction::SeasonalBuyerWith,
        TagFunction::ChurnRisk,
        TagFunction::ChurnRiskWith,
        TagFunction::NewMember,
        TagFunction::NewMemberWith,
        TagFunction::StoreLoyal,
        TagFunction::StoreLoyalWith,
        TagFunction::ShareAtLeast,
        TagFunction::QuarterOfDay,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        use TagFunction as F;
        match self {
            F::HighValue => "sp_high_value",
            F::HighValueWith => "sp_high_value_with",
            F::Frequent => "sp_frequent",
            F::FrequentWith => "sp_frequent_with",
            F::MultiStore => "sp_multi_store",
            F::MultiStoreWith => "sp_multi_store_with",
            F::OnlineFirst => "sp_online_first",
            F::OnlineFirstWith => "sp_online_first_with",
            F::PromoResponsive => "sp_promo_responsive",
            F::PromoResponsiveWith => "sp_promo_responsive_with",
            F::SeasonalBuyer => "sp_seasonal_buyer",
            F::SeasonalBuyerWith => "sp_seasonal_buyer_with",
            F::ChurnRisk => "sp_churn_risk",
            F::ChurnRiskWith => "sp_churn_risk_with",
            F::NewMember => "sp_new_member",
            F::NewMemberWith => "sp_new_member_with",
            F::StoreLoyal => "sp_store_loyal",
            F::StoreLoyalWith => "sp_store_loyal_with",
            F::ShareAtLeast => "sp_share_at_least",
            F::QuarterOfDay => "sp_quarter_of_day",
        }
    }

    /// The argument names, all `BIGINT`.
    pub fn args(self) -> &'static [&'static str] {
        use TagFunction as F;
        match self {
            F::HighValue => &["net_spend_cents"],
            F::HighValueWith => &["net_spend_cents", "min_net_spend_cents"],
            F::Frequent => &["sales"],
            F::FrequentWith => &["sales", "min_sales"],
            F::MultiStore => &["stores"],
            F::MultiStoreWith => &["stores", "min_stores"],
            F::OnlineFirst => &["sales", "online_sales"],
            F::OnlineFirstWith => &["sales", "online_sales", "min_sales", "min_share_permille"],
            F::PromoResponsive => &["lines", "promo_lines"],
            F::PromoResponsiveWith => &["lines", "promo_lines", "min_lines", "min_share_permille"],
            F::SeasonalBuyer => &["sales", "spend_cents", "top_quarter_spend_cents"],
            F::SeasonalBuyerWith => &[
                "sales",
                "spend_cents",
                "top_quarter_spend_cents",
                "min_sales",
                "min_share_permille",
            ],
            F::ChurnRisk => &["total_sales", "sales_in_quiet_window"],
            F::ChurnRiskWith => &["total_sales", "sales_in_quiet_window", "min_total_sales"],
            F::NewMember => &["days_since_registration"],
            F::NewMemberWith => &["days_since_registration", "window_days"],
            F::StoreLoyal => &["sales", "spend_cents", "top_store_spend_cents"],
            F::StoreLoyalWith => &[
                "sales",
                "spend_cents",
                "top_store_spend_cents",
                "min_sales",
                "min_share_permille",
            ],
            F::ShareAtLeast => &["part", "whole", "share_permille"],
            F::QuarterOfDay => &["day"],
        }
    }

    /// The SQL return type.
    pub fn return_type(self) -> DataType {
        match self {
            TagFunction::QuarterOfDay => DataType::Int64,
            _ => DataType::Boolean,
        }
    }

    /// `name(arg BIGINT, ...) -> BOOLEAN`, as the crate doc lists it.
    pub fn sql_signature(self) -> String {
        let args: Vec<String> = self.args().iter().map(|a| format!("{a} BIGINT")).collect();
        let ret = match self.return_type() {
            DataType::Int64 => "BIGINT",
            _ => "BOOLEAN",
        };
        format!("{}({}) -> {ret}", self.name(), args.join(", "))
    }

    /// The row function. `a[i]?` makes an argument strict (`NULL` in, `NULL`
    /// out); only `days_since_registration` is passed on as `NULL`.
    fn row_fn(self) -> RowFn {
        use TagFunction as F;
        match self {
            F::HighValue => RowFn::Bool(|a| Some(row::sp_high_value(a[0]?))),
            F::HighValueWith => RowFn::Bool(|a| Some(row::sp_high_value_with(a[0]?, a[1]?))),
            F::Frequent => RowFn::Bool(|a| row::sp_frequent(a[0]?)),
            F::FrequentWith => RowFn::Bool(|a| row::sp_frequent_with(a[0]?, a[1]?)),
            F::MultiStore => RowFn::Bool(|a| row::sp_multi_store(a[0]?)),
            F::MultiStoreWith => RowFn::Bool(|a| row::sp_multi_store_with(a[0]?, a[1]?)),
            F::OnlineFirst => RowFn::Bool(|a| row::sp_online_first(a[0]?, a[1]?)),
            F::OnlineFirstWith => {
                RowFn::Bool(|a| row::sp_online_first_with(a[0]?, a[1]?, a[2]?, a[3]?))
            }
            F::PromoResponsive => RowFn::Bool(|a| row::sp_promo_responsive(a[0]?, a[1]?)),
            F::PromoResponsiveWith => {
                RowFn::Bool(|a| row::sp_promo_responsive_with(a[0]?, a[1]?, a[2]?, a[3]?))
            }
            F::SeasonalBuyer => RowFn::Bool(|a| row::sp_seasonal_buyer(a[0]?, a[1]?, a[2]?)),
            F::SeasonalBuyerWith => {
                RowFn::Bool(|a| row::sp_seasonal_buyer_with(a[0]?, a[1]?, a[2]?, a[3]?, a[4]?))
            }
            F::ChurnRisk => RowFn::Bool(|a| row::sp_churn_risk(a[0]?, a[1]?)),
            F::ChurnRiskWith => RowFn::Bool(|a| row::sp_churn_risk_with(a[0]?, a[1]?, a[2]?)),
            F::NewMember => RowFn::Bool(|a| row::sp_new_member(a[0])),
            F::NewMemberWith => RowFn::Bool(|a| row::sp_new_member_with(a[0], a[1]?)),
            F::StoreLoyal => RowFn::Bool(|a| row::sp_store_loyal(a[0]?, a[1]?, a[2]?)),
            F::StoreLoyalWith => {
                RowFn::Bool(|a| row::sp_store_loyal_with(a[0]?, a[1]?, a[2]?, a[3]?, a[4]?))
            }
            F::ShareAtLeast => RowFn::Bool(|a| row::sp_share_at_least(a[0]?, a[1]?, a[2]?)),
            F::QuarterOfDay => RowFn::Int(|a| row::sp_quarter_of_day(a[0]?)),
        }
    }
}

/// A [`TagFunction`] as a DataFusion scalar UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TagUdf {
    function: TagFunction,
    signature: Signature,
}

impl TagUdf {
    /// The UDF of one function.
    pub fn new(function: TagFunction) -> Self {
        Self {
            function,
            signature: Signature::exact(
                vec![DataType::Int64; function.args().len()],
                Volatility::Immutable,
            ),
        }
    }

    /// One row's arguments from scalars; `None` if one is not an `Int64`
    /// (cannot happen after coercion to the exact signature).
    fn scalar_args(args: &[ColumnarValue]) -> Option<Vec<Option<i64>>> {
        args.iter()
            .map(|a| match a {
                ColumnarValue::Scalar(ScalarValue::Int64(v)) => Some(*v),
                ColumnarValue::Scalar(ScalarValue::Null) => Some(None),
                _ => None,
            })
            .collect()
    }
}

impl ScalarUDFImpl for TagUdf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.function.return_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let row_fn = self.function.row_fn();
        let arity = self.function.args().len();
        if args.args.len() != arity {
            return exec_err!(
                "{} takes {arity} arguments, got {}",
                self.function.name(),
                args.args.len()
            );
        }

        // All literals: one row, one scalar answer.
        if let Some(row) = Self::scalar_args(&args.args) {
            return Ok(ColumnarValue::Scalar(match row_fn {
                RowFn::Bool(f) => ScalarValue::Boolean(f(&row)),
                RowFn::Int(f) => ScalarValue::Int64(f(&row)),
            }));
        }

        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let columns = arrays
            .iter()
            .map(|a| as_int64_array(a))
            .collect::<Result<Vec<&Int64Array>>>()?;
        let len = columns.first().map_or(0, |c| c.len());
        let mut row = vec![None; arity];
        let fill = |i: usize, row: &mut [Option<i64>]| {
            for (slot, column) in row.iter_mut().zip(&columns) {
                *slot = column.is_valid(i).then(|| column.value(i));
            }
        };

        let out: ArrayRef = match row_fn {
            RowFn::Bool(f) => {
                let mut builder = BooleanBuilder::with_capacity(len);
                for i in 0..len {
                    fill(i, &mut row);
                    builder.append_option(f(&row));
                }
                Arc::new(builder.finish())
            }
            RowFn::Int(f) => {
                let mut builder = Int64Builder::with_capacity(len);
                for i in 0..len {
                    fill(i, &mut row);
                    builder.append_option(f(&row));
                }
                Arc::new(builder.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// Every function of this crate as a DataFusion UDF.
pub fn tag_udfs() -> Vec<ScalarUDF> {
    TagFunction::ALL
        .into_iter()
        .map(|f| ScalarUDF::new_from_impl(TagUdf::new(f)))
        .collect()
}

/// Registers every function of this crate (`sp_high_value`, ...; see the
/// crate doc) in `ctx`, replacing functions of the same name.
pub fn register_tag_udfs(ctx: &SessionContext) {
    for udf in tag_udfs() {
        ctx.register_udf(udf);
    }
}
