//! Prometheus metrics of the processing pipeline.
//!
//! Labels are low-cardinality (event type, outcome, alert kind): never a
//! store, SKU or member id. Gauges that describe the log (its end and size,
//! the processing lag, the checkpoint age) are set when `/metrics` is
//! scraped, by whoever serves it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of processed-event counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcessedLabels {
    pub event_type: &'static str,
    /// `applied`, `duplicate` or `rejected`.
    pub outcome: &'static str,
}

/// Labels of alert counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub kind: &'static str,
}

/// Labels of fraud alert counters (rule names are few: at most 64 rules).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

/// Labels of the late-sales counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LateLabels {
    pub evaluated: &'static str,
}

/// Metrics the runtime updates.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    pub processed: Family<ProcessedLabels, Counter>,
    pub alerts: Family<AlertLabels, Counter>,
    pub dead_letters: Counter,
    pub member_tag_changes: Counter,
    pub fraud_alerts: Family<RuleLabels, Counter>,
    pub fraud_withdrawn: Counter,
    pub fraud_late_sales: Family<LateLabels, Counter>,
    pub fraud_alert_seconds: Histogram,
    pub checkpoints: Counter,
    pub applied_offset: Gauge,
    pub lag_records: Gauge,
    pub checkpoint_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub log_size_bytes: Gauge,
    pub visible_seconds: Histogram,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        Self {
            processed: Family::default(),
            alerts: Family::default(),
            dead_letters: Counter::default(),
            member_tag_changes: Counter::default(),
            fraud_alerts: Family::default(),
            fraud_withdrawn: Counter::default(),
            fraud_late_sales: Family::default(),
            fraud_alert_seconds: Histogram::new(exponential_buckets(0.000_5, 1.5, 25)),
            checkpoints: Counter::default(),
            applied_offset: Gauge::default(),
            lag_records: Gauge::default(),
            checkpoint_age_seconds: Gauge::default(),
            log_size_bytes: Gauge::default(),
            // 0.5 ms .. ~8 s in steps of x1.5, fine enough to read a p99
            visible_seconds: Histogram::new(exponential_buckets(0.000_5, 1.5, 25)),
        }
    }
}

impl PipelineMetrics {
    /// Registers every metric under the `storepulse_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "storepulse_processed_events",
            "Events read from the log by the processors, by type and outcome",
            self.processed.clone(),
        );
        registry.register(
            "storepulse_alerts",
            "Alerts raised, by kind",
            self.alerts.clone(),
        );
        registry.register(
            "storepulse_processor_dead_letters",
            "Events the processors sent to the dead-letter log",
            self.dead_letters.clone(),
        );
        registry.register(
            "storepulse_member_tag_changes",
            "Member tag changes emitted (added or removed)",
            self.member_tag_changes.clone(),
        );
        registry.register(
            "storepulse_fraud_alerts",
            "Fraud alerts raised (and points overdrafts sent to review), by rule",
            self.fraud_alerts.clone(),
        );
        registry.register(
            "storepulse_fraud_alerts_withdrawn",
            "Fraud alerts withdrawn because a late sale or link regrouped the sales",
            self.fraud_withdrawn.clone(),
        );
        registry.register(
            "storepulse_fraud_late_sales",
            "Sales later than fraud.allowed_lateness_minutes: evaluated (window state still kept) or not",
            self.fraud_late_sales.clone(),
        );
        registry.register(
            "storepulse_fraud_alert_seconds",
            "From ingest of a batch's first event to its fraud alerts being durable in the webhook outbox (an upper bound per alert)",
            self.fraud_alert_seconds.clone(),
        );
        registry.register(
            "storepulse_checkpoints",
            "Checkpoints written",
            self.checkpoints.clone(),
        );
        registry.register(
            "storepulse_applied_offset",
            "Exclusive end offset of the log applied to state",
            self.applied_offset.clone(),
        );
        registry.register(
            "storepulse_processing_lag_records",
            "Records in the event log not yet applied",
            self.lag_records.clone(),
        );
        registry.register(
            "storepulse_checkpoint_age_seconds",
            "Seconds since the last checkpoint",
            self.checkpoint_age_seconds.clone(),
        );
        registry.register(
            "storepulse_event_log_size_bytes",
            "Bytes of the embedded event log on disk",
            self.log_size_bytes.clone(),
        );
        registry.register(
            "storepulse_event_visible_seconds",
            "From the arrival of an ingest request to its events being visible to queries",
            self.visible_seconds.clone(),
        );
    }
}
