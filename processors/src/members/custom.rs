//! Operator-defined tags: CEL expressions over a member's features.
//!
//! Expressions are compiled and checked at start (unknown variable, syntax
//! error, or a result that is not a bool on an empty member: the config is
//! refused with the reason). The features are step functions of the
//! member's events and of whole days leaving a window, so a custom tag, like
//! a built-in one, can only change on an event or on a day when one of the
//! member's aggregates leaves a 30/60/90/365-day window: the timer wheel
//! finds those days without evaluating quiet members.
//!
//! Features (all windows are whole China days ending with `T`'s day):
//! `sales_30d`, `sales_60d`, `sales_90d`, `sales_365d`, `total_sales`,
//! `spend_30d_cents`, `spend_90d_cents`, `spend_365d_cents`,
//! `refund_90d_cents`, `net_spend_90d_cents`, `online_sales_90d`,
//! `lines_90d`, `promo_lines_90d`, `stores_90d`, `points_balance` (ints);
//! `online_share_90d`, `promo_share_90d`, `top_store_share_90d`,
//! `top_quarter_share_365d` (doubles, 0 when there is nothing to share);
//! `registered` (bool); and each built-in tag's name as a bool
//! (`high_value`, `churn_risk`, ...).
//!
//! **Cost.** An expression of comparisons of features with literals of the
//! same type joined by `&&`, `||` and `!` is evaluated natively (see
//! [`Native`]); any other runs in the CEL interpreter, with its variables
//! resolved by index. Either way a tag is re-run only when a variable it
//! reads changed since its last run ([`CelMemo`]).

use std::sync::Arc;

use cel::common::ast::{operators, Expr, IdedExpr, LiteralValue};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value};
use storepulse_tags::{Tag, TagSet, WindowStats, CUSTOM_TAG_BASE};

use super::config::CustomTagConfig;

/// The windows (days) custom-tag features are computed over.
pub const FEATURE_WINDOWS: [u32; 4] = [30, 60, 90, 365];

/// A member's features as custom tags see them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    pub w30: WindowStats,
    pub w60: WindowStats,
    pub w90: WindowStats,
    pub w365: WindowStats,
    pub total_sales: u32,
    pub points_balance: i64,
    pub registered: bool,
    pub builtin: TagSet,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn int(v: impl Into<i64>) -> Value {
    Value::Int(v.into())
}

fn sat_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Every variable name a custom expression may use.
pub fn variable_names() -> impl Iterator<Item = &'static str> {
    NAMES.into_iter().chain(Tag::ALL.iter().map(|t| t.as_str()))
}

/// The variables other than the built-in tags, in the order of
/// [`variable_names`]; variable `NAMES.len() + i` is the tag `Tag::ALL[i]`.
const NAMES: [&str; 20] = [
    "sales_30d",
    "sales_60d",
    "sales_90d",
    "sales_365d",
    "total_sales",
    "spend_30d_cents",
    "spend_90d_cents",
    "spend_365d_cents",
    "refund_90d_cents",
    "net_spend_90d_cents",
    "online_sales_90d",
    "lines_90d",
    "promo_lines_90d",
    "stores_90d",
    "points_balance",
    "online_share_90d",
    "promo_share_90d",
    "top_store_share_90d",
    "top_quarter_share_365d",
    "registered",
];

/// The index of a variable name in [`variable_names`].
fn variable_index(name: &str) -> Option<usize> {
    variable_names().position(|n| n == name)
}

impl Features {
    /// The value of a variable, or `None` for an unknown name.
    pub fn value(&self, name: &str) -> Option<Value> {
        self.value_at(variable_index(name)?)
    }

    /// The value of variable `i` of [`variable_names`] (resolved once, at
    /// compile time, not by name on every evaluation).
    fn value_at(&self, i: usize) -> Option<Value> {
        let f = self;
        Some(match i {
            0 => int(f.w30.sales),
            1 => int(f.w60.sales),
            2 => int(f.w90.sales),
            3 => int(f.w365.sales),
            4 => int(f.total_sales),
            5 => int(sat_i64(f.w30.spend_cents)),
            6 => int(sat_i64(f.w90.spend_cents)),
            7 => int(sat_i64(f.w365.spend_cents)),
            8 => int(sat_i64(f.w90.refund_cents)),
            9 => int(f.w90.net_spend_cents()),
            10 => int(f.w90.online_sales),
            11 => int(f.w90.lines),
            12 => int(f.w90.promo_lines),
            13 => int(f.w90.stores),
            14 => int(f.points_balance),
            15 => Value::Float(share(f.w90.online_sales.into(), f.w90.sales.into())),
            16 => Value::Float(share(f.w90.promo_lines.into(), f.w90.lines.into())),
            17 => Value::Float(share(f.w90.top_store_spend_cents, f.w90.spend_cents)),
            18 => Value::Float(share(f.w365.top_quarter_spend_cents, f.w365.spend_cents)),
            19 => Value::Bool(f.registered),
            i => Value::Bool(f.builtin.has(*Tag::ALL.get(i - NAMES.len())?)),
        })
    }
}

/// One compiled custom tag.
struct CompiledTag {
    name: String,
    program: Program,
    /// The variables the expression reads (only these are resolved).
    variables: Vec<String>,
    /// Their indices in [`variable_names`].
    indices: Vec<usize>,
    /// The expression evaluated natively, when it is in the subset that
    /// [`Native::lower`] takes (else CEL runs it).
    native: Option<Native>,
}

/// The type of a feature or literal in a natively evaluated expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    Double,
    Bool,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn of(function: &str) -> Option<Self> {
        Some(match function {
            operators::EQUALS => Cmp::Eq,
            operators::NOT_EQUALS => Cmp::Ne,
            operators::LESS => Cmp::Lt,
            operators::LESS_EQUALS => Cmp::Le,
            operators::GREATER => Cmp::Gt,
            operators::GREATER_EQUALS => Cmp::Ge,
            _ => return None,
        })
    }

    fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// A custom tag's expression evaluated without the CEL interpreter: the
/// subset of features (by position in the tag's variables) and int, double
/// and bool literals compared with a literal or feature *of the same type*,
/// combined with `&&`, `||` and `!`. Nothing in it can fail (no arithmetic,
/// no mixed types, no NaN: the double features are shares in 0-1 and a
/// literal cannot be NaN), so it equals CEL's result; any other expression
/// is left to CEL. Most operator rules look like this
/// (`spend_365d_cents >= 100000 && sales_30d == 0`).
#[derive(Debug, Clone)]
enum Native {
    Var(usize),
    Int(i64),
    Double(f64),
    Bool(bool),
    Not(Box<Native>),
    And(Box<Native>, Box<Native>),
    Or(Box<Native>, Box<Native>),
    Cmp(Cmp, Box<Native>, Box<Native>),
}

/// The type of variable `i` of [`variable_names`].
fn type_of(i: usize) -> Ty {
    match i {
        0..=14 => Ty::Int,
        15..=18 => Ty::Double,
        _ => Ty::Bool,
    }
}

impl Native {
    /// The native form of a boolean expression, if it is in the subset.
    /// `variables`/`indices`: the tag's variables and their indices.
    fn lower(e: &IdedExpr, variables: &[String], indices: &[usize]) -> Option<Self> {
        match Self::typed(e, variables, indices)? {
            (n, Ty::Bool) => Some(n),
            _ => None,
        }
    }

    fn typed(e: &IdedExpr, variables: &[String], indices: &[usize]) -> Option<(Self, Ty)> {
        let lower = |e: &IdedExpr| Self::typed(e, variables, indices);
        Some(match &e.expr {
            Expr::Ident(name) => {
                let k = variables.iter().position(|v| v == name)?;
                let ty = type_of(*indices.get(k)?);
                (Native::Var(k), ty)
            }
            Expr::Literal(LiteralValue::Int(i)) => (Native::Int(*i.inner()), Ty::Int),
            Expr::Literal(LiteralValue::Double(d)) if !d.inner().is_nan() => {
                (Native::Double(*d.inner()), Ty::Double)
            }
            Expr::Literal(LiteralValue::Boolean(b)) => (Native::Bool(*b.inner()), Ty::Bool),
            Expr::Call(call) if call.target.is_none() => {
                match (call.func_name.as_str(), call.args.as_slice()) {
                    (operators::LOGICAL_NOT, [a]) => match lower(a)? {
                        (a, Ty::Bool) => (Native::Not(Box::new(a)), Ty::Bool),
                        _ => return None,
                    },
                    (f @ (operators::LOGICAL_AND | operators::LOGICAL_OR), [a, b]) => {
                        let ((a, Ty::Bool), (b, Ty::Bool)) = (lower(a)?, lower(b)?) else {
                            return None;
                        };
                        let (a, b) = (Box::new(a), Box::new(b));
                        if f == operators::LOGICAL_AND {
                            (Native::And(a, b), Ty::Bool)
                        } else {
                            (Native::Or(a, b), Ty::Bool)
                        }
                    }
                    (f, [a, b]) => {
                        let op = Cmp::of(f)?;
                        let ((a, ta), (b, tb)) = (lower(a)?, lower(b)?);
                        let ordered = matches!(op, Cmp::Eq | Cmp::Ne) || ta != Ty::Bool;
                        if ta != tb || !ordered {
                            return None;
                        }
                        (Native::Cmp(op, Box::new(a), Box::new(b)), Ty::Bool)
                    }
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// The value of a bool expression over the tag's variable values.
    fn holds(&self, values: &[Value]) -> bool {
        match self {
            Native::Var(k) => matches!(values.get(*k), Some(Value::Bool(true))),
            Native::Bool(b) => *b,
            Native::Not(a) => !a.holds(values),
            Native::And(a, b) => a.holds(values) && b.holds(values),
            Native::Or(a, b) => a.holds(values) || b.holds(values),
            Native::Cmp(op, a, b) => match (a.scalar(values), b.scalar(values)) {
                (Scalar::Int(a), Scalar::Int(b)) => op.holds(a, b),
                (Scalar::Double(a), Scalar::Double(b)) => op.holds(a, b),
                (Scalar::Bool(a), Scalar::Bool(b)) => op.holds(a, b),
                // Types were checked when lowering.
                _ => false,
            },
            Native::Int(_) | Native::Double(_) => false,
        }
    }

    fn scalar(&self, values: &[Value]) -> Scalar {
        match self {
            Native::Var(k) => match values.get(*k) {
                Some(Value::Int(i)) => Scalar::Int(*i),
                Some(Value::Float(f)) => Scalar::Double(*f),
                Some(Value::Bool(b)) => Scalar::Bool(*b),
                _ => Scalar::None,
            },
            Native::Int(i) => Scalar::Int(*i),
            Native::Double(d) => Scalar::Double(*d),
            other => Scalar::Bool(other.holds(values)),
        }
    }
}

/// A value in a native comparison.
enum Scalar {
    Int(i64),
    Double(f64),
    Bool(bool),
    None,
}

/// The values of the variables one expression reads, resolved by name
/// when the program looks them up (no per-run binding into a map).
struct Bound<'a> {
    names: &'a [String],
    values: &'a [Value],
}

impl VariableResolver for Bound<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let i = self.names.iter().position(|n| n == variable)?;
        let value = self.values.get(i)?.clone();
        Box::<dyn Val>::try_from(value).ok().map(CowVal::Owned)
    }
}

/// The last inputs and result of each custom tag. CEL is pure, so a tag
/// whose variables have the same values as in its last run has the same
/// result: [`CustomTags::evaluate_memo`] runs CEL only when a variable the
/// expression reads changed. The timer's probes of one member (the same
/// member on successive candidate days) mostly hit; a new event mostly
/// does not.
#[derive(Debug, Clone, Default)]
pub struct CelMemo {
    /// Per tag: the inputs (one word per variable) and the result.
    last: Vec<Option<(Vec<u64>, bool)>>,
    /// Scratch: the values of the current run.
    values: Vec<Value>,
    keys: Vec<u64>,
}

/// A word that equals another iff the values are equal (each variable has
/// one type; doubles compare by bits, which is conservative).
fn key_of(value: &Value) -> u64 {
    match value {
        Value::Int(i) => *i as u64,
        Value::UInt(u) => *u,
        Value::Float(f) => f.to_bits(),
        Value::Bool(b) => u64::from(*b),
        // Features are ints, doubles and bools only.
        _ => u64::MAX,
    }
}

/// The compiled custom tags, in configuration order (bit 16 + index).
#[derive(Clone, Default)]
pub struct CustomTags {
    env: Option<Arc<Env>>,
    tags: Arc<Vec<CompiledTag>>,
}

impl std::fmt::Debug for CustomTags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl CustomTags {
    /// Compiles and checks the configured tags.
    ///
    /// # Errors
    /// A message naming the tag's field and the reason.
    pub fn compile(configs: &[CustomTagConfig]) -> Result<Self, String> {
        let env = Arc::new(Env::stdlib());
        let mut tags = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let field = format!("members.custom_tags[{i}]");
            if !valid_name(&c.name) {
                return Err(format!(
                    "{field}.name: \"{}\" must match [a-z][a-z0-9_]* (at most 32 characters)",
                    c.name
                ));
            }
            if Tag::from_name(&c.name).is_some() {
                return Err(format!("{field}.name: \"{}\" is a built-in tag", c.name));
            }
            if configs[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("{field}.name: \"{}\" is defined twice", c.name));
            }
            let program = env
                .compile(&c.expr)
                .map_err(|e| format!("{field}.expr: {e}"))?;
            let variables: Vec<String> = program
                .references()
                .variables()
                .into_iter()
                .map(str::to_string)
                .collect();
            for v in &variables {
                if !variable_names().any(|n| n == v) {
                    return Err(format!(
                        "{field}.expr: unknown variable \"{v}\" (features: {})",
                        variable_names().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            let indices: Vec<usize> = variables.iter().filter_map(|v| variable_index(v)).collect();
            let native = Native::lower(program.expression(), &variables, &indices);
            let tag = CompiledTag {
                name: c.name.clone(),
                program,
                variables,
                indices,
                native,
            };
            // A trial run on an empty member: the expression must yield a bool.
            match run(&env, &tag, &Features::default()) {
                Ok(_) => {}
                Err(e) => return Err(format!("{field}.expr: {e}")),
            }
            tags.push(tag);
        }
        Ok(Self {
            env: Some(env),
            tags: Arc::new(tags),
        })
    }

    /// Whether any custom tag is configured.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// The names, in bit order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(|t| t.name.as_str())
    }

    /// The name of a tag bit (built-in or custom).
    pub fn bit_name(&self, bit: u32) -> Option<&str> {
        if bit < CUSTOM_TAG_BASE {
            return Tag::ALL.get(bit as usize).map(|t| t.as_str());
        }
        self.tags
            .get((bit - CUSTOM_TAG_BASE) as usize)
            .map(|t| t.name.as_str())
    }

    /// The bit of a tag name (built-in or custom).
    pub fn bit_of(&self, name: &str) -> Option<u32> {
        if let Some(t) = Tag::from_name(name) {
            return Some(t as u32);
        }
        self.tags
            .iter()
            .position(|t| t.name == name)
            .map(|i| CUSTOM_TAG_BASE + i as u32)
    }

    /// Sets the custom bits of `set` from the features. An expression that
    /// fails at run time (e.g. a division by zero) reads as false.
    pub fn evaluate(&self, features: &Features, set: &mut TagSet) {
        self.evaluate_memo(features, set, &mut CelMemo::default());
    }

    /// [`CustomTags::evaluate`], running an expression only when a variable
    /// it reads differs from its last run remembered in `memo` (the result
    /// is the same either way).
    pub fn evaluate_memo(&self, features: &Features, set: &mut TagSet, memo: &mut CelMemo) {
        let Some(env) = &self.env else { return };
        if memo.last.len() != self.tags.len() {
            memo.last = vec![None; self.tags.len()];
        }
        for (i, tag) in self.tags.iter().enumerate() {
            memo.values.clear();
            memo.keys.clear();
            for &v in &tag.indices {
                // Every variable was checked at compile time.
                let value = features.value_at(v).unwrap_or(Value::Null);
                memo.keys.push(key_of(&value));
                memo.values.push(value);
            }
            let on = match &mut memo.last[i] {
                Some((keys, on)) if *keys == memo.keys => *on,
                last => {
                    let on = match &tag.native {
                        Some(n) => n.holds(&memo.values),
                        None => run_values(env, tag, &memo.values).unwrap_or(false),
                    };
                    match last {
                        Some((keys, result)) => {
                            keys.clone_from(&memo.keys);
                            *result = on;
                        }
                        None => *last = Some((memo.keys.clone(), on)),
                    }
                    on
                }
            };
            set.set_bit(CUSTOM_TAG_BASE + i as u32, on);
        }
    }
}

fn run(env: &Arc<Env>, tag: &CompiledTag, features: &Features) -> Result<bool, String> {
    let values: Vec<Value> = tag
        .indices
        .iter()
        .map(|&v| features.value_at(v).unwrap_or(Value::Null))
        .collect();
    run_values(env, tag, &values)
}

/// Runs a tag's program with `values` (one per variable, in order).
fn run_values(env: &Arc<Env>, tag: &CompiledTag, values: &[Value]) -> Result<bool, String> {
    let bound = Bound {
        names: &tag.variables,
        values,
    };
    let mut ctx = Context::with_env(env.clone());
    ctx.set_variable_resolver(&bound);
    match tag.program.execute(&ctx) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("must yield a bool, yields {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str, expr: &str) -> CustomTagConfig {
        CustomTagConfig {
            name: name.into(),
            expr: expr.into(),
            action: None,
        }
    }

    #[test]
    fn custom_tags_evaluate_over_features() {
        let tags = CustomTags::compile(&[
            tag(
                "big_spender_lapsed",
                "spend_365d_cents >= 100000 && sales_90d == 0",
            ),
            tag("vip_online", "high_value && online_share_90d >= 0.5"),
        ])
        .unwrap();
        let mut f = Features::default();
        f.w365.spend_cents = 100_000;
        let mut set = TagSet::default();
        tags.evaluate(&f, &mut set);
        assert!(set.has_bit(CUSTOM_TAG_BASE));
        assert!(!set.has_bit(CUSTOM_TAG_BASE + 1));
        assert_eq!(tags.bit_of("vip_online"), Some(CUSTOM_TAG_BASE + 1));
        assert_eq!(tags.bit_name(CUSTOM_TAG_BASE), Some("big_spender_lapsed"));
    }

    #[test]
    fn native_evaluation_equals_cel() {
        let native = [
            "spend_365d_cents >= 100000 && sales_30d == 0",
            "high_value || !registered",
            "online_share_90d >= 0.5 && stores_90d > 1",
            "(sales_90d > 3) == registered",
            "points_balance < 0 || total_sales != 5 && !(lines_90d <= 2)",
            "promo_share_90d < 0.25 || top_store_share_90d == 1.0",
            "churn_risk",
            "-1 < points_balance",
        ];
        let cel_only = [
            "sales_30d + 1 > 2",
            "online_share_90d > 0",
            "sales_30d > 2 ? registered : high_value",
            "-points_balance < 1",
        ];
        let configs: Vec<CustomTagConfig> = native
            .iter()
            .chain(cel_only.iter())
            .enumerate()
            .map(|(i, e)| tag(&format!("t{i}"), e))
            .collect();
        let tags = CustomTags::compile(&configs).unwrap();
        for (i, t) in tags.tags.iter().enumerate() {
            assert_eq!(t.native.is_some(), i < native.len(), "{}", configs[i].expr);
        }
        let env = tags.env.clone().unwrap();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut memo = CelMemo::default();
        for _ in 0..2000 {
            let mut f = Features::default();
            f.w30.sales = next(3) as u32;
            f.w90.sales = next(6) as u32;
            f.w90.online_sales = f.w90.sales.min(next(4) as u32);
            f.w90.lines = next(5) as u32;
            f.w90.promo_lines = f.w90.lines.min(next(3) as u32);
            f.w90.stores = next(3) as u32;
            f.w90.spend_cents = next(3) * 50;
            f.w90.top_store_spend_cents = f.w90.spend_cents.min(next(3) * 50);
            f.w365.spend_cents = next(3) * 50_000;
            f.total_sales = next(7) as u32;
            f.points_balance = next(5) as i64 - 2;
            f.registered = next(2) == 1;
            f.builtin.set_bit(Tag::HighValue as u32, next(2) == 1);
            f.builtin.set_bit(Tag::ChurnRisk as u32, next(2) == 1);
            let mut set = TagSet::default();
            tags.evaluate_memo(&f, &mut set, &mut memo);
            for (i, t) in tags.tags.iter().enumerate() {
                let cel = run(&env, t, &f).unwrap_or(false);
                assert_eq!(
                    set.has_bit(CUSTOM_TAG_BASE + i as u32),
                    cel,
                    "{} on {f:?}",
                    configs[i].expr
                );
            }
        }
    }

    #[test]
    fn every_variable_has_a_value_of_its_name() {
        let mut f = Features::default();
        f.w30.sales = 3;
        f.w365.spend_cents = 7;
        f.w90.sales = 4;
        f.w90.online_sales = 1;
        f.registered = true;
        f.builtin.set_bit(Tag::ChurnRisk as u32, true);
        for name in variable_names() {
            assert!(f.value(name).is_some(), "{name}");
        }
        assert_eq!(f.value("sales_30d"), Some(Value::Int(3)));
        assert_eq!(f.value("spend_365d_cents"), Some(Value::Int(7)));
        assert_eq!(f.value("online_share_90d"), Some(Value::Float(0.25)));
        assert_eq!(f.value("registered"), Some(Value::Bool(true)));
        assert_eq!(f.value("churn_risk"), Some(Value::Bool(true)));
        assert_eq!(f.value("high_value"), Some(Value::Bool(false)));
        assert_eq!(f.value("store_loyal"), Some(Value::Bool(false)));
        assert_eq!(f.value("nope"), None);
    }

    #[test]
    fn bad_custom_tags_are_refused_with_the_field() {
        let e = CustomTags::compile(&[tag("x", "sales_90d >")]).unwrap_err();
        assert!(e.starts_with("members.custom_tags[0].expr"), "{e}");
        let e = CustomTags::compile(&[tag("x", "salez_90d > 1")]).unwrap_err();
        assert!(e.contains("unknown variable \"salez_90d\""), "{e}");
        let e = CustomTags::compile(&[tag("x", "sales_90d + 1")]).unwrap_err();
        assert!(e.contains("bool"), "{e}");
        let e = CustomTags::compile(&[tag("churn_risk", "true")]).unwrap_err();
        assert!(e.contains("built-in"), "{e}");
        let e = CustomTags::compile(&[tag("Bad-Name", "true")]).unwrap_err();
        assert!(e.contains(".name"), "{e}");
    }
}
