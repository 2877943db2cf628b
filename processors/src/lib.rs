//! StorePulse processors: plain state machines.
//!
//! A processor takes one validated [`Event`](storepulse_core::Event) at a
//! time and changes its state, pushing outputs (alerts, stock changes) into a
//! vector the caller owns. It does no I/O and has no clock of its own: time
//! comes from the events (`occurred_at`) and, where a processor needs it, from
//! explicit ticks. That is what lets the same code run embedded, on Kafka,
//! in `replay`, in unit tests and in benchmarks, and lets the runtime
//! checkpoint a processor by serialising its state.
//!
//! Layout:
//! - [`processor`]: the [`Processor`] trait and [`Outcome`].
//! - [`inventory`]: on-hand stock per (store, SKU), alerts, velocity,
//!   suggestions, nearby availability and fulfilment routing.
//! - [`members`]: unified members (late alias links), the points ledger and
//!   franchise settlement, tags on event-time timers, PIPL erasure, and the
//!   partitioned form of all that for Kafka.
//! - [`fraud`]: fraud rules as data on event-time sliding windows per
//!   member, payment account or order; alerts independent of arrival order.

pub mod fraud;
pub mod inventory;
pub mod members;
pub mod processor;

pub use processor::{Outcome, Processor};
pub use storepulse_core::dedup;

/// What the processors' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;
    use std::sync::Arc;

    use storepulse_core::StoreMaster;

    /// The shipped store master, loaded once.
    pub(crate) fn stores() -> Arc<StoreMaster> {
        static STORES: std::sync::OnceLock<Arc<StoreMaster>> = std::sync::OnceLock::new();
        STORES
            .get_or_init(|| {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
                Arc::new(StoreMaster::load(&path).expect("data/stores.csv"))
            })
            .clone()
    }
}
