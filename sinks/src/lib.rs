//! StorePulse sinks: where results leave the pipeline for other systems.
//!
//! Empty for now, on purpose. The embedded default writes its outputs
//! itself (alerts to the runtime's alert book and checkpoint, rejections to
//! the dead-letter log in `ingest`). This crate receives the connectors of
//! later issues, one folder each with config, batching, retry logic and
//! integration tests against a real server: the Kafka output topics
//! (`storepulse.stock`, alerts, `storepulse.dlq`; issue #3) and the ClickHouse
//! mart (issue #6).
