//! Checkpoint files: processor state together with the source positions it
//! reflects.
//!
//! A checkpoint is written to a temporary file, fsynced, renamed over the
//! previous one and the directory fsynced, so a crash at any point leaves
//! either the old or the new checkpoint, never a torn one. The file starts
//! with a magic, a format version and a CRC-32 of the body (postcard), so a
//! damaged file is refused with a clear error instead of being half-read.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use storepulse_core::source::SourcePosition;
use storepulse_processors::inventory::InventoryState;

use crate::alerts::AlertBook;
use crate::error::{Result, RuntimeError};

const MAGIC: &[u8; 8] = b"SPCKPT01";
const FORMAT_VERSION: u32 = 2;
const FILE_NAME: &str = "checkpoint.bin";

/// Everything a restart needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Where reading resumes (exclusive end of what the state reflects).
    pub positions: Vec<SourcePosition>,
    pub inventory: InventoryState,
    pub alerts: AlertBook,
    /// Wall-clock time it was taken (nanoseconds).
    pub taken_at: i64,
}

/// Borrowed form, so a checkpoint can be written without cloning state.
#[derive(Serialize)]
pub struct CheckpointRef<'a> {
    pub positions: &'a [SourcePosition],
    pub inventory: &'a InventoryState,
    pub alerts: &'a AlertBook,
    pub taken_at: i64,
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

    /// Serialises a checkpoint to bytes (cheap to call under a read lock;
    /// the slow fsync happens in [`CheckpointStore::write`]).
    ///
    /// # Errors
    /// Serialisation failure (not expected for these types).
    pub fn encode(&self, checkpoint: &CheckpointRef<'_>) -> Result<Vec<u8>> {
        let body =
            postcard::to_stdvec(checkpoint).map_err(|e| RuntimeError::CheckpointInvalid {
                path: self.path(),
                reason: format!("encode: {e}"),
            })?;
        let mut bytes = Vec::with_capacity(body.len() + 16);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        Ok(bytes)
    }

    /// Durably replaces the checkpoint with `bytes` from [`Self::encode`].
    ///
    /// # Errors
    /// Any I/O failure; the previous checkpoint stays in place.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let io = |source| RuntimeError::CheckpointIo {
            path: tmp.clone(),
            source,
        };
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|source| RuntimeError::CheckpointIo {
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

    /// Loads the checkpoint, if there is one.
    ///
    /// # Errors
    /// A checkpoint file that cannot be read, is from another format
    /// version, or fails its checksum.
    pub fn load(&self) -> Result<Option<Checkpoint>> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RuntimeError::CheckpointIo { path, source }),
        };
        let invalid = |reason: String| RuntimeError::CheckpointInvalid {
            path: path.clone(),
            reason,
        };
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(invalid("not a StorePulse checkpoint".into()));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let body = &bytes[16..];
        if crc32fast::hash(body) != crc {
            return Err(invalid("checksum mismatch: the file is damaged".into()));
        }
        postcard::from_bytes(body)
            .map(Some)
            .map_err(|e| invalid(format!("decode: {e}")))
    }
}
