//! Fraud rules as data: what a rule names (grouping key, filter,
//! aggregates and thresholds, window), the defaults of RULES.md written as
//! such rules, validation, and the compiled form the processor runs.
//!
//! A rule of kind `window` reads: *for each value of `key`, the sales that
//! pass `filter`, within any span of `window_minutes` (last minus first
//! `occurred_at` at most that), that together reach every threshold in
//! `when` fire an alert.* `large_single_purchase` is the same shape with a
//! zero-minute window, keyed by order, and a filter that keeps only sales of
//! at least the amount: one such sale fires on its own.
//!
//! `points_overdraft` is evaluated by the member processor (it needs the
//! member's ledger in event-time order); its rule entry only switches it on
//! or off, so the risk team manages all four from one list.
//!
//! The file format is TOML, `[[rule]]` tables ([`RulesFile`], [`parse`],
//! [`render`]); `PUT /v1/rules/{name}` takes the same fields as JSON, so
//! both share one definition and one [`RuleSpec::validate`]. The runtime
//! owns the file itself (reading, watching, atomic rewrites).

use serde::{Deserialize, Serialize};
use storepulse_core::time::MINUTE;
use storepulse_core::{Channel, Event, EventBody, Fulfillment, PaymentMethod, StoreMaster, Ts};
use xxhash_rust::xxh3::xxh3_64;

/// The rules file's shape: `[[rule]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    #[serde(default)]
    pub rule: Vec<RuleSpec>,
}

/// Parses and compiles a rules file's text.
///
/// # Errors
/// TOML errors (with the line) and rule errors (with the rule and field).
pub fn parse(text: &str, stores: &StoreMaster) -> Result<RuleSet, String> {
    let file: RulesFile = toml::from_str(text).map_err(|e| e.to_string())?;
    RuleSet::compile(&file.rule, stores)
}

/// The TOML text of a rule set, with a header comment.
///
/// # Errors
/// Serialisation failure (not expected for these types).
pub fn render(rules: &RuleSet) -> Result<String, String> {
    let file = RulesFile {
        rule: rules.specs(),
    };
    let body = toml::to_string_pretty(&file).map_err(|e| e.to_string())?;
    Ok(format!(
        "# StorePulse fraud rules (RULES.md \"Fraud rules\"). Edited by hand or\n# through PUT /v1/rules/{{name}}; reloaded without a restart.\n\n{body}"
    ))
}

/// Longest window a rule may have (one day): window state is kept for
/// `allowed lateness + window`, so this bounds memory per key.
pub const MAX_WINDOW_MINUTES: u32 = 24 * 60;

/// Most rules in force at once.
pub const MAX_RULES: usize = 64;

/// What a rule groups sales by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The canonical member (aliases count together, late links included).
    Member,
    /// `payment.account_ref`, whoever the member.
    PaymentAccount,
    /// The sale's `order_id`.
    Order,
}

impl KeyKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::PaymentAccount => "payment_account",
            Self::Order => "order",
        }
    }
}

/// How a rule is evaluated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Sales of one key within a sliding event-time window (the default).
    #[default]
    Window,
    /// The member processor's points-overdraft alert (RULES.md "Points");
    /// only `enabled` applies.
    PointsOverdraft,
}

/// Which sales a rule looks at. Every list empty means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaleFilter {
    /// `pos`, `app`, `mini_program`, `web`, `backoffice`.
    pub channels: Vec<String>,
    /// `cash`, `card`, `wechat`, `alipay`, `points`, `other`.
    pub payment_methods: Vec<String>,
    /// `in_store`, `pickup`, `ship`.
    pub fulfillments: Vec<String>,
    /// Regions of `stores.csv`.
    pub regions: Vec<String>,
    /// Store ids of `stores.csv`.
    pub stores: Vec<String>,
    /// Only sales with `total_cents` at least this.
    pub min_sale_total_cents: u64,
}

/// The thresholds a window of sales must all reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Sum of the sales' `total_cents`.
    pub total_cents: u64,
    /// Distinct `store_id`s among the sales.
    pub distinct_stores: u32,
    /// Number of sales.
    pub sales: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            total_cents: 0,
            distinct_stores: 1,
            sales: 1,
        }
    }
}

fn default_true() -> bool {
    true
}

/// One rule, as the risk team writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `[a-z][a-z0-9_]*`, at most 64 characters; alerts carry it.
    pub name: String,
    /// What the rule is for, for the review queue.
    #[serde(default)]
    pub description: String,
    /// Off: no new alerts (alerts already raised stay in the queue).
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub kind: RuleKind,
    /// Grouping key (`window` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyKind>,
    /// Longest span, last minus first `occurred_at`, of the sales of one
    /// alert (`window` rules). `0..=1440`.
    #[serde(default)]
    pub window_minutes: u32,
    #[serde(default)]
    pub filter: SaleFilter,
    #[serde(default)]
    pub when: Thresholds,
}

impl RuleSpec {
    /// RULES.md's `multi_store_large_purchase`.
    pub fn multi_store_large_purchase() -> Self {
        Self {
            name: "multi_store_large_purchase".into(),
            description:
                "one member buys in 3 or more stores, 5,000 CNY or more, within 30 minutes".into(),
            enabled: true,
            kind: RuleKind::Window,
            key: Some(KeyKind::Member),
            window_minutes: 30,
            filter: SaleFilter::default(),
            when: Thresholds {
                total_cents: 500_000,
                distinct_stores: 3,
                sales: 1,
            },
        }
    }

    /// RULES.md's `shared_payment_account`.
    pub fn shared_payment_account() -> Self {
        Self {
            name: "shared_payment_account".into(),
            description:
                "one payment account pays in 3 or more stores, 5,000 CNY or more, within 30 minutes"
                    .into(),
            key: Some(KeyKind::PaymentAccount),
            ..Self::multi_store_large_purchase()
        }
    }

    /// RULES.md's `large_single_purchase`.
    pub fn large_single_purchase() -> Self {
        Self {
            name: "large_single_purchase".into(),
            description: "one sale of 20,000 CNY or more".into(),
            enabled: true,
            kind: RuleKind::Window,
            key: Some(KeyKind::Order),
            window_minutes: 0,
            filter: SaleFilter {
                min_sale_total_cents: 2_000_000,
                ..SaleFilter::default()
            },
            when: Thresholds {
                total_cents: 2_000_000,
                distinct_stores: 1,
                sales: 1,
            },
        }
    }

    /// RULES.md's `points_overdraft` (evaluated by the member processor).
    pub fn points_overdraft() -> Self {
        Self {
            name: "points_overdraft".into(),
            description: "a redemption takes the member's points balance below zero".into(),
            enabled: true,
            kind: RuleKind::PointsOverdraft,
            key: Some(KeyKind::Member),
            window_minutes: 0,
            filter: SaleFilter::default(),
            when: Thresholds::default(),
        }
    }

    /// Checks the rule against the store master; the message names the field.
    ///
    /// # Errors
    /// `<name>.<field>: <rule>`.
    pub fn validate(&self, stores: &StoreMaster) -> Result<(), String> {
        self.compile(stores).map(|_| ())
    }

    /// The compiled form.
    ///
    /// # Errors
    /// As [`RuleSpec::validate`].
    pub fn compile(&self, stores: &StoreMaster) -> Result<CompiledRule, String> {
        let name = &self.name;
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err(format!(
                "name: {name:?} must be [a-z][a-z0-9_]*, at most 64 characters"
            ));
        }
        let field = |f: &str, rule: String| format!("{name}.{f}: {rule}");
        if self.kind == RuleKind::PointsOverdraft {
            if self.key.is_some_and(|k| k != KeyKind::Member) {
                return Err(field(
                    "key",
                    "points_overdraft rules are keyed by member".into(),
                ));
            }
            return Ok(CompiledRule::new(self, KeyKind::Member));
        }
        let key = self
            .key
            .ok_or_else(|| field("key", "required: member, payment_account or order".into()))?;
        if self.window_minutes > MAX_WINDOW_MINUTES {
            return Err(field(
                "window_minutes",
                format!("must be 0..={MAX_WINDOW_MINUTES}"),
            ));
        }
        let w = &self.when;
        if w.sales == 0 || w.distinct_stores == 0 {
            return Err(field(
                "when",
                "sales and distinct_stores must be at least 1".into(),
            ));
        }
        if w.total_cents == 0 && w.sales == 1 && w.distinct_stores == 1 && key != KeyKind::Order {
            return Err(field(
                "when",
                "a rule that every single sale meets would alert on every sale; set total_cents, sales or distinct_stores".into(),
            ));
        }
        if w.sales > 10_000 || w.distinct_stores > 10_000 {
            return Err(field(
                "when",
                "sales and distinct_stores are at most 10000".into(),
            ));
        }
        let mut rule = CompiledRule::new(self, key);
        rule.window = Ts::from(self.window_minutes) * MINUTE;
        let f = &self.filter;
        rule.channels = mask(&f.channels, |s| Channel::from_wire(s).map(|c| c as u8))
            .map_err(|v| field("filter.channels", format!("unknown channel {v:?}")))?;
        rule.methods = mask(&f.payment_methods, |s| {
            PaymentMethod::from_wire(s).map(|m| m as u8)
        })
        .map_err(|v| field("filter.payment_methods", format!("unknown method {v:?}")))?;
        rule.fulfillments = mask(&f.fulfillments, |s| {
            Fulfillment::from_wire(s).map(|m| m as u8)
        })
        .map_err(|v| field("filter.fulfillments", format!("unknown fulfillment {v:?}")))?;
        if !f.regions.is_empty() || !f.stores.is_empty() {
            for r in &f.regions {
                if !stores.iter().any(|(_, s)| &s.region == r) {
                    return Err(field("filter.regions", format!("unknown region {r:?}")));
                }
            }
            for s in &f.stores {
                if stores.lookup(s).is_none() {
                    return Err(field("filter.stores", format!("unknown store {s:?}")));
                }
            }
            let allowed = stores
                .iter()
                .map(|(idx, s)| {
                    f.regions.contains(&s.region) || f.stores.iter().any(|x| x == stores.id(idx))
                })
                .collect();
            rule.stores = Some(allowed);
        }
        rule.min_sale_total = f.min_sale_total_cents;
        Ok(rule)
    }

    /// A fingerprint of everything that changes what the rule computes.
    /// State is kept across a rules reload only for an identical rule.
    pub fn fingerprint(&self) -> u64 {
        let mut spec = self.clone();
        spec.description.clear();
        spec.enabled = true;
        xxh3_64(&serde_json::to_vec(&spec).unwrap_or_default())
    }
}

/// A bit mask over small enum values; empty list = every value.
fn mask(names: &[String], parse: impl Fn(&str) -> Option<u8>) -> Result<u32, &str> {
    if names.is_empty() {
        return Ok(u32::MAX);
    }
    let mut m = 0u32;
    for n in names {
        m |= 1 << parse(n).ok_or(n.as_str())?;
    }
    Ok(m)
}

/// A rule ready to run: names resolved to masks and store indexes.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub spec: RuleSpec,
    pub key: KeyKind,
    pub fingerprint: u64,
    /// Window in [`Ts`] units.
    pub window: Ts,
    channels: u32,
    methods: u32,
    fulfillments: u32,
    /// Per store index: whether the filter admits it (`None`: all).
    stores: Option<Vec<bool>>,
    min_sale_total: u64,
}

impl CompiledRule {
    fn new(spec: &RuleSpec, key: KeyKind) -> Self {
        Self {
            spec: spec.clone(),
            key,
            fingerprint: spec.fingerprint(),
            window: 0,
            channels: u32::MAX,
            methods: u32::MAX,
            fulfillments: u32::MAX,
            stores: None,
            min_sale_total: 0,
        }
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Whether this rule evaluates sales windows (and is switched on).
    pub fn is_active_window(&self) -> bool {
        self.spec.enabled && self.spec.kind == RuleKind::Window
    }

    /// Whether the filter admits this sale event.
    pub fn admits(&self, event: &Event) -> bool {
        let EventBody::Sale(sale) = &event.body else {
            return false;
        };
        sale.total_cents >= self.min_sale_total
            && self.channels & (1 << event.channel as u8) != 0
            && self.methods & (1 << sale.payment.method as u8) != 0
            && self.fulfillments & (1 << sale.fulfillment as u8) != 0
            && self
                .stores
                .as_ref()
                .is_none_or(|s| s.get(usize::from(event.store.0)).copied().unwrap_or(false))
    }

    /// Whether a window's aggregates reach every threshold.
    pub fn met(&self, total_cents: u64, distinct_stores: usize, sales: usize) -> bool {
        let w = &self.spec.when;
        total_cents >= w.total_cents
            && distinct_stores >= w.distinct_stores as usize
            && sales >= w.sales as usize
    }
}

/// A validated set of rules, in the order given.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
}

impl RuleSet {
    /// No rules.
    pub fn empty() -> Self {
        Self { rules: Vec::new() }
    }

    /// RULES.md's four rules.
    pub fn default_specs() -> Vec<RuleSpec> {
        vec![
            RuleSpec::multi_store_large_purchase(),
            RuleSpec::shared_payment_account(),
            RuleSpec::large_single_purchase(),
            RuleSpec::points_overdraft(),
        ]
    }

    /// Compiles and checks a list of rules: each valid, names unique, at
    /// most [`MAX_RULES`].
    ///
    /// # Errors
    /// The first problem, naming the rule and field.
    pub fn compile(specs: &[RuleSpec], stores: &StoreMaster) -> Result<Self, String> {
        if specs.len() > MAX_RULES {
            return Err(format!("at most {MAX_RULES} rules"));
        }
        let mut rules = Vec::with_capacity(specs.len());
        for spec in specs {
            if rules
                .iter()
                .any(|r: &CompiledRule| r.spec.name == spec.name)
            {
                return Err(format!("{}: the name is used twice", spec.name));
            }
            rules.push(spec.compile(stores)?);
        }
        Ok(Self { rules })
    }

    /// The defaults.
    ///
    /// # Errors
    /// Never for a valid store master; kept fallible for uniformity.
    pub fn defaults(stores: &StoreMaster) -> Result<Self, String> {
        Self::compile(&Self::default_specs(), stores)
    }

    /// The rules.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The specs, as given.
    pub fn specs(&self) -> Vec<RuleSpec> {
        self.rules.iter().map(|r| r.spec.clone()).collect()
    }

    /// A rule by name.
    pub fn get(&self, name: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.spec.name == name)
    }

    /// The window rules of one key kind only (a Kafka stage runs the rules
    /// whose key its partitioning keeps together).
    pub fn only(&self, key: KeyKind) -> Self {
        Self {
            rules: self
                .rules
                .iter()
                .filter(|r| r.key == key && r.spec.kind == RuleKind::Window)
                .cloned()
                .collect(),
        }
    }

    /// Whether points-overdraft alerts go to the review queue.
    pub fn points_overdraft_enabled(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.spec.kind == RuleKind::PointsOverdraft && r.spec.enabled)
    }

    /// This set with `spec` added or replacing the rule of its name.
    ///
    /// # Errors
    /// The new set is invalid (the old one stays as it is).
    pub fn with_rule(&self, spec: RuleSpec, stores: &StoreMaster) -> Result<Self, String> {
        let mut specs = self.specs();
        match specs.iter_mut().find(|s| s.name == spec.name) {
            Some(slot) => *slot = spec,
            None => specs.push(spec),
        }
        Self::compile(&specs, stores)
    }

    /// This set without the rule `name` (`None` if there is none).
    pub fn without_rule(&self, name: &str) -> Option<Self> {
        let before = self.rules.len();
        let rules: Vec<_> = self
            .rules
            .iter()
            .filter(|r| r.spec.name != name)
            .cloned()
            .collect();
        (rules.len() != before).then_some(Self { rules })
    }
}
