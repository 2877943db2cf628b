//! The webhook senders' counters on `/metrics`, read at each scrape.
//!
//! The senders keep their own atomic counters (`storepulse_sinks`); this
//! copies a snapshot into gauges labelled by webhook name (a handful of
//! configured names: low cardinality) when `/metrics` is read.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use storepulse_sinks::webhook::WebhookMetrics;

/// Label of the webhook gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    webhook: String,
}

/// Gauges mirroring the senders' counters.
#[derive(Debug, Clone)]
pub(crate) struct WebhookGauges {
    source: WebhookMetrics,
    delivered: Family<WebhookLabel, Gauge>,
    retried: Family<WebhookLabel, Gauge>,
    failed: Family<WebhookLabel, Gauge>,
    backlog: Family<WebhookLabel, Gauge>,
    latency: Family<WebhookLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl WebhookGauges {
    /// Registers the gauges for `source`'s webhooks.
    pub(crate) fn register(source: WebhookMetrics, registry: &mut Registry) -> Self {
        let g = Self {
            source,
            delivered: Family::default(),
            retried: Family::default(),
            failed: Family::default(),
            backlog: Family::default(),
            latency: Family::default(),
        };
        registry.register(
            "storepulse_webhook_delivered",
            "Notifications delivered (2xx) since start, per webhook",
            g.delivered.clone(),
        );
        registry.register(
            "storepulse_webhook_retried",
            "Failed attempts retried (408, 429, 5xx, transport) since start, per webhook",
            g.retried.clone(),
        );
        registry.register(
            "storepulse_webhook_failed_permanently",
            "Notifications skipped after a permanent refusal (other 4xx) since start, per webhook",
            g.failed.clone(),
        );
        registry.register(
            "storepulse_webhook_backlog",
            "Notifications in the outbox not yet delivered, per webhook (alert on growth)",
            g.backlog.clone(),
        );
        registry.register(
            "storepulse_webhook_last_latency_seconds",
            "From outbox append to 2xx, for the last delivered notification, per webhook",
            g.latency.clone(),
        );
        g
    }

    /// Copies the senders' current counters into the gauges.
    pub(crate) fn refresh(&self) {
        for s in self.source.snapshot() {
            let label = WebhookLabel { webhook: s.name };
            let set = |family: &Family<WebhookLabel, Gauge>, v: u64| {
                family
                    .get_or_create(&label)
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            };
            set(&self.delivered, s.delivered);
            set(&self.retried, s.retried);
            set(&self.failed, s.failed_permanently);
            set(&self.backlog, s.backlog);
            if let Some(latency) = s.last_latency {
                self.latency
                    .get_or_create(&label)
                    .set(latency.as_secs_f64());
            }
        }
    }
}
