//! Reading the log: [`LogReader`] (the [`EventSource`] of the embedded log)
//! and the blocking cursor it and `read_range` share.
//!
//! A reader never returns a record at or past the committed end offset (the
//! value the writer publishes on its watch channel after each fsync), so it
//! never sees a record that a crash could still take away. File reads run on
//! tokio's blocking pool through a buffered cursor that stays open between
//! batches.

use std::fs::File;
use std::future::Future;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use storepulse_core::source::{EventSource, SourcePosition, SourceRecord};
use tokio::sync::watch;

use super::error::{io_at, LogError};
use super::segment::{self, bad_length, parse_header, HEADER_BYTES};
use super::Shared;

/// Read buffer of a cursor.
const READ_BUF_BYTES: usize = 256 * 1024;

/// A reader of the embedded event log, positioned at an offset.
///
/// Get one from [`EventLog::reader`](super::EventLog::reader); it starts at
/// the oldest record still held. Implements [`EventSource`] with the single
/// partition 0.
pub struct LogReader {
    shared: Arc<Shared>,
    end_rx: watch::Receiver<u64>,
    /// Offset of the next record to return.
    next: u64,
    /// Open file position at `next`, kept between batches.
    cursor: Option<Cursor>,
}

impl LogReader {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            end_rx: shared.end_rx.clone(),
            next: shared.start_offset(),
            shared,
            cursor: None,
        }
    }

    /// Offset of the next record this reader returns.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Positions the reader at `offset` (the oldest held offset up to the
    /// committed end, inclusive).
    ///
    /// # Errors
    /// [`LogError::OffsetOutOfRange`] outside that range; I/O or corruption
    /// while skipping to the record.
    pub async fn seek_to(&mut self, offset: u64) -> Result<(), LogError> {
        self.shared.check_readable(offset)?;
        self.cursor = None;
        self.next = offset;
        let shared = Arc::clone(&self.shared);
        let cursor = blocking(move || Cursor::open(&shared, offset)).await?;
        self.cursor = Some(cursor);
        Ok(())
    }

    async fn seek_positions(&mut self, positions: &[SourcePosition]) -> Result<(), LogError> {
        let mut offset = None;
        for p in positions {
            if p.partition != 0 {
                return Err(LogError::UnknownPartition(p.partition));
            }
            offset = Some(p.offset);
        }
        let offset = offset.unwrap_or_else(|| self.shared.start_offset());
        self.seek_to(offset).await
    }

    async fn batch(
        &mut self,
        max: usize,
        out: &mut Vec<SourceRecord>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LogError> {
        if max == 0 {
            return Ok(());
        }
        tokio::pin!(shutdown);
        loop {
            let end = *self.end_rx.borrow_and_update();
            if self.next < end {
                return self.read_into(end, max, out).await;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                changed = self.end_rx.changed() => {
                    if changed.is_err() {
                        // The writer has stopped: nothing more will come.
                        if self.next < *self.end_rx.borrow() {
                            continue;
                        }
                        shutdown.as_mut().await;
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn read_into(
        &mut self,
        end: u64,
        max: usize,
        out: &mut Vec<SourceRecord>,
    ) -> Result<(), LogError> {
        let n = usize::try_from(end - self.next).map_or(max, |avail| avail.min(max));
        let from = self.next;
        let shared = Arc::clone(&self.shared);
        // If this future is dropped mid-read the cursor is lost; the next
        // call reopens at `self.next`, which has not moved.
        let cursor = self.cursor.take();
        let (cursor, records) = blocking(move || {
            let mut records = Vec::with_capacity(n);
            let cursor = read_committed(&shared, cursor, from, n, &mut |offset, payload| {
                records.push(SourceRecord {
                    position: SourcePosition {
                        partition: 0,
                        offset,
                    },
                    payload,
                });
            })?;
            Ok((cursor, records))
        })
        .await?;
        self.next += records.len() as u64;
        self.cursor = Some(cursor);
        out.extend(records);
        Ok(())
    }

    async fn commit_positions(&mut self, positions: &[SourcePosition]) -> Result<(), LogError> {
        let mut offset = None;
        for p in positions {
            if p.partition != 0 {
                return Err(LogError::UnknownPartition(p.partition));
            }
            offset = Some(p.offset);
        }
        let Some(offset) = offset else {
            return Ok(());
        };
        self.shared.set_checkpoint(offset);
        let shared = Arc::clone(&self.shared);
        blocking(move || {
            shared.apply_retention();
            Ok(())
        })
        .await
    }
}

impl EventSource for LogReader {
    async fn seek(&mut self, positions: &[SourcePosition]) -> storepulse_core::Result<()> {
        Ok(self.seek_positions(positions).await?)
    }

    async fn next_batch(
        &mut self,
        max: usize,
        out: &mut Vec<SourceRecord>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> storepulse_core::Result<()> {
        Ok(self.batch(max, out, shutdown).await?)
    }

    async fn commit(&mut self, positions: &[SourcePosition]) -> storepulse_core::Result<()> {
        Ok(self.commit_positions(positions).await?)
    }
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, LogError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LogError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogError::Internal(format!("blocking read task: {e}")))?
}

/// Reads `n` committed records starting at `from` (the caller has checked
/// they are below the committed end), reusing `cursor` when it sits at
/// `from`. Returns the cursor, positioned after the last record read.
pub(super) fn read_committed(
    shared: &Shared,
    cursor: Option<Cursor>,
    from: u64,
    n: usize,
    sink: &mut dyn FnMut(u64, Vec<u8>),
) -> Result<Cursor, LogError> {
    let mut cursor = match cursor {
        Some(c) if c.offset == from => c,
        _ => Cursor::open(shared, from)?,
    };
    let mut left = n as u64;
    while left > 0 {
        let segment_end = shared.segment_end(cursor.base);
        if cursor.offset >= segment_end {
            cursor = Cursor::open(shared, cursor.offset)?;
            continue;
        }
        let k = left.min(segment_end - cursor.offset);
        for _ in 0..k {
            let offset = cursor.offset;
            let payload = cursor.next_record()?;
            sink(offset, payload);
        }
        left -= k;
    }
    Ok(cursor)
}

/// A buffered read position inside one segment file.
pub(super) struct Cursor {
    path: PathBuf,
    /// Base offset of the segment.
    base: u64,
    /// Offset of the record at the read position.
    offset: u64,
    /// Byte position in the segment.
    pos: u64,
    reader: BufReader<File>,
}

impl Cursor {
    /// Opens the segment holding `offset` and moves to that record: jump to
    /// the nearest sparse-index entry, then skip headers.
    pub(super) fn open(shared: &Shared, offset: u64) -> Result<Self, LogError> {
        let (base, pos, skip) = shared.locate(offset)?;
        let path = segment::segment_path(&shared.dir, base);
        let file = match File::open(&path) {
            Ok(f) => f,
            // Deleted by retention between `locate` and here.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    start: shared.start_offset(),
                    end: shared.end_offset(),
                })
            }
            Err(source) => return Err(LogError::Io { path, source }),
        };
        let mut reader = BufReader::with_capacity(READ_BUF_BYTES, file);
        reader.seek(SeekFrom::Start(pos)).map_err(io_at(&path))?;
        let mut cursor = Cursor {
            path,
            base,
            offset: offset - skip,
            pos,
            reader,
        };
        for _ in 0..skip {
            let len = cursor.header()?.0;
            cursor
                .reader
                .seek_relative(i64::from(len))
                .map_err(io_at(&cursor.path))?;
            cursor.advance(len);
        }
        Ok(cursor)
    }

    /// Reads and checks the next header; returns (length, crc).
    fn header(&mut self) -> Result<(u32, u32), LogError> {
        let mut header = [0u8; 8];
        self.read_exact(&mut header)?;
        let (len, crc) = parse_header(&header);
        if let Some(reason) = bad_length(len) {
            return Err(self.corrupt(reason));
        }
        Ok((len, crc))
    }

    /// Reads the record at the cursor and checks its CRC.
    fn next_record(&mut self) -> Result<Vec<u8>, LogError> {
        let (len, crc) = self.header()?;
        let mut payload = vec![0u8; len as usize];
        self.read_exact(&mut payload)?;
        if crc32fast::hash(&payload) != crc {
            return Err(self.corrupt("crc mismatch".to_owned()));
        }
        self.advance(len);
        Ok(payload)
    }

    fn advance(&mut self, len: u32) {
        self.pos += HEADER_BYTES + u64::from(len);
        self.offset += 1;
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), LogError> {
        match self.reader.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.corrupt("committed record ends past the end of the file".to_owned()))
            }
            Err(source) => Err(LogError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn corrupt(&self, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            position: self.pos,
            reason,
        }
    }
}
