//! Run counters and the once-a-second progress line on stderr.
//!
//! The sender tasks and the file writer update [`Counters`] (relaxed atomics:
//! each counter is read on its own). Unless `--quiet`, a task prints
//! `simulate: 12.3s sent=24600 acked=24580 dup=245 rejected=20 rate=2000/s`
//! every second: rewritten in place with `\r` when stderr is a terminal,
//! one line per second otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What has happened so far in a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events handed to the output (POSTed at least once, or written).
    pub sent: AtomicU64,
    /// Events the server acknowledged (including duplicates).
    pub acknowledged: AtomicU64,
    /// Events the server reported as duplicates.
    pub duplicates: AtomicU64,
    /// Events the server rejected.
    pub rejected: AtomicU64,
    /// Valid events the server rejected anyway.
    pub rejected_unexpected: AtomicU64,
    /// Malformed events the server accepted anyway.
    pub accepted_malformed: AtomicU64,
    /// Retries after 503 or 429.
    pub retried_503: AtomicU64,
    /// Retries after connection errors, timeouts and other 5xx answers.
    pub retried_errors: AtomicU64,
    /// Events given up on at shutdown (the server kept refusing them).
    pub abandoned: AtomicU64,
    /// Round-trip times of successful POSTs (Kafka: of acknowledged events,
    /// sampled), in microseconds.
    pub latencies_us: std::sync::Mutex<Vec<u32>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Records the round trip of one successful POST.
    pub(crate) fn record_latency(&self, elapsed: std::time::Duration) {
        let us = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(us);
    }

    /// Percentiles of the recorded round trips.
    pub(crate) fn latency_summary(&self) -> Option<LatencySummary> {
        let mut v = self
            .latencies_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let pick = |q: f64| f64::from(v[((v.len() - 1) as f64 * q).round() as usize]) / 1000.0;
        Some(LatencySummary {
            requests: v.len() as u64,
            p50_ms: pick(0.50),
            p90_ms: pick(0.90),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
        })
    }
}

/// Latencies in ms: round trips of successful ingest POSTs (send to answer
/// read), or, with Kafka, of events (produce to acknowledgement; a uniform
/// sample past a million events). `requests` is how many were measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencySummary {
    pub requests: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The progress printer; [`Progress::finish`] stops it.
pub(crate) struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts printing unless `quiet`. `acks` (HTTP and Kafka) adds the
    /// acknowledgement counts.
    pub fn start(counters: Arc<Counters>, started: Instant, acks: bool, quiet: bool) -> Self {
        if quiet {
            return Self {
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let terminal = std::io::stderr().is_terminal();
            let mut ticks =
                tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
            let (mut last_sent, mut last_at) = (0, started);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {}
                }
                let now = Instant::now();
                let sent = Counters::get(&counters.sent);
                let rate = (sent - last_sent.min(sent)) as f64
                    / now.duration_since(last_at).as_secs_f64().max(1e-3);
                (last_sent, last_at) = (sent, now);
                let line = progress_line(&counters, now.duration_since(started), rate, acks);
                let mut err = std::io::stderr().lock();
                // Progress is best effort: a closed stderr must not stop the run.
                let _ = if terminal {
                    write!(err, "\r{line}\x1b[K")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
            }
            if terminal {
                let _ = writeln!(std::io::stderr());
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the printer (ending a `\r` line with a newline).
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn progress_line(c: &Counters, elapsed: Duration, rate: f64, acks: bool) -> String {
    let mut line = format!(
        "simulate: {:.1}s sent={}",
        elapsed.as_secs_f64(),
        Counters::get(&c.sent)
    );
    if acks {
        line.push_str(&format!(
            " acked={} dup={} rejected={}",
            Counters::get(&c.acknowledged),
            Counters::get(&c.duplicates),
            Counters::get(&c.rejected)
        ));
        let retried = Counters::get(&c.retried_503) + Counters::get(&c.retried_errors);
        if retried > 0 {
            line.push_str(&format!(" retried={retried}"));
        }
    }
    line.push_str(&format!(" rate={rate:.0}/s"));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let c = Counters::default();
        Counters::add(&c.sent, 24_600);
        Counters::add(&c.acknowledged, 24_580);
        Counters::add(&c.duplicates, 245);
        Counters::add(&c.rejected, 20);
        assert_eq!(
            progress_line(&c, Duration::from_millis(12_340), 2_000.0, true),
            "simulate: 12.3s sent=24600 acked=24580 dup=245 rejected=20 rate=2000/s"
        );
        assert_eq!(
            progress_line(&c, Duration::from_millis(500), 10.4, false),
            "simulate: 0.5s sent=24600 rate=10/s"
        );
    }
}
