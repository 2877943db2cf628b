//! Integration tests of the webhook sink against a real HTTP server (axum on
//! 127.0.0.1:0): delivery in order with valid signatures, a webhook that is
//! down (nothing listening, then 503) and comes back, a restart of the sink
//! on the same outbox, and a permanent 400 that is skipped.
//!
//! Backoff is configured short (10 ms, capped at 1 s) instead of pausing
//! time (the server is real I/O); every wait is bounded, so a failing test
//! fails rather than hangs.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::signature;
use super::{WebhookConfig, WebhookHandle, WebhookSink, WebhookSinkConfig};

const SECRET: &str = "test-secret";
/// Bound on any wait for the sink to make progress.
const PATIENCE: Duration = Duration::from_secs(20);

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: u64,
    signature: String,
    content_type: String,
    extra: Option<String>,
    body: Vec<u8>,
    answered: u16,
}

#[derive(Debug, Default)]
struct Script {
    /// Statuses for the next requests, one each, before `fallback`.
    queue: VecDeque<u16>,
    /// A fixed status for these ids (takes precedence).
    per_id: HashMap<String, u16>,
    /// The status once `queue` is empty; 0 means 200.
    fallback: u16,
    /// This many next requests get no answer for 3 s (logged with status 0).
    stall: u32,
}

#[derive(Debug, Clone, Default)]
struct Receiver {
    inner: Arc<Mutex<(Vec<Received>, Script)>>,
}

impl Receiver {
    fn all(&self) -> Vec<Received> {
        self.inner.lock().unwrap().0.clone()
    }

    /// Ids answered with a 2xx, in arrival order.
    fn delivered(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| r.id)
            .collect()
    }

    fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.inner.lock().unwrap().1);
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = h("x-storepulse-delivery");
    let status = {
        let mut guard = r.inner.lock().unwrap();
        let (log, script) = &mut *guard;
        let status = if script.stall > 0 {
            script.stall -= 1;
            0
        } else {
            match script.per_id.get(&id) {
                Some(s) => *s,
                None => script.queue.pop_front().unwrap_or(match script.fallback {
                    0 => 200,
                    s => s,
                }),
            }
        };
        log.push(Received {
            id,
            timestamp: h("x-storepulse-timestamp").parse().unwrap_or(0),
            signature: h("x-storepulse-signature"),
            content_type: h("content-type"),
            extra: headers
                .get("x-robot-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: body.to_vec(),
            answered: status,
        });
        status
    };
    if status == 0 {
        // Longer than the client's timeout: the sender gives up on it.
        tokio::time::sleep(Duration::from_secs(3)).await;
        return StatusCode::OK;
    }
    StatusCode::from_u16(status).unwrap()
}

/// Serves `receiver` on `listener` until `stop` is cancelled.
fn serve(listener: TcpListener, receiver: Receiver, stop: CancellationToken) {
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
}

async fn start_receiver() -> (Receiver, SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    let stop = CancellationToken::new();
    serve(listener, receiver.clone(), stop.clone());
    (receiver, addr, stop)
}

fn webhook(name: &str, addr: SocketAddr) -> WebhookConfig {
    let mut w = WebhookConfig::new(name, format!("http://{addr}/hook"), SECRET);
    w.initial_backoff_ms = 10;
    w.max_backoff_secs = 1;
    w.timeout_ms = 2_000;
    w
}

fn sink_config(webhooks: Vec<WebhookConfig>) -> WebhookSinkConfig {
    WebhookSinkConfig {
        webhooks,
        ..WebhookSinkConfig::default()
    }
}

fn body(i: usize) -> Vec<u8> {
    let rule = if i.is_multiple_of(2) { "r0" } else { "r1" };
    format!(r#"{{"alert_id":{i},"rule":"{rule}","store_id":"KM-001"}}"#).into_bytes()
}

fn id(i: usize) -> String {
    format!("raised:{i}")
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(id).collect()
}

async fn append_range(sink: &WebhookHandle, range: std::ops::Range<usize>) {
    for i in range {
        assert!(sink.append(&id(i), &body(i)).await.unwrap(), "{i} is new");
    }
}

/// Polls `cond` every 10 ms; panics with `what` after [`PATIENCE`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let outcome = tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(outcome.is_ok(), "timed out waiting until {what}");
}

async fn stop(sink: WebhookHandle, shutdown: &CancellationToken) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), sink.join())
        .await
        .expect("the sink stops promptly")
        .unwrap();
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// (a) Every notification is delivered once, in order, signed; a `rules`
/// filter selects; latency from append to 2xx is well under a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_notification_once_in_order_signed() {
    let (all, all_addr, _s1) = start_receiver().await;
    let (r1, r1_addr, _s2) = start_receiver().await;
    let mut everything = webhook("all", all_addr);
    everything
        .headers
        .insert("X-Robot-Token".into(), "robot-1".into());
    let mut only_r1 = webhook("r1-only", r1_addr);
    only_r1.rules = vec!["r1".into()];

    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let sink = WebhookSink::start(
        sink_config(vec![everything, only_r1]),
        dir.path(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let metrics = sink.metrics();

    append_range(&sink, 0..20).await;
    wait_until("20 delivered to `all`", || all.delivered().len() >= 20).await;
    wait_until("10 delivered to `r1-only`", || r1.delivered().len() >= 10).await;
    wait_until("cursors persisted", || {
        metrics.snapshot().iter().all(|s| s.cursor == 20)
    })
    .await;

    assert_eq!(all.delivered(), ids(0..20));
    let odd: Vec<_> = (0..20usize)
        .filter(|i| !i.is_multiple_of(2))
        .map(id)
        .collect();
    assert_eq!(r1.delivered(), odd);

    let ts_now = now_secs();
    for (i, r) in all.all().iter().enumerate() {
        assert_eq!(r.answered, 200);
        assert_eq!(r.body, body(i), "body unchanged");
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.extra.as_deref(), Some("robot-1"));
        assert!(
            r.timestamp.abs_diff(ts_now) < 60,
            "timestamp {}",
            r.timestamp
        );
        assert!(
            signature::verify(SECRET.as_bytes(), r.timestamp, &r.body, &r.signature),
            "signature of {} verifies",
            r.id
        );
        assert!(!signature::verify(
            b"wrong",
            r.timestamp,
            &r.body,
            &r.signature
        ));
    }
    assert!(r1.all().iter().all(|r| r.extra.is_none()));

    let s = metrics.get("all").unwrap();
    assert_eq!((s.delivered, s.retried, s.failed_permanently), (20, 0, 0));
    assert_eq!(s.backlog, 0);
    let latency = s.last_latency.expect("a latency after a delivery");
    assert!(latency < Duration::from_secs(1), "latency {latency:?}");
    let s = metrics.get("r1-only").unwrap();
    assert_eq!((s.delivered, s.filtered), (10, 10));
    assert_eq!(metrics.appended(), 20);

    // A re-emitted notification (an at-least-once producer after a crash)
    // is not appended, so not delivered again.
    assert!(!sink.append(&id(3), &body(3)).await.unwrap());
    assert!(sink.append(&id(20), &body(20)).await.unwrap());
    wait_until("the next one delivered", || all.delivered().len() >= 21).await;
    assert_eq!(all.delivered(), ids(0..21));

    stop(sink, &shutdown).await;
}

/// (b) A webhook that is down, first with nothing listening on its port,
/// then answering 503 for a while, receives every notification exactly
/// once and in order when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_was_down_gets_everything_once_in_order() {
    // A port with nothing listening: bind, note it, close.
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);

    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let sink = WebhookSink::start(
        sink_config(vec![webhook("down", addr)]),
        dir.path(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let metrics = sink.metrics();
    append_range(&sink, 0..10).await;
    wait_until("connection refused and retried 3 times", || {
        metrics.get("down").is_some_and(|s| s.retried >= 3)
    })
    .await;
    assert_eq!(metrics.get("down").unwrap().delivered, 0);

    // The webhook comes up, but answers 503 to its first four requests.
    let listener = TcpListener::bind(addr).await.unwrap();
    let receiver = Receiver::default();
    receiver.script(|s| s.queue = [503, 503, 503, 503].into());
    let stop_server = CancellationToken::new();
    serve(listener, receiver.clone(), stop_server.clone());

    append_range(&sink, 10..15).await;
    wait_until("all 15 delivered", || receiver.delivered().len() >= 15).await;
    wait_until("cursor persisted", || {
        metrics.get("down").is_some_and(|s| s.cursor == 15)
    })
    .await;

    assert_eq!(receiver.delivered(), ids(0..15), "once each, in order");
    let requests = receiver.all();
    assert_eq!(requests.len(), 15 + 4);
    for r in &requests[..4] {
        assert_eq!(
            (r.id.as_str(), r.answered),
            ("raised:0", 503),
            "head of line held"
        );
    }
    let s = metrics.get("down").unwrap();
    assert_eq!(s.delivered, 15);
    assert_eq!(s.failed_permanently, 0);
    assert!(s.retried >= 3 + 4, "retried {}", s.retried);

    stop(sink, &shutdown).await;
    stop_server.cancel();
}

/// (c) A restarted sink resumes from the persisted cursor: what was
/// delivered is not sent again, what was not is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_persisted_cursor() {
    let (receiver, addr, _server) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();

    let shutdown = CancellationToken::new();
    let config = sink_config(vec![webhook("risk", addr)]);
    let sink = WebhookSink::start(config.clone(), dir.path(), shutdown.clone())
        .await
        .unwrap();
    let metrics = sink.metrics();
    append_range(&sink, 0..5).await;
    wait_until("5 delivered and persisted", || {
        metrics.get("risk").is_some_and(|s| s.cursor == 5)
    })
    .await;

    // The webhook starts failing; the sink is stopped while retrying.
    receiver.script(|s| s.fallback = 503);
    append_range(&sink, 5..10).await;
    wait_until("retrying raised:5", || {
        metrics.get("risk").is_some_and(|s| s.retried >= 2)
    })
    .await;
    stop(sink, &shutdown).await;
    assert_eq!(metrics.get("risk").unwrap().cursor, 5);
    assert_eq!(receiver.delivered(), ids(0..5));

    // A new sink on the same outbox directory; the webhook is back.
    receiver.script(|s| s.fallback = 200);
    let shutdown = CancellationToken::new();
    let sink = WebhookSink::start(config, dir.path(), shutdown.clone())
        .await
        .unwrap();
    let metrics = sink.metrics();
    assert_eq!(
        metrics.get("risk").unwrap().cursor,
        5,
        "resumes at the cursor"
    );
    // The producer re-emits one already delivered and one pending: no-ops.
    assert!(!sink.append(&id(2), &body(2)).await.unwrap());
    assert!(!sink.append(&id(7), &body(7)).await.unwrap());
    append_range(&sink, 10..12).await;
    wait_until("all 12 delivered", || receiver.delivered().len() >= 12).await;
    wait_until("cursor persisted", || {
        metrics.get("risk").is_some_and(|s| s.cursor == 12)
    })
    .await;

    assert_eq!(receiver.delivered(), ids(0..12), "once each, in order");
    assert_eq!(
        metrics.get("risk").unwrap().delivered,
        7,
        "only 5..12 sent again"
    );
    stop(sink, &shutdown).await;
}

/// (d) A permanent refusal (400) is logged, counted and skipped; the rest
/// is delivered in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_skipped_and_the_rest_delivered() {
    let (receiver, addr, _server) = start_receiver().await;
    receiver.script(|s| {
        s.per_id.insert(id(3), 400);
    });
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let sink = WebhookSink::start(
        sink_config(vec![webhook("strict", addr)]),
        dir.path(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let metrics = sink.metrics();
    append_range(&sink, 0..8).await;
    wait_until("the cursor past all 8", || {
        metrics.get("strict").is_some_and(|s| s.cursor == 8)
    })
    .await;

    let expected: Vec<_> = (0..8).filter(|&i| i != 3).map(id).collect();
    assert_eq!(receiver.delivered(), expected);
    let tries_of_3 = receiver.all().iter().filter(|r| r.id == id(3)).count();
    assert_eq!(tries_of_3, 1, "a 400 is not retried");
    let s = metrics.get("strict").unwrap();
    assert_eq!((s.delivered, s.failed_permanently, s.retried), (7, 1, 0));
    stop(sink, &shutdown).await;
}

/// A webhook that does not answer within `timeout_ms` is retried like one
/// that is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_is_retried() {
    let (receiver, addr, _server) = start_receiver().await;
    receiver.script(|s| s.stall = 1);
    let mut w = webhook("slow", addr);
    w.timeout_ms = 200;
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let sink = WebhookSink::start(sink_config(vec![w]), dir.path(), shutdown.clone())
        .await
        .unwrap();
    let metrics = sink.metrics();
    append_range(&sink, 0..3).await;
    wait_until("3 delivered", || receiver.delivered().len() >= 3).await;
    assert_eq!(receiver.delivered(), ids(0..3));
    let first = &receiver.all()[0];
    assert_eq!((first.id.as_str(), first.answered), ("raised:0", 0));
    let s = metrics.get("slow").unwrap();
    assert!(s.retried >= 1 && s.failed_permanently == 0, "{s:?}");
    stop(sink, &shutdown).await;
}

/// Delivery crosses segment files while delivered segments are deleted
/// behind the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_crosses_segments_and_old_ones_are_deleted() {
    let (receiver, addr, _server) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = sink_config(vec![webhook("w", addr)]);
    config.outbox.segment_bytes = super::config::MIN_SEGMENT_BYTES;
    config.outbox.dedup_window = 10;
    let shutdown = CancellationToken::new();
    let sink = WebhookSink::start(config, dir.path(), shutdown.clone())
        .await
        .unwrap();
    let metrics = sink.metrics();
    let padding = "x".repeat(4000);
    let big = |i: usize| format!(r#"{{"alert_id":{i},"pad":"{padding}"}}"#).into_bytes();
    for i in 0..100 {
        assert!(sink.append(&id(i), &big(i)).await.unwrap());
    }
    wait_until("100 delivered and persisted", || {
        metrics.get("w").is_some_and(|s| s.cursor == 100)
    })
    .await;
    assert_eq!(receiver.delivered(), ids(0..100));
    assert!(receiver
        .all()
        .iter()
        .enumerate()
        .all(|(i, r)| r.body == big(i)));
    // ~16 records per 64 KiB segment: 7 segments written, the delivered
    // ones outside the 10-id window deleted.
    let outbox = sink.outbox();
    assert!(outbox.first_seq() > 0, "old segments deleted");
    assert!(
        outbox.segment_count() <= 2,
        "{} segments",
        outbox.segment_count()
    );
    stop(sink, &shutdown).await;
}

/// Shutdown while idle is prompt and releases the outbox directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_and_releases_the_outbox() {
    let (_receiver, addr, _server) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = sink_config(vec![webhook("w", addr)]);
    let shutdown = CancellationToken::new();
    let sink = WebhookSink::start(config.clone(), dir.path(), shutdown.clone())
        .await
        .unwrap();
    let metrics = sink.metrics();
    stop(sink, &shutdown).await;
    // The metrics outlive the sink without holding the outbox.
    assert_eq!(metrics.appended(), 0);
    let again = WebhookSink::start(config, dir.path(), CancellationToken::new()).await;
    assert!(again.is_ok(), "{:?}", again.err());
    assert!(cursor_file(dir.path(), "w").exists());
}

fn cursor_file(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join("cursors").join(format!("{name}.json"))
}

/// A bad config fails at start with the field.
#[tokio::test]
async fn a_bad_config_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = WebhookConfig::new("w", "ftp://example.com", SECRET);
    w.max_backoff_secs = 1;
    let err = WebhookSink::start(sink_config(vec![w]), dir.path(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("webhooks[0].url"), "{err}");
    assert!(!err.retryable());
}
