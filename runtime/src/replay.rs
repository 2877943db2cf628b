//! Offline replay of an NDJSON event file with the same processors.
//!
//! For backfills, audits and rule backtests: `storepulse replay --input
//! events.ndjson --out DIR` writes `stock.csv` (`store_id,sku,on_hand`),
//! `alerts.ndjson`, `dlq.ndjson` (`{line, event_id, reason}`, `line`
//! 1-based) and `summary.json` (`{lines, accepted, duplicates, rejected}`).
//!
//! Parsing is embarrassingly parallel, applying is sequential in file
//! order: with `threads > 1`, worker threads parse chunks of lines and the
//! calling thread applies them in order as they come back (bounded
//! channel, so memory stays at a few chunks in flight). The file is read
//! whole into memory (a 1 M-event file is ~450 MB).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::Serialize;
use storepulse_core::{Event, EventParser, Rejection};
use storepulse_processors::inventory::{InventoryConfig, InventoryOutput, InventoryProcessor};
use storepulse_processors::{Outcome, Processor};

use crate::error::{Result, RuntimeError};

const CHUNK_LINES: usize = 4096;

/// Counts written to `summary.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    pub lines: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

#[derive(Serialize)]
struct DlqLine<'a> {
    line: u64,
    event_id: Option<&'a str>,
    reason: String,
}

/// Replays `input` into `out_dir` with `threads` parsing threads.
/// `progress` is called with the number of lines applied so far.
///
/// # Errors
/// When the input cannot be read or an output cannot be written.
pub fn replay(
    input: &Path,
    out_dir: &Path,
    parser: &EventParser,
    config: &InventoryConfig,
    threads: usize,
    mut progress: impl FnMut(u64, u64),
) -> Result<(ReplaySummary, InventoryProcessor)> {
    let data = std::fs::read(input).map_err(|source| RuntimeError::ReplayIo {
        path: input.to_owned(),
        source,
    })?;
    std::fs::create_dir_all(out_dir).map_err(|source| RuntimeError::ReplayIo {
        path: out_dir.to_owned(),
        source,
    })?;
    let lines = split_lines(&data);
    let total = lines.len() as u64;
    let out_io = |name: &str| {
        let path = out_dir.join(name);
        move |source| RuntimeError::ReplayIo { path: path.clone(), source }
    };
    let create = |name: &str| -> Result<BufWriter<std::fs::File>> {
        std::fs::File::create(out_dir.join(name))
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .map_err(out_io(name))
    };
    let mut alerts_out = create("alerts.ndjson")?;
    let mut dlq_out = create("dlq.ndjson")?;
    let mut inventory = InventoryProcessor::new(config.clone(), parser.stores().clone());
    let mut summary = ReplaySummary { lines: total, ..Default::default() };
    let mut outputs = Vec::new();

    let mut apply_chunk = |first_line: usize, parsed: Vec<Result<Event, Rejection>>| -> Result<()> {
        for (i, result) in parsed.into_iter().enumerate() {
            let line = (first_line + i + 1) as u64;
            let outcome = result.and_then(|event| inventory.apply(&event, &mut outputs));
            match outcome {
                Ok(Outcome::Duplicate) => summary.duplicates += 1,
                Ok(Outcome::Applied | Outcome::Ignored) => summary.accepted += 1,
                Err(rejection) => {
                    summary.rejected += 1;
                    let record = DlqLine {
                        line,
                        event_id: rejection.event_id.as_deref(),
                        reason: rejection.reason(),
                    };
                    serde_json::to_writer(&mut dlq_out, &record)
                        .map_err(std::io::Error::from)
                        .and_then(|()| dlq_out.write_all(b"\n"))
                        .map_err(out_io("dlq.ndjson"))?;
                }
            }
            for output in outputs.drain(..) {
                if let InventoryOutput::Alert(alert) = output {
                    serde_json::to_writer(&mut alerts_out, &alert)
                        .map_err(std::io::Error::from)
                        .and_then(|()| alerts_out.write_all(b"\n"))
                        .map_err(out_io("alerts.ndjson"))?;
                }
            }
        }
        progress((first_line + CHUNK_LINES).min(lines.len()) as u64, total);
        Ok(())
    };

    let chunks: Vec<&[&[u8]]> = lines.chunks(CHUNK_LINES).collect();
    if threads <= 1 {
        for (c, chunk) in chunks.iter().enumerate() {
            let parsed = chunk.iter().map(|l| parser.parse(l)).collect();
            apply_chunk(c * CHUNK_LINES, parsed)?;
        }
    } else {
        let next_chunk = AtomicUsize::new(0);
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = mpsc::sync_channel::<(usize, Vec<Result<Event, Rejection>>)>(threads * 4);
            for _ in 0..threads.saturating_sub(1).max(1) {
                let tx = tx.clone();
                let (chunks, next_chunk) = (&chunks, &next_chunk);
                scope.spawn(move || loop {
                    let c = next_chunk.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(c) else { break };
                    let parsed = chunk.iter().map(|l| parser.parse(l)).collect();
                    if tx.send((c, parsed)).is_err() {
                        break; // the applier stopped on an error
                    }
                });
            }
            drop(tx);
            let mut pending: BTreeMap<usize, Vec<Result<Event, Rejection>>> = BTreeMap::new();
            let mut want = 0;
            for (c, parsed) in rx {
                pending.insert(c, parsed);
                while let Some(parsed) = pending.remove(&want) {
                    apply_chunk(want * CHUNK_LINES, parsed)?;
                    want += 1;
                }
            }
            Ok(())
        })?;
    }
    alerts_out.flush().map_err(out_io("alerts.ndjson"))?;
    dlq_out.flush().map_err(out_io("dlq.ndjson"))?;

    let mut stock = create("stock.csv")?;
    let io = out_io("stock.csv");
    writeln!(stock, "store_id,sku,on_hand").map_err(&io)?;
    for (store_id, sku, on_hand) in inventory.all_stock() {
        writeln!(stock, "{},{},{on_hand}", csv_field(&store_id), csv_field(&sku)).map_err(&io)?;
    }
    stock.flush().map_err(io)?;
    let summary_json = serde_json::to_vec_pretty(&summary).map_err(|e| RuntimeError::ReplayIo {
        path: out_dir.join("summary.json"),
        source: e.into(),
    })?;
    std::fs::write(out_dir.join("summary.json"), summary_json).map_err(out_io("summary.json"))?;
    Ok((summary, inventory))
}

/// Quotes a CSV field when it needs it (SKUs are free-form ids).
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Splits NDJSON into lines: `\n` or `\r\n` endings; a final newline does
/// not start another line; every other line, empty or not, counts (an empty
/// line is rejected, not skipped).
pub fn split_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::with_capacity(data.len() / 256);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        lines.push(trim_cr(&data[start..end]));
        start = end + 1;
    }
    if start < data.len() {
        lines.push(trim_cr(&data[start..]));
    }
    lines
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_like_an_editor() {
        assert_eq!(split_lines(b"a\nb\n").len(), 2);
        assert_eq!(split_lines(b"a\n\nb").len(), 3);
        assert_eq!(split_lines(b"a\r\nb"), vec![&b"a"[..], &b"b"[..]]);
        assert!(split_lines(b"").is_empty());
    }
}
