//! API access keys, dashboard users and roles for the query API
//! (`[[access.keys]]`, `[[access.users]]`).
//!
//! Every client of the query API presents a key, either as
//! `Authorization: Bearer <key>` or as `x-api-key: <key>`, or a login
//! session cookie (`storepulse_session`, see [`crate::session`]: people
//! log in to the dashboard with a name and password, `POST /v1/login`).
//! A key wins over a cookie when a request has both. Keys are
//! configured by their SHA-256 (lower-case hex), never in clear, exactly like
//! ingest keys: `storepulse keys hash <KEY>` prints the hash to configure.
//!
//! A key holds one or more roles:
//!
//! | role                  | grants                                                        |
//! |-----------------------|---------------------------------------------------------------|
//! | `hq`                  | every store of the chain                                      |
//! | `region:<region>`     | the stores of one region (`region` column of `stores.csv`)    |
//! | `store:<store_id>`    | one store                                                     |
//! | `risk`                | the risk team's views                                         |
//! | `member_data`         | personal member data: profile, ledger, member lists, export   |
//! | `privacy`             | erasing members and exporting (implies `member_data`)         |
//! | `auditor`             | the PIPL audit log (`GET /v1/audit`)                          |
//! | `channel`             | online channels: stock, availability and routing of every store; no sales, member or fraud data |
//!
//! Store roles (`hq`, `region:`, `store:`) give the [`StoreScope`]; the other
//! roles say what kind of data may be read. A handler of personal data checks
//! both: the role (`member_data`) *and* that the member's store is in scope.
//! A key without a store role has an empty scope. `channel` is not a store
//! role: it adds read access to stock and availability of every store
//! ([`Principal::can_read_stock`]), nothing else.
//!
//! Users (`[[access.users]]`) hold the same roles; their names share one
//! namespace with key names (both appear as the audit log's `actor`).
//!
//! Lookup is a `HashMap` keyed by the SHA-256 of the presented key, not a
//! constant-time comparison. The time a lookup takes depends only on
//! SHA-256(presented), which an attacker cannot steer towards a configured
//! hash without a SHA-256 preimage; so timing reveals nothing that helps
//! guess a key (keys are long random secrets). It also makes the lookup O(1)
//! whatever the number of keys.
//!
//! An empty key list means no request is accepted (every request is 401).
//!
//! Limits: keys are fixed at start (a restart reloads them); a key is not
//! checked against `[[ingest.keys]]` (reusing an ingest key for the API is
//! allowed but discouraged).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use storepulse_core::{StoreIdx, StoreMaster};

use crate::query::ApiError;
use crate::session::{check_phc, LoginLimiter, SessionConfig, Sessions, SESSION_COOKIE};

/// The `x-api-key` header, accepted as an alternative to `Authorization: Bearer`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Longest key name (it appears in logs and audit records).
const MAX_NAME_CHARS: usize = 64;

/// The actor name audit records use for the service itself; no key may take it.
const RESERVED_NAME: &str = "system";

/// The `[access]` section: who may call the query API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// API keys (`[[access.keys]]`). With no keys and no users, no request
    /// is accepted.
    pub keys: Vec<AccessKeyConfig>,
    /// Dashboard users who log in with a password (`[[access.users]]`).
    pub users: Vec<UserConfig>,
    /// Login sessions and the failed-login limit (`[access.sessions]`).
    pub sessions: SessionConfig,
}

/// One dashboard user (`[[access.users]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The login name (also the audit log's `actor`). Unique among users
    /// and keys; `system` is reserved.
    pub name: String,
    /// The argon2id PHC string of the password (`storepulse users hash`,
    /// password on stdin).
    pub password_hash: String,
    /// Roles, as for keys. At least one.
    pub roles: Vec<String>,
}

/// One API key (`[[access.keys]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    /// A name for logs and audit records (e.g. `hq-dashboard`). Not secret;
    /// unique; `system` is reserved.
    pub name: String,
    /// Lower-case hex SHA-256 of the key (`storepulse keys hash KEY`).
    pub sha256: String,
    /// Roles: `hq`, `region:<region>`, `store:<store_id>`, `risk`,
    /// `member_data`, `privacy`, `auditor`. At least one.
    pub roles: Vec<String>,
}

impl AccessConfig {
    /// Checks the section against the store master without building anything.
    ///
    /// # Errors
    /// As [`AccessTable::build`].
    pub fn validate(&self, stores: &StoreMaster) -> Result<(), String> {
        AccessTable::build(self, stores).map(|_| ())
    }
}

/// One role of a key, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The whole chain.
    Hq,
    /// The stores of one region.
    Region(String),
    /// One store (by store id).
    Store(String),
    /// The risk team.
    Risk,
    /// May read personal member data (profile, ledger, lists, export).
    MemberData,
    /// May erase members and export (and read what `member_data` reads).
    Privacy,
    /// May read the audit log.
    Auditor,
    /// An online channel: stock, availability and routing of every store.
    Channel,
}

/// What the roles are, for error messages.
const ROLE_LIST: &str =
    "hq, region:<region>, store:<store_id>, risk, member_data, privacy, auditor, channel";

impl Role {
    /// Parses a role string, checking regions and store ids against the master.
    ///
    /// # Errors
    /// A message without the field name (`unknown region "Xx"`).
    pub fn parse(text: &str, stores: &StoreMaster) -> Result<Self, String> {
        if let Some(region) = text.strip_prefix("region:") {
            if stores.iter().any(|(_, s)| s.region == region) {
                return Ok(Role::Region(region.to_owned()));
            }
            return Err(format!("unknown region {region:?}"));
        }
        if let Some(store_id) = text.strip_prefix("store:") {
            if stores.lookup(store_id).is_some() {
                return Ok(Role::Store(store_id.to_owned()));
            }
            return Err(format!("unknown store {store_id:?}"));
        }
        match text {
            "hq" => Ok(Role::Hq),
            "risk" => Ok(Role::Risk),
            "member_data" => Ok(Role::MemberData),
            "privacy" => Ok(Role::Privacy),
            "auditor" => Ok(Role::Auditor),
            "channel" => Ok(Role::Channel),
            other => Err(format!("unknown role {other:?} ({ROLE_LIST})")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Hq => f.write_str("hq"),
            Role::Region(region) => write!(f, "region:{region}"),
            Role::Store(store_id) => write!(f, "store:{store_id}"),
            Role::Risk => f.write_str("risk"),
            Role::MemberData => f.write_str("member_data"),
            Role::Privacy => f.write_str("privacy"),
            Role::Auditor => f.write_str("auditor"),
            Role::Channel => f.write_str("channel"),
        }
    }
}

/// Which stores a principal may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreScope {
    /// Every store (`hq`).
    All,
    /// The stores of its `region:` and `store:` roles.
    Stores(BTreeSet<StoreIdx>),
    /// No store role: no store-level data.
    None,
}

impl StoreScope {
    /// Whether the scope includes a store.
    pub fn allows(&self, store: StoreIdx) -> bool {
        match self {
            StoreScope::All => true,
            StoreScope::Stores(set) => set.contains(&store),
            StoreScope::None => false,
        }
    }
}

/// An authenticated caller: a configured key's name, roles and store scope.
///
/// Cheap to clone (one `Arc`). Obtained from [`AccessTable::authenticate`] or
/// as an axum extractor (see the `FromRequestParts` impl).
#[derive(Debug, Clone)]
pub struct Principal {
    inner: Arc<PrincipalInner>,
}

#[derive(Debug)]
struct PrincipalInner {
    name: String,
    roles: Vec<Role>,
    scope: StoreScope,
    kind: PrincipalKind,
}

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// An API key (`[[access.keys]]`).
    Key,
    /// A dashboard user's login session (`[[access.users]]`).
    User,
}

impl Principal {
    /// The key's name (for logs and the audit log's `actor`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The key's roles, sorted, without repeats.
    pub fn roles(&self) -> &[Role] {
        &self.inner.roles
    }

    /// Whether this is an API key or a logged-in user.
    pub fn kind(&self) -> PrincipalKind {
        self.inner.kind
    }

    /// An online channel (`channel`).
    pub fn is_channel(&self) -> bool {
        self.has(&Role::Channel)
    }

    /// May read stock and availability of `store`: its store scope, or
    /// `channel` (every store).
    pub fn can_read_stock(&self, store: StoreIdx) -> bool {
        self.is_channel() || self.can_see_store(store)
    }

    /// May read stock of every store (`hq` or `channel`): the routes that
    /// plan over the whole chain (`POST /v1/route`).
    pub fn can_read_all_stock(&self) -> bool {
        self.is_channel() || self.inner.scope == StoreScope::All
    }

    /// A principal with no roles, for unit tests of other modules.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str) -> Self {
        Self {
            inner: Arc::new(PrincipalInner {
                name: name.to_owned(),
                roles: Vec::new(),
                scope: StoreScope::None,
                kind: PrincipalKind::User,
            }),
        }
    }

    fn has(&self, role: &Role) -> bool {
        self.inner.roles.contains(role)
    }

    /// May read personal member data (`member_data` or `privacy`).
    pub fn can_read_member_data(&self) -> bool {
        self.has(&Role::MemberData) || self.has(&Role::Privacy)
    }

    /// May erase members (`privacy`).
    pub fn can_erase_members(&self) -> bool {
        self.has(&Role::Privacy)
    }

    /// May read the audit log (`auditor`).
    pub fn can_read_audit(&self) -> bool {
        self.has(&Role::Auditor)
    }

    /// Belongs to the risk team (`risk`).
    pub fn is_risk(&self) -> bool {
        self.has(&Role::Risk)
    }

    /// The stores this principal may see, computed once when keys are loaded.
    pub fn store_scope(&self) -> &StoreScope {
        &self.inner.scope
    }

    /// Whether this principal may see a store's data.
    pub fn can_see_store(&self, store: StoreIdx) -> bool {
        self.inner.scope.allows(store)
    }
}

/// A configured user: the PHC string and what a login grants.
#[derive(Debug, Clone)]
pub struct User {
    /// The argon2id PHC string.
    pub password_hash: String,
    /// The principal a session of this user carries.
    pub principal: Principal,
}

/// The configured keys (by the SHA-256 of the key), users (by name), and
/// the login sessions of this process.
#[derive(Debug, Clone)]
pub struct AccessTable {
    by_hash: HashMap<[u8; 32], Principal>,
    users: HashMap<String, User>,
    sessions: Arc<Sessions>,
    limiter: Arc<LoginLimiter>,
    session_config: SessionConfig,
}

impl Default for AccessTable {
    fn default() -> Self {
        let config = SessionConfig::default();
        Self {
            by_hash: HashMap::new(),
            users: HashMap::new(),
            sessions: Arc::new(Sessions::new(std::time::Duration::from_secs(
                config.ttl_secs,
            ))),
            limiter: Arc::new(LoginLimiter::new(
                config.max_failed_logins,
                std::time::Duration::from_secs(config.lockout_secs),
            )),
            session_config: config,
        }
    }
}

/// Checks a key or user name.
fn check_principal_name<'a>(
    name: &'a str,
    field: &str,
    names: &mut HashSet<&'a str>,
) -> Result<(), String> {
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(format!(
            "{field}: must be 1-{MAX_NAME_CHARS} characters, no control characters"
        ));
    }
    if name == RESERVED_NAME {
        return Err(format!(
            "{field}: {RESERVED_NAME:?} is reserved for the service itself"
        ));
    }
    if !names.insert(name) {
        return Err(format!("{field}: {name:?} is used by another key or user"));
    }
    Ok(())
}

/// Parses a list of role strings into a principal.
fn principal_of(
    name: &str,
    texts: &[String],
    field: &str,
    kind: PrincipalKind,
    stores: &StoreMaster,
) -> Result<Principal, String> {
    if texts.is_empty() {
        return Err(format!(
            "{field}: must hold at least one role ({ROLE_LIST})"
        ));
    }
    let mut roles = BTreeSet::new();
    for (j, text) in texts.iter().enumerate() {
        let role = Role::parse(text, stores).map_err(|reason| format!("{field}[{j}]: {reason}"))?;
        roles.insert(role);
    }
    Ok(Principal {
        inner: Arc::new(PrincipalInner {
            name: name.to_owned(),
            scope: scope_of(&roles, stores),
            roles: roles.into_iter().collect(),
            kind,
        }),
    })
}

impl AccessTable {
    /// Builds the table, checking every key against the store master.
    ///
    /// # Errors
    /// A message naming the field and the reason, e.g.
    /// `access.keys[2].roles[0]: unknown region "Xx"`: an empty, reserved or
    /// repeated name; a hash that is not 64 hex characters or repeats; no
    /// roles; an unknown role, region or store.
    pub fn build(config: &AccessConfig, stores: &StoreMaster) -> Result<Self, String> {
        config.sessions.validate()?;
        let mut by_hash = HashMap::with_capacity(config.keys.len());
        let mut names = HashSet::with_capacity(config.keys.len() + config.users.len());
        for (i, key) in config.keys.iter().enumerate() {
            let field = |name: &str| format!("access.keys[{i}].{name}");
            check_principal_name(&key.name, &field("name"), &mut names)?;
            let hash = parse_sha256(&key.sha256).ok_or_else(|| {
                format!(
                    "{}: must be 64 hex characters (SHA-256 of the key)",
                    field("sha256")
                )
            })?;
            let principal = principal_of(
                &key.name,
                &key.roles,
                &field("roles"),
                PrincipalKind::Key,
                stores,
            )?;
            if by_hash.insert(hash, principal).is_some() {
                return Err(format!(
                    "{}: the same key is configured twice",
                    field("sha256")
                ));
            }
        }
        let mut users = HashMap::with_capacity(config.users.len());
        for (i, user) in config.users.iter().enumerate() {
            let field = |name: &str| format!("access.users[{i}].{name}");
            check_principal_name(&user.name, &field("name"), &mut names)?;
            check_phc(&user.password_hash)
                .map_err(|reason| format!("{}: {reason}", field("password_hash")))?;
            let principal = principal_of(
                &user.name,
                &user.roles,
                &field("roles"),
                PrincipalKind::User,
                stores,
            )?;
            users.insert(
                user.name.clone(),
                User {
                    password_hash: user.password_hash.clone(),
                    principal,
                },
            );
        }
        let sc = config.sessions.clone();
        Ok(Self {
            by_hash,
            users,
            sessions: Arc::new(Sessions::new(std::time::Duration::from_secs(sc.ttl_secs))),
            limiter: Arc::new(LoginLimiter::new(
                sc.max_failed_logins,
                std::time::Duration::from_secs(sc.lockout_secs),
            )),
            session_config: sc,
        })
    }

    /// The principal of a presented key, if the key is configured.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.by_hash.get(&digest).cloned()
    }

    /// A configured user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// The login sessions of this process.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The failed-login limiter.
    pub fn limiter(&self) -> &LoginLimiter {
        &self.limiter
    }

    /// `[access.sessions]` as configured.
    pub fn session_config(&self) -> &SessionConfig {
        &self.session_config
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no key and no user is configured (then every request is
    /// refused).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty() && self.users.is_empty()
    }
}

/// Decodes 64 hex characters (either case) into 32 bytes.
fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        // Both digits are < 16, so the value fits in a byte.
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

fn scope_of(roles: &BTreeSet<Role>, stores: &StoreMaster) -> StoreScope {
    if roles.contains(&Role::Hq) {
        return StoreScope::All;
    }
    let mut set = BTreeSet::new();
    for role in roles {
        match role {
            Role::Region(region) => set.extend(
                stores
                    .iter()
                    .filter(|(_, s)| &s.region == region)
                    .map(|(idx, _)| idx),
            ),
            Role::Store(store_id) => set.extend(stores.lookup(store_id)),
            _ => {}
        }
    }
    if set.is_empty() {
        StoreScope::None
    } else {
        StoreScope::Stores(set)
    }
}

/// Why a request was not authenticated: 401, `{"error": ...}` and
/// `WWW-Authenticate: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized {
    message: &'static str,
    /// A key was presented but is not configured (`error="invalid_token"`).
    invalid_token: bool,
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let challenge = if self.invalid_token {
            r#"Bearer realm="storepulse", error="invalid_token""#
        } else {
            r#"Bearer realm="storepulse""#
        };
        (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, HeaderValue::from_static(challenge))],
            Json(json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// The key presented in a request: `Authorization: Bearer` first, else `x-api-key`.
fn presented_key(parts: &Parts) -> Result<&str, Unauthorized> {
    let bad = |message| Unauthorized {
        message,
        invalid_token: true,
    };
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| bad("Authorization: not a valid header value"))?;
        let (scheme, key) = text
            .trim()
            .split_once(' ')
            .ok_or(bad("Authorization: expected \"Bearer <key>\""))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(bad("Authorization: expected the Bearer scheme"));
        }
        let key = key.trim();
        if key.is_empty() {
            return Err(bad("Authorization: empty key"));
        }
        return Ok(key);
    }
    if let Some(value) = parts.headers.get(API_KEY_HEADER) {
        let key = value
            .to_str()
            .map_err(|_| bad("x-api-key: not a valid header value"))?
            .trim();
        if key.is_empty() {
            return Err(bad("x-api-key: empty key"));
        }
        return Ok(key);
    }
    Err(Unauthorized {
        message: MISSING_CREDENTIALS,
        invalid_token: false,
    })
}

const MISSING_CREDENTIALS: &str =
    "missing API key (Authorization: Bearer <key>, or x-api-key) or login session";

/// The session token of the request's `Cookie` headers, if any.
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

fn has_credentials(parts: &Parts) -> bool {
    parts.headers.contains_key(AUTHORIZATION)
        || parts.headers.contains_key(API_KEY_HEADER)
        || session_token(&parts.headers).is_some()
}

/// Extracts the caller from `Authorization: Bearer <key>` (or `x-api-key`),
/// looking the key up in the router state's `Arc<AccessTable>`, or else
/// from the session cookie.
///
/// A missing or unknown key or session is rejected with [`Unauthorized`] (401) before the
/// handler runs; the key itself is never logged.
impl<S> FromRequestParts<S> for Principal
where
    Arc<AccessTable>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let table = Arc::<AccessTable>::from_ref(state);
        let key = match presented_key(parts) {
            Ok(key) => key,
            Err(missing) if !missing.invalid_token => {
                let Some(token) = session_token(&parts.headers) else {
                    return Err(missing);
                };
                return table.sessions().get(token).ok_or(Unauthorized {
                    message: "login session expired or unknown: log in again",
                    invalid_token: true,
                });
            }
            Err(bad) => return Err(bad),
        };
        match table.authenticate(key) {
            Some(principal) => {
                tracing::debug!(key = principal.name(), "api key accepted");
                Ok(principal)
            }
            None => {
                tracing::debug!("unknown api key");
                Err(Unauthorized {
                    message: "unknown API key",
                    invalid_token: true,
                })
            }
        }
    }
}

/// `Option<Principal>`: `None` when the request presents no key at all
/// (routes that are partly public); a presented but unknown or malformed
/// key is still a 401.
impl<S> axum::extract::OptionalFromRequestParts<S> for Principal
where
    Arc<AccessTable>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if !has_credentials(parts) {
            return Ok(None);
        }
        <Principal as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// A 403 unless `allowed`: `{"error": "role <what> required"}`.
///
/// ```
/// use storepulse_dashboards::access::{require, Principal};
/// use storepulse_dashboards::query::ApiError;
///
/// async fn erase(principal: Principal) -> Result<&'static str, ApiError> {
///     require(principal.can_erase_members(), "privacy")?;
///     Ok("erased")
/// }
/// ```
///
/// # Errors
/// [`ApiError`] with status 403 when `allowed` is false.
pub fn require(allowed: bool, what: &str) -> Result<(), ApiError> {
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("role {what} required"),
        ))
    }
}

/// What the route tests of this crate share: a key table built from
/// `(secret, name, roles)` triples.
#[cfg(test)]
pub(crate) fn test_table(keys: &[(&str, &str, &[&str])], stores: &StoreMaster) -> AccessTable {
    use sha2::{Digest, Sha256};
    let keys = keys
        .iter()
        .map(|(secret, name, roles)| AccessKeyConfig {
            name: (*name).to_owned(),
            sha256: Sha256::digest(secret.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        })
        .collect();
    // The test keys are valid by construction.
    #[allow(clippy::unwrap_used)]
    AccessTable::build(
        &AccessConfig {
            keys,
            ..AccessConfig::default()
        },
        stores,
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use std::path::Path;
    use tower::ServiceExt;

    fn stores() -> StoreMaster {
        StoreMaster::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv"))
            .unwrap()
    }

    fn hash(key: &str) -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn key(name: &str, secret: &str, roles: &[&str]) -> AccessKeyConfig {
        AccessKeyConfig {
            name: name.into(),
            sha256: hash(secret),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn build(keys: Vec<AccessKeyConfig>) -> Result<AccessTable, String> {
        AccessTable::build(
            &AccessConfig {
                keys,
                ..AccessConfig::default()
            },
            &stores(),
        )
    }

    #[test]
    fn roles_parse_and_print() {
        let s = stores();
        for text in [
            "hq",
            "region:west",
            "store:KM-001",
            "risk",
            "member_data",
            "privacy",
            "auditor",
            "channel",
        ] {
            let role = Role::parse(text, &s).unwrap();
            assert_eq!(role.to_string(), text);
        }
        assert_eq!(
            Role::parse("admin", &s).unwrap_err(),
            format!("unknown role \"admin\" ({ROLE_LIST})")
        );
        // Role names are exact: no case folding, no spaces.
        assert!(Role::parse("HQ", &s).is_err());
        assert!(Role::parse("region:West", &s).is_err());
    }

    #[test]
    fn validation_errors_name_the_field() {
        let ok = || key("ok", "k0", &["hq"]);
        let cases: Vec<(Vec<AccessKeyConfig>, &str)> = vec![
            (
                vec![ok(), ok(), key("r", "k2", &["region:Xx"])],
                "access.keys[1].name: \"ok\" is used by another key or user",
            ),
            (
                vec![ok(), key("a", "k1", &["risk"]), key("r", "k2", &["region:Xx"])],
                "access.keys[2].roles[0]: unknown region \"Xx\"",
            ),
            (
                vec![key("s", "k1", &["hq", "store:XX-1"])],
                "access.keys[0].roles[1]: unknown store \"XX-1\"",
            ),
            (
                vec![key("s", "k1", &["admin"])],
                "access.keys[0].roles[0]: unknown role \"admin\" (hq, region:<region>, store:<store_id>, risk, member_data, privacy, auditor, channel)",
            ),
            (
                vec![key("s", "k1", &[])],
                "access.keys[0].roles: must hold at least one role (hq, region:<region>, store:<store_id>, risk, member_data, privacy, auditor, channel)",
            ),
            (
                vec![ok(), key("other", "k0", &["risk"])],
                "access.keys[1].sha256: the same key is configured twice",
            ),
            (
                vec![key("system", "k1", &["hq"])],
                "access.keys[0].name: \"system\" is reserved for the service itself",
            ),
            (
                vec![key("", "k1", &["hq"])],
                "access.keys[0].name: must be 1-64 characters, no control characters",
            ),
        ];
        for (keys, expected) in cases {
            assert_eq!(build(keys).unwrap_err(), expected);
        }
        for bad_hash in ["abc", &"g".repeat(64), &format!("{}0", hash("x"))] {
            let mut k = ok();
            k.sha256 = bad_hash.to_owned();
            assert_eq!(
                build(vec![k]).unwrap_err(),
                "access.keys[0].sha256: must be 64 hex characters (SHA-256 of the key)"
            );
        }
        // Upper-case hex is the same hash: a duplicate.
        let mut upper = key("upper", "k0", &["risk"]);
        upper.sha256 = upper.sha256.to_ascii_uppercase();
        assert!(build(vec![ok(), upper]).unwrap_err().contains("twice"));
        assert!(AccessConfig::default().validate(&stores()).is_ok());
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let text = r#"{"keys":[{"name":"a","sha256":"00","roles":[],"stores":["*"]}]}"#;
        let err = serde_json::from_str::<AccessConfig>(text).unwrap_err();
        assert!(err.to_string().contains("unknown field `stores`"), "{err}");
        let empty: AccessConfig = serde_json::from_str("{}").unwrap();
        assert!(empty.keys.is_empty());
    }

    #[test]
    fn scope_of_hq_region_store_and_none() {
        let s = stores();
        let table = build(vec![
            key("hq", "k-hq", &["hq", "store:KM-001"]),
            key("west", "k-west", &["region:west", "store:KM-001"]),
            key("one", "k-one", &["store:DL-001"]),
            key("audit", "k-audit", &["auditor"]),
        ])
        .unwrap();
        let (km, dl, lj, qj) = (
            s.lookup("KM-001").unwrap(),
            s.lookup("DL-001").unwrap(),
            s.lookup("LJ-001").unwrap(),
            s.lookup("QJ-001").unwrap(),
        );

        let hq = table.authenticate("k-hq").unwrap();
        assert_eq!(hq.store_scope(), &StoreScope::All);
        assert!([km, dl, lj, qj].iter().all(|&i| hq.can_see_store(i)));

        let west = table.authenticate("k-west").unwrap();
        let StoreScope::Stores(set) = west.store_scope() else {
            panic!("expected a store set, got {:?}", west.store_scope());
        };
        // The 8 west stores and KM-001.
        assert_eq!(set.len(), 9);
        assert!(west.can_see_store(dl) && west.can_see_store(lj) && west.can_see_store(km));
        assert!(!west.can_see_store(qj));

        let one = table.authenticate("k-one").unwrap();
        assert_eq!(one.store_scope(), &StoreScope::Stores(BTreeSet::from([dl])));
        assert!(!one.can_see_store(lj));

        let audit = table.authenticate("k-audit").unwrap();
        assert_eq!(audit.store_scope(), &StoreScope::None);
        assert!(!audit.can_see_store(km));
        assert!(audit.can_read_audit() && !audit.can_read_member_data());
    }

    #[test]
    fn role_predicates() {
        let table = build(vec![
            key("md", "k1", &["member_data"]),
            key("priv", "k2", &["privacy", "privacy"]),
            key("risk", "k3", &["risk", "region:east"]),
        ])
        .unwrap();
        let md = table.authenticate("k1").unwrap();
        assert!(md.can_read_member_data() && !md.can_erase_members() && !md.is_risk());
        let privacy = table.authenticate("k2").unwrap();
        assert!(privacy.can_read_member_data() && privacy.can_erase_members());
        assert_eq!(privacy.roles(), &[Role::Privacy]);
        let risk = table.authenticate("k3").unwrap();
        assert!(risk.is_risk() && !risk.can_read_member_data() && !risk.can_read_audit());
        assert_eq!(risk.name(), "risk");
        assert!(table.authenticate("k4").is_none());
        assert_eq!(table.len(), 3);
    }

    /// A state that holds more than the table, to exercise `FromRef`.
    #[derive(Clone, FromRef)]
    struct TestState {
        access: Arc<AccessTable>,
        greeting: &'static str,
    }

    async fn whoami(principal: Principal, State(greeting): State<&'static str>) -> String {
        format!("{greeting} {}", principal.name())
    }

    async fn members(principal: Principal) -> Result<&'static str, ApiError> {
        require(principal.can_read_member_data(), "member_data")?;
        Ok("members")
    }

    fn app() -> Router {
        let table = build(vec![
            key("hq-dash", "secret-hq", &["hq"]),
            key("crm", "secret-crm", &["member_data", "hq"]),
        ])
        .unwrap();
        Router::new()
            .route("/whoami", get(whoami))
            .route("/members", get(members))
            .with_state(TestState {
                access: Arc::new(table),
                greeting: "hello",
            })
    }

    async fn call(
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, serde_json::Value, String) {
        let mut request = Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, challenge, json, text)
    }

    #[tokio::test]
    async fn extractor_accepts_bearer_and_x_api_key() {
        let (status, _, _, text) = call("/whoami", &[("authorization", "Bearer secret-hq")]).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "hello hq-dash"));
        let (status, _, _, text) =
            call("/whoami", &[("authorization", "bearer  secret-crm ")]).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "hello crm"));
        let (status, _, _, text) = call("/whoami", &[("x-api-key", "secret-crm")]).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "hello crm"));
    }

    #[tokio::test]
    async fn extractor_answers_401_with_a_bearer_challenge() {
        for headers in [
            vec![],
            vec![("authorization", "Bearer nope")],
            vec![("authorization", "Basic c2VjcmV0LWhxOg==")],
            vec![("authorization", "Bearer ")],
            vec![("x-api-key", "nope")],
        ] {
            let (status, challenge, body, _) = call("/whoami", &headers).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
            assert!(
                challenge.as_deref().unwrap_or("").starts_with("Bearer"),
                "{headers:?}: {challenge:?}"
            );
            let message = body["error"].as_str().unwrap_or("");
            assert!(!message.is_empty(), "{headers:?}: {body}");
            assert!(!message.contains("nope"), "the key is never echoed");
        }
        let (_, _, body, _) = call("/whoami", &[]).await;
        assert!(body["error"]
            .as_str()
            .unwrap()
            .starts_with("missing API key"));
        let (_, _, body, _) = call("/whoami", &[("x-api-key", "nope")]).await;
        assert_eq!(body["error"], "unknown API key");
    }

    #[tokio::test]
    async fn require_answers_403_naming_the_role() {
        let (status, challenge, body, _) =
            call("/members", &[("authorization", "Bearer secret-hq")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(challenge, None);
        assert_eq!(body, json!({ "error": "role member_data required" }));
        let (status, _, _, text) =
            call("/members", &[("authorization", "Bearer secret-crm")]).await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "members"));
        let (status, _, _, _) = call("/members", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}
