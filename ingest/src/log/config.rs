//! Configuration of the embedded event log ([`LogConfig`]).
//!
//! Every field has a default, so an empty `[log]` table is a valid config;
//! unknown fields are rejected so a misspelt option fails at start instead of
//! being silently ignored.

use serde::{Deserialize, Serialize};

/// Default size at which a segment file is closed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 * 1024 * 1024;
/// Default number of append requests that may wait for the writer thread.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 1024;
/// Smallest accepted `segment_bytes`.
pub const MIN_SEGMENT_BYTES: u64 = 1024;

/// Settings of the embedded event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Size in bytes at which the active segment file is closed and a new one
    /// is started. A segment only grows past this when a single record is
    /// bigger. At least 1024. Default: 134217728 (128 MiB).
    pub segment_bytes: u64,
    /// Total size of the log above which the oldest segments are deleted, but
    /// only segments whose records are all covered by the last checkpoint
    /// (the offset last passed to `commit`); the segment being written is never
    /// deleted. Not set (the default): keep everything.
    pub retention_bytes: Option<u64>,
    /// How many append requests may wait for the writer thread. When that many
    /// are waiting, further appends fail at once with `Backpressure` (the HTTP
    /// endpoint answers 503 with Retry-After). At least 1. Default: 1024.
    pub channel_capacity: usize,
    /// Whether each group of appends is fsynced before it is acknowledged.
    /// Default: true. Turn off for benchmarks only: without it an acknowledged
    /// event can be lost when the machine loses power.
    pub fsync: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention_bytes: None,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            fsync: true,
        }
    }
}

impl LogConfig {
    /// Checks the settings without touching the disk.
    ///
    /// # Errors
    /// A message naming the field and the rule it breaks.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(format!(
                "segment_bytes: must be at least {MIN_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            ));
        }
        if self.channel_capacity == 0 {
            return Err("channel_capacity: must be at least 1".to_owned());
        }
        Ok(())
    }
}
