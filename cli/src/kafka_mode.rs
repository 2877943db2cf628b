//! Kafka mode: `storepulse ingest`, `process`, `serve`, and `run` (all
//! three in one process) against the brokers of `[kafka]`.
//!
//! - **ingest**: `POST /v1/events` produces accepted events to
//!   `<prefix>.events` keyed by `store_id` and answers after `acks=all`.
//!   Stateless: run as many as the POS traffic needs, behind a load balancer.
//! - **process**: joins the consumer groups (stock, members, accounts) and
//!   runs the processors, fraud rules included, on the partitions it is
//!   given (see `storepulse_kafka::process`). Scale by starting more, up to
//!   the partition count.
//! - **serve**: the query API from a read model of the stock, alerts,
//!   dead-letter, member and decision topics (see
//!   `storepulse_kafka::materialize`); every instance answers for every
//!   store, and serves the fraud review queue from `<p>.alerts`. Decisions
//!   are produced to `<p>.alert-decisions`; `PUT /v1/rules` writes the rules
//!   file and publishes the rules to `<p>.fraud-rules`, which every process
//!   follows. The serve that has `[[fraud.webhooks]]` (one designated
//!   instance) forwards the fraud records it reads to the webhook outbox,
//!   as embedded (`storepulse_kafka::notify`).
//!
//! Every role serves `/healthz` and `/metrics` on `[http] listen`.
//! Shutdown (Ctrl-C, SIGTERM): the HTTP server finishes its requests, the
//! ingest producer flushes, the processors write a final checkpoint of each
//! partition and leave the group (their partitions move at once instead of
//! after the session timeout). A role whose thread fails stops the process
//! with the error, for the supervisor to restart.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use storepulse_core::dedup::{DedupWindow, SharedDedup};
use storepulse_core::latency::VisibilityTracker;
use storepulse_core::{EventParser, StoreMaster};
use storepulse_dashboards::access::AccessTable;
use storepulse_dashboards::audit::AuditLog;
use storepulse_dashboards::fraud::{fraud_router, DecisionPublisher, DecisionStore, FraudApiState};
use storepulse_dashboards::members::{member_router, MemberApiState};
use storepulse_dashboards::DeadLetterReader;
use storepulse_ingest::append::EventAppender;
use storepulse_ingest::http::{IngestMetrics, IngestState};
use storepulse_ingest::keys::KeyTable;
use storepulse_kafka::materialize::ReadModel;
use storepulse_kafka::notify::{ForwardCheckpoint, ForwardProgress};
use storepulse_kafka::process::{ProcessMetrics, ProcessSettings, Stage};
use storepulse_kafka::producer::KafkaAppender;
use storepulse_kafka::Topics;
use storepulse_processors::fraud::FraudProcessor;
use storepulse_processors::inventory::InventoryProcessor;
use storepulse_processors::members::MemberProcessor;
use storepulse_runtime::alerts::AlertBook;
use storepulse_runtime::review::ReviewQueue;
use storepulse_runtime::rules_file::RulesHandle;
use storepulse_runtime::Shared;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::Config;

/// Which roles this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub ingest: bool,
    pub process: bool,
    pub serve: bool,
}

impl Roles {
    /// All three (`storepulse run` with `[kafka]`).
    pub const ALL: Roles = Roles {
        ingest: true,
        process: true,
        serve: true,
    };

    fn names(self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.ingest {
            names.push("ingest");
        }
        if self.process {
            names.push("process");
        }
        if self.serve {
            names.push("serve");
        }
        names
    }
}

#[derive(Clone)]
struct OpsState {
    roles: Roles,
    shared: Arc<Shared>,
    process: Option<ProcessMetrics>,
    read_model: ReadModel,
    registry: Arc<Registry>,
    webhooks: Option<crate::webhook_metrics::WebhookGauges>,
    /// The webhook forwarder's counters, on the serve that sends webhooks.
    forward: Option<Arc<ForwardProgress>>,
}

/// Runs the roles until Ctrl-C / SIGTERM, or until a role fails.
///
/// # Errors
/// Kafka mode not configured, broker unreachable at start, topics missing,
/// a partition state that cannot be used, an address in use.
pub async fn run(config: Config, roles: Roles) -> anyhow::Result<()> {
    let kafka = config.kafka.clone();
    if !kafka.enabled() {
        bail!(
            "the {} role needs Kafka: set [kafka] brokers = \"host:9092\" (or STOREPULSE__KAFKA__BROKERS)",
            roles.names().join("+")
        );
    }
    let topics = Topics::new(&kafka.topic_prefix);
    let partitions = storepulse_kafka::topics::ensure(&kafka, &topics)
        .await
        .with_context(|| format!("kafka at {}", kafka.brokers))?;
    info!(brokers = %kafka.brokers, topic = %topics.events, partitions, roles = ?roles.names(), "kafka mode");
    let stores = Arc::new(StoreMaster::load(&config.storage.stores_csv)?);
    let parser = EventParser::new(stores.clone());
    // The rules file at start; `<p>.fraud-rules` once anything was
    // published there (serve publishes what it installs; every process
    // follows the topic).
    let (rules, rules_hash) = RulesHandle::load(&config.fraud.rules_file, &stores)
        .map_err(|e| anyhow::anyhow!("fraud.rules_file: {e}"))?;

    let visibility = Arc::new(VisibilityTracker::default());
    let mut shared = Shared::new(
        InventoryProcessor::new(config.inventory.clone(), stores.clone()),
        AlertBook::new(config.runtime.alert_book_capacity),
        visibility.clone(),
    );
    if roles.serve {
        // The member read model, fed from `<p>.members`.
        shared = shared.with_members(
            MemberProcessor::new(config.members.clone(), stores.clone())
                .map_err(anyhow::Error::msg)?
                .without_dedup(),
        );
        // The review queue, fed from `<p>.alerts` and
        // `<p>.alert-decisions`; this fraud processor sees no events, it
        // holds the rules in force for `GET /v1/rules`.
        shared = shared.with_fraud(
            FraudProcessor::new(config.fraud.processor(), rules.clone(), stores.clone()),
            ReviewQueue::new(config.fraud.review_capacity),
        );
    }
    let shared = Arc::new(shared);
    let mut registry = Registry::default();
    shared.metrics.register(&mut registry);

    let stop = Arc::new(AtomicBool::new(false));
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel::<anyhow::Error>();
    let mut threads = Vec::new();

    let process_metrics = roles.process.then(|| {
        let metrics = ProcessMetrics::with_pipeline(shared.metrics.clone());
        metrics.register(&mut registry);
        metrics
    });
    if let Some(metrics) = &process_metrics {
        // Three loops: stock per store on the events topic, members per
        // person on the by-member topic (its metrics under `members_`), and
        // the account fraud rules on the by-account topic (`accounts_`).
        let member_metrics = ProcessMetrics::with_pipeline(Default::default());
        member_metrics.register(registry.sub_registry_with_prefix("members"));
        let account_metrics = ProcessMetrics::with_pipeline(Default::default());
        account_metrics.register(registry.sub_registry_with_prefix("accounts"));
        for (stage, metrics) in [
            (Stage::Stock, metrics.clone()),
            (Stage::Members, member_metrics),
            (Stage::Accounts, account_metrics),
        ] {
            let settings = ProcessSettings {
                kafka: kafka.clone(),
                topics: topics.clone(),
                partitions,
                state_dir: kafka
                    .state_dir
                    .clone()
                    .unwrap_or_else(|| config.storage.data_dir.join("kafka-state")),
                inventory: config.inventory.clone(),
                members: config.members.clone(),
                fraud: config.fraud.processor(),
                rules: rules.clone(),
                stage,
                batch_size: config.runtime.batch_size,
                checkpoint_interval: Duration::from_secs_f64(
                    config.runtime.checkpoint_interval_secs,
                ),
                // Each stage derives its mart rows to `<p>.mart`.
                mart: config
                    .mart
                    .enabled
                    .then(|| storepulse_mart::derive::RowDeriver::new(stores.clone())),
            };
            let (parser, stop, failed) = (parser.clone(), stop.clone(), failed_tx.clone());
            let name = match stage {
                Stage::Stock => "storepulse-process",
                Stage::Members => "storepulse-members",
                Stage::Accounts => "storepulse-accounts",
            };
            threads.push(
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(move || {
                        if let Err(e) = process_with_restarts(&settings, &parser, &metrics, &stop) {
                            let _ = failed.send(anyhow::Error::new(e).context(name));
                        }
                    })
                    .context("starting a processing thread")?,
            );
        }
    }

    let read_model = ReadModel::default();
    let rules_watch = tokio_util::sync::CancellationToken::new();
    // Webhooks: on the serve that has `[[fraud.webhooks]]` (configure one
    // designated serve only), the fraud records read from the topics go to
    // the same outbox and senders as embedded (`storepulse_kafka::notify`).
    let webhooks_stop = tokio_util::sync::CancellationToken::new();
    let mut webhooks = None;
    let forward_progress = Arc::new(ForwardProgress::default());
    if roles.serve {
        webhooks = crate::serve::start_webhooks(&config, webhooks_stop.clone()).await?;
    }
    if let Some(handle) = &webhooks {
        let outbox = handle.outbox().clone();
        let dir = outbox.dir().to_owned();
        let now_ms = storepulse_core::time::now() / 1_000_000;
        let (checkpoint, fresh) =
            ForwardCheckpoint::load_or_start(&dir, &kafka.topic_prefix, now_ms)?;
        if fresh {
            info!(
                cutoff_ms = checkpoint.cutoff_ms,
                "webhooks: new outbox, forwarding fraud records from now on (history is not sent)"
            );
        }
        info!(
            alerts = %topics.alerts,
            decisions = %topics.alert_decisions,
            "webhooks: this serve sends them (configure [[fraud.webhooks]] on one serve only)"
        );
        let (kafka, topics, shared, progress, stop, failed) = (
            kafka.clone(),
            topics.clone(),
            shared.clone(),
            forward_progress.clone(),
            stop.clone(),
            failed_tx.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name("storepulse-webhook-forward".into())
                .spawn(move || {
                    let result = storepulse_kafka::notify::run_forwarder(
                        &kafka,
                        &topics,
                        &shared,
                        checkpoint,
                        &dir,
                        |n| outbox.append(&n.id, &n.body).map_err(|e| e.to_string()),
                        &progress,
                        &stop,
                    );
                    if let Err(e) = result {
                        let _ = failed.send(anyhow::Error::new(e).context("webhook forwarder"));
                    }
                })
                .context("starting the webhook forwarder thread")?,
        );
    }
    if roles.serve {
        let (kafka, topics, shared, model, stop, failed) = (
            kafka.clone(),
            topics.clone(),
            shared.clone(),
            read_model.clone(),
            stop.clone(),
            failed_tx.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name("storepulse-read-model".into())
                .spawn(move || {
                    if let Err(e) = storepulse_kafka::materialize::run(
                        &kafka,
                        &topics,
                        &shared,
                        &model.dead_letters,
                        &model.progress,
                        &stop,
                    ) {
                        let _ = failed.send(anyhow::Error::new(e).context("read model"));
                    }
                })
                .context("starting the read-model thread")?,
        );
    }

    // The mart: the designated serve (`mart.kafka_sink`) runs the sink loop
    // over `<p>.mart`; every serve with `[mart.clickhouse]` reads it.
    let mart_stop = tokio_util::sync::CancellationToken::new();
    let mart = if roles.serve {
        let refused = KafkaAppender::new(&kafka, topics.clone(), partitions)?;
        Some(
            crate::mart::start_kafka(
                &config,
                stores.clone(),
                &topics,
                refused,
                &mut registry,
                mart_stop.clone(),
                failed_tx.clone(),
            )
            .await?,
        )
    } else {
        None
    };

    let mut app = Router::new();
    let mut appender = None;
    if roles.ingest {
        let keys =
            Arc::new(KeyTable::build(&config.ingest.keys, &stores).map_err(anyhow::Error::msg)?);
        if keys.is_empty() {
            warn!("no [[ingest.keys]] configured: HTTP ingest will refuse every request");
        }
        let producer = KafkaAppender::new(&kafka, topics.clone(), partitions)?;
        appender = Some(producer.clone());
        let ingest_metrics = IngestMetrics::default();
        ingest_metrics.register(&mut registry);
        // Ingest's own window drops retries cheaply; the processors drop
        // whatever gets past it (another ingest instance, a restart).
        let dedup = Arc::new(SharedDedup::new(
            DedupWindow::new(config.inventory.allowed_lateness()),
            0,
        ));
        app = app.merge(storepulse_ingest::http::router(IngestState {
            config: Arc::new(config.ingest.clone()),
            parser: parser.clone(),
            keys,
            appender: Arc::new(producer),
            dedup,
            metrics: ingest_metrics,
            visibility,
            // The broker's acknowledgement (or its timeout) is the first
            // back-pressure. With the processors in this process, their
            // lag is the second (`ingest.max_lag_records`), as embedded;
            // a stand-alone ingest cannot see it (Kafka absorbs the burst).
            lag: match &process_metrics {
                Some(metrics) => {
                    let lag = metrics.total_lag.clone();
                    Arc::new(move || lag.get().max(0) as u64)
                }
                None => Arc::new(|| 0),
            },
        }));
    }
    if roles.serve {
        let letters = read_model.dead_letters.clone();
        let dead_letters: DeadLetterReader = Arc::new(move |limit| Ok(letters.newest(limit)));
        let access =
            Arc::new(AccessTable::build(&config.access, &stores).map_err(anyhow::Error::msg)?);
        let audit = AuditLog::open(&config.storage.data_dir.join("audit"))
            .context("opening the audit log")?;
        audit
            .record_config(&serde_json::to_value(&config).context("config as JSON")?)
            .context("auditing the configuration")?;
        app = app.merge(crate::serve::dashboard_routes(
            &shared,
            dead_letters,
            &access,
            &audit,
            &stores,
            // ClickHouse, or the embedded mart of the sink serve; without
            // a store the routes answer 503 after authorising.
            mart.as_ref().and_then(|m| m.reader.clone()),
        ));
        // Erasures go through the events topic like any event; decisions
        // to `<p>.alert-decisions`.
        let producer = match &appender {
            Some(producer) => producer.clone(),
            None => KafkaAppender::new(&kafka, topics.clone(), partitions)?,
        };
        let eraser: Arc<dyn EventAppender> = Arc::new(producer.clone());
        let rules_producer = producer.clone();
        let publish_rules: storepulse_runtime::rules_file::RulesPublisher =
            Arc::new(move |specs| {
                let producer = rules_producer.clone();
                Box::pin(async move {
                    producer
                        .publish_rules(specs)
                        .await
                        .map_err(|e| e.to_string())
                })
            });
        let publish: DecisionPublisher = Arc::new(move |decision| {
            let producer = producer.clone();
            Box::pin(async move {
                producer
                    .publish_decision(&decision)
                    .await
                    .map_err(|e| e.to_string())
            })
        });
        let first_store = stores
            .iter()
            .next()
            .map(|(_, s)| s.store_id.clone())
            .unwrap_or_default();
        app = app.merge(member_router(MemberApiState {
            shared: shared.clone(),
            access: access.clone(),
            audit: audit.clone(),
            erase: crate::serve::erase_submitter(eraser, shared.clone(), first_store),
        }));
        // The rules file: read at start, watched, written by PUT/DELETE
        // /v1/rules; every set installed here is published to
        // `<p>.fraud-rules`, which the processors and other serves follow.
        let rules_handle = RulesHandle::new(
            config.fraud.rules_file.clone(),
            stores.clone(),
            shared.clone(),
            rules_hash,
        )
        .with_publisher(publish_rules);
        let watch_audit = audit.clone();
        tokio::spawn(rules_handle.clone().watch(
            Duration::from_secs_f64(config.fraud.reload_interval_secs),
            rules_watch.clone(),
            move |change| {
                storepulse_dashboards::fraud::audit_rules_file_change(&watch_audit, &change);
            },
        ));
        // No `notify`: decisions reach the webhooks from the decisions
        // topic, through the designated serve's forwarder (above).
        app = app.merge(fraud_router(FraudApiState {
            shared: shared.clone(),
            access,
            audit,
            decisions: Some(DecisionStore::Published(publish)),
            rules: Some(rules_handle),
            notify: None,
            backtest: None,
            backtest_gate: Arc::new(tokio::sync::Semaphore::new(1)),
        }));
    }
    let webhook_gauges = webhooks
        .as_ref()
        .map(|h| crate::webhook_metrics::WebhookGauges::register(h.metrics(), &mut registry));
    let ops = OpsState {
        roles,
        shared: shared.clone(),
        process: process_metrics,
        read_model,
        registry: Arc::new(registry),
        webhooks: webhook_gauges,
        forward: webhooks.is_some().then(|| forward_progress.clone()),
    };
    app = app.merge(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/openapi.json", get(crate::serve::openapi))
            .with_state(ops),
    );

    let addr: SocketAddr = config.http.listen.parse().context("http.listen")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    info!(%local, roles = ?roles.names(), "storepulse is up (kafka mode)");
    eprintln!("storepulse listening on http://{local}");

    let (fail_stop_tx, fail_stop_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    tokio::spawn(async move {
        if let Some(e) = failed_rx.recv().await {
            let _ = fail_stop_tx.send(e);
        }
    });
    let mut failure = None;
    let served = {
        let stop_reason = async {
            tokio::select! {
                () = crate::serve::wait_for_signal() => {
                    info!("shutting down: finishing requests, then final checkpoints");
                    None
                }
                Ok(e) = fail_stop_rx => Some(e),
            }
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let reason = stop_reason.await;
            let _ = done_tx.send(reason);
        });
        let served = server.await;
        if let Ok(Some(e)) = done_rx.await {
            failure = Some(e);
        }
        served
    };
    stop.store(true, Ordering::Release);
    rules_watch.cancel();
    if let Some(producer) = appender {
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)))
            .await
            .ok();
    }
    for handle in threads {
        let joined = tokio::task::spawn_blocking(move || handle.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            error!("a role's thread panicked");
        }
    }
    // The mart sink writes what it holds, stores its cursor and commits.
    mart_stop.cancel();
    if let Some(mart) = mart {
        if let Err(e) = mart.join().await {
            error!(error = %e, "stopping the mart sink");
        }
    }
    // The forwarder has stopped with its checkpoint saved (joined above);
    // the senders persist their cursors and stop.
    webhooks_stop.cancel();
    if let Some(webhooks) = webhooks {
        if let Err(e) = webhooks.join().await {
            error!(error = %e, "stopping the webhook senders");
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    served.context("http server")?;
    info!("stopped cleanly");
    Ok(())
}

/// Runs the processors; when they stop on an error that may pass (an
/// output the broker refused, e.g. across a broker restart), starts them
/// again from their checkpoints after a backoff (1 s doubling to 30 s), as
/// a supervisor would, without losing the HTTP side. Errors that will not
/// pass (a partition state that cannot be used) end the process.
fn process_with_restarts(
    settings: &ProcessSettings,
    parser: &EventParser,
    metrics: &ProcessMetrics,
    stop: &Arc<AtomicBool>,
) -> Result<(), storepulse_kafka::KafkaError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = std::time::Instant::now();
        match storepulse_kafka::process::run(
            settings.clone(),
            parser.clone(),
            metrics.clone(),
            stop.clone(),
        ) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.retry_hint() == storepulse_core::RetryHint::Backoff
                    && !stop.load(Ordering::Acquire) =>
            {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                if matches!(e, storepulse_kafka::KafkaError::Rejoin) {
                    info!("rejoining the consumer group");
                    continue;
                }
                warn!(error = %e, retry_in_s = backoff.as_secs(), "processing stopped; restarting from the checkpoints");
                let deadline = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < deadline && !stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn healthz(State(ops): State<OpsState>) -> Response {
    let mut body = serde_json::json!({
        "status": "ok",
        "mode": "kafka",
        "roles": ops.roles.names(),
    });
    if let Some(process) = &ops.process {
        body["owned_partitions"] = process.owned_partitions.get().into();
    }
    if ops.roles.serve {
        let p = &ops.read_model.progress;
        body["read_model"] = serde_json::json!({
            "stock_records": p.stock_records.load(Ordering::Relaxed),
            "stale_records": p.stale_records.load(Ordering::Relaxed),
            "unreadable": p.unreadable.load(Ordering::Relaxed),
            "fraud_records": p.fraud_records.load(Ordering::Relaxed),
            "decisions": p.decisions.load(Ordering::Relaxed),
        });
        body["event_time_clock"] = ops.shared.inventory().clock_text().into();
    }
    if let Some(forward) = &ops.forward {
        body["webhook_forward"] = serde_json::json!({
            "appended": forward.appended.load(Ordering::Relaxed),
            "duplicates": forward.duplicates.load(Ordering::Relaxed),
        });
    }
    Json(body).into_response()
}

async fn metrics(State(ops): State<OpsState>) -> Response {
    if let Some(w) = &ops.webhooks {
        w.refresh();
    }
    crate::serve::metrics_text(&ops.registry)
}
