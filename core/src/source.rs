//! The log-reading side of the pipeline: where processors' input comes from.
//!
//! The embedded event log implements [`EventSource`] today; the Kafka source
//! implements it with one [`SourcePosition`] per partition. The runtime is
//! written against this trait only, so the processors and their checkpoints
//! are the same whichever log is underneath.
//!
//! Positions are opaque to the runtime except for one rule: a checkpoint
//! records the position *after* the last record it reflects, and
//! [`EventSource::seek`] to that position resumes with the next record, so a
//! restart neither skips nor repeats anything the checkpoint covers.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Where in one partition of a log a record sits (or where reading resumes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourcePosition {
    /// Partition number (always 0 for the embedded log).
    pub partition: u32,
    /// Offset of the record within the partition.
    pub offset: u64,
}

/// One record read from a source: raw contract bytes and where they sit.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub position: SourcePosition,
    /// The event exactly as the emitter sent it (one JSON object).
    pub payload: bytes_like::Payload,
}

/// Owned payload bytes. A plain `Vec<u8>` today; kept behind a name so a
/// zero-copy buffer can replace it without touching every user.
pub mod bytes_like {
    /// Owned payload bytes.
    pub type Payload = Vec<u8>;
}

/// A readable, replayable, ordered log of events.
pub trait EventSource: Send {
    /// Moves the read position of every partition this source owns to the
    /// given positions (partitions not named start at their beginning).
    fn seek(&mut self, positions: &[SourcePosition]) -> impl Future<Output = Result<()>> + Send;

    /// Reads up to `max` records; waits until at least one is available or
    /// `shutdown` resolves (then returns an empty batch).
    fn next_batch(
        &mut self,
        max: usize,
        out: &mut Vec<SourceRecord>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Tells the source that everything before `positions` is durably
    /// reflected in a checkpoint (Kafka commits offsets here; the embedded log
    /// may release old segments).
    fn commit(&mut self, positions: &[SourcePosition]) -> impl Future<Output = Result<()>> + Send;
}
