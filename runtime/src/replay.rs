//! Offline replay of an NDJSON event file with the same processors.
//!
//! For backfills, audits and rule backtests: `storepulse replay --input
//! events.ndjson --out DIR` writes `stock.csv` (`store_id,sku,on_hand`),
//! `alerts.ndjson` (stock and points alerts as they happened, then every
//! fraud alert standing at the end), `dlq.ndjson` (`{line, event_id,
//! reason}`, `line` 1-based), `summary.json` (`{lines, accepted,
//! duplicates, rejected, fraud}`), and for members: `members.ndjson` (one
//! line per canonical member: `{member_id, aliases, points_balance, tags,
//! favorite_store, as_of}`, sorted by `member_id`), `member_tags.ndjson`
//! (every tag change and erasure, as the member log has them) and
//! `settlement.csv` (`date,from_franchisee,to_franchisee,points,amount_cents`).
//!
//! **Fraud.** The fraud processor runs exactly as in the embedded pipeline
//! (behind inventory's de-duplication and the member processor, keyed by
//! canonical member, re-linked after registrations, forgetting erased ids:
//! `FraudProcessor::apply_with_members`, as the driver). The fraud alerts standing at the end
//! (raised and not withdrawn by a later regrouping; `points_overdraft` in
//! the same shape when its rule is on) follow the stock and points lines of
//! `alerts.ndjson`, one [`FraudAlert`] per line sorted by (`first_at`,
//! `alert_id`), so the file is the same on every run. `summary.json`'s
//! `fraud` counts alerts raised and withdrawn, the standing ones by rule,
//! and the sales later than the allowed lateness ([`FraudSummary`]).
//!
//! **Backtest.** With a candidate rule set ([`ReplaySetup::candidate`]) a
//! second fraud processor runs those rules over the same events, and
//! `backtest.json` compares, per rule name, what each set leaves standing
//! ([`BacktestRule`]; alerts match by `alert_id`, a hash of the rule name
//! and the alert's sales), with the candidate's standing alerts in
//! `backtest_alerts.ndjson` (same shape and order as above).
//!
//! The file is streamed in chunks of about 4 MiB of whole lines, and the
//! chunk buffers are recycled, so memory stays at a few chunks whatever the
//! file size (reading a whole 450 MB file into one fresh buffer spent a third
//! of the time zeroing new pages). Parsing is embarrassingly parallel,
//! applying is sequential in file order: with `threads > 1`, a reader thread
//! cuts chunks, `threads - 1` workers parse them, and the calling thread
//! applies them in order as they come back (bounded channels throughout).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use storepulse_core::{Event, EventParser, Rejection, StoreMaster, Ts};
use storepulse_processors::fraud::{FraudAlert, FraudConfig, FraudOutput, FraudProcessor, RuleSet};
use storepulse_processors::inventory::{InventoryConfig, InventoryOutput, InventoryProcessor};
use storepulse_processors::members::query::day_text;
use storepulse_processors::members::{MemberConfig, MemberOutput, MemberProcessor};
use storepulse_processors::{Outcome, Processor};

use crate::driver::MemberLogRecord;
use crate::error::{Result, RuntimeError};
use crate::review::ReviewAlert;

const CHUNK_BYTES: usize = 4 << 20;

/// What a replay runs: the processors' settings and the fraud rules.
#[derive(Debug, Clone)]
pub struct ReplaySetup {
    pub inventory: InventoryConfig,
    pub members: MemberConfig,
    /// `[fraud]` settings of the fraud processor (both rule sets).
    pub fraud: FraudConfig,
    /// The rules in force (`[fraud] rules_file`).
    pub rules: RuleSet,
    /// A candidate rule set to backtest next to `rules`: writes
    /// `backtest.json` and `backtest_alerts.ndjson`.
    pub candidate: Option<RuleSet>,
}

impl ReplaySetup {
    /// Default settings and RULES.md's default rules, no candidate.
    ///
    /// # Errors
    /// The default rules do not compile against `stores` (not expected).
    pub fn defaults(stores: &StoreMaster) -> std::result::Result<Self, String> {
        Ok(Self {
            inventory: InventoryConfig::default(),
            members: MemberConfig::default(),
            fraud: FraudConfig::default(),
            rules: RuleSet::defaults(stores)?,
            candidate: None,
        })
    }
}

/// Counts written to `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    pub lines: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// The fraud rules in force.
    pub fraud: FraudSummary,
}

/// Fraud counts of a replay (`summary.json`'s `fraud`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FraudSummary {
    /// Alerts raised, `points_overdraft` included when its rule is on.
    pub raised: u64,
    /// Alerts withdrawn because a late sale or link regrouped their key.
    pub withdrawn: u64,
    /// Alerts standing at the end, per rule (every rule of the set, 0 included).
    pub standing: BTreeMap<String, u64>,
    /// Sales later than the allowed lateness, still evaluated.
    pub late_evaluated: u64,
    /// Sales later than the allowed lateness plus the window: not evaluated.
    pub late_dropped: u64,
}

/// One rule of `backtest.json`: alerts standing under the current and the
/// candidate rules, and which are only in one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BacktestRule {
    /// Standing alerts of this rule under the current rules.
    pub current: u64,
    /// Standing alerts of this rule under the candidate rules.
    pub candidate: u64,
    /// Alert ids only the current rules raise, by (`first_at`, `alert_id`).
    pub only_current: Vec<String>,
    /// Alert ids only the candidate rules raise, by (`first_at`, `alert_id`).
    pub only_candidate: Vec<String>,
    /// Alerts both raise (same rule name, same sales, so the same id).
    pub both: u64,
}

/// `backtest.json`: rule name -> comparison, for every rule either set has.
pub type Backtest = BTreeMap<String, BacktestRule>;

/// What [`replay`] returns besides its files.
#[derive(Debug)]
pub struct Replayed {
    pub summary: ReplaySummary,
    pub inventory: InventoryProcessor,
    /// With a candidate rule set: the comparison written to `backtest.json`.
    pub backtest: Option<Backtest>,
}

/// One fraud processor of a replay and the alerts it leaves standing.
pub(crate) struct FraudRun {
    processor: FraudProcessor,
    outputs: Vec<FraudOutput>,
    /// alert id -> alert, raised and not withdrawn.
    standing: BTreeMap<String, FraudAlert>,
    raised: u64,
    withdrawn: u64,
    /// When set, a copy of each event's fraud outputs (for mart rows).
    pub(crate) keep: Option<Vec<FraudOutput>>,
}

impl FraudRun {
    pub(crate) fn new(
        config: &FraudConfig,
        rules: &RuleSet,
        stores: &std::sync::Arc<StoreMaster>,
    ) -> Self {
        Self {
            processor: FraudProcessor::new(config.clone(), rules.clone(), stores.clone()),
            outputs: Vec::new(),
            standing: BTreeMap::new(),
            raised: 0,
            withdrawn: 0,
            keep: None,
        }
    }

    /// One event the member processor has just applied, with its outputs:
    /// fed as the driver feeds it, overdrafts included when their rule is on.
    pub(crate) fn apply(
        &mut self,
        members: &MemberProcessor,
        event: &Event,
        member_outputs: &[MemberOutput],
    ) {
        self.processor
            .apply_with_members(Some(members), event, member_outputs, &mut self.outputs);
        if let Some(keep) = self.keep.as_mut() {
            keep.clone_from(&self.outputs);
        }
        for output in member_outputs {
            if let MemberOutput::Overdraft(alert) = output {
                if let Some(review) = ReviewAlert::overdraft_to_review(&self.processor, alert) {
                    self.outputs.push(FraudOutput::Raised(Box::new(review)));
                }
            }
        }
        for output in self.outputs.drain(..) {
            match output {
                FraudOutput::Raised(alert) => {
                    self.raised += 1;
                    self.standing.insert(alert.alert_id.clone(), *alert);
                }
                FraudOutput::Withdrawn(w) => {
                    self.withdrawn += 1;
                    self.standing.remove(&w.alert_id);
                }
            }
        }
    }

    /// Keeps only the standing alerts whose last sale is at or after `from`.
    pub(crate) fn keep_from(&mut self, from: Ts) {
        self.standing.retain(|_, a| a.last_at >= from);
    }

    /// The standing alerts by (`first_at`, `alert_id`).
    pub(crate) fn sorted(&self) -> Vec<&FraudAlert> {
        let mut all: Vec<&FraudAlert> = self.standing.values().collect();
        all.sort_by(|a, b| (a.first_at, &a.alert_id).cmp(&(b.first_at, &b.alert_id)));
        all
    }

    fn summary(&self) -> FraudSummary {
        let mut standing: BTreeMap<String, u64> = self
            .processor
            .rules()
            .rules()
            .iter()
            .map(|r| (r.name().to_owned(), 0))
            .collect();
        for alert in self.standing.values() {
            *standing.entry(alert.rule.clone()).or_default() += 1;
        }
        let stats = self.processor.stats();
        FraudSummary {
            raised: self.raised,
            withdrawn: self.withdrawn,
            standing,
            late_evaluated: stats.late_evaluated,
            late_dropped: stats.late_dropped,
        }
    }
}

/// Compares the standing alerts of the current and candidate runs per rule.
pub(crate) fn backtest(current: &FraudRun, candidate: &FraudRun) -> Backtest {
    let mut report = Backtest::new();
    for run in [current, candidate] {
        for rule in run.processor.rules().rules() {
            report.entry(rule.name().to_owned()).or_default();
        }
    }
    for alert in current.sorted() {
        let entry = report.entry(alert.rule.clone()).or_default();
        entry.current += 1;
        if candidate.standing.contains_key(&alert.alert_id) {
            entry.both += 1;
        } else {
            entry.only_current.push(alert.alert_id.clone());
        }
    }
    for alert in candidate.sorted() {
        let entry = report.entry(alert.rule.clone()).or_default();
        entry.candidate += 1;
        if !current.standing.contains_key(&alert.alert_id) {
            entry.only_candidate.push(alert.alert_id.clone());
        }
    }
    report
}

#[derive(Serialize)]
struct DlqLine<'a> {
    line: u64,
    event_id: Option<&'a str>,
    reason: String,
}

/// Whole lines of the input, in order.
struct Chunk {
    seq: usize,
    /// 0-based number of the chunk's first line.
    first_line: u64,
    data: Vec<u8>,
}

type Parsed = Vec<Result<Event, Rejection>>;

/// Cuts a file into chunks of whole lines, reusing returned buffers.
struct ChunkReader {
    file: File,
    carry: Vec<u8>,
    seq: usize,
    next_line: u64,
    done: bool,
}

impl ChunkReader {
    fn next(&mut self, mut buf: Vec<u8>) -> std::io::Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        buf.clear();
        buf.append(&mut self.carry);
        loop {
            let old = buf.len();
            buf.resize(old + CHUNK_BYTES, 0);
            let n = read_full(&mut self.file, &mut buf[old..])?;
            buf.truncate(old + n);
            if n == 0 {
                self.done = true;
                break;
            }
            if let Some(last) = memchr::memrchr(b'\n', &buf[old..]) {
                self.carry.extend_from_slice(&buf[old + last + 1..]);
                buf.truncate(old + last + 1);
                break;
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let newlines = memchr::memchr_iter(b'\n', &buf).count() as u64;
        let lines = newlines + u64::from(!buf.ends_with(b"\n"));
        let chunk = Chunk {
            seq: self.seq,
            first_line: self.next_line,
            data: buf,
        };
        self.seq += 1;
        self.next_line += lines;
        Ok(Some(chunk))
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn parse_chunk(parser: &EventParser, data: &[u8]) -> Parsed {
    split_lines(data)
        .into_iter()
        .map(|l| parser.parse(l))
        .collect()
}

/// Replays `input` into `out_dir` with `threads` threads in all.
/// `progress` is called with the input bytes applied so far and the total.
///
/// # Errors
/// When the input cannot be read or an output cannot be written.
pub fn replay(
    input: &Path,
    out_dir: &Path,
    parser: &EventParser,
    setup: &ReplaySetup,
    threads: usize,
    progress: impl FnMut(u64, u64),
) -> Result<Replayed> {
    replay_with_mart(input, out_dir, parser, setup, threads, progress, None)
}

/// Where [`replay_with_mart`] sends mart rows: the deriver and a sink
/// taking each batch (cut after every erasure, which the sink applies
/// after the batch's rows).
pub struct MartReplay<'a> {
    pub deriver: storepulse_mart::derive::RowDeriver,
    pub sink:
        &'a mut dyn FnMut(storepulse_mart::rows::MartBatch) -> std::result::Result<(), String>,
}

/// Rows a replay batch holds before it is handed to the mart sink.
const MART_REPLAY_ROWS: usize = 200_000;

/// [`replay`], also deriving the mart's rows exactly as the driver does
/// (position: partition 0, offset = line number - 1, i.e. the offset the
/// line would have in an event log holding this file).
///
/// # Errors
/// As [`replay`]; a mart sink error.
#[allow(clippy::too_many_lines)]
pub fn replay_with_mart(
    input: &Path,
    out_dir: &Path,
    parser: &EventParser,
    setup: &ReplaySetup,
    threads: usize,
    mut progress: impl FnMut(u64, u64),
    mut mart: Option<MartReplay<'_>>,
) -> Result<Replayed> {
    let in_io = |source| RuntimeError::ReplayIo {
        path: input.to_owned(),
        source,
    };
    let file = File::open(input).map_err(in_io)?;
    let total_bytes = file.metadata().map_err(in_io)?.len();
    std::fs::create_dir_all(out_dir).map_err(|source| RuntimeError::ReplayIo {
        path: out_dir.to_owned(),
        source,
    })?;
    let (out_io, create) = (out_io(out_dir), create_in(out_dir));
    let mut alerts_out = create("alerts.ndjson")?;
    let mut dlq_out = create("dlq.ndjson")?;
    let mut tags_out = create("member_tags.ndjson")?;
    let stores = parser.stores();
    let mut inventory = InventoryProcessor::new(setup.inventory.clone(), stores.clone());
    // Behind inventory, which de-duplicates, as in the embedded pipeline.
    let mut members = MemberProcessor::new(setup.members.clone(), stores.clone())
        .map_err(RuntimeError::Config)?
        .without_dedup();
    let mut fraud = FraudRun::new(&setup.fraud, &setup.rules, stores);
    if mart.is_some() {
        fraud.keep = Some(Vec::new());
    }
    let mut mart_batch = storepulse_mart::rows::MartBatch::default();
    let mart_err = |e: String| RuntimeError::ReplayIo {
        path: out_dir.join("mart"),
        source: std::io::Error::other(e),
    };
    let mut candidate = setup
        .candidate
        .as_ref()
        .map(|rules| FraudRun::new(&setup.fraud, rules, stores));
    let mut member_outputs = Vec::new();
    let mut summary = ReplaySummary::default();
    let mut outputs = Vec::new();
    let mut bytes_done = 0u64;

    let mut apply_chunk = |first_line: u64, bytes: usize, parsed: Parsed| -> Result<()> {
        for (i, result) in parsed.into_iter().enumerate() {
            let line = first_line + i as u64 + 1;
            summary.lines += 1;
            let mut erased = false;
            let outcome = result.and_then(|event| {
                let outcome = inventory.apply(&event, &mut outputs)?;
                if outcome != Outcome::Duplicate {
                    let first_new = member_outputs.len();
                    members.apply(&event, &mut member_outputs)?;
                    let new_outputs = &member_outputs[first_new..];
                    fraud.apply(&members, &event, new_outputs);
                    if let Some(candidate) = candidate.as_mut() {
                        candidate.apply(&members, &event, new_outputs);
                    }
                    if let Some(m) = mart.as_ref() {
                        let pos = storepulse_mart::derive::EventPos {
                            partition: 0,
                            offset: line - 1,
                        };
                        erased = crate::driver::derive_rows(
                            &m.deriver,
                            pos,
                            &event,
                            &inventory,
                            Some(&members),
                            &outputs,
                            new_outputs,
                            fraud.keep.as_deref().unwrap_or_default(),
                            &mut mart_batch,
                        );
                    }
                }
                Ok(outcome)
            });
            if let Some(m) = mart.as_mut() {
                if erased || mart_batch.rows() >= MART_REPLAY_ROWS {
                    (m.sink)(std::mem::take(&mut mart_batch)).map_err(mart_err)?;
                }
            }
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
                    write_line(&mut alerts_out, &alert).map_err(out_io("alerts.ndjson"))?;
                }
            }
            for output in member_outputs.drain(..) {
                match &output {
                    MemberOutput::Overdraft(alert) => {
                        write_line(&mut alerts_out, alert).map_err(out_io("alerts.ndjson"))?;
                    }
                    MemberOutput::Tag(change) => {
                        write_line(&mut tags_out, &MemberLogRecord::TagChange(change))
                            .map_err(out_io("member_tags.ndjson"))?;
                    }
                    MemberOutput::Erased(erased) => {
                        write_line(&mut tags_out, &MemberLogRecord::MemberErased(erased))
                            .map_err(out_io("member_tags.ndjson"))?;
                    }
                    MemberOutput::TagsMoved(_) => {}
                }
            }
        }
        bytes_done += bytes as u64;
        progress(bytes_done, total_bytes);
        Ok(())
    };

    let mut reader = ChunkReader {
        file,
        carry: Vec::new(),
        seq: 0,
        next_line: 0,
        done: false,
    };
    if threads <= 1 {
        let mut buf = Vec::with_capacity(CHUNK_BYTES * 2);
        while let Some(chunk) = reader.next(buf).map_err(in_io)? {
            let parsed = parse_chunk(parser, &chunk.data);
            apply_chunk(chunk.first_line, chunk.data.len(), parsed)?;
            buf = chunk.data;
        }
    } else {
        let workers = threads - 1;
        std::thread::scope(|scope| -> Result<()> {
            let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Chunk>(workers * 2);
            let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
            let (done_tx, done_rx) = mpsc::sync_channel::<(usize, u64, usize, Parsed)>(workers * 4);
            let chunk_rx = Arc::new(Mutex::new(chunk_rx));
            let read_thread = std::thread::Builder::new()
                .name("replay-read".into())
                .spawn_scoped(scope, move || -> std::io::Result<()> {
                    loop {
                        let buf = free_rx
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES * 2));
                        match reader.next(buf)? {
                            Some(chunk) => {
                                if chunk_tx.send(chunk).is_err() {
                                    return Ok(()); // the applier stopped on an error
                                }
                            }
                            None => return Ok(()),
                        }
                    }
                })
                .map_err(in_io)?;
            for _ in 0..workers {
                let (chunk_rx, done_tx, free_tx) =
                    (chunk_rx.clone(), done_tx.clone(), free_tx.clone());
                std::thread::Builder::new()
                    .name("replay-parse".into())
                    .spawn_scoped(scope, move || loop {
                        let next = chunk_rx.lock().map(|rx| rx.recv());
                        let Ok(Ok(chunk)) = next else { break };
                        let parsed = parse_chunk(parser, &chunk.data);
                        let bytes = chunk.data.len();
                        let _ = free_tx.send(chunk.data);
                        if done_tx
                            .send((chunk.seq, chunk.first_line, bytes, parsed))
                            .is_err()
                        {
                            break;
                        }
                    })
                    .map_err(in_io)?;
            }
            drop(done_tx);
            let mut pending: BTreeMap<usize, (u64, usize, Parsed)> = BTreeMap::new();
            let mut want = 0;
            for (seq, first_line, bytes, parsed) in done_rx {
                pending.insert(seq, (first_line, bytes, parsed));
                while let Some((first_line, bytes, parsed)) = pending.remove(&want) {
                    apply_chunk(first_line, bytes, parsed)?;
                    want += 1;
                }
            }
            match read_thread.join() {
                Ok(result) => result.map_err(in_io),
                Err(_) => Err(in_io(std::io::Error::other("reader thread panicked"))),
            }
        })?;
    }
    if let Some(m) = mart.as_mut() {
        if !mart_batch.is_empty() {
            (m.sink)(std::mem::take(&mut mart_batch)).map_err(mart_err)?;
        }
    }
    for alert in fraud.sorted() {
        write_line(&mut alerts_out, alert).map_err(out_io("alerts.ndjson"))?;
    }
    alerts_out.flush().map_err(out_io("alerts.ndjson"))?;
    summary.fraud = fraud.summary();
    let backtest = match &candidate {
        Some(candidate) => {
            let mut out = create("backtest_alerts.ndjson")?;
            for alert in candidate.sorted() {
                write_line(&mut out, alert).map_err(out_io("backtest_alerts.ndjson"))?;
            }
            out.flush().map_err(out_io("backtest_alerts.ndjson"))?;
            let report = backtest(&fraud, candidate);
            write_json_file(out_dir, "backtest.json", &report)?;
            Some(report)
        }
        None => {
            // A backtest of an earlier run in this directory would be
            // taken for this run's.
            for name in ["backtest.json", "backtest_alerts.ndjson"] {
                match std::fs::remove_file(out_dir.join(name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(out_io(name)(e));
                    }
                    _ => {}
                }
            }
            None
        }
    };
    dlq_out.flush().map_err(out_io("dlq.ndjson"))?;
    tags_out.flush().map_err(out_io("member_tags.ndjson"))?;
    write_members(&members, out_dir)?;

    let mut stock = create("stock.csv")?;
    let io = out_io("stock.csv");
    writeln!(stock, "store_id,sku,on_hand").map_err(&io)?;
    for (store_id, sku, on_hand) in inventory.all_stock() {
        writeln!(
            stock,
            "{},{},{on_hand}",
            csv_field(&store_id),
            csv_field(&sku)
        )
        .map_err(&io)?;
    }
    stock.flush().map_err(io)?;
    write_json_file(out_dir, "summary.json", &summary)?;
    Ok(Replayed {
        summary,
        inventory,
        backtest,
    })
}

/// Writes `DIR/name` as pretty JSON.
fn write_json_file(out_dir: &Path, name: &str, value: &impl Serialize) -> Result<()> {
    let path = out_dir.join(name);
    let json = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::ReplayIo {
        path: path.clone(),
        source: e.into(),
    })?;
    std::fs::write(&path, json).map_err(|source| RuntimeError::ReplayIo { path, source })
}

/// Maps an I/O error on `DIR/name` to a replay error naming the file.
fn out_io(out_dir: &Path) -> impl Fn(&str) -> Box<dyn Fn(std::io::Error) -> RuntimeError> + '_ {
    move |name: &str| {
        let path = out_dir.join(name);
        Box::new(move |source| RuntimeError::ReplayIo {
            path: path.clone(),
            source,
        })
    }
}

/// Creates `DIR/name`, buffered.
fn create_in(out_dir: &Path) -> impl Fn(&str) -> Result<BufWriter<File>> + '_ {
    move |name: &str| {
        File::create(out_dir.join(name))
            .map(|f| BufWriter::with_capacity(1 << 20, f))
            .map_err(out_io(out_dir)(name))
    }
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

/// One line of `members.ndjson`.
#[derive(Serialize)]
struct MemberLine<'a> {
    member_id: &'a str,
    aliases: &'a [storepulse_core::Id],
    points_balance: i64,
    tags: &'a [String],
    favorite_store: Option<&'a str>,
    as_of: Option<&'a str>,
}

/// Writes `members.ndjson` (sorted by member id) and `settlement.csv`.
fn write_members(members: &MemberProcessor, out_dir: &Path) -> Result<()> {
    let (out_io, create) = (out_io(out_dir), create_in(out_dir));
    let mut all: Vec<_> = members.all_members().collect();
    all.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let mut out = create("members.ndjson")?;
    for m in &all {
        let line = MemberLine {
            member_id: &m.member_id,
            aliases: &m.aliases,
            points_balance: m.points_balance,
            tags: &m.tags,
            favorite_store: m.favorite_store.as_deref(),
            as_of: m.as_of.as_deref(),
        };
        write_line(&mut out, &line).map_err(out_io("members.ndjson"))?;
    }
    out.flush().map_err(out_io("members.ndjson"))?;
    let mut csv = create("settlement.csv")?;
    let io = out_io("settlement.csv");
    writeln!(
        csv,
        "date,from_franchisee,to_franchisee,points,amount_cents"
    )
    .map_err(&io)?;
    for day in members.settlement_days() {
        let report = members.settlement(day);
        for row in report.rows {
            writeln!(
                csv,
                "{},{},{},{},{}",
                day_text(day),
                csv_field(&row.from_franchisee),
                csv_field(&row.to_franchisee),
                row.points,
                row.amount_cents
            )
            .map_err(&io)?;
        }
    }
    csv.flush().map_err(io)
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

    fn parser() -> EventParser {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        EventParser::new(std::sync::Arc::new(
            storepulse_core::StoreMaster::load(&path).unwrap(),
        ))
    }

    #[test]
    fn replay_counts_and_numbers_rejections_the_same_with_any_threads() {
        let receipt = r#"{"v":1,"event_id":"r1","event_type":"stock_receipt","occurred_at":"2026-11-25T07:30:00+08:00","store_id":"KM-003","channel":"backoffice","lines":[{"sku":"A","qty":5}]}"#;
        let sale = r#"{"v":1,"event_id":"s1","event_type":"sale","occurred_at":"2026-11-25T08:30:00+08:00","store_id":"KM-003","channel":"pos","order_id":"o","lines":[{"sku":"A","qty":5,"unit_price_cents":1}],"total_cents":5,"payment":{"method":"cash"}}"#;
        let text = format!("{receipt}\n\n{{broken\n{receipt}\r\n{sale}");
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.ndjson");
        std::fs::write(&input, text).unwrap();
        for threads in [1, 2, 3] {
            let out = dir.path().join(format!("out{threads}"));
            let parser = parser();
            let setup = ReplaySetup::defaults(parser.stores()).unwrap();
            let summary = replay(&input, &out, &parser, &setup, threads, |_, _| {})
                .unwrap()
                .summary;
            assert_eq!(
                (
                    summary.lines,
                    summary.accepted,
                    summary.duplicates,
                    summary.rejected
                ),
                (5, 2, 1, 2)
            );
            let dlq = std::fs::read_to_string(out.join("dlq.ndjson")).unwrap();
            let lines: Vec<serde_json::Value> = dlq
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines[0]["line"], 2);
            assert!(lines[0]["reason"].as_str().unwrap().contains("empty"));
            assert_eq!(lines[1]["line"], 3);
            let stock = std::fs::read_to_string(out.join("stock.csv")).unwrap();
            assert_eq!(stock, "store_id,sku,on_hand\nKM-003,A,0\n");
            let alerts = std::fs::read_to_string(out.join("alerts.ndjson")).unwrap();
            assert!(alerts.contains("out_of_stock:KM-003:A:s1"));
        }
    }

    /// A sale of one line worth `total` cents, 2026-11-25 at `hm` (China).
    fn sale(
        id: &str,
        hm: &str,
        store: &str,
        member: Option<&str>,
        account: Option<&str>,
        total: u64,
    ) -> String {
        let mut v = serde_json::json!({
            "v": 1, "event_id": id, "event_type": "sale",
            "occurred_at": format!("2026-11-25T{hm}:00+08:00"), "store_id": store,
            "channel": "pos", "order_id": format!("o-{id}"),
            "lines": [{"sku": "A", "qty": 1, "unit_price_cents": total}],
            "total_cents": total, "payment": {"method": "card"},
        });
        if let Some(m) = member {
            v["member_id"] = m.into();
        }
        if let Some(a) = account {
            v["payment"]["account_ref"] = a.into();
        }
        v.to_string()
    }

    fn member_event(
        id: &str,
        hm: &str,
        kind: &str,
        member: &str,
        extra: serde_json::Value,
    ) -> String {
        let mut v = serde_json::json!({
            "v": 1, "event_id": id, "event_type": kind,
            "occurred_at": format!("2026-11-25T{hm}:00+08:00"), "store_id": "KM-001",
            "channel": "app", "member_id": member,
        });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        v.to_string()
    }

    /// The planted patterns of the fraud replay test (one line each):
    /// - m1: 3 stores, 600,000 in 20 min: both rule sets;
    /// - m2: 3 stores, 450,000: only a 400,000 threshold;
    /// - m3: 4 sales of 150,000 in 4 stores: the current rules group all 4
    ///   (at the 4th), a 400,000 threshold the first 3 (at the 3rd);
    /// - m4: 3 stores, 600,000, two sales under the alias APP-4 whose
    ///   registration (with M4's phone) comes last: one alert keyed M4;
    /// - card-x: 3 stores, 600,000, no member: shared_payment_account;
    /// - M9 redeems points it does not have: points_overdraft.
    fn fraud_events() -> String {
        let phone = "ab".repeat(32);
        [
            sale("m1a", "10:00", "KM-001", Some("M1"), None, 200_000),
            sale("m1b", "10:10", "KM-002", Some("M1"), None, 200_000),
            sale("m1c", "10:20", "KM-003", Some("M1"), None, 200_000),
            sale("m2a", "11:00", "KM-001", Some("M2"), None, 150_000),
            sale("m2b", "11:05", "KM-002", Some("M2"), None, 150_000),
            sale("m2c", "11:10", "KM-003", Some("M2"), None, 150_000),
            sale("m3a", "12:00", "KM-001", Some("M3"), None, 150_000),
            sale("m3b", "12:05", "KM-002", Some("M3"), None, 150_000),
            sale("m3c", "12:10", "KM-003", Some("M3"), None, 150_000),
            sale("m3d", "12:15", "KM-004", Some("M3"), None, 150_000),
            sale("m4a", "13:00", "KM-001", Some("M4"), None, 200_000),
            sale("m4b", "13:05", "KM-002", Some("APP-4"), None, 200_000),
            sale("m4c", "13:10", "KM-003", Some("APP-4"), None, 200_000),
            sale("xa", "14:00", "KM-005", None, Some("card-x"), 200_000),
            sale("xb", "14:05", "KM-006", None, Some("card-x"), 200_000),
            sale("xc", "14:10", "KM-007", None, Some("card-x"), 200_000),
            member_event(
                "r9",
                "14:20",
                "points_redeem",
                "M9",
                serde_json::json!({"points": 100, "reference": "r9"}),
            ),
            member_event(
                "reg4",
                "09:00",
                "member_register",
                "M4",
                serde_json::json!({"phone_hash": phone}),
            ),
            member_event(
                "reg4b",
                "09:30",
                "member_register",
                "APP-4",
                serde_json::json!({"phone_hash": phone}),
            ),
        ]
        .join("\n")
    }

    fn read_ndjson(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn replay_writes_standing_fraud_alerts_and_a_backtest_of_a_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.ndjson");
        std::fs::write(&input, fraud_events()).unwrap();
        let parser = parser();
        let mut setup = ReplaySetup::defaults(parser.stores()).unwrap();
        let candidate = r#"
[[rule]]
name = "multi_store_large_purchase"
key = "member"
window_minutes = 30
[rule.when]
total_cents = 400000
distinct_stores = 3

[[rule]]
name = "large_single_purchase"
key = "order"
[rule.filter]
min_sale_total_cents = 2000000
[rule.when]
total_cents = 2000000
"#;
        setup.candidate = Some(crate::rules_file::parse(candidate, parser.stores()).unwrap());
        let out = dir.path().join("out");
        let replayed = replay(&input, &out, &parser, &setup, 1, |_, _| {}).unwrap();

        // alerts.ndjson: the stock (oversold: nothing was received) and
        // points lines as they happened, then the standing fraud alerts by
        // first_at.
        let alerts = read_ndjson(&out.join("alerts.ndjson"));
        let first_fraud = alerts
            .iter()
            .position(|a| a.get("key_kind").is_some())
            .unwrap();
        let (before, fraud) = alerts.split_at(first_fraud);
        assert!(
            fraud.iter().all(|a| a.get("key_kind").is_some()),
            "fraud lines come last"
        );
        let points: Vec<_> = before
            .iter()
            .filter(|a| a.get("balance_after").is_some())
            .collect();
        assert_eq!(points.len(), 1, "the overdraft in its own shape too");
        assert_eq!(points[0]["balance_after"], -100);
        let keys: Vec<(&str, &str, usize)> = fraud
            .iter()
            .map(|a| {
                (
                    a["rule"].as_str().unwrap(),
                    a["key"].as_str().unwrap(),
                    a["event_ids"].as_array().unwrap().len(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("multi_store_large_purchase", "M1", 3),
                ("multi_store_large_purchase", "M3", 4),
                ("multi_store_large_purchase", "M4", 3),
                ("shared_payment_account", "card-x", 3),
                ("points_overdraft", "M9", 1),
            ]
        );
        assert_eq!(
            fraud[2]["event_ids"],
            serde_json::json!(["m4a", "m4b", "m4c"])
        );
        assert_eq!(fraud[0]["total_cents"], 600_000);
        assert_eq!(
            fraud[0]["stores"],
            serde_json::json!(["KM-001", "KM-002", "KM-003"])
        );
        assert!(
            fraud[0]["first_at"]
                .as_str()
                .unwrap()
                .starts_with("2026-11-25T10:00:00"),
            "{}",
            fraud[0]["first_at"]
        );

        // summary.json: M4's alias sales made no alert of their own before
        // the link, so nothing was withdrawn.
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(
            summary["fraud"],
            serde_json::json!({
                "raised": 5, "withdrawn": 0,
                "standing": {"large_single_purchase": 0, "multi_store_large_purchase": 3,
                             "points_overdraft": 1, "shared_payment_account": 1},
                "late_evaluated": 0, "late_dropped": 0,
            })
        );
        assert_eq!(replayed.summary.fraud.raised, 5);

        // The backtest.
        let report = replayed.backtest.unwrap();
        let id = |key: &str, n: usize| {
            let a = fraud.iter().find(|a| a["key"] == key).unwrap();
            assert_eq!(a["event_ids"].as_array().unwrap().len(), n);
            a["alert_id"].as_str().unwrap().to_owned()
        };
        let multi = &report["multi_store_large_purchase"];
        assert_eq!((multi.current, multi.candidate, multi.both), (3, 4, 2));
        assert_eq!(multi.only_current, [id("M3", 4)]);
        let candidate_alerts = read_ndjson(&out.join("backtest_alerts.ndjson"));
        let candidate_id = |key: &str| -> (String, usize) {
            let a = candidate_alerts.iter().find(|a| a["key"] == key).unwrap();
            (
                a["alert_id"].as_str().unwrap().to_owned(),
                a["event_ids"].as_array().unwrap().len(),
            )
        };
        let (m2, m2_sales) = candidate_id("M2");
        let (m3, m3_sales) = candidate_id("M3");
        assert_eq!(
            (m2_sales, m3_sales),
            (3, 3),
            "the candidate fires at the 3rd sale"
        );
        assert_eq!(multi.only_candidate, [m2, m3]);
        assert_eq!(candidate_alerts.len(), 4, "M1, M2, M3, M4");
        let shared = &report["shared_payment_account"];
        assert_eq!((shared.current, shared.candidate, shared.both), (1, 0, 0));
        assert_eq!(shared.only_current, [id("card-x", 3)]);
        let points = &report["points_overdraft"];
        assert_eq!(
            (points.current, points.candidate, points.only_current.len()),
            (1, 0, 1)
        );
        assert_eq!(report["large_single_purchase"], BacktestRule::default());
        assert_eq!(report.len(), 4);
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("backtest.json")).unwrap()).unwrap();
        assert_eq!(written["multi_store_large_purchase"]["both"], 2);
        assert_eq!(
            written["multi_store_large_purchase"]["only_candidate"]
                .as_array()
                .unwrap()
                .len(),
            2
        );

        // Deterministic: the same files with several threads.
        let again = dir.path().join("again");
        replay(&input, &again, &parser, &setup, 3, |_, _| {}).unwrap();
        for file in [
            "alerts.ndjson",
            "backtest.json",
            "backtest_alerts.ndjson",
            "summary.json",
        ] {
            assert_eq!(
                std::fs::read(out.join(file)).unwrap(),
                std::fs::read(again.join(file)).unwrap(),
                "{file}"
            );
        }
    }

    #[test]
    fn lines_are_numbered_like_an_editor() {
        assert_eq!(split_lines(b"a\nb\n").len(), 2);
        assert_eq!(split_lines(b"a\n\nb").len(), 3);
        assert_eq!(split_lines(b"a\r\nb"), vec![&b"a"[..], &b"b"[..]]);
        assert!(split_lines(b"").is_empty());
    }
}
