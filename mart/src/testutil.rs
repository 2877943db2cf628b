//! Test helpers: rows with chosen values, an in-memory mart log, a writer
//! that fails on purpose.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use storepulse_core::source::{EventSource, SourcePosition, SourceRecord};

use crate::rows::{Erasure, MartBatch, SaleLineRow};
use crate::sink::{RefusedRow, RefusedSink};
use crate::write::{MartWriter, StoredPositions};
use crate::MartError;

/// A sale line at (0, offset, index).
#[allow(clippy::too_many_arguments)]
pub fn sale(
    offset: u64,
    index: u32,
    store: &str,
    region: &str,
    sku: &str,
    member: &str,
    qty: i64,
    net: i64,
    day: u16,
    hour: u8,
) -> SaleLineRow {
    SaleLineRow {
        event_id: format!("e{offset}"),
        line_no: index,
        order_id: format!("o{offset}"),
        store_id: store.into(),
        region: region.into(),
        channel: "pos".into(),
        fulfillment: "in_store".into(),
        payment_method: "card".into(),
        member_id: member.into(),
        sku: sku.into(),
        qty,
        unit_price_cents: net / qty.max(1),
        net_cents: net,
        promo: 0,
        occurred_ms: i64::from(day) * 86_400_000,
        day,
        hour,
        src_partition: 0,
        src_offset: offset,
        src_index: index,
    }
}

/// An in-memory mart log (one partition) that the test appends to.
#[derive(Clone, Default)]
pub struct MemLog {
    pub records: Arc<Mutex<Vec<Vec<u8>>>>,
    pub committed: Arc<AtomicU64>,
}

impl MemLog {
    pub fn push(&self, batch: &MartBatch) {
        self.records
            .lock()
            .unwrap()
            .extend(batch.encode_parts(1 << 20));
    }

    pub fn len(&self) -> u64 {
        self.records.lock().unwrap().len() as u64
    }

    pub fn reader(&self) -> MemReader {
        MemReader {
            log: self.clone(),
            next: 0,
        }
    }
}

pub struct MemReader {
    log: MemLog,
    next: u64,
}

impl EventSource for MemReader {
    fn seek(
        &mut self,
        positions: &[SourcePosition],
    ) -> impl Future<Output = storepulse_core::Result<()>> + Send {
        self.next = positions.first().map_or(0, |p| p.offset);
        async { Ok(()) }
    }

    fn next_batch(
        &mut self,
        max: usize,
        out: &mut Vec<SourceRecord>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = storepulse_core::Result<()>> + Send {
        let records: Vec<Vec<u8>> = {
            let all = self.log.records.lock().unwrap();
            all.iter()
                .skip(self.next as usize)
                .take(max)
                .cloned()
                .collect()
        };
        let first = self.next;
        self.next += records.len() as u64;
        for (i, payload) in records.iter().enumerate() {
            out.push(SourceRecord {
                position: SourcePosition {
                    partition: 0,
                    offset: first + i as u64,
                },
                payload: payload.clone(),
            });
        }
        let empty = records.is_empty();
        async move {
            if empty {
                tokio::select! {
                    () = shutdown => {}
                    () = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
                }
            }
            Ok(())
        }
    }

    fn commit(
        &mut self,
        positions: &[SourcePosition],
    ) -> impl Future<Output = storepulse_core::Result<()>> + Send {
        if let Some(p) = positions.first() {
            self.log.committed.store(p.offset, Ordering::SeqCst);
        }
        async { Ok(()) }
    }
}

/// Refused rows kept in memory.
#[derive(Clone, Default)]
pub struct MemRefused(pub Arc<Mutex<Vec<RefusedRow>>>);

impl RefusedSink for MemRefused {
    async fn send(&self, rows: Vec<RefusedRow>) -> Result<(), String> {
        self.0.lock().unwrap().extend(rows);
        Ok(())
    }
}

/// A writer around another that fails on purpose: before writing
/// (`Unavailable`), after writing (the answer is lost), or "crashes"
/// (writes, then trips `crashed`, which the test turns into killing the
/// sink before it stores its cursor). Refuses sale lines with SKU `BAD`.
pub struct Faulty<W> {
    pub inner: W,
    pub seed: Mutex<u64>,
    /// Chance (in 1/1000) of each failure.
    pub fail_before: u64,
    pub fail_after: u64,
    pub crash: u64,
    pub crashed: Arc<AtomicBool>,
    pub on_crash: tokio_util::sync::CancellationToken,
}

impl<W> Faulty<W> {
    fn roll(&self) -> u64 {
        let mut s = self.seed.lock().unwrap();
        // xorshift64*
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D) % 1000
    }
}

#[async_trait]
impl<W: MartWriter> MartWriter for Faulty<W> {
    async fn stored_positions(&self) -> Result<StoredPositions, MartError> {
        if self.roll() < self.fail_before {
            return Err(MartError::Unavailable("injected: positions".into()));
        }
        self.inner.stored_positions().await
    }

    async fn write(&self, batch: &MartBatch) -> Result<(), MartError> {
        if batch.sale_lines.iter().any(|r| r.sku == "BAD") {
            return Err(MartError::Refused("injected: SKU BAD".into()));
        }
        if self.crashed.load(Ordering::SeqCst) {
            return Err(MartError::Unavailable("crashed".into()));
        }
        let roll = self.roll();
        if roll < self.fail_before {
            return Err(MartError::Unavailable("injected: before".into()));
        }
        self.inner.write(batch).await?;
        let roll2 = self.roll();
        if roll2 < self.crash {
            self.crashed.store(true, Ordering::SeqCst);
            self.on_crash.cancel();
            return Err(MartError::Unavailable(
                "injected: crash after the write".into(),
            ));
        }
        if roll2 < self.crash + self.fail_after {
            return Err(MartError::Unavailable("injected: answer lost".into()));
        }
        Ok(())
    }

    async fn erase(&self, erasure: &Erasure) -> Result<(), MartError> {
        if self.crashed.load(Ordering::SeqCst) {
            return Err(MartError::Unavailable("crashed".into()));
        }
        if self.roll() < self.fail_before {
            return Err(MartError::Unavailable("injected: erase".into()));
        }
        self.inner.erase(erasure).await
    }

    fn backend(&self) -> &'static str {
        "faulty"
    }
}
