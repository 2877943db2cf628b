#!/usr/bin/env bash
# The main job on the embedded default, with simulated stores selling:
#
#   ./deploy/demo.sh
#
# Builds storepulse, starts `storepulse run` (HTTP on 127.0.0.1:8080, data in
# var/demo), feeds it with `storepulse simulate` (40 stores, ~300 events/s),
# and prints live stock of a few popular SKUs every 2 seconds. Open
# http://127.0.0.1:8080/ (the dashboard: log in as analyst / demo-analyst),
# or the API with a demo key, e.g.
# curl -H 'Authorization: Bearer storepulse-demo-hq' http://127.0.0.1:8080/v1/stock/KM-001
# while it runs. Ctrl-C stops everything cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

ADDR="${STOREPULSE_DEMO_ADDR:-127.0.0.1:8080}"
RATE="${STOREPULSE_DEMO_RATE:-300}"
export STOREPULSE__HTTP__LISTEN="$ADDR"
export STOREPULSE__STORAGE__DATA_DIR="${STOREPULSE__STORAGE__DATA_DIR:-var/demo}"

cargo build --release --locked -p storepulse
BIN=target/release/storepulse

"$BIN" run &
RUN_PID=$!
SIM_PID=""
cleanup() {
  [ -n "$SIM_PID" ] && kill -INT "$SIM_PID" 2>/dev/null || true
  kill -TERM "$RUN_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  curl -fsS "http://$ADDR/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$ADDR/healthz" >/dev/null || { echo "demo: storepulse did not start" >&2; exit 1; }

# A new seed each run: the same seed would resend the same event ids, which
# the pipeline (rightly) ignores as duplicates after a restart.
# About one planted fraud episode a minute (3-4 stores within 25 minutes of
# event time, which here is the wall clock): the review queue fills slowly.
"$BIN" simulate --url "http://$ADDR" --rate "$RATE" --seed "$(date +%s)" \
  --fraud-share 0.00005 --quiet >/dev/null &
SIM_PID=$!

echo
echo "StorePulse is running: http://$ADDR"
echo "  dashboard:              http://$ADDR/  (analyst / demo-analyst, km001-manager / demo-km001, risk-analyst / demo-risk)"
echo "  live stock of a store:  curl -H 'Authorization: Bearer storepulse-demo-hq' http://$ADDR/v1/stock/KM-001"
echo "  one SKU:                curl -H 'Authorization: Bearer storepulse-demo-km001' http://$ADDR/v1/stock/KM-001/SKU-100000"
echo "  nearby availability:    curl -H 'Authorization: Bearer storepulse-demo-channel' 'http://$ADDR/v1/skus/SKU-100000/availability?near=KM-001'"
echo "  alerts, metrics, API:   /v1/alerts?kind=stock (with a key)  /metrics  /openapi.json"
echo "  fraud review queue:     curl -H 'Authorization: Bearer storepulse-demo-risk' 'http://$ADDR/v1/alerts?status=open'"
echo "Ctrl-C to stop."
echo
WATCH=$(mktemp)
cat >"$WATCH" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
def get(path, key=None):
    req = urllib.request.Request(base + path)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(req, timeout=2) as r:
        return json.load(r)
try:
    page = get("/v1/stock/KM-001?limit=1000", "storepulse-demo-km001")
    health = get("/healthz")
    alerts = get("/v1/alerts?kind=stock&limit=1000", "storepulse-demo-hq")["alerts"]
    review = get("/v1/alerts?status=open&limit=1", "storepulse-demo-risk")["counts"]
except Exception as e:  # the server is starting or stopping
    print("waiting for storepulse:", e)
    sys.exit(0)
top = sorted(page["items"], key=lambda i: -i["velocity_per_day"])[:4]
cells = ["%s on_hand=%d (%.1f/day)" % (i["sku"], i["on_hand"], i["velocity_per_day"]) for i in top]
print("%s  KM-001 fastest sellers: %s | events=%d lag=%d recent stock alerts=%d open fraud alerts=%d" % (
    page["as_of"], ", ".join(cells), health["log_end"], health["lag"], len(alerts), review.get("open", 0)))
PY
while kill -0 "$RUN_PID" 2>/dev/null; do
  python3 "$WATCH" "http://$ADDR"
  sleep 2
done
rm -f "$WATCH"
