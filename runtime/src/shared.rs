//! What the query API reads while the driver writes.
//!
//! The driver takes the write lock once per batch of records (hundreds of
//! microseconds), so readers wait at most that long; nobody holds either
//! lock across an `.await` (clippy's `await_holding_lock` is denied).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use storepulse_core::latency::VisibilityTracker;
use storepulse_processors::fraud::FraudProcessor;
use storepulse_processors::inventory::InventoryProcessor;
use storepulse_processors::members::MemberProcessor;

use crate::alerts::AlertBook;
use crate::metrics::PipelineMetrics;
use crate::review::ReviewQueue;

/// State shared between the driver and the query API.
#[derive(Debug)]
pub struct Shared {
    inventory: RwLock<InventoryProcessor>,
    members: RwLock<Option<MemberProcessor>>,
    fraud: RwLock<Option<FraudProcessor>>,
    review: RwLock<ReviewQueue>,
    alerts: RwLock<AlertBook>,
    /// Exclusive end offset of what has been applied (partition 0).
    pub applied_end: AtomicU64,
    /// Wall-clock nanoseconds of the last checkpoint (0: none yet).
    pub last_checkpoint: AtomicI64,
    pub metrics: PipelineMetrics,
    pub visibility: Arc<VisibilityTracker>,
}

impl Shared {
    /// Shared state around a processor and an alert book.
    pub fn new(
        inventory: InventoryProcessor,
        alerts: AlertBook,
        visibility: Arc<VisibilityTracker>,
    ) -> Self {
        Self {
            inventory: RwLock::new(inventory),
            members: RwLock::new(None),
            fraud: RwLock::new(None),
            review: RwLock::new(ReviewQueue::new(crate::review::DEFAULT_CAPACITY)),
            alerts: RwLock::new(alerts),
            applied_end: AtomicU64::new(0),
            last_checkpoint: AtomicI64::new(0),
            metrics: PipelineMetrics::default(),
            visibility,
        }
    }

    /// Reads the inventory.
    pub fn inventory(&self) -> RwLockReadGuard<'_, InventoryProcessor> {
        // A panic while holding the lock leaves consistent-enough state for
        // reads; we never abort queries because of it.
        self.inventory
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the inventory (driver only).
    pub fn inventory_mut(&self) -> RwLockWriteGuard<'_, InventoryProcessor> {
        self.inventory
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs the member processor (embedded mode; the Kafka serve role
    /// has none yet).
    pub fn with_members(self, members: MemberProcessor) -> Self {
        *self
            .members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(members);
        self
    }

    /// Reads the member processor (`None` where members are not served).
    pub fn members(&self) -> RwLockReadGuard<'_, Option<MemberProcessor>> {
        self.members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the member processor (driver only).
    pub fn members_mut(&self) -> RwLockWriteGuard<'_, Option<MemberProcessor>> {
        self.members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs the fraud processor and the review queue it feeds.
    pub fn with_fraud(self, fraud: FraudProcessor, review: ReviewQueue) -> Self {
        *self
            .fraud
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fraud);
        *self
            .review
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = review;
        self
    }

    /// Reads the fraud processor (`None` where fraud rules do not run).
    pub fn fraud(&self) -> RwLockReadGuard<'_, Option<FraudProcessor>> {
        self.fraud
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the fraud processor (driver, and rule changes).
    pub fn fraud_mut(&self) -> RwLockWriteGuard<'_, Option<FraudProcessor>> {
        self.fraud
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the review queue.
    pub fn review(&self) -> RwLockReadGuard<'_, ReviewQueue> {
        self.review
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the review queue (driver, and decisions).
    pub fn review_mut(&self) -> RwLockWriteGuard<'_, ReviewQueue> {
        self.review
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the alert book.
    pub fn alerts(&self) -> RwLockReadGuard<'_, AlertBook> {
        self.alerts
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the alert book (driver only).
    pub fn alerts_mut(&self) -> RwLockWriteGuard<'_, AlertBook> {
        self.alerts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Exclusive end offset of what has been applied.
    pub fn applied_end(&self) -> u64 {
        self.applied_end.load(Ordering::Acquire)
    }
}
