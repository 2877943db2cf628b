//! De-duplication by `event_id` over a bounded event-time window.
//!
//! POS terminals retry after network loss, and Kafka redelivers after a
//! crash, so every processor must ignore an event id it has already applied.
//!
//! **Memory and horizon.** Each remembered id costs one entry of a hash map
//! from a 128-bit XXH3 hash of the id to the China day of its `occurred_at`:
//! 24 bytes per entry, about 30-40 bytes per id with the map's spare
//! capacity. Ids are remembered while their `occurred_at` is within `window`
//! (default 7 days, `inventory.allowed_lateness_hours`) of the event-time
//! clock `T`, rounded out to whole days: at 100,000 events a day that is
//! about 0.7 million ids, ~25 MB. An event older than `T - window` can no
//! longer be told from a duplicate, so it is rejected (to the dead-letter
//! log, with that reason) rather than risk counting it twice.
//!
//! The probability that two distinct ids share a 128-bit hash is below
//! 10^-20 at these volumes; such a collision would make the second event a
//! "duplicate".

use crate::time::{china_day, Ts};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The 128-bit XXH3 hash of an id as two words: 8-byte alignment keeps a
/// map slot at 24 bytes (a `u128` key would pad it to 32).
fn id_key(event_id: &str) -> [u64; 2] {
    let h = xxhash_rust::xxh3::xxh3_128(event_id.as_bytes());
    [(h >> 64) as u64, h as u64]
}

/// What the window says about an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupVerdict {
    /// Not seen before; now remembered.
    New,
    /// Seen before.
    Duplicate,
    /// Older than the window: cannot be checked.
    TooLate,
}

/// Remembered event ids within a window of event time.
#[derive(Debug, Serialize, Deserialize)]
pub struct DedupWindow {
    window: Ts,
    ids: FxHashMap<[u64; 2], i32>,
    /// The day up to which expired ids were swept.
    swept_day: i32,
}

impl Clone for DedupWindow {
    fn clone(&self) -> Self {
        Self {
            window: self.window,
            ids: self.ids.clone(),
            swept_day: self.swept_day,
        }
    }

    /// Reuses `self`'s allocation (checkpoint snapshots copy into the
    /// previous snapshot's memory instead of faulting in fresh pages).
    fn clone_from(&mut self, source: &Self) {
        self.window = source.window;
        self.ids.clone_from(&source.ids);
        self.swept_day = source.swept_day;
    }
}

impl DedupWindow {
    /// A window remembering ids for `window` of event time.
    pub fn new(window: Ts) -> Self {
        Self {
            window,
            ids: FxHashMap::default(),
            swept_day: i32::MIN,
        }
    }

    /// Checks an id and remembers it if new. `clock` is the event-time clock
    /// before this event.
    pub fn check(&mut self, event_id: &str, occurred_at: Ts, clock: Ts) -> DedupVerdict {
        if clock != Ts::MIN && occurred_at < clock.saturating_sub(self.window) {
            // Not remembered any more; a re-sent copy could not be recognised.
            let hash = id_key(event_id);
            return if self.ids.contains_key(&hash) {
                DedupVerdict::Duplicate
            } else {
                DedupVerdict::TooLate
            };
        }
        let hash = id_key(event_id);
        match self.ids.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => DedupVerdict::Duplicate,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(china_day(occurred_at));
                DedupVerdict::New
            }
        }
    }

    /// Forgets ids whose day is wholly outside the window of `clock`. Cheap
    /// to call often: it sweeps at most once per day of clock movement.
    pub fn expire(&mut self, clock: Ts) {
        let keep_from = china_day(clock.saturating_sub(self.window)) - 1;
        if keep_from <= self.swept_day {
            return;
        }
        self.ids.retain(|_, day| *day >= keep_from);
        self.swept_day = keep_from;
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Approximate heap bytes used.
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * (std::mem::size_of::<([u64; 2], i32)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DAY;

    #[test]
    fn remembers_within_window_and_refuses_beyond() {
        let mut d = DedupWindow::new(7 * DAY);
        let t0 = 100 * DAY;
        assert_eq!(d.check("a", t0, Ts::MIN), DedupVerdict::New);
        assert_eq!(d.check("a", t0, t0), DedupVerdict::Duplicate);
        assert_eq!(d.check("b", t0 - 6 * DAY, t0), DedupVerdict::New);
        assert_eq!(d.check("c", t0 - 8 * DAY, t0), DedupVerdict::TooLate);
        d.expire(t0 + 20 * DAY);
        assert!(d.is_empty());
    }
}

/// Ingest's de-duplication window, shared by the HTTP handlers (check, then
/// remember after a durable append), with the exclusive end of the log it
/// covers. It is not checkpointed: at start it is rebuilt from the
/// processor's window plus the ids of the log records after the checkpoint.
#[derive(Debug)]
pub struct SharedDedup {
    inner: std::sync::Mutex<(DedupWindow, u64)>,
}

impl SharedDedup {
    /// Wraps a window covering the log up to `covered_end`.
    pub fn new(window: DedupWindow, covered_end: u64) -> Self {
        Self {
            inner: std::sync::Mutex::new((window, covered_end)),
        }
    }

    /// Runs `f` with the window and the covered end, under the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut DedupWindow, &mut u64) -> R) -> R {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (window, end) = &mut *guard;
        f(window, end)
    }
}

impl DedupWindow {
    /// Whether an id has been seen (without remembering it).
    pub fn contains(&self, event_id: &str) -> bool {
        self.ids.contains_key(&id_key(event_id))
    }

    /// Remembers an id unconditionally (ingest, after a durable append).
    pub fn remember(&mut self, event_id: &str, occurred_at: Ts) {
        self.ids
            .entry(id_key(event_id))
            .or_insert(china_day(occurred_at));
    }
}
