//! The decision log: every review decision, one JSON line each, fsynced
//! before the API answers (`data_dir/decisions/decisions.ndjson`).
//!
//! It is the record of who decided what and when (the review queue shows
//! the latest decision per alert; the log keeps all of them), and it is
//! loaded at start so decisions survive restarts. A torn last line (a
//! crash mid-write) is cut off at open; any other unreadable line is an
//! error naming its number, never skipped silently.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Result, RuntimeError};
use crate::review::Decision;

const FILE_NAME: &str = "decisions.ndjson";

/// An append-only, fsynced log of decisions.
#[derive(Debug)]
pub struct DecisionLog {
    path: PathBuf,
    file: Mutex<File>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::DecisionLog {
        path: path.to_owned(),
        reason: source.to_string(),
    }
}

impl DecisionLog {
    /// Opens (creating) the log in `dir` and reads every decision in it.
    ///
    /// # Errors
    /// I/O errors, or a damaged line before the last.
    pub fn open(dir: &Path) -> Result<(Self, Vec<Decision>)> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut decisions = Vec::new();
        let mut good_end: u64 = 0;
        let mut pending_error: Option<(usize, String)> = None;
        {
            let mut reader = BufReader::new(&mut file);
            let mut line = String::new();
            let mut number = 0usize;
            loop {
                line.clear();
                let n = reader.read_line(&mut line).map_err(io(&path))?;
                if n == 0 {
                    break;
                }
                number += 1;
                if let Some((bad, reason)) = pending_error.take() {
                    return Err(RuntimeError::DecisionLog {
                        path,
                        reason: format!("line {bad}: {reason}"),
                    });
                }
                let complete = line.ends_with('\n');
                match serde_json::from_str::<Decision>(line.trim_end()) {
                    Ok(d) if complete => {
                        decisions.push(d);
                        good_end += n as u64;
                    }
                    Ok(_) => pending_error = Some((number, "no newline".into())),
                    Err(e) => pending_error = Some((number, e.to_string())),
                }
            }
        }
        if pending_error.is_some() {
            // Only the last line is bad: a torn write. Cut it off.
            file.set_len(good_end).map_err(io(&path))?;
            file.sync_data().map_err(io(&path))?;
            tracing::warn!(path = %path.display(), "decision log: cut a torn last line");
        }
        file.seek(SeekFrom::End(0)).map_err(io(&path))?;
        Ok((
            Self {
                path,
                file: Mutex::new(file),
            },
            decisions,
        ))
    }

    /// Appends a decision and makes it durable before returning.
    ///
    /// # Errors
    /// The write or the fsync failed (the caller must not report success).
    pub fn append(&self, decision: &Decision) -> Result<()> {
        let mut line = serde_json::to_vec(decision).map_err(|e| RuntimeError::DecisionLog {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::Verdict;

    fn d(id: &str) -> Decision {
        Decision {
            alert_id: id.into(),
            decision: Verdict::ConfirmedFraud,
            comment: "两家店的监控都看过".into(),
            decided_by: "risk-1".into(),
            decided_at: 1_764_000_000_000_000_000,
        }
    }

    #[test]
    fn decisions_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, old) = DecisionLog::open(dir.path()).expect("open");
            assert!(old.is_empty());
            log.append(&d("a")).expect("append");
            log.append(&d("b")).expect("append");
        }
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(br#"{"alert_id":"c","deci"#).expect("write");
        drop(f);
        let (log, read) = DecisionLog::open(dir.path()).expect("reopen");
        assert_eq!(read, vec![d("a"), d("b")]);
        log.append(&d("c")).expect("append after cut");
        drop(log);
        let (_, read) = DecisionLog::open(dir.path()).expect("reopen");
        assert_eq!(read.len(), 3);
    }

    #[test]
    fn a_damaged_line_in_the_middle_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let good = serde_json::to_string(&d("a")).expect("json");
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).expect("write");
        let err = DecisionLog::open(dir.path()).expect_err("damaged");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
