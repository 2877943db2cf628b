//! End-to-end tests of `run`: NDJSON files, and HTTP against a tiny axum
//! ingest bound on 127.0.0.1:0. HTTP tests run on paused tokio time, so
//! `Retry-After`, backoff and pacing take no wall time and elapsed times are
//! exact.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;
use storepulse_core::{EventParser, StoreMaster};
use tokio::sync::Notify;

use super::*;

const START: &str = "2026-11-25T08:00:00+08:00";

fn stores_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv")
}

fn base(mut args: SimulateArgs) -> SimulateArgs {
    args.stores = stores_path();
    args.start = storepulse_core::time::parse_rfc3339(START);
    args.skus = 300;
    args.rate = 0.0;
    args.quiet = true;
    args
}

/// The stream `args` should produce, generated offline.
fn offline(args: &SimulateArgs, n: usize) -> Vec<(Vec<u8>, Emitted)> {
    let stores = Arc::new(StoreMaster::load(&args.stores).unwrap());
    let cfg = args.generator_config(args.start.unwrap());
    let mut g = Generator::new(cfg, stores).unwrap();
    crate::generator::tests::lines(&mut g, n)
}

fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

// ---------------------------------------------------------------- file

#[tokio::test]
async fn file_output_is_the_generated_stream() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let mut args = base(SimulateArgs::to_file(&out));
    args.events = Some(5_000);
    args.malformed_share = 0.01;
    let report = run(args.clone(), std::future::pending()).await.unwrap();
    assert_eq!(report.mode, "file");
    assert_eq!(report.sent, 5_000);
    assert_eq!(report.generated.events, 5_000);
    let expected: Vec<Vec<u8>> = offline(&args, 5_000).into_iter().map(|(b, _)| b).collect();
    assert!(
        read_lines(&out) == expected,
        "file differs from the offline stream"
    );
}

#[tokio::test]
async fn file_output_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    // No limit at all: only the shutdown ends it.
    let args = base(SimulateArgs::to_file(&out));
    let report = run(args, async {}).await.unwrap();
    assert_eq!(read_lines(&out).len() as u64, report.sent);
}

// ---------------------------------------------------------------- http

/// How the test ingest behaves.
#[derive(Default)]
struct Ingest {
    /// Answer the first this many requests with 503 and `Retry-After`.
    busy_first: usize,
    /// Then answer this many with 500.
    fail_first: usize,
    /// Answer every request with 503.
    always_busy: bool,
    retry_after_secs: u64,
    requests: AtomicUsize,
    seen: Mutex<HashSet<String>>,
    duplicates: AtomicUsize,
    got_request: Notify,
}

async fn ingest(
    State(s): State<Arc<(Ingest, EventParser)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (s, parser) = (&s.0, &s.1);
    let n = s.requests.fetch_add(1, Ordering::SeqCst);
    s.got_request.notify_one();
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some("Bearer test-key")
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if s.always_busy || n < s.busy_first {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, s.retry_after_secs.to_string())],
            "busy",
        )
            .into_response();
    }
    if n < s.busy_first + s.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        == Some("application/x-ndjson");
    let events: Vec<Vec<u8>> = if ndjson {
        body.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    } else {
        match serde_json::from_slice::<Vec<serde_json::Value>>(&body) {
            Ok(values) => values
                .iter()
                .map(|v| serde_json::to_vec(v).unwrap())
                .collect(),
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    };
    let (mut accepted, mut duplicates, mut rejected) = (0, 0, Vec::new());
    for (index, bytes) in events.iter().enumerate() {
        match parser.parse(bytes) {
            Ok(e) => {
                if s.seen.lock().unwrap().insert(e.event_id.to_string()) {
                    accepted += 1;
                } else {
                    duplicates += 1;
                }
            }
            Err(r) => {
                rejected.push(json!({"index": index, "event_id": r.event_id, "reason": r.reason()}))
            }
        }
    }
    s.duplicates.fetch_add(duplicates, Ordering::SeqCst);
    axum::Json(json!({"accepted": accepted, "duplicates": duplicates, "rejected": rejected}))
        .into_response()
}

async fn serve(behaviour: Ingest) -> (String, Arc<(Ingest, EventParser)>) {
    let parser = EventParser::new(Arc::new(StoreMaster::load(&stores_path()).unwrap()));
    let state = Arc::new((behaviour, parser));
    let app = Router::new()
        .route("/v1/events", post(ingest))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

fn http_args(url: &str) -> SimulateArgs {
    let mut args = base(SimulateArgs::to_url(url));
    args.key = "test-key".into();
    args
}

#[tokio::test(start_paused = true)]
async fn http_honours_retry_after_and_logs_acknowledged_events() {
    let (url, server) = serve(Ingest {
        busy_first: 1,
        retry_after_secs: 5,
        ..Ingest::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let acked = dir.path().join("acked.ndjson");
    let mut args = http_args(&url);
    args.events = Some(1_000);
    args.concurrency = 1;
    args.malformed_share = 0.05;
    args.duplicate_share = 0.05;
    args.acked_out = Some(acked.clone());

    let started = Instant::now();
    let report = run(args.clone(), std::future::pending()).await.unwrap();

    // The 503 was retried once, after the 5 s the server asked for.
    assert_eq!(report.retried_503, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        server.0.requests.load(Ordering::SeqCst),
        11,
        "10 batches + 1 retry"
    );

    let stream = offline(&args, 1_000);
    let malformed = stream.iter().filter(|(_, e)| !e.is_valid()).count() as u64;
    assert!(malformed > 20);
    assert_eq!(report.sent, 1_000);
    assert_eq!(report.rejected, malformed);
    assert_eq!(report.acknowledged, 1_000 - malformed);
    assert_eq!(
        (report.rejected_unexpected, report.accepted_malformed),
        (0, 0)
    );
    assert_eq!(
        report.duplicates,
        server.0.duplicates.load(Ordering::SeqCst) as u64
    );
    assert!(report.duplicates > 0);

    // Exactly the acknowledged events, in order (one request in flight).
    let expected: Vec<Vec<u8>> = stream
        .into_iter()
        .filter(|(_, e)| e.is_valid())
        .map(|(b, _)| b)
        .collect();
    assert!(
        read_lines(&acked) == expected,
        "acked-out differs from the valid events"
    );
}

#[tokio::test(start_paused = true)]
async fn http_retries_server_errors_with_backoff() {
    let (url, _server) = serve(Ingest {
        fail_first: 3,
        ..Ingest::default()
    })
    .await;
    let mut args = http_args(&url);
    args.events = Some(300);
    let report = run(args, std::future::pending()).await.unwrap();
    assert_eq!(report.retried_errors, 3);
    assert_eq!(report.acknowledged, 300);
}

#[tokio::test(start_paused = true)]
async fn http_gives_up_on_an_absent_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut args = http_args(&url);
    args.events = Some(10);
    args.max_retries = 2;
    let error = run(args, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("still failing after 3 attempts"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn http_refuses_a_wrong_key() {
    let (url, _server) = serve(Ingest::default()).await;
    let mut args = http_args(&url);
    args.key = "wrong".into();
    args.events = Some(10);
    let error = run(args, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("401") && error.contains("--key"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn http_shutdown_finishes_in_flight_batches() {
    let (url, server) = serve(Ingest {
        always_busy: true,
        retry_after_secs: 1,
        ..Ingest::default()
    })
    .await;
    let mut args = http_args(&url);
    args.concurrency = 2;
    args.batch = 50;
    let shutdown = {
        let server = server.clone();
        async move {
            while server.0.requests.load(Ordering::SeqCst) < 2 {
                server.0.got_request.notified().await;
            }
        }
    };
    let report = run(args, shutdown).await.unwrap();
    // Two batches in flight when shutdown came; each retried a few more
    // times, then was given up.
    assert_eq!(report.sent, 100);
    assert_eq!(report.abandoned, 100);
    assert_eq!(report.acknowledged, 0);
}

/// All `--events` generated while the server is busy (or restarting): the
/// batches in flight keep retrying until acknowledged, none is abandoned
/// (found by the mart's kill test: the last batches of a run were given up
/// while the server restarted).
#[tokio::test(start_paused = true)]
async fn http_keeps_retrying_the_last_batches_after_all_are_sent() {
    let (url, _server) = serve(Ingest {
        busy_first: 12,
        retry_after_secs: 1,
        ..Ingest::default()
    })
    .await;
    let mut args = http_args(&url);
    args.events = Some(100);
    args.concurrency = 2;
    args.batch = 50;
    let report = run(args, std::future::pending()).await.unwrap();
    assert_eq!(report.sent, 100);
    assert_eq!(report.abandoned, 0);
    assert_eq!(report.acknowledged, 100);
    assert!(report.retried_503 >= 12);
}

#[tokio::test(start_paused = true)]
async fn http_paces_at_the_rate() {
    let (url, _server) = serve(Ingest::default()).await;
    let mut args = http_args(&url);
    args.rate = 1_000.0;
    args.events = Some(5_000);
    let started = Instant::now();
    let report = run(args, std::future::pending()).await.unwrap();
    assert_eq!(report.acknowledged, 5_000);
    // 100-event batches at 1000/s: the first at once, the last at 4.9 s.
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_millis(4_890)..=Duration::from_millis(4_950)).contains(&elapsed),
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn http_stops_at_duration() {
    let (url, _server) = serve(Ingest::default()).await;
    let mut args = http_args(&url);
    args.rate = 500.0;
    args.duration = Some(2.0);
    let report = run(args, std::future::pending()).await.unwrap();
    // 2 s at 500/s in 50-event batches, plus the first batch.
    assert!((1_000..=1_050).contains(&report.sent), "{}", report.sent);
    assert_eq!(report.acknowledged, report.sent);
}

#[test]
fn run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let fut = run(SimulateArgs::to_file("-"), async {});
    assert_send(&fut);
}
