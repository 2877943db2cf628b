//! Configuration of the webhook sink: the webhooks, and the outbox's
//! segment size and de-duplication window.
//!
//! [`WebhookSinkConfig::validate`] is pure (no network, no environment, no
//! files): it checks the shape of the config. Resolving `secret_env` and
//! building the HTTP clients happen in `WebhookSink::start`.
//!
//! In TOML (the section's place in `storepulse.toml` is the runtime's to
//! choose when it wires the sink in):
//!
//! ```toml
//! [[sinks.webhook.webhooks]]
//! name = "risk-wecom"
//! url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."
//! secret_env = "STOREPULSE_RISK_WEBHOOK_SECRET"
//! rules = ["refund_abuse", "points_drain"]
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SinkError};

/// Default request timeout, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Default cap on the delay between two attempts, in seconds.
pub const DEFAULT_MAX_BACKOFF_SECS: u64 = 60;
/// Default delay before the first retry, in milliseconds.
pub const DEFAULT_INITIAL_BACKOFF_MS: u64 = 200;
/// Default size at which the outbox starts a new segment file (4 MiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Default number of most recent notification ids the outbox remembers
/// for de-duplication.
pub const DEFAULT_DEDUP_WINDOW: u64 = 100_000;
/// Longest webhook name (it names the cursor file).
pub const MAX_NAME_LEN: usize = 64;
/// Smallest accepted segment size (64 KiB).
pub const MIN_SEGMENT_BYTES: u64 = 64 * 1024;

/// Headers the sender sets itself; `headers` may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "x-storepulse-delivery",
    "x-storepulse-timestamp",
    "x-storepulse-signature",
];

/// The webhook sink: where fraud alerts are POSTed, and how the outbox
/// that feeds them is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// The webhooks. Each receives, in outbox order, every notification its
    /// `rules` select. Empty: notifications are kept in the outbox (for the
    /// de-duplication window) and sent nowhere.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// The outbox on disk.
    #[serde(default)]
    pub outbox: OutboxConfig,
}

/// The durable outbox between the producer of notifications and the
/// webhook senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// Size in bytes at which the outbox starts a new segment file. Whole
    /// segments are the unit of deletion. Default 4 MiB, at least 64 KiB.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// How many of the most recent notification ids are remembered: an
    /// append of an id among them is a no-op. Segments are kept until every
    /// webhook has delivered them *and* they are older than this window, so
    /// the window survives restarts. Default 100,000, at least 1.
    #[serde(default = "default_dedup_window")]
    pub dedup_window: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            dedup_window: DEFAULT_DEDUP_WINDOW,
        }
    }
}

/// One webhook (an IM robot such as WeCom, DingTalk or Feishu, or any
/// HTTPS endpoint that accepts a JSON POST).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name: in logs, metrics and the cursor file name. 1 to 64 of
    /// `A-Z a-z 0-9 _ -`.
    pub name: String,
    /// Where to POST, `http://` or `https://`.
    pub url: String,
    /// The HMAC-SHA256 key for `X-StorePulse-Signature`. Set exactly one of
    /// `secret` and `secret_env`; prefer `secret_env` outside tests.
    #[serde(default, serialize_with = "serialize_redacted")]
    pub secret: Option<String>,
    /// Name of the environment variable holding the HMAC key (read at start).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Rule names whose notifications this webhook receives (matched on the
    /// notification body's top-level `"rule"` field). Empty: all of them.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Timeout of one request, connect included, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Delay before the first retry, in milliseconds; it doubles with each
    /// failed attempt (with jitter) up to `max_backoff_secs`.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Cap on the delay between two attempts, in seconds. Retries never
    /// stop: a webhook down for an hour gets every notification afterwards.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// Extra headers sent with every request (e.g. a bearer token). May not
    /// set `Content-Type`, `Content-Length`, `Host` or `X-StorePulse-*`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

// By hand: the secret and the header values (tokens) stay out of logs.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &redact_query(&self.url))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .field("rules", &self.rules)
            .field("timeout_ms", &self.timeout_ms)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The URL without its query (IM robots put their key there).
pub(crate) fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_owned(),
    }
}

/// Serialises a secret as `"<redacted>"` (so `config check` can print the
/// resolved config without it).
fn serialize_redacted<S: serde::Serializer>(
    secret: &Option<String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_some("<redacted>"),
        None => s.serialize_none(),
    }
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_max_backoff_secs() -> u64 {
    DEFAULT_MAX_BACKOFF_SECS
}
fn default_initial_backoff_ms() -> u64 {
    DEFAULT_INITIAL_BACKOFF_MS
}
fn default_segment_bytes() -> u64 {
    DEFAULT_SEGMENT_BYTES
}
fn default_dedup_window() -> u64 {
    DEFAULT_DEDUP_WINDOW
}

impl WebhookConfig {
    /// A webhook with the given name, URL and inline secret, every other
    /// field at its default (handy in tests and examples).
    pub fn new(name: impl Into<String>, url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            secret: Some(secret.into()),
            secret_env: None,
            rules: Vec::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            initial_backoff_ms: DEFAULT_INITIAL_BACKOFF_MS,
            max_backoff_secs: DEFAULT_MAX_BACKOFF_SECS,
            headers: BTreeMap::new(),
        }
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The first retry delay.
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }

    /// The cap on retry delays.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.max_backoff_secs)
    }

    /// Whether a notification of `rule` goes to this webhook.
    pub fn selects(&self, rule: Option<&str>) -> bool {
        self.rules.is_empty() || rule.is_some_and(|r| self.rules.iter().any(|x| x == r))
    }

    /// The HMAC key: `secret`, or the value of the `secret_env` variable.
    ///
    /// # Errors
    /// [`SinkError::SecretEnv`] when the variable is unset or empty;
    /// [`SinkError::Config`] when neither field is set.
    pub fn resolve_secret(&self) -> Result<Vec<u8>> {
        match (&self.secret, &self.secret_env) {
            (Some(s), None) => Ok(s.as_bytes().to_vec()),
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v.into_bytes()),
                _ => Err(SinkError::SecretEnv {
                    webhook: self.name.clone(),
                    var: var.clone(),
                }),
            },
            _ => Err(SinkError::config(
                format!("webhook {:?}", self.name),
                "set exactly one of secret and secret_env",
            )),
        }
    }

    fn validate(&self, at: &str) -> Result<()> {
        let field = |f: &str| format!("{at}.{f}");
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(SinkError::config(
                field("name"),
                format!("must be 1 to {MAX_NAME_LEN} characters"),
            ));
        }
        if !self
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(SinkError::config(
                field("name"),
                format!("{:?}: only A-Z a-z 0-9 _ - are allowed", self.name),
            ));
        }
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => {
                return Err(SinkError::config(
                    field("url"),
                    format!("scheme {:?}: must be http or https with a host", u.scheme()),
                ))
            }
            Err(e) => return Err(SinkError::config(field("url"), format!("not a URL: {e}"))),
        }
        match (&self.secret, &self.secret_env) {
            (Some(s), None) if !s.is_empty() => {}
            (None, Some(v)) if !v.is_empty() => {}
            (Some(_), Some(_)) => {
                return Err(SinkError::config(
                    field("secret"),
                    "set exactly one of secret and secret_env, not both",
                ))
            }
            _ => {
                return Err(SinkError::config(
                    field("secret"),
                    "missing: set secret or secret_env (non-empty)",
                ))
            }
        }
        if let Some(i) = self.rules.iter().position(String::is_empty) {
            return Err(SinkError::config(
                format!("{at}.rules[{i}]"),
                "empty rule name",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(SinkError::config(field("timeout_ms"), "must be > 0"));
        }
        if self.initial_backoff_ms == 0 {
            return Err(SinkError::config(
                field("initial_backoff_ms"),
                "must be > 0",
            ));
        }
        if self.max_backoff_secs == 0 {
            return Err(SinkError::config(field("max_backoff_secs"), "must be > 0"));
        }
        for (name, value) in &self.headers {
            let f = format!("{at}.headers.{name}");
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(SinkError::config(f, "not a valid header name"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(SinkError::config(f, "set by the sink itself"));
            }
            if HeaderValue::from_str(value).is_err() {
                return Err(SinkError::config(f, "not a valid header value"));
            }
        }
        Ok(())
    }
}

impl WebhookSinkConfig {
    /// Checks the config without touching the network, the environment or
    /// the disk.
    ///
    /// # Errors
    /// [`SinkError::Config`] naming the first bad field and why.
    pub fn validate(&self) -> Result<()> {
        let mut names = HashSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let at = format!("webhooks[{i}]");
            w.validate(&at)?;
            if !names.insert(w.name.as_str()) {
                return Err(SinkError::config(
                    format!("{at}.name"),
                    format!("{:?} is used by an earlier webhook", w.name),
                ));
            }
        }
        if self.outbox.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(SinkError::config(
                "outbox.segment_bytes",
                format!("must be at least {MIN_SEGMENT_BYTES}"),
            ));
        }
        if self.outbox.dedup_window == 0 {
            return Err(SinkError::config("outbox.dedup_window", "must be > 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_config() -> WebhookSinkConfig {
        WebhookSinkConfig {
            webhooks: vec![
                WebhookConfig::new("a", "https://example.com/hook", "k"),
                WebhookConfig::new("b", "http://127.0.0.1:9/hook", "k"),
            ],
            outbox: OutboxConfig::default(),
        }
    }

    fn field_of(c: &WebhookSinkConfig) -> String {
        match c.validate() {
            Err(SinkError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_config_validates() {
        ok_config().validate().unwrap();
        WebhookSinkConfig::default().validate().unwrap();
    }

    #[test]
    fn parses_with_defaults_and_refuses_unknown_fields() {
        let c: WebhookSinkConfig = serde_json::from_value(serde_json::json!({
            "webhooks": [{"name": "risk", "url": "https://x.test/h", "secret_env": "K"}]
        }))
        .unwrap();
        let w = &c.webhooks[0];
        assert_eq!(w.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(w.max_backoff_secs, DEFAULT_MAX_BACKOFF_SECS);
        assert_eq!(c.outbox, OutboxConfig::default());
        c.validate().unwrap();

        let bad = serde_json::from_value::<WebhookSinkConfig>(serde_json::json!({
            "webhooks": [{"name": "risk", "url": "https://x.test/h", "secret": "k", "retries": 3}]
        }));
        assert!(bad.is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = ok_config();
        c.webhooks[1].name = "a".into();
        assert_eq!(field_of(&c), "webhooks[1].name");

        let mut c = ok_config();
        c.webhooks[0].name = String::new();
        assert_eq!(field_of(&c), "webhooks[0].name");

        let mut c = ok_config();
        c.webhooks[0].name = "../etc".into();
        assert_eq!(field_of(&c), "webhooks[0].name");

        for url in ["not a url", "ftp://example.com/x", "file:///tmp/x"] {
            let mut c = ok_config();
            c.webhooks[1].url = url.into();
            assert_eq!(field_of(&c), "webhooks[1].url", "{url}");
        }

        let mut c = ok_config();
        c.webhooks[0].secret = None;
        assert_eq!(field_of(&c), "webhooks[0].secret");

        let mut c = ok_config();
        c.webhooks[0].secret_env = Some("K".into());
        assert_eq!(field_of(&c), "webhooks[0].secret");

        let mut c = ok_config();
        c.webhooks[0]
            .headers
            .insert("X-StorePulse-Signature".into(), "x".into());
        assert_eq!(field_of(&c), "webhooks[0].headers.X-StorePulse-Signature");

        let mut c = ok_config();
        c.outbox.dedup_window = 0;
        assert_eq!(field_of(&c), "outbox.dedup_window");
    }

    #[test]
    fn rules_filter_on_the_rule_name() {
        let mut w = WebhookConfig::new("a", "https://x.test", "k");
        assert!(w.selects(None));
        assert!(w.selects(Some("r1")));
        w.rules = vec!["r1".into()];
        assert!(w.selects(Some("r1")));
        assert!(!w.selects(Some("r2")));
        assert!(!w.selects(None));
    }

    #[test]
    fn debug_hides_the_secret_and_the_url_query() {
        let w = WebhookConfig::new("a", "https://x.test/send?key=abc123", "s3cret");
        let text = format!("{w:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("abc123"), "{text}");
        let json = serde_json::to_string(&w).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
    }

    #[test]
    fn missing_secret_env_is_an_error_at_resolve() {
        let mut w = WebhookConfig::new("a", "https://x.test", "k");
        w.secret = None;
        w.secret_env = Some("STOREPULSE_TEST_SURELY_UNSET_VARIABLE_4711".into());
        assert!(matches!(
            w.resolve_secret(),
            Err(SinkError::SecretEnv { .. })
        ));
    }
}
