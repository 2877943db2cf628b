//! StorePulse ingest.
pub mod log;
pub mod http;
pub mod keys;
