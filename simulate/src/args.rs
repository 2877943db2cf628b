//! The `storepulse simulate` command line: [`SimulateArgs`].
//!
//! The `///` comments on the fields are the `--help` text. [`SimulateArgs::validate`]
//! is pure and checks everything that can be checked before any file is
//! opened or any connection made.

use std::path::PathBuf;
use std::time::Duration;

use storepulse_core::time::parse_rfc3339;
use storepulse_core::Ts;

use crate::error::SimulateError;
use crate::generator::{FraudPlan, GeneratorConfig};

/// Event clock rate assumed by `--speedup` when `--rate 0` gives none.
pub const NOMINAL_RATE: f64 = 200.0;

/// Longest `--topic-prefix`: Kafka topic names stop at 249 characters and
/// the longest one StorePulse creates is `<prefix>.events.by-member`.
pub const MAX_TOPIC_PREFIX: usize = 249 - ".events.by-member".len();

/// Planted fraud episodes are spread over this many events when neither
/// `--events` nor `--duration` with a `--rate` says how long the run is.
pub const DEFAULT_FRAUD_HORIZON: u64 = 100_000;

/// Generate realistic store traffic (sales, returns, stock, members, planted
/// fraud) and send it to the ingest endpoint, produce it straight to Kafka,
/// or write it as NDJSON.
///
/// The same --seed (with the same --start and options) gives the same event
/// stream. The run stops at --duration, at --events, or at Ctrl-C, after the
/// requests in flight have finished; it then prints a one-line JSON report
/// to stdout (to stderr when the events themselves go to stdout).
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Events per second, paced in batches (token bucket). 0 sends as fast as
    /// the output takes them.
    #[arg(long, value_name = "EVENTS_PER_SEC", default_value_t = 200.0)]
    pub rate: f64,

    /// Stop after this many seconds of wall time. Without it (and without
    /// --events) the run lasts until Ctrl-C.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Stop after this many events, duplicates and malformed ones included
    /// (whichever of --duration and --events comes first).
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,

    /// Random seed: the same seed gives the same event stream, ids included.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Store master data (stores.csv: store_id,name,region,city,lat,lon,franchisee).
    #[arg(long, value_name = "PATH", default_value = "data/stores.csv")]
    pub stores: PathBuf,

    /// Catalogue size: SKU ids like SKU-100234, popularity Zipf-skewed.
    #[arg(long, value_name = "N", default_value_t = 5_000)]
    pub skus: usize,

    /// Member population (8% of members also register an alias id with the
    /// same phone).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub members: usize,

    /// Share of events re-sent byte for byte, as POS terminals do when they
    /// retry (0..1).
    #[arg(long, value_name = "SHARE", default_value_t = 0.01)]
    pub duplicate_share: f64,

    /// Out-of-order arrival: occurred_at is shifted back by a random amount
    /// up to this many seconds of event time.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub jitter: f64,

    /// Share of invalid events (0..1): broken JSON, a missing field, a
    /// fractional or zero quantity, an unknown store, a bad timestamp or
    /// event id, an unknown type or channel, a negative amount, a wrong
    /// version, a redemption without member. The ingest must reject each.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub malformed_share: f64,

    /// Plant fraud at random: each event starts an episode with this
    /// probability. An episode is one member, or one payment account, buying
    /// >= 5,200 yuan in 3-4 stores within 25 minutes of event time.
    #[arg(
        long,
        value_name = "SHARE",
        default_value_t = 0.0,
        conflicts_with = "plant_fraud"
    )]
    pub fraud_share: f64,

    /// Plant exactly N fraud episodes, spread evenly over --events (or
    /// --duration x --rate; else over 100,000 events). The report lists them.
    #[arg(long, value_name = "N")]
    pub plant_fraud: Option<u32>,

    /// Event time of the first event [default: now].
    #[arg(long, value_name = "RFC3339", value_parser = parse_start)]
    pub start: Option<Ts>,

    /// Event time runs this many times faster than wall time at --rate
    /// (e.g. 3600: an hour per second). With --rate 0 the event clock
    /// assumes 200 events/s, so the stream stays the same at any speed.
    /// The ingest rejects events dated ahead of its clock (by default more
    /// than 5 minutes), so with a speedup start far enough in the past.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    pub speedup: f64,

    /// Base URL of the ingest endpoint, e.g. http://127.0.0.1:8080: batches
    /// are POSTed to {url}/v1/events as JSON arrays.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present_any = ["out", "kafka"],
        conflicts_with_all = ["out", "kafka"]
    )]
    pub url: Option<String>,

    /// Write the events as NDJSON to this file instead (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Produce the events straight to the `<prefix>.events` topic of these
    /// Kafka brokers (`host:port,...`) instead, as a POS system producing
    /// directly would: keyed by `store_id`, in the partition of the store
    /// (Kafka's murmur2 partitioner), idempotent with `acks=all`. Missing
    /// topics are created. Malformed events are produced too (the processors
    /// must send them to the dead-letter topic); those whose `store_id`
    /// cannot be read get an empty key and partition 0.
    #[arg(long, value_name = "BROKERS", conflicts_with = "out")]
    pub kafka: Option<String>,

    /// Topic prefix with --kafka: events go to `<prefix>.events`.
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "storepulse",
        conflicts_with_all = ["url", "out"]
    )]
    pub topic_prefix: String,

    /// Events per POST. At a low --rate batches shrink so that events leave
    /// at least every 100 ms; bodies are also cut at 1 MiB. With --kafka,
    /// the events generated and produced between two looks at the rate and
    /// the clock.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub batch: usize,

    /// POSTs in flight at once (HTTP only; with --kafka, up to 50,000 events
    /// wait for their acknowledgement at once).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,

    /// Ingest key, sent as `Authorization: Bearer <key>`.
    #[arg(
        long,
        value_name = "KEY",
        env = "STOREPULSE_INGEST_KEY",
        hide_env_values = true,
        default_value = "storepulse-demo-key"
    )]
    pub key: String,

    /// Write every event the server acknowledged (200, and not listed as
    /// rejected; duplicates included) to this NDJSON file, in the order the
    /// acknowledgements arrived. With --kafka: every event the broker
    /// acknowledged, except the deliberately malformed ones (the HTTP ingest
    /// would have rejected them), so the file is the input of `storepulse
    /// replay` for the expected state.
    #[arg(long, value_name = "FILE", conflicts_with = "out")]
    pub acked_out: Option<PathBuf>,

    /// Seconds before a POST without an answer counts as failed (and is retried).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,

    /// Attempts per batch after connection errors or 5xx answers other than
    /// 503 before the run fails. 503 and 429 are retried for as long as the
    /// server asks (Retry-After), until shutdown.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_retries: u32,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_start(text: &str) -> Result<Ts, String> {
    parse_rfc3339(text).ok_or_else(|| format!("{text:?} is not an RFC 3339 timestamp with offset"))
}

impl SimulateArgs {
    /// Arguments with every default, writing to `out` (for tests and callers
    /// that build arguments in code).
    pub fn to_file(out: impl Into<PathBuf>) -> Self {
        Self {
            out: Some(out.into()),
            ..Self::base()
        }
    }

    /// Arguments with every default, sending to `url`.
    pub fn to_url(url: impl Into<String>) -> Self {
        Self {
            url: Some(url.into()),
            ..Self::base()
        }
    }

    /// Arguments with every default, producing to the Kafka `brokers`
    /// (topic prefix `storepulse`).
    pub fn to_kafka(brokers: impl Into<String>) -> Self {
        Self {
            kafka: Some(brokers.into()),
            ..Self::base()
        }
    }

    fn base() -> Self {
        Self {
            rate: 200.0,
            duration: None,
            events: None,
            seed: 42,
            stores: PathBuf::from("data/stores.csv"),
            skus: 5_000,
            members: 20_000,
            duplicate_share: 0.01,
            jitter: 0.0,
            malformed_share: 0.0,
            fraud_share: 0.0,
            plant_fraud: None,
            start: None,
            speedup: 1.0,
            url: None,
            out: None,
            kafka: None,
            topic_prefix: "storepulse".into(),
            batch: 100,
            concurrency: 4,
            key: "storepulse-demo-key".into(),
            acked_out: None,
            timeout: 30.0,
            max_retries: 10,
            quiet: false,
        }
    }

    /// Checks the options against each other.
    ///
    /// # Errors
    /// The first option out of range, and why.
    pub fn validate(&self) -> Result<(), SimulateError> {
        fn bad(option: &'static str, reason: impl Into<String>) -> SimulateError {
            SimulateError::option(option, reason)
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(bad("rate", "must be a number >= 0"));
        }
        if let Some(d) = self.duration {
            if !d.is_finite() || d <= 0.0 {
                return Err(bad("duration", "must be a number of seconds > 0"));
            }
        }
        if self.events == Some(0) {
            return Err(bad("events", "must be at least 1"));
        }
        if !self.speedup.is_finite() || self.speedup <= 0.0 {
            return Err(bad("speedup", "must be a number > 0"));
        }
        if !self.jitter.is_finite() || self.jitter < 0.0 {
            return Err(bad("jitter", "must be a number of seconds >= 0"));
        }
        if !(1..=100_000).contains(&self.batch) {
            return Err(bad("batch", "must be between 1 and 100000"));
        }
        if !(1..=1_024).contains(&self.concurrency) {
            return Err(bad("concurrency", "must be between 1 and 1024"));
        }
        if !self.timeout.is_finite() || self.timeout <= 0.0 {
            return Err(bad("timeout", "must be a number of seconds > 0"));
        }
        match (&self.url, &self.out, &self.kafka) {
            (None, None, None) => {
                return Err(bad(
                    "url",
                    "give --url (HTTP), --kafka (brokers) or --out (NDJSON file)",
                ))
            }
            (Some(_), Some(_), _) | (_, Some(_), Some(_)) | (Some(_), _, Some(_)) => {
                return Err(bad("out", "give only one of --url, --kafka and --out"))
            }
            (Some(url), None, None) => {
                if !url.starts_with("http://") {
                    return Err(bad(
                        "url",
                        format!("{url:?}: only http:// URLs are supported"),
                    ));
                }
                reqwest::Url::parse(url).map_err(|e| bad("url", format!("{url:?}: {e}")))?;
            }
            (None, Some(_), None) => {
                if self.acked_out.is_some() {
                    return Err(bad(
                        "acked-out",
                        "needs --url or --kafka (a file has no acknowledgements)",
                    ));
                }
            }
            (None, None, Some(brokers)) => {
                if brokers.trim().is_empty() {
                    return Err(bad("kafka", "give the brokers as host:port[,host:port...]"));
                }
                let prefix = &self.topic_prefix;
                if prefix.is_empty()
                    || !prefix
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                {
                    return Err(bad(
                        "topic-prefix",
                        format!("{prefix:?}: must be non-empty [A-Za-z0-9._-]"),
                    ));
                }
                if prefix.len() > MAX_TOPIC_PREFIX {
                    return Err(bad(
                        "topic-prefix",
                        format!("must be at most {MAX_TOPIC_PREFIX} characters (Kafka topic names stop at 249)"),
                    ));
                }
            }
        }
        self.generator_config(self.start.unwrap_or(GeneratorConfig::default().start))
            .validate()
    }

    /// The generator's configuration, with event time starting at `start`.
    pub fn generator_config(&self, start: Ts) -> GeneratorConfig {
        let clock_rate = if self.rate > 0.0 {
            self.rate
        } else {
            NOMINAL_RATE
        };
        let fraud = match (self.plant_fraud, self.fraud_share) {
            (Some(episodes), _) => FraudPlan::Count {
                episodes,
                over_events: self.planned_events().unwrap_or(DEFAULT_FRAUD_HORIZON),
            },
            (None, share) if share != 0.0 => FraudPlan::Share(share),
            _ => FraudPlan::None,
        };
        GeneratorConfig {
            seed: self.seed,
            skus: self.skus,
            members: self.members,
            duplicate_share: self.duplicate_share,
            malformed_share: self.malformed_share,
            jitter: secs(self.jitter),
            fraud,
            start,
            mean_gap: secs(self.speedup / clock_rate),
        }
    }

    /// How many events the run will send, when that is known in advance.
    pub fn planned_events(&self) -> Option<u64> {
        let by_duration = match self.duration {
            Some(d) if self.rate > 0.0 => Some((d * self.rate).ceil() as u64),
            _ => None,
        };
        match (self.events, by_duration) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Events per batch: `--batch`, smaller at low rates so that a batch
    /// leaves at least every 100 ms.
    pub fn effective_batch(&self) -> usize {
        if self.rate > 0.0 {
            self.batch.min(((self.rate / 10.0).ceil() as usize).max(1))
        } else {
            self.batch
        }
    }

    pub(crate) fn duration(&self) -> Option<Duration> {
        self.duration.map(secs)
    }

    pub(crate) fn timeout(&self) -> Duration {
        secs(self.timeout)
    }
}

/// Seconds to a `Duration`, saturating (inputs are validated as finite and >= 0).
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(argv: &[&str]) -> Result<SimulateArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("simulate").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_and_flags() {
        let a = parse(&["--out", "-"]).unwrap();
        assert_eq!(a.rate, 200.0);
        assert_eq!(
            (a.seed, a.skus, a.members, a.batch, a.concurrency),
            (42, 5_000, 20_000, 100, 4)
        );
        assert_eq!(a.duplicate_share, 0.01);
        assert_eq!(a.key, "storepulse-demo-key");
        a.validate().unwrap();

        let a = parse(&[
            "--url",
            "http://127.0.0.1:8080",
            "--rate",
            "0",
            "--events",
            "1000",
            "--start",
            "2026-11-25T08:00:00+08:00",
            "--plant-fraud",
            "3",
            "--jitter",
            "90",
            "--acked-out",
            "acked.ndjson",
        ])
        .unwrap();
        a.validate().unwrap();
        let cfg = a.generator_config(a.start.unwrap());
        assert_eq!(
            cfg.fraud,
            FraudPlan::Count {
                episodes: 3,
                over_events: 1_000
            }
        );
        assert_eq!(cfg.jitter, Duration::from_secs(90));
        // --rate 0: the event clock assumes 200 events/s.
        assert_eq!(cfg.mean_gap, Duration::from_millis(5));
    }

    #[test]
    fn conflicts_are_refused() {
        assert!(parse(&[]).is_err(), "an output is required");
        assert!(parse(&["--url", "http://x", "--out", "f"]).is_err());
        assert!(parse(&["--out", "f", "--acked-out", "a"]).is_err());
        assert!(parse(&["--out", "f", "--plant-fraud", "2", "--fraud-share", "0.1"]).is_err());
        assert!(parse(&["--out", "f", "--start", "yesterday"]).is_err());
        for bad in [
            &["--out", "f", "--duplicate-share", "2"][..],
            &["--out", "f", "--rate=-1"],
            &["--out", "f", "--speedup", "0"],
            &["--out", "f", "--batch", "0"],
            &["--url", "https://x"],
            &["--url", "ftp://x"],
        ] {
            let a = parse(bad).unwrap();
            assert!(a.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kafka_output() {
        let a = parse(&["--kafka", "127.0.0.1:9092"]).unwrap();
        assert_eq!(a.kafka.as_deref(), Some("127.0.0.1:9092"));
        assert_eq!(a.topic_prefix, "storepulse");
        a.validate().unwrap();
        let a = parse(&[
            "--kafka",
            "b1:9092,b2:9092",
            "--topic-prefix",
            "bench1",
            "--acked-out",
            "acked.ndjson",
        ])
        .unwrap();
        assert_eq!(a.topic_prefix, "bench1");
        a.validate().unwrap();
        assert!(parse(&["--kafka", "b:9092", "--out", "f"]).is_err());
        assert!(parse(&["--kafka", "b:9092", "--url", "http://x"]).is_err());
        for other in [&["--url", "http://x"][..], &["--out", "f"], &[]] {
            let mut argv = other.to_vec();
            argv.extend(["--topic-prefix", "p"]);
            assert!(parse(&argv).is_err(), "--topic-prefix needs --kafka");
        }
        // The default prefix does not count as given.
        parse(&["--url", "http://x"]).unwrap().validate().unwrap();
        for bad in [
            &["--kafka", " "][..],
            &["--kafka", "b:9092", "--topic-prefix", ""],
            &["--kafka", "b:9092", "--topic-prefix", "a/b"],
        ] {
            let a = parse(bad).unwrap();
            assert!(a.validate().is_err(), "{bad:?}");
        }
        let mut a = SimulateArgs::to_kafka("b:9092");
        a.topic_prefix = "p".repeat(MAX_TOPIC_PREFIX);
        a.validate().unwrap();
        a.topic_prefix.push('p');
        assert!(a.validate().is_err());
        a.topic_prefix = "p".into();
        a.out = Some("f".into());
        assert!(a.validate().is_err(), "two outputs");
    }

    #[test]
    fn low_rates_shrink_batches() {
        let mut a = SimulateArgs::to_url("http://127.0.0.1:1");
        assert_eq!(a.effective_batch(), 20);
        a.rate = 5_000.0;
        assert_eq!(a.effective_batch(), 100);
        a.rate = 0.0;
        assert_eq!(a.effective_batch(), 100);
    }

    #[test]
    fn help_renders() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--rate",
            "--acked-out",
            "--plant-fraud",
            "--speedup",
            "--malformed-share",
            "--kafka",
            "--topic-prefix",
        ] {
            assert!(help.contains(flag), "{flag}");
        }
    }
}
