#!/usr/bin/env bash
# The test command of the README: every unit, property, integration and
# end-to-end test of the workspace, on a fresh machine.
#
#   ./deploy/test.sh
#
# It installs what it needs itself:
# - a Kafka-protocol broker (Tansu, deploy/kafka.sh: built once with cargo
#   install, 15-25 min on 2 cores, then cached in ~/.cargo/bin), started on
#   127.0.0.1:9092 with in-memory storage and stopped at the end (the
#   broker-restart test starts a sqlite-backed broker of its own);
# - the Python Kafka client confluent-kafka (PyPI) for the interoperability
#   test;
# - a ClickHouse server (Debian's clickhouse-server 18.16, deploy/clickhouse.sh)
#   on 127.0.0.1:8123 with its data in var/clickhouse-test, started before
#   the tests and stopped after (STOREPULSE_TEST_CLICKHOUSE=http://host:8123
#   uses a server of yours instead);
# - chDB (PyPI chdb: a current ClickHouse embedded in Python) for the test
#   that runs the mart's SQL on a current release.
# - headless Chromium and chromedriver (Debian packages chromium,
#   chromium-driver) for the dashboard's browser test, and npm when Apache
#   ECharts (dashboards/web, pinned) has not been fetched yet.
# The end-to-end tests start the real storepulse program on 127.0.0.1. A
# test whose service is missing fails with the command that starts it; none
# is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The Python client of the interoperability test.
if ! python3 -c "import confluent_kafka" >/dev/null 2>&1; then
  echo "test.sh: installing confluent-kafka (PyPI)" >&2
  python3 -m pip install --quiet "confluent-kafka>=2.6,<3"
fi

# A current ClickHouse engine for the mart's SQL (tests/python/chdb_mart.py).
if ! python3 -c "import chdb" >/dev/null 2>&1; then
  echo "test.sh: installing chdb (PyPI)" >&2
  python3 -m pip install --quiet "chdb>=3,<5"
fi

# A ClickHouse server for the mart tests, unless one is given.
started_clickhouse=0
if [ -z "${STOREPULSE_TEST_CLICKHOUSE:-}" ]; then
  if ! STOREPULSE_CLICKHOUSE_DIR=var/clickhouse-test ./deploy/clickhouse.sh status >/dev/null 2>&1; then
    STOREPULSE_CLICKHOUSE_DIR=var/clickhouse-test ./deploy/clickhouse.sh start
    started_clickhouse=1
  fi
  export STOREPULSE_TEST_CLICKHOUSE=http://127.0.0.1:8123
fi
stop_clickhouse() {
  if [ "$started_clickhouse" -eq 1 ]; then
    STOREPULSE_CLICKHOUSE_DIR=var/clickhouse-test ./deploy/clickhouse.sh stop >/dev/null || true
  fi
}

# Headless Chromium and its WebDriver for the dashboard's browser test
# (tests/tests/browser.rs), from Debian.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
  || ! fc-list 2>/dev/null | grep -qi "wenquanyi"; then
  echo "test.sh: installing chromium, chromium-driver and a Chinese font (apt)" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver fonts-wqy-zenhei
fi
# npm fetches Apache ECharts once for the dashboard (dashboards/build.rs).
if ! command -v npm >/dev/null 2>&1 && [ ! -f dashboards/web/node_modules/echarts/dist/echarts.min.js ]; then
  echo "test.sh: installing npm (apt) to fetch Apache ECharts" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm
fi

# A broker for the Kafka tests, unless one is given.
if [ -z "${STOREPULSE_TEST_KAFKA:-}" ]; then
  started_broker=0
  if ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then
    STOREPULSE_KAFKA_DIR=var/kafka-test STOREPULSE_KAFKA_STORAGE=memory ./deploy/kafka.sh start
    started_broker=1
  fi
  stop_broker() {
    if [ "$started_broker" -eq 1 ]; then
      STOREPULSE_KAFKA_DIR=var/kafka-test ./deploy/kafka.sh stop >/dev/null || true
    fi
  }
else
  stop_broker() { :; }
fi
# Property tests: enough cases to find order bugs, bounded time.
export PROPTEST_CASES="${PROPTEST_CASES:-256}"

LOG=$(mktemp)
trap 'rm -f "$LOG"; stop_broker; stop_clickhouse' EXIT
status=0
cargo test --workspace --locked --all-targets 2>&1 | tee "$LOG" || status=$?
# Doc tests (all-targets leaves them out).
if [ "$status" -eq 0 ]; then
  cargo test --workspace --locked --doc 2>&1 | tee -a "$LOG" || status=$?
fi
# The Arroyo UDF plugin is a workspace of its own (arrow 51 pins an older
# chrono than DataFusion's; udf/arroyo/src/lib.rs says why).
if [ "$status" -eq 0 ]; then
  cargo test --locked --manifest-path udf/arroyo/Cargo.toml 2>&1 | tee -a "$LOG" || status=$?
fi
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?/) p += $i; if ($(i+1) ~ /^failed;?/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG"
exit "$status"
