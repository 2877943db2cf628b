//! StorePulse ingest.
