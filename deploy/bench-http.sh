#!/usr/bin/env bash
# Load benchmark of `storepulse run` over HTTP (BENCHMARKS.md):
#   ./deploy/bench-http.sh [SECONDS] [CONCURRENCY] [RATE]
# Starts a release `storepulse run` (fsync on) on 127.0.0.1:18090 with a fresh
# data dir, drives it with `storepulse simulate` in batches of 100, and prints
# throughput, ingest latency (client side) and append-to-visible latency
# (server histogram, bucket upper bounds).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-20}"; CONC="${2:-16}"; RATE="${3:-0}"
cargo build --release --locked -p storepulse >/dev/null 2>&1
B=target/release/storepulse
DATA=$(mktemp -d)
STOREPULSE__STORAGE__DATA_DIR="$DATA" STOREPULSE__HTTP__LISTEN=127.0.0.1:18090 \
  STOREPULSE__TELEMETRY__LEVEL=warn "$B" run 2>"$DATA/run.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 50); do curl -fsS http://127.0.0.1:18090/healthz >/dev/null 2>&1 && break; sleep 0.1; done
# Event time: 10 minutes ago, compressed so the whole run stays in the past.
START=$(date -u -d '-15 min' +%Y-%m-%dT%H:%M:%SZ)
"$B" simulate --url http://127.0.0.1:18090 --rate "$RATE" --batch 100 --concurrency "$CONC" \
  --duration "$SECS" --start "$START" --speedup 0.01 --quiet 2>/dev/null >"$DATA/report.json"
sleep 1
curl -fsS http://127.0.0.1:18090/healthz; echo
curl -fsS http://127.0.0.1:18090/metrics >"$DATA/metrics.txt"
python3 - "$DATA/report.json" "$DATA/metrics.txt" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
print("sent", r["sent"], "acknowledged", r["acknowledged"], "rejected", r["rejected"],
      "retried_503", r["retried_503"], "events/s %.0f" % (r["acknowledged"] / r["elapsed"]))
print("ingest latency ms", r["ingest_latency"])
b = []
for l in open(sys.argv[2]):
    m = re.match(r'storepulse_event_visible_seconds_bucket\{le="([^"]+)"\} (\d+)', l)
    if m:
        b.append((float(m.group(1)), int(m.group(2))))
tot = b[-1][1]
for q in (0.5, 0.99):
    print("visible p%d <= %.4f s" % (q * 100, next(le for le, c in b if c >= q * tot)))
print("visible samples", tot)
PY
