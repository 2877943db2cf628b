//! Segment files: naming, record encoding, the directory lock, sidecar
//! indexes, and crash recovery at open.
//!
//! A segment is `<first offset, 20 digits>.log` holding records back to back:
//! `[u32 LE payload length][u32 LE crc32 of payload][payload]`. Its sidecar
//! `<first offset>.idx` (written when the segment is sealed, never fsynced)
//! caches the record count and the sparse index so open need not rescan; it
//! is ignored, and rebuilt, whenever it does not match the segment.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use super::error::{io_at, LogError};

/// Largest accepted payload, in bytes (1 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Bytes of a record header: length then crc32, both u32 LE.
pub(super) const HEADER_BYTES: u64 = 8;
/// The sparse index keeps the byte position of every `INDEX_STRIDE`-th record.
pub(super) const INDEX_STRIDE: u64 = 4096;
/// Name of the lock file in the log directory.
const LOCK_FILE: &str = "LOCK";
const SIDECAR_MAGIC: &[u8; 4] = b"SPIX";
const SIDECAR_VERSION: u32 = 1;
/// Buffer for scanning segments at open.
const SCAN_BUF_BYTES: usize = 1024 * 1024;

/// What the log knows about one segment.
#[derive(Debug, Clone)]
pub(super) struct SegmentInfo {
    /// Offset of the segment's first record (also its file name).
    pub base: u64,
    /// Bytes of complete records in the file.
    pub bytes: u64,
    /// Number of records.
    pub records: u64,
    /// Byte position of records `0, INDEX_STRIDE, 2 * INDEX_STRIDE, ...`.
    pub index: Vec<u64>,
}

/// Path of the segment file starting at `base`.
pub(super) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Path of the sidecar index of the segment starting at `base`.
pub(super) fn sidecar_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.idx"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Appends one encoded record to `buf`. The caller has checked the length.
pub(super) fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    // Payloads are at most MAX_PAYLOAD_BYTES (checked in `append`), so the
    // length fits a u32.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Splits a header into (payload length, crc).
pub(super) fn parse_header(h: &[u8; 8]) -> (u32, u32) {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (len, crc)
}

/// Why a payload length is impossible, if it is.
pub(super) fn bad_length(len: u32) -> Option<String> {
    if len == 0 {
        Some("zero payload length".to_owned())
    } else if len as usize > MAX_PAYLOAD_BYTES {
        Some(format!("payload length {len} exceeds {MAX_PAYLOAD_BYTES}"))
    } else {
        None
    }
}

/// Takes the exclusive lock on `dir`; the lock lives as long as the file.
pub(super) fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LogError::Locked { path }),
        Err(TryLockError::Error(source)) => Err(LogError::Io { path, source }),
    }
}

/// Creates a new, empty segment file opened for appending.
pub(super) fn create_segment(dir: &Path, base: u64) -> Result<File, LogError> {
    let path = segment_path(dir, base);
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_at(&path))
}

/// Makes file creations and deletions in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

/// Opens the log directory after a clean shutdown or a crash: returns every
/// segment (oldest first) and the last one opened for appending, its torn or
/// corrupt tail cut off.
pub(super) fn recover(dir: &Path, fsync: bool) -> Result<(Vec<SegmentInfo>, File), LogError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_segment_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    if bases.is_empty() {
        drop(create_segment(dir, 0)?);
        if fsync {
            sync_dir(dir)?;
        }
        bases.push(0);
    }

    let last = bases.len() - 1;
    let mut segments: Vec<SegmentInfo> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let path = segment_path(dir, base);
        let info = if i < last {
            match read_sidecar(dir, base, &path)? {
                Some(info) => info,
                None => {
                    let info = scan_sealed(&path, base)?;
                    if let Err(e) = write_sidecar(dir, &info) {
                        warn!(error = %e, base, "could not write segment index; will rescan next open");
                    }
                    info
                }
            }
        } else {
            recover_tail(&path, base)?
        };
        if let Some(prev) = segments.last() {
            if prev.base + prev.records != base {
                return Err(LogError::Corrupt {
                    path,
                    position: 0,
                    reason: format!(
                        "segment starts at offset {base} but the previous one ends at offset {}",
                        prev.base + prev.records
                    ),
                });
            }
        }
        segments.push(info);
    }
    let path = segment_path(dir, bases[last]);
    let active = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_at(&path))?;
    Ok((segments, active))
}

/// Counts the records of a sealed (trusted) segment by reading headers only.
fn scan_sealed(path: &Path, base: u64) -> Result<SegmentInfo, LogError> {
    let file = File::open(path).map_err(io_at(path))?;
    let len = file.metadata().map_err(io_at(path))?.len();
    let mut reader = BufReader::with_capacity(SCAN_BUF_BYTES, file);
    let mut info = SegmentInfo {
        base,
        bytes: len,
        records: 0,
        index: Vec::new(),
    };
    let mut pos = 0u64;
    let corrupt = |position: u64, reason: String| LogError::Corrupt {
        path: path.to_owned(),
        position,
        reason,
    };
    while pos < len {
        if len - pos < HEADER_BYTES {
            return Err(corrupt(pos, "truncated record header".to_owned()));
        }
        let mut header = [0u8; 8];
        reader.read_exact(&mut header).map_err(io_at(path))?;
        let (plen, _) = parse_header(&header);
        if let Some(reason) = bad_length(plen) {
            return Err(corrupt(pos, reason));
        }
        let next = pos + HEADER_BYTES + u64::from(plen);
        if next > len {
            return Err(corrupt(pos, "truncated record".to_owned()));
        }
        if info.records.is_multiple_of(INDEX_STRIDE) {
            info.index.push(pos);
        }
        reader.seek_relative(i64::from(plen)).map_err(io_at(path))?;
        pos = next;
        info.records += 1;
    }
    debug!(path = %path.display(), records = info.records, "scanned sealed segment");
    Ok(info)
}

/// Validates every record of the last segment (lengths and CRCs) and cuts the
/// file after the last valid one.
fn recover_tail(path: &Path, base: u64) -> Result<SegmentInfo, LogError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    let len = file.metadata().map_err(io_at(path))?.len();
    let mut reader = BufReader::with_capacity(SCAN_BUF_BYTES, file);
    let mut info = SegmentInfo {
        base,
        bytes: 0,
        records: 0,
        index: Vec::new(),
    };
    let mut payload = Vec::new();
    let mut pos = 0u64;
    let mut why = None;
    while pos < len {
        if len - pos < HEADER_BYTES {
            why = Some("torn record header".to_owned());
            break;
        }
        let mut header = [0u8; 8];
        reader.read_exact(&mut header).map_err(io_at(path))?;
        let (plen, crc) = parse_header(&header);
        if let Some(reason) = bad_length(plen) {
            why = Some(reason);
            break;
        }
        let next = pos + HEADER_BYTES + u64::from(plen);
        if next > len {
            why = Some("torn record".to_owned());
            break;
        }
        payload.resize(plen as usize, 0);
        reader.read_exact(&mut payload).map_err(io_at(path))?;
        if crc32fast::hash(&payload) != crc {
            why = Some("crc mismatch".to_owned());
            break;
        }
        if info.records.is_multiple_of(INDEX_STRIDE) {
            info.index.push(pos);
        }
        pos = next;
        info.records += 1;
    }
    info.bytes = pos;
    if pos < len {
        let file = reader.into_inner();
        file.set_len(pos).map_err(io_at(path))?;
        file.sync_all().map_err(io_at(path))?;
        warn!(
            path = %path.display(),
            dropped_bytes = len - pos,
            kept_records = info.records,
            reason = why.as_deref().unwrap_or("unknown"),
            "event log: truncated torn or corrupt tail of the last segment"
        );
    }
    Ok(info)
}

/// Writes the sidecar index of a sealed segment (best effort, not fsynced).
pub(super) fn write_sidecar(dir: &Path, info: &SegmentInfo) -> io::Result<()> {
    let mut buf = Vec::with_capacity(40 + info.index.len() * 8);
    buf.extend_from_slice(SIDECAR_MAGIC);
    buf.extend_from_slice(&SIDECAR_VERSION.to_le_bytes());
    buf.extend_from_slice(&info.base.to_le_bytes());
    buf.extend_from_slice(&info.bytes.to_le_bytes());
    buf.extend_from_slice(&info.records.to_le_bytes());
    for pos in &info.index {
        buf.extend_from_slice(&pos.to_le_bytes());
    }
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    fs::write(sidecar_path(dir, info.base), buf)
}

/// Reads the sidecar of a sealed segment; `None` when it is missing, damaged
/// or does not match the segment file.
fn read_sidecar(dir: &Path, base: u64, segment: &Path) -> Result<Option<SegmentInfo>, LogError> {
    let path = sidecar_path(dir, base);
    let buf = match fs::read(&path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LogError::Io { path, source }),
    };
    let seg_len = fs::metadata(segment).map_err(io_at(segment))?.len();
    let info = decode_sidecar(&buf).filter(|i| i.base == base && i.bytes == seg_len);
    if info.is_none() {
        debug!(path = %path.display(), "ignoring stale or damaged segment index");
    }
    Ok(info)
}

fn decode_sidecar(buf: &[u8]) -> Option<SegmentInfo> {
    let (body, crc) = buf.split_at_checked(buf.len().checked_sub(4)?)?;
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let (magic, rest) = body.split_at_checked(4)?;
    if magic != SIDECAR_MAGIC {
        return None;
    }
    let (version, rest) = rest.split_at_checked(4)?;
    if u32::from_le_bytes(version.try_into().ok()?) != SIDECAR_VERSION {
        return None;
    }
    let mut words = rest.chunks_exact(8);
    if !words.remainder().is_empty() {
        return None;
    }
    let mut next = || -> Option<u64> { Some(u64::from_le_bytes(words.next()?.try_into().ok()?)) };
    let base = next()?;
    let bytes = next()?;
    let records = next()?;
    let mut index = Vec::new();
    while let Some(pos) = next() {
        index.push(pos);
    }
    if index.len() as u64 != records.div_ceil(INDEX_STRIDE) {
        return None;
    }
    Some(SegmentInfo {
        base,
        bytes,
        records,
        index,
    })
}
