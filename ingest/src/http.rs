//! `POST /v1/events`: the HTTP ingest endpoint.
//!
//! Protocol: a JSON array of events (`Content-Type: application/json`) or
//! NDJSON (`application/x-ndjson`, one event per line; a body that starts
//! with `{` is read as NDJSON too, so a single event can be posted as is).
//! At most `max_events_per_request` events and `max_body_bytes` bytes,
//! else 413 with the reason; an unreadable body is 400. Authentication:
//! `Authorization: Bearer <ingest key>` (see [`crate::keys`]).
//!
//! Each event is validated against the contract, its store against the
//! key's stores, its time against the wall clock (`max_future_skew_secs`),
//! and its id against the ids already ingested. The new, valid events are
//! appended *unchanged* to the event log (or produced to Kafka, keyed by
//! `store_id`; see [`crate::append`]) and the answer is sent only after the
//! log has fsynced them (or the broker acknowledged them with `acks=all`).
//! Rejected events go, unchanged and with the reason, to the dead-letter
//! log (topic), and the answer lists them:
//! `{accepted, duplicates, rejected: [{index, event_id, reason}]}`.
//!
//! Back-pressure: when the log writer's (producer's) queue is full, the
//! broker does not answer within the produce timeout, or the processors are
//! more than `max_lag_records` behind, the answer is 503 with `Retry-After`;
//! the emitter sends the request again (events of it that did get through
//! are then duplicates, which ingest or the processors drop by `event_id`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use storepulse_core::dead_letter::{DeadLetter, RejectedAt};
use storepulse_core::dedup::SharedDedup;
use storepulse_core::latency::VisibilityTracker;
use storepulse_core::time::{now, SECOND};
use storepulse_core::EventParser;
use tracing::{debug, warn};

use crate::append::{AppendError, EventAppender, KeyedEvent};
use crate::keys::{KeyConfig, KeyTable};

/// `[ingest]` section of `storepulse.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Most events in one request. Default 10000.
    pub max_events_per_request: usize,
    /// Largest request body in bytes. Default 10 MiB.
    pub max_body_bytes: usize,
    /// Events dated more than this many seconds after the server's clock
    /// are rejected (a POS with a wrong clock would otherwise move the
    /// event-time clock into the future). Default 300.
    pub max_future_skew_secs: u64,
    /// Answer 503 while the processors are more than this many events
    /// behind the log. Default 500000.
    pub max_lag_records: u64,
    /// `Retry-After` seconds sent with a 503. Default 1.
    pub retry_after_secs: u64,
    /// Ingest keys, each bound to stores (see `storepulse keys hash`).
    pub keys: Vec<KeyConfig>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_events_per_request: 10_000,
            max_body_bytes: 10 * 1024 * 1024,
            max_future_skew_secs: 300,
            max_lag_records: 500_000,
            retry_after_secs: 1,
            keys: Vec::new(),
        }
    }
}

impl IngestConfig {
    /// Checks the values; the error names the field.
    ///
    /// # Errors
    /// A message `ingest.<field>: <rule>`.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_events_per_request == 0 {
            return Err("ingest.max_events_per_request: must be > 0".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("ingest.max_body_bytes: must be at least 1024".into());
        }
        if self.retry_after_secs == 0 {
            return Err("ingest.retry_after_secs: must be > 0".into());
        }
        Ok(())
    }
}

/// Labels of ingest counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestLabels {
    pub event_type: &'static str,
    /// `accepted`, `duplicate` or `rejected`.
    pub outcome: &'static str,
}

/// Labels of request counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: u16,
}

/// Ingest metrics.
#[derive(Debug, Clone, Default)]
pub struct IngestMetrics {
    pub events: Family<IngestLabels, Counter>,
    pub requests: Family<StatusLabels, Counter>,
}

impl IngestMetrics {
    /// Registers the metrics.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "storepulse_ingest_events",
            "Events received over HTTP, by type and outcome",
            self.events.clone(),
        );
        registry.register(
            "storepulse_ingest_requests",
            "Ingest requests by HTTP status",
            self.requests.clone(),
        );
    }
}

/// Where ingest reads how far behind the processors are.
pub type LagProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Everything the handler needs.
#[derive(Clone)]
pub struct IngestState {
    pub config: Arc<IngestConfig>,
    pub parser: EventParser,
    pub keys: Arc<KeyTable>,
    /// Where accepted events and dead letters go.
    pub appender: Arc<dyn EventAppender>,
    pub dedup: Arc<SharedDedup>,
    pub metrics: IngestMetrics,
    pub visibility: Arc<VisibilityTracker>,
    pub lag: LagProbe,
}

/// One rejected event in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedItem {
    /// 0-based position in the request (array index or NDJSON line).
    pub index: usize,
    pub event_id: Option<String>,
    pub reason: String,
}

/// The answer to a successful ingest request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestAnswer {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<RejectedItem>,
}

/// The routes of this module.
pub fn router(state: IngestState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/events", post(post_events))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn unavailable(retry_after: u64, message: impl Into<String>) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

async fn post_events(
    State(st): State<IngestState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let response = handle(&st, &headers, body).await;
    st.metrics
        .requests
        .get_or_create(&StatusLabels {
            status: response.status().as_u16(),
        })
        .inc();
    response
}

async fn handle(
    st: &IngestState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let arrived = Instant::now();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(grant) = presented.and_then(|k| st.keys.authenticate(k)) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or unknown ingest key (Authorization: Bearer <key>)",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("body: larger than {} bytes", st.config.max_body_bytes)
            } else {
                format!("body: {rejection}")
            };
            return error(status, message);
        }
    };
    let lag = (st.lag)();
    if lag > st.config.max_lag_records {
        warn!(lag, "processors behind; asking emitters to retry");
        return unavailable(
            st.config.retry_after_secs,
            format!("the pipeline is {lag} events behind; retry later"),
        );
    }
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/x-ndjson") || ct.starts_with("application/ndjson")
        });
    let items = match split_body(&body, ndjson, st.config.max_events_per_request) {
        Ok(items) => items,
        Err((status, message)) => return error(status, message),
    };

    let max_time = now().saturating_add(st.config.max_future_skew_secs as i64 * SECOND);
    let mut answer = IngestAnswer::default();
    let mut payloads = Vec::new();
    let mut fresh: Vec<(String, i64)> = Vec::new();
    let mut letters = Vec::new();
    let mut counts: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
    let mut in_request: HashSet<String> = HashSet::new();
    for (index, raw) in items.iter().enumerate() {
        let raw: &[u8] = raw;
        let verdict = st.parser.parse(raw).and_then(|event| {
            if !grant.scope.allows(event.store) {
                return Err(storepulse_core::Rejection::semantic(
                    "store_id",
                    format!(
                        "ingest key {:?} is not bound to store {:?}",
                        grant.name,
                        st.parser.stores().id(event.store)
                    ),
                    &event.event_id,
                ));
            }
            if event.occurred_at > max_time {
                return Err(storepulse_core::Rejection::semantic(
                    "occurred_at",
                    format!(
                        "more than {}s ahead of the server clock; check the emitter's clock",
                        st.config.max_future_skew_secs
                    ),
                    &event.event_id,
                ));
            }
            Ok(event)
        });
        match verdict {
            Ok(event) => {
                let kind = event.event_type().as_str();
                // Seen before, or twice in this request: a duplicate.
                let seen = st.dedup.with(|w, _| w.contains(&event.event_id))
                    || !in_request.insert(event.event_id.to_string());
                if seen {
                    answer.duplicates += 1;
                    *counts.entry((kind, "duplicate")).or_default() += 1;
                } else {
                    answer.accepted += 1;
                    *counts.entry((kind, "accepted")).or_default() += 1;
                    payloads.push(KeyedEvent {
                        key: st.parser.stores().id(event.store).to_owned(),
                        payload: raw.to_vec(),
                    });
                    fresh.push((event.event_id.to_string(), event.occurred_at));
                }
            }
            Err(rejection) => {
                *counts
                    .entry((storepulse_core::EventType::sniff(raw), "rejected"))
                    .or_default() += 1;
                letters.push(DeadLetter::new(
                    RejectedAt::Ingest,
                    rejection.reason(),
                    rejection.event_id.clone(),
                    raw,
                ));
                let reason = rejection.reason();
                answer.rejected.push(RejectedItem {
                    index,
                    event_id: rejection.event_id,
                    reason,
                });
            }
        }
    }

    let letter_payloads: Vec<KeyedEvent> = letters
        .iter()
        .filter_map(|l| {
            serde_json::to_vec(l).ok().map(|payload| KeyedEvent {
                key: l.event_id.clone().unwrap_or_default(),
                payload,
            })
        })
        .collect();
    let append_events = async {
        if payloads.is_empty() {
            Ok(None)
        } else {
            st.appender.append_events(payloads).await
        }
    };
    let append_letters = async {
        if letter_payloads.is_empty() {
            Ok(())
        } else {
            st.appender.append_dead_letters(letter_payloads).await
        }
    };
    let (events_result, letters_result) = tokio::join!(append_events, append_letters);
    match events_result {
        Ok(end) => {
            if !fresh.is_empty() {
                st.dedup.with(|window, covered| {
                    for (id, at) in &fresh {
                        window.remember(id, *at);
                    }
                    if let Some(end) = end {
                        *covered = (*covered).max(end);
                    }
                });
            }
            if let Some(end) = end {
                st.visibility.mark(end, arrived);
            }
        }
        Err(AppendError::Backpressure) => {
            let name = st.appender.name();
            return unavailable(
                st.config.retry_after_secs,
                format!("{name} is busy; retry later"),
            );
        }
        Err(e) => {
            let name = st.appender.name();
            warn!(error = %e, destination = name, "append failed");
            return unavailable(
                st.config.retry_after_secs,
                format!("{name} unavailable: {e}"),
            );
        }
    }
    if let Err(e) = letters_result {
        // The valid events are durable; the rejections are not yet: ask for
        // the request again (its events will then be duplicates).
        warn!(error = %e, "dead-letter append failed");
        return unavailable(
            st.config.retry_after_secs,
            format!(
                "dead-letter destination ({}) unavailable: {e}",
                st.appender.name()
            ),
        );
    }
    for ((event_type, outcome), n) in counts {
        st.metrics
            .events
            .get_or_create(&IngestLabels {
                event_type,
                outcome,
            })
            .inc_by(n);
    }
    debug!(key = %grant.name, accepted = answer.accepted, duplicates = answer.duplicates, rejected = answer.rejected.len(), "ingested");
    (StatusCode::OK, Json(answer)).into_response()
}

/// Splits a body into raw events: a JSON array's elements, or NDJSON lines.
fn split_body(
    body: &[u8],
    ndjson: bool,
    max_events: usize,
) -> Result<Vec<Cow<'_, [u8]>>, (StatusCode, String)> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if !ndjson && first == Some(b'[') {
        let mut items = Vec::new();
        for item in sonic_rs::to_array_iter(body) {
            let item = item.map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("body: not a JSON array of events: {e}"),
                )
            })?;
            if items.len() == max_events {
                return Err(too_many(max_events));
            }
            items.push(Cow::Owned(item.as_raw_str().as_bytes().to_vec()));
        }
        return Ok(items);
    }
    if first.is_none() {
        return Err((
            StatusCode::BAD_REQUEST,
            "body: empty; send a JSON array of events or NDJSON".into(),
        ));
    }
    if !ndjson && first != Some(b'{') {
        return Err((
            StatusCode::BAD_REQUEST,
            "body: expected a JSON array of events, or NDJSON with Content-Type: application/x-ndjson".into(),
        ));
    }
    let mut lines: Vec<Cow<'_, [u8]>> = body
        .split(|b| *b == b'\n')
        .map(|l| Cow::Borrowed(l.strip_suffix(b"\r").unwrap_or(l)))
        .collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.len() > max_events {
        return Err(too_many(max_events));
    }
    Ok(lines)
}

fn too_many(max: usize) -> (StatusCode, String) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body: more than {max} events in one request"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::LogAppender;
    use crate::keys::hash_key;
    use crate::log::{EventLog, LogConfig};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use storepulse_core::dedup::DedupWindow;
    use storepulse_core::StoreMaster;
    use tower::ServiceExt;

    const EVENT: &str = r#"{"v":1,"event_id":"r1","event_type":"stock_receipt","occurred_at":"2026-01-01T08:00:00+08:00","store_id":"KM-001","channel":"backoffice","lines":[{"sku":"A","qty":1}]}"#;

    fn state(dir: &std::path::Path, lag: u64) -> (IngestState, EventLog) {
        let stores = Arc::new(
            StoreMaster::load(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv"),
            )
            .unwrap(),
        );
        let keys = KeyTable::build(
            &[KeyConfig {
                name: "t".into(),
                sha256: hash_key("k"),
                stores: vec!["*".into()],
            }],
            &stores,
        )
        .unwrap();
        let events = EventLog::open(&dir.join("events"), LogConfig::default()).unwrap();
        let st = IngestState {
            config: Arc::new(IngestConfig::default()),
            parser: EventParser::new(stores),
            keys: Arc::new(keys),
            appender: Arc::new(LogAppender {
                events: events.clone(),
                dead_letters: EventLog::open(&dir.join("dlq"), LogConfig::default()).unwrap(),
            }),
            dedup: Arc::new(SharedDedup::new(
                DedupWindow::new(7 * storepulse_core::time::DAY),
                0,
            )),
            metrics: IngestMetrics::default(),
            visibility: Arc::default(),
            lag: Arc::new(move || lag),
        };
        (st, events)
    }

    async fn post(st: IngestState, body: &str) -> (StatusCode, HeaderMap, serde_json::Value) {
        let request = Request::post("/v1/events")
            .header("authorization", "Bearer k")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router(st).oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn accepted_events_are_in_the_log_before_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (st, log) = state(dir.path(), 0);
        let (status, _, answer) = post(st.clone(), &format!("[{EVENT},{EVENT}]")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(log.end_offset(), 1);
        assert_eq!(log.read_range(0, 10).unwrap()[0].1, EVENT.as_bytes());
    }

    #[tokio::test]
    async fn overloaded_pipeline_answers_503_with_retry_after_and_takes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (st, log) = state(dir.path(), 10_000_000);
        let (status, headers, answer) = post(st, &format!("[{EVENT}]")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert_eq!(headers.get("retry-after").unwrap(), "1");
        assert_eq!(log.end_offset(), 0);
    }
}
