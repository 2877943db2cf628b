//! The embedded mart: the mart's tables as Parquet files under
//! `data_dir/mart/<table>/`, written by [`ParquetMart`] (a [`MartWriter`])
//! and queried with DataFusion by [`reader::DataFusionMart`].
//!
//! # Files
//! One file per (table, source partition) per written batch, named by the
//! position range it holds:
//! `p<partition>-<from offset>.<from index>-<to offset>.<to index>.parquet`
//! (zero-padded, so names sort by position). A file is written to a hidden
//! `.tmp` name, fsynced, renamed, and the directory fsynced: it is there
//! whole or not at all, so "highest stored position" is the highest `to` in
//! the names.
//!
//! # Compaction
//! When a (table, partition) has [`COMPACT_FILES`] small files after its
//! last large one, they are merged into one file named by their whole
//! range. A file whose range lies inside another's is redundant: the merge
//! deletes its inputs after the rename, and a crash in between leaves them
//! to be deleted at the next open. Readers see no double counting because
//! they skip covered files and the swap happens under the lock readers
//! hold while they query.
//!
//! # Erasure
//! [`MartWriter::erase`] rewrites every file holding a row of the erased ids
//! (tmp, fsync, rename over the same name): rows about the person (points,
//! tags, registrations) are deleted, sale/return lines and alerts keep
//! counting with the member id blanked ([`Table::erase_action`], as the
//! ClickHouse store). The ids' bytes are gone from disk, not hidden. The
//! name, and so the stored positions, stay.
//!
//! # Limits
//! One writer process per directory (the runtime's data directory lock).
//! `rejected_events.raw` keeps the rejected event's text as received; it is
//! not rewritten by erasure (as the dead-letter log itself).

pub mod arrow;
pub mod hourly;
pub mod reader;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, not};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use tokio::sync::RwLock;
use tracing::{debug, info, warn};

use crate::rows::{EraseAction, Erasure, MartBatch, SourcePos, Table};
use crate::sink::sync_dir;
use crate::write::{MartWriter, StoredPositions};
use crate::MartError;

/// Small files after the last large one that trigger a merge.
pub const COMPACT_FILES: usize = 16;
/// A file with at least this many rows is large (not merged again).
pub const LARGE_FILE_ROWS: u64 = 1_000_000;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 256 * 1024;

/// A data file's name, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileRange {
    pub from: SourcePos,
    pub to: SourcePos,
}

impl FileRange {
    /// The file name of this range.
    pub fn file_name(&self) -> String {
        format!(
            "p{:010}-{:020}.{:010}-{:020}.{:010}.parquet",
            self.from.partition, self.from.offset, self.from.index, self.to.offset, self.to.index
        )
    }

    /// Parses a file name made by [`FileRange::file_name`].
    pub fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".parquet")?.strip_prefix('p')?;
        let (partition, rest) = stem.split_once('-')?;
        let (from, to) = rest.split_once('-')?;
        let partition: u32 = partition.parse().ok()?;
        let pos = |s: &str| -> Option<SourcePos> {
            let (o, i) = s.split_once('.')?;
            Some(SourcePos {
                partition,
                offset: o.parse().ok()?,
                index: i.parse().ok()?,
            })
        };
        Some(Self {
            from: pos(from)?,
            to: pos(to)?,
        })
    }

    /// Whether `other` lies inside this range (same partition).
    pub fn covers(&self, other: &FileRange) -> bool {
        self != other
            && self.from.partition == other.from.partition
            && self.from <= other.from
            && other.to <= self.to
    }
}

/// A data file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DataFile {
    range: FileRange,
    rows: u64,
}

/// The lock readers hold while they query and the writer holds while it
/// swaps files (compaction, erasure): a reader never sees a merged file
/// beside its inputs.
pub type SwapLock = Arc<RwLock<()>>;

/// Data files per (table, source partition), in position order.
type FileIndex = BTreeMap<(Table, u32), Vec<DataFile>>;

/// The embedded mart's writer. Cheap to clone (clones share the state).
///
/// Merges run on a thread of their own after a write (one at a time), so a
/// write, and with it the dashboard's freshness, never waits for a merge
/// of up to [`LARGE_FILE_ROWS`] rows ([`ParquetMart::with_inline_merges`]
/// merges on the writing thread instead: replay, tests, benchmarks). A
/// merge and an erasure exclude each other (`merging`): an erasure must
/// not rewrite a file a merge is reading.
#[derive(Clone)]
pub struct ParquetMart {
    dir: PathBuf,
    files: Arc<Mutex<FileIndex>>,
    lock: SwapLock,
    compression: Compression,
    background_merges: bool,
    merging: Arc<Mutex<()>>,
    merger: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl std::fmt::Debug for ParquetMart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetMart")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The directory of a table.
pub fn table_dir(root: &Path, table: Table) -> PathBuf {
    root.join(table.name())
}

/// The live data files of a table directory, sorted: `.parquet` files with
/// a valid name whose range no other file covers.
///
/// # Errors
/// The directory cannot be listed.
pub fn live_files(dir: &Path) -> Result<Vec<(FileRange, PathBuf)>, MartError> {
    let mut all = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(range) = name.to_str().and_then(FileRange::parse) {
            all.push((range, entry.path()));
        }
    }
    all.sort();
    let ranges: Vec<FileRange> = all.iter().map(|(r, _)| *r).collect();
    all.retain(|(r, _)| !ranges.iter().any(|o| o.covers(r)));
    Ok(all)
}

impl ParquetMart {
    /// Opens (creating) the mart under `dir`: deletes leftover temporary
    /// files and files a merge made redundant. Blocking.
    ///
    /// # Errors
    /// I/O errors; a data file whose footer cannot be read.
    pub fn open(dir: &Path) -> Result<Self, MartError> {
        let mut files = BTreeMap::new();
        for table in Table::ALL {
            let tdir = table_dir(dir, table);
            std::fs::create_dir_all(&tdir)?;
            let live = live_files(&tdir)?;
            for entry in std::fs::read_dir(&tdir)? {
                let entry = entry?;
                let path = entry.path();
                let keep = live.iter().any(|(_, p)| *p == path);
                if !keep {
                    info!(path = %path.display(), "mart: removing a temporary or redundant file");
                    std::fs::remove_file(&path)?;
                }
            }
            sync_dir(&tdir)?;
            if table == Table::SaleLines {
                open_sidecars(dir, &live)?;
            }
            for (range, path) in live {
                let rows = file_rows(&path)?;
                files
                    .entry((table, range.from.partition))
                    .or_insert_with(Vec::new)
                    .push(DataFile { range, rows });
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            files: Arc::new(Mutex::new(files)),
            lock: Arc::new(RwLock::new(())),
            compression: Compression::SNAPPY,
            background_merges: true,
            merging: Arc::new(Mutex::new(())),
            merger: Arc::new(Mutex::new(None)),
        })
    }

    /// Merges on the writing thread, before a write returns.
    #[must_use]
    pub fn with_inline_merges(mut self) -> Self {
        self.background_merges = false;
        self
    }

    /// Waits until the background merge in flight, if any, is done.
    pub fn wait_merges(&self) {
        let handle = self
            .merger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Runs the merges that are due: on this thread, or on the merge thread
    /// unless one is running (the next write starts it again).
    fn schedule_merges(&self) -> Result<(), MartError> {
        if !self.background_merges {
            let _merging = self.merging.lock().unwrap_or_else(PoisonError::into_inner);
            return self.merge_all();
        }
        let mut merger = self.merger.lock().unwrap_or_else(PoisonError::into_inner);
        if merger.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("mart-merge".into())
            .spawn(move || {
                let _merging = me.merging.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(e) = me.merge_all() {
                    warn!(error = %e, "mart: merging files failed; retried after the next write");
                }
            })?;
        *merger = Some(spawned);
        Ok(())
    }

    /// One pass of [`Self::maybe_compact`] over every (table, partition).
    fn merge_all(&self) -> Result<(), MartError> {
        let keys: Vec<(Table, u32)> = self.files().keys().copied().collect();
        for (table, partition) in keys {
            self.maybe_compact(table, partition)?;
        }
        Ok(())
    }

    /// The lock a reader of the same directory must share.
    pub fn swap_lock(&self) -> SwapLock {
        self.lock.clone()
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A reader over this mart, sharing its swap lock.
    pub fn reader(&self) -> reader::DataFusionMart {
        reader::DataFusionMart::new(&self.dir, self.lock.clone())
    }

    /// [`MartWriter::write`] on the calling thread (for `replay`).
    ///
    /// # Errors
    /// As [`MartWriter::write`].
    pub fn write_blocking(&self, batch: &MartBatch) -> Result<(), MartError> {
        for table in Table::ALL {
            self.write_table(batch, table)?;
        }
        self.schedule_merges()?;
        Ok(())
    }

    /// [`MartWriter::erase`] on the calling thread; returns the rows deleted
    /// or anonymised.
    ///
    /// # Errors
    /// As [`MartWriter::erase`].
    pub fn erase_blocking(&self, erasure: &Erasure) -> Result<u64, MartError> {
        let _merging = self.merging.lock().unwrap_or_else(PoisonError::into_inner);
        let mut removed = 0;
        for table in Table::ALL {
            removed += self.erase_table(table, erasure)?;
        }
        Ok(removed)
    }

    fn files(&self) -> std::sync::MutexGuard<'_, FileIndex> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes one table's rows: one file per source partition. Blocking.
    fn write_table(&self, batch: &MartBatch, table: Table) -> Result<(), MartError> {
        let Some(rb) = arrow::record_batch(batch, table).map_err(refused)? else {
            return Ok(());
        };
        let tdir = table_dir(&self.dir, table);
        for (partition, part) in split_by_partition(&rb)? {
            let (from, to) = position_range(&part, partition)?;
            let range = FileRange { from, to };
            let path = tdir.join(range.file_name());
            if table == Table::SaleLines {
                let agg = hourly::aggregate(std::slice::from_ref(&part))?;
                write_parquet(
                    &hourly::sidecar_path(&self.dir, &range),
                    &agg,
                    self.compression,
                )?;
            }
            write_parquet(&path, &part, self.compression)?;
            self.files()
                .entry((table, partition))
                .or_default()
                .push(DataFile {
                    range,
                    rows: part.num_rows() as u64,
                });
        }
        Ok(())
    }

    /// Merges the small files after the last large one when there are
    /// [`COMPACT_FILES`] of them. Blocking.
    fn maybe_compact(&self, table: Table, partition: u32) -> Result<(), MartError> {
        let inputs: Vec<DataFile> = {
            let files = self.files();
            let Some(list) = files.get(&(table, partition)) else {
                return Ok(());
            };
            let start = list
                .iter()
                .rposition(|f| f.rows >= LARGE_FILE_ROWS)
                .map_or(0, |i| i + 1);
            list[start..].to_vec()
        };
        if inputs.len() < COMPACT_FILES {
            return Ok(());
        }
        let (Some(first), Some(last)) = (inputs.first(), inputs.last()) else {
            return Ok(());
        };
        let range = FileRange {
            from: first.range.from,
            to: last.range.to,
        };
        let tdir = table_dir(&self.dir, table);
        let mut batches = Vec::with_capacity(inputs.len());
        for f in &inputs {
            batches.extend(read_parquet(&tdir.join(f.range.file_name()))?);
        }
        let merged = concat_batches(&arrow::schema(table), &batches).map_err(refused)?;
        if table == Table::SaleLines {
            // The merged file's sidecar first: until the merged file appears
            // it is not read, and after, it counts exactly its lines.
            let agg = hourly::aggregate(std::slice::from_ref(&merged))?;
            write_parquet(
                &hourly::sidecar_path(&self.dir, &range),
                &agg,
                self.compression,
            )?;
        }
        let tmp = write_tmp(&tdir, &range.file_name(), &merged, self.compression)?;
        {
            let _swap = self.lock.blocking_write();
            std::fs::rename(&tmp, tdir.join(range.file_name()))?;
            for f in &inputs {
                std::fs::remove_file(tdir.join(f.range.file_name()))?;
            }
            sync_dir(&tdir)?;
        }
        if table == Table::SaleLines {
            for f in &inputs {
                remove_if_present(&hourly::sidecar_path(&self.dir, &f.range))?;
            }
        }
        let mut files = self.files();
        if let Some(list) = files.get_mut(&(table, partition)) {
            list.retain(|f| !range.covers(&f.range));
            list.push(DataFile {
                range,
                rows: merged.num_rows() as u64,
            });
            list.sort_by_key(|f| f.range);
        }
        debug!(
            table = table.name(),
            files = inputs.len(),
            rows = merged.num_rows(),
            "mart files merged"
        );
        Ok(())
    }

    /// Rewrites the files of `table` holding rows of the erased ids: without
    /// them ([`EraseAction::Delete`]) or with the member id blanked
    /// ([`EraseAction::Anonymise`]: sales stay counted). Rows of the
    /// erasure's partition *after* it stay: they belong to a member that
    /// started after the erasure (an event dated after it), so an erasure
    /// re-applied after a crash cannot take them. Returns the rows deleted
    /// or anonymised. Blocking.
    fn erase_table(&self, table: Table, erasure: &Erasure) -> Result<u64, MartError> {
        let columns = arrow::member_columns(table);
        let Some(action) = table.erase_action() else {
            return Ok(0);
        };
        let tdir = table_dir(&self.dir, table);
        let names: Vec<FileRange> = self
            .files()
            .iter()
            .filter(|((t, _), _)| *t == table)
            .flat_map(|(_, list)| list.iter().map(|f| f.range))
            .collect();
        let mut removed = 0u64;
        for range in names {
            let path = tdir.join(range.file_name());
            let batches = read_parquet(&path)?;
            let mut kept = Vec::with_capacity(batches.len());
            let mut dropped = 0u64;
            for b in batches {
                let erased = erased_mask(&b, columns, erasure)?;
                dropped += erased.true_count() as u64;
                kept.push(match action {
                    EraseAction::Delete => {
                        filter_record_batch(&b, &not(&erased).map_err(refused)?).map_err(refused)?
                    }
                    EraseAction::Anonymise => blank_columns(&b, columns, &erased)?,
                });
            }
            if dropped == 0 {
                continue;
            }
            let merged = concat_batches(&arrow::schema(table), &kept).map_err(refused)?;
            let tmp = write_tmp(&tdir, &range.file_name(), &merged, self.compression)?;
            {
                let _swap = self.lock.blocking_write();
                std::fs::rename(&tmp, &path)?;
                sync_dir(&tdir)?;
            }
            let mut files = self.files();
            for list in files.values_mut() {
                for f in list.iter_mut().filter(|f| f.range == range) {
                    f.rows = merged.num_rows() as u64;
                }
            }
            removed += dropped;
        }
        Ok(removed)
    }
}

#[async_trait]
impl MartWriter for ParquetMart {
    async fn stored_positions(&self) -> Result<StoredPositions, MartError> {
        let files = self.files();
        Ok(files
            .iter()
            .filter_map(|(key, list)| list.iter().map(|f| f.range.to).max().map(|to| (*key, to)))
            .collect())
    }

    async fn write(&self, batch: &MartBatch) -> Result<(), MartError> {
        let (me, batch) = (self.clone(), batch.clone());
        blocking(move || me.write_blocking(&batch)).await
    }

    async fn erase(&self, erasure: &Erasure) -> Result<(), MartError> {
        let (me, erasure) = (self.clone(), erasure.clone());
        let removed = blocking(move || me.erase_blocking(&erasure)).await?;
        info!(
            rows = removed,
            "mart rows of an erased member deleted or anonymised"
        );
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MartError> + Send + 'static,
) -> Result<T, MartError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MartError::Unavailable(format!("blocking task: {e}")))?
}

fn refused(e: impl std::fmt::Display) -> MartError {
    MartError::Refused(e.to_string())
}

/// Parquet errors while writing or reading files: the disk (full, gone),
/// not the data (the schema is built from the row structs), so retried.
fn file_error(e: impl std::fmt::Display) -> MartError {
    MartError::Unavailable(e.to_string())
}

/// Rows of `b` to keep: member columns hold none of the erased ids, or
/// the row comes after the erasure in its partition.
/// `b` with the string `columns` set to "" where `erased` is true.
fn blank_columns(
    b: &RecordBatch,
    columns: &[&str],
    erased: &BooleanArray,
) -> Result<RecordBatch, MartError> {
    let schema = b.schema();
    let mut arrays = b.columns().to_vec();
    for name in columns {
        let i = schema.index_of(name).map_err(refused)?;
        let old = arrays[i]
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| MartError::Refused(format!("column {name} is not a string")))?;
        let new: StringArray = old
            .iter()
            .zip(erased.iter())
            .map(|(v, e)| if e == Some(true) { Some("") } else { v })
            .collect();
        arrays[i] = Arc::new(new);
    }
    RecordBatch::try_new(schema, arrays).map_err(refused)
}

/// True for the rows of `b` that name an erased id in `columns` and are not
/// after the erasure in its partition.
fn erased_mask(
    b: &RecordBatch,
    columns: &[&str],
    erasure: &Erasure,
) -> Result<BooleanArray, MartError> {
    use datafusion::arrow::array::{UInt32Array, UInt64Array};
    let ids = &erasure.member_ids;
    let partitions = b
        .column_by_name("src_partition")
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .ok_or_else(|| MartError::Refused("src_partition missing".into()))?;
    let offsets = b
        .column_by_name("src_offset")
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .ok_or_else(|| MartError::Refused("src_offset missing".into()))?;
    let cols = columns
        .iter()
        .map(|name| {
            b.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| MartError::Refused(format!("column {name} missing or not a string")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let erased: Vec<bool> = (0..b.num_rows())
        .map(|i| {
            let later = partitions.value(i) == erasure.src_partition
                && offsets.value(i) > erasure.src_offset;
            !later
                && cols
                    .iter()
                    .any(|c| c.is_valid(i) && ids.iter().any(|id| id == c.value(i)))
        })
        .collect();
    Ok(BooleanArray::from(erased))
}

/// At open: the sidecar directory exists, every live sale-lines file has
/// its sidecar (built from the file when missing), and no other sidecar
/// is left.
fn open_sidecars(root: &Path, live: &[(FileRange, PathBuf)]) -> Result<(), MartError> {
    let sdir = root.join(hourly::DIR);
    std::fs::create_dir_all(&sdir)?;
    for entry in std::fs::read_dir(&sdir)? {
        let path = entry?.path();
        if !live
            .iter()
            .any(|(r, _)| hourly::sidecar_path(root, r) == path)
        {
            info!(path = %path.display(), "mart: removing a sidecar without its sale-lines file");
            std::fs::remove_file(&path)?;
        }
    }
    for (range, path) in live {
        let sidecar = hourly::sidecar_path(root, range);
        if !sidecar.exists() {
            info!(path = %path.display(), "mart: building the hourly aggregate of a sale-lines file");
            let agg = hourly::aggregate(&read_parquet(path)?)?;
            write_parquet(&sidecar, &agg, Compression::SNAPPY)?;
        }
    }
    sync_dir(&sdir)
}

fn remove_if_present(path: &Path) -> Result<(), MartError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Splits a record batch by `src_partition` (rows keep their order).
fn split_by_partition(rb: &RecordBatch) -> Result<Vec<(u32, RecordBatch)>, MartError> {
    let parts = partitions(rb)?;
    let mut distinct: Vec<u32> = parts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() == 1 {
        return Ok(vec![(distinct[0], rb.clone())]);
    }
    distinct
        .into_iter()
        .map(|p| {
            let mask = BooleanArray::from(parts.iter().map(|x| *x == p).collect::<Vec<_>>());
            filter_record_batch(rb, &mask)
                .map(|b| (p, b))
                .map_err(refused)
        })
        .collect()
}

fn partitions(rb: &RecordBatch) -> Result<Vec<u32>, MartError> {
    let col = rb
        .column_by_name("src_partition")
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<datafusion::arrow::array::UInt32Array>()
        })
        .ok_or_else(|| MartError::Refused("src_partition missing".into()))?;
    Ok(col.values().to_vec())
}

/// First and last position of a one-partition batch (rows in position order).
fn position_range(rb: &RecordBatch, partition: u32) -> Result<(SourcePos, SourcePos), MartError> {
    use datafusion::arrow::array::{UInt32Array, UInt64Array};
    let offsets = rb
        .column_by_name("src_offset")
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .ok_or_else(|| MartError::Refused("src_offset missing".into()))?;
    let indexes = rb
        .column_by_name("src_index")
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .ok_or_else(|| MartError::Refused("src_index missing".into()))?;
    let n = rb.num_rows();
    if n == 0 {
        return Err(MartError::Refused("empty batch".into()));
    }
    let at = |i: usize| SourcePos {
        partition,
        offset: offsets.value(i),
        index: indexes.value(i),
    };
    let (mut lo, mut hi) = (at(0), at(0));
    for i in 1..n {
        let p = at(i);
        lo = lo.min(p);
        hi = hi.max(p);
    }
    Ok((lo, hi))
}

fn write_tmp(
    dir: &Path,
    name: &str,
    rb: &RecordBatch,
    compression: Compression,
) -> Result<PathBuf, MartError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = File::create(&tmp)?;
    let props = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(file, rb.schema(), Some(props)).map_err(file_error)?;
    writer.write(rb).map_err(file_error)?;
    let file = writer.into_inner().map_err(file_error)?;
    file.sync_all()?;
    Ok(tmp)
}

/// Writes `rb` to `path` atomically (tmp, fsync, rename, fsync dir).
fn write_parquet(path: &Path, rb: &RecordBatch, compression: Compression) -> Result<(), MartError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("data.parquet");
    let tmp = write_tmp(dir, name, rb, compression)?;
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Every row of a Parquet file.
///
/// # Errors
/// I/O or a damaged file.
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, MartError> {
    let file = File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| file_error(format!("{}: {e}", path.display())))?
        .build()
        .map_err(|e| file_error(format!("{}: {e}", path.display())))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(format!("{}: {e}", path.display())))
}

fn file_rows(path: &Path) -> Result<u64, MartError> {
    let file = File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        warn!(path = %path.display(), error = %e, "unreadable mart file");
        MartError::Refused(format!("{}: {e}", path.display()))
    })?;
    Ok(u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0))
}

#[cfg(test)]
mod tests;
