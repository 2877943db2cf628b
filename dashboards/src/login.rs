//! Dashboard login: `POST /v1/login`, `POST /v1/logout`, `GET /v1/me`.
//!
//! | route | who | answer |
//! |---|---|---|
//! | `POST /v1/login` `{name, password}` | anyone | 200 + `Set-Cookie: storepulse_session=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=…` and the [`me`] body; 401 `{"error":"wrong name or password"}`; 429 + `Retry-After` while the name is locked |
//! | `POST /v1/logout` | a session (or nothing) | 204, the cookie cleared |
//! | `GET /v1/me` | a key or a session | name, kind, roles, what the principal may do, and its scope: stores grouped by region (the dashboard's filter choices) |
//!
//! A wrong password and an unknown name take the same time (an unknown name
//! is verified against [`crate::session::dummy_hash`]) and the same answer.
//! Every login, failed login and logout is written to the audit log before
//! the answer (`user.login`, `user.login_failed`, `user.logout`); if the
//! audit write fails, no session is opened (503). A failed login's actor is
//! `anonymous`, the name tried is in `detail.name` (at most 64 characters).
//! The cookie is `SameSite=Strict`, so other sites cannot make the browser
//! send it (no cross-site request forgery of decisions).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use storepulse_core::StoreMaster;

use crate::access::{session_token, AccessTable, Principal, StoreScope};
use crate::audit::{action, AuditError, AuditLog};
use crate::query::{Answer, ApiError};
use crate::session::{dummy_hash, verify_password, SESSION_COOKIE};

/// Every (method, path) of [`login_router`] (described in `openapi.json`).
pub const LOGIN_ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/login"),
    ("post", "/v1/logout"),
    ("get", "/v1/me"),
];

/// Actor of audit records of failed logins.
pub const ANONYMOUS_ACTOR: &str = "anonymous";

/// Longest password accepted (bytes); longer ones fail like a wrong one.
const MAX_PASSWORD_BYTES: usize = 1024;

/// What the login routes need.
#[derive(Clone)]
pub struct LoginState {
    pub access: Arc<AccessTable>,
    pub audit: AuditLog,
    pub stores: Arc<StoreMaster>,
}

impl FromRef<LoginState> for Arc<AccessTable> {
    fn from_ref(state: &LoginState) -> Self {
        state.access.clone()
    }
}

/// The login routes.
pub fn login_router(state: LoginState) -> Router {
    Router::new()
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route("/v1/me", get(me_route))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    name: String,
    password: String,
}

fn audit_failed(error: &AuditError) -> ApiError {
    tracing::error!(%error, "audit log: write failed; no session opened");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit log unavailable: not logged in; retry later",
    )
}

/// The name as written to the audit log: at most 64 characters, control
/// characters replaced.
fn printable(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn cookie(value: &str, max_age: u64, secure: bool) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cookie"))
}

async fn login(
    State(st): State<LoginState>,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "body: {} (expected {{\"name\", \"password\"}})",
                e.body_text()
            ),
        )
    })?;
    let limiter_key = printable(&body.name);
    if let Err(wait) = st.access.limiter().check(&limiter_key) {
        st.audit
            .append_async(
                ANONYMOUS_ACTOR,
                action::USER_LOGIN_FAILED,
                None,
                json!({ "name": limiter_key, "reason": "too many failed logins" }),
            )
            .await
            .map_err(|e| audit_failed(&e))?;
        let secs = wait.as_secs().max(1);
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, HeaderValue::from(secs))],
            Json(json!({ "error": format!("too many failed logins for this name; retry in {secs} s") })),
        )
            .into_response());
    }
    let user = st.access.user(&body.name).cloned();
    let phc = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let password = body.password;
    let matches = tokio::task::spawn_blocking(move || {
        // Too long a password is verified anyway (same time), then refused.
        let ok = verify_password(&phc, &password);
        ok && password.len() <= MAX_PASSWORD_BYTES
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let Some(user) = user.filter(|_| matches) else {
        st.access.limiter().failed(&limiter_key);
        st.audit
            .append_async(
                ANONYMOUS_ACTOR,
                action::USER_LOGIN_FAILED,
                None,
                json!({ "name": limiter_key, "reason": "wrong name or password" }),
            )
            .await
            .map_err(|e| audit_failed(&e))?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong name or password",
        ));
    };
    st.access.limiter().succeeded(&limiter_key);
    st.audit
        .append_async(user.principal.name(), action::USER_LOGIN, None, json!({}))
        .await
        .map_err(|e| audit_failed(&e))?;
    let token = st.access.sessions().create(user.principal.clone());
    let config = st.access.session_config();
    let set = cookie(&token, config.ttl_secs, config.secure_cookie)?;
    Ok(([(SET_COOKIE, set)], Json(me(&user.principal, &st.stores))).into_response())
}

async fn logout(State(st): State<LoginState>, headers: HeaderMap) -> Answer {
    if let Some(token) = session_token(&headers) {
        if let Some(principal) = st.access.sessions().get(token) {
            st.audit
                .append_async(principal.name(), action::USER_LOGOUT, None, json!({}))
                .await
                .map_err(|e| audit_failed(&e))?;
        }
        st.access.sessions().remove(token);
    }
    let clear = cookie("", 0, st.access.session_config().secure_cookie)?;
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, clear)]).into_response())
}

async fn me_route(State(st): State<LoginState>, who: Principal) -> Response {
    Json(me(&who, &st.stores)).into_response()
}

/// The body of `GET /v1/me` (and of a successful login).
pub fn me(who: &Principal, stores: &StoreMaster) -> Value {
    let mut regions: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (idx, store) in stores.iter() {
        if who.can_see_store(idx) {
            regions.entry(&store.region).or_default().push(json!({
                "store_id": store.store_id,
                "name": store.name,
                "city": store.city,
            }));
        }
    }
    let roles: Vec<String> = who.roles().iter().map(ToString::to_string).collect();
    json!({
        "name": who.name(),
        "kind": who.kind(),
        "roles": roles,
        "can": {
            "sales": !matches!(who.store_scope(), StoreScope::None),
            "stock_all_stores": who.can_read_all_stock(),
            "review_queue": who.is_risk() || matches!(who.store_scope(), StoreScope::All),
            "decide": who.is_risk(),
            "member_data": who.can_read_member_data(),
        },
        "scope": {
            "all": matches!(who.store_scope(), StoreScope::All),
            "regions": regions
                .into_iter()
                .map(|(region, stores)| json!({ "region": region, "stores": stores }))
                .collect::<Vec<_>>(),
        },
    })
}
