//! One sender task per webhook: reads the outbox in order from the
//! webhook's cursor, POSTs one notification at a time, retries what may
//! pass, skips what never will, and persists the cursor after each
//! delivery.
//!
//! Retry logic (Vector's `RetryLogic`, in [`classify_status`]):
//! - 2xx: delivered; the cursor moves past it and is persisted.
//! - 408, 429, 5xx, and any transport error (refused, reset, DNS, TLS,
//!   timeout): retried with exponential backoff and jitter, from
//!   `initial_backoff_ms` up to `max_backoff_secs` (or the server's
//!   `Retry-After`, capped the same way), **forever**. Order matters, so
//!   nothing behind it is sent meanwhile.
//! - Any other status (3xx, other 4xx): permanent. Retrying the same
//!   request would fail the same way (wrong URL, wrong token, a body the
//!   robot refuses), and blocking the queue on it would hold every later
//!   alert back until an operator intervenes. So it is logged at error level
//!   with the webhook, the notification id and the status, counted in
//!   `failed_permanently`, and skipped.
//!
//! Shutdown: the idle wait and the backoff sleep race the shutdown token.
//! A request already in flight is allowed to finish (its `timeout_ms`
//! bounds the wait) so its outcome is recorded rather than re-sent. The
//! cursor is persisted before the task ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::config::{redact_query, WebhookConfig};
use super::outbox::{Notification, Outbox, OutboxReader};
use super::signature;
use crate::error::{Result, SinkError};

/// Header carrying the notification id; receivers de-duplicate on it.
pub const HEADER_DELIVERY: &str = "x-storepulse-delivery";
/// Header carrying the signing time, unix seconds.
pub const HEADER_TIMESTAMP: &str = "x-storepulse-timestamp";
/// Header carrying `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const HEADER_SIGNATURE: &str = "x-storepulse-signature";

/// Counters of one webhook, updated by its sender, read by the exporter.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed_permanently: AtomicU64,
    pub filtered: AtomicU64,
    /// Append to 2xx of the last delivery, ms; `u64::MAX` before the first.
    pub last_latency_ms: AtomicU64,
    /// The persisted cursor.
    pub cursor: AtomicU64,
}

impl Counters {
    pub(crate) fn new(cursor: u64) -> Self {
        Self {
            last_latency_ms: AtomicU64::new(u64::MAX),
            cursor: AtomicU64::new(cursor),
            ..Self::default()
        }
    }
}

/// What became of one notification.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Rejected,
    Shutdown,
}

/// Everything a sender task needs.
pub(crate) struct Sender {
    pub config: WebhookConfig,
    pub secret: Vec<u8>,
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub client: reqwest::Client,
    pub outbox: Arc<Outbox>,
    pub cursor: u64,
    pub counters: Arc<Counters>,
    pub shutdown: CancellationToken,
}

/// Builds the HTTP client of one webhook: its timeout, no redirects (a
/// redirected POST becomes a GET), rustls.
pub(crate) fn build_client(config: &WebhookConfig) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(config.timeout())
        .connect_timeout(config.timeout())
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("storepulse-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SinkError::HttpClient {
            webhook: config.name.clone(),
            reason: error_chain(&e.without_url()),
        })
}

/// The extra headers of a validated config.
pub(crate) fn extra_headers(config: &WebhookConfig) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in &config.headers {
        let field = || format!("webhook {:?} header {name}", config.name);
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| SinkError::config(field(), e.to_string()))?;
        let v =
            HeaderValue::from_str(value).map_err(|e| SinkError::config(field(), e.to_string()))?;
        map.insert(n, v);
    }
    Ok(map)
}

/// The error and its sources, joined: reqwest's own message is generic
/// ("error sending request"), the cause is in the chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Classifies a non-2xx status: 408, 429 and 5xx may pass, the rest won't.
pub fn classify_status(status: StatusCode, retry_after_secs: Option<u64>) -> SinkError {
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        SinkError::Unavailable {
            status: code,
            retry_after_secs,
        }
    } else {
        SinkError::Rejected { status: code }
    }
}

/// The delay before retry number `attempt` (1-based): `initial * 2^(n-1)`
/// capped at `max`, then "equal jitter" (a uniform draw in its upper half),
/// so many senders retrying together spread out but never retry early.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let half = capped / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    let extra = if jitter_ms == 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..=jitter_ms)
    };
    (half + Duration::from_millis(extra)).min(max)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Sender {
    /// The task: deliver until shutdown.
    pub(crate) async fn run(self) {
        let name = self.config.name.clone();
        info!(
            webhook = %name,
            url = %redact_query(self.url.as_str()),
            cursor = self.cursor,
            "webhook sender started"
        );
        let reader = Arc::new(Mutex::new(self.outbox.reader(self.cursor)));
        let mut appended = self.outbox.subscribe();
        let mut committed = self.cursor;
        // Everything before `done` is delivered, rejected or filtered out.
        let mut done = self.cursor;
        let mut read_failures = 0u32;
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            let next = match read_next(&reader).await {
                Ok(next) => {
                    read_failures = 0;
                    next
                }
                Err(e) => {
                    read_failures = read_failures.saturating_add(1);
                    let delay = backoff(
                        self.config.initial_backoff(),
                        self.config.max_backoff(),
                        read_failures,
                    );
                    error!(
                        webhook = %name,
                        seq = done,
                        error = %e,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "cannot read the outbox; retrying"
                    );
                    if !self.sleep_or_shutdown(delay).await {
                        break;
                    }
                    continue;
                }
            };
            let Some(n) = next else {
                // Caught up: persist what filtering skipped, then wait for
                // an append (the watch never misses one: it remembers that
                // the value changed since we last looked).
                if done > committed && self.commit(done).await {
                    committed = done;
                }
                tokio::select! {
                    biased;
                    () = self.shutdown.cancelled() => break,
                    changed = appended.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
                continue;
            };
            if !self.config.selects(n.rule.as_deref()) {
                self.counters.filtered.fetch_add(1, Ordering::Relaxed);
                done = n.seq + 1;
                continue;
            }
            match self.deliver(&n).await {
                Outcome::Delivered | Outcome::Rejected => {
                    done = n.seq + 1;
                    if self.commit(done).await {
                        committed = done;
                    }
                }
                Outcome::Shutdown => break,
            }
        }
        if done > committed {
            self.commit(done).await;
        }
        info!(webhook = %name, cursor = done, "webhook sender stopped");
    }

    /// Persists the cursor, retrying I/O failures with backoff until it
    /// works or shutdown (then one last try). Returns whether it is written.
    async fn commit(&self, next_seq: u64) -> bool {
        let mut attempt = 0u32;
        loop {
            let outbox = Arc::clone(&self.outbox);
            let name = self.config.name.clone();
            let result =
                tokio::task::spawn_blocking(move || outbox.commit_cursor(&name, next_seq)).await;
            let err = match result {
                Ok(Ok(())) => {
                    self.counters.cursor.store(next_seq, Ordering::Relaxed);
                    return true;
                }
                Ok(Err(e)) => e.to_string(),
                Err(join) => join.to_string(),
            };
            attempt = attempt.saturating_add(1);
            let delay = backoff(
                self.config.initial_backoff(),
                self.config.max_backoff(),
                attempt,
            );
            error!(
                webhook = %self.config.name,
                cursor = next_seq,
                error = %err,
                "cannot persist the webhook cursor; retrying"
            );
            if self.shutdown.is_cancelled() {
                // At shutdown (after the one try that follows it): give up;
                // the notifications since the persisted cursor are sent
                // again at the next start (receivers de-duplicate).
                return false;
            }
            // Shutdown during the sleep: one last try on the next turn.
            self.sleep_or_shutdown(delay).await;
        }
    }

    /// Sleeps `delay`; false when shutdown came first.
    async fn sleep_or_shutdown(&self, delay: Duration) -> bool {
        tokio::select! {
            biased;
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    /// Sends `n` until it is delivered, permanently rejected, or shutdown.
    async fn deliver(&self, n: &Notification) -> Outcome {
        let name = &self.config.name;
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let err = match self.send_once(n).await {
                Ok(()) => {
                    let latency_ms = unix_ms().saturating_sub(n.appended_at_ms);
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .last_latency_ms
                        .store(latency_ms, Ordering::Relaxed);
                    debug!(
                        webhook = %name,
                        id = %n.id,
                        seq = n.seq,
                        attempts = attempt + 1,
                        latency_ms,
                        request_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "notification delivered"
                    );
                    return Outcome::Delivered;
                }
                Err(e) => e,
            };
            if !err.retryable() {
                self.counters
                    .failed_permanently
                    .fetch_add(1, Ordering::Relaxed);
                let status = match &err {
                    SinkError::Rejected { status } => *status,
                    _ => 0,
                };
                error!(
                    webhook = %name,
                    id = %n.id,
                    seq = n.seq,
                    status,
                    error = %err,
                    "webhook refused the notification permanently; skipped"
                );
                return Outcome::Rejected;
            }
            attempt = attempt.saturating_add(1);
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            let mut delay = backoff(
                self.config.initial_backoff(),
                self.config.max_backoff(),
                attempt,
            );
            if let SinkError::Unavailable {
                retry_after_secs: Some(secs),
                ..
            } = &err
            {
                delay = delay.max(Duration::from_secs(*secs).min(self.config.max_backoff()));
            }
            warn!(
                webhook = %name,
                id = %n.id,
                seq = n.seq,
                attempt,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "webhook delivery failed; retrying"
            );
            if !self.sleep_or_shutdown(delay).await {
                return Outcome::Shutdown;
            }
        }
    }

    /// One signed POST.
    async fn send_once(&self, n: &Notification) -> Result<()> {
        let timestamp = unix_secs();
        let signature = signature::sign(&self.secret, timestamp, &n.body);
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_DELIVERY, n.id.as_str())
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(n.body.clone())
            .send()
            .await
            .map_err(|e| {
                let timeout = e.is_timeout();
                SinkError::Transport {
                    reason: error_chain(&e.without_url()),
                    timeout,
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after_secs = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Err(classify_status(status, retry_after_secs))
    }
}

/// The next notification, read on the blocking pool.
async fn read_next(reader: &Arc<Mutex<OutboxReader>>) -> Result<Option<Notification>> {
    let reader = Arc::clone(reader);
    tokio::task::spawn_blocking(move || {
        reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .read_next()
    })
    .await
    .map_err(|e| SinkError::Io {
        path: std::path::PathBuf::from("<outbox reader>"),
        source: std::io::Error::other(e.to_string()),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        for code in [408u16, 429, 500, 502, 503, 504] {
            let s = StatusCode::from_u16(code).unwrap();
            assert!(classify_status(s, None).retryable(), "{code}");
        }
        for code in [301u16, 400, 401, 403, 404, 413, 422] {
            let s = StatusCode::from_u16(code).unwrap();
            assert!(!classify_status(s, None).retryable(), "{code}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let initial = Duration::from_millis(200);
        let max = Duration::from_secs(60);
        for attempt in 1..=40 {
            let d = backoff(initial, max, attempt);
            let full = initial
                .saturating_mul(1u32 << (attempt - 1).min(20))
                .min(max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
        assert!(backoff(initial, max, 1) <= Duration::from_millis(200));
        assert!(backoff(initial, max, 100) >= Duration::from_secs(30));
    }
}
