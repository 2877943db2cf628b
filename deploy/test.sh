#!/usr/bin/env bash
# The test command of the README: every unit, property, integration and
# end-to-end test of the workspace, on a fresh machine.
#
#   ./deploy/test.sh
#
# It installs what it needs itself. Today the tests need no external
# service: the end-to-end tests start the real storepulse program on
# 127.0.0.1 (embedded mode). When the Kafka and ClickHouse connectors land,
# this script starts a Kafka-protocol broker and a ClickHouse server first
# (deploy/kafka.sh, deploy/clickhouse.sh) and the tests fail, never skip,
# when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Property tests: enough cases to find order bugs, bounded time.
export PROPTEST_CASES="${PROPTEST_CASES:-256}"

cargo test --workspace --locked --all-targets
# Doc tests (all-targets leaves them out).
cargo test --workspace --locked --doc
