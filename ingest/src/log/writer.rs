//! The single writer thread: group commit of append requests.
//!
//! Requests arrive over a bounded channel. The thread blocks for the first
//! one, drains every other request already waiting, writes them all, fsyncs
//! once, publishes the new committed end offset, and only then answers each
//! request. After a write or fsync error it answers the group with that error
//! and every later request with [`LogError::Failed`]; only reopening the log
//! (which repairs the tail) makes it writable again.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use tracing::{debug, error, warn};

use super::error::{io_at, LogError};
use super::segment::{self, SegmentInfo, HEADER_BYTES, INDEX_STRIDE};
use super::Shared;

/// Answer to one append request.
pub(super) type Reply = oneshot::Sender<Result<Range<u64>, LogError>>;

/// A message to the writer thread.
pub(super) enum Request {
    /// Append these payloads as consecutive records.
    Append {
        payloads: Vec<Vec<u8>>,
        reply: Reply,
    },
    /// Finish what was received so far, then exit.
    Shutdown,
}

/// Encoded bytes are written out once this much is buffered.
const FLUSH_BYTES: usize = 4 * 1024 * 1024;

/// State of the writer thread: the active segment and the next offset.
pub(super) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Request>,
    end_tx: watch::Sender<u64>,
    file: File,
    path: PathBuf,
    /// Base offset of the active segment.
    base: u64,
    /// Logical size of the active segment, including `buf`.
    bytes: u64,
    records: u64,
    /// Full sparse index of the active segment.
    index: Vec<u64>,
    /// How much of `index` the shared segment list already has.
    published_index: usize,
    next_offset: u64,
    /// Encoded records not yet written to `file`.
    buf: Vec<u8>,
}

impl Writer {
    pub(super) fn new(
        shared: Arc<Shared>,
        rx: Receiver<Request>,
        end_tx: watch::Sender<u64>,
        file: File,
        active: &SegmentInfo,
    ) -> Self {
        Self {
            path: segment::segment_path(&shared.dir, active.base),
            shared,
            rx,
            end_tx,
            file,
            base: active.base,
            bytes: active.bytes,
            records: active.records,
            index: active.index.clone(),
            published_index: active.index.len(),
            next_offset: active.base + active.records,
            buf: Vec::new(),
        }
    }

    /// The thread's body. `gate`, when given, is waited on before the first
    /// request is taken (tests use it to fill the queue deterministically).
    pub(super) fn run(mut self, gate: Option<Receiver<()>>) {
        if let Some(gate) = gate {
            // An error means the test dropped its sender: start anyway.
            let _ = gate.recv();
        }
        let max_group = self.shared.config.channel_capacity;
        let mut group = Vec::new();
        while let Ok(first) = self.rx.recv() {
            let mut shutdown = false;
            let mut take = |req: Request, group: &mut Vec<(Vec<Vec<u8>>, Reply)>| match req {
                Request::Append { payloads, reply } => group.push((payloads, reply)),
                Request::Shutdown => shutdown = true,
            };
            take(first, &mut group);
            while group.len() < max_group {
                match self.rx.try_recv() {
                    Ok(req) => take(req, &mut group),
                    Err(_) => break,
                }
            }
            self.commit_group(&mut group);
            if shutdown {
                break;
            }
        }
        self.finish();
    }

    /// Writes, fsyncs and answers one group.
    fn commit_group(&mut self, group: &mut Vec<(Vec<Vec<u8>>, Reply)>) {
        if group.is_empty() {
            return;
        }
        if let Some(reason) = self.shared.failure.get() {
            for (_, reply) in group.drain(..) {
                let _ = reply.send(Err(LogError::Failed {
                    reason: reason.clone(),
                }));
            }
            return;
        }
        let mut ranges = Vec::with_capacity(group.len());
        match self.write_group(group, &mut ranges) {
            Ok(()) => {
                self.publish();
                debug!(
                    requests = group.len(),
                    end_offset = self.next_offset,
                    "event log: group committed"
                );
                for ((_, reply), range) in group.drain(..).zip(ranges) {
                    // The caller may have stopped waiting; the records stay.
                    let _ = reply.send(Ok(range));
                }
            }
            Err(e) => {
                error!(error = %e, "event log write failed; refusing further writes until reopened");
                let _ = self.shared.failure.set(e.to_string());
                for (_, reply) in group.drain(..) {
                    let _ = reply.send(Err(e.duplicate()));
                }
            }
        }
    }

    fn write_group(
        &mut self,
        group: &[(Vec<Vec<u8>>, Reply)],
        ranges: &mut Vec<Range<u64>>,
    ) -> Result<(), LogError> {
        for (payloads, _) in group {
            let start = self.next_offset;
            for payload in payloads {
                self.push_record(payload)?;
            }
            ranges.push(start..self.next_offset);
        }
        self.flush()?;
        if self.shared.config.fsync {
            self.file.sync_data().map_err(io_at(&self.path))?;
        }
        Ok(())
    }

    fn push_record(&mut self, payload: &[u8]) -> Result<(), LogError> {
        let len = HEADER_BYTES + payload.len() as u64;
        if self.records > 0 && self.bytes + len > self.shared.config.segment_bytes {
            self.roll()?;
        }
        if self.records.is_multiple_of(INDEX_STRIDE) {
            self.index.push(self.bytes);
        }
        segment::encode_record(&mut self.buf, payload);
        self.bytes += len;
        self.records += 1;
        self.next_offset += 1;
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf).map_err(io_at(&self.path))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `next_offset`.
    fn roll(&mut self) -> Result<(), LogError> {
        self.flush()?;
        if self.shared.config.fsync {
            self.file.sync_data().map_err(io_at(&self.path))?;
        }
        self.publish_segment();
        let sealed = SegmentInfo {
            base: self.base,
            bytes: self.bytes,
            records: self.records,
            index: std::mem::take(&mut self.index),
        };
        if let Err(e) = segment::write_sidecar(&self.shared.dir, &sealed) {
            warn!(error = %e, base = sealed.base, "could not write segment index; open will rescan");
        }
        let base = self.next_offset;
        self.file = segment::create_segment(&self.shared.dir, base)?;
        if self.shared.config.fsync {
            segment::sync_dir(&self.shared.dir)?;
        }
        self.path = segment::segment_path(&self.shared.dir, base);
        self.base = base;
        self.bytes = 0;
        self.records = 0;
        self.published_index = 0;
        self.shared.segments().push(SegmentInfo {
            base,
            bytes: 0,
            records: 0,
            index: Vec::new(),
        });
        debug!(
            base,
            sealed_records = sealed.records,
            "event log: rolled to a new segment"
        );
        Ok(())
    }

    /// Copies the active segment's size and new index entries to the shared
    /// segment list (readers use it to find records).
    fn publish_segment(&mut self) {
        let mut segments = self.shared.segments();
        if let Some(last) = segments.last_mut().filter(|s| s.base == self.base) {
            last.bytes = self.bytes;
            last.records = self.records;
            last.index
                .extend_from_slice(&self.index[self.published_index..]);
        }
        self.published_index = self.index.len();
    }

    /// Makes a committed group visible: segment list first, then the end
    /// offset that wakes readers.
    fn publish(&mut self) {
        self.publish_segment();
        self.end_tx.send_replace(self.next_offset);
    }

    /// Answers what arrived after shutdown and syncs when fsync is off.
    fn finish(self) {
        while let Ok(req) = self.rx.try_recv() {
            if let Request::Append { reply, .. } = req {
                let _ = reply.send(Err(LogError::Closed));
            }
        }
        if !self.shared.config.fsync && self.shared.failure.get().is_none() {
            if let Err(e) = self.file.sync_data() {
                warn!(error = %e, path = %self.path.display(), "event log: final sync failed");
            }
        }
        debug!(end_offset = self.next_offset, "event log writer stopped");
    }
}
