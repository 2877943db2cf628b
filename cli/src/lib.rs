//! `storepulse`: the one binary of StorePulse, as a library so that the
//! end-to-end tests can build the very same program under another name
//! (`tests/src/bin/storepulse-e2e.rs`). `anyhow` is used here because this
//! is the binary's own code, not a library other crates build on.
//!
//! Subcommands:
//! - `run`: HTTP ingest, processors and the query API in one process, on
//!   the embedded event log (no external service), or on Kafka when
//!   `[kafka] brokers` is set;
//! - `ingest`, `process`, `serve`: the three roles of `run` one at a time,
//!   on Kafka, so that a deployment scales each separately;
//! - `replay`: process an NDJSON event file offline with the same processors;
//! - `simulate`: realistic store traffic, to the API or a file (also the
//!   load generator of the benchmarks);
//! - `config check`: load and validate a configuration, print it resolved;
//! - `keys hash`: the SHA-256 to put in `[[ingest.keys]]` for a new key;
//! - `users hash`: the argon2id PHC string of a password (read from stdin)
//!   for `[[access.users]]`.

pub mod config;
pub mod kafka_mode;
pub mod mart;
pub mod replay_cmd;
pub mod serve;
mod webhook_metrics;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// StorePulse: live stock, members and fraud signals for a retail chain,
/// from POS and online events.
#[derive(Parser, Debug)]
#[command(name = "storepulse", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Environment variables
    /// STOREPULSE__SECTION__KEY override it.
    #[arg(long, global = true, default_value = "storepulse.toml")]
    config: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run ingest, processors and the query API in one process (embedded
    /// event log on local disk, no external service; on Kafka when
    /// `[kafka] brokers` is set).
    Run,
    /// Kafka mode: HTTP ingest only, producing to the events topic.
    Ingest,
    /// Kafka mode: the processors only, in the consumer group.
    Process,
    /// Kafka mode: the query API only, from the stock, alerts and
    /// dead-letter topics.
    Serve,
    /// Process an NDJSON event file offline; writes stock.csv, alerts.ndjson
    /// (fraud alerts included), dlq.ndjson, summary.json and the member
    /// files to the output directory; with --rules, a backtest of candidate
    /// fraud rules.
    Replay(replay_cmd::ReplayArgs),
    /// Generate realistic traffic for the stores, to the HTTP API or a file.
    Simulate(Box<storepulse_simulate::SimulateArgs>),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Ingest key tools.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Dashboard user tools.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Read a password from stdin (its first line) and print its argon2id
    /// PHC string, for `password_hash = "..."` in `[[access.users]]`.
    Hash,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Load and validate the configuration; print it with every default filled in.
    Check,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Print the SHA-256 of a key, for `sha256 = "..."` in `[[ingest.keys]]`.
    Hash {
        /// The key (a long random secret given to one POS).
        key: String,
    },
}

/// The whole `main` of both binaries (`storepulse`, and `storepulse-e2e` of
/// the end-to-end tests): runs the command and prints an error as one line
/// with its causes, without a backtrace, since these are the user's errors
/// (config, paths, ports), not ours.
pub fn main_exit_code() -> std::process::ExitCode {
    match main_with_args() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("storepulse: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses the command line and runs the subcommand.
///
/// # Errors
/// Whatever the subcommand fails with, for `main` to print.
pub fn main_with_args() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let explicit = std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
    match cli.command {
        Command::Run => {
            let config = Config::load(&cli.config, explicit)?;
            init_tracing(&config)?;
            if config.kafka.enabled() {
                runtime()?.block_on(kafka_mode::run(config, kafka_mode::Roles::ALL))
            } else {
                runtime()?.block_on(serve::run(config))
            }
        }
        Command::Ingest | Command::Process | Command::Serve => {
            let roles = kafka_mode::Roles {
                ingest: matches!(cli.command, Command::Ingest),
                process: matches!(cli.command, Command::Process),
                serve: matches!(cli.command, Command::Serve),
            };
            let config = Config::load(&cli.config, explicit)?;
            init_tracing(&config)?;
            runtime()?.block_on(kafka_mode::run(config, roles))
        }
        Command::Replay(args) => {
            let config = Config::load(&cli.config, explicit)?;
            init_tracing(&config)?;
            replay_cmd::run(&config, &args)
        }
        Command::Simulate(args) => {
            init_tracing(&Config::default())?;
            // With --kafka the producer takes the [kafka] settings of the
            // configuration (security, compression...); the flags give the
            // brokers and the topic prefix.
            let kafka = if args.kafka.is_some() {
                Config::load(&cli.config, explicit)?.kafka
            } else {
                storepulse_kafka::KafkaConfig::default()
            };
            runtime()?.block_on(async {
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                // `run` prints its report (one JSON line) to stdout itself.
                storepulse_simulate::run_with_kafka(*args, &kafka, shutdown).await?;
                Ok(())
            })
        }
        Command::Config(ConfigCommand::Check) => {
            let config = Config::load(&cli.config, explicit)?;
            let stores = storepulse_core::StoreMaster::load(&config.storage.stores_csv)?;
            storepulse_ingest::keys::KeyTable::build(&config.ingest.keys, &stores)
                .map_err(anyhow::Error::msg)?;
            storepulse_dashboards::access::AccessTable::build(&config.access, &stores)
                .map_err(anyhow::Error::msg)?;
            print!(
                "{}",
                toml::to_string_pretty(&config).context("printing config")?
            );
            eprintln!(
                "config ok: {} stores, {} ingest keys",
                stores.len(),
                config.ingest.keys.len()
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Hash { key }) => {
            println!("{}", storepulse_ingest::keys::hash_key(&key));
            Ok(())
        }
        Command::Users(UsersCommand::Hash) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("users hash: empty password on stdin");
            }
            let phc = storepulse_dashboards::session::hash_password(password)
                .map_err(anyhow::Error::msg)?;
            println!("{phc}");
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_tracing(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.telemetry.level))
        .context("telemetry.level")?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if config.telemetry.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}
