//! The orphaned-partition watch of a processing stage, on a thread of its
//! own so that its broker round trips never pause processing.
//!
//! Apache Kafka reassigns a dead member's partitions after the session
//! timeout. Tansu 0.6 notices the missed heartbeats but hands the survivors
//! their old assignment again, so the dead member's partitions stay
//! orphaned until some member joins anew. The watch asks the broker, every
//! `2 x session_timeout`, for the committed offset (`OffsetFetch` of the
//! group) and the high watermark (`ListOffsets`) of every partition this
//! instance does not own. A partition whose committed offset stood still
//! with records waiting for two checks in a row is orphaned, and the stage
//! leaves and rejoins the group with a new member id, which makes the
//! broker form the group afresh. On a broker that rebalances properly the
//! condition never lasts that long, and a false alarm (an owner that is
//! alive but not committing) costs one rebalance.
//!
//! The watch used to run on the processing thread, between two batches:
//! one `OffsetFetch` and one `ListOffsets` per partition not owned, each
//! waiting for the broker (a `ListOffsets` took 0.02-0.22 s under load on
//! Tansu). Here it has its own client, which never subscribes (so it never
//! joins the group), and the processing loop only reads its verdict.
//!
//! [`OrphanTracker`] is the decision, without I/O; [`OrphanWatch`] the
//! thread that feeds it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;
use tracing::debug;

use crate::error::{KafkaError, Result};

/// Checks in a row that must find a partition with records waiting and
/// its committed offset where the previous one found it (the first such
/// check counts) before it counts as orphaned.
const CHECKS_TO_ORPHAN: u32 = 2;

/// How long the watch waits for each broker answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One partition not owned here, as the broker reported it at a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub partition: i32,
    /// The group's committed offset (0 when none).
    pub committed: i64,
    /// The partition's high watermark.
    pub high: i64,
}

/// Decides, from one check after another, which partitions are orphaned.
#[derive(Debug, Default)]
pub struct OrphanTracker {
    /// Partition -> (committed offset at the last check, checks it stood
    /// still with records waiting).
    seen: BTreeMap<i32, (i64, u32)>,
}

impl OrphanTracker {
    /// Takes one check's observations of every partition not owned here
    /// and returns those orphaned. A partition missing from `observed` is
    /// owned here now (or the check did not reach it) and starts over.
    pub fn observe(&mut self, observed: &[Observed]) -> Vec<i32> {
        self.seen
            .retain(|p, _| observed.iter().any(|o| o.partition == *p));
        let mut orphaned = Vec::new();
        for o in observed {
            if o.high <= o.committed {
                // Nothing waits: whoever owns it is keeping up.
                self.seen.remove(&o.partition);
                continue;
            }
            let entry = self.seen.entry(o.partition).or_insert((o.committed, 0));
            if entry.0 == o.committed {
                entry.1 += 1;
            } else {
                *entry = (o.committed, 0);
            }
            if entry.1 >= CHECKS_TO_ORPHAN {
                orphaned.push(o.partition);
            }
        }
        orphaned
    }
}

/// What the processing loop and the watch thread share.
#[derive(Debug, Default)]
struct Shared {
    /// The partitions this instance owns, as the loop last published them.
    owned: Mutex<Vec<i32>>,
    /// The partitions the last check found orphaned (empty most of the time).
    orphaned: Mutex<Vec<i32>>,
    stop: AtomicBool,
}

/// The watch thread of one processing stage. Dropping it tells the thread
/// to stop without waiting for it: a query to a broker that is away may
/// take [`QUERY_TIMEOUT`], and a stage that stops or rejoins should not.
pub struct OrphanWatch {
    shared: Arc<Shared>,
}

impl OrphanWatch {
    /// Starts the watch of `topic`'s `partitions` for the group of
    /// `client` (a consumer configuration with the stage's `group.id`),
    /// checking every `interval`, the first check one interval from now.
    ///
    /// # Errors
    /// librdkafka refuses the configuration; the thread cannot be spawned.
    pub fn start(
        client: &rdkafka::ClientConfig,
        topic: &str,
        partitions: u32,
        interval: Duration,
    ) -> Result<Self> {
        let consumer: BaseConsumer = client
            .create()
            .map_err(KafkaError::client("orphan watch consumer"))?;
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let topic = topic.to_owned();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("orphan-watch".into())
            .spawn(move || {
                let _entered = span.enter();
                watch_loop(&consumer, &topic, partitions, interval, &thread_shared);
            })
            .map_err(|e| KafkaError::Config(format!("orphan watch thread: {e}")))?;
        Ok(Self { shared })
    }

    /// Publishes the partitions this instance owns now.
    pub fn set_owned(&self, owned: impl IntoIterator<Item = i32>) {
        if let Ok(mut o) = self.shared.owned.lock() {
            o.clear();
            o.extend(owned);
        }
    }

    /// The partitions the last check found orphaned, once.
    pub fn take_orphaned(&self) -> Vec<i32> {
        self.shared
            .orphaned
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
    }
}

impl Drop for OrphanWatch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

fn watch_loop(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: u32,
    interval: Duration,
    shared: &Shared,
) {
    let mut tracker = OrphanTracker::default();
    let mut last_check = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
        if last_check.elapsed() < interval {
            continue;
        }
        last_check = Instant::now();
        let owned = shared.owned.lock().map(|o| o.clone()).unwrap_or_default();
        let Some(observed) = query(consumer, topic, partitions, &owned, &shared.stop) else {
            continue; // the broker did not answer: judge at the next check
        };
        let orphaned = tracker.observe(&observed);
        if !orphaned.is_empty() {
            if let Ok(mut o) = shared.orphaned.lock() {
                *o = orphaned;
            }
        }
    }
}

/// The committed offset and high watermark of each partition not in
/// `owned`; `None` when the broker does not answer a query or `stop` is set.
fn query(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: u32,
    owned: &[i32],
    stop: &AtomicBool,
) -> Option<Vec<Observed>> {
    let mut tpl = TopicPartitionList::new();
    for p in (0..i32::try_from(partitions).unwrap_or(i32::MAX)).filter(|p| !owned.contains(p)) {
        tpl.add_partition(topic, p);
    }
    if tpl.count() == 0 {
        return Some(Vec::new());
    }
    let committed = match consumer.committed_offsets(tpl, QUERY_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "orphan watch: committed offsets unanswered");
            return None;
        }
    };
    let mut observed = Vec::new();
    for elem in committed.elements_for_topic(topic) {
        if stop.load(Ordering::Acquire) {
            return None;
        }
        let partition = elem.partition();
        let committed = elem.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
        let high = match consumer.fetch_watermarks(topic, partition, QUERY_TIMEOUT) {
            Ok((_, high)) => high,
            Err(e) => {
                debug!(error = %e, partition, "orphan watch: watermarks unanswered");
                return None;
            }
        };
        observed.push(Observed {
            partition,
            committed,
            high,
        });
    }
    Some(observed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(partition: i32, committed: i64, high: i64) -> Observed {
        Observed {
            partition,
            committed,
            high,
        }
    }

    #[test]
    fn a_partition_standing_still_with_records_waiting_is_orphaned_at_the_second_check() {
        let mut t = OrphanTracker::default();
        assert!(t.observe(&[o(1, 10, 50)]).is_empty());
        assert_eq!(t.observe(&[o(1, 10, 60)]), vec![1]);
        // Still orphaned while it stands still.
        assert_eq!(t.observe(&[o(1, 10, 70)]), vec![1]);
    }

    #[test]
    fn a_partition_whose_owner_commits_or_is_caught_up_is_not_orphaned() {
        let mut t = OrphanTracker::default();
        // The committed offset moves at every check.
        for (committed, high) in [(10, 100), (20, 101), (30, 102), (40, 103)] {
            assert!(t.observe(&[o(2, committed, high)]).is_empty());
        }
        // Standing still with nothing waiting: an idle partition.
        for _ in 0..4 {
            assert!(t.observe(&[o(3, 50, 50)]).is_empty());
        }
    }

    #[test]
    fn a_partition_owned_here_in_between_starts_over() {
        let mut t = OrphanTracker::default();
        assert!(t.observe(&[o(1, 10, 50), o(2, 5, 9)]).is_empty());
        // Partition 1 is assigned here for one check (not observed).
        assert_eq!(t.observe(&[o(2, 5, 9)]), vec![2]);
        // Back to another owner: it needs its two checks again.
        assert_eq!(t.observe(&[o(1, 10, 50), o(2, 5, 9)]), vec![2]);
        assert_eq!(t.observe(&[o(1, 10, 50), o(2, 5, 9)]), vec![1, 2]);
    }

    #[test]
    fn records_waiting_after_a_caught_up_check_count_from_the_start() {
        let mut t = OrphanTracker::default();
        assert!(t.observe(&[o(4, 10, 50)]).is_empty());
        assert!(t.observe(&[o(4, 50, 50)]).is_empty());
        // New records; the owner has not committed them yet.
        assert!(t.observe(&[o(4, 50, 80)]).is_empty());
        assert_eq!(t.observe(&[o(4, 50, 90)]), vec![4]);
    }
}
