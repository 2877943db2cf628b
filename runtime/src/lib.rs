//! StorePulse runtime: everything around the processors that does I/O.
//!
//! The processors are pure state machines; this crate drives them. It reads
//! records from an [`EventSource`](storepulse_core::source::EventSource)
//! (the embedded log now, Kafka later), parses and applies them, publishes
//! the state for queries, sends rejections to a [`DeadLetterSink`], keeps
//! alerts, and checkpoints the processor state *together with* the source
//! position it reflects, so that a restart restores the state and replays
//! only the tail: nothing is lost and nothing applied twice.
//!
//! Layout:
//! - [`driver`]: the processing loop and its configuration.
//! - [`checkpoint`]: atomic, checksummed checkpoint files.
//! - [`shared`]: the state queries read while the driver writes.
//! - [`alerts`]: the bounded, de-duplicated book of recent alerts.
//! - [`review`]: the risk team's review queue of fraud alerts.
//! - [`decisions`]: the fsynced log of review decisions.
//! - [`rules_file`]: the fraud rules file, its hot reload and API edits.
//! - [`metrics`]: Prometheus metrics of the pipeline.
//! - [`replay`]: offline processing of an NDJSON file with the same processors.
//! - [`backtest`]: a candidate rule set over the stored events (the API's backtest).
//! - [`error`]: this crate's error enum.

pub mod alerts;
pub mod backtest;
pub mod checkpoint;
pub mod decisions;
pub mod driver;
pub mod error;
pub mod metrics;
pub mod replay;
pub mod review;
pub mod rules_file;
pub mod shared;

#[cfg(test)]
mod mart_rows_tests;

pub use driver::{run_pipeline, DeadLetterSink, DriverConfig};
pub use error::{Result, RuntimeError};
pub use shared::Shared;
