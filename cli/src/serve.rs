//! `storepulse run` without `[kafka]`: ingest, processors and queries in
//! one process on the embedded event log (with `[kafka]`, see
//! [`crate::kafka_mode`]).
//!
//! Start-up: open the event log and the dead-letter log (each takes an
//! exclusive lock on its directory), restore the checkpoint, rebuild
//! ingest's de-duplication window (the processor's window + ids of the log
//! records after the checkpoint), then start the mart (`crate::mart`: mart
//! log, sink loop, Parquet store, DataFusion reader), the processing loop
//! and the HTTP server.
//! Shutdown (Ctrl-C or SIGTERM): the server stops taking requests and
//! finishes the ones in flight, the processing loop drains and writes a
//! final checkpoint, and the logs close after their last fsync.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use storepulse_core::dead_letter::DeadLetter;
use storepulse_core::dedup::SharedDedup;
use storepulse_core::latency::VisibilityTracker;
use storepulse_core::source::{EventSource, SourcePosition};
use storepulse_core::time::format_china;
use storepulse_core::{EventParser, StoreMaster};
use storepulse_dashboards::access::AccessTable;
use storepulse_dashboards::audit::AuditLog;
use storepulse_dashboards::fraud::{fraud_router, BacktestRunner, DecisionStore, FraudApiState};
use storepulse_dashboards::members::{member_router, EraseRequest, EraseSubmitter, MemberApiState};
use storepulse_dashboards::{
    login_router, mart_router, DeadLetterReader, LoginState, MartApiState, QueryState,
};
use storepulse_ingest::append::{EventAppender, KeyedEvent, LogAppender};
use storepulse_ingest::http::{IngestMetrics, IngestState};
use storepulse_ingest::keys::KeyTable;
use storepulse_ingest::log::EventLog;
use storepulse_processors::fraud::RuleSet;
use storepulse_runtime::checkpoint::CheckpointStore;
use storepulse_runtime::decisions::DecisionLog;
use storepulse_runtime::driver::{
    restore, AlertNotice, AlertSink, FraudSetup, MemberLogSink, PipelineContext,
};
use storepulse_runtime::replay::ReplaySetup;
use storepulse_runtime::rules_file::RulesHandle;
use storepulse_runtime::{run_pipeline, DeadLetterSink, Shared};
use storepulse_sinks::webhook::{Outbox, WebhookHandle, WebhookSink};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;

/// The dead-letter log as the runtime's sink.
struct LogDeadLetters(EventLog);

impl DeadLetterSink for LogDeadLetters {
    async fn send(&self, letters: Vec<DeadLetter>) -> Result<(), String> {
        let payloads = letters
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        self.0
            .append(payloads)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The member log (tag changes and erasures) as the runtime's sink.
struct LogMemberLog(EventLog);

impl MemberLogSink for LogMemberLog {
    async fn send(&self, records: Vec<Vec<u8>>) -> Result<(), String> {
        self.0
            .append(records)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// `POST /v1/backtest` over the embedded event log: every record from the
/// log's start to its end when the run starts, read in pages on the
/// blocking pool, against the rules in force at that moment.
fn log_backtest(
    log: EventLog,
    parser: EventParser,
    config: &Config,
    shared: Arc<Shared>,
) -> BacktestRunner {
    let base = ReplaySetup {
        inventory: config.inventory.clone(),
        members: config.members.clone(),
        fraud: config.fraud.processor(),
        rules: RuleSet::empty(),
        candidate: None,
    };
    Arc::new(move |candidate, from, to| {
        let (log, parser, mut setup) = (log.clone(), parser.clone(), base.clone());
        setup.rules = shared
            .fraud()
            .as_ref()
            .map_or_else(RuleSet::empty, |f| f.rules().clone());
        setup.candidate = Some(candidate);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let end = log.end_offset();
                let mut next = log.start_offset();
                let mut failed = None;
                let pages = std::iter::from_fn(|| {
                    if next >= end || failed.is_some() {
                        return None;
                    }
                    match log.read_range(next, 10_000) {
                        Ok(page) if !page.is_empty() => {
                            next = page.last().map_or(end, |(o, _)| o + 1);
                            Some(page.into_iter().map(|(_, payload)| payload))
                        }
                        Ok(_) => None,
                        Err(e) => {
                            failed = Some(e.to_string());
                            None
                        }
                    }
                });
                let report = storepulse_runtime::backtest::backtest_stored(
                    pages.flatten(),
                    &parser,
                    &setup,
                    from,
                    to,
                )?;
                match failed {
                    Some(e) => Err(format!("reading the event log: {e}")),
                    None => Ok(report),
                }
            })
            .await
            .map_err(|e| e.to_string())?
        })
    })
}

/// Starts the webhook senders when `[[fraud.webhooks]]` are configured.
///
/// # Errors
/// A locked or damaged outbox, a secret that cannot be resolved.
pub(crate) async fn start_webhooks(
    config: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<WebhookHandle>> {
    if config.fraud.webhooks.is_empty() {
        return Ok(None);
    }
    let dir = config.storage.data_dir.join("webhook-outbox");
    let handle = WebhookSink::start(config.fraud.webhook_sink(), &dir, shutdown)
        .await
        .with_context(|| format!("starting the webhooks (outbox {})", dir.display()))?;
    info!(
        webhooks = config.fraud.webhooks.len(),
        "webhook senders started"
    );
    Ok(Some(handle))
}

/// The runtime's alert sink over the webhook outbox: each notice appended
/// and fsynced (an id already there is a no-op).
pub(crate) fn outbox_sink(outbox: Arc<Outbox>) -> AlertSink {
    Arc::new(move |notices: Vec<AlertNotice>| {
        let outbox = outbox.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                for n in &notices {
                    outbox.append(&n.id, &n.body).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?
        })
    })
}

/// `DELETE /v1/members/{id}`: appends a `member_erase` event to the event
/// log or topic (so the erasure is durable, replayed after a crash and
/// ordered with every other event) and waits until it has been applied.
pub(crate) fn erase_submitter(
    appender: Arc<dyn EventAppender>,
    shared: Arc<Shared>,
    store_id: String,
) -> EraseSubmitter {
    Arc::new(move |request: EraseRequest| {
        let (appender, shared, store_id) = (appender.clone(), shared.clone(), store_id.clone());
        Box::pin(async move {
            let now = storepulse_core::time::now();
            let event_id = format!(
                "erase-api-{:016x}",
                xxhash_rust::xxh3::xxh3_64(format!("{}/{now}", request.member_id).as_bytes())
            );
            let payload = serde_json::json!({
                "v": 1,
                "event_id": event_id,
                "event_type": "member_erase",
                "occurred_at": format_china(now),
                "store_id": store_id,
                "channel": "backoffice",
                "member_id": request.member_id,
                "requested_by": request.requested_by,
            });
            let end = appender
                .append_events(vec![KeyedEvent {
                    key: store_id.clone(),
                    payload: payload.to_string().into_bytes(),
                }])
                .await
                .map_err(|e| e.to_string())?;
            // Embedded: until the processor has applied the log up to it.
            // Kafka: until the read model no longer holds the member.
            let done = || match end {
                Some(end) => shared.applied_end() >= end,
                None => shared
                    .members()
                    .as_ref()
                    .is_none_or(|m| m.member(&request.member_id).is_none()),
            };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !done() {
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "erasure {event_id} is accepted but not applied yet; it will be"
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Ok(event_id)
        })
    })
}

#[derive(Clone)]
struct OpsState {
    shared: Arc<Shared>,
    log: EventLog,
    registry: Arc<Registry>,
    webhooks: Option<crate::webhook_metrics::WebhookGauges>,
    /// The mart log and the sink's metrics (lag in `/healthz`, `/metrics`).
    mart: Option<(EventLog, storepulse_mart::sink::SinkMetrics)>,
}

/// Runs until Ctrl-C / SIGTERM.
///
/// # Errors
/// Start-up failures (bad store master, locked or damaged data directory,
/// address in use) and a processing loop that fails for good.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let stores = Arc::new(StoreMaster::load(&config.storage.stores_csv)?);
    let parser = EventParser::new(stores.clone());
    let keys = Arc::new(KeyTable::build(&config.ingest.keys, &stores).map_err(anyhow::Error::msg)?);
    if keys.is_empty() {
        warn!("no [[ingest.keys]] configured: HTTP ingest will refuse every request");
    }
    let data = &config.storage.data_dir;
    let log = EventLog::open(&data.join("events"), config.log.clone())
        .context("opening the event log")?;
    let dead_letter_log = EventLog::open(&data.join("dlq"), config.log.clone())
        .context("opening the dead-letter log")?;
    let member_log = EventLog::open(&data.join("member-tags"), config.log.clone())
        .context("opening the member log")?;
    let access = Arc::new(AccessTable::build(&config.access, &stores).map_err(anyhow::Error::msg)?);
    let audit = AuditLog::open(&data.join("audit")).context("opening the audit log")?;
    audit
        .record_config(&serde_json::to_value(&config).context("config as JSON")?)
        .context("auditing the configuration")?;
    let checkpoints = CheckpointStore::open(&data.join("checkpoint"))?;
    let (rules, rules_hash) = RulesHandle::load(&config.fraud.rules_file, &stores)
        .map_err(|e| anyhow::anyhow!("fraud.rules_file: {e}"))?;
    let fraud_setup = FraudSetup {
        config: config.fraud.processor(),
        rules,
        review_capacity: config.fraud.review_capacity,
    };
    let restored = restore(
        &checkpoints,
        &config.inventory,
        &config.members,
        &fraud_setup,
        &config.runtime,
        &parser,
        log.start_offset(),
    )?;
    let (decision_log, decisions) =
        DecisionLog::open(&data.join("decisions")).context("opening the decision log")?;
    let decision_log = Arc::new(decision_log);
    let mut review = restored.review;
    for d in decisions {
        review.decide(d);
    }

    // Ingest's de-duplication window: the processor's window (it remembers
    // every event it applied, of any type) plus the ids of the log records
    // after the checkpoint, which the processor will replay.
    let start = restored.positions.first().map_or(0, |p| p.offset);
    let dedup = Arc::new(SharedDedup::new(
        restored.inventory.dedup_window().clone(),
        start,
    ));
    rebuild_ingest_dedup(&log, &parser, &dedup, start)?;

    let visibility = Arc::new(VisibilityTracker::default());
    let shared = Arc::new(
        Shared::new(restored.inventory, restored.alerts, visibility.clone())
            .with_members(restored.members)
            .with_fraud(restored.fraud, review),
    );
    let rules_handle = RulesHandle::new(
        config.fraud.rules_file.clone(),
        stores.clone(),
        shared.clone(),
        rules_hash,
    );
    let positions = restored.positions;
    shared
        .applied_end
        .store(start, std::sync::atomic::Ordering::Release);
    let mut reader = log.reader();
    reader
        .seek(&[SourcePosition {
            partition: 0,
            offset: start,
        }])
        .await
        .context("seeking the event log to the checkpoint")?;
    info!(
        start,
        end = log.end_offset(),
        "resuming from the checkpoint; replaying the tail"
    );

    let shutdown = CancellationToken::new();
    let ingest_metrics = IngestMetrics::default();
    let mut registry = Registry::default();
    // The mart stops after the processing loop (its last batch reaches the
    // mart log first); the sink then drains what it can.
    let mart_shutdown = CancellationToken::new();
    let mart = if config.mart.enabled {
        Some(
            crate::mart::start(
                &config,
                stores.clone(),
                dead_letter_log.clone(),
                &mut registry,
                mart_shutdown.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    let webhooks = start_webhooks(&config, shutdown.child_token()).await?;
    let alert_sink = webhooks.as_ref().map(|h| outbox_sink(h.outbox().clone()));
    let sink = LogDeadLetters(dead_letter_log.clone());
    let member_sink = LogMemberLog(member_log.clone());
    let ctx = PipelineContext {
        shared: shared.clone(),
        parser: parser.clone(),
        checkpoints,
        config: config.runtime.clone(),
        alert_sink: alert_sink.clone(),
        mart: mart.as_ref().map(|m| m.output.clone()),
    };
    let pipeline_shutdown = shutdown.clone();
    let pipeline = tokio::spawn(async move {
        run_pipeline(
            reader,
            &sink,
            &member_sink,
            ctx,
            positions,
            pipeline_shutdown,
        )
        .await
    });

    let watch_audit = audit.clone();
    tokio::spawn(rules_handle.clone().watch(
        std::time::Duration::from_secs_f64(config.fraud.reload_interval_secs),
        shutdown.clone(),
        move |change| {
            storepulse_dashboards::fraud::audit_rules_file_change(&watch_audit, &change);
        },
    ));

    ingest_metrics.register(&mut registry);
    shared.metrics.register(&mut registry);

    let lag_shared = shared.clone();
    let lag_log = log.clone();
    let appender: Arc<dyn EventAppender> = Arc::new(LogAppender {
        events: log.clone(),
        dead_letters: dead_letter_log.clone(),
    });
    let first_store = stores
        .iter()
        .next()
        .map(|(_, s)| s.store_id.clone())
        .unwrap_or_default();
    let members_api = MemberApiState {
        shared: shared.clone(),
        access: access.clone(),
        audit: audit.clone(),
        erase: erase_submitter(appender.clone(), shared.clone(), first_store),
    };
    let backtest_parser = parser.clone();
    let ingest = IngestState {
        config: Arc::new(config.ingest.clone()),
        parser,
        keys,
        appender,
        dedup,
        metrics: ingest_metrics,
        visibility,
        lag: Arc::new(move || {
            lag_log
                .end_offset()
                .saturating_sub(lag_shared.applied_end())
        }),
    };
    let dlq_log = dead_letter_log.clone();
    let dead_letters: DeadLetterReader =
        Arc::new(move |limit| newest_dead_letters(&dlq_log, limit));
    let webhook_gauges = webhooks
        .as_ref()
        .map(|h| crate::webhook_metrics::WebhookGauges::register(h.metrics(), &mut registry));
    let ops = OpsState {
        shared: shared.clone(),
        log: log.clone(),
        registry: Arc::new(registry),
        webhooks: webhook_gauges,
        mart: mart.as_ref().map(|m| (m.log.clone(), m.metrics.clone())),
    };
    let app = Router::new()
        .merge(storepulse_ingest::http::router(ingest))
        .merge(dashboard_routes(
            &shared,
            dead_letters,
            &access,
            &audit,
            &stores,
            // The dashboard's charts read the embedded mart (503 while
            // `[mart] enabled = false`).
            mart.as_ref().map(|m| m.reader.clone()),
        ))
        .merge(member_router(members_api))
        .merge(fraud_router(FraudApiState {
            shared: shared.clone(),
            access: access.clone(),
            audit: audit.clone(),
            decisions: Some(DecisionStore::Log(decision_log)),
            rules: Some(rules_handle),
            notify: alert_sink,
            backtest: Some(log_backtest(
                log.clone(),
                backtest_parser,
                &config,
                shared.clone(),
            )),
            backtest_gate: Arc::new(tokio::sync::Semaphore::new(1)),
        }))
        .merge(
            Router::new()
                .route("/healthz", get(healthz))
                .route("/metrics", get(metrics))
                .route("/openapi.json", get(openapi))
                .with_state(ops),
        );

    let addr: SocketAddr = config.http.listen.parse().context("http.listen")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    info!(%local, "storepulse is up: POST /v1/events, GET /v1/stock/{{store_id}}, /metrics, /openapi.json");
    eprintln!("storepulse listening on http://{local}");

    let server_shutdown = shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        wait_for_signal().await;
        info!("shutting down: finishing requests, then a final checkpoint");
        server_shutdown.cancel();
    });
    let served = server.await;
    shutdown.cancel();
    let processed = pipeline.await.context("processing task")?;
    mart_shutdown.cancel();
    if let Some(mart) = mart {
        mart.join().await.context("stopping the mart")?;
    }
    dead_letter_log
        .close()
        .await
        .context("closing the dead-letter log")?;
    member_log.close().await.context("closing the member log")?;
    if let Some(webhooks) = webhooks {
        webhooks
            .join()
            .await
            .context("stopping the webhook senders")?;
    }
    log.close().await.context("closing the event log")?;
    served.context("http server")?;
    processed.context("processing")?;
    info!("stopped cleanly");
    Ok(())
}

pub(crate) async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Adds the ids of the log records from `from` on to ingest's window.
fn rebuild_ingest_dedup(
    log: &EventLog,
    parser: &EventParser,
    dedup: &SharedDedup,
    from: u64,
) -> anyhow::Result<()> {
    let end = log.end_offset();
    let mut next = from.max(log.start_offset());
    while next < end {
        let records = log
            .read_range(next, 10_000)
            .context("reading the event log")?;
        if records.is_empty() {
            break;
        }
        dedup.with(|window, covered| {
            for (offset, payload) in &records {
                if let Ok(event) = parser.parse(payload) {
                    window.remember(&event.event_id, event.occurred_at);
                }
                *covered = (*covered).max(offset + 1);
            }
        });
        next = records.last().map_or(end, |(o, _)| o + 1);
    }
    Ok(())
}

/// The query API, the login, the dashboard page and its chart data: the
/// routes every serving role has (embedded `run`, Kafka `serve`). `mart`:
/// the chart data's store (`None`: those routes answer 503).
pub(crate) fn dashboard_routes(
    shared: &Arc<Shared>,
    dead_letters: DeadLetterReader,
    access: &Arc<AccessTable>,
    audit: &AuditLog,
    stores: &Arc<StoreMaster>,
    mart: Option<Arc<dyn storepulse_mart::query::MartReader>>,
) -> Router {
    Router::new()
        .merge(storepulse_dashboards::router(QueryState {
            shared: shared.clone(),
            dead_letters,
            access: access.clone(),
        }))
        .merge(login_router(LoginState {
            access: access.clone(),
            audit: audit.clone(),
            stores: stores.clone(),
        }))
        .merge(storepulse_dashboards::web_router())
        .merge(mart_router(MartApiState {
            access: access.clone(),
            stores: stores.clone(),
            mart,
        }))
}

fn newest_dead_letters(log: &EventLog, limit: usize) -> Result<Vec<DeadLetter>, String> {
    let end = log.end_offset();
    let from = end.saturating_sub(limit as u64).max(log.start_offset());
    let records = log.read_range(from, limit).map_err(|e| e.to_string())?;
    let mut letters: Vec<DeadLetter> = records
        .iter()
        .filter_map(|(_, payload)| serde_json::from_slice(payload).ok())
        .collect();
    letters.reverse();
    Ok(letters)
}

async fn healthz(State(ops): State<OpsState>) -> Response {
    let applied = ops.shared.applied_end();
    let end = ops.log.end_offset();
    let mart_lag = ops
        .mart
        .as_ref()
        .map(|(log, metrics)| metrics.refresh_lag(log.end_offset()));
    Json(serde_json::json!({
        "status": "ok",
        "log_end": end,
        "applied": applied,
        "lag": end.saturating_sub(applied),
        "mart_lag": mart_lag,
        "event_time_clock": ops.shared.inventory().clock_text(),
    }))
    .into_response()
}

async fn metrics(State(ops): State<OpsState>) -> Response {
    let m = &ops.shared.metrics;
    let end = ops.log.end_offset();
    m.lag_records
        .set(end.saturating_sub(ops.shared.applied_end()) as i64);
    m.log_size_bytes.set(ops.log.size_bytes() as i64);
    let last = ops
        .shared
        .last_checkpoint
        .load(std::sync::atomic::Ordering::Acquire);
    if last > 0 {
        let age = (storepulse_core::time::now() - last) as f64 / 1e9;
        m.checkpoint_age_seconds.set(age.max(0.0));
    }
    if let Some(w) = &ops.webhooks {
        w.refresh();
    }
    if let Some((log, metrics)) = &ops.mart {
        metrics.refresh_lag(log.end_offset());
    }
    metrics_text(&ops.registry)
}

/// `/metrics`: the registry in the OpenMetrics text format (both modes).
pub(crate) fn metrics_text(registry: &Registry) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `/openapi.json` (both modes).
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        storepulse_dashboards::OPENAPI_JSON,
    )
        .into_response()
}
