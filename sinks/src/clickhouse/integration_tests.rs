//! Integration tests against a real ClickHouse server.
