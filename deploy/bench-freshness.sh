#!/usr/bin/env bash
# Freshness of the mart (BENCHMARKS.md, issue 6): how long from a sale being
# acknowledged by the ingest to it being counted by the dashboard's API.
#
#   ./deploy/bench-freshness.sh [embedded|clickhouse] [RATE] [SECONDS]
#
# Starts a release `storepulse run` on 127.0.0.1:18091 with a fresh data dir
# (clickhouse: with [mart.clickhouse] on STOREPULSE_BENCH_CLICKHOUSE, default
# http://127.0.0.1:8123, a fresh database), loads it with `storepulse
# simulate` at RATE events/s for SECONDS over every store but one (CX-002),
# and meanwhile probes: a one-line sale at CX-002, then
# GET /v1/mart/totals?store=CX-002 every 20 ms until its line is counted;
# the next probe 0.25 s later. Prints the probes' p50/p90/p99/max (seconds,
# from before the POST to the first answer that counts the line) and the
# load the simulator achieved. The dashboard page itself refreshes every
# few seconds on top of this.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-embedded}"; RATE="${2:-5000}"; SECS="${3:-60}"
PORT=18091
cargo build --release --locked -p storepulse >/dev/null 2>&1
B="${CARGO_TARGET_DIR:-target}/release/storepulse"
DATA=$(mktemp -d)
EXTRA=()
DB=""
if [ "$MODE" = "clickhouse" ]; then
  CH="${STOREPULSE_BENCH_CLICKHOUSE:-http://127.0.0.1:8123}"
  DB="sp_fresh_$$"
  EXTRA=(STOREPULSE__MART__CLICKHOUSE__URL="$CH" STOREPULSE__MART__CLICKHOUSE__DATABASE="$DB")
elif [ "$MODE" != "embedded" ]; then
  echo "bench-freshness.sh: mode is embedded or clickhouse, not $MODE" >&2
  exit 2
fi
env STOREPULSE__STORAGE__DATA_DIR="$DATA" STOREPULSE__HTTP__LISTEN=127.0.0.1:$PORT \
  STOREPULSE__TELEMETRY__LEVEL=warn "${EXTRA[@]}" "$B" run 2>"$DATA/run.log" &
PID=$!
cleanup() {
  kill -TERM $PID 2>/dev/null || true
  wait $PID 2>/dev/null || true
  if [ -n "$DB" ]; then
    curl -fsS "$CH/" --data-binary "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  fi
  rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:$PORT/healthz >/dev/null 2>&1 && break; sleep 0.1; done
grep -v '^CX-002,' data/stores.csv >"$DATA/load-stores.csv"
"$B" simulate --url http://127.0.0.1:$PORT --rate "$RATE" --batch 100 --concurrency 8 \
  --duration "$SECS" --stores "$DATA/load-stores.csv" --quiet \
  2>/dev/null >"$DATA/report.json" &
SIM=$!
python3 - "http://127.0.0.1:$PORT" "$SECS" <<'PY'
import datetime, json, sys, time, urllib.request

base, secs = sys.argv[1], float(sys.argv[2])
ingest_key, hq_key, store = "storepulse-demo-key", "storepulse-demo-hq", "CX-002"
china = datetime.timezone(datetime.timedelta(hours=8))

def call(method, path, key, body=None):
    req = urllib.request.Request(base + path, data=body, method=method)
    req.add_header("Authorization", "Bearer " + key)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())

time.sleep(2)  # past the opening stock burst of the simulator
lat, n, end = [], 0, time.monotonic() + secs - 3
while time.monotonic() < end:
    now = datetime.datetime.now(china)
    day = now.date().isoformat()
    event = {
        "v": 1, "event_id": "fresh-%d-%d" % (time.time_ns(), n), "event_type": "sale",
        "occurred_at": now.isoformat(timespec="milliseconds"), "store_id": store,
        "channel": "pos", "order_id": "fresh-%d" % n,
        "lines": [{"sku": "FRESH-PROBE", "qty": 1, "unit_price_cents": 100}],
        "total_cents": 100, "payment": {"method": "cash"},
    }
    t0 = time.monotonic()
    ack = call("POST", "/v1/events", ingest_key, json.dumps([event]).encode())
    if ack.get("accepted") != 1:
        sys.exit("probe not accepted: %s" % ack)
    n += 1
    deadline = t0 + 60
    while True:
        t = call("GET", "/v1/mart/totals?from=%s&to=%s&store=%s" % (day, day, store), hq_key)
        if t.get("lines", 0) >= n:
            lat.append(time.monotonic() - t0)
            break
        if time.monotonic() > deadline:
            sys.exit("probe %d not counted after 60 s (totals %s)" % (n, t))
        time.sleep(0.02)
    time.sleep(0.25)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print("probes %d  freshness p50 %.3f s  p90 %.3f s  p99 %.3f s  max %.3f s"
      % (len(lat), q(0.5), q(0.9), q(0.99), lat[-1]))
PY
wait $SIM || true
python3 - "$DATA/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("load: acknowledged %d events in %.1f s (%.0f events/s), rejected %d, retried_503 %d"
      % (r["acknowledged"], r["elapsed"], r["acknowledged"] / r["elapsed"], r["rejected"], r["retried_503"]))
PY
