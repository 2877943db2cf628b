#!/usr/bin/env bash
# Kafka-mode benchmarks (BENCHMARKS.md), against the broker of
# deploy/kafka.sh on 127.0.0.1:9092 (started if nothing listens there).
#
#   ./deploy/bench-kafka.sh throughput [EVENTS]   # default 1000000
#       Preloads EVENTS simulated events into a fresh events topic
#       (`simulate --kafka --rate 0`, timed: the producer side), then starts
#       one `storepulse process` and times how long it takes to apply them
#       all (the consumer side: events/s into the processors).
#   ./deploy/bench-kafka.sh latency [RATE] [SECONDS]   # default 20000 60
#       Runs `process` and `serve` as separate processes and produces RATE
#       events/s for SECONDS; prints the event-to-visible latency measured
#       by `serve` (from each input's broker timestamp to its stock record
#       being in the read model), p50 and p99 (histogram bucket bounds).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-throughput}"
cargo build --release --locked -p storepulse >/dev/null 2>&1
B=target/release/storepulse
# STOREPULSE_BENCH_CONFIG=file.toml: run the roles with another configuration.
if [ -n "${STOREPULSE_BENCH_CONFIG:-}" ]; then B="$B --config $STOREPULSE_BENCH_CONFIG"; fi
if ! (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then ./deploy/kafka.sh start; fi
PREFIX="bench$(date +%s)"
DATA=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
export STOREPULSE__KAFKA__BROKERS=127.0.0.1:9092 STOREPULSE__KAFKA__TOPIC_PREFIX="$PREFIX"
export STOREPULSE__STORAGE__DATA_DIR="$DATA" STOREPULSE__TELEMETRY__LEVEL=warn
START=$(date -u -d '-30 min' +%Y-%m-%dT%H:%M:%SZ)

metric_sum() { # URL METRIC-PREFIX
  curl -fsS "$1/metrics" | awk -v m="$2" 'index($0, m) == 1 { s += $NF } END { printf "%d\n", s }'
}
wait_up() { for _ in $(seq 1 100); do curl -fsS "$1/healthz" >/dev/null 2>&1 && return; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

case "$MODE" in
throughput)
  N="${2:-1000000}"
  $B simulate --kafka 127.0.0.1:9092 --topic-prefix "$PREFIX" --rate 0 --events "$N" \
    --start "$START" --speedup 0.01 --quiet 2>/dev/null >"$DATA/produce.json"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('produce: %d events in %.2f s = %.0f events/s' % (r['acknowledged'], r['elapsed'], r['acknowledged']/r['elapsed']))" "$DATA/produce.json"
  STOREPULSE__HTTP__LISTEN=127.0.0.1:18101 $B process 2>"$DATA/process.log" &
  PIDS+=($!)
  wait_up http://127.0.0.1:18101
  t0=$(date +%s.%N)
  while :; do
    done_n=$(metric_sum http://127.0.0.1:18101 storepulse_processed_events_total)
    [ "$done_n" -ge "$N" ] && break
    sleep 0.2
  done
  t1=$(date +%s.%N)
  python3 -c "import sys; n, a, b = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]); print('process: %d events in %.2f s = %.0f events/s (from start-up, group join included)' % (n, b - a, n / (b - a)))" "$done_n" "$t0" "$t1"
  curl -fsS http://127.0.0.1:18101/metrics | grep -E '^storepulse_kafka_(checkpoint_seconds_(sum|count)|output_queue_full_waits_total)' || true
  ;;
latency)
  RATE="${2:-20000}"; SECS="${3:-60}"
  STOREPULSE__HTTP__LISTEN=127.0.0.1:18101 $B process 2>"$DATA/process.log" &
  PIDS+=($!)
  STOREPULSE__HTTP__LISTEN=127.0.0.1:18102 $B serve 2>"$DATA/serve.log" &
  PIDS+=($!)
  wait_up http://127.0.0.1:18101; wait_up http://127.0.0.1:18102
  sleep 3 # group join
  WARM=$(( SECS / 4 ))
  $B simulate --kafka 127.0.0.1:9092 --topic-prefix "$PREFIX" --rate "$RATE" --duration "$SECS" \
    --quiet 2>/dev/null >"$DATA/produce.json" &
  SIM=$!
  # The first seconds carry the simulator's opening stock (one receipt line
  # per store and SKU, ~200,000 stock records at once): measured apart.
  sleep "$WARM"
  curl -fsS http://127.0.0.1:18102/metrics >"$DATA/metrics-warm.txt"
  top -b -n 1 | awk 'NR > 7 && $9 > 1 { print "cpu%", $9, $12 }' | head -8
  wait "$SIM"
  sleep 2
  curl -fsS http://127.0.0.1:18102/metrics >"$DATA/metrics.txt"
  curl -fsS http://127.0.0.1:18101/metrics | grep -E '^storepulse_kafka_(checkpoint_seconds_(sum|count)|output_queue_full_waits_total)' || true
  curl -fsS http://127.0.0.1:18101/metrics >"$DATA/process-metrics.txt"
  python3 - "$DATA/process-metrics.txt" <<'PY'
import re, sys
b = [(float(m.group(1)), int(m.group(2))) for m in (re.match(r'storepulse_kafka_input_age_seconds_bucket\{le="([^"]+)"\} (\d+)', l) for l in open(sys.argv[1])) if m]
tot = b[-1][1]
print("first hop (broker timestamp to processing): " + ", ".join("p%d <= %.4f s" % (q * 100, next(le for le, c in b if c >= q * tot)) for q in (0.5, 0.99)))
PY
  python3 - "$DATA/produce.json" "$DATA/metrics-warm.txt" "$DATA/metrics.txt" "$WARM" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
print("produced %d events at %.0f events/s" % (r["acknowledged"], r["acknowledged"] / r["elapsed"]))
print("produce latency (simulate's own, to the broker's ack):", r.get("produce_latency"))
def buckets(path):
    b = []
    for l in open(path):
        m = re.match(r'storepulse_event_visible_seconds_bucket\{le="([^"]+)"\} (\d+)', l)
        if m:
            b.append((float(m.group(1)), int(m.group(2))))
    return b
warm, end = buckets(sys.argv[2]), buckets(sys.argv[3])
def report(name, b):
    tot = b[-1][1]
    qs = ["p%d <= %.4f s" % (q * 100, next(le for le, c in b if c >= q * tot)) for q in (0.5, 0.99)]
    print("event-to-visible, %s: %s (%d stock records)" % (name, ", ".join(qs), tot))
report("whole run", end)
report("after the first %s s" % sys.argv[4], [(le, c - w) for (le, c), (_, w) in zip(end, warm)])
PY
  ;;
*) echo "usage: $0 throughput [EVENTS] | latency [RATE] [SECONDS]" >&2; exit 2 ;;
esac
