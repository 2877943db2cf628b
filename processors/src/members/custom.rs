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

use std::sync::Arc;

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
            let indices = variables.iter().filter_map(|v| variable_index(v)).collect();
            let tag = CompiledTag {
                name: c.name.clone(),
                program,
                variables,
                indices,
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
                    let on = run_values(env, tag, &memo.values).unwrap_or(false);
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
