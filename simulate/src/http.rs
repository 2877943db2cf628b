//! HTTP output: batches POSTed to `{url}/v1/events` with bounded concurrency.
//!
//! Protocol: a batch is one JSON array of events (`Content-Type:
//! application/json`), or NDJSON (`application/x-ndjson`) when it holds a
//! deliberately broken event that would make the whole array unreadable.
//! `Authorization: Bearer <key>`. The server answers `{accepted, duplicates,
//! rejected: [{index, event_id, reason}]}`; an event is acknowledged when
//! the answer is 2xx and its index is not in `rejected` (duplicates are
//! acknowledged: the server already has them).
//!
//! Retries (a batch is always re-sent whole; event ids make that safe):
//! - 503 and 429: wait `Retry-After` seconds (1 s if absent, 50 ms-300 s),
//!   for as long as the server asks; after shutdown at most
//!   [`RETRIES_AFTER_SHUTDOWN`] more times, then the batch is abandoned and
//!   counted.
//! - Connection errors, timeouts, other 5xx: exponential backoff from
//!   100 ms to 5 s, at most `--max-retries` times, then the run fails.
//! - 401, 403, 404, 413: the run fails at once (wrong key, URL or size).
//! - Other 4xx: the batch is counted as rejected, with the server's reasons
//!   when it gives them.
//!
//! With `--acked-out`, acknowledged events are appended (and flushed) batch
//! by batch in the order the answers arrive.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::SimulateArgs;
use crate::error::SimulateError;
use crate::generator::{Emitted, Generator};
use crate::pacing::{until, wait_turn, TokenBucket};
use crate::progress::Counters;

/// Largest request body; a batch is cut short when it would pass this.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Retries a batch still gets after shutdown was requested.
pub const RETRIES_AFTER_SHUTDOWN: u32 = 3;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const RETRY_AFTER_DEFAULT: Duration = Duration::from_secs(1);
const RETRY_AFTER_MIN: Duration = Duration::from_millis(50);
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
/// Unexpected verdicts (a valid event rejected, a malformed one accepted)
/// are logged one by one up to this many, then only counted.
const VERDICTS_LOGGED: u64 = 10;

/// One request's worth of events.
#[derive(Debug)]
pub(crate) struct Batch {
    body: Vec<u8>,
    /// Byte range of each event in `body`.
    spans: Vec<(usize, usize)>,
    kinds: Vec<Emitted>,
    ndjson: bool,
}

impl Batch {
    /// Generates up to `n` events (fewer when the body reaches
    /// [`MAX_BODY_BYTES`]; always at least one).
    pub fn generate(generator: &mut Generator, n: usize) -> Self {
        let mut body = Vec::with_capacity((n * 400).min(MAX_BODY_BYTES + 64 * 1024));
        let mut spans = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        body.push(b'[');
        for i in 0..n {
            if i > 0 {
                if body.len() >= MAX_BODY_BYTES {
                    break;
                }
                body.push(b',');
            }
            let start = body.len();
            kinds.push(generator.next_into(&mut body));
            spans.push((start, body.len()));
        }
        body.push(b']');
        let mut batch = Self {
            body,
            spans,
            kinds,
            ndjson: false,
        };
        if !batch.kinds.iter().all(|k| k.is_json()) {
            batch.relay_as_ndjson();
        }
        batch
    }

    /// Re-lays the events as NDJSON, one per line.
    fn relay_as_ndjson(&mut self) {
        let mut body = Vec::with_capacity(self.body.len());
        let mut spans = Vec::with_capacity(self.spans.len());
        for &(a, b) in &self.spans {
            let start = body.len();
            body.extend_from_slice(&self.body[a..b]);
            spans.push((start, body.len()));
            body.push(b'\n');
        }
        self.body = body;
        self.spans = spans;
        self.ndjson = true;
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    fn event(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i];
        &self.body[a..b]
    }

    fn content_type(&self) -> &'static str {
        if self.ndjson {
            "application/x-ndjson"
        } else {
            "application/json"
        }
    }
}

/// The server's answer to a batch.
#[derive(Debug, Deserialize)]
struct IngestResponse {
    #[serde(default)]
    #[allow(dead_code)] // Read for the record; acknowledgement is by `rejected`.
    accepted: u64,
    #[serde(default)]
    duplicates: DuplicateCount,
    #[serde(default)]
    rejected: Vec<RejectedEvent>,
}

/// `duplicates` as a count or as a list of the duplicate events.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DuplicateCount {
    Count(u64),
    List(Vec<serde::de::IgnoredAny>),
}

impl Default for DuplicateCount {
    fn default() -> Self {
        Self::Count(0)
    }
}

impl DuplicateCount {
    fn count(&self) -> u64 {
        match self {
            Self::Count(n) => *n,
            Self::List(list) => list.len() as u64,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RejectedEvent {
    index: usize,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// The `--acked-out` file.
pub(crate) struct AckLog {
    path: PathBuf,
    writer: Mutex<BufWriter<File>>,
}

impl AckLog {
    pub fn create(path: &Path) -> Result<Self, SimulateError> {
        let file = File::create(path).map_err(|source| SimulateError::Output {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            writer: Mutex::new(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Appends the acknowledged events of a batch and flushes.
    fn append(&self, batch: &Batch, rejected: &[bool]) -> Result<(), SimulateError> {
        let io = |source| SimulateError::Output {
            path: self.path.clone(),
            source,
        };
        // A poisoned lock means another sender panicked mid-write; the
        // file is still an append-only log, so keep writing.
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        for i in (0..batch.len()).filter(|&i| !rejected[i]) {
            w.write_all(batch.event(i)).map_err(io)?;
            w.write_all(b"\n").map_err(io)?;
        }
        w.flush().map_err(io)
    }
}

/// Sends batches; shared by the in-flight tasks.
pub(crate) struct Sender {
    client: reqwest::Client,
    endpoint: String,
    authorization: String,
    max_retries: u32,
    counters: Arc<Counters>,
    acked: Option<AckLog>,
    stopping: AtomicBool,
    logged_verdicts: AtomicU64,
}

impl Sender {
    pub fn new(
        args: &SimulateArgs,
        url: &str,
        counters: Arc<Counters>,
    ) -> Result<Self, SimulateError> {
        let timeout = args.timeout();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(args.concurrency)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| SimulateError::Client(e.to_string()))?;
        let acked = args.acked_out.as_deref().map(AckLog::create).transpose()?;
        Ok(Self {
            client,
            endpoint: format!("{}/v1/events", url.trim_end_matches('/')),
            authorization: format!("Bearer {}", args.key),
            max_retries: args.max_retries,
            counters,
            acked,
            stopping: AtomicBool::new(false),
            logged_verdicts: AtomicU64::new(0),
        })
    }

    /// From now on batches retry only a few more times.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Delivers a batch, retrying as the module documentation says.
    ///
    /// # Errors
    /// The server refused for good, stayed unreachable past the retry
    /// budget, answered something unreadable, or `--acked-out` failed.
    pub async fn deliver(&self, batch: Batch) -> Result<(), SimulateError> {
        let n = batch.len() as u64;
        let mut failures = 0u32;
        let mut retries_after_stop = 0u32;
        loop {
            let attempt = std::time::Instant::now();
            let response = self
                .client
                .post(&self.endpoint)
                .header(CONTENT_TYPE, batch.content_type())
                .header(AUTHORIZATION, &self.authorization)
                .body(batch.body.clone())
                .send()
                .await;
            let wait = match response {
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::SERVICE_UNAVAILABLE
                        || status == StatusCode::TOO_MANY_REQUESTS
                    {
                        Counters::add(&self.counters.retried_503, 1);
                        let wait = retry_after(response.headers());
                        tracing::debug!(
                            status = status.as_u16(),
                            wait_ms = wait.as_millis() as u64,
                            "server busy, retrying batch"
                        );
                        wait
                    } else if status.is_success() {
                        match response.bytes().await {
                            Ok(body) => {
                                self.counters.record_latency(attempt.elapsed());
                                return self.acknowledge(&batch, status, &body);
                            }
                            Err(error) => {
                                failures += 1;
                                self.transient(failures, &error.to_string())?
                            }
                        }
                    } else if status.is_server_error() {
                        failures += 1;
                        self.transient(failures, &format!("HTTP {status}"))?
                    } else if matches!(
                        status,
                        StatusCode::UNAUTHORIZED
                            | StatusCode::FORBIDDEN
                            | StatusCode::NOT_FOUND
                            | StatusCode::PAYLOAD_TOO_LARGE
                    ) {
                        let detail = response.text().await.unwrap_or_default();
                        return Err(SimulateError::Refused {
                            url: self.endpoint.clone(),
                            status: status.as_u16(),
                            detail: refusal_hint(status, &detail),
                        });
                    } else {
                        let body = response.bytes().await.unwrap_or_default();
                        return self.acknowledge(&batch, status, &body);
                    }
                }
                Err(error) => {
                    failures += 1;
                    self.transient(failures, &error_chain(&error))?
                }
            };
            if self.stopping() {
                retries_after_stop += 1;
                if retries_after_stop > RETRIES_AFTER_SHUTDOWN {
                    tracing::warn!(
                        events = n,
                        "shutting down: batch abandoned, never acknowledged"
                    );
                    Counters::add(&self.counters.abandoned, n);
                    return Ok(());
                }
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts a transient failure and returns the backoff, or gives up.
    fn transient(&self, failures: u32, error: &str) -> Result<Duration, SimulateError> {
        if failures > self.max_retries {
            return Err(SimulateError::RetriesExhausted {
                url: self.endpoint.clone(),
                attempts: failures,
                last_error: error.to_owned(),
            });
        }
        Counters::add(&self.counters.retried_errors, 1);
        let backoff = BACKOFF_START
            .saturating_mul(1 << (failures - 1).min(16))
            .min(BACKOFF_MAX);
        tracing::warn!(%error, attempt = failures, backoff_ms = backoff.as_millis() as u64, "ingest request failed, retrying");
        Ok(backoff)
    }

    /// Books the server's verdict on a batch.
    fn acknowledge(
        &self,
        batch: &Batch,
        status: StatusCode,
        body: &[u8],
    ) -> Result<(), SimulateError> {
        let n = batch.len();
        let answer: IngestResponse = match serde_json::from_slice(body) {
            Ok(answer) => answer,
            Err(error) if status.is_success() => {
                return Err(SimulateError::BadResponse {
                    url: self.endpoint.clone(),
                    detail: format!("HTTP {status}: {error}"),
                });
            }
            Err(_) => {
                // A 4xx without per-event reasons: the whole batch is refused.
                tracing::warn!(status = status.as_u16(), events = n, body = %snippet(body), "batch rejected as a whole");
                IngestResponse {
                    accepted: 0,
                    duplicates: DuplicateCount::Count(0),
                    rejected: (0..n)
                        .map(|index| RejectedEvent {
                            index,
                            event_id: None,
                            reason: Some(format!("HTTP {status}")),
                        })
                        .collect(),
                }
            }
        };
        let mut rejected = vec![false; n];
        for r in &answer.rejected {
            match rejected.get_mut(r.index) {
                Some(flag) => *flag = true,
                None => tracing::warn!(
                    index = r.index,
                    events = n,
                    "server rejected an index outside the batch"
                ),
            }
        }
        let n_rejected = rejected.iter().filter(|&&r| r).count() as u64;
        let c = &self.counters;
        Counters::add(&c.acknowledged, n as u64 - n_rejected);
        Counters::add(&c.rejected, n_rejected);
        Counters::add(&c.duplicates, answer.duplicates.count());

        for r in &answer.rejected {
            if let Some(&kind) = batch.kinds.get(r.index) {
                if kind.is_valid() {
                    Counters::add(&c.rejected_unexpected, 1);
                    if self.logged_verdicts.fetch_add(1, Ordering::Relaxed) < VERDICTS_LOGGED {
                        tracing::warn!(
                            event_id = r.event_id.as_deref().unwrap_or(""),
                            reason = r.reason.as_deref().unwrap_or(""),
                            "server rejected a valid event"
                        );
                    }
                }
            }
        }
        for (i, kind) in batch.kinds.iter().enumerate() {
            if let (Emitted::Malformed(kind), false) = (kind, rejected[i]) {
                Counters::add(&c.accepted_malformed, 1);
                if self.logged_verdicts.fetch_add(1, Ordering::Relaxed) < VERDICTS_LOGGED {
                    tracing::warn!(?kind, event = %snippet(batch.event(i)), "server accepted a malformed event");
                }
            }
        }
        if let Some(log) = &self.acked {
            log.append(batch, &rejected)?;
        }
        Ok(())
    }
}

/// The wait a 503/429 asks for: `Retry-After` in seconds (an HTTP date or
/// garbage counts as absent), within sane bounds.
fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(RETRY_AFTER_DEFAULT, |s| {
            Duration::try_from_secs_f64(s).unwrap_or(RETRY_AFTER_MAX)
        })
        .clamp(RETRY_AFTER_MIN, RETRY_AFTER_MAX)
}

fn refusal_hint(status: StatusCode, detail: &str) -> String {
    let hint = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "check --key",
        StatusCode::NOT_FOUND => "check --url (events go to {url}/v1/events)",
        StatusCode::PAYLOAD_TOO_LARGE => "lower --batch",
        _ => "",
    };
    format!("{} ({hint})", snippet(detail.as_bytes()))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    text.trim().to_owned()
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Runs the HTTP output until the limits or `shutdown`; returns the
/// generator for its statistics.
///
/// # Errors
/// As [`Sender::deliver`]; the batches in flight are finished first.
pub(crate) async fn run(
    args: &SimulateArgs,
    url: &str,
    mut generator: Generator,
    counters: Arc<Counters>,
    started: Instant,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Generator, SimulateError> {
    let sender = Arc::new(Sender::new(args, url, counters.clone())?);
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let batch_size = args.effective_batch();
    let mut bucket = TokenBucket::new(args.rate, batch_size);
    let deadline = args.duration().map(|d| started + d);
    let mut remaining = args.events.unwrap_or(u64::MAX);
    let mut tasks: JoinSet<Result<(), SimulateError>> = JoinSet::new();
    let mut failure: Option<SimulateError> = None;
    tokio::pin!(shutdown);
    // Shutdown or `--duration` over: batches in flight get a few more
    // retries, then are abandoned. All `--events` sent: the batches in
    // flight keep retrying as usual (a restarting server must not cost
    // events the run was asked to deliver).
    let mut cut_short = false;

    tracing::info!(endpoint = %sender.endpoint, rate = args.rate, batch = batch_size, concurrency = args.concurrency, "simulate: sending");
    'produce: while remaining > 0 {
        while let Some(done) = tasks.try_join_next() {
            note_failure(done, &mut failure);
        }
        if failure.is_some() {
            break;
        }
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => {
                cut_short = true;
                break 'produce;
            }
            _ = until(deadline) => {
                cut_short = true;
                break 'produce;
            }
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break 'produce,
            },
        };
        let n = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(batch_size);
        if !wait_turn(&mut bucket, n, started, deadline, &mut shutdown).await {
            cut_short = true;
            break 'produce;
        }
        let batch = Batch::generate(&mut generator, n);
        let sent = batch.len() as u64;
        remaining -= sent;
        Counters::add(&counters.sent, sent);
        let sender = sender.clone();
        tasks.spawn(async move {
            let _permit = permit;
            sender.deliver(batch).await
        });
    }
    if cut_short || failure.is_some() {
        sender.stop();
    }
    while let Some(done) = tasks.join_next().await {
        note_failure(done, &mut failure);
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(generator),
    }
}

fn note_failure(
    done: Result<Result<(), SimulateError>, tokio::task::JoinError>,
    failure: &mut Option<SimulateError>,
) {
    let error = match done {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error,
        Err(join) => SimulateError::Client(format!("sender task failed: {join}")),
    };
    tracing::error!(%error, "simulate: stopping");
    failure.get_or_insert(error);
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), Duration::from_secs(1));
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Duration::from_secs(7));
        h.insert(RETRY_AFTER, HeaderValue::from_static("0"));
        assert_eq!(retry_after(&h), RETRY_AFTER_MIN);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Duration::from_secs(1));
        h.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&h), RETRY_AFTER_MAX);
        h.insert(RETRY_AFTER, HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&h), RETRY_AFTER_MAX);
    }

    #[test]
    fn response_forms() {
        let r: IngestResponse =
            serde_json::from_str(r#"{"accepted":2,"duplicates":1,"rejected":[{"index":0,"event_id":"x","reason":"bad"}]}"#)
                .unwrap();
        assert_eq!((r.duplicates.count(), r.rejected.len()), (1, 1));
        let r: IngestResponse =
            serde_json::from_str(r#"{"accepted":2,"duplicates":["a","b"],"rejected":[]}"#).unwrap();
        assert_eq!(r.duplicates.count(), 2);
    }
}
