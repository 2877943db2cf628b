//! The PIPL audit log: who did what, when, to which member.
//!
//! Every access to personal member data (read, ledger, list, export, erase)
//! and every change of configuration or rules is appended to
//! `<dir>/audit.ndjson`, one JSON object per line:
//!
//! ```json
//! {"seq":7,"at":"2026-11-25T01:02:03.456Z","actor":"crm","action":"member.read","member":"M-1001","detail":{"fields":["profile"]},"prev":"9f…","hash":"3c…"}
//! ```
//!
//! - `seq` counts from 1; `at` is the UTC wall clock (RFC 3339, ms);
//! - `actor` is the API key's name, or `system` for the service itself;
//! - `action` is one of the [`action`] names; `member` is the member id or
//!   `null`; `detail` is free JSON;
//! - `prev` is the hex SHA-256 of the previous line (without its newline),
//!   `""` for the first record;
//! - `hash` is the hex SHA-256 of `prev` (its 64 ASCII hex characters)
//!   followed by the line as written without its `hash` member, i.e. the
//!   line with the final `,"hash":"<64 hex>"}` replaced by `}`.
//!
//! So the records form a hash chain: editing a past line breaks its `hash`,
//! deleting or re-ordering lines breaks the next line's `prev` and the `seq`
//! sequence, and [`verify`] names the first broken record. Limits: a chain
//! without a secret or an outside anchor cannot detect someone who rewrites
//! the whole tail from the edit on, or who cuts off the newest lines. To make
//! both visible, [`AuditLog::open`] logs the number of records and the head
//! hash at info level; keep those logs elsewhere (they hold no personal
//! data).
//!
//! The log is append-only: this module has no way to edit or delete a
//! record, and the read side ([`AuditLog::recent`], for `GET /v1/audit`) is
//! read-only. The one exception is at [`AuditLog::open`]: an incomplete last
//! line (a crash in the middle of a write, which was therefore never
//! acknowledged) is cut off, with a warning.
//!
//! Durability: [`AuditLog::append`] returns only after `write` and
//! `sync_data` of the line, so a record that was acknowledged survives a
//! crash. A handler must not do what it audits if the append fails (the log
//! fails closed). fsync per record costs what the disk's flush costs: on the
//! development VM (ext4 on a virtual disk) the `appends_then_reopen_continues`
//! test measured about 4 ms per record, and appends are serialised by a
//! mutex, so one log takes roughly 250 audited requests per second (a local
//! NVMe SSD does much better). If that becomes too slow, group commit (one
//! fsync for the records of concurrent requests) is the next step. The file
//! is not rotated, and [`AuditLog::open`] verifies the whole chain (SHA-256
//! of every line, a few seconds per GB). One process writes a file: `open`
//! takes an exclusive lock on it ([`AuditError::Locked`] otherwise), so
//! several API processes need one directory each.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use storepulse_core::RetryHint;

/// The file name inside the audit directory.
pub const FILE_NAME: &str = "audit.ndjson";

/// The actor of records the service writes itself.
pub const SYSTEM_ACTOR: &str = "system";

/// How many chain breaks a [`VerifyReport`] lists at most.
pub const MAX_REPORTED_BREAKS: usize = 100;

/// Action names. Others may be used; these are the ones the API writes.
pub mod action {
    /// A member's profile was read.
    pub const MEMBER_READ: &str = "member.read";
    /// A member's points ledger was read.
    pub const MEMBER_LEDGER: &str = "member.ledger";
    /// A list of members was read (`member` is `null`; `detail` says the query).
    pub const MEMBER_LIST: &str = "member.list";
    /// A member's data was exported.
    pub const MEMBER_EXPORT: &str = "member.export";
    /// A member was erased (written before the erasure is submitted).
    pub const MEMBER_ERASE: &str = "member.erase";
    /// An erasure recorded as [`MEMBER_ERASE`] could not be confirmed as
    /// applied (`detail.reason` says why; it may still apply, or may not
    /// have been submitted).
    pub const MEMBER_ERASE_UNCONFIRMED: &str = "member.erase_unconfirmed";
    /// A request for personal member data was refused: a missing role
    /// (403), or a member or store outside the key's store scope. `detail`
    /// has the method, the path (with the query) and the reason.
    pub const MEMBER_DENIED: &str = "member.denied";
    /// The configuration differs from the one last recorded (see
    /// [`super::AuditLog::record_config`]).
    pub const CONFIG_CHANGE: &str = "config.change";
    /// Tag or risk rules were changed.
    pub const RULES_CHANGE: &str = "rules.change";
    /// A candidate rule set was run over the stored events.
    pub const RULES_BACKTEST: &str = "rules.backtest";
    /// A dashboard user logged in (`actor` is the user).
    pub const USER_LOGIN: &str = "user.login";
    /// A login was refused (`actor` is `anonymous`; `detail.name` is the
    /// name tried, `detail.reason` why).
    pub const USER_LOGIN_FAILED: &str = "user.login_failed";
    /// A dashboard user logged out.
    pub const USER_LOGOUT: &str = "user.logout";
}

/// What redacted secrets are replaced with in `config.change` records.
const REDACTED: &str = "[redacted]";

/// Config keys whose values are never written to the audit log (lower-case
/// substrings of the key), e.g. `kafka.client."sasl.password"`.
const SECRET_MARKERS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "private",
    "ssl.key",
    "keystore",
    "oauthbearer.config",
];

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The audit file could not be opened, read, written or synced.
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded (a programming error).
    #[error("audit log: cannot encode a record: {0}")]
    Encode(String),
    /// An argument of [`AuditLog::append`] is not acceptable.
    #[error("audit log: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// Another process has the audit file open (one writer per file).
    #[error("audit log {path}: in use by another process")]
    Locked { path: PathBuf },
    /// The blocking task of an async call failed (panicked or was cancelled).
    #[error("audit log: background task failed: {0}")]
    Task(String),
}

impl AuditError {
    /// Whether retrying may help.
    pub fn retry_hint(&self) -> RetryHint {
        match self {
            AuditError::Io { .. } | AuditError::Locked { .. } | AuditError::Task(_) => {
                RetryHint::Backoff
            }
            AuditError::Encode(_) | AuditError::Invalid { .. } => RetryHint::Never,
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// 1, 2, 3, ... in file order.
    pub seq: u64,
    /// UTC wall-clock time of the append, RFC 3339 with milliseconds.
    pub at: String,
    /// The API key's name, or `system`.
    pub actor: String,
    /// What was done (see [`action`]).
    pub action: String,
    /// The member concerned, if one.
    pub member: Option<String>,
    /// Free-form detail (query, fields, counts, config).
    pub detail: Value,
    /// Hex SHA-256 of the previous line; `""` for the first record.
    pub prev: String,
    /// Hex SHA-256 of `prev` and this line without `hash` (see the module doc).
    pub hash: String,
}

/// The record as hashed: every field but `hash`, in file order.
#[derive(Serialize)]
struct RecordBody<'a> {
    seq: u64,
    at: &'a str,
    actor: &'a str,
    action: &'a str,
    member: Option<&'a str>,
    detail: &'a Value,
    prev: &'a str,
}

/// One place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// Line number in the file (1-based).
    pub line: u64,
    /// The record's `seq` (the expected one if the line cannot be read).
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// The result of checking a whole audit file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Complete lines in the file.
    pub records: u64,
    /// The first [`MAX_REPORTED_BREAKS`] breaks, in file order.
    pub breaks: Vec<ChainBreak>,
    /// Bytes after the last newline (a write in progress, or a torn write).
    pub torn_tail_bytes: u64,
}

impl VerifyReport {
    /// Whether every line is where the chain says it should be.
    pub fn is_intact(&self) -> bool {
        self.breaks.is_empty()
    }

    /// The `seq` of the first broken record, if any.
    pub fn first_broken_seq(&self) -> Option<u64> {
        self.breaks.first().map(|b| b.seq)
    }
}

/// Checks the whole chain of `<dir>/audit.ndjson`.
///
/// An incomplete last line is not a break (it may be a write in progress);
/// it is counted in `torn_tail_bytes`.
///
/// # Errors
/// The file cannot be opened or read.
pub fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    scan(&dir.join(FILE_NAME)).map(|s| s.report)
}

/// The append-only audit log of one process. Cheap to clone; thread-safe.
#[derive(Debug, Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: File,
    /// Bytes of complete, acknowledged lines.
    len: u64,
    next_seq: u64,
    /// Hex SHA-256 of the last line.
    prev: String,
    /// A write failed: re-read the file before the next append.
    needs_rescan: bool,
}

impl AuditLog {
    /// Opens (or creates) `<dir>/audit.ndjson` and continues its chain.
    ///
    /// The whole chain is verified. A broken chain does not stop the service
    /// (an operator must still be able to run it) but is logged with
    /// `tracing::error!`; [`AuditLog::verify`] reports it. An incomplete last
    /// line is cut off with a warning.
    ///
    /// # Errors
    /// The directory or the file cannot be created, read or truncated.
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(FILE_NAME);
        let created = !path.exists();
        let file = open_append(&path)?;
        // One writer per file: a second process would fork the chain. The
        // lock goes with the file handle (released when the log is dropped).
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(AuditError::Locked { path }),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(AuditError::Io { path, source })
            }
        }
        if created {
            // Make the new directory entry durable too (best effort: some
            // file systems refuse to sync a directory).
            if let Err(error) = File::open(dir).and_then(|d| d.sync_all()) {
                tracing::warn!(%error, dir = %dir.display(), "audit log: cannot sync the directory");
            }
        }
        let state = State::load(&path, file)?;
        let log = Self {
            shared: Arc::new(Shared {
                path,
                state: Mutex::new(state),
            }),
        };
        Ok(log)
    }

    /// The audit file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Appends a record and makes it durable (`sync_data`) before returning.
    ///
    /// Blocking (a disk flush): from async code use [`AuditLog::append_async`].
    ///
    /// # Errors
    /// An empty `actor` or `action`; the write or the sync failed (then the
    /// record is not in the log and the audited operation must not be done).
    pub fn append(
        &self,
        actor: &str,
        action: &str,
        member: Option<&str>,
        detail: Value,
    ) -> Result<AuditRecord, AuditError> {
        check_name("actor", actor)?;
        check_name("action", action)?;
        let mut state = self.lock();
        if state.needs_rescan {
            state.rescan(&self.shared.path)?;
        }
        let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let body = RecordBody {
            seq: state.next_seq,
            at: &at,
            actor,
            action,
            member,
            detail: &detail,
            prev: &state.prev,
        };
        let body_json =
            serde_json::to_string(&body).map_err(|e| AuditError::Encode(e.to_string()))?;
        let open = body_json
            .strip_suffix('}')
            .ok_or_else(|| AuditError::Encode("a record is not a JSON object".into()))?;
        let hash = record_hash(&state.prev, body_json.as_bytes());
        let line = format!("{open},\"hash\":\"{hash}\"}}\n");
        let written = state
            .file
            .write_all(line.as_bytes())
            .and_then(|()| state.file.sync_data());
        if let Err(source) = written {
            // Take the line back if we can, and re-read the file before the
            // next append either way (the disk state is not known).
            if let Err(error) = state.file.set_len(state.len) {
                tracing::error!(%error, "audit log: cannot remove a failed write");
            }
            state.needs_rescan = true;
            return Err(AuditError::Io {
                path: self.shared.path.clone(),
                source,
            });
        }
        let record = AuditRecord {
            seq: state.next_seq,
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            member: member.map(str::to_owned),
            detail,
            prev: std::mem::take(&mut state.prev),
            hash,
        };
        state.len += line.len() as u64;
        state.next_seq = state.next_seq.saturating_add(1);
        state.prev = sha256_hex(line.trim_end_matches('\n').as_bytes());
        Ok(record)
    }

    /// [`AuditLog::append`] on tokio's blocking pool, for async handlers.
    ///
    /// # Errors
    /// As [`AuditLog::append`], or [`AuditError::Task`] if the task failed.
    ///
    /// # Panics
    /// If called outside a tokio runtime.
    pub async fn append_async(
        &self,
        actor: impl Into<String>,
        action: impl Into<String>,
        member: Option<String>,
        detail: Value,
    ) -> Result<AuditRecord, AuditError> {
        let log = self.clone();
        let (actor, action) = (actor.into(), action.into());
        tokio::task::spawn_blocking(move || log.append(&actor, &action, member.as_deref(), detail))
            .await
            .map_err(|e| AuditError::Task(e.to_string()))?
    }

    /// Re-checks the chain of this log's file (as [`verify`]).
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        scan(&self.shared.path).map(|s| s.report)
    }

    /// The newest records, newest first, at most `limit`; only those about
    /// `member` if given. Lines that cannot be read are skipped (and
    /// [`verify`] reports them).
    ///
    /// Reads the file backwards from its end, so the cost grows with how far
    /// back the matches are, up to the whole file for a rare member.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn recent(
        &self,
        limit: usize,
        member: Option<&str>,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let end = self.lock().len;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        read_backwards(&self.shared.path, end, |line| {
            match serde_json::from_slice::<AuditRecord>(line) {
                Ok(record) if member.is_none_or(|m| record.member.as_deref() == Some(m)) => {
                    out.push(record);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "audit log: skipping an unreadable line"),
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Records the configuration in use at start-up, if it differs from the
    /// one last recorded.
    ///
    /// Appends a `config.change` record by `system` with detail
    /// `{"config": <config>, "changed": [dotted keys]}` when there is no
    /// earlier `config.change` record or its config differs; the dotted keys
    /// name what differs (`inventory.velocity_days`, `access.keys[1].roles`,
    /// `kafka.client."sasl.password"`; for the first record, the top-level
    /// sections). Values of secret-looking keys (password, secret, token,
    /// private key, ...) are replaced with `"[redacted]"` before comparing
    /// and storing, so a change of only such a value is not recorded.
    ///
    /// # Errors
    /// Reading or appending failed.
    pub fn record_config(&self, config_json: &Value) -> Result<Option<AuditRecord>, AuditError> {
        let config = redact(config_json);
        let end = self.lock().len;
        let mut last = None;
        read_backwards(
            &self.shared.path,
            end,
            |line| match serde_json::from_slice::<AuditRecord>(line) {
                Ok(record) if record.action == action::CONFIG_CHANGE => {
                    last = Some(record);
                    false
                }
                _ => true,
            },
        )?;
        let previous = last
            .and_then(|mut r| r.detail.get_mut("config").map(Value::take))
            .unwrap_or_else(|| Value::Object(Map::new()));
        if previous == config {
            return Ok(None);
        }
        let mut changed = Vec::new();
        diff_paths(&previous, &config, &mut String::new(), &mut changed);
        let detail = json!({ "config": config, "changed": changed });
        self.append(SYSTEM_ACTOR, action::CONFIG_CHANGE, None, detail)
            .map(Some)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.shared.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                // A thread panicked while appending: the state may be behind
                // the file, so re-read it before the next append.
                self.shared.state.clear_poison();
                let mut guard = poisoned.into_inner();
                guard.needs_rescan = true;
                guard
            }
        }
    }
}

impl State {
    /// Reads the chain of `path`, cuts off a torn last line, and positions
    /// the next append after the last complete line.
    fn load(path: &Path, file: File) -> Result<Self, AuditError> {
        let scanned = scan(path)?;
        if scanned.report.torn_tail_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                bytes = scanned.report.torn_tail_bytes,
                "audit log: cut off an incomplete last line (a write interrupted before it was acknowledged)"
            );
            file.set_len(scanned.complete_len)
                .map_err(|source| AuditError::Io {
                    path: path.to_owned(),
                    source,
                })?;
        }
        let report = &scanned.report;
        if let Some(first) = report.breaks.first() {
            tracing::error!(
                path = %path.display(),
                records = report.records,
                breaks = report.breaks.len(),
                first_broken_seq = first.seq,
                first_broken_line = first.line,
                reason = %first.reason,
                "audit log: the hash chain is broken (records were edited, deleted or re-ordered)"
            );
        }
        tracing::info!(
            path = %path.display(),
            records = report.records,
            head = %scanned.prev,
            "audit log opened"
        );
        Ok(Self {
            file,
            len: scanned.complete_len,
            next_seq: scanned.next_seq,
            prev: scanned.prev,
            needs_rescan: false,
        })
    }

    fn rescan(&mut self, path: &Path) -> Result<(), AuditError> {
        // A clone shares the open file and its lock.
        let file = self.file.try_clone().map_err(|source| AuditError::Io {
            path: path.to_owned(),
            source,
        })?;
        *self = Self::load(path, file)?;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        // The log names members: readable by the service's user only.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })
}

fn check_name(field: &'static str, value: &str) -> Result<(), AuditError> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(AuditError::Invalid {
            field,
            reason: "must be non-empty, without control characters".into(),
        });
    }
    Ok(())
}

/// What a scan of the file found.
struct Scan {
    report: VerifyReport,
    /// Bytes up to and including the last newline.
    complete_len: u64,
    next_seq: u64,
    prev: String,
}

/// Reads every complete line and checks the chain.
fn scan(path: &Path) -> Result<Scan, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut scan = Scan {
        report: VerifyReport::default(),
        complete_len: 0,
        next_seq: 1,
        prev: String::new(),
    };
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        let Some(line) = buf.strip_suffix(b"\n") else {
            scan.report.torn_tail_bytes = n as u64;
            break;
        };
        scan.report.records += 1;
        scan.complete_len += n as u64;
        let (seq, result) = check_line(line, scan.next_seq, &scan.prev);
        if let Err(reason) = result {
            if scan.report.breaks.len() < MAX_REPORTED_BREAKS {
                scan.report.breaks.push(ChainBreak {
                    line: scan.report.records,
                    seq,
                    reason,
                });
            }
        }
        // Continue from what the line says, so one deletion or edit is one
        // break (plus the next line's `prev`), not a break on every later line.
        scan.next_seq = seq.saturating_add(1);
        scan.prev = sha256_hex(line);
    }
    Ok(scan)
}

/// The `,"hash":"<64 hex>"}` at the end of every line.
const HASH_SUFFIX_LEN: usize = ",\"hash\":\"\"}".len() + 64;

/// Checks one line against the expected `seq` and `prev`. Returns the
/// line's seq (or the expected one if unreadable) and the verdict.
fn check_line(line: &[u8], expected_seq: u64, expected_prev: &str) -> (u64, Result<(), String>) {
    let record: AuditRecord = match serde_json::from_slice(line) {
        Ok(record) => record,
        Err(e) => return (expected_seq, Err(format!("not an audit record: {e}"))),
    };
    let seq = record.seq;
    if seq != expected_seq {
        return (
            seq,
            Err(format!(
                "seq {seq} where {expected_seq} was expected (records missing or re-ordered)"
            )),
        );
    }
    if record.prev != expected_prev {
        return (seq, Err("prev is not the hash of the previous line".into()));
    }
    let suffix_at = line.len().saturating_sub(HASH_SUFFIX_LEN);
    let (open, suffix) = line.split_at(suffix_at);
    let expected_suffix = format!(",\"hash\":\"{}\"}}", record.hash);
    if suffix != expected_suffix.as_bytes() {
        return (seq, Err("hash is not the last member of the line".into()));
    }
    let mut body = open.to_vec();
    body.push(b'}');
    if record_hash(&record.prev, &body) != record.hash {
        return (
            seq,
            Err("hash does not match the record (the line was edited)".into()),
        );
    }
    (seq, Ok(()))
}

/// Calls `visit` with each complete line of `path[..end]`, last line first,
/// until it returns `false`.
fn read_backwards(
    path: &Path,
    end: u64,
    mut visit: impl FnMut(&[u8]) -> bool,
) -> Result<(), AuditError> {
    const CHUNK: u64 = 64 * 1024;
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    // `pending` holds bytes [start, end) not yet visited, without the final
    // newline; its first line may begin before `start`.
    let mut start = end;
    let mut pending: Vec<u8> = Vec::new();
    let mut trimmed = false;
    loop {
        if let Some(newline) = pending.iter().rposition(|&b| b == b'\n') {
            if !visit(&pending[newline + 1..]) {
                return Ok(());
            }
            pending.truncate(newline);
            continue;
        }
        if start == 0 {
            if !pending.is_empty() {
                visit(&pending);
            }
            return Ok(());
        }
        let from = start.saturating_sub(CHUNK);
        // `start - from` is at most CHUNK, so it fits in usize.
        let mut chunk = vec![0u8; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from)).map_err(io)?;
        file.read_exact(&mut chunk).map_err(io)?;
        if !trimmed {
            // `end` is just after a newline: drop it so the last line is whole.
            if chunk.last() == Some(&b'\n') {
                chunk.pop();
            }
            trimmed = true;
        }
        chunk.extend_from_slice(&pending);
        pending = chunk;
        start = from;
    }
}

/// `hash` of a record: SHA-256 over `prev` then the line without `hash`.
fn record_hash(prev: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(body);
    hex(&hasher.finalize())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// A copy of `value` with the values of secret-looking keys replaced.
fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    let secret = SECRET_MARKERS.iter().any(|m| lower.contains(m));
                    let v = if secret && !v.is_null() {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// Appends to `out` the dotted paths where `old` and `new` differ. Objects
/// are compared key by key, arrays of equal length item by item; anything
/// else that differs is named as a whole.
fn diff_paths(old: &Value, new: &Value, path: &mut String, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    let len = path.len();
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                if !path.is_empty() {
                    path.push('.');
                }
                push_key(path, key);
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff_paths(x, y, path, out),
                    _ => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                path.push_str(&format!("[{i}]"));
                diff_paths(x, y, path, out);
                path.truncate(len);
            }
        }
        _ => out.push(if path.is_empty() {
            "(root)".to_owned()
        } else {
            path.clone()
        }),
    }
}

/// A key as TOML writes it: bare if it can be, else quoted.
fn push_key(path: &mut String, key: &str) {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        path.push_str(key);
    } else {
        path.push_str(&Value::String(key.to_owned()).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn read_file(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(FILE_NAME)).unwrap()
    }

    #[test]
    fn appends_then_reopen_continues() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let first = log
            .append(
                "crm",
                action::MEMBER_READ,
                Some("M-1001"),
                json!({"fields": ["profile"]}),
            )
            .unwrap();
        assert_eq!((first.seq, first.prev.as_str()), (1, ""));
        assert!(
            first.at.ends_with('Z') && first.at.len() == 24,
            "{}",
            first.at
        );
        let second = log
            .append("crm", action::MEMBER_LIST, None, json!("top spenders"))
            .unwrap();
        assert_eq!(second.seq, 2);
        let text = read_file(dir.path());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(second.prev, sha256_hex(lines[0].as_bytes()));
        // A line is exactly the record, fields in the documented order.
        let parsed: AuditRecord = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(parsed, first);
        assert!(lines[1].starts_with(r#"{"seq":2,"at":""#), "{}", lines[1]);
        assert!(lines[1].contains(r#""member":null,"detail":"top spenders","prev":""#));
        drop(log);

        let log = AuditLog::open(dir.path()).unwrap();
        let third = log
            .append(
                "privacy-desk",
                action::MEMBER_ERASE,
                Some("M-1002"),
                json!({}),
            )
            .unwrap();
        assert_eq!(third.seq, 3);
        assert_eq!(third.prev, sha256_hex(lines[1].as_bytes()));
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.records, 3);
        assert!(report.is_intact(), "{report:?}");

        // Cost note for the module doc (no assertion on time): fsync per record.
        let started = Instant::now();
        const N: u32 = 50;
        for i in 0..N {
            log.append(
                "crm",
                action::MEMBER_READ,
                Some(&format!("M-{i}")),
                Value::Null,
            )
            .unwrap();
        }
        eprintln!(
            "audit append + sync_data: {:?} per record",
            started.elapsed() / N
        );
        assert!(log.verify().unwrap().is_intact());
        assert_eq!(log.verify().unwrap().records, 3 + u64::from(N));
    }

    #[test]
    fn editing_a_member_id_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for member in ["M-1001", "M-1002", "M-1003"] {
            log.append("crm", action::MEMBER_READ, Some(member), Value::Null)
                .unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let text = read_file(dir.path());
        std::fs::write(&path, text.replace("M-1002", "M-9999")).unwrap();

        let report = verify(dir.path()).unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(report.first_broken_seq(), Some(2));
        assert!(report.breaks[0].reason.contains("edited"), "{report:?}");
        // The next line's `prev` no longer matches either.
        assert_eq!(report.breaks.len(), 2);
        assert_eq!(report.breaks[1].seq, 3);
        assert!(report.breaks[1].reason.contains("prev"), "{report:?}");
        drop(log);

        // The log still opens (an operator must be able to run), continues
        // after the last line, and keeps reporting the break.
        let log = AuditLog::open(dir.path()).unwrap();
        let next = log
            .append("crm", action::MEMBER_READ, Some("M-1004"), Value::Null)
            .unwrap();
        assert_eq!(next.seq, 4);
        assert_eq!(log.verify().unwrap().first_broken_seq(), Some(2));
    }

    #[test]
    fn deleting_or_rehashing_a_line_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for member in ["M-1", "M-2", "M-3"] {
            log.append("crm", action::MEMBER_EXPORT, Some(member), Value::Null)
                .unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let text = read_file(dir.path());
        let lines: Vec<&str> = text.lines().collect();

        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.first_broken_seq(), Some(3));
        assert_eq!(report.breaks.len(), 1, "{report:?}");
        assert!(report.breaks[0].reason.contains("missing"), "{report:?}");

        // Editing a line and recomputing its own hash still breaks the next `prev`.
        let mut record: AuditRecord = serde_json::from_str(lines[1]).unwrap();
        record.member = Some("M-X".into());
        let body = RecordBody {
            seq: record.seq,
            at: &record.at,
            actor: &record.actor,
            action: &record.action,
            member: record.member.as_deref(),
            detail: &record.detail,
            prev: &record.prev,
        };
        record.hash = record_hash(
            &record.prev,
            serde_json::to_string(&body).unwrap().as_bytes(),
        );
        let forged = serde_json::to_string(&record).unwrap();
        std::fs::write(&path, format!("{}\n{forged}\n{}\n", lines[0], lines[2])).unwrap();
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.first_broken_seq(), Some(3), "{report:?}");
        assert!(report.breaks[0].reason.contains("prev"));
    }

    #[test]
    fn a_torn_last_line_is_cut_off_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append("crm", action::MEMBER_READ, Some("M-1"), Value::Null)
            .unwrap();
        drop(log);
        let path = dir.path().join(FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":2,"at":"2026-"#).unwrap();
        drop(file);
        let report = verify(dir.path()).unwrap();
        assert!(
            report.is_intact() && report.torn_tail_bytes > 0,
            "{report:?}"
        );

        let log = AuditLog::open(dir.path()).unwrap();
        let record = log
            .append("crm", action::MEMBER_READ, Some("M-2"), Value::Null)
            .unwrap();
        assert_eq!(record.seq, 2);
        let report = verify(dir.path()).unwrap();
        assert_eq!((report.records, report.torn_tail_bytes), (2, 0));
        assert!(report.is_intact(), "{report:?}");
    }

    #[test]
    fn recent_is_newest_first_and_filters_by_member() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        assert!(log.recent(10, None).unwrap().is_empty());
        // Long details make lines span the 64 KiB read chunks.
        let big = "x".repeat(5000);
        for i in 1..=40u32 {
            let member = if i % 3 == 0 { "M-3" } else { "M-other" };
            log.append(
                "crm",
                action::MEMBER_READ,
                Some(member),
                json!({ "i": i, "pad": big }),
            )
            .unwrap();
        }
        let newest = log.recent(5, None).unwrap();
        let seqs: Vec<u64> = newest.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [40, 39, 38, 37, 36]);
        let all = log.recent(1000, None).unwrap();
        assert_eq!(all.len(), 40);
        assert_eq!(all.last().map(|r| r.seq), Some(1));
        let m3: Vec<u64> = log
            .recent(100, Some("M-3"))
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(m3, (1..=13).rev().map(|k| k * 3).collect::<Vec<u64>>());
        assert!(log.recent(0, None).unwrap().is_empty());
        assert!(log.recent(10, Some("M-none")).unwrap().is_empty());
    }

    #[test]
    fn record_config_writes_only_changes_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let config = json!({
            "http": {"listen": "127.0.0.1:8080"},
            "inventory": {"velocity_days": 14},
            "access": {"keys": [
                {"name": "hq", "sha256": "aa", "roles": ["hq"]},
                {"name": "crm", "sha256": "bb", "roles": ["member_data"]}
            ]},
            "kafka": {"client": {"sasl.password": "hunter2", "security.protocol": "SASL_SSL"}}
        });
        let first = log.record_config(&config).unwrap().unwrap();
        assert_eq!(
            (first.actor.as_str(), first.action.as_str()),
            ("system", "config.change")
        );
        assert_eq!(
            first.detail["changed"],
            json!(["access", "http", "inventory", "kafka"])
        );
        assert_eq!(
            first.detail["config"]["kafka"]["client"]["sasl.password"],
            "[redacted]"
        );
        assert_eq!(first.detail["config"]["access"]["keys"][0]["sha256"], "aa");
        assert!(!read_file(dir.path()).contains("hunter2"));

        // Same config (other records in between): nothing written.
        log.append("crm", action::MEMBER_READ, Some("M-1"), Value::Null)
            .unwrap();
        assert_eq!(log.record_config(&config).unwrap(), None);
        // A changed secret alone is not visible (it is redacted).
        let mut secret_only = config.clone();
        secret_only["kafka"]["client"]["sasl.password"] = json!("hunter3");
        assert_eq!(log.record_config(&secret_only).unwrap(), None);

        // After a restart, a changed config lists the dotted keys.
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        let mut changed = config.clone();
        changed["inventory"]["velocity_days"] = json!(28);
        changed["access"]["keys"][1]["roles"] = json!(["member_data", "privacy"]);
        changed["kafka"]["client"]["security.protocol"] = json!("SSL");
        changed["telemetry"] = json!({"level": "debug"});
        let record = log.record_config(&changed).unwrap().unwrap();
        assert_eq!(
            record.detail["changed"],
            json!([
                "access.keys[1].roles",
                "inventory.velocity_days",
                "kafka.client.\"security.protocol\"",
                "telemetry"
            ])
        );
        assert_eq!(record.seq, 3);
        assert_eq!(log.record_config(&changed).unwrap(), None);
        assert!(log.verify().unwrap().is_intact());
    }

    #[test]
    fn append_rejects_empty_names() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let err = log
            .append("", action::MEMBER_READ, None, Value::Null)
            .unwrap_err();
        assert!(
            matches!(err, AuditError::Invalid { field: "actor", .. }),
            "{err}"
        );
        assert_eq!(err.retry_hint(), RetryHint::Never);
        assert!(log.append("crm", "a\nb", None, Value::Null).is_err());
        assert_eq!(verify(dir.path()).unwrap().records, 0);
    }

    #[tokio::test]
    async fn append_async_from_concurrent_tasks_keeps_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append_async(
                    "crm",
                    action::MEMBER_READ,
                    Some(format!("M-{i}")),
                    Value::Null,
                )
                .await
            }));
        }
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.push(task.await.unwrap().unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
        let report = log.verify().unwrap();
        assert_eq!(report.records, 20);
        assert!(report.is_intact(), "{report:?}");
    }
}
