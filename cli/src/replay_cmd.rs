//! `storepulse replay`: the offline path, with a progress bar on a terminal.
//!
//! The events come from an NDJSON file (`--input`) or from a whole Kafka
//! topic (`--from-topic`). A topic is first read into `<out>/events.ndjson`
//! with `storepulse_kafka::dump::topic_to_ndjson` (every partition up to
//! its end as of the start of the read, records ordered by broker
//! timestamp, then partition and offset), using the brokers and client
//! settings of the `[kafka]` section; that file is then replayed exactly as
//! `--input` would replay it, and stays there as a record of what was read.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use storepulse_core::{EventParser, StoreMaster};
use storepulse_kafka::KafkaConfig;

use crate::config::Config;

/// Where `--from-topic` writes the topic's records, under `--out`.
pub const TOPIC_DUMP_FILE: &str = "events.ndjson";

/// Options of `storepulse replay`: `--input FILE` or `--from-topic TOPIC`
/// (exactly one), and `--out DIR`.
#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// NDJSON file of contract events, one per line.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "from_topic",
        conflicts_with = "from_topic"
    )]
    pub input: Option<PathBuf>,
    /// Replay a whole Kafka topic instead of a file, e.g.
    /// `storepulse.events`: every record up to each partition's end when
    /// the read starts, in broker-timestamp order. The brokers come from
    /// `[kafka] brokers` (or STOREPULSE__KAFKA__BROKERS); the records are
    /// first written to `<out>/events.ndjson` (replacing any file there),
    /// which is then replayed like --input.
    #[arg(long, value_name = "TOPIC")]
    pub from_topic: Option<String>,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Threads in all. With 1, one thread reads, parses and applies. With
    /// N > 1, N-1 threads parse while one applies in file order (and a light
    /// reader thread feeds them). Default: the number of cores.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Where the events of a replay come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source<'a> {
    File(&'a Path),
    Topic(&'a str),
}

impl ReplayArgs {
    /// The event source, checked against the configuration before anything
    /// is read.
    fn source<'a>(&'a self, kafka: &KafkaConfig) -> anyhow::Result<Source<'a>> {
        match (&self.input, &self.from_topic) {
            (Some(path), None) => Ok(Source::File(path)),
            (None, Some(topic)) => {
                if topic.trim().is_empty() {
                    anyhow::bail!("--from-topic: give a topic name, e.g. storepulse.events");
                }
                if !kafka.enabled() {
                    anyhow::bail!(
                        "replay --from-topic {topic}: no Kafka brokers configured; set \
                         `[kafka] brokers` in the config file or \
                         STOREPULSE__KAFKA__BROKERS=host:port"
                    );
                }
                Ok(Source::Topic(topic))
            }
            (Some(_), Some(_)) => anyhow::bail!("give either --input or --from-topic, not both"),
            (None, None) => anyhow::bail!("give --input FILE or --from-topic TOPIC"),
        }
    }
}

/// Runs a replay and prints the summary as JSON.
///
/// # Errors
/// Unreadable input, unwritable output, bad store master; with
/// `--from-topic`, no `[kafka] brokers`, or a topic that cannot be read
/// (brokers unreachable, topic missing, a record spanning several lines).
pub fn run(config: &Config, args: &ReplayArgs) -> anyhow::Result<()> {
    let source = args.source(&config.kafka)?;
    let stores = Arc::new(StoreMaster::load(&config.storage.stores_csv)?);
    let parser = EventParser::new(stores);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let input = match source {
        Source::File(path) => path.to_owned(),
        Source::Topic(topic) => dump_topic(&config.kafka, topic, &args.out)?,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = Instant::now();
    let (summary, _) = storepulse_runtime::replay::replay(
        &input,
        &args.out,
        &parser,
        &config.inventory,
        &config.members,
        threads,
        |done, total| {
            if let Some(bar) = &bar {
                bar.set_length(total);
                bar.set_position(done);
            }
        },
    )
    .with_context(|| format!("replaying {}", input.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replay: {} lines in {secs:.2}s ({:.0} lines/s, {threads} threads) -> {}",
        summary.lines,
        summary.lines as f64 / secs.max(1e-9),
        args.out.display()
    );
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// Reads `topic` whole into `<out>/events.ndjson` and returns that path.
fn dump_topic(kafka: &KafkaConfig, topic: &str, out: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join(TOPIC_DUMP_FILE);
    let started = Instant::now();
    let summary = storepulse_kafka::dump::topic_to_ndjson(kafka, topic, &path)
        .with_context(|| format!("reading topic {topic} from {}", kafka.brokers))?;
    eprintln!(
        "replay: read {} records of {topic} ({} partitions) in {:.2}s -> {}",
        summary.records,
        summary.partitions,
        started.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReplayArgs,
    }

    fn parse(argv: &[&str]) -> Result<ReplayArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("replay").chain(argv.iter().copied())).map(|c| c.args)
    }

    fn kafka(brokers: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn input_and_from_topic_are_exclusive_and_one_is_required() {
        let a = parse(&["--input", "e.ndjson", "--out", "o"]).unwrap();
        assert_eq!(
            a.source(&KafkaConfig::default()).unwrap(),
            Source::File(Path::new("e.ndjson"))
        );
        let a = parse(&["--from-topic", "storepulse.events", "--out", "o"]).unwrap();
        assert_eq!(
            a.source(&kafka("127.0.0.1:9092")).unwrap(),
            Source::Topic("storepulse.events")
        );
        assert!(parse(&["--out", "o"]).is_err(), "a source is required");
        assert!(parse(&["--input", "e", "--from-topic", "t", "--out", "o"]).is_err());
    }

    #[test]
    fn from_topic_needs_brokers() {
        let a = parse(&["--from-topic", "storepulse.events", "--out", "o"]).unwrap();
        let error = a.source(&KafkaConfig::default()).unwrap_err().to_string();
        assert!(error.contains("[kafka] brokers"), "{error}");
        assert!(error.contains("STOREPULSE__KAFKA__BROKERS"), "{error}");
        let a = parse(&["--from-topic", " ", "--out", "o"]).unwrap();
        assert!(a.source(&kafka("b:9092")).is_err());
    }

    #[test]
    fn run_refuses_a_topic_without_brokers_before_reading_anything() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let args = ReplayArgs {
            input: None,
            from_topic: Some("storepulse.events".into()),
            out: out.clone(),
            threads: Some(1),
        };
        let error = run(&Config::default(), &args).unwrap_err().to_string();
        assert!(error.contains("[kafka] brokers"), "{error}");
        assert!(!out.exists(), "nothing written");
    }
}
