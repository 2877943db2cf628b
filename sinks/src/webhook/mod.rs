//! Webhook sink: delivers fraud alerts (and any JSON notification) to HTTP
//! webhooks, such as the IM robots of WeCom, DingTalk or Feishu, in order,
//! signed, and without losing one while a webhook is down.
//!
//! # Flow
//!
//! ```text
//! producer ──append(id, body)──▶ outbox (segments on disk, fsynced, de-duplicated by id)
//!                                   │ watch: "appended"
//!                  ┌────────────────┼────────────────┐
//!                  ▼                ▼                ▼
//!            sender "risk-wecom"  sender "b"   ...  one tokio task per webhook,
//!            cursor file          cursor file       one request in flight each
//!                  │ POST, retry 408/429/5xx/transport forever, skip other 4xx
//!                  ▼
//!              webhook
//! ```
//!
//! # Protocol
//!
//! Each notification is one `POST <url>` with the body exactly as appended
//! and these headers:
//!
//! | header | value |
//! |---|---|
//! | `Content-Type` | `application/json` |
//! | `X-StorePulse-Delivery` | the notification id, e.g. `raised:<alert_id>`; receivers de-duplicate on it |
//! | `X-StorePulse-Timestamp` | unix seconds of this attempt |
//! | `X-StorePulse-Signature` | `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` |
//!
//! plus the webhook's configured `headers`. A 2xx answer is a delivery. See
//! [`sender`] for what is retried and what is skipped, and [`signature`]
//! for how a receiver checks a request.
//!
//! # Guarantees and limits
//!
//! - **At least once, in order, per webhook.** A webhook's cursor is
//!   persisted after each delivery; a crash between the 2xx and the cursor
//!   write re-sends that one notification at the next start, with the same
//!   `X-StorePulse-Delivery` id. Receivers that de-duplicate on the id see
//!   each notification exactly once.
//! - **Retries never stop** for transient failures (408, 429, 5xx,
//!   connection refused, timeouts): a webhook down for an hour receives
//!   everything afterwards, in order. Meanwhile its backlog grows on disk
//!   (see [`outbox`] for retention).
//! - **Other 4xx (and 3xx) are permanent**: logged at error level, counted in
//!   `failed_permanently`, skipped, so one bad notification or a wrong token
//!   does not hold every later alert back.
//! - **Head-of-line**: one request in flight per webhook, so a slow webhook
//!   delivers at most `1 / round-trip` notifications per second. Fine for
//!   alerts; not a bulk export path.
//! - Only the HTTP status is looked at. IM robots that answer `200` with an
//!   error code in the body (WeCom's `errcode`) count as delivered: check
//!   their logs, or put a small relay in front that maps errors to statuses.
//!   Their message formats (`msgtype`, markdown) are the producer's to build.
//! - HTTPS through rustls with the bundled Mozilla roots; redirects are not
//!   followed (a redirected POST turns into a GET).
//! - Logs carry webhook names, notification ids, sequence numbers and
//!   statuses, never bodies or secrets (URL queries, where robots keep their
//!   key, are redacted).
//!
//! # Usage
//!
//! ```no_run
//! use storepulse_sinks::webhook::{WebhookConfig, WebhookSink, WebhookSinkConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), storepulse_sinks::SinkError> {
//! let mut config = WebhookSinkConfig::default();
//! let mut hook = WebhookConfig::new("risk-wecom", "https://hooks.example.com/risk", "");
//! hook.secret = None;
//! hook.secret_env = Some("STOREPULSE_RISK_WEBHOOK_SECRET".into());
//! hook.rules = vec!["refund_abuse".into()];
//! config.webhooks.push(hook);
//! config.validate()?; // pure: also at `storepulse config check`
//!
//! let shutdown = CancellationToken::new();
//! let sink = WebhookSink::start(config, "var/storepulse/webhook-outbox", shutdown.clone()).await?;
//! let body = br#"{"alert_id":42,"rule":"refund_abuse","store_id":"KM-001"}"#;
//! sink.append("raised:42", body).await?; // fsynced; Ok(false) if already there
//! for s in sink.metrics().snapshot() {
//!     println!("{} delivered={} backlog={}", s.name, s.delivered, s.backlog);
//! }
//! shutdown.cancel();
//! sink.join().await?; // cursors persisted
//! # Ok(()) }
//! ```

pub mod config;
pub mod outbox;
pub mod sender;
pub mod signature;

#[cfg(test)]
mod integration_tests;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub use config::{OutboxConfig, WebhookConfig, WebhookSinkConfig};
pub use outbox::{Notification, Outbox};

use crate::error::{Result, SinkError};
use sender::{Counters, Sender};

/// Starts the webhook sink. See the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSink;

impl WebhookSink {
    /// Validates `config`, resolves the secrets, opens (or creates) the
    /// outbox in `outbox_dir`, loads each webhook's cursor and spawns one
    /// sender task per webhook. The senders stop when `shutdown` is
    /// cancelled; await [`WebhookHandle::join`] then.
    ///
    /// # Errors
    /// [`SinkError::Config`] or [`SinkError::SecretEnv`] for the config;
    /// the outbox's errors ([`Outbox::open`], [`Outbox::open_cursor`]);
    /// [`SinkError::HttpClient`] if TLS cannot initialise.
    pub async fn start(
        config: WebhookSinkConfig,
        outbox_dir: impl AsRef<Path>,
        shutdown: CancellationToken,
    ) -> Result<WebhookHandle> {
        config.validate()?;
        let mut prepared = Vec::with_capacity(config.webhooks.len());
        for hook in &config.webhooks {
            let secret = hook.resolve_secret()?;
            let client = sender::build_client(hook)?;
            let headers = sender::extra_headers(hook)?;
            let url = reqwest::Url::parse(&hook.url).map_err(|e| {
                SinkError::config(format!("webhook {:?} url", hook.name), e.to_string())
            })?;
            prepared.push((hook.clone(), secret, client, headers, url));
        }

        let dir = outbox_dir.as_ref().to_owned();
        let options = config.outbox;
        let names: Vec<String> = config.webhooks.iter().map(|w| w.name.clone()).collect();
        let (outbox, cursors) = tokio::task::spawn_blocking(move || -> Result<_> {
            let outbox = Arc::new(Outbox::open(&dir, options)?);
            let cursors = names
                .iter()
                .map(|n| outbox.open_cursor(n))
                .collect::<Result<Vec<u64>>>()?;
            Ok((outbox, cursors))
        })
        .await
        .map_err(|e| SinkError::TaskFailed {
            webhook: String::new(),
            reason: e.to_string(),
        })??;

        let mut tasks = Vec::with_capacity(prepared.len());
        let mut counters = Vec::with_capacity(prepared.len());
        for ((hook, secret, client, headers, url), cursor) in prepared.into_iter().zip(cursors) {
            let c = Arc::new(Counters::new(cursor));
            counters.push((hook.name.clone(), Arc::clone(&c)));
            let name = hook.name.clone();
            let sender = Sender {
                config: hook,
                secret,
                url,
                headers,
                client,
                outbox: Arc::clone(&outbox),
                cursor,
                counters: c,
                shutdown: shutdown.clone(),
            };
            tasks.push((name, tokio::spawn(sender.run())));
        }
        info!(
            webhooks = tasks.len(),
            next_seq = outbox.next_seq(),
            "webhook sink started"
        );
        Ok(WebhookHandle {
            metrics: WebhookMetrics {
                appended: outbox.subscribe(),
                webhooks: Arc::new(counters),
            },
            outbox,
            tasks,
        })
    }
}

/// The running sink: append notifications, read metrics, wait for the end.
#[derive(Debug)]
pub struct WebhookHandle {
    outbox: Arc<Outbox>,
    metrics: WebhookMetrics,
    tasks: Vec<(String, JoinHandle<()>)>,
}

impl WebhookHandle {
    /// Appends a notification to the outbox (on the blocking pool): `true`
    /// once it is fsynced, `false` if its id is already there. The senders
    /// wake at once.
    ///
    /// # Errors
    /// As [`Outbox::append`].
    pub async fn append(&self, id: &str, body: &[u8]) -> Result<bool> {
        let outbox = Arc::clone(&self.outbox);
        let id = id.to_owned();
        let body = body.to_vec();
        tokio::task::spawn_blocking(move || outbox.append(&id, &body))
            .await
            .map_err(|e| SinkError::TaskFailed {
                webhook: String::new(),
                reason: e.to_string(),
            })?
    }

    /// Appends a JSON value (serialised compactly). See [`Self::append`].
    ///
    /// # Errors
    /// As [`Outbox::append`].
    pub async fn append_json(&self, id: &str, body: &serde_json::Value) -> Result<bool> {
        let bytes = serde_json::to_vec(body).map_err(|e| SinkError::NotificationInvalid {
            id: id.to_owned(),
            reason: e.to_string(),
        })?;
        self.append(id, &bytes).await
    }

    /// The outbox, for producers that append from blocking code.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The metrics (cheap to clone; outlives the handle).
    pub fn metrics(&self) -> WebhookMetrics {
        self.metrics.clone()
    }

    /// Waits for every sender to stop (cancel the shutdown token first),
    /// each having persisted its cursor, then releases the outbox.
    ///
    /// # Errors
    /// [`SinkError::TaskFailed`] if a sender panicked.
    pub async fn join(self) -> Result<()> {
        let mut first_error = None;
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                error!(webhook = %name, error = %e, "webhook sender ended abnormally");
                first_error.get_or_insert(SinkError::TaskFailed {
                    webhook: name,
                    reason: e.to_string(),
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Counters of every webhook, for the Prometheus exporter.
#[derive(Debug, Clone)]
pub struct WebhookMetrics {
    /// The outbox's next sequence number (a receiver, not the outbox: the
    /// metrics must not keep the outbox directory locked after `join`).
    appended: tokio::sync::watch::Receiver<u64>,
    webhooks: Arc<Vec<(String, Arc<Counters>)>>,
}

/// One webhook's counters at one instant (monotonic since start, except
/// `cursor`, `backlog` and `last_latency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookStats {
    /// The webhook's name (a fine, low-cardinality label).
    pub name: String,
    /// Notifications answered with a 2xx.
    pub delivered: u64,
    /// Failed attempts that were retried (408, 429, 5xx, transport).
    pub retried: u64,
    /// Notifications skipped after a permanent refusal (other 4xx, 3xx).
    pub failed_permanently: u64,
    /// Notifications passed over by the `rules` filter.
    pub filtered: u64,
    /// From append to 2xx, for the last delivered notification (includes
    /// any time the webhook was down).
    pub last_latency: Option<Duration>,
    /// The persisted cursor (next outbox position to deliver).
    pub cursor: u64,
    /// Notifications in the outbox after the cursor (filtered ones too).
    pub backlog: u64,
}

impl WebhookMetrics {
    /// Every webhook's counters, in config order.
    pub fn snapshot(&self) -> Vec<WebhookStats> {
        let end = *self.appended.borrow();
        self.webhooks
            .iter()
            .map(|(name, c)| {
                let cursor = c.cursor.load(Ordering::Relaxed);
                let latency = c.last_latency_ms.load(Ordering::Relaxed);
                WebhookStats {
                    name: name.clone(),
                    delivered: c.delivered.load(Ordering::Relaxed),
                    retried: c.retried.load(Ordering::Relaxed),
                    failed_permanently: c.failed_permanently.load(Ordering::Relaxed),
                    filtered: c.filtered.load(Ordering::Relaxed),
                    last_latency: (latency != u64::MAX).then(|| Duration::from_millis(latency)),
                    cursor,
                    backlog: end.saturating_sub(cursor),
                }
            })
            .collect()
    }

    /// The counters of the webhook called `name`.
    pub fn get(&self, name: &str) -> Option<WebhookStats> {
        self.snapshot().into_iter().find(|s| s.name == name)
    }

    /// Notifications ever appended (the outbox's next sequence number).
    pub fn appended(&self) -> u64 {
        *self.appended.borrow()
    }
}
