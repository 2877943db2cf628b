//! Configuration of the ClickHouse mart: where the server is, which
//! database, who we are, and how long to wait.
//!
//! ```toml
//! [mart.clickhouse]
//! url = "http://127.0.0.1:8123"
//! database = "storepulse"
//! user = "default"
//! password_env = "STOREPULSE_CLICKHOUSE_PASSWORD"
//! ```
//!
//! [`ClickHouseConfig::validate`] is pure; connecting, creating the
//! database and applying migrations happen in `ClickHouseMart::connect`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SinkError};

/// Default server URL (HTTP interface).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8123";
/// Default database.
pub const DEFAULT_DATABASE: &str = "storepulse";
/// Default user.
pub const DEFAULT_USER: &str = "default";
/// Default timeout of one query or insert, in milliseconds.
pub const DEFAULT_QUERY_TIMEOUT_MS: u64 = 30_000;
/// Default time an erasure waits for its mutations to finish, in seconds.
pub const DEFAULT_MUTATION_TIMEOUT_SECS: u64 = 600;
/// Longest database name accepted.
pub const MAX_DATABASE_LEN: usize = 64;

/// The ClickHouse mart (`[mart.clickhouse]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// The server's HTTP interface, `http://host:8123` (or `https://`).
    #[serde(default = "default_url")]
    pub url: String,
    /// The database holding the mart's tables. Created at start when
    /// missing (`create_database`). Letters, digits and `_`, not starting
    /// with a digit.
    #[serde(default = "default_database")]
    pub database: String,
    /// The user the sink and the dashboard connect as.
    #[serde(default = "default_user")]
    pub user: String,
    /// The password, in the file. Prefer `password_env`.
    #[serde(default)]
    pub password: Option<String>,
    /// The environment variable holding the password (read at start).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Timeout of one query or one insert, in milliseconds.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
    /// How long an erasure waits for its mutations to finish, in seconds.
    #[serde(default = "default_mutation_timeout_secs")]
    pub mutation_timeout_secs: u64,
    /// Create the database at start when it is missing.
    #[serde(default = "default_true")]
    pub create_database: bool,
    /// LZ4-compress inserts and answers on the wire.
    #[serde(default = "default_true")]
    pub compression: bool,
}

fn default_url() -> String {
    DEFAULT_URL.into()
}
fn default_database() -> String {
    DEFAULT_DATABASE.into()
}
fn default_user() -> String {
    DEFAULT_USER.into()
}
fn default_query_timeout_ms() -> u64 {
    DEFAULT_QUERY_TIMEOUT_MS
}
fn default_mutation_timeout_secs() -> u64 {
    DEFAULT_MUTATION_TIMEOUT_SECS
}
fn default_true() -> bool {
    true
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: default_url(),
            database: default_database(),
            user: default_user(),
            password: None,
            password_env: None,
            query_timeout_ms: DEFAULT_QUERY_TIMEOUT_MS,
            mutation_timeout_secs: DEFAULT_MUTATION_TIMEOUT_SECS,
            create_database: true,
            compression: true,
        }
    }
}

/// Whether `name` is a plain identifier: `[A-Za-z_][A-Za-z0-9_]*`, at most
/// [`MAX_DATABASE_LEN`] bytes. Such a name needs no quoting in SQL.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_DATABASE_LEN
}

impl ClickHouseConfig {
    /// A config for the server at `url` and database `database`, other
    /// fields at their defaults.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            ..Self::default()
        }
    }

    /// Checks the shape of the config (no network, no environment).
    ///
    /// # Errors
    /// [`SinkError::Config`] naming the field under `mart.clickhouse`.
    pub fn validate(&self) -> Result<()> {
        let field = |f: &str| format!("mart.clickhouse.{f}");
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(SinkError::config(
                field("url"),
                format!("{:?} must start with http:// or https://", self.url),
            ));
        }
        if self.url.starts_with("https://") {
            return Err(SinkError::config(
                field("url"),
                "https is not built in; put the server behind a local TLS proxy or use http on a trusted network",
            ));
        }
        if !is_identifier(&self.database) {
            return Err(SinkError::config(
                field("database"),
                format!(
                    "{:?} must be letters, digits and _, not starting with a digit, at most {MAX_DATABASE_LEN} bytes",
                    self.database
                ),
            ));
        }
        if self.user.is_empty() {
            return Err(SinkError::config(field("user"), "must not be empty"));
        }
        if self.password.is_some() && self.password_env.is_some() {
            return Err(SinkError::config(
                field("password"),
                "set password or password_env, not both",
            ));
        }
        if self.query_timeout_ms == 0 {
            return Err(SinkError::config(field("query_timeout_ms"), "must be > 0"));
        }
        if self.mutation_timeout_secs == 0 {
            return Err(SinkError::config(
                field("mutation_timeout_secs"),
                "must be > 0",
            ));
        }
        Ok(())
    }

    /// The query timeout.
    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms)
    }

    /// The password: `password`, or the variable `password_env` names.
    ///
    /// # Errors
    /// [`SinkError::Config`] when `password_env` names an unset variable.
    pub fn resolve_password(&self) -> Result<Option<String>> {
        match (&self.password, &self.password_env) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(var)) => std::env::var(var).map(Some).map_err(|_| {
                SinkError::config(
                    "mart.clickhouse.password_env",
                    format!("environment variable {var} is unset"),
                )
            }),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_unknown_fields_fail() {
        ClickHouseConfig::default()
            .validate()
            .expect("defaults are valid");
        let c: ClickHouseConfig = toml::from_str("database = \"mart_1\"").expect("parses");
        assert_eq!(c.url, DEFAULT_URL);
        assert_eq!(c.database, "mart_1");
        assert!(toml::from_str::<ClickHouseConfig>("databse = \"x\"").is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let c = ClickHouseConfig::new(DEFAULT_URL, "a-b");
        let e = c.validate().expect_err("bad name");
        assert!(e.to_string().contains("mart.clickhouse.database"), "{e}");
        let c = ClickHouseConfig::new("127.0.0.1:8123", DEFAULT_DATABASE);
        assert!(c
            .validate()
            .expect_err("no scheme")
            .to_string()
            .contains("url"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("x;DROP"));
    }
}
