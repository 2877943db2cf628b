#!/usr/bin/env bash
# A Kafka-protocol broker for development and tests: Tansu (a Kafka-API
# broker written in Rust; Apache Kafka and Redpanda are not installable from
# the registries these machines reach).
#
#   ./deploy/kafka.sh install   # cargo install tansu, once (15-25 min on 2 cores; cached in ~/.cargo/bin)
#   ./deploy/kafka.sh start     # start on 127.0.0.1:${KAFKA_PORT:-9092}, wait until it answers
#   ./deploy/kafka.sh stop
#   ./deploy/kafka.sh status
#
# Storage: STOREPULSE_KAFKA_STORAGE=memory (default, fast, lost on stop) or
# sqlite (survives a broker restart with its data and committed offsets,
# in var/kafka/tansu.db). Tansu has no transactions (EndTxn): StorePulse's
# exactly-once state does not rely on them (see ARCHITECTURE.md).
# Found by hand (Tansu 0.6.0, 2026-11-25): topics are not auto-created;
# create them first (admin API), then produce. The build took 15.4 min niced
# on 2 busy cores. librdkafka 2.x clients (Python confluent-kafka) create
# topics, produce idempotently with acks=all and lz4, and consume in a group.
# deploy/test.sh starts it (in var/kafka-test) when nothing listens on 9092.
# Found since: Tansu 0.6 lists a partition's high watermark as the start of
# its last batch + 1; it does not reassign a dead member's partitions; and
# its sqlite engine panics when an idempotent producer id from before a
# restart comes back. ARCHITECTURE.md says how StorePulse copes.
#
# Allocator: STOREPULSE_TANSU_ALLOCATOR=jemalloc (default) runs Tansu with
# jemalloc preloaded (Debian's libjemalloc2, installed by `install` where
# apt-get can; glibc's malloc otherwise, with a note), =system with glibc's.
# Under the fraud benchmark's load glibc's malloc took ~18 % of Tansu's
# profile (its fetch copies every batch key of a partition); with jemalloc
# the alert latency's steady-state p99 fell from 0.92-1.22 s to 0.66-0.77 s
# over 60 s (BENCHMARKS.md, 2026-12-05 fifth session).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${KAFKA_PORT:-9092}"
STATE_DIR="${STOREPULSE_KAFKA_DIR:-var/kafka}"
STORAGE="${STOREPULSE_KAFKA_STORAGE:-memory}"
ALLOCATOR="${STOREPULSE_TANSU_ALLOCATOR:-jemalloc}"
PIDFILE="$STATE_DIR/tansu.pid"
LOG="$STATE_DIR/tansu.log"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"   # pinned: the workarounds in ARCHITECTURE.md are for 0.6

# TANSU_BIN=/path/to/tansu uses that build instead (another version or
# feature set, tried by hand; `install` then builds nothing).
tansu_bin() {
  if [ -n "${TANSU_BIN:-}" ]; then echo "$TANSU_BIN"; return; fi
  command -v tansu 2>/dev/null || { [ -x "$HOME/.cargo/bin/tansu" ] && echo "$HOME/.cargo/bin/tansu"; } || true
}

# The path of libjemalloc.so.2, if the system has it.
jemalloc_lib() {
  ldconfig -p 2>/dev/null | awk '/libjemalloc\.so\.2 / { print $NF; exit }'
}

install_jemalloc() {
  [ "$ALLOCATOR" = jemalloc ] || return 0
  [ -n "$(jemalloc_lib)" ] && return 0
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "kafka.sh: installing libjemalloc2 (Debian) for Tansu" >&2
    if ! { apt-get install -y -q libjemalloc2 >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libjemalloc2 >/dev/null 2>&1; }; }; then
      echo "kafka.sh: libjemalloc2 did not install; Tansu runs with glibc's malloc" >&2
    fi
  fi
}

install() {
  install_jemalloc
  if [ -n "$(tansu_bin)" ]; then
    echo "kafka.sh: tansu already installed: $(tansu_bin)"
    return
  fi
  echo "kafka.sh: building tansu (one time, 15-25 min on 2 cores)..." >&2
  local version_arg=()
  [ -n "$TANSU_VERSION" ] && version_arg=(--version "$TANSU_VERSION")
  cargo install tansu --locked --features dynostore,libsql "${version_arg[@]}"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
  install
  mkdir -p "$STATE_DIR"
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "kafka.sh: already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
    return
  fi
  local engine
  case "$STORAGE" in
    memory) engine="memory://tansu/" ;;
    # Tansu joins the sqlite path to its working directory (even an absolute
    # one, and `..` does not parse), so it runs in the state directory.
    sqlite) engine="sqlite://tansu.db" ;;
    *) echo "kafka.sh: STOREPULSE_KAFKA_STORAGE must be memory or sqlite" >&2; exit 2 ;;
  esac
  local bin log preload=""
  bin="$(tansu_bin)"; log="$(realpath "$LOG")"
  case "$ALLOCATOR" in
    jemalloc)
      preload="$(jemalloc_lib)"
      [ -n "$preload" ] || echo "kafka.sh: no libjemalloc.so.2; Tansu runs with glibc's malloc" >&2 ;;
    system) ;;
    *) echo "kafka.sh: STOREPULSE_TANSU_ALLOCATOR must be jemalloc or system" >&2; exit 2 ;;
  esac
  (cd "$STATE_DIR" && exec env ${preload:+LD_PRELOAD="$preload"} "$bin" broker \
    --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine "$engine" >"$log" 2>&1) &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if port_open; then
      echo "kafka.sh: tansu up on 127.0.0.1:$PORT ($STORAGE storage, ${preload:+jemalloc, }pid $(cat "$PIDFILE"))"
      return
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "kafka.sh: tansu exited; its log:" >&2
      cat "$LOG" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "kafka.sh: tansu did not open 127.0.0.1:$PORT within 10 s; its log: $LOG" >&2
  exit 1
}

stop() {
  if [ -f "$PIDFILE" ]; then
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "kafka.sh: stopped"
  else
    echo "kafka.sh: not running"
  fi
}

status() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && port_open; then
    echo "kafka.sh: running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
  else
    echo "kafka.sh: not running"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
