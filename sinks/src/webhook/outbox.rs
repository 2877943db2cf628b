//! The durable outbox: an append-only log of notifications on disk, and one
//! persisted cursor per webhook saying how far it has been delivered.
//!
//! # On disk
//!
//! ```text
//! <outbox_dir>/
//!   LOCK                              exclusive lock (one outbox per directory)
//!   00000000000000000000.log          segment: records 0 .. 1234
//!   00000000000000001234.log          segment: records 1234 .. (the active one)
//!   cursors/<webhook name>.json       {"next_seq": 1240}, replaced atomically
//! ```
//!
//! A segment is named after the sequence number (position) of its first
//! record, 20 digits, and holds records back to back:
//! `[u32 LE payload length][u32 LE crc32 of payload][payload]`, the payload
//! being `[u8 version = 1][u64 LE appended at, unix ms][u16 LE id length][id]
//! [u16 LE rule length][rule][body]`.
//!
//! # Guarantees
//!
//! - [`Outbox::append`] returns `Ok` only after the record is fsynced; the
//!   senders only ever see fsynced records.
//! - At open, a torn tail (a record cut by a crash, or with a bad crc) at the
//!   end of the last segment is truncated; damage anywhere else is an error
//!   ([`SinkError::OutboxCorrupt`]): it is not a crash artefact and needs an
//!   operator.
//! - An append whose id is among the last `dedup_window` ids appended is a
//!   no-op returning `Ok(false)`, also across restarts: an at-least-once
//!   producer re-emitting notifications after a crash causes no second
//!   delivery.
//! - A cursor is the sequence number of the next record the webhook has not
//!   delivered. It is written to a temporary file, fsynced, renamed over the
//!   old one, and the directory fsynced.
//!
//! # Retention (bounded disk and memory)
//!
//! Whole segments are deleted, oldest first, once (a) every configured
//! webhook's cursor has passed the segment's end and (b) all its records are
//! older than the de-duplication window. Condition (b) is what lets the
//! window survive a restart: the ids are rebuilt at open from the retained
//! segments. So disk holds about `dedup_window` records plus one segment
//! plus whatever the slowest webhook has not delivered yet (a webhook that is
//! down holds everything since it went down: retries never give up). Memory
//! holds the last `dedup_window` ids (not bodies); a sender holds one record.
//!
//! A webhook seen for the first time starts at the end of the outbox (it
//! does not receive older notifications). A webhook removed from the config
//! stops holding segments back; if it is added again after its records were
//! deleted, it resumes at the oldest retained record (logged as a warning).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::config::OutboxConfig;
use crate::error::{io_at, Result, SinkError};

/// Longest notification id, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Largest notification body, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest rule name kept with a record, in bytes.
pub const MAX_RULE_BYTES: usize = 256;

const HEADER_BYTES: u64 = 8;
const RECORD_VERSION: u8 = 1;
/// Largest payload a valid record can have (version, time, lengths, id,
/// rule, body).
const MAX_PAYLOAD_BYTES: usize = 1 + 8 + 2 + MAX_ID_BYTES + 2 + MAX_RULE_BYTES + MAX_BODY_BYTES;
const LOCK_FILE: &str = "LOCK";
const CURSOR_DIR: &str = "cursors";

/// One notification as stored, read back by a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Position in the outbox (0, 1, 2, ...).
    pub seq: u64,
    /// The producer's unique id, sent as `X-StorePulse-Delivery`.
    pub id: String,
    /// The body's top-level `"rule"` string, if any (for `rules` filters).
    pub rule: Option<String>,
    /// When it was appended, unix milliseconds (for latency metrics).
    pub appended_at_ms: u64,
    /// The JSON body, exactly as appended.
    pub body: Vec<u8>,
}

/// The append-only, crash-safe outbox. Share it as `Arc<Outbox>`.
///
/// `append` and the cursor methods do blocking file I/O (an fsync): from
/// async code call them through `spawn_blocking` (as
/// [`super::WebhookHandle::append`] does).
pub struct Outbox {
    dir: PathBuf,
    options: OutboxConfig,
    writer: Mutex<Writer>,
    /// Bases of the retained segments, ascending; the last is the active one.
    segments: RwLock<Vec<u64>>,
    /// The sequence number the next append gets; senders wait on it.
    appended: watch::Sender<u64>,
    /// Cursors of the configured webhooks (they hold segments back).
    cursors: Mutex<BTreeMap<String, u64>>,
    /// Held for the life of the outbox: the directory lock.
    _lock: File,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

struct Writer {
    file: File,
    base: u64,
    bytes: u64,
    next_seq: u64,
    ids: RecentIds,
    buf: Vec<u8>,
    /// Set when a failed write could not be rolled back: appends are
    /// refused until the outbox is reopened (which truncates the tail).
    broken: bool,
}

/// The last `window` ids appended, for de-duplication: a set to look up,
/// a queue to forget the oldest. Bounded by the window, never by history.
struct RecentIds {
    window: u64,
    order: VecDeque<Arc<str>>,
    set: HashSet<Arc<str>>,
}

impl RecentIds {
    fn new(window: u64) -> Self {
        Self {
            window: window.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn remember(&mut self, id: &str) {
        let id: Arc<str> = Arc::from(id);
        self.set.insert(Arc::clone(&id));
        self.order.push_back(id);
        while self.order.len() as u64 > self.window {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.len()
    }
}

#[derive(Serialize, Deserialize)]
struct CursorFile {
    next_seq: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves consistent data here (every
    // mutation is a single assignment after the I/O succeeded).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checks an id: 1 to 256 bytes of visible ASCII (it is sent as a header).
fn check_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "empty id"
    } else if id.len() > MAX_ID_BYTES {
        "id longer than 256 bytes"
    } else if !id.bytes().all(|b| b.is_ascii_graphic()) {
        "id must be visible ASCII (it is sent as a header)"
    } else {
        return Ok(());
    };
    Err(SinkError::NotificationInvalid {
        id: id.chars().take(200).collect(),
        reason: reason.to_owned(),
    })
}

/// The body's top-level `"rule"`, after checking it is a JSON object.
fn rule_of(id: &str, body: &[u8]) -> Result<Option<String>> {
    let invalid = |reason: String| SinkError::NotificationInvalid {
        id: id.to_owned(),
        reason,
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(invalid(format!(
            "body of {} bytes exceeds {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("body is not JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(invalid("body is not a JSON object".to_owned()));
    };
    match map.get("rule") {
        Some(serde_json::Value::String(r)) if r.len() <= MAX_RULE_BYTES => Ok(Some(r.clone())),
        Some(serde_json::Value::String(_)) => {
            Err(invalid(format!("rule longer than {MAX_RULE_BYTES} bytes")))
        }
        _ => Ok(None),
    }
}

fn encode(buf: &mut Vec<u8>, id: &str, rule: Option<&str>, at_ms: u64, body: &[u8]) {
    let rule = rule.unwrap_or("");
    buf.clear();
    buf.extend_from_slice(&[0; 8]);
    buf.push(RECORD_VERSION);
    buf.extend_from_slice(&at_ms.to_le_bytes());
    // Lengths were checked (id <= 256, rule <= 256 bytes).
    buf.extend_from_slice(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_le_bytes());
    buf.extend_from_slice(id.as_bytes());
    buf.extend_from_slice(&u16::try_from(rule.len()).unwrap_or(u16::MAX).to_le_bytes());
    buf.extend_from_slice(rule.as_bytes());
    buf.extend_from_slice(body);
    let payload_len = u32::try_from(buf.len() - 8).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(&buf[8..]);
    buf[0..4].copy_from_slice(&payload_len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes a payload whose crc matched.
fn decode(seq: u64, payload: &[u8]) -> std::result::Result<Notification, String> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
        if p.len() < n {
            return Err("payload too short".to_owned());
        }
        let (head, tail) = p.split_at(n);
        *p = tail;
        Ok(head)
    }
    fn u16_le(b: &[u8]) -> usize {
        usize::from(u16::from_le_bytes([b[0], b[1]]))
    }
    let mut p = payload;
    let version = take(&mut p, 1)?[0];
    if version != RECORD_VERSION {
        return Err(format!("unknown record version {version}"));
    }
    let t = take(&mut p, 8)?;
    let appended_at_ms = u64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
    let id_len = u16_le(take(&mut p, 2)?);
    let id = std::str::from_utf8(take(&mut p, id_len)?)
        .map_err(|_| "id is not UTF-8".to_owned())?
        .to_owned();
    let rule_len = u16_le(take(&mut p, 2)?);
    let rule =
        std::str::from_utf8(take(&mut p, rule_len)?).map_err(|_| "rule is not UTF-8".to_owned())?;
    let rule = (!rule.is_empty()).then(|| rule.to_owned());
    Ok(Notification {
        seq,
        id,
        rule,
        appended_at_ms,
        body: p.to_vec(),
    })
}

/// Reads the record at the reader's position. `Ok(None)` at a clean end of
/// file; `Err((reason))` for a short or damaged record.
fn read_record(
    r: &mut impl Read,
    seq: u64,
) -> std::result::Result<Option<(Notification, u64)>, String> {
    let mut header = [0u8; 8];
    match read_full(r, &mut header) {
        Ok(0) => return Ok(None),
        Ok(8) => {}
        Ok(n) => return Err(format!("torn header ({n} of 8 bytes)")),
        Err(e) => return Err(format!("read: {e}")),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_PAYLOAD_BYTES {
        return Err(format!("impossible payload length {len}"));
    }
    let mut payload = vec![0u8; len];
    match read_full(r, &mut payload) {
        Ok(n) if n == len => {}
        Ok(n) => return Err(format!("torn payload ({n} of {len} bytes)")),
        Err(e) => return Err(format!("read: {e}")),
    }
    if crc32fast::hash(&payload) != crc {
        return Err("crc mismatch".to_owned());
    }
    let n = decode(seq, &payload)?;
    Ok(Some((n, HEADER_BYTES + len as u64)))
}

/// Reads until `buf` is full or end of file; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`: takes the directory lock,
    /// checks every retained segment, truncates a torn tail and rebuilds the
    /// de-duplication window.
    ///
    /// # Errors
    /// [`SinkError::OutboxLocked`] when another outbox holds `dir`;
    /// [`SinkError::OutboxCorrupt`] for damage before the tail;
    /// [`SinkError::Io`] for I/O failures.
    pub fn open(dir: &Path, options: OutboxConfig) -> Result<Self> {
        fs::create_dir_all(dir.join(CURSOR_DIR)).map_err(io_at(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_at(&lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(SinkError::OutboxLocked {
                    path: dir.to_owned(),
                })
            }
            Err(TryLockError::Error(source)) => {
                return Err(SinkError::Io {
                    path: lock_path,
                    source,
                })
            }
        }

        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            if let Some(base) = entry.file_name().to_str().and_then(parse_segment_name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        if bases.is_empty() {
            File::create(segment_path(dir, 0)).map_err(io_at(dir))?;
            sync_dir(dir)?;
            bases.push(0);
        }

        let mut ids = RecentIds::new(options.dedup_window);
        let mut next_seq = bases[0];
        let mut active_bytes = 0;
        let last = bases.len() - 1;
        for (i, &base) in bases.iter().enumerate() {
            let path = segment_path(dir, base);
            if base != next_seq {
                return Err(SinkError::OutboxCorrupt {
                    path,
                    position: 0,
                    reason: format!("segment starts at {base}, expected {next_seq}"),
                });
            }
            let file = File::open(&path).map_err(io_at(&path))?;
            let mut reader = BufReader::with_capacity(256 * 1024, file);
            let mut position = 0u64;
            loop {
                match read_record(&mut reader, next_seq) {
                    Ok(Some((n, len))) => {
                        position += len;
                        next_seq += 1;
                        ids.remember(&n.id);
                    }
                    Ok(None) => break,
                    Err(reason) if i == last => {
                        let size = fs::metadata(&path).map_err(io_at(&path))?.len();
                        warn!(
                            path = %path.display(),
                            position,
                            dropped_bytes = size - position,
                            %reason,
                            "outbox: truncating a torn tail"
                        );
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io_at(&path))?;
                        f.set_len(position).map_err(io_at(&path))?;
                        f.sync_all().map_err(io_at(&path))?;
                        break;
                    }
                    Err(reason) => {
                        return Err(SinkError::OutboxCorrupt {
                            path,
                            position,
                            reason,
                        })
                    }
                }
            }
            active_bytes = position;
        }

        let active_base = bases[last];
        let active_path = segment_path(dir, active_base);
        let file = OpenOptions::new()
            .append(true)
            .open(&active_path)
            .map_err(io_at(&active_path))?;
        info!(
            dir = %dir.display(),
            segments = bases.len(),
            first_seq = bases[0],
            next_seq,
            "outbox opened"
        );
        let (appended, _) = watch::channel(next_seq);
        Ok(Self {
            dir: dir.to_owned(),
            options,
            writer: Mutex::new(Writer {
                file,
                base: active_base,
                bytes: active_bytes,
                next_seq,
                ids,
                buf: Vec::new(),
                broken: false,
            }),
            segments: RwLock::new(bases),
            appended,
            cursors: Mutex::new(BTreeMap::new()),
            _lock: lock_file,
        })
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number the next appended notification gets (so the
    /// number of notifications ever appended).
    pub fn next_seq(&self) -> u64 {
        *self.appended.borrow()
    }

    /// The sequence number of the oldest retained notification.
    pub fn first_seq(&self) -> u64 {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .first()
            .copied()
            .unwrap_or(0)
    }

    /// Number of segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// A receiver that changes on every append (its value is
    /// [`Self::next_seq`]): senders wait on it instead of polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Appends a notification durably: returns `Ok(true)` once it is
    /// fsynced, or `Ok(false)` without writing anything when `id` is among
    /// the last `dedup_window` ids appended. `body` must be a JSON object;
    /// its top-level `"rule"` string selects the webhooks with `rules`.
    ///
    /// Blocking (fsync); appends are serialised.
    ///
    /// # Errors
    /// [`SinkError::NotificationInvalid`] for a bad id or body (never
    /// retry); [`SinkError::Io`] when the write or fsync fails (nothing was
    /// appended; retry).
    pub fn append(&self, id: &str, body: &[u8]) -> Result<bool> {
        check_id(id)?;
        let rule = rule_of(id, body)?;
        let mut w = lock(&self.writer);
        if w.ids.contains(id) {
            debug!(id, "outbox: duplicate id, not appended");
            return Ok(false);
        }
        if w.broken {
            return Err(SinkError::Io {
                path: segment_path(&self.dir, w.base),
                source: io::Error::other("an earlier failed append left the segment dirty; reopen"),
            });
        }
        let mut buf = std::mem::take(&mut w.buf);
        encode(&mut buf, id, rule.as_deref(), now_ms(), body);
        let result = self.write_locked(&mut w, &buf);
        w.buf = buf;
        result?;
        w.next_seq += 1;
        w.ids.remember(id);
        let next = w.next_seq;
        drop(w);
        self.appended.send_replace(next);
        Ok(true)
    }

    fn write_locked(&self, w: &mut Writer, frame: &[u8]) -> Result<()> {
        if w.bytes > 0 && w.bytes + frame.len() as u64 > self.options.segment_bytes {
            self.roll(w)?;
        }
        let path = segment_path(&self.dir, w.base);
        let written = w.file.write_all(frame).and_then(|()| w.file.sync_data());
        if let Err(source) = written {
            // Take back a partial record so the next append starts clean.
            if w.file
                .set_len(w.bytes)
                .and_then(|()| w.file.sync_data())
                .is_err()
            {
                w.broken = true;
            }
            return Err(SinkError::Io { path, source });
        }
        w.bytes += frame.len() as u64;
        Ok(())
    }

    /// Seals the active segment and starts a new one at `next_seq`.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        let base = w.next_seq;
        let path = segment_path(&self.dir, base);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        drop(file);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_at(&path))?;
        sync_dir(&self.dir)?;
        w.file = file;
        w.base = base;
        w.bytes = 0;
        self.segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(base);
        debug!(base, "outbox: new segment");
        self.collect_garbage(w.next_seq);
        Ok(())
    }

    /// Deletes the sealed segments every cursor has passed and that are
    /// older than the de-duplication window. Failures are logged and the
    /// segment kept for the next try.
    fn collect_garbage(&self, next_seq: u64) {
        let horizon = lock(&self.cursors)
            .values()
            .copied()
            .min()
            .unwrap_or(next_seq)
            .min(next_seq);
        let keep_from = horizon.min(next_seq.saturating_sub(self.options.dedup_window));
        let mut segments = self
            .segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut deleted = 0;
        // A segment ends where the next begins; the active one never goes.
        while segments.len() > 1 && segments[1] <= keep_from {
            let path = segment_path(&self.dir, segments[0]);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "outbox: cannot delete a delivered segment");
                    break;
                }
            }
            segments.remove(0);
            deleted += 1;
        }
        drop(segments);
        if deleted > 0 {
            if let Err(e) = sync_dir(&self.dir) {
                warn!(error = %e, "outbox: fsync of the directory after deletion failed");
            }
            debug!(deleted, keep_from, "outbox: deleted delivered segments");
        }
    }

    fn cursor_path(&self, name: &str) -> PathBuf {
        self.dir.join(CURSOR_DIR).join(format!("{name}.json"))
    }

    /// Loads the cursor of webhook `name` and registers it (from now on it
    /// holds back the deletion of segments it has not passed). A webhook
    /// without a cursor file starts at the end of the outbox (the file is
    /// written at once). A cursor older than the oldest retained record
    /// moves up to it, with a warning.
    ///
    /// `name` must be a validated webhook name (it names a file).
    ///
    /// # Errors
    /// [`SinkError::CursorInvalid`] for an unreadable cursor or one past the
    /// end of the outbox; [`SinkError::Io`] for I/O failures.
    pub fn open_cursor(&self, name: &str) -> Result<u64> {
        let path = self.cursor_path(name);
        let next = self.next_seq();
        let cursor = match fs::read(&path) {
            Ok(bytes) => {
                let file: CursorFile =
                    serde_json::from_slice(&bytes).map_err(|e| SinkError::CursorInvalid {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if file.next_seq > next {
                    return Err(SinkError::CursorInvalid {
                        path,
                        reason: format!(
                            "cursor {} is past the end of the outbox ({next})",
                            file.next_seq
                        ),
                    });
                }
                let first = self.first_seq();
                if file.next_seq < first {
                    warn!(
                        webhook = name,
                        cursor = file.next_seq,
                        first_seq = first,
                        lost = first - file.next_seq,
                        "webhook cursor is older than the outbox; resuming at its oldest record"
                    );
                    first
                } else {
                    file.next_seq
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                info!(
                    webhook = name,
                    next_seq = next,
                    "new webhook: starts at the end of the outbox"
                );
                self.write_cursor_file(name, next)?;
                next
            }
            Err(source) => return Err(SinkError::Io { path, source }),
        };
        lock(&self.cursors).insert(name.to_owned(), cursor);
        Ok(cursor)
    }

    /// Durably records that webhook `name` has delivered (or skipped) every
    /// notification before `next_seq`, then deletes what no one needs.
    ///
    /// Blocking (fsync).
    ///
    /// # Errors
    /// [`SinkError::Io`]; the previous cursor file stays in place.
    pub fn commit_cursor(&self, name: &str, next_seq: u64) -> Result<()> {
        self.write_cursor_file(name, next_seq)?;
        lock(&self.cursors).insert(name.to_owned(), next_seq);
        self.collect_garbage(self.next_seq());
        Ok(())
    }

    fn write_cursor_file(&self, name: &str, next_seq: u64) -> Result<()> {
        let path = self.cursor_path(name);
        let tmp = self.dir.join(CURSOR_DIR).join(format!("{name}.json.tmp"));
        let body = serde_json::to_vec(&CursorFile { next_seq }).map_err(|e| SinkError::Io {
            path: tmp.clone(),
            source: io::Error::other(e),
        })?;
        let mut f = File::create(&tmp).map_err(io_at(&tmp))?;
        f.write_all(&body).map_err(io_at(&tmp))?;
        f.sync_all().map_err(io_at(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        sync_dir(&self.dir.join(CURSOR_DIR))
    }

    /// A reader starting at `seq`.
    pub fn reader(self: &Arc<Self>, seq: u64) -> OutboxReader {
        OutboxReader {
            outbox: Arc::clone(self),
            seq,
            open: None,
        }
    }
}

/// Reads notifications in order from a position; one per sender.
#[derive(Debug)]
pub struct OutboxReader {
    outbox: Arc<Outbox>,
    seq: u64,
    /// The open segment: (base, reader positioned at record `seq`).
    open: Option<(u64, BufReader<File>)>,
}

impl OutboxReader {
    /// The sequence number the next [`Self::read_next`] returns.
    pub fn position(&self) -> u64 {
        self.seq
    }

    /// The next notification, or `None` when the reader has caught up with
    /// the appends. Blocking (file reads, normally from the page cache).
    ///
    /// # Errors
    /// [`SinkError::Io`] or [`SinkError::OutboxCorrupt`]; the position does
    /// not move, so a retry reads the same record again.
    pub fn read_next(&mut self) -> Result<Option<Notification>> {
        if self.seq >= self.outbox.next_seq() {
            return Ok(None);
        }
        let base = {
            let segments = self
                .outbox
                .segments
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let first = segments.first().copied().unwrap_or(0);
            if self.seq < first {
                warn!(
                    seq = self.seq,
                    first_seq = first,
                    "outbox reader behind the oldest segment; skipping ahead"
                );
                self.seq = first;
                self.open = None;
            }
            let i = segments.partition_point(|&b| b <= self.seq);
            segments[i.saturating_sub(1)]
        };
        let path = segment_path(&self.outbox.dir, base);
        let result = self.read_at(base, &path);
        if result.is_err() {
            // Reopen and re-position on the next try.
            self.open = None;
        }
        result
    }

    fn read_at(&mut self, base: u64, path: &Path) -> Result<Option<Notification>> {
        let corrupt = |position: u64, reason: String| SinkError::OutboxCorrupt {
            path: path.to_owned(),
            position,
            reason,
        };
        if self.open.as_ref().map(|(b, _)| *b) != Some(base) {
            let file = File::open(path).map_err(io_at(path))?;
            let mut reader = BufReader::with_capacity(64 * 1024, file);
            // Skip to record `seq` by headers only.
            for _ in base..self.seq {
                let mut header = [0u8; 8];
                let n = read_full(&mut reader, &mut header).map_err(io_at(path))?;
                if n != 8 {
                    return Err(corrupt(0, "segment shorter than its records".to_owned()));
                }
                let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
                reader.seek_relative(i64::from(len)).map_err(io_at(path))?;
            }
            self.open = Some((base, reader));
        }
        let Some((_, reader)) = self.open.as_mut() else {
            return Ok(None);
        };
        let position = reader.stream_position().map_err(io_at(path))?;
        match read_record(reader, self.seq) {
            Ok(Some((n, _))) => {
                self.seq += 1;
                Ok(Some(n))
            }
            // Only records below next_seq are read, and those are complete.
            Ok(None) => Err(corrupt(
                position,
                "record missing at end of segment".to_owned(),
            )),
            Err(reason) => Err(corrupt(position, reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> OutboxConfig {
        OutboxConfig::default()
    }

    fn body(i: usize) -> Vec<u8> {
        format!(r#"{{"alert_id":{i},"rule":"r{}"}}"#, i % 2).into_bytes()
    }

    fn read_all(outbox: &Arc<Outbox>, from: u64) -> Vec<Notification> {
        let mut r = outbox.reader(from);
        let mut out = Vec::new();
        while let Some(n) = r.read_next().unwrap() {
            out.push(n);
        }
        out
    }

    #[test]
    fn append_then_reopen_reads_everything_back() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = Arc::new(Outbox::open(dir.path(), opts()).unwrap());
            for i in 0..10 {
                assert!(outbox.append(&format!("raised:{i}"), &body(i)).unwrap());
            }
            assert_eq!(outbox.next_seq(), 10);
        }
        let outbox = Arc::new(Outbox::open(dir.path(), opts()).unwrap());
        assert_eq!(outbox.next_seq(), 10);
        let all = read_all(&outbox, 0);
        assert_eq!(all.len(), 10);
        for (i, n) in all.iter().enumerate() {
            assert_eq!(n.seq, i as u64);
            assert_eq!(n.id, format!("raised:{i}"));
            assert_eq!(n.body, body(i));
            assert_eq!(
                n.rule.as_deref(),
                Some(if i.is_multiple_of(2) { "r0" } else { "r1" })
            );
        }
        // From the middle.
        assert_eq!(read_all(&outbox, 7)[0].id, "raised:7");
    }

    #[test]
    fn a_torn_tail_is_truncated_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = Outbox::open(dir.path(), opts()).unwrap();
            for i in 0..3 {
                outbox.append(&format!("raised:{i}"), &body(i)).unwrap();
            }
        }
        let seg = segment_path(dir.path(), 0);
        let good_len = fs::metadata(&seg).unwrap().len();
        // A record cut by a crash: a header promising more than is there.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"'])
            .unwrap();
        drop(f);

        let outbox = Arc::new(Outbox::open(dir.path(), opts()).unwrap());
        assert_eq!(outbox.next_seq(), 3);
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
        assert!(outbox.append("raised:3", &body(3)).unwrap());
        let ids: Vec<_> = read_all(&outbox, 0).into_iter().map(|n| n.id).collect();
        assert_eq!(ids, ["raised:0", "raised:1", "raised:2", "raised:3"]);
    }

    #[test]
    fn a_bad_crc_at_the_tail_is_truncated_too() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = Outbox::open(dir.path(), opts()).unwrap();
            for i in 0..2 {
                outbox.append(&format!("raised:{i}"), &body(i)).unwrap();
            }
        }
        let seg = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let outbox = Outbox::open(dir.path(), opts()).unwrap();
        assert_eq!(outbox.next_seq(), 1);
    }

    #[test]
    fn damage_before_the_last_segment_is_an_error_not_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let small = OutboxConfig {
            segment_bytes: 200,
            dedup_window: 100,
        };
        {
            let outbox = Outbox::open(dir.path(), small).unwrap();
            for i in 0..10 {
                outbox.append(&format!("raised:{i}"), &body(i)).unwrap();
            }
            assert!(outbox.segment_count() > 2);
        }
        let seg = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[20] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        assert!(matches!(
            Outbox::open(dir.path(), small),
            Err(SinkError::OutboxCorrupt { .. })
        ));
    }

    #[test]
    fn a_duplicate_id_is_a_no_op_also_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = Outbox::open(dir.path(), opts()).unwrap();
            assert!(outbox.append("raised:1", &body(1)).unwrap());
            assert!(!outbox.append("raised:1", &body(1)).unwrap());
            assert_eq!(outbox.next_seq(), 1);
        }
        let outbox = Outbox::open(dir.path(), opts()).unwrap();
        assert!(!outbox.append("raised:1", &body(1)).unwrap());
        assert!(outbox.append("raised:2", &body(2)).unwrap());
        assert_eq!(outbox.next_seq(), 2);
    }

    #[test]
    fn bad_notifications_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), opts()).unwrap();
        for (id, body) in [
            ("", &br#"{}"#[..]),
            ("has space", br#"{}"#),
            ("ok", b"not json"),
            ("ok", b"[1,2]"),
        ] {
            assert!(matches!(
                outbox.append(id, body),
                Err(SinkError::NotificationInvalid { .. })
            ));
        }
        assert_eq!(outbox.next_seq(), 0);
    }

    #[test]
    fn cursors_persist_and_new_webhooks_start_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = Outbox::open(dir.path(), opts()).unwrap();
            assert_eq!(outbox.open_cursor("early").unwrap(), 0);
            for i in 0..5 {
                outbox.append(&format!("raised:{i}"), &body(i)).unwrap();
            }
            outbox.commit_cursor("early", 3).unwrap();
        }
        let outbox = Outbox::open(dir.path(), opts()).unwrap();
        assert_eq!(outbox.open_cursor("early").unwrap(), 3);
        assert_eq!(outbox.open_cursor("late").unwrap(), 5);
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join(CURSOR_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| n.ends_with(".json")), "{names:?}");
    }

    #[test]
    fn a_cursor_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), opts()).unwrap();
        outbox.commit_cursor("w", 7).unwrap();
        assert!(matches!(
            outbox.open_cursor("w"),
            Err(SinkError::CursorInvalid { .. })
        ));
    }

    #[test]
    fn a_second_outbox_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Outbox::open(dir.path(), opts()).unwrap();
        assert!(matches!(
            Outbox::open(dir.path(), opts()),
            Err(SinkError::OutboxLocked { .. })
        ));
    }

    #[test]
    fn delivered_segments_older_than_the_window_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let small = OutboxConfig {
            segment_bytes: 200,
            dedup_window: 5,
        };
        let outbox = Arc::new(Outbox::open(dir.path(), small).unwrap());
        assert_eq!(outbox.open_cursor("w").unwrap(), 0);
        for i in 0..40 {
            outbox.append(&format!("raised:{i}"), &body(i)).unwrap();
        }
        let before = outbox.segment_count();
        assert!(before > 5, "{before} segments");
        // Nothing delivered: nothing deleted, everything readable.
        assert_eq!(outbox.first_seq(), 0);
        assert_eq!(read_all(&outbox, 0).len(), 40);

        outbox.commit_cursor("w", 40).unwrap();
        let first = outbox.first_seq();
        assert!(first > 0 && first <= 35, "first_seq {first}");
        assert!(outbox.segment_count() < before);
        // The window (last 5 ids) is still known, also after reopen.
        drop(outbox);
        let outbox = Arc::new(Outbox::open(dir.path(), small).unwrap());
        assert_eq!(outbox.first_seq(), first);
        assert_eq!(outbox.next_seq(), 40);
        for i in 35..40 {
            assert!(!outbox.append(&format!("raised:{i}"), &body(i)).unwrap());
        }
        let ids: Vec<_> = read_all(&outbox, first).into_iter().map(|n| n.id).collect();
        assert_eq!(ids.last().map(String::as_str), Some("raised:39"));
        // A cursor older than what is kept moves up to the oldest record.
        outbox.commit_cursor("stale", 0).unwrap();
        assert_eq!(outbox.open_cursor("stale").unwrap(), first);
    }

    #[test]
    fn the_dedup_window_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let small = OutboxConfig {
            segment_bytes: DEFAULT_SEGMENT,
            dedup_window: 3,
        };
        let outbox = Outbox::open(dir.path(), small).unwrap();
        for i in 0..10 {
            outbox.append(&format!("raised:{i}"), &body(i)).unwrap();
        }
        assert_eq!(lock(&outbox.writer).ids.len(), 3);
        assert!(!outbox.append("raised:9", &body(9)).unwrap());
        // Outside the window: forgotten, appended again (documented).
        assert!(outbox.append("raised:0", &body(0)).unwrap());
    }

    const DEFAULT_SEGMENT: u64 = super::super::config::DEFAULT_SEGMENT_BYTES;

    #[test]
    fn appends_wake_subscribers() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), opts()).unwrap();
        let mut rx = outbox.subscribe();
        assert!(!rx.has_changed().unwrap());
        outbox.append("a", b"{}").unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
        outbox.append("a", b"{}").unwrap();
        assert!(!rx.has_changed().unwrap(), "a duplicate wakes no one");
    }
}
