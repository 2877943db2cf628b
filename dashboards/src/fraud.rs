//! The risk team's routes: the review queue of fraud alerts, decisions,
//! and the fraud rules (read, change at run time).
//!
//! | route | who |
//! |---|---|
//! | `GET /v1/alerts?kind=stock&limit=` | a store role or `risk`: the alert book's stock alerts of stores in scope (points alerts: `risk`, or `member_data` in scope; see [`crate::query`]) |
//! | `GET /v1/alerts?status=&rule=&before=&limit=` (or `kind=fraud`) | `risk` or `hq` |
//! | `GET /v1/alerts/{alert_id}` | `risk` or `hq`; with the member's recent history (audited as a read of member data) |
//! | `POST /v1/alerts/{alert_id}/decision` | `risk` |
//! | `GET /v1/rules`, `GET /v1/rules/{name}` | `risk` or `hq` |
//! | `PUT /v1/rules/{name}`, `DELETE /v1/rules/{name}` | `risk` |
//! | `POST /v1/backtest` | `risk` (audited; one at a time) |
//!
//! Everything a person does here is written to the audit log *before* it
//! takes effect (a failed audit write is a 503 and nothing happens):
//! decisions (`alert.decision`), rule changes (`rules.change`, with the
//! rule, and refusals with their reason), and reads of an alert's member
//! history (`member.read`). Refusals for a missing role are 403.
//!
//! A decision is then made durable ([`DecisionStore`]: appended to the
//! decision log, fsynced, embedded; produced to `<p>.alert-decisions` and
//! acknowledged by the broker, Kafka mode, where every serve applies it from
//! the topic) and applied to the queue, and emitted to the webhooks as a
//! `decided:<alert_id>:<n>` notification ("emitted as events").
//!
//! Reading: the risk team needs the member's recent history to review an
//! alert, so `risk` sees it without `member_data` (need-to-know for fraud
//! review), and every such read is audited like any member read.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use storepulse_core::Ts;
use storepulse_processors::fraud::{RuleSet, RuleSpec};
use storepulse_runtime::backtest::StoredBacktest;
use storepulse_runtime::decisions::DecisionLog;
use storepulse_runtime::driver::{AlertNotice, AlertSink};
use storepulse_runtime::review::{Decision, Status, Verdict};
use storepulse_runtime::rules_file::{RulesChange, RulesHandle};
use storepulse_runtime::Shared;

use crate::access::{require, AccessTable, Principal};
use crate::audit::{action, AuditError, AuditLog};
use crate::query::{stock_alerts, Answer, ApiError};

/// Audit action of a review decision.
pub const ALERT_DECISION: &str = "alert.decision";

/// Longest decision comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// Every (method, path) of [`fraud_router`]; the OpenAPI document must
/// describe each (checked by a test in [`crate::query`]).
pub const FRAUD_ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/alerts"),
    ("get", "/v1/alerts/{alert_id}"),
    ("post", "/v1/alerts/{alert_id}/decision"),
    ("get", "/v1/rules"),
    ("get", "/v1/rules/{name}"),
    ("put", "/v1/rules/{name}"),
    ("delete", "/v1/rules/{name}"),
    ("post", "/v1/backtest"),
];

/// Runs a candidate rule set over the stored events between two times
/// (see `storepulse_runtime::backtest`).
pub type BacktestRunner = Arc<
    dyn Fn(
            RuleSet,
            Option<Ts>,
            Option<Ts>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<StoredBacktest, String>> + Send>,
        > + Send
        + Sync,
>;

/// What the fraud routes need.
#[derive(Clone)]
pub struct FraudApiState {
    /// The review queue, fraud processor and members (`Shared`).
    pub shared: Arc<Shared>,
    pub access: Arc<AccessTable>,
    pub audit: AuditLog,
    /// Where decisions are made durable (`None`: this process takes no
    /// decisions, 503).
    pub decisions: Option<DecisionStore>,
    /// The rules file (`None`: rules are read-only here, 503 on changes).
    pub rules: Option<RulesHandle>,
    /// The webhook outbox, for decisions.
    pub notify: Option<AlertSink>,
    /// Backtests over the stored events (`None`: 503).
    pub backtest: Option<BacktestRunner>,
    /// One backtest at a time (it reads the whole event log).
    pub backtest_gate: Arc<tokio::sync::Semaphore>,
}

/// Produces a decision where every serve reads it (Kafka mode); resolves
/// once it is durable (the broker acknowledged it).
pub type DecisionPublisher = Arc<
    dyn Fn(
            Decision,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Where decisions are made durable.
#[derive(Clone)]
pub enum DecisionStore {
    /// The embedded decision log (fsynced before the answer).
    Log(Arc<DecisionLog>),
    /// Kafka mode: `<p>.alert-decisions` (compacted, key alert id).
    Published(DecisionPublisher),
}

impl axum::extract::FromRef<FraudApiState> for Arc<AccessTable> {
    fn from_ref(state: &FraudApiState) -> Self {
        state.access.clone()
    }
}

/// The fraud routes.
pub fn fraud_router(state: FraudApiState) -> Router {
    Router::new()
        .route("/v1/alerts", get(list))
        .route("/v1/alerts/{alert_id}", get(one))
        .route("/v1/alerts/{alert_id}/decision", post(decide))
        .route("/v1/rules", get(rules))
        .route(
            "/v1/rules/{name}",
            get(rule).put(put_rule).delete(delete_rule),
        )
        .route("/v1/backtest", post(run_backtest))
        .with_state(state)
}

fn audit_failed(error: &AuditError) -> ApiError {
    tracing::error!(%error, "audit log: write failed; answering 503");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit log unavailable: nothing was read or changed; retry later",
    )
}

/// 503 where this process holds no review queue (a Kafka role other than
/// `serve`).
fn serving(st: &FraudApiState) -> Result<(), ApiError> {
    if st.shared.fraud().is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "fraud review is not served by this process",
        ));
    }
    Ok(())
}

fn reviewer(who: &Principal) -> bool {
    who.is_risk() || matches!(who.store_scope(), crate::access::StoreScope::All)
}

#[derive(Deserialize)]
struct ListParams {
    kind: Option<String>,
    status: Option<String>,
    rule: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/alerts`: the stock alert book, or the review queue when a
/// review filter (or `kind=fraud`) is given.
async fn list(
    State(st): State<FraudApiState>,
    who: Option<Principal>,
    Query(p): Query<ListParams>,
) -> Answer {
    let review = p.status.is_some()
        || p.rule.is_some()
        || p.before.is_some()
        || p.kind.as_deref() == Some("fraud");
    let who = who.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "alerts need an API key or a login session",
        )
    })?;
    if !review {
        return stock_alerts(&st.shared, &who, p.kind.as_deref(), p.limit);
    }
    require(reviewer(&who), "risk")?;
    serving(&st)?;
    let status = match p.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(Status::from_wire(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "status: {s:?} is not open, confirmed_fraud, false_alarm, withdrawn or all"
                ),
            )
        })?),
    };
    let limit = crate::query::limit(p.limit, 100)?;
    let body = {
        let queue = st.shared.review();
        let items = queue.list(status, p.rule.as_deref(), p.before, limit);
        let next = if items.len() == limit {
            items.last().map(|v| v.seq)
        } else {
            None
        };
        json!({ "alerts": items, "next": next, "counts": queue.counts() })
    };
    Ok(Json(body).into_response())
}

/// `GET /v1/alerts/{alert_id}`: the alert, its status and decision, and
/// for member alerts the member's recent history.
async fn one(
    State(st): State<FraudApiState>,
    who: Principal,
    Path(alert_id): Path<String>,
) -> Answer {
    require(reviewer(&who), "risk")?;
    serving(&st)?;
    let (mut body, member_key) = {
        let queue = st.shared.review();
        let view = queue
            .get(&alert_id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such alert"))?;
        let member_key = (view.alert.key_kind == "member").then(|| view.alert.key.to_string());
        (json!(view), member_key)
    };
    if let Some(key) = member_key {
        let history = {
            let guard = st.shared.members();
            guard.as_ref().and_then(|m| {
                let member = m.member(&key)?;
                let ledger = m.ledger(&key);
                Some((
                    member.member_id.to_string(),
                    json!({ "profile": member, "ledger": ledger }),
                ))
            })
        };
        if let Some((canonical, history)) = history {
            st.audit
                .append_async(
                    who.name(),
                    action::MEMBER_READ,
                    Some(canonical),
                    json!({ "via": "alert", "alert_id": alert_id }),
                )
                .await
                .map_err(|e| audit_failed(&e))?;
            body["member"] = history;
        }
    }
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: String,
    #[serde(default)]
    comment: String,
}

/// `POST /v1/alerts/{alert_id}/decision`: `{decision, comment}` by `risk`.
async fn decide(
    State(st): State<FraudApiState>,
    who: Principal,
    Path(alert_id): Path<String>,
    body: Result<Json<DecisionBody>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    require(who.is_risk(), "risk")?;
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let verdict = match body.decision.as_str() {
        "confirmed_fraud" => Verdict::ConfirmedFraud,
        "false_alarm" => Verdict::FalseAlarm,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("decision: {other:?} is not confirmed_fraud or false_alarm"),
            ))
        }
    };
    if body.comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("comment: at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    let log = st.decisions.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "decisions are not taken by this process",
        )
    })?;
    let rule = st
        .shared
        .review()
        .get(&alert_id)
        .map(|v| v.alert.rule.clone())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such alert"))?;
    let decision = Decision {
        alert_id: alert_id.clone(),
        decision: verdict,
        comment: body.comment,
        decided_by: who.name().to_owned(),
        decided_at: storepulse_core::time::now(),
    };
    st.audit
        .append_async(
            who.name(),
            ALERT_DECISION,
            None,
            json!({ "alert_id": alert_id, "decision": verdict.as_str(), "comment": decision.comment }),
        )
        .await
        .map_err(|e| audit_failed(&e))?;
    let to_log = decision.clone();
    let recorded = match log {
        DecisionStore::Log(log) => tokio::task::spawn_blocking(move || log.append(&to_log))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| e.to_string()),
        DecisionStore::Published(publish) => publish(to_log).await,
    };
    recorded.map_err(|e| {
        tracing::error!(error = %e, "decision log: write failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "decision log unavailable: the decision was not recorded; retry",
        )
    })?;
    st.shared.review_mut().decide(decision.clone());
    let notified = match &st.notify {
        Some(sink) => {
            let notice = AlertNotice::decided(&rule, &decision);
            match sink(vec![notice]).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "webhook outbox: the decision is recorded but not queued for webhooks");
                    false
                }
            }
        }
        None => false,
    };
    let view = {
        let queue = st.shared.review();
        queue
            .get(&alert_id)
            .map(|v| json!(v))
            .unwrap_or(Value::Null)
    };
    Ok(Json(json!({ "alert": view, "notified": notified })).into_response())
}

/// `GET /v1/rules`: the rules in force.
async fn rules(State(st): State<FraudApiState>, who: Principal) -> Answer {
    require(reviewer(&who), "risk")?;
    serving(&st)?;
    let specs = current_rules(&st);
    Ok(Json(json!({ "rules": specs })).into_response())
}

fn current_rules(st: &FraudApiState) -> Vec<RuleSpec> {
    st.shared
        .fraud()
        .as_ref()
        .map(|f| f.rules().specs())
        .unwrap_or_default()
}

/// `GET /v1/rules/{name}`.
async fn rule(State(st): State<FraudApiState>, who: Principal, Path(name): Path<String>) -> Answer {
    require(reviewer(&who), "risk")?;
    current_rules(&st)
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| Json(r).into_response())
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such rule"))
}

fn rules_handle(st: &FraudApiState) -> Result<&RulesHandle, ApiError> {
    st.rules.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rules are not changed through this process",
        )
    })
}

/// `PUT /v1/rules/{name}`: adds or replaces a rule; in force for the
/// events that follow. A bad rule is 422 with the reason, and the rules in
/// force stay.
async fn put_rule(
    State(st): State<FraudApiState>,
    who: Principal,
    Path(name): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    require(who.is_risk(), "risk")?;
    let handle = rules_handle(&st)?;
    let Json(mut value) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if let Some(object) = value.as_object_mut() {
        match object.get("name").and_then(Value::as_str) {
            Some(n) if n != name => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("name: {n:?} differs from the path's {name:?}"),
                ))
            }
            _ => {
                object.insert("name".into(), Value::String(name.clone()));
            }
        }
    }
    let spec: RuleSpec = serde_json::from_value(value)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    // Checked before the audit record, so a refusal is recorded as one.
    let checked = handle
        .current()
        .with_rule(spec.clone(), st.shared.inventory().stores());
    let outcome = match &checked {
        Ok(_) => json!({ "outcome": "installed", "source": "api", "rule": spec }),
        Err(reason) => json!({ "outcome": "refused", "reason": reason, "rule": spec }),
    };
    st.audit
        .append_async(who.name(), action::RULES_CHANGE, None, outcome)
        .await
        .map_err(|e| audit_failed(&e))?;
    if let Err(reason) = checked {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason));
    }
    let installed = handle
        .put(spec.clone())
        .await
        .map_err(|reason| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?;
    tracing::info!(rule = %name, by = who.name(), rules = installed.rules().len(), "fraud rule changed through the API");
    Ok(Json(json!({ "rule": spec, "rules": installed.specs() })).into_response())
}

/// `DELETE /v1/rules/{name}`.
async fn delete_rule(
    State(st): State<FraudApiState>,
    who: Principal,
    Path(name): Path<String>,
) -> Answer {
    require(who.is_risk(), "risk")?;
    let handle = rules_handle(&st)?;
    if handle.current().get(&name).is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such rule"));
    }
    st.audit
        .append_async(
            who.name(),
            action::RULES_CHANGE,
            None,
            json!({ "outcome": "deleted", "source": "api", "rule": name }),
        )
        .await
        .map_err(|e| audit_failed(&e))?;
    match handle.delete(&name).await {
        Ok(Some(set)) => Ok(Json(json!({ "rules": set.specs() })).into_response()),
        Ok(None) => Err(ApiError::new(StatusCode::NOT_FOUND, "no such rule")),
        Err(reason) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BacktestBody {
    /// A whole candidate rule set.
    #[serde(default)]
    rules: Option<Vec<RuleSpec>>,
    /// One rule added to (or replacing its namesake in) the rules in force.
    #[serde(default)]
    rule: Option<RuleSpec>,
    /// RFC 3339; alerts whose last sale is before are not counted.
    #[serde(default)]
    from: Option<String>,
    /// RFC 3339; events dated after are left out.
    #[serde(default)]
    to: Option<String>,
}

fn time_field(field: &str, text: Option<&str>) -> Result<Option<Ts>, ApiError> {
    text.map(|t| {
        storepulse_core::time::parse_rfc3339(t).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{field}: {t:?} is not an RFC 3339 timestamp with offset"),
            )
        })
    })
    .transpose()
}

/// `POST /v1/backtest`: what a candidate rule set (`rules`, or one `rule`
/// on top of the rules in force) would have flagged on the stored events
/// between `from` and `to`, next to what the rules in force flag.
async fn run_backtest(
    State(st): State<FraudApiState>,
    who: Principal,
    body: Result<Json<BacktestBody>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    require(who.is_risk(), "risk")?;
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let runner = st.backtest.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backtests over stored events are not run by this process (replay an export with `storepulse replay --rules`)",
        )
    })?;
    let from = time_field("from", body.from.as_deref())?;
    let to = time_field("to", body.to.as_deref())?;
    let invalid = |reason: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason);
    let candidate = {
        let stores = st.shared.inventory().stores().clone();
        match (body.rules, body.rule) {
            (Some(specs), None) => RuleSet::compile(&specs, &stores).map_err(invalid)?,
            (None, Some(spec)) => {
                let current = st
                    .shared
                    .fraud()
                    .as_ref()
                    .map_or_else(RuleSet::empty, |f| f.rules().clone());
                current.with_rule(spec, &stores).map_err(invalid)?
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "give either `rules` (a whole candidate set) or `rule` (one rule on top of the rules in force)",
                ))
            }
        }
    };
    let _permit = st.backtest_gate.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "a backtest is running; retry when it is done",
        )
    })?;
    st.audit
        .append_async(
            who.name(),
            action::RULES_BACKTEST,
            None,
            json!({ "rules": candidate.specs(), "from": body.from, "to": body.to }),
        )
        .await
        .map_err(|e| audit_failed(&e))?;
    let report = runner(candidate, from, to)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok(Json(report).into_response())
}

/// Writes a rules change seen in the file to the audit log (the change
/// already happened; a failed write is logged).
pub fn audit_rules_file_change(audit: &AuditLog, change: &RulesChange) {
    let detail = match change {
        RulesChange::Installed { by, rules } => json!({
            "outcome": "installed", "source": by, "rules": rules,
        }),
        RulesChange::Refused { reason } => json!({
            "outcome": "refused", "source": "file", "reason": reason,
        }),
    };
    if let Err(e) = audit.append(
        crate::audit::SYSTEM_ACTOR,
        action::RULES_CHANGE,
        None,
        detail,
    ) {
        tracing::warn!(error = %e, "could not audit a fraud rules change");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test panics on the first surprise, by design

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use storepulse_core::StoreMaster;
    use storepulse_processors::fraud::{FraudAlert, FraudConfig, FraudProcessor, RuleSet};
    use storepulse_processors::inventory::{InventoryConfig, InventoryProcessor};
    use storepulse_runtime::alerts::AlertBook;
    use storepulse_runtime::review::ReviewQueue;
    use tower::ServiceExt;

    const RISK: &str = "k-risk";
    const HQ: &str = "k-hq";
    const STORE: &str = "k-store";
    const AUDITOR: &str = "k-auditor";
    const KEYS: &[(&str, &str, &[&str])] = &[
        (RISK, "risk-desk", &["risk"]),
        (HQ, "hq-dash", &["hq"]),
        (STORE, "km001-manager", &["store:KM-001"]),
        (AUDITOR, "auditor", &["auditor"]),
    ];
    const ALERT: &str = "multi_store_large_purchase:00000000000000aa";

    struct Fixture {
        app: Router,
        audit: AuditLog,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        let stores = Arc::new(StoreMaster::load(&path).unwrap());
        let access = Arc::new(crate::access::test_table(KEYS, &stores));
        let rules = RuleSet::defaults(&stores).unwrap();
        let fraud = FraudProcessor::new(FraudConfig::default(), rules, stores.clone());
        let mut review = ReviewQueue::new(10);
        review.raise(
            FraudAlert {
                alert_id: ALERT.into(),
                rule: "multi_store_large_purchase".into(),
                key_kind: "member".into(),
                key: "M1".into(),
                event_ids: vec!["e1".into(), "e2".into(), "e3".into()],
                order_ids: vec!["o1".into()],
                stores: vec!["DL-001".into(), "KM-001".into(), "YX-001".into()],
                total_cents: 500_000,
                first_at: 0,
                last_at: 0,
            },
            None,
        );
        let inventory = InventoryProcessor::new(InventoryConfig::default(), stores.clone());
        let shared = Arc::new(
            Shared::new(inventory, AlertBook::new(10), Default::default())
                .with_fraud(fraud, review),
        );
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::open(&dir.path().join("audit")).unwrap();
        let (decisions, _) = DecisionLog::open(&dir.path().join("decisions")).unwrap();
        let stores_for_backtest = stores.clone();
        let handle = RulesHandle::new(dir.path().join("rules.toml"), stores, shared.clone(), 0);
        let app = fraud_router(FraudApiState {
            shared,
            access,
            audit: audit.clone(),
            decisions: Some(DecisionStore::Log(Arc::new(decisions))),
            rules: Some(handle),
            notify: None,
            backtest: Some(runner(stores_for_backtest)),
            backtest_gate: Arc::new(tokio::sync::Semaphore::new(1)),
        });
        Fixture {
            app,
            audit,
            _dir: dir,
        }
    }

    /// A backtest over three stored sales of one member in three stores.
    fn runner(stores: Arc<StoreMaster>) -> BacktestRunner {
        Arc::new(move |candidate, from, to| {
            let stores = stores.clone();
            Box::pin(async move {
                let parser = storepulse_core::EventParser::new(stores.clone());
                let mut setup = storepulse_runtime::replay::ReplaySetup::defaults(&stores)?;
                setup.candidate = Some(candidate);
                let records =
                    ["KM-001", "KM-002", "KM-003"]
                        .iter()
                        .enumerate()
                        .map(|(i, store)| {
                            json!({
                        "v": 1, "event_id": format!("b{i}"), "event_type": "sale",
                        "occurred_at": format!("2026-11-01T10:0{i}:00+08:00"), "store_id": store,
                        "channel": "pos", "member_id": "B", "order_id": format!("o{i}"),
                        "lines": [{"sku": "S", "qty": 1, "unit_price_cents": 100_000}],
                        "total_cents": 100_000, "payment": {"method": "cash"},
                    })
                    .to_string()
                    .into_bytes()
                        });
                storepulse_runtime::backtest::backtest_stored(records, &parser, &setup, from, to)
            })
        })
    }

    impl Fixture {
        async fn call(
            &self,
            method: &str,
            uri: &str,
            key: Option<&str>,
            body: Option<Value>,
        ) -> (StatusCode, Value) {
            let mut request = Request::builder().method(method).uri(uri);
            if let Some(key) = key {
                request = request.header("authorization", format!("Bearer {key}"));
            }
            let body = match body {
                Some(v) => {
                    request = request.header("content-type", "application/json");
                    Body::from(v.to_string())
                }
                None => Body::empty(),
            };
            let response = self
                .app
                .clone()
                .oneshot(request.body(body).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }
    }

    /// Every route against every kind of key: (method, uri, body, expected
    /// status for [no key, risk, hq, store manager, auditor]).
    #[tokio::test]
    async fn every_route_against_every_role() {
        let decision = json!({"decision": "false_alarm", "comment": "known customer"});
        let rule = json!({"key": "payment_account", "window_minutes": 10, "when": {"total_cents": 1, "distinct_stores": 2}});
        let backtest = json!({"rule": {"name": "multi_store_large_purchase", "key": "member", "window_minutes": 30, "when": {"total_cents": 300_000, "distinct_stores": 3}}});
        let ok = StatusCode::OK;
        let (unauth, forbidden) = (StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN);
        let cases: Vec<(&str, String, Option<Value>, [StatusCode; 5])> = vec![
            (
                "GET",
                "/v1/alerts?kind=stock".into(),
                None,
                [unauth, ok, ok, ok, forbidden],
            ),
            (
                "GET",
                "/v1/alerts?status=open".into(),
                None,
                [unauth, ok, ok, forbidden, forbidden],
            ),
            (
                "GET",
                format!("/v1/alerts/{ALERT}"),
                None,
                [unauth, ok, ok, forbidden, forbidden],
            ),
            (
                "POST",
                format!("/v1/alerts/{ALERT}/decision"),
                Some(decision),
                [unauth, ok, forbidden, forbidden, forbidden],
            ),
            (
                "GET",
                "/v1/rules".into(),
                None,
                [unauth, ok, ok, forbidden, forbidden],
            ),
            (
                "GET",
                "/v1/rules/large_single_purchase".into(),
                None,
                [unauth, ok, ok, forbidden, forbidden],
            ),
            (
                "PUT",
                "/v1/rules/card_burst".into(),
                Some(rule),
                [unauth, ok, forbidden, forbidden, forbidden],
            ),
            (
                "DELETE",
                "/v1/rules/card_burst".into(),
                None,
                [unauth, ok, forbidden, forbidden, forbidden],
            ),
            (
                "POST",
                "/v1/backtest".into(),
                Some(backtest),
                [unauth, ok, forbidden, forbidden, forbidden],
            ),
        ];
        for (method, uri, body, expected) in cases {
            // A fresh fixture per key, so a PUT or DELETE by one key does
            // not change what the next key finds.
            for (key, want) in [None, Some(RISK), Some(HQ), Some(STORE), Some(AUDITOR)]
                .into_iter()
                .zip(expected)
            {
                let f = fixture();
                if method == "DELETE" {
                    f.call(
                        "PUT",
                        &uri,
                        Some(RISK),
                        Some(json!({"key": "order", "when": {"total_cents": 5}})),
                    )
                    .await;
                }
                let (status, answer) = f.call(method, &uri, key, body.clone()).await;
                assert_eq!(status, want, "{method} {uri} with {key:?}: {answer}");
            }
        }
    }

    #[tokio::test]
    async fn decisions_and_rule_changes_are_audited_and_bad_input_refused() {
        let f = fixture();
        let (status, _) = f
            .call("GET", "/v1/alerts?kind=weather", Some(STORE), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // A backtest: the lower threshold flags the stored pattern, the
        // rules in force do not; the run is audited.
        let lower = json!({"rule": {"name": "multi_store_large_purchase", "key": "member", "window_minutes": 30, "when": {"total_cents": 300_000, "distinct_stores": 3}}});
        let (status, report) = f
            .call("POST", "/v1/backtest", Some(RISK), Some(lower))
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["rules"]["multi_store_large_purchase"]["current"], 0);
        assert_eq!(
            report["rules"]["multi_store_large_purchase"]["candidate"],
            1
        );
        assert_eq!(report["candidate_alerts"][0]["key"], "B");
        let bad_time = json!({"from": "yesterday", "rules": []});
        let (status, _) = f
            .call("POST", "/v1/backtest", Some(RISK), Some(bad_time))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = f
            .call("POST", "/v1/backtest", Some(RISK), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "rules or rule");
        let (status, _) = f
            .call("GET", "/v1/alerts?status=maybe", Some(RISK), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = f.call("GET", "/v1/alerts/nope", Some(RISK), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let bad = json!({"decision": "maybe"});
        let (status, _) = f
            .call(
                "POST",
                &format!("/v1/alerts/{ALERT}/decision"),
                Some(RISK),
                Some(bad),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let mismatched = json!({"name": "other", "key": "order"});
        let (status, _) = f
            .call("PUT", "/v1/rules/mine", Some(RISK), Some(mismatched))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let invalid = json!({"key": "member", "filter": {"regions": ["atlantis"]}, "when": {"total_cents": 1}});
        let (status, body) = f
            .call("PUT", "/v1/rules/mine", Some(RISK), Some(invalid))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"].as_str().unwrap().contains("atlantis"),
            "{body}"
        );
        let (_, rules) = f.call("GET", "/v1/rules", Some(RISK), None).await;
        assert_eq!(
            rules["rules"].as_array().unwrap().len(),
            4,
            "the old rules stay"
        );
        let ok = json!({"decision": "confirmed_fraud", "comment": "cards cloned"});
        let (status, body) = f
            .call(
                "POST",
                &format!("/v1/alerts/{ALERT}/decision"),
                Some(RISK),
                Some(ok),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, listed) = f
            .call("GET", "/v1/alerts?status=confirmed_fraud", Some(HQ), None)
            .await;
        assert_eq!(listed["alerts"][0]["decision"]["decided_by"], "risk-desk");
        assert_eq!(listed["counts"]["confirmed_fraud"], 1);
        let records = f.audit.recent(100, None).unwrap();
        let actions: Vec<(&str, &str)> = records
            .iter()
            .map(|r| (r.actor.as_str(), r.action.as_str()))
            .collect();
        assert!(
            actions.contains(&("risk-desk", ALERT_DECISION)),
            "{actions:?}"
        );
        assert!(
            actions.contains(&("risk-desk", action::RULES_BACKTEST)),
            "{actions:?}"
        );
        assert!(
            records
                .iter()
                .any(|r| r.action == action::RULES_CHANGE && r.detail["outcome"] == "refused"),
            "a refused rule change is audited too"
        );
    }
}
