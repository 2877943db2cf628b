//! Checkpoint files: processor state together with the source positions it
//! reflects.
//!
//! A checkpoint is written to a temporary file and fsynced; the current one
//! is renamed to `checkpoint.prev.bin`, the new one into its place, and the
//! directory fsynced, so a crash at any point leaves a whole checkpoint
//! (the new one, or the previous one). Two generations are kept so that a
//! damaged current file (disk corruption) falls back to the previous one. The file starts
//! with a magic, a format version and a CRC-32 of the body (postcard), so a
//! damaged file is refused with a clear error instead of being half-read.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use storepulse_core::source::SourcePosition;
use storepulse_processors::fraud::FraudState;
use storepulse_processors::inventory::InventoryState;
use storepulse_processors::members::MemberState;

use crate::alerts::AlertBook;
use crate::error::{Result, RuntimeError};
use crate::review::ReviewState;

const MAGIC: &[u8; 8] = b"SPCKPT01";
const FORMAT_VERSION: u32 = 4;
const FILE_NAME: &str = "checkpoint.bin";
const PREVIOUS_NAME: &str = "checkpoint.prev.bin";
/// Magic, format version, CRC-32 of the body.
const HEADER_LEN: u64 = 16;
/// Where the CRC sits in the header.
const CRC_AT: u64 = 12;
/// The file writer's buffer.
const WRITE_BUFFER: usize = 256 * 1024;

/// Everything a restart needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Where reading resumes (exclusive end of what the state reflects).
    pub positions: Vec<SourcePosition>,
    pub inventory: InventoryState,
    /// The member processor (embedded mode; Kafka's per-partition stock
    /// checkpoints have none).
    pub members: Option<MemberState>,
    pub alerts: AlertBook,
    /// Fraud windows and the review queue's alerts (embedded mode); in
    /// Kafka mode each stage partition's windows, with an empty queue
    /// (the queue is `serve`'s, read from `<p>.alerts`).
    pub fraud: Option<(FraudState, ReviewState)>,
    /// Wall-clock time it was taken (nanoseconds).
    pub taken_at: i64,
}

/// Borrowed form, so a checkpoint can be written without cloning state.
#[derive(Serialize)]
pub struct CheckpointRef<'a> {
    pub positions: &'a [SourcePosition],
    pub inventory: &'a InventoryState,
    pub members: Option<&'a MemberState>,
    pub alerts: &'a AlertBook,
    pub fraud: Option<(&'a FraudState, &'a ReviewState)>,
    pub taken_at: i64,
}

/// A writer that passes bytes on and keeps the CRC-32 and length of what
/// it passed, and the first write error (postcard replaces it by its own).
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
    failed: Option<std::io::Error>,
}

impl<W> CrcWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            crc: crc32fast::Hasher::new(),
            len: 0,
            failed: None,
        }
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.crc.update(&buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => {
                // postcard keeps only that the write failed; the error
                // itself stays here.
                let kind = e.kind();
                self.failed.get_or_insert(e);
                Err(kind.into())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A directory holding the current checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    /// A store in `dir` (created if missing).
    ///
    /// # Errors
    /// When the directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| RuntimeError::CheckpointIo {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Durably replaces the checkpoint with `checkpoint` and returns the
    /// file's size. The state is encoded straight into the file through a
    /// buffered writer that computes the CRC on the way, and the CRC is
    /// written into the header last: no buffer of the whole state is built
    /// (at 20,000 events/s a stage's partitions hold ~5 MB each, and growing
    /// and copying such a buffer per checkpoint cost more CPU than encoding).
    ///
    /// # Errors
    /// Any I/O failure; the previous checkpoint stays in place.
    pub fn save(&self, checkpoint: &CheckpointRef<'_>) -> Result<u64> {
        // The process id keeps two writers of one directory (a stalled
        // instance that lost its partition, and its successor) off each
        // other's temporary file; the rename is atomic either way.
        let tmp = self
            .dir
            .join(format!("{FILE_NAME}.{}.tmp", std::process::id()));
        let written = Self::write_tmp(&tmp, checkpoint);
        if written.is_err() {
            // A half-written file is of no use (best effort: the next
            // save truncates it anyway).
            let _ = std::fs::remove_file(&tmp);
        }
        let size = written?;
        self.install(&tmp)?;
        Ok(size)
    }

    /// Writes and syncs the whole checkpoint file at `tmp`; returns its size.
    fn write_tmp(tmp: &Path, checkpoint: &CheckpointRef<'_>) -> Result<u64> {
        let io = |source| RuntimeError::CheckpointIo {
            path: tmp.to_owned(),
            source,
        };
        let mut file = BufWriter::with_capacity(WRITE_BUFFER, File::create(tmp).map_err(io)?);
        file.write_all(MAGIC).map_err(io)?;
        file.write_all(&FORMAT_VERSION.to_le_bytes()).map_err(io)?;
        file.write_all(&[0; 4]).map_err(io)?; // the CRC, once known
        let mut body = CrcWriter::new(&mut file);
        if let Err(e) = postcard::to_io(checkpoint, &mut body) {
            // postcard reports a failed write as its own error; the I/O
            // error (a full disk, say) is the one worth telling.
            return Err(match body.failed.take() {
                Some(source) => io(source),
                None => RuntimeError::CheckpointInvalid {
                    path: tmp.to_owned(),
                    reason: format!("encode: {e}"),
                },
            });
        }
        let (crc, len) = (body.crc.finalize(), body.len);
        let mut file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(CRC_AT)).map_err(io)?;
        file.write_all(&crc.to_le_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(HEADER_LEN + len)
    }

    /// Moves a complete, synced temporary file into place: the current
    /// checkpoint becomes the previous generation, then the directory is
    /// synced.
    fn install(&self, tmp: &Path) -> Result<()> {
        let path = self.path();
        let previous = self.dir.join(PREVIOUS_NAME);
        match std::fs::rename(&path, &previous) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RuntimeError::CheckpointIo {
                    path: previous,
                    source,
                })
            }
        }
        std::fs::rename(tmp, &path).map_err(|source| RuntimeError::CheckpointIo {
            path: path.clone(),
            source,
        })?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| RuntimeError::CheckpointIo {
                path: self.dir.clone(),
                source,
            })
    }

    /// Loads the newest whole checkpoint: the current one, or the previous
    /// generation when the current one is missing or damaged (logged).
    ///
    /// # Errors
    /// When checkpoint files exist but none can be used (damaged, or from
    /// another format version); the error names the current file.
    pub fn load(&self) -> Result<Option<Checkpoint>> {
        let current = Self::load_file(&self.path());
        let current_error = match current {
            Ok(Some(checkpoint)) => return Ok(Some(checkpoint)),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        match Self::load_file(&self.dir.join(PREVIOUS_NAME)) {
            Ok(Some(previous)) => {
                if let Some(e) = &current_error {
                    tracing::warn!(error = %e, "current checkpoint unusable; resuming from the previous one");
                }
                Ok(Some(previous))
            }
            Ok(None) | Err(_) => match current_error {
                Some(e) => Err(e),
                None => Ok(None),
            },
        }
    }

    fn load_file(path: &Path) -> Result<Option<Checkpoint>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RuntimeError::CheckpointIo {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let invalid = |reason: String| RuntimeError::CheckpointInvalid {
            path: path.to_owned(),
            reason,
        };
        let (header_len, crc_at) = (HEADER_LEN as usize, CRC_AT as usize);
        if bytes.len() < header_len || &bytes[..MAGIC.len()] != MAGIC {
            return Err(invalid("not a StorePulse checkpoint".into()));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let crc = u32::from_le_bytes([
            bytes[crc_at],
            bytes[crc_at + 1],
            bytes[crc_at + 2],
            bytes[crc_at + 3],
        ]);
        let body = &bytes[header_len..];
        if crc32fast::hash(body) != crc {
            return Err(invalid("checksum mismatch: the file is damaged".into()));
        }
        postcard::from_bytes(body)
            .map(Some)
            .map_err(|e| invalid(format!("decode: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use storepulse_core::StoreMaster;
    use storepulse_processors::inventory::{InventoryConfig, InventoryProcessor};

    /// Saves an empty state read up to `offset`; checks the size returned.
    fn write_at(store: &CheckpointStore, offset: u64) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        let stores = Arc::new(StoreMaster::load(&path).unwrap());
        let inventory = InventoryProcessor::new(InventoryConfig::default(), stores);
        let size = store
            .save(&CheckpointRef {
                positions: &[SourcePosition {
                    partition: 0,
                    offset,
                }],
                inventory: inventory.state(),
                members: None,
                alerts: &AlertBook::new(1),
                fraud: None,
                taken_at: 0,
            })
            .unwrap();
        let on_disk = std::fs::metadata(store.path()).unwrap().len();
        assert_eq!(size, on_disk);
        assert!(size > HEADER_LEN, "{size}");
    }

    /// A disk that fills up after `room` bytes.
    struct FullDisk {
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "no space left on device",
                ));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_that_fails_mid_encoding_is_reported_as_the_io_error_it_was() {
        let big: Vec<u64> = (0..10_000).collect();
        let mut body = CrcWriter::new(FullDisk { room: 1000 });
        assert!(postcard::to_io(&big, &mut body).is_err());
        let failed = body.failed.expect("the I/O error is kept");
        assert_eq!(failed.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(body.len, 1000);
        // A writer with room: same bytes and CRC as encoding to memory.
        let mut whole = CrcWriter::new(Vec::new());
        postcard::to_io(&big, &mut whole).unwrap();
        let expected = postcard::to_stdvec(&big).unwrap();
        assert_eq!(whole.inner, expected);
        assert_eq!(whole.crc.finalize(), crc32fast::hash(&expected));
        assert_eq!(whole.len, expected.len() as u64);
    }

    fn offset(store: &CheckpointStore) -> Option<u64> {
        store.load().unwrap().map(|c| c.positions[0].offset)
    }

    #[test]
    fn damaged_current_checkpoint_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(offset(&store), None);
        write_at(&store, 10);
        write_at(&store, 20);
        assert_eq!(offset(&store), Some(20));
        // Flip a byte in the body of the current file.
        let current = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&current).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&current, &bytes).unwrap();
        assert_eq!(offset(&store), Some(10));
        // Both damaged: an error that says so.
        std::fs::write(dir.path().join(PREVIOUS_NAME), b"garbage").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        // A crash between the two renames leaves only the previous file.
        std::fs::remove_file(&current).unwrap();
        write_at(&store, 30);
        std::fs::rename(&current, dir.path().join(PREVIOUS_NAME)).unwrap();
        assert_eq!(offset(&store), Some(30));
    }
}
