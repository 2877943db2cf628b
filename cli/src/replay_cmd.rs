//! `storepulse replay`: the offline path, with a progress bar on a terminal.
//!
//! The events come from an NDJSON file (`--input`) or from a whole Kafka
//! topic (`--from-topic`). A topic is first read into `<out>/events.ndjson`
//! with `storepulse_kafka::dump::topic_to_ndjson` (every partition up to
//! its end as of the start of the read, records ordered by broker
//! timestamp, then partition and offset), using the brokers and client
//! settings of the `[kafka]` section; that file is then replayed exactly as
//! `--input` would replay it, and stays there as a record of what was read.
//!
//! Fraud rules: `--fraud-rules FILE` (default `[fraud] rules_file`; RULES.md's
//! defaults when that file is missing, as `run` does). `--rules FILE`
//! backtests a candidate rule set next to them: `backtest.json`,
//! `backtest_alerts.ndjson`, and a table on stderr.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use storepulse_core::{EventParser, StoreMaster};
use storepulse_kafka::KafkaConfig;
use storepulse_mart::derive::RowDeriver;
use storepulse_mart::embedded::ParquetMart;
use storepulse_mart::rows::MartBatch;
use storepulse_processors::fraud::RuleSet;
use storepulse_runtime::replay::{Backtest, MartReplay, ReplaySetup};
use storepulse_runtime::rules_file::{self, RulesHandle};

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
    /// The fraud rules in force (`[[rule]]` tables). Default: `[fraud]
    /// rules_file` of the config (RULES.md's defaults when it is missing);
    /// a file named here must exist.
    #[arg(long, value_name = "FILE")]
    pub fraud_rules: Option<PathBuf>,
    /// A candidate rule set to backtest: what it would have flagged on
    /// these events next to what the rules in force flagged
    /// (`<out>/backtest.json`, `<out>/backtest_alerts.ndjson`, a table on
    /// stderr).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
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
    let setup = ReplaySetup {
        inventory: config.inventory.clone(),
        members: config.members.clone(),
        fraud: config.fraud.processor(),
        rules: current_rules(config, args.fraud_rules.as_deref(), &stores)?,
        candidate: match &args.rules {
            Some(path) => Some(
                rules_file::read(path, &stores)
                    .map_err(anyhow::Error::msg)
                    .context("--rules")?
                    .with_context(|| format!("--rules: {} does not exist", path.display()))?
                    .0,
            ),
            None => None,
        },
    };
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
    // `<out>/mart`: the same rows the live mart gets, written by the same
    // Parquet writer (a fresh directory: positions of an earlier run would
    // hide rows).
    let mart = if config.mart.enabled {
        let dir = args.out.join("mart");
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", dir.display()));
            }
            _ => {}
        }
        // Merges inline: replay is a batch job, and its files must be
        // complete when it exits.
        Some(
            ParquetMart::open(&dir)
                .with_context(|| format!("opening {}", dir.display()))?
                .with_inline_merges(),
        )
    } else {
        None
    };
    let mut write_mart = |batch: MartBatch| -> Result<(), String> {
        if let Some(mart) = &mart {
            mart.write_blocking(&batch).map_err(|e| e.to_string())?;
            for erasure in &batch.erasures {
                mart.erase_blocking(erasure).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    };
    let mart_replay = mart.is_some().then(|| MartReplay {
        deriver: RowDeriver::new(parser.stores().clone()),
        sink: &mut write_mart,
    });
    let replayed = storepulse_runtime::replay::replay_with_mart(
        &input,
        &args.out,
        &parser,
        &setup,
        threads,
        |done, total| {
            if let Some(bar) = &bar {
                bar.set_length(total);
                bar.set_position(done);
            }
        },
        mart_replay,
    )
    .with_context(|| format!("replaying {}", input.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = replayed.summary;
    let secs = started.elapsed().as_secs_f64();
    if let Some(report) = &replayed.backtest {
        eprint!("{}", backtest_table(report));
    }
    eprintln!(
        "replay: {} lines in {secs:.2}s ({:.0} lines/s, {threads} threads) -> {}",
        summary.lines,
        summary.lines as f64 / secs.max(1e-9),
        args.out.display()
    );
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// The rules in force: `--fraud-rules` (must exist), else `[fraud]
/// rules_file` (RULES.md's defaults when missing, as `run` does).
fn current_rules(
    config: &Config,
    explicit: Option<&Path>,
    stores: &Arc<StoreMaster>,
) -> anyhow::Result<RuleSet> {
    match explicit {
        Some(path) => Ok(rules_file::read(path, stores)
            .map_err(anyhow::Error::msg)
            .context("--fraud-rules")?
            .with_context(|| format!("--fraud-rules: {} does not exist", path.display()))?
            .0),
        None => Ok(RulesHandle::load(&config.fraud.rules_file, stores)
            .map_err(anyhow::Error::msg)
            .context("fraud.rules_file")?
            .0),
    }
}

/// The backtest as a table for people: one row per rule.
pub fn backtest_table(report: &Backtest) -> String {
    let width = report.keys().map(String::len).max().unwrap_or(4).max(4);
    let mut out = format!(
        "backtest: {:<width$} {:>8} {:>9} {:>6} {:>12} {:>14}\n",
        "rule", "current", "candidate", "both", "only_current", "only_candidate"
    );
    for (rule, r) in report {
        out.push_str(&format!(
            "backtest: {rule:<width$} {:>8} {:>9} {:>6} {:>12} {:>14}\n",
            r.current,
            r.candidate,
            r.both,
            r.only_current.len(),
            r.only_candidate.len()
        ));
    }
    out
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

    fn sale(id: &str, minute: u32, store: &str, total: u64) -> String {
        serde_json::json!({
            "v": 1, "event_id": id, "event_type": "sale",
            "occurred_at": format!("2026-11-25T10:{minute:02}:00+08:00"), "store_id": store,
            "channel": "pos", "order_id": format!("o-{id}"), "member_id": "M1",
            "lines": [{"sku": "A", "qty": 1, "unit_price_cents": total}],
            "total_cents": total, "payment": {"method": "cash"},
        })
        .to_string()
    }

    fn multi_store_rule(total_cents: u64) -> String {
        format!(
            "[[rule]]\nname = \"multi_store_large_purchase\"\nkey = \"member\"\nwindow_minutes = 30\n[rule.when]\ntotal_cents = {total_cents}\ndistinct_stores = 3\n"
        )
    }

    #[test]
    fn fraud_rules_and_a_candidate_come_from_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("events.ndjson");
        // M1: 450,000 in 3 stores within 10 minutes.
        let lines = [
            sale("a", 0, "KM-001", 150_000),
            sale("b", 5, "KM-002", 150_000),
            sale("c", 10, "KM-003", 150_000),
        ];
        std::fs::write(&input, lines.join("\n")).unwrap();
        let (current, candidate) = (
            dir.path().join("current.toml"),
            dir.path().join("cand.toml"),
        );
        std::fs::write(&current, multi_store_rule(500_000)).unwrap();
        std::fs::write(&candidate, multi_store_rule(400_000)).unwrap();
        let mut config = Config::default();
        config.storage.stores_csv =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        config.fraud.rules_file = dir.path().join("missing.toml");
        let out = dir.path().join("out");
        let args = ReplayArgs {
            input: Some(input.clone()),
            from_topic: None,
            out: out.clone(),
            threads: Some(1),
            fraud_rules: Some(current.clone()),
            rules: Some(candidate.clone()),
        };
        run(&config, &args).unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("backtest.json")).unwrap()).unwrap();
        let multi = &report["multi_store_large_purchase"];
        assert_eq!(
            (multi["current"].as_u64(), multi["candidate"].as_u64()),
            (Some(0), Some(1))
        );
        assert_eq!(multi["only_candidate"].as_array().unwrap().len(), 1);
        assert_eq!(
            report.as_object().unwrap().len(),
            1,
            "only the rules named in the files"
        );
        let alerts = std::fs::read_to_string(out.join("backtest_alerts.ndjson")).unwrap();
        assert!(alerts.contains(r#""event_ids":["a","b","c"]"#), "{alerts}");

        // Without --fraud-rules: [fraud] rules_file, here missing, so
        // RULES.md's defaults (500,000: no alert).
        let args = ReplayArgs {
            fraud_rules: None,
            rules: None,
            ..args
        };
        run(&config, &args).unwrap();
        assert!(
            !out.join("backtest.json").exists() && !out.join("backtest_alerts.ndjson").exists(),
            "no --rules: the earlier backtest is gone"
        );
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(
            summary["fraud"]["standing"]["multi_store_large_purchase"],
            0
        );
        assert_eq!(
            summary["fraud"]["standing"]["points_overdraft"], 0,
            "the defaults: 4 rules"
        );
        config.fraud.rules_file = candidate.clone();
        run(&config, &args).unwrap();
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(
            summary["fraud"]["standing"],
            serde_json::json!({"multi_store_large_purchase": 1})
        );

        // A candidate or rules file named on the command line must exist.
        for (fraud_rules, rules, flag) in [
            (Some(dir.path().join("nope.toml")), None, "--fraud-rules"),
            (None, Some(dir.path().join("nope.toml")), "--rules"),
        ] {
            let args = ReplayArgs {
                fraud_rules,
                rules,
                ..args.clone()
            };
            let error = format!("{:#}", run(&config, &args).unwrap_err());
            assert!(
                error.contains(flag) && error.contains("does not exist"),
                "{error}"
            );
        }
    }

    #[test]
    fn backtest_table_has_a_row_per_rule() {
        let mut report = Backtest::new();
        report.insert(
            "multi_store_large_purchase".into(),
            storepulse_runtime::replay::BacktestRule {
                current: 2,
                candidate: 3,
                only_current: vec!["x".into()],
                only_candidate: vec!["y".into(), "z".into()],
                both: 1,
            },
        );
        let table = backtest_table(&report);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0][1..],
            [
                "rule",
                "current",
                "candidate",
                "both",
                "only_current",
                "only_candidate"
            ]
        );
        assert_eq!(
            rows[1][1..],
            ["multi_store_large_purchase", "2", "3", "1", "1", "2"]
        );
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
            fraud_rules: None,
            rules: None,
        };
        let error = run(&Config::default(), &args).unwrap_err().to_string();
        assert!(error.contains("[kafka] brokers"), "{error}");
        assert!(!out.exists(), "nothing written");
    }
}
