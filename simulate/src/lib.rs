//! StorePulse load generator: realistic store traffic, to HTTP, Kafka or NDJSON.
//!
//! `storepulse simulate` produces what the chain's emitters would send
//! (contract v1, `shared/contract/EVENTS.md`): sales at the counter and
//! online, returns across stores, stock receipts, stocktakes, transfers,
//! member registrations with aliases, redemptions, erasures, plus the
//! trouble the pipeline must survive: duplicates, late and out-of-order
//! events, malformed events and planted fraud. The same seed gives the same
//! stream, so a run can be replayed offline and compared.
//!
//! Layout:
//! - [`args`]: the command line ([`SimulateArgs`]).
//! - [`generator`]: the pure, seeded [`Generator`] (no I/O, no clock).
//! - `catalogue`, `generator::world`: SKUs, prices, stores, stock and
//!   members as the generator models them.
//! - `wire`, `timefmt`: records to contract JSON, fast.
//! - `pacing`: the token bucket behind `--rate`.
//! - `http`, `kafka`, `file`: the three outputs (the ingest endpoint, the
//!   events topic as a POS producing directly, an NDJSON file); `progress`:
//!   counters and the progress line.
//! - [`run`]: the subcommand, returning a [`SimulateReport`].
//!
//! Wiring it as a subcommand:
//! ```text
//! Command::Simulate(args) => {
//!     let ctrl_c = async { let _ = tokio::signal::ctrl_c().await; };
//!     storepulse_simulate::run(args, ctrl_c).await?;
//! }
//! ```

pub mod args;
mod catalogue;
pub mod error;
mod file;
pub mod generator;
mod http;
mod kafka;
mod pacing;
pub mod progress;
mod timefmt;
mod wire;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use storepulse_core::StoreMaster;
use storepulse_kafka::KafkaConfig;
use tokio::time::Instant;

pub use args::SimulateArgs;
pub use error::SimulateError;
pub use generator::{
    Emitted, FraudPlan, Generator, GeneratorConfig, GeneratorStats, MalformedKind, PlantedFraud,
};
pub use progress::Counters;

/// At most this many planted fraud episodes are listed in the report.
pub const REPORT_FRAUD_LIMIT: usize = 1_000;

/// What a run did; printed as one line of JSON at the end.
#[derive(Debug, Clone, Serialize)]
pub struct SimulateReport {
    /// `http`, `kafka` or `file`.
    pub mode: &'static str,
    /// Events handed to the output (POSTed at least once, produced, or written).
    pub sent: u64,
    /// Events the server acknowledged: 2xx and not rejected, duplicates
    /// included. Kafka: events the broker acknowledged (`acks=all`),
    /// malformed ones included (the broker does not validate; they are
    /// left out of `--acked-out`).
    pub acknowledged: u64,
    /// Events the server reported as duplicates.
    pub duplicates: u64,
    /// Events the server rejected.
    pub rejected: u64,
    /// Of `rejected`, events the generator meant to be valid (a pipeline bug,
    /// or a conflicting registration).
    pub rejected_unexpected: u64,
    /// Malformed events the server accepted (a validation gap).
    pub accepted_malformed: u64,
    /// Retries after 503 / 429.
    pub retried_503: u64,
    /// Retries after connection errors, timeouts, other 5xx.
    pub retried_errors: u64,
    /// Events abandoned at shutdown while the server kept answering 503.
    pub abandoned: u64,
    /// Round trips of successful POSTs (HTTP mode).
    pub ingest_latency: Option<progress::LatencySummary>,
    /// Per event, from handing it to the producer to the broker's
    /// acknowledgement (Kafka mode; `requests` counts the events measured).
    pub produce_latency: Option<progress::LatencySummary>,
    /// Wall-clock seconds.
    pub elapsed: f64,
    /// `sent / elapsed`.
    pub events_per_sec: f64,
    /// Event time of the first regular event (`--start`).
    pub event_time_start: String,
    /// The event clock at the end (before jitter).
    pub event_time_end: String,
    /// What the generator emitted, by kind.
    pub generated: GeneratorStats,
    /// Planted fraud episodes (the first [`REPORT_FRAUD_LIMIT`]).
    pub planted_fraud: Vec<PlantedFraud>,
}

/// Runs `storepulse simulate` until `--duration`, `--events` or `shutdown`,
/// finishing the requests in flight, then prints the report as one line of
/// JSON to stdout (stderr when `--out -` puts the events on stdout) and
/// returns it.
///
/// # Errors
/// Invalid options, an unreadable store master, an output that cannot be
/// written, an ingest endpoint that refuses the key or stays unreachable
/// after `--max-retries` attempts, or Kafka brokers that cannot be reached
/// or do not acknowledge an event within the message timeout.
pub async fn run(
    args: SimulateArgs,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<SimulateReport> {
    run_with_kafka(args, &KafkaConfig::default(), shutdown).await
}

/// [`run`] with the `[kafka]` settings of a configuration (used with
/// `--kafka`: librdkafka properties under `kafka.client` such as security,
/// compression, idempotence; `--kafka` and `--topic-prefix` still give the
/// brokers and the prefix).
///
/// # Errors
/// As [`run`].
pub async fn run_with_kafka(
    args: SimulateArgs,
    kafka_settings: &KafkaConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<SimulateReport> {
    args.validate()?;
    let stores = Arc::new(StoreMaster::load(&args.stores)?);
    let start = args.start.unwrap_or_else(now_millis);
    let generator = Generator::new(args.generator_config(start), stores)?;
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let mode = match (&args.url, &args.kafka) {
        (Some(_), _) => "http",
        (None, Some(_)) => "kafka",
        (None, None) => "file",
    };
    let progress = progress::Progress::start(counters.clone(), started, mode != "file", args.quiet);

    // `validate` made sure exactly one output is given.
    let result = match (&args.url, &args.kafka, &args.out) {
        (Some(url), _, _) => {
            http::run(&args, url, generator, counters.clone(), started, shutdown).await
        }
        (None, Some(brokers), _) => {
            kafka::run(
                &args,
                brokers,
                kafka_settings,
                generator,
                counters.clone(),
                started,
                shutdown,
            )
            .await
        }
        (None, None, Some(path)) => {
            file::run(&args, path, generator, counters.clone(), shutdown).await
        }
        (None, None, None) => Err(SimulateError::option(
            "url",
            "give --url (HTTP), --kafka (brokers) or --out (NDJSON file)",
        )),
    };
    progress.finish().await;
    let generator = result?;

    let elapsed = started.elapsed().as_secs_f64();
    let get = Counters::get;
    let sent = get(&counters.sent);
    let latency = counters.latency_summary();
    let (ingest_latency, produce_latency) = if mode == "kafka" {
        (None, latency)
    } else {
        (latency, None)
    };
    let report = SimulateReport {
        mode,
        sent,
        acknowledged: get(&counters.acknowledged),
        duplicates: get(&counters.duplicates),
        rejected: get(&counters.rejected),
        rejected_unexpected: get(&counters.rejected_unexpected),
        accepted_malformed: get(&counters.accepted_malformed),
        retried_503: get(&counters.retried_503),
        retried_errors: get(&counters.retried_errors),
        abandoned: get(&counters.abandoned),
        ingest_latency,
        produce_latency,
        elapsed,
        events_per_sec: if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        },
        event_time_start: china_time(start),
        event_time_end: china_time(generator.clock()),
        generated: generator.stats().clone(),
        planted_fraud: generator
            .planted_fraud()
            .iter()
            .take(REPORT_FRAUD_LIMIT)
            .cloned()
            .collect(),
    };
    let line = serde_json::to_string(&report)?;
    if args.out.as_deref() == Some(Path::new("-")) {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    tracing::info!(
        sent,
        acknowledged = report.acknowledged,
        rejected = report.rejected,
        elapsed,
        "simulate: done"
    );
    Ok(report)
}

/// Now, to the millisecond (event times are written with milliseconds).
fn now_millis() -> storepulse_core::Ts {
    let now = storepulse_core::time::now();
    now - now.rem_euclid(1_000_000)
}

fn china_time(ts: storepulse_core::Ts) -> String {
    String::from_utf8_lossy(&timefmt::format(ts)).into_owned()
}

#[cfg(test)]
mod tests;
