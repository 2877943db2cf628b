//! StorePulse query API: what stores, channels and HQ read.
//!
//! Every answer is computed from the runtime's
//! [`storepulse_runtime::Shared`] state under a read lock (no `.await`
//! while it is held), so a query sees whole batches of events and never
//! waits more than one batch. Event-time answers say
//! the clock `T` they were computed at (`as_of`).
//!
//! Every route except the page, `POST /v1/login` and `POST /v1/logout`
//! needs a principal (an API key or a login session) and answers only for
//! its stores. Routes (see `openapi.json`, served at `/openapi.json`):
//! - `POST /v1/login`, `POST /v1/logout`, `GET /v1/me`,
//! - `GET /v1/mart/{sales_by_hour,top_skus,members_by_tag,new_members,totals}`,
//! - `GET /` (redirect), `GET /dashboard/`, `GET /dashboard/assets/{file}`,
//! - `GET /v1/stock/{store_id}/{sku}`, `GET /v1/stock/{store_id}` (paged),
//! - `GET /v1/skus/{sku}/availability?near=&limit=`,
//! - `POST /v1/route`,
//! - `GET /v1/suggestions/replenish?store_id=`, `GET /v1/suggestions/transfers?region=`,
//! - `GET /v1/alerts?kind=&limit=` (stock), `GET /v1/dlq?limit=`,
//! - fraud review (API key, `risk`): `GET /v1/alerts?status=&rule=`,
//!   `GET /v1/alerts/{alert_id}`, `POST /v1/alerts/{alert_id}/decision`,
//!   `GET|PUT|DELETE /v1/rules/{name}`, `GET /v1/rules`,
//! - members (API key required, every read of personal data audited first):
//!   `GET /v1/members/{member_id}`, `.../ledger`, `.../export`,
//!   `DELETE /v1/members/{member_id}`, `GET /v1/members?tag=&store_id=`,
//!   `GET /v1/stores/{store_id}/marketing`,
//!   `GET /v1/reports/settlement?date=`, `GET /v1/audit?limit=&member=`.
//!
//! Layout:
//! - [`query`]: the stock query routes and their handlers, scoped.
//! - [`members`]: the member routes: roles and store scopes per route, the
//!   audit-before-answer rule, erasure through the pipeline.
//! - [`fraud`]: the review queue, decisions and fraud rules.
//! - [`access`]: API keys, roles and store scopes; the `Principal` extractor.
//! - [`audit`]: the PIPL audit log (hash-chained, append-only JSON lines).
//! - [`session`]: dashboard users' password hashes, login sessions, the
//!   failed-login limit; [`login`]: `POST /v1/login`, `/v1/logout`, `GET /v1/me`.
//! - [`mart`]: the dashboard's chart data (`/v1/mart/...`), scope resolved
//!   into the mart filter on the server.
//! - [`web`]: the dashboard page and its assets (Apache ECharts embedded).

pub mod access;
pub mod audit;
pub mod fraud;
pub mod login;
pub mod mart;
pub mod members;
pub mod query;
pub mod session;
pub mod web;

#[cfg(test)]
mod matrix_tests;

pub use fraud::{fraud_router, FraudApiState, FRAUD_ROUTES};
pub use login::{login_router, LoginState, LOGIN_ROUTES};
pub use mart::{mart_router, MartApiState, MART_ROUTES};
pub use members::{member_router, EraseRequest, EraseSubmitter, MemberApiState, MEMBER_ROUTES};
pub use query::{router, DeadLetterReader, QueryState};
pub use web::{web_router, WEB_ROUTES};

/// The OpenAPI document of the whole HTTP API (ingest, queries, operations).
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");
