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

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
status=0
cargo test --workspace --locked --all-targets 2>&1 | tee "$LOG" || status=$?
# Doc tests (all-targets leaves them out).
if [ "$status" -eq 0 ]; then
  cargo test --workspace --locked --doc 2>&1 | tee -a "$LOG" || status=$?
fi
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?/) p += $i; if ($(i+1) ~ /^failed;?/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG"
exit "$status"
