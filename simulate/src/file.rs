//! NDJSON output: events written to a file or stdout, one per line.
//!
//! Generation is CPU-bound, so it runs on a blocking thread
//! (`spawn_blocking`) in chunks of up to 4096 events, into 256 KiB buffers
//! that a second thread writes out while the next one fills (a slow disk
//! then costs throughput only when it is slower than the generator). When
//! paced (`--rate` > 0) each chunk is handed over, written and flushed as it
//! is made, so a reader following the file sees events as they happen. The async side only
//! waits for the thread or for shutdown, which it signals through an atomic
//! flag checked between chunks. A closed pipe on stdout (`| head`) ends the
//! run normally.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::args::SimulateArgs;
use crate::error::SimulateError;
use crate::generator::Generator;
use crate::pacing::TokenBucket;
use crate::progress::Counters;

/// Most events generated between two looks at the clock and the stop flag.
const CHUNK: usize = 4_096;
/// Unpaced output is written in pieces of about this size.
const WRITE_AT: usize = 256 * 1024;
/// Longest sleep between two looks at the stop flag while pacing.
const NAP: Duration = Duration::from_millis(100);
/// Filled buffers waiting for the writer thread.
const BUFFERS: usize = 2;

/// Where the lines go.
enum Target {
    Stdout,
    File(File),
}

impl Target {
    fn open(path: &Path) -> Result<Self, SimulateError> {
        if path == Path::new("-") {
            return Ok(Self::Stdout);
        }
        File::create(path)
            .map(Self::File)
            .map_err(|source| SimulateError::Output {
                path: path.to_owned(),
                source,
            })
    }

    /// The writer, on the thread that writes (stdout's lock stays there).
    fn writer(self) -> Box<dyn Write> {
        match self {
            Self::Stdout => Box::new(std::io::stdout().lock()),
            Self::File(file) => Box::new(file),
        }
    }
}

/// Runs the file output until the limits or `shutdown`; returns the
/// generator for its statistics.
///
/// # Errors
/// The file cannot be created or written.
pub(crate) async fn run(
    args: &SimulateArgs,
    path: &Path,
    generator: Generator,
    counters: Arc<Counters>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Generator, SimulateError> {
    let stop = Arc::new(AtomicBool::new(false));
    let limits = Limits {
        rate: args.rate,
        events: args.events,
        duration: args.duration(),
    };
    let path: PathBuf = path.to_owned();
    tracing::info!(path = %path.display(), rate = args.rate, "simulate: writing NDJSON");
    let mut task = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || write_loop(generator, &path, limits, &stop, &counters))
    };
    tokio::pin!(shutdown);
    let done = tokio::select! {
        done = &mut task => done,
        _ = &mut shutdown => {
            stop.store(true, Ordering::Relaxed);
            task.await
        }
    };
    done.map_err(|join| SimulateError::Client(format!("writer thread failed: {join}")))?
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    rate: f64,
    events: Option<u64>,
    duration: Option<Duration>,
}

fn write_loop(
    mut generator: Generator,
    path: &Path,
    limits: Limits,
    stop: &AtomicBool,
    counters: &Counters,
) -> Result<Generator, SimulateError> {
    let target = Target::open(path)?;
    let paced = limits.rate > 0.0;
    let chunk = if paced {
        ((limits.rate / 20.0).ceil() as usize).clamp(1, CHUNK)
    } else {
        CHUNK
    };
    let mut bucket = TokenBucket::new(limits.rate, chunk);
    let started = Instant::now();
    let mut remaining = limits.events.unwrap_or(u64::MAX);
    let out_of_time = |now: Duration| limits.duration.is_some_and(|d| now >= d);
    // Filled buffers go to the writer thread, emptied ones come back.
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    let new_buffer = || Vec::with_capacity(WRITE_AT + 64 * 1024);

    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> std::io::Result<()> {
            let mut out = target.writer();
            for mut buf in full_rx {
                out.write_all(&buf)?;
                if paced {
                    out.flush()?;
                }
                buf.clear();
                // The generator may have finished; then the buffer is dropped.
                let _ = empty_tx.send(buf);
            }
            out.flush()
        });

        let mut buf = new_buffer();
        'run: while remaining > 0
            && !stop.load(Ordering::Relaxed)
            && !out_of_time(started.elapsed())
        {
            let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(chunk);
            let mut wait = bucket.take(n, started.elapsed());
            while !wait.is_zero() {
                let nap = wait.min(NAP);
                std::thread::sleep(nap);
                wait -= nap;
                if stop.load(Ordering::Relaxed) || out_of_time(started.elapsed()) {
                    break 'run;
                }
            }
            for _ in 0..n {
                generator.next_into(&mut buf);
                buf.push(b'\n');
            }
            remaining -= n as u64;
            Counters::add(&counters.sent, n as u64);
            if paced || buf.len() >= WRITE_AT {
                let next = empty_rx.try_recv().unwrap_or_else(|_| new_buffer());
                if full_tx.send(std::mem::replace(&mut buf, next)).is_err() {
                    break; // The writer failed; its error is reported below.
                }
            }
        }
        if !buf.is_empty() {
            let _ = full_tx.send(buf);
        }
        drop(full_tx);
        writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("writer thread panicked")))
    });
    match written {
        Ok(()) => Ok(generator),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            tracing::info!("simulate: output closed by the reader");
            Ok(generator)
        }
        Err(source) => Err(SimulateError::Output {
            path: path.to_owned(),
            source,
        }),
    }
}
