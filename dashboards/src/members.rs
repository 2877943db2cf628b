//! The member API: profiles, points ledgers, member lists, the PIPL export
//! and erasure, a store's marketing counts, the franchisee settlement
//! report and the audit log.
//!
//! Who may call what (roles and store scopes: [`crate::access`]):
//!
//! | route                                  | role                       | store scope                                   |
//! |----------------------------------------|----------------------------|-----------------------------------------------|
//! | `GET /v1/members/{member_id}`          | `member_data` or `privacy` | the member's favorite store (all for `hq`)    |
//! | `GET /v1/members/{member_id}/ledger`   | `member_data` or `privacy` | the member's favorite store (all for `hq`)    |
//! | `GET /v1/members?tag=&store_id=`       | `member_data` or `privacy` | `store_id` in scope (optional for `hq`)       |
//! | `GET /v1/members/{member_id}/export`   | `privacy`                  | none: the privacy desk serves the whole chain |
//! | `DELETE /v1/members/{member_id}`       | `privacy`                  | none                                          |
//! | `GET /v1/stores/{store_id}/marketing`  | any                        | the store                                     |
//! | `GET /v1/reports/settlement?date=`     | `hq`                       |                                               |
//! | `GET /v1/audit?limit=&member=`         | `auditor`                  |                                               |
//!
//! Rules every route keeps:
//! - No key or an unknown key: 401 (the [`Principal`] extractor), before
//!   anything else.
//! - A member outside the key's scope answers exactly as an unknown one,
//!   404 `{"error":"no such member"}`, so the answer does not tell whether
//!   the member exists. Any id of a member (canonical or alias) finds it;
//!   answers name the canonical id.
//! - PIPL audit: every answer with personal data (read, ledger, list,
//!   export) is recorded in the [`AuditLog`] (durable, fsync) *before* it is
//!   sent, with the key's name as actor and the canonical member id (a list
//!   records the ids it returned in `detail`). An erasure is recorded before
//!   it is submitted. If the record cannot be written the answer is 503 and
//!   carries no data, and nothing is erased (fail closed). Refusals on the
//!   member-data routes (403, and the 404 of a member outside the scope) are
//!   recorded as `member.denied`; the refusal stands even if that record
//!   cannot be written (logged at error level).
//! - The [`Shared`] read lock is held only to copy a view out, never across
//!   an `.await`.
//! - A process that does not serve members answers 503.
//!
//! Limits: each audited request costs one fsync of the audit log (about
//! 250 per second per process on the development VM, see [`crate::audit`]).
//! A list cursor is a slot of the member state: paging is consistent while
//! no member is erased; a slot freed by an erasure can be reused by a new
//! member, which a client paging at that moment may then miss.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use storepulse_core::StoreIdx;
use storepulse_processors::members::query::{parse_day, MemberPage};
use storepulse_processors::members::MemberProcessor;
use storepulse_runtime::Shared;

use crate::access::{require, AccessTable, Principal, Role, StoreScope};
use crate::audit::{action, AuditError, AuditLog};
use crate::query::{limit, ApiError};

/// A request to erase a member, handed to the [`EraseSubmitter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseRequest {
    /// The member's canonical id (it existed when the request was checked).
    pub member_id: String,
    /// The name of the API key that asked (for the event and the logs).
    pub requested_by: String,
}

/// Submits a `member_erase` through the pipeline (the binary appends a
/// `member_erase` event to the event log and waits until the processor has
/// applied it) and returns the event id.
///
/// An `Err(message)` is answered 503 with the message and logged at warn
/// level, so it must not name the member.
pub type EraseSubmitter = Arc<
    dyn Fn(EraseRequest) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>>
        + Send
        + Sync,
>;

/// What the member routes use.
#[derive(Clone)]
pub struct MemberApiState {
    /// The member processor (`Shared::members`), read under its lock.
    pub shared: Arc<Shared>,
    /// The API keys.
    pub access: Arc<AccessTable>,
    /// Where every access to personal data is recorded first.
    pub audit: AuditLog,
    /// How `DELETE /v1/members/{member_id}` erases.
    pub erase: EraseSubmitter,
}

impl FromRef<MemberApiState> for Arc<AccessTable> {
    fn from_ref(state: &MemberApiState) -> Self {
        state.access.clone()
    }
}

/// Every (method, path) of [`member_router`]; the OpenAPI document must
/// describe each (checked by a test in [`crate::query`]).
pub const MEMBER_ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/members"),
    ("get", "/v1/members/{member_id}"),
    ("delete", "/v1/members/{member_id}"),
    ("get", "/v1/members/{member_id}/ledger"),
    ("get", "/v1/members/{member_id}/export"),
    ("get", "/v1/stores/{store_id}/marketing"),
    ("get", "/v1/reports/settlement"),
    ("get", "/v1/audit"),
];

/// Default page size of `GET /v1/members` and `GET /v1/audit`.
const DEFAULT_LIMIT: usize = 100;

/// The answer to an unknown member and to one outside the key's scope.
const NO_SUCH_MEMBER: &str = "no such member";

/// The member routes (see the module documentation for the rules).
pub fn member_router(state: MemberApiState) -> Router {
    Router::new()
        .route("/v1/members", get(list))
        .route("/v1/members/{member_id}", get(read).delete(erase))
        .route("/v1/members/{member_id}/ledger", get(ledger))
        .route("/v1/members/{member_id}/export", get(export))
        .route("/v1/stores/{store_id}/marketing", get(marketing))
        .route("/v1/reports/settlement", get(settlement))
        .route("/v1/audit", get(audit_records))
        .with_state(state)
}

type Answer = Result<Response, ApiError>;

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, NO_SUCH_MEMBER)
}

fn bad_query(rejection: &QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, rejection.body_text())
}

/// Runs `f` on the member processor under the read lock. The guard is
/// dropped before this returns, so callers may `.await` afterwards.
///
/// # Errors
/// 503 when this process does not serve members.
fn with_members<T>(shared: &Shared, f: impl FnOnce(&MemberProcessor) -> T) -> Result<T, ApiError> {
    let guard = shared.members();
    let members = guard.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "member data is not served by this process",
        )
    })?;
    Ok(f(members))
}

/// The canonical id of any id, if the member exists (for refusal records).
fn canonical(shared: &Shared, id: &str) -> Option<String> {
    let guard = shared.members();
    guard.as_ref()?.canonical_of(id).map(ToString::to_string)
}

/// Whether a principal may see a member whose favorite store is `favorite`:
/// every member with an `hq` scope, else only members whose favorite store
/// is in the scope (a member without one is seen by `hq` only).
fn member_in_scope(who: &Principal, favorite: Option<StoreIdx>) -> bool {
    match who.store_scope() {
        StoreScope::All => true,
        StoreScope::Stores(_) | StoreScope::None => {
            favorite.is_some_and(|store| who.can_see_store(store))
        }
    }
}

/// What a lookup of one member found, copied out of the lock.
enum Found<T> {
    Visible { member: String, value: T },
    OutOfScope { member: String },
    Unknown,
}

/// Looks a member up by any of its ids; `scoped`: apply the key's store
/// scope to the member's favorite store.
fn find<T>(
    members: &MemberProcessor,
    who: &Principal,
    id: &str,
    scoped: bool,
    view: impl FnOnce(&MemberProcessor) -> Option<T>,
) -> Found<T> {
    let Some(person) = members.person_by_id(id) else {
        return Found::Unknown;
    };
    let member = person.canonical().to_string();
    if scoped && !member_in_scope(who, person.favorite) {
        return Found::OutOfScope { member };
    }
    match view(members) {
        Some(value) => Found::Visible { member, value },
        None => Found::Unknown,
    }
}

/// A request as the `member.denied` record names it.
struct Attempt {
    method: &'static str,
    /// Path and query, as sent.
    path: String,
}

impl Attempt {
    fn new(method: &'static str, uri: &OriginalUri) -> Self {
        let path = uri
            .0
            .path_and_query()
            .map_or_else(|| uri.0.path().to_owned(), |pq| pq.as_str().to_owned());
        Self { method, path }
    }
}

/// A failed audit write: 503 without the data.
fn audit_failed(error: &AuditError) -> ApiError {
    tracing::error!(%error, "audit log: write failed; answering 503 without the data");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit log unavailable: nothing was read or changed; retry later",
    )
}

impl MemberApiState {
    /// Records an access to personal data (before the answer is sent).
    ///
    /// # Errors
    /// 503 if the record could not be written: the caller must not answer
    /// with the data nor do what it recorded.
    async fn record(
        &self,
        who: &Principal,
        action: &str,
        member: Option<String>,
        detail: Value,
    ) -> Result<(), ApiError> {
        self.audit
            .append_async(who.name(), action, member, detail)
            .await
            .map(|_| ())
            .map_err(|error| audit_failed(&error))
    }

    /// Records a refused member-data request as `member.denied` and returns
    /// the refusal (which stands even if the record cannot be written).
    async fn refuse(
        &self,
        who: &Principal,
        attempt: &Attempt,
        member: Option<String>,
        reason: &str,
        answer: ApiError,
    ) -> ApiError {
        let detail = json!({
            "method": attempt.method,
            "path": attempt.path,
            "reason": reason,
        });
        if let Err(error) = self
            .audit
            .append_async(who.name(), action::MEMBER_DENIED, member, detail)
            .await
        {
            tracing::error!(%error, key = who.name(), "audit log: cannot record a refused member-data request");
        }
        answer
    }

    /// 403 (recorded) unless `allowed`; `id` is the member asked for, if one.
    async fn require_role(
        &self,
        who: &Principal,
        allowed: bool,
        role: &str,
        attempt: &Attempt,
        id: Option<&str>,
    ) -> Result<(), ApiError> {
        match require(allowed, role) {
            Ok(()) => Ok(()),
            Err(answer) => {
                let member = id.and_then(|id| canonical(&self.shared, id));
                let reason = format!("role {role} required");
                Err(self.refuse(who, attempt, member, &reason, answer).await)
            }
        }
    }

    /// The canonical id and the value of a visible member; 404 otherwise
    /// (recorded when the member exists but is outside the scope).
    async fn reveal<T: Send>(
        &self,
        who: &Principal,
        attempt: &Attempt,
        found: Found<T>,
    ) -> Result<(String, T), ApiError> {
        match found {
            Found::Visible { member, value } => Ok((member, value)),
            Found::OutOfScope { member } => {
                let reason = "member outside the key's store scope";
                Err(self
                    .refuse(who, attempt, Some(member), reason, not_found())
                    .await)
            }
            Found::Unknown => Err(not_found()),
        }
    }
}

/// What a read of one member needs: the role, whether the store scope
/// applies, the audit action and the view.
struct OneMember<F> {
    allowed: bool,
    role: &'static str,
    scoped: bool,
    action: &'static str,
    view: F,
}

/// Reads one member's data: role check (refusals audited), scope, audit
/// record *before* the answer, then the data.
async fn read_one<T, F>(
    st: &MemberApiState,
    who: &Principal,
    uri: &OriginalUri,
    id: &str,
    spec: OneMember<F>,
) -> Answer
where
    T: serde::Serialize + Send,
    F: FnOnce(&MemberProcessor) -> Option<T>,
{
    let attempt = Attempt::new("GET", uri);
    st.require_role(who, spec.allowed, spec.role, &attempt, Some(id))
        .await?;
    let found = with_members(&st.shared, |m| find(m, who, id, spec.scoped, spec.view))?;
    let (member, view) = st.reveal(who, &attempt, found).await?;
    st.record(
        who,
        spec.action,
        Some(member),
        json!({ "requested_id": id }),
    )
    .await?;
    Ok(Json(view).into_response())
}

/// `GET /v1/members/{member_id}`: the member's profile (`MemberView`).
async fn read(
    State(st): State<MemberApiState>,
    who: Principal,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Answer {
    let spec = OneMember {
        allowed: who.can_read_member_data(),
        role: "member_data",
        scoped: true,
        action: action::MEMBER_READ,
        view: |m: &MemberProcessor| m.member(&id),
    };
    read_one(&st, &who, &uri, &id, spec).await
}

/// `GET /v1/members/{member_id}/ledger`: the points ledger (`LedgerView`).
async fn ledger(
    State(st): State<MemberApiState>,
    who: Principal,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Answer {
    let spec = OneMember {
        allowed: who.can_read_member_data(),
        role: "member_data",
        scoped: true,
        action: action::MEMBER_LEDGER,
        view: |m: &MemberProcessor| m.ledger(&id),
    };
    read_one(&st, &who, &uri, &id, spec).await
}

#[derive(Deserialize)]
struct ListParams {
    tag: Option<String>,
    store_id: Option<String>,
    cursor: Option<u64>,
    limit: Option<usize>,
}

/// What a list query found, copied out of the lock.
enum Listed {
    Page(MemberPage),
    /// A scoped key without a `store_id` in its scope.
    OutOfScope,
}

/// `GET /v1/members?tag=&store_id=&cursor=&limit=`: a page of members
/// (`MemberPage`).
async fn list(
    State(st): State<MemberApiState>,
    who: Principal,
    uri: OriginalUri,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Answer {
    let attempt = Attempt::new("GET", &uri);
    st.require_role(
        &who,
        who.can_read_member_data(),
        "member_data",
        &attempt,
        None,
    )
    .await?;
    let Query(p) = params.map_err(|e| bad_query(&e))?;
    let limit = limit(p.limit, DEFAULT_LIMIT)?;
    let cursor = p.cursor.unwrap_or(0);
    let listed = with_members(&st.shared, |m| -> Result<Listed, ApiError> {
        let store = match &p.store_id {
            None => None,
            Some(id) => Some(m.stores().lookup(id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("store_id: unknown store {id:?}"),
                )
            })?),
        };
        let allowed = match who.store_scope() {
            StoreScope::All => true,
            StoreScope::Stores(_) | StoreScope::None => store.is_some_and(|s| who.can_see_store(s)),
        };
        if !allowed {
            return Ok(Listed::OutOfScope);
        }
        m.list(p.tag.as_deref(), store, cursor, limit)
            .map(Listed::Page)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("tag: {e}")))
    })??;
    let page = match listed {
        Listed::Page(page) => page,
        Listed::OutOfScope => {
            let reason = "store_id: a store within the key's store scope is required";
            let answer = ApiError::new(StatusCode::FORBIDDEN, reason);
            return Err(st.refuse(&who, &attempt, None, reason, answer).await);
        }
    };
    let ids: Vec<&str> = page.members.iter().map(|m| m.member_id.as_str()).collect();
    let detail = json!({
        "query": { "tag": p.tag, "store_id": p.store_id, "cursor": cursor, "limit": limit },
        "members": ids,
    });
    st.record(&who, action::MEMBER_LIST, None, detail).await?;
    Ok(Json(page).into_response())
}

/// `GET /v1/members/{member_id}/export`: every datum held on the member.
async fn export(
    State(st): State<MemberApiState>,
    who: Principal,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Answer {
    let spec = OneMember {
        allowed: who.can_erase_members(),
        role: "privacy",
        scoped: false,
        action: action::MEMBER_EXPORT,
        view: |m: &MemberProcessor| m.export(&id),
    };
    read_one(&st, &who, &uri, &id, spec).await
}

/// `DELETE /v1/members/{member_id}`: erases the member (all its ids) through
/// the pipeline; `{"erased": canonical id, "event_id": ...}`.
async fn erase(
    State(st): State<MemberApiState>,
    who: Principal,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Answer {
    let attempt = Attempt::new("DELETE", &uri);
    st.require_role(
        &who,
        who.can_erase_members(),
        "privacy",
        &attempt,
        Some(&id),
    )
    .await?;
    let found = with_members(&st.shared, |m| find(m, &who, &id, false, |_| Some(())))?;
    let (member, ()) = st.reveal(&who, &attempt, found).await?;
    st.record(
        &who,
        action::MEMBER_ERASE,
        Some(member.clone()),
        json!({ "requested_id": id }),
    )
    .await?;
    let request = EraseRequest {
        member_id: member.clone(),
        requested_by: who.name().to_owned(),
    };
    match (st.erase)(request).await {
        Ok(event_id) => Ok(Json(json!({ "erased": member, "event_id": event_id })).into_response()),
        Err(reason) => {
            tracing::warn!(key = who.name(), %reason, "member erasure not confirmed");
            let detail = json!({ "reason": reason });
            if let Err(error) = st
                .audit
                .append_async(
                    who.name(),
                    action::MEMBER_ERASE_UNCONFIRMED,
                    Some(member),
                    detail,
                )
                .await
            {
                tracing::error!(%error, "audit log: cannot record an unconfirmed erasure");
            }
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("erasure not confirmed: {reason}"),
            ))
        }
    }
}

/// `GET /v1/stores/{store_id}/marketing`: a store's regulars by tag, no
/// personal data (`MarketingView`).
async fn marketing(
    State(st): State<MemberApiState>,
    who: Principal,
    Path(store_id): Path<String>,
) -> Answer {
    let view = with_members(&st.shared, |m| {
        let store = m.stores().lookup(&store_id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("store_id: unknown store {store_id:?}"),
            )
        })?;
        require(
            who.can_see_store(store),
            &format!("store:{store_id} (or its region, or hq)"),
        )?;
        Ok::<_, ApiError>(m.marketing(store))
    })??;
    Ok(Json(view).into_response())
}

#[derive(Deserialize)]
struct SettlementParams {
    date: Option<String>,
}

/// `GET /v1/reports/settlement?date=YYYY-MM-DD`: points owed between
/// franchisees for one China day (`SettlementReport`).
async fn settlement(
    State(st): State<MemberApiState>,
    who: Principal,
    params: Result<Query<SettlementParams>, QueryRejection>,
) -> Answer {
    require(who.roles().contains(&Role::Hq), "hq")?;
    let Query(p) = params.map_err(|e| bad_query(&e))?;
    let date = p
        .date
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "date: required (YYYY-MM-DD)"))?;
    let day = parse_day(&date).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("date: expected YYYY-MM-DD, got {date:?}"),
        )
    })?;
    let report = with_members(&st.shared, |m| m.settlement(day))?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
struct AuditParams {
    limit: Option<usize>,
    member: Option<String>,
}

/// `GET /v1/audit?limit=&member=`: the newest audit records, newest first.
async fn audit_records(
    State(st): State<MemberApiState>,
    who: Principal,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Answer {
    require(who.can_read_audit(), "auditor")?;
    let Query(p) = params.map_err(|e| bad_query(&e))?;
    let limit = limit(p.limit, DEFAULT_LIMIT)?;
    let log = st.audit.clone();
    let records = tokio::task::spawn_blocking(move || log.recent(limit, p.member.as_deref()))
        .await
        .map_err(|e| AuditError::Task(e.to_string()))
        .and_then(|r| r)
        .map_err(|error| {
            tracing::error!(%error, "audit log: cannot read");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "audit log unavailable")
        })?;
    Ok(Json(json!({ "records": records })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use storepulse_core::{EventParser, Id, StoreMaster};
    use storepulse_processors::inventory::{InventoryConfig, InventoryProcessor};
    use storepulse_processors::members::MemberConfig;
    use storepulse_processors::Processor;
    use storepulse_runtime::alerts::AlertBook;
    use tower::ServiceExt;

    use crate::audit::AuditRecord;

    // The keys of the tests: (secret, name, roles).
    const HQ: &str = "k-hq";
    const STORE: &str = "k-store";
    const STORE_MD: &str = "k-store-md";
    const WEST_MD: &str = "k-west-md";
    const PRIVACY: &str = "k-privacy";
    const AUDITOR: &str = "k-auditor";
    const CRM: &str = "k-crm";
    const KEYS: &[(&str, &str, &[&str])] = &[
        (HQ, "hq-dash", &["hq"]),
        (STORE, "km001-manager", &["store:KM-001"]),
        (STORE_MD, "km001-crm", &["store:KM-001", "member_data"]),
        (WEST_MD, "west-crm", &["region:west", "member_data"]),
        (PRIVACY, "privacy-desk", &["privacy"]),
        (AUDITOR, "auditor", &["auditor"]),
        (CRM, "hq-crm", &["hq", "member_data"]),
    ];

    /// M1 (KM-001, canonical) and its alias APP-1 (same phone), M2 (DL-001).
    /// M1 earns 500 points at KM-001 (franchisee `direct`) and 100 at DL-001,
    /// then redeems 200 at DL-001 (`dianxi-retail`) on 2026-11-23.
    const EVENTS: &[&str] = &[
        r#"{"v":1,"event_id":"reg-1","event_type":"member_register","occurred_at":"2026-11-20T09:00:00+08:00","store_id":"KM-001","channel":"pos","member_id":"M1","phone_hash":"00000000000000000000000000000000000000000000000000000000000000a1"}"#,
        r#"{"v":1,"event_id":"reg-2","event_type":"member_register","occurred_at":"2026-11-20T10:00:00+08:00","store_id":"KM-001","channel":"app","member_id":"APP-1","phone_hash":"00000000000000000000000000000000000000000000000000000000000000a1"}"#,
        r#"{"v":1,"event_id":"s-1","event_type":"sale","occurred_at":"2026-11-21T10:00:00+08:00","store_id":"KM-001","channel":"pos","member_id":"M1","order_id":"o1","lines":[{"sku":"SKU-1","qty":1,"unit_price_cents":50000}],"total_cents":50000,"payment":{"method":"cash"}}"#,
        r#"{"v":1,"event_id":"s-2","event_type":"sale","occurred_at":"2026-11-22T10:00:00+08:00","store_id":"DL-001","channel":"pos","member_id":"APP-1","order_id":"o2","lines":[{"sku":"SKU-1","qty":1,"unit_price_cents":10000}],"total_cents":10000,"payment":{"method":"wechat"}}"#,
        r#"{"v":1,"event_id":"p-1","event_type":"points_redeem","occurred_at":"2026-11-23T10:00:00+08:00","store_id":"DL-001","channel":"pos","member_id":"APP-1","points":200,"reference":"r1"}"#,
        r#"{"v":1,"event_id":"s-3","event_type":"sale","occurred_at":"2026-11-23T11:00:00+08:00","store_id":"DL-001","channel":"pos","member_id":"M2","order_id":"o3","lines":[{"sku":"SKU-2","qty":1,"unit_price_cents":3000}],"total_cents":3000,"payment":{"method":"cash"}}"#,
    ];

    struct Fixture {
        app: Router,
        audit: AuditLog,
        _dir: tempfile::TempDir,
    }

    fn stores() -> Arc<StoreMaster> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        Arc::new(StoreMaster::load(&path).unwrap())
    }

    fn access(stores: &StoreMaster) -> AccessTable {
        crate::access::test_table(KEYS, stores)
    }

    /// Erases in place, as the binary's submitter does through the event log.
    fn erase_in_place(shared: Arc<Shared>) -> EraseSubmitter {
        Arc::new(move |request: EraseRequest| {
            let shared = shared.clone();
            Box::pin(async move {
                let event_id = format!("erase-test-{}", request.member_id);
                let existed = {
                    let mut guard = shared.members_mut();
                    let members = guard.as_mut().ok_or("members not served")?;
                    members.erase_now(
                        &request.member_id,
                        &Id::from(event_id.as_str()),
                        &mut Vec::new(),
                    )
                };
                if existed {
                    Ok(event_id)
                } else {
                    Err("no such member".to_owned())
                }
            })
        })
    }

    fn fixture_with(serve_members: bool) -> Fixture {
        let stores = stores();
        let parser = EventParser::new(stores.clone());
        let inventory = InventoryProcessor::new(InventoryConfig::default(), stores.clone());
        let mut members = MemberProcessor::new(MemberConfig::default(), stores.clone()).unwrap();
        for text in EVENTS {
            let event = parser.parse(text.as_bytes()).unwrap();
            members.apply(&event, &mut Vec::new()).unwrap();
        }
        let shared = Shared::new(inventory, AlertBook::new(10), Default::default());
        let shared = Arc::new(if serve_members {
            shared.with_members(members)
        } else {
            shared
        });
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::open(dir.path()).unwrap();
        let state = MemberApiState {
            shared: shared.clone(),
            access: Arc::new(access(&stores)),
            audit: audit.clone(),
            erase: erase_in_place(shared),
        };
        Fixture {
            app: member_router(state),
            audit,
            _dir: dir,
        }
    }

    fn fixture() -> Fixture {
        fixture_with(true)
    }

    impl Fixture {
        async fn call(&self, method: &str, uri: &str, key: Option<&str>) -> (StatusCode, Value) {
            let mut request = Request::builder().method(method).uri(uri);
            if let Some(key) = key {
                request = request.header("authorization", format!("Bearer {key}"));
            }
            let response = self
                .app
                .clone()
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }

        async fn get(&self, uri: &str, key: &str) -> (StatusCode, Value) {
            self.call("GET", uri, Some(key)).await
        }

        /// Every record, oldest first.
        fn records(&self) -> Vec<AuditRecord> {
            let mut all = self.audit.recent(10_000, None).unwrap();
            all.reverse();
            all
        }
    }

    fn summary(r: &AuditRecord) -> (&str, &str, Option<&str>) {
        (r.actor.as_str(), r.action.as_str(), r.member.as_deref())
    }

    const GET_MEMBER: (&str, &str) = ("GET", "/v1/members/M1");
    const GET_LEDGER: (&str, &str) = ("GET", "/v1/members/M1/ledger");
    const LIST_KM: (&str, &str) = ("GET", "/v1/members?store_id=KM-001");
    const EXPORT: (&str, &str) = ("GET", "/v1/members/M1/export");
    const MARKETING_KM: (&str, &str) = ("GET", "/v1/stores/KM-001/marketing");
    const MARKETING_DL: (&str, &str) = ("GET", "/v1/stores/DL-001/marketing");
    const SETTLEMENT: (&str, &str) = ("GET", "/v1/reports/settlement?date=2026-11-23");
    const AUDIT: (&str, &str) = ("GET", "/v1/audit");
    const DELETE: (&str, &str) = ("DELETE", "/v1/members/M1");

    /// The member-data routes, each with the same member (M1).
    const MEMBER_DATA: [(&str, &str); 5] = [GET_MEMBER, GET_LEDGER, LIST_KM, EXPORT, DELETE];

    #[tokio::test]
    async fn route_matrix_by_key() {
        // DELETE last: it erases M1.
        let routes = [
            GET_MEMBER,
            GET_LEDGER,
            LIST_KM,
            EXPORT,
            MARKETING_KM,
            MARKETING_DL,
            SETTLEMENT,
            AUDIT,
            DELETE,
        ];
        let rows: [(Option<&str>, [u16; 9]); 9] = [
            (None, [401; 9]),
            (Some("not-a-key"), [401; 9]),
            (Some(HQ), [403, 403, 403, 403, 200, 200, 200, 403, 403]),
            (Some(STORE), [403, 403, 403, 403, 200, 403, 403, 403, 403]),
            (
                Some(STORE_MD),
                [200, 200, 200, 403, 200, 403, 403, 403, 403],
            ),
            // M1's favorite store is KM-001 (central), outside the west.
            (Some(WEST_MD), [404, 404, 403, 403, 403, 200, 403, 403, 403]),
            // privacy alone has no store scope: it exports and erases any
            // member, but reads profiles only within a store scope.
            (Some(PRIVACY), [404, 404, 403, 200, 403, 403, 403, 403, 200]),
            (Some(AUDITOR), [403, 403, 403, 403, 403, 403, 403, 200, 403]),
            (Some(CRM), [200, 200, 200, 403, 200, 200, 200, 403, 403]),
        ];
        for (key, expected) in rows {
            let f = fixture();
            for ((method, uri), want) in routes.iter().zip(expected) {
                let (status, body) = f.call(method, uri, key).await;
                assert_eq!(status.as_u16(), want, "{method} {uri} with {key:?}: {body}");
                if status != StatusCode::OK {
                    assert!(body["error"].is_string(), "{method} {uri}: {body}");
                }
            }
        }
    }

    #[tokio::test]
    async fn store_key_without_member_data_is_refused_and_audited() {
        let f = fixture();
        for (method, uri) in MEMBER_DATA {
            let (status, body) = f.call(method, uri, Some(STORE)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}");
            assert!(
                body["error"].as_str().unwrap().starts_with("role "),
                "{body}"
            );
            assert!(!body.to_string().contains("points"), "no data: {body}");
        }
        // By alias too: the refusal names the canonical member.
        let (status, _) = f.get("/v1/members/APP-1", STORE).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        let records = f.records();
        assert_eq!(records.len(), MEMBER_DATA.len() + 1);
        for (record, (method, uri)) in records.iter().zip(MEMBER_DATA) {
            let member = (uri != LIST_KM.1).then_some("M1");
            assert_eq!(
                summary(record),
                ("km001-manager", action::MEMBER_DENIED, member)
            );
            assert_eq!(record.detail["method"], method);
            assert_eq!(record.detail["path"], uri);
            assert!(record.detail["reason"]
                .as_str()
                .unwrap()
                .starts_with("role "));
        }
        let last = records.last().unwrap();
        assert_eq!(
            summary(last),
            ("km001-manager", action::MEMBER_DENIED, Some("M1"))
        );
        assert_eq!(last.detail["path"], "/v1/members/APP-1");
        assert!(f.audit.verify().unwrap().is_intact());
    }

    #[tokio::test]
    async fn scoped_member_data_reads_its_store_only() {
        let f = fixture();
        // An alias answers with the canonical member.
        let (status, m1) = f.get("/v1/members/APP-1", STORE_MD).await;
        assert_eq!(status, StatusCode::OK, "{m1}");
        assert_eq!(m1["member_id"], "M1");
        assert_eq!(m1["aliases"], json!(["APP-1"]));
        assert_eq!(m1["favorite_store"], "KM-001");
        assert_eq!(m1["points_balance"], 400);
        assert_eq!(m1["spend_90d_cents"], 60_000);
        assert_eq!(m1["orders_90d"], 2);
        assert_eq!(m1["as_of"], "2026-11-23T11:00:00.000+08:00");
        let (_, by_canonical) = f.get("/v1/members/M1", STORE_MD).await;
        assert_eq!(by_canonical, m1);
        let (status, ledger) = f.get("/v1/members/APP-1/ledger", STORE_MD).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ledger["member_id"], "M1");
        assert_eq!(
            (&ledger["earned"], &ledger["redeemed"]),
            (&json!(600), &json!(200))
        );
        let kinds: Vec<&str> = ledger["recent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["earn", "earn", "redeem"]);

        // A member whose favorite store is elsewhere is indistinguishable
        // from an unknown one.
        let (status, other) = f.get("/v1/members/M2", STORE_MD).await;
        let (status_unknown, unknown) = f.get("/v1/members/NOPE", STORE_MD).await;
        assert_eq!(
            (status, status_unknown),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
        );
        assert_eq!(other, json!({ "error": "no such member" }));
        assert_eq!(other, unknown);
        let (status, _) = f.get("/v1/members/M2/ledger", STORE_MD).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The west key sees M2 (DL-001) and not M1.
        let (status, m2) = f.get("/v1/members/M2", WEST_MD).await;
        assert_eq!(
            (status, &m2["favorite_store"]),
            (StatusCode::OK, &json!("DL-001"))
        );
        let (status, _) = f.get("/v1/members/APP-1", WEST_MD).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Lists: a scoped key must name a store within its scope.
        let (status, page) = f.get("/v1/members?store_id=KM-001", STORE_MD).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["members"].as_array().unwrap().len(), 1);
        assert_eq!(page["members"][0]["member_id"], "M1");
        assert_eq!(page["next_cursor"], Value::Null);
        let (status, page) = f.get("/v1/members?store_id=DL-001", WEST_MD).await;
        assert_eq!(
            (status, &page["members"][0]["member_id"]),
            (StatusCode::OK, &json!("M2"))
        );
        for uri in ["/v1/members", "/v1/members?store_id=DL-001"] {
            let (status, body) = f.get(uri, STORE_MD).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
        }
        for uri in [
            "/v1/members?store_id=XX-9",
            "/v1/members?store_id=KM-001&tag=bogus",
            "/v1/members?store_id=KM-001&limit=0",
            "/v1/members?store_id=KM-001&limit=1001",
            "/v1/members?store_id=KM-001&cursor=-1",
        ] {
            let (status, body) = f.get(uri, STORE_MD).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        }
        let (status, _) = f
            .get("/v1/members?store_id=KM-001&tag=new_member", STORE_MD)
            .await;
        assert_eq!(status, StatusCode::OK);
        // hq with member_data lists every member, a page at a time.
        let (status, page) = f.get("/v1/members?limit=1", CRM).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["members"].as_array().unwrap().len(), 1);
        let cursor = page["next_cursor"].as_u64().unwrap();
        let (_, rest) = f
            .get(&format!("/v1/members?limit=1&cursor={cursor}"), CRM)
            .await;
        let ids = [
            &page["members"][0]["member_id"],
            &rest["members"][0]["member_id"],
        ];
        assert_eq!(ids, [&json!("M1"), &json!("M2")]);
        assert_eq!(rest["next_cursor"], Value::Null);

        // The refusals within the scope are in the audit log.
        let denied: Vec<_> = f
            .records()
            .into_iter()
            .filter(|r| r.action == action::MEMBER_DENIED)
            .map(|r| {
                (
                    r.actor,
                    r.member,
                    r.detail["path"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let own = |member: Option<&str>, path: &str| {
            (
                "km001-crm".to_owned(),
                member.map(str::to_owned),
                path.to_owned(),
            )
        };
        assert_eq!(
            denied,
            [
                own(Some("M2"), "/v1/members/M2"),
                own(Some("M2"), "/v1/members/M2/ledger"),
                (
                    "west-crm".into(),
                    Some("M1".into()),
                    "/v1/members/APP-1".into()
                ),
                own(None, "/v1/members"),
                own(None, "/v1/members?store_id=DL-001"),
            ]
        );
    }

    #[tokio::test]
    async fn every_successful_read_is_audited() {
        let f = fixture();
        for (uri, key) in [
            ("/v1/members/APP-1", CRM),
            ("/v1/members/M1/ledger", STORE_MD),
            ("/v1/members?limit=5", CRM),
            ("/v1/members/APP-1/export", PRIVACY),
        ] {
            let (status, body) = f.get(uri, key).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        }
        // Unknown members and non-personal routes are not recorded.
        f.get("/v1/members/NOPE", CRM).await;
        f.get("/v1/stores/KM-001/marketing", HQ).await;
        f.get("/v1/reports/settlement?date=2026-11-23", HQ).await;

        let records = f.records();
        let got: Vec<_> = records.iter().map(summary).collect();
        assert_eq!(
            got,
            [
                ("hq-crm", action::MEMBER_READ, Some("M1")),
                ("km001-crm", action::MEMBER_LEDGER, Some("M1")),
                ("hq-crm", action::MEMBER_LIST, None),
                ("privacy-desk", action::MEMBER_EXPORT, Some("M1")),
            ]
        );
        assert_eq!(records[0].detail, json!({ "requested_id": "APP-1" }));
        assert_eq!(records[2].detail["members"], json!(["M1", "M2"]));
        assert_eq!(
            records[2].detail["query"],
            json!({ "tag": null, "store_id": null, "cursor": 0, "limit": 5 })
        );
        assert_eq!(records[3].detail, json!({ "requested_id": "APP-1" }));
        assert!(f.audit.verify().unwrap().is_intact());
    }

    #[tokio::test]
    async fn export_holds_every_datum() {
        let f = fixture();
        let (status, data) = f.get("/v1/members/APP-1/export", PRIVACY).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(data["member"]["member_id"], "M1");
        assert_eq!(
            data["phone_hash"],
            "00000000000000000000000000000000000000000000000000000000000000a1"
        );
        assert_eq!(data["ids"].as_array().unwrap().len(), 2);
        assert_eq!(data["daily_activity"].as_array().unwrap().len(), 2);
        assert_eq!(data["ledger"]["points_balance"], 400);
        let (status, _) = f.get("/v1/members/NOPE/export", PRIVACY).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn erase_then_the_member_is_gone_everywhere() {
        let f = fixture();
        let (status, _) = f.call("DELETE", "/v1/members/NOPE", Some(PRIVACY)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = f.call("DELETE", "/v1/members/APP-1", Some(PRIVACY)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({ "erased": "M1", "event_id": "erase-test-M1" }));
        for id in ["M1", "APP-1"] {
            for uri in [
                format!("/v1/members/{id}"),
                format!("/v1/members/{id}/ledger"),
            ] {
                let (status, body) = f.get(&uri, CRM).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
                assert_eq!(body, json!({ "error": "no such member" }));
            }
            let (status, _) = f.get(&format!("/v1/members/{id}/export"), PRIVACY).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let (status, _) = f
                .call("DELETE", &format!("/v1/members/{id}"), Some(PRIVACY))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
        let (_, page) = f.get("/v1/members", CRM).await;
        assert_eq!(page["members"].as_array().unwrap().len(), 1);
        assert_eq!(page["members"][0]["member_id"], "M2");
        let (_, km) = f.get("/v1/stores/KM-001/marketing", HQ).await;
        assert_eq!(km["regulars"], 0);

        let records = f.records();
        assert_eq!(
            summary(&records[0]),
            ("privacy-desk", action::MEMBER_ERASE, Some("M1"))
        );
        assert_eq!(records[0].detail, json!({ "requested_id": "APP-1" }));
        // Only the erasure and the last list: the 404s were not recorded.
        assert_eq!(records.len(), 2, "{records:?}");
    }

    #[tokio::test]
    async fn an_unconfirmed_erasure_is_503_and_recorded() {
        // The submitter fails (the event log is down, say) after the erasure
        // was recorded: 503, and the record says it was not confirmed.
        let stores = stores();
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::open(dir.path()).unwrap();
        let failing: EraseSubmitter =
            Arc::new(|_| Box::pin(async { Err("event log unavailable".to_owned()) }));
        let shared = Arc::new(
            Shared::new(
                InventoryProcessor::new(InventoryConfig::default(), stores.clone()),
                AlertBook::new(10),
                Default::default(),
            )
            .with_members({
                let mut m = MemberProcessor::new(MemberConfig::default(), stores.clone()).unwrap();
                let parser = EventParser::new(stores.clone());
                m.apply(
                    &parser.parse(EVENTS[0].as_bytes()).unwrap(),
                    &mut Vec::new(),
                )
                .unwrap();
                m
            }),
        );
        let app = member_router(MemberApiState {
            shared,
            access: Arc::new(access(&stores)),
            audit: audit.clone(),
            erase: failing,
        });
        let f = Fixture {
            app,
            audit,
            _dir: dir,
        };
        let (status, body) = f.call("DELETE", "/v1/members/M1", Some(PRIVACY)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body["error"],
            "erasure not confirmed: event log unavailable"
        );
        let got: Vec<_> = f
            .records()
            .iter()
            .map(|r| summary(r).1.to_owned())
            .collect();
        assert_eq!(
            got,
            [action::MEMBER_ERASE, action::MEMBER_ERASE_UNCONFIRMED]
        );
    }

    #[tokio::test]
    async fn marketing_counts_without_personal_data() {
        let f = fixture();
        let (status, km) = f.get("/v1/stores/KM-001/marketing", STORE).await;
        assert_eq!(status, StatusCode::OK, "{km}");
        assert_eq!(km["store_id"], "KM-001");
        assert_eq!(km["regulars"], 1);
        let count = |view: &Value, tag: &str| {
            view["by_tag"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tag"] == tag)
                .map(|t| t["members"].clone())
                .unwrap()
        };
        assert_eq!(count(&km, "new_member"), 1);
        assert!(km["by_tag"][0]["action"].is_string());
        let (_, dl) = f.get("/v1/stores/DL-001/marketing", WEST_MD).await;
        assert_eq!(dl["regulars"], 1);
        assert_eq!(count(&dl, "new_member"), 0);
        for view in [&km, &dl] {
            let text = view.to_string();
            assert!(!text.contains("M1") && !text.contains("APP-1") && !text.contains("M2"));
        }
        let (status, body) = f.get("/v1/stores/XX-9/marketing", HQ).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = f.get("/v1/stores/DL-001/marketing", STORE).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            body["error"],
            "role store:DL-001 (or its region, or hq) required"
        );
        // Not personal data: nothing recorded.
        assert!(f.records().is_empty());
    }

    #[tokio::test]
    async fn settlement_for_a_date() {
        let f = fixture();
        let (status, report) = f.get("/v1/reports/settlement?date=2026-11-23", HQ).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(
            report,
            json!({
                "date": "2026-11-23",
                "final": false,
                "rows": [{
                    "from_franchisee": "direct",
                    "to_franchisee": "dianxi-retail",
                    "points": 200,
                    "amount_cents": 200,
                }],
                "as_of": "2026-11-23T11:00:00.000+08:00",
            })
        );
        let (_, quiet) = f.get("/v1/reports/settlement?date=2026-11-22", HQ).await;
        assert_eq!(quiet["rows"], json!([]));
        for uri in [
            "/v1/reports/settlement",
            "/v1/reports/settlement?date=2026-13-01",
            "/v1/reports/settlement?date=2026-11-2",
            "/v1/reports/settlement?date=yesterday",
        ] {
            let (status, body) = f.get(uri, HQ).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            assert!(body["error"].as_str().unwrap().starts_with("date: "));
        }
        // A region key is not hq, even with member_data.
        let (status, _) = f
            .get("/v1/reports/settlement?date=2026-11-23", WEST_MD)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn audit_route_is_newest_first_and_filters() {
        let f = fixture();
        f.get("/v1/members/M1", CRM).await;
        f.get("/v1/members/M2", CRM).await;
        f.get("/v1/members/M1/ledger", CRM).await;
        f.get("/v1/members/M1", STORE).await;

        let (status, body) = f.get("/v1/audit?limit=2", AUDITOR).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let records: Vec<AuditRecord> = serde_json::from_value(body["records"].clone()).unwrap();
        let got: Vec<_> = records.iter().map(|r| (r.seq, summary(r))).collect();
        assert_eq!(
            got,
            [
                (4, ("km001-manager", action::MEMBER_DENIED, Some("M1"))),
                (3, ("hq-crm", action::MEMBER_LEDGER, Some("M1"))),
            ]
        );
        let (_, body) = f.get("/v1/audit?member=M1", AUDITOR).await;
        let seqs: Vec<u64> = body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [4, 3, 1]);
        let (_, body) = f.get("/v1/audit", AUDITOR).await;
        assert_eq!(body["records"].as_array().unwrap().len(), 4);
        for uri in [
            "/v1/audit?limit=0",
            "/v1/audit?limit=1001",
            "/v1/audit?limit=x",
        ] {
            let (status, _) = f.get(uri, AUDITOR).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        }
        let (status, body) = f.get("/v1/audit", PRIVACY).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"], "role auditor required");
    }

    #[tokio::test]
    async fn without_members_every_route_but_audit_is_503() {
        let f = fixture_with(false);
        for (method, uri, key) in [
            ("GET", "/v1/members/M1", CRM),
            ("GET", "/v1/members/M1/ledger", CRM),
            ("GET", "/v1/members", CRM),
            ("GET", "/v1/members/M1/export", PRIVACY),
            ("DELETE", "/v1/members/M1", PRIVACY),
            ("GET", "/v1/stores/KM-001/marketing", HQ),
            ("GET", "/v1/reports/settlement?date=2026-11-23", HQ),
        ] {
            let (status, body) = f.call(method, uri, Some(key)).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method} {uri}");
            assert_eq!(body["error"], "member data is not served by this process");
        }
        let (status, _) = f.get("/v1/audit", AUDITOR).await;
        assert_eq!(status, StatusCode::OK);
        // Still 403 before 503: roles are checked first.
        let (status, _) = f.get("/v1/members/M1", HQ).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(f
            .records()
            .iter()
            .all(|r| r.action == action::MEMBER_DENIED));
    }

    #[test]
    fn a_failed_audit_write_is_503_without_data() {
        let error = AuditError::Io {
            path: "audit.ndjson".into(),
            source: std::io::Error::other("disk full"),
        };
        let response = audit_failed(&error).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
