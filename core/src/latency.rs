//! Append-to-visible latency: how long after an event was accepted its
//! effect became visible to queries.
//!
//! Ingest records, for each appended batch, the log offset it ends at and
//! the instant its HTTP request arrived; the runtime, after applying records
//! up to an offset, takes every batch that is now visible and reports the
//! elapsed times. Bounded: when nobody drains it (no runtime), the oldest
//! marks are dropped, which only loses latency samples.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_MARKS: usize = 65_536;

/// Marks of (end offset, arrival instant), in offset order.
#[derive(Debug, Default)]
pub struct VisibilityTracker {
    marks: Mutex<VecDeque<(u64, Instant)>>,
}

impl VisibilityTracker {
    /// Records that records before `end_offset` arrived at `arrived`.
    pub fn mark(&self, end_offset: u64, arrived: Instant) {
        let mut marks = self
            .marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if marks.len() >= MAX_MARKS {
            marks.pop_front();
        }
        // Group commits can finish out of order across requests; keep order.
        let at = marks.partition_point(|(o, _)| *o <= end_offset);
        marks.insert(at, (end_offset, arrived));
    }

    /// Takes the latencies of every mark up to `applied_end` (exclusive end
    /// offset of what is now visible).
    pub fn visible(&self, applied_end: u64, now: Instant, out: &mut Vec<Duration>) {
        let mut marks = self
            .marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(&(end, arrived)) = marks.front() {
            if end > applied_end {
                break;
            }
            marks.pop_front();
            out.push(now.saturating_duration_since(arrived));
        }
    }
}
