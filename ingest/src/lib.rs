//! StorePulse ingest.
pub mod http;
pub mod keys;
pub mod log;
