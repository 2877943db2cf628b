//! StorePulse sinks: where results leave the pipeline for other systems.
//!
//! The embedded default writes most of its outputs itself (alerts to the
//! runtime's alert book and checkpoint, rejections to the dead-letter log in
//! `ingest`). This crate holds the connectors that deliver to systems
//! outside StorePulse, one folder each with its config, durable queue,
//! sender with retry logic, and integration tests against a real server
//! (Vector's layout).
//!
//! # Layout
//!
//! - [`error`]: [`SinkError`], the crate's one error enum, each variant with
//!   a [`RetryHint`].
//! - [`webhook`]: fraud alerts to HTTP webhooks (IM robots), issue #5:
//!   - `config.rs`: [`webhook::WebhookSinkConfig`], serde, pure `validate()`;
//!   - `outbox.rs`: the durable, de-duplicating, append-only outbox and the
//!     per-webhook cursors;
//!   - `sender.rs`: one task per webhook, signed POSTs, retry logic;
//!   - `signature.rs`: `X-StorePulse-Signature` (HMAC-SHA256);
//!   - `integration_tests.rs`: against an axum server on 127.0.0.1.
//! - [`clickhouse`]: the mart on a ClickHouse server (issue #6), a
//!   `MartWriter` and `MartReader`:
//!   - `config.rs`: [`clickhouse::ClickHouseConfig`] (`[mart.clickhouse]`);
//!   - `migrations.rs` + `migrations/*.sql`: versioned schema;
//!   - `rows.rs`, `sink.rs`, `query.rs`, `sql.rs`: insert rows, the
//!     writer, the dashboard's queries, literals and error classes;
//!   - `integration_tests.rs`: against a real server.

pub mod clickhouse;
pub mod error;
pub mod webhook;

pub use error::{Result, RetryHint, SinkError};
