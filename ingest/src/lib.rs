//! StorePulse ingest: the HTTP endpoint POS systems post events to, and
//! where it puts them.
//!
//! - [`http`]: `POST /v1/events` (validation, keys, limits, back-pressure).
//! - [`append`]: the durable destinations (embedded log or Kafka).
//! - [`keys`]: ingest keys bound to stores.
//! - [`log`]: the embedded, segmented, fsynced event log.
pub mod append;
pub mod http;
pub mod keys;
pub mod log;
