//! `storepulse.toml`: every section, with defaults, and how it is loaded.
//!
//! Sources, later ones winning: built-in defaults, the TOML file
//! (`--config`, default `storepulse.toml` if present), then environment
//! variables `STOREPULSE__SECTION__KEY` (e.g. `STOREPULSE__HTTP__LISTEN`).
//! Unknown keys are errors, so a typo fails at start naming the key instead
//! of being ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use storepulse_dashboards::access::AccessConfig;
use storepulse_ingest::http::IngestConfig;
use storepulse_ingest::log::LogConfig;
use storepulse_kafka::KafkaConfig;
use storepulse_processors::inventory::InventoryConfig;
use storepulse_processors::members::MemberConfig;
use storepulse_runtime::DriverConfig;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where data lives and where the store master is.
    pub storage: StorageConfig,
    /// The HTTP server (ingest and queries).
    pub http: HttpConfig,
    /// The embedded event log.
    pub log: LogConfig,
    /// HTTP ingest: limits, keys.
    pub ingest: IngestConfig,
    /// The processing runtime: batches, checkpoints.
    pub runtime: DriverConfig,
    /// Stock rules (RULES.md "Stock").
    pub inventory: InventoryConfig,
    /// Members, points and tags (RULES.md "Points", "Member tags").
    pub members: MemberConfig,
    /// Fraud rules, the review queue and alert webhooks (RULES.md "Fraud rules").
    pub fraud: FraudSection,
    /// Keys and roles of the query API (`[[access.keys]]`).
    pub access: AccessConfig,
    /// Kafka mode (off unless `brokers` is set).
    pub kafka: KafkaConfig,
    /// The data mart (`[mart]`): on by default, Parquet under `data_dir/mart`.
    pub mart: MartSection,
    /// Logging.
    pub telemetry: TelemetryConfig,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for the event log, dead letters and checkpoints.
    /// Default `var/storepulse`.
    pub data_dir: PathBuf,
    /// The store master data (`store_id,name,region,city,lat,lon,franchisee`).
    /// Default `data/stores.csv`.
    pub stores_csv: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("var/storepulse"),
            stores_csv: PathBuf::from("data/stores.csv"),
        }
    }
}

/// `[mart]`: the data mart the dashboard's charts read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MartSection {
    /// Derive mart rows and keep the mart (`data_dir/mart-log` and the
    /// store). Default true.
    pub enabled: bool,
    /// Rows that end a write to the store. Default 100000.
    pub max_batch_rows: usize,
    /// Encoded bytes that end a write to the store. Default 16777216.
    pub max_batch_bytes: usize,
    /// Milliseconds a row waits at most before it is written. Default 1000.
    pub max_batch_wait_ms: u64,
    /// `[mart.clickhouse]`: keep the mart on a ClickHouse server (18.16 or
    /// current releases) instead of the embedded Parquet + DataFusion mart.
    /// The dashboard then reads ClickHouse too.
    pub clickhouse: Option<storepulse_sinks::clickhouse::ClickHouseConfig>,
    /// Kafka mode: this `serve` runs the mart sink, reading `<p>.mart`
    /// into ClickHouse (or, without `[mart.clickhouse]`, into Parquet under
    /// `data_dir/mart`). Set it on **one** serve only (two sinks would
    /// write the same rows twice). Default false. The `process` stages
    /// derive the rows whenever `enabled`.
    pub kafka_sink: bool,
}

impl Default for MartSection {
    fn default() -> Self {
        Self {
            enabled: true,
            max_batch_rows: storepulse_mart::sink::DEFAULT_MAX_ROWS,
            max_batch_bytes: storepulse_mart::sink::DEFAULT_MAX_BYTES,
            max_batch_wait_ms: storepulse_mart::sink::DEFAULT_MAX_WAIT.as_millis() as u64,
            clickhouse: None,
            kafka_sink: false,
        }
    }
}

impl MartSection {
    /// Checks the values; the error names the field.
    ///
    /// # Errors
    /// A message `mart.<field>: <rule>`.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch_rows == 0 {
            return Err("mart.max_batch_rows: must be > 0".into());
        }
        if let Some(ch) = &self.clickhouse {
            ch.validate().map_err(|e| format!("mart.clickhouse: {e}"))?;
        }
        if self.max_batch_bytes < 1024 {
            return Err("mart.max_batch_bytes: must be >= 1024".into());
        }
        if self.max_batch_wait_ms == 0 || self.max_batch_wait_ms > 3_600_000 {
            return Err("mart.max_batch_wait_ms: must be 1..=3600000".into());
        }
        Ok(())
    }

    /// The sink loop's batching.
    pub fn sink_config(&self) -> storepulse_mart::sink::SinkConfig {
        storepulse_mart::sink::SinkConfig {
            max_rows: self.max_batch_rows,
            max_bytes: self.max_batch_bytes,
            max_wait: std::time::Duration::from_millis(self.max_batch_wait_ms),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the API listens on. Default `127.0.0.1:8080`; use
    /// `0.0.0.0:8080` to accept POS terminals on the network.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
        }
    }
}

/// `[fraud]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FraudSection {
    /// How late (behind the event-time clock) a sale may arrive and still
    /// be grouped exactly into fraud windows. Later sales still count for
    /// stock and points. Default 60.
    pub allowed_lateness_minutes: u32,
    /// The rules (`[[rule]]` tables); RULES.md's defaults when the file is
    /// missing. Reloaded when it changes. Default `fraud-rules.toml`.
    pub rules_file: PathBuf,
    /// How often the rules file is checked for changes. Default 2.
    pub reload_interval_secs: f64,
    /// Decided or withdrawn alerts the review queue keeps (open ones are
    /// always kept). Default 100000.
    pub review_capacity: usize,
    /// Webhooks that receive every alert raised or withdrawn and every
    /// decision (`[[fraud.webhooks]]`: `name`, `url`, `secret` or
    /// `secret_env`, `rules`, `timeout_ms`, `max_backoff_secs`, `headers`).
    /// None by default. Kafka mode: set them on one designated `serve`
    /// only; it forwards `<p>.alerts` and `<p>.alert-decisions` from its
    /// outbox's first start on (each serve with webhooks would send every
    /// notification).
    pub webhooks: Vec<storepulse_sinks::webhook::WebhookConfig>,
    /// The webhooks' durable outbox (`data_dir/webhook-outbox`).
    pub webhook_outbox: storepulse_sinks::webhook::OutboxConfig,
}

impl Default for FraudSection {
    fn default() -> Self {
        Self {
            allowed_lateness_minutes: 60,
            rules_file: PathBuf::from("fraud-rules.toml"),
            reload_interval_secs: 2.0,
            review_capacity: storepulse_runtime::review::DEFAULT_CAPACITY,
            webhooks: Vec::new(),
            webhook_outbox: storepulse_sinks::webhook::OutboxConfig::default(),
        }
    }
}

impl FraudSection {
    /// The processor's part.
    pub fn processor(&self) -> storepulse_processors::fraud::FraudConfig {
        storepulse_processors::fraud::FraudConfig {
            allowed_lateness_minutes: self.allowed_lateness_minutes,
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// A message naming the field.
    pub fn validate(&self) -> Result<(), String> {
        self.processor().validate()?;
        if !(self.reload_interval_secs.is_finite() && self.reload_interval_secs > 0.0) {
            return Err("fraud.reload_interval_secs: must be > 0".into());
        }
        if self.review_capacity == 0 {
            return Err("fraud.review_capacity: must be > 0".into());
        }
        self.webhook_sink()
            .validate()
            .map_err(|e| format!("fraud.webhooks: {e}"))
    }

    /// The webhook sink's configuration.
    pub fn webhook_sink(&self) -> storepulse_sinks::webhook::WebhookSinkConfig {
        storepulse_sinks::webhook::WebhookSinkConfig {
            webhooks: self.webhooks.clone(),
            outbox: self.webhook_outbox,
        }
    }
}

/// `[telemetry]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `text` (for people) or `json` (for log shippers). Default `text`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `storepulse_runtime=debug,info`.
    /// `RUST_LOG` wins when set. Default `info`.
    pub level: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Config {
    /// Loads defaults, then `path` (must exist when `explicit`), then the
    /// environment, and validates.
    ///
    /// # Errors
    /// A missing explicit file, a syntax error, an unknown key, a wrong type
    /// or a rule broken; the message names the key.
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<Self> {
        if explicit && !path.exists() {
            bail!("config file {} does not exist", path.display());
        }
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(Env::prefixed("STOREPULSE__").split("__"))
            .extract()
            .with_context(|| format!("config {}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section.
    ///
    /// # Errors
    /// The first broken rule, naming `section.field`.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.http.listen.parse::<SocketAddr>().map_err(|e| {
            anyhow::anyhow!("http.listen: {:?} is not an address: {e}", self.http.listen)
        })?;
        if !matches!(self.telemetry.format.as_str(), "text" | "json") {
            bail!("telemetry.format: must be \"text\" or \"json\"");
        }
        self.log
            .validate()
            .map_err(|e| anyhow::anyhow!("log: {e}"))?;
        self.ingest.validate().map_err(anyhow::Error::msg)?;
        self.runtime.validate().map_err(anyhow::Error::msg)?;
        self.inventory.validate().map_err(anyhow::Error::msg)?;
        self.members.validate().map_err(anyhow::Error::msg)?;
        self.fraud.validate().map_err(anyhow::Error::msg)?;
        self.kafka.validate().map_err(anyhow::Error::msg)?;
        self.mart.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Config::load` inside a figment `Jail` with a clean environment:
    /// the jail's lock keeps this from running while another test has
    /// `STOREPULSE__*` variables set (tests share one process).
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn load(path: &Path) -> anyhow::Result<Config> {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            out = Some(Config::load(path, true));
            Ok(())
        });
        out.unwrap_or_else(|| Err(anyhow::anyhow!("the jail did not run")))
    }

    #[test]
    fn checked_in_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../storepulse.toml");
        let config = load(&path).unwrap();
        assert!(!config.ingest.keys.is_empty());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sp.toml",
                "[http]\nlisten = \"127.0.0.1:1111\"\n[runtime]\nbatch_size = 10\n",
            )?;
            jail.set_env("STOREPULSE__HTTP__LISTEN", "0.0.0.0:2222");
            jail.set_env("STOREPULSE__INVENTORY__ALLOWED_LATENESS_HOURS", "24");
            let config = Config::load(Path::new("sp.toml"), true).map_err(|e| e.to_string())?;
            assert_eq!(config.http.listen, "0.0.0.0:2222");
            assert_eq!(config.runtime.batch_size, 10);
            assert_eq!(config.inventory.allowed_lateness_hours, 24);
            jail.set_env("STOREPULSE__RUNTIME__BATCH_SIZE", "0");
            let err = format!(
                "{:#}",
                Config::load(Path::new("sp.toml"), true).unwrap_err()
            );
            assert!(err.contains("runtime.batch_size"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn mart_section_defaults_match_the_file_and_bad_values_are_named() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../storepulse.toml");
        assert_eq!(load(&path).unwrap().mart, MartSection::default());
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[mart]\nmax_batch_rows = 0\n").unwrap();
        let err = format!("{:#}", load(&bad).unwrap_err());
        assert!(err.contains("mart.max_batch_rows"), "{err}");
        std::fs::write(&bad, "[mart]\nenabeld = false\n").unwrap();
        let err = format!("{:#}", load(&bad).unwrap_err());
        assert!(err.contains("enabeld"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[inventory]\nvelocity_days = 40\n").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("inventory.velocity_days"), "{err}");
        std::fs::write(&path, "[runtime]\nbatch_size = \"many\"\n").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("batch_size"), "{err}");
    }

    #[test]
    fn members_section_and_custom_tags_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[members.tags]\nhigh_value_days = 120\n[[members.custom_tags]]\nname = \"lapsed\"\nexpr = \"sales_90d == 0 && total_sales >= 3\"\naction = \"call\"\n",
        )
        .unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.members.tags.high_value_days, 120);
        assert_eq!(config.members.custom_tags[0].name, "lapsed");
        std::fs::write(
            &path,
            "[[members.custom_tags]]\nname = \"lapsed\"\nexpr = \"salez == 0\"\n",
        )
        .unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("members.custom_tags[0].expr"), "{err}");
        std::fs::write(&path, "[members.tags]\nfrequent_dayz = 3\n").unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("frequent_dayz"), "{err}");
    }

    #[test]
    fn kafka_section_is_checked_only_when_brokers_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "[kafka]\ncompression = \"brotli\"\n").unwrap();
        let config = load(&path).unwrap();
        assert!(!config.kafka.enabled(), "no brokers: embedded mode");
        std::fs::write(
            &path,
            "[kafka]\nbrokers = \"127.0.0.1:9092\"\ncompression = \"brotli\"\n",
        )
        .unwrap();
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains("kafka.compression"), "{err}");
        std::fs::write(
            &path,
            "[kafka]\nbrokers = \"127.0.0.1:9092\"\n[kafka.client]\n\"security.protocol\" = \"SSL\"\n",
        )
        .unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.kafka.client["security.protocol"], "SSL");
    }
}
